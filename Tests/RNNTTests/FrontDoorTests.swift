import Dispatch
import Foundation
import STTKit
import STTTestFixtures
import Testing

/// The app-facing API as an app uses it: defaults that fit the model, a stream fed from any thread, words, async
/// updates, other sample rates and sample types.
@Suite struct FrontDoorTests {
    static func speech(_ name: String) throws -> [Float] {
        try Fixtures.ref("small", "\(name)_audio").integers.map { Float($0) / 32768 }
    }

    /// A folder holding the [70,1] export of the tiny fixture with a model.json that says it was trained with [70,1]
    /// only (as NVIDIA's *_80ms models are).
    static func singleLookaheadModel() throws -> String {
        let dir = try Fixtures.temporaryDirectory()
        let source = Fixtures.folder("tiny/la1")
        for name in ["encoder-tiny.onnx", "decoder_joint-tiny.onnx", "tokens.txt"] {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: dir + "/" + name)
        }
        let json = #"{"att_context_sizes": [[70, 1]], "export_att_context": [70, 1], "max_symbols": 10}"#
        try Data(json.utf8).write(to: URL(fileURLWithPath: dir + "/model.json"))
        return dir
    }

    @Test func aModelTrainedWithOneLookaheadWorksWithDefaultOptions() throws {
        let model = try SpeechModel(folder: try Self.singleLookaheadModel())
        #expect(model.lookaheads == [.milliseconds(80)])
        #expect(model.defaultLookahead == .milliseconds(80))
        let stream = try TranscriptionStream(model: model)
        #expect(stream.lookahead == .milliseconds(80))
        let audio = try Self.speech("utt1")
        try stream.push(audio)
        let byDefault = stream.finish()
        let explicit = try model.transcribe(samples: audio, options: .init(lookahead: .milliseconds(80)))
        #expect(byDefault == explicit.tokens && !byDefault.isEmpty)
        #expect(throws: TranscriptionError.self) { try TranscriptionStream(model: model, options: .init(lookahead: .milliseconds(1040))) }
    }

    /// Blocks pushed from four threads in turn give the tokens of one thread pushing them all.
    @Test func oneStreamFedFromSeveralThreadsInTurnEqualsOneThread() throws {
        let model = try TranscriptionTests.model.get()
        let audio = try Self.speech("utt2")
        let blocks = stride(from: 0, to: audio.count, by: 3_200).map { Array(audio[$0..<min(audio.count, $0 + 3_200)]) }
        let single = try TranscriptionStream(model: model)
        for block in blocks { try single.push(block) }
        single.finish()

        let shared = try TranscriptionStream(model: model)
        let threads = (0..<4).map { DispatchQueue(label: "feeder-\($0)") }
        let failures = Failures()
        for (i, block) in blocks.enumerated() {
            threads[i % threads.count].sync {
                do { try shared.push(block) } catch { failures.add("\(error)") }
            }
        }
        threads[blocks.count % threads.count].sync { _ = shared.finish() }
        #expect(failures.all.isEmpty)
        #expect(shared.text == single.text && shared.tokens == single.tokens && !single.text.isEmpty)
    }

    /// Readers on other threads may look at the stream while it is being fed.
    @Test func readingWhilePushingIsSafe() async throws {
        let model = try TranscriptionTests.model.get()
        let audio = try Self.speech("utt3")
        let stream = try TranscriptionStream(model: model)
        let reader = Task.detached {
            var longest = 0
            for _ in 0..<200 { longest = max(longest, stream.text.count); await Task.yield() }
            return longest
        }
        for start in stride(from: 0, to: audio.count, by: 1_600) {
            try stream.push(Array(audio[start..<min(audio.count, start + 1_600)]))
        }
        stream.finish()
        let seen = await reader.value
        #expect(seen <= stream.text.count)
        #expect(stream.text == (try model.transcribe(samples: audio)).text)
    }

    @Test func asyncUpdatesCarryEveryTokenAndEndWithTheFinalText() async throws {
        let model = try TranscriptionTests.model.get()
        let audio = try Self.speech("utt1")
        let stream = try TranscriptionStream(model: model, options: .init(lookahead: .milliseconds(480)))
        let updates = stream.updates
        let consumer = Task {
            var tokens: [Token] = []
            var last: TranscriptionUpdate?
            for await update in updates { tokens += update.tokens; last = update }
            return (tokens, last)
        }
        for start in stride(from: 0, to: audio.count, by: 4_000) {
            try stream.push(Array(audio[start..<min(audio.count, start + 4_000)]))
        }
        let all = stream.finish()
        let (tokens, last) = await consumer.value
        #expect(tokens == all && !all.isEmpty)
        #expect(last?.isFinal == true && last?.text == stream.text)
    }

    /// Words spell the text in order, inside the audio; tokens carry start ≤ end and a log-probability ≤ 0.
    @Test(arguments: ["utt1", "utt2", "extra1"])
    func wordsSpellTheTextInsideTheAudio(recording: String) throws {
        let model = try TranscriptionTests.model.get()
        let audio = try Self.speech(recording)
        let transcript = try model.transcribe(samples: audio)
        #expect(!transcript.words.isEmpty)
        #expect(transcript.words.map(\.text).joined(separator: " ") == transcript.text.split(separator: " ").joined(separator: " "))
        let duration = Double(audio.count) / 16_000
        #expect(abs(transcript.duration - duration) < 1e-9)
        for word in transcript.words { #expect(0 <= word.start && word.start <= word.end && word.end <= duration) }
        #expect(transcript.words.map(\.start) == transcript.words.map(\.start).sorted())
        for token in transcript.tokens { #expect(token.start <= token.end && token.logProbability <= 0) }
        #expect(transcript.segments.flatMap(\.words) == transcript.words)
    }

    @Test func int16SamplesEqualTheirFloatValues() throws {
        let model = try TranscriptionTests.model.get()
        let integers = try Fixtures.ref("small", "utt1_audio").integers.map { Int16($0) }
        let a = try TranscriptionStream(model: model), b = try TranscriptionStream(model: model)
        try a.push(integers)
        try b.push(integers.map { Float($0) / 32768 })
        #expect(a.finish() == b.finish())
    }

    @Test func oneCallFileTranscription() throws {
        let model = try TranscriptionTests.model.get()
        let sample = Fixtures.repository.appendingPathComponent("samples/green-apples.wav").path
        let upsampled = Fixtures.models.appendingPathComponent("frontend/green-apples-44k.wav").path
        let text = try model.transcribe(file: sample).text
        #expect(!text.isEmpty)
        #expect(try model.transcribe(file: upsampled).text == text)
    }

    @Test func nonFiniteSamplesAreAnErrorThatSaysWhen() throws {
        let model = try TranscriptionTests.model.get()
        let stream = try TranscriptionStream(model: model)
        try stream.push([Float](repeating: 0, count: 16_000))
        var block = [Float](repeating: 0, count: 8_000)
        block[4_000] = .nan
        #expect(throws: TranscriptionError.nonFiniteSample(seconds: 1.25)) { try stream.push(block) }
        #expect(throws: TranscriptionError.unsupportedSampleRate(0)) { try stream.push([0.5], sampleRate: 0) }
    }
}

/// Errors collected from other threads.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ item: String) { lock.withLock { items.append(item) } }
    var all: [String] { lock.withLock { items } }
}
