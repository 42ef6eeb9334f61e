import Foundation
import STTFuzz
import STTTestFixtures
import Testing

/// Every input the fuzzers ever found (Tests/FuzzRegressions/TARGET/*) runs through the same harness again and must
/// end in success or a clean one-line error; a short seeded fuzz of each target runs here too.
@Suite struct FuzzRegressionTests {
    static let regressions = Fixtures.repository.appendingPathComponent("Tests/FuzzRegressions")

    static func inputs(_ target: FuzzTarget) -> [URL] {
        let folder = regressions.appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { folder.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTarget.allCases)
    func committedFindingsEndCleanly(target: FuzzTarget) throws {
        for url in Self.inputs(target) {
            let outcome = target.execute([UInt8](try Data(contentsOf: url)))
            #expect(!outcome.isFinding, "\(url.lastPathComponent): \(outcome)")
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func seedsAreAccepted(target: FuzzTarget) throws {
        let corpus = try FuzzCorpus(target: target, repository: Fixtures.repository)
        // A metadata seed is a model.json or a tokens.txt: one of the two parsers takes it.
        for seed in corpus.seeds {
            let outcome = target.execute(seed.bytes)
            if case .accepted = outcome { continue }
            Issue.record("\(seed.name): \(outcome)")
        }
    }

    /// A few hundred mutants per target, in this process: the bounded CI run is scripts/fuzz, this catches a
    /// regression at `swift test` already.
    @Test(arguments: FuzzTarget.allCases)
    func shortFuzzFindsNothing(target: FuzzTarget) throws {
        let corpus = try FuzzCorpus(target: target, repository: Fixtures.repository)
        for index in 0..<UInt64(300) {
            let outcome = target.execute(corpus.input(seed: 7, index: index))
            #expect(!outcome.isFinding, "input \(index) of seed 7: \(outcome)")
        }
    }

    @Test func inputsArePureFunctionsOfSeedAndIndex() throws {
        let corpus = try FuzzCorpus(target: .metadata, repository: Fixtures.repository)
        for index in UInt64(10)..<20 {
            #expect(corpus.input(seed: 3, index: index) == corpus.input(seed: 3, index: index))
        }
        #expect(corpus.input(seed: 3, index: 50) != corpus.input(seed: 4, index: 50))
    }

    @Test func messagesWithLineEndsOrControlCharactersAreFindings() {
        #expect(FuzzHarness.problem(inMessage: "input.onnx: not an ONNX model (no graph)") == nil)
        #expect(FuzzHarness.problem(inMessage: "two\nlines") != nil)
        #expect(FuzzHarness.problem(inMessage: "escape \u{1B}[2J") != nil)
        #expect(FuzzHarness.problem(inMessage: "override \u{202E}") != nil)
        #expect(FuzzHarness.problem(inMessage: "") != nil)
    }
}
