import Foundation
import STTAudio
import STTConformer
import STTTensor

/// The state of one stream and the data path through it: samples → (resampler) → mel frames → encoder windows →
/// encoder frames → greedy RNN-T or CTC → tokens. Not thread-safe; `TranscriptionStream` locks around it.
final class StreamCore {
    let model: SpeechModel
    var tokens: [Token] = []
    /// Endpoint rules; nil never ends an utterance.
    let endpointing: Endpointing?
    /// The current utterance: its index, its first encoder frame, and the frame after its last token (nil while it has
    /// none). Trailing silence is counted in encoder frames on which the decoder emitted nothing.
    private(set) var utteranceIndex = 0
    private var utteranceStartFrame = 0
    private var speechEndFrame: Int?
    /// Seconds of 16 kHz audio that reached the frontend.
    var duration: Double { Double(frontend.samplesPushed) / Double(MelFrontend.sampleRate) }

    private let frontend = MelFrontend()
    /// Converts pushes at another rate to 16 kHz; replaced (its tail flushed first) when the rate changes.
    private var resampler: StreamingResampler?
    private var converted: [Float] = []
    private let state: EncoderState
    private let greedy: GreedyState?
    private let useCTC: Bool
    private var windows: MelWindowBuffer
    private let window: Tensor
    private let encoded: Tensor
    private let ctcLogits: Tensor
    private var lastCTC: Int
    private var encoderFrames = 0
    private var finished = false
    /// Encoder steps wait for a `StreamBatch` to run them (until `finish()`, which runs the rest itself).
    let batched: Bool
    private let features: Int
    private let frameSeconds: Double

    init(model: SpeechModel, lookahead: Int, convention: StreamingSchedule.Convention, decoder: SpeechModel.Decoder,
         endpointing: Endpointing?, batched: Bool = false) {
        self.model = model
        self.batched = batched
        self.endpointing = endpointing
        let e = model.encoder.description
        features = e.melFeatures
        frameSeconds = Double(e.subsamplingFactor * MelFrontend.hop) / Double(MelFrontend.sampleRate)
        let schedule = StreamingSchedule(lookahead: lookahead, subsamplingFactor: e.subsamplingFactor, convention: convention)
        windows = MelWindowBuffer(schedule: schedule, features: features)
        state = EncoderState(encoder: model.encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        useCTC = decoder == .ctc
        greedy = decoder == .rnnt ? model.rnnt.map { GreedyState(decoder: $0) } : nil
        window = Tensor(zeros: [schedule.maxWindow, features])
        encoded = Tensor(zeros: [schedule.framesPerStep, model.encoder.dModel])
        ctcLogits = Tensor(zeros: [model.ctc?.classes ?? 1])
        lastCTC = (model.ctc?.classes ?? 1) - 1
    }

    func push(_ samples: UnsafeBufferPointer<Float>, sampleRate: Int) throws(TranscriptionError) -> [Token] {
        guard !finished else { return [] }
        guard sampleRate >= 1 && sampleRate <= 768_000 else { throw .unsupportedSampleRate(sampleRate) }
        if let bad = samples.firstIndex(where: { !($0.magnitude <= TranscriptionError.largestSample) }) {
            let seconds = duration + Double(bad) / Double(sampleRate)
            throw samples[bad].isFinite ? .sampleOutOfRange(samples[bad], seconds: seconds) : .nonFiniteSample(seconds: seconds)
        }
        let before = tokens.count
        if resampler != nil && resampler?.inputRate != sampleRate { flushResampler() }
        if sampleRate == MelFrontend.sampleRate {
            frontend.push(samples) { frame in append(frame) }
        } else {
            if resampler == nil {
                do { resampler = try StreamingResampler(from: sampleRate, to: MelFrontend.sampleRate) } catch {
                    throw .unsupportedSampleRate(sampleRate)
                }
            }
            converted.removeAll(keepingCapacity: true)
            resampler?.process(samples, into: &converted)
            converted.withUnsafeBufferPointer { buffer in frontend.push(buffer) { frame in append(frame) } }
        }
        runSteps()
        return Array(tokens[before...])
    }

    func finish() -> [Token] {
        guard !finished else { return tokens }
        finished = true
        flushResampler()
        frontend.finish { frame in append(frame) }
        windows.finish(.nemo)
        runSteps()
        // The last encoder frame may reach past the audio's end; no token does.
        let end = duration
        tokens = tokens.map { $0.end <= end ? $0 : $0.clamped(to: end) }
        return tokens
    }

    func reset() {
        frontend.reset()
        resampler = nil
        state.reset()
        greedy?.reset(blank: model.rnnt?.blank ?? 0)
        windows.reset()
        tokens.removeAll()
        lastCTC = (model.ctc?.classes ?? 1) - 1
        encoderFrames = 0
        finished = false
        utteranceIndex = 0
        utteranceStartFrame = 0
        speechEndFrame = nil
    }

    // MARK: Utterances

    /// Seconds of decoded audio in the current utterance, and of blank frames at its end.
    var utteranceSeconds: Double { Double(encoderFrames - utteranceStartFrame) * frameSeconds }
    var trailingSilence: Double { Double(encoderFrames - (speechEndFrame ?? utteranceStartFrame)) * frameSeconds }

    /// Whether an enabled endpoint rule holds for the current utterance.
    var isEndpoint: Bool {
        guard let rules = endpointing, encoderFrames > utteranceStartFrame else { return false }
        if let limit = rules.maxUtterance, utteranceSeconds >= limit { return true }
        let silence = speechEndFrame == nil ? rules.silenceWithoutSpeech : rules.silenceAfterSpeech
        if let limit = silence, trailingSilence >= limit { return true }
        return false
    }

    /// Closes the current utterance: its tokens leave `tokens`, the next utterance starts at the current frame.
    /// Decoding state and buffered audio carry on.
    func endUtterance() -> Utterance {
        let start = Double(utteranceStartFrame) * frameSeconds
        let end = max(start, min(Double(encoderFrames) * frameSeconds, duration))
        let utterance = Utterance(index: utteranceIndex, start: start, end: end,
                                  transcript: Transcript(tokens: tokens, duration: end))
        tokens.removeAll(keepingCapacity: true)
        utteranceIndex += 1
        utteranceStartFrame = encoderFrames
        speechEndFrame = nil
        return utterance
    }

    /// The resampler's last samples (its filter's look-ahead) into the frontend; pushes continue without it.
    private func flushResampler() {
        guard let resampler else { return }
        converted.removeAll(keepingCapacity: true)
        resampler.finish(into: &converted)
        converted.withUnsafeBufferPointer { buffer in frontend.push(buffer) { frame in append(frame) } }
        self.resampler = nil
    }

    private func append(_ frame: UnsafeBufferPointer<Float>) { windows.append(frame) }

    /// Every step whose window is complete (at the end, NeMo's end rule; see `MelWindowBuffer`); a batched stream
    /// leaves them to its batch until it finishes.
    private func runSteps() {
        if batched && !finished { return }
        while let w = windows.next(into: window.data) {
            let n = model.encoder.step(state, mel: window.data, frames: w.length, drop: w.drop, output: encoded.data)
            decode(encoded.data, frames: n)
        }
    }

    // MARK: Batched steps

    /// Adds this stream's next complete window to `batch`; false when it has none or the batch has no room.
    func addStep(to batch: EncoderBatch) -> Bool {
        guard batch.hasRoom(for: state), let w = windows.next(into: window.data) else { return false }
        return model.encoder.add(state, mel: window.data, frames: w.length, drop: w.drop, to: batch) != nil
    }

    /// Decodes this stream's rows of a batched step; returns the tokens they made final.
    func decodeStep(_ frames: UnsafePointer<Float>, rows n: Int) -> ArraySlice<Token> {
        let before = tokens.count
        decode(frames, frames: n)
        return tokens[before...]
    }

    /// The greedy RNN-T state of a stream that decodes with RNN-T, for a batch to decode its rows together with other
    /// streams' (`GreedyBatch`): then `record` takes its emissions and `decoded(rows:since:)` ends the step.
    var rnntState: GreedyState? { model.rnnt == nil ? nil : greedy }

    func record(_ emission: Emission) {
        tokens.append(token(emission.id, frame: emission.frame, logProbability: emission.logProbability))
        speechEndFrame = emission.frame + 1
    }

    /// Ends a step whose `n` rows a batch decoded; returns the tokens from index `before` on.
    func decoded(rows n: Int, since before: Int) -> ArraySlice<Token> {
        encoderFrames += n
        return tokens[before...]
    }

    /// Seconds of audio in complete windows that no step has run yet (a batched stream's until its batch steps it).
    var waitingSeconds: Double { Double(windows.framesBeyondNextWindow) * Double(MelFrontend.hop) / Double(MelFrontend.sampleRate) }

    /// The most encoder frames one step of this stream produces.
    var maxStepFrames: Int { state.maxFrames }

    private func decode(_ encoded: UnsafePointer<Float>, frames n: Int) {
        let d = model.encoder.dModel
        if let greedy, let rnnt = model.rnnt {
            greedy.decode(rnnt, frames: encoded, count: n, width: d, maxSymbols: model.maxSymbols) { record($0) }
        } else if useCTC, let ctc = model.ctc {
            for t in 0..<n {
                let (k, logProbability) = ctc.best(encoded + t * d, logits: ctcLogits.data)
                if k != ctc.classes - 1 && k != lastCTC {
                    tokens.append(token(k, frame: encoderFrames + t, logProbability: logProbability))
                    speechEndFrame = encoderFrames + t + 1
                }
                lastCTC = k
            }
        }
        encoderFrames += n
    }

    private func token(_ id: Int, frame: Int, logProbability: Float) -> Token {
        Token(id: id, piece: id < model.tokens.count ? model.tokens[id] : "", frame: frame,
              start: Double(frame) * frameSeconds, end: Double(frame + 1) * frameSeconds, logProbability: logProbability)
    }
}
