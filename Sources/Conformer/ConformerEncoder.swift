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
    /// The threads every weight product of a step splits across (nil: the stepping thread alone).
    package let pool: ComputePool?
    /// How the weight matrices are stored.
    package let precision: WeightPrecision
    let xscale: Float

    /// - Parameters:
    ///   - leftContext: attention cache rows; NeMo's models are trained with 70.
    ///   - maxLookahead: the largest right context to prepare for (13 covers all trained settings of the reference).
    ///   - threads: threads for the weight products of every step, the stepping thread included.
    ///   - description: the graph's description, when the caller has built it already (it validates every shape).
    ///   - precision: how the layers' weight matrices are stored (products and everything else stay float32).
    package init(graph: ExportedGraph, description known: EncoderDescription? = nil, leftContext: Int = 70,
                 maxLookahead: Int = 13, threads: Int = 1, precision: WeightPrecision = .fp32) throws(LoaderError) {
        let prefix = graph.kind == .ctc ? "encoder." : ""
        let e: EncoderDescription
        if let known { e = known } else { e = try EncoderDescription(graph: graph, prefix: prefix) }
        let r = WeightReader(graph: graph, prefix: prefix, precision: precision)
        description = e
        preEncode = try ConvSubsampling(r, description: e)
        guard let table = try graph.loadPositionalTable() else {
            throw .notFastConformer(graph.path, "no positional table")
        }
        // Queries see keys from maxLookahead ahead (within a chunk) to leftContext + maxLookahead behind.
        let distances = -maxLookahead...(leftContext + maxLookahead)
        // Layers are independent: build them on all cores (each packs its weights straight from the file).
        let built = LayerSlots(count: e.layers)
        DispatchQueue.concurrentPerform(iterations: e.layers) { n in
            built.set(n, Result { () throws(LoaderError) -> ConformerLayer in
                try ConformerLayer(r, index: n, description: e, table: table, distances: distances)
            })
        }
        self.layers = try built.values()
        self.leftContext = leftContext
        self.maxLookahead = maxLookahead
        pool = threads > 1 ? ComputePool(threads: threads) : nil
        self.precision = precision
        xscale = Float(e.dModel).squareRoot()
    }

    package var dModel: Int { description.dModel }

    /// The weight matrices every streaming step multiplies by (the layers' and the stem's output projection; not
    /// linear_pos, which is applied once at load): what a step must read, for the benchmarks' limits.
    package var stepMatrices: [PackedMatrix] {
        layers.flatMap { layer in
            [layer.feedForward1.linear1, layer.feedForward1.linear2, layer.selfAttn.linearQ, layer.selfAttn.linearK,
             layer.selfAttn.linearV, layer.selfAttn.linearOut, layer.conv.pointwiseConv1, layer.conv.pointwiseConv2,
             layer.feedForward2.linear1, layer.feedForward2.linear2].map(\.weight)
        } + [preEncode.out.weight]
    }
    package var threads: Int { pool?.threads ?? 1 }

    /// The stem's output projection of `rows` flattened rows in `w.stem`, then x-scaling: into w.x [rows, d].
    private func project(rows n: Int, workspace w: EncoderWorkspace) {
        preEncode.out(w.stem, rows: n, into: w.x, workspace: w)
        for i in 0..<(n * dModel) { w.x[i] *= xscale }
    }

    // MARK: Streaming

    /// One streaming step: a window of mel frames (time-major [frames, features]) through the stem, the first
    /// `drop` subsampled frames discarded (2 for windows that start with the 9-frame overlap), then every layer
    /// with its caches. Writes [n, d] frames to `output` and returns n.
    @discardableResult
    package func step(_ state: EncoderState, mel: UnsafePointer<Float>, frames: Int, drop: Int,
                     output: UnsafeMutablePointer<Float>) -> Int {
        let w = state.workspace
        w.profile?.start()
        let n = convolve(state, mel: mel, frames: frames, drop: drop, into: w.stem)
        guard n > 0 else { return 0 }
        project(rows: n, workspace: w)
        w.profile?.lap(.stem)
        for (layer, cache) in zip(layers, state.layers) {
            layer(w.x, rows: n, streams: 1, stream: { _ in (0..<n, cache) }, workspace: w)
        }
        output.update(from: w.x, count: n * dModel)
        w.profile?.lap(.other)
        return n
    }

    /// Adds one stream's step to `batch`: its window through the stem's convolutions (in the stream's own
    /// workspace), the resulting rows after those of the streams added before. Returns the rows added, or nil when
    /// the batch has no room for this stream's step (nothing is changed then).
    package func add(_ state: EncoderState, mel: UnsafePointer<Float>, frames: Int, drop: Int,
                     to batch: EncoderBatch) -> Int? {
        guard batch.hasRoom(for: state) else { return nil }
        let n = convolve(state, mel: mel, frames: frames, drop: drop,
                         into: batch.nextStemRows(width: preEncode.flatWidth))
        batch.append(state, rows: n)
        return n
    }

    /// Steps every stream of `batch` at once: each weight product runs over the rows of all of them (one read of the
    /// weights for the batch); attention and convolution run per stream with its caches. Each stream's output rows
    /// are `batch.output(i)` until the batch is cleared.
    package func step(_ batch: EncoderBatch) {
        let w = batch.workspace
        let n = batch.rows
        guard n > 0 else { return }
        w.profile?.start()
        project(rows: n, workspace: w)
        w.profile?.lap(.stem)
        for (l, layer) in layers.enumerated() {
            layer(w.x, rows: n, streams: batch.count, stream: { i in batch.segment(i, layer: l) }, workspace: w)
        }
    }

    /// The stem's convolutions of one stream's window, in its workspace, into `flat`; returns the rows kept.
    private func convolve(_ state: EncoderState, mel: UnsafePointer<Float>, frames: Int, drop: Int,
                          into flat: UnsafeMutablePointer<Float>) -> Int {
        precondition(frames <= state.maxWindow, "window of \(frames) frames exceeds the stream's \(state.maxWindow)")
        precondition(preEncode.outputLength(frames) - drop <= state.maxFrames,
                     "step produces more frames than the stream holds")
        return preEncode.convolve(mel, frames: frames, drop: drop, into: flat, workspace: state.workspace)
    }

    // MARK: Offline

    /// The whole utterance in one pass with NeMo's chunked-limited mask for att_context [leftContext, lookahead]:
    /// frame i attends frames of its own chunk of lookahead+1 frames and the leftContext/(lookahead+1) chunks before.
    /// mel is time-major [frames, features]; returns [n, d] frames.
    package func offline(mel: UnsafePointer<Float>, frames: Int, lookahead: Int) -> Tensor {
        precondition(lookahead >= 0 && lookahead <= maxLookahead, "look-ahead \(lookahead) not prepared")
        let d = dModel
        let n = preEncode.outputLength(frames)
        let chunk = lookahead + 1
        let leftChunks = leftContext / chunk
        let w = EncoderWorkspace(encoder: self, rows: n, window: frames,
                                 attention: (queries: chunk, keys: (leftChunks + 1) * chunk))
        _ = preEncode.convolve(mel, frames: frames, drop: 0, into: w.stem, workspace: w)
        project(rows: n, workspace: w)
        for layer in layers {
            // Offline, every layer's convolution starts from silence.
            let convCache = ConformerConvolution.Cache(kernel: layer.conv.kernel, width: d)
            layer.offline(w.x, rows: n, chunk: chunk, leftChunks: leftChunks, convCache: convCache, workspace: w)
        }
        let result = Tensor(zeros: [n, d])
        result.data.update(from: w.x, count: n * d)
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
