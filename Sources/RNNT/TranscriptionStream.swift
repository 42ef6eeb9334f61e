import Foundation
import STTAudio
import STTConformer
import STTTensor

/// How a stream's first encoder window is cut.
public enum StreamingConvention: String, Sendable, CaseIterable {
    /// The first chunk has no overlap and nothing is dropped: the streamed result equals the offline (whole-file)
    /// result of the model at the same look-ahead. The default.
    case native
    /// What an ONNX export computes: every window has the 9-frame overlap, the first one padded with zero frames.
    /// Use it to compare with ONNX Runtime or sherpa-onnx.
    case exportCompatible

    var schedule: StreamingSchedule.Convention { self == .native ? .native : .exportCompatible }
}

/// What a stream has recognized after a push: the tokens that became final and the whole text so far.
public struct TranscriptionUpdate: Sendable, Equatable {
    /// Tokens that became final with this update, in order.
    public let tokens: [Token]
    /// The text of every token so far.
    public let text: String
    /// True for the last update, after ``TranscriptionStream/finish()``.
    public let isFinal: Bool
    /// True when this update found an endpoint (see ``TranscriptionStream/Options/endpointing``): the caller may
    /// close the utterance with ``TranscriptionStream/endUtterance()``.
    public let isEndpoint: Bool
}

/// One live stream: samples in, tokens out as soon as the look-ahead allows.
///
/// A stream is `Sendable` and locks internally: an audio callback on one thread may push while another thread reads
/// ``text``; calls are applied in the order they take the lock. Open one stream per audio source; any number of
/// streams can share one ``SpeechModel``.
public final class TranscriptionStream: @unchecked Sendable {
    /// How a stream decodes. Every field has a default that fits the model.
    public struct Options: Sendable, Equatable {
        /// Look-ahead; nil uses the model's ``SpeechModel/defaultLookahead`` (the one it was exported with).
        public var lookahead: Lookahead?
        /// How the first window is cut; ``StreamingConvention/native`` by default.
        public var convention: StreamingConvention
        /// Decoder; nil uses the model's first (RNN-T when present).
        public var decoder: SpeechModel.Decoder?
        /// Endpoint rules that split the stream into utterances; nil (the default) never reports an endpoint.
        public var endpointing: Endpointing?

        /// Options; every argument defaults to what fits the model.
        public init(lookahead: Lookahead? = nil, convention: StreamingConvention = .native,
                    decoder: SpeechModel.Decoder? = nil, endpointing: Endpointing? = nil) {
            self.lookahead = lookahead
            self.convention = convention
            self.decoder = decoder
            self.endpointing = endpointing
        }
    }

    /// The model this stream runs.
    public let model: SpeechModel
    /// The look-ahead in use.
    public let lookahead: Lookahead
    /// The first-window convention in use.
    public let convention: StreamingConvention
    /// The decoder in use.
    public let decoder: SpeechModel.Decoder

    let lock = NSLock()
    let core: StreamCore
    private var subscribers: [AsyncStream<TranscriptionUpdate>.Continuation] = []
    /// The current endpoint was sent to subscribers.
    private var endpointPublished = false

    /// Opens a stream on `model`.
    /// - Throws: ``TranscriptionError`` when the model was not trained with the look-ahead or lacks the decoder.
    public convenience init(model: SpeechModel, options: Options = Options()) throws(TranscriptionError) {
        try self.init(model: model, options: options, batched: false)
    }

    /// A stream whose encoder steps a ``StreamBatch`` runs, when `batched`.
    init(model: SpeechModel, options: Options, batched: Bool) throws(TranscriptionError) {
        let lookahead = options.lookahead ?? model.defaultLookahead
        guard let frames = model.frames(lookahead) else {
            throw .untrainedLookahead(lookahead, trained: model.lookaheads)
        }
        guard let decoder = options.decoder ?? model.decoders.first, model.decoders.contains(decoder) else {
            throw .missingDecoder(options.decoder ?? .rnnt, available: model.decoders)
        }
        self.model = model
        self.lookahead = lookahead
        convention = options.convention
        self.decoder = decoder
        core = StreamCore(model: model, lookahead: frames, convention: options.convention.schedule, decoder: decoder,
                          endpointing: options.endpointing, batched: batched)
    }

    /// Adds mono samples in [−1, 1] at `sampleRate` (resampled to the model's 16 kHz as they arrive) and returns the
    /// tokens this made final. After ``finish()`` samples are ignored until ``reset()``. A stream of a ``StreamBatch``
    /// only prepares the encoder's windows here (and returns no tokens): ``StreamBatch/step()`` runs them.
    /// - Throws: ``TranscriptionError/nonFiniteSample(seconds:)`` for a NaN or infinite sample (nothing of this block
    ///   is used), ``TranscriptionError/unsupportedSampleRate(_:)``.
    @discardableResult
    public func push(_ samples: UnsafeBufferPointer<Float>, sampleRate: Int = 16_000) throws(TranscriptionError) -> [Token] {
        lock.lock()
        defer { lock.unlock() }
        let tokens = try core.push(samples, sampleRate: sampleRate)
        published(tokens[...])
        return tokens
    }

    /// Tells subscribers about tokens that became final outside ``finish()``, and about a new endpoint. Called with
    /// the lock held.
    func published(_ tokens: ArraySlice<Token>) {
        let endpoint = core.isEndpoint && !endpointPublished
        if endpoint { endpointPublished = true }
        publish(tokens, final: false, endpoint: endpoint)
    }

    /// Adds mono samples in [−1, 1] at `sampleRate`; see ``push(_:sampleRate:)-(UnsafeBufferPointer<Float>,_)``.
    @discardableResult
    public func push(_ samples: [Float], sampleRate: Int = 16_000) throws(TranscriptionError) -> [Token] {
        try samples.withUnsafeBufferPointer { buffer throws(TranscriptionError) in try push(buffer, sampleRate: sampleRate) }
    }

    /// Adds mono 16-bit PCM samples at `sampleRate` (scaled by 1/32768).
    @discardableResult
    public func push(_ samples: [Int16], sampleRate: Int = 16_000) throws(TranscriptionError) -> [Token] {
        try push(PCM16.floats(samples), sampleRate: sampleRate)
    }

    /// Ends the stream: runs the last, shorter window and returns every token of the utterance.
    @discardableResult
    public func finish() -> [Token] {
        lock.lock()
        defer { lock.unlock() }
        let before = core.tokens.count
        let all = core.finish()
        publish(all[min(before, all.count)...], final: true, endpoint: false)
        return all
    }

    /// Back to a new utterance: state, tokens and time start again from zero.
    public func reset() {
        lock.lock()
        defer { lock.unlock() }
        core.reset()
        endpointPublished = false
    }

    /// Whether an endpoint rule of ``Options/endpointing`` holds for the current utterance (false without rules).
    public var isEndpoint: Bool { lock.withLock { core.isEndpoint } }

    /// Closes the current utterance and returns it: its tokens leave ``tokens`` (which then hold the next utterance
    /// only), and endpoint rules are judged afresh from here. Decoding goes on with the same audio and state, so
    /// nothing heard is lost. After ``finish()`` it returns the last utterance.
    public func endUtterance() -> Utterance {
        lock.lock()
        defer { lock.unlock() }
        endpointPublished = false
        return core.endUtterance()
    }

    /// Forgets the tokens collected so far, so a stream of any length keeps constant memory when its caller consumes
    /// what ``push(_:sampleRate:)-(UnsafeBufferPointer<Float>,_)`` returns; decoding continues unchanged.
    public func clearTokens() {
        lock.lock()
        defer { lock.unlock() }
        core.tokens.removeAll(keepingCapacity: true)
    }

    /// Tokens so far (since the last ``clearTokens()``).
    public var tokens: [Token] { lock.withLock { core.tokens } }
    /// Text so far.
    public var text: String { lock.withLock { Transcript.text(of: core.tokens) } }
    /// Words so far.
    public var words: [Word] { lock.withLock { Transcript.words(of: core.tokens) } }
    /// Seconds of audio whose windows are complete but not yet run: what a ``StreamBatch`` still has to step for
    /// this stream (0 for a stream that steps in its own pushes).
    package var waitingSeconds: Double { lock.withLock { core.waitingSeconds } }
    /// Seconds of audio pushed so far.
    public var duration: Double { lock.withLock { core.duration } }
    /// Text, tokens, words and segments so far.
    public var transcript: Transcript { lock.withLock { Transcript(tokens: core.tokens, duration: core.duration) } }

    /// Updates as they happen, for async code: one for every push that made tokens final, and a last one
    /// (`isFinal`) when the stream finishes, after which the sequence ends. Each access is a new sequence that sees
    /// the updates from then on.
    public var updates: AsyncStream<TranscriptionUpdate> {
        let (sequence, continuation) = AsyncStream.makeStream(of: TranscriptionUpdate.self)
        lock.withLock { subscribers.append(continuation) }
        return sequence
    }

    /// Called with the lock held.
    private func publish(_ tokens: ArraySlice<Token>, final: Bool, endpoint: Bool) {
        guard !subscribers.isEmpty, final || endpoint || !tokens.isEmpty else { return }
        let update = TranscriptionUpdate(tokens: Array(tokens), text: Transcript.text(of: core.tokens), isFinal: final,
                                         isEndpoint: endpoint)
        for subscriber in subscribers {
            subscriber.yield(update)
            if final { subscriber.finish() }
        }
        if final { subscribers.removeAll() }
    }
}
