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

    init(graph g: ExportedGraph, description d: DecoderDescription) throws(LoaderError) {
        func load(_ name: String) throws(LoaderError) -> Tensor {
            guard let p = g.parameter(name) else { throw .notFastConformer(g.path, "it has no \(name)") }
            return try p.load()
        }
        hidden = d.predictionHidden
        classes = d.classes
        embedding = try load("decoder.prediction.embed.weight")
        var layers: [LSTMLayer] = []
        for k in 0..<d.lstmLayers {
            let prefix = "decoder.prediction.dec_rnn.lstm."
            let wih = try load(prefix + "weight_ih_l\(k)"), whh = try load(prefix + "weight_hh_l\(k)")
            let bih = try load(prefix + "bias_ih_l\(k)"), bhh = try load(prefix + "bias_hh_l\(k)")
            let bias = Tensor(zeros: [4 * hidden])
            for i in 0..<(4 * hidden) { bias.data[i] = bih.data[i] + bhh.data[i] }
            layers.append(LSTMLayer(input: PackedMatrix(wih.data, rows: wih.shape[1], columns: 4 * hidden, transposed: true),
                                    recurrent: PackedMatrix(whh.data, rows: hidden, columns: 4 * hidden, transposed: true),
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
            Kernels.sigmoid(gates, count: 2 * h)                  // i, f
            Kernels.sigmoid(gates + 3 * h, count: h)              // o
            for j in 0..<h {
                let c = gates[h + j] * cPrev[j] + gates[j] * tanhf(gates[2 * h + j])
                cNext[j] = c
                hNext[j] = gates[3 * h + j] * tanhf(c)
            }
            input = UnsafePointer(hNext)
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
