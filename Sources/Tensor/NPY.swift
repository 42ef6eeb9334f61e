import Foundation

/// NumPy .npy files (format 1.0/2.0, little-endian float32 / int64 / int32 / int16, C order): how reference tensors move
/// between this engine and the Python tools that check it.
package struct NPYArray: Sendable {
    package let shape: [Int]
    package let floats: [Float]
    package let integers: [Int64]

    package enum Failure: Error, CustomStringConvertible {
        case notNPY(String), unsupported(String, String)
        package var description: String {
            switch self {
            case .notNPY(let p): "\(p): not a .npy file"
            case .unsupported(let p, let what): "\(p): unsupported .npy (\(what)); expected little-endian float32 or int64, C order"
            }
        }
    }

    package init(floats: [Float], shape: [Int]) { self.shape = shape; self.floats = floats; integers = [] }
    package init(integers: [Int64], shape: [Int]) { self.shape = shape; self.integers = integers; floats = [] }

    package init(contentsOf url: URL) throws {
        let data = try Data(contentsOf: url)
        let bytes = [UInt8](data)
        guard bytes.count > 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw Failure.notNPY(url.path)
        }
        let (headerStart, headerLength): (Int, Int) = bytes[6] == 1
            ? (10, Int(bytes[8]) | Int(bytes[9]) << 8)
            : (12, (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) })
        guard headerStart + headerLength <= bytes.count else { throw Failure.notNPY(url.path) }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard !header.contains("'fortran_order': True") else { throw Failure.unsupported(url.path, "Fortran order") }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw Failure.unsupported(url.path, "no shape")
        }
        shape = header[open.upperBound..<close].split(separator: ",").compactMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        let count = shape.reduce(1, *)
        let body = headerStart + headerLength
        func check(_ width: Int) throws {
            guard body + count * width <= bytes.count else { throw Failure.unsupported(url.path, "truncated data") }
        }
        if header.contains("'<f4'") {
            try check(4)
            floats = bytes.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: body + $0 * 4, as: Float.self) } }
            integers = []
        } else if header.contains("'<i8'") {
            try check(8)
            integers = bytes.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: body + $0 * 8, as: Int64.self) } }
            floats = []
        } else if header.contains("'<i4'") {
            try check(4)
            integers = bytes.withUnsafeBytes { raw in
                (0..<count).map { Int64(raw.loadUnaligned(fromByteOffset: body + $0 * 4, as: Int32.self)) }
            }
            floats = []
        } else if header.contains("'<i2'") {
            try check(2)
            integers = bytes.withUnsafeBytes { raw in
                (0..<count).map { Int64(raw.loadUnaligned(fromByteOffset: body + $0 * 2, as: Int16.self)) }
            }
            floats = []
        } else {
            throw Failure.unsupported(url.path, header.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    package func write(to url: URL) throws {
        let isFloat = integers.isEmpty
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(isFloat ? "<f4" : "<i8")', 'fortran_order': False, 'shape': (\(dims)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        data.append(contentsOf: [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        if isFloat {
            floats.withUnsafeBytes { data.append(contentsOf: $0) }
        } else {
            integers.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        try data.write(to: url)
    }
}
