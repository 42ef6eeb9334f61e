import CSTTKernels

/// How packed weights are stored. Products always multiply and sum in float32.
package enum WeightPrecision: String, Sendable, CaseIterable {
    /// float32: exact.
    case fp32
    /// bfloat16 (each weight rounded to nearest even, 8 bits of mantissa): half the bytes per product, widened to
    /// float32 in registers; on a CPU with AVX512_BF16 and with STT_BF16_ROWS=1, multiplied by the rows rounded to
    /// bfloat16 too, two at a time (`ck_gemm_packed_bf16`).
    case bf16
    /// int8 with a float32 scale per output column: a quarter of the bytes per product. Each row of the input is
    /// rounded to 16-bit integers with its own scale as it is multiplied; sums are exact integers (see
    /// `ck_gemm_packed_int8`).
    case int8
}

/// A weight matrix [rows (in) × columns (out)] packed once for `Kernels.gemm(m:x:ldx:_:y:ldy:)`: column panels of
/// 16, each panel rows×16 contiguous, so the product reads every weight once, front to back.
package struct PackedMatrix: Sendable {
    package let rows: Int
    package let columns: Int
    package let precision: WeightPrecision
    /// The panels: float32 values; for bf16 the 16-bit values two to a float slot (see `bf16`); for int8 the column
    /// scales, then the 8-bit values four to a float slot (see `scales`, `int8`).
    package let storage: Tensor

    /// Packs a row-major [rows × columns] matrix; `transposed` takes a [columns × rows] one (PyTorch's [out, in]).
    package init(_ matrix: UnsafePointer<Float>, rows: Int, columns: Int, transposed: Bool = false,
                 precision: WeightPrecision = .fp32) {
        self.init(bytes: UnsafeRawPointer(matrix), rows: rows, columns: columns, transposed: transposed,
                  precision: precision)
    }

    /// Packs from little-endian float32 bytes at any alignment (a tensor in a mapped file): [rows × columns], or
    /// [columns × rows] when `transposed`. A matrix of more than 65,536 rows asked for in int8 is kept in float32 (its
    /// integer sums could overflow).
    package init(bytes: UnsafeRawPointer, rows: Int, columns: Int, transposed: Bool = false,
                 precision asked: WeightPrecision = .fp32) {
        self.rows = rows
        self.columns = columns
        let precision: WeightPrecision = asked == .int8 && rows > 65_536 ? .fp32 : asked
        self.precision = precision
        let count = ck_packed_size(rows, columns)
        switch precision {
        case .int8:
            let bytes8 = ck_packed_int8_size(rows, columns)
            storage = Tensor(weights: [columns + (bytes8 + 3) / 4])
            ck_pack_panels_int8(bytes, rows, columns, transposed ? 1 : 0, int8, storage.data)
        case .fp32:
            storage = Tensor(weights: [count])
            ck_pack_panels_bytes(bytes, rows, columns, transposed ? 1 : 0, storage.data)
        case .bf16:
            storage = Tensor(weights: [(ck_packed_bf16_size(rows, columns) + 1) / 2])
            ck_pack_panels_bf16(bytes, rows, columns, transposed ? 1 : 0, bf16)
        }
    }

    /// The column scales of an `.int8` matrix.
    package var scales: UnsafeMutablePointer<Float> { storage.data }

    /// The int8 panels of an `.int8` matrix.
    package var int8: UnsafeMutablePointer<Int8> {
        UnsafeMutableRawPointer(storage.data + columns).assumingMemoryBound(to: Int8.self)
    }

    /// The bfloat16 panels of a `.bf16` matrix.
    package var bf16: UnsafeMutablePointer<UInt16> {
        UnsafeMutableRawPointer(storage.data).assumingMemoryBound(to: UInt16.self)
    }

    /// Bytes held.
    package var byteCount: Int { storage.count * 4 }
}
