import STTMallocCounter
import STTTensor
import Testing
@testable import STTConformer

@Suite struct MelWindowBufferTests {
    static let features = 3
    static let schedules = [13, 6, 1, 0].flatMap { r in
        StreamingSchedule.Convention.allCases.map { StreamingSchedule(lookahead: r, convention: $0) }
    }

    /// Frame t holds t + 1 in every feature, so a copied row tells which frame it came from (0: a zero frame).
    static func frame(_ t: Int) -> [Float] { [Float](repeating: Float(t + 1), count: features) }

    /// The windows a signal of `frames` frames gets when the windows complete after `live` of them are taken as
    /// they complete and the signal then ends: the schedule's own windows up to there, then NeMo's end (the last
    /// frame is padding; a last chunk of fewer than `factor` new frames is not run, though step 0 runs with one).
    static func expected(_ s: StreamingSchedule, frames: Int, live: Int) -> [StreamingSchedule.Window] {
        var windows: [StreamingSchedule.Window] = []
        var k = 0
        while s.window(step: k).end <= live { windows.append(s.window(step: k)); k += 1 }
        while true {
            let w = s.window(step: k)
            let firstNew = k == 0 ? 0 : w.end - s.hop
            let newFrames = min(w.end, frames) - firstNew
            guard firstNew < frames, newFrames >= (k == 0 ? 1 : s.factor) else { break }
            let end = min(w.end, frames - 1)
            guard end > w.start else { break }
            windows.append(.init(start: w.start, end: end, drop: w.drop))
            k += 1
        }
        return windows
    }

    /// Feeds frames 0..<frames one at a time, taking every window as soon as it completes; the last `atFinish`
    /// frames arrive together with the end (as a frontend emits its last frames when its input ends).
    static func run(_ s: StreamingSchedule, frames: Int, atFinish: Int, rule: MelWindowBuffer.End = .nemo)
        -> [StreamingSchedule.Window] {
        var buffer = MelWindowBuffer(schedule: s, features: features)
        let window = Tensor(zeros: [s.maxWindow, features])
        var windows: [StreamingSchedule.Window] = []
        func drain() {
            while let w = buffer.next(into: window.data) {
                for t in 0..<w.length {
                    let source = w.start + t
                    let want = source < 0 ? 0 : Float(source + 1)
                    #expect((0..<features).allSatisfy { window.data[t * features + $0] == want },
                            "\(s) window \(w): row \(t) should be frame \(source)")
                }
                windows.append(w)
            }
        }
        for t in 0..<frames {
            frame(t).withUnsafeBufferPointer { buffer.append($0) }
            if t < frames - atFinish { drain() }
        }
        buffer.finish(rule)
        drain()
        #expect(buffer.next(into: window.data) == nil, "a spent signal stays spent")
        return windows
    }

    @Test(arguments: [1, 8, 9, 17, 100, 121, 1000])
    func framesFedOneByOneGiveTheScheduleWindowsAndNeMosEnd(frames: Int) {
        for s in Self.schedules {
            #expect(Self.run(s, frames: frames, atFinish: 0) == Self.expected(s, frames: frames, live: frames),
                    "\(s) \(frames) frames")
            #expect(Self.run(s, frames: frames, atFinish: 1) == Self.expected(s, frames: frames, live: frames - 1),
                    "\(s) \(frames) frames, the last with the end")
        }
    }

    /// A few ends worked out by hand from NeMo's rule.
    @Test func endsWorkedOutByHand() {
        func s(_ r: Int, _ c: StreamingSchedule.Convention) -> StreamingSchedule { .init(lookahead: r, convention: c) }
        typealias W = StreamingSchedule.Window
        // 121 frames at [70,13], export: the first window whole, then 8 new frames + padding: cut to 120.
        #expect(Self.run(s(13, .exportCompatible), frames: 121, atFinish: 1)
                == [W(start: -9, end: 112, drop: 2), W(start: 103, end: 120, drop: 2)])
        // 100 frames at [70,13], native: the first chunk is incomplete, so it runs cut to 99.
        #expect(Self.run(s(13, .native), frames: 100, atFinish: 1) == [W(start: 0, end: 99, drop: 0)])
        // 17 frames at [70,0], export: two whole windows; the third would add 1 new frame (< 8): not run.
        #expect(Self.run(s(0, .exportCompatible), frames: 17, atFinish: 1)
                == [W(start: -9, end: 8, drop: 2), W(start: -1, end: 16, drop: 2)])
        // One frame, export: step 0 runs on its leading zero frames alone.
        #expect(Self.run(s(0, .exportCompatible), frames: 1, atFinish: 1) == [W(start: -9, end: 0, drop: 2)])
        // One frame, native: that frame is the padding, nothing to run.
        #expect(Self.run(s(0, .native), frames: 1, atFinish: 1) == [])
    }

    /// `.wholeSignal` encodes every frame: native windows then tile the offline encoder's frames.
    @Test(arguments: [1, 9, 100, 1000])
    func wholeSignalRunsEveryChunkToTheLastFrame(frames: Int) {
        for r in [13, 6, 1, 0] {
            let s = StreamingSchedule(lookahead: r, convention: .native)
            let windows = Self.run(s, frames: frames, atFinish: 0, rule: .wholeSignal)
            #expect(windows.last?.end == frames, "[70,\(r)] \(frames) frames: \(windows.last.map { "\($0)" } ?? "none")")
            #expect(windows.enumerated().allSatisfy { k, w in w == s.window(step: k) || w.end == frames })
        }
    }

    /// Storage is reserved up front and dead frames are dropped: a long stream fed frame by frame never allocates
    /// after its first windows.
    @Test func anEndlessStreamRunsInBoundedMemoryWithoutAllocating() {
        for s in Self.schedules {
            var buffer = MelWindowBuffer(schedule: s, features: Self.features)
            let window = Tensor(zeros: [s.maxWindow, Self.features])
            let frame = Self.frame(0)
            var allocations = 0, windows = 0
            for t in 0..<20_000 {
                if t == 4 * s.maxWindow { malloc_counter_start() }
                frame.withUnsafeBufferPointer { buffer.append($0) }
                while buffer.next(into: window.data) != nil { windows += 1 }
            }
            allocations = malloc_counter_stop()
            #expect(allocations == 0, "\(s): \(allocations) allocations")
            #expect(windows == buffer.steps && windows >= 20_000 / s.hop - 2)
        }
    }

    @Test func resetStartsASignalOver() {
        let s = StreamingSchedule(lookahead: 1, convention: .exportCompatible)
        var buffer = MelWindowBuffer(schedule: s, features: Self.features)
        let window = Tensor(zeros: [s.maxWindow, Self.features])
        for t in 0..<50 { Self.frame(t).withUnsafeBufferPointer { buffer.append($0) } }
        buffer.finish()
        while buffer.next(into: window.data) != nil {}
        buffer.reset()
        #expect(buffer.frames == 0 && buffer.steps == 0 && buffer.end == nil)
        for t in 0..<16 { Self.frame(t).withUnsafeBufferPointer { buffer.append($0) } }
        #expect(buffer.next(into: window.data) == s.window(step: 0))
        #expect(window.data[9 * Self.features] == 1)
    }
}
