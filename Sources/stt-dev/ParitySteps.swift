import ArgumentParser
import STTConformer
import Foundation
import STTTensor
import STTWeightLoader

/// The engine's half of scripts/parity: cuts export-convention windows from a log-mel stream, runs them through the
/// engine with carried caches, and writes windows, outputs and caches as .npy for ONNX Runtime to be compared with.
struct ParitySteps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity-steps",
        abstract: "Run N export-convention encoder steps and write windows, outputs and caches as .npy (used by scripts/parity).")

    @Argument(help: "An encoder .onnx file (or a model folder).")
    var path: String

    @Option(help: "Look-ahead R in encoder frames; default: the one the export was made with.")
    var lookahead: Int?

    @Option(help: "Number of consecutive calls.")
    var calls: Int = 40

    @Option(help: "Log-mel stream [features, frames] as .npy; default: synthetic speech-like values.")
    var mel: String?

    @Option(help: "Output folder.")
    var out: String

    func run() throws {
        do {
            try execute()
        } catch let error as LoaderError {
            throw CommandFailure(error)
        }
    }

    private func execute() throws {
        try requireOption("calls", calls, in: 1...100_000)
        let encoderPath = try encoderFile(path)
        let graph = try ExportedGraph(path: encoderPath)
        if graph.kind == .encoderWithoutCache { throw LoaderError.noCacheSupport(encoderPath) }
        let encoder = try ConformerEncoder(graph: graph)
        let r = lookahead ?? graph.exportAttContext?[1] ?? 13
        guard r >= 0, r <= encoder.maxLookahead else {
            throw CommandFailure("look-ahead \(r) frames is outside 0…\(encoder.maxLookahead)")
        }
        let features = encoder.description.melFeatures
        let schedule = StreamingSchedule(lookahead: r, subsamplingFactor: encoder.description.subsamplingFactor,
                                         convention: .exportCompatible)
        let needed = schedule.hop * calls
        let stream: [Float]   // [needed, features], time-major
        if let mel {
            let array = try NPYArray(contentsOf: URL(fileURLWithPath: mel))
            guard array.shape.count == 2, array.shape[0] == features, !array.floats.isEmpty else {
                throw CommandFailure("\(mel): expected a float32 [\(features), frames] log-mel array, found \(array.shape)")
            }
            // Repeat the stream if it is shorter than the calls need.
            let frames = array.shape[1]
            stream = (0..<needed).flatMap { t in (0..<features).map { f in array.floats[f * frames + t % frames] } }
        } else {
            stream = Self.syntheticMel(features: features, frames: needed)
        }
        let outDir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)

        let d = encoder.dModel, w = schedule.maxWindow, n = schedule.framesPerStep
        let state = EncoderState(encoder: encoder, maxFrames: n, maxWindow: w)
        var buffer = MelWindowBuffer(schedule: schedule, features: features)
        let window = Tensor(zeros: [w, features])
        let output = Tensor(zeros: [n, d])
        var windows: [Float] = [], outputs: [Float] = [], lengths: [Int64] = []
        var channel: [Float] = [], time: [Float] = [], channelLength: [Int64] = []
        var fed = 0
        for _ in 0..<calls {
            // Frames arrive one at a time until the next window is complete (the last call's ends at `needed`).
            var next = buffer.next(into: window.data)
            while next == nil, fed < needed {
                stream.withUnsafeBufferPointer { all in
                    buffer.append(UnsafeBufferPointer(rebasing: all[(fed * features)..<((fed + 1) * features)]))
                }
                fed += 1
                next = buffer.next(into: window.data)
            }
            guard let span = next else { throw CommandFailure("the log-mel stream ended before call \(buffer.steps)") }
            // ONNX layout [features, W].
            for f in 0..<features { for t in 0..<w { windows.append(window.data[t * features + f]) } }
            let frames = encoder.step(state, mel: window.data, frames: span.length, drop: span.drop, output: output.data)
            for c in 0..<d { for t in 0..<n { outputs.append(t < frames ? output.data[t * d + c] : 0) } }
            lengths.append(Int64(frames))
            let caches = state.exportedCaches()
            channel += caches.channel.array
            time += caches.time.array
            channelLength.append(Int64(caches.length))
        }
        let e = encoder.description
        func save(_ name: String, _ array: NPYArray) throws { try array.write(to: outDir.appendingPathComponent(name)) }
        try save("windows.npy", NPYArray(floats: windows, shape: [calls, features, w]))
        try save("outputs.npy", NPYArray(floats: outputs, shape: [calls, d, n]))
        try save("encoded_lengths.npy", NPYArray(integers: lengths, shape: [calls]))
        try save("cache_last_channel_next.npy", NPYArray(floats: channel, shape: [calls, e.layers, encoder.leftContext, d]))
        try save("cache_last_time_next.npy", NPYArray(floats: time, shape: [calls, e.layers, d, e.convCacheSize]))
        try save("cache_last_channel_next_len.npy", NPYArray(integers: channelLength, shape: [calls]))
        let meta: [String: Any] = ["lookahead": r, "calls": calls, "window": w, "frames_per_call": n, "layers": e.layers,
                                   "d_model": d, "left_context": encoder.leftContext, "conv_cache": e.convCacheSize,
                                   "features": features, "export_att_context": graph.exportAttContext ?? [],
                                   "kind": "\(graph.kind)"]
        try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys])
            .write(to: outDir.appendingPathComponent("meta.json"))
    }

    /// Log-mel-like values, time-major: slowly varying formant-like bands over a noise floor, in the range real speech
    /// has.
    static func syntheticMel(features: Int, frames: Int) -> [Float] {
        var seed: UInt64 = 0x9E3779B97F4A7C15
        func noise() -> Float {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(seed >> 40) / Float(1 << 24) - 0.5
        }
        var values = [Float](repeating: 0, count: features * frames)
        for t in 0..<frames {
            let phase = Float(t) * 0.07
            for f in 0..<features {
                let band = sin(Float(f) * 0.21 + phase) + 0.6 * sin(Float(f) * 0.05 - phase * 1.7)
                values[t * features + f] = -9 + 4.5 * band + 2 * noise()
            }
        }
        return values
    }
}
