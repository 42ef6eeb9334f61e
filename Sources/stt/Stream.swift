import ArgumentParser
import Foundation
import STTKit

/// Endpoint rules on the command line (`stt stream`, `stt serve`): sherpa-onnx's three, each 0 to switch off.
struct EndpointOptions: ParsableArguments {
    @Option(help: "Seconds of trailing silence after speech that end an utterance (0: never).")
    var endpointSilence: Double = 1.2

    @Option(help: "Seconds of trailing silence that end an utterance in which nothing was recognized (0: never).")
    var endpointSilenceNoSpeech: Double = 2.4

    @Option(help: "Seconds after which an utterance ends whatever it holds (0: no limit).")
    var maxUtterance: Double = 20

    @Flag(help: "No endpointing: the whole input is one utterance.")
    var noEndpointing = false

    func validate() throws {
        for (name, value) in [("--endpoint-silence", endpointSilence),
                              ("--endpoint-silence-no-speech", endpointSilenceNoSpeech),
                              ("--max-utterance", maxUtterance)] where !(value.isFinite && value >= 0 && value <= 86_400) {
            throw ValidationError("\(name) must be seconds between 0 and 86400, not \(value)")
        }
    }

    /// The rules, nil when switched off.
    var rules: Endpointing? {
        guard !noEndpointing else { return nil }
        func rule(_ seconds: Double) -> Double? { seconds > 0 ? seconds : nil }
        return Endpointing(silenceWithoutSpeech: rule(endpointSilenceNoSpeech), silenceAfterSpeech: rule(endpointSilence),
                           maxUtterance: rule(maxUtterance))
    }
}

enum StreamFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

struct Stream: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Transcribe audio from stdin live: one line per utterance on stdout, partial text on stderr.",
        discussion: """
            stdin is raw s16le 16 kHz mono, or a WAV stream (any format and rate) when it starts with a RIFF header.
            For example: arecord -f S16_LE -r 16000 -c 1 -t raw | stt stream --model DIR
            An utterance ends at a pause (see the endpoint options) or at the end of the input; Ctrl-C (SIGINT) or
            SIGTERM ends the input and prints the last utterance.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var endpoint: EndpointOptions

    @Option(help: "Output: text (one line per utterance) or json (one object per utterance per line: utterance, start, end, text, words).")
    var format: StreamFormat = .text

    func run() throws {
        var (model, options) = try modelOptions.load()
        options.endpointing = endpoint.rules
        let stream = try TranscriptionStream(model: model, options: options)
        let output = LiveOutput(stream: stream, json: format == .json)
        output.stopOnSignals()
        if isatty(0) == 1 {
            output.note("stt: reading audio from stdin: raw s16le 16 kHz mono, or a WAV stream; pipe a recorder in, "
                        + "e.g. arecord -f S16_LE -r 16000 -c 1 -t raw | stt stream --model DIR (Ctrl-D or Ctrl-C ends)")
        }
        let source = try AudioSource("-")
        var block: [Float] = []
        // 100 ms at a time, as a microphone delivers; only the block in hand is kept.
        while try source.read(maxFrames: max(1, source.sampleRate / 10), into: &block) > 0 {
            let new = try stream.push(block, sampleRate: source.sampleRate)
            output.show(new)
            if stream.isEndpoint { output.endUtterance() }
        }
        output.finish()
    }
}

/// What `stt stream` writes: utterances on stdout as they end, partial text on stderr. Locked, so a signal handler
/// on another thread can finish the stream and print the last utterance while the reading thread is blocked.
final class LiveOutput: @unchecked Sendable {
    private let stream: TranscriptionStream
    private let json: Bool
    /// Partials redraw one line on a terminal; elsewhere only newly final text is written, so the cost per push stays
    /// constant however long the stream runs.
    private let terminal = isatty(2) == 1
    private let lock = NSLock()
    /// The end of the current utterance's partial text as the terminal shows it.
    private var partial = ""
    /// Whether partial text of the current utterance was written.
    private var wrotePartial = false
    private var printed = 0
    private var finished = false
    private var signals: [DispatchSourceSignal] = []

    init(stream: TranscriptionStream, json: Bool) {
        self.stream = stream
        self.json = json
    }

    /// SIGINT and SIGTERM finish the stream, print the last utterance and exit 0.
    func stopOnSignals() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                lock.lock()
                finishLocked()
                Foundation.exit(0)
            }
            source.resume()
            signals.append(source)
        }
    }

    func note(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }

    /// Newly final tokens.
    func show(_ tokens: [Token]) {
        guard !tokens.isEmpty else { return }
        lock.withLock {
            var text = tokens.map { $0.piece.replacingOccurrences(of: "▁", with: " ") }.joined()
            if !wrotePartial { text = String(text.drop { $0 == " " }) }
            guard !text.isEmpty else { return }
            if terminal {
                let width = max(10, Self.terminalColumns() - 1)
                partial = String((partial + text).suffix(width))
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + partial).utf8))
            } else {
                FileHandle.standardError.write(Data(text.utf8))
            }
            wrotePartial = true
        }
    }

    /// Closes the utterance at an endpoint and prints it.
    func endUtterance() {
        lock.withLock { emit(stream.endUtterance(), last: false) }
    }

    /// End of input: the last utterance.
    func finish() {
        lock.withLock { finishLocked() }
    }

    private func finishLocked() {
        guard !finished else { return }
        finished = true
        stream.finish()
        emit(stream.endUtterance(), last: true)
    }

    private func emit(_ utterance: Utterance, last: Bool) {
        if wrotePartial { FileHandle.standardError.write(Data((terminal ? "\r\u{1B}[K" : "\n").utf8)) }
        partial = ""
        wrotePartial = false
        // Text mode prints a line for the last utterance even when empty, so a stream always ends with its final line.
        guard !utterance.text.isEmpty || (last && !json && printed == 0) else { return }
        printed += 1
        let line: String
        if json {
            line = JSONOutput.line([
                "utterance": utterance.index, "start": JSONOutput.seconds(utterance.start),
                "end": JSONOutput.seconds(utterance.end), "text": utterance.text,
                "words": JSONOutput.words(utterance.transcript.words),
            ])
        } else {
            line = utterance.text
        }
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Columns of the terminal on stderr (80 when unknown).
    static func terminalColumns() -> Int {
        var size = winsize()
        guard ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }
}
