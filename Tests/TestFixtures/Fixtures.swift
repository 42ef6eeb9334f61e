import Foundation
import STTTensor

/// The committed fixture models under models/ and their references (written by models/make_fixtures.py and
/// models/param_reference.py).
package enum Fixtures {
    package static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    package static let models = repository.appendingPathComponent("models")

    package static func folder(_ name: String) -> String { models.appendingPathComponent(name).path }

    /// The first .onnx in a folder whose name starts with `prefix` ("encoder", "decoder_joint", "ctc").
    package static func file(_ folderName: String, prefix: String) -> String {
        let dir = folder(folderName)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let name = names.sorted().first { $0.hasPrefix(prefix) && $0.hasSuffix(".onnx") } ?? "\(prefix)-missing.onnx"
        return (dir as NSString).appendingPathComponent(name)
    }

    /// The encoder of a folder (or its CTC graph).
    package static func encoderFile(_ folderName: String) -> String {
        let encoder = file(folderName, prefix: "encoder")
        return FileManager.default.fileExists(atPath: encoder) ? encoder : file(folderName, prefix: "ctc")
    }

    package static func ref(_ size: String, _ name: String) throws -> NPYArray {
        try NPYArray(contentsOf: models.appendingPathComponent("\(size)/ref/\(name).npy"))
    }

    /// References of the sherpa-onnx layout fixtures (`models/tiny/ref-sherpa`).
    package static func sherpaRef(_ name: String) throws -> NPYArray {
        try NPYArray(contentsOf: models.appendingPathComponent("tiny/ref-sherpa/\(name).npy"))
    }

    package static func exists(_ size: String, _ name: String) -> Bool {
        FileManager.default.fileExists(atPath: models.appendingPathComponent("\(size)/ref/\(name).npy").path)
    }

    /// How many times slower this test binary runs than a plain build, for bounds on wall time: ThreadSanitizer
    /// instruments every memory access (about ten times slower on numeric code), AddressSanitizer about half of them.
    package static let slowdown: Double = {
        let program = dlopen(nil, RTLD_NOW)
        defer { if let program { dlclose(program) } }
        if dlsym(program, "__tsan_init") != nil { return 10 }
        if dlsym(program, "__asan_init") != nil { return 2 }
        return 1
    }()

    package static var largeAvailable: Bool { FileManager.default.fileExists(atPath: folder("large/la13")) }

    package static func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stt-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.path
    }

    /// PyTorch's view of a fixture's parameters (ref/params.json): for each module path, the shape and statistics of
    /// the values in PyTorch layout.
    package struct ParameterStats: Decodable, Sendable {
        package let shape: [Int]
        package let sum: Double
        package let sumSquares: Double
        /// (flat index in PyTorch layout, value) pairs.
        package let samples: [[Double]]

        enum CodingKeys: String, CodingKey { case shape, sum, sumSquares = "sum_squares", samples }
    }

    package static func parameterStats(_ size: String) throws -> [String: ParameterStats] {
        let url = models.appendingPathComponent("\(size)/ref/params.json")
        return try JSONDecoder().decode([String: ParameterStats].self, from: Data(contentsOf: url))
    }
}

/// Largest |a − b| and the tolerance 1e-4 · max(1, max|b|) it is held to.
package struct Deviation: CustomStringConvertible, Sendable {
    package var worst: Float = 0
    package var scale: Float = 1
    package var relative: Float { worst / scale }
    package var tolerance: Float { 1e-4 * scale }

    package init() {}

    package mutating func compare(_ a: UnsafePointer<Float>, _ b: [Float], offset: Int = 0, count: Int) {
        for i in 0..<count {
            worst = max(worst, abs(a[i] - b[offset + i]))
            scale = max(scale, abs(b[offset + i]))
        }
    }

    package var description: String { String(format: "max |Δ| %.3g (tolerance %.3g)", worst, tolerance) }
}
