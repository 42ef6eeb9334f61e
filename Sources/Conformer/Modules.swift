import STTTensor
import STTWeightLoader

/// Reads a module's parameters out of a loaded graph, under a prefix (`encoder.` inside a CTC graph).
struct ParameterReader {
    let graph: ExportedGraph
    let prefix: String

    func tensor(_ name: String) throws(LoaderError) -> Tensor {
        try parameter(name).load()
    }

    func parameter(_ name: String) throws(LoaderError) -> Parameter {
        guard let p = graph.parameter(prefix + name) else {
            throw .notFastConformer(graph.path, "it has no \(prefix + name)")
        }
        return p
    }
}

/// nn.Linear (and 1×1 Conv1d): y = x·W + b over rows of x. W is packed once at load (see `PackedMatrix`) from
/// either layout the export uses: the exporter's [in, out] MatMul weights or PyTorch's [out, in] conv weights.
package struct Linear: Sendable {
    package let weight: PackedMatrix
    package let bias: Tensor?
    package var inputs: Int { weight.rows }
    package var outputs: Int { weight.columns }

    init(_ r: ParameterReader, _ name: String, bias hasBias: Bool = true) throws(LoaderError) {
        let p = try r.parameter(name + ".weight")
        let shape = p.shape
        // Conv1d with kernel 1 is [out, in, 1].
        guard shape.count == 2 || (shape.count == 3 && shape[2] == 1) else {
            throw .notFastConformer(r.graph.path, "\(name).weight has shape \(shape), expected a matrix")
        }
        let torch = p.layout == .torch
        let (rows, columns) = torch ? (shape[1], shape[0]) : (shape[0], shape[1])
        // Packed straight from the file's pages when the values are stored raw (every export seen); otherwise
        // through a copy that lives only until it is packed.
        var packed: PackedMatrix?
        _ = p.withStoredValues { packed = PackedMatrix(bytes: $0, rows: rows, columns: columns, transposed: torch) }
        if packed == nil {
            let values = try p.load()
            packed = PackedMatrix(values.data, rows: rows, columns: columns, transposed: torch)
        }
        guard let packed else { throw .badTensor(r.graph.path, tensor: p.source, "could not be read") }
        weight = packed
        bias = hasBias ? try r.tensor(name + ".bias") : nil
        if let bias, bias.count != weight.columns {
            throw .notFastConformer(r.graph.path, "\(name).bias has \(bias.count) values for \(weight.columns) outputs")
        }
    }

    /// y[rows, outputs] = x[rows, inputs]·W + b (or y += x·W + b when `accumulate`).
    package func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                               accumulate: Bool = false, scratch: UnsafeMutablePointer<Float>? = nil,
                               pool: ComputePool? = nil) {
        if let bias, !accumulate { Kernels.fillRows(y, rows: rows, width: outputs, with: bias.data) }
        Kernels.gemm(m: rows, x: x, ldx: inputs, weight, y: y, ldy: outputs, accumulate: bias != nil || accumulate,
                     scratch: scratch, pool: pool)
        if let bias, accumulate { Kernels.addBias(y, rows: rows, width: outputs, bias: bias.data) }
    }
}

/// nn.LayerNorm over the last axis.
package struct LayerNorm: Sendable {
    package let scale: Tensor
    package let shift: Tensor
    package let epsilon: Float

    init(_ r: ParameterReader, _ name: String, epsilon: Float) throws(LoaderError) {
        scale = try r.tensor(name + ".weight")
        shift = try r.tensor(name + ".bias")
        self.epsilon = epsilon
    }

    package func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        Kernels.layerNorm(x, rows: rows, width: scale.count, scale: scale.data, shift: shift.data,
                          epsilon: epsilon, into: y)
    }
}

/// ConformerFeedForward: Linear(d → ff) · Swish · Linear(ff → d).
package struct ConformerFeedForward: Sendable {
    package let linear1: Linear
    package let linear2: Linear

    init(_ r: ParameterReader, _ name: String) throws(LoaderError) {
        linear1 = try Linear(r, name + ".linear1")
        linear2 = try Linear(r, name + ".linear2")
    }

    /// residual += scale · FF(x).
    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, addingTo residual: UnsafeMutablePointer<Float>,
                        scale: Float, workspace w: EncoderWorkspace) {
        linear1(x, rows: rows, into: w.hidden, workspace: w)
        Kernels.swish(w.hidden, count: rows * linear1.outputs)
        linear2(w.hidden, rows: rows, into: w.projected, workspace: w)
        Kernels.axpy(residual, w.projected, count: rows * linear2.outputs, alpha: scale)
    }
}

extension Linear {
    /// The product with the workspace's row scratch, on the model's threads.
    func callAsFunction(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                        accumulate: Bool = false, workspace w: EncoderWorkspace) {
        self(x, rows: rows, into: y, accumulate: accumulate, scratch: w.products, pool: w.pool)
    }
}
