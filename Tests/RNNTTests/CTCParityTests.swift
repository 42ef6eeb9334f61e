import Foundation
import STTTensor
import STTTestFixtures
import Testing
import STTWeightLoader
import STTConformer
import STTKit

@Suite struct CTCParityTests {
    /// Encoder + CTC head of a CTC export against ONNX Runtime's `logprobs` over 40 export-convention calls.
    @Test(arguments: ["tiny", "small"])
    func ctcLogProbabilitiesMatchONNXRuntime(size: String) throws {
        let graph = try ExportedGraph(path: Fixtures.file("\(size)/ctc", prefix: "ctc"))
        let encoder = try ConformerEncoder(graph: graph)
        let head = try CTCHead(graph: graph)
        let mel = try Fixtures.ref(size, "stream_mel")
        let reference = try Fixtures.ref(size, "ctc_la13_logprobs")   // [calls, T, classes]
        let calls = reference.shape[0], t = reference.shape[1], classes = reference.shape[2]
        let schedule = StreamingSchedule(lookahead: 13, convention: .exportCompatible)
        let state = EncoderState(encoder: encoder, maxFrames: schedule.framesPerStep, maxWindow: schedule.maxWindow)
        let window = Tensor(zeros: [schedule.maxWindow, 80]), out = Tensor(zeros: [t, encoder.dModel])
        let logits = Tensor(zeros: [classes])
        var feed = MelFeed(mel, schedule: schedule)
        var worst = Deviation(), argmaxAgree = 0
        for k in 0..<calls {
            guard let w = feed.next(into: window.data) else { Issue.record("call \(k): the mel stream ends"); break }
            let n = encoder.step(state, mel: window.data, frames: w.length, drop: w.drop, output: out.data)
            #expect(n == t)
            for i in 0..<n {
                head.logits(out.data + i * encoder.dModel, into: logits.data)
                let m = (0..<classes).map { logits.data[$0] }.max()!
                let lse = m + log((0..<classes).map { exp(logits.data[$0] - m) }.reduce(0, +))
                for c in 0..<classes { logits.data[c] -= lse }
                worst.compare(logits.data, reference.floats, offset: (k * t + i) * classes, count: classes)
                let ours = (0..<classes).max { logits.data[$0] < logits.data[$1] }!
                let theirs = (0..<classes).max { reference.floats[(k * t + i) * classes + $0] < reference.floats[(k * t + i) * classes + $1] }!
                if ours == theirs { argmaxAgree += 1 }
            }
        }
        #expect(worst.worst <= worst.tolerance, "\(size) CTC logprobs: \(worst)")
        #expect(argmaxAgree == calls * t)
        print("\(size) CTC: \(calls * t) frames, logprobs \(worst), argmax equal on all")
    }
}
