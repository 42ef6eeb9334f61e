import Foundation
import STTTestFixtures
import Testing
import STTKit

@Suite struct NarrowWeightsModelTests {
    /// Weights stored in 16 bits keep the fp32 model's tokens on every recording of the trained fixture at every
    /// look-ahead, RNN-T and CTC, up to the rounding: at least 97 % of each result's tokens, 99 % pooled (the
    /// summary line printed gives the measured figures). The model says which precision it runs.
    @Test(arguments: ["small/la13", "small/ctc"], [SpeechModel.Precision.bf16, .int8])
    func narrowWeightsKeepTheTokensOfFP32(folder: String, precision: SpeechModel.Precision) throws {
        let fp32 = try SpeechModel(folder: Fixtures.folder(folder))
        let bf16 = try SpeechModel(folder: Fixtures.folder(folder), precision: precision)
        #expect(fp32.precision == .fp32 && bf16.precision == precision)
        // int8's bounds are wider: 8-bit weights round more than bf16's 16.
        let (perResult, pooled) = precision == .bf16 ? (0.03, 0.01) : (0.15, 0.03)
        var tokens = 0, differences = 0, identical = 0, cases = 0
        for name in StreamBatchTests.names {
            let audio = try Fixtures.ref("small", "\(name)_audio").integers.map { Float($0) / 32768 }
            for lookahead in fp32.lookaheads {
                let options = TranscriptionStream.Options(lookahead: lookahead)
                let a = try transcribe(fp32, audio, options).map(\.id), b = try transcribe(bf16, audio, options).map(\.id)
                let distance = Agreement.editDistance(b, a)
                #expect(Double(distance) <= perResult * Double(a.count), "\(folder) \(name) at \(lookahead.milliseconds) ms")
                tokens += a.count
                differences += distance
                identical += distance == 0 ? 1 : 0
                cases += 1
            }
        }
        let summary = "\(folder): \(precision) against fp32, \(differences) of \(tokens) tokens differ (edit distance); "
            + "\(identical) of \(cases) results identical"
        print(summary)
        #expect(tokens > 1_000 && Double(differences) <= pooled * Double(tokens), "\(summary)")
    }

    /// NeMo's own streaming with the encoder's matrices rounded as bf16 and int8 store them
    /// (models/small/ref-narrow, `make_fixtures.py narrow-small`): the engine gives its tokens on every recording at
    /// every look-ahead, so the tokens that differ from fp32 are the rounded weights' own, not the engine's.
    @Test(arguments: [SpeechModel.Precision.bf16, .int8])
    func narrowWeightsGiveNeMosTokensWithTheSameRoundedWeights(precision: SpeechModel.Precision) throws {
        struct Manifest: Decodable {
            struct Result: Decodable { let ids: [Int] }
            let tokens: [String: [String: [String: Result]]]
        }
        let url = Fixtures.models.appendingPathComponent("small/ref-narrow/manifest.json")
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: url))
        let nemo = try #require(manifest.tokens[precision.rawValue])
        let model = try SpeechModel(folder: Fixtures.folder("small/la13"), precision: precision)
        var results = 0
        for name in StreamBatchTests.names {
            let audio = try Fixtures.ref("small", "\(name)_audio").integers.map { Float($0) / 32768 }
            for lookahead in model.lookaheads {
                let key = "la\(lookahead.milliseconds / 80)"
                let expected = try #require(nemo[name]?[key], "\(name) \(key)")
                let ids = try transcribe(model, audio, TranscriptionStream.Options(lookahead: lookahead)).map(\.id)
                #expect(ids == expected.ids, "\(precision) \(name) \(key): \"\(model.text(ids))\" vs NeMo \"\(model.text(expected.ids))\"")
                results += 1
            }
        }
        #expect(results == 24)
    }

    /// The peer's int8: ONNX Runtime's `quantize_dynamic` of the same trained model's MatMul weights (QUInt8, one
    /// scale per matrix, encoder, decoder and joiner, as sherpa-onnx ships them), read exactly, changes more of fp32's
    /// tokens over every recording at every look-ahead than int8 products here, with a scale per output column and
    /// the decoder in float32.
    @Test func int8KeepsMoreOfTheTokensThanONNXRuntimesInt8Weights() throws {
        let fp32 = try SpeechModel(folder: Fixtures.folder("small/sherpa"))
        let int8 = try SpeechModel(folder: Fixtures.folder("small/sherpa"), precision: .int8)
        let peer = try SpeechModel(folder: Fixtures.folder("small/sherpa-int8"))
        #expect(fp32.filePrecision == .fp32 && int8.precision == .int8 && peer.filePrecision == .int8)
        var tokens = 0, ours = 0, theirs = 0
        for name in StreamBatchTests.names {
            let audio = try Fixtures.ref("small", "\(name)_audio").integers.map { Float($0) / 32768 }
            for lookahead in fp32.lookaheads {
                let options = TranscriptionStream.Options(lookahead: lookahead)
                let reference = try transcribe(fp32, audio, options).map(\.id)
                tokens += reference.count
                ours += Agreement.editDistance(try transcribe(int8, audio, options).map(\.id), reference)
                theirs += Agreement.editDistance(try transcribe(peer, audio, options).map(\.id), reference)
            }
        }
        let summary = "small/sherpa: of \(tokens) fp32 tokens, int8 products change \(ours), ONNX Runtime's int8 weights \(theirs)"
        print(summary)
        #expect(tokens > 1_000 && ours < theirs, "\(summary)")
    }
}
