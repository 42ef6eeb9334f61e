import ArgumentParser
import Foundation
import STTWeightLoader

/// Development tools: the measurements behind scripts/bench and the engine's half of scripts/parity. Not installed
/// with the product; `stt` itself only has user commands.
@main
struct STTDev: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stt-dev",
        abstract: "Development tools behind scripts/bench and scripts/parity.",
        subcommands: [Bench.self, ParitySteps.self, ServeLoad.self, ComparePrecision.self])
}

/// A failure reported as one line.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
    init(_ error: any Error) { description = "\(error)" }
}

/// Throws unless `value` (the option `name`) lies in `range`.
func requireOption(_ name: String, _ value: Int, in range: ClosedRange<Int>) throws {
    guard range.contains(value) else {
        throw CommandFailure("--\(name) \(value) is outside \(range.lowerBound)…\(range.upperBound)")
    }
}

/// The encoder file of a model folder, or the path itself when it is a file.
func encoderFile(_ path: String) throws -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return path }
    do { return try ModelFolder(path).encoder } catch { throw CommandFailure(error) }
}
