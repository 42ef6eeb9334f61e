import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOWebSocket
import STTKit

/// The decoding side of one connection. The event loop queues audio and ends of audio; the worker pool runs them, one
/// job at a time per connection (so a connection's work stays in order), and hands the results back in order.
///
/// A job takes everything queued when it starts; when more arrived meanwhile it is submitted again behind the other
/// connections' jobs, so a connection with a backlog does not hold a worker while others wait.
final class SessionDecoder: @unchecked Sendable {
    enum Input {
        case audio([Float])
        /// `Done`: finish the stream, send its last result and `Done!`, then start a new stream on the same
        /// connection.
        case end
    }

    enum Output {
        /// A text message for the client.
        case message(String)
        /// The client's audio cannot be decoded: close the connection with this code and reason.
        case failure(WebSocketErrorCode, String)
        /// A stream finished (after its last result and `Done!`).
        case finished(seconds: Double, segments: Int)
    }

    /// What one job produced.
    struct Batch {
        var outputs: [Output]
    }

    private let pool: NIOThreadPool
    private let deliver: @Sendable (Batch) -> Void

    // Shared with the event loop, under `lock`.
    private let lock = NIOLock()
    private var inputs: [Input] = []
    private var queued = 0
    private var scheduled = false
    private var cancelled = false

    // Worker state: only jobs touch it, and jobs of one connection never overlap (the lock orders them).
    private let stream: TranscriptionStream
    /// Samples per push: about one encoder step, so endpoints are judged as often as the model advances.
    private let piece: Int
    private var segment = 0
    private var segmentStart = 0.0

    /// - Throws: ``TranscriptionError`` when the options do not fit the model.
    init(model: SpeechModel, options: TranscriptionStream.Options, pool: NIOThreadPool,
         deliver: @escaping @Sendable (Batch) -> Void) throws(TranscriptionError) {
        stream = try TranscriptionStream(model: model, options: options)
        piece = max(1, (stream.lookahead.milliseconds + model.frameMilliseconds) * 16)
        self.pool = pool
        self.deliver = deliver
    }

    /// Samples queued and not yet decoded.
    var queuedSamples: Int { lock.withLock { queued } }

    /// Queues input and returns the samples now queued.
    @discardableResult
    func enqueue(_ input: Input) -> Int {
        let (submit, total): (Bool, Int) = lock.withLock {
            guard !cancelled else { return (false, 0) }
            inputs.append(input)
            if case .audio(let samples) = input { queued += samples.count }
            let submit = !scheduled
            scheduled = true
            return (submit, queued)
        }
        if submit { schedule() }
        return total
    }

    /// Drops whatever is queued; a running job stops at its next piece (the closed connection ignores what it hands
    /// back).
    func cancel() {
        lock.withLock {
            cancelled = true
            inputs.removeAll()
            queued = 0
        }
    }

    private var isCancelled: Bool { lock.withLock { cancelled } }

    private func schedule() {
        pool.submit { [self] state in
            guard case .active = state else {
                lock.withLock { scheduled = false }
                return
            }
            run()
        }
    }

    private func run() {
        let batch: [Input]? = lock.withLock {
            guard !cancelled else {
                scheduled = false
                return nil
            }
            defer { inputs.removeAll(keepingCapacity: true) }
            return inputs
        }
        guard let batch else { return }
        var outputs: [Output] = []
        var consumed = 0
        loop: for input in batch {
            switch input {
            case .audio(let samples):
                consumed += samples.count
                if let failure = decode(samples, into: &outputs) {
                    outputs.append(failure)
                    cancel()
                    break loop
                }
            case .end:
                finish(into: &outputs)
            }
        }
        let again: Bool = lock.withLock {
            queued = max(0, queued - consumed)
            let again = !cancelled && !inputs.isEmpty
            if !again { scheduled = false }
            return again
        }
        if !outputs.isEmpty || !isCancelled {
            deliver(Batch(outputs: outputs))
        }
        if again { schedule() }
    }

    /// Pushes samples a piece at a time; returns a failure output when the audio cannot be decoded.
    private func decode(_ samples: [Float], into outputs: inout [Output]) -> Output? {
        var changed = false
        var failure: Output?
        samples.withUnsafeBufferPointer { buffer in
            var start = 0
            while start < buffer.count, failure == nil, !isCancelled {
                let end = min(buffer.count, start + piece)
                do throws(TranscriptionError) {
                    let tokens = try stream.push(UnsafeBufferPointer(rebasing: buffer[start..<end]))
                    if !tokens.isEmpty { changed = true }
                    if stream.isEndpoint {
                        endSegment(into: &outputs)
                        changed = false
                    }
                } catch {
                    failure = .failure(.dataInconsistentWithMessage, error.description)
                }
                start = end
            }
        }
        if failure == nil, changed {
            outputs.append(.message(result(final: false, eof: false)))
        }
        return failure
    }

    /// An endpoint: the segment's result with `is_final`, then the next segment starts where this one ended. As in
    /// sherpa-onnx, the segment number moves on only when the segment held something.
    private func endSegment(into outputs: inout [Output]) {
        outputs.append(.message(result(final: true, eof: false)))
        let utterance = stream.endUtterance()
        if !utterance.transcript.tokens.isEmpty { segment += 1 }
        segmentStart = utterance.end
    }

    private func finish(into outputs: inout [Output]) {
        stream.finish()
        outputs.append(.message(result(final: true, eof: true)))
        outputs.append(.message("Done!"))
        outputs.append(.finished(seconds: stream.duration, segments: segment + (stream.tokens.isEmpty ? 0 : 1)))
        stream.reset()
        segment = 0
        segmentStart = 0
    }

    private func result(final: Bool, eof: Bool) -> String {
        RecognitionResult(tokens: stream.tokens, segment: segment, segmentStart: segmentStart, isFinal: final,
                          isEOF: eof).json
    }
}
