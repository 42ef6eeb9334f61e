import Foundation
import STTTensor
import STTWeightLoader

/// NeMo's RNNTDecoder prediction network: an embedding (the blank row is zeros) and an LSTM stack. The LSTM state
/// advances only when a non-blank token is emitted.
package struct PredictionNetwork: Sendable {
    package struct LSTMLayer: Sendable {
        let input: PackedMatrix       // W_ih as [in, 4H], gates i, f, g, o
        let recurrent: PackedMatrix   // W_hh as [H, 4H]
        let bias: Tensor              // b_ih + b_hh
    }

    let embedding: Tensor             // [classes, H]
    package let layers: [LSTMLayer]
    package let hidden: Int
    package let classes: Int

    init(_ r: WeightReader, description d: DecoderDescription) throws(LoaderError) {
        let h = d.predictionHidden
        hidden = h
        classes = d.classes
        embedding = try r.tensor("decoder.prediction.embed.weight", shape: [classes, h])
        var layers: [LSTMLayer] = []
        for k in 0..<d.lstmLayers {
            let prefix = "decoder.prediction.dec_rnn.lstm."
            let bih = try r.tensor(prefix + "bias_ih_l\(k)", shape: [4 * h])
            let bhh = try r.tensor(prefix + "bias_hh_l\(k)", shape: [4 * h])
            let bias = Tensor(zeros: [4 * h])
            for i in 0..<(4 * h) { bias.data[i] = bih.data[i] + bhh.data[i] }
            layers.append(LSTMLayer(input: try r.matrix(prefix + "weight_ih_l\(k)", inputs: h, outputs: 4 * h),
                                    recurrent: try r.matrix(prefix + "weight_hh_l\(k)", inputs: h, outputs: 4 * h),
                                    bias: bias))
        }
        self.layers = layers
    }

    /// One step for `token`: reads the state (h, c per layer, each [H]) and writes the next one; returns the top
    /// layer's output h in `state.h(top)`. `gates` holds 4H floats.
    func step(token: Int, state: PredictionState) {
        let h = hidden
        let gates = state.gates
        var input = UnsafePointer(embedding.data + token * h)
        for (l, layer) in layers.enumerated() {
            let hPrev = state.h(l), cPrev = state.c(l)
            let hNext = state.nextH(l), cNext = state.nextC(l)
            gates.update(from: layer.bias.data, count: 4 * h)
            Kernels.gemm(m: 1, x: input, ldx: layer.input.rows, layer.input, y: gates, ldy: 4 * h, accumulate: true)
            Kernels.gemm(m: 1, x: hPrev, ldx: h, layer.recurrent, y: gates, ldy: 4 * h, accumulate: true)
            Self.cell(gates: gates, hidden: h, c: cPrev, nextH: hNext, nextC: cNext)
            input = UnsafePointer(hNext)
        }
    }

    /// The LSTM cell after its products: gates [4H] (i, f, g, o pre-activations) and the previous c give the next h
    /// and c.
    static func cell(gates: UnsafeMutablePointer<Float>, hidden h: Int, c cPrev: UnsafePointer<Float>,
                     nextH hNext: UnsafeMutablePointer<Float>, nextC cNext: UnsafeMutablePointer<Float>) {
        Kernels.sigmoid(gates, count: 2 * h)                  // i, f
        Kernels.sigmoid(gates + 3 * h, count: h)              // o
        for j in 0..<h {
            let c = gates[h + j] * cPrev[j] + gates[j] * tanhf(gates[2 * h + j])
            cNext[j] = c
            hNext[j] = gates[3 * h + j] * tanhf(c)
        }
    }
}

/// The prediction network's state for one stream: current (h, c) per layer, the candidate next state, and scratch.
package final class PredictionState {
    let layers: Int
    let hidden: Int
    private let storage: Tensor
    private var current: Int = 0
    let gates: UnsafeMutablePointer<Float>

    init(layers: Int, hidden: Int) {
        self.layers = layers
        self.hidden = hidden
        storage = Tensor(zeros: [4 * layers * hidden + 4 * hidden])
        gates = storage.data + 4 * layers * hidden
    }

    private func slot(_ which: Int) -> UnsafeMutablePointer<Float> { storage.data + which * 2 * layers * hidden }
    func h(_ layer: Int) -> UnsafeMutablePointer<Float> { slot(current) + layer * hidden }
    func c(_ layer: Int) -> UnsafeMutablePointer<Float> { slot(current) + (layers + layer) * hidden }
    package func nextH(_ layer: Int) -> UnsafeMutablePointer<Float> { slot(1 - current) + layer * hidden }
    package func nextC(_ layer: Int) -> UnsafeMutablePointer<Float> { slot(1 - current) + (layers + layer) * hidden }

    /// Makes the candidate state (written by the last `step`) the current one.
    func advance() { current = 1 - current }

    func reset() {
        current = 0
        storage.data.update(repeating: 0, count: storage.count)
    }

    /// The current h and c of every layer, [layers, H] each (the export's states 1 and 2).
    package var exported: (h: [Float], c: [Float]) {
        (Array(UnsafeBufferPointer(start: h(0), count: layers * hidden)),
         Array(UnsafeBufferPointer(start: c(0), count: layers * hidden)))
    }

    /// Sets the current state from the export's layout.
    package func set(h: [Float], c: [Float]) {
        precondition(h.count == layers * hidden && c.count == layers * hidden)
        self.h(0).update(from: h, count: h.count)
        self.c(0).update(from: c, count: c.count)
    }
}
