import Foundation
import Testing

/// `stt stream` as a live command (utterances at pauses, Ctrl-C) and `stt transcribe` with several inputs and formats.
@Suite struct LiveCommandLineTests {
    /// The sample as raw s16le 16 kHz followed by 2.5 s of silence, three times.
    static func threeUtterances() throws -> Data {
        let one = try StdinTests.rawSample() + Data(count: 2 * 40_000)
        return one + one + one
    }

    @Test func streamPrintsOneLinePerUtterance() throws {
        let r = try STTProcess.run(["stream", "-m", "models/small/la13"], stdin: try Self.threeUtterances())
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == 3, "\(r.stdout)")
        #expect(lines.first.map(String.init) == (try TranscribeCommandTests.nemoText()))
        #expect(lines.allSatisfy { !$0.isEmpty })
        // Not a terminal: stderr holds each utterance's newly final text once, a line per utterance.
        #expect(r.stderr.split(separator: "\n").count == 3, "\(r.stderr)")
        #expect(r.stderr.utf8.count < 3 * 80)
        let whole = try STTProcess.run(["stream", "-m", "models/small/la13", "--no-endpointing"], stdin: try Self.threeUtterances())
        #expect(whole.status == 0 && whole.stdout.split(separator: "\n").count == 1)
        #expect(whole.stdout.split(separator: " ").count == lines.joined(separator: " ").split(separator: " ").count)
    }

    @Test func streamJSONHasAnObjectPerUtteranceWithWords() throws {
        let r = try STTProcess.run(["stream", "-m", "models/small/la13", "--format", "json"], stdin: try Self.threeUtterances())
        #expect(r.status == 0, "\(r.stderr)")
        let objects = try r.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(objects.count == 3)
        #expect(objects.compactMap { $0["utterance"] as? Int } == [0, 1, 2])
        var previousEnd = 0.0
        for object in objects {
            let start = try #require(object["start"] as? Double), end = try #require(object["end"] as? Double)
            #expect(start >= previousEnd && end > start)
            previousEnd = end
            let words = try #require(object["words"] as? [[String: Any]])
            let text = try #require(object["text"] as? String)
            #expect(words.compactMap { $0["word"] as? String }.joined(separator: " ") == text)
            for word in words {
                let s = try #require(word["start"] as? Double), e = try #require(word["end"] as? Double)
                #expect(start <= s && s <= e && e <= end)
            }
        }
    }

    /// Ctrl-C (SIGINT) or SIGTERM in the middle of speech: the stream is finished and its text printed, exit 0.
    @Test(arguments: [SIGINT, SIGTERM])
    func aSignalFinishesTheStreamAndPrintsTheText(signal: Int32) throws {
        let process = Process()
        process.executableURL = STTProcess.binary()
        process.arguments = ["stream", "-m", "models/small/la13"]
        process.currentDirectoryURL = STTProcess.repository
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        // The sample with no pause after it, and stdin left open as a microphone's would be.
        input.fileHandleForWriting.write(try StdinTests.rawSample())
        let partials = Partials()
        err.fileHandleForReading.readabilityHandler = { handle in partials.add(handle.availableData) }
        let deadline = Date().addingTimeInterval(60)
        while partials.count == 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(partials.count > 0, "no partial text before the signal")
        // Time for the rest of the piped sample to be read (it is all in the pipe already).
        Thread.sleep(forTimeInterval: 1.5)
        kill(process.processIdentifier, signal)
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        err.fileHandleForReading.readabilityHandler = nil
        try? input.fileHandleForWriting.close()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        #expect(String(decoding: stdout, as: UTF8.self) == (try TranscribeCommandTests.nemoText()) + "\n")
    }

    final class Partials: @unchecked Sendable {
        private let lock = NSLock()
        private var bytes = 0
        func add(_ data: Data) { lock.withLock { bytes += data.count } }
        var count: Int { lock.withLock { bytes } }
    }

    @Test func severalInputsAndFormatsWriteOneFilePerInputAndFormat() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stt-out-\(UUID().uuidString)").path
        let r = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--format", "srt", "--format", "vtt",
                                    "--format", "json", "--format", "text", "--output-dir", dir,
                                    "samples/green-apples.wav", "models/frontend/green-apples-44k.wav"])
        #expect(r.status == 0 && r.stdout.isEmpty, "\(r.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(names == ["green-apples-44k.json", "green-apples-44k.srt", "green-apples-44k.txt", "green-apples-44k.vtt",
                          "green-apples.json", "green-apples.srt", "green-apples.txt", "green-apples.vtt"])
        let text = try String(contentsOfFile: dir + "/green-apples.txt", encoding: .utf8)
        #expect(text == (try TranscribeCommandTests.nemoText()) + "\n")
        // Each file equals what the same format prints for that input alone.
        for (name, format) in [("green-apples.srt", "srt"), ("green-apples.vtt", "vtt"), ("green-apples.json", "json")] {
            let alone = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--format", format, "samples/green-apples.wav"])
            let written = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
            #expect(written == alone.stdout, "\(name)")
        }
        // Cues end inside the audio (1.96 s).
        let srt = try String(contentsOfFile: dir + "/green-apples.srt", encoding: .utf8)
        let ends = srt.split(separator: "\n").filter { $0.contains(" --> ") }.map { $0.components(separatedBy: " --> ")[1] }
        #expect(!ends.isEmpty && ends.allSatisfy { $0 <= "00:00:01,960" }, "\(ends)")
    }

    @Test func jsonHasTimingOnlyOnRequest() throws {
        let plain = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--format", "json", "samples/green-apples.wav"])
        let again = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--format", "json", "samples/green-apples.wav"])
        #expect(plain.status == 0 && plain.stdout == again.stdout && !plain.stdout.contains("processing_seconds"))
        let timed = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--format", "json", "--timing",
                                        "samples/green-apples.wav"])
        #expect(timed.stdout.contains("\"processing_seconds\"") && timed.stdout.contains("\"real_time_factor\""))
    }

    @Test func progressLinesOnRequest() throws {
        let r = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--progress", "samples/green-apples.wav"])
        #expect(r.status == 0)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.last == "progress samples/green-apples.wav 100%" && lines.allSatisfy { $0.hasPrefix("progress ") },
                "\(r.stderr)")
    }

    @Test(arguments: [
        ["--format", "srt", "samples/green-apples.wav", "models/frontend/green-apples-44k.wav"],
        ["--format", "srt", "--format", "vtt", "samples/green-apples.wav"],
        ["--output-dir", "/tmp", "samples/green-apples.wav", "models/../samples/green-apples.wav"],
        ["-", "-"],
    ])
    func outputsThatCannotBeWrittenAreUsageErrors(arguments: [String]) throws {
        let r = try STTProcess.run(["transcribe", "-m", "models/small/la13"] + arguments)
        #expect(r.status == 2 && r.stdout.isEmpty)
        #expect(r.stderr.split(separator: "\n").count <= 3, "\(r.stderr)")
    }

    @Test func versionIsPrinted() throws {
        let r = try STTProcess.run(["--version"])
        #expect(r.status == 0 && r.stdout.split(separator: ".").count == 3, "\(r.stdout)")
    }
}

@Suite struct PrecisionOptionTests {
    @Test func precisionChoosesTheFilesAndTheProducts() throws {
        let int8 = try STTProcess.run(["transcribe", "-m", "models/small/sherpa-int8", "--precision", "int8",
                                       "samples/green-apples.wav"])
        #expect(int8.status == 0 && !int8.stdout.isEmpty, "\(int8.stderr)")
        // A folder of fp32 files only is quantized at load.
        let quantized = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--precision", "int8",
                                            "samples/green-apples.wav"])
        #expect(quantized.status == 0 && !quantized.stdout.isEmpty, "\(quantized.stderr)")
        let bf16 = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--precision", "bf16", "--parallel", "2",
                                       "samples/green-apples.wav", "models/frontend/speech_16k.wav"])
        let fp32 = try STTProcess.run(["transcribe", "-m", "models/small/la13", "samples/green-apples.wav",
                                       "models/frontend/speech_16k.wav"])
        #expect(bf16.status == 0 && bf16.stdout == fp32.stdout, "\(bf16.stderr)")
        let bad = try STTProcess.run(["transcribe", "-m", "models/small/sherpa", "--precision", "fp8", "samples/green-apples.wav"])
        #expect(bad.status == 2)
    }
}

@Suite struct ParallelOptionTests {
    static let inputs = ["samples/green-apples.wav", "models/frontend/speech_16k.wav", "models/frontend/quiet.wav",
                         "models/frontend/green-apples-8k-stereo-float.wav", "models/frontend/speech_44k.wav",
                         "models/frontend/silence.wav", "models/frontend/speech_8k.wav"]

    /// Files decoded as one batch print exactly what they print one at a time, in input order, at every look-ahead
    /// and in every output format; a bad file in the middle is reported in its place and the rest still run.
    @Test(arguments: ["0", "80", "1040"])
    func parallelFilesPrintWhatOneAtATimePrints(lookahead: String) throws {
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("stt-parallel-\(UUID().uuidString).wav")
        try Data("RIFF".utf8).write(to: bad)
        defer { try? FileManager.default.removeItem(at: bad) }
        var files = Self.inputs
        files.insert(bad.path, at: 3)
        for format in ["text", "json"] {
            let options = ["transcribe", "-m", "models/small/la13", "--lookahead", lookahead, "--format", format]
            let one = try STTProcess.run(options + files)
            let three = try STTProcess.run(options + ["--parallel", "3"] + files)
            let all = try STTProcess.run(options + ["--parallel", "16"] + files)
            #expect(one.status == 1 && three.status == 1 && all.status == 1)
            #expect(one.stdout.split(separator: "\n").count == Self.inputs.count, "\(one.stdout)")
            #expect(three.stdout == one.stdout && all.stdout == one.stdout, "--format \(format) at \(lookahead) ms")
            #expect(three.stderr == one.stderr && one.stderr.split(separator: "\n").count == 1, "\(one.stderr)")
        }
        let outOfRange = try STTProcess.run(["transcribe", "-m", "models/small/la13", "--parallel", "0", files[0]])
        #expect(outOfRange.status == 2)
    }
}
