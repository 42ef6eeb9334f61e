import Foundation
import STTConformer

/// Streams of one model whose encoder steps run together. A step takes every stream that has a complete window and
/// multiplies their rows through each layer's weights at once, so N streams read the weights once per step instead
/// of N times: on a CPU that spends its time waiting for weights, N streams cost little more than one. Attention and
/// convolution still run per stream, each with its own caches. The greedy RNN-T decoders of the step's streams then
/// run together as well, one product per decoder weight each round. Every stream's tokens equal those of a stream
/// opened on its own.
///
/// Open streams with ``makeStream(options:afterStep:)`` and push audio into them from any thread; pushes then only compute
/// features and return no tokens. Call ``step()`` or ``run()`` (from one thread or several: steps take turns) to run
/// the encoder and decoder: tokens become final there, and ``TranscriptionStream/updates``,
/// ``TranscriptionStream/tokens`` and ``TranscriptionStream/isEndpoint`` see them as usual.
/// ``TranscriptionStream/finish()`` runs a stream's remaining steps itself. Streams may differ in look-ahead,
/// decoder and options. A batch keeps only weak references: a stream leaves it when released.
public final class StreamBatch: @unchecked Sendable {
    /// The model every stream of the batch runs.
    public let model: SpeechModel
    /// The most streams one step advances (the rest wait for the next step, in turn).
    public let maxStreams: Int

    /// What runs after a step that advanced a stream (see ``makeStream(options:afterStep:)``).
    public typealias StepHandler = @Sendable (TranscriptionStream) -> Void

    private struct Member {
        weak var stream: TranscriptionStream?
        let afterStep: StepHandler?
    }

    /// Held for a whole step: one step at a time, and the step's own state below.
    private let stepLock = NSLock()
    private var encoderBatch: EncoderBatch?
    private var snapshot: [Member] = []
    private var taken: [TranscriptionStream] = []
    private var handlers: [(StepHandler, TranscriptionStream)] = []
    /// The RNN-T streams of a step decode together: their states, their places in `taken`, their token counts before.
    private var greedyBatch: GreedyBatch?
    private var greedyStates: [GreedyState] = []
    private var greedyTaken: [Int] = []
    private var tokensBefore: [Int] = []
    /// Where the next step starts looking, so that every stream gets its turn when more than `maxStreams` are ready.
    private var cursor = 0

    /// Held briefly: opening a stream or counting never waits for a step.
    private let membersLock = NSLock()
    private var members: [Member] = []
    /// The widest step of any stream opened (encoder frames).
    private var neededFrames = 0
    private var largest = 0

    /// A batch for streams of `model` that advances up to `maxStreams` of them per step.
    public init(model: SpeechModel, maxStreams: Int = 16) {
        self.model = model
        self.maxStreams = max(1, maxStreams)
        taken.reserveCapacity(self.maxStreams)
        handlers.reserveCapacity(self.maxStreams)
        greedyStates.reserveCapacity(self.maxStreams)
        greedyTaken.reserveCapacity(self.maxStreams)
        tokensBefore.reserveCapacity(self.maxStreams)
        greedyBatch = model.rnnt.map {
            GreedyBatch(decoder: $0, capacity: self.maxStreams, maxFrames: model.encoder.maxLookahead + 1)
        }
    }

    /// Opens a stream whose encoder steps this batch runs.
    /// - Parameters:
    ///   - options: the stream's options, as for ``TranscriptionStream/init(model:options:)``; streams of one batch may
    ///     differ in any of them.
    ///   - afterStep: called after every step that advanced the stream, on the thread that ran the step, before the
    ///     batch runs another: the place to react to the step's tokens and endpoints (for instance to close an
    ///     utterance) exactly as a separate stream's caller would after its push. It runs with no lock of the stream
    ///     held, so it may use the stream; it must not step this batch.
    /// - Throws: ``TranscriptionError`` as ``TranscriptionStream/init(model:options:)`` does.
    public func makeStream(options: TranscriptionStream.Options = .init(), afterStep: StepHandler? = nil)
        throws(TranscriptionError) -> TranscriptionStream {
        let stream = try TranscriptionStream(model: model, options: options, batched: true)
        membersLock.withLock {
            members.removeAll { $0.stream == nil }
            members.append(Member(stream: stream, afterStep: afterStep))
            neededFrames = max(neededFrames, stream.core.maxStepFrames)
        }
        return stream
    }

    /// The most streams one step has advanced so far.
    public var largestStep: Int { membersLock.withLock { largest } }

    /// Streams open in this batch.
    public var streamCount: Int { membersLock.withLock { members.count(where: { $0.stream != nil }) } }

    /// One batched step: every stream with a complete window (up to ``maxStreams``, taking turns) goes through the
    /// encoder together, then their greedy RNN-T decoders run together too (CTC streams decode alone). Returns the
    /// streams it advanced (0 when none was ready).
    @discardableResult
    public func step() -> Int {
        stepLock.lock()
        defer { stepLock.unlock() }
        let needed: Int = membersLock.withLock {
            if members.contains(where: { $0.stream == nil }) { members.removeAll { $0.stream == nil } }
            snapshot.append(contentsOf: members)
            return neededFrames
        }
        defer { snapshot.removeAll(keepingCapacity: true) }
        if needed > encoderBatch?.maxFrames ?? 0 {
            encoderBatch = EncoderBatch(encoder: model.encoder, capacity: maxStreams, maxFrames: needed)
        }
        guard let batch = encoderBatch, !snapshot.isEmpty else { return 0 }
        let count = snapshot.count
        var next = cursor
        for k in 0..<count where taken.count < maxStreams {
            let index = (cursor + k) % count
            guard let stream = snapshot[index].stream else { continue }
            stream.lock.lock()
            if stream.core.addStep(to: batch) {
                taken.append(stream)
                if let handler = snapshot[index].afterStep { handlers.append((handler, stream)) }
                next = index + 1
            } else {
                stream.lock.unlock()
            }
        }
        let advanced = taken.count
        if advanced > 0 {
            model.encoder.step(batch)
            decodeTogether(batch)
            for (i, stream) in taken.enumerated() {
                let output = batch.output(i)
                if tokensBefore[i] >= 0 {
                    stream.published(stream.core.decoded(rows: output.rows, since: tokensBefore[i]))
                } else {
                    stream.published(stream.core.decodeStep(output.frames, rows: output.rows))
                }
                stream.lock.unlock()
            }
            membersLock.withLock { largest = max(largest, advanced) }
        }
        batch.clear()
        taken.removeAll(keepingCapacity: true)
        for (handler, stream) in handlers { handler(stream) }
        handlers.removeAll(keepingCapacity: true)
        cursor = next % count
        return advanced
    }

    /// The greedy RNN-T decoding of every RNN-T stream in the step, as one `GreedyBatch`: its weights are read once a
    /// round for all of them. `tokensBefore[i]` is stream i's token count before, or −1 for a stream left to decode
    /// alone (CTC).
    private func decodeTogether(_ batch: EncoderBatch) {
        greedyStates.removeAll(keepingCapacity: true)
        greedyTaken.removeAll(keepingCapacity: true)
        tokensBefore.removeAll(keepingCapacity: true)
        for (i, stream) in taken.enumerated() {
            if let state = stream.core.rnntState, greedyBatch != nil {
                greedyStates.append(state)
                greedyTaken.append(i)
                tokensBefore.append(stream.core.tokens.count)
            } else {
                tokensBefore.append(-1)
            }
        }
        guard let greedyBatch, !greedyStates.isEmpty else { return }
        greedyBatch.decode(streams: greedyStates.count, state: { greedyStates[$0] },
                           frames: { batch.output(greedyTaken[$0]).frames },
                           count: { batch.output(greedyTaken[$0]).rows }, width: model.encoder.dModel,
                           maxSymbols: model.maxSymbols) { i, emission in taken[greedyTaken[i]].core.record(emission) }
    }

    /// Steps until no stream has a complete window; returns the steps run.
    @discardableResult
    public func run() -> Int {
        var steps = 0
        while step() > 0 { steps += 1 }
        return steps
    }
}
