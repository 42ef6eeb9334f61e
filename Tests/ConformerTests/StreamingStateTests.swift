import Foundation
import STTMallocCounter
import STTTestFixtures
import Testing
import STTTensor
@testable import STTConformer

@Suite struct StreamingStateTests {
    /// Buffers are sized when the stream opens: after its first step a stream does not touch the heap, on one
    /// thread or with its products split across the model's pool.
    @Test(.enabled(if: malloc_counter_available() != 0, "this build cannot count heap allocations"),
          arguments: [13, 6, 1, 0], [1, 2])
    func stepsAfterTheFirstMakeNoHeapAllocation(lookahead: Int, threads: Int) throws {
        let encoder = try loadEncoder("tiny/la13", threads: threads)
        let mel = try Fixtures.ref("tiny", "stream_mel")
        for convention in StreamingSchedule.Convention.allCases {
            let schedule = StreamingSchedule(lookahead: lookahead, convention: convention)
            let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
            let buffer = Tensor(zeros: [schedule.maxWindow, 80])
            let out = Tensor(zeros: [schedule.framesPerStep, encoder.dModel])
            var allocations: [Int] = []
            var feed = MelFeed(mel, schedule: schedule)
            for _ in 0..<12 {
                guard let w = feed.next(into: buffer.data) else { Issue.record("the mel stream ends"); break }
                malloc_counter_start()
                encoder.step(state, mel: buffer.data, frames: w.length, drop: w.drop, output: out.data)
                allocations.append(malloc_counter_stop())
            }
            #expect(allocations.dropFirst().allSatisfy { $0 == 0 },
                    "\(convention) [70,\(lookahead)] \(threads) threads, allocations per step: \(allocations)")
        }
    }

    /// The model's threads split every weight product by panels, so a stream's outputs and caches are those of one
    /// thread, bit for bit.
    @Test(arguments: ["tiny", "small"])
    func twoThreadsStepLikeOne(size: String) throws {
        let one = try loadEncoder("\(size)/la13"), two = try loadEncoder("\(size)/la13", threads: 2)
        #expect(two.threads == 2)
        let mel = try Fixtures.ref(size, "stream_mel")
        let schedule = StreamingSchedule(lookahead: 13, convention: .exportCompatible)
        let states = [one, two].map {
            EncoderState(encoder: $0, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        }
        let buffer = Tensor(zeros: [schedule.maxWindow, 80])
        let outputs = [one, two].map { Tensor(zeros: [schedule.framesPerStep, $0.dModel]) }
        var feed = MelFeed(mel, schedule: schedule)
        for k in 0..<12 {
            guard let w = feed.next(into: buffer.data) else { Issue.record("the mel stream ends"); break }
            for (encoder, (state, out)) in zip([one, two], zip(states, outputs)) {
                encoder.step(state, mel: buffer.data, frames: w.length, drop: w.drop, output: out.data)
            }
            #expect(outputs[0].array == outputs[1].array, "\(size) step \(k) outputs")
        }
        let caches = states.map { $0.exportedCaches() }
        #expect(caches[0].channel.array == caches[1].channel.array && caches[0].time.array == caches[1].time.array)
    }

    /// The counter itself sees allocations (so the test above can fail).
    @Test(.enabled(if: malloc_counter_available() != 0, "this build cannot count heap allocations"))
    func counterSeesAnAllocation() {
        malloc_counter_start()
        let array = [Int](repeating: 1, count: Int.random(in: 100...200))
        let n = malloc_counter_stop()
        #expect(n >= 1 && array.count >= 100)
    }

    @Test func resetReturnsAStreamToItsFirstStep() throws {
        let encoder = try loadEncoder("tiny/la13")
        let mel = try Fixtures.ref("tiny", "stream_mel")
        let schedule = StreamingSchedule(lookahead: 6, convention: .native)
        let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        let buffer = Tensor(zeros: [schedule.maxWindow, 80])
        let first = Tensor(zeros: [schedule.framesPerStep, encoder.dModel])
        let again = Tensor(zeros: [schedule.framesPerStep, encoder.dModel])
        var feed = MelFeed(mel, schedule: schedule)
        for k in 0..<5 {
            let next = feed.next(into: buffer.data)
            let w = try #require(next)
            encoder.step(state, mel: buffer.data, frames: w.length, drop: w.drop, output: k == 0 ? first.data : again.data)
        }
        state.reset()
        var fromTheStart = MelFeed(mel, schedule: schedule)
        let next = fromTheStart.next(into: buffer.data)
        let w = try #require(next)
        encoder.step(state, mel: buffer.data, frames: w.length, drop: w.drop, output: again.data)
        #expect(first.array == again.array)
        #expect(state.cacheLength == schedule.framesPerStep)
    }

    @Test func nativeScheduleCoversEveryFrameOnceAndExportScheduleMatchesTheExportRule() {
        for r in [0, 1, 6, 13] {
            let native = StreamingSchedule(lookahead: r, convention: .native)
            #expect(native.window(step: 0) == .init(start: 0, end: 1 + 8 * r, drop: 0))
            for k in 1..<6 {
                let w = native.window(step: k)
                let firstFrame = (w.start + 8 * w.drop) / 8
                #expect(firstFrame == k * (r + 1), "[70,\(r)] step \(k) starts at frame \(firstFrame)")
                #expect(w.start % 8 == 0 && w.start >= 0)
            }
            let export = StreamingSchedule(lookahead: r, convention: .exportCompatible)
            for k in 0..<4 {
                #expect(export.window(step: k) == .init(start: 8 * (r + 1) * k - 9, end: 8 * (r + 1) * (k + 1), drop: 2))
            }
        }
    }
}
