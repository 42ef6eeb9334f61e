import Foundation

/// 64-byte aligned, contiguous `Float` storage. Weights are written once while loading and then only read,
/// so one buffer can be shared by every stream and thread; per-stream scratch buffers are owned by one stream.
package final class FloatStorage: @unchecked Sendable {
    package let count: Int
    package let pointer: UnsafeMutablePointer<Float>

    /// Zero-filled storage of `count` floats.
    package convenience init(count: Int) {
        self.init(uninitializedCount: count)
        memset(pointer, 0, max(count, 1) * MemoryLayout<Float>.stride)
    }

    /// Storage of `count` floats whose contents the caller writes in full before reading. Buffers of 4 MB and more
    /// are 2 MB-aligned and offered to transparent huge pages: a model's weights then fault in 512× fewer pages.
    package init(uninitializedCount count: Int) {
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let huge = 2 << 20
        let large = bytes >= 2 * huge
        // posix_memalign only fails on out-of-memory, where continuing is impossible anyway.
        if posix_memalign(&raw, large ? huge : 64, bytes) != 0 || raw == nil {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        if large { madvise(raw!, bytes / huge * huge, 14 /* MADV_HUGEPAGE */) }
        pointer = raw!.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { free(pointer) }

    package var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }
}

/// A dense row-major float tensor: a shape over shared aligned storage.
package struct Tensor: @unchecked Sendable {
    package let shape: [Int]
    package let storage: FloatStorage

    package init(zeros shape: [Int]) {
        self.shape = shape
        self.storage = FloatStorage(count: shape.reduce(1, *))
    }

    /// A tensor whose every element the caller writes before reading any.
    package init(uninitialized shape: [Int]) {
        self.shape = shape
        self.storage = FloatStorage(uninitializedCount: shape.reduce(1, *))
    }

    package init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { src in
            storage.pointer.update(from: src.baseAddress!, count: values.count)
        }
    }

    /// Reinterprets the same storage under another shape with the same element count.
    package func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    init(shape: [Int], storage: FloatStorage) {
        self.shape = shape
        self.storage = storage
    }

    package var count: Int { shape.reduce(1, *) }
    package var rank: Int { shape.count }
    package var data: UnsafeMutablePointer<Float> { storage.pointer }
    package var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
    package var array: [Float] { Array(buffer) }

    package subscript(flat index: Int) -> Float {
        get { data[index] }
        nonmutating set { data[index] = newValue }
    }
}
