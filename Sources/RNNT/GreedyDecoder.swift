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
        joint.projectEncoder(frame, into: state.f)
        joint.projectPrediction(state.prediction.nextH(prediction.layers.count - 1), into: state.g)
        joint.logits(f: state.f, g: state.g, sum: state.sum, into: logits)
    }
}

/// Greedy RNN-T decoding state of one stream: the last emitted token and the prediction network's state, carried
/// across chunks, and the prediction output for them.
package final class GreedyState {
    package let prediction: PredictionState
    package private(set) var lastToken: Int
    /// Encoder frames decoded so far (the next frame's index).
    package private(set) var frames = 0
    let f: UnsafeMutablePointer<Float>
    let g: UnsafeMutablePointer<Float>
    let sum: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float>
    private let storage: Tensor
    private var predictionReady = false

    package init(decoder: RNNTDecoder) {
        let d = decoder.description
        prediction = PredictionState(layers: d.lstmLayers, hidden: d.predictionHidden)
        storage = Tensor(zeros: [3 * d.jointHidden + d.classes])
        f = storage.data
        g = f + d.jointHidden
        sum = g + d.jointHidden
        logits = sum + d.jointHidden
        lastToken = d.blank
    }

    package func reset(blank: Int) {
        prediction.reset()
        lastToken = blank
        frames = 0
        predictionReady = false
    }

    /// NeMo's greedy RNN-T over encoder frames [n, d]: per frame, up to `maxSymbols` joint evaluations; argmax;
    /// blank moves to the next frame, anything else is emitted and advances the prediction network.
    package func decode(_ decoder: RNNTDecoder, frames encoded: UnsafePointer<Float>, count n: Int, width: Int,
                       maxSymbols: Int = 10, emit: (Emission) -> Void) {
        let joint = decoder.joint, top = decoder.prediction.layers.count - 1
        for t in 0..<n {
            joint.projectEncoder(encoded + t * width, into: f)
            var symbols = 0
            while symbols < maxSymbols {
                if !predictionReady {
                    decoder.prediction.step(token: lastToken, state: prediction)
                    joint.projectPrediction(prediction.nextH(top), into: g)
                    predictionReady = true
                }
                joint.logits(f: f, g: g, sum: sum, into: logits)
                let (best, logProbability) = bestClass(logits, count: decoder.description.classes)
                if best == decoder.blank { break }
                emit(Emission(id: best, frame: frames, logProbability: logProbability))
                prediction.advance()
                lastToken = best
                predictionReady = false
                symbols += 1
            }
            frames += 1
        }
    }
}
