import Foundation
import STTTestFixtures
import Testing
import STTWeightLoader

/// Real NeMo exports of the fixture architectures: every parameter is found under its module path and holds the
/// values PyTorch had.
@Suite struct FixtureLoadingTests {
    static let folders = ["tiny/la13", "tiny/la6", "tiny/la1", "tiny/la0", "tiny/opset13", "tiny/opset16", "small/la13"]

    @Test(arguments: folders)
    func everyPyTorchParameterMapsToItsModulePathAndNothingIsLeftOver(folder: String) throws {
        let model = try LoadedModel(folder: Fixtures.folder(folder))
        let size = String(folder.split(separator: "/")[0])
        let expected = Set(try Fixtures.parameterStats(size).keys)
        let found = Set(model.encoder.parameters.keys).union(model.decoder?.parameters.keys ?? [:].keys)
        #expect(found.subtracting(expected).sorted() == [], "paths the loader invented")
        #expect(expected.subtracting(found).sorted() == [], "PyTorch parameters the loader did not find")
        for graph in [model.encoder, model.decoder].compactMap({ $0 }) {
            #expect(graph.parameters.values.allSatisfy { $0.count > 0 })
        }
    }

    @Test(arguments: folders)
    func loadedValuesEqualThePyTorchParameters(folder: String) throws {
        let model = try LoadedModel(folder: Fixtures.folder(folder))
        let size = String(folder.split(separator: "/")[0])
        let stats = try Fixtures.parameterStats(size)
        let parameters = model.encoder.parameters.merging(model.decoder?.parameters ?? [:]) { a, _ in a }
        var worst = 0.0
        for (path, reference) in stats {
            let p = try #require(parameters[path], "\(path) missing")
            // PyTorch layout [out, in] for Linear weights the exporter stored as [in, out].
            let shape = p.layout == .inputMajor ? p.shape.reversed() : p.shape
            #expect(Array(shape) == reference.shape, "\(path): shape")
            let loaded = try p.load()
            #expect(loaded.shape == p.shape)
            let values = loaded.buffer
            let sum = values.reduce(0.0) { $0 + Double($1) }
            let squares = values.reduce(0.0) { $0 + Double($1) * Double($1) }
            // Both sides sum the same float32 values in float64; only the order differs.
            let tolerance = 1e-9 * max(1, (reference.sumSquares * Double(values.count)).squareRoot())
            #expect(abs(sum - reference.sum) <= tolerance, "\(path): sum \(sum) vs \(reference.sum)")
            #expect(abs(squares - reference.sumSquares) <= 1e-5 * max(1, reference.sumSquares), "\(path): sum of squares")
            for sample in reference.samples {
                let torchIndex = Int(sample[0])
                let index: Int
                if p.layout == .inputMajor {
                    let (row, col) = (torchIndex / reference.shape[1], torchIndex % reference.shape[1])
                    index = col * reference.shape[0] + row
                } else {
                    index = torchIndex
                }
                let deviation = abs(Double(values[index]) - sample[1])
                worst = max(worst, deviation)
                #expect(deviation == 0, "\(path)[\(torchIndex)]: \(values[index]) vs \(sample[1])")
            }
        }
        print("\(folder): \(stats.count) parameters, sampled values max |Δ| = \(worst)")
    }

    @Test(arguments: [("tiny/la13", [70, 13]), ("tiny/la6", [70, 6]), ("tiny/la1", [70, 1]), ("tiny/la0", [70, 0]),
                      ("tiny/opset13", [70, 13]), ("tiny/opset16", [70, 13])])
    func exportLookaheadIsReadFromTheGraph(folder: String, context: [Int]) throws {
        let graph = try ExportedGraph(path: Fixtures.file(folder, prefix: "encoder"))
        #expect(graph.exportAttContext == context)
    }

    @Test(arguments: ["tiny/opset13", "tiny/opset16"])
    func decomposedLayerNormStillYieldsItsEpsilon(folder: String) throws {
        let graph = try ExportedGraph(path: Fixtures.file(folder, prefix: "encoder"))
        #expect(graph.opset ?? 0 < 17)
        #expect(graph.layerNormEpsilon == 1e-5)
    }

    @Test func descriptionsOfTheTinyFixtureComeFromItsTensors() throws {
        let model = try LoadedModel(folder: Fixtures.folder("tiny/la13"))
        let e = model.encoderDescription
        let stats = try Fixtures.parameterStats("tiny")
        #expect(e.layers == Set(stats.keys.compactMap { $0.hasPrefix("layers.") ? $0.split(separator: ".")[1] : nil }).count)
        #expect(e.dModel == stats["layers.0.self_attn.linear_q.weight"]?.shape[0])
        #expect(e.heads * e.headDim == e.dModel)
        #expect(e.heads == stats["layers.0.self_attn.pos_bias_u"]?.shape[0])
        #expect(e.feedForward == stats["layers.0.feed_forward1.linear1.weight"]?.shape[0])
        #expect(e.convKernel == stats["layers.0.conv.depthwise_conv.weight"]?.shape[2])
        #expect(e.subsamplingChannels == stats["pre_encode.conv.0.weight"]?.shape[0])
        #expect(e.subsamplingFactor == 8)
        #expect(e.melFeatures == 80)
        let d = try #require(model.decoderDescription)
        #expect(d.classes == stats["decoder.prediction.embed.weight"]?.shape[0])
        #expect(d.classes == model.tokens?.count)
        let total = stats.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(e.parameterCount + d.predictionParameters + d.jointParameters == total)
    }

    /// The real architecture, generated on demand (models/make_fixtures.py large); skipped where absent.
    @Test(.enabled(if: Fixtures.largeAvailable, "models/large not generated"))
    func largeExportHasTheReferenceModelsParameterCounts() throws {
        let model = try LoadedModel(folder: Fixtures.folder("large/la13"))
        let e = model.encoderDescription
        let d = try #require(model.decoderDescription)
        #expect(e.parameterCount == 108_893_184)
        #expect(e.preEncodeParameters == 1_581_568)
        #expect(e.layerParameters == 6_312_448)
        #expect(d.predictionParameters == 3_937_920)
        #expect(d.jointParameters == 1_395_585)
        #expect(e.parameterCount + d.predictionParameters + d.jointParameters == 114_226_689)
        #expect([e.layers, e.dModel, e.heads, e.feedForward, e.convKernel] as [Int] == [17, 512, 8, 2048, 9])
        #expect(d.classes == 1025 && d.predictionHidden == 640 && d.jointHidden == 640)
        #expect(model.encoder.exportAttContext == [70, 13])
    }
}
