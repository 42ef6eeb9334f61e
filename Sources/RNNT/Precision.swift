import STTTensor
import STTWeightLoader

extension SpeechModel {
    /// The precision of a model's weights: which files it is loaded from and how its weight matrices are stored.
    ///
    /// A sherpa-onnx folder may hold both `encoder.onnx`, `decoder.onnx`, `joiner.onnx` (fp32) and
    /// `encoder.int8.onnx`, `decoder.int8.onnx`, `joiner.int8.onnx` (int8). NeMo's own export is fp32 only.
    public enum Precision: String, Sendable, CaseIterable, CustomStringConvertible {
        /// 32-bit float weights: NeMo's export, or the plain `.onnx` files of a sherpa-onnx folder. Exact.
        case fp32
        /// The fp32 files, with the encoder's weight matrices stored as bfloat16 (rounded to nearest even) and
        /// widened to float32 as they are multiplied: half the weight bytes each encoder step reads, so faster where
        /// reading the weights is what takes the time. Everything else stays float32; the text may differ slightly
        /// from fp32's.
        case bf16
        /// 8-bit weights: the `*.int8.onnx` files of a sherpa-onnx folder (ONNX Runtime's dynamic quantization of the
        /// weight matrices). For now they are dequantized to float32 at load, so they save disk space but neither
        /// memory nor time, and the text may differ slightly from the fp32 files'.
        case int8

        /// "fp32", "bf16" or "int8".
        public var description: String { rawValue }

        /// The files a model of this precision is loaded from.
        package var files: ModelFolder.Precision {
            switch self {
            case .fp32, .bf16: .fp32
            case .int8: .int8
            }
        }

        /// How the encoder's weight matrices are stored.
        package var storage: WeightPrecision { self == .bf16 ? .bf16 : .fp32 }

        package init(_ files: ModelFolder.Precision) {
            switch files {
            case .fp32: self = .fp32
            case .int8: self = .int8
            }
        }
    }

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
