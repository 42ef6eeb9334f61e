/// One recognized token (a SentencePiece piece or a character) with the span of audio it was emitted on.
public struct Token: Sendable, Equatable, Hashable {
    /// The token's id in `tokens.txt`.
    public let id: Int
    /// The piece as `tokens.txt` spells it ("▁" marks a word start in SentencePiece vocabularies).
    public let piece: String
    /// Index of the encoder frame (80 ms for the reference model) the decoder emitted the token on.
    public let frame: Int
    /// Start of that frame in seconds from the start of the stream.
    public let start: Double
    /// End of that frame in seconds; once the stream is finished, never past the audio's end.
    public let end: Double
    /// Natural log of the probability the model gave this token when it chose it (log-softmax of the joint or CTC
    /// output at that point); 0 is certain.
    public let logProbability: Float

    func clamped(to end: Double) -> Token {
        Token(id: id, piece: piece, frame: frame, start: min(start, end), end: min(self.end, end),
              logProbability: logProbability)
    }
}

/// A word: the tokens from one word start to the next, with the time from its first token's start to its last token's
/// end.
public struct Word: Sendable, Equatable, Hashable {
    /// The word's text, without surrounding spaces.
    public let text: String
    /// Seconds from the start of the stream.
    public let start: Double
    /// Seconds from the start of the stream, at least `start`.
    public let end: Double
    /// Sum of the log-probabilities of the word's tokens: the log of the probability the model gave the whole word.
    public let logProbability: Float
}

/// A stretch of speech between pauses, as subtitles show it: words until a pause of `Segment.pause` seconds or more,
/// or until the segment would be longer than `Segment.maximumLength` seconds.
public struct Segment: Sendable, Equatable, Hashable {
    /// The segment's words joined by single spaces.
    public let text: String
    /// Seconds from the start of the stream: its first word's start.
    public let start: Double
    /// Seconds from the start of the stream: its last word's end.
    public let end: Double
    /// The words, in order.
    public let words: [Word]

    /// A silence between words of at least this many seconds starts a new segment.
    public static let pause = 0.8
    /// A segment is closed before it grows longer than this many seconds.
    public static let maximumLength = 7.0
}

/// Everything recognized in an utterance: text, tokens, words and segments.
public struct Transcript: Sendable, Equatable {
    /// The text: the tokens' pieces joined, "▁" read as a space, trimmed.
    public let text: String
    /// The tokens in the order they were emitted.
    public let tokens: [Token]
    /// The words in order; joined by single spaces they spell `text` (up to runs of spaces).
    public let words: [Word]
    /// The words grouped at pauses.
    public let segments: [Segment]
    /// Seconds of audio the transcript covers.
    public let duration: Double

    /// Builds words and segments from tokens.
    public init(tokens: [Token], duration: Double) {
        self.tokens = tokens
        self.duration = duration
        text = Self.text(of: tokens)
        words = Self.words(of: tokens)
        segments = Self.segments(of: words)
    }

    /// The pieces joined, "▁" as a space, surrounding spaces trimmed.
    static func text(of tokens: [Token]) -> String {
        text(ofPieces: tokens.map(\.piece))
    }

    static func text(ofPieces pieces: [String]) -> String {
        var text = ""
        for piece in pieces { text += piece.replacingOccurrences(of: "▁", with: " ") }
        return String(text.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }

    /// A space ("▁" or " ") ends a word; any other character continues it or starts the next one. A token with no
    /// letters (a lone "▁") counts toward the next word's probability.
    static func words(of tokens: [Token]) -> [Word] {
        var words: [Word] = []
        var text = "", start = 0.0, end = 0.0, logProbability: Float = 0, pending: Float = 0
        func close() {
            if !text.isEmpty { words.append(Word(text: text, start: start, end: max(start, end), logProbability: logProbability)) }
            text = ""
        }
        for token in tokens {
            var counted = false
            for c in token.piece {
                if c == " " || c == "▁" { close(); continue }
                if text.isEmpty {
                    start = token.start
                    logProbability = pending
                    pending = 0
                }
                if !counted { logProbability += token.logProbability; counted = true }
                text.append(c)
                end = token.end
            }
            if !counted { pending += token.logProbability }
        }
        close()
        return words
    }

    static func segments(of words: [Word]) -> [Segment] {
        var segments: [Segment] = []
        var current: [Word] = []
        func close() {
            guard let first = current.first, let last = current.last else { return }
            segments.append(Segment(text: current.map(\.text).joined(separator: " "), start: first.start, end: last.end,
                                    words: current))
            current = []
        }
        for word in words {
            if let first = current.first, let last = current.last,
               word.start - last.end >= Segment.pause || word.end - first.start > Segment.maximumLength {
                close()
            }
            current.append(word)
        }
        close()
        return segments
    }
}
