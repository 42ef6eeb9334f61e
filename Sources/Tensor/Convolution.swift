/// Convolutions of the FastConformer: the causal stride-2 stem and the causal depthwise conv over time.
/// Feature maps of the stem are channel planes [channels, height (time), width (frequency)].
public enum Convolution {
    /// Output length of a causal stride-2 3-tap stage: pad 2 before and 1 after, then convolve without padding.
    @inline(__always)
    public static func causalStride2Length(_ n: Int) -> Int { n / 2 + 1 }

    /// Full 3×3 stride-2 conv from one input plane [h, w] to `weights.count / 9` planes, causal on both axes.
    /// weights [C, 1, 3, 3], bias [C]; output [C, h', w'].
    public static func causalStride2FromOnePlane(_ input: UnsafePointer<Float>, height: Int, width: Int,
                                                 weights: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                                 channels: Int, into output: UnsafeMutablePointer<Float>) {
        let oh = causalStride2Length(height), ow = causalStride2Length(width)
        for c in 0..<channels {
            let w = weights + c * 9
            let plane = output + c * oh * ow
            for y in 0..<oh {
                for x in 0..<ow {
                    var sum = bias[c]
                    for ky in 0..<3 {
                        let iy = 2 * y + ky - 2
                        if iy < 0 || iy >= height { continue }
                        for kx in 0..<3 {
                            let ix = 2 * x + kx - 2
                            if ix < 0 || ix >= width { continue }
                            sum += w[ky * 3 + kx] * input[iy * width + ix]
                        }
                    }
                    plane[y * ow + x] = sum
                }
            }
        }
    }

    /// Depthwise 3×3 stride-2 conv over [C, h, w] planes, causal on both axes. weights [C, 1, 3, 3], bias [C].
    public static func causalStride2Depthwise(_ input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                                              weights: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                              into output: UnsafeMutablePointer<Float>) {
        let oh = causalStride2Length(height), ow = causalStride2Length(width)
        for c in 0..<channels {
            let w = weights + c * 9
            let src = input + c * height * width
            let plane = output + c * oh * ow
            for y in 0..<oh {
                for x in 0..<ow {
                    var sum = bias[c]
                    for ky in 0..<3 {
                        let iy = 2 * y + ky - 2
                        if iy < 0 || iy >= height { continue }
                        for kx in 0..<3 {
                            let ix = 2 * x + kx - 2
                            if ix < 0 || ix >= width { continue }
                            sum += w[ky * 3 + kx] * src[iy * width + ix]
                        }
                    }
                    plane[y * ow + x] = sum
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
