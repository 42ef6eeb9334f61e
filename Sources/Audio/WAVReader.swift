import Foundation

/// Reads a RIFF/WAVE file block by block as mono float samples, so that memory stays bounded however long the
/// recording: the formats of ``WAVFile`` (8/16/24/32-bit PCM, 32/64-bit float, 1…64 channels averaged, plain or
/// extensible fmt chunk), from a regular file, a stream (stdin, a pipe) or memory.
///
/// The header is read and checked when the reader is made: the sample rate must lie in 1…768 000 Hz, the block
/// size must be channels × bytes per sample, and a data chunk must not declare more bytes than a file holds. A data
/// size of 0 or 0xFFFFFFFF (left so by writers that stream) means the data runs to the end of the input.
///
/// Every failure is a ``WAVFile/Failure``; after one, every later read throws it again. Not thread-safe: one reader
/// belongs to one task at a time.
public final class WAVReader {
    /// The name that stands for the input in errors (the path, for a file).
    public let name: String
    /// Frames per second, 1…768 000.
    public let sampleRate: Int
    /// Channels in the file (each frame read is their average).
    public let channels: Int
    /// Bits per sample of one channel in the file: 8, 16, 24, 32 or 64.
    public let bitsPerSample: Int
    /// Whether the file holds IEEE floats rather than integer PCM.
    public let isFloat: Bool
    /// Frames in the data chunk; nil when the data runs to the end of a stream whose length is not known.
    public let frameCount: Int?
    /// Seconds of audio; nil when the frame count is not known.
    public var duration: Double? { frameCount.map { Double($0) / Double(sampleRate) } }
    /// Frames read so far.
    public private(set) var framesRead = 0

    private let input: ByteInput
    private let encoding: Encoding
    private let blockAlign: Int
    private let dataBytes: Int?
    private var scratch: [UInt8] = []
    private var atEnd = false
    private var failure: WAVFile.Failure?

    /// Opens the regular file at `path` and reads its header. Anything but a regular file (a FIFO, a directory, a
    /// device) is refused by name, without waiting on it.
    public convenience init(path: String) throws(WAVFile.Failure) {
        try self.init(input: ByteInput(path: path))
    }

    /// Reads a WAV file from `handle` as a stream, front to back without seeking (stdin, a pipe, a socket), and
    /// parses its header. `prefix` holds the bytes a caller has already read from the handle, e.g. the four that
    /// told it the input is RIFF (``startsLikeWAV(_:)``); they are taken first. The handle stays open and owned by
    /// the caller; `name` stands for the input in errors.
    public convenience init(handle: FileHandle, name: String, prefix: [UInt8] = []) throws(WAVFile.Failure) {
        try self.init(input: ByteInput(descriptor: handle.fileDescriptor, name: name, prefix: prefix))
    }

    /// Reads a WAV file held in memory; `name` stands for it in errors.
    public convenience init(bytes: [UInt8], name: String = "input") throws(WAVFile.Failure) {
        try self.init(input: ByteInput(bytes: bytes, name: name))
    }

    /// Whether `bytes`, the start of an input, look like a WAV file: "RIFF", then (when there are 12 bytes or more)
    /// "WAVE" at byte 8. Four bytes are enough to tell a WAV file from raw samples.
    public static func startsLikeWAV(_ bytes: some Collection<UInt8>) -> Bool {
        let head = Array(bytes.prefix(12))
        guard head.count >= 4, head[0..<4] == [0x52, 0x49, 0x46, 0x46] else { return false }
        return head.count < 12 || head[8..<12] == [0x57, 0x41, 0x56, 0x45]
    }

    private init(input: ByteInput) throws(WAVFile.Failure) {
        self.input = input
        name = input.name
        let header = try WAVHeader(input)
        sampleRate = header.sampleRate
        channels = header.channels
        bitsPerSample = header.bits
        isFloat = header.encoding.isFloat
        encoding = header.encoding
        blockAlign = header.blockAlign
        dataBytes = header.dataBytes
        frameCount = header.dataBytes.map { $0 / header.blockAlign }
        if frameCount == 0 { throw .empty(name) }
    }

    /// Reads up to `maxFrames` frames, appends them to `output` as mono samples in [−1, 1] and returns how many it
    /// appended: fewer only at the end of the data, 0 after it. Throws if the input ends before the size its data
    /// chunk declares, if it holds no frame at all, or at the first NaN or infinite sample (naming its time); when
    /// it throws, `output` is as it was.
    @discardableResult
    public func read(maxFrames: Int, into output: inout [Float]) throws(WAVFile.Failure) -> Int {
        if let failure { throw failure }
        let start = output.count
        var total = 0
        do throws(WAVFile.Failure) {
            while total < maxFrames && !atEnd {
                // Raw bytes are read a piece at a time, so a huge request does not mean a huge raw buffer.
                var want = min(maxFrames - total, max(1, (1 << 16) / blockAlign))
                if let frameCount { want = min(want, frameCount - framesRead) }
                guard want > 0 else {
                    atEnd = true
                    break
                }
                let bytes = want * blockAlign
                if scratch.count < bytes { scratch = [UInt8](repeating: 0, count: bytes) }
                let got = try input.read(into: &scratch, count: bytes)
                let frames = got / blockAlign
                let bad = scratch.withUnsafeBytes { raw in
                    decode(UnsafeRawBufferPointer(rebasing: raw[0..<(frames * blockAlign)]), into: &output)
                }
                if let bad { throw bad }
                framesRead += frames
                total += frames
                if got < bytes {
                    atEnd = true
                    if let frameCount, let dataBytes, framesRead < frameCount {
                        throw .truncated(name, "the data chunk declares \(dataBytes) bytes, "
                            + "the input ends after \(framesRead * blockAlign + got % blockAlign)")
                    }
                }
            }
            if atEnd && framesRead == 0 { throw .empty(name) }
        } catch {
            output.removeSubrange(start...)
            failure = error
            throw error
        }
        return total
    }

    /// Reads up to `maxFrames` frames as mono samples in [−1, 1]; empty at the end of the data. Throws as
    /// ``read(maxFrames:into:)`` does.
    public func read(maxFrames: Int) throws(WAVFile.Failure) -> [Float] {
        var output: [Float] = []
        output.reserveCapacity(max(0, min(maxFrames, 1 << 20)))
        try read(maxFrames: maxFrames, into: &output)
        return output
    }

    /// Appends the frames in `raw` (whole frames) as their channel averages; the average is taken in double
    /// precision, so channels near ±3.4e38 average to a finite float. Returns the failure at the first sample that
    /// is not finite.
    private func decode(_ raw: UnsafeRawBufferPointer, into output: inout [Float]) -> WAVFile.Failure? {
        let frames = raw.count / blockAlign
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: frames))
        // One loop per encoding, so the per-sample work has no branch on the format.
        let bad: Int? = output.withUnsafeMutableBufferPointer { out in
            let mono = UnsafeMutableBufferPointer(rebasing: out[start...])
            switch encoding {
            case .unsigned8: return downmix(raw, into: mono) { Encoding.unsigned8.value($0, $1) }
            case .signed16: return downmix(raw, into: mono) { Encoding.signed16.value($0, $1) }
            case .signed24: return downmix(raw, into: mono) { Encoding.signed24.value($0, $1) }
            case .signed32: return downmix(raw, into: mono) { Encoding.signed32.value($0, $1) }
            case .float32: return downmix(raw, into: mono) { Encoding.float32.value($0, $1) }
            case .float64: return downmix(raw, into: mono) { Encoding.float64.value($0, $1) }
            }
        }
        guard let bad else { return nil }
        output.removeSubrange((start + bad)...)
        return badSample(raw, frame: bad, base: bad * blockAlign, width: bitsPerSample / 8)
    }

    /// Writes each frame's channel average into `mono`; returns the first frame whose average is not finite.
    @inline(__always)
    private func downmix(_ raw: UnsafeRawBufferPointer, into mono: UnsafeMutableBufferPointer<Float>,
                         _ load: (UnsafeRawBufferPointer, Int) -> Double) -> Int? {
        let width = bitsPerSample / 8, channels = self.channels, blockAlign = self.blockAlign
        if channels == 1 {
            for i in mono.indices { mono[i] = Float(load(raw, i * width)) }
        } else {
            let count = Double(channels)
            for i in mono.indices {
                var sum = 0.0
                for c in 0..<channels { sum += load(raw, i * blockAlign + c * width) }
                mono[i] = Float(sum / count)
            }
        }
        guard encoding.isFloat else { return nil }
        return mono.firstIndex { !$0.isFinite }
    }

    private func badSample(_ raw: UnsafeRawBufferPointer, frame: Int, base: Int, width: Int) -> WAVFile.Failure {
        let values = (0..<channels).map { encoding.value(raw, base + $0 * width) }
        let kind = values.contains { $0.isNaN } ? "a NaN sample"
            : values.contains { $0.isInfinite } ? "an infinite sample" : "a sample beyond the range of a float"
        let seconds = Double(framesRead + frame) / Double(sampleRate)
        return .badSamples(name, "the audio has \(kind) at \(String(format: "%.3f", seconds)) s "
            + "(frame \(framesRead + frame)); only finite samples can be transcribed")
    }
}

/// How one channel's sample is stored.
enum Encoding {
    case unsigned8, signed16, signed24, signed32, float32, float64

    var isFloat: Bool { self == .float32 || self == .float64 }

    /// The sample at byte `o`, scaled to [−1, 1] for integers.
    @inline(__always)
    func value(_ raw: UnsafeRawBufferPointer, _ o: Int) -> Double {
        switch self {
        case .unsigned8: return (Double(raw[o]) - 128) / 128
        case .signed16:
            return Double(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int16.self))) / 32_768
        case .signed24:
            let x = Int32(raw[o]) | Int32(raw[o + 1]) << 8 | Int32(Int8(bitPattern: raw[o + 2])) << 16
            return Double(x) / 8_388_608
        case .signed32:
            return Double(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int32.self))) / 2_147_483_648
        case .float32:
            return Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self))))
        case .float64:
            return Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)))
        }
    }
}

/// A WAV header read from the front of an input, which is left at the first byte of the samples.
struct WAVHeader {
    var sampleRate = 0
    var channels = 0
    var bits = 0
    var blockAlign = 0
    var encoding = Encoding.signed16
    /// Bytes of sample data; nil when they run to the end of a stream of unknown length.
    var dataBytes: Int?

    static let channelLimit = 64

    init(_ input: ByteInput) throws(WAVFile.Failure) {
        let name = input.name
        var riff = [UInt8](repeating: 0, count: 12)
        let got = try input.read(into: &riff, count: 12)
        guard got == 12 else {
            throw got == 0 ? .empty(name) : .truncated(name, "\(got) bytes, a WAV header needs at least 44")
        }
        guard riff[0..<4] == [0x52, 0x49, 0x46, 0x46] /* RIFF */ else {
            throw .notWAV(name, riff[0..<4] == [0x52, 0x49, 0x46, 0x58] ? "big-endian RIFX is not supported" : "no RIFF header")
        }
        guard riff[8..<12] == [0x57, 0x41, 0x56, 0x45] /* WAVE */ else {
            throw .notWAV(name, "RIFF form \(Printable.bytes(riff[8..<12])) is not WAVE")
        }
        var format: (tag: Int, channels: Int, rate: Int, blockAlign: Int, bits: Int)?
        // A data chunk met before the fmt chunk (seekable inputs only): where its bytes start, its declared size.
        var earlyData: (offset: Int, size: Int)?
        var data: (offset: Int, size: Int)?
        while data == nil {
            var head = [UInt8](repeating: 0, count: 8)
            let got = try input.read(into: &head, count: 8)
            guard got == 8 else { throw .truncated(name, format == nil ? "no fmt chunk" : "no data chunk") }
            let id = Array(head[0..<4])
            let size = Int(UInt32(head[4]) | UInt32(head[5]) << 8 | UInt32(head[6]) << 16 | UInt32(head[7]) << 24)
            let body = input.position
            if id == Array("fmt ".utf8) {
                guard size >= 16 else { throw .malformed(name, "the fmt chunk has \(size) bytes, at least 16 are needed") }
                var fmt = [UInt8](repeating: 0, count: min(size, 40))
                let got = try input.read(into: &fmt, count: fmt.count)
                guard got == fmt.count else { throw .truncated(name, "the fmt chunk is cut short") }
                func u16(_ o: Int) -> Int { Int(fmt[o]) | Int(fmt[o + 1]) << 8 }
                func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
                var tag = u16(0)
                if tag == 0xFFFE {
                    guard size >= 40 else {
                        throw .malformed(name, "the extensible fmt chunk has \(size) bytes, 40 are needed")
                    }
                    tag = u16(24)  // first two bytes of the sub-format GUID
                }
                format = (tag, u16(2), u32(4), u16(12), u16(14))
                let rest = size - fmt.count + (size & 1)
                guard try input.skip(rest) == rest else { throw .truncated(name, "no data chunk") }
                if let early = earlyData {
                    try input.seek(to: early.offset)
                    data = early
                }
            } else if id == Array("data".utf8) {
                if format != nil {
                    data = (body, size)
                } else if !input.seekable {
                    throw .unsupported(name, "the data chunk comes before the fmt chunk, which a stream cannot go back for")
                } else if size == 0 || size == 0xFFFF_FFFF {
                    throw .truncated(name, "no fmt chunk before the data, which runs to the end")
                } else {
                    if earlyData == nil { earlyData = (body, size) }
                    let skipped = size + (size & 1)
                    guard try input.skip(skipped) == skipped else { throw .truncated(name, "no fmt chunk") }
                }
            } else {
                let skipped = size + (size & 1)
                let done = try input.skip(skipped)
                guard done == skipped else {
                    throw .truncated(name, "chunk \(Printable.bytes(id)) at byte \(body - 8) declares \(size) bytes, "
                        + "the input ends after \(done)")
                }
            }
        }
        guard let format, let data else { throw .truncated(name, "no fmt chunk") }
        switch (format.tag, format.bits) {
        case (1, 8): encoding = .unsigned8
        case (1, 16): encoding = .signed16
        case (1, 24): encoding = .signed24
        case (1, 32): encoding = .signed32
        case (3, 32): encoding = .float32
        case (3, 64): encoding = .float64
        case (1, let bits), (3, let bits):
            throw .unsupported(name, "\(bits)-bit \(format.tag == 3 ? "float" : "PCM") samples are not supported "
                + "(8/16/24/32-bit PCM, 32/64-bit float are)")
        default:
            throw .unsupported(name, "compressed WAV (format tag 0x\(String(format.tag, radix: 16))) is not supported; "
                + "convert it to PCM, e.g. `sox in.wav -e signed -b 16 out.wav`")
        }
        guard format.channels > 0 else { throw .malformed(name, "0 channels") }
        guard format.channels <= Self.channelLimit else {
            throw .unsupported(name, "\(format.channels) channels; at most \(Self.channelLimit) are supported")
        }
        guard Resampler.supportedRates.contains(format.rate) else {
            throw .unsupported(name, "sample rate \(format.rate) Hz is outside the supported "
                + "\(Resampler.supportedRates.lowerBound)…\(Resampler.supportedRates.upperBound) Hz")
        }
        let frameBytes = format.channels * format.bits / 8
        guard format.blockAlign == frameBytes else {
            throw .malformed(name, "block align \(format.blockAlign) bytes, but a frame of \(format.channels) × "
                + "\(format.bits)-bit samples takes \(frameBytes)")
        }
        sampleRate = format.rate
        channels = format.channels
        bits = format.bits
        blockAlign = frameBytes
        let available = input.size.map { $0 - data.offset }
        // Writers that stream often leave the size at 0 or 0xFFFFFFFF: then the data runs to the end of the input.
        if data.size == 0 || data.size == 0xFFFF_FFFF {
            dataBytes = available
        } else {
            if let available, data.size > available {
                throw .truncated(name, "the data chunk declares \(data.size) bytes, the file has \(available)")
            }
            dataBytes = data.size
        }
    }
}

/// The bytes of a WAV file: a regular file opened by path (seekable, size known), a stream read front to back
/// (stdin, a pipe) after any bytes the caller already took from it, or memory.
final class ByteInput {
    let name: String
    /// Whether `seek(to:)` works (files and memory).
    let seekable: Bool
    /// Total bytes, when known.
    let size: Int?
    /// Bytes consumed so far, the caller's prefix included.
    private(set) var position = 0

    private let descriptor: Int32
    private let ownsDescriptor: Bool
    private let memory: [UInt8]
    private let prefix: [UInt8]

    /// Opens a regular file. The type is checked before opening, and the open does not block, so a FIFO cannot
    /// stall it; the opened descriptor is checked again in case the path changed in between.
    init(path: String) throws(WAVFile.Failure) {
        name = path
        var info = stat()
        guard stat(path, &info) == 0 else { throw Self.failure(path, errno) }
        if let refusal = Self.refusal(info.st_mode) { throw .unreadable(path, refusal) }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure(path, errno) }
        guard fstat(fd, &info) == 0 else {
            let error = Self.failure(path, errno)
            close(fd)
            throw error
        }
        if let refusal = Self.refusal(info.st_mode) {
            close(fd)
            throw .unreadable(path, refusal)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        descriptor = fd
        ownsDescriptor = true
        seekable = true
        size = Int(info.st_size)
        memory = []
        prefix = []
    }

    /// A stream on a descriptor the caller keeps; `prefix` holds bytes already taken from it.
    init(descriptor: Int32, name: String, prefix: [UInt8]) {
        self.name = name
        self.descriptor = descriptor
        ownsDescriptor = false
        seekable = false
        size = nil
        memory = []
        self.prefix = prefix
    }

    init(bytes: [UInt8], name: String) {
        self.name = name
        descriptor = -1
        ownsDescriptor = false
        seekable = true
        size = bytes.count
        memory = bytes
        prefix = []
    }

    deinit { if ownsDescriptor { close(descriptor) } }

    /// Fills `buffer` unless the input ends first; returns the bytes read.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(WAVFile.Failure) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        var filled = 0
        if position < prefix.count {
            let n = min(buffer.count, prefix.count - position)
            prefix.withUnsafeBytes { p in
                if let source = p.baseAddress { base.copyMemory(from: source + position, byteCount: n) }
            }
            filled = n
        }
        if descriptor < 0 {
            let n = min(buffer.count - filled, max(0, memory.count - position - filled))
            memory.withUnsafeBytes { m in
                if let source = m.baseAddress, n > 0 { (base + filled).copyMemory(from: source + position + filled, byteCount: n) }
            }
            filled += n
        } else {
            while filled < buffer.count {
                let n = readDescriptor(descriptor, base + filled, buffer.count - filled)
                if n > 0 {
                    filled += n
                } else if n == 0 {
                    break
                } else if errno == EINTR {
                    continue
                } else if errno == EAGAIN || errno == EWOULDBLOCK {
                    // A stream left non-blocking by its owner: wait until it has data.
                    var wait = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                    _ = poll(&wait, 1, -1)
                } else {
                    throw Self.failure(name, errno)
                }
            }
        }
        position += filled
        return filled
    }

    /// Fills the first `count` bytes of `bytes` unless the input ends first; returns the bytes read.
    func read(into bytes: inout [UInt8], count: Int) throws(WAVFile.Failure) -> Int {
        var result = Result<Int, WAVFile.Failure>.success(0)
        bytes.withUnsafeMutableBytes { raw in
            do throws(WAVFile.Failure) {
                result = .success(try read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<min(count, raw.count)])))
            } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    /// Skips up to `count` bytes; returns how many there were.
    func skip(_ count: Int) throws(WAVFile.Failure) -> Int {
        guard count > 0 else { return 0 }
        if seekable, let size {
            let n = min(count, size - position)
            try seek(to: position + n)
            return n
        }
        var skipped = 0
        var discard = [UInt8](repeating: 0, count: min(count, 1 << 16))
        while skipped < count {
            let want = min(discard.count, count - skipped)
            let got = try read(into: &discard, count: want)
            skipped += got
            if got < want { break }
        }
        return skipped
    }

    /// Moves to byte `offset` of a seekable input.
    func seek(to offset: Int) throws(WAVFile.Failure) {
        guard seekable else { throw .unreadable(name, "cannot seek in a stream") }
        if descriptor >= 0 && lseek(descriptor, off_t(offset), SEEK_SET) < 0 { throw Self.failure(name, errno) }
        position = offset
    }

    /// Why a file of this type is not opened, or nil for a regular file.
    private static func refusal(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: nil
        case S_IFDIR: "it is a directory, not a WAV file"
        case S_IFIFO: "it is a named pipe (FIFO), not a regular file; pipe it to stdin instead"
        case S_IFCHR: "it is a character device, not a regular file"
        case S_IFBLK: "it is a block device, not a regular file"
        case S_IFSOCK: "it is a socket, not a regular file"
        default: "it is not a regular file"
        }
    }

    private static func failure(_ name: String, _ code: Int32) -> WAVFile.Failure {
        switch code {
        case ENOENT: .unreadable(name, "no such file")
        case EACCES: .unreadable(name, "permission denied")
        default: .unreadable(name, String(cString: strerror(code)))
        }
    }
}

/// read(2), out of reach by its plain name inside ByteInput, whose own `read` hides it.
private func readDescriptor(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}
