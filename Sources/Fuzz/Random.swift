/// SplitMix64: tiny, fast, and the same stream on every platform and Swift version, so an input is a pure function
/// of the run's seed and its index and any finding can be regenerated from those two numbers.
package struct FuzzRandom: RandomNumberGenerator {
    private var state: UInt64

    package init(seed: UInt64) { state = seed }

    /// The generator for input `index` of a run: independent streams, so a worker can start at any index.
    package init(seed: UInt64, index: UInt64) {
        var mix = FuzzRandom(seed: seed ^ 0x5EED_F022_0000_0000)
        for _ in 0..<2 { _ = mix.next() }
        state = mix.next() &+ index &* 0x9E37_79B9_7F4A_7C15
        _ = next()
    }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 0..<bound; 0 when the bound is not positive.
    package mutating func below(_ bound: Int) -> Int {
        bound > 0 ? Int(next() % UInt64(bound)) : 0
    }

    /// True with probability 1/n.
    package mutating func oneIn(_ n: Int) -> Bool { below(n) == 0 }

    package mutating func pick<T>(_ values: [T]) -> T? {
        values.isEmpty ? nil : values[below(values.count)]
    }

    /// 1…limit, mostly small: each doubling of the range is half as likely. Most edits worth making are small, and
    /// an occasional large one still comes up.
    package mutating func smallCount(_ limit: Int) -> Int {
        var n = 1
        while n < limit && oneIn(2) { n *= 2 }
        return 1 + below(n)
    }
}
