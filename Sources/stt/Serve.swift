import ArgumentParser
import Foundation
import STTKit
import STTServer

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve live transcription over WebSocket, speaking sherpa-onnx's online protocol.",
        discussion: """
            Clients send binary messages of float32 little-endian samples at 16 kHz and the text message Done at the \
            end; the server answers with JSON results (text, tokens, timestamps, segment, start_time, is_final, \
            words) and finally Done!. One model serves every client. SIGINT or SIGTERM stops accepting, finishes \
            the open streams, and exits 0.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port (0 picks a free one).")
    var port = 6006

    @Option(help: "Clients at once; one more is refused with HTTP 503.")
    var maxClients = 64

    @Option(help: "Decoding threads shared by all clients, each stepping a batch of them. Default: one per core.")
    var workers: Int?

    @Option(help: "Clients one batched step takes at most: their audio goes through the weights together.")
    var maxBatch = 16

    @Option(help: "Seconds without a message from a client (or to finish the handshake) before its connection is closed.")
    var idleTimeout = 30.0

    @Option(help: "Largest message in bytes; a larger one closes the connection (1009).")
    var maxMessageBytes = 1 << 20

    @Option(help: "Seconds of audio a client may have queued for decoding before the server stops reading from it.")
    var maxBacklog = 4.0

    @Option(help: "Endpointing: on (results come in segments, each closed by an is_final result, as sherpa-onnx does) or off (one segment per stream).")
    var endpointing: Switch = .on

    @Option(help: "Seconds of trailing silence that end a segment in which nothing was recognized, or off.")
    var silenceWithoutSpeech = RuleSeconds(2.4)

    @Option(help: "Seconds of trailing silence after speech that end a segment, or off.")
    var silenceAfterSpeech = RuleSeconds(1.2)

    @Option(help: "Seconds after which a segment ends whatever it holds, or off.")
    var maxUtterance = RuleSeconds(20)

    enum Switch: String, ExpressibleByArgument, CaseIterable { case on, off }

    /// Seconds (positive), or `off`.
    struct RuleSeconds: ExpressibleByArgument, CustomStringConvertible {
        let seconds: Double?
        init(_ seconds: Double?) { self.seconds = seconds }
        init?(argument: String) {
            if argument == "off" {
                seconds = nil
            } else if let value = Double(argument), value.isFinite, value > 0, value <= 86_400 {
                seconds = value
            } else {
                return nil
            }
        }
        var description: String { seconds.map { formatted($0) } ?? "off" }
        var defaultValueDescription: String { description }
        private func formatted(_ value: Double) -> String {
            value == value.rounded() ? String(Int(value)) : String(value)
        }
    }

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0…65535") }
        guard maxClients >= 1 else { throw ValidationError("--max-clients must be at least 1") }
        if let workers, !(1...1024).contains(workers) { throw ValidationError("--workers must be 1…1024") }
        guard (1...256).contains(maxBatch) else { throw ValidationError("--max-batch must be 1…256") }
        guard idleTimeout.isFinite, idleTimeout > 0, idleTimeout <= 86_400 else {
            throw ValidationError("--idle-timeout must be a number of seconds in (0, 86400]")
        }
        guard (4...Int(UInt32.max)).contains(maxMessageBytes) else {
            throw ValidationError("--max-message-bytes must be 4…\(UInt32.max)")
        }
        guard maxBacklog.isFinite, maxBacklog > 0, maxBacklog <= 3600 else {
            throw ValidationError("--max-backlog must be a number of seconds in (0, 3600]")
        }
    }

    func run() throws {
        let (model, options) = try modelOptions.load()
        var settings = ServerConfiguration()
        settings.host = host
        settings.port = port
        settings.maxClients = maxClients
        if let workers { settings.workers = workers }
        settings.maxBatch = maxBatch
        settings.idleTimeout = idleTimeout
        settings.maxMessageBytes = maxMessageBytes
        settings.maxBacklogSeconds = maxBacklog
        settings.stream = options
        settings.stream.endpointing = endpointing == .off ? nil : Endpointing(
            silenceWithoutSpeech: silenceWithoutSpeech.seconds, silenceAfterSpeech: silenceAfterSpeech.seconds,
            maxUtterance: maxUtterance.seconds)
        let server: SpeechServer
        do { server = try SpeechServer(model: model, configuration: settings) } catch { throw CommandFailure(error) }
        let stream = try TranscriptionStream(model: model, options: options)
        do {
            try server.serveUntilSignalled { port in
                settings.log("listening on ws://\(host):\(port) (look-ahead \(stream.lookahead), \(stream.decoder.rawValue), "
                    + "\(settings.workers) worker\(settings.workers == 1 ? "" : "s"), batches of up to \(maxBatch), "
                    + "up to \(maxClients) clients)")
            }
        } catch {
            throw CommandFailure(error)
        }
    }
}
