import Foundation
import STTTensor
import STTTestFixtures
import Testing
import STTAudio

/// A WAV file's bytes: RIFF header, fmt (plain or extensible), data.
func wavBytes(tag: Int = 1, channels: Int = 1, rate: Int = 16_000, bits: Int = 16, data: [UInt8],
              extensible: Bool = false, declaredDataSize: Int? = nil) -> [UInt8] {
    func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8((v >> (8 * $0)) & 0xFF) } }
    var fmt = le(extensible ? 0xFFFE : tag, 2) + le(channels, 2) + le(rate, 4) + le(rate * channels * bits / 8, 4)
        + le(channels * bits / 8, 2) + le(bits, 2)
    if extensible { fmt += le(22, 2) + le(bits, 2) + le(0, 4) + le(tag, 2) + [UInt8](repeating: 0, count: 14) }
    let body = Array("WAVE".utf8) + Array("fmt ".utf8) + le(fmt.count, 4) + fmt
        + Array("data".utf8) + le(declaredDataSize ?? data.count, 4) + data
    return Array("RIFF".utf8) + le(body.count, 4) + body
}

@Suite struct WAVFileTests {
    @Test func everySampleFormatDecodesToTheSameSignal() throws {
        let values: [Double] = [0, 0.5, -0.5, 0.25, -1]
        func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8((v >> (8 * $0)) & 0xFF) } }
        let pcm8 = values.map { UInt8(Int(($0 * 128).rounded()) + 128 == 256 ? 255 : Int(($0 * 128).rounded()) + 128) }
        let pcm16 = values.flatMap { le(Int($0 * 32768).clamped(-32768, 32767), 2) }
        let pcm24 = values.flatMap { le(Int($0 * 8_388_608).clamped(-8_388_608, 8_388_607), 3) }
        let pcm32 = values.flatMap { le(Int($0 * 2_147_483_648).clamped(-2_147_483_648, 2_147_483_647), 4) }
        let f32 = values.flatMap { v in withUnsafeBytes(of: Float(v)) { Array($0) } }
        let f64 = values.flatMap { v in withUnsafeBytes(of: v) { Array($0) } }
        for (bits, tag, data, tolerance) in [(8, 1, pcm8, 1.0 / 128), (16, 1, pcm16, 1e-4), (24, 1, pcm24, 1e-6),
                                             (32, 1, pcm32, 1e-6), (32, 3, f32, 0), (64, 3, f64, 0)] {
            for extensible in [false, true] {
                let wav = try WAVFile(bytes: wavBytes(tag: tag, bits: bits, data: data, extensible: extensible))
                #expect(wav.samples.count == values.count)
                for (a, b) in zip(wav.samples, values) { #expect(abs(Double(a) - b) <= tolerance, "\(bits)-bit tag \(tag)") }
            }
        }
    }

    @Test func channelsAreAveraged() throws {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
        let stereo = le16(16384) + le16(0) + le16(-16384) + le16(-16384)
        let wav = try WAVFile(bytes: wavBytes(channels: 2, rate: 8000, data: stereo))
        #expect(wav.samples == [0.25, -0.5] && wav.sampleRate == 8000 && wav.channels == 2)
    }

    @Test func fixtureWAVsDecodeToTheirSamples() throws {
        let folder = Fixtures.models.appendingPathComponent("frontend")
        for name in ["speech_16k", "speech_8k", "clipped"] {
            let wav = try WAVFile(path: folder.appendingPathComponent("\(name).wav").path)
            let pcm = try NPYArray(contentsOf: folder.appendingPathComponent("\(name)_audio.npy")).integers
            #expect(wav.samples == pcm.map { Float($0) / 32768 }, "\(name)")
        }
    }

    @Test func malformedFilesGiveOneLineErrors() throws {
        let ok = wavBytes(data: [1, 0, 2, 0])
        let cases: [([UInt8], (WAVFile.Failure) -> Bool)] = [
            ([], { if case .empty = $0 { true } else { false } }),
            (Array(ok.prefix(10)), { if case .truncated = $0 { true } else { false } }),
            (Array(ok.prefix(30)), { if case .truncated = $0 { true } else { false } }),
            (Array("OggS".utf8) + [UInt8](repeating: 0, count: 40), { if case .notWAV = $0 { true } else { false } }),
            (wavBytes(tag: 2, bits: 4, data: [1, 2]), { if case .unsupported = $0 { true } else { false } }),
            (wavBytes(tag: 1, bits: 12, data: [1, 2]), { if case .unsupported = $0 { true } else { false } }),
            (wavBytes(data: []), { if case .empty = $0 { true } else { false } }),
            (wavBytes(data: [1, 0], declaredDataSize: 1000), { if case .truncated = $0 { true } else { false } }),
            (wavBytes(tag: 3, bits: 32, data: withUnsafeBytes(of: Float.nan) { Array($0) }),
             { if case .badSamples = $0 { true } else { false } }),
        ]
        for (bytes, expected) in cases {
            do {
                _ = try WAVFile(bytes: bytes, name: "x.wav")
                Issue.record("decoded \(bytes.count) bad bytes")
            } catch {
                #expect(expected(error), "\(error)")
                #expect(!error.description.contains("\n"))
            }
        }
    }

    @Test func streamingWritersUnknownDataSizeReadsToTheEnd() throws {
        let wav = try WAVFile(bytes: wavBytes(data: [0, 64, 0, 192], declaredDataSize: 0xFFFF_FFFF))
        #expect(wav.samples == [0.5, -0.5])
    }
}

extension Int {
    func clamped(_ low: Int, _ high: Int) -> Int { Swift.min(Swift.max(self, low), high) }
}
