import Foundation
import Tensor

typealias NPY = NPYArray

extension NPYArray {
    init(_ url: URL) throws { try self.init(contentsOf: url) }
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
