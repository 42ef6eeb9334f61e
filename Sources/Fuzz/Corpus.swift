import Foundation

/// A target's seed inputs (committed fixtures) and the inputs of a run: input `i` of seed `s` is a pure function of
/// the two, so a worker can start anywhere and a finding is regenerated from its index alone.
package struct FuzzCorpus: Sendable {
    package struct Seed: Sendable {
        package let name: String
        package let bytes: [UInt8]
        /// Offsets worth editing.
        let hot: [Int]
        /// For ONNX seeds: their protobuf fields.
        let protobuf: ProtobufIndex?
    }

    package let target: FuzzTarget
    package let seeds: [Seed]

    /// The fixture files each target starts from, relative to the repository.
    package static func seedPaths(_ target: FuzzTarget) -> [String] {
        switch target {
        case .onnx:
            ["models/tiny/la13/encoder-tiny.onnx", "models/tiny/la13/decoder_joint-tiny.onnx",
             "models/tiny/ctc/ctc-tiny.onnx", "models/tiny/opset13/encoder-tiny.onnx"]
        case .wav:
            ["samples/green-apples.wav", "models/frontend/speech_16k.wav", "models/frontend/speech_8k.wav",
             "models/frontend/speech_44k.wav", "models/frontend/green-apples-44k.wav",
             "models/frontend/green-apples-8k-stereo-float.wav", "models/frontend/silence.wav",
             "models/frontend/clipped.wav", "models/frontend/quiet.wav"]
        case .metadata:
            ["models/tiny/la13/model.json", "models/tiny/la13/tokens.txt", "models/tiny/ctc/model.json",
             "models/tiny/nocache/model.json", "models/small/la13/model.json", "models/small/ctc/model.json"]
        }
    }

    /// Loads the seeds from a checkout.
    package init(target: FuzzTarget, repository: URL) throws {
        self.target = target
        var seeds: [Seed] = []
        for path in Self.seedPaths(target) {
            let bytes = [UInt8](try Data(contentsOf: repository.appendingPathComponent(path)))
            seeds.append(Self.seed(path, bytes, target))
        }
        self.seeds = seeds
    }

    static func seed(_ name: String, _ bytes: [UInt8], _ target: FuzzTarget) -> Seed {
        switch target {
        case .onnx:
            let index = ProtobufIndex(bytes)
            return Seed(name: name, bytes: bytes, hot: index.hot, protobuf: index)
        case .wav:
            return Seed(name: name, bytes: bytes, hot: WAVMutations().hotOffsets(bytes), protobuf: nil)
        case .metadata:
            return Seed(name: name, bytes: bytes, hot: [], protobuf: nil)
        }
    }

    /// Input `index` of the run with seed `runSeed`: the seeds themselves first, then mutants.
    package func input(seed runSeed: UInt64, index: UInt64) -> [UInt8] {
        guard !seeds.isEmpty else { return [] }
        if index < UInt64(seeds.count) { return seeds[Int(index)].bytes }
        var rng = FuzzRandom(seed: runSeed, index: index)
        let seed = seeds[rng.below(seeds.count)]
        let other = seeds[rng.below(seeds.count)].bytes
        var data = seed.bytes
        let bytes = ByteMutations(hot: seed.hot)
        switch target {
        case .onnx:
            var edited = false
            if let index = seed.protobuf, !rng.oneIn(4) {
                let fields = ProtobufMutations(index: index)
                for _ in 0..<4 where !edited { edited = fields.mutate(&data, &rng) }
                if edited && rng.oneIn(8) {
                    // A second field edit needs the edited buffer indexed again.
                    ProtobufMutations(index: ProtobufIndex(data)).mutate(&data, &rng)
                }
            }
            if !edited || rng.oneIn(3) {
                for _ in 0..<rng.smallCount(4) { bytes.mutate(&data, other: other, &rng) }
            }
        case .wav:
            let wav = WAVMutations()
            var edited = false
            if !rng.oneIn(4) {
                for _ in 0..<rng.smallCount(3) { edited = wav.mutate(&data, &rng) || edited }
            }
            if !edited || rng.oneIn(2) {
                let hot = ByteMutations(hot: wav.hotOffsets(data))
                for _ in 0..<rng.smallCount(4) { hot.mutate(&data, other: other, &rng) }
            }
        case .metadata:
            let text = TextMutations()
            for _ in 0..<rng.smallCount(4) { text.mutate(&data, &rng) }
            if rng.oneIn(3) {
                for _ in 0..<rng.smallCount(2) { bytes.mutate(&data, other: other, &rng) }
            }
        }
        return data
    }
}
