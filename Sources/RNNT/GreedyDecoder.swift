import Foundation
import STTTensor
import STTWeightLoader

/// A decoded token: its id, the encoder frame it was emitted on, and the log-probability of that choice.
package struct Emission: Sendable, Equatable {
    package let id: Int
    package let frame: Int
    package let logProbability: Float
}

/// The largest of `count` scores and its log-softmax value: the log-probability of choosing it.
@inline(__always)
func bestClass(_ scores: UnsafePointer<Float>, count: Int) -> (index: Int, logProbability: Float) {
    var best = 0
    for k in 1..<count where scores[k] > scores[best] { best = k }
    var sum: Float = 0
    let top = scores[best]
    for k in 0..<count { sum += expf(scores[k] - top) }
    return (best, -logf(sum))
}

/// The RNN-T prediction network and joint of an export (`decoder_joint-*.onnx`), shared by all streams.
package final class RNNTDecoder: Sendable {
    package let description: DecoderDescription
    package let prediction: PredictionNetwork
    package let joint: Joint
    package var blank: Int { description.blank }

    package init(graph: ExportedGraph, description known: DecoderDescription? = nil) throws(LoaderError) {
        guard graph.kind == .decoderJoint else {
            throw .wrongGraphKind(graph.path, expected: "a decoder_joint export", found: graph.kind.description)
        }
        if let known { description = known } else { description = try DecoderDescription(graph: graph) }
        let r = WeightReader(graph: graph)
        prediction = try PredictionNetwork(r, description: description)
        joint = try Joint(r, description: description)
    }

    /// One call of the exported decoder_joint: the prediction network on `token` from `state`, then the joint with
    /// `frame`. Writes the logits; the candidate next state is left in `state` (not adopted).
    package func evaluate(frame: UnsafePointer<Float>, token: Int, state: GreedyState,
                         logits: UnsafeMutablePointer<Float>) {
        prediction.step(token: token, state: state.prediction)
        joint.projectEncoder(frame, rows: 1, stride: joint.enc.rows, into: state.f)
        joint.projectPrediction(state.prediction.nextH(prediction.layers.count - 1), into: state.g)
        joint.logits(f: state.f, g: state.g, sum: state.sum, into: logits)
    }
}

/// Greedy RNN-T decoding state of one stream: the last emitted token and the prediction network's state, carried
/// across chunks, and the prediction output for them.
package final class GreedyState {
    package let prediction: PredictionState
    package fileprivate(set) var lastToken: Int
    /// Encoder frames decoded so far (the next frame's index).
    package fileprivate(set) var frames = 0
    let f: UnsafeMutablePointer<Float>
    let g: UnsafeMutablePointer<Float>
    let sum: UnsafeMutablePointer<Float>
    private let storage: Tensor
    /// Whether `g` holds the joint's projection of the prediction for `lastToken` (the candidate state's output).
    fileprivate var predictionReady = false
    /// The decoding of this stream alone: a batch of one, made on the first `decode`.
    private var alone: GreedyBatch?

    package init(decoder: RNNTDecoder) {
        let d = decoder.description
        prediction = PredictionState(layers: d.lstmLayers, hidden: d.predictionHidden)
        storage = Tensor(zeros: [3 * d.jointHidden])
        f = storage.data
        g = f + d.jointHidden
        sum = g + d.jointHidden
        lastToken = d.blank
    }

    package func reset(blank: Int) {
        prediction.reset()
        lastToken = blank
        frames = 0
        predictionReady = false
    }

    /// NeMo's greedy RNN-T over encoder frames [n, d]: per frame, up to `maxSymbols` joint evaluations; argmax;
    /// blank moves to the next frame, anything else is emitted and advances the prediction network. The stream is
    /// decoded as a ``GreedyBatch`` of one, so one stream alone and in a batch follow the same code.
    package func decode(_ decoder: RNNTDecoder, frames encoded: UnsafePointer<Float>, count n: Int, width: Int,
                       maxSymbols: Int = 10, emit: (Emission) -> Void) {
        let batch = alone ?? GreedyBatch(decoder: decoder, capacity: 1, maxFrames: n)
        alone = batch
        batch.decode(streams: 1, state: { _ in self }, frames: { _ in encoded }, count: { _ in n }, width: width,
                     maxSymbols: maxSymbols) { _, emission in emit(emission) }
    }
}

/// NeMo's greedy RNN-T decoding of several streams' frames at once: per frame, up to `maxSymbols` joint evaluations;
/// argmax; blank moves to the next frame, anything else is emitted and advances the prediction network. It runs in
/// rounds, each stream at its own frame and symbol. A round runs the prediction network of every stream that emitted
/// in the last one as one product per weight, then the joint of every stream as one, so the decoder's weights are read
/// once a round rather than once a stream. Each row's sums are the ones the row alone makes (every kernel variant sums
/// a row in one order whatever the rows beside it), so every stream's tokens are its own. Buffers are allocated once,
/// for `capacity` streams.
package final class GreedyBatch {
    package let capacity: Int
    private let decoder: RNNTDecoder
    private let inputs: Tensor, previous: Tensor, gates: Tensor, outputs: Tensor, projected: Tensor, sums: Tensor
    private let logits: Tensor
    /// The joint's encoder projection of every frame of the current call, the streams' frames one after another
    /// (stream i's from row first[i]), and those frames gathered for the product. Sized for `capacity` streams of
    /// `maxFrames`; grown when a call brings more frames than that.
    private var projectedFrames: Tensor, gathered: Tensor
    /// Per stream of the current call: its first row in `projectedFrames`, the frame being decoded and the symbols
    /// emitted on it.
    private var first: [Int], frame: [Int], symbols: [Int]
    private var active: [Int] = [], predicting: [Int] = []

    /// A batch of up to `capacity` streams, its buffers sized for calls of up to `maxFrames` frames a stream.
    package init(decoder: RNNTDecoder, capacity: Int, maxFrames: Int) {
        self.decoder = decoder
        self.capacity = max(1, capacity)
        let d = decoder.description, rows = self.capacity
        projectedFrames = Tensor(zeros: [rows * maxFrames * d.jointHidden])
        gathered = Tensor(zeros: [rows * maxFrames * d.encoderDim])
        inputs = Tensor(zeros: [rows, d.predictionHidden])
        previous = Tensor(zeros: [rows, d.predictionHidden])
        gates = Tensor(zeros: [rows, 4 * d.predictionHidden])
        outputs = Tensor(zeros: [rows, d.predictionHidden])
        projected = Tensor(zeros: [rows, d.jointHidden])
        sums = Tensor(zeros: [rows, d.jointHidden])
        logits = Tensor(zeros: [rows, d.classes])
        first = Array(repeating: 0, count: rows)
        frame = Array(repeating: 0, count: rows)
        symbols = Array(repeating: 0, count: rows)
        active.reserveCapacity(rows)
        predicting.reserveCapacity(rows)
    }

    /// Decodes `count(i)` encoder frames at `frames(i)` (rows of `width`) for each stream i < `streams` (at most
    /// `capacity`) with its state `state(i)`, calling `emit(i, emission)` for stream i's tokens in its own order.
    package func decode(streams: Int, state: (Int) -> GreedyState, frames: (Int) -> UnsafePointer<Float>,
                        count: (Int) -> Int, width: Int, maxSymbols: Int = 10, emit: (Int, Emission) -> Void) {
        let streams = min(streams, capacity)
        let joint = decoder.joint, prediction = decoder.prediction
        let h = prediction.hidden, hidden = joint.hidden, classes = joint.classes
        let top = prediction.layers.count - 1
        guard maxSymbols > 0 else {
            for i in 0..<streams { state(i).frames += count(i) }
            return
        }
        active.removeAll(keepingCapacity: true)
        var rows = 0
        for i in 0..<streams {
            first[i] = rows
            frame[i] = 0
            symbols[i] = 0
            rows += count(i)
            if count(i) > 0 { active.append(i) }
        }
        // The joint's encoder projection of every frame of every stream: one product, one read of its weight.
        if projectedFrames.count < rows * hidden || gathered.count < rows * width {
            projectedFrames = Tensor(zeros: [rows * hidden])
            gathered = Tensor(zeros: [rows * width])
        }
        if streams == 1 {   // one stream's frames are already together
            if rows > 0 { joint.projectEncoder(frames(0), rows: rows, stride: width, into: projectedFrames.data) }
        } else {
            for i in active { (gathered.data + first[i] * width).update(from: frames(i), count: count(i) * width) }
            joint.projectEncoder(gathered.data, rows: rows, stride: width, into: projectedFrames.data)
        }
        while !active.isEmpty {
            // The prediction network of every stream whose last joint emitted: layer by layer, one product per weight.
            predicting.removeAll(keepingCapacity: true)
            for i in active where !state(i).predictionReady { predicting.append(i) }
            if !predicting.isEmpty {
                let m = predicting.count
                for (r, i) in predicting.enumerated() {
                    (inputs.data + r * h).update(from: prediction.embedding.data + state(i).lastToken * h, count: h)
                }
                for (l, layer) in prediction.layers.enumerated() {
                    for (r, i) in predicting.enumerated() {
                        (previous.data + r * h).update(from: state(i).prediction.h(l), count: h)
                        (gates.data + r * 4 * h).update(from: layer.bias.data, count: 4 * h)
                    }
                    Kernels.gemm(m: m, x: inputs.data, ldx: h, layer.input, y: gates.data, ldy: 4 * h, accumulate: true)
                    Kernels.gemm(m: m, x: previous.data, ldx: h, layer.recurrent, y: gates.data, ldy: 4 * h,
                                 accumulate: true)
                    for (r, i) in predicting.enumerated() {
                        let lstm = state(i).prediction
                        PredictionNetwork.cell(gates: gates.data + r * 4 * h, hidden: h, c: lstm.c(l),
                                               nextH: lstm.nextH(l), nextC: lstm.nextC(l))
                        (outputs.data + r * h).update(from: lstm.nextH(l), count: h)
                    }
                    if l < top { inputs.data.update(from: outputs.data, count: m * h) }
                }
                for r in 0..<m { (projected.data + r * hidden).update(from: joint.predBias.data, count: hidden) }
                Kernels.gemm(m: m, x: outputs.data, ldx: h, joint.pred, y: projected.data, ldy: hidden, accumulate: true)
                for (r, i) in predicting.enumerated() {
                    state(i).g.update(from: projected.data + r * hidden, count: hidden)
                    state(i).predictionReady = true
                }
            }
            // The joint of every active stream at its frame, one product.
            for (r, i) in active.enumerated() {
                let f = projectedFrames.data + (first[i] + frame[i]) * hidden, g = state(i).g
                let sum = sums.data + r * hidden
                for j in 0..<hidden { sum[j] = max(0, f[j] + g[j]) }
                (logits.data + r * classes).update(from: joint.outBias.data, count: classes)
            }
            Kernels.gemm(m: active.count, x: sums.data, ldx: hidden, joint.out, y: logits.data, ldy: classes,
                         accumulate: true)
            // Indices rather than enumerated(): an iterator would share `active`'s buffer while it is compacted, and
            // the first write would copy it (an allocation every round).
            var kept = 0
            for r in 0..<active.count {
                let i = active[r]
                let stream = state(i)
                let (best, logProbability) = bestClass(logits.data + r * classes, count: classes)
                var nextFrame = best == decoder.blank
                if !nextFrame {
                    emit(i, Emission(id: best, frame: stream.frames, logProbability: logProbability))
                    stream.prediction.advance()
                    stream.lastToken = best
                    stream.predictionReady = false
                    symbols[i] += 1
                    nextFrame = symbols[i] == maxSymbols
                }
                if nextFrame {
                    stream.frames += 1
                    frame[i] += 1
                    symbols[i] = 0
                    if frame[i] == count(i) { continue }
                }
                active[kept] = i
                kept += 1
            }
            active.removeLast(active.count - kept)
        }
    }
}
