import ArgumentParser
import Foundation
import STTWeightLoader

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model's architecture and parameter counts, all read from the loaded weights.")

    @Argument(help: "A model folder (NeMo's export: encoder-*.onnx, decoder_joint-*.onnx, tokens.txt; or sherpa-onnx's: encoder.onnx, decoder.onnx, joiner.onnx, tokens.txt, fp32 or .int8.onnx) or a single .onnx file.")
    var path: String

    @Option(help: "For a sherpa-onnx folder holding both: fp32 or int8. Default: fp32.")
    var precision: String?

    func run() throws {
        let start = Date()
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        do {
            if exists && isDirectory.boolValue {
                let chosen = try precision.map { name throws -> ModelFolder.Precision in
                    guard let p = ModelFolder.Precision(rawValue: name) else {
                        throw ValidationError("--precision \(name): expected fp32 or int8")
                    }
                    return p
                }
                let model = try LoadedModel(folder: path, precision: chosen)
                let seconds = Date().timeIntervalSince(start)
                print("model folder  \(path)")
                print("layout        \(model.folder.layout.rawValue), \(model.folder.precision.rawValue)"
                      + (model.folder.layout == .sherpa ? " (encoder, decoder, joiner)" : ""))
                describe(encoder: model.encoder, model.encoderDescription, metadata: model.metadata)
                if let sherpa = model.sherpaMetadata {
                    let keys = ["window_size", "chunk_shift", "vocab_size", "pred_rnn_layers", "pred_hidden", "model_type"]
                    print("  sherpa-onnx metadata " + keys.compactMap { k in sherpa.values[k].map { "\(k)=\($0)" } }.joined(separator: " "))
                }
                if let decoder = model.decoder, let d = model.decoderDescription { describe(decoder: decoder, d) }
                let quantized = model.encoder.quantizedParameters + (model.decoder?.quantizedParameters ?? 0)
                if quantized > 0 {
                    print("int8          \(quantized) weight matrices stored as 8-bit, dequantized to float32 at load")
                }
                for warning in model.warnings { print("warning       \(warning)") }
                if let ctc = model.ctcDescription {
                    print("CTC head      \(ctc.encoderDim) → \(ctc.classes) classes (blank \(ctc.blank))")
                }
                if let tokens = model.tokens { print("tokens        \(tokens.count) pieces (tokens.txt)") }
                counts(encoder: model.encoderDescription, decoder: model.decoderDescription, ctc: model.ctcDescription)
                let bytes = model.encoder.weightBytes + (model.decoder?.weightBytes ?? 0)
                print(String(format: "loaded        %.1f MB of weights in %.0f ms", Double(bytes) / 1e6, seconds * 1000))
            } else {
                let graph = try ExportedGraph(path: path)
                switch graph.kind {
                case .encoderWithoutCache: throw LoaderError.noCacheSupport(path)
                case .encoder, .ctc:
                    let e = try EncoderDescription(graph: graph, prefix: graph.kind == .ctc ? "encoder." : "")
                    let ctc = graph.kind == .ctc ? try CTCDescription(graph: graph) : nil
                    describe(encoder: graph, e, metadata: nil)
                    counts(encoder: e, decoder: nil, ctc: ctc)
                case .decoderJoint:
                    let d = try DecoderDescription(graph: graph)
                    describe(decoder: graph, d)
                    counts(encoder: nil, decoder: d, ctc: nil)
                case .predictionNetwork, .joint:
                    // Half of a decoder: its sizes are only checked against the other half.
                    print("\(graph.kind == .joint ? "joiner " : "decoder")       \(file(graph))")
                    print("  \(graph.parameterCount.grouped) parameters; load the whole sherpa-onnx folder for the architecture")
                }
            }
        } catch let error as LoaderError {
            throw CommandFailure(error)
        }
    }

    private func file(_ graph: ExportedGraph) -> String {
        let name = (graph.path as NSString).lastPathComponent
        return "\(name)  (\(graph.kind), opset \(graph.opset.map(String.init) ?? "?"), \(graph.producer))"
    }

    private func describe(encoder graph: ExportedGraph, _ e: EncoderDescription, metadata: ModelMetadata?) {
        print("encoder       \(file(graph))")
        print("  layers \(e.layers), d_model \(e.dModel), heads \(e.heads) × \(e.headDim), feed-forward \(e.feedForward), "
              + "conv kernel \(e.convKernel) (time cache \(e.convCacheSize))")
        print("  subsampling ×\(e.subsamplingFactor) (\(e.subsamplingStages) stride-2 stages, \(e.subsamplingChannels) channels), "
              + "\(e.melFeatures) mel → \(e.subsampledFeatures) bins")
        print("  positional table \(e.positionalRows) rows, LayerNorm epsilon \(e.layerNormEpsilon)")
        if let context = graph.exportAttContext {
            print("  export att_context \(context): look-ahead \(context[1] * 10 * e.subsamplingFactor) ms (read from the graph's attention mask)")
        } else if let context = metadata?.exportAttContext {
            print("  export att_context \(context) (model.json)")
        }
        if let sizes = metadata?.attContextSizes {
            print("  trained look-aheads \(sizes.map { "\($0)" }.joined(separator: " ")) (model.json)")
        }
    }

    private func describe(decoder graph: ExportedGraph, _ d: DecoderDescription) {
        if graph.path.contains(" + ") {
            print("decoder+joiner \((graph.path as NSString).lastPathComponent)  (\(graph.kind), opset \(graph.opset.map(String.init) ?? "?"))")
        } else {
            print("decoder_joint \(file(graph))")
        }
        print("  \(d.classes) classes (blank \(d.blank)), prediction LSTM \(d.lstmLayers) × \(d.predictionHidden), "
              + "joint \(d.encoderDim)+\(d.predictionHidden) → \(d.jointHidden) → \(d.classes)")
    }

    private func counts(encoder e: EncoderDescription?, decoder d: DecoderDescription?, ctc: CTCDescription?) {
        print("parameters")
        var total = 0
        if let e {
            print("  encoder         \(e.parameterCount.grouped.leftPadded(13))  (pre_encode \(e.preEncodeParameters.grouped) + "
                  + "\(e.layers) × \(e.layerParameters.grouped))")
            total += e.parameterCount
        }
        if let d {
            print("  prediction net  \(d.predictionParameters.grouped.leftPadded(13))")
            print("  joint           \(d.jointParameters.grouped.leftPadded(13))")
            total += d.predictionParameters + d.jointParameters
        }
        if let ctc {
            print("  CTC head        \(ctc.parameterCount.grouped.leftPadded(13))")
            total += ctc.parameterCount
        }
        print("  total           \(total.grouped.leftPadded(13))")
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
