import Foundation
import STTTestFixtures
import Testing
import STTKit

@Suite struct StreamBatchTests {
    static let names = ["utt1", "utt2", "utt3", "stream", "extra1", "extra2"]

    /// Streams of different recordings (so of different lengths) that open at different times, push blocks of
    /// different sizes, and take turns in a batch smaller than their number: each one's tokens are those of a stream
    /// opened on its own, at every look-ahead, for 1 to 8 streams.
    @Test(arguments: [0, 80, 480, 1040])
    func batchedStreamsGiveTheTokensOfSeparateStreams(lookahead: Int) throws {
        let model = try TranscriptionTests.model.get()
        let audios = try Self.names.map { try Fixtures.ref("small", "\($0)_audio").integers.map { Float($0) / 32768 } }
        let options = TranscriptionStream.Options(lookahead: .milliseconds(lookahead))
        let separate = try audios.map { try transcribe(model, $0, options) }
        for count in [1, 2, 5, 8] {
            let batch = StreamBatch(model: model, maxStreams: 4)
            let result = try runBatched(batch, audios: (0..<count).map { audios[$0 % audios.count] },
                                        options: (0..<count).map { _ in options })
            for i in 0..<count {
                #expect(result.tokens[i] == separate[i % audios.count],
                        "\(count) streams at \(lookahead) ms: stream \(i) differs")
            }
            #expect(result.widest == 1 || count > 1 && result.widest >= 2,
                    "\(count) streams: at most \(result.widest) in one step")
        }
    }

    /// One batch serves streams of every look-ahead and both conventions at once; CTC streams batch too.
    @Test(arguments: ["small/la13", "small/ctc"])
    func streamsOfDifferentOptionsShareABatch(folder: String) throws {
        let model = try SpeechModel(folder: Fixtures.folder(folder))
        let audios = try Self.names.prefix(4).map {
            try Fixtures.ref("small", "\($0)_audio").integers.map { Float($0) / 32768 }
        }
        let options: [TranscriptionStream.Options] = [
            .init(lookahead: .milliseconds(1040)), .init(lookahead: .milliseconds(0)),
            .init(lookahead: .milliseconds(480), convention: .exportCompatible), .init(lookahead: .milliseconds(80)),
        ]
        let separate = try zip(audios, options).map { try transcribe(model, $0, $1) }
        let result = try runBatched(StreamBatch(model: model), audios: audios, options: options)
        #expect(result.tokens == separate)
        #expect(result.widest >= 2)
    }

    /// Subscribers of a batched stream see its tokens as a step decodes them, then the final update.
    @Test func updatesArriveFromSteps() async throws {
        let model = try TranscriptionTests.model.get()
        let audio = try Fixtures.ref("small", "utt1_audio").integers.map { Float($0) / 32768 }
        let batch = StreamBatch(model: model)
        let stream = try batch.makeStream()
        let updates = stream.updates
        #expect(try stream.push(audio).isEmpty, "a batched stream's push leaves the steps to the batch")
        #expect(batch.run() > 0)
        let decoded = stream.tokens
        let all = stream.finish()
        var seen: [Token] = []
        var final = false
        for await update in updates {
            seen += update.tokens
            final = update.isFinal
        }
        #expect(final && seen == all && !decoded.isEmpty)
        #expect(all == (try transcribe(model, audio, .init())))
    }

    /// The step handler runs once for each step that advanced its stream, after the step, and may use the stream:
    /// closing utterances there at endpoints gives the utterances of a separate stream closed after each step.
    @Test func stepHandlersSeeEveryStepAndMayCloseUtterances() throws {
        let model = try TranscriptionTests.model.get()
        let once = try Fixtures.ref("small", "utt1_audio").integers.map { Float($0) / 32768 }
        let audio = once + [Float](repeating: 0, count: 48_000) + once
        let options = TranscriptionStream.Options(lookahead: .milliseconds(80), endpointing: Endpointing())
        // A separate stream fed 80 ms a push, so that each push runs at most one step (160 ms at this look-ahead).
        let separate = try TranscriptionStream(model: model, options: options)
        var expected: [String] = []
        for start in stride(from: 0, to: audio.count, by: 1_280) {
            try separate.push(Array(audio[start..<min(audio.count, start + 1_280)]))
            if separate.isEndpoint { expected.append(separate.endUtterance().transcript.text) }
        }
        separate.finish()
        expected.append(separate.endUtterance().transcript.text)

        let batch = StreamBatch(model: model)
        let calls = Counter()
        let stream = try batch.makeStream(options: options) { stream in
            calls.add(1)
            if stream.isEndpoint { calls.append(stream.endUtterance().transcript.text) }
        }
        var steps = 0
        for start in stride(from: 0, to: audio.count, by: 16_000) {
            try stream.push(Array(audio[start..<min(audio.count, start + 16_000)]))
            steps += batch.run()
        }
        stream.finish()
        let utterances = calls.texts + [stream.endUtterance().transcript.text]
        #expect(calls.count == steps && steps > 10)
        #expect(utterances == expected && expected.count >= 2, "\(utterances) vs \(expected)")
    }

    /// A released stream leaves its batch.
    @Test func releasedStreamsLeaveTheBatch() throws {
        let model = try TranscriptionTests.model.get()
        let batch = StreamBatch(model: model)
        var streams = try (0..<3).map { _ in try batch.makeStream() }
        #expect(batch.streamCount == 3)
        streams.removeLast()
        #expect(batch.streamCount == 2)
        try streams[0].push([Float](repeating: 0, count: 40_000))
        #expect(batch.step() == 1)
        streams.removeAll()
        #expect(batch.step() == 0 && batch.streamCount == 0)
    }

    /// Opens stream i at tick 2i, pushes blocks of 800 + 400·i samples per tick and runs one batch step per tick;
    /// finishes each stream when its audio ends.
    private func runBatched(_ batch: StreamBatch, audios: [[Float]], options: [TranscriptionStream.Options])
        throws -> (tokens: [[Token]], widest: Int) {
        var streams: [TranscriptionStream?] = Array(repeating: nil, count: audios.count)
        var offsets = Array(repeating: 0, count: audios.count)
        var tokens: [[Token]?] = Array(repeating: nil, count: audios.count)
        var widest = 0
        var tick = 0
        while tokens.contains(where: { $0 == nil }) {
            for i in audios.indices where tokens[i] == nil && tick >= 2 * i {
                if streams[i] == nil { streams[i] = try batch.makeStream(options: options[i]) }
                guard let stream = streams[i] else { continue }
                let end = min(audios[i].count, offsets[i] + 800 + 400 * i)
                try stream.push(Array(audios[i][offsets[i]..<end]))
                offsets[i] = end
                if end == audios[i].count { tokens[i] = stream.finish() }
            }
            widest = max(widest, batch.step())
            tick += 1
        }
        return (tokens.map { $0 ?? [] }, widest)
    }
}

/// Calls and texts recorded from a step handler.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var calls = 0
    private var recorded: [String] = []
    func add(_ n: Int) { lock.withLock { calls += n } }
    func append(_ text: String) { lock.withLock { recorded.append(text) } }
    var count: Int { lock.withLock { calls } }
    var texts: [String] { lock.withLock { recorded } }
}
