import Dispatch
import Foundation
import STTTestFixtures
import Testing
@testable import STTAudio

/// Little-endian bytes of an integer.
func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8((v >> (8 * $0)) & 0xFF) } }

/// A fmt chunk body; `blockAlign` defaults to the consistent value.
func fmtBody(tag: Int = 1, channels: Int = 1, rate: Int = 16_000, bits: Int = 16, blockAlign: Int? = nil) -> [UInt8] {
    let align = blockAlign ?? channels * bits / 8
    return le(tag, 2) + le(channels, 2) + le(rate, 4) + le(rate * align, 4) + le(align, 2) + le(bits, 2)
}

/// A RIFF/WAVE file of the given chunks (id, body, declared size if not the body's), padded to even sizes.
func riff(_ chunks: [([UInt8], [UInt8], Int?)]) -> [UInt8] {
    var body = Array("WAVE".utf8)
    for (id, bytes, declared) in chunks {
        body += id + le(declared ?? bytes.count, 4) + bytes
        if bytes.count % 2 == 1 && declared == nil { body.append(0) }
    }
    return Array("RIFF".utf8) + le(body.count, 4) + body
}

func chunk(_ id: String, _ bytes: [UInt8], declared: Int? = nil) -> ([UInt8], [UInt8], Int?) {
    (Array(id.utf8), bytes, declared)
}

func floatBytes(_ values: [Float]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v) { Array($0) } } }

/// Writes `bytes` to a new file in a fresh temporary directory; returns its path.
func temporaryFile(_ bytes: [UInt8], name: String = "audio.wav") throws -> String {
    let path = (try Fixtures.temporaryDirectory() as NSString).appendingPathComponent(name)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// Reads everything from a reader in blocks of random size (1…max).
func readAll(_ reader: WAVReader, maxBlock: Int = 5_000) throws -> [Float] {
    var generator = SystemRandomNumberGenerator()
    var samples: [Float] = []
    while try reader.read(maxFrames: Int.random(in: 1...maxBlock, using: &generator), into: &samples) > 0 {}
    return samples
}

/// A value set from another thread.
final class Box<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

@Suite struct WAVReaderTests {
    /// 20 s of stereo 16-bit 44.1 kHz (3.5 MB), with a LIST chunk of odd size before the fmt chunk.
    static let bigFile: [UInt8] = {
        var data: [UInt8] = []
        data.reserveCapacity(44_100 * 20 * 4)
        var state: UInt32 = 12_345
        for _ in 0..<(44_100 * 20 * 2) {
            state = state &* 1_664_525 &+ 1_013_904_223
            data += le(Int(Int16(truncatingIfNeeded: state >> 16)), 2)
        }
        return riff([chunk("LIST", Array("INFOISFT\u{5}\0\0\0stt!".utf8)), chunk("fmt ", fmtBody(channels: 2, rate: 44_100)),
                     chunk("data", data)])
    }()

    @Test func aBigFileReadBlockByBlockEqualsTheWholeFile() throws {
        let path = try temporaryFile(Self.bigFile)
        let whole = try WAVFile(path: path)
        #expect(whole.samples.count == 44_100 * 20 && whole.channels == 2 && whole.sampleRate == 44_100)
        let reader = try WAVReader(path: path)
        #expect(reader.frameCount == 44_100 * 20 && reader.duration == 20)
        #expect(try readAll(reader) == whole.samples)
        #expect(reader.framesRead == 44_100 * 20)
        #expect(try reader.read(maxFrames: 100).isEmpty)
        #expect(try WAVFile(bytes: Self.bigFile).samples == whole.samples)
    }

    /// A WAV file on a stream: the caller reads the first bytes to recognise it, then hands them over.
    @Test func aWAVFileOnAStreamReadsAsTheFileDoes() throws {
        let path = try temporaryFile(Self.bigFile)
        let whole = try WAVFile(path: path).samples
        // A file opened as a handle is read front to back, as stdin would be.
        let handle = try #require(FileHandle(forReadingAtPath: path))
        let head = try #require(try handle.read(upToCount: 4))
        #expect(WAVReader.startsLikeWAV(head))
        let reader = try WAVReader(handle: handle, name: "stdin", prefix: Array(head))
        #expect(reader.sampleRate == 44_100 && reader.frameCount == 44_100 * 20)
        #expect(try readAll(reader) == whole)
        // A pipe, written from another thread.
        let pipe = Pipe()
        let writer = pipe.fileHandleForWriting
        let bytes = Self.bigFile
        DispatchQueue.global().async {
            writer.write(Data(bytes))
            try? writer.close()
        }
        let piped = try WAVReader(handle: pipe.fileHandleForReading, name: "stdin")
        #expect(try readAll(piped) == whole)
    }

    @Test func aStreamWhoseDataSizeIsUnknownReadsToItsEnd() throws {
        let path = try temporaryFile(riff([chunk("fmt ", fmtBody()), chunk("data", [0, 64, 0, 192, 1], declared: 0xFFFF_FFFF)]))
        let handle = try #require(FileHandle(forReadingAtPath: path))
        let reader = try WAVReader(handle: handle, name: "stdin")
        #expect(reader.frameCount == nil && reader.duration == nil)
        #expect(try reader.read(maxFrames: 10) == [0.5, -0.5])
        #expect(try reader.read(maxFrames: 10).isEmpty)
    }

    @Test func startsLikeWAVLooksAtRIFFAndWAVE() {
        #expect(WAVReader.startsLikeWAV(Array("RIFF".utf8)))
        #expect(WAVReader.startsLikeWAV(Self.bigFile.prefix(12)))
        #expect(!WAVReader.startsLikeWAV(Array("RIFF\0\0\0\0AVI ".utf8)))
        #expect(!WAVReader.startsLikeWAV([0x52, 0x49, 0x46]))
        #expect(!WAVReader.startsLikeWAV([UInt8](repeating: 0, count: 100)))
    }

    /// Opening a FIFO must neither block (no writer ever comes) nor read it: it is refused by name. The open runs on
    /// another thread so that a regression fails the test instead of hanging it.
    @Test func aFIFOIsRefusedWithoutWaiting() throws {
        let path = (try Fixtures.temporaryDirectory() as NSString).appendingPathComponent("live.wav")
        #expect(mkfifo(path, 0o600) == 0)
        let outcome = Box<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            do {
                _ = try WAVReader(path: path)
                outcome.value = "opened"
            } catch {
                outcome.value = "\(error)"
            }
            done.signal()
        }
        if done.wait(timeout: .now() + 5) == .timedOut {
            // Release the blocked open: a writer arrives and leaves at once.
            let fd = open(path, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
            Issue.record("opening a FIFO blocked")
            return
        }
        let message = try #require(outcome.value)
        #expect(message == "\(path): cannot be read: it is a named pipe (FIFO), not a regular file; pipe it to stdin instead")
    }

    @Test func directoriesDevicesAndMissingFilesAreRefusedByName() throws {
        let directory = try Fixtures.temporaryDirectory()
        let cases: [(String, String)] = [
            (directory, "it is a directory"), ("/dev/null", "character device"),
            ((directory as NSString).appendingPathComponent("none.wav"), "no such file"),
        ]
        for (path, reason) in cases {
            do {
                _ = try WAVReader(path: path)
                Issue.record("\(path) opened")
            } catch {
                guard case .unreadable = error else { Issue.record("\(error)"); continue }
                #expect(error.description.hasPrefix("\(path): cannot be read: ") && error.description.contains(reason))
            }
        }
    }

    @Test func upperCaseExtensionsRead() throws {
        let fixture = Fixtures.models.appendingPathComponent("frontend/speech_16k.wav").path
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture)))
        let upper = try temporaryFile(bytes, name: "SPEECH.WAV")
        #expect(try WAVFile(path: upper).samples == WAVFile(path: fixture).samples)
        #expect(try readAll(WAVReader(path: upper)) == WAVFile(path: fixture).samples)
    }

    /// Headers that are out of range or contradict themselves: each a one-line error of the right kind.
    @Test func headersOutOfRangeOrInconsistentAreRefused() throws {
        let samples: [UInt8] = [1, 0, 2, 0, 3, 0, 4, 0]
        let cases: [([UInt8], String, (WAVFile.Failure) -> Bool)] = [
            (fmtBody(rate: 768_001), "sample rate 768001 Hz is outside", { if case .unsupported = $0 { true } else { false } }),
            (fmtBody(rate: 0), "sample rate 0 Hz is outside", { if case .unsupported = $0 { true } else { false } }),
            (fmtBody(rate: 0xFFFF_FFFF), "sample rate 4294967295 Hz", { if case .unsupported = $0 { true } else { false } }),
            (fmtBody(channels: 65, blockAlign: 130), "65 channels", { if case .unsupported = $0 { true } else { false } }),
            (fmtBody(channels: 0, blockAlign: 0), "0 channels", { if case .malformed = $0 { true } else { false } }),
            (fmtBody(channels: 2, blockAlign: 2), "block align 2 bytes", { if case .malformed = $0 { true } else { false } }),
            (fmtBody(bits: 16, blockAlign: 3), "block align 3 bytes", { if case .malformed = $0 { true } else { false } }),
            (Array(fmtBody().prefix(14)), "fmt chunk has 14 bytes", { if case .malformed = $0 { true } else { false } }),
        ]
        for (fmt, text, expected) in cases {
            let bytes = riff([chunk("fmt ", fmt), chunk("data", samples)])
            for source in ["bytes", "file"] {
                do {
                    if source == "bytes" {
                        _ = try WAVReader(bytes: bytes, name: "x.wav")
                    } else {
                        _ = try WAVReader(path: temporaryFile(bytes))
                    }
                    Issue.record("\(text): accepted")
                } catch let error as WAVFile.Failure {
                    #expect(expected(error) && error.description.contains(text), "\(error)")
                    #expect(!error.description.contains("\n"))
                }
            }
        }
        // 64 channels are fine.
        let wide = try WAVFile(bytes: riff([chunk("fmt ", fmtBody(channels: 64)), chunk("data", [UInt8](repeating: 0, count: 128))]))
        #expect(wide.channels == 64 && wide.samples == [0])
    }

    @Test func aDataChunkLongerThanTheFileIsTruncated() throws {
        let bytes = riff([chunk("fmt ", fmtBody()), chunk("data", [1, 0, 2, 0], declared: 1_000)])
        let makers: [() throws -> WAVReader] = [
            { try WAVReader(path: temporaryFile(bytes)) }, { try WAVReader(bytes: bytes, name: "x.wav") },
        ]
        for make in makers {
            do {
                _ = try make()
                Issue.record("accepted")
            } catch let error as WAVFile.Failure {
                guard case .truncated = error else { Issue.record("\(error)"); continue }
                #expect(error.description.contains("declares 1000 bytes, the file has 4"), "\(error)")
            }
        }
        // On a stream the shortfall shows when the data runs out.
        let handle = try #require(FileHandle(forReadingAtPath: try temporaryFile(bytes)))
        let reader = try WAVReader(handle: handle, name: "stdin")
        #expect(reader.frameCount == 500)
        var samples: [Float] = [9]
        #expect(throws: WAVFile.Failure.truncated("stdin", "the data chunk declares 1000 bytes, the input ends after 4")) {
            try reader.read(maxFrames: 1_000, into: &samples)
        }
        #expect(samples == [9])
        // The failure sticks.
        #expect(throws: WAVFile.Failure.self) { try reader.read(maxFrames: 1) }
    }

    /// The average of two channels at ±3.4e38 is taken without overflowing to infinity.
    @Test func stereoFloatsNearTheLimitAverageToFiniteValues() throws {
        let big = Float.greatestFiniteMagnitude
        let frames: [Float] = [3e38, 3e38, -big, -big, big, -big, big, big, 1, 0.5]
        let bytes = riff([chunk("fmt ", fmtBody(tag: 3, channels: 2, bits: 32)), chunk("data", floatBytes(frames))])
        let samples = try readAll(WAVReader(bytes: bytes), maxBlock: 2)
        #expect(samples == [3e38, -big, 0, big, 0.75])
        #expect(try WAVFile(bytes: bytes).samples == samples)
    }

    /// A NaN or infinite sample stops reading with an error that names the file and the time of the first one.
    @Test func nonFiniteSamplesAreAnErrorNamingTheirTime() throws {
        var audio = [Float](repeating: 0.25, count: 16_000)
        audio[12_000] = .nan
        audio[12_001] = .infinity
        let mono = riff([chunk("fmt ", fmtBody(tag: 3, bits: 32)), chunk("data", floatBytes(audio))])
        let path = try temporaryFile(mono, name: "noisy.wav")
        let reader = try WAVReader(path: path)
        var samples: [Float] = []
        while samples.count < 12_000 { try reader.read(maxFrames: 1_000, into: &samples) }
        do {
            try reader.read(maxFrames: 1_000, into: &samples)
            Issue.record("NaN read")
        } catch {
            #expect(error.description == "\(path): the audio has a NaN sample at 0.750 s (frame 12000); "
                + "only finite samples can be transcribed")
        }
        #expect(samples.count == 12_000)
        #expect(throws: WAVFile.Failure.self) { try WAVFile(path: path) }

        // Stereo: an infinite right channel at 0.5 s of 8 kHz; a float64 too large for a float.
        var stereo = [Float](repeating: 0, count: 2 * 8_000)
        stereo[2 * 4_000 + 1] = -.infinity
        let cases: [([UInt8], String)] = [
            (riff([chunk("fmt ", fmtBody(tag: 3, channels: 2, rate: 8_000, bits: 32)), chunk("data", floatBytes(stereo))]),
             "an infinite sample at 0.500 s (frame 4000)"),
            (riff([chunk("fmt ", fmtBody(tag: 3, rate: 8_000, bits: 64)),
                   chunk("data", [0.5, 1e300].flatMap { v in withUnsafeBytes(of: v) { Array($0) } })]),
             "a sample beyond the range of a float at 0.000 s (frame 1)"),
        ]
        for (bytes, text) in cases {
            do {
                _ = try WAVFile(bytes: bytes, name: "x.wav")
                Issue.record("\(text): accepted")
            } catch {
                #expect(error.description.hasPrefix("x.wav: the audio has \(text)"), "\(error)")
            }
        }
    }

    /// A data chunk before the fmt chunk is found in a file; a stream cannot go back for it.
    @Test func dataBeforeFmtReadsFromFilesOnly() throws {
        let bytes = riff([chunk("data", [0, 64, 0, 192]), chunk("fmt ", fmtBody())])
        #expect(try WAVFile(bytes: bytes).samples == [0.5, -0.5])
        #expect(try WAVFile(path: temporaryFile(bytes)).samples == [0.5, -0.5])
        let handle = try #require(FileHandle(forReadingAtPath: try temporaryFile(bytes)))
        #expect(throws: WAVFile.Failure.self) { try WAVReader(handle: handle, name: "stdin") }
    }

    /// Text from the file and from the caller is escaped: every message stays on one line.
    @Test func untrustedTextIsEscapedAndShortened() throws {
        let junk = riff([([0x0A, 0x1B, 0x61, 0xFF], [], 5_000)])
        do {
            _ = try WAVFile(bytes: junk, name: "bad\nname\u{202E}.wav")
            Issue.record("accepted")
        } catch {
            #expect(error.description == #"bad\nname\u{202e}.wav: the WAV file is truncated (chunk '\x0a\x1ba\xff' at byte 12 declares 5000 bytes, the input ends after 0)"#)
        }
        let long = String(repeating: "a", count: 1_000)
        let message = WAVFile.Failure.empty(long).description
        #expect(message.count < 200 && message.contains("…"))
        do {
            _ = try WAVFile(bytes: Array("RIFF\0\0\0\0AV\u{7}\n".utf8), name: "x")
            Issue.record("accepted")
        } catch {
            #expect(error.description == #"x: not a WAV file (RIFF form 'AV\x07\x0a' is not WAVE)"#)
        }
    }
}
