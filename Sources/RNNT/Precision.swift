import STTTensor
import STTWeightLoader

extension SpeechModel {
    /// How the encoder's weight matrices are stored and multiplied.
    ///
    /// The files come from the folder: NeMo's export is fp32; a sherpa-onnx folder may hold `encoder.onnx`,
    /// `decoder.onnx`, `joiner.onnx` (fp32) and/or the same as `*.int8.onnx` (ONNX Runtime's dynamic quantization).
    /// ``fp32`` and ``bf16`` load the fp32 files where there are any, else the int8 files dequantized; ``int8`` loads
    /// the int8 files where there are any, else the fp32 files, and quantizes at load. ``SpeechModel/filePrecision``
    /// says which files were loaded.
    public enum Precision: String, Sendable, CaseIterable, CustomStringConvertible {
        /// 32-bit floats: exact for the files loaded.
        case fp32
        /// bfloat16 (rounded to nearest even), widened to float32 as they are multiplied: half the weight bytes each
        /// step reads. Everything else stays float32; the text may differ slightly from fp32's. On a CPU with
        /// AVX512_BF16, `STT_BF16_ROWS=1` in the environment multiplies them with `vdpbf16ps` by the rows rounded to
        /// bfloat16 too: more multiply-adds per instruction, and more difference from fp32.
        case bf16
        /// 8-bit integers with a float32 scale per output column; each step rounds its rows to 16-bit integers (13 to
        /// 15 bits of magnitude) with a scale per row and sums exact integers: a quarter of the weight bytes each step
        /// reads. Norms, attention scores,
        /// softmax and the decoder stay float32; the text differs from fp32's more than bf16's does.
        case int8

        /// "fp32", "bf16" or "int8".
        public var description: String { rawValue }

        /// How the encoder's weight matrices are stored.
        package var storage: WeightPrecision {
            switch self {
            case .fp32: .fp32
            case .bf16: .bf16
            case .int8: .int8
            }
        }

        package init(_ files: ModelFolder.Precision) {
            switch files {
            case .fp32: self = .fp32
            case .int8: self = .int8
            }
        }
    }

    /// The precision of the weight files loaded: ``Precision/int8`` for sherpa-onnx's `*.int8.onnx`, else
    /// ``Precision/fp32``.
    public var filePrecision: Precision { Precision(folder.precision) }

    /// One line for a user when the precision was chosen without being asked for (a folder with only int8 files),
    /// else nil.
    package var precisionNote: String? { folder.precisionNote }
}

/// How closely one result follows another: 1 − (edit distance) / (length of the reference), at least 0.
package enum Agreement {
    /// Levenshtein distance: the fewest insertions, deletions and substitutions that turn `a` into `b`.
    package static func editDistance<Element: Equatable>(_ a: [Element], _ b: [Element]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    /// The share of `reference` that `candidate` reproduces; 1 when both are empty.
    package static func of<Element: Equatable>(_ candidate: [Element], _ reference: [Element]) -> Double {
        guard !reference.isEmpty else { return candidate.isEmpty ? 1 : 0 }
        return max(0, 1 - Double(editDistance(candidate, reference)) / Double(reference.count))
    }

    /// Character agreement of two texts.
    package static func of(_ candidate: String, _ reference: String) -> Double {
        of(Array(candidate), Array(reference))
    }
}
