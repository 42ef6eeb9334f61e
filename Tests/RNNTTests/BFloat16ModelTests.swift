import Foundation
import STTTestFixtures
import Testing
import STTKit

@Suite struct BFloat16ModelTests {
    /// Weights stored in 16 bits keep the fp32 model's tokens on every recording of the trained fixture at every
    /// look-ahead, RNN-T and CTC, up to the rounding: at least 97 % of each result's tokens, 99 % pooled (the
    /// summary line printed gives the measured figures). The model says which precision it runs.
    @Test(arguments: ["small/la13", "small/ctc"])
    func bf16KeepsTheTokensOfFP32(folder: String) throws {
        let fp32 = try SpeechModel(folder: Fixtures.folder(folder))
        let bf16 = try SpeechModel(folder: Fixtures.folder(folder), precision: .bf16)
        #expect(fp32.precision == .fp32 && bf16.precision == .bf16)
        var tokens = 0, differences = 0, identical = 0, cases = 0
        for name in StreamBatchTests.names {
            let audio = try Fixtures.ref("small", "\(name)_audio").integers.map { Float($0) / 32768 }
            for lookahead in fp32.lookaheads {
                let options = TranscriptionStream.Options(lookahead: lookahead)
                let a = try transcribe(fp32, audio, options).map(\.id), b = try transcribe(bf16, audio, options).map(\.id)
                let distance = Agreement.editDistance(b, a)
                #expect(Double(distance) <= 0.03 * Double(a.count), "\(folder) \(name) at \(lookahead.milliseconds) ms")
                tokens += a.count
                differences += distance
                identical += distance == 0 ? 1 : 0
                cases += 1
            }
        }
        let summary = "\(folder): bf16 against fp32, \(differences) of \(tokens) tokens differ (edit distance); "
            + "\(identical) of \(cases) results identical"
        print(summary)
        #expect(tokens > 1_000 && Double(differences) <= 0.01 * Double(tokens), "\(summary)")
    }

    /// bf16 applies to fp32 files only: a folder of int8 files cannot be stored in bf16.
    @Test func bf16NeedsTheFP32Files() throws {
        #expect(throws: LoaderError.self) {
            _ = try SpeechModel(folder: Fixtures.folder("small/sherpa-int8"), precision: .bf16)
        }
    }
}
