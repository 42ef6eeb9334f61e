import Dispatch

/// Where the time of encoder steps goes, by operator. Set on a workspace (`EncoderWorkspace.profile`) it is charged as
/// the step runs (`stt-dev bench encoder --profile`); left nil it costs one check per operator.
package final class OperatorProfile {
    package enum Section: Int, CaseIterable, Sendable {
        case stem, layerNorm, feedForward, attentionProjections, attentionCore, convPointwise, convDepthwise, other

        package var name: String {
            switch self {
            case .stem: "stem (ConvSubsampling, x-scaling)"
            case .layerNorm: "LayerNorms (5 a layer, with the conv's)"
            case .feedForward: "feed-forwards (2 a layer: linear1, Swish, linear2)"
            case .attentionProjections: "attention linear_q/k/v/out"
            case .attentionCore: "attention scores, softmax, context"
            case .convPointwise: "conv pointwise_conv1, GLU, Swish, pointwise_conv2"
            case .convDepthwise: "conv depthwise (causal, with cache)"
            case .other: "copies between steps"
            }
        }
    }

    /// Seconds charged to each section, by `Section.rawValue`.
    package private(set) var seconds: [Double] = Array(repeating: 0, count: Section.allCases.count)
    private var mark: UInt64 = 0

    package init() {}

    /// Starts timing from now.
    func start() { mark = DispatchTime.now().uptimeNanoseconds }

    /// Charges the time since the last mark to `section`.
    func lap(_ section: Section) {
        let now = DispatchTime.now().uptimeNanoseconds
        seconds[section.rawValue] += Double(now - mark) / 1e9
        mark = now
    }

    /// Back to zero.
    package func reset() { seconds = Array(repeating: 0, count: Section.allCases.count) }
}
