import Dispatch
import Foundation
import NIOConcurrencyHelpers
import NIOCore

extension SpeechServer {
    /// Runs the server until SIGINT or SIGTERM, then shuts down gracefully (see ``shutdown(grace:)``); a second signal
    /// closes the remaining connections at once. Blocks the calling thread, which must not be an event loop or a
    /// Swift concurrency thread (the command line's main thread).
    /// - Parameter started: called with the port once the server listens.
    package func serveUntilSignalled(grace: TimeAmount = .seconds(30), started: (Int) -> Void) throws {
        let port = try runBlocking { try await self.start() }
        started(port)

        let signalled = DispatchSemaphore(value: 0)
        let count = NIOLockedValueBox(0)
        let queue = DispatchQueue(label: "stt.serve.signals")
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [self] in
                let n = count.withLockedValue { $0 += 1; return $0 }
                if n == 1 {
                    configuration.log("signal \(number): finishing open streams, then exiting")
                    signalled.signal()
                } else {
                    configuration.log("signal \(number) again: closing the remaining connections now")
                    closeAll()
                }
            }
            source.resume()
            sources.append(source)
        }
        signalled.wait()
        let open = sessionCount
        try runBlocking { await self.shutdown(grace: grace) }
        configuration.log("stopped (\(open) connection\(open == 1 ? " was" : "s were") open)")
        for source in sources { source.cancel() }
    }
}

/// Runs async work to completion from a thread that may block (a command's main thread, not a concurrency thread).
package func runBlocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = NIOLockedValueBox<Result<T, any Error>?>(nil)
    Task {
        let value: Result<T, any Error>
        do { value = .success(try await work()) } catch { value = .failure(error) }
        result.withLockedValue { $0 = value }
        done.signal()
    }
    done.wait()
    guard let value = result.withLockedValue({ $0 }) else { throw CancellationError() }
    return try value.get()
}
