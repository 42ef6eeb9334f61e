/// Convolutions of the FastConformer: the causal stride-2 stem and the causal depthwise conv over time.
/// Feature maps of the stem are channel planes [channels, height (time), width (frequency)].
public enum Convolution {
    /// Output length of a causal stride-2 3-tap stage: pad 2 before and 1 after, then convolve without padding.
    @inline(__always)
    public static func causalStride2Length(_ n: Int) -> Int { n / 2 + 1 }

    /// Full 3×3 stride-2 conv from one input plane [h, w] to C channels, causal on both axes (pad 2 before, 1 after).
    /// taps [9, C] (tap = 3·ky + kx), bias [C]; output channel-last [h', w', C].
    public static func causalStride2FirstChannelLast(_ input: UnsafePointer<Float>, height: Int, width: Int,
                                                     taps: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                                     channels c: Int, into output: UnsafeMutablePointer<Float>) {
        let oh = causalStride2Length(height), ow = causalStride2Length(width)
        for y in 0..<oh {
            for x in 0..<ow {
                let out = output + (y * ow + x) * c
                out.update(from: bias, count: c)
                for ky in 0..<3 {
                    let iy = 2 * y + ky - 2
                    if iy < 0 || iy >= height { continue }
                    for kx in 0..<3 {
                        let ix = 2 * x + kx - 2
                        if ix < 0 || ix >= width { continue }
                        let v = input[iy * width + ix], tap = taps + (ky * 3 + kx) * c
                        for ch in 0..<c { out[ch] += tap[ch] * v }
                    }
                }
            }
        }
    }

    /// Depthwise 3×3 stride-2 conv over channel-last [h, w, C], causal on both axes. taps [9, C], bias [C].
    public static func causalStride2DepthwiseChannelLast(_ input: UnsafePointer<Float>, height: Int, width: Int,
                                                         channels c: Int, taps: UnsafePointer<Float>,
                                                         bias: UnsafePointer<Float>,
                                                         into output: UnsafeMutablePointer<Float>) {
        let oh = causalStride2Length(height), ow = causalStride2Length(width)
        for y in 0..<oh {
            for x in 0..<ow {
                let out = output + (y * ow + x) * c
                out.update(from: bias, count: c)
                for ky in 0..<3 {
                    let iy = 2 * y + ky - 2
                    if iy < 0 || iy >= height { continue }
                    for kx in 0..<3 {
                        let ix = 2 * x + kx - 2
                        if ix < 0 || ix >= width { continue }
                        let src = input + (iy * width + ix) * c, tap = taps + (ky * 3 + kx) * c
                        for ch in 0..<c { out[ch] += tap[ch] * src[ch] }
                    }
                }
            }
        }
    }

    /// Causal depthwise conv over time, time-major: out[t, c] = bias[c] + Σ_k w[c, k] · x[t + k, c], where x is
    /// `history` (kernel − 1 earlier frames) followed by the `frames` new ones, both [·, channels].
    public static func causalDepthwiseTime(history: UnsafePointer<Float>, current: UnsafePointer<Float>,
                                           frames: Int, channels: Int, kernel: Int,
                                           weights: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                           into output: UnsafeMutablePointer<Float>) {
        let past = kernel - 1
        for t in 0..<frames {
            let out = output + t * channels
            out.update(from: bias, count: channels)
            for k in 0..<kernel {
                let s = t + k  // index into [history; current]
                let row = s < past ? history + s * channels : current + (s - past) * channels
                for c in 0..<channels { out[c] += weights[c * kernel + k] * row[c] }
            }
        }
    }
}
