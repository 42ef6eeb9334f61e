import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import STTKit

/// A WebSocket server speaking sherpa-onnx's online protocol: one loaded ``SpeechModel`` shared by every connection,
/// one `TranscriptionStream` per connection.
///
/// Protocol (per connection): binary messages carry float32 little-endian samples at 16 kHz; the text message `Done`
/// ends the audio. The server answers with JSON text messages (``RecognitionResult``) as tokens become final, one with
/// `is_final` at each endpoint, a last one with `is_final` and `is_eof`, then the text `Done!`. The connection may
/// then stream another recording.
///
/// Networking runs on one event loop, never decoding. Each of `workers` threads steps a batch of connections (up to
/// `maxBatch` per step) through the encoder together, one pass over the weights per step for all of them; a new
/// connection joins the batch with the fewest. A pool of as many threads pushes the connections' audio and finishes
/// their streams. A connection whose queued audio exceeds the backlog bound is not read until decoding catches up.
package final class SpeechServer: Sendable {
    package let model: SpeechModel
    package let configuration: ServerConfiguration

    private let group: MultiThreadedEventLoopGroup
    private let pool: NIOThreadPool
    private let steppers: [BatchStepper]
    private let state = NIOLockedValueBox(State())
    private let listener = NIOLockedValueBox<Channel?>(nil)
    private let peakBacklog = NIOLockedValueBox(0)

    private struct State {
        var draining = false
        var nextID = 1
        /// Every accepted connection, by id.
        var channels: [Int: Channel] = [:]
        /// Connections admitted as WebSocket clients (open or finishing).
        var sessions = 0
    }

    /// Prepares a server; nothing listens until ``start()``.
    /// - Throws: ``TranscriptionError`` when the stream options do not fit the model.
    package init(model: SpeechModel, configuration: ServerConfiguration) throws(TranscriptionError) {
        _ = try TranscriptionStream(model: model, options: configuration.stream)
        self.model = model
        self.configuration = configuration
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        pool = NIOThreadPool(numberOfThreads: max(1, configuration.workers))
        steppers = (0..<max(1, configuration.workers)).map { _ in
            BatchStepper(model: model, maxStreams: max(1, configuration.maxBatch))
        }
    }

    /// Binds and starts accepting connections; returns the port listened on.
    @discardableResult
    package func start() async throws -> Int {
        pool.start()
        for (i, stepper) in steppers.enumerated() { stepper.start(name: "stt-batch-\(i)") }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 256 << 10, high: 1 << 20))
            // Backpressure acts between reads: at most two reads (64 KiB each, 2 s of audio) pass a paused check.
            .childChannelOption(.maxMessagesPerRead, value: 2)
            .childChannelInitializer { [self] channel in initialize(channel) }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        } catch {
            try? await pool.shutdownGracefully()
            for stepper in steppers { stepper.stop() }
            try? await group.shutdownGracefully()
            throw ServerError.cannotListen(host: configuration.host, port: configuration.port, reason: Self.reason(error))
        }
        listener.withLockedValue { $0 = channel }
        return channel.localAddress?.port ?? configuration.port
    }

    /// The port listened on (after ``start()``).
    package var port: Int? { listener.withLockedValue { $0?.localAddress?.port } }

    /// Connections admitted as WebSocket clients now.
    package var sessionCount: Int { state.withLockedValue { $0.sessions } }

    /// The most connections one batched step has taken.
    package var largestBatch: Int { steppers.map(\.batch.largestStep).max() ?? 0 }

    /// The most audio any one connection has had queued for decoding, in seconds.
    package var peakBacklogSeconds: Double { Double(peakBacklog.withLockedValue { $0 }) / 16_000 }

    /// Stops accepting, lets every open stream finish with the audio it has (its last result, `Done!`, then a close
    /// with 1001), waits up to `grace` for the connections to close, closes what remains, and stops the threads.
    package func shutdown(grace: TimeAmount = .seconds(30)) async {
        let channels = state.withLockedValue { state -> [Channel] in
            state.draining = true
            return Array(state.channels.values)
        }
        if let listener = listener.withLockedValue({ $0 }) {
            try? await listener.close()
        }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(ServerShutdownEvent())
        }
        let deadline = group.next().scheduleTask(in: grace) {
            for channel in channels { channel.close(promise: nil) }
        }
        for channel in channels {
            try? await channel.closeFuture.get()
        }
        deadline.cancel()
        try? await pool.shutdownGracefully()
        for stepper in steppers { stepper.stop() }
        try? await group.shutdownGracefully()
    }

    /// A socket error as the system says it ("Address already in use"), anything else as it describes itself.
    private static func reason(_ error: any Error) -> String {
        if let error = error as? IOError, let message = strerror(error.errnoCode) { return String(cString: message) }
        return "\(error)"
    }

    /// Closes every connection now, finished or not.
    package func closeAll() {
        for channel in state.withLockedValue({ Array($0.channels.values) }) { channel.close(promise: nil) }
    }

    // MARK: Connections

    private func initialize(_ channel: Channel) -> EventLoopFuture<Void> {
        let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let admitted: Int? = state.withLockedValue { state in
            guard !state.draining,
                  state.channels.count < configuration.maxClients + configuration.maxHandshaking else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.channels[id] = channel
            return id
        }
        guard let id = admitted else {
            configuration.log("refused \(remote): too many connections")
            return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        let name = "[#\(id) \(remote)]"
        let log = configuration.log
        channel.closeFuture.whenComplete { [self] _ in
            state.withLockedValue { _ = $0.channels.removeValue(forKey: id) }
        }
        let refusal = Refusal()
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: max(1, min(configuration.maxMessageBytes, Int(UInt32.max))),
            automaticErrorHandling: false,
            shouldUpgrade: { [self] channel, _ in
                channel.eventLoop.makeSucceededFuture(admit(channel, name: name, refusal: refusal) ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { [self] channel, _ in
                channel.eventLoop.makeCompletedFuture { try startSession(channel, name: name) }
            })
        return channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(HandshakeGuard(timeout: configuration.idle, log: { log("\(name) \($0)") }))
            try pipeline.configureHTTPServerPipeline(
                withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }), withErrorHandling: true)
            try pipeline.addHandler(HTTPFallback(refusal: refusal))
        }
    }

    /// Takes a client slot for a WebSocket handshake, or says why not (503).
    private func admit(_ channel: Channel, name: String, refusal: Refusal) -> Bool {
        let verdict: (Bool, Int) = state.withLockedValue { state in
            if state.draining {
                return (false, -1)
            }
            guard state.sessions < configuration.maxClients else { return (false, state.sessions) }
            state.sessions += 1
            return (true, state.sessions)
        }
        switch verdict {
        case (true, let count):
            channel.closeFuture.whenComplete { [self] _ in state.withLockedValue { $0.sessions -= 1 } }
            configuration.log("\(name) open (\(count) of \(configuration.maxClients) clients)")
            return true
        case (false, -1):
            refusal.value = "the server is shutting down"
        case (false, _):
            refusal.value = "the server is at capacity (\(configuration.maxClients) clients); try again later"
            configuration.log("\(name) refused: at capacity (\(configuration.maxClients) clients)")
        }
        return false
    }

    /// Replaces the HTTP handlers with the WebSocket session (called on the channel's event loop).
    private func startSession(_ channel: Channel, name: String) throws {
        let pipeline = channel.pipeline.syncOperations
        _ = pipeline.removeHandler(try pipeline.handler(type: HTTPFallback.self))
        _ = pipeline.removeHandler(try pipeline.handler(type: HandshakeGuard.self))
        try pipeline.addHandler(NIOWebSocketFrameAggregator(
            minNonFinalFragmentSize: 1, maxAccumulatedFrameCount: 1 << 16,
            maxAccumulatedFrameSize: configuration.maxMessageBytes))
        let options = configuration.stream, pool = pool, peakBacklog = peakBacklog
        let stepper = steppers.min { $0.streamCount < $1.streamCount } ?? steppers[0]
        try pipeline.addHandler(SessionHandler(
            name: name, configuration: configuration,
            recordBacklog: { samples in peakBacklog.withLockedValue { $0 = max($0, samples) } },
            makeDecoder: { deliver in
                try SessionDecoder(options: options, stepper: stepper, pool: pool, deliver: deliver)
            }))
    }
}

/// Why a server cannot run.
package enum ServerError: Error, CustomStringConvertible {
    /// Binding the address failed.
    case cannotListen(host: String, port: Int, reason: String)

    package var description: String {
        switch self {
        case .cannotListen(let host, let port, let reason): "cannot listen on \(host):\(port): \(reason)"
        }
    }
}
