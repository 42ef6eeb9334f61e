import STTTensor
import STTWeightLoader

/// The CTC head of a CTC export (ConvASRDecoder: a 1×1 conv from encoder frames to classes; log-softmax does not
/// change the argmax, so greedy decoding skips it).
package struct CTCHead: Sendable {
    let weight: PackedMatrix
    let bias: Tensor
    package let classes: Int

    package init(graph g: ExportedGraph) throws(LoaderError) {
        let d = try CTCDescription(graph: g)
        guard let w = g.parameter(CTCDescription.weightPath), let b = g.parameter("ctc_decoder.decoder_layers.0.bias") else {
            throw .notFastConformer(g.path, "it has no CTC head")
        }
        let values = try w.load()
        weight = PackedMatrix(values.data, rows: d.encoderDim, columns: d.classes, transposed: true)
        bias = try b.load()
        classes = d.classes
    }

    /// Class scores of one encoder frame (before log-softmax), `classes` floats.
    package func logits(_ frame: UnsafePointer<Float>, into logits: UnsafeMutablePointer<Float>) {
        logits.update(from: bias.data, count: classes)
        Kernels.gemm(m: 1, x: frame, ldx: weight.rows, weight, y: logits, ldy: classes, accumulate: true)
    }

    /// The most likely class of one encoder frame and its log-probability; `logits` holds `classes` floats.
    func best(_ frame: UnsafePointer<Float>, logits: UnsafeMutablePointer<Float>) -> (index: Int, logProbability: Float) {
        self.logits(frame, into: logits)
        return bestClass(logits, count: classes)
    }
}
