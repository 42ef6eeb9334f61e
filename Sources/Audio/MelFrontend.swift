import CSTTFFTW
import Foundation
import STTTensor

/// NeMo's AudioToMelSpectrogramPreprocessor in eval mode (NeMo ≥ 2.5), computed online.
///
/// 16 kHz; pre-emphasis 0.97 over the whole signal; frames every 160 samples, centred (256 zeros padded before the
/// signal and after its end); a symmetric Hann window of 400 in the middle of a 512-point FFT; power spectrum;
/// 80 Slaney mel filters; ln(mel + 2⁻²⁴). A signal of N samples has 1 + ⌊N/160⌋ frames, and NeMo reports ⌊N/160⌋ as
/// valid and zeroes the last one.
///
/// Frame t needs samples up to 160t + 199, so it is emitted as soon as they have arrived. Every frame is computed
/// the same way whatever the block sizes samples arrive in, so online and whole-file results are bit-identical.
package final class MelFrontend {
    package static let sampleRate = 16_000
    package static let hop = 160
    package static let window = 400
    package static let fftSize = 512
    package static let preemphasis: Float = 0.97
    package static let logGuard: Float = 1.0 / 16_777_216   // 2⁻²⁴

    package let melBins: Int
    /// Frames emitted so far.
    package private(set) var framesEmitted = 0
    /// Samples pushed so far.
    package private(set) var samplesPushed = 0

    private let filters: MelFilterbank
    private let hann: [Float]
    // Pre-emphasised samples from (160·framesEmitted − 256) on; index 0 ↔ that sample.
    private var history: [Float]
    private var historyStart: Int
    /// The previous sample for pre-emphasis; 0 before the first, so y[0] = x[0].
    private var lastSample: Float = 0
    private let fftInput: UnsafeMutablePointer<Float>
    private let fftOutput: UnsafeMutablePointer<fftwf_complex>
    private let plan: fftwf_plan
    private let power: UnsafeMutablePointer<Float>
    private let mel: UnsafeMutablePointer<Float>
    private var finished = false

    package init(melBins: Int = 80) {
        self.melBins = melBins
        filters = MelFilterbank.shared(melBins: melBins)
        hann = (0..<Self.window).map { n in Float(0.5 - 0.5 * cos(2 * Double.pi * Double(n) / Double(Self.window - 1))) }
        history = []
        history.reserveCapacity(4 * Self.fftSize)
        historyStart = -Self.fftSize / 2
        fftInput = fftwf_alloc_real(Self.fftSize)
        fftOutput = fftwf_alloc_complex(Self.fftSize / 2 + 1)
        plan = FFTWPlans.realForward(size: Self.fftSize, input: fftInput, output: fftOutput)
        power = .allocate(capacity: Self.fftSize / 2 + 1)
        mel = .allocate(capacity: melBins)
        // The 256 zeros of centre padding before the signal.
        history = [Float](repeating: 0, count: Self.fftSize / 2)
    }

    deinit {
        FFTWPlans.destroy(plan)
        fftwf_free(fftInput)
        fftwf_free(fftOutput)
        power.deallocate()
        mel.deallocate()
    }

    /// Back to the start of a new signal.
    package func reset() {
        framesEmitted = 0
        samplesPushed = 0
        lastSample = 0
        finished = false
        historyStart = -Self.fftSize / 2
        history = [Float](repeating: 0, count: Self.fftSize / 2)
    }

    /// Adds samples (16 kHz, float in [−1, 1]) and calls `emit` with each frame (melBins log-mel values) that is now
    /// complete.
    package func push(_ samples: UnsafeBufferPointer<Float>, emit: (UnsafeBufferPointer<Float>) -> Void) {
        precondition(!finished, "push after finish; call reset() first")
        for x in samples {
            history.append(x - Self.preemphasis * lastSample)
            lastSample = x
        }
        samplesPushed += samples.count
        // Frame t is complete once sample 160t + 199 exists (its window ends there).
        while Self.hop * framesEmitted + Self.window / 2 <= samplesPushed {
            computeFrame(emit: emit)
        }
    }

    /// Ends the signal: emits the remaining frames (zero padding after the end), the last one zeroed as NeMo does.
    package func finish(emit: (UnsafeBufferPointer<Float>) -> Void) {
        guard !finished else { return }
        finished = true
        let total = 1 + samplesPushed / Self.hop
        history.append(contentsOf: [Float](repeating: 0, count: Self.fftSize))
        while framesEmitted < total - 1 { computeFrame(emit: emit) }
        if framesEmitted < total {
            let zeros = [Float](repeating: 0, count: melBins)
            zeros.withUnsafeBufferPointer { emit($0) }
            framesEmitted += 1
        }
    }

    /// Frames for a whole signal [samples] → [frames, melBins], time-major.
    package static func frames(of samples: [Float], melBins: Int = 80) -> [Float] {
        let frontend = MelFrontend(melBins: melBins)
        var out: [Float] = []
        out.reserveCapacity((1 + samples.count / hop) * melBins)
        samples.withUnsafeBufferPointer { frontend.push($0) { out.append(contentsOf: $0) } }
        frontend.finish { out.append(contentsOf: $0) }
        return out
    }

    private func computeFrame(emit: (UnsafeBufferPointer<Float>) -> Void) {
        // FFT frame t covers samples [160t − 256, 160t + 256); the window sits in its middle 400.
        let start = Self.hop * framesEmitted - Self.fftSize / 2 - historyStart
        let offset = (Self.fftSize - Self.window) / 2
        for i in 0..<Self.fftSize { fftInput[i] = 0 }
        for n in 0..<Self.window {
            let index = start + offset + n
            fftInput[offset + n] = index < history.count ? history[index] * hann[n] : 0
        }
        fftwf_execute_dft_r2c(plan, fftInput, fftOutput)
        let bins = Self.fftSize / 2 + 1
        for k in 0..<bins {
            let re = fftOutput[k].0, im = fftOutput[k].1
            power[k] = re * re + im * im
        }
        filters.apply(power, into: mel)
        for i in 0..<melBins { mel[i] = log(mel[i] + Self.logGuard) }
        emit(UnsafeBufferPointer(start: mel, count: melBins))
        framesEmitted += 1
        // Drop samples no later frame needs.
        let keepFrom = Self.hop * framesEmitted - Self.fftSize / 2 - historyStart
        if keepFrom > 4 * Self.fftSize {
            history.removeFirst(keepFrom)
            historyStart += keepFrom
        }
    }
}

/// librosa's mel filterbank (Slaney scale, area normalisation) for 16 kHz, n_fft 512, computed in float64 and stored
/// as float32, as NeMo does.
final class MelFilterbank: @unchecked Sendable {
    let bins: Int
    let weights: [Float]   // [melBins, bins]
    let melBins: Int

    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [Int: MelFilterbank] = [:]

    static func shared(melBins: Int) -> MelFilterbank {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let f = cache[melBins] { return f }
        let f = MelFilterbank(melBins: melBins, sampleRate: Double(MelFrontend.sampleRate), fftSize: MelFrontend.fftSize)
        cache[melBins] = f
        return f
    }

    init(melBins: Int, sampleRate: Double, fftSize: Int) {
        self.melBins = melBins
        bins = fftSize / 2 + 1
        func hzToMel(_ f: Double) -> Double {
            let fSp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fSp, step = log(6.4) / 27
            return f >= minLogHz ? minLogMel + log(f / minLogHz) / step : f / fSp
        }
        func melToHz(_ m: Double) -> Double {
            let fSp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fSp, step = log(6.4) / 27
            return m >= minLogMel ? minLogHz * exp(step * (m - minLogMel)) : fSp * m
        }
        let fftFrequencies = (0..<bins).map { Double($0) * sampleRate / Double(fftSize) }
        let low = hzToMel(0), high = hzToMel(sampleRate / 2)
        let hz = (0..<(melBins + 2)).map { melToHz(low + (high - low) * Double($0) / Double(melBins + 1)) }
        var w = [Float](repeating: 0, count: melBins * bins)
        for i in 0..<melBins {
            let enorm = 2.0 / (hz[i + 2] - hz[i])
            for k in 0..<bins {
                let lower = (fftFrequencies[k] - hz[i]) / (hz[i + 1] - hz[i])
                let upper = (hz[i + 2] - fftFrequencies[k]) / (hz[i + 2] - hz[i + 1])
                w[i * bins + k] = Float(max(0, min(lower, upper)) * enorm)
            }
        }
        weights = w
    }

    /// mel[melBins] = W · power.
    func apply(_ power: UnsafePointer<Float>, into mel: UnsafeMutablePointer<Float>) {
        weights.withUnsafeBufferPointer { w in
            for i in 0..<melBins {
                var sum: Float = 0
                let row = w.baseAddress! + i * bins
                for k in 0..<bins { sum += row[k] * power[k] }
                mel[i] = sum
            }
        }
    }
}

/// FFTW's planner is not thread-safe; plans are made and destroyed under one lock (executing them is safe).
enum FFTWPlans {
    private static let lock = NSLock()

    static func realForward(size: Int, input: UnsafeMutablePointer<Float>,
                            output: UnsafeMutablePointer<fftwf_complex>) -> fftwf_plan {
        lock.lock()
        defer { lock.unlock() }
        return fftwf_plan_dft_r2c_1d(Int32(size), input, output, UInt32(FFTW_ESTIMATE))
    }

    static func destroy(_ plan: fftwf_plan) {
        lock.lock()
        defer { lock.unlock() }
        fftwf_destroy_plan(plan)
    }
}
