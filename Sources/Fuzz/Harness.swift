import Foundation
import STTAudio
import STTConformer
import STTKit
import STTTensor
import STTWeightLoader

/// What the fuzzers feed: each target takes bytes as a file of its kind would hold them, runs them through the
/// product's own code in memory, and must end in success or a typed error whose message is one printable line.
package enum FuzzTarget: String, CaseIterable, Sendable {
    /// An ONNX export (encoder, CTC or decoder_joint graph): decoded, described, built into the engine's modules and
    /// run on zeros.
    case onnx
    /// A WAV file: header, samples read block by block, resampled to 16 kHz.
    case wav
    /// A model.json and a tokens.txt: the same bytes through both parsers.
    case metadata

    /// Runs one input.
    package func execute(_ input: [UInt8]) -> FuzzOutcome {
        switch self {
        case .onnx: FuzzHarness.onnx(input)
        case .wav: FuzzHarness.wav(input)
        case .metadata: FuzzHarness.metadata(input)
        }
    }
}

/// How one execution ended.
package enum FuzzOutcome: Sendable, Equatable {
    /// The input was taken; the label says as what ("decoder_joint", "wav resampled").
    case accepted(String)
    /// A typed error with a clean message; the label is the error's case ("truncated").
    case rejected(String)
    /// The code ran to the end but broke a promise: a message on several lines or with control characters, a result
    /// that contradicts itself. As bad as a crash.
    case finding(String)

    package var label: String {
        switch self {
        case .accepted(let label): "accepted " + label
        case .rejected(let label): "rejected " + label
        case .finding: "finding"
        }
    }

    package var isFinding: Bool { if case .finding = self { true } else { false } }
}

/// The harness functions behind `stt-fuzz` and the regression tests.
package enum FuzzHarness {
    /// Why `message` is not one printable line, or nil when it is.
    package static func problem(inMessage message: String) -> String? {
        if message.isEmpty { return "the message is empty" }
        for scalar in message.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate:
                return "the message holds U+\(String(scalar.value, radix: 16, uppercase: true)): "
                    + message.debugDescription.prefix(300)
            default: continue
            }
        }
        return nil
    }

    /// A typed error as an outcome: its case name, or a finding when its message is not one printable line.
    static func rejection(_ error: some Error & CustomStringConvertible, _ what: String = "") -> FuzzOutcome {
        if let problem = problem(inMessage: error.description) {
            return .finding("\(type(of: error)) \(caseName(error)): \(problem)")
        }
        return .rejected(what + caseName(error))
    }

    static func caseName(_ value: Any) -> String {
        Mirror(reflecting: value).children.first?.label ?? "\(type(of: value))"
    }

    // MARK: ONNX

    /// Decodes an ONNX export from memory, checks it as a model folder's encoder or decoder_joint would be checked,
    /// builds the engine's modules from it and runs them once on zeros.
    package static func onnx(_ bytes: [UInt8]) -> FuzzOutcome {
        do {
            let graph = try ExportedGraph(bytes: bytes, name: "input.onnx")
            switch graph.kind {
            case .decoderJoint:
                let decoder = try RNNTDecoder(graph: graph)
                let d = decoder.description
                let state = GreedyState(decoder: decoder)
                let frame = Tensor(zeros: [d.encoderDim])
                var emitted = 0
                state.decode(decoder, frames: frame.data, count: 1, width: d.encoderDim, maxSymbols: 3) { emission in
                    if emission.id >= 0 && emission.id < d.classes { emitted += 1 } else { emitted = -1_000 }
                }
                guard emitted >= 0 else { return .finding("the decoder emitted a token outside its classes") }
                return .accepted("decoder_joint")
            case .predictionNetwork, .joint:
                // Half of sherpa-onnx's decoder pair: described as such; a folder pairs it with the other half.
                return .rejected("\(graph.kind) alone")
            case .encoder, .ctc, .encoderWithoutCache:
                let (description, ctc) = try LoadedModel.describeEncoder(graph)
                // As SpeechModel builds it from a folder without model.json, and as its streams run by default.
                let attention = AttentionSettings(graphContext: graph.exportAttContext, metadata: nil)
                let encoder = try ConformerEncoder(graph: graph, leftContext: attention.leftContext,
                                                   maxLookahead: attention.maxLookahead)
                let schedule = StreamingSchedule(lookahead: attention.exportLookahead,
                                                 subsamplingFactor: description.subsamplingFactor, convention: .native)
                let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
                let mel = Tensor(zeros: [schedule.maxWindow, description.melFeatures])
                let output = Tensor(zeros: [schedule.framesPerStep, description.dModel])
                // The first step and one with history: what a stream does with this model.
                for step in 0..<2 {
                    let window = schedule.window(step: step)
                    encoder.step(state, mel: mel.data, frames: window.length, drop: window.drop, output: output.data)
                }
                if let ctc {
                    let head = try CTCHead(graph: graph)
                    let logits = Tensor(zeros: [ctc.classes])
                    head.logits(output.data, into: logits.data)
                    return .accepted("ctc")
                }
                return .accepted("encoder")
            }
        } catch {
            return rejection(error)
        }
    }

    // MARK: WAV

    /// Block sizes the reader is asked for, in turn (the last repeats): odd sizes at the start reach the paths that
    /// split frames across reads.
    static let blockSizes = [1, 2, 3, 5, 160, 4_096, 1 << 16]
    /// Samples the harness feeds the resampler at most, and resampled samples after which it stops: enough for every
    /// path of the filter, while a 1 Hz file (16 000 times longer at 16 kHz) or a 768 kHz one (a long filter per
    /// sample) stays a few milliseconds of work.
    static let resamplingLimit = 1 << 14

    /// Reads a WAV file from memory block by block, checks what the reader promises, and resamples it to 16 kHz.
    package static func wav(_ bytes: [UInt8]) -> FuzzOutcome {
        let reader: WAVReader
        do { reader = try WAVReader(bytes: bytes, name: "input.wav") } catch { return rejection(error) }
        guard Resampler.supportedRates.contains(reader.sampleRate), (1...64).contains(reader.channels),
              [8, 16, 24, 32, 64].contains(reader.bitsPerSample) else {
            return .finding("the reader took rate \(reader.sampleRate), \(reader.channels) channels, \(reader.bitsPerSample) bits")
        }
        var samples: [Float] = []
        var reads = 0
        do {
            while true {
                let want = blockSizes[min(reads, blockSizes.count - 1)]
                let before = samples.count
                let got = try reader.read(maxFrames: want, into: &samples)
                reads += 1
                guard got == samples.count - before, got <= want else {
                    return .finding("read(maxFrames: \(want)) returned \(got) and appended \(samples.count - before)")
                }
                if got == 0 { break }
            }
        } catch {
            return rejection(error)
        }
        if let count = reader.frameCount, count != samples.count {
            return .finding("the reader announced \(count) frames and delivered \(samples.count)")
        }
        if let bad = samples.firstIndex(where: { !$0.isFinite || (!reader.isFloat && abs($0) > 1) }) {
            return .finding("sample \(bad) is \(samples[bad])")
        }
        guard reader.sampleRate != 16_000 else { return .accepted("wav") }
        let resampler: StreamingResampler
        do { resampler = try StreamingResampler(from: reader.sampleRate, to: 16_000) } catch { return rejection(error) }
        var output: [Float] = []
        var fed = 0
        // Blocks small enough that one block cannot overshoot the output limit by much when the rate goes up.
        let block = max(1, min(4_096, resamplingLimit / 4 * reader.sampleRate / 16_000))
        while fed < min(samples.count, resamplingLimit) && output.count < resamplingLimit {
            let end = min(samples.count, fed + block)
            samples[fed..<end].withUnsafeBufferPointer { resampler.process($0, into: &output) }
            fed = end
        }
        resampler.finish(into: &output)
        let expected = resampler.resampler.outputCount(forInputCount: fed)
        guard output.count == expected else {
            return .finding("\(fed) samples at \(reader.sampleRate) Hz resampled to \(output.count), expected \(expected)")
        }
        return .accepted("wav resampled")
    }

    // MARK: model.json, tokens.txt

    /// The same bytes as a model.json and as a tokens.txt.
    package static func metadata(_ bytes: [UInt8]) -> FuzzOutcome {
        let data = Data(bytes)
        var labels: [String] = []
        do {
            let metadata = try ModelMetadata.decode(data, name: "model.json")
            if let sizes = metadata.attContextSizes, sizes.contains(where: { $0.count != 2 }) {
                return .finding("att_context_sizes \(sizes) passed validation")
            }
            let attention = AttentionSettings(graphContext: nil, metadata: metadata)
            guard (1...1_024).contains(attention.leftContext), attention.trained.allSatisfy({ (0...256).contains($0) }),
                  attention.trained.contains(attention.exportLookahead) else {
                return .finding("model.json gives attention settings \(attention)")
            }
            labels.append("model.json")
        } catch {
            let outcome = rejection(error, "model.json ")
            if outcome.isFinding { return outcome }
        }
        do {
            let tokens = try TokenTable.parse(data, name: "tokens.txt")
            if tokens.isEmpty { return .finding("an empty token table passed") }
            if let bad = tokens.first(where: { $0.contains("\n") || $0.contains("\r") }) {
                return .finding("token \(bad.debugDescription) holds a line end")
            }
            labels.append("tokens.txt")
        } catch {
            let outcome = rejection(error, "tokens.txt ")
            if outcome.isFinding { return outcome }
        }
        return labels.isEmpty ? .rejected("both") : .accepted(labels.joined(separator: " "))
    }
}
