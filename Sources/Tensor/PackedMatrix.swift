import CSTTKernels

/// How packed weights are stored. Products always multiply and sum in float32.
package enum WeightPrecision: String, Sendable, CaseIterable {
    /// float32: exact.
    case fp32
    /// bfloat16 (each weight rounded to nearest even, 8 bits of mantissa): half the bytes per product, widened to
    /// float32 in registers.
    case bf16
}

/// A weight matrix [rows (in) × columns (out)] packed once for `Kernels.gemm(m:x:ldx:_:y:ldy:)`: column panels of
/// 16, each panel rows×16 contiguous, so the product reads every weight once, front to back.
package struct PackedMatrix: Sendable {
    package let rows: Int
    package let columns: Int
    package let precision: WeightPrecision
    /// The panels: float32 values, or for bf16 the 16-bit values two to a float slot (see `bf16`).
    package let storage: Tensor

    /// Packs a row-major [rows × columns] matrix; `transposed` takes a [columns × rows] one (PyTorch's [out, in]).
    package init(_ matrix: UnsafePointer<Float>, rows: Int, columns: Int, transposed: Bool = false,
                 precision: WeightPrecision = .fp32) {
        self.init(bytes: UnsafeRawPointer(matrix), rows: rows, columns: columns, transposed: transposed,
                  precision: precision)
    }

    /// Packs from little-endian float32 bytes at any alignment (a tensor in a mapped file): [rows × columns], or
    /// [columns × rows] when `transposed`.
    package init(bytes: UnsafeRawPointer, rows: Int, columns: Int, transposed: Bool = false,
                 precision: WeightPrecision = .fp32) {
        self.rows = rows
        self.columns = columns
        self.precision = precision
        let count = ck_packed_size(rows, columns)
        switch precision {
        case .fp32:
            storage = Tensor(uninitialized: [count])
            ck_pack_panels_bytes(bytes, rows, columns, transposed ? 1 : 0, storage.data)
        case .bf16:
            storage = Tensor(uninitialized: [(count + 1) / 2])
            ck_pack_panels_bf16(bytes, rows, columns, transposed ? 1 : 0, bf16)
        }
    }

    /// The bfloat16 panels of a `.bf16` matrix.
    package var bf16: UnsafeMutablePointer<UInt16> {
        UnsafeMutableRawPointer(storage.data).assumingMemoryBound(to: UInt16.self)
    }

    /// Bytes held.
    package var byteCount: Int { storage.count * 4 }
}
