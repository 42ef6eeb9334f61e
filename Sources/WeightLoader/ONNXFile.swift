import STTTensor

/// One decoded ONNX file: header, graph, and the file it came from (kept open to copy payloads on demand).
package final class ONNXFile: @unchecked Sendable {
    package let path: String
    package let header: ONNXModelHeader
    package let graph: ONNXGraph
    let file: MappedFile

    package convenience init(path: String) throws(LoaderError) {
        try self.init(file: MappedFile(path: path))
    }

    /// Decodes a model held in memory (a copy is kept); `name` stands for it in errors.
    package convenience init(bytes: [UInt8], name: String) throws(LoaderError) {
        try self.init(file: MappedFile(bytes: bytes, name: name))
    }

    private init(file: MappedFile) throws(LoaderError) {
        let path = file.path
        self.path = path
        self.file = file
        guard file.size > 0 else { throw .emptyFile(path) }
        var reader = ProtobufReader(bytes: file.bytes, range: 0..<file.size)
        let decoded: (ONNXModelHeader, ONNXGraph?)
        do {
            decoded = try ONNXDecoder.model(&reader, passed: { file.releasePages(before: $0) })
        } catch {
            throw Self.classify(error, path: path, file: file)
        }
        guard decoded.0.irVersion != nil, let graph = decoded.1 else {
            throw .notONNX(path, decoded.0.irVersion == nil ? "no ir_version field" : "no graph")
        }
        guard !graph.nodes.isEmpty else { throw .notONNX(path, "the graph has no nodes") }
        if let problem = graph.structuralProblem() { throw .malformedGraph(path, problem) }
        header = decoded.0
        self.graph = graph
    }

    /// A file cut short fails with a field that runs past the end of the file; anything else is garbage.
    /// Every ONNX writer puts ir_version first (tag byte 0x08): a file that starts otherwise is not ONNX.
    private static func classify(_ error: ProtobufReader.Failure, path: String, file: MappedFile) -> LoaderError {
        guard file.bytes[0] == 0x08 else {
            return .notONNX(path, "it does not start with an ONNX model header")
        }
        switch error {
        case .pastEnd(let offset, let needed, let available):
            return .truncated(path, "a field at byte \(offset) needs \(needed) bytes, only \(available) remain; "
                + "file size \(file.size) bytes")
        case .malformed(let offset, let why):
            return .notONNX(path, "corrupt protobuf: \(why) at byte \(offset)")
        }
    }

    package var opset: Int64? { header.opset }

    /// Drops the pages that decoding the framing mapped in; payloads are copied with pread afterwards.
    func releaseMappedPages() { file.releasePages() }

    /// Checks that a tensor is float32 and holds exactly the bytes its shape needs, without reading its values.
    package func validateFloatTensor(_ tensor: ONNXTensor) throws(LoaderError) {
        guard let type = tensor.dataType, type == .float else {
            let name = tensor.dataType?.description ?? "data type \(tensor.rawDataType)"
            throw .unsupportedTensorType(path, tensor: tensor.name, type: name)
        }
        guard tensor.dims.allSatisfy({ $0 >= 0 }) else {
            throw .badTensor(path, tensor: tensor.name, "negative dimension in \(tensor.dims)")
        }
        let count = tensor.elementCount
        guard count < ONNXTensor.tooLarge else {
            throw .badTensor(path, tensor: tensor.name, "its shape \(tensor.dims) is impossibly large")
        }
        switch tensor.payload {
        case .raw(let range):
            guard range.count == count * 4 else {
                throw .badTensor(path, tensor: tensor.name,
                                 "holds \(range.count) bytes, its shape \(tensor.dims) needs \(count * 4)")
            }
        case .floats(let ranges):
            let bytes = ranges.reduce(0) { $0 + $1.count }
            guard bytes == count * 4 else {
                throw .badTensor(path, tensor: tensor.name,
                                 "holds \(bytes / 4) floats, its shape \(tensor.dims) needs \(count)")
            }
        case .external:
            throw .externalData(path, tensor: tensor.name)
        case .empty:
            guard count == 0 else { throw .badTensor(path, tensor: tensor.name, "has no data") }
        case .integers:
            throw .badTensor(path, tensor: tensor.name, "float tensor stored as integers")
        }
    }

    /// Copies a float32 tensor's values out of the file into aligned storage.
    package func floatTensor(_ tensor: ONNXTensor, shape: [Int]? = nil) throws(LoaderError) -> Tensor {
        try validateFloatTensor(tensor)
        let result = Tensor(zeros: shape ?? tensor.dims)
        switch tensor.payload {
        case .raw(let range):
            try file.copy(offset: range.lowerBound, count: range.count, into: result.data)
        case .floats(let ranges):
            var written = 0
            for range in ranges {
                let src = UnsafeRawBufferPointer(rebasing: file.bytes[range])
                UnsafeMutableRawPointer(result.data + written).copyMemory(from: src.baseAddress!, byteCount: src.count)
                written += range.count / 4
            }
        case .external, .empty, .integers:
            break
        }
        return result
    }

    /// Checks an 8-bit weight (uint8 or int8, stored raw) with its float scale and zero point: one of each for the
    /// whole tensor, or one per column (the last axis).
    package func validateQuantizedTensor(_ tensor: ONNXTensor, scale: ONNXTensor, zeroPoint: ONNXTensor?) throws(LoaderError) {
        guard let type = tensor.dataType, type == .uint8 || type == .int8 else {
            let name = tensor.dataType?.description ?? "data type \(tensor.rawDataType)"
            throw .unsupportedTensorType(path, tensor: tensor.name, type: name)
        }
        guard tensor.dims.count == 2, tensor.dims.allSatisfy({ $0 > 0 }), tensor.elementCount < ONNXTensor.tooLarge else {
            throw .badTensor(path, tensor: tensor.name, "an 8-bit weight of shape \(tensor.dims), expected a matrix")
        }
        guard case .raw(let range) = tensor.payload, range.count == tensor.elementCount else {
            throw .badTensor(path, tensor: tensor.name, "an 8-bit weight must hold \(tensor.elementCount) raw bytes")
        }
        try validateFloatTensor(scale)
        let columns = tensor.dims[1]
        guard scale.elementCount == 1 || scale.elementCount == columns else {
            throw .badTensor(path, tensor: scale.name, "\(scale.elementCount) scales for a weight of shape \(tensor.dims)")
        }
        guard let values = floatValues(scale), values.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw .badTensor(path, tensor: scale.name, "a quantization scale must be finite and positive")
        }
        if let zeroPoint {
            guard zeroPoint.dataType == type, let points = integerValues(zeroPoint), points.count == scale.elementCount else {
                throw .badTensor(path, tensor: zeroPoint.name,
                                 "the zero point must be \(type) with one value per scale (\(scale.elementCount))")
            }
        }
    }

    /// An 8-bit weight expanded to float32: (q − zero point) · scale.
    package func dequantizedTensor(_ tensor: ONNXTensor, scale: ONNXTensor, zeroPoint: ONNXTensor?) throws(LoaderError) -> Tensor {
        try validateQuantizedTensor(tensor, scale: scale, zeroPoint: zeroPoint)
        guard case .raw(let range) = tensor.payload, let scales = floatValues(scale) else {
            throw .badTensor(path, tensor: tensor.name, "an 8-bit weight must be stored raw")
        }
        let points = zeroPoint.flatMap { integerValues($0) }.map { $0.map(Float.init) }
            ?? [Float](repeating: 0, count: scales.count)
        let signed = tensor.dataType == .int8
        let columns = tensor.dims[1], count = tensor.elementCount
        let bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
        defer { bytes.deallocate() }
        try file.copy(offset: range.lowerBound, count: count, into: bytes)
        let result = Tensor(zeros: tensor.dims)
        for i in 0..<count {
            let channel = scales.count == 1 ? 0 : i % columns
            let q = signed ? Float(Int8(bitPattern: bytes[i])) : Float(bytes[i])
            result.data[i] = (q - points[channel]) * scales[channel]
        }
        return result
    }

    /// Runs `body` on a float32 tensor's raw little-endian bytes in the mapped file (any alignment); false when the
    /// values are not stored as raw_data.
    package func withRawFloatBytes(_ tensor: ONNXTensor, _ body: (UnsafeRawPointer) throws -> Void) throws -> Bool {
        guard case .raw(let range) = tensor.payload, tensor.dataType == .float,
              range.count == tensor.elementCount * 4 else { return false }
        try file.withMappedBytes(range, body)
        return true
    }

    /// The values of a small integer tensor (shapes, indices, scalars in Constant nodes).
    package func integerValues(_ tensor: ONNXTensor) -> [Int64]? {
        switch tensor.payload {
        case .integers(let values): return values
        case .raw(let range):
            guard let type = tensor.dataType else { return nil }
            let bytes = UnsafeRawBufferPointer(rebasing: file.bytes[range])
            switch type {
            case .uint8: return bytes.map { Int64($0) }
            case .int8: return bytes.map { Int64(Int8(bitPattern: $0)) }
            case .int64:
                return (0..<(bytes.count / 8)).map { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }
            case .int32:
                return (0..<(bytes.count / 4)).map {
                    Int64(bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))
                }
            default: return nil
            }
        default: return nil
        }
    }

    /// The values of a small float tensor without allocating aligned storage (scalars in Constant nodes).
    package func floatValues(_ tensor: ONNXTensor) -> [Float]? {
        guard tensor.dataType == .float else { return nil }
        switch tensor.payload {
        case .raw(let range):
            let bytes = UnsafeRawBufferPointer(rebasing: file.bytes[range])
            return (0..<(bytes.count / 4)).map { bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        case .floats(let ranges):
            return ranges.flatMap { range in
                let bytes = UnsafeRawBufferPointer(rebasing: file.bytes[range])
                return (0..<(bytes.count / 4)).map { bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
            }
        default: return nil
        }
    }
}
