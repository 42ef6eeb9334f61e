import CSTTKernels
import Dispatch
import Testing
@testable import STTTensor

/// Products split across a pool's threads give the result of the calling thread alone, bit for bit: every output
/// is summed by one thread in one order.
@Suite struct ComputePoolTests {
    /// Shapes that split (several panels, ≥ 64 K multiply-adds) and some that do not, with column tails and one,
    /// a few, a full tile and more rows.
    static let shapes = [(1, 512, 200), (3, 512, 200), (6, 256, 1030), (14, 2048, 130), (15, 96, 300), (29, 512, 300),
                         (2, 64, 40)]

    func checkThreadCountsDoNotChangeBits(variant: Int32, precisions: [WeightPrecision] = WeightPrecision.allCases) {
        let pools = [ComputePool(threads: 2), ComputePool(threads: 3)]
        for (m, k, n) in Self.shapes {
          for precision in precisions {
            let x = values(m * k, seed: UInt64(m * 7919 + k)), w = values(k * n, seed: UInt64(n))
            let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n, precision: precision) }
            let bf16: Int32 = precision == .bf16 ? 1 : 0
            var scratch = [Float](repeating: 0, count: max(1, Kernels.gemmScratch(rows: m, inputs: k)))
            func product(_ pool: ComputePool?, _ y: inout [Float], _ accumulate: Int32, _ scratch: UnsafeMutablePointer<Float>?) {
                if precision == .int8 {
                    _ = ck_gemm_packed_int8_variant(variant, pool?.handle, x, m, k, k, packed.int8, packed.scales, n, &y,
                                                    n, accumulate, scratch)
                } else {
                    _ = ck_gemm_packed_variant(variant, pool?.handle, x, m, k, k, packed.storage.data, bf16, n, &y, n,
                                               accumulate, scratch)
                }
            }
            for accumulate: Int32 in [0, 1] {
                var alone = [Float](repeating: 0.5, count: m * n)
                product(nil, &alone, accumulate, nil)
                for pool in pools {
                    for useScratch in [false, true] {
                        var split = [Float](repeating: 0.5, count: m * n)
                        if useScratch {
                            product(pool, &split, accumulate, &scratch)
                        } else {
                            product(pool, &split, accumulate, nil)
                        }
                        let what = "variant \(variant), \(precision), \(pool.threads) threads, m \(m) k \(k) n \(n), "
                            + "accumulate \(accumulate)"
                        #expect(split == alone, "\(what), scratch \(useScratch)")
                    }
                }
            }
          }
        }
    }

    @Test func portableProductOnTwoAndThreeThreadsEqualsOneThread() {
        checkThreadCountsDoNotChangeBits(variant: CK_LEVEL_PORTABLE)
    }

    @Test(.enabled(if: ck_gemm_bf16_dot_supported() != 0, "this CPU (or STT_KERNELS) has no AVX512_BF16"))
    func avx512BF16ProductOnTwoAndThreeThreadsEqualsOneThread() {
        checkThreadCountsDoNotChangeBits(variant: CK_GEMM_AVX512_BF16)
    }

    @Test(.enabled(if: ck_cpu_level() >= CK_LEVEL_AVX2, "this CPU (or STT_KERNELS) has no AVX2+FMA"))
    func avx2ProductOnTwoAndThreeThreadsEqualsOneThread() {
        checkThreadCountsDoNotChangeBits(variant: CK_LEVEL_AVX2)
    }

    @Test(.enabled(if: ck_cpu_level() >= CK_LEVEL_AVX512, "this CPU (or STT_KERNELS) has no AVX-512"))
    func avx512ProductOnTwoAndThreeThreadsEqualsOneThread() {
        checkThreadCountsDoNotChangeBits(variant: CK_LEVEL_AVX512)
    }

    /// AMX is variant 4 of the bf16 products (CK_GEMM_AMX_BF16) and of the int8 ones: each thread that takes part
    /// configures its own tiles.
    @Test(.enabled(if: ck_amx_available() != 0 && ck_cpu_extensions_allowed() != 0,
                   "this CPU (or STT_KERNELS, or the system) allows no AMX"))
    func amxProductsOnTwoAndThreeThreadsEqualThreadAlone() {
        checkThreadCountsDoNotChangeBits(variant: CK_GEMM_AMX_BF16, precisions: [.bf16, .int8])
    }

    /// Callers on several threads share one pool: whichever finds it busy runs its product alone, and every product
    /// equals the calling thread's own.
    @Test func callersOnManyThreadsShareOnePool() {
        let (m, k, n) = (6, 256, 1030)
        let x = values(m * k, seed: 3), w = values(k * n, seed: 4)
        let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n) }
        var own = [Float](repeating: 0, count: m * n)
        Kernels.gemm(m: m, x: x, ldx: k, packed, y: &own, ldy: n)
        let alone = own, pool = ComputePool(threads: 3)
        let callers = 4, products = 40
        // Each caller counts into its own slot.
        nonisolated(unsafe) let wrong = UnsafeMutableBufferPointer<Int>.allocate(capacity: callers)
        defer { wrong.deallocate() }
        wrong.initialize(repeating: 0)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            var y = [Float](repeating: 0, count: m * n)
            for _ in 0..<products {
                Kernels.gemm(m: m, x: x, ldx: k, packed, y: &y, ldy: n, pool: pool)
                if y != alone { wrong[caller] += 1 }
            }
        }
        #expect(Array(wrong) == [Int](repeating: 0, count: callers))
    }

    /// Pools start and stop their workers: many of them, each used once, neither hang nor leave threads behind to
    /// finish a product late.
    @Test func poolsComeAndGo() {
        let (m, k, n) = (4, 256, 512)
        let x = values(m * k, seed: 1), w = values(k * n, seed: 2)
        let packed = w.withUnsafeBufferPointer { PackedMatrix($0.baseAddress!, rows: k, columns: n) }
        var alone = [Float](repeating: 0, count: m * n)
        Kernels.gemm(m: m, x: x, ldx: k, packed, y: &alone, ldy: n)
        for threads in [1, 2, 3, 4, 1, 8] {
            let pool = ComputePool(threads: threads)
            #expect(pool.threads == threads && pool.handle != nil)
            var split = [Float](repeating: 0, count: m * n)
            Kernels.gemm(m: m, x: x, ldx: k, packed, y: &split, ldy: n, pool: pool)
            #expect(split == alone, "\(threads) threads")
        }
    }
}
