/// The CTC head of a CTC export (`decoder_type: ctc`): a 1×1 convolution from encoder frames to class log-probs.
package struct CTCDescription: Sendable, Equatable {
    /// Output classes, blank (last) included.
    package let classes: Int
    package var blank: Int { classes - 1 }
    package let encoderDim: Int
    package let parameterCount: Int

    package static let weightPath = "ctc_decoder.decoder_layers.0.weight"

    package init(graph g: ExportedGraph) throws(LoaderError) {
        guard let weight = g.parameter(Self.weightPath),
              weight.rank == 3, weight.shape[2] == 1 else {
            throw .notFastConformer(g.path, "a CTC export needs \(Self.weightPath) of shape [classes, d_model, 1]")
        }
        classes = weight.shape[0]
        encoderDim = weight.shape[1]
        try checkSize(classes, 2...1_000_000, "the vocabulary (blank included)", g.path)
        try validateShapes([(Self.weightPath, .exact([classes, encoderDim, 1])),
                            ("ctc_decoder.decoder_layers.0.bias", .exact([classes]))], in: g)
        parameterCount = g.parameters.filter { $0.key.hasPrefix("ctc_decoder.") }.values.reduce(0) { $0 + $1.count }
    }
}
