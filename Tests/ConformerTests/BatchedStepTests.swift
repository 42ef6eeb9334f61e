import Foundation
import STTMallocCounter
import STTTestFixtures
import Testing
import STTTensor
import STTWeightLoader
@testable import STTConformer

@Suite struct BatchedStepTests {
    /// Streams of different recordings and look-aheads, joining at different steps and ending at different times:
    /// every batched step gives each stream the outputs of its own unbatched step (within 1e-5 of the largest output),
    /// and the caches stay equal too.
    @Test(arguments: [[13], [0], [1], [6], [13, 0, 6, 1]])
    func batchedStepsEqualSeparateSteps(lookaheads: [Int]) throws {
        let encoder = try loadEncoder("small/la13")
        let mels = try ["utt1", "utt2", "utt3", "stream"].map { try Fixtures.ref("small", "\($0)_mel") }
        let count = 6
        let schedules = (0..<count).map {
            StreamingSchedule(lookahead: lookaheads[$0 % lookaheads.count], convention: .native)
        }
        let maxFrames = schedules.map(\.framesPerStep).max() ?? 1
        let batch = EncoderBatch(encoder: encoder, capacity: count, maxFrames: maxFrames)
        func state(_ s: StreamingSchedule) -> EncoderState {
            EncoderState(encoder: encoder, maxFrames: s.framesPerStep, maxWindow: s.maxWindow)
        }
        let alone = schedules.map(state), batched = schedules.map(state)
        var feeds = (0..<count).map { MelFeed(mels[$0 % mels.count], schedule: schedules[$0]) }
        let windows = schedules.map { Tensor(zeros: [$0.maxWindow, 80]) }
        let outputs = schedules.map { Tensor(zeros: [$0.framesPerStep, encoder.dModel]) }
        var worst: Float = 0, batchedSteps = 0, widest = 0
        for step in 0..<400 {
            batch.clear()
            var active: [(stream: Int, rows: Int)] = []
            for i in 0..<count where step >= 3 * i {
                guard let w = feeds[i].next(into: windows[i].data, finishing: .nemo) else { continue }
                let n = encoder.step(alone[i], mel: windows[i].data, frames: w.length, drop: w.drop,
                                     output: outputs[i].data)
                let added = encoder.add(batched[i], mel: windows[i].data, frames: w.length, drop: w.drop, to: batch)
                #expect(added == n)
                active.append((i, n))
            }
            if active.isEmpty && step > 3 * count { break }
            encoder.step(batch)
            batchedSteps += 1
            widest = max(widest, active.count)
            for (k, (i, n)) in active.enumerated() {
                let (frames, rows) = batch.output(k)
                #expect(rows == n)
                let reference = outputs[i].data
                var scale: Float = 0, deviation: Float = 0
                for j in 0..<(n * encoder.dModel) {
                    scale = max(scale, abs(reference[j]))
                    deviation = max(deviation, abs(reference[j] - frames[j]))
                }
                worst = max(worst, deviation / max(scale, 1e-12))
            }
        }
        #expect(worst <= 1e-5, "largest scaled deviation \(worst)")
        #expect(widest >= 3 && batchedSteps > 10, "\(batchedSteps) steps, at most \(widest) streams at once")
        for (a, b) in zip(alone, batched) {
            let (ca, cb) = (a.exportedCaches(), b.exportedCaches())
            #expect(ca.length == cb.length)
            let channel = zip(ca.channel.array, cb.channel.array).map { abs($0 - $1) }.max() ?? 0
            #expect(channel <= 1e-4, "attention caches differ by \(channel)")
        }
    }

    /// A batch holds what it can: a stream whose steps are wider than the batch's, or one beyond its capacity, is
    /// refused without touching the stream.
    @Test func aBatchRefusesWhatDoesNotFit() throws {
        let encoder = try loadEncoder("small/la13")
        let narrow = StreamingSchedule(lookahead: 0, convention: .native)
        let wide = StreamingSchedule(lookahead: 13, convention: .native)
        let batch = EncoderBatch(encoder: encoder, capacity: 1, maxFrames: narrow.framesPerStep)
        let window = Tensor(zeros: [wide.maxWindow, 80])
        let wideState = EncoderState(encoder: encoder, maxFrames: wide.framesPerStep, maxWindow: wide.maxWindow)
        #expect(!batch.hasRoom(for: wideState))
        #expect(encoder.add(wideState, mel: window.data, frames: wide.maxWindow, drop: 0, to: batch) == nil)
        let states = (0..<2).map { _ in
            EncoderState(encoder: encoder, maxFrames: narrow.framesPerStep, maxWindow: narrow.maxWindow)
        }
        let w = narrow.window(step: 0)
        #expect(encoder.add(states[0], mel: window.data, frames: w.end - w.start, drop: 0, to: batch) != nil)
        #expect(encoder.add(states[1], mel: window.data, frames: w.end - w.start, drop: 0, to: batch) == nil)
        #expect(batch.count == 1)
    }

    /// After its first step a batch, like a stream, does not touch the heap, on one thread or two.
    @Test(.enabled(if: malloc_counter_available() != 0, "this build cannot count heap allocations"),
          arguments: [1, 2])
    func batchedStepsAfterTheFirstMakeNoHeapAllocation(threads: Int) throws {
        let encoder = try loadEncoder("tiny/la13", threads: threads)
        let mel = try Fixtures.ref("tiny", "stream_mel")
        let schedule = StreamingSchedule(lookahead: 1, convention: .native)
        let batch = EncoderBatch(encoder: encoder, capacity: 4, maxFrames: schedule.framesPerStep)
        let states = (0..<4).map { _ in
            EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        }
        let window = Tensor(zeros: [schedule.maxWindow, 80])
        var feed = MelFeed(mel, schedule: schedule)
        var allocations: [Int] = []
        for _ in 0..<10 {
            guard let w = feed.next(into: window.data) else { Issue.record("the mel stream ends"); break }
            malloc_counter_start()
            for state in states { _ = encoder.add(state, mel: window.data, frames: w.length, drop: w.drop, to: batch) }
            encoder.step(batch)
            batch.clear()
            allocations.append(malloc_counter_stop())
        }
        #expect(allocations.dropFirst().allSatisfy { $0 == 0 }, "allocations per batched step: \(allocations)")
    }
}

/// The encoder with int8 weights (per-column scales, rows rounded to 16 bits per step): close to float32 on the trained fixture,
/// and batched like any other.
@Suite struct Int8EncoderTests {
    @Test func int8StepsStayCloseToFP32() throws {
        let graph = try ExportedGraph(path: Fixtures.encoderFile("small/la13"))
        let fp32 = try ConformerEncoder(graph: graph), int8 = try ConformerEncoder(graph: graph, precision: .int8)
        let mel = try Fixtures.ref("small", "stream_mel")
        let schedule = StreamingSchedule(lookahead: 13, convention: .exportCompatible)
        let states = [fp32, int8].map {
            EncoderState(encoder: $0, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        }
        let window = Tensor(zeros: [schedule.maxWindow, 80])
        let outputs = [fp32, int8].map { Tensor(zeros: [schedule.framesPerStep, $0.dModel]) }
        var feed = MelFeed(mel, schedule: schedule)
        var worst: Float = 0, scale: Float = 0, calls = 0
        while let w = feed.next(into: window.data) {
            var rows = 0
            for (i, encoder) in [fp32, int8].enumerated() {
                rows = encoder.step(states[i], mel: window.data, frames: w.length, drop: w.drop, output: outputs[i].data)
            }
            for j in 0..<(rows * fp32.dModel) {
                worst = max(worst, abs(outputs[1].data[j] - outputs[0].data[j]))
                scale = max(scale, abs(outputs[0].data[j]))
            }
            calls += 1
        }
        print("int8 encoder against fp32 on small/la13 stream_mel: \(calls) calls, max |int8 - fp32| \(worst), "
              + "max |fp32| \(scale), scaled \(worst / scale)")
        #expect(calls > 5 && worst > 0 && worst / scale < 0.02, "scaled deviation \(worst / scale)")
        #expect(int8.stepMatrices.allSatisfy { $0.precision == .int8 })
        let bytes = (fp32.stepMatrices.map(\.byteCount).reduce(0, +), int8.stepMatrices.map(\.byteCount).reduce(0, +))
        #expect(Double(bytes.1) < 0.3 * Double(bytes.0), "int8 holds \(bytes.1) bytes against fp32's \(bytes.0)")
    }

    /// Rounding the rows uses the workspace's scratch: int8 steps after the first do not touch the heap either.
    @Test(.enabled(if: malloc_counter_available() != 0, "this build cannot count heap allocations"),
          arguments: [WeightPrecision.bf16, .int8])
    func stepsAfterTheFirstMakeNoHeapAllocation(precision: WeightPrecision) throws {
        let encoder = try ConformerEncoder(graph: ExportedGraph(path: Fixtures.encoderFile("tiny/la13")), threads: 2,
                                           precision: precision)
        let mel = try Fixtures.ref("tiny", "stream_mel")
        let schedule = StreamingSchedule(lookahead: 13, convention: .exportCompatible)
        let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        let window = Tensor(zeros: [schedule.maxWindow, 80]), out = Tensor(zeros: [schedule.framesPerStep, encoder.dModel])
        var feed = MelFeed(mel, schedule: schedule)
        var allocations: [Int] = []
        for _ in 0..<8 {
            guard let w = feed.next(into: window.data) else { break }
            malloc_counter_start()
            encoder.step(state, mel: window.data, frames: w.length, drop: w.drop, output: out.data)
            allocations.append(malloc_counter_stop())
        }
        #expect(allocations.count > 2 && allocations.dropFirst().allSatisfy { $0 == 0 }, "\(precision): \(allocations)")
    }
}
