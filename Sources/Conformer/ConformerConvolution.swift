import STTTensor
import STTWeightLoader

/// NeMo's ConformerConvolution with a causal depthwise conv: pointwise_conv1 (d → 2d) · GLU · depthwise conv over
/// [time cache; frames] · LayerNorm (named `batch_norm`) · Swish · pointwise_conv2 (d → d).
package struct ConformerConvolution: Sendable {
    package let pointwiseConv1: Linear
    let depthwiseWeight: Tensor   // [d, 1, k]
    let depthwiseBias: Tensor
    package let batchNorm: LayerNorm
    package let pointwiseConv2: Linear
    package let kernel: Int

    init(_ r: ParameterReader, _ name: String, epsilon: Float) throws(LoaderError) {
        pointwiseConv1 = try Linear(r, name + ".pointwise_conv1")
        depthwiseWeight = try r.tensor(name + ".depthwise_conv.weight")
        depthwiseBias = try r.tensor(name + ".depthwise_conv.bias")
        batchNorm = try LayerNorm(r, name + ".batch_norm", epsilon: epsilon)
        pointwiseConv2 = try Linear(r, name + ".pointwise_conv2")
        kernel = depthwiseWeight.shape[2]
    }

    /// residual += Conv(x). `timeCache` holds the kernel − 1 GLU outputs before these frames (time-major
    /// [k − 1, d]) and is advanced to the last k − 1 GLU outputs. Scratch: rows × 3d floats plus `glu`.
    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, addingTo residual: UnsafeMutablePointer<Float>,
                        timeCache: UnsafeMutablePointer<Float>, glu: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutablePointer<Float>, rowScratch: UnsafeMutablePointer<Float>?) {
        let d = pointwiseConv2.outputs
        let wide = scratch                 // [rows, 2d]
        let conv = scratch + rows * 2 * d  // [rows, d]
        pointwiseConv1(x, rows: rows, into: wide, scratch: rowScratch)
        Kernels.glu(wide, rows: rows, channels: d, into: glu)
        Convolution.causalDepthwiseTime(history: timeCache, current: glu, frames: rows, channels: d, kernel: kernel,
                                        weights: depthwiseWeight.data, bias: depthwiseBias.data, into: conv)
        // New time cache: the last k − 1 rows of [cache; glu].
        let past = kernel - 1
        if rows >= past {
            timeCache.update(from: glu + (rows - past) * d, count: past * d)
        } else {
            timeCache.update(from: timeCache + rows * d, count: (past - rows) * d)
            (timeCache + (past - rows) * d).update(from: glu, count: rows * d)
        }
        batchNorm(conv, rows: rows, into: conv)
        Kernels.swish(conv, count: rows * d)
        pointwiseConv2(conv, rows: rows, into: residual, accumulate: true, scratch: rowScratch)
    }
}

/// One FastConformer block (macaron): ½·FF1, self-attention with its cache, convolution with its cache, ½·FF2,
/// and the layer's own output LayerNorm.
package struct ConformerLayer: Sendable {
    package let normFeedForward1: LayerNorm
    package let feedForward1: ConformerFeedForward
    package let normSelfAtt: LayerNorm
    package let selfAttn: RelPositionMultiHeadAttention
    package let normConv: LayerNorm
    package let conv: ConformerConvolution
    package let normFeedForward2: LayerNorm
    package let feedForward2: ConformerFeedForward
    package let normOut: LayerNorm

    init(_ r: ParameterReader, index n: Int, description e: EncoderDescription) throws(LoaderError) {
        let name = "layers.\(n)"
        let eps = e.layerNormEpsilon
        normFeedForward1 = try LayerNorm(r, name + ".norm_feed_forward1", epsilon: eps)
        feedForward1 = try ConformerFeedForward(r, name + ".feed_forward1")
        normSelfAtt = try LayerNorm(r, name + ".norm_self_att", epsilon: eps)
        selfAttn = try RelPositionMultiHeadAttention(r, name + ".self_attn", heads: e.heads, headDim: e.headDim)
        normConv = try LayerNorm(r, name + ".norm_conv", epsilon: eps)
        conv = try ConformerConvolution(r, name + ".conv", epsilon: eps)
        normFeedForward2 = try LayerNorm(r, name + ".norm_feed_forward2", epsilon: eps)
        feedForward2 = try ConformerFeedForward(r, name + ".feed_forward2")
        normOut = try LayerNorm(r, name + ".norm_out", epsilon: eps)
    }
}
