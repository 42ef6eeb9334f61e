import NIOCore
import NIOWebSocket
import STTKit

/// Sent through every connection's pipeline when the server shuts down: finish the stream with the audio received so
/// far, send its results and `Done!`, then close with 1001.
struct ServerShutdownEvent: Sendable {}

/// One WebSocket connection on its event loop: turns messages into decoder input, writes results back, applies
/// backpressure, and closes the connection on bad input, idleness or shutdown. Nothing here decodes.
final class SessionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private enum State {
        case open
        /// Our close frame is sent; waiting for the client's (or the close timer).
        case closing
        case closed
    }

    private let name: String
    private let makeDecoder: (@escaping @Sendable (SessionDecoder.Batch) -> Void) throws -> SessionDecoder
    private let configuration: ServerConfiguration
    private let backlogLimit: Int
    private var decoder: SessionDecoder?
    private var context: ChannelHandlerContext?
    private var state = State.open

    /// Reading is held back: too much audio queued, or the client does not read what we write.
    private var readPending = false
    private var backlogged = false
    private var writable = true
    /// Ends queued and not yet finished; audio since the last end.
    private var pendingEnds = 0
    private var audioSinceEnd = false
    private var shuttingDown = false

    private var lastActivity = NIODeadline.now()
    private var idleCheck: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?

    private var streams = 0

    private let recordBacklog: (Int) -> Void
    private var peakBacklog = 0

    init(name: String, configuration: ServerConfiguration, recordBacklog: @escaping (Int) -> Void,
         makeDecoder: @escaping (@escaping @Sendable (SessionDecoder.Batch) -> Void) throws -> SessionDecoder) {
        self.name = name
        self.recordBacklog = recordBacklog
        self.configuration = configuration
        self.makeDecoder = makeDecoder
        backlogLimit = max(1, Int(configuration.maxBacklogSeconds * 16_000))
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        do {
            decoder = try makeDecoder { batch in
                loop.execute { bound.value.deliver(batch) }
            }
        } catch {
            close(code: .unexpectedServerError, reason: "\(error)")
            return
        }
        writable = context.channel.isWritable
        scheduleIdleCheck()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        teardown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if state == .open {
            log(audioSinceEnd || pendingEnds > 0 ? "closed by the client mid-stream" : "closed by the client")
        }
        teardown()
        context.fireChannelInactive()
    }

    private func teardown() {
        state = .closed
        decoder?.cancel()
        decoder = nil
        idleCheck?.cancel()
        idleCheck = nil
        closeTimer?.cancel()
        closeTimer = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        lastActivity = .now()
        switch frame.opcode {
        case .connectionClose:
            receivedClose(frame)
        case .ping:
            guard state == .open else { return }
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .binary:
            guard state == .open, !shuttingDown else { return }
            audio(frame.unmaskedData)
        case .text:
            guard state == .open, !shuttingDown else { return }
            let text = String(buffer: frame.unmaskedData)
            if text == "Done" {
                end()
            } else {
                close(code: .unacceptableData,
                      reason: "expected float32 audio or the text Done, got a text message of \(frame.length) bytes")
            }
        case .pong, .continuation:
            break
        default:
            close(code: .protocolError, reason: "unknown opcode")
        }
    }

    private func audio(_ payload: ByteBuffer) {
        let bytes = payload.readableBytes
        guard bytes % 4 == 0 else {
            close(code: .dataInconsistentWithMessage,
                  reason: "a binary message of \(bytes) bytes is not whole float32 samples")
            return
        }
        guard bytes > 0, let decoder else { return }
        var samples = [Float](repeating: 0, count: bytes / 4)
        samples.withUnsafeMutableBufferPointer { out in
            payload.withUnsafeReadableBytes { raw in
                for i in 0..<out.count {
                    out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
            }
        }
        audioSinceEnd = true
        let queued = decoder.enqueue(.audio(samples))
        if queued > backlogLimit { backlogged = true }
        if queued > peakBacklog {
            peakBacklog = queued
            recordBacklog(queued)
        }
    }

    private func end() {
        guard let decoder else { return }
        pendingEnds += 1
        audioSinceEnd = false
        decoder.enqueue(.end)
    }

    private func receivedClose(_ frame: WebSocketFrame) {
        switch state {
        case .open:
            // Echo the client's status, as RFC 6455 asks, then close.
            var data = frame.unmaskedData
            let code = data.readWebSocketErrorCode() ?? .normalClosure
            log(audioSinceEnd || pendingEnds > 0 ? "closed by the client mid-stream" : "closed by the client")
            decoder?.cancel()
            state = .closing
            var payload = context?.channel.allocator.buffer(capacity: 2) ?? ByteBuffer()
            payload.write(webSocketErrorCode: code)
            writeClose(payload, thenClose: true)
        case .closing:
            context?.close(promise: nil)
        case .closed:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case NIOWebSocketError.invalidFrameLength, NIOWebSocketFrameAggregator.Error.accumulatedFrameSizeIsTooLarge:
            close(code: .messageTooLarge, reason: "message larger than \(configuration.maxMessageBytes) bytes",
                  immediately: true)
        case let error as NIOWebSocketError:
            close(code: .protocolError, reason: "WebSocket protocol error: \(error)", immediately: true)
        case let error as NIOWebSocketFrameAggregator.Error:
            close(code: .protocolError, reason: "bad fragmented message: \(error)", immediately: true)
        default:
            if state != .closed { log("closed: \(error)") }
            teardown()
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ServerShutdownEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard state == .open, !shuttingDown else { return }
        shuttingDown = true
        if audioSinceEnd { end() }
        closeIfDrained()
    }

    // MARK: Results

    private func deliver(_ batch: SessionDecoder.Batch) {
        guard state == .open, let context else { return }
        lastActivity = .now()
        for output in batch.outputs {
            switch output {
            case .message(let text):
                let buffer = context.channel.allocator.buffer(string: text)
                context.write(Self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: buffer)), promise: nil)
            case .failure(let code, let reason):
                context.flush()
                close(code: code, reason: reason)
                return
            case .finished(let seconds, let segments):
                pendingEnds -= 1
                streams += 1
                log(String(format: "stream %d finished: %.2f s of audio, %d segment%@", streams, seconds, segments,
                           segments == 1 ? "" : "s"))
            }
        }
        context.flush()
        // The queue as it is now: audio read since the batch was made counts too.
        if backlogged, (decoder?.queuedSamples ?? 0) <= backlogLimit / 2 {
            backlogged = false
            resumeReading()
        }
        closeIfDrained()
    }

    private func closeIfDrained() {
        if shuttingDown, pendingEnds == 0, state == .open {
            close(code: .goingAway, reason: "server shutting down")
        }
    }

    // MARK: Backpressure

    func read(context: ChannelHandlerContext) {
        if backlogged || !writable {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        if writable { resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    private func resumeReading() {
        guard readPending, !backlogged, writable, let context else { return }
        readPending = false
        lastActivity = .now()
        context.read()
    }

    // MARK: Idle

    private func scheduleIdleCheck() {
        guard let context else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(deadline: lastActivity + configuration.idle) {
            bound.value.checkIdle()
        }
    }

    private func checkIdle() {
        guard state == .open else { return }
        // Waiting for the decoder is not the client's idleness.
        if pendingEnds > 0 || (decoder?.queuedSamples ?? 0) > 0 { lastActivity = .now() }
        if NIODeadline.now() - lastActivity >= configuration.idle {
            close(code: .policyViolation, reason: "no message for \(formatSeconds(configuration.idleTimeout)) s")
        } else {
            scheduleIdleCheck()
        }
    }

    // MARK: Closing

    /// Sends a close frame and closes the connection once the client answers (or after a short wait; at once when
    /// `immediately`, for a client whose frames cannot be parsed). The stream is freed now.
    private func close(code: WebSocketErrorCode, reason: String, immediately: Bool = false) {
        guard state == .open, let context else {
            if immediately { self.context?.close(promise: nil) }
            return
        }
        log("closed (\(WebSocketErrorCode.number(code))): \(reason)")
        decoder?.cancel()
        state = .closing
        var payload = context.channel.allocator.buffer(capacity: 125)
        payload.write(webSocketErrorCode: code)
        payload.writeString(String(decoding: reason.utf8.prefix(120), as: UTF8.self))
        writeClose(payload, thenClose: immediately)
        if !immediately {
            // Keep reading so the client's close frame arrives; give up waiting after two seconds.
            backlogged = false
            writable = true
            readPending = false
            context.read()
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            closeTimer = context.eventLoop.scheduleTask(in: .seconds(2)) { bound.value.context?.close(promise: nil) }
        }
    }

    private func writeClose(_ payload: ByteBuffer, thenClose: Bool) {
        guard let context else { return }
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)
        let future = context.writeAndFlush(Self.wrapOutboundOut(frame))
        if thenClose {
            let bound = context.loopBound
            future.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }

    private func log(_ message: String) {
        configuration.log("\(name) \(message)")
    }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.1f", seconds)
}

extension WebSocketErrorCode {
    static func number(_ code: WebSocketErrorCode) -> Int {
        var buffer = ByteBuffer()
        buffer.write(webSocketErrorCode: code)
        return Int(buffer.readInteger(as: UInt16.self) ?? 0)
    }
}
