import STTTensor

/// The one way model code reads its weights: by module path (under a prefix, `encoder.` inside a CTC graph), each
/// checked against the shape the caller's architecture needs before a value is copied, so a module never trusts a
/// length it did not ask for. Used by the encoder, the prediction network, the joint and the CTC head.
package struct WeightReader: Sendable {
    package let graph: ExportedGraph
    package let prefix: String
    /// How `matrix(_:inputs:outputs:)` stores the weights it packs.
    package let precision: WeightPrecision

    package init(graph: ExportedGraph, prefix: String = "", precision: WeightPrecision = .fp32) {
        self.graph = graph
        self.prefix = prefix
        self.precision = precision
    }

    package var path: String { graph.path }

    /// The parameter at `name`, whatever its shape (descriptions read sizes off it).
    package func parameter(_ name: String) throws(LoaderError) -> Parameter {
        guard let p = graph.parameter(prefix + name) else {
            throw .notFastConformer(graph.path, "it has no \(quoted(prefix + name))")
        }
        return p
    }

    /// The (inputs, outputs) of a Linear weight, whichever layout it was stored in.
    package func linearSize(_ name: String) throws(LoaderError) -> (input: Int, output: Int) {
        let p = try parameter(name)
        guard p.rank == 2 || (p.rank == 3 && p.shape[2] == 1 && p.layout == .torch) else {
            throw .notFastConformer(graph.path, "\(quoted(prefix + name)) has shape \(p.shape), expected a matrix")
        }
        return p.layout == .inputMajor ? (p.shape[0], p.shape[1]) : (p.shape[1], p.shape[0])
    }

    /// The parameter at `name`, its shape checked.
    package func parameter(_ name: String, _ expected: ExpectedShape) throws(LoaderError) -> Parameter {
        try validateShapes([(name, expected)], in: graph, prefix: prefix)
        return try parameter(name)
    }

    /// The values of a parameter of exactly `shape`.
    package func tensor(_ name: String, shape: [Int]) throws(LoaderError) -> Tensor {
        try parameter(name, .exact(shape)).load()
    }

    /// A Linear (or 1×1 convolution) weight from `inputs` to `outputs`, packed for the few-row product whichever
    /// layout the export stored it in, in the reader's precision; straight from the file's pages when its values are
    /// stored raw.
    package func matrix(_ name: String, inputs: Int, outputs: Int) throws(LoaderError) -> PackedMatrix {
        let p = try parameter(name, .linear(inputs: inputs, outputs: outputs))
        let torch = p.layout == .torch
        var packed: PackedMatrix?
        _ = p.withStoredValues {
            packed = PackedMatrix(bytes: $0, rows: inputs, columns: outputs, transposed: torch, precision: precision)
        }
        if let packed { return packed }
        let values = try p.load()
        return PackedMatrix(values.data, rows: inputs, columns: outputs, transposed: torch, precision: precision)
    }
}
