import Foundation
import STTTensor
import STTTestFixtures
import Testing
import STTWeightLoader
import STTConformer
import STTKit

/// sherpa-onnx's folders of the tiny model (models/tiny/sherpa, models/tiny/sherpa-int8) against ONNX Runtime running
/// the same files (models/tiny/ref-sherpa, written by `make_fixtures.py sherpa`).
@Suite struct SherpaLayoutTests {
    struct Run {
        var encoder = Deviation()
        var logits = Deviation()
        var states = Deviation()
        var tokens: [Int] = []
    }

    /// Our engine on a sherpa folder: 40 export-convention encoder calls compared call by call, the stored joint
    /// evaluations of the greedy walk replayed, and the tokens of the whole walk.
    func run(_ model: LoadedModel, prefix: String) throws -> Run {
        let encoder = try ConformerEncoder(graph: model.encoder, description: model.encoderDescription)
        guard let graph = model.decoder else { throw LoaderError.modelFolder(model.folder.directory, "no decoder") }
        let decoder = try RNNTDecoder(graph: graph, description: model.decoderDescription)
        var result = Run()
        let mel = try Fixtures.ref("tiny", "stream_mel")
        let outputs = try Fixtures.sherpaRef(prefix + "enc_outputs")
        let schedule = StreamingSchedule(lookahead: 13, convention: .exportCompatible)
        let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        let d = encoder.dModel, calls = outputs.shape[0], tOut = outputs.shape[2]
        let window = Tensor(zeros: [schedule.maxWindow, 80]), out = Tensor(zeros: [schedule.framesPerStep, d])
        let greedy = GreedyState(decoder: decoder)
        var feed = MelFeed(mel, schedule: schedule)
        for k in 0..<calls {
            guard let w = feed.next(into: window.data) else { Issue.record("call \(k): the mel stream ends"); break }
            let n = encoder.step(state, mel: window.data, frames: w.length, drop: w.drop, output: out.data)
            #expect(n == tOut, "call \(k): \(n) frames, ONNX Runtime \(tOut)")
            for t in 0..<min(n, tOut) {
                for c in 0..<d {
                    let ref = outputs.floats[(k * d + c) * tOut + t]
                    result.encoder.worst = max(result.encoder.worst, abs(out.data[t * d + c] - ref))
                    result.encoder.scale = max(result.encoder.scale, abs(ref))
                }
            }
            greedy.decode(decoder, frames: out.data, count: n, width: d) { result.tokens.append($0.id) }
        }
        // Joint evaluations replayed from ONNX Runtime's own inputs, so one call's deviation does not feed the next.
        let enc = try Fixtures.sherpaRef(prefix + "dec_enc"), targets = try Fixtures.sherpaRef(prefix + "dec_targets")
        let h0 = try Fixtures.sherpaRef(prefix + "dec_state1_in"), c0 = try Fixtures.sherpaRef(prefix + "dec_state2_in")
        let logits = try Fixtures.sherpaRef(prefix + "dec_logits")
        let h1 = try Fixtures.sherpaRef(prefix + "dec_state1_out"), c1 = try Fixtures.sherpaRef(prefix + "dec_state2_out")
        let hidden = h0.shape[1], classes = logits.shape[1]
        let replay = GreedyState(decoder: decoder), scores = Tensor(zeros: [classes])
        for j in 0..<enc.shape[0] {
            replay.prediction.set(h: Array(h0.floats[(j * hidden)..<((j + 1) * hidden)]),
                                  c: Array(c0.floats[(j * hidden)..<((j + 1) * hidden)]))
            decoder.evaluate(frame: Array(enc.floats[(j * d)..<((j + 1) * d)]), token: Int(targets.integers[j]),
                             state: replay, logits: scores.data)
            result.logits.compare(scores.data, logits.floats, offset: j * classes, count: classes)
            result.states.compare(replay.prediction.nextH(0), h1.floats, offset: j * hidden, count: hidden)
            result.states.compare(replay.prediction.nextC(0), c1.floats, offset: j * hidden, count: hidden)
        }
        return result
    }

    @Test func fp32FolderLoadsAsSherpaLayoutWithTheTinyModelsShapes() throws {
        let model = try LoadedModel(folder: Fixtures.folder("tiny/sherpa"))
        let nemo = try LoadedModel(folder: Fixtures.folder("tiny/la13"))
        #expect(model.folder.layout == .sherpa && model.folder.precision == .fp32)
        #expect(model.encoderDescription == nemo.encoderDescription)
        #expect(model.decoderDescription == nemo.decoderDescription)
        #expect(model.warnings.isEmpty, "\(model.warnings)")
        #expect(model.sherpaMetadata?.int("window_size") == 121 && model.sherpaMetadata?.int("chunk_shift") == 112)
        #expect(model.encoder.exportAttContext == [70, 13])
        // sherpa-onnx writes a character vocabulary's space as a literal space, NeMo's exporter as ▁: both read as a space.
        #expect(model.tokens?.map { $0 == " " ? "▁" : $0 } == nemo.tokens)
        #expect(model.encoder.quantizedParameters == 0)
    }

    @Test func fp32EncoderDecoderAndJoinerMatchONNXRuntime() throws {
        let r = try run(LoadedModel(folder: Fixtures.folder("tiny/sherpa")), prefix: "")
        #expect(r.encoder.worst <= r.encoder.tolerance, "encoder: \(r.encoder)")
        #expect(r.logits.worst <= r.logits.tolerance, "joint logits: \(r.logits)")
        #expect(r.states.worst <= r.states.tolerance, "LSTM states: \(r.states)")
        let expected = try Fixtures.sherpaRef("greedy_tokens").integers.map(Int.init)
        #expect(r.tokens == expected, "\(r.tokens.count) tokens vs ONNX Runtime's \(expected.count)")
        print("sherpa fp32: encoder \(r.encoder), logits \(r.logits), states \(r.states), \(r.tokens.count) tokens equal")
    }

    /// int8 weights are dequantized at load and run in float32; ONNX Runtime also quantizes the activations of every
    /// 8-bit product at run time, so the two differ by more than rounding. The bound here is what was measured, with
    /// room; the deviation and token agreement are printed.
    @Test func int8FolderDequantizesAtLoadAndStaysCloseToONNXRuntime() throws {
        let model = try LoadedModel(folder: Fixtures.folder("tiny/sherpa-int8"))
        #expect(model.folder.layout == .sherpa && model.folder.precision == .int8)
        #expect(model.encoder.quantizedParameters > 0 && (model.decoder?.quantizedParameters ?? 0) > 0)
        #expect(model.warnings.isEmpty, "\(model.warnings)")
        let r = try run(model, prefix: "int8_")
        let expected = try Fixtures.sherpaRef("int8_greedy_tokens").integers.map(Int.init)
        let agree = zip(r.tokens, expected).filter { $0 == $1 }.count
        print("sherpa int8 vs ONNX Runtime int8: encoder \(r.encoder) (relative \(r.encoder.relative)), logits \(r.logits), "
              + "states \(r.states); tokens \(r.tokens.count) vs \(expected.count), equal at \(agree) positions")
        #expect(r.encoder.relative < 0.05, "encoder: \(r.encoder)")
        #expect(r.logits.relative < 0.05, "logits: \(r.logits)")
    }

    /// The tensors win over sherpa-onnx's metadata: each disagreement is one warning naming both values.
    @Test func metadataThatDisagreesWithTheTensorsIsAWarning() throws {
        let model = try LoadedModel(folder: Fixtures.folder("tiny/sherpa"))
        var pairs = model.encoder.metadata.filter { $0.key != "window_size" && $0.key != "pred_hidden" }
        pairs += [("window_size", "65"), ("pred_hidden", "640"), ("normalize_type", "per_feature")]
        let warnings = SherpaMetadata(pairs).warnings(encoder: model.encoderDescription,
                                                      exportAttContext: model.encoder.exportAttContext,
                                                      decoder: model.decoderDescription)
        #expect(warnings.count == 3, "\(warnings)")
        #expect(warnings.contains { $0.contains("window_size = 65") && $0.contains("using 121") })
        #expect(warnings.contains { $0.contains("pred_hidden = 640") && $0.contains("using 64") })
    }

    @Test func aFolderWithBothPrecisionsLoadsFP32UnlessAsked() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for folder in ["tiny/sherpa", "tiny/sherpa-int8"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: Fixtures.folder(folder)) where name.hasSuffix(".onnx") {
                try FileManager.default.copyItem(atPath: Fixtures.folder(folder) + "/" + name, toPath: dir + "/" + name)
            }
        }
        try FileManager.default.copyItem(atPath: Fixtures.folder("tiny/sherpa") + "/tokens.txt", toPath: dir + "/tokens.txt")
        let plain = try ModelFolder(dir)
        #expect(plain.precision == .fp32 && plain.encoder.hasSuffix("/encoder.onnx") && plain.joiner?.hasSuffix("/joiner.onnx") == true)
        let int8 = try ModelFolder(dir, precision: .int8)
        #expect(int8.precision == .int8 && int8.decoderJoint?.hasSuffix("/decoder.int8.onnx") == true)
        #expect(throws: LoaderError.self) { try ModelFolder(Fixtures.folder("tiny/sherpa"), precision: .int8) }
    }

    /// `SpeechModel(folder:precision:)`: fp32 unless asked where a folder holds both; a folder of int8 files only
    /// loads them unasked and says so.
    @Test func speechModelLoadsFP32UnlessAskedAndSaysWhichItLoaded() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for folder in ["tiny/sherpa", "tiny/sherpa-int8"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: Fixtures.folder(folder)) {
                if !FileManager.default.fileExists(atPath: dir + "/" + name) {
                    try FileManager.default.copyItem(atPath: Fixtures.folder(folder) + "/" + name, toPath: dir + "/" + name)
                }
            }
        }
        let plain = try SpeechModel(folder: dir)
        #expect(plain.precision == .fp32 && plain.precisionNote == nil)
        let asked = try SpeechModel(folder: dir, precision: .int8)
        #expect(asked.precision == .int8 && asked.filePrecision == .int8 && asked.precisionNote == nil)
        #expect(try SpeechModel(folder: dir, precision: .fp32).precision == .fp32)
        let unasked = try SpeechModel(folder: Fixtures.folder("tiny/sherpa-int8"))
        #expect(unasked.precision == .fp32 && unasked.filePrecision == .int8)
        #expect(unasked.precisionNote?.contains("only int8 files") == true, "\(unasked.precisionNote ?? "no note")")
        #expect(try SpeechModel(folder: Fixtures.folder("tiny/la13")).precision == .fp32)
        #expect(SpeechModel.Precision.allCases.map(\.description) == ["fp32", "bf16", "int8"])
        #expect(try SpeechModel(folder: dir, precision: .bf16).precision == .bf16)
    }

    /// No folder refuses a precision: int8 quantizes fp32 files at load, fp32 and bf16 read int8 files dequantized
    /// (and say so); the files loaded are reported.
    @Test(arguments: [("tiny/sherpa", SpeechModel.Precision.int8, SpeechModel.Precision.fp32),
                      ("tiny/sherpa-int8", .fp32, .int8), ("tiny/sherpa-int8", .bf16, .int8), ("tiny/la13", .int8, .fp32)])
    func everyPrecisionLoadsFromEitherFiles(folder: String, precision: SpeechModel.Precision,
                                            files: SpeechModel.Precision) throws {
        let model = try SpeechModel(folder: Fixtures.folder(folder), precision: precision)
        #expect(model.precision == precision && model.filePrecision == files)
        #expect((model.precisionNote != nil) == (files == .int8 && precision != .int8), "\(model.precisionNote ?? "no note")")
        #expect(model.encoder.stepMatrices.allSatisfy { $0.precision == precision.storage })
    }

    @Test func aSingleFileOrAFolderWithoutEncoderNamesTheLayoutsAccepted() throws {
        do {
            _ = try LoadedModel(folder: Fixtures.folder("tiny/sherpa") + "/encoder.onnx")
            Issue.record("a single file loaded as a folder")
        } catch {
            #expect("\(error)".contains("sherpa-onnx's (encoder.onnx, decoder.onnx, joiner.onnx"), "\(error)")
        }
        do {
            _ = try LoadedModel(folder: Fixtures.folder("tiny/ref-sherpa"))
            Issue.record("a folder of .npy files loaded")
        } catch {
            #expect("\(error)".contains("NeMo's export (encoder-*.onnx"), "\(error)")
        }
    }
}
