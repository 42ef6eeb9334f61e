import Foundation
import STTKit
import STTTestFixtures
import Testing

/// Endpointing: the decoder's blank frames end utterances at pauses; closing one keeps the stream decoding.
@Suite struct EndpointingTests {
    static let silence = [Float](repeating: 0, count: 16_000 * 5 / 2)   // 2.5 s

    /// samples/green-apples.wav: "my brother likes green apples", 1.96 s.
    static func greenApples() throws -> [Float] {
        let wav = try WAVReader(path: Fixtures.repository.appendingPathComponent("samples/green-apples.wav").path)
        var samples: [Float] = []
        while try wav.read(maxFrames: 16_000, into: &samples) > 0 {}
        return samples
    }

    /// Pushes `audio` 100 ms at a time, closing an utterance at every endpoint, then finishes; returns every
    /// utterance with text.
    static func utterances(_ stream: TranscriptionStream, _ audio: [Float]) throws -> [Utterance] {
        var out: [Utterance] = []
        for start in stride(from: 0, to: audio.count, by: 1_600) {
            try stream.push(Array(audio[start..<min(audio.count, start + 1_600)]))
            if stream.isEndpoint { out.append(stream.endUtterance()) }
        }
        stream.finish()
        out.append(stream.endUtterance())
        return out.filter { !$0.text.isEmpty }
    }

    /// Three sentences with 2.5 s pauses come out as three utterances, each inside its sentence's time, whose tokens
    /// together are exactly the tokens of the same stream without endpointing.
    @Test func pausesSplitARecordingIntoItsUtterances() throws {
        let model = try TranscriptionTests.model.get()
        let apples = try Self.greenApples()
        let audio = [apples, apples, apples].flatMap { $0 + Self.silence }
        let stream = try TranscriptionStream(model: model, options: .init(endpointing: Endpointing()))
        let found = try Self.utterances(stream, audio)
        let whole = try model.transcribe(samples: audio)

        #expect(found.count == 3)
        #expect(found.flatMap(\.transcript.tokens) == whole.tokens)
        #expect(found.first?.text == "my brother likes green apples")
        #expect(found.map(\.index) == Array(0..<found.count))
        let period = Double(apples.count + Self.silence.count) / 16_000
        for (i, utterance) in found.enumerated() {
            let speechStart = Double(i) * period, speechEnd = speechStart + Double(apples.count) / 16_000
            // Closed in the pause after its sentence, within the 1.2 s rule plus one [70,13] step (1.12 s).
            #expect(utterance.end >= speechEnd && utterance.end <= speechEnd + 2.5, "\(utterance.end)")
            #expect(utterance.start <= speechStart + 0.01, "\(utterance.start)")
            for word in utterance.transcript.words {
                #expect(word.start >= utterance.start && word.end <= utterance.end + 1e-9)
                #expect(word.start >= speechStart - 0.01 && word.start < speechEnd, "\(word.text) \(word.start)")
            }
        }
        // After the last endUtterance the stream holds nothing; decoding went on through the whole recording.
        #expect(stream.tokens.isEmpty)
        #expect(abs(stream.duration - Double(audio.count) / 16_000) < 1e-9)
    }

    @Test func withoutRulesThereIsNoEndpointAndOneUtterance() throws {
        let model = try TranscriptionTests.model.get()
        let apples = try Self.greenApples()
        let audio = apples + Self.silence + apples
        let stream = try TranscriptionStream(model: model)
        let found = try Self.utterances(stream, audio)
        #expect(found.count == 1)
        #expect(found.first?.transcript.tokens == (try model.transcribe(samples: audio)).tokens)
    }

    @Test func eachRuleCanBeSwitchedOff() throws {
        let model = try TranscriptionTests.model.get()
        // Silence alone: the no-speech rule ends it. Should the model decode a token from silence, only the
        // after-speech rule may end it (3 s pushed: its trailing silence is then ≥ 1.2 s).
        for (rules, noSpeechRule) in [(Endpointing(), true),
                                      (Endpointing(silenceWithoutSpeech: nil, maxUtterance: nil), false),
                                      (Endpointing(silenceWithoutSpeech: 4.0), false)] {
            let stream = try TranscriptionStream(model: model, options: .init(lookahead: .milliseconds(0), endpointing: rules))
            try stream.push(Self.silence + Self.silence.prefix(8_000))   // 3 s
            let heardSpeech = !stream.tokens.isEmpty && (stream.tokens.last?.end ?? 0) <= 1.5
            #expect(stream.isEndpoint == (stream.tokens.isEmpty ? noSpeechRule : heardSpeech), "\(stream.tokens.map(\.piece))")
        }
        // Speech then a pause: only the after-speech rule ends it.
        let apples = try Self.greenApples()
        for (rules, expected) in [(Endpointing(silenceWithoutSpeech: nil, maxUtterance: nil), true),
                                  (Endpointing(silenceAfterSpeech: nil, maxUtterance: nil), false)] {
            let stream = try TranscriptionStream(model: model, options: .init(endpointing: rules))
            try stream.push(apples + Self.silence + Self.silence)
            #expect(!stream.tokens.isEmpty)
            #expect(stream.isEndpoint == expected)
        }
        // The length rule cuts speech with no pause at all, every 1.0 s rounded up to a [70,0] step.
        let stream = try TranscriptionStream(model: model, options: .init(
            lookahead: .milliseconds(0),
            endpointing: Endpointing(silenceWithoutSpeech: nil, silenceAfterSpeech: nil, maxUtterance: 1.0)))
        var lengths: [Double] = []
        for start in stride(from: 0, to: apples.count, by: 1_600) {
            try stream.push(Array(apples[start..<min(apples.count, start + 1_600)]))
            if stream.isEndpoint {
                let utterance = stream.endUtterance()
                lengths.append(utterance.end - utterance.start)
            }
        }
        #expect(!lengths.isEmpty && lengths.allSatisfy { $0 >= 1.0 && $0 < 1.0 + 0.2 }, "\(lengths)")
    }

    @Test func updatesAnnounceAnEndpointOnce() async throws {
        let model = try TranscriptionTests.model.get()
        let stream = try TranscriptionStream(model: model, options: .init(endpointing: Endpointing()))
        let updates = stream.updates
        let audio = try Self.greenApples() + Self.silence + Self.silence
        for start in stride(from: 0, to: audio.count, by: 1_600) {
            try stream.push(Array(audio[start..<min(audio.count, start + 1_600)]))
        }
        stream.finish()
        var endpoints = 0
        for await update in updates where update.isEndpoint { endpoints += 1 }
        #expect(endpoints == 1)
    }
}
