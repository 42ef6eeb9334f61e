/// A bounds-checked reader of the protobuf wire format over borrowed bytes (the memory-mapped file).
/// It never copies payloads: length-delimited fields come back as byte ranges into the same buffer,
/// so skipping a 400 MB tensor costs nothing and touches none of its pages.
struct ProtobufReader {
    enum WireType: UInt8 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    enum Failure: Error, Equatable {
        /// A field claims bytes past the end of its enclosing message.
        case pastEnd(offset: Int, needed: Int, available: Int)
        /// Bytes that cannot be protobuf (bad wire type, field 0, overlong varint).
        case malformed(offset: Int, String)
    }

    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int
    let end: Int

    init(bytes: UnsafeRawBufferPointer, range: Range<Int>) {
        self.bytes = bytes
        self.offset = range.lowerBound
        self.end = range.upperBound
    }

    var isAtEnd: Bool { offset >= end }

    mutating func readVarint() throws(Failure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = offset
        while true {
            guard offset < end else { throw .pastEnd(offset: start, needed: 1, available: 0) }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw .malformed(offset: start, "varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw .malformed(offset: start, "varint longer than 10 bytes") }
        }
    }

    /// The next field's number and wire type.
    mutating func readTag() throws(Failure) -> (field: Int, wire: WireType) {
        let start = offset
        let key = try readVarint()
        guard let wire = WireType(rawValue: UInt8(key & 7)) else {
            throw .malformed(offset: start, "wire type \(key & 7) does not exist")
        }
        let field = key >> 3
        guard field > 0, field < (1 << 29) else { throw .malformed(offset: start, "field number \(field)") }
        return (Int(field), wire)
    }

    /// The byte range of a length-delimited payload; the reader moves past it.
    mutating func readLengthDelimited() throws(Failure) -> Range<Int> {
        let start = offset
        let length = try readVarint()
        guard length <= UInt64(end - offset) else {
            throw .pastEnd(offset: start, needed: Int(clamping: length), available: end - offset)
        }
        let range = offset..<(offset + Int(length))
        offset = range.upperBound
        return range
    }

    mutating func readFixed32() throws(Failure) -> UInt32 {
        guard end - offset >= 4 else { throw .pastEnd(offset: offset, needed: 4, available: end - offset) }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        offset += 4
        return UInt32(littleEndian: value)
    }

    mutating func readFixed64() throws(Failure) -> UInt64 {
        guard end - offset >= 8 else { throw .pastEnd(offset: offset, needed: 8, available: end - offset) }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        offset += 8
        return UInt64(littleEndian: value)
    }

    mutating func readString() throws(Failure) -> String {
        let range = try readLengthDelimited()
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    mutating func skip(_ wire: WireType) throws(Failure) {
        switch wire {
        case .varint: _ = try readVarint()
        case .fixed64: _ = try readFixed64()
        case .fixed32: _ = try readFixed32()
        case .lengthDelimited: _ = try readLengthDelimited()
        case .startGroup, .endGroup:
            throw .malformed(offset: offset, "protobuf groups are not used by ONNX")
        }
    }

    /// A reader over a nested message's bytes.
    func nested(_ range: Range<Int>) -> ProtobufReader {
        ProtobufReader(bytes: bytes, range: range)
    }

    /// Reads a repeated varint field in either encoding (packed, or one element per tag).
    mutating func readVarints(_ wire: WireType, into values: inout [Int64]) throws(Failure) {
        if wire == .lengthDelimited {
            var inner = nested(try readLengthDelimited())
            while !inner.isAtEnd { values.append(Int64(bitPattern: try inner.readVarint())) }
        } else if wire == .varint {
            values.append(Int64(bitPattern: try readVarint()))
        } else {
            throw .malformed(offset: offset, "repeated integer field with wire type \(wire)")
        }
    }
}
