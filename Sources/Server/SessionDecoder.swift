import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOWebSocket
import STTKit

/// The decoding side of one connection. The event loop queues audio and ends of audio; the worker pool runs them, one
/// job at a time per connection (so a connection's work stays in order): a job pushes the audio into the connection's
/// stream, which only computes features, and wakes the connection's `BatchStepper`. The stepper runs the encoder for
/// every ready connection of its batch at once; after each step that advanced this connection's stream it calls
/// `stepped()`, which judges endpoints and hands the results back, as a separate stream's caller would after its
/// push.
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

    /// What one job or step produced (possibly nothing: the connection's backlog is looked at again on delivery).
    struct Batch {
        var outputs: [Output]
    }

    private let pool: NIOThreadPool
    private let stepper: BatchStepper
    private let deliver: @Sendable (Batch) -> Void

    // Shared with the event loop, under `lock`.
    private let lock = NIOLock()
    private var inputs: [Input] = []
    private var queued = 0
    /// Samples pushed into the stream whose steps have not run (as of the last push or step).
    private var waiting = 0
    private var scheduled = false
    private var cancelled = false

    // Results: jobs and the stepper's `stepped()` both change these and deliver, under `work`, so that everything a
    // connection is sent stays in order.
    private let work = NIOLock()
    private let stream: TranscriptionStream
    private var segment = 0
    private var segmentStart = 0.0
    /// Tokens of the current segment in the last result sent.
    private var sent = 0

    /// - Throws: ``TranscriptionError`` when the options do not fit the model.
    init(options: TranscriptionStream.Options, stepper: BatchStepper, pool: NIOThreadPool,
         deliver: @escaping @Sendable (Batch) -> Void) throws(TranscriptionError) {
        let relay = StepRelay()
        stream = try stepper.batch.makeStream(options: options, afterStep: { _ in relay.decoder?.stepped() })
        self.stepper = stepper
        self.pool = pool
        self.deliver = deliver
        relay.decoder = self
    }

    /// Samples queued or pushed and not yet decoded.
    var queuedSamples: Int { lock.withLock { queued + waiting } }

    /// Queues input and returns the samples now waiting for decoding.
    @discardableResult
    func enqueue(_ input: Input) -> Int {
        let (submit, total): (Bool, Int) = lock.withLock {
            guard !cancelled else { return (false, 0) }
            inputs.append(input)
            if case .audio(let samples) = input { queued += samples.count }
            let submit = !scheduled
            scheduled = true
            return (submit, queued + waiting)
        }
        if submit { schedule() }
        return total
    }

    /// Drops whatever is queued; a running job stops at its next input (the closed connection ignores what it hands
    /// back), and steps no longer report to it.
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
        loop: for input in batch {
            guard !isCancelled else { break }
            switch input {
            case .audio(let samples):
                do throws(TranscriptionError) {
                    try stream.push(samples)
                } catch {
                    cancel()
                    work.withLock { deliver(Batch(outputs: [.failure(.dataInconsistentWithMessage, error.description)])) }
                    break loop
                }
                // From now on these samples count as the stream's waiting audio, not as queued input: a job's audio
                // is never counted twice while the job runs.
                noteWaiting(pushed: samples.count)
                stepper.wake()
            case .end:
                // The windows already complete run as steps first, so that their endpoints count as they would live.
                stepper.batch.run()
                work.withLock { finish() }
            }
        }
        let again: Bool = lock.withLock {
            let again = !cancelled && !inputs.isEmpty
            if !again { scheduled = false }
            return again
        }
        if !isCancelled { deliver(Batch(outputs: [])) }
        if again { schedule() }
    }

    /// Records the stream's waiting audio and, in the same step, takes `pushed` samples just pushed off the queue.
    private func noteWaiting(pushed: Int = 0) {
        let samples = Int((stream.waitingSeconds * 16_000).rounded())
        lock.withLock {
            waiting = samples
            queued = max(0, queued - pushed)
        }
    }

    /// After a step advanced the stream: a result when tokens became final, and at an endpoint the segment's final
    /// result, then the next segment.
    fileprivate func stepped() {
        noteWaiting()
        guard !isCancelled else { return }
        work.withLock {
            var outputs: [Output] = []
            if stream.isEndpoint {
                endSegment(into: &outputs)
            } else {
                let count = stream.tokens.count
                if count != sent {
                    outputs.append(.message(result(final: false, eof: false)))
                    sent = count
                }
            }
            deliver(Batch(outputs: outputs))
        }
    }

    /// An endpoint: the segment's result with `is_final`, then the next segment starts where this one ended. As in
    /// sherpa-onnx, the segment number moves on only when the segment held something.
    private func endSegment(into outputs: inout [Output]) {
        outputs.append(.message(result(final: true, eof: false)))
        let utterance = stream.endUtterance()
        if !utterance.transcript.tokens.isEmpty { segment += 1 }
        segmentStart = utterance.end
        sent = 0
    }

    /// The end of a recording: the stream's last steps, its last result and `Done!`; then a fresh stream.
    private func finish() {
        stream.finish()
        let segments = segment + (stream.tokens.isEmpty ? 0 : 1)
        deliver(Batch(outputs: [.message(result(final: true, eof: true)), .message("Done!"),
                                .finished(seconds: stream.duration, segments: segments)]))
        stream.reset()
        segment = 0
        segmentStart = 0
        sent = 0
        noteWaiting()
    }

    private func result(final: Bool, eof: Bool) -> String {
        RecognitionResult(tokens: stream.tokens, segment: segment, segmentStart: segmentStart, isFinal: final,
                          isEOF: eof).json
    }
}

/// The way from a stream's step handler back to its connection, which owns the stream (so the handler holds the
/// connection weakly). Set once, before any audio reaches the stream.
private final class StepRelay: @unchecked Sendable {
    weak var decoder: SessionDecoder?
}
