import STTTensor
import STTWeightLoader

/// NeMo's RNNTJoint: logits = out(ReLU(enc(e_t) + pred(h_u))), raw (no log-softmax: argmax is the same).
package struct Joint: Sendable {
    let enc: PackedMatrix
    let encBias: Tensor
    let pred: PackedMatrix
    let predBias: Tensor
    let out: PackedMatrix
    let outBias: Tensor
    package let hidden: Int
    package let classes: Int

    init(_ r: WeightReader, description d: DecoderDescription) throws(LoaderError) {
        hidden = d.jointHidden
        classes = d.classes
        enc = try r.matrix("joint.enc.weight", inputs: d.encoderDim, outputs: hidden)
        encBias = try r.tensor("joint.enc.bias", shape: [hidden])
        pred = try r.matrix("joint.pred.weight", inputs: d.predictionHidden, outputs: hidden)
        predBias = try r.tensor("joint.pred.bias", shape: [hidden])
        out = try r.matrix(d.jointOutput + ".weight", inputs: hidden, outputs: classes)
        outBias = try r.tensor(d.jointOutput + ".bias", shape: [classes])
    }

    /// f = enc(frame) for `rows` frames `stride` floats apart → [rows, hidden].
    func projectEncoder(_ frames: UnsafePointer<Float>, rows: Int, stride: Int, into f: UnsafeMutablePointer<Float>) {
        Kernels.fillRows(f, rows: rows, width: hidden, with: encBias.data)
        Kernels.gemm(m: rows, x: frames, ldx: stride, enc, y: f, ldy: hidden, accumulate: true)
    }

    /// g = pred(h), [hidden].
    func projectPrediction(_ h: UnsafePointer<Float>, into g: UnsafeMutablePointer<Float>) {
        g.update(from: predBias.data, count: hidden)
        Kernels.gemm(m: 1, x: h, ldx: pred.rows, pred, y: g, ldy: hidden, accumulate: true)
    }

    /// logits = out(ReLU(f + g)), [classes]; `sum` holds hidden floats.
    func logits(f: UnsafePointer<Float>, g: UnsafePointer<Float>, sum: UnsafeMutablePointer<Float>,
                into logits: UnsafeMutablePointer<Float>) {
        for j in 0..<hidden { sum[j] = max(0, f[j] + g[j]) }
        logits.update(from: outBias.data, count: classes)
        Kernels.gemm(m: 1, x: sum, ldx: hidden, out, y: logits, ldy: classes, accumulate: true)
    }
}
