import STTConformer
import STTTensor

/// A recorded log-mel array ([features, frames], as the references store it) fed to a `MelWindowBuffer` one frame
/// at a time, the way a live frontend feeds a stream.
package struct MelFeed {
    package private(set) var buffer: MelWindowBuffer
    package let frames: Int
    private let rows: [Float]   // time-major
    private var fed = 0

    package init(_ mel: NPYArray, schedule: StreamingSchedule) {
        let features = mel.shape[0]
        frames = mel.shape[1]
        var rows = [Float](repeating: 0, count: frames * features)
        for t in 0..<frames { for f in 0..<features { rows[t * features + f] = mel.floats[f * frames + t] } }
        self.rows = rows
        buffer = MelWindowBuffer(schedule: schedule, features: features)
    }

    /// The next window, appending frames until one is complete. At the end of the array the signal is finished by
    /// `end`, or, without one, windows stop there.
    package mutating func next(into window: UnsafeMutablePointer<Float>,
                               finishing end: MelWindowBuffer.End? = nil) -> StreamingSchedule.Window? {
        while true {
            if let w = buffer.next(into: window) { return w }
            if fed < frames {
                let features = buffer.features
                rows.withUnsafeBufferPointer { all in
                    buffer.append(UnsafeBufferPointer(rebasing: all[(fed * features)..<((fed + 1) * features)]))
                }
                fed += 1
            } else if let end, buffer.end == nil {
                buffer.finish(end)
            } else {
                return nil
            }
        }
    }
}
