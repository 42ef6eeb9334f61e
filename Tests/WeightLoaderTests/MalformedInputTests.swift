import Foundation
import STTTestFixtures
import Testing
import STTWeightLoader

/// Bad files and bad folders give typed errors with one-line messages, never a crash.
@Suite struct MalformedInputTests {
    func expectError(_ expected: (LoaderError) -> Bool, _ body: () throws -> Void,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try body()
            Issue.record("expected an error, got success", sourceLocation: sourceLocation)
        } catch let error as LoaderError {
            #expect(expected(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
            #expect(!error.description.contains("\n"), "message is not one line", sourceLocation: sourceLocation)
        } catch {
            Issue.record("untyped error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func missingFileIsReported() {
        expectError({ if case .fileNotFound = $0 { true } else { false } }) {
            _ = try ExportedGraph(path: "/nonexistent/encoder.onnx")
        }
    }

    @Test func emptyFileIsReported() throws {
        let dir = try Fixtures.temporaryDirectory()
        let path = dir + "/encoder-empty.onnx"
        _ = FileManager.default.createFile(atPath: path, contents: Data())
        expectError({ if case .emptyFile = $0 { true } else { false } }) { _ = try ExportedGraph(path: path) }
    }

    @Test(arguments: [0.5, 0.9, 0.999])
    func truncatedExportIsReportedAsTruncated(fraction: Double) throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: Fixtures.file("tiny/la13", prefix: "encoder")))
        let dir = try Fixtures.temporaryDirectory()
        let path = dir + "/encoder-cut.onnx"
        try original.prefix(Int(Double(original.count) * fraction)).write(to: URL(fileURLWithPath: path))
        expectError({ if case .truncated = $0 { true } else { false } }) { _ = try ExportedGraph(path: path) }
    }

    @Test(arguments: [1, 2, 3, 4])
    func randomBytesAreNotONNX(seed: UInt64) throws {
        var generator = SplitMix(seed: seed)
        let bytes = (0..<65_536).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let dir = try Fixtures.temporaryDirectory()
        let path = dir + "/encoder-random.onnx"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        expectError({ if case .notONNX = $0 { true } else { false } }) { _ = try ExportedGraph(path: path) }
    }

    @Test func textFileIsNotONNX() throws {
        let dir = try Fixtures.temporaryDirectory()
        let path = dir + "/encoder.onnx"
        try Data("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n".utf8).write(to: URL(fileURLWithPath: path))
        expectError({ if case .notONNX = $0 { true } else { false } }) { _ = try ExportedGraph(path: path) }
    }

    @Test func encoderExportedWithoutCacheSupportIsRefusedWithTheFix() throws {
        var message = ""
        expectError({ error in
            message = error.description
            if case .noCacheSupport = error { return true } else { return false }
        }) { _ = try LoadedModel(folder: Fixtures.folder("tiny/nocache")) }
        #expect(message.contains("set_export_config({'cache_support': True})"))
    }

    @Test func encoderAndDecoderOfDifferentModelsAreRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        try FileManager.default.copyItem(atPath: Fixtures.file("tiny/la13", prefix: "encoder"), toPath: dir + "/encoder-a.onnx")
        try FileManager.default.copyItem(atPath: Fixtures.file("small/la13", prefix: "decoder_joint"),
                                         toPath: dir + "/decoder_joint-b.onnx")
        expectError({ if case .mismatchedPair = $0 { true } else { false } }) { _ = try LoadedModel(folder: dir) }
    }

    @Test func decoderJointInPlaceOfTheEncoderIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        try FileManager.default.copyItem(atPath: Fixtures.file("tiny/la13", prefix: "decoder_joint"),
                                         toPath: dir + "/encoder-x.onnx")
        expectError({ if case .wrongGraphKind = $0 { true } else { false } }) { _ = try LoadedModel(folder: dir) }
    }

    @Test func folderWithoutEncoderIsRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        expectError({ if case .modelFolder = $0 { true } else { false } }) { _ = try LoadedModel(folder: dir) }
    }

    @Test func tokensOutOfOrderAreRefused() throws {
        let dir = try Fixtures.temporaryDirectory()
        try Data("a 0\nb 2\n".utf8).write(to: URL(fileURLWithPath: dir + "/tokens.txt"))
        expectError({ if case .badMetadata = $0 { true } else { false } }) { _ = try TokenTable.read(dir + "/tokens.txt") }
    }

    // Synthetic graphs: the exporter's naming conventions, and tensor encodings the fixtures do not use.

    @Test func graphWithoutFastConformerLayersIsRefused() throws {
        var onnx = SyntheticONNX()
        onnx.inputs += [("length", [nil]), ("cache_last_channel", [nil, 1, nil, 4]), ("cache_last_time", [nil, 1, 4, nil]),
                        ("cache_last_channel_len", [nil])]
        onnx.nodes = [.init(name: "/Relu", op: "Relu", inputs: ["audio_signal"], outputs: ["y"])]
        let path = try Fixtures.temporaryDirectory() + "/encoder-x.onnx"
        try onnx.write(to: path)
        let graph = try ExportedGraph(path: path)
        #expect(graph.kind == .encoder)
        expectError({ if case .notFastConformer = $0 { true } else { false } }) { _ = try EncoderDescription(graph: graph) }
    }

    @Test func halfPrecisionWeightsAreRefusedByType() throws {
        var onnx = SyntheticONNX()
        onnx.initializers = [.init(name: "onnx::MatMul_7", dims: [4, 4], data: .float16(16))]
        onnx.nodes = [.init(name: "/layers.0/self_attn/linear_q/MatMul", op: "MatMul", inputs: ["audio_signal", "onnx::MatMul_7"],
                            outputs: ["q"])]
        let path = try Fixtures.temporaryDirectory() + "/encoder-x.onnx"
        try onnx.write(to: path)
        expectError({ if case .unsupportedTensorType(_, "onnx::MatMul_7", "float16") = $0 { true } else { false } }) {
            _ = try ExportedGraph(path: path)
        }
    }

    @Test func anonymousWeightsAreNamedByTheirNodeAndIdentityAliasesByTheirOutput() throws {
        var onnx = SyntheticONNX()
        let w: [Float] = (0..<6).map(Float.init)
        onnx.initializers = [
            .init(name: "onnx::MatMul_9", dims: [2, 3], data: .raw(w)),
            .init(name: "layers.0.norm_out.weight", dims: [3], data: .packedFloats([1, 2, 3])),
            .init(name: "layers.0.norm_out.bias", dims: [3], data: .unpackedFloats([4, 5, 6])),
        ]
        onnx.nodes = [
            .init(name: "/layers.0/self_attn/linear_q/MatMul", op: "MatMul", inputs: ["audio_signal", "onnx::MatMul_9"], outputs: ["q"]),
            .init(name: "/Identity", op: "Identity", inputs: ["layers.0.norm_out.weight"], outputs: ["layers.1.norm_out.weight"]),
        ]
        let path = try Fixtures.temporaryDirectory() + "/encoder-x.onnx"
        try onnx.write(to: path)
        let graph = try ExportedGraph(path: path)
        let q = try #require(graph.parameter("layers.0.self_attn.linear_q.weight"))
        #expect(q.layout == .inputMajor && q.shape == [2, 3] && q.source == "onnx::MatMul_9")
        #expect(try q.load().array == w)
        #expect(try graph.parameter("layers.1.norm_out.weight")?.load().array == [1, 2, 3])
        #expect(try graph.parameter("layers.0.norm_out.bias")?.load().array == [4, 5, 6])
    }

    @Test func floatWeightThatNoLayerUsesIsRefused() throws {
        var onnx = SyntheticONNX()
        onnx.initializers = [.init(name: "onnx::Mul_3", dims: [64], data: .raw([Float](repeating: 1, count: 64)))]
        onnx.nodes = [.init(name: "/Mul", op: "Mul", inputs: ["audio_signal", "onnx::Mul_3"], outputs: ["y"])]
        let path = try Fixtures.temporaryDirectory() + "/encoder-x.onnx"
        try onnx.write(to: path)
        expectError({ if case .unmappedInitializer(_, "onnx::Mul_3") = $0 { true } else { false } }) {
            _ = try ExportedGraph(path: path)
        }
    }

    @Test func tensorWhoseBytesDoNotFitItsShapeIsRefused() throws {
        var onnx = SyntheticONNX()
        onnx.initializers = [.init(name: "layers.0.norm_out.weight", dims: [4], data: .raw([1, 2, 3]))]
        onnx.nodes = [.init(name: "/Relu", op: "Relu", inputs: ["audio_signal"], outputs: ["y"])]
        let path = try Fixtures.temporaryDirectory() + "/encoder-x.onnx"
        try onnx.write(to: path)
        expectError({ if case .badTensor = $0 { true } else { false } }) { _ = try ExportedGraph(path: path) }
    }

    @Test func overlongVarintIsMalformed() throws {
        let bytes: [UInt8] = [0x08] + [UInt8](repeating: 0xFF, count: 11)
        let path = try Fixtures.temporaryDirectory() + "/encoder-x.onnx"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        expectError({ if case .notONNX = $0 { true } else { false } }) { _ = try ExportedGraph(path: path) }
    }
}

/// A small seeded generator so random-byte tests are reproducible.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
