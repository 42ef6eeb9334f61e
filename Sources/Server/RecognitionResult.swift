import Foundation
import STTKit

/// One result message of sherpa-onnx's online WebSocket protocol: the text of the current segment so far.
///
/// Field names, order and number formats are sherpa-onnx's (`OnlineRecognizerResult::AsJsonString`): `text`,
/// `tokens`, `timestamps` (seconds from `start_time`, two decimals), `ys_probs` (each token's log-probability),
/// `lm_probs` and `context_scores` (always empty here), `segment` (0, 1, …: incremented after an endpoint that closed a
/// non-empty segment), `words`, `start_time` (the segment's start in seconds from the start of the stream), `is_final`
/// (the segment ended: an endpoint, or the end of the audio) and `is_eof` (the last result for the audio before
/// `Done`). `words` differs from sherpa-onnx, which sends word ids there: here each word is
/// `{"word", "start", "end", "logprob"}` with times, like `timestamps`, in seconds from `start_time`.
package struct RecognitionResult: Codable, Sendable, Equatable {
    /// A word with its span, in seconds from the segment's `start_time`.
    package struct WordSpan: Codable, Sendable, Equatable {
        package var word: String
        package var start: Double
        package var end: Double
        package var logprob: Double

        package init(word: String, start: Double, end: Double, logprob: Double) {
            self.word = word
            self.start = start
            self.end = end
            self.logprob = logprob
        }
    }

    package var text: String
    package var tokens: [String]
    package var timestamps: [Double]
    package var ysProbs: [Double]
    package var lmProbs: [Double]
    package var contextScores: [Double]
    package var segment: Int
    package var words: [WordSpan]
    package var startTime: Double
    package var isFinal: Bool
    package var isEOF: Bool

    enum CodingKeys: String, CodingKey {
        case text, tokens, timestamps, ysProbs = "ys_probs", lmProbs = "lm_probs", contextScores = "context_scores"
        case segment, words, startTime = "start_time", isFinal = "is_final", isEOF = "is_eof"
    }

    /// The result for the tokens of one segment (times in seconds from the start of the stream).
    package init(tokens: [Token], segment: Int, segmentStart: Double, isFinal: Bool, isEOF: Bool) {
        let transcript = Transcript(tokens: tokens, duration: 0)
        self.init(
            text: transcript.text, tokens: tokens.map(\.piece),
            timestamps: tokens.map { max(0, $0.start - segmentStart) }, ysProbs: tokens.map { Double($0.logProbability) },
            segment: segment,
            words: transcript.words.map {
                WordSpan(word: $0.text, start: max(0, $0.start - segmentStart), end: max(0, $0.end - segmentStart),
                         logprob: Double($0.logProbability))
            },
            startTime: segmentStart, isFinal: isFinal, isEOF: isEOF)
    }

    package init(text: String, tokens: [String], timestamps: [Double], ysProbs: [Double], segment: Int,
                 words: [WordSpan], startTime: Double, isFinal: Bool, isEOF: Bool) {
        self.text = text
        self.tokens = tokens
        self.timestamps = timestamps
        self.ysProbs = ysProbs
        lmProbs = []
        contextScores = []
        self.segment = segment
        self.words = words
        self.startTime = startTime
        self.isFinal = isFinal
        self.isEOF = isEOF
    }

    /// A result message as sherpa-onnx writes it: its fields in its order, times with two decimals, probabilities
    /// with six.
    package var json: String {
        var out = "{ \"text\": "
        out += Self.quoted(text)
        out += ", \"tokens\": [" + tokens.map(Self.quoted).joined(separator: ", ") + "]"
        out += ", \"timestamps\": " + Self.numbers(timestamps, decimals: 2)
        out += ", \"ys_probs\": " + Self.numbers(ysProbs, decimals: 6)
        out += ", \"lm_probs\": " + Self.numbers(lmProbs, decimals: 6)
        out += ", \"context_scores\": " + Self.numbers(contextScores, decimals: 6)
        out += ", \"segment\": \(segment)"
        out += ", \"words\": [" + words.map {
            "{\"word\": \(Self.quoted($0.word)), \"start\": \(Self.number($0.start, decimals: 2)), "
                + "\"end\": \(Self.number($0.end, decimals: 2)), \"logprob\": \(Self.number($0.logprob, decimals: 6))}"
        }.joined(separator: ", ") + "]"
        out += ", \"start_time\": " + Self.number(startTime, decimals: 2)
        out += ", \"is_final\": \(isFinal), \"is_eof\": \(isEOF)}"
        return out
    }

    /// Parses a result message; nil for anything else (such as `Done!`).
    package init?(json: String) {
        guard let value = try? JSONDecoder().decode(RecognitionResult.self, from: Data(json.utf8)) else { return nil }
        self = value
    }

    /// `value` with `decimals` digits after the point, as C's `%.Nf` writes it (a result carries thousands of these,
    /// so no `String(format:)`).
    static func number(_ value: Double, decimals: Int) -> String {
        guard value.isFinite, abs(value) < 1e12 else { return "0" }
        var scale: Int64 = 1
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int64((abs(value) * Double(scale)).rounded())
        let whole = String(scaled / scale)
        let sign = value < 0 || (value == 0 && value.sign == .minus) ? "-" : ""
        guard decimals > 0 else { return sign + whole }
        let fraction = String(scaled % scale)
        return sign + whole + "." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }

    static func numbers(_ values: [Double], decimals: Int) -> String {
        "[" + values.map { number($0, decimals: decimals) }.joined(separator: ", ") + "]"
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped; everything else as UTF-8.
    static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
