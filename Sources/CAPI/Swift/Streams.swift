import CSTT
import STTAudio
import STTKit

// The stream half of stt.h. Each function is documented in stt.h; the compiler checks every signature here against
// its declaration there (`@c @implementation`). Every call on a stream holds the handle's lock, so calls from several
// threads at once are serialized.

/// Samples converted from 16-bit at a time: the conversion buffer stays this small whatever the caller pushes.
let conversionBlock = 16_384

/// `stt_stream_options_init`: defaults (see stt.h).
@c @implementation
public func stt_stream_options_init(_ options: UnsafeMutablePointer<stt_stream_options>?) -> stt_status {
    entry { () throws(Failure) in
        let options = try required(options, "options", "stt_stream_options_init")
        let rules = Endpointing()
        options.pointee = stt_stream_options(
            struct_size: UInt32(MemoryLayout<stt_stream_options>.size), lookahead_ms: STT_LOOKAHEAD_DEFAULT,
            decoder: Int32(STT_DECODER_DEFAULT), convention: Int32(STT_CONVENTION_NATIVE), endpointing: 0,
            silence_without_speech_ms: milliseconds(rules.silenceWithoutSpeech),
            silence_after_speech_ms: milliseconds(rules.silenceAfterSpeech),
            max_utterance_ms: milliseconds(rules.maxUtterance))
    }
}

private func milliseconds(_ seconds: Double?) -> Int32 { Int32((seconds ?? 0) * 1000 + 0.5) }

/// The Swift options for a C options struct; every field is checked.
private func streamOptions(_ c: stt_stream_options, _ function: String) throws(Failure) -> TranscriptionStream.Options {
    var options = TranscriptionStream.Options()
    switch c.lookahead_ms {
    case STT_LOOKAHEAD_DEFAULT: options.lookahead = nil
    case 0...: options.lookahead = .milliseconds(Int(c.lookahead_ms))
    default:
        throw .argument(function, "lookahead_ms is \(c.lookahead_ms); use STT_LOOKAHEAD_DEFAULT or a look-ahead the model was trained with")
    }
    switch Int(c.decoder) {
    case STT_DECODER_DEFAULT: options.decoder = nil
    case STT_DECODER_RNNT: options.decoder = .rnnt
    case STT_DECODER_CTC: options.decoder = .ctc
    default:
        throw .argument(function, "decoder is \(c.decoder); use STT_DECODER_DEFAULT, STT_DECODER_RNNT or STT_DECODER_CTC")
    }
    switch Int(c.convention) {
    case STT_CONVENTION_NATIVE: options.convention = .native
    case STT_CONVENTION_EXPORT_COMPATIBLE: options.convention = .exportCompatible
    default:
        throw .argument(function, "convention is \(c.convention); use STT_CONVENTION_NATIVE or STT_CONVENTION_EXPORT_COMPATIBLE")
    }
    func rule(_ value: Int32, _ name: String) throws(Failure) -> Double? {
        guard value >= 0 else {
            throw .argument(function, "\(name) is \(value); use milliseconds, or 0 to turn the rule off")
        }
        return value == 0 ? nil : Double(value) / 1000
    }
    switch c.endpointing {
    case 0: options.endpointing = nil
    case 1:
        options.endpointing = Endpointing(
            silenceWithoutSpeech: try rule(c.silence_without_speech_ms, "silence_without_speech_ms"),
            silenceAfterSpeech: try rule(c.silence_after_speech_ms, "silence_after_speech_ms"),
            maxUtterance: try rule(c.max_utterance_ms, "max_utterance_ms"))
    default: throw .argument(function, "endpointing is \(c.endpointing); use 0 (off) or 1 (on)")
    }
    return options
}

/// `stt_stream_create` (see stt.h).
@c @implementation
public func stt_stream_create(_ model: OpaquePointer?, _ options: UnsafePointer<stt_stream_options>?,
                              _ stream: UnsafeMutablePointer<OpaquePointer?>?) -> stt_status {
    entry { () throws(Failure) in
        let function = "stt_stream_create"
        let handle = try STTCAPI.model(model, function)
        let stream = try required(stream, "stream", function)
        var settings = stt_stream_options()
        _ = stt_stream_options_init(&settings)
        if let options { settings = try readOptions(options, "stt_stream_options", function) }
        let swiftOptions = try streamOptions(settings, function)
        do throws(TranscriptionError) {
            let opened = try TranscriptionStream(model: handle.model, options: swiftOptions)
            stream.pointee = retained(StreamHandle(opened))
        } catch {
            throw Failure(error)
        }
    }
}

/// `stt_stream_free` (see stt.h).
@c @implementation
public func stt_stream_free(_ stream: OpaquePointer?) {
    release(stream)
}

/// Runs `body` on a stream's handle with its lock held.
private func locked(_ pointer: OpaquePointer?, _ function: String,
                    _ body: (StreamHandle) throws(Failure) -> Void) -> stt_status {
    entry { () throws(Failure) in
        let handle = try stream(pointer, function)
        handle.lock.lock()
        defer { handle.lock.unlock() }
        try body(handle)
    }
}

/// Checks a push's arguments: a buffer of `count` elements of T at `samples`, a stream that is not finished.
private func checkPush<T>(_ handle: StreamHandle, _ samples: UnsafePointer<T>?, _ count: Int,
                          _ function: String) throws(Failure) -> UnsafeBufferPointer<T> {
    guard count >= 0 && count <= Int.max / MemoryLayout<T>.stride else {
        throw .argument(function, "count \(UInt(bitPattern: count)) is not the size of a buffer")
    }
    guard !handle.finished else {
        throw Failure(status: STT_ERROR_STATE,
                      message: "\(function): the stream is finished; call stt_stream_reset to start again")
    }
    guard count == 0 || samples != nil else { throw .argument(function, "samples is NULL") }
    return UnsafeBufferPointer(start: count == 0 ? nil : samples, count: count)
}

/// `stt_stream_push_f32` (see stt.h).
@c @implementation
public func stt_stream_push_f32(_ stream: OpaquePointer?, _ samples: UnsafePointer<Float>?, _ count: Int,
                                _ sampleRate: Int32) -> stt_status {
    locked(stream, "stt_stream_push_f32") { handle throws(Failure) in
        let buffer = try checkPush(handle, samples, count, "stt_stream_push_f32")
        do throws(TranscriptionError) {
            handle.newText.append(try handle.stream.push(buffer, sampleRate: Int(sampleRate)))
        } catch {
            throw Failure(error)
        }
    }
}

/// `stt_stream_push_s16` (see stt.h).
@c @implementation
public func stt_stream_push_s16(_ stream: OpaquePointer?, _ samples: UnsafePointer<Int16>?, _ count: Int,
                                _ sampleRate: Int32) -> stt_status {
    locked(stream, "stt_stream_push_s16") { handle throws(Failure) in
        let buffer = try checkPush(handle, samples, count, "stt_stream_push_s16")
        // 16-bit samples are always in range, so only the rate can fail, and then on the first block.
        var start = 0
        repeat {
            let end = min(count, start + conversionBlock)
            handle.converted.removeAll(keepingCapacity: true)
            PCM16.append(UnsafeBufferPointer(rebasing: buffer[start..<end]), to: &handle.converted)
            do throws(TranscriptionError) {
                try handle.converted.withUnsafeBufferPointer { block throws(TranscriptionError) in
                    handle.newText.append(try handle.stream.push(block, sampleRate: Int(sampleRate)))
                }
            } catch {
                throw Failure(error)
            }
            start = end
        } while start < count
    }
}

/// `stt_stream_finish` (see stt.h).
@c @implementation
public func stt_stream_finish(_ stream: OpaquePointer?) -> stt_status {
    locked(stream, "stt_stream_finish") { handle in
        guard !handle.finished else { return }
        let before = handle.stream.tokens.count
        let all = handle.stream.finish()
        handle.newText.append(all[min(before, all.count)...])
        handle.finished = true
    }
}

/// `stt_stream_reset` (see stt.h).
@c @implementation
public func stt_stream_reset(_ stream: OpaquePointer?) -> stt_status {
    locked(stream, "stt_stream_reset") { handle in
        handle.stream.reset()
        handle.finished = false
        handle.newText.restart()
    }
}

/// `stt_stream_read_new_text` (see stt.h).
@c @implementation
public func stt_stream_read_new_text(_ stream: OpaquePointer?,
                                     _ text: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> stt_status {
    locked(stream, "stt_stream_read_new_text") { handle throws(Failure) in
        let text = try required(text, "text", "stt_stream_read_new_text")
        var newText = handle.newText
        // Taken from a copy, kept only once the string is allocated: running out of memory loses nothing.
        text.pointee = try cString(newText.take(), "stt_stream_read_new_text")
        handle.newText = newText
    }
}

/// `stt_stream_text` (see stt.h).
@c @implementation
public func stt_stream_text(_ stream: OpaquePointer?,
                            _ text: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> stt_status {
    locked(stream, "stt_stream_text") { handle throws(Failure) in
        let text = try required(text, "text", "stt_stream_text")
        text.pointee = try cString(handle.stream.text, "stt_stream_text")
    }
}

/// `stt_stream_words` (see stt.h).
@c @implementation
public func stt_stream_words(_ stream: OpaquePointer?, _ words: UnsafeMutablePointer<UnsafeMutablePointer<stt_word>?>?,
                             _ count: UnsafeMutablePointer<Int>?) -> stt_status {
    locked(stream, "stt_stream_words") { handle throws(Failure) in
        let words = try required(words, "words", "stt_stream_words")
        let count = try required(count, "count", "stt_stream_words")
        let all = handle.stream.words
        words.pointee = try wordArray(all, "stt_stream_words")
        count.pointee = all.count
    }
}

/// `stt_stream_tokens` (see stt.h).
@c @implementation
public func stt_stream_tokens(_ stream: OpaquePointer?,
                              _ tokens: UnsafeMutablePointer<UnsafeMutablePointer<stt_token>?>?,
                              _ count: UnsafeMutablePointer<Int>?) -> stt_status {
    locked(stream, "stt_stream_tokens") { handle throws(Failure) in
        let function = "stt_stream_tokens"
        let tokens = try required(tokens, "tokens", function)
        let count = try required(count, "count", function)
        let all = handle.stream.tokens
        guard !all.isEmpty else {
            tokens.pointee = nil
            count.pointee = 0
            return
        }
        var layout = BlockLayout()
        let base = layout.reserve(stt_token.self, count: all.count)
        let offsets = all.map { layout.reserve($0.piece) }
        guard let block = layout.allocate() else { throw .outOfMemory(function) }
        let array = (block + base).bindMemory(to: stt_token.self, capacity: all.count)
        for (i, token) in all.enumerated() {
            (array + i).initialize(to: stt_token(
                piece: place(token.piece, in: block, at: offsets[i]), id: Int32(clamping: token.id),
                logprob: token.logProbability, frame: Int64(token.frame), start: token.start, end: token.end))
        }
        tokens.pointee = array
        count.pointee = all.count
    }
}

/// `stt_stream_duration` (see stt.h).
@c @implementation
public func stt_stream_duration(_ stream: OpaquePointer?, _ seconds: UnsafeMutablePointer<Double>?) -> stt_status {
    locked(stream, "stt_stream_duration") { handle throws(Failure) in
        let seconds = try required(seconds, "seconds", "stt_stream_duration")
        seconds.pointee = handle.stream.duration
    }
}

/// `stt_stream_is_endpoint` (see stt.h).
@c @implementation
public func stt_stream_is_endpoint(_ stream: OpaquePointer?, _ isEndpoint: UnsafeMutablePointer<Int32>?) -> stt_status {
    locked(stream, "stt_stream_is_endpoint") { handle throws(Failure) in
        let isEndpoint = try required(isEndpoint, "is_endpoint", "stt_stream_is_endpoint")
        isEndpoint.pointee = handle.stream.isEndpoint ? 1 : 0
    }
}

/// `stt_stream_end_utterance` (see stt.h).
@c @implementation
public func stt_stream_end_utterance(
    _ stream: OpaquePointer?, _ utterance: UnsafeMutablePointer<UnsafeMutablePointer<stt_utterance>?>?
) -> stt_status {
    locked(stream, "stt_stream_end_utterance") { handle throws(Failure) in
        let function = "stt_stream_end_utterance"
        guard let utterance else {
            _ = handle.stream.endUtterance()
            handle.newText.restart()
            return
        }
        // The block is planned from the current utterance and allocated before it is closed, so that running out of
        // memory closes nothing.
        let transcript = handle.stream.transcript
        let words = transcript.words
        var layout = BlockLayout()
        let head = layout.reserve(stt_utterance.self, count: 1)
        let base = layout.reserve(stt_word.self, count: words.count)
        let textOffset = layout.reserve(transcript.text)
        let offsets = words.map { layout.reserve($0.text) }
        guard let block = layout.allocate() else { throw .outOfMemory(function) }
        let closed = handle.stream.endUtterance()
        handle.newText.restart()
        let array = (block + base).bindMemory(to: stt_word.self, capacity: max(1, words.count))
        fillWords(words, into: array, block: block, offsets: offsets)
        let value = (block + head).bindMemory(to: stt_utterance.self, capacity: 1)
        value.initialize(to: stt_utterance(
            index: Int64(closed.index), start: closed.start, end: closed.end,
            text: place(transcript.text, in: block, at: textOffset), words: words.isEmpty ? nil : UnsafePointer(array),
            word_count: words.count))
        utterance.pointee = value
    }
}
