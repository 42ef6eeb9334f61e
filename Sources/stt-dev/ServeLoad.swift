import ArgumentParser
import Dispatch
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import STTKit
import STTServer

/// N clients streaming paced audio to a running `stt serve`, in real time, for `scripts/bench serve`.
///
/// Each client sends a recording (repeated to `--seconds`, with half a second of silence between repetitions) in
/// 100 ms messages on a fixed schedule, then `Done`; clients start spread over one second. Latency is measured per
/// token: from the moment the message holding the first sample of the token's encoder frame was sent to the arrival
/// of the first result that holds the token. The final lag is from `Done` to `Done!`. Prints one JSON object.
///
/// The server keeps real time when latency does not grow: a server slower than the audio falls further behind with
/// every second, so the tokens of the second half of the audio come later than those of the first half. Real time
/// here: every client finished without error, the senders kept their schedule (within 250 ms), the p95 latency of the
/// second half exceeds the first half's by less than 250 ms, and no final result took more than 2 s.
struct ServeLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-load",
        abstract: "Stream N paced clients to a running `stt serve`; print token latency and final lag as JSON.")

    @Option(help: "Server address.")
    var host = "127.0.0.1"

    @Option(help: "Server port.")
    var port: Int

    @Option(help: "Clients streaming at once.")
    var clients: Int

    @Option(help: "Seconds of audio each client streams in real time.")
    var seconds = 20.0

    @Option(help: "A WAV recording (resampled to 16 kHz), repeated to fill --seconds.")
    var audio: String

    @Option(help: "Milliseconds of audio per message.")
    var messageMs = 100

    func validate() throws {
        guard (1...4096).contains(clients) else { throw ValidationError("--clients must be 1…4096") }
        guard seconds.isFinite, seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
        guard (10...10_000).contains(messageMs) else { throw ValidationError("--message-ms must be 10…10000") }
    }

    func run() throws {
        let samples = try recording()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let (host, port, clients, block) = (host, port, clients, 16 * messageMs)
        let outcomes = try runBlocking {
            try await withThrowingTaskGroup(of: ClientOutcome.self) { tasks in
                for index in 0..<clients {
                    tasks.addTask {
                        // Clients start spread over a second, as independent clients would, not in lockstep.
                        let offset = Double(index) / Double(clients)
                        return await streamOne(host: host, port: port, group: group, samples: samples, block: block,
                                               startDelay: offset)
                    }
                }
                var all: [ClientOutcome] = []
                for try await outcome in tasks { all.append(outcome) }
                return all
            }
        }
        let tokens = outcomes.flatMap(\.latencies)
        let latencies = tokens.map(\.latency).sorted()
        let half = Double(samples.count) / 16_000 / 2
        let early = tokens.filter { $0.position < half }.map(\.latency).sorted()
        let late = tokens.filter { $0.position >= half }.map(\.latency).sorted()
        let lags = outcomes.compactMap(\.finalLag).sorted()
        let errors = outcomes.compactMap(\.error)
        let slip = outcomes.map(\.sendSlip).max() ?? 0
        func percentile(_ values: [Double], _ p: Double) -> Double {
            values.isEmpty ? 0 : values[min(values.count - 1, Int((Double(values.count - 1) * p).rounded()))]
        }
        let lagMax = lags.last ?? .infinity
        let growth = percentile(late, 0.95) - percentile(early, 0.95)
        let object: [String: Any] = [
            "clients": clients, "seconds": Double(samples.count) / 16_000, "tokens": latencies.count,
            "latency_p50_ms": percentile(latencies, 0.5) * 1000, "latency_p95_ms": percentile(latencies, 0.95) * 1000,
            "latency_max_ms": (latencies.last ?? 0) * 1000,
            "final_lag_p50_ms": percentile(lags, 0.5) * 1000, "final_lag_max_ms": lagMax.isFinite ? lagMax * 1000 : -1,
            "latency_growth_ms": growth * 1000, "send_slip_max_ms": slip * 1000, "errors": errors.count,
            "first_error": errors.first ?? "",
            "realtime": errors.isEmpty && lags.count == clients && slip < 0.25 && growth < 0.25 && lagMax < 2,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    private func recording() throws -> [Float] {
        let wav: WAVFile
        do { wav = try WAVFile(path: audio) } catch { throw CommandFailure(error) }
        var one: [Float]
        do { one = try Resampler(from: wav.sampleRate, to: 16_000)(wav.samples) } catch { throw CommandFailure(error) }
        one += [Float](repeating: 0, count: 8_000)
        let total = Int(seconds * 16_000)
        var out: [Float] = []
        out.reserveCapacity(total)
        while out.count < total { out += one.prefix(total - out.count) }
        return out
    }
}

private struct ClientOutcome: Sendable {
    /// Per token: where its frame starts in the audio (seconds), and its latency (seconds).
    var latencies: [(position: Double, latency: Double)] = []
    var finalLag: Double?
    var sendSlip = 0.0
    var error: String?
}

private func streamOne(host: String, port: Int, group: any EventLoopGroup, samples: [Float], block: Int,
                       startDelay: Double) async -> ClientOutcome {
    var outcome = ClientOutcome()
    do {
        try await Task.sleep(nanoseconds: UInt64(startDelay * 1e9))
        let client = try await WebSocketClient.connect(host: host, port: port, group: group)
        let start = NIODeadline.now()
        var sent: [NIODeadline] = []
        var index = 0
        while index * block < samples.count {
            let due = start + .nanoseconds(Int64(Double(index * block) / 16_000 * 1e9))
            let wait = due - .now()
            if wait > .zero { try await Task.sleep(nanoseconds: UInt64(wait.nanoseconds)) }
            let now = NIODeadline.now()
            outcome.sendSlip = max(outcome.sendSlip, Double((now - due).nanoseconds) / 1e9)
            sent.append(now)
            let range = (index * block)..<min(samples.count, (index + 1) * block)
            try await client.send(samples: Array(samples[range]))
            index += 1
        }
        try await client.send(text: "Done")
        let doneAt = NIODeadline.now()
        var seen: [Int: Int] = [:]
        loop: for await (event, at) in client.events {
            switch event {
            case .text("Done!"):
                outcome.finalLag = Double((at - doneAt).nanoseconds) / 1e9
                break loop
            case .text(let text):
                guard let result = RecognitionResult(json: text) else { continue }
                let already = seen[result.segment] ?? 0
                for i in already..<result.timestamps.count {
                    let start = result.startTime + result.timestamps[i]
                    let message = max(0, min(sent.count - 1, Int((start * 16_000).rounded()) / block))
                    outcome.latencies.append((start, Double((at - sent[message]).nanoseconds) / 1e9))
                }
                seen[result.segment] = max(already, result.timestamps.count)
            case .binary, .pong:
                continue
            case .closed(let code, let reason):
                outcome.error = "closed early (\(code.map(String.init) ?? "no close frame")): \(reason)"
                break loop
            }
        }
        try? await client.close()
    } catch {
        outcome.error = "\(error)"
    }
    return outcome
}

