import Foundation
import STTTestFixtures
import Testing
import STTTensor
import STTWeightLoader
@testable import STTConformer

func loadEncoder(_ folder: String, threads: Int = 1) throws -> ConformerEncoder {
    try ConformerEncoder(graph: ExportedGraph(path: Fixtures.encoderFile(folder)), threads: threads)
}

@Suite struct EncoderParityTests {
    static let lookaheads = [("la13", 13), ("la6", 6), ("la1", 1), ("la0", 0)]

    /// Runs `calls` export-convention steps and compares outputs and all three caches with ONNX Runtime at every call.
    func checkSteps(encoder: ConformerEncoder, size: String, lookahead: Int, reference: String, calls: Int,
                    cacheCalls: Set<Int>? = nil) throws {
        let mel = try Fixtures.ref(size, "stream_mel")
        let outputs = try Fixtures.ref(size, "\(reference)_outputs")
        let lengths = try Fixtures.ref(size, "\(reference)_encoded_lengths")
        let hasCaches = Fixtures.exists(size, "\(reference)_cache_channel")
        let channel = hasCaches ? try Fixtures.ref(size, "\(reference)_cache_channel") : nil
        let time = hasCaches ? try Fixtures.ref(size, "\(reference)_cache_time") : nil
        let channelLength = hasCaches ? try Fixtures.ref(size, "\(reference)_cache_channel_len") : nil
        let schedule = StreamingSchedule(lookahead: lookahead, convention: .exportCompatible)
        let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        let d = encoder.dModel
        let buffer = Tensor(zeros: [schedule.maxWindow, 80])
        let out = Tensor(zeros: [schedule.framesPerStep, d])
        var outputDeviation = Deviation(), channelDeviation = Deviation(), timeDeviation = Deviation()
        #expect(outputs.shape[0] >= calls)
        var feed = MelFeed(mel, schedule: schedule)
        for k in 0..<calls {
            guard let w = feed.next(into: buffer.data) else { Issue.record("call \(k): the mel stream ends"); break }
            let n = encoder.step(state, mel: buffer.data, frames: w.length, drop: w.drop, output: out.data)
            #expect(Int64(n) == lengths.integers[k], "call \(k): frames")
            // ONNX outputs are [d, T]; ours [T, d].
            let tOut = outputs.shape[2]
            var callDeviation = Deviation()
            for t in 0..<n {
                for c in 0..<d {
                    let ref = outputs.floats[(k * d + c) * tOut + t]
                    callDeviation.worst = max(callDeviation.worst, abs(out.data[t * d + c] - ref))
                    callDeviation.scale = max(callDeviation.scale, abs(ref))
                }
            }
            #expect(callDeviation.worst <= callDeviation.tolerance, "call \(k) outputs: \(callDeviation)")
            outputDeviation.worst = max(outputDeviation.worst, callDeviation.relative)
            guard let channel, let time, let channelLength, cacheCalls?.contains(k) ?? true else { continue }
            let index = cacheCalls.map { $0.sorted().firstIndex(of: k)! } ?? k
            let caches = state.exportedCaches()
            var c1 = Deviation(), c2 = Deviation()
            c1.compare(caches.channel.data, channel.floats, offset: index * caches.channel.count, count: caches.channel.count)
            c2.compare(caches.time.data, time.floats, offset: index * caches.time.count, count: caches.time.count)
            #expect(c1.worst <= c1.tolerance, "call \(k) cache_last_channel: \(c1)")
            #expect(c2.worst <= c2.tolerance, "call \(k) cache_last_time: \(c2)")
            #expect(Int64(caches.length) == channelLength.integers[index], "call \(k) cache_last_channel_len")
            channelDeviation.worst = max(channelDeviation.worst, c1.relative)
            timeDeviation.worst = max(timeDeviation.worst, c2.relative)
        }
        print("\(size) \(reference) at [70,\(lookahead)], \(calls) calls: worst scaled |Δ| outputs \(outputDeviation.worst), "
              + "cache_last_channel \(channelDeviation.worst), cache_last_time \(timeDeviation.worst)")
    }

    @Test(arguments: lookaheads)
    func tinyStepsMatchONNXRuntimeAtEveryCall(folder: String, lookahead: Int) throws {
        try checkSteps(encoder: loadEncoder("tiny/\(folder)"), size: "tiny", lookahead: lookahead,
                       reference: "enc_\(folder)", calls: 40)
    }

    /// One set of weights, every look-ahead: the [70,13] export driven at the others matches the dedicated exports.
    @Test(arguments: lookaheads.dropFirst())
    func oneExportRunsEveryLookaheadLikeItsDedicatedExport(folder: String, lookahead: Int) throws {
        try checkSteps(encoder: loadEncoder("tiny/la13"), size: "tiny", lookahead: lookahead,
                       reference: "enc_\(folder)", calls: 40)
    }

    /// Products split across threads compute the same sums per output (each panel by one thread).
    @Test func stepsOnTwoThreadsMatchONNXRuntime() throws {
        try checkSteps(encoder: loadEncoder("tiny/la13", threads: 2), size: "tiny", lookahead: 13, reference: "enc_la13", calls: 40)
    }

    @Test(arguments: ["tiny/opset13", "tiny/opset16", "tiny/ctc"])
    func olderOpsetsAndTheCTCGraphCarryTheSameEncoder(folder: String) throws {
        try checkSteps(encoder: loadEncoder(folder), size: "tiny", lookahead: 13, reference: "enc_la13", calls: 40)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: Fixtures.folder("small/la13"))),
          arguments: [("la13", 13), ("la13export_at_la0", 0)])
    func smallTrainedStepsMatchONNXRuntime(reference: String, lookahead: Int) throws {
        let calls = Set([0, 9, 19, 29, 39])
        try checkSteps(encoder: loadEncoder("small/la13"), size: "small", lookahead: lookahead,
                       reference: "enc_\(reference)", calls: 40, cacheCalls: calls)
    }
}

/// Native streaming reproduces NeMo's offline encoder output, at every look-ahead, from one set of weights.
@Suite struct StreamingEqualsOfflineTests {
    func stream(_ encoder: ConformerEncoder, mel: NPYArray, lookahead: Int) -> [Float] {
        let schedule = StreamingSchedule(lookahead: lookahead, convention: .native)
        let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        let d = encoder.dModel
        let buffer = Tensor(zeros: [schedule.maxWindow, 80])
        let out = Tensor(zeros: [schedule.framesPerStep, d])
        var frames: [Float] = []
        var feed = MelFeed(mel, schedule: schedule)
        while let w = feed.next(into: buffer.data, finishing: .wholeSignal) {
            let n = encoder.step(state, mel: buffer.data, frames: w.length, drop: w.drop, output: out.data)
            frames += Array(UnsafeBufferPointer(start: out.data, count: n * d))
        }
        return frames
    }

    @Test(arguments: [1, 2, 3], [("la13", 13), ("la6", 6), ("la1", 1), ("la0", 0)])
    func nativeStreamingEqualsNeMoOffline(utterance: Int, lookahead: (String, Int)) throws {
        let (name, r) = lookahead
        #expect(Fixtures.exists("tiny", "offline_utt\(utterance)_\(name)"), "the tiny fixture's NeMo reference is missing")
        for size in ["tiny", "small"] where Fixtures.exists(size, "offline_utt\(utterance)_\(name)") {
            let encoder = try loadEncoder("\(size)/la13")
            let mel = try Fixtures.ref(size, "utt\(utterance)_mel")
            let offline = try Fixtures.ref(size, "offline_utt\(utterance)_\(name)")   // [d, T]
            let d = encoder.dModel, frames = offline.shape[1]
            let streamed = stream(encoder, mel: mel, lookahead: r)
            let ours = mel.floats.withUnsafeBufferPointer { m -> Tensor in
                // time-major copy for the offline pass
                let rows = Tensor(zeros: [mel.shape[1], 80])
                for t in 0..<mel.shape[1] { for f in 0..<80 { rows.data[t * 80 + f] = m[f * mel.shape[1] + t] } }
                return encoder.offline(mel: rows.data, frames: mel.shape[1], lookahead: r)
            }
            #expect(streamed.count == frames * d, "\(size) utt\(utterance) \(name): \(streamed.count / d) frames streamed, NeMo \(frames)")
            #expect(ours.shape[0] == frames)
            var s = Deviation(), o = Deviation()
            for t in 0..<min(frames, streamed.count / d) {
                for c in 0..<d {
                    let ref = offline.floats[c * frames + t]
                    s.worst = max(s.worst, abs(streamed[t * d + c] - ref)); s.scale = max(s.scale, abs(ref))
                    o.worst = max(o.worst, abs(ours.data[t * d + c] - ref)); o.scale = s.scale
                }
            }
            #expect(s.worst <= s.tolerance, "\(size) utt\(utterance) [70,\(r)] streaming vs NeMo offline: \(s)")
            #expect(o.worst <= o.tolerance, "\(size) utt\(utterance) [70,\(r)] our offline vs NeMo offline: \(o)")
            print("\(size) utt\(utterance) [70,\(r)] \(frames) frames: streaming vs NeMo offline \(s); offline \(o)")
        }
    }
}
