import ArgumentParser
import Foundation
import STTFuzz

/// The fuzz driver behind scripts/fuzz: seeded mutants of the committed fixtures through the loader, the WAV reader
/// and the metadata parsers. Inputs run in a worker process, so a trap, a crash, a hang or a runaway allocation is
/// caught by the driver, which regenerates the input from its index and saves it as a regression input.
@main
struct STTFuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stt-fuzz",
        abstract: "Fuzz the ONNX loader, the WAV reader and the model.json / tokens.txt parsers.",
        subcommands: [Run.self, Replay.self, Input.self, Worker.self],
        defaultSubcommand: Run.self)
}

extension FuzzTarget: ExpressibleByArgument {}

/// Writes a line to stdout at once: progress reaches a log file as it happens, not when a buffer fills.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// A failure reported as one line.
struct DriverFailure: Error, CustomStringConvertible {
    let description: String
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run TARGET on seeded mutants of its fixtures; exit 1 when an input crashes, hangs or breaks a promise.")

    @Argument(help: "onnx, wav or metadata.")
    var target: FuzzTarget

    @Option(help: "Inputs to run (the seeds themselves come first).")
    var runs: UInt64 = 20_000

    @Option(help: "Seed of the run: the same seed gives the same inputs.")
    var seed: UInt64 = 1

    @Option(help: "Repository root holding the fixtures.")
    var repository = "."

    @Option(help: "Where findings are saved (a folder per target below it).")
    var regressions = "Tests/FuzzRegressions"

    @Option(help: "Seconds one input may run before it counts as a hang.")
    var timeout: Double = 20

    @Option(help: "Address space of the worker, in MiB: an allocation beyond it is a finding.")
    var memoryMB = 4_096

    @Flag(help: "Go on after a finding (each one is saved) instead of stopping at the first.")
    var keepGoing = false

    @Option(help: "Worker processes run at once, each on its own share of the inputs.")
    var jobs = 1

    /// One worker's share of the inputs and where it stands.
    final class Share {
        let end: UInt64
        let status: StatusFile
        var worker: WorkerProcess?
        /// Inputs finished by earlier workers of this share (before a finding restarted it).
        var finished: UInt64 = 0
        var seen: (UInt64, UInt64) = (0, 0)
        var progressAt = Date()

        init(end: UInt64) throws {
            self.end = end
            status = try StatusFile()
        }

        var executed: UInt64 { finished + (worker == nil ? 0 : status.executed) }
    }

    func run() throws {
        let root = URL(fileURLWithPath: repository)
        let corpus = try FuzzCorpus(target: target, repository: root)
        let started = Date()
        var labels: [String: Int] = [:]
        var findings: [String] = []
        say("fuzzing \(target.rawValue): \(runs) inputs from \(corpus.seeds.count) seeds, seed \(seed), "
              + "\(jobs) worker\(jobs == 1 ? "" : "s")")
        let count = UInt64(max(1, jobs))
        var shares: [Share] = []
        for k in 0..<count {
            let share = try Share(end: runs * (k + 1) / count)
            try start(share, from: runs * k / count)
            shares.append(share)
        }
        var lastReport = started
        var stopping = false
        while shares.contains(where: { $0.worker != nil }) {
            Thread.sleep(forTimeInterval: 0.05)
            for share in shares {
                guard let worker = share.worker else { continue }
                let now = (share.status.current, share.status.executed)
                if now != share.seen {
                    share.seen = now
                    share.progressAt = Date()
                }
                let hung = worker.isRunning && Date().timeIntervalSince(share.progressAt) > timeout
                if hung { worker.kill() }
                guard hung || !worker.isRunning else { continue }
                let result = worker.finish()
                guard hung || share.status.started else {
                    for other in shares { other.worker?.kill() }
                    throw DriverFailure(description: "a worker failed to start (\(result.reason))")
                }
                for (label, count) in share.status.labels { labels[label, default: 0] += count }
                share.finished += share.status.executed
                share.worker = nil
                if !hung && (result.exitedCleanly || stopping) { continue }
                // The input the worker was on when it stopped.
                let index = share.status.current
                let kind = hung ? "hang" : result.reportedFinding ? "finding" : "crash"
                let why = hung ? "no progress for \(Int(timeout)) s" : result.reason
                let input = corpus.input(seed: seed, index: index)
                let saved = try save(input, kind: kind)
                findings.append("\(kind) at input \(index) (\(why)): \(saved)")
                say("FINDING: \(kind) at input \(index) of seed \(seed) (\(why))")
                say("  saved \(saved) (\(input.count) bytes); replay: stt-fuzz replay \(target.rawValue) \(saved)")
                share.finished += 1
                if keepGoing {
                    if index + 1 < share.end { try start(share, from: index + 1) }
                } else {
                    stopping = true
                    for other in shares { other.worker?.kill() }
                }
            }
            if Date().timeIntervalSince(lastReport) >= 10 {
                lastReport = Date()
                let done = shares.reduce(0) { $0 + $1.executed }
                let rate = Double(done) / Date().timeIntervalSince(started)
                say("  \(done)/\(runs) executions, \(Int(rate)) per second")
            }
        }
        let seconds = Date().timeIntervalSince(started)
        let executed = shares.reduce(0) { $0 + $1.executed }
        say(String(format: "%@: %llu executions in %.1f s, %.0f per second, %d finding%@",
                   target.rawValue, executed, seconds, Double(executed) / max(seconds, 1e-9), findings.count,
                   findings.count == 1 ? "" : "s"))
        for (label, count) in labels.sorted(by: { $0.value > $1.value || $0.value == $1.value && $0.key < $1.key }) {
            say("  \(count)\t\(label)")
        }
        for finding in findings { say("  FINDING \(finding)") }
        if !findings.isEmpty { throw ExitCode(1) }
    }

    func start(_ share: Share, from index: UInt64) throws {
        share.status.reset(from: index)
        share.seen = (index, 0)
        share.progressAt = Date()
        guard index < share.end else { return }
        share.worker = try WorkerProcess(target: target, seed: seed, from: index, to: share.end, status: share.status,
                                         repository: repository, memoryMB: memoryMB)
    }

    /// Writes a finding under the regressions folder, named by its content so that the same input is kept once.
    func save(_ input: [UInt8], kind: String) throws -> String {
        let folder = URL(fileURLWithPath: regressions).appendingPathComponent(target.rawValue)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in input { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        let ext = switch target { case .onnx: "onnx"; case .wav: "wav"; case .metadata: "txt" }
        let file = folder.appendingPathComponent("\(kind)-\(String(hash, radix: 16)).\(ext)")
        try Data(input).write(to: file)
        return file.path
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run saved inputs through TARGET in this process and print how each ended; exit 1 on a finding.")

    @Argument(help: "onnx, wav or metadata.")
    var target: FuzzTarget

    @Argument(help: "Input files.")
    var files: [String]

    func run() throws {
        var bad = 0
        for file in files {
            let input = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            let start = Date()
            let outcome = target.execute(input)
            let time = String(format: "%.1f ms", Date().timeIntervalSince(start) * 1_000)
            if case .finding(let why) = outcome {
                bad += 1
                print("\(file): FINDING \(why) (\(time))")
            } else {
                print("\(file): \(outcome.label) (\(time))")
            }
        }
        if bad > 0 { throw ExitCode(1) }
    }
}

struct Input: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write input INDEX of a run to a file (to look at a finding again).")

    @Argument(help: "onnx, wav or metadata.")
    var target: FuzzTarget

    @Option(help: "Seed of the run.")
    var seed: UInt64 = 1

    @Option(help: "Index of the input in the run.")
    var index: UInt64

    @Option(help: "Repository root holding the fixtures.")
    var repository = "."

    @Option(help: "Output file.")
    var output: String

    func run() throws {
        let corpus = try FuzzCorpus(target: target, repository: URL(fileURLWithPath: repository))
        try Data(corpus.input(seed: seed, index: index)).write(to: URL(fileURLWithPath: output))
    }
}

/// Runs inputs [from, to) of a run, recording in the status file which input it is on, how many it finished and
/// how they ended; exits 3 after printing a finding that the harness reported.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Internal: the process that runs the inputs.",
                                                    shouldDisplay: false)

    @Argument var target: FuzzTarget
    @Option var seed: UInt64
    @Option var from: UInt64
    @Option var to: UInt64
    @Option var status: String
    @Option var repository: String
    @Option var memoryMB: Int

    func run() throws {
        var limit = rlimit(rlim_cur: rlim_t(memoryMB) << 20, rlim_max: rlim_t(memoryMB) << 20)
        setrlimit(Int32(RLIMIT_AS.rawValue), &limit)
        let corpus = try FuzzCorpus(target: target, repository: URL(fileURLWithPath: repository))
        let file = try StatusFile(path: status)
        file.started = true
        var index = from
        while index < to {
            file.current = index
            let outcome = target.execute(corpus.input(seed: seed, index: index))
            if case .finding(let why) = outcome {
                FileHandle.standardError.write(Data("stt-fuzz: input \(index): \(why)\n".utf8))
                throw ExitCode(3)
            }
            file.count(outcome.label)
            index += 1
            file.executed = index - from
        }
    }
}
