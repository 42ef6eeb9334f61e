import Foundation
import STTTestFixtures
import Testing

/// Model folders made from the committed fixture with one thing broken, each as a user might download it: `stt`
/// answers every one with a single printable error line and exit status 1 — never a signal, a hang, or output.
@Suite struct MalformedModelTests {
    /// A copy of the tiny [70,13] fixture folder (or `source`), changed by `edit`.
    static func folder(from source: String = "tiny/la13",
                       _ edit: (_ dir: String, _ encoder: inout ONNXEditor, _ decoder: inout ONNXEditor) throws -> Void)
        throws -> String {
        let dir = try Fixtures.temporaryDirectory()
        let from = Fixtures.folder(source)
        for name in try FileManager.default.contentsOfDirectory(atPath: from) {
            try FileManager.default.copyItem(atPath: from + "/" + name, toPath: dir + "/" + name)
        }
        let encoderPath = Fixtures.file(source, prefix: "encoder"), decoderPath = Fixtures.file(source, prefix: "decoder_joint")
        var encoder = try ONNXEditor(path: encoderPath), decoder = try ONNXEditor(path: decoderPath)
        try edit(dir, &encoder, &decoder)
        try encoder.write(to: dir + "/" + (encoderPath as NSString).lastPathComponent)
        try decoder.write(to: dir + "/" + (decoderPath as NSString).lastPathComponent)
        return dir
    }

    /// The weight a named node reads as its second input.
    static func weight(of nodeName: String, in editor: ONNXEditor) throws -> Int {
        let node = try #require(editor.node { $0 == nodeName })
        let input = try #require(editor.nodes[node].strings(1).dropFirst().first)
        return try #require(editor.initializer(input))
    }

    static func resize(_ editor: inout ONNXEditor, _ index: Int, to dims: [Int]) {
        let count = dims.reduce(1, *)
        let values = editor.values(index)
        editor.setTensor(index, dims: dims, values: Array((values + [Float](repeating: 0.5, count: max(0, count - values.count))).prefix(count)))
    }

    func expectOneLineError(_ dir: String, containing expected: String? = nil,
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try STTProcess.run(["transcribe", "-m", dir, "samples/green-apples.wav"])
        #expect(r.status == 1, "status \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stdout.isEmpty, sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        #expect(lines.count == 1 && r.stderr.hasPrefix("stt: error: "), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.unicodeScalars.allSatisfy { $0 == "\n" || ($0.value >= 0x20 && $0.value != 0x7F) },
                "unprintable: \(r.stderr.debugDescription)", sourceLocation: sourceLocation)
        if let expected { #expect(r.stderr.contains(expected), "\(r.stderr)", sourceLocation: sourceLocation) }
    }

    // Row 1: a positional projection of the wrong shape.
    @Test func linearPosOfTheWrongShape() throws {
        let dir = try Self.folder { _, encoder, _ in
            let w = try Self.weight(of: "/layers.0/self_attn/linear_pos/MatMul", in: encoder)
            Self.resize(&encoder, w, to: [32, 64])
        }
        try expectOneLineError(dir, containing: "linear_pos")
    }

    // Row 2: LayerNorm, conv, joint and LSTM biases of the wrong length.
    @Test(arguments: ["layers.0.norm_out.weight", "layers.1.norm_feed_forward1.bias", "layers.0.conv.depthwise_conv.bias",
                      "layers.1.conv.pointwise_conv1.bias", "joint.enc.bias", "joint.joint_net.2.bias", "lstm-bias"])
    func parameterOfTheWrongLength(name: String) throws {
        let dir = try Self.folder { _, encoder, decoder in
            if name == "lstm-bias" {
                let node = try #require(decoder.node { $0.hasSuffix("/LSTM") })
                let b = try #require(decoder.initializer(decoder.nodes[node].strings(1)[3]))
                let dims = decoder.dims(b)
                Self.resize(&decoder, b, to: [1, dims[1] - 8])
            } else if let i = encoder.initializer(name) {
                Self.resize(&encoder, i, to: [encoder.dims(i)[0] - 3])
            } else {
                let i = try #require(decoder.initializer(name))
                Self.resize(&decoder, i, to: [decoder.dims(i)[0] - 3])
            }
        }
        try expectOneLineError(dir)
    }

    // Row 3: a Constant node that has lost its output.
    @Test func constantWithoutOutput() throws {
        let dir = try Self.folder { _, encoder, _ in
            let node = try #require(encoder.nodes.firstIndex { $0.string(4) == "Constant" })
            encoder.nodes[node].setStrings(2, [])
        }
        try expectOneLineError(dir)
    }

    // Row 4: dimensions whose product overflows.
    @Test(arguments: [[Int(1) << 40, Int(1) << 40], [Int.max / 2, 4], [-1, 64]])
    func dimensionsThatOverflow(dims: [Int]) throws {
        let dir = try Self.folder { _, encoder, _ in
            let w = try Self.weight(of: "/layers.0/self_attn/linear_q/MatMul", in: encoder)
            let values = encoder.values(w)
            encoder.setTensor(w, dims: dims, values: values)
        }
        try expectOneLineError(dir)
    }

    // Row 5: Identity and Sqrt nodes without their input.
    @Test func identityWithoutInput() throws {
        let dir = try Self.folder { _, _, decoder in
            let node = try #require(decoder.nodes.firstIndex { $0.string(4) == "Identity" })
            decoder.nodes[node].setStrings(1, [])
        }
        // Such a graph is still well formed; it must load or fail cleanly, never trap.
        let r = try STTProcess.run(["transcribe", "-m", dir, "samples/green-apples.wav"])
        #expect(r.status == 0 || (r.status == 1 && r.stderr.split(separator: "\n").count == 1), "\(r.status) \(r.stderr)")
    }

    @Test func sqrtWithoutInput() throws {
        let dir = try Self.folder(from: "tiny/opset13") { _, encoder, _ in
            let node = try #require(encoder.nodes.firstIndex { $0.string(4) == "Sqrt" })
            encoder.nodes[node].setStrings(1, [])
        }
        let r = try STTProcess.run(["transcribe", "-m", dir, "samples/green-apples.wav"])
        #expect(r.status == 0 || (r.status == 1 && r.stderr.split(separator: "\n").count == 1), "\(r.status) \(r.stderr)")
    }

    // Row 6 and 18: model.json out of range.
    @Test(arguments: [#"{"att_context_sizes": [[-1, 13]]}"#, #"{"att_context_sizes": [[70000000000, 13]]}"#,
                      #"{"export_att_context": [70, 100000]}"#, #"{"max_symbols": 0}"#, #"{"max_symbols": -3}"#,
                      #"{"att_context_sizes": []}"#, #"{"att_context_sizes": [[70]]}"#, #"{"sample_rate": "x"}"#])
    func modelJSONOutOfRange(json: String) throws {
        let dir = try Self.folder { dir, _, _ in try Data(json.utf8).write(to: URL(fileURLWithPath: dir + "/model.json")) }
        try expectOneLineError(dir, containing: "model.json")
    }

    // Row 8: a duplicated LSTM node; a node whose op_type changed.
    @Test func duplicatedLSTMNode() throws {
        let dir = try Self.folder { _, _, decoder in
            let node = try #require(decoder.nodes.firstIndex { $0.string(4) == "LSTM" })
            decoder.nodes.insert(decoder.nodes[node], at: node + 1)
        }
        try expectOneLineError(dir)
    }

    @Test(arguments: ["Gemm", "Add", "MatMulInteger"])
    func nodeWhoseOpTypeChanged(op: String) throws {
        let dir = try Self.folder { _, encoder, _ in
            let node = try #require(encoder.node { $0 == "/layers.1/feed_forward2/linear1/MatMul" })
            encoder.nodes[node].setStrings(4, [op])
        }
        try expectOneLineError(dir)
    }

    // Row 9: a FIFO in place of the encoder (nothing ever writes to it).
    @Test(.timeLimit(.minutes(1)))
    func fifoAsTheEncoder() throws {
        let dir = try Self.folder { _, _, _ in }
        let encoder = Fixtures.file("tiny/la13", prefix: "encoder")
        let path = dir + "/" + (encoder as NSString).lastPathComponent
        try FileManager.default.removeItem(atPath: path)
        #expect(mkfifo(path, 0o644) == 0)
        try expectOneLineError(dir, containing: "not a regular file")
    }

    // Row 10: tokens.txt with CRLF line ends (and a byte-order mark) reads as meant.
    @Test func tokensWithCRLFTranscribeAsUsual() throws {
        let dir = try Self.folder(from: "small/la13") { dir, _, _ in
            let path = dir + "/tokens.txt"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try Data(("\u{FEFF}" + text.replacingOccurrences(of: "\n", with: "\r\n")).utf8).write(to: URL(fileURLWithPath: path))
        }
        let crlf = try STTProcess.run(["transcribe", "-m", dir, "samples/green-apples.wav"])
        let plain = try STTProcess.run(["transcribe", "-m", "models/small/la13", "samples/green-apples.wav"])
        #expect(crlf.status == 0 && crlf.stdout == plain.stdout && !plain.stdout.isEmpty, "\(crlf.stderr)")
    }

    // Row 11: bytes and newlines from a file stay escaped in the one line.
    @Test func namesWithNewlinesAndControlBytesAreEscaped() throws {
        let dir = try Self.folder { _, encoder, _ in
            let node = try #require(encoder.node { $0 == "/layers.0/self_attn/linear_q/MatMul" })
            var inputs = encoder.nodes[node].strings(1)
            inputs[0] = "evil\nname\u{1}\u{7F}" + String(repeating: "x", count: 500)
            encoder.nodes[node].setStrings(1, inputs)
        }
        try expectOneLineError(dir, containing: "evil\\nname")
    }

    // Row 17: a depthwise kernel of size 0; a stem with no channels.
    @Test(arguments: [("layers.0.conv.depthwise_conv.weight", [64, 1, 0]), ("pre_encode.conv.0.weight", [0, 1, 3, 3])])
    func emptyDimensions(name: String, dims: [Int]) throws {
        let dir = try Self.folder { _, encoder, _ in
            let i = try #require(encoder.initializer(name))
            encoder.setTensor(i, dims: dims, values: [])
        }
        try expectOneLineError(dir)
    }
}

/// WAV files with broken or absurd contents: one printable error line, exit 1.
@Suite struct MalformedAudioTests {
    static func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    /// A canonical WAV: format tag (1 PCM, 3 float), channels, rate, bits, and the data bytes.
    static func wav(tag: Int = 1, channels: Int = 1, rate: Int, bits: Int = 16, data: [UInt8]) -> [UInt8] {
        let align = channels * bits / 8
        let fmt = le(tag, 2) + le(channels, 2) + le(rate, 4) + le(rate * align, 4) + le(align, 2) + le(bits, 2)
        let body = Array("WAVE".utf8) + Array("fmt ".utf8) + le(16, 4) + fmt + Array("data".utf8) + le(data.count, 4) + data
        return Array("RIFF".utf8) + le(body.count, 4) + body
    }

    static func floats(_ values: [Float]) -> [UInt8] {
        values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }
    }

    func expectOneLineError(_ bytes: [UInt8], containing expected: String,
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = try Fixtures.temporaryDirectory() + "/input.WAV"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let r = try STTProcess.run(["transcribe", "-m", "models/small/la13", path])
        #expect(r.status == 1 && r.stdout.isEmpty, "status \(r.status) \(r.stdout)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.hasPrefix("stt: error: "), "\(r.stderr)",
                sourceLocation: sourceLocation)
        #expect(r.stderr.contains(expected), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    // Row 7: a header claiming an extreme sample rate.
    @Test(arguments: [0, 768_001, 4_294_967_295])
    func extremeSampleRate(rate: Int) throws {
        try expectOneLineError(Self.wav(rate: rate, data: [UInt8](repeating: 0, count: 3_200)), containing: "sample rate")
    }

    /// The extremes that are allowed run, and stay quick.
    @Test(.timeLimit(.minutes(1)), arguments: [1, 768_000])
    func extremeButValidSampleRateRuns(rate: Int) throws {
        let path = try Fixtures.temporaryDirectory() + "/input.wav"
        try Data(Self.wav(rate: rate, data: [UInt8](repeating: 0, count: 2 * min(rate, 40_000)))).write(to: URL(fileURLWithPath: path))
        let r = try STTProcess.run(["transcribe", "-m", "models/small/la13", path])
        #expect(r.status == 0, "\(r.stderr)")
    }

    // Row 12: float samples that are NaN or infinite.
    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func nonFiniteFloatSamples(value: Float) throws {
        var samples = [Float](repeating: 0.1, count: 16_000)
        samples[12_000] = value
        try expectOneLineError(Self.wav(tag: 3, rate: 16_000, bits: 32, data: Self.floats(samples)), containing: "0.750 s")
    }

    // Row 19: stereo float samples near ±3e38 average to finite values that are no audio.
    @Test func stereoFloatNearTheLimits() throws {
        let samples = (0..<32_000).map { $0 % 2 == 0 ? Float(3e38) : Float(2.9e38) }
        try expectOneLineError(Self.wav(tag: 3, channels: 2, rate: 16_000, bits: 32, data: Self.floats(samples)),
                               containing: "scaled to [-1, 1]")
    }
}
