/// The shape a parameter must have, as the architecture description implies it.
package enum ExpectedShape: Sendable, Equatable, CustomStringConvertible {
    /// Exactly these dimensions.
    case exact([Int])
    /// A Linear (or 1×1 convolution) from `inputs` to `outputs`, in whichever layout the export stored it: [in, out]
    /// for the exporter's MatMul weights, [out, in] or [out, in, 1] in PyTorch's.
    case linear(inputs: Int, outputs: Int)

    func admits(_ parameter: Parameter) -> Bool {
        switch self {
        case .exact(let dims): return parameter.shape == dims
        case .linear(let inputs, let outputs):
            switch parameter.layout {
            case .inputMajor: return parameter.shape == [inputs, outputs]
            case .torch: return parameter.shape == [outputs, inputs] || parameter.shape == [outputs, inputs, 1]
            }
        }
    }

    package var description: String {
        switch self {
        case .exact(let dims): "\(dims)"
        case .linear(let inputs, let outputs): "a \(inputs) → \(outputs) linear weight ([\(inputs), \(outputs)] or [\(outputs), \(inputs)])"
        }
    }
}

/// Checks every parameter a model reads against the shape its description implies, before any kernel touches it: a
/// module may then trust every length it reads.
package func validateShapes(_ expected: [(path: String, shape: ExpectedShape)], in graph: ExportedGraph,
                            prefix: String = "") throws(LoaderError) {
    for (path, shape) in expected {
        guard let parameter = graph.parameter(prefix + path) else {
            throw .notFastConformer(graph.path, "it has no \(quoted(prefix + path))")
        }
        guard shape.admits(parameter) else {
            throw .shapeMismatch(graph.path, tensor: prefix + path, found: parameter.shape, expected: "\(shape)")
        }
    }
}

/// A size read from the tensors must lie in `range`; anything else is a damaged or foreign file.
package func checkSize(_ value: Int, _ range: ClosedRange<Int>, _ what: String, _ path: String) throws(LoaderError) {
    guard range.contains(value) else {
        throw .notFastConformer(path, "\(what) is \(value), outside \(range.lowerBound)…\(range.upperBound)")
    }
}

extension EncoderDescription {
    /// Every parameter the encoder reads and the shape it must have.
    package var expectedShapes: [(path: String, shape: ExpectedShape)] {
        let d = dModel, c = subsamplingChannels
        var shapes: [(path: String, shape: ExpectedShape)] = [
            ("pre_encode.conv.0.weight", .exact([c, 1, 3, 3])), ("pre_encode.conv.0.bias", .exact([c])),
            ("pre_encode.out.weight", .linear(inputs: c * subsampledFeatures, outputs: d)),
            ("pre_encode.out.bias", .exact([d])),
        ]
        for s in 0..<(subsamplingStages - 1) {
            let depthwise = 2 + 3 * s, pointwise = depthwise + 1
            shapes += [("pre_encode.conv.\(depthwise).weight", .exact([c, 1, 3, 3])),
                       ("pre_encode.conv.\(depthwise).bias", .exact([c])),
                       ("pre_encode.conv.\(pointwise).weight", .exact([c, c, 1, 1])),
                       ("pre_encode.conv.\(pointwise).bias", .exact([c]))]
        }
        for n in 0..<layers {
            let l = "layers.\(n)."
            for norm in ["norm_feed_forward1", "norm_self_att", "norm_conv", "conv.batch_norm", "norm_feed_forward2", "norm_out"] {
                shapes += [(l + norm + ".weight", .exact([d])), (l + norm + ".bias", .exact([d]))]
            }
            for ff in ["feed_forward1", "feed_forward2"] {
                shapes += [(l + ff + ".linear1.weight", .linear(inputs: d, outputs: feedForward)),
                           (l + ff + ".linear1.bias", .exact([feedForward])),
                           (l + ff + ".linear2.weight", .linear(inputs: feedForward, outputs: d)),
                           (l + ff + ".linear2.bias", .exact([d]))]
            }
            for projection in ["linear_q", "linear_k", "linear_v", "linear_out"] {
                shapes += [(l + "self_attn." + projection + ".weight", .linear(inputs: d, outputs: d)),
                           (l + "self_attn." + projection + ".bias", .exact([d]))]
            }
            shapes += [(l + "self_attn.linear_pos.weight", .linear(inputs: d, outputs: d)),
                       (l + "self_attn.pos_bias_u", .exact([heads, headDim])),
                       (l + "self_attn.pos_bias_v", .exact([heads, headDim])),
                       (l + "conv.pointwise_conv1.weight", .linear(inputs: d, outputs: 2 * d)),
                       (l + "conv.pointwise_conv1.bias", .exact([2 * d])),
                       (l + "conv.depthwise_conv.weight", .exact([d, 1, convKernel])),
                       (l + "conv.depthwise_conv.bias", .exact([d])),
                       (l + "conv.pointwise_conv2.weight", .linear(inputs: d, outputs: d)),
                       (l + "conv.pointwise_conv2.bias", .exact([d]))]
        }
        return shapes
    }
}

extension DecoderDescription {
    /// Every parameter the prediction network and joint read and the shape it must have.
    package var expectedShapes: [(path: String, shape: ExpectedShape)] {
        let h = predictionHidden
        var shapes: [(path: String, shape: ExpectedShape)] = [("decoder.prediction.embed.weight", .exact([classes, h]))]
        for k in 0..<lstmLayers {
            let p = "decoder.prediction.dec_rnn.lstm."
            shapes += [(p + "weight_ih_l\(k)", .exact([4 * h, h])), (p + "weight_hh_l\(k)", .exact([4 * h, h])),
                       (p + "bias_ih_l\(k)", .exact([4 * h])), (p + "bias_hh_l\(k)", .exact([4 * h]))]
        }
        shapes += [("joint.enc.weight", .linear(inputs: encoderDim, outputs: jointHidden)),
                   ("joint.enc.bias", .exact([jointHidden])),
                   ("joint.pred.weight", .linear(inputs: h, outputs: jointHidden)),
                   ("joint.pred.bias", .exact([jointHidden])),
                   (jointOutput + ".weight", .linear(inputs: jointHidden, outputs: classes)),
                   (jointOutput + ".bias", .exact([classes]))]
        return shapes
    }
}
