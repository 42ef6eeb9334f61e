import Foundation
import Testing

/// The `stt` executable as a user runs it: exit status and what it prints.
enum STTProcess {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// A binary built next to this test bundle: stt, or stt-dev.
    static func binary(_ tool: String = "stt") -> URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(tool)
    }

    static func run(_ arguments: [String], stdin: Data? = nil, tool: String = "stt",
                    environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = binary(tool)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.currentDirectoryURL = repository
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            // Written from another thread so a full pipe cannot block against the child's output.
            let writer = input.fileHandleForWriting
            Thread.detachNewThread { writer.write(stdin); try? writer.close() }
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

@Suite struct CommandLineTests {
    @Test func infoDescribesAFixtureFromItsTensors() throws {
        let r = try STTProcess.run(["info", "models/tiny/la13"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("layers 2, d_model 64, heads 4 × 16"))
        #expect(r.stdout.contains("export att_context [70, 13]"))
        #expect(r.stdout.contains("total                 302,557"))
    }

    @Test func infoOnANoCacheExportFailsWithOneLineAndTheFix() throws {
        let r = try STTProcess.run(["info", "models/tiny/nocache"])
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(r.stderr.contains("without cache support") && r.stderr.contains("cache_support"))
    }

    @Test(arguments: [["info", "/nonexistent/model"], ["info", "Package.swift"], ["info", "Tests"]])
    func badPathsFailWithOneLine(arguments: [String]) throws {
        let r = try STTProcess.run(arguments)
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("stt: error: "))
    }

    /// `stt --help` lists what a user runs; the development tools live in `stt-dev`.
    @Test func helpListsOnlyUserCommands() throws {
        let r = try STTProcess.run(["--help"])
        #expect(r.status == 0)
        for command in ["transcribe", "stream", "info"] { #expect(r.stdout.contains("  \(command)"), "\(r.stdout)") }
        for hidden in ["bench", "parity"] { #expect(!r.stdout.contains(hidden), "\(r.stdout)") }
        let dev = try STTProcess.run(["--help"], tool: "stt-dev")
        #expect(dev.status == 0 && dev.stdout.contains("bench") && dev.stdout.contains("parity-steps"))
    }

    @Test(arguments: [["info"], ["--no-such-flag"], ["info", "a", "b"]])
    func usageErrorsExitTwo(arguments: [String]) throws {
        let r = try STTProcess.run(arguments)
        #expect(r.status == 2, "\(r.stderr)")
    }

    @Test func parityStepsRefusesANoCacheExport() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("stt-parity-\(UUID().uuidString)").path
        let r = try STTProcess.run(["parity-steps", "models/tiny/nocache/encoder-tiny.onnx", "--out", out], tool: "stt-dev")
        #expect(r.status == 1)
        #expect(r.stderr.contains("without cache support"))
    }
}

@Suite struct KernelSelectionTests {
    /// STT_KERNELS caps the instruction set the products and element-wise kernels use, so CI can run the fallbacks.
    @Test(arguments: [("portable", "portable, products portable"), ("avx2", "products avx2+fma")])
    func environmentCapsTheKernels(setting: String, expected: String) throws {
        let r = try STTProcess.run(["bench", "encoder", "models/tiny/la13", "--calls", "2", "--lookahead", "0"],
                                   tool: "stt-dev", environment: ["STT_KERNELS": setting])
        #expect(r.status == 0, "\(r.stderr)")
        // A CPU without AVX2 stays on the portable code whatever the cap.
        #expect(r.stdout.contains(expected) || r.stdout.contains("products portable"), "\(r.stdout)")
    }
}

@Suite struct TranscribeCommandTests {
    /// NeMo's greedy transcription of "my brother likes green apples" with the small fixture (manifest, by NeMo).
    static func nemoText() throws -> String {
        let url = STTProcess.repository.appendingPathComponent("models/small/ref/manifest.json")
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        let samples = manifest?["training_samples"] as? [[String: Any]] ?? []
        let sample = samples.first { ($0["sentence"] as? String) == "my brother likes green apples" }
        return try #require(sample?["nemo_greedy"] as? String)
    }

    @Test func transcribesTheSampleAsNeMoDoes() throws {
        let r = try STTProcess.run(["transcribe", "--model", "models/small/la13", "samples/green-apples.wav"])
        #expect(r.status == 0, "\(r.stderr)")
        let expected = try Self.nemoText()
        #expect(r.stdout.trimmingCharacters(in: .newlines) == expected)
    }

    /// The same recording at 44.1 kHz (upsampled) gives the same text; at 8 kHz stereo float the content above 4 kHz is
    /// gone and the small fixture model degrades (measured), so only the decoding path is checked there.
    @Test func otherRatesAndLayoutsAreResampledAndDownmixed() throws {
        let r44 = try STTProcess.run(["transcribe", "--model", "models/small/la13", "models/frontend/green-apples-44k.wav"])
        let expected = try Self.nemoText()
        #expect(r44.status == 0 && r44.stdout.trimmingCharacters(in: .newlines) == expected)
        let r8 = try STTProcess.run(["transcribe", "--model", "models/small/la13", "--format", "json",
                                     "models/frontend/green-apples-8k-stereo-float.wav"])
        #expect(r8.status == 0, "\(r8.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r8.stdout.utf8)) as? [String: Any]
        #expect(abs((json?["audio_seconds"] as? Double ?? 0) - 1.96) < 0.01)
        #expect((json?["text"] as? String ?? "").hasPrefix("my brother"))
    }

    @Test func jsonCarriesTokensWithTimesAndSubtitlesAreWellFormed() throws {
        let j = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--format", "json", "--lookahead", "80",
                                    "samples/green-apples.wav"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
        let tokens = try #require(object["tokens"] as? [[String: Any]])
        let starts = tokens.compactMap { $0["start"] as? Double }
        #expect(starts.count == tokens.count && starts == starts.sorted() && (starts.last ?? 0) < 2.0)
        #expect(object["lookahead_ms"] as? Int == 80)
        // Words: they spell the text in order, each inside the audio with start ≤ end.
        let text = try #require(object["text"] as? String)
        let words = try #require(object["words"] as? [[String: Any]])
        let spelled = words.compactMap { $0["word"] as? String }
        #expect(!spelled.isEmpty && spelled.joined(separator: " ") == text.split(separator: " ").joined(separator: " "))
        let duration = try #require(object["audio_seconds"] as? Double)
        for word in words {
            let start = try #require(word["start"] as? Double), end = try #require(word["end"] as? Double)
            #expect(0 <= start && start <= end && end <= duration, "\(word)")
        }
        let wordStarts = words.compactMap { $0["start"] as? Double }
        #expect(wordStarts == wordStarts.sorted())
        let srt = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--format", "srt", "samples/green-apples.wav"])
        #expect(srt.stdout.hasPrefix("1\n00:00:00,") && srt.stdout.contains(" --> "))
        let vtt = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--format", "vtt", "samples/green-apples.wav"])
        #expect(vtt.stdout.hasPrefix("WEBVTT\n\n00:00:00."))
    }

    @Test func badAudioFailsWithOneLineAndOtherFilesStillRun() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stt-audio-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let empty = dir.appendingPathComponent("empty.wav").path
        FileManager.default.createFile(atPath: empty, contents: Data())
        let truncated = dir.appendingPathComponent("cut.wav").path
        let sample = try Data(contentsOf: STTProcess.repository.appendingPathComponent("samples/green-apples.wav"))
        try sample.prefix(30).write(to: URL(fileURLWithPath: truncated))
        let r = try STTProcess.run(["transcribe", "-m", "models/small/la13", empty, truncated, "samples/green-apples.wav",
                                    "/nonexistent.wav"])
        #expect(r.status == 1)
        let errors = r.stderr.split(separator: "\n")
        #expect(errors.count == 3 && errors.allSatisfy { $0.hasPrefix("stt: error: ") }, "\(r.stderr)")
        #expect(r.stdout.contains("green-apples.wav: "))
    }

    @Test(arguments: [["transcribe", "-m", "models/small/la13", "--lookahead", "100", "samples/green-apples.wav"],
                      ["transcribe", "-m", "models/small/la13", "--mode", "fast", "samples/green-apples.wav"],
                      ["transcribe", "-m", "models/small/la13"]])
    func badOptionsAreUsageErrors(arguments: [String]) throws {
        let r = try STTProcess.run(arguments)
        #expect(r.status == 2)
    }

    @Test func missingDecoderIsAnError() throws {
        let r = try STTProcess.run(["transcribe", "-m", "models/small/ctc", "--decoder", "rnnt", "samples/green-apples.wav"])
        #expect(r.status == 1 && r.stderr.contains("no rnnt decoder"))
        let ctc = try STTProcess.run(["transcribe", "-m", "models/small/ctc", "samples/green-apples.wav"])
        #expect(ctc.status == 0, "\(ctc.stderr)")
    }
}

@Suite struct StdinTests {
    /// The sample as raw s16le 16 kHz, what arecord or sox would pipe in.
    static func rawSample() throws -> Data {
        let wav = try Data(contentsOf: STTProcess.repository.appendingPathComponent("samples/green-apples.wav"))
        return wav.suffix(from: wav.startIndex + 44)   // the sample's canonical 44-byte header
    }

    @Test func transcribeReadsRawPCMFromStdin() throws {
        let r = try STTProcess.run(["transcribe", "-m", "models/small/la13", "-"], stdin: try Self.rawSample())
        let expected = try TranscribeCommandTests.nemoText()
        #expect(r.status == 0 && r.stdout.trimmingCharacters(in: .newlines) == expected, "\(r.stderr)")
    }

    @Test func streamPrintsPartialsOnStderrAndTheFinalTextOnStdout() throws {
        let r = try STTProcess.run(["stream", "-m", "models/small/la13", "--lookahead", "80"], stdin: try Self.rawSample())
        let expected = try TranscribeCommandTests.nemoText()
        #expect(r.status == 0 && r.stdout.trimmingCharacters(in: .newlines) == expected, "\(r.stderr)")
        #expect(!r.stderr.isEmpty, "no partial results")
    }

    /// A WAV file piped to '-' is recognised by its RIFF header, not decoded as samples.
    @Test(arguments: ["samples/green-apples.wav", "models/frontend/green-apples-44k.wav"])
    func wavOnStdinTranscribesLikeTheFile(file: String) throws {
        let wav = try Data(contentsOf: STTProcess.repository.appendingPathComponent(file))
        let piped = try STTProcess.run(["transcribe", "-m", "models/small/la13", "-"], stdin: wav)
        let direct = try STTProcess.run(["transcribe", "-m", "models/small/la13", file])
        #expect(piped.status == 0 && piped.stdout == direct.stdout && !direct.stdout.isEmpty, "\(piped.stderr)")
    }

    @Test func emptyStdinIsAnError() throws {
        let r = try STTProcess.run(["transcribe", "-m", "models/small/la13", "-"], stdin: Data())
        #expect(r.status == 1 && r.stderr.contains("no audio"))
    }
}
