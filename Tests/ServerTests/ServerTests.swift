import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOWebSocket
import STTKit
@testable import STTServer
import STTTestFixtures
import Testing

/// `stt serve`'s server, in process on a free loopback port, driven by real WebSocket clients.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ServerTests {
    @Test func oneClientGetsTheTextOfTranscribe() async throws {
        let model = try Shared.model()
        let expected = try model.transcribe(file: Shared.greenApplesPath)
        #expect(expected.text == "my brother likes green apples")
        let server = try await TestServer()
        let client = try await server.connect()
        let audio = try Shared.greenApples()
        // Twice on one connection: after Done! the connection takes a new recording, numbered from segment 0 again.
        for _ in 0..<2 {
            try await client.stream(audio)
            let session = await client.collect()
            #expect(session.done)
            let final = try #require(session.results.last)
            #expect(final.isFinal && final.isEOF)
            #expect(final.text == expected.text)
            #expect(final.segment == 0 && final.startTime == 0)
            #expect(final.tokens == expected.tokens.map(\.piece))
            #expect(final.timestamps.count == final.tokens.count && final.ysProbs.count == final.tokens.count)
            for (stamp, token) in zip(final.timestamps, expected.tokens) { #expect(abs(stamp - token.start) < 0.006) }
            for (p, token) in zip(final.ysProbs, expected.tokens) { #expect(abs(p - Double(token.logProbability)) < 1e-5) }
            #expect(final.words.map(\.word) == expected.words.map(\.text))
            for (word, reference) in zip(final.words, expected.words) {
                #expect(abs(word.start - reference.start) < 0.006 && abs(word.end - reference.end) < 0.006)
            }
            // Partial results before it, each a prefix of the final text, none final.
            for partial in session.results.dropLast() {
                #expect(!partial.isFinal && !partial.isEOF && expected.text.hasPrefix(partial.text))
            }
            // sherpa-onnx's fields in sherpa-onnx's order.
            let raw = try #require(session.raw.last { $0 != "Done!" })
            let keys = ["text", "tokens", "timestamps", "ys_probs", "lm_probs", "context_scores", "segment", "words",
                        "start_time", "is_final", "is_eof"]
            let positions = keys.compactMap { raw.range(of: "\"\($0)\":")?.lowerBound }
            #expect(positions.count == keys.count && positions == positions.sorted())
        }
        try await client.close()
        await client.closed()
        await server.stop()
    }

    @Test func sixteenClientsAtOnceEachGetTheirOwnText() async throws {
        let model = try Shared.model()
        let recordings = try Shared.recordings()
        // Sixteen different inputs: each recording cut at a different length.
        let inputs = (0..<16).map { i -> [Float] in
            let audio = recordings[i % recordings.count]
            return Array(audio.prefix(audio.count * (60 + 40 * (i / recordings.count) / 3) / 100))
        }
        let expected = try inputs.map { try model.transcribe(samples: $0).text }
        #expect(Set(expected).count >= 12)
        let server = try await TestServer { $0.workers = 2 }
        let texts = try await withThrowingTaskGroup(of: (Int, Collected).self) { group in
            for (i, input) in inputs.enumerated() {
                group.addTask {
                    let client = try await server.connect()
                    try await client.stream(input, block: 1_600 + 160 * i)
                    let session = await client.collect()
                    try await client.close()
                    return (i, session)
                }
            }
            var texts = [String](repeating: "", count: inputs.count)
            for try await (i, session) in group {
                #expect(session.done, "client \(i)")
                texts[i] = session.text
            }
            return texts
        }
        #expect(texts == expected)
        // Clients streaming at once share steps: each worker's batch took several of them in one pass.
        #expect(server.server.largestBatch >= 2, "largest batch \(server.server.largestBatch)")
        await server.stop()
    }

    /// One worker with batches of at most three: sixteen clients at once still each get their own text.
    @Test func smallBatchesTakeTurns() async throws {
        let model = try Shared.model()
        let recordings = try Shared.recordings()
        let inputs = (0..<16).map { i in Array(recordings[i % recordings.count].prefix(16_000 * (2 + i % 3))) }
        let expected = try inputs.map { try model.transcribe(samples: $0).text }
        let server = try await TestServer {
            $0.workers = 1
            $0.maxBatch = 3
        }
        let texts = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (i, input) in inputs.enumerated() {
                group.addTask {
                    let client = try await server.connect()
                    try await client.stream(input, block: 3_200)
                    let session = await client.collect()
                    try await client.close()
                    return (i, session.text)
                }
            }
            var texts = [String](repeating: "", count: inputs.count)
            for try await (i, text) in group { texts[i] = text }
            return texts
        }
        #expect(texts == expected)
        #expect((1...3).contains(server.server.largestBatch), "largest batch \(server.server.largestBatch)")
        await server.stop()
    }

    @Test func endpointsSplitTheStreamIntoSegmentsAsSherpaOnnxDoes() async throws {
        let model = try Shared.model()
        let once = try Shared.greenApples()
        let audio = once + [Float](repeating: 0, count: 32_000) + once   // two utterances, 2 s apart
        // The fixture model may hear the second one differently after the pause.
        let whole = try model.transcribe(samples: audio).text
        #expect(whole.hasPrefix("my brother likes green apples "))

        let server = try await TestServer()   // sherpa-onnx's rules: 1.2 s of silence after speech ends a segment
        let client = try await server.connect()
        try await client.stream(audio)
        let session = await client.collect()
        let finals = session.results.filter(\.isFinal)
        #expect(finals.map(\.segment) == [0, 1])
        #expect(finals.first?.text == "my brother likes green apples")
        #expect(finals.map(\.isEOF) == [false, true])
        #expect(finals[0].startTime == 0 && finals[1].startTime > 2 && finals[1].startTime < 4)
        // Times are from the segment's start: the second utterance's words start where the first one's did, 4 s later.
        let shift = try #require(finals[1].words.first).start + finals[1].startTime - (finals[0].words.first?.start ?? 0)
        #expect(abs(shift - Double(once.count + 32_000) / 16_000) < 0.1)
        // Results after the endpoint belong to the next segment.
        let afterFirst = session.results.drop { !$0.isFinal }.dropFirst()
        #expect(afterFirst.allSatisfy { $0.segment == 1 })
        #expect(session.text == whole)
        await server.stop()

        // Off: one segment whatever the pauses.
        let plain = try await TestServer { $0.stream.endpointing = nil }
        let other = try await plain.connect()
        try await other.stream(audio)
        let single = await other.collect()
        #expect(single.results.filter(\.isFinal).count == 1 && single.results.last?.text == whole)
        await plain.stop()
    }

    @Test func badClientsAreClosedWhileAGoodOneGetsItsText() async throws {
        let model = try Shared.model()
        let audio = try Shared.greenApples()
        let expected = try model.transcribe(samples: audio).text
        let server = try await TestServer {
            $0.idleTimeout = 1
            $0.maxMessageBytes = 64 << 10
        }
        async let good: Collected = {
            let client = try await server.connect()
            // Paced so that it is streaming while the others misbehave.
            try await client.stream(audio, block: 1_600, pause: .milliseconds(20))
            let session = await client.collect()
            try await client.close()
            return session
        }()
        async let oddLength = server.closeCode { try await $0.send(bytes: [1, 2, 3, 4, 5]) }
        async let notANumber = server.closeCode { try await $0.send(samples: [0.1, .nan, 0.2, 0.3]) }
        async let tooLoud = server.closeCode { try await $0.send(samples: [0.1, 5_000, 0.2]) }
        async let otherText = server.closeCode { try await $0.send(text: "hello") }
        async let tooLarge = server.closeCode { try await $0.send(samples: [Float](repeating: 0, count: 20_000)) }
        async let neverDone = server.closeCode { try await $0.send(samples: Array(audio.prefix(8_000))) }
        async let gone: Void = {
            let client = try await server.connect()
            try await client.send(samples: Array(audio.prefix(16_000)))
            await client.disconnect()
        }()

        let goodSession = try await good
        #expect(goodSession.done && goodSession.results.last?.text == expected)
        let (odd, nan, loud, text, large, idle) = try await (oddLength, notANumber, tooLoud, otherText, tooLarge, neverDone)
        try await gone
        #expect(odd.code == 1007 && odd.reason.contains("not whole float32 samples"))
        #expect(nan.code == 1007 && nan.reason.contains("NaN"))
        #expect(loud.code == 1007 && loud.reason.contains("scaled"))
        #expect(text.code == 1003 && text.reason.contains("Done"))
        #expect(large.code == 1009)
        #expect(idle.code == 1008 && idle.reason.contains("no message"))
        #expect(await server.eventually { server.server.sessionCount == 0 })
        #expect(server.logged { $0.contains("closed by the client mid-stream") })
        await server.stop()
    }

    @Test func fragmentedMessagesAndPingsAreHandled() async throws {
        let model = try Shared.model()
        let audio = try Shared.greenApples()
        let expected = try model.transcribe(samples: audio).text
        let server = try await TestServer()
        let client = try await server.connect()
        // Each 100 ms message in three fragments, split inside samples; a ping between two messages.
        for start in stride(from: 0, to: audio.count, by: 1_600) {
            var bytes: [UInt8] = []
            for sample in audio[start..<min(audio.count, start + 1_600)] {
                withUnsafeBytes(of: sample.bitPattern.littleEndian) { bytes += $0 }
            }
            let cuts = [0, bytes.count / 3 + 1, 2 * bytes.count / 3 + 2, bytes.count]
            for k in 0..<3 {
                let data = ByteBuffer(bytes: bytes[cuts[k]..<cuts[k + 1]])
                try await client.send(WebSocketFrame(fin: k == 2, opcode: k == 0 ? .binary : .continuation,
                                                     maskKey: .random(), data: data))
            }
            if start == 16_000 {
                try await client.send(WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(),
                                                     data: ByteBuffer(string: "are you there")))
            }
        }
        try await client.send(text: "Done")
        let session = await client.collect()
        #expect(session.done && session.text == expected)
        #expect(session.pongs == ["are you there"])
        try await client.close()
        await server.stop()
    }

    @Test func anythingButAWebSocketHandshakeIsAnsweredAndClosed() async throws {
        let server = try await TestServer { $0.idleTimeout = 1 }
        let plain = try await RawConnection.exchange(port: server.port, send: "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(plain.hasPrefix("HTTP/1.1 426"))
        let badKey = try await RawConnection.exchange(
            port: server.port,
            send: "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n")
        #expect(badKey.hasPrefix("HTTP/1.1 400"))
        let garbage = try await RawConnection.exchange(port: server.port, send: "\u{0}\u{1}garbage\r\n\r\n")
        #expect(garbage.hasPrefix("HTTP/1.1 400"))
        // Silent after connecting: closed once the idle timeout passes, with nothing said.
        let start = NIODeadline.now()
        let silent = try await RawConnection.exchange(port: server.port, send: "")
        #expect(silent.isEmpty && NIODeadline.now() - start >= .milliseconds(900))
        #expect(server.logged { $0.contains("no WebSocket handshake in time") })
        await server.stop()
    }

    @Test func clientBeyondMaxClientsIsRefusedWhileTheOthersGoOn() async throws {
        let model = try Shared.model()
        let audio = try Shared.greenApples()
        let expected = try model.transcribe(samples: audio).text
        let server = try await TestServer { $0.maxClients = 2 }
        let first = try await server.connect(), second = try await server.connect()
        try await first.send(samples: Array(audio.prefix(16_000)))
        try await second.send(samples: Array(audio.prefix(16_000)))
        await #expect(throws: WebSocketClient.Failure.refused(status: 503)) { _ = try await server.connect() }
        #expect(server.logged { $0.contains("refused: at capacity (2 clients)") })
        for client in [first, second] {
            try await client.stream(Array(audio.dropFirst(16_000)))
            let session = await client.collect()
            #expect(session.done && session.results.last?.text == expected)
        }
        // A slot frees when a client leaves.
        try await first.close()
        await first.closed()
        #expect(await server.eventually { server.server.sessionCount == 1 })
        let third = try await server.connect()
        try await third.stream(audio)
        #expect(await third.collect().results.last?.text == expected)
        await server.stop()
    }

    @Test func shutdownFinishesOpenStreams() async throws {
        let model = try Shared.model()
        let audio = try Shared.greenApples()
        let part = Array(audio.prefix(24_000))
        let expected = try model.transcribe(samples: part).text
        #expect(!expected.isEmpty)
        let server = try await TestServer()
        let clients = [try await server.connect(), try await server.connect()]
        for client in clients { try await client.send(samples: part) }   // and no Done
        // Each has a partial result, so its audio reached the server before the shutdown.
        for client in clients { #expect(await client.nextResult()?.isFinal == false) }
        async let stopped: Void = server.stop()
        for client in clients {
            let session = await client.collect(untilClosed: true)
            #expect(session.done)
            #expect(session.results.last?.isEOF == true && session.results.last?.text == expected)
            #expect(session.close?.code == 1001)
        }
        await stopped
        await #expect(throws: (any Error).self) { _ = try await server.connect() }
    }

    @Test func backlogIsBoundedAndNothingIsLost() async throws {
        let model = try Shared.model()
        let long = try Shared.recordings().flatMap { $0 }   // about 45 s, sent as fast as the socket takes it
        let expected = try model.transcribe(samples: long).text
        let server = try await TestServer {
            $0.workers = 1
            $0.maxBacklogSeconds = 0.5
        }
        let client = try await server.connect()
        try await client.stream(long, block: 1_600)
        let session = await client.collect()
        #expect(session.text == expected)
        // The bound, plus what two socket reads hold (about 2 s of audio) and one step whose window is complete but
        // not yet run by the batch; never the whole recording.
        let step = Double(model.defaultLookahead.milliseconds + model.frameMilliseconds) / 1000
        #expect(server.server.peakBacklogSeconds < 3 + step, "peak backlog \(server.server.peakBacklogSeconds) s")
        await server.stop()
    }

    @Test func resultMessagesRoundTrip() throws {
        let odd = "a\"b\\c\n\u{1}é▁"
        let result = RecognitionResult(
            text: odd, tokens: [odd, "x"], timestamps: [0.08, 0.16], ysProbs: [-0.5, -0.25], segment: 2,
            words: [.init(word: odd, start: 0.08, end: 0.24, logprob: -0.75)], startTime: 1.6, isFinal: true,
            isEOF: false)
        #expect(result.json.hasPrefix("{ \"text\": \"a\\\"b\\\\c\\n\\u0001é▁\", "))
        #expect(RecognitionResult(json: result.json) == result)
        #expect(RecognitionResult(json: "Done!") == nil)
        for value in [0, 1.2345678, -0.0000001, -2.5, 123.456, 0.08, 0.24, 1.6, 19.999, -0.000283] {
            for decimals in [2, 6] {
                #expect(RecognitionResult.number(value, decimals: decimals) == String(format: "%.\(decimals)f", value))
            }
        }
    }
}

// MARK: Helpers

enum Shared {
    static let greenApplesPath = Fixtures.repository.appendingPathComponent("samples/green-apples.wav").path
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private static let loaded = Result { try SpeechModel(folder: Fixtures.folder("small/la13")) }

    static func model() throws -> SpeechModel { try loaded.get() }

    static func greenApples() throws -> [Float] { try WAVFile(path: greenApplesPath).samples }

    /// The fixture's recordings (16 kHz) and the sample.
    static func recordings() throws -> [[Float]] {
        try ["utt1", "utt2", "utt3", "extra1", "extra2"].map { name in
            let audio = try Fixtures.ref("small", "\(name)_audio")
            return audio.integers.map { Float($0) / 32_768 }
        } + [greenApples()]
    }
}

/// What a client received.
struct Collected: Sendable {
    var results: [RecognitionResult] = []
    var raw: [String] = []
    var done = false
    var close: (code: Int?, reason: String)?
    var pongs: [String] = []

    /// The text of all segments' tokens, each segment's from the result that closed it. (Joining the segments' texts
    /// with spaces gives the same but where the 20 s rule ended a segment inside a word.)
    var text: String {
        let pieces = results.filter(\.isFinal).flatMap(\.tokens).joined().replacingOccurrences(of: "▁", with: " ")
        return pieces.trimmingCharacters(in: .whitespaces)
    }
}

extension WebSocketClient {
    /// Sends samples in messages of `block` samples, then `Done`.
    func stream(_ samples: [Float], block: Int = 1_600, pause: TimeAmount? = nil) async throws {
        var start = 0
        while start < samples.count {
            try await send(samples: Array(samples[start..<min(samples.count, start + block)]))
            start += block
            if let pause { try await Task.sleep(nanoseconds: UInt64(pause.nanoseconds)) }
        }
        try await send(text: "Done")
    }

    /// The next result message.
    func nextResult() async -> RecognitionResult? {
        for await (event, _) in events {
            if case .text(let text) = event, let result = RecognitionResult(json: text) { return result }
            if case .closed = event { return nil }
        }
        return nil
    }

    /// Results until `Done!` (or, with `untilClosed`, until the connection closes).
    func collect(untilClosed: Bool = false) async -> Collected {
        var collected = Collected()
        for await (event, _) in events {
            switch event {
            case .text(let text):
                collected.raw.append(text)
                if text == "Done!" {
                    collected.done = true
                    if !untilClosed { return collected }
                } else if let result = RecognitionResult(json: text) {
                    collected.results.append(result)
                }
            case .binary:
                collected.raw.append("(binary)")
            case .pong(let payload):
                collected.pongs.append(String(decoding: payload, as: UTF8.self))
            case .closed(let code, let reason):
                collected.close = (code, reason)
                return collected
            }
        }
        return collected
    }
}

/// A plain TCP connection: sends bytes, returns everything received until the server closes.
enum RawConnection {
    static func exchange(port: Int, send text: String) async throws -> String {
        let received = NIOLockedValueBox(ByteBuffer())
        let channel = try await ClientBootstrap(group: Shared.group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(received: received))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        if !text.isEmpty { try await channel.writeAndFlush(ByteBuffer(string: text)) }
        try await channel.closeFuture.get()
        return received.withLockedValue { String(buffer: $0) }
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let received: NIOLockedValueBox<ByteBuffer>
        init(received: NIOLockedValueBox<ByteBuffer>) { self.received = received }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = Self.unwrapInboundIn(data)
            received.withLockedValue { $0.writeBuffer(&buffer) }
        }
    }
}

/// A server on a free loopback port with its log captured.
final class TestServer: Sendable {
    let server: SpeechServer
    let port: Int
    private let lines = NIOLockedValueBox<[String]>([])

    init(_ configure: (inout ServerConfiguration) -> Void = { _ in }) async throws {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.workers = 2
        configure(&configuration)
        let lines = lines
        configuration.log = { line in lines.withLockedValue { $0.append(line) } }
        server = try SpeechServer(model: try Shared.model(), configuration: configuration)
        port = try await server.start()
    }

    func connect() async throws -> WebSocketClient {
        try await WebSocketClient.connect(host: "127.0.0.1", port: port, group: Shared.group)
    }

    /// Connects, does `misbehave`, and returns the server's close frame.
    func closeCode(_ misbehave: @Sendable (WebSocketClient) async throws -> Void) async throws -> (code: Int?, reason: String) {
        let client = try await connect()
        try await misbehave(client)
        let session = await client.collect(untilClosed: true)
        return session.close ?? (nil, "(no close)")
    }

    func logged(_ predicate: (String) -> Bool) -> Bool { lines.withLockedValue { $0.contains(where: predicate) } }

    /// Polls `condition` for up to five seconds.
    func eventually(_ condition: @Sendable () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return condition()
    }

    func stop() async { await server.shutdown(grace: .seconds(10)) }
}
