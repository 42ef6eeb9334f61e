import Foundation
import STTTensor

/// One exported ONNX graph reduced to what the engine needs: every parameter under its PyTorch module path,
/// the positional table, the graph's inputs and outputs, and a few facts the graph states about itself.
package struct ExportedGraph: @unchecked Sendable {
    package enum Kind: Sendable, Equatable, CustomStringConvertible {
        /// Cache-aware encoder (`audio_signal`, `length`, three cache inputs).
        case encoder
        /// Encoder exported without cache support.
        case encoderWithoutCache
        /// Encoder and CTC decoder in one graph (`logprobs` output).
        case ctc
        /// RNN-T prediction network and joint (NeMo's `decoder_joint`, or sherpa-onnx's decoder and joiner combined).
        case decoderJoint
        /// The prediction network alone (sherpa-onnx's `decoder.onnx`).
        case predictionNetwork
        /// The joint alone (sherpa-onnx's `joiner.onnx`).
        case joint

        package var description: String {
            switch self {
            case .encoder: "a cache-aware encoder export"
            case .encoderWithoutCache: "an encoder export without cache support"
            case .ctc: "an encoder + CTC decoder export"
            case .decoderJoint: "a decoder_joint export"
            case .predictionNetwork: "a prediction network (sherpa-onnx decoder)"
            case .joint: "a joint network (sherpa-onnx joiner)"
            }
        }
    }

    package let path: String
    package let kind: Kind
    package let opset: Int64?
    package let producer: String
    package let inputs: [ONNXValueInfo]
    package let outputs: [ONNXValueInfo]
    /// Parameters by module path.
    package let parameters: [String: Parameter]
    /// Initializers that are not parameters (shape constants and folded scalars).
    package let graphConstants: [String]
    /// Shape of the relative positional table ([1, 2·max_len − 1, d_model], rows for distances max_len−1 …
    /// −(max_len−1)), which the exporter stores in a `Constant` node; `loadPositionalTable()` reads it.
    package let positionalTableShape: [Int]?
    private let positionalConstant: ONNXTensor?
    private let file: ONNXFile
    /// LayerNorm epsilon as the graph states it (the `epsilon` attribute, or the constant added before the square
    /// root where LayerNorm is decomposed below opset 17).
    package let layerNormEpsilon: Float?
    /// The attention context [left, right] (frames) the export was made with, read from its chunked-limited mask:
    /// the chunk size R+1 divides a Range of frame indices, and the chunk-distance limit is left/(R+1).
    package let exportAttContext: [Int]?
    /// Bytes of parameter data (and the positional table) in the file, counting shared tensors once.
    package let weightBytes: Int
    /// How many parameters are stored as 8-bit integers (dequantized to float32 when loaded).
    package let quantizedParameters: Int
    /// `metadata_props` of the file.
    package let metadata: [(key: String, value: String)]

    package var parameterPaths: [String] { parameters.keys.sorted() }
    package var parameterCount: Int { parameters.values.reduce(0) { $0 + $1.count } }

    package func loadPositionalTable() throws(LoaderError) -> Tensor? {
        guard let positionalConstant else { return nil }
        return try file.floatTensor(positionalConstant)
    }

    package func parameter(_ path: String) -> Parameter? { parameters[path] }

    package func input(_ name: String) -> ONNXValueInfo? { inputs.first { $0.name == name } }
    package func output(_ name: String) -> ONNXValueInfo? { outputs.first { $0.name == name } }

    package init(path: String) throws(LoaderError) {
        try self.init(file: ONNXFile(path: path))
    }

    /// A graph decoded from bytes in memory (kept as a copy for the parameters to read from); `name` stands for it
    /// in errors.
    package init(bytes: [UInt8], name: String) throws(LoaderError) {
        try self.init(file: ONNXFile(bytes: bytes, name: name))
    }

    private init(file: ONNXFile) throws(LoaderError) {
        let path = file.path
        let graph = file.graph
        self.path = path
        opset = file.opset
        producer = [file.header.producerName, file.header.producerVersion].filter { !$0.isEmpty }
            .joined(separator: " ")
        inputs = graph.inputs.filter { input in !graph.initializers.contains { $0.name == input.name } }
        outputs = graph.outputs
        kind = try Self.kind(inputs: inputs, outputs: outputs, graph: graph, path: path)
        metadata = file.header.metadata

        let map = try ParameterMap(graph: graph, path: path)
        graphConstants = map.graphConstants
        self.file = file
        var parameters: [String: Parameter] = [:]
        var counted = Set<Int>()
        var bytes = 0
        var quantized = 0
        for (modulePath, source) in map.sources {
            let initializer = graph.initializers[source.initializer]
            if let q = source.quantization {
                let scale = graph.initializers[q.scale], zeroPoint = q.zeroPoint.map { graph.initializers[$0] }
                try file.validateQuantizedTensor(initializer, scale: scale, zeroPoint: zeroPoint)
                if counted.insert(source.initializer).inserted { bytes += initializer.elementCount }
                quantized += 1
                parameters[modulePath] = Parameter(
                    path: modulePath, shape: initializer.dims, layout: source.layout, source: initializer.name,
                    read: { () throws(LoaderError) -> Tensor in
                        try file.dequantizedTensor(initializer, scale: scale, zeroPoint: zeroPoint)
                    },
                    visitRaw: { _ in false })
                continue
            }
            try file.validateFloatTensor(initializer)
            guard initializer.dims.allSatisfy({ $0 > 0 }) else {
                throw .badTensor(path, tensor: quoted(initializer.name), "has an empty dimension in \(initializer.dims)")
            }
            if counted.insert(source.initializer).inserted { bytes += initializer.elementCount * 4 }
            let transform = source.transform
            let shape = try Self.shape(of: initializer.dims, after: transform, name: initializer.name, path: path)
            parameters[modulePath] = Parameter(
                path: modulePath, shape: shape, layout: source.layout, source: initializer.name,
                read: { () throws(LoaderError) -> Tensor in
                    try Self.transform(file.floatTensor(initializer), transform, name: initializer.name, path: path)
                },
                visitRaw: { body in
                    transform == .none && ((try? file.withRawFloatBytes(initializer, body)) ?? false)
                })
        }
        self.parameters = parameters
        quantizedParameters = quantized

        var table: ONNXTensor?
        var integers: [String: [Int64]] = [:]
        for node in graph.nodes where node.opType == "Constant" {
            guard let value = node.attribute("value")?.tensor else { continue }
            if value.dataType == .float, value.dims.count == 3, value.dims[0] == 1, value.dims[1] % 2 == 1,
               value.elementCount > (table?.elementCount ?? 0), node.name.contains("pos_enc") || table == nil {
                try file.validateFloatTensor(value)
                table = value
            } else if value.dataType == .int64 || value.dataType == .int32, value.elementCount <= 8,
                      let output = node.outputs.first, let values = file.integerValues(value) {
                integers[output] = values
            }
        }
        positionalConstant = table
        positionalTableShape = table?.dims
        if let table { bytes += table.elementCount * 4 }
        exportAttContext = Self.attentionContext(graph: graph, constants: integers)
        weightBytes = bytes
        layerNormEpsilon = Self.layerNormEpsilon(graph: graph, file: file)
        // Values are read later with pread; the pages decoding mapped in are not needed.
        file.releaseMappedPages()
    }

    /// sherpa-onnx's prediction network and joint as one `decoder_joint`: their parameters under NeMo's module
    /// paths (`prediction.embed.weight` → `decoder.prediction.embed.weight`, `enc.bias` → `joint.enc.bias`).
    package init(prediction: ExportedGraph, joint: ExportedGraph) throws(LoaderError) {
        guard prediction.kind == .predictionNetwork else {
            throw .wrongGraphKind(prediction.path, expected: "a prediction network", found: prediction.kind.description)
        }
        guard joint.kind == .joint else {
            throw .wrongGraphKind(joint.path, expected: "a joint network", found: joint.kind.description)
        }
        var parameters: [String: Parameter] = [:]
        for (graph, prefix) in [(prediction, "decoder.prediction."), (joint, "joint.")] {
            for (name, p) in graph.parameters {
                // NeMo's RNNTDecoder keeps `embed` and `dec_rnn` in a ModuleDict `prediction` that the exporter's node
                // scopes leave out (`/dec_rnn/lstm/LSTM`) while named tensors keep it (`prediction.embed.weight`).
                var path = name
                for part in prefix.split(separator: ".").reversed() {
                    if !path.hasPrefix(part + ".") { path = part + "." + path }
                }
                parameters[path] = Parameter(path: path, shape: p.shape, layout: p.layout, source: p.source,
                                             read: p.read, visitRaw: p.visitRaw)
            }
        }
        path = prediction.path + " + " + (joint.path as NSString).lastPathComponent
        kind = .decoderJoint
        opset = prediction.opset
        producer = prediction.producer
        inputs = prediction.inputs + joint.inputs
        outputs = prediction.outputs + joint.outputs
        self.parameters = parameters
        graphConstants = prediction.graphConstants + joint.graphConstants
        positionalTableShape = nil
        positionalConstant = nil
        file = prediction.file
        layerNormEpsilon = nil
        exportAttContext = nil
        weightBytes = prediction.weightBytes + joint.weightBytes
        quantizedParameters = prediction.quantizedParameters + joint.quantizedParameters
        metadata = prediction.metadata + joint.metadata
    }

    private static func kind(inputs: [ONNXValueInfo], outputs: [ONNXValueInfo], graph: ONNXGraph,
                             path: String) throws(LoaderError) -> Kind {
        let names = Set(inputs.map(\.name))
        if names.contains("audio_signal") {
            let cached = names.contains("cache_last_channel") && names.contains("cache_last_time")
                && names.contains("cache_last_channel_len")
            if !cached { return .encoderWithoutCache }
            return outputs.first?.name == "logprobs" ? .ctc : .encoder
        }
        if names.contains("encoder_outputs") && names.contains("targets") { return .decoderJoint }
        // sherpa-onnx's separate graphs carry torch-generated input names, so they are told apart by what they
        // compute: the prediction network is the graph with the LSTM, fed integer tokens first; the joint takes two
        // float sequences and returns one 4-D logit tensor.
        let float: Int32 = 1, int32: Int32 = 6, int64: Int32 = 7
        let hasLSTM = graph.nodes.contains { $0.opType == "LSTM" || $0.opType == "DynamicQuantizeLSTM" }
        if hasLSTM, inputs.count >= 2, [int32, int64].contains(inputs[0].elementType), inputs[0].dims.count == 2 {
            return .predictionNetwork
        }
        if !hasLSTM, inputs.count == 2, inputs.allSatisfy({ $0.elementType == float && $0.dims.count == 3 }),
           outputs.first?.dims.count == 4 {
            return .joint
        }
        let list = inputs.map(\.name).joined(separator: ", ")
        throw .notFastConformer(path, "its inputs are [\(list)]; expected audio_signal (encoder), "
            + "encoder_outputs and targets (decoder_joint), tokens and LSTM states (a prediction network) or two float "
            + "sequences (a joint)")
    }

    /// The shape a parameter has once loaded: LSTM tensors lose their direction axis, the bias splits in two.
    private static func shape(of dims: [Int], after transform: ParameterSource.Transform, name: String,
                              path: String) throws(LoaderError) -> [Int] {
        switch transform {
        case .none: return dims
        case .lstmInputWeights, .lstmRecurrentWeights:
            guard dims.count == 3, dims[0] == 1, dims[1] % 4 == 0 else {
                throw .badTensor(path, tensor: name, "LSTM weight of shape \(dims), expected [1, 4·H, in]")
            }
            return [dims[1], dims[2]]
        case .lstmInputBias, .lstmRecurrentBias:
            guard dims.count == 2, dims[0] == 1, dims[1] % 8 == 0 else {
                throw .badTensor(path, tensor: name, "LSTM bias of shape \(dims), expected [1, 8·H]")
            }
            return [dims[1] / 2]
        }
    }

    /// LSTM weights from ONNX (W [1, 4H, in], R [1, 4H, H], B [1, 8H], gates i, o, f, c) into PyTorch's
    /// weight_ih / weight_hh / bias_ih / bias_hh (gates i, f, g, o).
    private static func transform(_ raw: Tensor, _ transform: ParameterSource.Transform, name: String,
                                  path: String) throws(LoaderError) -> Tensor {
        if transform == .none { return raw }
        let shape = raw.shape
        guard shape.count >= 2, shape[0] == 1 else {
            throw .badTensor(path, tensor: name, "LSTM parameter of shape \(shape), expected one direction [1, …]")
        }
        let rows: Int, cols: Int, offset: Int
        switch transform {
        case .lstmInputWeights, .lstmRecurrentWeights:
            guard shape.count == 3, shape[1] % 4 == 0 else {
                throw .badTensor(path, tensor: name, "LSTM weight of shape \(shape), expected [1, 4·H, in]")
            }
            rows = shape[1]; cols = shape[2]; offset = 0
        case .lstmInputBias, .lstmRecurrentBias:
            guard shape.count == 2, shape[1] % 8 == 0 else {
                throw .badTensor(path, tensor: name, "LSTM bias of shape \(shape), expected [1, 8·H]")
            }
            rows = shape[1] / 2; cols = 1; offset = transform == .lstmRecurrentBias ? rows : 0
        case .none:
            return raw
        }
        let hidden = rows / 4
        // The transform, not the width, says which is a bias: an LSTM with one input feature has weights [4H, 1].
        let bias = transform == .lstmInputBias || transform == .lstmRecurrentBias
        let result = Tensor(zeros: bias ? [rows] : [rows, cols])
        // PyTorch gate g ← ONNX gate: i ← i(0), f ← f(2), g ← c(3), o ← o(1).
        for (torchGate, onnxGate) in [(0, 0), (1, 2), (2, 3), (3, 1)] {
            let src = raw.data + offset + onnxGate * hidden * cols
            let dst = result.data + torchGate * hidden * cols
            dst.update(from: src, count: hidden * cols)
        }
        return result
    }

    private static func attentionContext(graph: ONNXGraph, constants: [String: [Int64]]) -> [Int]? {
        var producers: [String: ONNXNode] = [:]
        for node in graph.nodes { for out in node.outputs { producers[out] = node } }
        func scalar(_ value: String) -> Int? {
            guard let v = constants[value], v.count == 1 else { return nil }
            return Int(v[0])
        }
        guard let div = graph.nodes.first(where: { node in
                  node.opType == "Div" && node.inputs.count == 2 && producers[node.inputs[0]]?.opType == "Range"
                      && scalar(node.inputs[1]) != nil }),
              let chunk = scalar(div.inputs[1]), chunk > 0,
              let limit = graph.nodes.first(where: { $0.opType == "LessOrEqual" && $0.inputs.count == 2
                  && scalar($0.inputs[1]) != nil }),
              let chunks = scalar(limit.inputs[1]), chunks >= 0,
              chunk <= 10_000, chunks <= 10_000 else { return nil }
        return [chunks * chunk, chunk - 1]
    }

    private static func layerNormEpsilon(graph: ONNXGraph, file: ONNXFile) -> Float? {
        if let node = graph.nodes.first(where: { $0.opType == "LayerNormalization" }) {
            return node.attribute("epsilon")?.float ?? 1e-5
        }
        // Decomposed: Sqrt(Add(ReduceMean(Pow(x − mean, 2)), eps)). The eps is a Constant or an initializer.
        var producers: [String: ONNXNode] = [:]
        for node in graph.nodes { for out in node.outputs { producers[out] = node } }
        var scalars: [String: Float] = [:]
        for node in graph.nodes where node.opType == "Constant" {
            if let t = node.attribute("value")?.tensor, t.elementCount == 1, let output = node.outputs.first,
               let v = file.floatValues(t)?.first {
                scalars[output] = v
            }
        }
        for t in graph.initializers where t.elementCount == 1 {
            if let v = file.floatValues(t)?.first { scalars[t.name] = v }
        }
        for sqrt in graph.nodes where sqrt.opType == "Sqrt" && sqrt.name.contains("norm") {
            guard let input = sqrt.inputs.first, let add = producers[input], add.opType == "Add" else { continue }
            for input in add.inputs { if let eps = scalars[input] { return eps } }
        }
        return nil
    }
}
