import Foundation
import STTAudio
import STTConformer
import STTTensor
import STTWeightLoader

/// How much audio past a word the model hears before it commits to the word, in milliseconds.
///
/// A cache-aware streaming model is trained with a few attention contexts [70, R]: R encoder frames of look-ahead,
/// 80 ms each for the reference model (0, 80, 480 and 1040 ms). More look-ahead is more accurate and later.
public struct Lookahead: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The look-ahead in milliseconds.
    public let milliseconds: Int

    /// A look-ahead of `milliseconds` (a multiple of the model's encoder frame, 80 ms for the reference model).
    public init(milliseconds: Int) { self.milliseconds = milliseconds }

    /// A look-ahead of `milliseconds`.
    public static func milliseconds(_ milliseconds: Int) -> Lookahead { Lookahead(milliseconds: milliseconds) }

    /// "480 ms".
    public var description: String { "\(milliseconds) ms" }

    /// Shorter look-aheads first.
    public static func < (a: Lookahead, b: Lookahead) -> Bool { a.milliseconds < b.milliseconds }
}

/// A model folder loaded once: encoder, RNN-T decoder and/or CTC head, tokens.
///
/// Immutable and `Sendable`: share one model across any number of streams on any threads; each
/// ``TranscriptionStream`` owns only its own state.
public final class SpeechModel: Sendable {
    /// The decoder a stream uses when the folder has both.
    public enum Decoder: String, Sendable, CaseIterable {
        /// The RNN-T prediction network and joint (greedy decoding, as NeMo's default).
        case rnnt
        /// The CTC head of a hybrid model (greedy decoding).
        case ctc
    }

    package let folder: ModelFolder
    package let encoder: ConformerEncoder
    package let rnnt: RNNTDecoder?
    package let ctc: CTCHead?
    package let metadata: ModelMetadata?
    /// The pieces of `tokens.txt` in id order (the blank, last, included).
    public let tokens: [String]
    /// Look-aheads the model was trained with (from `model.json`, else the reference model's four), the export's own
    /// included.
    public let lookaheads: [Lookahead]
    /// The look-ahead the encoder was exported with: what a stream uses unless told otherwise.
    public let defaultLookahead: Lookahead
    /// The decoders this folder has, RNN-T first.
    public let decoders: [Decoder]
    /// Threads each weight product of this model's streams may use, the calling thread included.
    public let threads: Int
    /// How the encoder's weights are stored and multiplied: as asked for, fp32 by default.
    public let precision: Precision
    /// Milliseconds of audio per encoder frame (80 for the reference model's 8× subsampling of 10 ms mel frames).
    public let frameMilliseconds: Int
    package let maxSymbols: Int
    /// The export's look-ahead in encoder frames.
    package let exportLookahead: Int

    /// Loads a model folder: NeMo's export (`encoder-*.onnx` with cache inputs, `decoder_joint-*.onnx` or a CTC
    /// graph, `tokens.txt`, optional `model.json`) or sherpa-onnx's (`encoder.onnx`, `decoder.onnx`, `joiner.onnx`,
    /// `tokens.txt`, and/or the same as `*.int8.onnx`).
    ///
    /// - Parameters:
    ///   - folder: the model folder.
    ///   - threads: threads a weight product may use (1 by default; the calling thread is one of them). The model
    ///     keeps its own workers; nothing process-wide is changed.
    ///   - precision: how the encoder's weights are stored and multiplied (``Precision``); nil is ``Precision/fp32``.
    ///     It also picks the files where a folder holds both fp32 and int8 ones: the int8 files for
    ///     ``Precision/int8``, else the fp32 files (a folder of int8 files only loads those, dequantized, and says so
    ///     in `precisionNote`).
    /// - Throws: `LoaderError` with a one-line message that says what is wrong and how to fix it.
    public init(folder: String, threads: Int = 1, precision: Precision? = nil) throws(LoaderError) {
        let path = folder
        let files: ModelFolder.Precision? = precision == .int8 && ModelFolder.holdsInt8Files(path) ? .int8 : nil
        let model = try LoadedModel(folder: path, precision: files)
        self.folder = model.folder
        self.precision = precision ?? .fp32
        metadata = model.metadata
        guard let tokens = model.tokens else {
            throw .modelFolder(path, "no tokens.txt (lines `piece id`, blank last); models/export_nemo.py writes it")
        }
        self.tokens = tokens
        let description = model.encoderDescription
        frameMilliseconds = description.subsamplingFactor * 10
        let attention = AttentionSettings(graphContext: model.encoder.exportAttContext, metadata: metadata)
        exportLookahead = attention.exportLookahead
        lookaheads = attention.trained.map { Lookahead(milliseconds: $0 * description.subsamplingFactor * 10) }
        defaultLookahead = Lookahead(milliseconds: exportLookahead * description.subsamplingFactor * 10)
        self.threads = max(1, threads)
        encoder = try ConformerEncoder(graph: model.encoder, description: description, leftContext: attention.leftContext,
                                       maxLookahead: attention.maxLookahead, threads: self.threads,
                                       precision: self.precision.storage)
        if let graph = model.decoder {
            rnnt = try RNNTDecoder(graph: graph, description: model.decoderDescription)
        } else {
            rnnt = nil
        }
        ctc = model.encoder.kind == .ctc ? try CTCHead(graph: model.encoder, description: model.ctcDescription) : nil
        decoders = (rnnt != nil ? [.rnnt] : []) + (ctc != nil ? [.ctc] : [])
        maxSymbols = metadata?.maxSymbols ?? 10
    }

    /// Encoder frames of look-ahead for a trained look-ahead, or nil when the model was not trained with it.
    package func frames(_ lookahead: Lookahead) -> Int? {
        guard lookaheads.contains(lookahead), lookahead.milliseconds % frameMilliseconds == 0 else { return nil }
        return lookahead.milliseconds / frameMilliseconds
    }

    /// Text of token ids: pieces joined, "▁" as a space, trimmed.
    package func text(_ ids: [Int]) -> String {
        Transcript.text(ofPieces: ids.map { $0 >= 0 && $0 < tokens.count ? tokens[$0] : "" })
    }

    // MARK: One call

    /// Transcribes a WAV file (PCM 8/16/24/32-bit or float, any channel count and sample rate).
    ///
    /// The file is streamed through a ``TranscriptionStream`` a second at a time, so the result equals what a live
    /// stream with the same options gives.
    /// - Throws: `WAVFile.Failure` for a file that cannot be read, ``TranscriptionError`` for options the model
    ///   cannot run or samples that are not finite.
    public func transcribe(file path: String, options: TranscriptionStream.Options = .init()) throws -> Transcript {
        let wav = try WAVReader(path: path)
        let stream = try TranscriptionStream(model: self, options: options)
        var block: [Float] = []
        while try wav.read(maxFrames: wav.sampleRate, into: &block) > 0 {
            try stream.push(block, sampleRate: wav.sampleRate)
            block.removeAll(keepingCapacity: true)
        }
        stream.finish()
        return stream.transcript
    }

    /// Transcribes mono samples in [−1, 1] at any sample rate.
    public func transcribe(samples: [Float], sampleRate: Int = 16_000,
                           options: TranscriptionStream.Options = .init()) throws(TranscriptionError) -> Transcript {
        let stream = try TranscriptionStream(model: self, options: options)
        var start = 0
        let block = max(1, sampleRate)
        while start < samples.count {
            let end = min(samples.count, start + block)
            try samples[start..<end].withUnsafeBufferPointer { buffer throws(TranscriptionError) in
                _ = try stream.push(buffer, sampleRate: sampleRate)
            }
            start = end
        }
        stream.finish()
        return stream.transcript
    }
}

/// The attention contexts a model runs with, in encoder frames: from model.json when it has them, else the reference
/// model's, with the export's own look-ahead (read from the graph, else model.json) always among the trained ones.
package struct AttentionSettings: Sendable, Equatable {
    /// Rows of attention cache (the left context of every trained setting).
    package let leftContext: Int
    /// The look-ahead the encoder was exported with: a stream's default.
    package let exportLookahead: Int
    /// Every look-ahead a stream may use.
    package let trained: [Int]
    /// The largest look-ahead, which the encoder's positional terms are prepared for.
    package var maxLookahead: Int { trained.max() ?? 13 }

    package init(graphContext: [Int]?, metadata: ModelMetadata?) {
        let contexts = metadata?.attContextSizes ?? [[70, 13], [70, 6], [70, 1], [70, 0]]
        leftContext = contexts.first?.first ?? 70
        let export = graphContext?[1] ?? metadata?.exportAttContext?[1] ?? contexts.first?.last ?? 13
        var trained = contexts.compactMap { $0.count == 2 ? $0[1] : nil }
        if !trained.contains(export) { trained.append(export) }
        exportLookahead = export
        self.trained = trained
    }
}

/// Why a stream cannot be opened or fed. Each message is one line.
public enum TranscriptionError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The model was not trained with this look-ahead.
    case untrainedLookahead(Lookahead, trained: [Lookahead])
    /// The model folder has no such decoder.
    case missingDecoder(SpeechModel.Decoder, available: [SpeechModel.Decoder])
    /// A sample rate outside 1 Hz … 768 kHz.
    case unsupportedSampleRate(Int)
    /// A NaN or infinite sample, this many seconds into the stream.
    case nonFiniteSample(seconds: Double)
    /// A sample of this magnitude (beyond ``TranscriptionError/largestSample``), this many seconds into the stream:
    /// the audio is not scaled to [−1, 1].
    case sampleOutOfRange(Float, seconds: Double)

    /// The largest sample magnitude a stream takes: 60 dB above full scale. Louder values cannot be audio scaled to
    /// [−1, 1], and far louder ones would overflow the spectrum.
    public static let largestSample: Float = 1_000

    /// The one-line message.
    public var description: String {
        switch self {
        case .untrainedLookahead(let lookahead, let trained):
            "look-ahead \(lookahead) is not one the model was trained with (\(trained.sorted().map(\.description).joined(separator: ", ")))"
        case .missingDecoder(let decoder, let available):
            "the model folder has no \(decoder.rawValue) decoder (it has: \(available.map(\.rawValue).joined(separator: ", ")))"
        case .unsupportedSampleRate(let rate):
            "sample rate \(rate) Hz is not supported (1 Hz … 768 kHz)"
        case .nonFiniteSample(let seconds):
            String(format: "the audio has a NaN or infinite sample at %.3f s", seconds)
        case .sampleOutOfRange(let value, let seconds):
            String(format: "the audio has a sample of %g at %.3f s; samples must be scaled to [-1, 1]", value, seconds)
        }
    }
}
