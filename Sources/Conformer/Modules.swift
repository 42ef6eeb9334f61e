import STTTensor
import STTWeightLoader

/// nn.Linear (and 1×1 Conv1d): y = x·W + b over rows of x. W is packed once at load (see `PackedMatrix`) from
/// either layout the export uses: the exporter's [in, out] MatMul weights or PyTorch's [out, in] conv weights.
package struct Linear: Sendable {
    package let weight: PackedMatrix
    package let bias: Tensor?
    package var inputs: Int { weight.rows }
    package var outputs: Int { weight.columns }

    init(_ r: WeightReader, _ name: String, inputs: Int, outputs: Int, bias hasBias: Bool = true) throws(LoaderError) {
        weight = try r.matrix(name + ".weight", inputs: inputs, outputs: outputs)
        bias = hasBias ? try r.tensor(name + ".bias", shape: [outputs]) : nil
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

    init(_ r: WeightReader, _ name: String, width: Int, epsilon: Float) throws(LoaderError) {
        scale = try r.tensor(name + ".weight", shape: [width])
        shift = try r.tensor(name + ".bias", shape: [width])
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

    init(_ r: WeightReader, _ name: String, dModel d: Int, hidden: Int) throws(LoaderError) {
        linear1 = try Linear(r, name + ".linear1", inputs: d, outputs: hidden)
        linear2 = try Linear(r, name + ".linear2", inputs: hidden, outputs: d)
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
