import Foundation

/// A whole RIFF/WAVE file decoded to mono: PCM 8 (unsigned), 16, 24 and 32-bit integer, 32 and 64-bit float, 1 to 64
/// channels (downmixed by averaging), WAVE_FORMAT_EXTENSIBLE included. Everything else is refused with a one-line
/// reason. The file is decoded by ``WAVReader``, block by block, so memory holds the mono samples only; use a
/// `WAVReader` directly to keep memory bounded for long recordings.
public struct WAVFile: Sendable {
    /// Frames per second, 1…768 000.
    public let sampleRate: Int
    /// Channels in the file (the samples are their average).
    public let channels: Int
    /// Bits per sample of one channel in the file: 8, 16, 24, 32 or 64.
    public let bitsPerSample: Int
    /// Whether the file holds IEEE floats rather than integer PCM.
    public let isFloat: Bool
    /// Mono samples in [−1, 1] (integer PCM scaled by 2^(bits−1)).
    public let samples: [Float]

    /// Why a WAV file cannot be read. Each description is one line, starting with the file's name; text taken from
    /// the file or its name is escaped and shortened.
    public enum Failure: Error, Equatable, CustomStringConvertible, Sendable {
        /// The file cannot be opened or read (missing, no permission, not a regular file, I/O error): name, reason.
        case unreadable(String, String)
        /// The bytes are not a RIFF/WAVE file: name, reason.
        case notWAV(String, String)
        /// The file ends before what its header declares: name, what is missing.
        case truncated(String, String)
        /// A valid WAV file in a format or shape this decoder does not take: name, reason.
        case unsupported(String, String)
        /// The file holds no complete audio frame: name.
        case empty(String)
        /// The samples cannot be used (NaN, infinite): name, which sample and where.
        case badSamples(String, String)
        /// The header contradicts itself (a block size that does not match the sample format, no channels): name,
        /// reason.
        case malformed(String, String)

        /// One line saying which file and what is wrong.
        public var description: String {
            switch self {
            case .unreadable(let p, let why): "\(Printable.name(p)): cannot be read: \(why)"
            case .notWAV(let p, let why): "\(Printable.name(p)): not a WAV file (\(why))"
            case .truncated(let p, let why): "\(Printable.name(p)): the WAV file is truncated (\(why))"
            case .unsupported(let p, let why): "\(Printable.name(p)): \(why)"
            case .empty(let p): "\(Printable.name(p)): the WAV file holds no audio samples"
            case .badSamples(let p, let why): "\(Printable.name(p)): \(why)"
            case .malformed(let p, let why): "\(Printable.name(p)): malformed WAV header (\(why))"
            }
        }
    }

    /// Decodes the regular file at `path`; FIFOs, directories and devices are refused.
    public init(path: String) throws(Failure) {
        try self.init(reader: WAVReader(path: path))
    }

    /// Decodes a WAV file held in memory; `name` stands for it in errors.
    public init(bytes: [UInt8], name: String = "input") throws(Failure) {
        try self.init(reader: WAVReader(bytes: bytes, name: name))
    }

    private init(reader: WAVReader) throws(Failure) {
        sampleRate = reader.sampleRate
        channels = reader.channels
        bitsPerSample = reader.bitsPerSample
        isFloat = reader.isFloat
        var samples: [Float] = []
        if let frames = reader.frameCount { samples.reserveCapacity(frames) }
        while try reader.read(maxFrames: 1 << 16, into: &samples) > 0 {}
        self.samples = samples
    }
}

/// Text from outside (a file's bytes, a path) made safe for a one-line message.
enum Printable {
    /// A path or name: control characters escaped, at most `limit` characters (the middle elided).
    static func name(_ text: String, limit: Int = 160) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
                || scalar.properties.generalCategory == .lineSeparator
                || scalar.properties.generalCategory == .paragraphSeparator:
                escaped += "\\u{\(String(scalar.value, radix: 16))}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        guard escaped.count > limit else { return escaped }
        return String(escaped.prefix(limit / 2)) + "…" + String(escaped.suffix(limit / 2 - 1))
    }

    /// Raw bytes (a chunk id): printable ASCII as is, anything else as \xNN, quoted.
    static func bytes(_ bytes: some Collection<UInt8>) -> String {
        var text = "'"
        for byte in bytes.prefix(16) {
            if byte >= 0x20 && byte < 0x7F && byte != 0x5C && byte != 0x27 {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return text + (bytes.count > 16 ? "…'" : "'")
    }
}
