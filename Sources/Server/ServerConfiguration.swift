import Foundation
import NIOCore
import STTKit

/// How a ``SpeechServer`` listens, how many clients it takes and how it bounds each one.
package struct ServerConfiguration: Sendable {
    /// Address to listen on; 127.0.0.1 by default (loopback only).
    package var host = "127.0.0.1"
    /// Port; 0 picks a free one (see ``SpeechServer/port``). 6006 by default, like sherpa-onnx.
    package var port = 6006
    /// Clients streaming at once; connection N+1 is refused with HTTP 503 at the handshake.
    package var maxClients = 64
    /// Threads that run the decoding, shared by every connection: each steps its own batch of connections.
    package var workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// Connections one batched step takes at most (the rest of a worker's connections wait for its next step).
    package var maxBatch = 16
    /// Seconds a connection may stay silent (no message while the server waits for one) before it is closed; the
    /// same bound applies to finishing the HTTP handshake.
    package var idleTimeout: Double = 30
    /// Largest WebSocket message (after reassembling fragments), in bytes; a larger one closes the connection (1009).
    package var maxMessageBytes = 1 << 20
    /// Seconds of audio a connection may have queued for decoding before the server stops reading from it.
    package var maxBacklogSeconds: Double = 4
    /// Options of every connection's stream (look-ahead, convention, decoder, endpointing). Endpointing is on with
    /// sherpa-onnx's rules by default, as in sherpa-onnx's server; nil turns it off (one segment per stream).
    package var stream = TranscriptionStream.Options(endpointing: Endpointing())
    /// Where connection events go, one line each; stderr by default.
    package var log: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    package init() {}

    /// Connections still in the HTTP handshake beyond `maxClients` that are accepted at once; more are closed at
    /// accept.
    var maxHandshaking: Int { 64 }

    var idle: TimeAmount { .nanoseconds(Int64((idleTimeout * 1e9).rounded())) }
}
