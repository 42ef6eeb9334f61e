/// Edits that know the RIFF/WAVE layout: the fmt fields (format tag, channels, rate, byte rate, block align, bits),
/// chunk sizes, extra or missing or reordered chunks, the extensible fmt chunk, cuts at chunk boundaries.
package struct WAVMutations {
    package init() {}

    struct Chunk {
        var id: [UInt8]
        /// Offset of the chunk's 8-byte header.
        var start: Int
        var size: Int
        /// The body as present in the buffer (may be shorter than `size` declares).
        var body: Range<Int>
    }

    /// The chunks after the 12-byte RIFF header, as far as the buffer holds them.
    func chunks(_ data: [UInt8]) -> [Chunk] {
        var result: [Chunk] = []
        var i = 12
        while i + 8 <= data.count && result.count < 64 {
            let size = Int(u32(data, i + 4))
            let bodyEnd = min(data.count, i + 8 + size)
            result.append(Chunk(id: Array(data[i..<(i + 4)]), start: i, size: size, body: (i + 8)..<bodyEnd))
            i = bodyEnd + (size & 1)
        }
        return result
    }

    /// Offsets of the header bytes: RIFF header and every chunk header, and the fmt body.
    package func hotOffsets(_ data: [UInt8]) -> [Int] {
        var hot = Array(0..<min(12, data.count))
        for chunk in chunks(data) {
            hot += Array(chunk.start..<min(data.count, chunk.start + 8))
            if chunk.id == Array("fmt ".utf8) { hot += Array(chunk.body.prefix(40)) }
        }
        return hot
    }

    static let rates: [UInt32] = [0, 1, 2, 3, 7, 100, 7_999, 8_000, 11_025, 15_999, 16_000, 16_001, 22_050, 44_100,
                                  48_000, 96_000, 192_000, 767_999, 768_000, 768_001, 999_983, 0x7FFF_FFFF, 0xFFFF_FFFF]
    static let channels: [UInt16] = [0, 1, 2, 3, 6, 8, 63, 64, 65, 255, 0x8000, 0xFFFF]
    static let bits: [UInt16] = [0, 1, 4, 7, 8, 12, 16, 20, 24, 32, 33, 48, 64, 128, 0xFFFF]
    static let tags: [UInt16] = [0, 1, 2, 3, 6, 7, 0x11, 0x55, 0xFFFE, 0xFFFF]
    static let sizes: [UInt32] = [0, 1, 2, 3, 4, 14, 15, 16, 17, 18, 39, 40, 41, 0x7FFF_FFFF, 0x8000_0000,
                                  0xFFFF_FFFE, 0xFFFF_FFFF]

    /// One header-aware edit; false when the buffer has nothing it applies to.
    @discardableResult
    package func mutate(_ data: inout [UInt8], _ rng: inout FuzzRandom) -> Bool {
        guard data.count >= 12 else { return false }
        let all = chunks(data)
        let fmt = all.first { $0.id == Array("fmt ".utf8) }
        let dataChunk = all.first { $0.id == Array("data".utf8) }
        switch rng.below(10) {
        case 0, 1, 2:
            // One fmt field, often keeping block align and byte rate consistent so that decoding is reached.
            guard let fmt, fmt.body.count >= 16 else { return false }
            let b = fmt.body.lowerBound
            switch rng.below(6) {
            case 0: put16(&data, b, rng.pick(Self.tags) ?? 1)
            case 1: put16(&data, b + 2, rng.pick(Self.channels) ?? 1)
            case 2: put32(&data, b + 4, rng.pick(Self.rates) ?? 16_000)
            case 3: put32(&data, b + 8, rng.pick(Self.rates) ?? 0)
            case 4: put16(&data, b + 12, UInt16(truncatingIfNeeded: rng.pick([0, 1, 2, 3, 4, 6, 8, 0xFFFF]) ?? 0))
            default: put16(&data, b + 14, rng.pick(Self.bits) ?? 16)
            }
            if rng.below(3) != 0 {
                let channels = Int(u16(data, b + 2)), bits = Int(u16(data, b + 14)), rate = Int(u32(data, b + 4))
                let align = channels * bits / 8
                put16(&data, b + 12, UInt16(truncatingIfNeeded: align))
                put32(&data, b + 8, UInt32(truncatingIfNeeded: align * rate))
            }
        case 3, 4:
            // A chunk size (or the RIFF size) that lies, or the streaming writers' 0 / 0xFFFFFFFF.
            let size = rng.pick(Self.sizes) ?? 0
            if let chunk = rng.pick(all), !rng.oneIn(5) {
                let old = UInt32(truncatingIfNeeded: chunk.size)
                put32(&data, chunk.start + 4, rng.oneIn(3) ? old &+ UInt32(rng.below(5)) &- 2 : size)
            } else {
                put32(&data, 4, size)
            }
        case 5:
            // An extra chunk: before fmt, between fmt and data, or a second fmt/data.
            let ids = ["LIST", "fact", "JUNK", "fmt ", "data", "bext", "\u{0}\u{0}\u{0}\u{0}", "RIFF"]
            let id = Array((rng.pick(ids) ?? "JUNK").utf8.prefix(4))
            let size = rng.oneIn(4) ? Int(rng.pick(Self.sizes) ?? 0) : rng.below(48)
            var chunk = id + le32(UInt32(truncatingIfNeeded: size))
            chunk += (0..<min(size + (size & 1), 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let at = rng.pick(all.map(\.start) + [data.count]) ?? 12
            data.insert(contentsOf: chunk, at: at)
        case 6:
            // The data chunk before the fmt chunk (a seek back), or fmt moved to the end.
            guard let fmt, let dataChunk, fmt.start < dataChunk.start else { return false }
            let fmtBytes = Array(data[fmt.start..<min(data.count, fmt.body.upperBound + (fmt.size & 1))])
            data.removeSubrange(fmt.start..<(fmt.start + fmtBytes.count))
            if rng.oneIn(2) { data.append(contentsOf: fmtBytes) } else {
                let shift = fmtBytes.count
                let dataEnd = min(data.count, dataChunk.body.upperBound - shift + (dataChunk.size & 1))
                data.insert(contentsOf: fmtBytes, at: max(12, dataEnd))
            }
        case 7:
            // WAVE_FORMAT_EXTENSIBLE with a PCM or float sub-format, or a broken one.
            guard let fmt, fmt.body.count >= 16 else { return false }
            var body = Array(data[fmt.body.prefix(16)])
            let sub: UInt16 = rng.pick([1, 3, 2, 0, 0xFFFE]) ?? 1
            body[0] = 0xFE
            body[1] = 0xFF
            let cbSize: UInt16 = rng.pick([22, 0, 21, 0xFFFF]) ?? 22
            body += le16(cbSize) + le16(u16(body, 14)) + le32(UInt32(rng.pick([0, 1, 3, 0x3F, 0xFFFF_FFFF]) ?? 0))
            body += le16(sub) + [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]
            let declared = rng.oneIn(4) ? rng.below(40) : body.count
            body = Array(body.prefix(max(declared, 0)))
            let end = fmt.body.upperBound + (fmt.size & 1)
            data.replaceSubrange(fmt.start..<min(data.count, end),
                                 with: Array("fmt ".utf8) + le32(UInt32(declared)) + body + (declared & 1 == 1 ? [0] : []))
        case 8:
            // Cut at or near a chunk boundary.
            let cuts = [12, 16, 20, 36, 44] + all.flatMap { [$0.start, $0.start + 4, $0.start + 8, $0.body.upperBound] }
            let at = max(0, (rng.pick(cuts) ?? 12) + rng.below(5) - 2)
            guard at < data.count else { return false }
            data.removeSubrange(at...)
        default:
            // A chunk gone, or a chunk id changed.
            guard let chunk = rng.pick(all) else { return false }
            if rng.oneIn(2) {
                data.removeSubrange(chunk.start..<min(data.count, chunk.body.upperBound + (chunk.size & 1)))
            } else {
                let ids = ["fmt ", "data", "FMT ", "dat\u{0}", "RIFF", "WAVE", "RIFX"]
                let id = Array((rng.pick(ids) ?? "data").utf8.prefix(4))
                data.replaceSubrange(chunk.start..<(chunk.start + 4), with: id)
            }
        }
        return true
    }

    func u16(_ d: [UInt8], _ o: Int) -> UInt16 { o + 1 < d.count ? UInt16(d[o]) | UInt16(d[o + 1]) << 8 : 0 }
    func u32(_ d: [UInt8], _ o: Int) -> UInt32 {
        o + 3 < d.count ? UInt32(u16(d, o)) | UInt32(u16(d, o + 2)) << 16 : 0
    }
    func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
    func put16(_ d: inout [UInt8], _ o: Int, _ v: UInt16) {
        for (k, byte) in le16(v).enumerated() where o + k < d.count { d[o + k] = byte }
    }
    func put32(_ d: inout [UInt8], _ o: Int, _ v: UInt32) {
        for (k, byte) in le32(v).enumerated() where o + k < d.count { d[o + k] = byte }
    }
}
