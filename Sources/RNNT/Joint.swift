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

    init(graph g: ExportedGraph, description d: DecoderDescription) throws(LoaderError) {
        func linear(_ name: String) throws(LoaderError) -> (PackedMatrix, Tensor) {
            guard let w = g.parameter(name + ".weight"), let b = g.parameter(name + ".bias") else {
                throw .notFastConformer(g.path, "it has no \(name)")
            }
            let values = try w.load()
            let torch = w.layout == .torch
            let (rows, columns) = torch ? (w.shape[1], w.shape[0]) : (w.shape[0], w.shape[1])
            return (PackedMatrix(values.data, rows: rows, columns: columns, transposed: torch), try b.load())
        }
        (enc, encBias) = try linear("joint.enc")
        (pred, predBias) = try linear("joint.pred")
        let outIndex = g.parameters.keys.compactMap { key -> Int? in
            guard key.hasPrefix("joint.joint_net."), key.hasSuffix(".weight") else { return nil }
            return Int(key.dropFirst("joint.joint_net.".count).dropLast(".weight".count))
        }.max() ?? 2
        (out, outBias) = try linear("joint.joint_net.\(outIndex)")
        hidden = d.jointHidden
        classes = d.classes
    }

    /// f = enc(frame), [hidden].
    func projectEncoder(_ frame: UnsafePointer<Float>, into f: UnsafeMutablePointer<Float>) {
        f.update(from: encBias.data, count: hidden)
        Kernels.gemm(m: 1, x: frame, ldx: enc.rows, enc, y: f, ldy: hidden, accumulate: true)
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
