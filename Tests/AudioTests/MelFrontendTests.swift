import Foundation
import STTTensor
import STTTestFixtures
import Testing
import STTAudio

/// The fixture recordings as NeMo was given them: int16 PCM / 32768.
func recording(_ size: String, _ name: String) throws -> [Float] {
    try Fixtures.ref(size, "\(name)_audio").integers.map { Float($0) / 32768 }
}

/// Largest |ours − NeMo| over all frames; ours time-major [T, 80], NeMo's [80, T].
func worstDeviation(_ ours: [Float], _ reference: NPYArray) -> Float {
    let frames = reference.shape[1]
    var worst: Float = 0
    for t in 0..<min(frames, ours.count / 80) {
        for f in 0..<80 { worst = max(worst, abs(ours[t * 80 + f] - reference.floats[f * frames + t])) }
    }
    return worst
}

@Suite struct MelFrontendTests {
    /// Log-mel frames equal NeMo's AudioToMelSpectrogramPreprocessor (eval) on espeak-ng speech.
    @Test(arguments: ["stream", "utt1", "utt2", "utt3"])
    func framesMatchNeMosPreprocessor(name: String) throws {
        let audio = try recording("tiny", name)
        let reference = try Fixtures.ref("tiny", "\(name)_mel")      // [80, T]
        let ours = MelFrontend.frames(of: audio)                       // [T, 80]
        let frames = reference.shape[1]
        #expect(ours.count == frames * 80, "\(ours.count / 80) frames vs NeMo \(frames)")
        let worst = worstDeviation(ours, reference)
        #expect(worst <= 1e-3, "\(name): max |Δ| \(worst)")
        print("mel \(name): \(frames) frames, max |Δ| vs NeMo \(worst)")
    }

    /// Digital silence, hard clipping and −48 dB speech (NeMo references in models/frontend).
    @Test(arguments: ["silence", "clipped", "quiet", "speech_16k"])
    func extremeRecordingsMatchNeMosPreprocessor(name: String) throws {
        let folder = Fixtures.models.appendingPathComponent("frontend")
        let audio = try NPYArray(contentsOf: folder.appendingPathComponent("\(name)_audio.npy")).integers.map { Float($0) / 32768 }
        let reference = try NPYArray(contentsOf: folder.appendingPathComponent("\(name)_mel.npy"))
        let ours = MelFrontend.frames(of: audio)
        let frames = reference.shape[1]
        #expect(ours.count == frames * 80)
        let worst = worstDeviation(ours, reference)
        #expect(worst <= 1e-3, "\(name): max |Δ| \(worst)")
        print("mel \(name): \(frames) frames, max |Δ| vs NeMo \(worst)")
    }

    /// Feeding samples in blocks of any size gives the whole-file frames bit for bit.
    @Test(arguments: ["1", "160", "1000", "random"])
    func onlineFramesEqualWholeFileFramesBitForBit(blocks: String) throws {
        let audio = Array(try recording("tiny", "utt1").prefix(40_000))
        let whole = MelFrontend.frames(of: audio)
        let frontend = MelFrontend()
        var online: [Float] = []
        var generator = SystemRandomNumberGenerator()
        var position = 0
        audio.withUnsafeBufferPointer { all in
            while position < all.count {
                let size = blocks == "random" ? Int.random(in: 1...2_000, using: &generator) : Int(blocks)!
                let end = min(all.count, position + size)
                frontend.push(UnsafeBufferPointer(rebasing: all[position..<end])) { online.append(contentsOf: $0) }
                position = end
            }
        }
        frontend.finish { online.append(contentsOf: $0) }
        #expect(online == whole)
        #expect(whole.count == (1 + audio.count / 160) * 80)
    }

    @Test func silenceIsTheLogGuardAndTheLastFrameIsZero() {
        let frames = MelFrontend.frames(of: [Float](repeating: 0, count: 1_600))
        #expect(frames.count == 11 * 80)
        #expect(frames.prefix(10 * 80).allSatisfy { $0 == log(MelFrontend.logGuard) })
        #expect(frames.suffix(80).allSatisfy { $0 == 0 })
    }
}
