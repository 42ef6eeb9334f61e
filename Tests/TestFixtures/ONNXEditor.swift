import Foundation

/// A protobuf message kept as its fields, enough to take a committed fixture apart, change one thing, and write it
/// back: how the malformed-model tests make their inputs from real exports.
package struct ProtoMessage {
    package struct Field {
        package var number: Int
        package var wire: UInt8
        /// The value of a varint field, or the bits of a fixed32/fixed64 field.
        package var value: UInt64
        /// The payload of a length-delimited field.
        package var bytes: [UInt8]
    }

    package var fields: [Field] = []

    package init(_ bytes: [UInt8]) throws {
        var i = 0
        func varint() throws -> UInt64 {
            var result: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < bytes.count, shift < 64 else { throw CocoaError(.fileReadCorruptFile) }
                let b = bytes[i]
                i += 1
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
            }
        }
        while i < bytes.count {
            let key = try varint()
            let wire = UInt8(key & 7), number = Int(key >> 3)
            switch wire {
            case 0: fields.append(Field(number: number, wire: 0, value: try varint(), bytes: []))
            case 1, 5:
                let width = wire == 1 ? 8 : 4
                guard i + width <= bytes.count else { throw CocoaError(.fileReadCorruptFile) }
                var v: UInt64 = 0
                for k in 0..<width { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
                i += width
                fields.append(Field(number: number, wire: wire, value: v, bytes: []))
            case 2:
                let length = Int(try varint())
                guard length >= 0, i + length <= bytes.count else { throw CocoaError(.fileReadCorruptFile) }
                fields.append(Field(number: number, wire: 2, value: 0, bytes: Array(bytes[i..<(i + length)])))
                i += length
            default: throw CocoaError(.fileReadCorruptFile)
            }
        }
    }

    package var encoded: [UInt8] {
        var out: [UInt8] = []
        func varint(_ value: UInt64) {
            var v = value
            while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
            out.append(UInt8(v))
        }
        for f in fields {
            varint(UInt64(f.number) << 3 | UInt64(f.wire))
            switch f.wire {
            case 0: varint(f.value)
            case 1, 5: for k in 0..<(f.wire == 1 ? 8 : 4) { out.append(UInt8(truncatingIfNeeded: f.value >> (8 * UInt64(k)))) }
            default: varint(UInt64(f.bytes.count)); out += f.bytes
            }
        }
        return out
    }

    package func strings(_ number: Int) -> [String] {
        fields.filter { $0.number == number && $0.wire == 2 }.map { String(decoding: $0.bytes, as: UTF8.self) }
    }

    package func string(_ number: Int) -> String? { strings(number).first }

    package mutating func setStrings(_ number: Int, _ values: [String]) {
        let at = fields.firstIndex { $0.number == number } ?? fields.count
        fields.removeAll { $0.number == number }
        fields.insert(contentsOf: values.map { Field(number: number, wire: 2, value: 0, bytes: Array($0.utf8)) },
                      at: min(at, fields.count))
    }
}

/// An ONNX model file as messages: graph nodes (field 1 of GraphProto) and initializers (field 5), editable.
package struct ONNXEditor {
    package var model: ProtoMessage
    package var graph: ProtoMessage
    package var nodes: [ProtoMessage]
    package var initializers: [ProtoMessage]

    package init(path: String) throws {
        model = try ProtoMessage([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        guard let g = model.fields.first(where: { $0.number == 7 }) else { throw CocoaError(.fileReadCorruptFile) }
        graph = try ProtoMessage(g.bytes)
        nodes = try graph.fields.filter { $0.number == 1 }.map { try ProtoMessage($0.bytes) }
        initializers = try graph.fields.filter { $0.number == 5 }.map { try ProtoMessage($0.bytes) }
    }

    /// Index of the first node whose name (field 3) satisfies `match`.
    package func node(_ match: (String) -> Bool) -> Int? { nodes.firstIndex { match($0.string(3) ?? "") } }

    /// Index of the initializer named `name` (field 8).
    package func initializer(_ name: String) -> Int? { initializers.firstIndex { $0.string(8) == name } }

    /// Replaces an initializer's dims and float32 values (raw_data).
    package mutating func setTensor(_ index: Int, dims: [Int], values: [Float]) {
        var t = initializers[index]
        t.fields.removeAll { $0.number == 1 || $0.number == 9 || $0.number == 4 }
        t.fields.insert(contentsOf: dims.map { .init(number: 1, wire: 0, value: UInt64(bitPattern: Int64($0)), bytes: []) }, at: 0)
        let raw = values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        t.fields.append(.init(number: 9, wire: 2, value: 0, bytes: raw))
        initializers[index] = t
    }

    /// The float32 values of an initializer stored as raw_data.
    package func values(_ index: Int) -> [Float] {
        guard let raw = initializers[index].fields.first(where: { $0.number == 9 })?.bytes else { return [] }
        return stride(from: 0, to: raw.count - 3, by: 4).map { i in
            Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24)
        }
    }

    package func dims(_ index: Int) -> [Int] {
        initializers[index].fields.filter { $0.number == 1 && $0.wire == 0 }.map { Int(Int64(bitPattern: $0.value)) }
    }

    package func write(to path: String) throws {
        var g = graph
        g.fields.removeAll { $0.number == 1 || $0.number == 5 }
        g.fields.insert(contentsOf: initializers.map { .init(number: 5, wire: 2, value: 0, bytes: $0.encoded) }, at: 0)
        g.fields.insert(contentsOf: nodes.map { .init(number: 1, wire: 2, value: 0, bytes: $0.encoded) }, at: 0)
        var m = model
        if let i = m.fields.firstIndex(where: { $0.number == 7 }) { m.fields[i].bytes = g.encoded }
        try Data(m.encoded).write(to: URL(fileURLWithPath: path))
    }
}
