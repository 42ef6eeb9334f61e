/// The parts of an ONNX model a weight loader needs, decoded from the protobuf wire format without copying
/// tensor payloads (field numbers from onnx.proto).
package enum ONNXDataType: Int32, Sendable, CustomStringConvertible {
    case undefined = 0, float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7, string = 8,
         bool = 9, float16 = 10, double = 11, uint32 = 12, uint64 = 13, complex64 = 14, complex128 = 15,
         bfloat16 = 16

    package var description: String {
        switch self {
        case .undefined: "undefined"
        case .float: "float32"
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .int32: "int32"
        case .int64: "int64"
        case .string: "string"
        case .bool: "bool"
        case .float16: "float16"
        case .double: "float64"
        case .uint32: "uint32"
        case .uint64: "uint64"
        case .complex64: "complex64"
        case .complex128: "complex128"
        case .bfloat16: "bfloat16"
        }
    }
}

/// Where a tensor's values lie in the file.
enum TensorPayload: Sendable {
    /// `raw_data`: little-endian values in one byte range.
    case raw(Range<Int>)
    /// `float_data`: one or more byte ranges of packed float32 (several when the field was split).
    case floats([Range<Int>])
    /// `int64_data` / `int32_data`, decoded (these are small in practice: shapes, indices).
    case integers([Int64])
    /// `data_location = EXTERNAL`: the values live in another file.
    case external
    case empty
}

package struct ONNXTensor: Sendable {
    package var name: String = ""
    package var dims: [Int] = []
    package var rawDataType: Int32 = 0
    var payload: TensorPayload = .empty
    var floatRanges: [Range<Int>] = []
    var integers: [Int64] = []

    package var dataType: ONNXDataType? { ONNXDataType(rawValue: rawDataType) }
    /// The product of the dimensions; `ONNXTensor.tooLarge` when a dimension is negative or the product overflows,
    /// so a hostile shape can never trap or pass a size check.
    package var elementCount: Int { Self.count(dims) }

    /// Beyond any real tensor, and small enough that `count * 8` cannot overflow.
    package static let tooLarge = Int.max / 16

    package static func count(_ dims: [Int]) -> Int {
        var product = 1
        for d in dims {
            guard d >= 0 else { return tooLarge }
            let (p, overflow) = product.multipliedReportingOverflow(by: d)
            if overflow || p > tooLarge { return tooLarge }
            product = p
        }
        return product
    }
}

package struct ONNXAttribute {
    package var name = ""
    package var int: Int64?
    package var float: Float?
    package var ints: [Int64] = []
    package var string: String?
    package var tensor: ONNXTensor?
}

package struct ONNXNode {
    package var name = ""
    package var opType = ""
    package var inputs: [String] = []
    package var outputs: [String] = []
    package var attributes: [ONNXAttribute] = []

    package func attribute(_ name: String) -> ONNXAttribute? { attributes.first { $0.name == name } }
}

/// A graph input or output: element type and dimensions (nil where the dimension is symbolic).
package struct ONNXValueInfo {
    package var name = ""
    package var elementType: Int32 = 0
    package var dims: [Int?] = []
    package var dimNames: [String?] = []
}

package struct ONNXGraph {
    package var nodes: [ONNXNode] = []
    package var initializers: [ONNXTensor] = []
    package var inputs: [ONNXValueInfo] = []
    package var outputs: [ONNXValueInfo] = []

    /// The graph is a well-formed dataflow graph: every value is produced once (by a node, an initializer or a graph
    /// input), every node input names a value that exists, and no node depends on itself. Returns why not, or nil.
    package func structuralProblem() -> String? {
        var producer: [String: Int] = [:]   // value → node index, −1 for inputs and initializers
        for input in inputs where !input.name.isEmpty { producer[input.name] = -1 }
        for tensor in initializers where !tensor.name.isEmpty { producer[tensor.name] = -1 }
        for (i, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty {
                if let other = producer[output], other >= 0 {
                    return "value \(quoted(output)) is produced by two nodes (\(quoted(nodes[other].name)) and \(quoted(node.name)))"
                }
                producer[output] = i
            }
        }
        // Kahn's algorithm over node → node edges: what is left once every ready node is taken lies on a cycle.
        var waiting = [Int](repeating: 0, count: nodes.count)
        var consumers = [[Int]](repeating: [], count: nodes.count)
        for (i, node) in nodes.enumerated() {
            for input in node.inputs where !input.isEmpty {
                guard let p = producer[input] else {
                    return "node \(quoted(node.name)) reads \(quoted(input)), which nothing produces"
                }
                if p >= 0 { waiting[i] += 1; consumers[p].append(i) }
            }
        }
        var ready = waiting.indices.filter { waiting[$0] == 0 }
        var taken = 0
        while let i = ready.popLast() {
            taken += 1
            for c in consumers[i] {
                waiting[c] -= 1
                if waiting[c] == 0 { ready.append(c) }
            }
        }
        if taken < nodes.count, let stuck = waiting.indices.first(where: { waiting[$0] > 0 }) {
            return "node \(quoted(nodes[stuck].name)) depends on its own output (a cycle)"
        }
        return nil
    }
}

package struct ONNXModelHeader {
    package var irVersion: Int64?
    package var producerName = ""
    package var producerVersion = ""
    package var opsets: [(domain: String, version: Int64)] = []
    /// `metadata_props` in file order (sherpa-onnx writes its streaming settings here).
    package var metadata: [(key: String, value: String)] = []
    /// The default-domain opset ("" or "ai.onnx").
    package var opset: Int64? { opsets.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version }
}

/// Decoding of the ONNX messages. Each function reads one message from a reader positioned over its bytes.
enum ONNXDecoder {
    typealias Failure = ProtobufReader.Failure

    /// `passed(offset)` is told after each initializer how far the decoding has got (see `MappedFile.releasePages`).
    static func model(_ r: inout ProtobufReader, passed: (Int) -> Void = { _ in }) throws(Failure)
        -> (ONNXModelHeader, ONNXGraph?) {
        var header = ONNXModelHeader()
        var graph: ONNXGraph?
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch (field, wire) {
            case (1, .varint): header.irVersion = Int64(bitPattern: try r.readVarint())
            case (2, .lengthDelimited): header.producerName = try r.readString()
            case (3, .lengthDelimited): header.producerVersion = try r.readString()
            case (7, .lengthDelimited):
                var g = r.nested(try r.readLengthDelimited())
                graph = try self.graph(&g, passed: passed)
            case (8, .lengthDelimited):
                var o = r.nested(try r.readLengthDelimited())
                var domain = ""
                var version: Int64 = 0
                while !o.isAtEnd {
                    let (f, w) = try o.readTag()
                    switch (f, w) {
                    case (1, .lengthDelimited): domain = try o.readString()
                    case (2, .varint): version = Int64(bitPattern: try o.readVarint())
                    default: try o.skip(w)
                    }
                }
                header.opsets.append((domain, version))
            case (14, .lengthDelimited):
                var m = r.nested(try r.readLengthDelimited())
                var key = "", value = ""
                while !m.isAtEnd {
                    let (f, w) = try m.readTag()
                    switch (f, w) {
                    case (1, .lengthDelimited): key = try m.readString()
                    case (2, .lengthDelimited): value = try m.readString()
                    default: try m.skip(w)
                    }
                }
                header.metadata.append((key, value))
            default: try r.skip(wire)
            }
        }
        return (header, graph)
    }

    static func graph(_ r: inout ProtobufReader, passed: (Int) -> Void = { _ in }) throws(Failure) -> ONNXGraph {
        var graph = ONNXGraph()
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch (field, wire) {
            case (1, .lengthDelimited):
                var n = r.nested(try r.readLengthDelimited())
                graph.nodes.append(try node(&n))
            case (5, .lengthDelimited):
                var t = r.nested(try r.readLengthDelimited())
                graph.initializers.append(try tensor(&t))
                passed(r.offset)
            case (11, .lengthDelimited):
                var v = r.nested(try r.readLengthDelimited())
                graph.inputs.append(try valueInfo(&v))
            case (12, .lengthDelimited):
                var v = r.nested(try r.readLengthDelimited())
                graph.outputs.append(try valueInfo(&v))
            default: try r.skip(wire)
            }
        }
        return graph
    }

    static func node(_ r: inout ProtobufReader) throws(Failure) -> ONNXNode {
        var node = ONNXNode()
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch (field, wire) {
            case (1, .lengthDelimited): node.inputs.append(try r.readString())
            case (2, .lengthDelimited): node.outputs.append(try r.readString())
            case (3, .lengthDelimited): node.name = try r.readString()
            case (4, .lengthDelimited): node.opType = try r.readString()
            case (5, .lengthDelimited):
                var a = r.nested(try r.readLengthDelimited())
                node.attributes.append(try attribute(&a))
            default: try r.skip(wire)
            }
        }
        return node
    }

    static func attribute(_ r: inout ProtobufReader) throws(Failure) -> ONNXAttribute {
        var attribute = ONNXAttribute()
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch (field, wire) {
            case (1, .lengthDelimited): attribute.name = try r.readString()
            case (2, .fixed32): attribute.float = Float(bitPattern: try r.readFixed32())
            case (3, .varint): attribute.int = Int64(bitPattern: try r.readVarint())
            case (4, .lengthDelimited): attribute.string = try r.readString()
            case (5, .lengthDelimited):
                var t = r.nested(try r.readLengthDelimited())
                attribute.tensor = try tensor(&t)
            case (8, .lengthDelimited), (8, .varint): try r.readVarints(wire, into: &attribute.ints)
            default: try r.skip(wire)
            }
        }
        return attribute
    }

    static func tensor(_ r: inout ProtobufReader) throws(Failure) -> ONNXTensor {
        var tensor = ONNXTensor()
        var dims: [Int64] = []
        var raw: Range<Int>?
        var external = false
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch (field, wire) {
            case (1, _): try r.readVarints(wire, into: &dims)
            case (2, .varint): tensor.rawDataType = Int32(truncatingIfNeeded: try r.readVarint())
            case (4, .lengthDelimited): tensor.floatRanges.append(try r.readLengthDelimited())
            case (4, .fixed32):
                let start = r.offset
                _ = try r.readFixed32()
                tensor.floatRanges.append(start..<(start + 4))
            case (5, _), (7, _): try r.readVarints(wire, into: &tensor.integers)
            case (8, .lengthDelimited): tensor.name = try r.readString()
            case (9, .lengthDelimited): raw = try r.readLengthDelimited()
            case (14, .varint): external = try r.readVarint() == 1
            default: try r.skip(wire)
            }
        }
        tensor.dims = dims.map { Int(clamping: $0) }
        if external {
            tensor.payload = .external
        } else if let raw {
            tensor.payload = .raw(raw)
        } else if !tensor.floatRanges.isEmpty {
            tensor.payload = .floats(tensor.floatRanges)
        } else if !tensor.integers.isEmpty {
            tensor.payload = .integers(tensor.integers)
        }
        return tensor
    }

    static func valueInfo(_ r: inout ProtobufReader) throws(Failure) -> ONNXValueInfo {
        var info = ONNXValueInfo()
        while !r.isAtEnd {
            let (field, wire) = try r.readTag()
            switch (field, wire) {
            case (1, .lengthDelimited): info.name = try r.readString()
            case (2, .lengthDelimited):
                // TypeProto → tensor_type (1) → elem_type (1), shape (2) → dim (1) → dim_value (1) | dim_param (2)
                var type = r.nested(try r.readLengthDelimited())
                while !type.isAtEnd {
                    let (tf, tw) = try type.readTag()
                    guard tf == 1, tw == .lengthDelimited else { try type.skip(tw); continue }
                    var tensorType = type.nested(try type.readLengthDelimited())
                    while !tensorType.isAtEnd {
                        let (f, w) = try tensorType.readTag()
                        switch (f, w) {
                        case (1, .varint): info.elementType = Int32(truncatingIfNeeded: try tensorType.readVarint())
                        case (2, .lengthDelimited):
                            var shape = tensorType.nested(try tensorType.readLengthDelimited())
                            while !shape.isAtEnd {
                                let (sf, sw) = try shape.readTag()
                                guard sf == 1, sw == .lengthDelimited else { try shape.skip(sw); continue }
                                var dim = shape.nested(try shape.readLengthDelimited())
                                var value: Int?
                                var param: String?
                                while !dim.isAtEnd {
                                    let (df, dw) = try dim.readTag()
                                    switch (df, dw) {
                                    case (1, .varint): value = Int(clamping: Int64(bitPattern: try dim.readVarint()))
                                    case (2, .lengthDelimited): param = try dim.readString()
                                    default: try dim.skip(dw)
                                    }
                                }
                                info.dims.append(value)
                                info.dimNames.append(param)
                            }
                        default: try tensorType.skip(w)
                        }
                    }
                }
            default: try r.skip(wire)
            }
        }
        return info
    }
}
