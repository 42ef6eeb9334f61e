/// Signed 16-bit PCM, the sample format of most microphones and of raw `s16le` streams, as the float samples the
/// engine takes: x / 32768, so −32768 is −1 and 32767 is just below 1. WAV files of 16-bit PCM decode the same way.
public enum PCM16 {
    /// One sample as a float in [−1, 1).
    @inlinable
    public static func float(_ sample: Int16) -> Float { Float(sample) / 32_768 }

    /// Samples as floats in [−1, 1).
    public static func floats(_ samples: [Int16]) -> [Float] {
        var output: [Float] = []
        samples.withUnsafeBufferPointer { append($0, to: &output) }
        return output
    }

    /// Appends samples to `output` as floats in [−1, 1).
    public static func append(_ samples: UnsafeBufferPointer<Int16>, to output: inout [Float]) {
        output.reserveCapacity(output.count + samples.count)
        for sample in samples { output.append(float(sample)) }
    }

    /// Appends the little-endian 16-bit samples in `bytes` to `output` as floats in [−1, 1), and returns how many
    /// bytes it used: all but a trailing odd byte, which a caller reading a stream keeps for the next read (a read
    /// can end in the middle of a sample).
    @discardableResult
    public static func appendLittleEndian(_ bytes: UnsafeRawBufferPointer, to output: inout [Float]) -> Int {
        let count = bytes.count / 2
        output.reserveCapacity(output.count + count)
        for i in 0..<count {
            output.append(float(Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))))
        }
        return 2 * count
    }
}
