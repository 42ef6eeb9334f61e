import ArgumentParser
import STTAudio
import STTConformer
import Foundation
import STTKit
import STTTensor
import STTWeightLoader

/// Look-ahead in milliseconds, as the model card states them.
enum Lookahead: Int, ExpressibleByArgument, CaseIterable {
    case ms0 = 0, ms80 = 80, ms480 = 480, ms1040 = 1040
    init?(argument: String) { self.init(rawValue: Int(argument) ?? -1) }
    static var allValueStrings: [String] { allCases.map { String($0.rawValue) } }
    var frames: Int { rawValue / 80 }
}

enum Mode: String, ExpressibleByArgument, CaseIterable {
    case native, export
    var convention: StreamingSchedule.Convention { self == .native ? .native : .exportCompatible }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable { case text, json, srt, vtt }

extension SpeechModel.Decoder: ExpressibleByArgument {}

struct ModelOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Model folder: encoder-*.onnx, decoder_joint-*.onnx (or a CTC graph), tokens.txt.")
    var model: String

    @Option(help: "Look-ahead in ms: 0, 80, 480 or 1040 (a trained setting). Default: the one the export was made with.")
    var lookahead: Lookahead?

    @Option(help: "First-chunk convention: native (streaming equals the offline result) or export (what the ONNX export computes).")
    var mode: Mode = .native

    @Option(help: "Decoder when the folder has both: rnnt or ctc. Default: rnnt if present.")
    var decoder: SpeechModel.Decoder?

    @Option(help: "Threads for the weight products.")
    var threads: Int = 1

    func load() throws -> (SpeechModel, TranscriptionStream.Options) {
        Kernels.threads = threads
        let speech: SpeechModel
        do { speech = try SpeechModel(folder: model) } catch { throw CommandFailure(error) }
        let options = TranscriptionStream.Options(
            lookahead: lookahead?.frames ?? speech.exportLookahead, convention: mode.convention,
            decoder: decoder ?? speech.availableDecoders.first ?? .rnnt)
        do { try TranscriptionStream.validate(options, for: speech) } catch { throw CommandFailure(error) }
        return (speech, options)
    }
}

struct Transcribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Transcribe audio files (WAV of any PCM/float format, channel count and rate; '-' for raw s16le 16 kHz on stdin).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Output: text, json (one object per file per line, tokens with times), srt or vtt.")
    var format: OutputFormat = .text

    @Argument(help: "Audio files.")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one audio file (or '-' for stdin)") }
    }

    func run() throws {
        let (model, options) = try modelOptions.load()
        var failed = false
        for file in files {
            do {
                let (samples, seconds) = try readAudio(file)
                let start = DispatchTime.now()
                let stream = try TranscriptionStream(model: model, options: options)
                let progress = Progress(file: file, total: samples.count)
                var offset = 0
                let block = MelFrontend.sampleRate  // one second at a time
                while offset < samples.count {
                    stream.push(Array(samples[offset..<min(samples.count, offset + block)]))
                    offset += block
                    progress.update(offset)
                }
                let tokens = stream.finish()
                progress.done()
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
                print(render(file: file, tokens: tokens, text: stream.text, seconds: seconds, elapsed: elapsed,
                             options: options))
            } catch let error as CommandFailure {
                FileHandle.standardError.write(Data("stt: error: \(error.message)\n".utf8))
                failed = true
            } catch {
                FileHandle.standardError.write(Data("stt: error: \(error)\n".utf8))
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }

    private func render(file: String, tokens: [TimedToken], text: String, seconds: Double, elapsed: Double,
                        options: TranscriptionStream.Options) -> String {
        switch format {
        case .text:
            return files.count > 1 ? "\(file): \(text)" : text
        case .json:
            let object: [String: Any] = [
                "file": file, "text": text, "audio_seconds": seconds, "processing_seconds": elapsed,
                "real_time_factor": seconds > 0 ? elapsed / seconds : 0, "lookahead_ms": options.lookahead * 80,
                "mode": options.convention == .native ? "native" : "export", "decoder": options.decoder.rawValue,
                "tokens": tokens.map { ["id": $0.id, "piece": $0.piece, "start": $0.seconds] as [String: Any] },
            ]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        case .srt, .vtt:
            return Subtitles.render(cues: Subtitles.cues(tokens), vtt: format == .vtt)
        }
    }
}

/// Reads a file (or stdin for "-") as 16 kHz mono samples; returns them and the duration in seconds.
func readAudio(_ file: String) throws -> ([Float], Double) {
    if file == "-" {
        let data = FileHandle.standardInput.readDataToEndOfFile()
        let samples = RawPCM.samples(data)
        guard !samples.isEmpty else { throw CommandFailure("stdin: no audio (expected raw s16le 16 kHz mono)") }
        return (samples, Double(samples.count) / 16_000)
    }
    let wav: WAVFile
    do { wav = try WAVFile(path: file) } catch { throw CommandFailure(error) }
    let samples = try wav.sampleRate == MelFrontend.sampleRate
        ? wav.samples : Resampler(from: wav.sampleRate, to: MelFrontend.sampleRate)(wav.samples)
    return (samples, Double(wav.samples.count) / Double(wav.sampleRate))
}

enum RawPCM {
    /// Little-endian signed 16-bit samples → [−1, 1]; a trailing odd byte is ignored.
    static func samples(_ data: Data) -> [Float] {
        data.withUnsafeBytes { raw in
            (0..<(raw.count / 2)).map { Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))) / 32768 }
        }
    }
}

/// A progress bar on stderr for long files, only when stderr is a terminal.
final class Progress {
    let file: String
    let total: Int
    let enabled: Bool
    init(file: String, total: Int) {
        self.file = file
        self.total = total
        enabled = isatty(2) == 1 && total > 30 * MelFrontend.sampleRate
    }
    func update(_ done: Int) {
        guard enabled else { return }
        let fraction = min(1, Double(done) / Double(total))
        let width = 30, filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        FileHandle.standardError.write(Data(String(format: "\r%@ %@ %3.0f%%", (file as NSString).lastPathComponent, bar, fraction * 100).utf8))
    }
    func done() { if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
}

/// Subtitle cues from timed tokens: a cue breaks at a pause of 0.8 s or after 7 s, at a word start ("▁").
enum Subtitles {
    struct Cue { var start: Double; var end: Double; var text: String }

    static func cues(_ tokens: [TimedToken]) -> [Cue] {
        var cues: [Cue] = []
        var current: Cue?
        var last = 0.0
        for token in tokens {
            let wordStart = token.piece.hasPrefix("▁")
            if let c = current, wordStart, token.seconds - last > 0.8 || token.seconds - c.start > 7 {
                cues.append(Cue(start: c.start, end: last + 0.08, text: c.text))
                current = nil
            }
            let piece = token.piece.replacingOccurrences(of: "▁", with: " ")
            if current == nil { current = Cue(start: token.seconds, end: token.seconds, text: "") }
            current?.text += piece
            last = token.seconds
        }
        if let c = current { cues.append(Cue(start: c.start, end: last + 0.08, text: c.text)) }
        return cues.map { Cue(start: $0.start, end: $0.end, text: $0.text.trimmingCharacters(in: .whitespaces)) }
            .filter { !$0.text.isEmpty }
    }

    static func render(cues: [Cue], vtt: Bool) -> String {
        func stamp(_ t: Double) -> String {
            let ms = Int((t * 1000).rounded())
            return String(format: "%02d:%02d:%02d%@%03d", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, vtt ? "." : ",", ms % 1000)
        }
        var out = vtt ? "WEBVTT\n\n" : ""
        for (i, cue) in cues.enumerated() {
            if !vtt { out += "\(i + 1)\n" }
            out += "\(stamp(cue.start)) --> \(stamp(cue.end))\n\(cue.text)\n\n"
        }
        return out.trimmingCharacters(in: .newlines)
    }
}

struct Stream: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Transcribe raw s16le 16 kHz mono audio from stdin live: partial text on stderr, final text on stdout.",
        discussion: "For example: arecord -f S16_LE -r 16000 -c 1 -t raw | stt stream --model DIR")

    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        let (model, options) = try modelOptions.load()
        let stream = try TranscriptionStream(model: model, options: options)
        let live = isatty(2) == 1
        let input = FileHandle.standardInput
        var pending = Data()
        while true {
            let chunk = input.readData(ofLength: 3_200)   // 100 ms
            if chunk.isEmpty { break }
            pending.append(chunk)
            let usable = pending.count / 2 * 2
            let new = stream.push(RawPCM.samples(pending.prefix(usable)))
            pending = pending.suffix(from: pending.startIndex + usable)
            if !new.isEmpty {
                let line = live ? "\r\u{1B}[K" + String(stream.text.suffix(120)) : stream.text + "\n"
                FileHandle.standardError.write(Data(line.utf8))
            }
        }
        stream.finish()
        if live { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        print(stream.text)
    }
}
