import ArgumentParser
import STTAudio
import STTConformer
import Foundation
import STTKit
import STTTensor
import STTWeightLoader

enum Mode: String, ExpressibleByArgument, CaseIterable {
    case native, export
    var convention: StreamingConvention { self == .native ? .native : .exportCompatible }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable { case text, json, srt, vtt }

extension SpeechModel.Decoder: ExpressibleByArgument {}

struct ModelOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Model folder: encoder-*.onnx, decoder_joint-*.onnx (or a CTC graph), tokens.txt.")
    var model: String

    @Option(help: "Look-ahead in ms, one the model was trained with (0, 80, 480 or 1040 for the reference model). Default: the one the export was made with.")
    var lookahead: Int?

    @Option(help: "First-chunk convention: native (streaming equals the offline result) or export (what the ONNX export computes).")
    var mode: Mode = .native

    @Option(help: "Decoder when the folder has both: rnnt or ctc. Default: rnnt if present.")
    var decoder: SpeechModel.Decoder?

    @Option(help: "Threads for the weight products.")
    var threads: Int = 1

    func load() throws -> (SpeechModel, TranscriptionStream.Options) {
        let speech: SpeechModel
        do { speech = try SpeechModel(folder: model, threads: threads) } catch { throw CommandFailure(error) }
        let options = TranscriptionStream.Options(lookahead: lookahead.map(Lookahead.init(milliseconds:)),
                                                  convention: mode.convention, decoder: decoder)
        // Checked once here so that a bad option fails before any file is read; an untrained look-ahead is a usage
        // error like any other bad option value.
        do {
            _ = try TranscriptionStream(model: speech, options: options)
        } catch .untrainedLookahead(let value, let trained) {
            throw ValidationError(TranscriptionError.untrainedLookahead(value, trained: trained).description)
        } catch {
            throw CommandFailure(error)
        }
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
                let source = try AudioSource(file)
                let start = DispatchTime.now()
                let stream = try TranscriptionStream(model: model, options: options)
                let progress = Progress(file: file, total: source.frameCount)
                // A second at a time: a file of any length transcribes in the memory of one block and the transcript.
                var block: [Float] = []
                var frames = 0
                while try source.read(maxFrames: source.sampleRate, into: &block) > 0 {
                    try stream.push(block, sampleRate: source.sampleRate)
                    frames += block.count
                    progress.update(frames)
                }
                guard frames > 0 else { throw CommandFailure("\(source.name): no audio samples") }
                stream.finish()
                progress.done()
                let seconds = Double(frames) / Double(source.sampleRate)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
                print(render(file: file, transcript: stream.transcript, seconds: seconds, elapsed: elapsed, stream: stream))
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

    private func render(file: String, transcript: Transcript, seconds: Double, elapsed: Double,
                        stream: TranscriptionStream) -> String {
        switch format {
        case .text:
            return files.count > 1 ? "\(file): \(transcript.text)" : transcript.text
        case .json:
            let object: [String: Any] = [
                "file": file, "text": transcript.text, "audio_seconds": seconds, "processing_seconds": elapsed,
                "real_time_factor": seconds > 0 ? elapsed / seconds : 0, "lookahead_ms": stream.lookahead.milliseconds,
                "mode": stream.convention == .native ? "native" : "export", "decoder": stream.decoder.rawValue,
                "tokens": transcript.tokens.map {
                    ["id": $0.id, "piece": $0.piece, "start": $0.start, "end": $0.end,
                     "logprob": Double($0.logProbability)] as [String: Any]
                },
                "words": transcript.words.map {
                    ["word": $0.text, "start": $0.start, "end": $0.end, "logprob": Double($0.logProbability)] as [String: Any]
                },
            ]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        case .srt, .vtt:
            return Subtitles.render(transcript.segments, vtt: format == .vtt)
        }
    }
}

/// Where a command's audio comes from, read block by block: a WAV file, or standard input for "-" — a WAV stream when
/// it starts with a RIFF header, otherwise raw s16le 16 kHz mono.
final class AudioSource {
    let name: String
    let sampleRate: Int
    /// Frames in the whole input, when known.
    let frameCount: Int?
    private let wav: WAVReader?
    private let input: FileHandle?
    private var pending: [UInt8]

    init(_ file: String) throws {
        if file == "-" {
            name = "stdin"
            let handle = FileHandle.standardInput
            var prefix: [UInt8] = []
            while prefix.count < 12 {
                let chunk = handle.readData(ofLength: 12 - prefix.count)
                if chunk.isEmpty { break }
                prefix += chunk
            }
            if WAVReader.startsLikeWAV(prefix) {
                do { wav = try WAVReader(handle: handle, name: name, prefix: prefix) } catch { throw CommandFailure(error) }
                input = nil
                pending = []
            } else {
                wav = nil
                input = handle
                pending = prefix
            }
        } else {
            name = file
            do { wav = try WAVReader(path: file) } catch { throw CommandFailure(error) }
            input = nil
            pending = []
        }
        sampleRate = wav?.sampleRate ?? 16_000
        frameCount = wav?.frameCount
    }

    /// Replaces `block` with up to `maxFrames` mono samples; returns how many (0 at the end).
    func read(maxFrames: Int, into block: inout [Float]) throws -> Int {
        block.removeAll(keepingCapacity: true)
        if let wav {
            do { return try wav.read(maxFrames: maxFrames, into: &block) } catch { throw CommandFailure(error) }
        }
        guard let input else { return 0 }
        while pending.count < 2 * maxFrames {
            let chunk = input.readData(ofLength: 2 * maxFrames - pending.count)
            if chunk.isEmpty { break }
            pending += chunk
        }
        let used = pending.withUnsafeBytes { PCM16.appendLittleEndian($0, to: &block) }
        pending.removeFirst(used)
        if block.isEmpty && !pending.isEmpty { pending.removeAll() }   // a lone trailing byte is no sample
        return block.count
    }
}

/// A progress bar on stderr for long files, only when stderr is a terminal.
final class Progress {
    let file: String
    let total: Int
    let enabled: Bool
    init(file: String, total: Int?) {
        self.file = file
        self.total = total ?? 0
        enabled = isatty(2) == 1 && self.total > 30 * 16_000
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

/// SRT and WebVTT from a transcript's segments.
enum Subtitles {
    static func render(_ cues: [Segment], vtt: Bool) -> String {
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
        abstract: "Transcribe audio from stdin live: partial text on stderr, final text on stdout.",
        discussion: """
            stdin is raw s16le 16 kHz mono, or a WAV stream (any format and rate) when it starts with a RIFF header.
            For example: arecord -f S16_LE -r 16000 -c 1 -t raw | stt stream --model DIR
            """)

    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        let (model, options) = try modelOptions.load()
        let stream = try TranscriptionStream(model: model, options: options)
        let live = isatty(2) == 1
        let source = try AudioSource("-")
        var block: [Float] = []
        // 100 ms at a time, as a microphone delivers; only the block in hand is kept.
        // On a terminal the last line shows the end of the text so far; elsewhere only newly final text is written,
        // so the cost per push stays constant however long the stream runs.
        var tail = ""
        while try source.read(maxFrames: max(1, source.sampleRate / 10), into: &block) > 0 {
            let new = try stream.push(block, sampleRate: source.sampleRate)
            guard !new.isEmpty else { continue }
            let text = new.map { $0.piece.replacingOccurrences(of: "▁", with: " ") }.joined()
            if live {
                tail = String((tail + text).suffix(120))
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + tail).utf8))
            } else {
                FileHandle.standardError.write(Data(text.utf8))
            }
        }
        stream.finish()
        FileHandle.standardError.write(Data((live ? "\r\u{1B}[K" : "\n").utf8))
        print(stream.text)
    }
}
