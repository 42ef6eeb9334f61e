import Foundation
import Testing
@testable import WeightLoader

/// The committed fixture models under models/ and their PyTorch-side references.
enum Fixtures {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let models = repository.appendingPathComponent("models")

    static func folder(_ name: String) -> String { models.appendingPathComponent(name).path }

    static func file(_ folderName: String, prefix: String) -> String {
        let dir = folder(folderName)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let name = names.sorted().first { $0.hasPrefix(prefix) && $0.hasSuffix(".onnx") } ?? "\(prefix)-missing.onnx"
        return (dir as NSString).appendingPathComponent(name)
    }

    static var largeAvailable: Bool {
        FileManager.default.fileExists(atPath: folder("large/la13"))
    }

    static func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stt-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.path
    }

    /// PyTorch's view of a fixture's parameters (models/<size>/ref/params.json, written from the PyTorch model
    /// before export): for each module path, the shape and a few statistics of the values in PyTorch layout.
    struct ParameterStats: Decodable {
        let shape: [Int]
        let sum: Double
        let sumSquares: Double
        /// (flat index in PyTorch layout, value) pairs.
        let samples: [[Double]]

        enum CodingKeys: String, CodingKey { case shape, sum, sumSquares = "sum_squares", samples }
    }

    static func parameterStats(_ size: String) throws -> [String: ParameterStats] {
        let url = models.appendingPathComponent("\(size)/ref/params.json")
        return try JSONDecoder().decode([String: ParameterStats].self, from: Data(contentsOf: url))
    }
}
