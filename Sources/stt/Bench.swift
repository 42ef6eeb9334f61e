import ArgumentParser
import Foundation
import WeightLoader

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measurements behind the benchmark scripts (scripts/bench drives these).",
        subcommands: [BenchLoad.self])
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else {
        return 0
    }
    return kb * 1024
}

struct BenchLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load a model folder once and print one JSON line: seconds, peak RSS, weight bytes.")

    @Argument(help: "A model folder.")
    var folder: String

    func run() throws {
        let start = DispatchTime.now()
        let model: LoadedModel
        do { model = try LoadedModel(folder: folder) } catch { throw CommandFailure(error) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let weights = model.encoder.weightBytes + (model.decoder?.weightBytes ?? 0)
        let files = [model.folder.encoder, model.folder.decoderJoint].compactMap { $0 }
            .map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }.reduce(0, +)
        print("{\"load_s\": \(seconds), \"peak_rss_bytes\": \(peakResidentBytes()), \"weight_bytes\": \(weights), "
              + "\"file_bytes\": \(files)}")
    }
}
