import STTAudio
import STTConformer
import Foundation
import STTTensor
import STTWeightLoader

/// A model folder loaded once: encoder, RNN-T decoder and/or CTC head, tokens. Immutable and shared by any number of
/// streams on any threads; each stream owns only its state.
public final class SpeechModel: Sendable {
    public enum Decoder: String, Sendable, CaseIterable { case rnnt, ctc }

    package let folder: ModelFolder
    package let encoder: ConformerEncoder
    package let rnnt: RNNTDecoder?
    package let ctc: CTCHead?
    package let tokens: [String]
    package let metadata: ModelMetadata?
    /// The look-ahead (R of [70,R]) the export was made with.
    public let exportLookahead: Int
    /// Look-aheads the model was trained with.
    public let trainedLookaheads: [Int]
    public let maxSymbols: Int

    public init(folder path: String) throws(LoaderError) {
        let model = try LoadedModel(folder: path)
        folder = model.folder
        metadata = model.metadata
        guard let tokens = model.tokens else {
            throw .modelFolder(path, "no tokens.txt (lines `piece id`, blank last); models/export_nemo.py writes it")
        }
        self.tokens = tokens
        let contexts = metadata?.attContextSizes ?? [[70, 13], [70, 6], [70, 1], [70, 0]]
        trainedLookaheads = contexts.compactMap { $0.count == 2 ? $0[1] : nil }
        let left = contexts.first?.first ?? 70
        exportLookahead = model.encoder.exportAttContext?[1] ?? metadata?.exportAttContext?[1] ?? 13
        encoder = try ConformerEncoder(graph: model.encoder, leftContext: left,
                                       maxLookahead: max(trainedLookaheads.max() ?? 13, exportLookahead))
        rnnt = try model.decoder.map { graph throws(LoaderError) in try RNNTDecoder(graph: graph) }
        ctc = model.encoder.kind == .ctc ? try CTCHead(graph: model.encoder) : nil
        maxSymbols = metadata?.maxSymbols ?? 10
    }

    public var availableDecoders: [Decoder] { (rnnt != nil ? [.rnnt] : []) + (ctc != nil ? [.ctc] : []) }

    /// Text of token ids: SentencePiece pieces joined, "▁" as a space, trimmed.
    public func text(_ ids: [Int]) -> String {
        ids.map { $0 < tokens.count ? tokens[$0] : "" }.joined()
            .replacingOccurrences(of: "▁", with: " ").trimmingCharacters(in: .whitespaces)
    }
}

/// A token with the time it was emitted at (its encoder frame × 80 ms).
public struct TimedToken: Sendable, Equatable {
    public let id: Int
    public let piece: String
    public let frame: Int
    public let seconds: Double
}

/// One live stream: 16 kHz samples in, tokens out as soon as the look-ahead allows.
public final class TranscriptionStream {
    public struct Options: Sendable {
        /// Right context R of [70, R] in encoder frames (80 ms each): 0, 1, 6 or 13 for the reference model.
        public var lookahead: Int
        package var convention: StreamingSchedule.Convention
        public var decoder: SpeechModel.Decoder

        package init(lookahead: Int = 13, convention: StreamingSchedule.Convention = .native,
                    decoder: SpeechModel.Decoder = .rnnt) {
            self.lookahead = lookahead
            self.convention = convention
            self.decoder = decoder
        }
    }

    public enum Failure: Error, CustomStringConvertible {
        case untrainedLookahead(Int, [Int])
        case missingDecoder(SpeechModel.Decoder, [SpeechModel.Decoder])
        public var description: String {
            switch self {
            case .untrainedLookahead(let r, let trained):
                "look-ahead \(r * 80) ms is not one the model was trained with (\(trained.map { "\($0 * 80) ms" }.joined(separator: ", ")))"
            case .missingDecoder(let d, let available):
                "the model folder has no \(d) decoder (it has: \(available.map(\.rawValue).joined(separator: ", ")))"
            }
        }
    }

    public let model: SpeechModel
    public let options: Options
    public private(set) var tokens: [TimedToken] = []
    public var text: String { model.text(tokens.map(\.id)) }

    private let schedule: StreamingSchedule
    private let frontend = MelFrontend()
    private let state: EncoderState
    private let greedy: GreedyState?
    private var mel: [Float] = []           // mel frames from melStart on, time-major
    private var melStart = 0
    private var melFrames = 0               // frames the frontend has emitted
    private var step = 0
    private let window: Tensor
    private let encoded: Tensor
    private let ctcLogits: Tensor
    private var lastCTC: Int
    private var encoderFrames = 0
    private var finished = false
    private let features: Int

    /// Throws when `options` do not fit `model` (a look-ahead it was not trained with, a decoder it lacks).
    public static func validate(_ options: Options, for model: SpeechModel) throws {
        guard model.trainedLookaheads.contains(options.lookahead) || options.lookahead == model.exportLookahead else {
            throw Failure.untrainedLookahead(options.lookahead, model.trainedLookaheads)
        }
        guard model.availableDecoders.contains(options.decoder) else {
            throw Failure.missingDecoder(options.decoder, model.availableDecoders)
        }
    }

    package init(model: SpeechModel, options: Options = Options()) throws {
        try Self.validate(options, for: model)
        self.model = model
        self.options = options
        features = model.encoder.description.melFeatures
        schedule = StreamingSchedule(lookahead: options.lookahead,
                                     subsamplingFactor: model.encoder.description.subsamplingFactor,
                                     convention: options.convention)
        state = EncoderState(encoder: model.encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        greedy = options.decoder == .rnnt ? model.rnnt.map { GreedyState(decoder: $0) } : nil
        window = Tensor(zeros: [schedule.maxWindow, features])
        encoded = Tensor(zeros: [schedule.framesPerStep, model.encoder.dModel])
        ctcLogits = Tensor(zeros: [model.ctc?.classes ?? 1])
        lastCTC = (model.ctc?.classes ?? 1) - 1
        mel.reserveCapacity(4 * schedule.maxWindow * features)
    }

    /// Adds samples (16 kHz mono, [−1, 1]); returns the tokens this made final. After `finish()` samples are ignored
    /// until `reset()`.
    @discardableResult
    public func push(_ samples: [Float]) -> [TimedToken] {
        guard !finished else { return [] }
        let before = tokens.count
        samples.withUnsafeBufferPointer { buffer in
            frontend.push(buffer) { frame in mel.append(contentsOf: frame); melFrames += 1 }
        }
        runSteps(final: false)
        return Array(tokens[before...])
    }

    /// Ends the stream: runs the remaining steps (the last window shorter) and returns every token.
    @discardableResult
    public func finish() -> [TimedToken] {
        guard !finished else { return tokens }
        finished = true
        frontend.finish { frame in mel.append(contentsOf: frame); melFrames += 1 }
        runSteps(final: true)
        return tokens
    }

    /// Forgets the tokens collected so far (an app that consumes what `push` returns calls this to keep a stream of
    /// any length in constant memory); decoding continues unchanged.
    public func clearTokens() { tokens.removeAll(keepingCapacity: true) }

    public func reset() {
        frontend.reset()
        state.reset()
        greedy?.reset(blank: model.rnnt?.blank ?? 0)
        mel.removeAll(keepingCapacity: true)
        melStart = 0
        melFrames = 0
        step = 0
        tokens.removeAll()
        lastCTC = (model.ctc?.classes ?? 1) - 1
        encoderFrames = 0
        finished = false
    }

    /// Steps whose window is complete; at the end, NeMo's rule: the signal has ⌊N/160⌋ valid frames (the last mel
    /// column is NeMo's zeroed padding), and a final chunk of fewer than `factor` columns is not run.
    private func runSteps(final: Bool) {
        let valid = final ? max(0, melFrames - 1) : Int.max
        while true {
            let w = schedule.window(step: step)
            // The first mel column this step adds (NeMo's buffer index).
            let chunkStart = step == 0 ? 0 : w.end - schedule.hop
            if final {
                let columns = min(w.end, melFrames) - chunkStart
                if chunkStart >= melFrames || columns < (step == 0 ? 1 : schedule.factor) { break }
            } else if w.end > melFrames {
                break   // wait until the window is complete
            }
            let end = min(w.end, valid)
            let length = end - w.start
            if length <= 0 { break }
            for t in 0..<length {
                let source = w.start + t
                let row = window.data + t * features
                if source < 0 {
                    row.update(repeating: 0, count: features)
                } else {
                    mel.withUnsafeBufferPointer { m in row.update(from: m.baseAddress! + (source - melStart) * features, count: features) }
                }
            }
            let n = model.encoder.step(state, mel: window.data, frames: length, drop: w.drop, output: encoded.data)
            decode(frames: n)
            step += 1
            // Frames before the next window are no longer needed.
            let drop = min(schedule.window(step: step).start - melStart, mel.count / features)
            if drop > 2 * schedule.maxWindow {
                mel.removeFirst(drop * features)
                melStart += drop
            }
        }
    }

    private func decode(frames n: Int) {
        let d = model.encoder.dModel
        if let greedy, let rnnt = model.rnnt {
            greedy.decode(rnnt, frames: encoded.data, count: n, width: d, maxSymbols: model.maxSymbols) { token in
                tokens.append(timed(token.id, frame: token.frame))
            }
        } else if let ctc = model.ctc {
            for t in 0..<n {
                let k = ctc.argmax(encoded.data + t * d, logits: ctcLogits.data)
                if k != ctc.classes - 1 && k != lastCTC { tokens.append(timed(k, frame: encoderFrames + t)) }
                lastCTC = k
            }
        }
        encoderFrames += n
    }

    private func timed(_ id: Int, frame: Int) -> TimedToken {
        let factor = Double(model.encoder.description.subsamplingFactor)
        return TimedToken(id: id, piece: id < model.tokens.count ? model.tokens[id] : "", frame: frame,
                          seconds: Double(frame) * factor * Double(MelFrontend.hop) / Double(MelFrontend.sampleRate))
    }
}
