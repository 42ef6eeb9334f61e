import Foundation
import Testing

/// `stt-dev compare-precision`: int8 deviation and agreement, and one-line failures.
@Suite struct ComparePrecisionTests {
    @Test func tinyFoldersPrintTheScaledEncoderDeviation() throws {
        let r = try STTProcess.run(["compare-precision", "models/tiny/sherpa", "models/tiny/sherpa-int8"], tool: "stt-dev")
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("encoder") }, "\(r.stdout)")
        #expect(line.contains("40 calls at [70,13], synthetic log-mel frames"), "\(line)")
        let scaled = try #require(line.split(separator: " ").last.flatMap { Double($0) }, "\(line)")
        #expect(scaled > 0 && scaled < 0.1, "\(line)")
    }

    /// With a recording: one line per trained look-ahead, then the lowest agreement.
    @Test func smallFoldersPrintAgreementAtEveryLookahead() throws {
        let r = try STTProcess.run(["compare-precision", "models/small/sherpa", "models/small/sherpa-int8",
                                    "samples/green-apples.wav", "--calls", "10"], tool: "stt-dev")
        #expect(r.status == 0, "\(r.stderr)")
        for lookahead in ["1040 ms", "480 ms", "80 ms", "0 ms"] {
            #expect(r.stdout.contains("green-apples.wav  \(String(repeating: " ", count: 7 - lookahead.count))\(lookahead)  tokens"),
                    "\(r.stdout)")
        }
        #expect(r.stdout.contains("10 calls at [70,13], the log-mel frames of green-apples.wav"), "\(r.stdout)")
        #expect(r.stdout.contains("lowest    tokens"), "\(r.stdout)")
    }

    /// bf16 storage of the fp32 files, against the same files in fp32.
    @Test func bf16IsComparedLikeInt8() throws {
        let r = try STTProcess.run(["compare-precision", "models/small/la13", "models/small/la13", "--precision", "bf16",
                                    "samples/green-apples.wav", "--calls", "10"], tool: "stt-dev")
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("encoder") }, "\(r.stdout)")
        #expect(line.contains("max |bf16 - fp32|"), "\(line)")
        let scaled = try #require(line.split(separator: " ").last.flatMap { Double($0) }, "\(line)")
        #expect(scaled > 0 && scaled < 0.05, "\(line)")
        // And the root-mean-square deviation over the root-mean-square output.
        let rmsLine = try #require(r.stdout.split(separator: "\n").first { $0.contains("rms |bf16 - fp32|") }, "\(r.stdout)")
        let rms = try #require(rmsLine.split(separator: " ").last.flatMap { Double($0) }, "\(rmsLine)")
        #expect(rms > 0 && rms < 0.05, "\(rmsLine)")
        #expect(r.stdout.contains("lowest    tokens"), "\(r.stdout)")
    }

    @Test(arguments: [["models/tiny/sherpa-int8", "models/tiny/sherpa-int8"], ["models/tiny/sherpa", "models/small/sherpa-int8"],
                      ["models/tiny/sherpa", "models/tiny/sherpa-int8", "Package.swift"],
                      ["models/tiny/sherpa", "models/tiny/sherpa-int8", "--calls", "0"]])
    func badInputFailsWithOneLine(arguments: [String]) throws {
        let r = try STTProcess.run(["compare-precision"] + arguments, tool: "stt-dev")
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }
}
