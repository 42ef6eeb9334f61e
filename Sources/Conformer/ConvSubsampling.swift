import STTTensor
import STTWeightLoader

/// NeMo's ConvSubsampling, `dw_striding` with causal padding: a full 3×3 stride-2 conv from the single input plane,
/// then (depthwise 3×3 stride 2 · pointwise 1×1 · ReLU) stages, flatten (feature = channel·freq + f), Linear → d.
/// Time is the image height and mel frequency the width; every stage maps L → ⌊L/2⌋ + 1 on both axes.
/// Feature maps are held channel-last ([height, width, channels]) so the pointwise convs are products with packed
/// weights and the 3×3 taps run over contiguous channels.
package struct ConvSubsampling: Sendable {
    struct Stage: Sendable {
        let depthwise: Tensor      // [9, C]: tap-major
        let depthwiseBias: Tensor
        let pointwise: PackedMatrix
        let pointwiseBias: Tensor
    }

    let first: Tensor              // conv.0 as [9, C]
    let firstBias: Tensor
    let stages: [Stage]
    let out: Linear
    package let channels: Int
    package let melFeatures: Int

    init(_ r: WeightReader, description e: EncoderDescription) throws(LoaderError) {
        channels = e.subsamplingChannels
        melFeatures = e.melFeatures
        let c = channels
        func tapMajor(_ name: String) throws(LoaderError) -> Tensor {
            let w = try r.tensor(name, shape: [c, 1, 3, 3])
            let t = Tensor(zeros: [9, c])
            for ch in 0..<c { for tap in 0..<9 { t.data[tap * c + ch] = w.data[ch * 9 + tap] } }
            return t
        }
        first = try tapMajor("pre_encode.conv.0.weight")
        firstBias = try r.tensor("pre_encode.conv.0.bias", shape: [c])
        // dw_striding: conv.0, ReLU, then per stage [depthwise, pointwise, ReLU] at indices 2,3,(4) · 5,6,(7) · …
        var stages: [Stage] = []
        for s in 0..<(e.subsamplingStages - 1) {
            let dw = 2 + 3 * s, pw = dw + 1
            let pointwise = try r.tensor("pre_encode.conv.\(pw).weight", shape: [c, c, 1, 1])
            stages.append(Stage(
                depthwise: try tapMajor("pre_encode.conv.\(dw).weight"),
                depthwiseBias: try r.tensor("pre_encode.conv.\(dw).bias", shape: [c]),
                pointwise: PackedMatrix(pointwise.data, rows: c, columns: c, transposed: true, precision: r.precision),
                pointwiseBias: try r.tensor("pre_encode.conv.\(pw).bias", shape: [c])))
        }
        self.stages = stages
        out = try Linear(r, "pre_encode.out", inputs: c * e.subsampledFeatures, outputs: e.dModel)
    }

    /// Frames out for `frames` in.
    package func outputLength(_ frames: Int) -> Int {
        var n = Convolution.causalStride2Length(frames)
        for _ in stages { n = Convolution.causalStride2Length(n) }
        return n
    }

    /// Floats of one flattened row: the input width of `out`.
    var flatWidth: Int { out.inputs }

    /// Scratch floats the convolutions need for an input of `frames` mel frames (two feature-map buffers).
    func scratchSize(frames: Int) -> Int {
        2 * channels * Convolution.causalStride2Length(frames) * Convolution.causalStride2Length(melFeatures)
    }

    /// The convolutions of mel [frames, features] (time-major), their first `drop` frames discarded and the rest
    /// flattened into `flat` [rows, flatWidth]; returns the rows. `out` then maps them to d, for one stream or for
    /// the rows of several streams at once.
    func convolve(_ mel: UnsafePointer<Float>, frames: Int, drop: Int, into flat: UnsafeMutablePointer<Float>,
                  workspace: EncoderWorkspace) -> Int {
        let scratch = workspace.stemScratch
        let c = channels
        var h = Convolution.causalStride2Length(frames), w = Convolution.causalStride2Length(melFeatures)
        let capacity = c * h * w
        let a = scratch, b = scratch + capacity
        Convolution.causalStride2ChannelLast(mel, height: frames, width: melFeatures, inputChannels: 1, channels: c,
                                             taps: first.data, bias: firstBias.data, relu: true, into: a)
        for stage in stages {
            let oh = Convolution.causalStride2Length(h), ow = Convolution.causalStride2Length(w)
            Convolution.causalStride2ChannelLast(a, height: h, width: w, inputChannels: c, channels: c,
                                                 taps: stage.depthwise.data, bias: stage.depthwiseBias.data, into: b)
            Kernels.fillRows(a, rows: oh * ow, width: c, with: stage.pointwiseBias.data)
            Kernels.gemm(m: oh * ow, x: b, ldx: c, stage.pointwise, y: a, ldy: c, accumulate: true,
                         scratch: workspace.products, pool: workspace.pool)
            Kernels.relu(a, count: c * oh * ow)
            (h, w) = (oh, ow)
        }
        // Flatten [T, F, C] → [T, C·F] (PyTorch flattens [C, F] after moving time first), kept frames only.
        let rows = max(0, h - drop)
        for t in 0..<rows {
            let row = flat + t * c * w, frame = a + (drop + t) * w * c
            for f in 0..<w { for ch in 0..<c { row[ch * w + f] = frame[f * c + ch] } }
        }
        return rows
    }

    /// Floats of product scratch the pointwise convolutions of a window of `frames` mel frames need.
    func productScratch(frames: Int) -> Int {
        let h = Convolution.causalStride2Length(frames), w = Convolution.causalStride2Length(melFeatures)
        let firstStage = Convolution.causalStride2Length(h) * Convolution.causalStride2Length(w)
        return Kernels.gemmScratch(rows: firstStage, inputs: channels)
    }
}
