import Foundation

/// 64-byte aligned, contiguous `Float` storage. Weights are written once while loading and then only read,
/// so one buffer can be shared by every stream and thread; per-stream scratch buffers are owned by one stream.
public final class FloatStorage: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// Zero-filled storage of `count` floats.
    public init(count: Int) {
        self.count = count
        var raw: UnsafeMutableRawPointer?
        // posix_memalign only fails on out-of-memory, where continuing is impossible anyway.
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if posix_memalign(&raw, 64, bytes) != 0 || raw == nil {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        memset(raw!, 0, bytes)
        pointer = raw!.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { free(pointer) }

    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }
}

/// A dense row-major float tensor: a shape over shared aligned storage.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: FloatStorage

    public init(zeros shape: [Int]) {
        self.shape = shape
        self.storage = FloatStorage(count: shape.reduce(1, *))
    }

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { src in
            storage.pointer.update(from: src.baseAddress!, count: values.count)
        }
    }

    /// Reinterprets the same storage under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    init(shape: [Int], storage: FloatStorage) {
        self.shape = shape
        self.storage = storage
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var data: UnsafeMutablePointer<Float> { storage.pointer }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
    public var array: [Float] { Array(buffer) }

    public subscript(flat index: Int) -> Float {
        get { data[index] }
        nonmutating set { data[index] = newValue }
    }
}
