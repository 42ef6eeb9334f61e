/// When an utterance has ended, judged from what the decoder emits: trailing silence is the run of encoder frames at
/// the end of the utterance on which it emitted no token (blank frames), so it follows speech as the model hears it,
/// not the signal's level.
///
/// Three rules, as in sherpa-onnx's endpointing; each may be switched off with nil. An utterance ends when any
/// enabled rule holds:
/// - ``silenceWithoutSpeech``: nothing was recognized yet and the silence is at least this long;
/// - ``silenceAfterSpeech``: something was recognized and the silence after it is at least this long;
/// - ``maxUtterance``: the utterance is at least this long, whatever it holds.
///
/// The stream only reports the endpoint (``TranscriptionStream/isEndpoint``); the caller decides when to close the
/// utterance with ``TranscriptionStream/endUtterance()``.
public struct Endpointing: Sendable, Equatable {
    /// Seconds of trailing silence that end an utterance in which nothing was recognized; nil never.
    public var silenceWithoutSpeech: Double?
    /// Seconds of trailing silence after recognized speech that end an utterance; nil never.
    public var silenceAfterSpeech: Double?
    /// Seconds after which an utterance ends whatever it holds; nil never.
    public var maxUtterance: Double?

    /// Rules; the defaults are sherpa-onnx's (2.4 s, 1.2 s, 20 s).
    public init(silenceWithoutSpeech: Double? = 2.4, silenceAfterSpeech: Double? = 1.2, maxUtterance: Double? = 20) {
        self.silenceWithoutSpeech = silenceWithoutSpeech
        self.silenceAfterSpeech = silenceAfterSpeech
        self.maxUtterance = maxUtterance
    }
}

/// One utterance of a stream, closed by ``TranscriptionStream/endUtterance()``.
public struct Utterance: Sendable, Equatable {
    /// 0 for a stream's first utterance, then 1, 2, … (``TranscriptionStream/reset()`` starts again at 0).
    public let index: Int
    /// Where the utterance starts, in seconds from the start of the stream.
    public let start: Double
    /// Where it ends, in seconds from the start of the stream.
    public let end: Double
    /// Its tokens, words and text; token and word times are seconds from the start of the stream.
    public let transcript: Transcript
    /// The utterance's text.
    public var text: String { transcript.text }
}
