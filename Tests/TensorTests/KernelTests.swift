import CSTTKernels
import Foundation
import Testing
import STTTensor

/// Naive reference: y = x·w for row-major x [m×k], w [k×n].
func naiveProduct(_ x: [Float], _ w: [Float], m: Int, k: Int, n: Int) -> [Float] {
    var y = [Float](repeating: 0, count: m * n)
    for i in 0..<m { for j in 0..<n { var s: Double = 0; for p in 0..<k { s += Double(x[i * k + p]) * Double(w[p * n + j]) }; y[i * n + j] = Float(s) } }
    return y
}

func values(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24) * 2 - 1
    }
}

@Suite struct KernelTests {
    @Test func twoByTwoProductByHand() {
        let w = [Float]([1, 2, 3, 4])   // [[1, 2], [3, 4]]
        let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: 2, columns: 2) }
        let x: [Float] = [1, 1, 0, 2]   // rows [1, 1], [0, 2]
        var y = [Float](repeating: 0, count: 4)
        Kernels.gemm(m: 2, x: x, ldx: 2, packed, y: &y, ldy: 2)
        #expect(y == [4, 6, 6, 8])
    }

    /// Every tile shape of the packed product: 1…30 rows (one and several tiles), column tails, accumulation,
    /// PyTorch-layout weights.
    @Test(arguments: [1, 2, 5, 13, 14, 15, 29, 30])
    func packedProductEqualsNaiveProduct(rows m: Int) {
        for variant: Int32 in [2, 1, 0] { checkPackedProduct(rows: m, variant: variant) }
    }

    /// Variant 2 AVX-512, 1 AVX2+FMA, 0 portable; one this CPU lacks is skipped.
    func checkPackedProduct(rows m: Int, variant: Int32) {
        for (k, n) in [(7, 5), (64, 16), (96, 33), (512, 29)] {
            let x = values(m * k, seed: UInt64(m * 1000 + k)), w = values(k * n, seed: UInt64(n))
            let expected = naiveProduct(x, w, m: m, k: k, n: n)
            let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n) }
            var wt = [Float](repeating: 0, count: k * n)
            for p in 0..<k { for j in 0..<n { wt[j * k + p] = w[p * n + j] } }
            let fromTorch = wt.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n, transposed: true) }
            var y = [Float](repeating: 0, count: m * n), z = [Float](repeating: 1, count: m * n)
            guard ck_gemm_packed_variant(variant, nil, x, m, k, k, packed.storage.data, 0, n, &y, n, 0, nil) == 1 else {
                return
            }
            _ = ck_gemm_packed_variant(variant, nil, x, m, k, k, fromTorch.storage.data, 0, n, &z, n, 1, nil)
            let worst = zip(y, expected).map { abs($0 - $1) }.max() ?? 0
            let worstAccumulated = zip(z, expected).map { abs($0 - 1 - $1) }.max() ?? 0
            #expect(worst < 1e-4 && worstAccumulated < 1e-4,
                    "variant \(variant) m \(m) k \(k) n \(n): \(worst), \(worstAccumulated)")
            // Rows repacked into scratch (the variants that repack) give the same bits as rows read in place.
            var packedRows = [Float](repeating: 0, count: m * n)
            var scratch = [Float](repeating: 0, count: max(1, Kernels.gemmScratch(rows: m, inputs: k)))
            _ = ck_gemm_packed_variant(variant, nil, x, m, k, k, packed.storage.data, 0, n, &packedRows, n, 0, &scratch)
            #expect(packedRows == y, "variant \(variant) m \(m) k \(k) n \(n): rows repacked or read in place")
        }
    }


    @Test func layerNormOfAKnownRow() {
        let x: [Float] = [1, 2, 3, 4]
        let scale: [Float] = [1, 1, 2, 1], shift: [Float] = [0, 0, 0, 1]
        var y = [Float](repeating: 0, count: 4)
        Kernels.layerNorm(x, rows: 1, width: 4, scale: scale, shift: shift, epsilon: 0, into: &y)
        // mean 2.5, variance 1.25
        let s = 1 / Float(1.25).squareRoot()
        let expected: [Float] = [-1.5 * s, -0.5 * s, 2 * 0.5 * s, 1.5 * s + 1]
        #expect(zip(y, expected).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test func attentionSwishSigmoidGLUAgainstClosedForms() {
        // One query, two keys, scores 0 and log 3 (the first from the key, the second split between the key and
        // its positional row): weights 1/4 and 3/4 of the values 1 and 5. Row (queries − 1 − i) + j of the positions
        // pairs with key j, so the positional terms are 0 and 1/2 · log 3 scaled by the bias v = 1.
        let q: [Float] = [0], keys: [Float] = [0, 0.5 * log(3)], values: [Float] = [1, 5]
        let positions: [Float] = [0, 0.5 * log(3)], biasU: [Float] = [1], biasV: [Float] = [1]
        var context: [Float] = [0]
        var scratch = [Float](repeating: 0, count: Kernels.attentionScratch(queries: 1, keys: 2, heads: 1, headDim: 1))
        Kernels.relativeAttention(q: q, queries: 1, keys: keys, values: values, keyCount: 2, positions: positions,
                                  biasU: biasU, biasV: biasV, heads: 1, headDim: 1, scale: 1, context: &context,
                                  scratch: &scratch)
        #expect(abs(context[0] - (0.25 * 1 + 0.75 * 5)) < 1e-5, "\(context)")

        let inputs: [Float] = [-90, -20, -3, -0.5, 0, 0.5, 3, 20, 90]
        var swish = inputs, sigmoid = inputs
        Kernels.swish(&swish, count: inputs.count)
        Kernels.sigmoid(&sigmoid, count: inputs.count)
        for (i, v) in inputs.enumerated() {
            let exact = 1 / (1 + Foundation.exp(-Double(v)))
            #expect(abs(Double(sigmoid[i]) - exact) <= 2e-7 * max(1e-30, exact) + 1e-38, "sigmoid(\(v))")
            #expect(abs(Double(swish[i]) - Double(v) * exact) <= 1e-6 * max(1, abs(Double(v) * exact)), "swish(\(v))")
        }
        // A NaN (a model file's weights can hold one) stays NaN, and infinities saturate; neither converts a NaN to
        // an integer (UBSan checks that in the sanitizer run).
        var special: [Float] = [.nan, .infinity, -.infinity, .nan, 1, .nan, 0, -.nan, 2, 3, .nan, 4, 5, 6, 7, .nan, 8]
        var gates = special
        Kernels.sigmoid(&gates, count: special.count)
        Kernels.swish(&special, count: special.count)
        #expect(gates[0].isNaN && gates[1] == 1 && gates[2] < 1e-37 && gates[15].isNaN && gates[16] > 0.99)
        #expect(special[0].isNaN && special[1] == .infinity && special[15].isNaN && abs(special[16] - 8) < 0.01)
        let wide: [Float] = [2, -4, 0, 0]           // one row, channels 2: a = [2, -4], gate = [0, 0]
        var glu = [Float](repeating: 0, count: 2)
        Kernels.glu(wide, rows: 1, channels: 2, into: &glu)
        #expect(glu == [1, -2])
    }

    @Test func reluAxpyAndBias() {
        var x: [Float] = [-1, 2, -3, 4]
        Kernels.relu(&x, count: 4)
        #expect(x == [0, 2, 0, 4])
        Kernels.axpy(&x, [1, 1, 1, 1], count: 4, alpha: 0.5)
        #expect(x == [0.5, 2.5, 0.5, 4.5])
        Kernels.addBias(&x, rows: 2, width: 2, bias: [10, 20])
        #expect(x == [10.5, 22.5, 10.5, 24.5])
    }
}

@Suite struct ConvolutionTests {
    @Test func causalStride2LengthsFollowTheStem() {
        #expect([80, 41, 21].map(Convolution.causalStride2Length) == [41, 21, 11])
        #expect([121, 61, 31].map(Convolution.causalStride2Length) == [61, 31, 16])
    }

    /// A 1-channel 3×3 stride-2 conv with all-ones taps sums each causal 3×3 window (2 before, 1 after, padded 0).
    @Test func firstConvSumsCausalWindows() {
        let h = 4, w = 4
        let input = (0..<(h * w)).map { Float($0) }
        var out = [Float](repeating: 0, count: 3 * 3 * 1)
        Convolution.causalStride2ChannelLast(input, height: h, width: w, inputChannels: 1, channels: 1,
                                             taps: [Float](repeating: 1, count: 9), bias: [0.5], into: &out)
        // output (y, x) covers rows 2y−2…2y and columns 2x−2…2x.
        for y in 0..<3 {
            for x in 0..<3 {
                var sum: Float = 0.5
                for iy in (2 * y - 2)...(2 * y) where iy >= 0 && iy < h {
                    for ix in (2 * x - 2)...(2 * x) where ix >= 0 && ix < w { sum += input[iy * w + ix] }
                }
                #expect(out[y * 3 + x] == sum, "(\(y), \(x))")
            }
        }
    }

    @Test func depthwiseKeepsChannelsApart() {
        // 2 channels, 2×2 input; taps pick only the centre-bottom-right (ky = 2, kx = 2) of channel 0, and the
        // top-left (ky = 0, kx = 0) of channel 1.
        let input: [Float] = [1, 10, 2, 20, 3, 30, 4, 40]   // [h, w, C]
        var taps = [Float](repeating: 0, count: 18)
        taps[8 * 2 + 0] = 1      // tap 8 → input (2y, 2x), channel 0
        taps[0 * 2 + 1] = 1      // tap 0 → input (2y − 2, 2x − 2), channel 1
        var out = [Float](repeating: 0, count: 2 * 2 * 2)
        Convolution.causalStride2ChannelLast(input, height: 2, width: 2, inputChannels: 2, channels: 2, taps: taps,
                                             bias: [0, 0], into: &out)
        // Output 2×2: channel 0 at (y, x) reads input (2y, 2x) → only (0, 0) is inside; channel 1 reads (2y−2, 2x−2)
        // → inside only for (1, 1).
        #expect(out == [1, 0, 0, 0, 0, 0, 0, 10])
    }

    /// Channel counts across the kernel's blocks of 32 (this CPU's variant; scripts/check-kernels runs the others),
    /// from one channel and depthwise, with the ReLU: against the definition summed in Double.
    @Test(arguments: [(1, 37), (37, 37), (1, 77), (77, 77)])
    func stemConvMatchesItsDefinitionAcrossChannelBlocks(inputChannels: Int, channels c: Int) {
        let h = 7, w = 6, oh = 4, ow = 4
        let input = (0..<(h * w * inputChannels)).map { Float(($0 * 37) % 23) / 11 - 1 }
        let taps = (0..<(9 * c)).map { Float(($0 * 53) % 29) / 14 - 1 }
        let bias = (0..<c).map { Float($0 % 5) / 5 - 0.4 }
        for relu in [false, true] {
            var out = [Float](repeating: .nan, count: oh * ow * c)
            Convolution.causalStride2ChannelLast(input, height: h, width: w, inputChannels: inputChannels, channels: c,
                                                 taps: taps, bias: bias, relu: relu, into: &out)
            var worst = 0.0
            for y in 0..<oh { for x in 0..<ow { for ch in 0..<c {
                var sum = Double(bias[ch])
                for ky in 0..<3 { for kx in 0..<3 {
                    let iy = 2 * y + ky - 2, ix = 2 * x + kx - 2
                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                    sum += Double(taps[(ky * 3 + kx) * c + ch])
                        * Double(input[(iy * w + ix) * inputChannels + (inputChannels == 1 ? 0 : ch)])
                } }
                if relu { sum = max(sum, 0) }
                worst = max(worst, abs(Double(out[(y * ow + x) * c + ch]) - sum))
            } } }
            #expect(worst < 1e-5, "relu \(relu): worst \(worst)")
        }
    }

    @Test func causalTimeConvUsesHistoryThenCurrent() {
        // Kernel 3: out[t, c] = w0·x[t−2, c] + w1·x[t−1, c] + w2·x[t, c] + b[c], with x[−2], x[−1] from the history.
        // Channel 0 has taps (1, 2, 4), channel 1 taps (3, 0, −1); taps are tap-major [kernel, channels].
        var out = [Float](repeating: 0, count: 6)
        Convolution.causalDepthwiseTime(history: [100, 5, 10, 6], current: [1, 7, 2, 8, 3, 9], frames: 3,
                                        channels: 2, kernel: 3, taps: [1, 3, 2, 0, 4, -1], bias: [0.5, -0.5],
                                        into: &out)
        // Channel 0: 100+20+4, 10+2+8, 1+4+12; channel 1: 15−7, 18−8, 21−9; each + its bias.
        let expected: [Float] = [124.5, 7.5, 20.5, 9.5, 17.5, 11.5]
        #expect(out == expected)
    }
}

@Suite struct NPYTests {
    @Test func writeThenReadRoundTrips() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("stt-npy-\(UUID().uuidString).npy")
        try NPYArray(floats: [1, -2.5, 3e-8, 4], shape: [2, 2]).write(to: url)
        let back = try NPYArray(contentsOf: url)
        #expect(back.shape == [2, 2] && back.floats == [1, -2.5, 3e-8, 4])
        try NPYArray(integers: [7, -1], shape: [2]).write(to: url)
        #expect(try NPYArray(contentsOf: url).integers == [7, -1])
    }
}

/// bfloat16 weights: rounding, and products on every variant against a reference that rounds independently.
@Suite struct BFloat16Tests {
    /// The bfloat16 nearest to x (ties to even), found by comparing the two truncations around it in Double.
    /// AMX's form of a row value: its bits cut to bfloat16, plus the rest rounded to bfloat16.
    static func splitBF16(_ x: Float) -> Float {
        let high = Float(bitPattern: x.bitPattern & 0xFFFF_0000)
        return high + nearestBF16(x - high)
    }

    static func nearestBF16(_ x: Float) -> Float {
        guard x.isFinite else { return x }
        let down = Float(bitPattern: x.bitPattern & 0xFFFF_0000)
        let up = Float(bitPattern: (x.bitPattern & 0xFFFF_0000) &+ 0x1_0000)
        let dDown = abs(Double(x) - Double(down)), dUp = abs(Double(x) - Double(up))
        if dDown != dUp { return dDown < dUp ? down : up }
        return (down.bitPattern >> 16) & 1 == 0 ? down : up
    }

    @Test func packingRoundsToNearestEven() {
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: to 1 (even). 1 + 3·2⁻⁸: to 1 + 2⁻⁶ (even). −3.5 is exact.
        let w: [Float] = [1, 1 + 1.0 / 256, 1 + 3.0 / 256, -3.5, 1e-3, 65_504, .infinity, 0]
        let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: 1, columns: w.count, precision: .bf16) }
        // One row of k: column c's weight is the low half of the panel's 32-bit lane c, its (missing) pair zero.
        let stored = (0..<w.count).map { Float(bitPattern: UInt32(packed.bf16[2 * $0]) << 16) }
        #expect(stored[0] == 1 && stored[1] == 1 && stored[2] == 1 + 1.0 / 64 && stored[3] == -3.5)
        #expect(stored == w.map(Self.nearestBF16))
        #expect((0..<16).allSatisfy { packed.bf16[2 * $0 + 1] == 0 })
        #expect(packed.byteCount == ck_packed_bf16_size(1, w.count) * 2 && ck_packed_bf16_size(1, w.count) == 32)
    }

    /// The layout AVX512_BF16 multiplies: panels of 16 columns; in each, k in pairs, each column's pair in one 32-bit
    /// lane (the even k in the low half); odd k padded with a zero row, a partial panel with zero columns.
    @Test func panelsPairTheInputs() {
        let (k, n) = (3, 18)
        let w = (0..<k * n).map { Float($0 + 1) }   // small integers: exact in bfloat16
        let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n, precision: .bf16) }
        #expect(ck_packed_bf16_size(k, n) == 4 * 32)
        for panel in 0..<2 {
            for p in 0..<4 {
                for c in 0..<16 {
                    let column = panel * 16 + c
                    let expected: Float = p < k && column < n ? w[p * n + column] : 0
                    let at = panel * 4 * 16 + (p / 2) * 32 + c * 2 + p % 2
                    #expect(Float(bitPattern: UInt32(packed.bf16[at]) << 16) == expected, "panel \(panel) k \(p) column \(c)")
                }
            }
        }
    }

    /// Whether bf16 products multiply with AVX512_BF16's vdpbf16ps here (rows rounded to bfloat16 too; STT_BF16_ROWS=1).
    static var dotProducts: Bool { String(cString: ck_gemm_bf16_variant()).hasPrefix("avx512_bf16") }

    /// Every variant, tile shapes and column tails, in place and repacked rows, plain and PyTorch layout: equal to the
    /// product with independently rounded weights, and within bfloat16's rounding of the float32 product.
    /// AVX512_BF16 (variant 3, where the CPU has it) rounds the rows too: its reference rounds both. AMX (variant 4)
    /// splits each row value in two bfloat16 values: its reference uses their sum.
    @Test(arguments: [1, 2, 6, 14, 15, 17, 30, 49])
    func productsEqualTheRoundedWeightsProduct(rows m: Int) {
        for variant: Int32 in [CK_GEMM_AMX_BF16, CK_GEMM_AVX512_BF16, 2, 1, 0] {
            for (k, n) in [(7, 5), (64, 16), (96, 33), (512, 29)] {
                let x = values(m * k, seed: UInt64(m * 31 + k)), w = values(k * n, seed: UInt64(n + 5))
                let xUsed = variant == CK_GEMM_AVX512_BF16 ? x.map(Self.nearestBF16)
                    : variant == CK_GEMM_AMX_BF16 ? x.map(Self.splitBF16) : x
                let rounded = naiveProduct(xUsed, w.map(Self.nearestBF16), m: m, k: k, n: n)
                let exact = naiveProduct(x, w, m: m, k: k, n: n)
                let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n, precision: .bf16) }
                var wt = [Float](repeating: 0, count: k * n)
                for p in 0..<k { for j in 0..<n { wt[j * k + p] = w[p * n + j] } }
                let fromTorch = wt.withUnsafeBufferPointer {
                    PackedMatrix($0.baseAddress!, rows: k, columns: n, transposed: true, precision: .bf16)
                }
                var y = [Float](repeating: 0, count: m * n), z = [Float](repeating: 1, count: m * n)
                var scratch = [Float](repeating: 0, count: max(1, Kernels.gemmScratch(rows: m, inputs: k)))
                guard ck_gemm_packed_variant(variant, nil, x, m, k, k, packed.bf16, 1, n, &y, n, 0, &scratch) == 1 else {
                    continue
                }
                _ = ck_gemm_packed_variant(variant, nil, x, m, k, k, fromTorch.bf16, 1, n, &z, n, 1, nil)
                let worst = zip(y, rounded).map { abs($0 - $1) }.max() ?? 0
                let worstAccumulated = zip(z, rounded).map { abs($0 - 1 - $1) }.max() ?? 0
                #expect(worst < 1e-4 && worstAccumulated < 1e-4, "variant \(variant) m \(m) k \(k) n \(n)")
                // |Σ x·(w − bf16(w))| ≤ Σ |x|·|w|·2⁻⁹ per output (|w| ≤ 1); with x rounded too, about twice that,
                // which the bound below allows.
                for i in 0..<m {
                    let bound = (0..<k).reduce(Float(0)) { $0 + abs(x[i * k + $1]) } * 2 / 512 + 1e-4
                    for j in 0..<n { #expect(abs(y[i * n + j] - exact[i * n + j]) <= bound) }
                }
            }
        }
    }

    @Test func kernelsDispatchOnThePrecision() {
        let (m, k, n) = (3, 64, 40)
        let x = values(m * k, seed: 9), w = values(k * n, seed: 10)
        let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n, precision: .bf16) }
        var y = [Float](repeating: 0, count: m * n)
        Kernels.gemm(m: m, x: x, ldx: k, packed, y: &y, ldy: n)
        let rounded = naiveProduct(Self.dotProducts ? x.map(Self.nearestBF16) : x, w.map(Self.nearestBF16), m: m, k: k, n: n)
        #expect(zip(y, rounded).allSatisfy { abs($0 - $1) < 1e-4 })
    }
}

/// int8 weights: per-column scales, rows rounded at run time, exact integer sums; every variant against a reference
/// written here from the definition.
@Suite struct Int8Tests {
    /// round(v / scale) clamped to ±limit, as the definition says (ties to even).
    static func quantize(_ v: Float, _ scale: Float, limit: Int = 127) -> Int {
        guard scale > 0 else { return 0 }
        let q = v / scale
        guard !q.isNaN else { return limit }
        return Int(min(Float(limit), max(-Float(limit), q)).rounded(.toNearestOrEven))
    }

    /// The largest integer a row is rounded to: 16 bits, less where k products of weights up to 127 could pass 2³¹.
    static func rowLimit(k: Int) -> Int { min(32_767, Int(Int32.max) / (127 * (k + k % 2))) }

    /// y = t_row · s_col · Σ q_x · q_w, with t = max|row| / rowLimit(k) and s = max|column| / 127.
    static func reference(_ x: [Float], _ w: [Float], m: Int, k: Int, n: Int) -> [Float] {
        let s = (0..<n).map { j in (0..<k).map { abs(w[$0 * n + j]) }.max().map { $0 / 127 } ?? 0 }
        let limit = rowLimit(k: k)
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            let largest = (0..<k).map { abs(x[i * k + $0]) }.max() ?? 0
            let t = largest > 0 ? largest / Float(limit) : 0
            for j in 0..<n {
                var sum = 0
                for p in 0..<k { sum += quantize(x[i * k + p], t, limit: limit) * quantize(w[p * n + j], s[j]) }
                y[i * n + j] = Float(sum) * t * s[j]
            }
        }
        return y
    }

    @Test func packingScalesEachColumnAndRounds() {
        // Two columns: [1, −0.5, 0.25] and [NaN, 2, 0]; one row of k = 3.
        let w: [Float] = [1, .nan, -0.5, 2, 0.25, 0]
        let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: 3, columns: 2, precision: .int8) }
        #expect(packed.precision == .int8 && packed.scales[0] == 1 / 127 && packed.scales[1] == 2 / Float(127))
        // Panel layout: pair p, column c, then the pair's two rows.
        let q = packed.int8
        #expect(q[0] == 127 && q[1] == -64 && q[2] == 0 && q[3] == 127)    // (w00, w10 = −63.5 → even), (NaN → 0, w11)
        #expect(q[32] == 32 && q[33] == 0 && q[34] == 0 && q[35] == 0)     // (w20, pad), (w21, pad)
        let tall = [Float](repeating: 1, count: 65_537)
        let kept = tall.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: 65_537, columns: 1, precision: .int8) }
        #expect(kept.precision == .fp32, "sums of more than 65,536 rows could overflow 32 bits")
    }

    /// Every variant, tile shapes and column tails, both layouts, accumulating or not: bit for bit the reference, and
    /// within the rounding of both operands of the float32 product.
    @Test(arguments: [1, 2, 6, 7, 14, 15, 29, 30])
    func productsEqualTheDefinition(rows m: Int) {
        // 4 AMX, 3 AVX512_VNNI, 2 AVX-512 BW, 1 AVX2, 0 portable; one this CPU lacks is skipped.
        for variant: Int32 in [4, 3, 2, 1, 0] {
            for (k, n) in [(7, 5), (64, 16), (97, 33), (512, 29), (2048, 17)] {
                var x = values(m * k, seed: UInt64(m * 37 + k)), w = values(k * n, seed: UInt64(n + 11))
                x[0] *= 40   // one large input: the row's scale follows it
                let expected = Self.reference(x, w, m: m, k: k, n: n)
                let exact = naiveProduct(x, w, m: m, k: k, n: n)
                let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n, precision: .int8) }
                var wt = [Float](repeating: 0, count: k * n)
                for p in 0..<k { for j in 0..<n { wt[j * k + p] = w[p * n + j] } }
                let fromTorch = wt.withUnsafeBufferPointer {
                    PackedMatrix($0.baseAddress!, rows: k, columns: n, transposed: true, precision: .int8)
                }
                var y = [Float](repeating: 0, count: m * n), z = [Float](repeating: 1, count: m * n)
                var scratch = [Float](repeating: 0, count: Kernels.gemmScratch(rows: m, inputs: k))
                guard ck_gemm_packed_int8_variant(variant, nil, x, m, k, k, packed.int8, packed.scales, n, &y, n, 0,
                                                  &scratch) == 1 else { continue }
                _ = ck_gemm_packed_int8_variant(variant, nil, x, m, k, k, fromTorch.int8, fromTorch.scales, n, &z, n, 1, nil)
                #expect(y == expected, "variant \(variant) m \(m) k \(k) n \(n)")
                #expect(zip(z, expected).allSatisfy { $0 == 1 + $1 || abs($0 - 1 - $1) <= 1e-6 * max(1, abs($1)) })
                for i in 0..<m {
                    let t = (0..<k).map { abs(x[i * k + $0]) }.max()! / Float(Self.rowLimit(k: k))
                    for j in 0..<n {
                        let s = (0..<k).map { abs(w[$0 * n + j]) }.max()! / 127
                        let bound = (0..<k).reduce(Float(0)) { $0 + abs(x[i * k + $1]) * s / 2 + abs(w[$1 * n + j]) * t / 2 + t * s / 4 }
                        #expect(abs(y[i * n + j] - exact[i * n + j]) <= bound * 1.01 + 1e-6)
                    }
                }
            }
        }
    }

    @Test func kernelsDispatchInt8AndSplitAcrossThreadsAlike() {
        let (m, k, n) = (5, 256, 200)
        let x = values(m * k, seed: 3), w = values(k * n, seed: 4)
        let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n, precision: .int8) }
        var one = [Float](repeating: 0, count: m * n), two = one
        var scratch = [Float](repeating: 0, count: Kernels.gemmScratch(rows: m, inputs: k))
        Kernels.gemm(m: m, x: x, ldx: k, packed, y: &one, ldy: n, scratch: &scratch)
        let pool = ComputePool(threads: 2)
        Kernels.gemm(m: m, x: x, ldx: k, packed, y: &two, ldy: n, scratch: &scratch, pool: pool)
        #expect(one == Self.reference(x, w, m: m, k: k, n: n) && two == one)
    }
}
