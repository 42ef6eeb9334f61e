/// Mel frames in, one at a time as a frontend emits them; encoder windows out, each as soon as it is complete, cut
/// as `StreamingSchedule` says and ended the way NeMo's streaming buffer ends a signal. It keeps only the frames a
/// later window still needs, so an endless stream runs in bounded memory, and once its storage has grown to what the
/// caller's blocks need it does not allocate again.
package struct MelWindowBuffer: Sendable {
    /// How the last windows of a finished signal are cut.
    package enum End: Sendable {
        /// NeMo's cache-aware streaming: the signal's last mel frame is its zeroed padding column, so windows are cut
        /// one frame before the end; a final chunk that adds fewer than `factor` new frames is not run (the first
        /// step runs with a single one).
        case nemo
        /// Every frame is signal and every frame is encoded: windows run while they add a frame, cut at the end.
        /// Native streaming then covers all the frames the offline encoder produces.
        case wholeSignal
    }

    package let schedule: StreamingSchedule
    package let features: Int
    /// Frames appended so far.
    package private(set) var frames = 0
    /// Windows handed out so far; the next one is this step's.
    package private(set) var steps = 0
    /// How the signal was finished; nil while it is live.
    package private(set) var end: End?

    /// Frames [origin, frames), time-major.
    private var stored: [Float] = []
    private var origin = 0

    package init(schedule: StreamingSchedule, features: Int) {
        self.schedule = schedule
        self.features = features
        stored.reserveCapacity(4 * schedule.maxWindow * features)
    }

    /// Frames waiting for steps: 0 while the next window is incomplete, else its new frames and every frame after it.
    package var framesBeyondNextWindow: Int {
        let w = schedule.window(step: steps)
        return frames >= w.end ? frames - w.end + min(schedule.hop, w.length) : 0
    }

    /// Adds the next mel frame (`features` values). Ignored after `finish`.
    package mutating func append(_ frame: UnsafeBufferPointer<Float>) {
        precondition(frame.count == features, "a mel frame has \(features) values, not \(frame.count)")
        guard end == nil else { return }
        stored.append(contentsOf: frame)
        frames += 1
    }

    /// Marks the end of the signal: the remaining windows are cut by `rule`.
    package mutating func finish(_ rule: End = .nemo) {
        if end == nil { end = rule }
    }

    /// Copies the next window's rows [start, end) into `window` (at least `schedule.maxWindow` × `features` floats;
    /// rows before frame 0 are zero) and returns it; nil while it is incomplete, and once a finished signal is spent.
    package mutating func next(into window: UnsafeMutablePointer<Float>) -> StreamingSchedule.Window? {
        let w = schedule.window(step: steps)
        let last: Int
        if let end {
            // The first mel frame this step adds: NeMo's buffer index.
            let firstNew = steps == 0 ? 0 : w.end - schedule.hop
            guard firstNew < frames else { return nil }
            switch end {
            case .nemo:
                guard min(w.end, frames) - firstNew >= (steps == 0 ? 1 : schedule.factor) else { return nil }
                last = min(w.end, frames - 1)
            case .wholeSignal:
                last = min(w.end, frames)
            }
        } else {
            guard w.end <= frames else { return nil }
            last = w.end
        }
        guard last > w.start else { return nil }
        copy(from: w.start, to: last, into: window)
        steps += 1
        dropFramesBefore(schedule.window(step: steps).start)
        return StreamingSchedule.Window(start: w.start, end: last, drop: w.drop)
    }

    /// Back to an empty, live signal (storage kept).
    package mutating func reset() {
        stored.removeAll(keepingCapacity: true)
        frames = 0
        steps = 0
        origin = 0
        end = nil
    }

    private func copy(from start: Int, to last: Int, into window: UnsafeMutablePointer<Float>) {
        stored.withUnsafeBufferPointer { buffer in
            for t in start..<last {
                let row = window + (t - start) * features
                if t < 0 {
                    row.update(repeating: 0, count: features)
                } else if let base = buffer.baseAddress {
                    row.update(from: base + (t - origin) * features, count: features)
                }
            }
        }
    }

    /// Forgets frames no later window reads, in batches so that the shift costs little per frame.
    private mutating func dropFramesBefore(_ frame: Int) {
        let dead = min(frame, frames) - origin
        guard dead > schedule.maxWindow else { return }
        stored.removeFirst(dead * features)
        origin += dead
    }
}
