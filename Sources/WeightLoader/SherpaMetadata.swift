/// The streaming settings sherpa-onnx's export recipe writes into the encoder's `metadata_props` (`window_size`,
/// `chunk_shift`, `cache_last_channel_dim1..3`, `cache_last_time_dim1..3`, `vocab_size`, `pred_rnn_layers`,
/// `pred_hidden`, `subsampling_factor`, `normalize_type`, `model_type`, …).
///
/// Every number in it is also stated by the tensors, and the tensors are what the engine runs, so they win: each
/// disagreement becomes a one-line warning naming both values, and loading goes on with the tensors' value. Only
/// `normalize_type` says something the tensors cannot; a feature normalisation the engine's frontend does not
/// apply is a warning too, since the output would silently differ from sherpa-onnx's.
package struct SherpaMetadata: Sendable, Equatable {
    package let values: [String: String]

    package init(_ pairs: [(key: String, value: String)]) {
        var values: [String: String] = [:]
        for (key, value) in pairs { values[key] = value }
        self.values = values
    }

    /// Whether the file carries sherpa-onnx's streaming settings at all.
    package var isPresent: Bool { values["window_size"] != nil || values["cache_last_channel_dim1"] != nil }

    /// A count from the metadata; nil when absent or not a plausible one.
    package func int(_ key: String) -> Int? {
        guard let text = values[key]?.trimmingCharacters(in: .whitespaces), let value = Int(text),
              (0...10_000_000).contains(value) else { return nil }
        return value
    }

    /// The [left, right] attention context the recipe's numbers imply: the attention cache length and the
    /// look-ahead R from chunk_shift = subsampling · (R + 1).
    package func exportAttContext(subsampling: Int) -> [Int]? {
        guard let left = int("cache_last_channel_dim2"), let shift = int("chunk_shift"), subsampling > 0,
              shift >= subsampling, shift % subsampling == 0 else { return nil }
        return [left, shift / subsampling - 1]
    }

    /// Disagreements between the metadata and the tensors, one line each.
    package func warnings(encoder e: EncoderDescription, exportAttContext context: [Int]?,
                          decoder d: DecoderDescription?) -> [String] {
        var out: [String] = []
        func check(_ key: String, _ tensors: Int?, _ what: String) {
            guard let text = values[key] else { return }
            guard let stated = int(key) else {
                out.append("metadata \(key) = \(quoted(text)) is not a count; ignored")
                return
            }
            if let tensors, stated != tensors {
                out.append("metadata \(key) = \(stated), but the tensors say \(what) is \(tensors); using \(tensors)")
            }
        }
        check("cache_last_channel_dim1", e.layers, "the number of layers")
        check("cache_last_channel_dim2", context?[0], "the attention cache length")
        check("cache_last_channel_dim3", e.dModel, "d_model")
        check("cache_last_time_dim1", e.layers, "the number of layers")
        check("cache_last_time_dim2", e.dModel, "d_model")
        check("cache_last_time_dim3", e.convCacheSize, "the convolution cache length")
        check("subsampling_factor", e.subsamplingFactor, "the subsampling factor")
        let shift = context.map { e.subsamplingFactor * ($0[1] + 1) }
        check("chunk_shift", shift, "the chunk shift (mel frames per step)")
        check("window_size", shift.map { $0 + e.subsamplingFactor + 1 }, "the window (mel frames per call)")
        check("vocab_size", d.map { $0.classes - 1 }, "the vocabulary size (blank excluded)")
        check("pred_rnn_layers", d?.lstmLayers, "the number of LSTM layers")
        check("pred_hidden", d?.predictionHidden, "the prediction network width")
        if let normalize = values["normalize_type"], !["", "none", "na"].contains(normalize.lowercased()) {
            out.append("metadata normalize_type = \(quoted(normalize)): the engine's frontend does not normalise "
                + "features (NeMo's streaming models use none); results may differ from sherpa-onnx's")
        }
        return out
    }
}
