import Foundation

/// Band-limited sample-rate conversion: a polyphase windowed-sinc filter (Kaiser window, β = 8.6, 16 zero crossings
/// each side) for the rational ratio out/in, cut off at 95% of the lower Nyquist frequency.
///
/// A `Resampler` is an immutable description of one conversion (it holds the filter) and converts whole signals;
/// ``StreamingResampler`` converts a signal that arrives in blocks. Both run the same code, so a signal converted
/// block by block equals the signal converted whole, bit for bit, whatever the block sizes.
///
/// A signal of N samples becomes round(N · out / in) samples. Output sample n sits at input position n · in / out;
/// the signal is taken as zero before its first sample and after its last.
public struct Resampler: Sendable {
    /// The sample rates, in Hz, that a conversion accepts on either side.
    public static let supportedRates: ClosedRange<Int> = 1...768_000

    /// Why a conversion cannot be set up.
    public enum Failure: Error, Equatable, CustomStringConvertible, Sendable {
        /// A sample rate (Hz) outside ``Resampler/supportedRates``.
        case unsupportedRate(Int)

        /// One line saying what is wrong.
        public var description: String {
            switch self {
            case .unsupportedRate(let rate):
                "sample rate \(rate) Hz is outside the supported \(Resampler.supportedRates.lowerBound)…"
                    + "\(Resampler.supportedRates.upperBound) Hz"
            }
        }
    }

    /// The rate, in Hz, of the signal that goes in.
    public let inputRate: Int
    /// The rate, in Hz, of the signal that comes out.
    public let outputRate: Int
    /// nil when the rates are equal: the signal passes through untouched.
    let kernel: ResamplingKernel?

    /// A conversion from `inputRate` to `outputRate` (Hz); both must lie in ``supportedRates``.
    public init(from inputRate: Int, to outputRate: Int) throws(Failure) {
        for rate in [inputRate, outputRate] where !Self.supportedRates.contains(rate) {
            throw .unsupportedRate(rate)
        }
        self.inputRate = inputRate
        self.outputRate = outputRate
        kernel = inputRate == outputRate ? nil : ResamplingKernel(inputRate: inputRate, outputRate: outputRate)
    }

    /// The number of output samples for a whole signal of `inputCount` samples: round(inputCount · out / in).
    public func outputCount(forInputCount inputCount: Int) -> Int {
        guard let kernel, inputCount > 0 else { return max(0, inputCount) }
        // In integers, so that long signals cannot round differently from short ones.
        let whole = inputCount / kernel.down, rest = inputCount % kernel.down
        return whole * kernel.up + (2 * rest * kernel.up + kernel.down) / (2 * kernel.down)
    }

    /// The whole signal at the output rate (round(N · out / in) samples).
    public func callAsFunction(_ input: [Float]) -> [Float] {
        let stream = StreamingResampler(self)
        var output: [Float] = []
        output.reserveCapacity(outputCount(forInputCount: input.count))
        stream.process(input, into: &output)
        stream.finish(into: &output)
        return output
    }
}

/// Sample-rate conversion of a signal that arrives in blocks of any size, with the filter of ``Resampler``.
///
/// Each output sample is produced as soon as the input it depends on has arrived (about 16 input samples past its
/// position, more when the rate goes down); ``finish(into:)`` produces the rest, taking the signal as zero after its
/// end. The output of any split of a signal into blocks equals ``Resampler``'s output for the whole signal, bit for
/// bit. Memory is bounded: only the input the filter still needs is kept, and once the first block has been seen no
/// call allocates (beyond the caller's output array growing).
///
/// Not thread-safe: one stream belongs to one task at a time.
public final class StreamingResampler {
    /// The conversion this stream performs.
    public let resampler: Resampler
    /// The rate, in Hz, of the signal that goes in.
    public var inputRate: Int { resampler.inputRate }
    /// The rate, in Hz, of the signal that comes out.
    public var outputRate: Int { resampler.outputRate }
    /// Input samples received since the start (or the last ``reset()``).
    public private(set) var inputCount = 0
    /// Output samples produced since the start (or the last ``reset()``).
    public private(set) var outputCount = 0
    /// Whether ``finish(into:)`` has ended the signal; further input is ignored until ``reset()``.
    public private(set) var isFinished = false

    /// Input is taken in pieces of at most this many samples, which bounds the history kept whatever the block size.
    private static let piece = 4_096

    // Input samples from absolute index `historyStart` on (negative indices are the zeros before the signal).
    private let history: UnsafeMutablePointer<Float>
    private let historyCapacity: Int
    private var historyCount = 0
    private var historyStart = 0
    // Input samples still to arrive that no output needs (only when the rate goes down steeply).
    private var skipping = 0
    // The next output sits at input position nextIndex + phase / up.
    private var nextIndex = 0
    private var phase = 0

    /// A stream for the conversion from `inputRate` to `outputRate` (Hz); both must lie in
    /// ``Resampler/supportedRates``.
    public convenience init(from inputRate: Int, to outputRate: Int) throws(Resampler.Failure) {
        self.init(try Resampler(from: inputRate, to: outputRate))
    }

    /// A stream for a conversion already set up; streams made from one `Resampler` share its filter.
    public init(_ resampler: Resampler) {
        self.resampler = resampler
        let taps = resampler.kernel?.taps ?? 0
        // The window of the next output (< taps), one piece, and the zeros that end the signal.
        historyCapacity = taps == 0 ? 1 : taps + Self.piece + taps / 2
        history = .allocate(capacity: historyCapacity)
        reset()
    }

    deinit { history.deallocate() }

    /// Back to the start of a new signal.
    public func reset() {
        inputCount = 0
        outputCount = 0
        isFinished = false
        skipping = 0
        nextIndex = 0
        phase = 0
        let halfWidth = resampler.kernel?.halfWidth ?? 0
        // The first output's window reaches halfWidth − 1 samples before the signal.
        historyStart = -max(0, halfWidth - 1)
        historyCount = -historyStart
        history.initialize(repeating: 0, count: historyCount)
    }

    /// Adds a block of input samples and appends to `output` every output sample that is now complete.
    public func process(_ block: UnsafeBufferPointer<Float>, into output: inout [Float]) {
        guard !isFinished else { return }
        guard let kernel = resampler.kernel else {
            output.append(contentsOf: block)
            inputCount += block.count
            outputCount += block.count
            return
        }
        var start = 0
        while start < block.count {
            let end = min(block.count, start + Self.piece)
            append(UnsafeBufferPointer(rebasing: block[start..<end]), kernel: kernel)
            // Output n is complete once its window's last sample, nextIndex + halfWidth, has arrived.
            emit(kernel: kernel, into: &output) { $0 + kernel.halfWidth < self.inputCount }
            start = end
        }
    }

    /// Adds a block of input samples and appends to `output` every output sample that is now complete.
    public func process(_ block: [Float], into output: inout [Float]) {
        block.withUnsafeBufferPointer { process($0, into: &output) }
    }

    /// Ends the signal: appends the remaining output samples, so that the total is round(N · out / in) for the N
    /// input samples received. Does nothing if the signal has already ended.
    public func finish(into output: inout [Float]) {
        guard !isFinished else { return }
        isFinished = true
        guard let kernel = resampler.kernel else { return }
        let total = resampler.outputCount(forInputCount: inputCount)
        compact(kernel: kernel)
        // Zeros after the end cover the window of every remaining output (their positions are all < N).
        let zeros = min(kernel.halfWidth, historyCapacity - historyCount)
        (history + historyCount).initialize(repeating: 0, count: zeros)
        historyCount += zeros
        emit(kernel: kernel, into: &output) { _ in self.outputCount < total }
    }

    /// The floats this stream and its filter hold (for checking that memory stays bounded).
    package var storedFloats: Int { historyCapacity + (resampler.kernel?.table.count ?? 0) }

    private func append(_ piece: UnsafeBufferPointer<Float>, kernel: ResamplingKernel) {
        var samples = piece
        if skipping > 0 {
            let skipped = min(skipping, samples.count)
            skipping -= skipped
            samples = UnsafeBufferPointer(rebasing: samples[skipped...])
        }
        if historyCount + samples.count > historyCapacity { compact(kernel: kernel) }
        let count = min(samples.count, historyCapacity - historyCount)
        if let base = samples.baseAddress, count > 0 {
            (history + historyCount).initialize(from: base, count: count)
        }
        historyCount += count
        inputCount += piece.count
    }

    /// Drops the input that no later output needs.
    private func compact(kernel: ResamplingKernel) {
        let needed = nextIndex - kernel.halfWidth + 1
        let drop = needed - historyStart
        guard drop > 0 else { return }
        if drop >= historyCount {
            skipping += drop - historyCount
            historyCount = 0
        } else {
            history.update(from: history + drop, count: historyCount - drop)
            historyCount -= drop
        }
        historyStart = needed
    }

    private func emit(kernel: ResamplingKernel, into output: inout [Float], while more: (Int) -> Bool) {
        let taps = kernel.taps
        while more(nextIndex) {
            let first = nextIndex - kernel.halfWidth + 1 - historyStart
            guard first >= 0, first + taps <= historyCount else { break }
            output.append(kernel.apply(phase: phase, to: history + first))
            outputCount += 1
            phase += kernel.down
            nextIndex += phase / kernel.up
            phase %= kernel.up
        }
    }
}

/// The polyphase filter of one conversion: for each fractional input position, the taps that multiply the 2·halfWidth
/// input samples around it.
final class ResamplingKernel: Sendable {
    /// Output samples per `down` input samples, in lowest terms.
    let up: Int
    let down: Int
    let halfWidth: Int
    var taps: Int { 2 * halfWidth }
    /// Whether there is one row per phase (k/up); otherwise rows sample the fractions k/rows−1 and the taps of a
    /// phase between two rows are interpolated linearly.
    let exact: Bool
    let rows: Int
    /// [rows][taps]
    let table: [Float]

    /// The largest table built: rows × taps floats. Real rate pairs (44.1, 48, 22.05, 8, 96 kHz → 16 kHz) need
    /// a few thousand rows at most; pairs whose ratio in lowest terms is huge (767 999 → 16 000) would need
    /// gigabytes, and interpolating between 2¹⁸ / taps rows is accurate to far below float precision.
    static let maxTableEntries = 1 << 18
    /// A steeper rate drop than in/out ≈ 240 would need a window longer than this many samples each side for 16 zero
    /// crossings; beyond it the window is cut to this length and the taps are normalised to unit gain at DC, which
    /// keeps memory and time bounded (such conversions alias anyway).
    static let maxHalfWidth = 4_096

    init(inputRate: Int, outputRate: Int) {
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let g = gcd(inputRate, outputRate)
        up = outputRate / g
        down = inputRate / g
        // Cut-off in cycles per input sample.
        let cutoff = 0.475 * Double(min(inputRate, outputRate)) / Double(inputRate)
        let ideal = (16 / (2 * cutoff)).rounded(.up)
        let shortened = ideal > Double(Self.maxHalfWidth)
        halfWidth = shortened ? Self.maxHalfWidth : Int(ideal)
        let taps = 2 * halfWidth
        exact = up <= Self.maxTableEntries / taps
        rows = exact ? up : max(2, Self.maxTableEntries / taps)
        func bessel0(_ x: Double) -> Double {
            var sum = 1.0, term = 1.0, k = 1.0
            while term > 1e-12 * sum { term *= (x / (2 * k)) * (x / (2 * k)); sum += term; k += 1 }
            return sum
        }
        let beta = 8.6, norm = bessel0(beta)
        var table = [Float](repeating: 0, count: rows * taps)
        var row = [Double](repeating: 0, count: taps)
        for r in 0..<rows {
            let fraction = exact ? Double(r) / Double(up) : Double(r) / Double(rows - 1)
            for j in 0..<taps {
                // Tap j multiplies input sample i − halfWidth + 1 + j for an output at position i + fraction.
                let t = fraction + Double(halfWidth - 1 - j)
                let x = 2 * cutoff * t
                let sinc = abs(x) < 1e-12 ? 1.0 : sin(Double.pi * x) / (Double.pi * x)
                let w = t / Double(halfWidth)
                let window = abs(w) >= 1 ? 0 : bessel0(beta * (1 - w * w).squareRoot()) / norm
                row[j] = 2 * cutoff * sinc * window
            }
            let gain = shortened ? row.reduce(0, +) : 1
            for j in 0..<taps { table[r * taps + j] = Float(row[j] / gain) }
        }
        self.table = table
    }

    /// The output for phase `phase` (position fraction phase/up) from the taps input samples at `x`.
    @inline(__always)
    func apply(phase: Int, to x: UnsafePointer<Float>) -> Float {
        let taps = self.taps
        return table.withUnsafeBufferPointer { h -> Float in
            guard let base = h.baseAddress else { return 0 }
            if exact { return Self.dot(base + phase * taps, x, taps) }
            let scaled = phase * (rows - 1)
            let row = scaled / up, rest = scaled % up
            let low = Self.dot(base + row * taps, x, taps)
            if rest == 0 { return low }
            let high = Self.dot(base + (row + 1) * taps, x, taps)
            return low + Float(Double(rest) / Double(up)) * (high - low)
        }
    }

    /// Σ a[j]·b[j] in a fixed order (so every call with the same numbers gives the same bits), eight lanes at a time.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var even = SIMD8<Float>(), odd = SIMD8<Float>()
        var j = 0
        while j + 16 <= count {
            even += ra.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
            odd += ra.loadUnaligned(fromByteOffset: 4 * (j + 8), as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: 4 * (j + 8), as: SIMD8<Float>.self)
            j += 16
        }
        if j + 8 <= count {
            even += ra.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self)
            j += 8
        }
        var sum = (even + odd).sum()
        while j < count {
            sum += a[j] * b[j]
            j += 1
        }
        return sum
    }
}
