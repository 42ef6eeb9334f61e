import ArgumentParser
import Foundation
import STTWeightLoader
import STTKit
import STTConformer
import STTTensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measurements behind the benchmark scripts (scripts/bench drives these).",
        subcommands: [BenchLoad.self, BenchEncoder.self, BenchLong.self, BenchStreams.self])
}

/// A memory figure of this process from /proc/self/status ("VmHWM:" peak, "VmRSS:" current), in bytes.
func statusBytes(_ field: String) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
          let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else {
        return 0
    }
    return kb * 1024
}

func peakResidentBytes() -> Int { statusBytes("VmHWM:") }
func residentBytes() -> Int { statusBytes("VmRSS:") }

struct BenchLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load a model folder until the encoder is ready to run; print one JSON line: seconds, peak RSS, weight bytes.")

    @Argument(help: "A model folder.")
    var folder: String

    @Option(help: "How the encoder's weight matrices are stored: fp32, bf16 or int8.")
    var precision: WeightPrecision = .fp32

    func run() throws {
        let start = DispatchTime.now()
        let model: LoadedModel
        let encoder: ConformerEncoder
        do {
            model = try LoadedModel(folder: folder)
            encoder = try ConformerEncoder(graph: model.encoder, precision: precision)
        } catch { throw CommandFailure(error) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let weights = model.encoder.weightBytes + (model.decoder?.weightBytes ?? 0)
        let files = [model.folder.encoder, model.folder.decoderJoint].compactMap { $0 }
            .map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }.reduce(0, +)
        print("{\"load_s\": \(seconds), \"peak_rss_bytes\": \(peakResidentBytes()), \"weight_bytes\": \(weights), "
              + "\"file_bytes\": \(files), \"layers\": \(encoder.layers.count)}")
    }
}

struct BenchEncoder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encoder",
        abstract: "Time streaming encoder steps (export-convention windows) and print one JSON line.")

    @Argument(help: "A model folder or an encoder .onnx file.")
    var path: String

    @Option(help: "Look-ahead in encoder frames R of [70,R] (0, 1, 6 or 13).")
    var lookahead: Int = 13

    @Option(help: "Timed steps (after warm-up).")
    var calls: Int = 40

    @Option(help: "Threads for the weight products.")
    var threads: Int = 1

    @Option(help: "How the weight matrices are stored: fp32, bf16 or int8.")
    var precision: WeightPrecision = .fp32

    @Flag(help: "Also print where the time goes by operator, the weight bytes and product FLOPs per call, and this machine's measured read bandwidth.")
    var profile = false

    func run() throws {
        try requireOption("calls", calls, in: 1...100_000)
        try requireOption("threads", threads, in: 1...256)
        let encoderPath = try encoderFile(path)
        let encoder: ConformerEncoder
        do {
            encoder = try ConformerEncoder(graph: ExportedGraph(path: encoderPath), threads: threads, precision: precision)
        } catch { throw CommandFailure(error) }
        try requireOption("lookahead", lookahead, in: 0...encoder.maxLookahead)
        let schedule = StreamingSchedule(lookahead: lookahead, subsamplingFactor: encoder.description.subsamplingFactor,
                                         convention: .exportCompatible)
        let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        let features = encoder.description.melFeatures
        let window = Tensor(zeros: [schedule.maxWindow, features])
        fillLogMelRange(window)
        let out = Tensor(zeros: [schedule.framesPerStep, encoder.dModel])
        for _ in 0..<3 {
            encoder.step(state, mel: window.data, frames: schedule.maxWindow, drop: 2, output: out.data)
        }
        var times: [Double] = []
        for _ in 0..<calls {
            let start = DispatchTime.now().uptimeNanoseconds
            encoder.step(state, mel: window.data, frames: schedule.maxWindow, drop: 2, output: out.data)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        let median = times[times.count / 2]
        let audioMs = Double(schedule.hop * 10)
        var extra = ""
        if profile {
            // The same calls again, each operator charged as it runs.
            let sections = OperatorProfile()
            state.workspace.profile = sections
            for _ in 0..<calls {
                encoder.step(state, mel: window.data, frames: schedule.maxWindow, drop: 2, output: out.data)
            }
            state.workspace.profile = nil
            let shares = OperatorProfile.Section.allCases.map { section in
                "\"\(section.name)\": \(sections.seconds[section.rawValue] * 1000 / Double(calls))"
            }
            let matrices = encoder.stepMatrices
            let peak = Kernels.peakGFLOPS(precision)
            let bytes = matrices.map(\.byteCount).reduce(0, +)
            let flops = 2 * matrices.map { $0.rows * $0.columns }.reduce(0, +) * schedule.framesPerStep
            extra = ", \"profile_ms\": {\(shares.joined(separator: ", "))}, \"weight_bytes\": \(bytes), "
                + "\"product_flops\": \(flops), \"read_gb_per_s\": \(measuredReadBandwidth()), "
                + "\"peak_gflops\": \(peak.gflops), \"peak_instruction\": \"\(peak.instruction)\""
        }
        print("{\"lookahead\": \(lookahead), \"threads\": \(encoder.threads), \"precision\": \"\(precision.rawValue)\", \"median_ms\": \(median), \"min_ms\": \(times[0]), "
              + "\"rtf\": \(median / audioMs), \"audio_ms_per_call\": \(audioMs), \"kernels\": \"\(Kernels.variant)\"\(extra)}")
    }
}

extension WeightPrecision: ExpressibleByArgument {}

struct BenchLong: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "long",
        abstract: "Stream a long generated input (a recording repeated) through one stream; print RSS over time and the real-time factor.")

    @Option(help: "A model folder.")
    var model: String

    @Option(help: "Minutes of audio to stream.")
    var minutes: Int = 60

    @Option(help: "Recording to repeat (with 1 s of silence after each repetition).")
    var audio: String = "samples/green-apples.wav"

    func run() throws {
        try requireOption("minutes", minutes, in: 1...10_000)
        let speech: SpeechModel
        let wav: WAVFile
        do { speech = try SpeechModel(folder: model); wav = try WAVFile(path: audio) } catch { throw CommandFailure(error) }
        let clip = try Resampler(from: wav.sampleRate, to: 16_000)(wav.samples)
        let cycle = clip + [Float](repeating: 0, count: 16_000)
        let stream = try TranscriptionStream(model: speech)
        let total = minutes * 60 * 16_000
        let block = 1_600   // 100 ms, as a live source delivers
        var pushed = 0, position = 0, tokens = 0
        var rssAtOneMinute = 0
        let start = DispatchTime.now()
        var buffer = [Float](repeating: 0, count: block)
        while pushed < total {
            for i in 0..<block { buffer[i] = cycle[position]; position = (position + 1) % cycle.count }
            tokens += try stream.push(buffer).count
            stream.clearTokens()
            pushed += block
            if pushed % (60 * 16_000) == 0 {
                let minute = pushed / (60 * 16_000)
                if minute == 1 { rssAtOneMinute = residentBytes() }
                if minute == 1 || minute % 10 == 0 {
                    FileHandle.standardError.write(Data("minute \(minute): RSS \(residentBytes() / 1_000_000) MB, \(tokens) tokens\n".utf8))
                }
            }
        }
        tokens += stream.finish().count
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let rssEnd = residentBytes()
        let change = rssAtOneMinute > 0 ? Double(rssEnd - rssAtOneMinute) / Double(rssAtOneMinute) * 100 : 0
        print("{\"minutes\": \(minutes), \"tokens\": \(tokens), \"seconds\": \(elapsed), \"rtf\": \(elapsed / Double(minutes * 60)), "
              + "\"rss_1min_bytes\": \(rssAtOneMinute), \"rss_end_bytes\": \(rssEnd), \"rss_change_percent\": \(change), "
              + "\"peak_rss_bytes\": \(peakResidentBytes())}")
    }
}

struct BenchStreams: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streams",
        abstract: "Transcribe N streams of one model as one batch (StreamBatch); print one JSON line with the audio seconds processed per wall second.")

    @Argument(help: "A model folder.")
    var model: String

    @Option(help: "Streams decoded together.")
    var streams: Int = 1

    @Option(help: "Look-ahead in ms (one the model was trained with).")
    var lookahead: Int = 0

    @Option(help: "Seconds of audio per stream (a recording repeated).")
    var seconds: Int = 10

    @Option(help: "Threads for the weight products.")
    var threads: Int = 1

    @Option(help: "Recording to repeat.")
    var audio: String = "samples/green-apples.wav"

    @Option(help: "How the weight matrices are stored: fp32, bf16 or int8.")
    var precision: WeightPrecision = .fp32

    @Flag(help: "Time the batched encoder steps alone (EncoderBatch), without features and decoder.")
    var encoderOnly = false

    func run() throws {
        try requireOption("streams", streams, in: 1...1_024)
        try requireOption("seconds", seconds, in: 1...36_000)
        try requireOption("threads", threads, in: 1...256)
        try requireOption("lookahead", lookahead, in: 0...10_000)
        if encoderOnly { return try runEncoder() }
        let speech: SpeechModel
        let wav: WAVFile
        do {
            speech = try SpeechModel(folder: model, threads: threads, precision: SpeechModel.Precision(rawValue: precision.rawValue))
            wav = try WAVFile(path: audio)
        } catch { throw CommandFailure(error) }
        let clip = try Resampler(from: wav.sampleRate, to: 16_000)(wav.samples)
        let batch = StreamBatch(model: speech, maxStreams: streams)
        let options = TranscriptionStream.Options(lookahead: .milliseconds(lookahead))
        let opened = try (0..<streams).map { _ in try batch.makeStream(options: options) }
        let total = seconds * 16_000
        // Each stream starts at another place in the recording, so that their inputs differ.
        let blocks = opened.indices.map { i in
            (0..<seconds).map { k in (0..<16_000).map { clip[(i * 4_000 + k * 16_000 + $0) % clip.count] } }
        }
        var tokens = 0, steps = 0
        let start = DispatchTime.now()
        for k in 0..<(total / 16_000) {
            for (i, stream) in opened.enumerated() { try stream.push(blocks[i][k]) }
            steps += batch.run()
        }
        for stream in opened { tokens += stream.finish().count }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let audioSeconds = Double(streams * seconds)
        print("{\"streams\": \(streams), \"lookahead_ms\": \(lookahead), \"threads\": \(threads), "
              + "\"precision\": \"\(precision.rawValue)\", \"audio_seconds\": \(audioSeconds), \"wall_seconds\": \(elapsed), "
              + "\"audio_per_wall\": \(audioSeconds / elapsed), \"batched_steps\": \(steps), \"tokens\": \(tokens), "
              + "\"kernels\": \"\(Kernels.variant)\"}")
    }

    /// Batched encoder steps of `streams` states over speech-like windows: the median step, as audio per wall second.
    func runEncoder() throws {
        let encoder: ConformerEncoder
        do {
            encoder = try ConformerEncoder(graph: ExportedGraph(path: try encoderFile(model)), threads: threads,
                                           precision: precision)
        } catch { throw CommandFailure(error) }
        guard lookahead % 80 == 0 else { throw CommandFailure("look-ahead \(lookahead) ms is not a whole number of 80 ms frames") }
        try requireOption("lookahead", lookahead / 80, in: 0...encoder.maxLookahead)
        let schedule = StreamingSchedule(lookahead: lookahead / 80, subsamplingFactor: encoder.description.subsamplingFactor,
                                         convention: .exportCompatible)
        let batch = EncoderBatch(encoder: encoder, capacity: streams, maxFrames: schedule.framesPerStep)
        let states = (0..<streams).map { _ in
            EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        }
        let window = Tensor(zeros: [schedule.maxWindow, encoder.description.melFeatures])
        fillLogMelRange(window)
        var times: [Double] = []
        let steps = max(8, seconds * 1000 / (schedule.hop * 10))
        for k in 0..<(steps + 3) {
            let start = DispatchTime.now().uptimeNanoseconds
            for state in states { _ = encoder.add(state, mel: window.data, frames: schedule.maxWindow, drop: 2, to: batch) }
            encoder.step(batch)
            batch.clear()
            if k >= 3 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        }
        times.sort()
        let median = times[times.count / 2]
        let audio = Double(schedule.hop * 10) / 1000 * Double(streams)
        print("{\"streams\": \(streams), \"lookahead_ms\": \(lookahead), \"threads\": \(threads), "
              + "\"precision\": \"\(precision.rawValue)\", \"median_step_ms\": \(median * 1000), \"audio_per_wall\": \(audio / median), "
              + "\"kernels\": \"\(Kernels.variant)\"}")
    }
}
extension SpeechModel.Precision: ExpressibleByArgument {}

/// GB/s one thread reads from memory: the best of five sums over 512 MiB (far beyond any cache), in 16-float vectors.
func measuredReadBandwidth() -> Double {
    let count = 512 << 20 / MemoryLayout<SIMD16<Float>>.stride
    let buffer = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: count)
    defer { buffer.deallocate() }
    buffer.initialize(repeating: SIMD16(repeating: 1), count: count)
    var best = 0.0
    var sink = SIMD16<Float>()
    for _ in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        var a = SIMD16<Float>(), b = SIMD16<Float>()
        var i = 0
        while i + 1 < count {
            a += buffer[i]
            b += buffer[i + 1]
            i += 2
        }
        sink += a + b
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        best = max(best, Double(count * MemoryLayout<SIMD16<Float>>.stride) / seconds / 1e9)
    }
    if sink.sum() == -1 { FileHandle.standardError.write(Data("?".utf8)) }   // keeps the sums
    return best
}

/// Seeded values in the range of speech's log-mel (about −16 to 4): what the encoder benchmarks feed every call.
func fillLogMelRange(_ window: Tensor) {
    var seed: UInt64 = 0x2545F4914F6CDD1D
    for i in 0..<window.count {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        window.data[i] = Float(seed >> 40) / Float(1 << 24) * 20 - 16
    }
}
