import Foundation
import NIOConcurrencyHelpers
import STTServer
import STTTestFixtures
import Testing

/// `stt serve` as an operator runs it: a process, its log on stderr, its exit status.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ServeCommandTests {
    @Test func sigtermFinishesTheOpenStreamsAndExitsZero() async throws {
        let model = try Shared.model()
        let part = Array(try Shared.greenApples().prefix(24_000))
        let expected = try model.transcribe(samples: part).text
        let server = try ServeProcess(["--model", Fixtures.folder("small/la13"), "--port", "0"])
        let port = try #require(await server.port())
        let client = try await WebSocketClient.connect(host: "127.0.0.1", port: port, group: Shared.group)
        try await client.send(samples: part)
        #expect(await client.nextResult() != nil)
        server.process.terminate()   // SIGTERM
        let session = await client.collect(untilClosed: true)
        #expect(session.done && session.text == expected)
        #expect(session.close?.code == 1001)
        let status = await server.exitStatus()
        #expect(status == 0, "\(server.stderr)")
        let log = server.stderr
        #expect(log.contains("open (1 of 64 clients)") && log.contains("finishing open streams")
                && log.contains("stream 1 finished") && log.contains("stopped"), "\(log)")
        // One line per connection event, not per message.
        #expect(log.split(separator: "\n").count <= 7, "\(log)")
    }

    @Test func badOptionsAndABusyPortFailWithOneLine() async throws {
        let usage = try ServeProcess(["--model", Fixtures.folder("small/la13"), "--port", "70000"])
        #expect(await usage.exitStatus() == 2)
        #expect(usage.stderr.contains("--port"))

        let missing = try ServeProcess(["--model", "/nonexistent/model"])
        #expect(await missing.exitStatus() == 1)
        #expect(missing.stderr.split(separator: "\n").count == 1, "\(missing.stderr)")

        let holder = try await TestServer()
        let busy = try ServeProcess(["--model", Fixtures.folder("small/la13"), "--port", String(holder.port)])
        #expect(await busy.exitStatus() == 1)
        #expect(busy.stderr.contains("cannot listen on 127.0.0.1:\(holder.port): Address already in use"), "\(busy.stderr)")
        #expect(busy.stderr.split(separator: "\n").count == 1, "\(busy.stderr)")
        await holder.stop()
    }
}

/// `stt serve …` in a child process, its stderr collected as it comes.
final class ServeProcess: Sendable {
    let process: Process
    private let log = NIOLockedValueBox(Data())

    init(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("stt")
        process.arguments = ["serve"] + arguments
        process.currentDirectoryURL = Fixtures.repository
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardError = pipe
        let log = log
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil } else { log.withLockedValue { $0.append(data) } }
        }
        try process.run()
        self.process = process
    }

    var stderr: String { log.withLockedValue { String(decoding: $0, as: UTF8.self) } }

    /// The port from the `listening on ws://host:port` line, within ten seconds.
    func port() async -> Int? {
        for _ in 0..<1_000 {
            if let line = stderr.split(separator: "\n").first(where: { $0.hasPrefix("listening on ws://") }),
               let port = line.split(separator: " ")[2].split(separator: ":").last.flatMap({ Int($0) }) {
                return port
            }
            if !process.isRunning { return nil }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return nil
    }

    /// The exit status, waiting up to 30 s (then the process is killed and the status is nil).
    func exitStatus() async -> Int32? {
        for _ in 0..<3_000 where process.isRunning {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        if process.isRunning {
            process.interrupt()
            kill(process.processIdentifier, SIGKILL)
            return nil
        }
        try? await Task.sleep(nanoseconds: 50_000_000)   // the last of stderr
        return process.terminationStatus
    }
}
