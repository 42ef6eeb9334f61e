import STTTensor
import STTWeightLoader

/// NeMo's RelPositionMultiHeadAttention (Transformer-XL style, untied biases u and v per layer):
///   score(i, j) = ((q_i + u)·k_j + (q_i + v)·p(pos_i − pos_j)) / √d_k,   p = linear_pos(positional table row)
/// Keys and values of earlier steps come from the attention cache; masked keys are left out of the softmax, which
/// is what NeMo's fill with −10000 amounts to in float32.
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

    init(_ r: ParameterReader, _ name: String, heads: Int, headDim: Int) throws(LoaderError) {
        linearQ = try Linear(r, name + ".linear_q")
        linearK = try Linear(r, name + ".linear_k")
        linearV = try Linear(r, name + ".linear_v")
        linearOut = try Linear(r, name + ".linear_out")
        linearPos = try Linear(r, name + ".linear_pos", bias: false)
        posBiasU = try r.tensor(name + ".pos_bias_u")
        posBiasV = try r.tensor(name + ".pos_bias_v")
        self.heads = heads
        self.headDim = headDim
    }

    /// Scratch floats for a block of `queries` × `keys`.
    static func scratchSize(queries: Int, keys: Int, headDim: Int) -> Int {
        2 * queries * headDim + queries * keys + queries * (keys + queries)
    }

    /// context[queries, d] for one block in which every query sees every key.
    /// - q: projected queries [queries, d]; keys/values: projected [keyCount, d] (row stride d).
    /// - positions: linear_pos of the table rows, row r ↔ relative distance `maxDistance − r`.
    /// - distanceOfFirstPair: position of query 0 minus position of key 0.
    func attend(q: UnsafePointer<Float>, queries: Int,
                keys: UnsafePointer<Float>, values: UnsafePointer<Float>, keyCount: Int,
                positions: RelativePositions, layer: Int, distanceOfFirstPair: Int,
                context: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let d = heads * headDim
        let qu = scratch, qv = scratch + queries * headDim
        let scores = qv + queries * headDim
        let bd = scores + queries * keyCount
        let bdWidth = keyCount + queries - 1
        let scale = 1 / Float(headDim).squareRoot()
        // Row of p for (query i, key j): maxDistance − (distanceOfFirstPair + i − j). Over the block the rows span
        // [base − (queries − 1), base + keyCount − 1] with base = maxDistance − distanceOfFirstPair.
        let base = positions.maxDistance - distanceOfFirstPair
        let firstRow = base - (queries - 1)
        precondition(firstRow >= 0 && base + keyCount - 1 < positions.rows, "relative distance outside the table")
        let p = positions.projected[layer].data + firstRow * d
        for h in 0..<heads {
            let u = posBiasU.data + h * headDim, v = posBiasV.data + h * headDim
            for i in 0..<queries {
                let qi = q + i * d + h * headDim
                for c in 0..<headDim {
                    qu[i * headDim + c] = qi[c] + u[c]
                    qv[i * headDim + c] = qi[c] + v[c]
                }
            }
            Kernels.gemm(m: queries, n: keyCount, k: headDim, a: qu, lda: headDim, b: keys + h * headDim, ldb: d,
                         transposedB: true, c: scores, ldc: keyCount)
            Kernels.gemm(m: queries, n: bdWidth, k: headDim, a: qv, lda: headDim, b: p + h * headDim, ldb: d,
                         transposedB: true, c: bd, ldc: bdWidth)
            for i in 0..<queries {
                let row = scores + i * keyCount
                // bd column for key j is (queries − 1 − i) + j: the row index relative to firstRow.
                let shifted = bd + i * bdWidth + (queries - 1 - i)
                for j in 0..<keyCount { row[j] = (row[j] + shifted[j]) * scale }
                Kernels.softmax(row, count: keyCount)
            }
            Kernels.gemm(m: queries, n: headDim, k: keyCount, a: scores, lda: keyCount, b: values + h * headDim, ldb: d,
                         transposedB: false, c: context + h * headDim, ldc: d)
        }
    }
}

/// linear_pos applied once to the positional-table rows a chunked-limited attention can use: relative distances
/// from −maxLookahead to leftContext + maxLookahead. Shared by all streams.
package struct RelativePositions: Sendable {
    /// Per layer: [rows, d], row r ↔ distance maxDistance − r.
    package let projected: [Tensor]
    package let maxDistance: Int
    package let minDistance: Int
    package var rows: Int { maxDistance - minDistance + 1 }

    init(table: Tensor, layers: [RelPositionMultiHeadAttention], minDistance: Int, maxDistance: Int,
         path: String) throws(LoaderError) {
        // Table row for distance p is center − p, center = (rows − 1) / 2 (positions max_len−1 … −(max_len−1)).
        let tableRows = table.shape[1], d = table.shape[2]
        let center = (tableRows - 1) / 2
        guard center - maxDistance >= 0, center - minDistance < tableRows else {
            throw .notFastConformer(path, "the positional table (\(tableRows) rows) does not reach distance \(maxDistance)")
        }
        let rows = maxDistance - minDistance + 1
        let slice = table.data + (center - maxDistance) * d
        projected = layers.map { attention in
            let out = Tensor(zeros: [rows, d])
            attention.linearPos(slice, rows: rows, into: out.data)
            return out
        }
        self.maxDistance = maxDistance
        self.minDistance = minDistance
    }
}
