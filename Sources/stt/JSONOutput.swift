import Foundation
import STTKit

/// JSON as `stt` prints it: one line, sorted keys, times in seconds rounded to the millisecond.
enum JSONOutput {
    static func line(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func seconds(_ t: Double) -> Double { (t * 1000).rounded() / 1000 }

    static func words(_ words: [Word]) -> [[String: Any]] {
        words.map { ["word": $0.text, "start": seconds($0.start), "end": seconds($0.end), "logprob": Double($0.logProbability)] }
    }

    static func tokens(_ tokens: [Token]) -> [[String: Any]] {
        tokens.map {
            ["id": $0.id, "piece": $0.piece, "start": seconds($0.start), "end": seconds($0.end),
             "logprob": Double($0.logProbability)]
        }
    }
}
