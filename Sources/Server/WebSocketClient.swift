import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A WebSocket client on NIOWebSocket's client upgrader, for driving ``SpeechServer`` (tests, `stt-dev bench serve`).
/// It sends what it is told, including malformed messages, and records what arrives with its arrival time.
package final class WebSocketClient: Sendable {
    /// What arrives from the server.
    package enum Event: Sendable, Equatable {
        case text(String)
        case binary([UInt8])
        /// A pong, with its payload.
        case pong([UInt8])
        /// The server's close frame (code, reason), or nil code when the connection ended without one.
        case closed(code: Int?, reason: String)
    }

    /// Why a connection could not be opened.
    package enum Failure: Error, Equatable, CustomStringConvertible {
        /// The server answered the handshake with this HTTP status instead of upgrading.
        case refused(status: Int)
        /// The connection closed before the handshake completed.
        case closedDuringHandshake

        package var description: String {
            switch self {
            case .refused(let status): "the server refused the WebSocket handshake with HTTP \(status)"
            case .closedDuringHandshake: "the connection closed during the WebSocket handshake"
            }
        }
    }

    /// Events with their arrival time (`NIODeadline.now()` on the event loop), in order; ends after `closed`.
    package let events: AsyncStream<(event: Event, at: NIODeadline)>
    private let channel: Channel

    private init(channel: Channel, events: AsyncStream<(event: Event, at: NIODeadline)>) {
        self.channel = channel
        self.events = events
    }

    /// Connects to `ws://host:port/` and completes the handshake.
    /// - Throws: ``Failure`` for a refused handshake, or the connection error.
    package static func connect(host: String, port: Int, group: any EventLoopGroup) async throws -> WebSocketClient {
        let (events, continuation) = AsyncStream.makeStream(of: (event: Event, at: NIODeadline).self)
        let upgraded = group.next().makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                let upgrader = NIOWebSocketClientUpgrader(
                    maxFrameSize: 1 << 26, automaticErrorHandling: false,
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            let pipeline = channel.pipeline.syncOperations
                            _ = pipeline.removeHandler(try pipeline.handler(type: HandshakeWatcher.self))
                            try pipeline.addHandler(NIOWebSocketFrameAggregator(
                                minNonFinalFragmentSize: 1, maxAccumulatedFrameCount: 1 << 16,
                                maxAccumulatedFrameSize: 1 << 26))
                            try pipeline.addHandler(ClientFrameHandler(continuation: continuation))
                            upgraded.succeed()
                        }
                    })
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHTTPClientHandlers(
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try pipeline.addHandler(HandshakeWatcher(host: host, port: port, upgraded: upgraded))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            upgraded.fail(error)
            throw error
        }
        channel.closeFuture.whenComplete { _ in upgraded.fail(Failure.closedDuringHandshake) }
        try await upgraded.futureResult.get()
        return WebSocketClient(channel: channel, events: events)
    }

    /// Sends samples as one binary message of float32 little-endian values.
    package func send(samples: [Float]) async throws {
        var buffer = channel.allocator.buffer(capacity: samples.count * 4)
        for sample in samples { buffer.writeInteger(sample.bitPattern, endianness: .little) }
        try await send(WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: buffer))
    }

    /// Sends any bytes as one binary message.
    package func send(bytes: [UInt8]) async throws {
        try await send(WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(),
                                      data: channel.allocator.buffer(bytes: bytes)))
    }

    /// Sends a text message (`Done` ends the audio).
    package func send(text: String) async throws {
        try await send(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(),
                                      data: channel.allocator.buffer(string: text)))
    }

    /// Sends a frame as it is (fragments, control frames).
    package func send(_ frame: WebSocketFrame) async throws {
        try await channel.writeAndFlush(frame)
    }

    /// Sends a close frame; the connection ends when the server answers.
    package func close(code: WebSocketErrorCode = .normalClosure) async throws {
        var buffer = channel.allocator.buffer(capacity: 2)
        buffer.write(webSocketErrorCode: code)
        try await send(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: buffer))
    }

    /// Drops the TCP connection without a close frame.
    package func disconnect() async {
        try? await channel.close()
    }

    /// Waits until the connection is closed.
    package func closed() async {
        try? await channel.closeFuture.get()
    }
}

/// Sends the upgrade request once connected, and fails the handshake on any other response.
private final class HandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let host: String
    private let port: Int
    private let upgraded: EventLoopPromise<Void>

    init(host: String, port: Int, upgraded: EventLoopPromise<Void>) {
        self.host = host
        self.port = port
        self.upgraded = upgraded
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let response) = Self.unwrapInboundIn(data) {
            upgraded.fail(WebSocketClient.Failure.refused(status: Int(response.status.code)))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        upgraded.fail(error)
        context.close(promise: nil)
    }
}

/// After the upgrade: every frame from the server into the event stream; pings answered; a close frame answered and
/// recorded.
private final class ClientFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let continuation: AsyncStream<(event: WebSocketClient.Event, at: NIODeadline)>.Continuation
    private var closeSeen = false

    init(continuation: AsyncStream<(event: WebSocketClient.Event, at: NIODeadline)>.Continuation) {
        self.continuation = continuation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        let now = NIODeadline.now()
        switch frame.opcode {
        case .text:
            continuation.yield((.text(String(buffer: frame.unmaskedData)), now))
        case .binary:
            continuation.yield((.binary(Array(buffer: frame.unmaskedData)), now))
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .pong:
            continuation.yield((.pong(Array(buffer: frame.unmaskedData)), now))
        case .connectionClose:
            guard !closeSeen else { return }
            closeSeen = true
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self).map(Int.init)
            let reason = data.readString(length: data.readableBytes) ?? ""
            continuation.yield((.closed(code: code, reason: reason), now))
            continuation.finish()
            var reply = context.channel.allocator.buffer(capacity: 2)
            if let code { reply.writeInteger(UInt16(code)) }
            let bound = context.loopBound
            context.writeAndFlush(Self.wrapOutboundOut(
                WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: reply))
            ).whenComplete { _ in bound.value.close(promise: nil) }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !closeSeen {
            closeSeen = true
            continuation.yield((.closed(code: nil, reason: ""), .now()))
        }
        continuation.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
