import Testing
@testable import STTAudio

@Suite struct PCM16Tests {
    @Test func samplesAreScaledBy32768() {
        #expect(PCM16.float(-32_768) == -1)
        #expect(PCM16.float(0) == 0)
        #expect(PCM16.float(16_384) == 0.5)
        #expect(PCM16.float(32_767) == Float(32_767) / 32_768 && PCM16.float(32_767) < 1)
    }

    @Test func arraysBuffersAndBytesAgree() {
        let samples: [Int16] = [0, 1, -1, 32_767, -32_768, 12_345, -12_345]
        let floats = PCM16.floats(samples)
        #expect(floats == samples.map { Float($0) / 32_768 })
        var appended: [Float] = [7]
        samples.withUnsafeBufferPointer { PCM16.append($0, to: &appended) }
        #expect(appended == [7] + floats)
        // Little-endian bytes with a dangling half sample: it is left for the next read.
        var bytes: [UInt8] = []
        for sample in samples { bytes += [UInt8(UInt16(bitPattern: sample) & 0xFF), UInt8(UInt16(bitPattern: sample) >> 8)] }
        bytes.append(0x12)
        var decoded: [Float] = []
        let used = bytes.withUnsafeBytes { PCM16.appendLittleEndian($0, to: &decoded) }
        #expect(used == 2 * samples.count && decoded == floats)
    }
}
