@testable import STTCAPI
import Testing

// How the text of an utterance is handed out in pieces (stt_stream_read_new_text): whatever the pieces of the tokens
// and wherever the reads fall, the pieces read concatenate to the utterance's text, which has no spaces at either end.
// Spaces a token ends with ("▁" alone, or a piece ending in "▁") wait until text follows them.

@Suite struct NewTextTests {
    /// The utterance's text for token pieces: joined, "▁" as a space, spaces trimmed at both ends.
    static func text(_ pieces: [String]) -> String {
        let joined = pieces.joined().replacingOccurrences(of: "▁", with: " ")
        return String(joined.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }

    static let utterances: [[String]] = [
        ["▁my", "▁bro", "ther", "▁likes"],
        ["▁", "▁", "▁my", "▁", "▁", "▁bro", "ther▁", "▁", "▁likes", "▁"],
        ["▁", "▁"],
        ["a", "b▁", "▁c▁▁"],
        [],
        ["▁é", "̈", "▁日本", "語▁"],
    ]

    /// Every way of placing reads between the tokens (up to 2^10 of them) gives pieces that add up to the text, and
    /// every prefix read so far is the text of the tokens so far.
    @Test(arguments: utterances)
    func piecesConcatenateToTheText(pieces: [String]) {
        let splits = 1 << min(pieces.count, 10)
        for mask in 0..<splits {
            var newText = NewText()
            var read = ""
            for (i, piece) in pieces.enumerated() {
                newText.append(piece: piece)
                if mask & (1 << min(i, 9)) != 0 {
                    read += newText.take()
                    #expect(read == Self.text(Array(pieces[...i])), "\(pieces) read after \(i)")
                }
            }
            read += newText.take()
            #expect(read == Self.text(pieces), "\(pieces), reads \(mask)")
            #expect(newText.take() == "")
        }
    }

    @Test func restartForgetsTheUtterance() {
        var newText = NewText()
        newText.append(piece: "▁my")
        #expect(newText.take() == "my")
        newText.append(piece: "▁")
        #expect(newText.take() == "")
        newText.append(piece: "▁bro")
        newText.restart()
        newText.append(piece: "▁likes")
        #expect(newText.take() == "likes")
    }
}
