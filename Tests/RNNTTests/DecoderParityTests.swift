import Foundation
import STTTensor
import STTTestFixtures
import Testing
import STTWeightLoader
import STTConformer
import STTKit
import STTMallocCounter

func loadDecoder(_ folder: String) throws -> RNNTDecoder {
    try RNNTDecoder(graph: ExportedGraph(path: Fixtures.file(folder, prefix: "decoder_joint")))
}

@Suite struct DecoderParityTests {
    /// Each stored decoder_joint call of ONNX Runtime (frame, token, input states) → logits and output states.
    @Test(arguments: ["tiny", "small"])
    func decoderJointCallsMatchONNXRuntime(size: String) throws {
        let decoder = try loadDecoder("\(size)/la13")
        let enc = try Fixtures.ref(size, "dec_enc"), targets = try Fixtures.ref(size, "dec_targets")
        let h0 = try Fixtures.ref(size, "dec_state1_in"), c0 = try Fixtures.ref(size, "dec_state2_in")
        let logits = try Fixtures.ref(size, "dec_logits")
        let h1 = try Fixtures.ref(size, "dec_state1_out"), c1 = try Fixtures.ref(size, "dec_state2_out")
        let calls = enc.shape[0], d = enc.shape[1], hidden = h0.shape[1], classes = logits.shape[1]
        #expect(classes == decoder.description.classes && hidden == decoder.description.predictionHidden)
        let state = GreedyState(decoder: decoder)
        let out = Tensor(zeros: [classes])
        var logitDeviation = Deviation(), stateDeviation = Deviation()
        for j in 0..<calls {
            state.prediction.set(h: Array(h0.floats[(j * hidden)..<((j + 1) * hidden)]),
                                 c: Array(c0.floats[(j * hidden)..<((j + 1) * hidden)]))
            let frame = Array(enc.floats[(j * d)..<((j + 1) * d)])
            decoder.evaluate(frame: frame, token: Int(targets.integers[j]), state: state, logits: out.data)
            var call = Deviation()
            call.compare(out.data, logits.floats, offset: j * classes, count: classes)
            #expect(call.worst <= call.tolerance, "\(size) call \(j) logits: \(call)")
            logitDeviation.worst = max(logitDeviation.worst, call.relative)
            var s = Deviation()
            s.compare(state.prediction.nextH(0), h1.floats, offset: j * hidden, count: hidden)
            s.compare(state.prediction.nextC(0), c1.floats, offset: j * hidden, count: hidden)
            #expect(s.worst <= s.tolerance, "\(size) call \(j) states: \(s)")
            stateDeviation.worst = max(stateDeviation.worst, s.relative)
        }
        print("\(size) decoder_joint, \(calls) calls: worst scaled |Δ| logits \(logitDeviation.worst), states \(stateDeviation.worst)")
    }

    /// NeMo-style greedy RNN-T over ONNX Runtime's encoder frames gives ONNX Runtime's greedy walk, token for token.
    @Test(arguments: ["tiny", "small"])
    func greedyDecodingOfONNXRuntimeFramesEqualsItsWalk(size: String) throws {
        let decoder = try loadDecoder("\(size)/la13")
        let outputs = try Fixtures.ref(size, "enc_la13_outputs")   // [calls, d, T]
        let expected = try Fixtures.ref(size, "greedy_la13_tokens").integers.map(Int.init)
        let calls = outputs.shape[0], d = outputs.shape[1], t = outputs.shape[2]
        let frames = Tensor(zeros: [calls * t, d])
        for k in 0..<calls { for c in 0..<d { for i in 0..<t { frames.data[(k * t + i) * d + c] = outputs.floats[(k * d + c) * t + i] } } }
        let state = GreedyState(decoder: decoder)
        var tokens: [Int] = []
        // Chunk by chunk, as a stream would: the last token and LSTM state carry across calls.
        for k in 0..<calls {
            state.decode(decoder, frames: frames.data + k * t * d, count: t, width: d) { tokens.append($0.id) }
        }
        #expect(tokens == expected, "\(size): \(tokens.count) tokens vs ONNX Runtime's \(expected.count)")
    }

    /// Greedy decoding allocates its buffers once: after a stream's first chunk (one stream alone, a batch of one) and
    /// after a batch's first call, decoding touches no heap, whatever the tokens emitted.
    @Test(.enabled(if: malloc_counter_available() != 0, "this build cannot count heap allocations"))
    func decodingAfterTheFirstChunkMakesNoHeapAllocation() throws {
        let decoder = try loadDecoder("small/la13")
        let outputs = try Fixtures.ref("small", "enc_la13_outputs")   // [calls, d, T]
        let calls = outputs.shape[0], d = outputs.shape[1], t = outputs.shape[2]
        let frames = Tensor(zeros: [calls * t, d])
        for k in 0..<calls { for c in 0..<d { for i in 0..<t { frames.data[(k * t + i) * d + c] = outputs.floats[(k * d + c) * t + i] } } }
        let alone = GreedyState(decoder: decoder)
        let states = (0..<3).map { _ in GreedyState(decoder: decoder) }
        let batch = GreedyBatch(decoder: decoder, capacity: 3, maxFrames: t)
        var tokens = 0, allocations: [Int] = [], batchAllocations: [Int] = []
        for k in 0..<calls {
            malloc_counter_start()
            alone.decode(decoder, frames: frames.data + k * t * d, count: t, width: d) { _ in tokens += 1 }
            allocations.append(malloc_counter_stop())
            malloc_counter_start()
            // Three streams at different chunks of the same frames, one of them with none this call.
            batch.decode(streams: 3, state: { states[$0] }, frames: { UnsafePointer(frames.data + ((k + $0) % calls) * t * d) },
                         count: { $0 == 2 && k % 2 == 1 ? 0 : t }, width: d) { _, _ in tokens += 1 }
            batchAllocations.append(malloc_counter_stop())
        }
        #expect(calls >= 3 && tokens > 0)
        #expect(allocations.dropFirst().allSatisfy { $0 == 0 }, "one stream, allocations per chunk: \(allocations)")
        #expect(batchAllocations.allSatisfy { $0 == 0 }, "a batch of three, allocations per call: \(batchAllocations)")
    }

    /// The whole engine (our encoder, export convention, then greedy RNN-T) gives the tokens of the ONNX Runtime
    /// pipeline on the trained fixture.
    @Test func smallFixtureEndToEndTokensEqualTheONNXRuntimePipeline() throws {
        let encoder = try ConformerEncoder(graph: ExportedGraph(path: Fixtures.encoderFile("small/la13")))
        let decoder = try loadDecoder("small/la13")
        let mel = try Fixtures.ref("small", "stream_mel")
        let expected = try Fixtures.ref("small", "greedy_la13_tokens").integers.map(Int.init)
        let schedule = StreamingSchedule(lookahead: 13, convention: .exportCompatible)
        let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        let greedy = GreedyState(decoder: decoder)
        let window = Tensor(zeros: [schedule.maxWindow, 80]), out = Tensor(zeros: [schedule.framesPerStep, encoder.dModel])
        var feed = MelFeed(mel, schedule: schedule)
        var tokens: [Int] = []
        for k in 0..<40 {
            guard let w = feed.next(into: window.data) else { Issue.record("call \(k): the mel stream ends"); break }
            let n = encoder.step(state, mel: window.data, frames: w.length, drop: w.drop, output: out.data)
            greedy.decode(decoder, frames: out.data, count: n, width: encoder.dModel) { tokens.append($0.id) }
        }
        #expect(tokens == expected, "\(tokens.count) tokens vs ONNX Runtime pipeline \(expected.count)")
        print("small end to end: \(tokens.count) tokens equal the ONNX Runtime pipeline")
    }
}
