import ArgumentParser
import Foundation
import STTConformer
import STTKit
import STTTensor
import STTWeightLoader

/// fp32 against int8 or bf16 weights of one model: how far the encoder's outputs move, and how much of the fp32 text
/// survives.
struct ComparePrecision: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare-precision",
        abstract: "Compare a model's fp32 weights with its int8 files or bf16 storage: encoder deviation over N calls, token and character agreement.",
        discussion: """
            FP32 is loaded with its fp32 files and CANDIDATE at --precision: int8 (its int8 files where it has them, \
            else its fp32 files, in int8 products), bf16, or fp32 (a folder of int8 files only, dequantized, as \
            ONNX Runtime's int8 files would be read exactly). One folder may be given twice. The encoder deviation is the largest |candidate − fp32| over N export-convention calls at the \
            export's look-ahead, divided by the largest |fp32| output, and the root-mean-square deviation over the \
            root-mean-square output; the calls are fed the log-mel frames of the \
            recordings (repeated as needed), or synthetic speech-like frames without recordings. Agreement is \
            1 − edit distance / length of the fp32 result, over token ids and over the characters of the text, for \
            every recording at every trained look-ahead.
            """)

    @Argument(help: "The model folder with the fp32 files.")
    var fp32: String

    @Argument(help: "The model folder to compare: int8 files (sherpa-onnx's *.int8.onnx), or fp32 files for bf16.")
    var candidate: String

    @Option(help: "The candidate's precision: int8, bf16 or fp32.")
    var precision: SpeechModel.Precision = .int8

    @Argument(help: "WAV recordings to transcribe with both.")
    var recordings: [String] = []

    @Option(help: "Encoder calls compared.")
    var calls: Int = 40

    @Flag(help: "Print both texts wherever they differ.")
    var texts = false

    func run() throws {
        try requireOption("calls", calls, in: 1...100_000)
        let reference: SpeechModel, quantized: SpeechModel
        do {
            reference = try SpeechModel(folder: fp32, precision: .fp32)
            quantized = try SpeechModel(folder: candidate, precision: precision)
        } catch { throw CommandFailure(error) }
        guard reference.filePrecision == .fp32 else {
            throw CommandFailure("\(fp32) has only int8 files; the reference needs a folder with fp32 files")
        }
        // sherpa-onnx writes a character vocabulary's space as a space, NeMo's exporter as ▁.
        func pieces(_ model: SpeechModel) -> [String] { model.tokens.map { $0 == " " ? "\u{2581}" : $0 } }
        guard pieces(reference) == pieces(quantized) else {
            throw CommandFailure("the two folders have different tokens.txt; they are not one model")
        }
        var audio: [(name: String, samples: [Float])] = []
        for path in recordings {
            do {
                let wav = try WAVFile(path: path)
                audio.append(((path as NSString).lastPathComponent, try Resampler(from: wav.sampleRate, to: 16_000)(wav.samples)))
            } catch { throw CommandFailure(error) }
        }

        let r = reference.exportLookahead
        let features = reference.encoder.description.melFeatures
        let mel = audio.isEmpty ? nil : MelFrontend.frames(of: audio.flatMap(\.samples), melBins: features)
        let deviation = try encoderDeviation(reference.encoder, quantized.encoder, lookahead: r, mel: mel)
        let source = audio.isEmpty ? "synthetic log-mel frames"
            : "the log-mel frames of \(audio.map(\.name).joined(separator: ", "))"
        print("fp32      \(fp32) (\(reference.filePrecision) files)")
        print("\(precision)      \(candidate) (\(quantized.filePrecision) files)")
        print("encoder   \(calls) calls at [\(reference.encoder.leftContext),\(r)], \(source): max |\(precision) - fp32| "
              + "\(format(deviation.worst)), max |fp32| \(format(deviation.scale)), scaled "
              + format(deviation.worst / max(deviation.scale, .leastNormalMagnitude)))
        print("encoder   over every output of those calls: rms |\(precision) - fp32| / rms |fp32| "
              + format(Float((deviation.squaredError / max(deviation.squaredSize, .leastNormalMagnitude)).squareRoot())))
        guard !audio.isEmpty else { return }

        var lowestTokens = 1.0, lowestCharacters = 1.0
        for (name, samples) in audio {
            for lookahead in reference.lookaheads.sorted(by: >) {
                let options = TranscriptionStream.Options(lookahead: lookahead)
                let a: Transcript, b: Transcript
                do {
                    a = try reference.transcribe(samples: samples, options: options)
                    b = try quantized.transcribe(samples: samples, options: options)
                } catch { throw CommandFailure("\(name): \(error)") }
                let ids = (a.tokens.map(\.id), b.tokens.map(\.id))
                let tokens = Agreement.of(ids.1, ids.0), characters = Agreement.of(b.text, a.text)
                lowestTokens = min(lowestTokens, tokens)
                lowestCharacters = min(lowestCharacters, characters)
                print("\(name)  \(String(repeating: " ", count: max(0, 7 - lookahead.description.count)) + lookahead.description)  tokens \(percent(tokens)) (\(ids.0.count) fp32, "
                      + "\(ids.1.count) \(precision)\(ids.0 == ids.1 ? ", identical" : ""))  characters \(percent(characters))")
                if texts && a.text != b.text {
                    print("  fp32: \(a.text)")
                    print("  \(precision): \(b.text)")
                }
            }
        }
        print("lowest    tokens \(percent(lowestTokens)), characters \(percent(lowestCharacters))")
    }

    private func format(_ value: Float) -> String { String(format: "%.4g", Double(value)) }
    private func percent(_ value: Double) -> String { String(format: "%6.2f %%", value * 100) }

    /// The largest |b − a| and |a|, and the sums of (b − a)² and a², over `calls` export-convention calls of both
    /// encoders on the same windows: the frames of `mel` ([frames, features], time-major; repeated as needed), or
    /// synthetic ones.
    private func encoderDeviation(_ a: ConformerEncoder, _ b: ConformerEncoder, lookahead: Int,
                                  mel: [Float]?) throws -> (worst: Float, scale: Float, squaredError: Double,
                                                            squaredSize: Double) {
        let features = a.description.melFeatures
        guard a.dModel == b.dModel, features == b.description.melFeatures,
              a.description.subsamplingFactor == b.description.subsamplingFactor else {
            throw CommandFailure("the two encoders differ in shape (d_model \(a.dModel) vs \(b.dModel))")
        }
        let schedule = StreamingSchedule(lookahead: lookahead, subsamplingFactor: a.description.subsamplingFactor,
                                         convention: .exportCompatible)
        let needed = schedule.hop * calls + schedule.overlap
        let stream = mel ?? ParitySteps.syntheticMel(features: features, frames: needed)
        let available = stream.count / features
        guard available > 0 else { throw CommandFailure("the recordings give no log-mel frames") }
        let states = [a, b].map { EncoderState(encoder: $0, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow) }
        var buffer = MelWindowBuffer(schedule: schedule, features: features)
        let window = Tensor(zeros: [schedule.maxWindow, features])
        let outputs = [Tensor(zeros: [schedule.framesPerStep, a.dModel]), Tensor(zeros: [schedule.framesPerStep, a.dModel])]
        var worst: Float = 0, scale: Float = 0, fed = 0, squaredError = 0.0, squaredSize = 0.0
        for call in 0..<calls {
            var next = buffer.next(into: window.data)
            while next == nil, fed < needed {
                let t = fed % available
                stream.withUnsafeBufferPointer { all in
                    buffer.append(UnsafeBufferPointer(rebasing: all[(t * features)..<((t + 1) * features)]))
                }
                fed += 1
                next = buffer.next(into: window.data)
            }
            guard let span = next else { throw CommandFailure("the log-mel stream ended before call \(call)") }
            let counts = [a, b].enumerated().map { i, encoder in
                encoder.step(states[i], mel: window.data, frames: span.length, drop: span.drop, output: outputs[i].data)
            }
            guard counts[0] == counts[1] else {
                throw CommandFailure("call \(call): the encoders emit \(counts[0]) and \(counts[1]) frames")
            }
            for j in 0..<(counts[0] * a.dModel) {
                let value = outputs[0].data[j], difference = outputs[1].data[j] - value
                worst = max(worst, abs(difference))
                scale = max(scale, abs(value))
                squaredError += Double(difference) * Double(difference)
                squaredSize += Double(value) * Double(value)
            }
        }
        return (worst, scale, squaredError, squaredSize)
    }
}
