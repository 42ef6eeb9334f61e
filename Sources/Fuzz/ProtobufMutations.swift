/// Field-level mutations of an ONNX file. The seed is indexed once with the parts of onnx.proto the loader reads
/// (which length-delimited fields are messages, strings, packed integers or raw bytes); an edit replaces one
/// field's bytes and rewrites the length of every message around it, so the result is still well-framed protobuf
/// that reaches the checks behind the parser: the graph, the shapes, the architecture.
package struct ProtobufIndex {
    package enum Message: Sendable {
        case model, opset, graph, node, attribute, tensor, valueInfo, type, tensorType, shape, dimension, other
    }

    package enum Kind: Equatable, Sendable {
        case message(Message)
        case string
        /// Bytes the loader takes as they are (raw_data).
        case bytes
        case packedVarints
        case packedFixed32
        case varint
        case fixed32
        case fixed64
    }

    package struct Field: Sendable {
        package var number: Int
        package var wire: Int
        package var kind: Kind
        /// The key's first byte.
        package var start: Int
        /// After the key: the value, or a length-delimited field's length.
        package var value: Int
        /// A length-delimited field's first payload byte (`value` otherwise).
        package var payload: Int
        package var end: Int
        /// The enclosing length-delimited field, −1 at the top.
        package var parent: Int
        /// The message type this field belongs to.
        package var owner: Message
    }

    package private(set) var fields: [Field] = []
    /// Indices of the fields by what they hold, for picking an edit that fits.
    package private(set) var varints: [Int] = []
    package private(set) var strings: [Int] = []
    package private(set) var packed: [Int] = []
    package private(set) var fixed: [Int] = []
    package private(set) var messages: [Int] = []
    /// Tensors: initializers and the values of Constant nodes.
    package private(set) var tensors: [Int] = []
    /// Offsets of the framing: every key and length, the varint values and the strings.
    package private(set) var hot: [Int] = []
    /// Distinct short strings of the seed (op types, names, value names), for swapping one for another.
    package private(set) var dictionary: [[UInt8]] = []

    /// Indexes `bytes` as a ModelProto; stops quietly where the bytes stop being protobuf.
    package init(_ bytes: [UInt8]) {
        var seen = Set<[UInt8]>()
        bytes.withUnsafeBufferPointer { buffer in
            walk(buffer, 0..<buffer.count, message: .model, parent: -1, seen: &seen)
        }
        dictionary = seen.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// What a length-delimited field of `message` holds, from onnx.proto.
    static func kind(of number: Int, in message: Message) -> Kind {
        switch (message, number) {
        case (.model, 7): .message(.graph)
        case (.model, 8): .message(.opset)
        case (.model, 14): .message(.other)
        case (.graph, 1): .message(.node)
        case (.graph, 5): .message(.tensor)
        case (.graph, 11), (.graph, 12), (.graph, 13): .message(.valueInfo)
        case (.node, 5): .message(.attribute)
        case (.attribute, 5): .message(.tensor)
        case (.attribute, 6): .message(.graph)
        case (.attribute, 10): .message(.tensor)
        case (.attribute, 7): .packedFixed32
        case (.attribute, 8): .packedVarints
        case (.tensor, 1), (.tensor, 5), (.tensor, 7): .packedVarints
        case (.tensor, 4): .packedFixed32
        case (.tensor, 9): .bytes
        case (.tensor, 13): .message(.other)
        case (.valueInfo, 2): .message(.type)
        case (.type, 1): .message(.tensorType)
        case (.tensorType, 2): .message(.shape)
        case (.shape, 1): .message(.dimension)
        default: .string
        }
    }

    private mutating func walk(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, message: Message, parent: Int,
                               seen: inout Set<[UInt8]>) {
        var i = range.lowerBound
        while i < range.upperBound {
            let start = i
            guard let key = Self.varint(b, &i, range.upperBound) else { return }
            let number = Int(key >> 3), wire = Int(key & 7)
            guard number > 0 else { return }
            hot.append(start)
            let value = i
            var field = Field(number: number, wire: wire, kind: .varint, start: start, value: value, payload: value,
                              end: value, parent: parent, owner: message)
            switch wire {
            case 0:
                guard Self.varint(b, &i, range.upperBound) != nil else { return }
                hot.append(value)
            case 1:
                guard range.upperBound - i >= 8 else { return }
                i += 8
                field.kind = .fixed64
            case 5:
                guard range.upperBound - i >= 4 else { return }
                i += 4
                field.kind = .fixed32
            case 2:
                guard let length = Self.varint(b, &i, range.upperBound), length <= UInt64(range.upperBound - i) else {
                    return
                }
                hot.append(value)
                field.payload = i
                i += Int(length)
                field.kind = Self.kind(of: number, in: message)
            default:
                return
            }
            field.end = i
            let index = fields.count
            fields.append(field)
            switch field.kind {
            case .varint: varints.append(index)
            case .fixed32, .fixed64, .packedFixed32: fixed.append(index)
            case .packedVarints:
                packed.append(index)
                hot.append(field.payload)
            case .string:
                strings.append(index)
                if field.end - field.payload <= 64 {
                    seen.insert(Array(b[field.payload..<field.end]))
                    hot.append(field.payload)
                }
            case .bytes: break
            case .message(let inner):
                messages.append(index)
                if inner == .tensor { tensors.append(index) }
                walk(b, field.payload..<field.end, message: inner, parent: index, seen: &seen)
            }
        }
    }

    static func varint(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ end: Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while i < end, shift < 64 {
            let byte = b[i]
            i += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        return nil
    }

    static func encode(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }

    static func decodeVarints(_ bytes: some Collection<UInt8>) -> [UInt64] {
        decodeVarints(ArraySlice(bytes))
    }

    static func decodeVarints(_ bytes: ArraySlice<UInt8>) -> [UInt64] {
        var values: [UInt64] = []
        bytes.withUnsafeBufferPointer { b in
            var i = 0
            while i < b.count, let v = varint(b, &i, b.count) { values.append(v) }
        }
        return values
    }
}

/// Edits on a buffer that `ProtobufIndex` describes.
package struct ProtobufMutations {
    package let index: ProtobufIndex

    package init(index: ProtobufIndex) { self.index = index }

    /// Signed 64-bit values that break assumptions: zero, one, powers of two and their neighbours, the extremes,
    /// negatives (ten-byte varints).
    static let interesting: [Int64] = [
        0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 63, 64, 65, 127, 128, 255, 256, 1023, 1024, 1025, 4095, 4096,
        65_535, 65_536, 1 << 20, Int64(Int32.max), Int64(Int32.max) + 1, Int64(UInt32.max), 1 << 32, 1 << 40,
        1 << 53, 1 << 62, Int64.max, Int64.max - 1, -1, -2, -4, -1024, Int64(Int32.min), Int64.min,
    ]

    static let interestingFloats: [Float] = [0, -0.0, 1, -1, .nan, .infinity, -.infinity, .leastNonzeroMagnitude,
                                             .greatestFiniteMagnitude, 1e-5, 1e-12, 0.5, 2, 1e30]

    /// One field-level edit of `data` (which must be the bytes the index was made from). False when the index has
    /// nothing the chosen edit applies to; `data` is then unchanged.
    @discardableResult
    package func mutate(_ data: inout [UInt8], _ rng: inout FuzzRandom) -> Bool {
        let fields = index.fields
        guard !fields.isEmpty else { return false }
        switch rng.below(16) {
        case 15:
            return cloneTensor(&data, &rng)
        case 11, 12:
            return reshape(&data, &rng)
        case 13, 14:
            // Another architecture: one size (d_model, heads, the conv kernel, the vocabulary…) changed everywhere,
            // sometimes a second one with it (d_model with the head width, so that heads × width still fits).
            var rewritten = data
            var changed = false
            for round in 0..<3 where round == 0 || rng.oneIn(2) {
                guard let f = rng.pick(index.tensors), let from = rng.pick(tensorDims(data, f)), from > 1 else { continue }
                let sizes: [Int64] = [from + 1, from - 1, 1, 2, 3, 5, 7, 8, 12, 17, 24, 31, 33, 48, 96, 100, 128, 130]
                let to = rng.oneIn(2) ? (rng.oneIn(2) ? from / 2 : from * 2) : rng.pick(sizes) ?? 1
                // Scaling every multiple as well keeps sizes that derive from one another in step (d_model and the
                // feed-forward width, the LSTM's 4·H gates).
                let change = Dimension(from: from, to: to, multiples: rng.oneIn(2))
                guard to != from, to >= 0, let next = Self.substitute(change, in: rewritten) else { continue }
                rewritten = next
                changed = true
            }
            guard changed else { return false }
            data = rewritten
        case 0, 1:
            // A varint: ir_version, data_type, elem_type, dim_value, attribute ints, data_location, opset version.
            guard let f = rng.pick(index.varints) else { return false }
            let old = Int64(bitPattern: readVarint(data, fields[f].value))
            let new = newInteger(old, &rng)
            replace(&data, field: f, range: fields[f].value..<fields[f].end,
                    with: ProtobufIndex.encode(UInt64(bitPattern: new)))
        case 2, 3:
            // One element of a packed list: dims, int64_data, attribute ints.
            guard let f = rng.pick(index.packed) else { return false }
            var values = ProtobufIndex.decodeVarints(data[fields[f].payload..<fields[f].end])
            switch rng.below(4) {
            case 0 where !values.isEmpty: values.remove(at: rng.below(values.count))
            case 1: values.insert(UInt64(bitPattern: newInteger(1, &rng)), at: rng.below(values.count + 1))
            default:
                guard !values.isEmpty else { return false }
                let k = rng.below(values.count)
                values[k] = UInt64(bitPattern: newInteger(Int64(bitPattern: values[k]), &rng))
            }
            let payload = values.flatMap(ProtobufIndex.encode)
            replace(&data, field: f, range: fields[f].value..<fields[f].end,
                    with: ProtobufIndex.encode(UInt64(payload.count)) + payload)
        case 4, 5:
            // A string: op_type, a node or value name, an input reference, a domain.
            guard let f = rng.pick(index.strings) else { return false }
            let old = Array(data[fields[f].payload..<fields[f].end])
            let new = newString(old, &rng)
            replace(&data, field: f, range: fields[f].value..<fields[f].end,
                    with: ProtobufIndex.encode(UInt64(new.count)) + new)
        case 6:
            // Drop a field: a node, an initializer, an input, a dimension, an attribute.
            let f = rng.below(fields.count)
            replace(&data, field: f, range: fields[f].start..<fields[f].end, with: [])
        case 7:
            // Duplicate a field in place.
            let f = rng.below(fields.count)
            let copy = Array(data[fields[f].start..<fields[f].end])
            replace(&data, field: f, range: fields[f].end..<fields[f].end, with: copy)
        case 8:
            // Put another message of the same type in a message's place (a node for a node, a tensor for a tensor).
            guard let f = rng.pick(index.messages), let other = rng.pick(index.messages),
                  fields[f].kind == fields[other].kind, f != other else { return false }
            let copy = Array(data[fields[other].start..<fields[other].end])
            replace(&data, field: f, range: fields[f].start..<fields[f].end, with: copy)
        case 9:
            // A float: LayerNorm epsilon and other attribute floats; also a fixed field's bits.
            guard let f = rng.pick(index.fixed) else { return false }
            let field = fields[f]
            guard field.end - field.payload >= 4 else { return false }
            let at = field.payload + 4 * rng.below((field.end - field.payload) / 4)
            let bits = (rng.pick(Self.interestingFloats) ?? 0).bitPattern
            for k in 0..<4 { data[at + k] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k))) }
        default:
            // A key: another field number or wire type, or a length that lies.
            let f = rng.below(fields.count)
            let field = fields[f]
            if rng.oneIn(2) && field.wire == 2 {
                let length = UInt64(field.end - field.payload)
                let lie: UInt64 = rng.pick([0, 1, length &- 1, length + 1, length * 2, UInt64(Int32.max), UInt64.max]) ?? 0
                replace(&data, field: f, range: field.value..<field.payload, with: ProtobufIndex.encode(lie))
            } else {
                let number = rng.oneIn(2) ? UInt64(field.number) : UInt64(rng.pick([1, 2, 3, 4, 5, 7, 8, 9, 11, 14, 15, 1 << 28]) ?? 1)
                let wire = rng.oneIn(2) ? UInt64(field.wire) : UInt64(rng.below(8))
                replace(&data, field: f, range: field.start..<field.value, with: ProtobufIndex.encode(number << 3 | wire))
            }
        }
        return true
    }

    /// A tensor given another shape with values to match: the byte count stays right, so the edit gets past the
    /// reader to the shape checks and the modules (a changed dims alone stops at "holds N bytes, needs M").
    func reshape(_ data: inout [UInt8], _ rng: inout FuzzRandom) -> Bool {
        let fields = index.fields
        guard let f = rng.pick(index.tensors) else { return false }
        let tensor = fields[f]
        var dims: [Int64] = []
        var raw: [UInt8]?
        var others: [UInt8] = []
        var j = f + 1
        while j < fields.count && fields[j].start < tensor.end {
            let child = fields[j]
            if child.parent == f {
                let bytes = data[child.start..<child.end]
                switch child.number {
                case 1 where child.wire == 2:
                    dims += ProtobufIndex.decodeVarints(data[child.payload..<child.end]).map { Int64(bitPattern: $0) }
                case 1 where child.wire == 0:
                    dims.append(Int64(bitPattern: readVarint(data, child.value)))
                case 9 where child.wire == 2: raw = Array(data[child.payload..<child.end])
                default: others += bytes
                }
            }
            j += 1
        }
        guard let raw, !dims.isEmpty else { return false }
        let stored = dims.reduce(Int64(1)) { $0.multipliedReportingOverflow(by: max(0, $1)).partialValue }
        // Bytes per element as stored (4 for float, 8 for int64); 4 when the old shape says nothing.
        let width = stored > 0 && raw.count % Int(clamping: stored) == 0 ? max(1, raw.count / Int(clamping: stored)) : 4
        let k = rng.below(dims.count)
        switch rng.below(6) {
        case 0: dims[k] += 1
        case 1: dims[k] = max(0, dims[k] - 1)
        case 2: dims[k] = rng.pick([0, 1, 2, 3, 4, 8, 9, 16, 64, 65, 128, 999, 1001]) ?? 1
        case 3: dims.remove(at: k)
        case 4: dims.insert(rng.pick([1, 2]) ?? 1, at: k)
        default: dims.swapAt(k, rng.below(dims.count))
        }
        var count: Int64 = 1
        for d in dims {
            let (product, overflow) = count.multipliedReportingOverflow(by: max(0, d))
            guard !overflow, product <= 1 << 20 else { return false }
            count = product
        }
        let byteCount = Int(count) * width
        // The old values, cut or repeated: real weights, not zeros, so the modules compute with numbers they know.
        var values = Array(raw.prefix(byteCount))
        while values.count < byteCount { values += raw.isEmpty ? [0] : raw.prefix(byteCount - values.count) }
        let packed = dims.flatMap { ProtobufIndex.encode(UInt64(bitPattern: $0)) }
        var body = others
        body += [0x0A] + ProtobufIndex.encode(UInt64(packed.count)) + packed
        body += [0x4A] + ProtobufIndex.encode(UInt64(values.count)) + values
        replace(&data, field: f, range: tensor.value..<tensor.end, with: ProtobufIndex.encode(UInt64(body.count)) + body)
        return true
    }

    /// A tensor copied under another name beside the original: a weight no node reads, or one whose name claims a
    /// layer, a module or an index that the graph does not have.
    func cloneTensor(_ data: inout [UInt8], _ rng: inout FuzzRandom) -> Bool {
        let fields = index.fields
        guard let f = rng.pick(index.tensors) else { return false }
        let tensor = fields[f]
        var body = Array(data[tensor.payload..<tensor.end])
        var j = f + 1
        while j < fields.count && fields[j].start < tensor.end {
            let child = fields[j]
            if child.parent == f && child.number == 8 && child.wire == 2 {
                let name = newString(Array(data[child.payload..<child.end]), &rng)
                body.replaceSubrange((child.start - tensor.payload)..<(child.end - tensor.payload),
                                     with: [0x42] + ProtobufIndex.encode(UInt64(name.count)) + name)
                break
            }
            j += 1
        }
        let clone = Array(data[tensor.start..<tensor.value]) + ProtobufIndex.encode(UInt64(body.count)) + body
        replace(&data, field: f, range: tensor.end..<tensor.end, with: clone)
        return true
    }

    /// The dims of tensor field `f`.
    func tensorDims(_ data: [UInt8], _ f: Int) -> [Int64] {
        let fields = index.fields
        var dims: [Int64] = []
        var j = f + 1
        while j < fields.count && fields[j].start < fields[f].end {
            let child = fields[j]
            if child.parent == f && child.number == 1 {
                if child.wire == 2 {
                    dims += ProtobufIndex.decodeVarints(data[child.payload..<child.end]).map { Int64(bitPattern: $0) }
                } else if child.wire == 0 {
                    dims.append(Int64(bitPattern: readVarint(data, child.value)))
                }
            }
            j += 1
        }
        return dims
    }

    /// A change of one size across a model.
    package struct Dimension: Sendable {
        package var from: Int64
        package var to: Int64
        /// Whether multiples of `from` are scaled too (k·from → k·to).
        package var multiples: Bool

        package init(from: Int64, to: Int64, multiples: Bool) {
            self.from = from
            self.to = to
            self.multiples = multiples
        }

        func apply(_ d: Int64) -> Int64 {
            if d == from { return to }
            guard multiples, from > 1, d > from, d % from == 0 else { return d }
            return (d / from).multipliedReportingOverflow(by: to).partialValue
        }
    }

    /// `data` rewritten with every tensor dimension and every declared input/output dimension changed by `change`,
    /// each tensor's values cut or repeated to fit; nil when the result would be larger than 16 MiB (ten times the
    /// tiny seed: larger models only make executions slower).
    package static func substitute(_ change: Dimension, in data: [UInt8]) -> [UInt8]? {
        var budget = 16 << 20
        return data.withUnsafeBufferPointer { b in
            rewrite(b, 0..<b.count, .model, change, &budget)
        }
    }

    private static func rewrite(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ message: ProtobufIndex.Message,
                                _ change: Dimension, _ budget: inout Int) -> [UInt8]? {
        if message == .tensor { return rewriteTensor(b, range, change, &budget) }
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var i = range.lowerBound
        while i < range.upperBound {
            let start = i
            guard let key = ProtobufIndex.varint(b, &i, range.upperBound) else { break }
            let number = Int(key >> 3), wire = key & 7
            if wire == 0, let value = ProtobufIndex.varint(b, &i, range.upperBound) {
                let d = Int64(bitPattern: value)
                if message == .dimension && number == 1 && change.apply(d) != d {
                    out += ProtobufIndex.encode(key) + ProtobufIndex.encode(UInt64(bitPattern: change.apply(d)))
                } else {
                    out += b[start..<i]
                }
                continue
            }
            guard wire == 2, let length = ProtobufIndex.varint(b, &i, range.upperBound),
                  length <= UInt64(range.upperBound - i) else {
                i = start
                break
            }
            let payload = i..<(i + Int(length))
            i = payload.upperBound
            if case .message(let inner) = ProtobufIndex.kind(of: number, in: message) {
                guard let body = rewrite(b, payload, inner, change, &budget) else { return nil }
                out += ProtobufIndex.encode(key) + ProtobufIndex.encode(UInt64(body.count)) + body
            } else {
                out += b[start..<i]
            }
        }
        out += b[i..<range.upperBound]
        budget -= out.count
        return budget >= 0 ? out : nil
    }

    private static func rewriteTensor(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ change: Dimension,
                                      _ budget: inout Int) -> [UInt8]? {
        var dims: [Int64] = []
        var raw: Range<Int>?
        var others: [UInt8] = []
        var i = range.lowerBound
        while i < range.upperBound {
            let start = i
            guard let key = ProtobufIndex.varint(b, &i, range.upperBound) else { return Array(b[range]) }
            let number = key >> 3
            switch key & 7 {
            case 0:
                guard let value = ProtobufIndex.varint(b, &i, range.upperBound) else { return Array(b[range]) }
                if number == 1 { dims.append(Int64(bitPattern: value)) } else { others += b[start..<i] }
            case 2:
                guard let length = ProtobufIndex.varint(b, &i, range.upperBound),
                      length <= UInt64(range.upperBound - i) else { return Array(b[range]) }
                let payload = i..<(i + Int(length))
                i = payload.upperBound
                if number == 1 {
                    dims += ProtobufIndex.decodeVarints(b[payload]).map { Int64(bitPattern: $0) }
                } else if number == 9 {
                    raw = payload
                } else {
                    others += b[start..<i]
                }
            case 1 where range.upperBound - i >= 8: i += 8; others += b[start..<i]
            case 5 where range.upperBound - i >= 4: i += 4; others += b[start..<i]
            default: return Array(b[range])
            }
        }
        let newDims = dims.map(change.apply)
        guard let raw, newDims != dims else { return Array(b[range]) }
        func count(_ dims: [Int64]) -> Int? {
            var n = 1
            for d in dims {
                guard d >= 0 else { return nil }
                let (p, overflow) = n.multipliedReportingOverflow(by: Int(d))
                guard !overflow, p <= 1 << 24 else { return nil }
                n = p
            }
            return n
        }
        guard let old = count(dims), let new = count(newDims), old > 0, raw.count % old == 0 else {
            return Array(b[range])
        }
        let byteCount = new * (raw.count / old)
        budget -= byteCount
        guard budget >= 0 else { return nil }
        var values = Array(b[raw.lowerBound..<(raw.lowerBound + min(raw.count, byteCount))])
        while values.count < byteCount { values += b[raw.lowerBound..<(raw.lowerBound + min(raw.count, byteCount - values.count))] }
        let packed = newDims.flatMap { ProtobufIndex.encode(UInt64(bitPattern: $0)) }
        return others + [0x0A] + ProtobufIndex.encode(UInt64(packed.count)) + packed
            + [0x4A] + ProtobufIndex.encode(UInt64(values.count)) + values
    }

    func newInteger(_ old: Int64, _ rng: inout FuzzRandom) -> Int64 {
        switch rng.below(6) {
        case 0: old &+ 1
        case 1: old &- 1
        case 2: old &* 2
        case 3: old / 2
        default: rng.pick(Self.interesting) ?? 0
        }
    }

    func newString(_ old: [UInt8], _ rng: inout FuzzRandom) -> [UInt8] {
        switch rng.below(9) {
        case 0: return []
        case 1: return Array(old.prefix(rng.below(old.count + 1)))
        case 2: return old + Array("x".utf8)
        case 3: return [UInt8]("/".utf8) + old
        case 4:
            // Control bytes, a line feed, invalid UTF-8, a right-to-left override: names end up in messages.
            let nasty: [[UInt8]] = [[0x0A], [0x00], [0x1B, 0x5B, 0x32, 0x4A], [0xFF, 0xFE], [0xE2, 0x80, 0xAE], [0x0D], [0xC3]]
            var s = old
            s.insert(contentsOf: rng.pick(nasty) ?? [0], at: rng.below(s.count + 1))
            return s
        case 5: return [UInt8](repeating: UInt8(ascii: "a"), count: rng.pick([256, 4096, 70_000]) ?? 256)
        case 6:
            // Another module path: layers.N with another N.
            let text = String(decoding: old, as: UTF8.self)
            let numbers = ["0", "1", "2", "99", "-1", "007", "65535", "2147483647", "9223372036854775806",
                           "9223372036854775807", "18446744073709551616"]
            let changed = text.replacingFirstNumber(with: rng.pick(numbers) ?? "0")
            return Array(changed.utf8)
        default: return rng.pick(index.dictionary) ?? old
        }
    }

    func readVarint(_ data: [UInt8], _ at: Int) -> UInt64 {
        data.withUnsafeBufferPointer { b in
            var i = at
            return ProtobufIndex.varint(b, &i, b.count) ?? 0
        }
    }

    /// Replaces `range` (inside field `f`, or `f` itself) and rewrites the length of every enclosing message,
    /// innermost first: each rewrite lies before the previous one, so the offsets of the index stay valid.
    func replace(_ data: inout [UInt8], field f: Int, range: Range<Int>, with bytes: [UInt8]) {
        var delta = bytes.count - range.count
        data.replaceSubrange(range, with: bytes)
        var p = index.fields[f].parent
        while p >= 0, delta != 0 {
            let parent = index.fields[p]
            let oldLength = parent.end - parent.payload
            let newLength = max(0, oldLength + delta)
            let encoded = ProtobufIndex.encode(UInt64(newLength))
            delta += encoded.count - (parent.payload - parent.value)
            data.replaceSubrange(parent.value..<parent.payload, with: encoded)
            p = parent.parent
        }
    }
}

extension String {
    /// The string with its first run of digits replaced.
    func replacingFirstNumber(with replacement: String) -> String {
        guard let start = firstIndex(where: \.isNumber) else { return self + "." + replacement }
        let end = self[start...].firstIndex { !$0.isNumber } ?? endIndex
        return String(self[..<start]) + replacement + String(self[end...])
    }
}
