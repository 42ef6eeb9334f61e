import CSTTKernels

/// Convolutions of the FastConformer: the causal stride-2 stem and the causal depthwise conv over time.
/// Feature maps of the stem are channel-last [height (time), width (frequency), channels].
package enum Convolution {
    /// Output length of a causal stride-2 3-tap stage: pad 2 before and 1 after, then convolve without padding.
    @inline(__always)
    package static func causalStride2Length(_ n: Int) -> Int { n / 2 + 1 }

    /// 3×3 stride-2 conv over a channel-last [h, w, inputChannels] map to [h', w', C], causal on both axes (pad 2
    /// before, 1 after), then ReLU if `relu`. With one input channel it is the stem's full first conv (each tap weights
    /// that channel into all C outputs); with C input channels it is depthwise. taps [9, C] (tap = 3·ky + kx), bias [C].
    package static func causalStride2ChannelLast(_ input: UnsafePointer<Float>, height: Int, width: Int,
                                                inputChannels: Int, channels c: Int, taps: UnsafePointer<Float>,
                                                bias: UnsafePointer<Float>, relu: Bool = false,
                                                into output: UnsafeMutablePointer<Float>) {
        precondition(inputChannels == 1 || inputChannels == c, "a 3×3 stage is full from 1 channel or depthwise")
        ck_conv3x3_stride2(input, height, width, inputChannels, c, taps, bias, relu ? 1 : 0, output)
    }

    /// Causal depthwise conv over time, time-major: out[t, c] = bias[c] + Σ_k taps[k, c] · x[t + k, c], where x is
    /// `history` (kernel − 1 earlier frames) followed by the `frames` new ones, both [·, channels], and taps are
    /// tap-major [kernel, channels] (PyTorch's [channels, 1, kernel] transposed), so the channel loop is contiguous.
    package static func causalDepthwiseTime(history: UnsafePointer<Float>, current: UnsafePointer<Float>,
                                           frames: Int, channels: Int, kernel: Int,
                                           taps: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                           into output: UnsafeMutablePointer<Float>) {
        let past = kernel - 1
        for t in 0..<frames {
            let out = output + t * channels
            out.update(from: bias, count: channels)
            for k in 0..<kernel {
                let s = t + k  // index into [history; current]
                let row = s < past ? history + s * channels : current + (s - past) * channels
                let tap = taps + k * channels
                for c in 0..<channels { out[c] += tap[c] * row[c] }
            }
        }
    }
}
