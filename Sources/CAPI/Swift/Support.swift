import CSTT
import Foundation
import STTKit

// What every entry point shares: a failure with its status, the handles behind the opaque pointers, option structs
// that carry their own size, and results copied into single malloc blocks that the caller frees with stt_free.

/// A call that fails: the status it returns and the message `stt_last_error` then gives.
struct Failure: Error {
    let status: stt_status
    let message: String

    static func argument(_ function: String, _ message: String) -> Failure {
        Failure(status: STT_ERROR_INVALID_ARGUMENT, message: "\(function): \(message)")
    }

    static func outOfMemory(_ function: String) -> Failure {
        Failure(status: STT_ERROR_OUT_OF_MEMORY, message: "\(function): out of memory")
    }

    init(status: stt_status, message: String) {
        self.status = status
        self.message = message
    }

    init(_ error: TranscriptionError) {
        switch error {
        case .untrainedLookahead, .missingDecoder:
            self.init(status: STT_ERROR_UNSUPPORTED, message: error.description)
        case .unsupportedSampleRate, .nonFiniteSample, .sampleOutOfRange:
            self.init(status: STT_ERROR_AUDIO, message: error.description)
        }
    }
}

/// Runs an entry point's body: STT_OK, or the failure's status with its message stored for `stt_last_error`.
func entry(_ body: () throws(Failure) -> Void) -> stt_status {
    do {
        try body()
        return STT_OK
    } catch {
        stt_internal_set_error(error.message)
        return error.status
    }
}

/// The object behind an `stt_model *`.
final class ModelHandle {
    let model: SpeechModel
    init(_ model: SpeechModel) { self.model = model }
}

/// The final text of an utterance, handed out in pieces that concatenate to exactly its text: pieces joined with
/// "▁" read as a space, no spaces at its start or end (the rule of `Transcript.text`). Spaces at the end of what has
/// been recognized wait until text follows them.
struct NewText {
    /// Recognized and not handed out yet.
    private var unread = ""
    /// Spaces at the end of what was handed out, owed before the next text.
    private var heldSpaces = ""
    /// Whether anything but spaces was handed out in this utterance.
    private var started = false

    /// Adds the pieces of tokens that became final.
    mutating func append(_ tokens: some Collection<Token>) {
        for token in tokens { append(piece: token.piece) }
    }

    mutating func append(piece: String) { unread += piece.replacingOccurrences(of: "▁", with: " ") }

    /// The text recognized since the last take.
    mutating func take() -> String {
        var text = Substring(heldSpaces + unread)
        unread = ""
        if !started { text = text.drop { $0 == " " } }
        let body = text.reversed().drop { $0 == " " }.count
        heldSpaces = String(text.dropFirst(body))
        if body > 0 { started = true }
        return String(text.prefix(body))
    }

    /// A new utterance: nothing of it recognized or handed out.
    mutating func restart() { self = NewText() }
}

/// The object behind an `stt_stream *`: the stream and what the C API adds to it (a lock over that state, the
/// finished flag, the text not yet read, a buffer for converting 16-bit samples).
final class StreamHandle {
    let lock = NSLock()
    let stream: TranscriptionStream
    var finished = false
    var newText = NewText()
    var converted: [Float] = []

    init(_ stream: TranscriptionStream) { self.stream = stream }
}

/// Handles travel as retained, unmanaged object pointers.
func retained(_ object: AnyObject) -> OpaquePointer { OpaquePointer(Unmanaged.passRetained(object).toOpaque()) }

func model(_ pointer: OpaquePointer?, _ function: String) throws(Failure) -> ModelHandle {
    guard let pointer else { throw .argument(function, "model is NULL") }
    return Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
}

func stream(_ pointer: OpaquePointer?, _ function: String) throws(Failure) -> StreamHandle {
    guard let pointer else { throw .argument(function, "stream is NULL") }
    return Unmanaged<StreamHandle>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
}

func release(_ pointer: OpaquePointer?) {
    guard let pointer else { return }
    Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(pointer)).release()
}

func required<T>(_ pointer: T?, _ name: String, _ function: String) throws(Failure) -> T {
    guard let pointer else { throw .argument(function, "\(name) is NULL") }
    return pointer
}

/// The largest struct_size taken: a caller's struct from a later header may be larger than ours, not absurdly so.
let largestStructSize = 4096

/// Reads an option struct whose first field is its `struct_size`. A size smaller than this library's struct is
/// refused (it cannot come from any header of this ABI), a larger one is taken when the bytes past our fields are
/// zero (fields a later version added, left at their defaults).
func readOptions<T>(_ pointer: UnsafePointer<T>, _ name: String, _ function: String) throws(Failure) -> T {
    let raw = UnsafeRawPointer(pointer)
    let size = Int(raw.loadUnaligned(as: UInt32.self))
    let ours = MemoryLayout<T>.size
    guard size >= ours && size <= largestStructSize else {
        throw .argument(function,
                        "\(name).struct_size is \(size), not sizeof(\(name)) (\(ours)); fill it with \(name)_init")
    }
    if size > ours, UnsafeRawBufferPointer(start: raw + ours, count: size - ours).contains(where: { $0 != 0 }) {
        throw .argument(function, "\(name) sets fields this library (ABI \(STT_ABI_VERSION)) does not know")
    }
    return pointer.pointee
}

// MARK: Results

/// Plans one malloc block that holds structs and the strings they point to, then fills it.
struct BlockLayout {
    private(set) var size = 0

    /// Room for `count` values of T, aligned; returns their offset.
    mutating func reserve<T>(_: T.Type, count: Int) -> Int {
        let alignment = MemoryLayout<T>.alignment
        size = (size + alignment - 1) / alignment * alignment
        defer { size += MemoryLayout<T>.stride * count }
        return size
    }

    /// Room for a string and its terminating NUL; returns its offset.
    mutating func reserve(_ string: String) -> Int {
        defer { size += string.utf8.count + 1 }
        return size
    }

    /// The block, or nil when malloc fails. Never zero bytes, so a success is never NULL.
    func allocate() -> UnsafeMutableRawPointer? { malloc(max(1, size)) }
}

/// Copies a string into a block at `offset` and returns a pointer to it.
func place(_ string: String, in block: UnsafeMutableRawPointer, at offset: Int) -> UnsafePointer<CChar> {
    let target = (block + offset).assumingMemoryBound(to: UInt8.self)
    var count = 0
    for byte in string.utf8 {
        target[count] = byte
        count += 1
    }
    target[count] = 0
    return UnsafePointer(OpaquePointer(target))
}

/// A string the caller frees with stt_free.
func cString(_ string: String, _ function: String) throws(Failure) -> UnsafeMutablePointer<CChar> {
    var layout = BlockLayout()
    let offset = layout.reserve(string)
    guard let block = layout.allocate() else { throw .outOfMemory(function) }
    return UnsafeMutablePointer(mutating: place(string, in: block, at: offset))
}

/// Words as an array of stt_word followed by their strings, in one block (nil for none).
func wordArray(_ words: [Word], _ function: String) throws(Failure) -> UnsafeMutablePointer<stt_word>? {
    guard !words.isEmpty else { return nil }
    var layout = BlockLayout()
    let base = layout.reserve(stt_word.self, count: words.count)
    let offsets = words.map { layout.reserve($0.text) }
    guard let block = layout.allocate() else { throw .outOfMemory(function) }
    let array = (block + base).bindMemory(to: stt_word.self, capacity: words.count)
    fillWords(words, into: array, block: block, offsets: offsets)
    return array
}

func fillWords(_ words: [Word], into array: UnsafeMutablePointer<stt_word>, block: UnsafeMutableRawPointer,
               offsets: [Int]) {
    for (i, word) in words.enumerated() {
        (array + i).initialize(to: stt_word(text: place(word.text, in: block, at: offsets[i]), start: word.start,
                                            end: word.end, logprob: word.logProbability))
    }
}
