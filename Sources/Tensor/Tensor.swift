import Foundation

/// 64-byte aligned, contiguous `Float` storage. Weights are written once while loading and then only read,
/// so one buffer can be shared by every stream and thread; per-stream scratch buffers are owned by one stream.
package final class FloatStorage: @unchecked Sendable {
    package let count: Int
    package let pointer: UnsafeMutablePointer<Float>
    /// The chunk a weight buffer was carved from (kept alive by it), or nil for a buffer of its own.
    private let chunk: WeightChunk?

    private init(count: Int, pointer: UnsafeMutablePointer<Float>, chunk: WeightChunk?) {
        self.count = count
        self.pointer = pointer
        self.chunk = chunk
    }

    /// Zero-filled storage of `count` floats.
    package convenience init(count: Int) {
        self.init(uninitializedCount: count)
        memset(pointer, 0, max(count, 1) * MemoryLayout<Float>.stride)
    }

    /// Storage of `count` floats whose contents the caller writes in full before reading. Buffers of 4 MB and more
    /// are 2 MB-aligned and offered to transparent huge pages: a model's weights then fault in 512× fewer pages.
    package convenience init(uninitializedCount count: Int) {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = WeightChunk.allocate(bytes: bytes, huge: bytes >= 2 * WeightChunk.hugePage)
        self.init(count: count, pointer: raw.bindMemory(to: Float.self, capacity: max(count, 1)), chunk: nil)
    }

    /// Storage for a packed weight matrix that the caller writes in full before reading: a buffer of 4 MB or more of
    /// its own, a smaller one carved out of a shared chunk on huge pages, so that the many matrices of less than 4 MB
    /// (every matrix of a full-size model in int8) stream from huge pages too: fewer TLB misses as a step reads them,
    /// fewer page faults as they load.
    package convenience init(weightCount count: Int) {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard bytes < 2 * WeightChunk.hugePage, let (raw, chunk) = WeightChunk.carve(bytes: bytes) else {
            self.init(uninitializedCount: count)
            return
        }
        self.init(count: count, pointer: raw.bindMemory(to: Float.self, capacity: max(count, 1)), chunk: chunk)
    }

    deinit { if chunk == nil { free(pointer) } }

    package var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }
}

/// 32 MB of 2 MB-aligned memory offered to transparent huge pages, carved into weight buffers of less than 4 MB in
/// the order they are asked for; freed when the last buffer carved from it is. A chunk's unused tail is never touched,
/// so it costs address space, not memory.
final class WeightChunk: @unchecked Sendable {
    static let hugePage = 2 << 20
    static let size = 32 << 20
    let base: UnsafeMutableRawPointer

    private init(base: UnsafeMutableRawPointer) { self.base = base }
    deinit { free(base) }

    /// `bytes` aligned to 64 bytes, or with `huge` to 2 MB and offered to huge pages (MADV_HUGEPAGE).
    static func allocate(bytes: Int, huge: Bool) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        // posix_memalign only fails on out-of-memory, where continuing is impossible anyway.
        if posix_memalign(&raw, huge ? hugePage : 64, bytes) != 0 || raw == nil {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        if huge, let raw { madvise(raw, bytes / hugePage * hugePage, 14 /* MADV_HUGEPAGE */) }
        return raw!
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var current: WeightChunk?
    nonisolated(unsafe) private static var used = 0

    /// `bytes` (less than a chunk) from the current chunk, 64-byte aligned, or from a new one when it is full.
    static func carve(bytes: Int) -> (UnsafeMutableRawPointer, WeightChunk)? {
        let rounded = (bytes + 63) / 64 * 64
        guard rounded <= size else { return nil }
        lock.lock()
        defer { lock.unlock() }
        if current == nil || used + rounded > size {
            current = WeightChunk(base: allocate(bytes: size, huge: true))
            used = 0
        }
        guard let chunk = current else { return nil }
        defer { used += rounded }
        return (chunk.base + used, chunk)
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

    /// A tensor for packed weights, written in full before any read (see `FloatStorage.init(weightCount:)`).
    package init(weights shape: [Int]) {
        self.shape = shape
        self.storage = FloatStorage(weightCount: shape.reduce(1, *))
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
