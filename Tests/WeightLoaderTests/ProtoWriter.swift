import Foundation

/// Writes protobuf messages field by field, to build small synthetic ONNX files in tests.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func tag(_ field: Int, _ wire: UInt64) { varint(UInt64(field) << 3 | wire) }
    mutating func int(_ field: Int, _ value: Int64) { tag(field, 0); varint(UInt64(bitPattern: value)) }
    mutating func bytes(_ field: Int, _ payload: [UInt8]) { tag(field, 2); varint(UInt64(payload.count)); bytes += payload }
    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        build(&inner)
        bytes(field, inner.bytes)
    }
    mutating func fixed32(_ field: Int, _ value: UInt32) {
        tag(field, 5)
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    static func floats(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }
}

/// A synthetic ONNX file: nodes, initializers and inputs as the NeMo exporter lays them out.
struct SyntheticONNX {
    enum Data { case raw([Float]), packedFloats([Float]), unpackedFloats([Float]), float16(Int) }
    struct Initializer { var name: String; var dims: [Int64]; var data: Data }
    struct Node { var name: String; var op: String; var inputs: [String]; var outputs: [String] }

    var initializers: [Initializer] = []
    var nodes: [Node] = []
    var inputs: [(String, [Int64?])] = [("audio_signal", [nil, 80, nil])]

    func encoded() -> [UInt8] {
        var model = ProtoWriter()
        model.int(1, 8)                              // ir_version
        model.string(2, "synthetic")
        model.message(8) { $0.int(2, 17) }           // opset_import { version: 17 }
        model.message(7) { graph in
            for node in nodes {
                graph.message(1) { n in
                    for i in node.inputs { n.string(1, i) }
                    for o in node.outputs { n.string(2, o) }
                    n.string(3, node.name)
                    n.string(4, node.op)
                }
            }
            for t in initializers {
                graph.message(5) { w in
                    for d in t.dims { w.int(1, d) }
                    switch t.data {
                    case .raw(let v): w.int(2, 1); w.string(8, t.name); w.bytes(9, ProtoWriter.floats(v))
                    case .packedFloats(let v): w.int(2, 1); w.string(8, t.name); w.bytes(4, ProtoWriter.floats(v))
                    case .unpackedFloats(let v):
                        w.int(2, 1); w.string(8, t.name)
                        for x in v { w.fixed32(4, x.bitPattern) }
                    case .float16(let count):
                        w.int(2, 10); w.string(8, t.name); w.bytes(9, [UInt8](repeating: 0, count: 2 * count))
                    }
                }
            }
            for (name, dims) in inputs {
                graph.message(11) { v in
                    v.string(1, name)
                    v.message(2) { type in
                        type.message(1) { tensor in
                            tensor.int(1, 1)
                            tensor.message(2) { shape in
                                for d in dims {
                                    shape.message(1) { dim in
                                        if let d { dim.int(1, d) } else { dim.string(2, "dynamic") }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return model.bytes
    }

    func write(to path: String) throws {
        try Foundation.Data(encoded()).write(to: URL(fileURLWithPath: path))
    }
}
