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
extension SpeechModel.Precision: ExpressibleByArgument {}

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

    @Option(help: "Encoder weights: fp32 (exact); bf16 (16 bits: half the bytes per step, the text may differ slightly); int8 (8 bits with a scale per column, rows rounded to 16 bits per step: a quarter of the bytes; sherpa-onnx's *.int8.onnx where the folder has them, else the fp32 files quantized at load). Default: fp32.")
    var precision: SpeechModel.Precision?

    func load() throws -> (SpeechModel, TranscriptionStream.Options) {
        let speech: SpeechModel
        do {
            speech = try SpeechModel(folder: model, threads: threads, precision: precision)
        } catch { throw CommandFailure(error) }
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
        abstract: "Transcribe audio files (WAV of any PCM/float format, channel count and rate; '-' for stdin: a WAV stream or raw s16le 16 kHz).",
        discussion: """
            One input prints to stdout. Several inputs print text ("FILE: text" lines) or json (one object per line)
            to stdout; subtitles of several inputs, or several formats at once, need --output-dir, which writes
            DIR/<input name without extension>.<txt|json|srt|vtt> for every input and format.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, parsing: .singleValue,
            help: "Output: text, json (text, tokens and words with times), srt or vtt. Repeat for several formats (with --output-dir).")
    var format: [OutputFormat] = []

    @Option(help: "Write one file per input and format into this folder instead of stdout.")
    var outputDir: String?

    @Flag(help: "Add processing time and real-time factor to json output (left out by default so outputs compare cleanly).")
    var timing = false

    @Flag(help: "Report progress on stderr as lines (\"progress FILE PERCENT\"), also when stderr is not a terminal.")
    var progress = false

    @Option(help: "Files decoded at once (1-64): their encoder steps run as one batch, one pass over the weights for all of them. Output is the same as with 1, in input order.")
    var parallel: Int = 1

    @Argument(help: "Audio files ('-' reads stdin).")
    var files: [String]

    var formats: [OutputFormat] { format.isEmpty ? [.text] : Array(NSOrderedSet(array: format).compactMap { $0 as? OutputFormat }) }

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one audio file (or '-' for stdin)") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("stdin ('-') can be read only once") }
        if !(1...64).contains(parallel) { throw ValidationError("--parallel takes 1 to 64 files at once") }
        if outputDir == nil {
            if formats.count > 1 {
                throw ValidationError("several formats at once need --output-dir DIR (one file per input and format)")
            }
            if files.count > 1, let subtitles = formats.first(where: { $0 == .srt || $0 == .vtt }) {
                throw ValidationError("subtitles of several inputs need --output-dir DIR (one .\(subtitles.rawValue) file per input)")
            }
        } else {
            var seen: [String: String] = [:]
            for file in files {
                let stem = Self.stem(file)
                if let other = seen[stem] {
                    throw ValidationError("inputs \(other) and \(file) would both write \(stem).* in the output folder")
                }
                seen[stem] = file
            }
        }
    }

    /// The input's name without folder and extension ("stdin" for '-').
    static func stem(_ file: String) -> String {
        file == "-" ? "stdin" : ((file as NSString).lastPathComponent as NSString).deletingPathExtension
    }

    func run() throws {
        let (model, options) = try modelOptions.load()
        if let outputDir {
            do {
                try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
            } catch {
                throw CommandFailure("cannot create the output folder \(outputDir): \(error.localizedDescription)")
            }
        }
        // Up to `parallel` files are open at once; each round reads a second of every open file, then runs the steps
        // that completed as batches. Results are written in input order as soon as those before them are.
        let batch = StreamBatch(model: model, maxStreams: parallel)
        var queue = files.indices.makeIterator()
        var open: [Job] = []
        var finished: [Int: Result<[String], CommandFailure>] = [:]
        var written = 0
        var failed = false
        while true {
            while open.count < parallel, let index = queue.next() {
                do {
                    open.append(try Job(index: index, file: files[index], batch: batch, options: options,
                                        progress: progress, bar: parallel == 1))
                } catch {
                    finished[index] = .failure(CommandFailure(wrapping: error))
                }
            }
            if open.isEmpty && finished.isEmpty { break }
            for job in open {
                do {
                    if try job.readBlock() { finished[job.index] = .success(try write(job)) }
                } catch {
                    finished[job.index] = .failure(CommandFailure(wrapping: error))
                }
            }
            open.removeAll { finished[$0.index] != nil }
            batch.run()
            while let result = finished.removeValue(forKey: written) {
                switch result {
                case .success(let lines):
                    for line in lines { print(line) }
                case .failure(let error):
                    FileHandle.standardError.write(Data("stt: error: \(error.message)\n".utf8))
                    failed = true
                }
                written += 1
            }
        }
        if failed { throw ExitCode(1) }
    }

    /// One input being transcribed.
    final class Job {
        let index: Int
        let file: String
        let source: AudioSource
        let stream: TranscriptionStream
        let report: Progress
        let start = DispatchTime.now()
        var block: [Float] = []
        var frames = 0

        init(index: Int, file: String, batch: StreamBatch, options: TranscriptionStream.Options, progress: Bool,
             bar: Bool) throws {
            self.index = index
            self.file = file
            source = try AudioSource(file)
            stream = try batch.makeStream(options: options)
            report = Progress(file: file, total: source.frameCount, lines: progress, bar: bar)
        }

        /// Pushes the next second of audio (a file of any length transcribes in the memory of one block and the
        /// transcript); at the end, finishes the stream and returns true.
        func readBlock() throws -> Bool {
            if try source.read(maxFrames: source.sampleRate, into: &block) > 0 {
                try stream.push(block, sampleRate: source.sampleRate)
                frames += block.count
                report.update(frames)
                return false
            }
            guard frames > 0 else { throw CommandFailure("\(source.name): no audio samples") }
            stream.finish()
            report.done()
            return true
        }

        var seconds: Double { Double(frames) / Double(source.sampleRate) }
        var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9 }
    }

    /// Renders a finished job in every format: writes its files in the output folder, or returns the lines for stdout.
    private func write(_ job: Job) throws(CommandFailure) -> [String] {
        var lines: [String] = []
        let transcript = job.stream.transcript
        for format in formats {
            let text = render(format, file: job.file, transcript: transcript, seconds: job.seconds,
                              elapsed: job.elapsed, stream: job.stream)
            if let outputDir {
                let path = (outputDir as NSString).appendingPathComponent("\(Self.stem(job.file)).\(format.fileExtension)")
                do {
                    try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
                } catch {
                    throw CommandFailure("cannot write \(path): \(error.localizedDescription)")
                }
            } else {
                lines.append(text)
            }
        }
        return lines
    }

    private func render(_ format: OutputFormat, file: String, transcript: Transcript, seconds: Double, elapsed: Double,
                        stream: TranscriptionStream) -> String {
        switch format {
        case .text:
            return files.count > 1 && outputDir == nil ? "\(file): \(transcript.text)" : transcript.text
        case .json:
            var object: [String: Any] = [
                "file": file, "text": transcript.text, "audio_seconds": seconds,
                "lookahead_ms": stream.lookahead.milliseconds,
                "mode": stream.convention == .native ? "native" : "export", "decoder": stream.decoder.rawValue,
                "tokens": JSONOutput.tokens(transcript.tokens),
                "words": JSONOutput.words(transcript.words),
            ]
            if timing {
                object["processing_seconds"] = elapsed
                object["real_time_factor"] = seconds > 0 ? elapsed / seconds : 0
            }
            return JSONOutput.line(object)
        case .srt, .vtt:
            return Subtitles.render(transcript.segments, duration: seconds, vtt: format == .vtt)
        }
    }
}

extension OutputFormat {
    var fileExtension: String { self == .text ? "txt" : rawValue }
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

/// Progress on stderr: a bar for long files when stderr is a terminal, or with `lines` a "progress FILE PERCENT" line
/// at every 5 % for callers that read it.
final class Progress {
    let file: String
    let total: Int
    let bar: Bool
    let lines: Bool
    private var reported = -1
    /// `bar`: whether a bar may be drawn (one file at a time).
    init(file: String, total: Int?, lines: Bool, bar: Bool = true) {
        self.file = file
        self.total = total ?? 0
        self.lines = lines
        self.bar = bar && !lines && isatty(2) == 1 && self.total > 30 * 16_000
    }
    func update(_ done: Int) {
        guard bar || lines else { return }
        // A stream of unknown length reports seconds instead of a share.
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 0
        if lines {
            let step = total > 0 ? Int(fraction * 20) : done / (16_000 * 60)
            guard step > reported else { return }
            reported = step
            let value = total > 0 ? String(format: "%.0f%%", fraction * 100) : "\(step) min"
            FileHandle.standardError.write(Data("progress \(file) \(value)\n".utf8))
            return
        }
        let width = 30, filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        FileHandle.standardError.write(Data(String(format: "\r%@ %@ %3.0f%%", (file as NSString).lastPathComponent, bar, fraction * 100).utf8))
    }
    func done() {
        if bar { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        if lines && reported < 20 { FileHandle.standardError.write(Data("progress \(file) 100%\n".utf8)) }
    }
}

/// SRT and WebVTT from a transcript's segments.
enum Subtitles {
    /// Cues of `cues`, none ending after `duration` seconds.
    static func render(_ cues: [Segment], duration: Double, vtt: Bool) -> String {
        func stamp(_ t: Double) -> String {
            let ms = Int((t * 1000).rounded())
            return String(format: "%02d:%02d:%02d%@%03d", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, vtt ? "." : ",", ms % 1000)
        }
        var out = vtt ? "WEBVTT\n\n" : ""
        for (i, cue) in cues.enumerated() {
            if !vtt { out += "\(i + 1)\n" }
            let end = min(cue.end, duration), start = min(cue.start, end)
            out += "\(stamp(start)) --> \(stamp(end))\n\(cue.text)\n\n"
        }
        return out.trimmingCharacters(in: .newlines)
    }
}
