import ArgumentParser
import Foundation
import STTTensor
import STTKit
import STTWeightLoader

@main
struct STT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stt",
        abstract: "Speech to text with NeMo cache-aware streaming FastConformer models, natively.",
        discussion: "Exit status: 0 success, 1 error (a one-line message on stderr), 2 usage error.",
        version: STTKitVersion.string,
        subcommands: [Transcribe.self, Stream.self, Info.self, Serve.self])

    /// Usage errors exit 2 (ArgumentParser's default is 64); every other failure exits 1 with one line.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch let failure as CommandFailure {
            FileHandle.standardError.write(Data("stt: error: \(failure.message)\n".utf8))
            Foundation.exit(1)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            FileHandle.standardError.write(Data("stt: error: \(error)\n".utf8))
            Foundation.exit(1)
        }
    }
}

/// A failure reported to the user as one line.
struct CommandFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
    init(_ error: any Error) { self.message = "\(error)" }
    /// The error itself when it is a CommandFailure already.
    init(wrapping error: any Error) { self = error as? CommandFailure ?? CommandFailure(error) }
}

extension Int {
    /// 114226689 → "114,226,689".
    var grouped: String {
        let digits = String(self.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return self < 0 ? "-" + out : out
    }
}
