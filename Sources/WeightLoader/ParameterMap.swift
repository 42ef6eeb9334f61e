import STTTensor

/// How a parameter's values are laid out relative to the PyTorch module it comes from.
package enum ParameterLayout: Sendable, Equatable {
    /// Exactly as the PyTorch parameter (Conv weights [out, in, k], biases, LayerNorm, embeddings, LSTM in
    /// PyTorch gate order i, f, g, o).
    case torch
    /// A Linear weight as the exporter writes it for MatMul: [in, out], the transpose of PyTorch's [out, in].
    case inputMajor
}

/// One parameter of the exported network. Its values stay in the file until `load()` copies them out, so a model can
/// be described without reading its weights, and built weight by weight without holding two copies.
package struct Parameter: Sendable {
    /// The PyTorch module path, e.g. `layers.3.self_attn.linear_q.weight`.
    package let path: String
    /// The shape of the loaded tensor (as stored, after LSTM gate reordering).
    package let shape: [Int]
    package let layout: ParameterLayout
    /// The initializer (or Constant) in the file that holds the values.
    package let source: String
    let read: @Sendable () throws(LoaderError) -> Tensor
    let visitRaw: @Sendable ((UnsafeRawPointer) -> Void) -> Bool

    package var count: Int { ONNXTensor.count(shape) }
    package var rank: Int { shape.count }

    /// Copies the values out of the file into new aligned storage.
    package func load() throws(LoaderError) -> Tensor { try read() }

    /// Runs `body` on the values as stored in the file (little-endian float32 bytes, any alignment, in `shape`
    /// order) without copying them, when they are stored that way; returns false otherwise (then use `load()`).
    package func withStoredValues(_ body: (UnsafeRawPointer) -> Void) -> Bool {
        withoutActuallyEscaping(body) { visitRaw($0) }
    }
}

/// Where in the graph a module path's values come from.
struct ParameterSource {
    enum Transform { case none, lstmInputWeights, lstmRecurrentWeights, lstmInputBias, lstmRecurrentBias }
    let initializer: Int
    let layout: ParameterLayout
    let transform: Transform
    /// For an 8-bit weight (onnxruntime's dynamic quantization): the initializers of its scale and zero point.
    var quantization: (scale: Int, zeroPoint: Int?)? = nil
}

/// Finds the module path of every weight in an exported graph.
///
/// Named initializers already carry their module path. The exporter also writes:
/// - anonymous `onnx::MatMul_N` weights, named through the node that consumes them
///   (`/layers.0/self_attn/linear_q/MatMul` → `layers.0.self_attn.linear_q.weight`), stored [in, out];
/// - `Identity` nodes whose output is a module path and whose input is another parameter's initializer
///   (shared or deduplicated tensors): the path aliases those values;
/// - anonymous `onnx::LSTM_N` W, R, B inputs of an LSTM node, in ONNX gate order i, o, f, c.
struct ParameterMap {
    var sources: [String: ParameterSource] = [:]
    /// Initializers that are no parameter: shape constants, scalars folded by the exporter.
    var graphConstants: [String] = []

    init(graph: ONNXGraph, path: String) throws(LoaderError) {
        var initializerIndex: [String: Int] = [:]
        for (i, t) in graph.initializers.enumerated() { initializerIndex[t.name] = i }
        var identitySource: [String: String] = [:]
        for node in graph.nodes where node.opType == "Identity" && node.inputs.count == 1 && node.outputs.count == 1 {
            identitySource[node.outputs[0]] = node.inputs[0]
        }
        func initializer(feeding value: String) -> Int? {
            var name = value
            for _ in 0..<64 {
                if let index = initializerIndex[name] { return index }
                guard let next = identitySource[name] else { return nil }
                name = next
            }
            return nil
        }

        var used = Set<Int>()
        for (i, t) in graph.initializers.enumerated() where Self.isModulePath(t.name) {
            sources[t.name] = ParameterSource(initializer: i, layout: .torch, transform: .none)
            used.insert(i)
        }
        for node in graph.nodes where node.opType == "Identity" && node.outputs.count == 1 {
            let out = node.outputs[0]
            guard Self.isModulePath(out), sources[out] == nil, let input = node.inputs.first,
                  let i = initializer(feeding: input) else {
                continue
            }
            sources[out] = ParameterSource(initializer: i, layout: .torch, transform: .none)
            used.insert(i)
        }

        // Node scopes leave out some module names: NeMo's RNNTDecoder keeps `embed` and `dec_rnn` in a ModuleDict
        // `prediction`, and `/decoder/embed/Gather` consumes `decoder.prediction.embed.weight`. Learn each such
        // insertion from the named parameters and apply it to the scopes of anonymous weights.
        // Each node's scope as module path components, worked out once: names are most of a graph's text.
        let scopes = graph.nodes.map { node in
            Self.moduleScope(ofNode: node.name).map { $0.split(separator: ".").map(String.init) }
        }
        var rewrites: [[String]: [String]] = [:]
        for (node, scope) in zip(graph.nodes, scopes) {
            guard let scope else { continue }
            for input in node.inputs where Self.isModulePath(input) && initializer(feeding: input) != nil {
                var module = input.split(separator: ".").map(String.init)
                module.removeLast()
                if let (from, to) = Self.insertion(scope: scope, module: module) {
                    rewrites[from] = to
                }
            }
        }
        func modulePath(ofNode index: Int) -> String? {
            guard var parts = scopes[index] else { return nil }
            for length in stride(from: parts.count, through: 1, by: -1) {
                if let to = rewrites[Array(parts.prefix(length))] {
                    parts = to + parts.dropFirst(length)
                    break
                }
            }
            return parts.joined(separator: ".")
        }

        var producers: [String: ONNXNode] = [:]
        var consumers: [String: [ONNXNode]] = [:]
        for node in graph.nodes {
            for out in node.outputs { producers[out] = node }
            for input in node.inputs { consumers[input, default: []].append(node) }
        }

        var lstmCount = 0
        var lstmWeightOwner: [Int: Int] = [:]   // initializer → the LSTM node (index) that reads it
        for (nodeIndex, node) in graph.nodes.enumerated() {
            // The exporter names a node after its op (`…/linear_q/MatMul`): a weight-consuming node whose name says
            // one op and whose type says another was altered.
            if let named = node.name.utf8.split(separator: UInt8(ascii: "/")).last,
               let first = named.split(separator: UInt8(ascii: "_")).first, case let base = String(Substring(first)),
               Self.weightOps.contains(base), base != node.opType,
               // onnxruntime's quantizer names the nodes it adds after what they replace or quantize
               // (`…/MatMul_quant`, `…/MatMul_quant_scales_mul`, `…/LayerNormalization_output_0_QuantizeLinear`).
               !(String(Substring(named)).lowercased().contains("quant") && Self.quantizerOps.contains(node.opType)) {
                throw .malformedGraph(path, "node \(quoted(node.name)) is named for \(base) but is \(quoted(node.opType))")
            }
            guard let scope = modulePath(ofNode: nodeIndex) else {
                if node.opType == "LSTM" { lstmCount += 1 }
                continue
            }
            var roles: [(input: Int, path: String, layout: ParameterLayout, transform: ParameterSource.Transform)] = []
            switch node.opType {
            case "MatMul", "MatMulInteger":
                roles = [(1, scope + ".weight", .inputMajor, .none)]
            case "Gemm":
                let transB = node.attribute("transB")?.int ?? 0
                roles = [(1, scope + ".weight", transB == 1 ? .torch : .inputMajor, .none), (2, scope + ".bias", .torch, .none)]
            case "Conv", "LayerNormalization":
                roles = [(1, scope + ".weight", .torch, .none), (2, scope + ".bias", .torch, .none)]
            case "Gather":
                roles = [(0, scope + ".weight", .torch, .none)]
            case "LSTM":
                // One LSTM node per layer; PyTorch names them weight_ih_l{k} etc.
                let k = lstmCount
                lstmCount += 1
                roles = [(1, scope + ".weight_ih_l\(k)", .torch, .lstmInputWeights),
                         (2, scope + ".weight_hh_l\(k)", .torch, .lstmRecurrentWeights),
                         (3, scope + ".bias_ih_l\(k)", .torch, .lstmInputBias),
                         (3, scope + ".bias_hh_l\(k)", .torch, .lstmRecurrentBias)]
            default:
                continue
            }
            for role in roles where role.input < node.inputs.count && !node.inputs[role.input].isEmpty {
                guard let i = initializer(feeding: node.inputs[role.input]) else { continue }
                if node.opType == "LSTM" {
                    if let owner = lstmWeightOwner[i], owner != nodeIndex {
                        throw .malformedGraph(path, "two LSTM nodes read the same weights (\(quoted(graph.initializers[i].name)))")
                    }
                    lstmWeightOwner[i] = nodeIndex
                }
                if Self.isModulePath(graph.initializers[i].name) && role.transform == .none { continue }
                if let existing = sources[role.path] {
                    guard existing.initializer == i && existing.transform == role.transform else {
                        throw .malformedGraph(path, "two nodes claim the weight \(quoted(role.path))")
                    }
                    continue
                }
                var source = ParameterSource(initializer: i, layout: role.layout, transform: role.transform)
                if node.opType == "MatMulInteger" {
                    let q = try Self.weightQuantization(of: node, graph: graph, producers: producers,
                                                        consumers: consumers, initializer: { initializer(feeding: $0) }, path: path)
                    source.quantization = q
                    used.insert(q.scale)
                    if let zp = q.zeroPoint { used.insert(zp) }
                }
                sources[role.path] = source
                used.insert(i)
            }
        }

        for (i, t) in graph.initializers.enumerated() where !used.contains(i) {
            // A float initializer with more than a handful of values that no layer consumes is a weight we would
            // silently ignore: refuse rather than run a different network.
            if t.dataType == .float && t.elementCount > 16 {
                throw .unmappedInitializer(path, tensor: t.name)
            }
            graphConstants.append(t.name)
        }
    }

    /// The scale and zero point of the 8-bit weight a `MatMulInteger` reads. onnxruntime's dynamic quantization
    /// writes `MatMulInteger(DynamicQuantizeLinear(x), Wq, x_zp, W_zp) → Cast → Mul(·, Mul(x_scale, W_scale))`;
    /// the weight's scale is found through that structure, since the names are the quantizer's own.
    static func weightQuantization(of node: ONNXNode, graph: ONNXGraph, producers: [String: ONNXNode],
                                   consumers: [String: [ONNXNode]], initializer: (String) -> Int?,
                                   path: String) throws(LoaderError) -> (scale: Int, zeroPoint: Int?) {
        func fail(_ why: String) -> LoaderError {
            .malformedGraph(path, "8-bit MatMul \(quoted(node.name)): \(why)")
        }
        let zeroPoint = node.inputs.count > 3 && !node.inputs[3].isEmpty ? initializer(node.inputs[3]) : nil
        guard let input = node.inputs.first, let quantize = producers[input],
              quantize.opType == "DynamicQuantizeLinear", quantize.outputs.count >= 2 else {
            throw fail("its input is not produced by DynamicQuantizeLinear")
        }
        let inputScale = quantize.outputs[1]
        guard let out = node.outputs.first else { throw fail("it has no output") }
        for cast in consumers[out] ?? [] where cast.opType == "Cast" {
            guard let castOut = cast.outputs.first else { continue }
            for mul in consumers[castOut] ?? [] where mul.opType == "Mul" {
                for other in mul.inputs where other != castOut {
                    guard let scales = producers[other], scales.opType == "Mul",
                          scales.inputs.contains(inputScale) else { continue }
                    for candidate in scales.inputs where candidate != inputScale {
                        if let scale = initializer(candidate) { return (scale, zeroPoint) }
                    }
                }
            }
        }
        throw fail("no weight scale found (expected Cast → Mul by x_scale · W_scale)")
    }

    /// Ops onnxruntime's dynamic quantization adds around an 8-bit MatMul.
    static let quantizerOps: Set<String> = ["MatMulInteger", "DynamicQuantizeLinear", "Cast", "Mul"]

    /// Ops whose nodes consume weights.
    static let weightOps: Set<String> = ["MatMul", "Gemm", "Conv", "LSTM", "Gather", "LayerNormalization"]

    /// Initializer names that are module paths: `layers.0.norm_out.weight`, `joint.enc.bias`. Anonymous names are
    /// `onnx::MatMul_123`; node outputs start with "/".
    static func isModulePath(_ name: String) -> Bool {
        // One pass over the scalars: this runs for every input of every node.
        var dot = false
        var colon = false
        for scalar in name.unicodeScalars {
            switch scalar {
            case "/", " ": return false
            case ":" where colon: return false
            case ".": dot = true
            default: break
            }
            colon = scalar == ":"
        }
        return dot
    }

    /// Where a module path only adds components to a node's scope (`decoder.embed` → `decoder.prediction.embed`):
    /// the scope prefix and the module prefix it stands for (`decoder` → `decoder.prediction`).
    /// Rules whose scope side matches but disagree are not expected; the last one learned wins.
    static func insertion(scope: [String], module: [String]) -> (from: [String], to: [String])? {
        guard scope != module, module.count > scope.count else { return nil }
        var s = scope, m = module
        while let a = s.last, let b = m.last, a == b { s.removeLast(); m.removeLast() }
        if s.isEmpty {
            // Only a prefix was added (`pre_encode.conv.0` → `encoder.pre_encode.conv.0` in a CTC graph, which wraps
            // the encoder): key the rule on the scope's first component.
            guard !m.isEmpty, let first = scope.first else { return nil }
            return ([first], m + [first])
        }
        guard m.count > s.count else { return nil }
        // s must be a subsequence of m: only insertions, no renames.
        var i = 0
        for part in m where i < s.count && part == s[i] { i += 1 }
        return i == s.count ? (s, m) : nil
    }

    /// `/layers.0/self_attn/linear_q/MatMul` → `layers.0.self_attn.linear_q`. A component that repeats its parent's
    /// name (`/joint/joint_net/joint_net.2/MatMul`, the exporter's way to name Sequential children) replaces it.
    static func moduleScope(ofNode name: String) -> String? {
        guard name.utf8.first == UInt8(ascii: "/") else { return nil }
        // Split on the bytes: "/" is ASCII, and grapheme breaking costs more than the rest of the loader's framing.
        var parts = name.utf8.split(separator: UInt8(ascii: "/")).map { String(Substring($0)) }
        guard parts.count >= 2 else { return nil }
        parts.removeLast()
        var scope: [String] = []
        for part in parts {
            if let last = scope.last, part.hasPrefix(last + ".") {
                scope[scope.count - 1] = part
            } else {
                scope.append(part)
            }
        }
        return scope.joined(separator: ".")
    }
}
