/// Edits for model.json and tokens.txt: numbers swapped for boundary values, tokens and lines deleted, duplicated
/// or swapped, strings changed, JSON punctuation and deep nesting inserted, line ends and byte-order marks, control
/// bytes and invalid UTF-8.
package struct TextMutations {
    package init() {}

    static let numbers = [
        "0", "-0", "1", "-1", "2", "13", "69", "70", "71", "255", "256", "257", "1023", "1024", "1025", "100", "101",
        "15999", "16000", "16001", "1e3", "1.5", "1e308", "1e309", "-1e309", "9223372036854775807",
        "9223372036854775808", "-9223372036854775809", "18446744073709551616", "0x10", "+1", "007", "٣", "NaN",
        "Infinity", "null", "true", "\"70\"", "[]", "{}", "[70, 13]", "[[70, 13]]",
    ]

    static let snippets = [
        ",", "[", "]", "{", "}", "\"", ":", "null", "\\u0000", "\\ud800", "\\\"", "\n", "\r\n", "\r", "\t", " ",
        "\u{FEFF}", "\u{2028}", "\u{202E}", "\u{0}", "\u{1B}[2J", "\"max_symbols\": 0, ", "\"att_context_sizes\": [[70, 13], [71, 0]], ",
        "\"att_context_sizes\": [], ", "\"export_att_context\": [70], ", "\"sample_rate\": 8000, ",
        "\"decoder_type\": \"ctc\", ", "\"cache_support\": 1, ", "\"opset\": -1, ", "▁ 0\n", "<unk> 1\n", "a\t2\n",
        "  3\n", " 0", " -1", " 99999999999999999999",
    ]

    /// One text edit; never fails.
    package func mutate(_ data: inout [UInt8], _ rng: inout FuzzRandom) {
        switch rng.below(8) {
        case 0, 1:
            // A number (a context size, a rate, a token id) for a boundary value or something that is not a number.
            let number = Array((rng.pick(Self.numbers) ?? "0").utf8)
            if let run = rng.pick(numberRuns(data)) {
                data.replaceSubrange(run, with: number)
            } else {
                data.insert(contentsOf: number, at: rng.below(data.count + 1))
            }
        case 2:
            let p = rng.below(data.count + 1)
            data.insert(contentsOf: Array((rng.pick(Self.snippets) ?? ",").utf8), at: p)
        case 3:
            // A line (a token) gone, doubled, or moved.
            var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
            guard !lines.isEmpty else { return }
            let k = rng.below(lines.count)
            switch rng.below(3) {
            case 0: lines.remove(at: k)
            case 1: lines.insert(lines[k], at: k)
            default: lines.swapAt(k, rng.below(lines.count))
            }
            data = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
        case 4:
            // A JSON value or a token piece changed: the text between two quotes, or a line's first word.
            let quotes = data.indices.filter { data[$0] == UInt8(ascii: "\"") }
            if quotes.count >= 2 {
                let k = rng.below(quotes.count - 1)
                let range = (quotes[k] + 1)..<quotes[k + 1]
                let replacements = ["", "rnnt", "ctc", "att_context_sizes", "max_symbols", "x", "\\n", "\\u0000",
                                    "\\ud800", String(repeating: "a", count: 5_000)]
                data.replaceSubrange(range, with: Array((rng.pick(replacements) ?? "").utf8))
            } else if !data.isEmpty {
                let p = rng.below(data.count)
                data.insert(contentsOf: [UInt8(ascii: " ")], at: p)
            }
        case 5:
            // Deep nesting: a recursive-descent parser must not run out of stack.
            let depth = rng.pick([64, 512, 513, 10_000, 100_000]) ?? 64
            let open = Array(repeating: UInt8(ascii: rng.oneIn(2) ? "[" : "{"), count: depth)
            data.insert(contentsOf: open, at: rng.below(data.count + 1))
        case 6:
            // Line ends: CRLF everywhere, lone CR, none at the end; or a byte-order mark in front.
            switch rng.below(4) {
            case 0: data = Array(data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).joined(separator: [0x0D, 0x0A]))
            case 1: data = data.map { $0 == UInt8(ascii: "\n") ? 0x0D : $0 }
            case 2: while data.last == UInt8(ascii: "\n") { data.removeLast() }
            default: data.insert(contentsOf: [0xEF, 0xBB, 0xBF], at: 0)
            }
        default:
            // Bytes that are not text: NUL, DEL, invalid UTF-8, a lone continuation byte, an overlong encoding.
            let bytes: [[UInt8]] = [[0x00], [0x7F], [0xFF], [0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]]
            data.insert(contentsOf: rng.pick(bytes) ?? [0], at: rng.below(data.count + 1))
        }
    }

    /// Every run of digits (with a leading minus sign), where numbers and token ids are.
    func numberRuns(_ data: [UInt8]) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var i = 0
        while i < data.count {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(data[i]) else { i += 1; continue }
            var start = i
            if start > 0 && data[start - 1] == UInt8(ascii: "-") { start -= 1 }
            while i < data.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(data[i]) { i += 1 }
            runs.append(start..<i)
        }
        return runs
    }
}
