import Foundation

/// Decoding of RIFF/WAVE files: PCM 8 (unsigned), 16, 24 and 32-bit integer, 32 and 64-bit float, any channel count
/// (downmixed by averaging), WAVE_FORMAT_EXTENSIBLE included. Everything else is refused with a one-line reason.
public struct WAVFile: Sendable {
    public let sampleRate: Int
    public let channels: Int
    public let bitsPerSample: Int
    public let isFloat: Bool
    /// Mono samples in [−1, 1] (integer PCM scaled by 2^(bits−1)).
    public let samples: [Float]

    public enum Failure: Error, Equatable, CustomStringConvertible, Sendable {
        case unreadable(String, String)
        case notWAV(String, String)
        case truncated(String, String)
        case unsupported(String, String)
        case empty(String)
        case badSamples(String, String)

        public var description: String {
            switch self {
            case .unreadable(let p, let why): "\(p): cannot be read: \(why)"
            case .notWAV(let p, let why): "\(p): not a WAV file (\(why))"
            case .truncated(let p, let why): "\(p): the WAV file is truncated (\(why))"
            case .unsupported(let p, let why): "\(p): \(why)"
            case .empty(let p): "\(p): the WAV file holds no audio samples"
            case .badSamples(let p, let why): "\(p): \(why)"
            }
        }
    }

    public init(path: String) throws(Failure) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path, FileManager.default.fileExists(atPath: path) ? "permission or I/O error" : "no such file")
        }
        try self.init(bytes: [UInt8](data), name: path)
    }

    public init(bytes b: [UInt8], name: String = "input") throws(Failure) {
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        guard b.count >= 12 else {
            throw b.isEmpty ? .empty(name) : .truncated(name, "\(b.count) bytes, a WAV header needs at least 44")
        }
        guard b[0..<4] == [0x52, 0x49, 0x46, 0x46] /* RIFF */ else {
            throw .notWAV(name, b[0..<4] == [0x52, 0x49, 0x46, 0x58] ? "big-endian RIFX is not supported" : "no RIFF header")
        }
        guard b[8..<12] == [0x57, 0x41, 0x56, 0x45] /* WAVE */ else { throw .notWAV(name, "RIFF but not WAVE") }
        var offset = 12
        var format: (tag: Int, channels: Int, rate: Int, blockAlign: Int, bits: Int)?
        var dataRange: Range<Int>?
        while offset + 8 <= b.count {
            let id = String(decoding: b[offset..<(offset + 4)], as: UTF8.self)
            let size = u32(offset + 4)
            let body = offset + 8
            if id == "fmt " {
                guard size >= 16, body + size <= b.count else { throw .truncated(name, "the fmt chunk is cut short") }
                var tag = u16(body)
                if tag == 0xFFFE {
                    guard size >= 40 else { throw .truncated(name, "the extensible fmt chunk is cut short") }
                    tag = u16(body + 24)  // first two bytes of the sub-format GUID
                }
                format = (tag, u16(body + 2), u32(body + 4), u16(body + 12), u16(body + 14))
            } else if id == "data" {
                // Writers that stream often leave the size at 0 or 0xFFFFFFFF: then the data runs to the end of file.
                let available = b.count - body
                if size == 0 || size == 0xFFFF_FFFF {
                    dataRange = body..<b.count
                } else {
                    guard size <= available else {
                        throw .truncated(name, "the data chunk declares \(size) bytes, the file has \(available)")
                    }
                    dataRange = body..<(body + size)
                }
                if format != nil { break }
            }
            offset = body + size + (size & 1)
        }
        guard let format else { throw .truncated(name, "no fmt chunk") }
        guard let dataRange else { throw .truncated(name, "no data chunk") }
        let isFloat: Bool
        switch (format.tag, format.bits) {
        case (1, 8), (1, 16), (1, 24), (1, 32): isFloat = false
        case (3, 32), (3, 64): isFloat = true
        case (1, let bits), (3, let bits):
            throw .unsupported(name, "\(bits)-bit \(format.tag == 3 ? "float" : "PCM") samples are not supported (8/16/24/32-bit PCM, 32/64-bit float are)")
        default:
            throw .unsupported(name, "compressed WAV (format tag 0x\(String(format.tag, radix: 16))) is not supported; convert it to PCM, e.g. `sox in.wav -e signed -b 16 out.wav`")
        }
        guard format.channels > 0 else { throw .notWAV(name, "0 channels") }
        guard format.rate > 0 else { throw .notWAV(name, "sample rate 0") }
        let width = format.bits / 8
        let frameBytes = width * format.channels
        let frames = dataRange.count / frameBytes
        guard frames > 0 else { throw .empty(name) }
        sampleRate = format.rate
        channels = format.channels
        bitsPerSample = format.bits
        self.isFloat = isFloat
        var mono = [Float](repeating: 0, count: frames)
        let scale = 1 / Float(format.channels)
        var bad = false
        b.withUnsafeBytes { raw in
            for i in 0..<frames {
                var sum: Float = 0
                for c in 0..<format.channels {
                    let o = dataRange.lowerBound + i * frameBytes + c * width
                    let v: Float
                    switch (isFloat, width) {
                    case (true, 4): v = raw.loadUnaligned(fromByteOffset: o, as: Float.self)
                    case (true, _): v = Float(raw.loadUnaligned(fromByteOffset: o, as: Double.self))
                    case (false, 1): v = (Float(raw[o]) - 128) / 128
                    case (false, 2): v = Float(raw.loadUnaligned(fromByteOffset: o, as: Int16.self)) / 32768
                    case (false, 3):
                        let x = Int32(raw[o]) | Int32(raw[o + 1]) << 8 | Int32(Int8(bitPattern: raw[o + 2])) << 16
                        v = Float(x) / 8_388_608
                    default: v = Float(raw.loadUnaligned(fromByteOffset: o, as: Int32.self)) / 2_147_483_648
                    }
                    if !v.isFinite { bad = true }
                    sum += v
                }
                mono[i] = sum * scale
            }
        }
        if bad { throw .badSamples(name, "the audio contains NaN or infinite samples") }
        samples = mono
    }
}
