import STTTensor
import STTWeightLoader

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

    /// - Parameters:
    ///   - table: the export's relative positional table; `distances` are those the attention will be asked for.
    init(_ r: WeightReader, index n: Int, description e: EncoderDescription, table: Tensor,
         distances: ClosedRange<Int>) throws(LoaderError) {
        let name = "layers.\(n)"
        let d = e.dModel, eps = e.layerNormEpsilon
        normFeedForward1 = try LayerNorm(r, name + ".norm_feed_forward1", width: d, epsilon: eps)
        feedForward1 = try ConformerFeedForward(r, name + ".feed_forward1", dModel: d, hidden: e.feedForward)
        normSelfAtt = try LayerNorm(r, name + ".norm_self_att", width: d, epsilon: eps)
        selfAttn = try RelPositionMultiHeadAttention(r, name + ".self_attn", heads: e.heads, headDim: e.headDim,
                                                     table: table, distances: distances)
        normConv = try LayerNorm(r, name + ".norm_conv", width: d, epsilon: eps)
        conv = try ConformerConvolution(r, name + ".conv", dModel: d, kernel: e.convKernel, epsilon: eps)
        normFeedForward2 = try LayerNorm(r, name + ".norm_feed_forward2", width: d, epsilon: eps)
        feedForward2 = try ConformerFeedForward(r, name + ".feed_forward2", dModel: d, hidden: e.feedForward)
        normOut = try LayerNorm(r, name + ".norm_out", width: d, epsilon: eps)
    }

    /// One streaming step of `rows` frames x [rows, d], in place; reads and advances this layer's caches.
    func callAsFunction(_ x: UnsafeMutablePointer<Float>, rows: Int, cache: LayerCache, workspace: EncoderWorkspace) {
        self(x, rows: rows, attention: .streaming(cache.attention), convCache: cache.conv, workspace: workspace)
    }

    /// x [rows, d] through the block, in place.
    func callAsFunction(_ x: UnsafeMutablePointer<Float>, rows n: Int, attention: RelPositionMultiHeadAttention.Mode,
                        convCache: ConformerConvolution.Cache, workspace w: EncoderWorkspace) {
        let normed = w.normed
        normFeedForward1(x, rows: n, into: normed)
        feedForward1(normed, rows: n, addingTo: x, scale: 0.5, workspace: w)

        normSelfAtt(x, rows: n, into: normed)
        selfAttn(normed, rows: n, addingTo: x, attention, workspace: w)

        normConv(x, rows: n, into: normed)
        conv(normed, rows: n, addingTo: x, cache: convCache, workspace: w)

        normFeedForward2(x, rows: n, into: normed)
        feedForward2(normed, rows: n, addingTo: x, scale: 0.5, workspace: w)

        normOut(x, rows: n, into: x)
    }
}
