/// Mutations that know nothing of the format: the classic bit flips, interesting values, inserts, deletes,
/// truncation and splices. Positions come from `hot` (offsets where the format's framing lies, so most edits change
/// how the input is read rather than a sample or a weight) most of the time, anywhere otherwise.
package struct ByteMutations {
    /// Offsets worth editing: tags, lengths, header fields. May be empty.
    package var hot: [Int] = []
    /// How often a position is drawn from `hot` (out of 8).
    package var hotShare = 6

    package init(hot: [Int] = [], hotShare: Int = 6) {
        self.hot = hot
        self.hotShare = hotShare
    }

    static let interesting8: [UInt8] = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x20, 0x0A, 0x08, 0x10]
    static let interesting16: [UInt16] = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0xFFFE, 16, 64, 1000]
    static let interesting32: [UInt32] = [0, 1, 2, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFE, 0x10000, 16_000,
                                          44_100, 768_000, 768_001, 0x7F80_0000 /* +inf */, 0x7FC0_0000 /* NaN */]

    func position(in count: Int, _ rng: inout FuzzRandom) -> Int {
        guard count > 0 else { return 0 }
        if !hot.isEmpty && rng.below(8) < hotShare, let p = rng.pick(hot), p < count {
            // Near the hot offset, not only on it: a field's value follows its tag.
            return min(count - 1, p + rng.below(4))
        }
        return rng.below(count)
    }

    /// Applies one randomly chosen byte-level edit; `other` is a second input for splices.
    package func mutate(_ data: inout [UInt8], other: [UInt8], _ rng: inout FuzzRandom) {
        if data.isEmpty {
            data = Array(other.prefix(rng.smallCount(64)))
            return
        }
        let p = position(in: data.count, &rng)
        switch rng.below(12) {
        case 0:
            data[p] ^= 1 << UInt8(rng.below(8))
        case 1:
            data[p] = rng.pick(Self.interesting8) ?? 0
        case 2:
            data[p] = UInt8(truncatingIfNeeded: Int(data[p]) + rng.below(33) - 16)
        case 3:
            let value = rng.pick(Self.interesting16) ?? 0
            write(value.littleEndian, at: p, in: &data, swap: rng.oneIn(4))
        case 4:
            let value = rng.pick(Self.interesting32) ?? 0
            write(value, at: p, in: &data, swap: rng.oneIn(4))
        case 5:
            let value: UInt64 = rng.oneIn(2) ? UInt64.max : UInt64(rng.pick(Self.interesting32) ?? 0) << 32
            write(value, at: p, in: &data, swap: false)
        case 6:
            let n = rng.smallCount(16)
            let bytes = rng.oneIn(2) ? [UInt8](repeating: rng.pick(Self.interesting8) ?? 0, count: n)
                : (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            data.insert(contentsOf: bytes, at: p)
        case 7:
            let n = min(data.count - p, rng.smallCount(rng.oneIn(8) ? 4096 : 16))
            data.removeSubrange(p..<(p + n))
        case 8:
            // Duplicate a piece: repeated fields, repeated chunks.
            let n = min(data.count - p, rng.smallCount(256))
            let piece = Array(data[p..<(p + n)])
            data.insert(contentsOf: piece, at: min(data.count, p + n))
        case 9:
            data.removeSubrange(p...)
        case 10:
            // Overwrite with bytes from elsewhere in the input.
            let from = rng.below(data.count)
            let n = min(data.count - p, data.count - from, rng.smallCount(64))
            let piece = Array(data[from..<(from + n)])
            data.replaceSubrange(p..<(p + n), with: piece)
        default:
            // Splice: this input's head on another's tail.
            guard !other.isEmpty else { data.removeSubrange(p...); return }
            let q = position(in: other.count, &rng)
            data = Array(data[..<p]) + other[q...]
        }
    }

    private func write<T: FixedWidthInteger>(_ value: T, at p: Int, in data: inout [UInt8], swap: Bool) {
        let v = swap ? value.byteSwapped : value
        for k in 0..<MemoryLayout<T>.size where p + k < data.count {
            data[p + k] = UInt8(truncatingIfNeeded: v >> (8 * k))
        }
    }
}
