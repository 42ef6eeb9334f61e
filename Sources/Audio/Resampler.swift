import Foundation

/// Band-limited sample-rate conversion: a polyphase windowed-sinc filter (Kaiser window, β = 8.6, 16 zero crossings
/// each side) for the rational ratio out/in, cut off at 95% of the lower Nyquist frequency.
public struct Resampler: Sendable {
    public let inputRate: Int
    public let outputRate: Int
    /// Output samples per `down` input samples, in lowest terms.
    let up: Int
    let down: Int
    let halfWidth: Int
    /// [up phases][2·halfWidth taps]
    let table: [Float]

    public init(from inputRate: Int, to outputRate: Int) {
        precondition(inputRate > 0 && outputRate > 0)
        self.inputRate = inputRate
        self.outputRate = outputRate
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let g = gcd(inputRate, outputRate)
        up = outputRate / g
        down = inputRate / g
        // Cut-off in cycles per input sample.
        let cutoff = 0.475 * Double(min(inputRate, outputRate)) / Double(inputRate)
        halfWidth = Int((16 / (2 * cutoff)).rounded(.up))
        let taps = 2 * halfWidth
        func bessel0(_ x: Double) -> Double {
            var sum = 1.0, term = 1.0, k = 1.0
            while term > 1e-12 * sum { term *= (x / (2 * k)) * (x / (2 * k)); sum += term; k += 1 }
            return sum
        }
        let beta = 8.6, norm = bessel0(beta)
        var table = [Float](repeating: 0, count: up * taps)
        for phase in 0..<up {
            let fraction = Double(phase) / Double(up)
            for j in 0..<taps {
                // Tap j multiplies input sample i − halfWidth + 1 + j for an output at position i + fraction.
                let t = fraction + Double(halfWidth - 1 - j)
                let x = 2 * cutoff * t
                let sinc = abs(x) < 1e-12 ? 1.0 : sin(Double.pi * x) / (Double.pi * x)
                let r = t / Double(halfWidth)
                let window = abs(r) >= 1 ? 0 : bessel0(beta * (1 - r * r).squareRoot()) / norm
                table[phase * taps + j] = Float(2 * cutoff * sinc * window)
            }
        }
        self.table = table
    }

    /// The whole signal at the output rate (round(N · out / in) samples).
    public func callAsFunction(_ input: [Float]) -> [Float] {
        if inputRate == outputRate { return input }
        let count = Int((Double(input.count) * Double(up) / Double(down)).rounded())
        let taps = 2 * halfWidth
        var output = [Float](repeating: 0, count: count)
        input.withUnsafeBufferPointer { x in
            table.withUnsafeBufferPointer { h in
                for n in 0..<count {
                    let position = n * down
                    let i = position / up, phase = position % up
                    let first = i - halfWidth + 1
                    var sum: Float = 0
                    let row = h.baseAddress! + phase * taps
                    if first >= 0 && first + taps <= x.count {
                        for j in 0..<taps { sum += row[j] * x[first + j] }
                    } else {
                        for j in 0..<taps where first + j >= 0 && first + j < x.count { sum += row[j] * x[first + j] }
                    }
                    output[n] = sum
                }
            }
        }
        return output
    }
}
