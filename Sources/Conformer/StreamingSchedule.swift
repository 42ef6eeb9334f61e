/// Which mel frames each streaming step reads, and how many subsampled frames it discards.
///
/// The causal stride-2 stem makes a subsampled frame depend only on earlier mel frames, and a window's first frames
/// see its zero padding: with s ≥ 2 stages, local frames from 2 on are exact when the window starts on a multiple of
/// the subsampling factor f. So frames [t, t+n) come exactly from mel [f·t − 2f, f·(t+n−1)] with 2 frames dropped,
/// or from the utterance start (real padding) with t dropped when f·t < 2f.
package struct StreamingSchedule: Sendable, Equatable {
    package enum Convention: String, Sendable, CaseIterable {
        /// The first chunk is 1 + f·R frames with no drop; streaming output equals the offline encoder output.
        case native
        /// What an exported encoder computes: every window has the 9-frame overlap and drops 2 frames; the first
        /// window starts with 9 zero mel frames (log-mel 0.0).
        case exportCompatible
    }

    /// A window of mel frames [start, end); frames before 0 are zero frames (export convention only).
    package struct Window: Sendable, Equatable {
        package let start: Int
        package let end: Int
        package let drop: Int
        package var length: Int { end - start }
    }

    package let lookahead: Int
    package let factor: Int
    package let convention: Convention

    package init(lookahead: Int, subsamplingFactor: Int = 8, convention: Convention) {
        self.lookahead = lookahead
        self.factor = subsamplingFactor
        self.convention = convention
    }

    /// Encoder frames per step (R + 1).
    package var framesPerStep: Int { lookahead + 1 }
    /// Mel frames the window advances by per step.
    package var hop: Int { factor * framesPerStep }
    /// Subsampled frames a window with history drops.
    package static let dropped = 2
    /// Mel frames of history before a step's first frame: the export's 9-frame overlap (f + 1).
    package var overlap: Int { factor + 1 }
    /// The widest window: hop + overlap.
    package var maxWindow: Int { hop + overlap }

    /// The window of step `index` for a stream whose mel frames are all available. `MelWindowBuffer` hands these
    /// out of a live stream as they complete and cuts the last ones when the signal ends.
    package func window(step index: Int) -> Window {
        switch convention {
        case .exportCompatible:
            return Window(start: hop * index - overlap, end: hop * index + hop, drop: Self.dropped)
        case .native:
            let t = framesPerStep * index
            let start = max(0, factor * t - Self.dropped * factor)
            return Window(start: start, end: factor * (t + framesPerStep - 1) + 1, drop: (factor * t - start) / factor)
        }
    }
}
