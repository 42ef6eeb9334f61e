import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// First in every connection's pipeline until the WebSocket upgrade: closes a connection that has not completed the
/// handshake within the idle timeout, or when the server shuts down before it did.
final class HandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let log: @Sendable (String) -> Void
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, log: @escaping @Sendable (String) -> Void) {
        self.timeout = timeout
        self.log = log
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let log = log
        timer = context.eventLoop.scheduleTask(in: timeout) {
            log("no WebSocket handshake in time")
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ServerShutdownEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Why a WebSocket handshake was refused, set by the upgrader's admission check and read by ``HTTPFallback``.
final class Refusal: Sendable {
    private let reason = NIOLockedValueBox<String?>(nil)
    var value: String? {
        get { reason.withLockedValue { $0 } }
        set { reason.withLockedValue { $0 = newValue } }
    }
}

/// Answers every HTTP request that is not upgraded: 503 for a WebSocket handshake refused for capacity or shutdown,
/// 400 for a malformed handshake, 426 for plain HTTP. Then closes the connection.
final class HTTPFallback: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let refusal: Refusal
    private var head: HTTPRequestHead?

    init(refusal: Refusal) {
        self.refusal = refusal
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            respond(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The upgrader reports a refused or malformed handshake here before the request arrives; the answer is sent
        // at the request's end.
        if error is NIOWebSocketUpgradeError { return }
        context.fireErrorCaught(error)
    }

    private func respond(context: ChannelHandlerContext) {
        let status: HTTPResponseStatus
        var headers = HTTPHeaders()
        let body: String
        let upgrade = head?.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" } ?? false
        if let reason = refusal.value {
            status = .serviceUnavailable
            headers.add(name: "Retry-After", value: "1")
            body = reason
        } else if upgrade {
            status = .badRequest
            body = "malformed WebSocket handshake (Sec-WebSocket-Key and Sec-WebSocket-Version: 13 are required)"
        } else {
            status = .upgradeRequired
            headers.add(name: "Upgrade", value: "websocket")
            body = "stt serve speaks sherpa-onnx's online WebSocket protocol; connect with a WebSocket client"
        }
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count + 1))
        headers.add(name: "Connection", value: "close")
        let version = head?.version ?? .http1_1
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))),
                      promise: nil)
        context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body + "\n")))),
                      promise: nil)
        let bound = context.loopBound
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
        head = nil
    }
}
