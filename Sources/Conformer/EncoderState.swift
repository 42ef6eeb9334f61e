import STTTensor

/// One layer's share of a stream: its attention cache and its convolution time cache.
package struct LayerCache {
    package let attention: RelPositionMultiHeadAttention.Cache
    package let conv: ConformerConvolution.Cache
}

/// Everything one stream owns in the encoder: the caches of every layer, one workspace of scratch buffers, and how
/// many cached rows are valid. All of it is allocated when the stream opens (sized for its look-ahead) and reused by
/// every step.
package final class EncoderState {
    package let layers: [LayerCache]
    package let workspace: EncoderWorkspace
    package let leftContext: Int
    /// The most encoder frames one step may produce, and the widest mel window it may take.
    package let maxFrames: Int
    package let maxWindow: Int

    /// Valid rows in the attention caches (filled from the end), as cache_last_channel_len.
    package var cacheLength: Int { layers.first?.attention.length ?? 0 }

    /// A fresh stream (zero caches) whose steps produce at most `maxFrames` encoder frames from windows of at most
    /// `maxWindow` mel frames.
    package init(encoder: ConformerEncoder, maxFrames: Int, maxWindow: Int) {
        let d = encoder.dModel
        leftContext = encoder.leftContext
        self.maxFrames = maxFrames
        self.maxWindow = maxWindow
        layers = encoder.layers.map { layer in
            LayerCache(attention: .init(leftContext: encoder.leftContext, maxStepRows: maxFrames, width: d),
                       conv: .init(kernel: layer.conv.kernel, width: d))
        }
        workspace = EncoderWorkspace(encoder: encoder, rows: maxFrames, window: maxWindow,
                                     attention: (queries: maxFrames, keys: encoder.leftContext + maxFrames))
    }

    /// Back to the state of a new stream.
    package func reset() {
        for cache in layers {
            cache.attention.reset()
            cache.conv.reset()
        }
    }

    /// The caches in the ONNX export's layout: cache_last_channel [layers, leftContext, d],
    /// cache_last_time [layers, d, kernel − 1], cache_last_channel_len.
    package func exportedCaches() -> (channel: Tensor, time: Tensor, length: Int) {
        let d = workspace.width
        let past = layers.first?.conv.size ?? 0
        let channel = Tensor(zeros: [layers.count, leftContext, d])
        let time = Tensor(zeros: [layers.count, d, past])
        for (l, cache) in layers.enumerated() {
            (channel.data + l * leftContext * d).update(from: cache.attention.inputs, count: leftContext * d)
            let frames = cache.conv.frames
            for t in 0..<past {
                for c in 0..<d { time.data[(l * d + c) * past + t] = frames[t * d + c] }
            }
        }
        return (channel, time, cacheLength)
    }
}

/// The streams of one batched encoder step (see `ConformerEncoder.step(_:)`): each stream's rows, one after another,
/// in a workspace sized for `capacity` streams of up to `maxFrames` rows. Allocated once and reused: `clear()` empties
/// it for the next step.
package final class EncoderBatch {
    /// The most streams one step takes.
    package let capacity: Int
    /// The most rows one stream's step may add.
    package let maxFrames: Int
    let workspace: EncoderWorkspace
    private var states: [EncoderState] = []
    /// starts[i] is stream i's first row; starts[count] is the rows in all.
    private var starts: [Int]

    /// A batch of up to `capacity` streams whose steps produce at most `maxFrames` frames each.
    package init(encoder: ConformerEncoder, capacity: Int, maxFrames: Int) {
        self.capacity = max(1, capacity)
        self.maxFrames = maxFrames
        workspace = EncoderWorkspace(encoder: encoder, rows: self.capacity * maxFrames, window: 0,
                                     attention: (queries: maxFrames, keys: encoder.leftContext + maxFrames))
        states.reserveCapacity(self.capacity)
        starts = [0]
        starts.reserveCapacity(self.capacity + 1)
    }

    /// Streams added since the last `clear()`.
    package var count: Int { states.count }
    /// Rows of all of them.
    package var rows: Int { starts[states.count] }

    /// Stream i's rows after `ConformerEncoder.step(_:)`: [rows, d].
    package func output(_ i: Int) -> (frames: UnsafePointer<Float>, rows: Int) {
        (UnsafePointer(workspace.x + starts[i] * workspace.width), starts[i + 1] - starts[i])
    }

    /// Whether one more step of `state` fits.
    package func hasRoom(for state: EncoderState) -> Bool { count < capacity && state.maxFrames <= maxFrames }

    /// Empties the batch (its buffers stay).
    package func clear() {
        states.removeAll(keepingCapacity: true)
        starts.removeAll(keepingCapacity: true)
        starts.append(0)
    }

    /// Where the next stream's flattened stem rows go (`ConvSubsampling.convolve`).
    func nextStemRows(width: Int) -> UnsafeMutablePointer<Float> { workspace.stem + rows * width }

    /// Adds a stream whose `n` stem rows are already at `nextStemRows`.
    func append(_ state: EncoderState, rows n: Int) {
        starts.append(rows + n)
        states.append(state)
    }

    func segment(_ i: Int, layer: Int) -> (rows: Range<Int>, cache: LayerCache) {
        (starts[i]..<starts[i + 1], states[i].layers[layer])
    }
}

/// Scratch buffers for up to `rows` frames per layer, shared by every layer of a step (or of an offline pass).
package final class EncoderWorkspace {
    package let rows: Int
    package let width: Int
    private let storage: Tensor

    /// The stem's flattened rows, before its output projection ([rows, ConvSubsampling.flatWidth]).
    let stem: UnsafeMutablePointer<Float>
    /// The stem's feature maps for one window.
    let stemScratch: UnsafeMutablePointer<Float>
    let x: UnsafeMutablePointer<Float>
    let normed: UnsafeMutablePointer<Float>
    let query: UnsafeMutablePointer<Float>
    /// Keys and values of an offline pass (a streaming step writes its own into the attention cache).
    let key: UnsafeMutablePointer<Float>
    let value: UnsafeMutablePointer<Float>
    let context: UnsafeMutablePointer<Float>
    let projected: UnsafeMutablePointer<Float>
    let glu: UnsafeMutablePointer<Float>
    /// The feed-forward's inner rows, or the convolution module's GLU input and conv output.
    let hidden: UnsafeMutablePointer<Float>
    let attentionScratch: UnsafeMutablePointer<Float>
    /// Rows repacked for the weight products (see `Kernels.gemm`).
    let products: UnsafeMutablePointer<Float>
    /// The model's threads for the weight products.
    let pool: ComputePool?
    /// Where the steps' time goes, when someone is measuring it.
    package var profile: OperatorProfile?

    /// - Parameters:
    ///   - rows: the most frames a layer processes at once; `window`: the most mel frames the stem takes at once.
    ///   - attention: the largest block of queries × keys one attention call scores.
    init(encoder: ConformerEncoder, rows: Int, window: Int, attention: (queries: Int, keys: Int)) {
        let e = encoder.description
        let d = e.dModel
        self.rows = rows
        width = d
        pool = encoder.pool
        let hiddenWidth = max(e.feedForward, ConformerConvolution.hiddenPerRow(width: d))
        let flatWidth = encoder.preEncode.flatWidth
        let sizes = (
            stem: rows * flatWidth,
            stemScratch: encoder.preEncode.scratchSize(frames: window),
            attention: RelPositionMultiHeadAttention.scratchSize(queries: attention.queries, keys: attention.keys,
                                                                 heads: e.heads, headDim: e.headDim),
            products: max(encoder.preEncode.productScratch(frames: window),
                          Kernels.gemmScratch(rows: rows, inputs: max(e.feedForward, 2 * d, flatWidth))))
        storage = Tensor(zeros: [sizes.stem + sizes.stemScratch + 8 * rows * d + rows * hiddenWidth
                                 + sizes.attention + sizes.products])
        var cursor = storage.data
        func take(_ count: Int) -> UnsafeMutablePointer<Float> { defer { cursor += count }; return cursor }
        stem = take(sizes.stem)
        stemScratch = take(sizes.stemScratch)
        x = take(rows * d)
        normed = take(rows * d)
        query = take(rows * d)
        key = take(rows * d)
        value = take(rows * d)
        context = take(rows * d)
        projected = take(rows * d)
        glu = take(rows * d)
        hidden = take(rows * hiddenWidth)
        attentionScratch = take(sizes.attention)
        products = take(sizes.products)
    }
}
