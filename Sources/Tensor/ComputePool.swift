import CSTTKernels

/// Worker threads that split one weight product at a time by column panels. A model owns one, sized by the app;
/// nothing in the engine touches a process-wide thread setting. Streams of one model may share it from any threads:
/// while one product runs on it, a product from another thread runs on that thread alone.
package final class ComputePool: @unchecked Sendable {
    /// Threads a product may use, the caller included (fewer than asked for if the system refused some).
    package let threads: Int
    /// nil when not even the pool's bookkeeping could be allocated: products then run on the caller alone.
    package let handle: OpaquePointer?

    package init(threads: Int) {
        handle = ck_pool_create(Int32(clamping: max(1, threads)))
        self.threads = Int(ck_pool_threads(handle))
    }

    deinit { ck_pool_destroy(handle) }
}
