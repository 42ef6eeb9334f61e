import STTTensor
import STTWeightLoader

/// NeMo's RelPositionMultiHeadAttention (Transformer-XL style, untied biases u and v per layer):
///   score(i, j) = ((q_i + u)·k_j + (q_i + v)·p(pos_i − pos_j)) / √d_k,   p = linear_pos(positional table row)
/// Masked keys are left out of the softmax, which is what NeMo's fill with −10000 amounts to in float32.
package struct RelPositionMultiHeadAttention: Sendable {
    package let linearQ: Linear
    package let linearK: Linear
    package let linearV: Linear
    package let linearOut: Linear
    package let linearPos: Linear
    let posBiasU: Tensor   // [heads, d_k]
    let posBiasV: Tensor
    package let heads: Int
    package let headDim: Int
    /// linear_pos of the table rows this attention can use, computed once at load.
    let positions: RelativePositions

    init(_ r: WeightReader, _ name: String, heads: Int, headDim: Int, table: Tensor,
         distances: ClosedRange<Int>) throws(LoaderError) {
        let d = heads * headDim
        linearQ = try Linear(r, name + ".linear_q", inputs: d, outputs: d)
        linearK = try Linear(r, name + ".linear_k", inputs: d, outputs: d)
        linearV = try Linear(r, name + ".linear_v", inputs: d, outputs: d)
        linearOut = try Linear(r, name + ".linear_out", inputs: d, outputs: d)
        linearPos = try Linear(r, name + ".linear_pos", inputs: d, outputs: d, bias: false)
        posBiasU = try r.tensor(name + ".pos_bias_u", shape: [heads, headDim])
        posBiasV = try r.tensor(name + ".pos_bias_v", shape: [heads, headDim])
        self.heads = heads
        self.headDim = headDim
        positions = try RelativePositions(table: table, linearPos: linearPos, distances: distances, path: r.path)
    }

    /// residual += MHA(a) for a streaming step of one or more streams: `a` holds `rows` LayerNorm-ed inputs,
    /// `stream(i)` gives stream i's rows, which join its cache; each stream's queries see its cache's valid rows and
    /// its own rows. The projections run once over all rows.
    func streaming(_ a: UnsafePointer<Float>, rows n: Int, addingTo residual: UnsafeMutablePointer<Float>,
                   streams: Int, stream: (Int) -> (rows: Range<Int>, cache: Cache), workspace w: EncoderWorkspace) {
        let d = heads * headDim
        project(a, rows: n, workspace: w)
        w.profile?.lap(.attentionProjections)
        for i in 0..<streams {
            let (range, cache) = stream(i)
            let r = range.lowerBound * d
            cache.append(inputs: a + r, keys: w.key + r, values: w.value + r, rows: range.count)
            let first = cache.firstVisibleRow
            attend(q: w.query + r, queries: range.count, keys: cache.keys + first * d,
                   values: cache.values + first * d, keyCount: cache.visibleRows,
                   distanceOfFirstPair: cache.leftContext - first, context: w.context + r, scratch: w.attentionScratch)
            cache.dropOldest()
        }
        w.profile?.lap(.attentionCore)
        linearOut(w.context, rows: n, into: residual, accumulate: true, workspace: w)
        w.profile?.lap(.attentionProjections)
    }

    /// residual += MHA(a) for a whole utterance under NeMo's chunked-limited mask: frame i sees its own chunk of
    /// `chunk` frames and the `leftChunks` chunks before.
    func chunkedLimited(_ a: UnsafePointer<Float>, rows n: Int, addingTo residual: UnsafeMutablePointer<Float>,
                        chunk: Int, leftChunks: Int, workspace w: EncoderWorkspace) {
        let d = heads * headDim
        project(a, rows: n, workspace: w)
        for start in stride(from: 0, to: n, by: chunk) {
            let queries = min(chunk, n - start)
            let firstKey = max(0, start - leftChunks * chunk)
            attend(q: w.query + start * d, queries: queries, keys: w.key + firstKey * d,
                   values: w.value + firstKey * d, keyCount: start + queries - firstKey,
                   distanceOfFirstPair: start - firstKey, context: w.context + start * d,
                   scratch: w.attentionScratch)
        }
        linearOut(w.context, rows: n, into: residual, accumulate: true, workspace: w)
    }

    /// Queries, keys and values of every row into the workspace.
    private func project(_ a: UnsafePointer<Float>, rows n: Int, workspace w: EncoderWorkspace) {
        linearQ(a, rows: n, into: w.query, workspace: w)
        linearK(a, rows: n, into: w.key, workspace: w)
        linearV(a, rows: n, into: w.value, workspace: w)
    }

    /// Scratch floats for a block of `queries` × `keys`.
    static func scratchSize(queries: Int, keys: Int, heads: Int, headDim: Int) -> Int {
        Kernels.attentionScratch(queries: queries, keys: keys, heads: heads, headDim: headDim)
    }

    /// context[queries, d] for one block in which every query sees every key.
    /// - q: projected queries [queries, d]; keys/values: projected [keyCount, d] (row stride d).
    /// - distanceOfFirstPair: position of query 0 minus position of key 0.
    private func attend(q: UnsafePointer<Float>, queries: Int,
                        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, keyCount: Int,
                        distanceOfFirstPair: Int, context: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutablePointer<Float>) {
        // Row of p for (query i, key j): maxDistance − (distanceOfFirstPair + i − j). Over the block the rows span
        // [base − (queries − 1), base + keyCount − 1] with base = maxDistance − distanceOfFirstPair.
        let base = positions.maxDistance - distanceOfFirstPair
        let firstRow = base - (queries - 1)
        precondition(firstRow >= 0 && base + keyCount - 1 < positions.rows, "relative distance outside the table")
        Kernels.relativeAttention(q: q, queries: queries, keys: keys, values: values, keyCount: keyCount,
                                  positions: positions.projected.data + firstRow * heads * headDim,
                                  biasU: posBiasU.data, biasV: posBiasV.data, heads: heads, headDim: headDim,
                                  scale: 1 / Float(headDim).squareRoot(), context: context, scratch: scratch)
    }
}

extension RelPositionMultiHeadAttention {
    /// One stream's attention cache of one layer: the last `leftContext` LayerNorm-ed inputs (NeMo's and the ONNX
    /// export's cache_last_channel), oldest first, and alongside them their key and value projections, so that a step
    /// projects only its own rows. Rows are filled from the end; `length` of them are valid.
    ///
    /// The window slides through a longer buffer: a step's rows go after the window, and dropping the oldest rows
    /// moves its start, not the rows. Only when the buffer's end is reached are the window's rows moved back to the
    /// front: once every `slack / rows` steps instead of every step (three 70 × 512 copies per layer, measured as
    /// most of the attention's time at [70,0]).
    package final class Cache {
        package let leftContext: Int
        /// Valid cached rows (cache_last_channel_len).
        package private(set) var length = 0
        let width: Int
        /// Rows each of the three buffers holds: the window, a step's rows, and room to slide.
        private let capacity: Int
        private let maxStepRows: Int
        private var pending = 0
        /// The buffers' row where the window starts.
        private var start = 0
        private let storage: Tensor
        /// [leftContext + a step's rows, width] each, from the window's start: the cache, then the rows of the step
        /// in progress.
        var inputs: UnsafeMutablePointer<Float> { storage.data + start * width }
        var keys: UnsafeMutablePointer<Float> { storage.data + (capacity + start) * width }
        var values: UnsafeMutablePointer<Float> { storage.data + (2 * capacity + start) * width }

        init(leftContext: Int, maxStepRows: Int, width: Int) {
            self.leftContext = leftContext
            self.width = width
            self.maxStepRows = maxStepRows
            // Half a window of room to slide: the rows move once every leftContext / 2 rows of steps, for 1.4 times
            // the memory of a fixed window.
            capacity = leftContext + maxStepRows + max(maxStepRows, (leftContext + 1) / 2)
            storage = Tensor(zeros: [3, capacity, width])
        }

        /// The first row a query may see: invalid rows at the front are masked.
        var firstVisibleRow: Int { leftContext - length }
        /// Valid cached rows plus the step's rows.
        var visibleRows: Int { length + pending }

        /// Puts a step's inputs, with their key and value projections, after the cached rows.
        func append(inputs a: UnsafePointer<Float>, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>,
                    rows n: Int) {
            precondition(n <= maxStepRows, "a step of \(n) rows exceeds the \(maxStepRows) reserved")
            if start + leftContext + n > capacity {
                for region in 0..<3 {
                    let base = storage.data + region * capacity * width
                    base.update(from: base + start * width, count: leftContext * width)
                }
                start = 0
            }
            let tail = leftContext * width
            (inputs + tail).update(from: a, count: n * width)
            (keys + tail).update(from: k, count: n * width)
            (values + tail).update(from: v, count: n * width)
            pending = n
        }

        /// Keeps the last `leftContext` rows of [cache; step], dropping the oldest.
        func dropOldest() {
            start += pending
            length = min(leftContext, length + pending)
            pending = 0
        }

        func reset() {
            storage.data.update(repeating: 0, count: storage.count)
            length = 0
            pending = 0
            start = 0
        }
    }
}

/// linear_pos applied once to the positional-table rows a chunked-limited attention can use: relative distances
/// from −maxLookahead to leftContext + maxLookahead.
struct RelativePositions: Sendable {
    /// [rows, d], row r ↔ distance maxDistance − r.
    let projected: Tensor
    let maxDistance: Int
    let minDistance: Int
    var rows: Int { maxDistance - minDistance + 1 }

    /// `table` is the export's [1, 2·max_len − 1, d] constant for positions max_len − 1 … −(max_len − 1).
    init(table: Tensor, linearPos: Linear, distances: ClosedRange<Int>, path: String) throws(LoaderError) {
        guard table.rank == 3, table.shape[2] == linearPos.inputs else {
            throw .notFastConformer(path, "the positional table has shape \(table.shape), "
                                    + "expected [1, rows, \(linearPos.inputs)]")
        }
        let tableRows = table.shape[1], d = table.shape[2]
        let center = (tableRows - 1) / 2
        guard center - distances.upperBound >= 0, center - distances.lowerBound < tableRows else {
            throw .notFastConformer(path, "the positional table (\(tableRows) rows) does not reach distance "
                                    + "\(distances.upperBound)")
        }
        maxDistance = distances.upperBound
        minDistance = distances.lowerBound
        projected = Tensor(zeros: [distances.count, linearPos.outputs])
        let scratch = Tensor(zeros: [Kernels.gemmScratch(rows: distances.count, inputs: d)])
        linearPos(table.data + (center - maxDistance) * d, rows: distances.count, into: projected.data,
                  scratch: scratch.data)
    }
}
