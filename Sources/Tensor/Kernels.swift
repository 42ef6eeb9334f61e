import CSTTKernels

/// The numeric kernels of the engine over raw row-major float buffers. Products with weights packed at load, the
/// attention of a block of queries, and the element-wise work (exp(), LayerNorm), go to the CKernels target, which
/// picks AVX-512, AVX2+FMA or portable code once at run time; the rest is plain Swift. No BLAS library is involved.
package enum Kernels {
    package static func swish(_ x: UnsafeMutablePointer<Float>, count: Int) { ck_swish(x, count) }
    package static func sigmoid(_ x: UnsafeMutablePointer<Float>, count: Int) { ck_sigmoid(x, count) }
    package static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) { ck_relu(x, count) }

    /// out[t, c] = in[t, c] · σ(in[t, c + channels]): GLU over the channel axis of rows of width 2·channels.
    package static func glu(_ input: UnsafePointer<Float>, rows: Int, channels: Int, into output: UnsafeMutablePointer<Float>) {
        ck_glu_rows(input, output, rows, channels)
    }

    package static func layerNorm(_ input: UnsafePointer<Float>, rows: Int, width: Int,
                                 scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, epsilon: Float,
                                 into output: UnsafeMutablePointer<Float>) {
        ck_layer_norm(input, output, rows, width, scale, shift, epsilon)
    }


    /// Relative-position multi-head attention of `queries` rows that all see the same `keyCount` keys, every head
    /// (see `ck_rel_attention`): q, keys, values, positions and context are rows of heads · headDim floats; row
    /// (queries − 1 − i) + j of `positions` is the positional term of query i and key j. `scratch` holds
    /// `attentionScratch(queries:keys:heads:headDim:)` floats.
    package static func relativeAttention(q: UnsafePointer<Float>, queries: Int, keys: UnsafePointer<Float>,
                                          values: UnsafePointer<Float>, keyCount: Int, positions: UnsafePointer<Float>,
                                          biasU: UnsafePointer<Float>, biasV: UnsafePointer<Float>, heads: Int,
                                          headDim: Int, scale: Float, context: UnsafeMutablePointer<Float>,
                                          scratch: UnsafeMutablePointer<Float>) {
        ck_rel_attention(q, queries, keys, values, keyCount, positions, biasU, biasV, heads, headDim, scale, context,
                         scratch)
    }

    /// Scratch floats `relativeAttention` needs for a block of `queries` × `keys`.
    package static func attentionScratch(queries: Int, keys: Int, heads: Int, headDim: Int) -> Int {
        ck_rel_attention_scratch_size(queries, keys, heads, headDim)
    }

    /// y += alpha · x
    package static func axpy(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int, alpha: Float = 1) {
        ck_axpy(y, x, count, alpha)
    }

    /// x[r, :] += bias for every row.
    package static func addBias(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, bias: UnsafePointer<Float>) {
        ck_add_bias_rows(x, bias, rows, width)
    }

    /// Fills each row of x with `bias` (to accumulate a product into afterwards).
    package static func fillRows(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, with bias: UnsafePointer<Float>) {
        for r in 0..<rows { (x + r * width).update(from: bias, count: width) }
    }

    /// y[m×n] = x[m×k]·W (+ y when `accumulate`) for a weight packed once at load. `scratch` holds
    /// `gemmScratch(rows: m, inputs: k)` floats (without it the rows are read in place: same result, slower);
    /// large products split across `pool`'s threads (nil: the calling thread alone), with the same result.
    @inline(__always)
    package static func gemm(m: Int, x: UnsafePointer<Float>, ldx: Int, _ w: PackedMatrix,
                            y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool = false,
                            scratch: UnsafeMutablePointer<Float>? = nil, pool: ComputePool? = nil) {
        switch w.precision {
        case .fp32:
            ck_gemm_packed(pool?.handle, x, m, w.rows, ldx, w.storage.data, w.columns, y, ldy, accumulate ? 1 : 0, scratch)
        case .bf16:
            ck_gemm_packed_bf16(pool?.handle, x, m, w.rows, ldx, w.bf16, w.columns, y, ldy, accumulate ? 1 : 0, scratch)
        case .int8:
            ck_gemm_packed_int8(pool?.handle, x, m, w.rows, ldx, w.int8, w.scales, w.columns, y, ldy, accumulate ? 1 : 0,
                                scratch)
        }
    }

    /// Floats of scratch a packed product of `rows` rows over `inputs` inputs needs.
    package static func gemmScratch(rows: Int, inputs: Int) -> Int { ck_gemm_scratch_size(rows, inputs) }

    /// One core's measured peak for the instruction of the selected products at `precision`, in GFLOP/s (a
    /// multiply-add counts 2), and that instruction's name (see `ck_peak_gflops`). For benchmarks: it takes about a
    /// second.
    package static func peakGFLOPS(_ precision: WeightPrecision) -> (gflops: Double, instruction: String) {
        let code = switch precision {
        case .fp32: CK_PEAK_FP32
        case .bf16: CK_PEAK_BF16
        case .int8: CK_PEAK_INT8
        }
        return (ck_peak_gflops(code), String(cString: ck_peak_instruction(code)))
    }

    package static var variant: String {
        String(cString: ck_variant()) + ", products " + String(cString: ck_gemm_variant()) + ", int8 products "
            + String(cString: ck_gemm_int8_variant()) + ", bf16 products " + String(cString: ck_gemm_bf16_variant())
    }
}
