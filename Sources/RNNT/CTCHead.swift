import STTTensor
import STTWeightLoader

/// The CTC head of a CTC export (ConvASRDecoder: a 1×1 conv from encoder frames to classes). Greedy decoding takes
/// the argmax of the raw scores, and the log-softmax only for the chosen class's probability.
package struct CTCHead: Sendable {
    let weight: PackedMatrix
    let bias: Tensor
    package let classes: Int

    package init(graph g: ExportedGraph, description known: CTCDescription? = nil) throws(LoaderError) {
        let d: CTCDescription
        if let known { d = known } else { d = try CTCDescription(graph: g) }
        let r = WeightReader(graph: g)
        weight = try r.matrix(CTCDescription.weightPath, inputs: d.encoderDim, outputs: d.classes)
        bias = try r.tensor("ctc_decoder.decoder_layers.0.bias", shape: [d.classes])
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
