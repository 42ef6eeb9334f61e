import Foundation
import Tensor

/// Reads .npy files (little-endian float32 or int64, C order) written by the fixture script.
struct NPY {
    let shape: [Int]
    let floats: [Float]
    let integers: [Int64]

    init(_ url: URL) throws {
        let data = try Data(contentsOf: url)
        guard data.count > 10, data.prefix(6) == Data([0x93] + Array("NUMPY".utf8)) else {
            throw NPYError.notNPY(url.path)
        }
        let major = data[data.startIndex + 6]
        let headerLength: Int
        let headerStart: Int
        if major == 1 {
            headerLength = Int(data[data.startIndex + 8]) | Int(data[data.startIndex + 9]) << 8
            headerStart = 10
        } else {
            headerLength = (0..<4).reduce(0) { $0 | Int(data[data.startIndex + 8 + $1]) << (8 * $1) }
            headerStart = 12
        }
        let header = String(decoding: data[(data.startIndex + headerStart)..<(data.startIndex + headerStart + headerLength)],
                            as: UTF8.self)
        guard !header.contains("'fortran_order': True") else { throw NPYError.unsupported(url.path, "Fortran order") }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw NPYError.unsupported(url.path, "no shape")
        }
        shape = header[open.upperBound..<close].split(separator: ",").compactMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        let count = shape.reduce(1, *)
        let body = data.subdata(in: (data.startIndex + headerStart + headerLength)..<data.endIndex)
        if header.contains("'<f4'") {
            floats = body.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
            integers = []
        } else if header.contains("'<i8'") {
            integers = body.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) } }
            floats = []
        } else if header.contains("'<i4'") {
            integers = body.withUnsafeBytes { raw in (0..<count).map { Int64(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) } }
            floats = []
        } else {
            throw NPYError.unsupported(url.path, header)
        }
    }

    enum NPYError: Error { case notNPY(String), unsupported(String, String) }
}

/// The committed fixtures under models/.
enum Fixtures {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models")

    static func folder(_ name: String) -> String { models.appendingPathComponent(name).path }

    static func encoderFile(_ folderName: String) -> String {
        let dir = folder(folderName)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let name = names.sorted().first { ($0.hasPrefix("encoder") || $0.hasPrefix("ctc")) && $0.hasSuffix(".onnx") } ?? "missing.onnx"
        return (dir as NSString).appendingPathComponent(name)
    }

    static func ref(_ size: String, _ name: String) throws -> NPY {
        try NPY(models.appendingPathComponent("\(size)/ref/\(name).npy"))
    }

    static func exists(_ size: String, _ name: String) -> Bool {
        FileManager.default.fileExists(atPath: models.appendingPathComponent("\(size)/ref/\(name).npy").path)
    }
}

/// Largest |a − b| and the tolerance 1e-4 · max(1, max|b|) it is held to.
struct Deviation: CustomStringConvertible {
    var worst: Float = 0
    var scale: Float = 1
    var relative: Float { worst / scale }
    var tolerance: Float { 1e-4 * scale }

    mutating func compare(_ a: UnsafePointer<Float>, _ b: [Float], offset: Int = 0, count: Int) {
        for i in 0..<count {
            worst = max(worst, abs(a[i] - b[offset + i]))
            scale = max(scale, abs(b[offset + i]))
        }
    }

    var description: String { String(format: "max |Δ| %.3g (tolerance %.3g)", worst, tolerance) }
}
