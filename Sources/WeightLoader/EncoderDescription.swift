/// The FastConformer encoder's architecture, every number read off the loaded tensors.
package struct EncoderDescription: Sendable, Equatable {
    package let layers: Int
    package let dModel: Int
    package let heads: Int
    package let headDim: Int
    package let feedForward: Int
    package let convKernel: Int
    /// Columns of the depthwise-conv time cache (kernel − 1 for a causal conv).
    package let convCacheSize: Int
    package let subsamplingChannels: Int
    /// Stride-2 stages of the subsampling stem; the frame rate drops by 2^stages.
    package let subsamplingStages: Int
    package let melFeatures: Int
    /// Frequency bins left after subsampling (the stem's flatten is channels × this).
    package let subsampledFeatures: Int
    /// Rows of the relative positional table (2·max_len − 1).
    package let positionalRows: Int
    package let layerNormEpsilon: Float
    package let preEncodeParameters: Int
    package let layerParameters: Int
    package let parameterCount: Int

    package var subsamplingFactor: Int { 1 << subsamplingStages }

    /// Module names every layer has, as in NeMo's ConformerLayer.
    static let layerModules: [(name: String, bias: Bool)] = [
        ("norm_feed_forward1", true), ("feed_forward1.linear1", true), ("feed_forward1.linear2", true),
        ("norm_self_att", true), ("self_attn.linear_q", true), ("self_attn.linear_k", true),
        ("self_attn.linear_v", true), ("self_attn.linear_out", true), ("self_attn.linear_pos", false),
        ("norm_conv", true), ("conv.pointwise_conv1", true), ("conv.depthwise_conv", true),
        ("conv.batch_norm", true), ("conv.pointwise_conv2", true),
        ("norm_feed_forward2", true), ("feed_forward2.linear1", true), ("feed_forward2.linear2", true),
        ("norm_out", true),
    ]

    package init(graph g: ExportedGraph, prefix: String = "") throws(LoaderError) {
        let path = g.path
        func fail(_ why: String) -> LoaderError { .notFastConformer(path, why) }
        let r = WeightReader(graph: g, prefix: prefix)
        func param(_ name: String) throws(LoaderError) -> Parameter { try r.parameter(name) }
        func linear(_ name: String) throws(LoaderError) -> (input: Int, output: Int) { try r.linearSize(name + ".weight") }

        // Layers: layers.0 … layers.N−1, all present.
        var indices = Set<Int>()
        for key in g.parameters.keys where key.hasPrefix(prefix + "layers.") {
            let rest = key.dropFirst(prefix.count + "layers.".count)
            if let n = Int(rest.prefix { $0.isNumber }) { indices.insert(n) }
        }
        guard let last = indices.max() else { throw fail("it has no encoder layers (layers.N.*)") }
        // Compared without adding to `last`, which a name like layers.9223372036854775807 makes Int.max.
        guard indices.count - 1 == last else {
            throw fail("layer indices \(indices.sorted()) are not 0…\(last)")
        }
        layers = last + 1

        let bias = try param("layers.0.self_attn.pos_bias_u")
        guard bias.rank == 2 else { throw fail("pos_bias_u has shape \(bias.shape), expected [heads, d_k]") }
        heads = bias.shape[0]
        headDim = bias.shape[1]
        let q = try linear("layers.0.self_attn.linear_q")
        dModel = q.input
        guard q.output == dModel, heads * headDim == dModel else {
            throw fail("attention of \(heads) heads × \(headDim) does not match d_model \(dModel)")
        }
        feedForward = try linear("layers.0.feed_forward1.linear1").output
        let depthwise = try param("layers.0.conv.depthwise_conv.weight").shape
        guard depthwise.count == 3, depthwise[0] == dModel, depthwise[1] == 1 else {
            throw fail("conv.depthwise_conv.weight has shape \(depthwise), expected [\(dModel), 1, k]")
        }
        convKernel = depthwise[2]
        convCacheSize = convKernel - 1

        // Subsampling stem: conv.0 is a full conv from 1 channel; every other 3×3 conv with one input channel per
        // group is a depthwise stride-2 stage.
        let first = try param("pre_encode.conv.0.weight").shape
        guard first.count == 4, first[1] == 1 else {
            throw fail("pre_encode.conv.0.weight has shape \(first), expected [channels, 1, kh, kw] (dw_striding)")
        }
        subsamplingChannels = first[0]
        var stages = 1
        for (key, p) in g.parameters where key.hasPrefix(prefix + "pre_encode.conv.") && key.hasSuffix(".weight")
            && key != prefix + "pre_encode.conv.0.weight" {
            let s = p.shape
            if s.count == 4 && s[1] == 1 && s[2] > 1 { stages += 1 }
        }
        subsamplingStages = stages
        let out = try linear("pre_encode.out")
        guard out.output == dModel, out.input % subsamplingChannels == 0 else {
            throw fail("pre_encode.out maps \(out.input) → \(out.output), expected channels·freq → \(dModel)")
        }
        subsampledFeatures = out.input / subsamplingChannels
        if let declared = g.input("audio_signal")?.dims, declared.count == 3, let features = declared[1] {
            melFeatures = features
        } else {
            throw fail("audio_signal does not declare its feature count ([batch, features, time])")
        }
        var freq = melFeatures
        for _ in 0..<subsamplingStages { freq = freq / 2 + 1 }
        guard freq == subsampledFeatures else {
            throw fail("\(melFeatures) mel features subsample to \(freq) bins, but pre_encode.out expects \(subsampledFeatures)")
        }

        // Every layer complete and shaped like layer 0.
        for n in 0..<layers {
            for module in Self.layerModules {
                for suffix in module.bias ? ["weight", "bias"] : ["weight"] {
                    let name = "layers.\(n).\(module.name).\(suffix)"
                    let shape = try param(name).shape
                    let reference = try param("layers.0.\(module.name).\(suffix)").shape
                    guard shape == reference else { throw fail("\(name) has shape \(shape), layer 0 has \(reference)") }
                }
            }
            for name in ["pos_bias_u", "pos_bias_v"] {
                guard try param("layers.\(n).self_attn.\(name)").shape == [heads, headDim] else {
                    throw fail("layers.\(n).self_attn.\(name) is not [\(heads), \(headDim)]")
                }
            }
        }

        guard let table = g.positionalTableShape, table.count == 3, table[2] == dModel else {
            throw fail("no relative positional table ([1, 2·max_len − 1, \(dModel)] Constant) in the graph")
        }
        positionalRows = table[1]
        layerNormEpsilon = g.layerNormEpsilon ?? 1e-5

        var pre = 0, layer0 = 0, total = 0
        for (key, p) in g.parameters {
            guard key.hasPrefix(prefix + "pre_encode.") || key.hasPrefix(prefix + "layers.") else { continue }
            total += p.count
            if key.hasPrefix(prefix + "pre_encode.") { pre += p.count }
            if key.hasPrefix(prefix + "layers.0.") { layer0 += p.count }
        }
        preEncodeParameters = pre
        layerParameters = layer0
        parameterCount = total

        try checkSize(layers, 1...1_000, "the number of layers", path)
        try checkSize(convKernel, 1...1_024, "the depthwise conv kernel", path)
        try checkSize(subsamplingStages, 1...6, "the number of stride-2 subsampling stages", path)
        try checkSize(melFeatures, 1...1_024, "the number of mel features", path)
        guard layerNormEpsilon.isFinite, layerNormEpsilon > 0, layerNormEpsilon < 1 else {
            throw fail("the LayerNorm epsilon is \(layerNormEpsilon), expected a small positive number")
        }
        guard positionalRows % 2 == 1 else {
            throw fail("the positional table has \(positionalRows) rows, expected 2·max_len − 1 (odd)")
        }
        try validateShapes(expectedShapes, in: g, prefix: prefix)
    }
}
