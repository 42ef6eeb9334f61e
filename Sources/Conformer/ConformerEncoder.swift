import Dispatch
import Foundation
import STTTensor
import STTWeightLoader

/// The cache-aware FastConformer encoder: ConvSubsampling, x-scaling by √d, and the Conformer layers.
/// Weights are immutable and shared; everything a stream changes lives in its `EncoderState`.
package final class ConformerEncoder: Sendable {
    package let description: EncoderDescription
    package let preEncode: ConvSubsampling
    package let layers: [ConformerLayer]
    /// Rows of attention cache per layer (the left context, 70 for the reference model).
    package let leftContext: Int
    /// The largest look-ahead (right context, encoder frames) the positional terms are prepared for.
    package let maxLookahead: Int
    let positions: RelativePositions
    let xscale: Float

    /// - Parameters:
    ///   - leftContext: attention cache rows; NeMo's models are trained with 70.
    ///   - maxLookahead: the largest right context to prepare for (13 covers all trained settings of the reference).
    package init(graph: ExportedGraph, leftContext: Int = 70, maxLookahead: Int = 13) throws(LoaderError) {
        // The engine splits its own products (Kernels.threads); OpenBLAS, doing only the small attention products,
        // stays on one thread so its spinning workers never compete with ours or with other streams.
        Kernels.useSingleThreadedBLAS()
        let prefix = graph.kind == .ctc ? "encoder." : ""
        let e = try EncoderDescription(graph: graph, prefix: prefix)
        let r = ParameterReader(graph: graph, prefix: prefix)
        description = e
        preEncode = try ConvSubsampling(r, description: e)
        // Layers are independent: build them on all cores (each packs its weights straight from the file).
        let built = LayerSlots(count: e.layers)
        DispatchQueue.concurrentPerform(iterations: e.layers) { n in
            built.set(n, Result { () throws(LoaderError) -> ConformerLayer in try ConformerLayer(r, index: n, description: e) })
        }
        self.layers = try built.values()
        self.leftContext = leftContext
        self.maxLookahead = maxLookahead
        guard let table = try graph.loadPositionalTable() else {
            throw .notFastConformer(graph.path, "no positional table")
        }
        positions = try RelativePositions(table: table, layers: layers.map(\.selfAttn), minDistance: -maxLookahead,
                                          maxDistance: leftContext + maxLookahead, path: graph.path)
        xscale = Float(e.dModel).squareRoot()
    }

    package var dModel: Int { description.dModel }

    // MARK: Streaming

    /// One streaming step: a window of mel frames (time-major [frames, features]) through the stem, the first
    /// `drop` subsampled frames discarded (2 for windows that start with the 9-frame overlap), then every layer
    /// with its caches. Writes [n, d] frames to `output` and returns n.
    @discardableResult
    package func step(_ state: EncoderState, mel: UnsafePointer<Float>, frames: Int, drop: Int,
                     output: UnsafeMutablePointer<Float>) -> Int {
        let d = dModel
        let subsampled = preEncode.outputLength(frames)
        precondition(frames <= state.maxWindow, "window of \(frames) frames exceeds the stream's \(state.maxWindow)")
        precondition(subsampled - drop <= state.maxFrames, "step produces more frames than the stream holds")
        let n = max(0, subsampled - drop)
        preEncode(mel, frames: frames, into: state.stem, scratch: state.stemScratch, rowScratch: state.rowScratch)
        guard n > 0 else { return 0 }
        let x = state.x
        for i in 0..<(n * d) { x[i] = state.stem[drop * d + i] * xscale }

        let cached = state.cacheLength
        let firstValid = leftContext - cached
        for (l, layer) in layers.enumerated() {
            let a = state.attentionInput(l) + leftContext * d
            let keys = state.keys(l), values = state.values(l)
            layer.normFeedForward1(x, rows: n, into: state.normed)
            layer.feedForward1(state.normed, rows: n, addingTo: x, scale: 0.5, hidden: state.hidden, output: state.projected,
                                  scratch: state.rowScratch)

            layer.normSelfAtt(x, rows: n, into: a)
            let attn = layer.selfAttn
            attn.linearQ(a, rows: n, into: state.query, scratch: state.rowScratch)
            attn.linearK(a, rows: n, into: keys + leftContext * d, scratch: state.rowScratch)
            attn.linearV(a, rows: n, into: values + leftContext * d, scratch: state.rowScratch)
            attn.attend(q: state.query, queries: n,
                        keys: keys + firstValid * d, values: values + firstValid * d, keyCount: leftContext + n - firstValid,
                        positions: positions, layer: l, distanceOfFirstPair: leftContext - firstValid,
                        context: state.context, scratch: state.attentionScratch)
            attn.linearOut(state.context, rows: n, into: x, accumulate: true, scratch: state.rowScratch)

            layer.normConv(x, rows: n, into: state.normed)
            layer.conv(state.normed, rows: n, addingTo: x, timeCache: state.timeCache(l), glu: state.glu,
                       scratch: state.hidden, rowScratch: state.rowScratch)

            layer.normFeedForward2(x, rows: n, into: state.normed)
            layer.feedForward2(state.normed, rows: n, addingTo: x, scale: 0.5, hidden: state.hidden, output: state.projected,
                                  scratch: state.rowScratch)
            layer.normOut(x, rows: n, into: x)

            // The attention cache keeps the last `leftContext` rows of [cache; this step's inputs].
            let input = state.attentionInput(l)
            input.update(from: input + n * d, count: leftContext * d)
            keys.update(from: keys + n * d, count: leftContext * d)
            values.update(from: values + n * d, count: leftContext * d)
        }
        state.cacheLength = min(leftContext, cached + n)
        output.update(from: x, count: n * d)
        return n
    }

    // MARK: Offline

    /// The whole utterance in one pass with NeMo's chunked-limited mask for att_context [leftContext, lookahead]:
    /// frame i attends frames of its own chunk of lookahead+1 frames and the leftContext/(lookahead+1) chunks before.
    /// mel is time-major [frames, features]; returns [n, d] frames.
    package func offline(mel: UnsafePointer<Float>, frames: Int, lookahead: Int) -> Tensor {
        precondition(lookahead >= 0 && lookahead <= maxLookahead, "look-ahead \(lookahead) not prepared")
        let d = dModel
        let n = preEncode.outputLength(frames)
        let ff = layers.first?.feedForward1.linear1.outputs ?? d
        let chunk = lookahead + 1
        let leftChunks = leftContext / chunk
        let workspace = Tensor(zeros: [preEncode.scratchSize(frames: frames) + n * d * 8 + n * max(ff, 3 * d)
                                       + RelPositionMultiHeadAttention.scratchSize(queries: chunk, keys: (leftChunks + 1) * chunk,
                                                                                   headDim: description.headDim)
                                       + (layers.first?.conv.kernel ?? 1) * d])
        var cursor = workspace.data
        func take(_ count: Int) -> UnsafeMutablePointer<Float> { defer { cursor += count }; return cursor }
        let stemScratch = take(preEncode.scratchSize(frames: frames))
        let x = take(n * d), normed = take(n * d), q = take(n * d), k = take(n * d), v = take(n * d)
        let context = take(n * d), projected = take(n * d), glu = take(n * d)
        let hidden = take(n * max(ff, 3 * d))
        let attentionScratch = take(RelPositionMultiHeadAttention.scratchSize(
            queries: chunk, keys: (leftChunks + 1) * chunk, headDim: description.headDim))
        let timeCache = take((layers.first?.conv.kernel ?? 1) * d)

        preEncode(mel, frames: frames, into: x, scratch: stemScratch)
        for i in 0..<(n * d) { x[i] *= xscale }
        for (l, layer) in layers.enumerated() {
            layer.normFeedForward1(x, rows: n, into: normed)
            layer.feedForward1(normed, rows: n, addingTo: x, scale: 0.5, hidden: hidden, output: projected,
                                  scratch: nil)

            layer.normSelfAtt(x, rows: n, into: normed)
            let attn = layer.selfAttn
            attn.linearQ(normed, rows: n, into: q)
            attn.linearK(normed, rows: n, into: k)
            attn.linearV(normed, rows: n, into: v)
            var start = 0
            while start < n {
                let queries = min(chunk, n - start)
                let firstKey = max(0, start - leftChunks * chunk)
                attn.attend(q: q + start * d, queries: queries, keys: k + firstKey * d, values: v + firstKey * d,
                            keyCount: start + queries - firstKey, positions: positions, layer: l,
                            distanceOfFirstPair: start - firstKey, context: context + start * d,
                            scratch: attentionScratch)
                start += chunk
            }
            attn.linearOut(context, rows: n, into: x, accumulate: true)

            layer.normConv(x, rows: n, into: normed)
            timeCache.update(repeating: 0, count: (layer.conv.kernel - 1) * d)
            layer.conv(normed, rows: n, addingTo: x, timeCache: timeCache, glu: glu, scratch: hidden, rowScratch: nil)

            layer.normFeedForward2(x, rows: n, into: normed)
            layer.feedForward2(normed, rows: n, addingTo: x, scale: 0.5, hidden: hidden, output: projected,
                                  scratch: nil)
            layer.normOut(x, rows: n, into: x)
        }
        let result = Tensor(zeros: [n, d])
        result.data.update(from: x, count: n * d)
        return result
    }
}

/// Results of building layers concurrently, in layer order.
private final class LayerSlots: @unchecked Sendable {
    private var slots: [Result<ConformerLayer, LoaderError>?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ result: Result<ConformerLayer, LoaderError>) {
        lock.lock()
        slots[index] = result
        lock.unlock()
    }

    func values() throws(LoaderError) -> [ConformerLayer] {
        var layers: [ConformerLayer] = []
        for slot in slots {
            switch slot {
            case .success(let layer)?: layers.append(layer)
            case .failure(let error)?: throw error
            case nil: throw LoaderError.notFastConformer("", "a layer was not built")
            }
        }
        return layers
    }
}
