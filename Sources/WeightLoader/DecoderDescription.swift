/// The RNN-T prediction network and joint, every number read off the loaded tensors.
package struct DecoderDescription: Sendable, Equatable {
    /// Output classes of the joint, blank included (blank is the last id).
    package let classes: Int
    package var blank: Int { classes - 1 }
    package let predictionHidden: Int
    package let lstmLayers: Int
    package let jointHidden: Int
    /// Width of the encoder frames the joint takes.
    package let encoderDim: Int
    package let predictionParameters: Int
    package let jointParameters: Int
    /// Module path of the joint's output layer (`joint.joint_net.2` for NeMo's Sequential(ReLU, Dropout, Linear)).
    package let jointOutput: String

    package init(graph g: ExportedGraph) throws(LoaderError) {
        let path = g.path
        func fail(_ why: String) -> LoaderError { .notFastConformer(path, why) }
        let r = WeightReader(graph: g)
        func linear(_ name: String) throws(LoaderError) -> (input: Int, output: Int) { try r.linearSize(name + ".weight") }
        let embed = try r.parameter("decoder.prediction.embed.weight").shape
        guard embed.count == 2 else { throw fail("the embedding has shape \(embed)") }
        classes = embed[0]
        predictionHidden = embed[1]
        var layers = 0
        while g.parameter("decoder.prediction.dec_rnn.lstm.weight_ih_l\(layers)") != nil { layers += 1 }
        guard layers > 0 else { throw fail("it has no LSTM in decoder.prediction.dec_rnn") }
        lstmLayers = layers
        let enc = try linear("joint.enc")
        let pred = try linear("joint.pred")
        // joint_net is Sequential(ReLU, [Dropout,] Linear): its last Linear is the output layer.
        let outIndex = g.parameters.keys.compactMap { key -> Int? in
            guard key.hasPrefix("joint.joint_net."), key.hasSuffix(".weight") else { return nil }
            return Int(key.dropFirst("joint.joint_net.".count).dropLast(".weight".count))
        }.max()
        guard let outIndex else { throw fail("it has no joint.joint_net output layer") }
        jointOutput = "joint.joint_net.\(outIndex)"
        let out = try linear(jointOutput)
        encoderDim = enc.input
        jointHidden = enc.output
        guard pred.input == predictionHidden, pred.output == jointHidden, out.input == jointHidden else {
            throw fail("joint sizes do not fit: enc \(enc), pred \(pred), out \(out), prediction \(predictionHidden)")
        }
        guard out.output == classes else {
            throw fail("the joint has \(out.output) outputs but the embedding \(classes) rows")
        }
        predictionParameters = g.parameters.filter { $0.key.hasPrefix("decoder.") }.values.reduce(0) { $0 + $1.count }
        jointParameters = g.parameters.filter { $0.key.hasPrefix("joint.") }.values.reduce(0) { $0 + $1.count }
        try checkSize(classes, 2...1_000_000, "the vocabulary (blank included)", path)
        try checkSize(lstmLayers, 1...16, "the number of LSTM layers", path)
        try validateShapes(expectedShapes, in: g)
    }
}
