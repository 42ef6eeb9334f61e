import Foundation

/// A read-only memory map of a whole file. Only the protobuf framing is read through the map; tensor payloads are
/// copied out with `pread` straight into their destination, so the file's pages never count twice in our memory.
///
/// It can also hold a copy of bytes already in memory (no descriptor): the same decoding then runs with no file at
/// all, which is how the fuzz harnesses feed thousands of inputs a second through the loader.
final class MappedFile: @unchecked Sendable {
    let path: String
    let size: Int
    /// −1 for bytes held in memory.
    let fd: Int32
    private let base: UnsafeMutableRawPointer?

    init(path: String) throws(LoaderError) {
        self.path = path
        // Only regular files: a FIFO would block the open (or the reads) forever, a device has no end.
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw .fileNotFound(path) }
            throw .unreadable(path, String(cString: strerror(errno)))
        }
        guard info.st_mode & S_IFMT != S_IFDIR else { throw .notAFile(path) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .notARegularFile(path) }
        // O_NONBLOCK: if the path was swapped for a FIFO since the stat, the open still returns at once.
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .unreadable(path, String(cString: strerror(errno))) }
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw .notARegularFile(path)
        }
        size = Int(info.st_size)
        if size == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .unreadable(path, reason)
        }
        base = mapped
    }

    /// A private copy of `bytes`; `name` stands for it in errors.
    init(bytes: [UInt8], name: String) {
        path = name
        size = bytes.count
        fd = -1
        guard !bytes.isEmpty else {
            base = nil
            return
        }
        let copy = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 16)
        bytes.withUnsafeBytes { source in
            if let from = source.baseAddress { copy.copyMemory(from: from, byteCount: bytes.count) }
        }
        base = copy
    }

    /// Where `releasePages(before:)` has given pages back up to.
    private var releasedUpTo = 0

    /// Gives back the map's pages before `offset` whenever 16 MB or more have been passed since the last time. Decoding
    /// the framing reads a few bytes before each payload, but every read maps the pages around it (the kernel's
    /// fault-around, over large folios of the page cache): on a Linux 6.18 machine `stt info` of the 456 MB
    /// full-size encoder peaked at 313 MB of resident memory while the decoding mapped pages all along the file.
    func releasePages(before offset: Int) {
        guard let base, fd >= 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let end = min(size, offset) / page * page
        guard end - releasedUpTo >= 16 << 20 else { return }
        madvise(base + releasedUpTo, end - releasedUpTo, MADV_DONTNEED)
        releasedUpTo = end
    }

    /// Gives the map's pages back (they stay in the page cache; later reads fault them in again). Reading only the
    /// framing between payloads still maps large neighbourhoods of the file: 300 MB of a 456 MB encoder, measured.
    /// Releasing them before the payloads are copied keeps peak memory at the weights' size.
    func releasePages() {
        // MADV_DONTNEED on private anonymous memory would zero it: only a map can give its pages back.
        if let base, fd >= 0 { madvise(base, size, MADV_DONTNEED) }
    }

    deinit {
        if fd < 0 {
            base?.deallocate()
            return
        }
        if let base { munmap(base, size) }
        close(fd)
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// Runs `body` on the mapped bytes of `range`, then gives their pages back, so building from a large file
    /// keeps only the pages of the tensor at hand resident.
    func withMappedBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawPointer) throws -> R) rethrows -> R {
        guard let base else { return try body(UnsafeRawPointer(bitPattern: 1)!) }
        if fd < 0 { return try body(UnsafeRawPointer(base) + range.lowerBound) }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        let end = min(size, (range.upperBound + page - 1) / page * page)
        // One call maps the whole range (far cheaper than a fault per page); kernels before 5.14 ignore it.
        if end > start { madvise(base + start, end - start, 22 /* MADV_POPULATE_READ */) }
        defer { if end > start { madvise(base + start, end - start, MADV_DONTNEED) } }
        return try body(UnsafeRawPointer(base) + range.lowerBound)
    }

    /// Copies `count` bytes at `offset` into `destination` with pread (no page of the map is touched).
    func copy(offset: Int, count: Int, into destination: UnsafeMutableRawPointer) throws(LoaderError) {
        if fd < 0 {
            guard offset >= 0, count >= 0, count <= size - offset else {
                throw .truncated(path, "the input ended while reading tensor bytes")
            }
            if let base, count > 0 { destination.copyMemory(from: base + offset, byteCount: count) }
            return
        }
        var done = 0
        while done < count {
            let n = pread(fd, destination + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path, String(cString: strerror(errno)))
            }
            if n == 0 { throw .truncated(path, "the file ended while reading tensor bytes") }
            done += n
        }
    }
}
