import Foundation
import STTKit

/// One thread that steps one `StreamBatch` whenever a stream of it has new audio: the connections it serves share
/// each step's pass over the weights. A server runs one stepper per worker and gives each new connection to the one
/// with the fewest streams.
final class BatchStepper: @unchecked Sendable {
    let batch: StreamBatch
    private let condition = NSCondition()
    private var pending = false
    private var stopped = false
    private var started = false
    private let done = DispatchSemaphore(value: 0)

    init(model: SpeechModel, maxStreams: Int) {
        batch = StreamBatch(model: model, maxStreams: maxStreams)
    }

    func start(name: String) {
        guard condition.withLock({ () -> Bool in
            defer { started = true }
            return !started
        }) else { return }
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Streams open on this stepper's batch.
    var streamCount: Int { batch.streamCount }

    /// Asks for steps: new audio was pushed.
    func wake() {
        condition.withLock {
            pending = true
            condition.signal()
        }
    }

    /// Stops the thread after the step in progress and waits for it.
    func stop() {
        let running: Bool = condition.withLock {
            defer { stopped = true }
            condition.signal()
            return started && !stopped
        }
        if running { done.wait() }
    }

    private func run() {
        while true {
            let stop: Bool = condition.withLock {
                while !pending && !stopped { condition.wait() }
                pending = false
                return stopped
            }
            if stop { return }
            batch.run()
        }
    }
}
