import Foundation
import STTFuzz

/// What a worker has done, in a file both processes map: the input it is on, how many it has finished, and how
/// many ended each way. A worker that dies leaves all of it behind, and keeping it costs no call per input.
final class StatusFile {
    let path: String
    private let base: UnsafeMutableRawPointer
    private let owner: Bool
    /// The worker's slot for each label it has written.
    private var slots: [String: Int] = [:]

    static let size = 4_096
    /// Label slots: a count and up to 56 bytes of name each, after a 64-byte header.
    static let slotSize = 64
    static let slotCount = (size - 64) / slotSize

    /// A new status file in the temporary directory, removed when this object goes.
    convenience init() throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("stt-fuzz-\(getpid())-\(UUID().uuidString).status").path
        guard FileManager.default.createFile(atPath: path, contents: Data(count: Self.size)) else {
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
        guard let map = mmap(nil, Self.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), map != MAP_FAILED else {
            throw DriverFailure(description: "cannot map \(path)")
        }
        base = map
    }

    deinit {
        munmap(base, Self.size)
        if owner { unlink(path) }
    }

    private func word(_ k: Int) -> UnsafeMutablePointer<UInt64> {
        (base + 8 * k).assumingMemoryBound(to: UInt64.self)
    }

    var current: UInt64 {
        get { word(0).pointee }
        set { word(0).pointee = newValue }
    }

    var executed: UInt64 {
        get { word(1).pointee }
        set { word(1).pointee = newValue }
    }

    /// Set by the worker once it is ready to run inputs: a worker that ends before that failed to start, which
    /// says nothing about any input.
    var started: Bool {
        get { word(3).pointee != 0 }
        set { word(3).pointee = newValue ? 1 : 0 }
    }

    private var usedSlots: Int {
        get { Int(word(2).pointee) }
        set { word(2).pointee = UInt64(newValue) }
    }

    func reset(from index: UInt64) {
        memset(base, 0, Self.size)
        slots = [:]
        current = index
    }

    /// Counts one input that ended as `label` (the last slot takes every label once the others are used).
    func count(_ label: String) {
        let slot: Int
        if let known = slots[label] {
            slot = known
        } else {
            slot = min(usedSlots, Self.slotCount - 1)
            if slot == usedSlots {
                let name = Array((slot == Self.slotCount - 1 ? "other" : label).utf8.prefix(Self.slotSize - 8))
                let text = base + 64 + slot * Self.slotSize + 8
                memset(text, 0, Self.slotSize - 8)
                name.withUnsafeBytes { raw in
                    if let bytes = raw.baseAddress { text.copyMemory(from: bytes, byteCount: raw.count) }
                }
                usedSlots += 1
            }
            slots[label] = slot
        }
        (base + 64 + slot * Self.slotSize).assumingMemoryBound(to: UInt64.self).pointee += 1
    }

    /// The counts the worker left.
    var labels: [String: Int] {
        var result: [String: Int] = [:]
        for slot in 0..<min(usedSlots, Self.slotCount) {
            let start = base + 64 + slot * Self.slotSize
            let bytes = UnsafeRawBufferPointer(start: start + 8, count: Self.slotSize - 8)
            let name = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            result[name, default: 0] += Int(start.assumingMemoryBound(to: UInt64.self).pointee)
        }
        return result
    }
}

/// A worker: this executable again, running inputs [from, to) and reporting through the status file.
final class WorkerProcess {
    struct Result {
        var exitedCleanly = false
        /// The worker reported a finding itself (a message that is not one line, a broken promise).
        var reportedFinding = false
        var reason = ""
    }

    private let process = Process()

    init(target: FuzzTarget, seed: UInt64, from: UInt64, to: UInt64, status: StatusFile, repository: String,
         memoryMB: Int) throws {
        guard let executable = Bundle.main.executableURL else {
            throw DriverFailure(description: "cannot find this executable to start a worker")
        }
        process.executableURL = executable
        process.arguments = ["worker", target.rawValue, "--seed", "\(seed)", "--from", "\(from)", "--to", "\(to)",
                             "--status", status.path, "--repository", repository, "--memory-mb", "\(memoryMB)"]
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
    }

    func finish() -> Result {
        process.waitUntilExit()
        var result = Result()
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
