import Foundation
import Testing
@testable import STTAudio
import STTTestFixtures

@Suite struct ResamplerTests {
    func tone(_ hz: Double, rate: Int, seconds: Double) -> [Float] {
        (0..<Int(Double(rate) * seconds)).map { Float(sin(2 * Double.pi * hz * Double($0) / Double(rate))) }
    }

    /// A sweep from 50 Hz to near the input's Nyquist frequency plus a little deterministic noise: every tap of the
    /// filter matters.
    func sweep(rate: Int, seconds: Double) -> [Float] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0..<Int(Double(rate) * seconds)).map { n in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let noise = Double(Int64(bitPattern: state) >> 11) / Double(1 << 52)
            let t = Double(n) / Double(rate)
            let top = 0.45 * Double(rate)
            return Float(0.6 * sin(2 * Double.pi * (50 * t + (top - 50) * t * t / (2 * seconds))) + 0.05 * noise)
        }
    }

    /// Feeds `input` in blocks of the given pattern ("1", "160", "1000" or "random").
    func streamed(_ input: [Float], _ stream: StreamingResampler, blocks: String) -> [Float] {
        var generator = SystemRandomNumberGenerator()
        var output: [Float] = []
        var position = 0
        input.withUnsafeBufferPointer { all in
            while position < all.count {
                let size = blocks == "random" ? Int.random(in: 1...3_000, using: &generator) : Int(blocks) ?? 1
                let end = min(all.count, position + size)
                stream.process(UnsafeBufferPointer(rebasing: all[position..<end]), into: &output)
                position = end
            }
        }
        stream.finish(into: &output)
        return output
    }

    /// A tone in the pass band arrives intact (away from the edges, where the filter sees the signal's start/end).
    @Test(arguments: [8_000, 22_050, 44_100, 48_000])
    func toneSurvivesConversionTo16k(rate: Int) throws {
        let out = try Resampler(from: rate, to: 16_000)(tone(1_000, rate: rate, seconds: 0.5))
        let expected = tone(1_000, rate: 16_000, seconds: 0.5)
        #expect(abs(out.count - expected.count) <= 1)
        let worst = (400..<(min(out.count, expected.count) - 400)).map { abs(out[$0] - expected[$0]) }.max() ?? 1
        #expect(worst < 2e-3, "\(rate) Hz: worst \(worst)")
    }

    /// A tone above the new Nyquist frequency is removed, not folded back (it is what linear interpolation gets wrong).
    @Test func toneAboveTheNewNyquistIsSuppressed() throws {
        let out = try Resampler(from: 48_000, to: 16_000)(tone(11_000, rate: 48_000, seconds: 0.5))
        let rms = (out[400..<(out.count - 400)].map { Double($0 * $0) }.reduce(0, +) / Double(out.count - 800)).squareRoot()
        #expect(rms < 1e-3, "alias rms \(rms) (a full-scale tone has 0.707)")
    }

    /// Any split into blocks gives the whole-signal output bit for bit, and the whole signal has round(N·out/in)
    /// samples.
    @Test(arguments: [(8_000, 16_000), (22_050, 16_000), (44_100, 16_000), (48_000, 16_000), (96_000, 16_000),
                      (16_000, 44_100), (11_025, 16_000)],
          ["1", "160", "1000", "random"])
    func blocksGiveTheWholeSignalOutputBitForBit(rates: (Int, Int), blocks: String) throws {
        let resampler = try Resampler(from: rates.0, to: rates.1)
        // An odd length, so that the end of the signal falls between output positions.
        let input = Array(sweep(rate: rates.0, seconds: 0.7).dropLast(3))
        let whole = resampler(input)
        let expected = Int((Double(input.count) * Double(rates.1) / Double(rates.0)).rounded())
        #expect(whole.count == expected)
        let online = streamed(input, StreamingResampler(resampler), blocks: blocks)
        #expect(online.count == whole.count)
        #expect(online == whole, "\(rates.0) → \(rates.1), blocks \(blocks)")
    }

    /// The polyphase bookkeeping (and the interpolated table used when the ratio in lowest terms is huge) computes
    /// y[n] = Σₖ x[k]·h(n·in/out − k) for the designed windowed sinc h, evaluated here directly in double precision.
    @Test(arguments: [(44_100, 16_000), (16_000, 44_100), (11_025, 16_000), (767_999, 16_000), (1_000, 44_101)])
    func outputIsTheWindowedSincSum(rates: (Int, Int)) throws {
        let (inRate, outRate) = rates
        let input = sweep(rate: inRate, seconds: min(0.3, 3_000 / Double(outRate)))
        let ours = try Resampler(from: inRate, to: outRate)(input)
        let cutoff = 0.475 * Double(min(inRate, outRate)) / Double(inRate)
        let halfWidth = Int((16 / (2 * cutoff)).rounded(.up))
        func bessel0(_ x: Double) -> Double {
            var sum = 1.0, term = 1.0, k = 1.0
            while term > 1e-14 * sum { term *= (x / (2 * k)) * (x / (2 * k)); sum += term; k += 1 }
            return sum
        }
        func h(_ t: Double) -> Double {
            let r = t / Double(halfWidth)
            guard abs(r) < 1 else { return 0 }
            let x = 2 * cutoff * t
            let sinc = abs(x) < 1e-12 ? 1 : sin(Double.pi * x) / (Double.pi * x)
            return 2 * cutoff * sinc * bessel0(8.6 * (1 - r * r).squareRoot()) / bessel0(8.6)
        }
        var worst = 0.0
        // Every 7th output keeps the double-precision sum affordable at the steep rates.
        for n in stride(from: 0, to: ours.count, by: 7) {
            let position = Double(n) * Double(inRate) / Double(outRate)
            let centre = Int(position.rounded(.down))
            var sum = 0.0
            for k in max(0, centre - halfWidth)...min(input.count - 1, centre + halfWidth) {
                sum += Double(input[k]) * h(position - Double(k))
            }
            worst = max(worst, abs(sum - Double(ours[n])))
        }
        #expect(worst < 1e-6, "\(inRate) → \(outRate): worst \(worst)")
        print("resampler \(inRate) → \(outRate): max |Δ| vs the direct sum \(worst)")
    }

    /// Ratios whose lowest terms are huge, and the steepest drops and rises, set up and run in bounded memory and
    /// time, and give finite output of the right length.
    @Test(arguments: [(767_999, 16_000), (1, 16_000), (16_000, 1), (768_000, 1), (767_999, 768_000), (1, 768_000),
                      (768_000, 767_999)])
    func extremeRatesStayBoundedInMemoryAndTime(rates: (Int, Int)) throws {
        let clock = ContinuousClock()
        let start = clock.now
        let stream = try StreamingResampler(from: rates.0, to: rates.1)
        #expect(stream.storedFloats <= 300_000, "\(rates.0) → \(rates.1): \(stream.storedFloats) floats")
        // One second of input, in 1000-sample blocks.
        let input = sweep(rate: rates.0, seconds: 1)
        let output = streamed(input, stream, blocks: "1000")
        let elapsed = clock.now - start
        #expect(output.count == stream.resampler.outputCount(forInputCount: input.count))
        #expect(output.allSatisfy { $0.isFinite && abs($0) < 2 })
        #expect(elapsed < .seconds(3 * Fixtures.slowdown), "\(rates.0) → \(rates.1): \(elapsed)")
        print("resampler \(rates.0) → \(rates.1): \(stream.storedFloats) floats held, 1 s converted in \(elapsed)")
    }

    @Test func ratesOutsideTheSupportedRangeAreRefused() {
        for (from, to) in [(0, 16_000), (-44_100, 16_000), (768_001, 16_000), (16_000, Int.max), (16_000, 0)] {
            #expect(throws: Resampler.Failure.self) { try Resampler(from: from, to: to) }
            #expect(throws: Resampler.Failure.self) { try StreamingResampler(from: from, to: to) }
        }
        let failure = Resampler.Failure.unsupportedRate(1_000_000)
        #expect(failure.description == "sample rate 1000000 Hz is outside the supported 1…768000 Hz")
    }

    @Test func equalRatesPassTheSignalThrough() throws {
        let input = sweep(rate: 16_000, seconds: 0.1)
        #expect(try Resampler(from: 16_000, to: 16_000)(input) == input)
        #expect(streamed(input, try StreamingResampler(from: 16_000, to: 16_000), blocks: "random") == input)
    }

    /// After finish further input is ignored; reset starts a new signal that converts exactly as the first did.
    @Test func finishEndsTheSignalAndResetStartsANewOne() throws {
        let input = sweep(rate: 44_100, seconds: 0.2)
        let stream = try StreamingResampler(from: 44_100, to: 16_000)
        let first = streamed(input, stream, blocks: "160")
        var extra: [Float] = []
        stream.process(input, into: &extra)
        stream.finish(into: &extra)
        #expect(extra.isEmpty && stream.isFinished)
        stream.reset()
        #expect(streamed(input, stream, blocks: "1000") == first)
        #expect(stream.inputCount == input.count && stream.outputCount == first.count)
        // An empty signal has no output.
        stream.reset()
        stream.finish(into: &extra)
        #expect(extra.isEmpty)
    }
}
