import Foundation
import STTTensor
import STTTestFixtures
import Testing
import STTConformer
import STTKit

/// NeMo's transcriptions of the small fixture's recordings (models/small/ref/manifest.json, computed by NeMo).
struct NeMoTranscriptions: Decodable {
    struct Entry: Decodable { let ids: [Int]; let text: String }
    let nemoTranscriptions: [String: [String: Entry]]
    enum CodingKeys: String, CodingKey { case nemoTranscriptions = "nemo_transcriptions" }

    static func load() throws -> [String: [String: Entry]] {
        let url = Fixtures.models.appendingPathComponent("small/ref/manifest.json")
        return try JSONDecoder().decode(NeMoTranscriptions.self, from: Data(contentsOf: url)).nemoTranscriptions
    }
}

func transcribe(_ model: SpeechModel, _ audio: [Float], _ options: TranscriptionStream.Options,
                block: Int = 4_000) throws -> [Token] {
    let stream = try TranscriptionStream(model: model, options: options)
    var start = 0
    while start < audio.count {
        try stream.push(Array(audio[start..<min(audio.count, start + block)]))
        start += block
    }
    return stream.finish()
}

@Suite struct TranscriptionTests {
    static let model = Result { try SpeechModel(folder: Fixtures.folder("small/la13")) }

    /// stt's streaming tokens equal NeMo's own cache-aware streaming (conformer_stream_step) on the trained fixture.
    @Test(arguments: ["utt1", "utt2", "utt3", "stream"],
          [("streaming_export_la13", StreamingConvention.exportCompatible, 13),
           ("streaming_export_la0", .exportCompatible, 0),
           ("streaming_native_la13", .native, 13)])
    func tokensEqualNeMoStreaming(recording: String, reference: (String, StreamingConvention, Int)) throws {
        let model = try Self.model.get()
        let expected = try #require(try NeMoTranscriptions.load()[recording]?[reference.0])
        let audio = try Fixtures.ref("small", "\(recording)_audio").integers.map { Float($0) / 32768 }
        let tokens = try transcribe(model, audio, .init(lookahead: .milliseconds(80 * reference.2), convention: reference.1))
        #expect(tokens.map(\.id) == expected.ids, "\(recording) \(reference.0): \"\(model.text(tokens.map(\.id)))\" vs NeMo \"\(expected.text)\"")
    }

    /// Native streaming equals NeMo's offline transcription where NeMo's own streaming does ([70,13] here).
    @Test(arguments: ["utt1", "utt2", "utt3", "stream"])
    func nativeStreamingEqualsNeMoOffline(recording: String) throws {
        let model = try Self.model.get()
        let expected = try #require(try NeMoTranscriptions.load()[recording]?["offline_la13"])
        let audio = try Fixtures.ref("small", "\(recording)_audio").integers.map { Float($0) / 32768 }
        let tokens = try transcribe(model, audio, .init(lookahead: .milliseconds(1040), convention: .native))
        #expect(tokens.map(\.id) == expected.ids)
        #expect(model.text(tokens.map(\.id)) == expected.text)
    }

    /// How samples arrive does not change the result.
    @Test func blockSizeDoesNotChangeTokens() throws {
        let model = try Self.model.get()
        let audio = try Fixtures.ref("small", "utt1_audio").integers.map { Float($0) / 32768 }
        let a = try transcribe(model, audio, .init(lookahead: .milliseconds(480), convention: .native), block: 160)
        let b = try transcribe(model, audio, .init(lookahead: .milliseconds(480), convention: .native), block: 50_000)
        #expect(a == b && !a.isEmpty)
    }
}

/// models/small/ref/transcriptions.json (models/transcription_reference.py, computed by NeMo).
struct NeMoStreamingReferences: Decodable {
    struct Lookahead: Decodable {
        let native: [Int]
        let export: [Int]
        let offline: [Int]
        let nativeEqualsOffline: Bool
        enum CodingKeys: String, CodingKey { case native, export, offline, nativeEqualsOffline = "native_equals_offline" }
    }
    let recordings: [String: [String: Lookahead]]

    static func load() throws -> NeMoStreamingReferences {
        let url = Fixtures.models.appendingPathComponent("small/ref/transcriptions.json")
        return try JSONDecoder().decode(NeMoStreamingReferences.self, from: Data(contentsOf: url))
    }
}

@Suite struct NeMoStreamingEqualityTests {
    /// Six recordings (11–50 s, trained and unseen sentences) × every trained look-ahead × both conventions: the
    /// tokens of stt's stream equal NeMo's cache-aware streaming; in native mode also NeMo's offline decoding wherever
    /// NeMo's own streaming equals it.
    @Test(arguments: ["utt1", "utt2", "utt3", "stream", "extra1", "extra2"])
    func tokensEqualNeMoAtEveryLookaheadInBothConventions(recording: String) throws {
        let model = try TranscriptionTests.model.get()
        let references = try #require(try NeMoStreamingReferences.load().recordings[recording])
        let audio = try Fixtures.ref("small", "\(recording)_audio").integers.map { Float($0) / 32768 }
        for r in [13, 6, 1, 0] {
            let reference = try #require(references["la\(r)"])
            let native = try transcribe(model, audio, .init(lookahead: .milliseconds(80 * r), convention: .native)).map(\.id)
            let export = try transcribe(model, audio, .init(lookahead: .milliseconds(80 * r), convention: .exportCompatible)).map(\.id)
            #expect(native == reference.native, "\(recording) [70,\(r)] native: \(model.text(native)) | NeMo \(model.text(reference.native))")
            #expect(export == reference.export, "\(recording) [70,\(r)] export: \(model.text(export)) | NeMo \(model.text(reference.export))")
            if reference.nativeEqualsOffline {
                #expect(native == reference.offline, "\(recording) [70,\(r)] native vs NeMo offline")
            }
        }
    }
}

@Suite struct SharedModelTests {
    /// One loaded model, several streams on several threads at once: each gives what it gives alone, also when the
    /// streams' products share the model's pool.
    @Test(arguments: [1, 3])
    func concurrentStreamsOnOneModelEqualSequentialOnes(threads: Int) async throws {
        let model = threads == 1 ? try TranscriptionTests.model.get()
            : try SpeechModel(folder: Fixtures.folder("small/la13"), threads: threads)
        let names = ["utt1", "utt2", "utt3", "extra1"]
        let audios = try names.map { try Fixtures.ref("small", "\($0)_audio").integers.map { Float($0) / 32768 } }
        let sequential = try audios.map { try transcribe(model, $0, .init(lookahead: .milliseconds(480), convention: .native)).map(\.id) }
        let concurrent = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for (i, audio) in audios.enumerated() {
                group.addTask { (i, try transcribe(model, audio, .init(lookahead: .milliseconds(480), convention: .native)).map(\.id)) }
            }
            var results = [[Int]](repeating: [], count: audios.count)
            for try await (i, ids) in group { results[i] = ids }
            return results
        }
        #expect(concurrent == sequential)
    }
}

@Suite struct OddInputTests {
    /// Inputs of any length (one sample, less than a window, just over a chunk) in any block sizes, at every
    /// look-ahead, both conventions and both decoders: the stream finishes without trapping and its token times fit
    /// the audio.
    @Test func anyLengthAndBlockingFinishesCleanly() throws {
        let rnnt = try TranscriptionTests.model.get()
        let ctc = try SpeechModel(folder: Fixtures.folder("small/ctc"))
        var generator = SystemRandomNumberGenerator()
        let speech = try Fixtures.ref("small", "utt1_audio").integers.map { Float($0) / 32768 }
        for length in [1, 2, 159, 160, 161, 399, 400, 1_000, 1_441, 2_560, 4_321, 17_920, 40_000] {
            let audio = Array(speech[20_000..<(20_000 + length)])
            for (model, decoder) in [(rnnt, SpeechModel.Decoder.rnnt), (ctc, .ctc)] {
                for r in [13, 6, 1, 0] {
                    for convention in StreamingConvention.allCases {
                        let stream = try TranscriptionStream(model: model, options: .init(lookahead: .milliseconds(80 * r), convention: convention, decoder: decoder))
                        var start = 0
                        while start < audio.count {
                            let n = Int.random(in: 1...3_000, using: &generator)
                            try stream.push(Array(audio[start..<min(audio.count, start + n)]))
                            start += n
                        }
                        let tokens = stream.finish()
                        let seconds = Double(length) / 16_000
                        #expect(tokens.allSatisfy { $0.start <= seconds + 0.08 }, "\(length) samples [70,\(r)] \(convention) \(decoder)")
                        #expect(stream.finish() == tokens)   // finishing twice is harmless
                        #expect(try stream.push([0.1, 0.2] as [Float]).isEmpty && stream.tokens == tokens)   // so is pushing after
                    }
                }
            }
        }
    }
}
