import STTTensor

/// Everything one stream owns in the encoder: the three caches of every layer and scratch space, all allocated once
/// when the stream opens (sized for its look-ahead) and reused by every step.
///
/// Per layer the attention cache holds the last `leftContext` LayerNorm-ed attention inputs (what NeMo and the ONNX
/// export call cache_last_channel) and, alongside, their key and value projections so a step projects only its new
/// frames. The conv cache holds the last kernel − 1 GLU outputs (cache_last_time), time-major here.
package final class EncoderState {
    package let layers: Int
    package let dModel: Int
    package let leftContext: Int
    package let convCacheSize: Int
    /// The most encoder frames one step may produce, and the widest mel window it may take.
    package let maxFrames: Int
    package let maxWindow: Int
    /// Valid rows in the attention cache (filled from the end), as cache_last_channel_len.
    package internal(set) var cacheLength = 0

    private let storage: Tensor
    private let cacheRows: Int
    private let attentionInputs: UnsafeMutablePointer<Float>
    private let keyCache: UnsafeMutablePointer<Float>
    private let valueCache: UnsafeMutablePointer<Float>
    private let timeCaches: UnsafeMutablePointer<Float>

    let stem: UnsafeMutablePointer<Float>
    let stemScratch: UnsafeMutablePointer<Float>
    let x: UnsafeMutablePointer<Float>
    let normed: UnsafeMutablePointer<Float>
    let query: UnsafeMutablePointer<Float>
    let context: UnsafeMutablePointer<Float>
    let projected: UnsafeMutablePointer<Float>
    let glu: UnsafeMutablePointer<Float>
    let hidden: UnsafeMutablePointer<Float>
    let attentionScratch: UnsafeMutablePointer<Float>
    /// Rows repacked for the weight products (see `Kernels.gemm`).
    let rowScratch: UnsafeMutablePointer<Float>

    /// A fresh stream (zero caches) whose steps produce at most `maxFrames` encoder frames from windows of at most
    /// `maxWindow` mel frames.
    package init(encoder: ConformerEncoder, maxFrames: Int, maxWindow: Int) {
        let e = encoder.description
        let d = e.dModel
        layers = e.layers
        dModel = d
        leftContext = encoder.leftContext
        convCacheSize = e.convCacheSize
        self.maxFrames = maxFrames
        self.maxWindow = maxWindow
        cacheRows = leftContext + maxFrames
        let ff = e.feedForward
        let stemOut = encoder.preEncode.outputLength(maxWindow)
        let sizes = [
            3 * layers * cacheRows * d,                    // attention inputs, keys, values
            layers * convCacheSize * d,                    // time caches
            stemOut * d,                                   // stem output
            encoder.preEncode.scratchSize(frames: maxWindow),
            6 * maxFrames * d,                             // x, normed, query, context, projected, glu
            maxFrames * max(ff, 3 * d),                    // hidden
            RelPositionMultiHeadAttention.scratchSize(queries: maxFrames, keys: cacheRows, headDim: e.headDim),
            max(encoder.preEncode.productScratch(frames: maxWindow),
                Kernels.gemmScratch(rows: maxFrames, inputs: max(ff, 2 * d))),
        ]
        storage = Tensor(zeros: [sizes.reduce(0, +)])
        var cursor = storage.data
        func take(_ count: Int) -> UnsafeMutablePointer<Float> { defer { cursor += count }; return cursor }
        attentionInputs = take(layers * cacheRows * d)
        keyCache = take(layers * cacheRows * d)
        valueCache = take(layers * cacheRows * d)
        timeCaches = take(layers * convCacheSize * d)
        stem = take(stemOut * d)
        stemScratch = take(sizes[3])
        x = take(maxFrames * d)
        normed = take(maxFrames * d)
        query = take(maxFrames * d)
        context = take(maxFrames * d)
        projected = take(maxFrames * d)
        glu = take(maxFrames * d)
        hidden = take(maxFrames * max(ff, 3 * d))
        attentionScratch = take(sizes[6])
        rowScratch = take(sizes[7])
    }

    /// Rows [0, leftContext) are the cache, then room for one step's frames.
    func attentionInput(_ layer: Int) -> UnsafeMutablePointer<Float> { attentionInputs + layer * cacheRows * dModel }
    func keys(_ layer: Int) -> UnsafeMutablePointer<Float> { keyCache + layer * cacheRows * dModel }
    func values(_ layer: Int) -> UnsafeMutablePointer<Float> { valueCache + layer * cacheRows * dModel }
    func timeCache(_ layer: Int) -> UnsafeMutablePointer<Float> { timeCaches + layer * convCacheSize * dModel }

    /// Back to the state of a new stream.
    package func reset() {
        cacheLength = 0
        attentionInputs.update(repeating: 0, count: layers * cacheRows * dModel)
        keyCache.update(repeating: 0, count: layers * cacheRows * dModel)
        valueCache.update(repeating: 0, count: layers * cacheRows * dModel)
        timeCaches.update(repeating: 0, count: layers * convCacheSize * dModel)
    }

    /// The caches in the ONNX export's layout: cache_last_channel [layers, leftContext, d],
    /// cache_last_time [layers, d, kernel − 1], cache_last_channel_len.
    package func exportedCaches() -> (channel: Tensor, time: Tensor, length: Int) {
        let d = dModel
        let channel = Tensor(zeros: [layers, leftContext, d])
        let time = Tensor(zeros: [layers, d, convCacheSize])
        for l in 0..<layers {
            (channel.data + l * leftContext * d).update(from: attentionInput(l), count: leftContext * d)
            let cache = timeCache(l)
            for t in 0..<convCacheSize {
                for c in 0..<d { time.data[(l * d + c) * convCacheSize + t] = cache[t * d + c] }
            }
        }
        return (channel, time, cacheLength)
    }
}
