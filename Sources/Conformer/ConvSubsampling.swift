import Tensor
import WeightLoader

/// NeMo's ConvSubsampling, `dw_striding` with causal padding: a full 3×3 stride-2 conv from the single input plane,
/// then (depthwise 3×3 stride 2 · pointwise 1×1 · ReLU) stages, flatten (feature = channel·freq + f), Linear → d.
/// Time is the image height and mel frequency the width; every stage maps L → ⌊L/2⌋ + 1 on both axes.
public struct ConvSubsampling: Sendable {
    public struct Stage: Sendable {
        let depthwiseWeight: Tensor   // [C, 1, 3, 3]
        let depthwiseBias: Tensor
        let pointwiseWeight: Tensor   // [C, C, 1, 1]: a [out, in] matrix
        let pointwiseBias: Tensor
    }

    let firstWeight: Tensor           // conv.0 [C, 1, 3, 3]
    let firstBias: Tensor
    let stages: [Stage]
    let out: Linear
    public let channels: Int
    public let melFeatures: Int

    init(_ r: ParameterReader, description e: EncoderDescription) throws(LoaderError) {
        channels = e.subsamplingChannels
        melFeatures = e.melFeatures
        firstWeight = try r.tensor("pre_encode.conv.0.weight")
        firstBias = try r.tensor("pre_encode.conv.0.bias")
        // dw_striding: conv.0, ReLU, then per stage [depthwise, pointwise, ReLU] at indices 2,3,(4) · 5,6,(7) · …
        var stages: [Stage] = []
        for s in 0..<(e.subsamplingStages - 1) {
            let dw = 2 + 3 * s, pw = dw + 1
            let pointwise = try r.tensor("pre_encode.conv.\(pw).weight")
            guard pointwise.shape == [channels, channels, 1, 1] else {
                throw .notFastConformer(r.graph.path, "pre_encode.conv.\(pw).weight has shape \(pointwise.shape)")
            }
            stages.append(Stage(
                depthwiseWeight: try r.tensor("pre_encode.conv.\(dw).weight"),
                depthwiseBias: try r.tensor("pre_encode.conv.\(dw).bias"),
                pointwiseWeight: pointwise,
                pointwiseBias: try r.tensor("pre_encode.conv.\(pw).bias")))
        }
        self.stages = stages
        out = try Linear(r, "pre_encode.out")
    }

    /// Frames out for `frames` in.
    public func outputLength(_ frames: Int) -> Int {
        var n = Convolution.causalStride2Length(frames)
        for _ in stages { n = Convolution.causalStride2Length(n) }
        return n
    }

    /// Scratch floats needed for an input of `frames` mel frames (two plane buffers and the flattened rows).
    func scratchSize(frames: Int) -> Int {
        let h = Convolution.causalStride2Length(frames), w = Convolution.causalStride2Length(melFeatures)
        return 2 * channels * h * w + outputLength(frames) * out.inputs
    }

    /// mel [frames, features] (time-major) → [outputLength(frames), d].
    func callAsFunction(_ mel: UnsafePointer<Float>, frames: Int, into output: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutablePointer<Float>) {
        var h = Convolution.causalStride2Length(frames), w = Convolution.causalStride2Length(melFeatures)
        let planeCapacity = channels * h * w
        let a = scratch, b = scratch + planeCapacity
        Convolution.causalStride2FromOnePlane(mel, height: frames, width: melFeatures, weights: firstWeight.data,
                                              bias: firstBias.data, channels: channels, into: a)
        Kernels.relu(a, count: channels * h * w)
        for stage in stages {
            let oh = Convolution.causalStride2Length(h), ow = Convolution.causalStride2Length(w)
            Convolution.causalStride2Depthwise(a, channels: channels, height: h, width: w,
                                               weights: stage.depthwiseWeight.data, bias: stage.depthwiseBias.data,
                                               into: b)
            // Pointwise over planes: out[C, hw] = W[C, C] · in[C, hw] + bias.
            let hw = oh * ow
            for c in 0..<channels { (a + c * hw).update(repeating: stage.pointwiseBias.data[c], count: hw) }
            Kernels.gemm(m: channels, n: hw, k: channels, a: stage.pointwiseWeight.data, lda: channels,
                         b: b, ldb: hw, transposedB: false, c: a, ldc: hw, accumulate: true)
            Kernels.relu(a, count: channels * hw)
            (h, w) = (oh, ow)
        }
        // Flatten [C, T, F] → [T, C·F].
        let flat = scratch + 2 * planeCapacity
        for t in 0..<h {
            for c in 0..<channels {
                (flat + t * channels * w + c * w).update(from: a + c * h * w + t * w, count: w)
            }
        }
        out(flat, rows: h, into: output)
    }
}
