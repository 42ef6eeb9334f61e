import CSTT
import Foundation
import STTKit
import STTTestFixtures
import Testing

// The C API called as a C host calls it: through stt.h's declarations (module CSTT), linked to the entry points of
// STTCAPI. Bad arguments of every kind must return their status with a one-line message naming the function and
// leave the outputs alone; good ones must give what STTKit gives.

private let la13 = Fixtures.folder("small/la13")
private let expected = "my brother likes green apples"

private func lastError() -> String { String(cString: stt_last_error()) }

/// The sample as mono floats at its own rate.
private func sample() throws -> (samples: [Float], rate: Int32) {
    let wav = try WAVFile(path: Fixtures.repository.appendingPathComponent("samples/green-apples.wav").path)
    return (wav.samples, Int32(wav.sampleRate))
}

/// One loaded model for the suite (loading is the slow part). A model handle may be used from any thread.
nonisolated(unsafe) private let sharedModel: Result<OpaquePointer, CAPIError> = {
    var model: OpaquePointer?
    let status = stt_model_load(la13, nil, &model)
    guard status == STT_OK, let model else { return .failure(CAPIError(status: status, message: lastError())) }
    return .success(model)
}()

private struct CAPIError: Error {
    let status: stt_status
    let message: String
}

private func check(_ status: stt_status) throws {
    if status != STT_OK { throw CAPIError(status: status, message: lastError()) }
}

private func takeString(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
    defer { stt_free(pointer) }
    return pointer.map { String(cString: $0) }
}

private func text(_ stream: OpaquePointer?) throws -> String {
    var pointer: UnsafeMutablePointer<CChar>?
    try check(stt_stream_text(stream, &pointer))
    return takeString(pointer) ?? "<NULL>"
}

private func newText(_ stream: OpaquePointer?) throws -> String {
    var pointer: UnsafeMutablePointer<CChar>?
    try check(stt_stream_read_new_text(stream, &pointer))
    return takeString(pointer) ?? "<NULL>"
}

/// Expects `status` and a one-line message that names `function`.
private func expectFailure(_ status: stt_status, _ expectedStatus: stt_status, _ function: String? = nil,
                           sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(status == expectedStatus, "status \(status.rawValue), message: \(lastError())", sourceLocation: sourceLocation)
    let message = lastError()
    #expect(!message.isEmpty && !message.contains("\n"), sourceLocation: sourceLocation)
    if let function { #expect(message.hasPrefix(function + ": "), "\(message)", sourceLocation: sourceLocation) }
}

@Suite struct CAPITests {
    @Test func versionsMatchTheHeader() {
        #expect(stt_abi_version() == UInt32(STT_ABI_VERSION))
        #expect(String(cString: stt_version()) == STT_VERSION)
        #expect(STT_VERSION == STTKitVersion.string)
    }

    @Test func everyNullArgumentIsAnErrorAndLeavesOutputsAlone() throws {
        let model = try sharedModel.get()
        let sentinel = OpaquePointer(bitPattern: 0x1234)
        var out = sentinel
        expectFailure(stt_model_options_init(nil), STT_ERROR_INVALID_ARGUMENT, "stt_model_options_init")
        expectFailure(stt_model_load(nil, nil, &out), STT_ERROR_INVALID_ARGUMENT, "stt_model_load")
        expectFailure(stt_model_load(la13, nil, nil), STT_ERROR_INVALID_ARGUMENT, "stt_model_load")
        expectFailure(stt_model_get_info(nil, nil), STT_ERROR_INVALID_ARGUMENT, "stt_model_get_info")
        expectFailure(stt_stream_options_init(nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_options_init")
        expectFailure(stt_stream_create(nil, nil, &out), STT_ERROR_INVALID_ARGUMENT, "stt_stream_create")
        expectFailure(stt_stream_create(model, nil, nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_create")
        #expect(out == sentinel)

        var text: UnsafeMutablePointer<CChar>? = UnsafeMutablePointer(bitPattern: 0x1234)
        var words: UnsafeMutablePointer<stt_word>? = UnsafeMutablePointer(bitPattern: 0x1234)
        var tokens: UnsafeMutablePointer<stt_token>? = UnsafeMutablePointer(bitPattern: 0x1234)
        var utterance: UnsafeMutablePointer<stt_utterance>? = UnsafeMutablePointer(bitPattern: 0x1234)
        var count = 7, seconds = -1.0, endpoint: Int32 = 7
        let samples: [Float] = [0, 0]
        expectFailure(stt_stream_push_f32(nil, samples, 2, 16_000), STT_ERROR_INVALID_ARGUMENT, "stt_stream_push_f32")
        expectFailure(stt_stream_push_s16(nil, [0, 0], 2, 16_000), STT_ERROR_INVALID_ARGUMENT, "stt_stream_push_s16")
        expectFailure(stt_stream_finish(nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_finish")
        expectFailure(stt_stream_reset(nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_reset")
        expectFailure(stt_stream_read_new_text(nil, &text), STT_ERROR_INVALID_ARGUMENT, "stt_stream_read_new_text")
        expectFailure(stt_stream_text(nil, &text), STT_ERROR_INVALID_ARGUMENT, "stt_stream_text")
        expectFailure(stt_stream_words(nil, &words, &count), STT_ERROR_INVALID_ARGUMENT, "stt_stream_words")
        expectFailure(stt_stream_tokens(nil, &tokens, &count), STT_ERROR_INVALID_ARGUMENT, "stt_stream_tokens")
        expectFailure(stt_stream_duration(nil, &seconds), STT_ERROR_INVALID_ARGUMENT, "stt_stream_duration")
        expectFailure(stt_stream_is_endpoint(nil, &endpoint), STT_ERROR_INVALID_ARGUMENT, "stt_stream_is_endpoint")
        expectFailure(stt_stream_end_utterance(nil, &utterance), STT_ERROR_INVALID_ARGUMENT, "stt_stream_end_utterance")

        var stream: OpaquePointer?
        try check(stt_stream_create(model, nil, &stream))
        defer { stt_stream_free(stream) }
        expectFailure(stt_stream_read_new_text(stream, nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_read_new_text")
        expectFailure(stt_stream_text(stream, nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_text")
        expectFailure(stt_stream_words(stream, nil, &count), STT_ERROR_INVALID_ARGUMENT, "stt_stream_words")
        expectFailure(stt_stream_words(stream, &words, nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_words")
        expectFailure(stt_stream_tokens(stream, nil, &count), STT_ERROR_INVALID_ARGUMENT, "stt_stream_tokens")
        expectFailure(stt_stream_tokens(stream, &tokens, nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_tokens")
        expectFailure(stt_stream_duration(stream, nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_duration")
        expectFailure(stt_stream_is_endpoint(stream, nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_is_endpoint")
        #expect(text == UnsafeMutablePointer(bitPattern: 0x1234) && words == UnsafeMutablePointer(bitPattern: 0x1234))
        #expect(tokens == UnsafeMutablePointer(bitPattern: 0x1234) && utterance == UnsafeMutablePointer(bitPattern: 0x1234))
        #expect(count == 7 && seconds == -1 && endpoint == 7)
        stt_stream_free(nil)
        stt_model_free(nil)
        stt_free(nil)
    }

    @Test func modelOptionsAreChecked() throws {
        var options = stt_model_options()
        try check(stt_model_options_init(&options))
        #expect(options.struct_size == UInt32(MemoryLayout<stt_model_options>.size))
        #expect(options.threads == 1 && options.precision == Int32(STT_PRECISION_FP32))
        var model: OpaquePointer?
        for threads: Int32 in [0, -1, 65, .max, .min] {
            var bad = options
            bad.threads = threads
            expectFailure(stt_model_load(la13, &bad, &model), STT_ERROR_INVALID_ARGUMENT, "stt_model_load")
        }
        for value: Int32 in [3, -1, .max] {
            var precision = options
            precision.precision = value
            expectFailure(stt_model_load(la13, &precision, &model), STT_ERROR_UNSUPPORTED, "stt_model_load")
        }
        for size: UInt32 in [0, 4, UInt32(MemoryLayout<stt_model_options>.size) - 1, 1 << 20, .max] {
            var bad = options
            bad.struct_size = size
            expectFailure(stt_model_load(la13, &bad, &model), STT_ERROR_INVALID_ARGUMENT, "stt_model_load")
            #expect(lastError().contains("struct_size"))
        }
        #expect(model == nil)
    }

    /// A caller's struct from a later header (larger, its new fields zero) is taken; one that sets a field this
    /// library does not know is refused.
    @Test func largerOptionStructsNeedTheirNewFieldsZero() throws {
        let size = MemoryLayout<stt_stream_options>.size
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size + 16, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size + 16)
        let options = raw.assumingMemoryBound(to: stt_stream_options.self)
        try check(stt_stream_options_init(options))
        options.pointee.struct_size = UInt32(size + 16)
        var stream: OpaquePointer?
        try check(stt_stream_create(try sharedModel.get(), options, &stream))
        stt_stream_free(stream)
        stream = nil
        raw.storeBytes(of: 1, toByteOffset: size + 8, as: UInt8.self)
        expectFailure(stt_stream_create(try sharedModel.get(), options, &stream), STT_ERROR_INVALID_ARGUMENT,
                      "stt_stream_create")
        #expect(stream == nil)
    }

    @Test func badModelFoldersAreModelErrors() throws {
        var model: OpaquePointer?
        for folder in ["/nonexistent/model", "", Fixtures.folder("small"), Fixtures.repository.path + "/README.md"] {
            expectFailure(stt_model_load(folder, nil, &model), STT_ERROR_MODEL)
        }
        let notUTF8: [CChar] = [CChar(bitPattern: 0xFF), CChar(bitPattern: 0xFE), 0]
        expectFailure(stt_model_load(notUTF8, nil, &model), STT_ERROR_INVALID_ARGUMENT, "stt_model_load")
        #expect(model == nil)
    }

    @Test func modelInfoFillsWhatFits() throws {
        let model = try sharedModel.get()
        var info = stt_model_info()
        info.struct_size = UInt32(MemoryLayout<stt_model_info>.size)
        try check(stt_model_get_info(model, &info))
        let speech = try SpeechModel(folder: la13)
        #expect(Int(info.default_lookahead_ms) == speech.defaultLookahead.milliseconds)
        let lookaheads = withUnsafeBytes(of: info.lookaheads_ms) { Array($0.bindMemory(to: Int32.self)) }
        #expect(lookaheads.prefix(Int(info.lookahead_count)).map(Int.init) == speech.lookaheads.map(\.milliseconds).sorted())
        #expect(info.has_rnnt == 1 && info.has_ctc == 0 && info.threads == 1 && info.frame_ms == 80)
        #expect(Int(info.vocabulary_size) == speech.tokens.count && info.sample_rate == 16_000)

        // An older, shorter struct gets only its fields; a newer, longer one gets zeros in the fields we do not know.
        let size = MemoryLayout<stt_model_info>.size
        var bytes = [UInt8](repeating: 0xAB, count: size + 8)
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(8), as: UInt32.self) }
        try bytes.withUnsafeMutableBytes { raw throws in
            try check(stt_model_get_info(model, raw.baseAddress?.assumingMemoryBound(to: stt_model_info.self)))
        }
        #expect(bytes[4..<8].elementsEqual(withUnsafeBytes(of: info.default_lookahead_ms) { Array($0) }))
        #expect(bytes[8...].allSatisfy { $0 == 0xAB })
        bytes = [UInt8](repeating: 0xAB, count: size + 8)
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(size + 8), as: UInt32.self) }
        try bytes.withUnsafeMutableBytes { raw throws in
            try check(stt_model_get_info(model, raw.baseAddress?.assumingMemoryBound(to: stt_model_info.self)))
        }
        #expect(bytes[size...].allSatisfy { $0 == 0 })
        info.struct_size = 3
        expectFailure(stt_model_get_info(model, &info), STT_ERROR_INVALID_ARGUMENT, "stt_model_get_info")
    }

    @Test func streamOptionsAreChecked() throws {
        let model = try sharedModel.get()
        var defaults = stt_stream_options()
        try check(stt_stream_options_init(&defaults))
        #expect(defaults.lookahead_ms == STT_LOOKAHEAD_DEFAULT && defaults.decoder == Int32(STT_DECODER_DEFAULT))
        #expect(defaults.convention == Int32(STT_CONVENTION_NATIVE) && defaults.endpointing == 0)
        #expect(defaults.silence_without_speech_ms == 2400 && defaults.silence_after_speech_ms == 1200)
        #expect(defaults.max_utterance_ms == 20_000)
        var stream: OpaquePointer?
        func refused(_ change: (inout stt_stream_options) -> Void, _ status: stt_status,
                     sourceLocation: SourceLocation = #_sourceLocation) {
            var options = defaults
            change(&options)
            expectFailure(stt_stream_create(model, &options, &stream), status, sourceLocation: sourceLocation)
        }
        refused({ $0.lookahead_ms = 123 }, STT_ERROR_UNSUPPORTED)
        refused({ $0.lookahead_ms = -2 }, STT_ERROR_INVALID_ARGUMENT)
        refused({ $0.lookahead_ms = .min }, STT_ERROR_INVALID_ARGUMENT)
        refused({ $0.decoder = Int32(STT_DECODER_CTC) }, STT_ERROR_UNSUPPORTED)
        refused({ $0.decoder = 3 }, STT_ERROR_INVALID_ARGUMENT)
        refused({ $0.decoder = -1 }, STT_ERROR_INVALID_ARGUMENT)
        refused({ $0.convention = 2 }, STT_ERROR_INVALID_ARGUMENT)
        refused({ $0.endpointing = 2 }, STT_ERROR_INVALID_ARGUMENT)
        refused({ $0.endpointing = 1; $0.silence_after_speech_ms = -1 }, STT_ERROR_INVALID_ARGUMENT)
        refused({ $0.endpointing = 1; $0.max_utterance_ms = .min }, STT_ERROR_INVALID_ARGUMENT)
        refused({ $0.struct_size = 0 }, STT_ERROR_INVALID_ARGUMENT)
        #expect(stream == nil)
        for lookahead: Int32 in [0, 80, 480, 1040, STT_LOOKAHEAD_DEFAULT] {
            var options = defaults
            options.lookahead_ms = lookahead
            options.convention = Int32(STT_CONVENTION_EXPORT_COMPATIBLE)
            try check(stt_stream_create(model, &options, &stream))
            stt_stream_free(stream)
        }
    }

    @Test func badPushesAreErrorsAndUseNothing() throws {
        let model = try sharedModel.get()
        var stream: OpaquePointer?
        try check(stt_stream_create(model, nil, &stream))
        defer { stt_stream_free(stream) }
        let samples = [Float](repeating: 0.1, count: 16)
        expectFailure(stt_stream_push_f32(stream, samples, -1, 16_000), STT_ERROR_INVALID_ARGUMENT, "stt_stream_push_f32")
        expectFailure(stt_stream_push_f32(stream, samples, .min, 16_000), STT_ERROR_INVALID_ARGUMENT)
        expectFailure(stt_stream_push_f32(stream, samples, .max, 16_000), STT_ERROR_INVALID_ARGUMENT)
        expectFailure(stt_stream_push_s16(stream, [1, 2], .max / 2 + 1, 16_000), STT_ERROR_INVALID_ARGUMENT)
        expectFailure(stt_stream_push_f32(stream, nil, 16, 16_000), STT_ERROR_INVALID_ARGUMENT, "stt_stream_push_f32")
        expectFailure(stt_stream_push_s16(stream, nil, 1, 16_000), STT_ERROR_INVALID_ARGUMENT, "stt_stream_push_s16")
        for rate: Int32 in [0, -1, .min, 768_001, .max] {
            expectFailure(stt_stream_push_f32(stream, samples, 16, rate), STT_ERROR_AUDIO)
            expectFailure(stt_stream_push_s16(stream, [1, 2, 3], 3, rate), STT_ERROR_AUDIO)
            expectFailure(stt_stream_push_f32(stream, nil, 0, rate), STT_ERROR_AUDIO)
        }
        for bad: Float in [.nan, .infinity, -.infinity, 1_001, -5e30, .signalingNaN] {
            var block = samples
            block[7] = bad
            expectFailure(stt_stream_push_f32(stream, block, 16, 16_000), STT_ERROR_AUDIO)
            expectFailure(stt_stream_push_f32(stream, block, 16, 44_100), STT_ERROR_AUDIO)
        }
        var seconds = -1.0
        try check(stt_stream_duration(stream, &seconds))
        #expect(seconds == 0)
        try check(stt_stream_push_f32(stream, nil, 0, 16_000))
        try check(stt_stream_push_s16(stream, nil, 0, 1))
        try check(stt_stream_push_f32(stream, samples, 16, 768_000))
        try check(stt_stream_finish(stream))
        try check(stt_stream_finish(stream))
        expectFailure(stt_stream_push_f32(stream, samples, 16, 16_000), STT_ERROR_STATE, "stt_stream_push_f32")
        expectFailure(stt_stream_push_s16(stream, [1], 1, 16_000), STT_ERROR_STATE, "stt_stream_push_s16")
        try check(stt_stream_reset(stream))
        try check(stt_stream_push_f32(stream, samples, 16, 16_000))
        try check(stt_stream_duration(stream, &seconds))
        #expect(seconds == 16.0 / 16_000)
    }

    /// 16-bit and float pushes in blocks of any size, at the file's rate or another, give STTKit's text; the pieces of
    /// new text read after every push add up to the text at every point.
    @Test(arguments: [1_600, 1, 777, 1 << 20])
    func transcribesLikeSTTKit(block: Int) throws {
        let model = try sharedModel.get()
        let (samples, rate) = try sample()
        let reference = try SpeechModel(folder: la13).transcribe(samples: samples, sampleRate: Int(rate))
        #expect(reference.text == expected)
        let pcm = samples.map { Int16(clamping: Int(($0 * 32_768).rounded())) }
        for sixteenBit in [false, true] {
            var stream: OpaquePointer?
            try check(stt_stream_create(model, nil, &stream))
            defer { stt_stream_free(stream) }
            var pieces = ""
            for start in stride(from: 0, to: samples.count, by: block) {
                let end = min(samples.count, start + block)
                if sixteenBit {
                    try pcm[start..<end].withUnsafeBufferPointer { try check(stt_stream_push_s16(stream, $0.baseAddress, $0.count, rate)) }
                } else {
                    try samples[start..<end].withUnsafeBufferPointer { try check(stt_stream_push_f32(stream, $0.baseAddress, $0.count, rate)) }
                }
                if block > 1 || start % 1_600 == 0 {
                    pieces += try newText(stream)
                    #expect(try text(stream) == pieces)
                }
            }
            try check(stt_stream_finish(stream))
            pieces += try newText(stream)
            #expect(try text(stream) == expected)
            #expect(pieces == expected)
            #expect(try newText(stream) == "")

            var words: UnsafeMutablePointer<stt_word>?
            var count = 0
            try check(stt_stream_words(stream, &words, &count))
            defer { stt_free(words) }
            let read = (0..<count).compactMap { i in words.map { (String(cString: $0[i].text), $0[i].start, $0[i].end, $0[i].logprob) } }
            #expect(read.map(\.0) == reference.words.map(\.text))
            #expect(read.map(\.1) == reference.words.map(\.start) && read.map(\.2) == reference.words.map(\.end))
            #expect(read.map(\.3) == reference.words.map(\.logProbability) || sixteenBit)

            var tokens: UnsafeMutablePointer<stt_token>?
            try check(stt_stream_tokens(stream, &tokens, &count))
            defer { stt_free(tokens) }
            let ids = (0..<count).compactMap { i in tokens.map { Int($0[i].id) } }
            let pieceNames = (0..<count).compactMap { i in tokens.map { String(cString: $0[i].piece) } }
            #expect(ids == reference.tokens.map(\.id) && pieceNames == reference.tokens.map(\.piece))
        }
    }

    /// Text read piece by piece keeps the utterance's spaces exactly: a piece never starts the utterance with a
    /// space or ends with one, and the space between words comes with the next word. At 0 ms look-ahead words become
    /// final one or two at a time, so the text arrives in many pieces.
    @Test func newTextPiecesConcatenateToTheText() throws {
        let model = try sharedModel.get()
        let (samples, rate) = try sample()
        let reference = try SpeechModel(folder: la13).transcribe(samples: samples, sampleRate: Int(rate),
                                                                 options: .init(lookahead: .milliseconds(0)))
        var options = stt_stream_options()
        try check(stt_stream_options_init(&options))
        options.lookahead_ms = 0
        var stream: OpaquePointer?
        try check(stt_stream_create(model, &options, &stream))
        defer { stt_stream_free(stream) }
        var pieces: [String] = []
        for start in stride(from: 0, to: samples.count, by: 160) {
            let end = min(samples.count, start + 160)
            try samples[start..<end].withUnsafeBufferPointer { try check(stt_stream_push_f32(stream, $0.baseAddress, $0.count, rate)) }
            let piece = try newText(stream)
            if !piece.isEmpty { pieces.append(piece) }
            #expect(pieces.joined() == (try text(stream)))
        }
        try check(stt_stream_finish(stream))
        pieces.append(try newText(stream))
        #expect(pieces.joined() == reference.text && !reference.text.isEmpty)
        #expect(pieces.count >= 4, "\(pieces)")
        #expect(pieces.dropFirst().contains { $0.hasPrefix(" ") }, "\(pieces)")
        #expect(pieces.first?.hasPrefix(" ") == false && pieces.allSatisfy { !$0.hasSuffix(" ") })
    }

    /// Endpointing through the C API splits the stream where STTKit's stream does, into the same utterances: the
    /// sample, then silence until an endpoint, twice.
    @Test func endpointsCloseUtterancesAsSTTKitDoes() throws {
        let model = try sharedModel.get()
        let (samples, rate) = try sample()
        let silence = [Float](repeating: 0, count: Int(rate) / 10)

        let swiftStream = try TranscriptionStream(model: SpeechModel(folder: la13), options: .init(endpointing: Endpointing()))
        var reference: [(utterance: Utterance, silentBlocks: Int)] = []
        for _ in 0..<2 {
            try swiftStream.push(samples, sampleRate: Int(rate))
            var blocks = 0
            repeat {
                try swiftStream.push(silence, sampleRate: Int(rate))
                blocks += 1
            } while !swiftStream.isEndpoint && blocks < 50
            reference.append((swiftStream.endUtterance(), blocks))
        }
        #expect(reference.first?.utterance.text == expected)

        var options = stt_stream_options()
        try check(stt_stream_options_init(&options))
        options.endpointing = 1
        var stream: OpaquePointer?
        try check(stt_stream_create(model, &options, &stream))
        defer { stt_stream_free(stream) }
        var endpoint: Int32 = -1
        for (round, expectedUtterance) in reference.enumerated() {
            try check(stt_stream_push_f32(stream, samples, samples.count, rate))
            var blocks = 0
            repeat {
                try check(stt_stream_push_f32(stream, silence, silence.count, rate))
                try check(stt_stream_is_endpoint(stream, &endpoint))
                blocks += 1
            } while endpoint == 0 && blocks < 50
            #expect(endpoint == 1 && blocks == expectedUtterance.silentBlocks, "utterance \(round)")
            #expect(try newText(stream) == expectedUtterance.utterance.text)
            var utterance: UnsafeMutablePointer<stt_utterance>?
            try check(stt_stream_end_utterance(stream, &utterance))
            defer { stt_free(utterance) }
            let value = try #require(utterance?.pointee)
            let swift = expectedUtterance.utterance
            #expect(value.index == Int64(round) && Int(value.index) == swift.index)
            #expect(String(cString: value.text) == swift.text)
            #expect(value.start == swift.start && value.end == swift.end)
            let words = (0..<value.word_count).compactMap { i in value.words.map { String(cString: $0[i].text) } }
            #expect(words == swift.transcript.words.map(\.text))
            try check(stt_stream_is_endpoint(stream, &endpoint))
            #expect(endpoint == 0)
            #expect(try text(stream) == "" && (try newText(stream)) == "")
        }
        // Text not read when an utterance closes stays with it: nothing of it is read afterwards.
        try check(stt_stream_push_f32(stream, samples, samples.count, rate))
        try check(stt_stream_finish(stream))
        try check(stt_stream_end_utterance(stream, nil))
        #expect(try newText(stream) == "" && (try text(stream)) == "")
        var utterance: UnsafeMutablePointer<stt_utterance>?
        try check(stt_stream_end_utterance(stream, &utterance))
        #expect(utterance?.pointee.index == 3 && utterance?.pointee.word_count == 0 && utterance?.pointee.words == nil)
        stt_free(utterance)
        try check(stt_stream_reset(stream))
        try check(stt_stream_end_utterance(stream, &utterance))
        #expect(utterance?.pointee.index == 0)
        stt_free(utterance)
    }

    @Test func aStreamKeepsItsModelAlive() throws {
        var model: OpaquePointer?
        try check(stt_model_load(la13, nil, &model))
        var stream: OpaquePointer?
        try check(stt_stream_create(model, nil, &stream))
        stt_model_free(model)
        let (samples, rate) = try sample()
        try check(stt_stream_push_f32(stream, samples, samples.count, rate))
        try check(stt_stream_finish(stream))
        #expect(try text(stream) == expected)
        stt_stream_free(stream)
    }

    /// Streams on one model from several threads at once, each with its own block size, each give the text.
    @Test func streamsOnManyThreads() async throws {
        let model = try sharedModel.get()
        let (samples, rate) = try sample()
        let address = Int(bitPattern: UnsafeRawPointer(model))
        let results = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<4 {
                group.addTask {
                    let model = OpaquePointer(bitPattern: address)
                    var stream: OpaquePointer?
                    try check(stt_stream_create(model, nil, &stream))
                    defer { stt_stream_free(stream) }
                    for start in stride(from: 0, to: samples.count, by: 1_600 + i) {
                        let end = min(samples.count, start + 1_600 + i)
                        try samples[start..<end].withUnsafeBufferPointer {
                            try check(stt_stream_push_f32(stream, $0.baseAddress, $0.count, rate))
                        }
                    }
                    try check(stt_stream_finish(stream))
                    return try text(stream)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results == [String](repeating: expected, count: 4))
    }

    /// Messages are per thread, one line, and cut at 1023 bytes without splitting a character.
    @Test func errorMessagesArePerThreadOneLineAndCutOnACharacterBoundary() {
        expectFailure(stt_stream_finish(nil), STT_ERROR_INVALID_ARGUMENT, "stt_stream_finish")
        let mine = lastError()
        final class Seen: @unchecked Sendable { var messages: [String] = [] }
        let seen = Seen()
        let done = DispatchSemaphore(value: 0)
        Thread {
            seen.messages.append(lastError())
            stt_internal_set_error("first line\nsecond\r\nthird")
            seen.messages.append(lastError())
            stt_internal_set_error(String(repeating: "é", count: 800))   // 1600 bytes of 2-byte characters
            seen.messages.append(lastError())
            stt_internal_set_error(String(repeating: "a", count: 5_000))
            seen.messages.append(lastError())
            done.signal()
        }.start()
        done.wait()
        #expect(seen.messages.count == 4)
        #expect(seen.messages.first == "")
        #expect(seen.messages.dropFirst().first == "first line second  third")
        #expect(seen.messages.dropFirst(2).first == String(repeating: "é", count: 511))
        #expect(seen.messages.last == String(repeating: "a", count: 1023))
        #expect(lastError() == mine)
    }
}
