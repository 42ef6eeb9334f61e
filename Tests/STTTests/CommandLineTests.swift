import Foundation
import Testing

/// The `stt` executable as a user runs it: exit status and what it prints.
enum STTProcess {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The stt binary built next to this test bundle.
    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("stt")
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = repository
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

@Suite struct CommandLineTests {
    @Test func infoDescribesAFixtureFromItsTensors() throws {
        let r = try STTProcess.run(["info", "models/tiny/la13"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("layers 2, d_model 64, heads 4 × 16"))
        #expect(r.stdout.contains("export att_context [70, 13]"))
        #expect(r.stdout.contains("total                 302,557"))
    }

    @Test func infoOnANoCacheExportFailsWithOneLineAndTheFix() throws {
        let r = try STTProcess.run(["info", "models/tiny/nocache"])
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(r.stderr.contains("without cache support") && r.stderr.contains("cache_support"))
    }

    @Test(arguments: [["info", "/nonexistent/model"], ["info", "Package.swift"], ["info", "Tests"]])
    func badPathsFailWithOneLine(arguments: [String]) throws {
        let r = try STTProcess.run(arguments)
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("stt: error: "))
    }

    @Test(arguments: [["info"], ["--no-such-flag"], ["info", "a", "b"]])
    func usageErrorsExitTwo(arguments: [String]) throws {
        let r = try STTProcess.run(arguments)
        #expect(r.status == 2, "\(r.stderr)")
    }

    @Test func parityStepsRefusesANoCacheExport() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("stt-parity-\(UUID().uuidString)").path
        let r = try STTProcess.run(["parity-steps", "models/tiny/nocache/encoder-tiny.onnx", "--out", out])
        #expect(r.status == 1)
        #expect(r.stderr.contains("without cache support"))
    }
}
