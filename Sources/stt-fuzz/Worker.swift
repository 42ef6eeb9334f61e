import Foundation
import STTFuzz

/// Two counters shared with the worker through a mapped file: the input it is on, and how many it has finished.
/// A worker that dies leaves them behind; no call per input is needed to keep them.
final class StatusFile {
    let path: String
    private let words: UnsafeMutablePointer<UInt64>
    private let owner: Bool

    /// A new status file in the temporary directory, removed when this object goes.
    convenience init() throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("stt-fuzz-\(getpid())-\(UUID().uuidString).status").path
        guard FileManager.default.createFile(atPath: path, contents: Data(count: 4_096)) else {
            throw DriverFailure(description: "cannot create \(path)")
        }
        try self.init(path: path, owner: true)
    }

    init(path: String, owner: Bool = false) throws {
        self.path = path
        self.owner = owner
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw DriverFailure(description: "cannot open \(path)") }
        defer { close(fd) }
        guard let map = mmap(nil, 4_096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), map != MAP_FAILED else {
            throw DriverFailure(description: "cannot map \(path)")
        }
        words = map.bindMemory(to: UInt64.self, capacity: 2)
    }

    deinit {
        munmap(words, 4_096)
        if owner { unlink(path) }
    }

    var current: UInt64 {
        get { words[0] }
        set { words[0] = newValue }
    }

    var executed: UInt64 {
        get { words[1] }
        set { words[1] = newValue }
    }

    func reset(from index: UInt64) {
        current = index
        executed = 0
    }
}

/// A worker: this executable again, running inputs [from, to) with its stdout piped back for the outcome counts.
final class WorkerProcess {
    struct Result {
        var labels: [String: Int] = [:]
        var exitedCleanly = false
        /// The worker reported a finding itself (a message that is not one line, a broken promise).
        var reportedFinding = false
        var reason = ""
    }

    private let process = Process()
    private let output = Pipe()

    init(target: FuzzTarget, seed: UInt64, from: UInt64, to: UInt64, status: StatusFile, repository: String,
         memoryMB: Int) throws {
        guard let executable = Bundle.main.executableURL else {
            throw DriverFailure(description: "cannot find this executable to start a worker")
        }
        process.executableURL = executable
        process.arguments = ["worker", target.rawValue, "--seed", "\(seed)", "--from", "\(from)", "--to", "\(to)",
                             "--status", status.path, "--repository", repository, "--memory-mb", "\(memoryMB)"]
        process.standardOutput = output
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
    }

    func finish() -> Result {
        // The counts are a few short lines, printed at the very end: the pipe holds them until read.
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var result = Result()
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            if parts.count == 2, let count = Int(parts[0]) { result.labels[String(parts[1]), default: 0] += count }
        }
        switch process.terminationReason {
        case .exit:
            result.exitedCleanly = process.terminationStatus == 0
            result.reportedFinding = process.terminationStatus == 3
            result.reason = "exit status \(process.terminationStatus)"
        case .uncaughtSignal:
            let signal = process.terminationStatus
            let name = [SIGILL: "SIGILL", SIGTRAP: "SIGTRAP", SIGSEGV: "SIGSEGV", SIGBUS: "SIGBUS", SIGABRT: "SIGABRT",
                        SIGFPE: "SIGFPE", SIGKILL: "SIGKILL"][signal] ?? "signal \(signal)"
            result.reason = "killed by \(name)"
        @unknown default:
            result.reason = "ended"
        }
        return result
    }
}
