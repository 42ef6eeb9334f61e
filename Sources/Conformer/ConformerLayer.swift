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

    /// One streaming step over the rows of one or more streams, in place: x [rows, d] holds each stream's rows
    /// contiguously, and `stream(i)` gives stream i's rows and its caches of this layer. Everything row-wise (norms,
    /// feed-forwards, every weight product) runs once over all rows, so the weights are read once for the batch;
    /// attention and the depthwise convolution run per stream, each reading and advancing its own caches.
    func callAsFunction(_ x: UnsafeMutablePointer<Float>, rows n: Int, streams: Int,
                        stream: (Int) -> (rows: Range<Int>, cache: LayerCache), workspace w: EncoderWorkspace) {
        forward(x, rows: n, workspace: w,
                attention: { normed in
                    selfAttn.streaming(normed, rows: n, addingTo: x, streams: streams,
                                       stream: { i in let s = stream(i); return (s.rows, s.cache.attention) },
                                       workspace: w)
                },
                conv: { normed in
                    conv(normed, rows: n, addingTo: x, streams: streams,
                         stream: { i in let s = stream(i); return (s.rows, s.cache.conv) }, workspace: w)
                })
    }

    /// A whole utterance x [rows, d] through the block, in place, under NeMo's chunked-limited attention mask; the
    /// convolution starts from `convCache` (silence for an offline pass).
    func offline(_ x: UnsafeMutablePointer<Float>, rows n: Int, chunk: Int, leftChunks: Int,
                 convCache: ConformerConvolution.Cache, workspace w: EncoderWorkspace) {
        forward(x, rows: n, workspace: w,
                attention: { normed in
                    selfAttn.chunkedLimited(normed, rows: n, addingTo: x, chunk: chunk, leftChunks: leftChunks,
                                            workspace: w)
                },
                conv: { normed in
                    conv(normed, rows: n, addingTo: x, streams: 1, stream: { _ in (0..<n, convCache) }, workspace: w)
                })
    }

    /// The macaron block around the two modules whose state differs between a streaming step and an offline pass.
    private func forward(_ x: UnsafeMutablePointer<Float>, rows n: Int, workspace w: EncoderWorkspace,
                         attention: (UnsafePointer<Float>) -> Void, conv: (UnsafePointer<Float>) -> Void) {
        let normed = w.normed, profile = w.profile
        normFeedForward1(x, rows: n, into: normed)
        profile?.lap(.layerNorm)
        feedForward1(normed, rows: n, addingTo: x, scale: 0.5, workspace: w)
        profile?.lap(.feedForward)

        normSelfAtt(x, rows: n, into: normed)
        profile?.lap(.layerNorm)
        attention(normed)

        normConv(x, rows: n, into: normed)
        profile?.lap(.layerNorm)
        conv(normed)

        normFeedForward2(x, rows: n, into: normed)
        profile?.lap(.layerNorm)
        feedForward2(normed, rows: n, addingTo: x, scale: 0.5, workspace: w)
        profile?.lap(.feedForward)

        normOut(x, rows: n, into: x)
        profile?.lap(.layerNorm)
    }
}
