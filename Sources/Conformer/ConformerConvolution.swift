import STTTensor
import STTWeightLoader

/// NeMo's ConformerConvolution with a causal depthwise conv: pointwise_conv1 (d → 2d) · GLU · depthwise conv over
/// [time cache; frames] · LayerNorm (named `batch_norm`) · Swish · pointwise_conv2 (d → d).
package struct ConformerConvolution: Sendable {
    package let pointwiseConv1: Linear
    /// depthwise_conv.weight [d, 1, k] stored tap-major [k, d] at load, so that a tap's channels are contiguous.
    let depthwiseTaps: Tensor
    let depthwiseBias: Tensor
    package let batchNorm: LayerNorm
    package let pointwiseConv2: Linear
    package let kernel: Int

    init(_ r: WeightReader, _ name: String, dModel d: Int, kernel: Int, epsilon: Float) throws(LoaderError) {
        pointwiseConv1 = try Linear(r, name + ".pointwise_conv1", inputs: d, outputs: 2 * d)
        let depthwise = try r.tensor(name + ".depthwise_conv.weight", shape: [d, 1, kernel])
        depthwiseTaps = Tensor(zeros: [kernel, d])
        for c in 0..<d {
            for k in 0..<kernel { depthwiseTaps.data[k * d + c] = depthwise.data[c * kernel + k] }
        }
        depthwiseBias = try r.tensor(name + ".depthwise_conv.bias", shape: [d])
        batchNorm = try LayerNorm(r, name + ".batch_norm", width: d, epsilon: epsilon)
        pointwiseConv2 = try Linear(r, name + ".pointwise_conv2", inputs: d, outputs: d)
        self.kernel = kernel
    }

    /// residual += Conv(x) over the rows of one or more streams: `stream(i)` gives stream i's rows and its time
    /// cache, which supplies the kernel − 1 GLU outputs before those rows and then keeps the last kernel − 1 of
    /// [cache; rows]. The pointwise products and norms run once over all rows.
    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, addingTo residual: UnsafeMutablePointer<Float>,
                        streams: Int, stream: (Int) -> (rows: Range<Int>, cache: Cache), workspace w: EncoderWorkspace) {
        let d = pointwiseConv2.outputs
        let wide = w.hidden                 // [rows, 2d]
        let conv = w.hidden + rows * 2 * d  // [rows, d]
        pointwiseConv1(x, rows: rows, into: wide, workspace: w)
        Kernels.glu(wide, rows: rows, channels: d, into: w.glu)
        w.profile?.lap(.convPointwise)
        for i in 0..<streams {
            let (range, cache) = stream(i)
            let first = range.lowerBound * d
            Convolution.causalDepthwiseTime(history: cache.frames, current: w.glu + first, frames: range.count,
                                            channels: d, kernel: kernel, taps: depthwiseTaps.data,
                                            bias: depthwiseBias.data, into: conv + first)
            cache.append(w.glu + first, rows: range.count)
        }
        w.profile?.lap(.convDepthwise)
        batchNorm(conv, rows: rows, into: conv)
        w.profile?.lap(.layerNorm)
        Kernels.swish(conv, count: rows * d)
        pointwiseConv2(conv, rows: rows, into: residual, accumulate: true, workspace: w)
        w.profile?.lap(.convPointwise)
    }

    /// Scratch floats per row the module needs in the workspace's `hidden` (the GLU input and the conv output).
    static func hiddenPerRow(width d: Int) -> Int { 3 * d }
}

extension ConformerConvolution {
    /// One stream's time cache of one layer: the last kernel − 1 GLU outputs, time-major [kernel − 1, d] (NeMo's
    /// cache_last_time, which the export stores channel-major).
    package final class Cache {
        package let size: Int
        let width: Int
        private let storage: Tensor
        var frames: UnsafeMutablePointer<Float> { storage.data }

        init(kernel: Int, width: Int) {
            size = kernel - 1
            self.width = width
            storage = Tensor(zeros: [max(size, 1), width])
        }

        /// Keeps the last `size` rows of [cache; rows].
        func append(_ rows: UnsafePointer<Float>, rows n: Int) {
            let d = width
            if n >= size {
                frames.update(from: rows + (n - size) * d, count: size * d)
            } else {
                frames.update(from: frames + n * d, count: (size - n) * d)
                (frames + (size - n) * d).update(from: rows, count: n * d)
            }
        }

        func reset() { storage.data.update(repeating: 0, count: storage.count) }
    }
}
