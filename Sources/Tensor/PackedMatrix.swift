import CSTTKernels

/// A weight matrix [rows (in) × columns (out)] packed once for `Kernels.gemm(m:x:ldx:_:y:ldy:)`: column panels of
/// 16, each panel rows×16 contiguous, so the product reads every weight once, front to back.
package struct PackedMatrix: Sendable {
    package let rows: Int
    package let columns: Int
    package let storage: Tensor

    /// Packs a row-major [rows × columns] matrix; `transposed` takes a [columns × rows] one (PyTorch's [out, in]).
    package init(_ matrix: UnsafePointer<Float>, rows: Int, columns: Int, transposed: Bool = false) {
        self.init(bytes: UnsafeRawPointer(matrix), rows: rows, columns: columns, transposed: transposed)
    }

    /// Packs from little-endian float32 bytes at any alignment (a tensor in a mapped file): [rows × columns], or
    /// [columns × rows] when `transposed`.
    package init(bytes: UnsafeRawPointer, rows: Int, columns: Int, transposed: Bool = false) {
        self.rows = rows
        self.columns = columns
        storage = Tensor(uninitialized: [ck_packed_size(rows, columns)])
        ck_pack_panels_bytes(bytes, rows, columns, transposed ? 1 : 0, storage.data)
    }

    /// Bytes held.
    package var byteCount: Int { storage.count * 4 }
}
