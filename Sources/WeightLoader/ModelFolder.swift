import Foundation

/// The optional `model.json` our exporter writes beside the ONNX files: what the weights cannot tell.
package struct ModelMetadata: Codable, Sendable, Equatable {
    /// Trained look-ahead settings as [left, right] in encoder frames.
    package var attContextSizes: [[Int]]?
    /// The [left, right] the encoder export was made with.
    package var exportAttContext: [Int]?
    package var cacheSupport: Bool?
    package var decoderType: String?
    package var maxSymbols: Int?
    package var sampleRate: Int?
    package var opset: Int?

    enum CodingKeys: String, CodingKey {
        case attContextSizes = "att_context_sizes", exportAttContext = "export_att_context"
        case cacheSupport = "cache_support", decoderType = "decoder_type", maxSymbols = "max_symbols"
        case sampleRate = "sample_rate", opset
    }

    package init() {}

    package static func read(_ path: String) throws(LoaderError) -> ModelMetadata {
        try decode(readSmallFile(path, limit: limit), name: path)
    }

    /// The most bytes a model.json may have.
    package static let limit = 1 << 20

    /// Decodes and checks the bytes of a model.json; `path` stands for them in errors.
    package static func decode(_ data: Data, name path: String) throws(LoaderError) -> ModelMetadata {
        // swift-foundation's JSONDecoder traps (seen with Swift 6.3.1 on Linux) on text that ends just past its
        // 512-level nesting limit; a model.json nests 3 levels, so deeper text is refused before it gets there.
        let depth = nestingDepth(data)
        guard depth <= maxNesting else {
            throw .badMetadata(path, "not a valid model.json (arrays and objects nest \(depth) deep, at most "
                + "\(maxNesting) levels are read)")
        }
        let metadata: ModelMetadata
        do {
            metadata = try JSONDecoder().decode(ModelMetadata.self, from: data)
        } catch {
            throw .badMetadata(path, "not a valid model.json (\(Self.reason(error)))")
        }
        try metadata.validate(path)
        return metadata
    }

    static let maxNesting = 32

    /// The deepest nesting of arrays and objects in JSON text, brackets inside strings not counted.
    static func nestingDepth(_ data: Data) -> Int {
        var depth = 0, deepest = 0
        var inString = false, escaped = false
        for byte in data {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth = max(0, depth - 1)
            default: break
            }
        }
        return deepest
    }

    /// Ranges a real model fits in; anything outside would only make the engine allocate or loop without end.
    func validate(_ path: String) throws(LoaderError) {
        func context(_ pair: [Int], _ field: String) throws(LoaderError) {
            guard pair.count == 2, (1...1024).contains(pair[0]), (0...256).contains(pair[1]) else {
                throw .badMetadata(path, "\(field) \(pair) is not [left, right] with left 1…1024 and right 0…256 encoder frames")
            }
        }
        if let sizes = attContextSizes {
            guard (1...16).contains(sizes.count) else {
                throw .badMetadata(path, "att_context_sizes lists \(sizes.count) settings, expected 1…16")
            }
            for pair in sizes { try context(pair, "att_context_sizes entry") }
            guard Set(sizes.map { $0[0] }).count == 1 else {
                throw .badMetadata(path, "att_context_sizes \(sizes) mix left contexts; one model has one attention cache")
            }
        }
        if let pair = exportAttContext { try context(pair, "export_att_context") }
        if let symbols = maxSymbols, !(1...100).contains(symbols) {
            throw .badMetadata(path, "max_symbols \(symbols) is outside 1…100 (NeMo requires at least 1)")
        }
        if let rate = sampleRate, rate != 16_000 {
            throw .badMetadata(path, "sample_rate \(rate): the engine's frontend is NeMo's 16 kHz one")
        }
    }

    /// DecodingError's own text runs over several lines; the first sentence says enough.
    private static func reason(_ error: any Error) -> String {
        if let decoding = error as? DecodingError {
            switch decoding {
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c):
                let field = c.codingPath.map(\.stringValue).joined(separator: ".")
                return (field.isEmpty ? "" : "at \(field): ") + c.debugDescription
            @unknown default: break
            }
        }
        return "\(error)"
    }
}

/// Locates the files of a model folder in one of the two layouts the engine reads:
/// - NeMo's own export: `encoder-NAME.onnx` (or `encoder.onnx`) and `decoder_joint-NAME.onnx`, or a single CTC graph,
///   plus `tokens.txt` and `model.json` when present;
/// - sherpa-onnx's: `encoder.onnx`, `decoder.onnx`, `joiner.onnx` and `tokens.txt`, or the same with `.int8.onnx`.
package struct ModelFolder: Sendable, Equatable {
    package enum Layout: String, Sendable, Equatable {
        case nemo = "NeMo export"
        case sherpa = "sherpa-onnx"
    }

    /// The precision of a folder's files: sherpa-onnx's `*.int8.onnx` files are int8, everything else fp32.
    package enum Precision: String, Sendable, Equatable, CaseIterable {
        case fp32, int8
    }

    /// What `stt` reads, for messages about a path that is none of it.
    package static let layoutsAccepted = "a model folder: NeMo's export (encoder-*.onnx + decoder_joint-*.onnx, or "
        + "ctc-*.onnx; tokens.txt) or sherpa-onnx's (encoder.onnx, decoder.onnx, joiner.onnx, tokens.txt; or "
        + "encoder.int8.onnx, decoder.int8.onnx, joiner.int8.onnx)"

    package let directory: String
    package let layout: Layout
    /// The precision of the files chosen (fp32 unless asked, where a folder holds both).
    package let precision: Precision
    /// Said when a precision was chosen without being asked for because the folder has no other (int8 only).
    package let precisionNote: String?
    package let encoder: String
    /// NeMo's `decoder_joint`, or sherpa-onnx's `decoder` (the prediction network alone, with `joiner` beside it).
    package let decoderJoint: String?
    /// sherpa-onnx's joint network.
    package let joiner: String?
    package let tokens: String?
    package let metadata: String?

    /// Whether `path` is a sherpa-onnx folder with int8 files (`encoder*.int8.onnx` beside a joiner); false for
    /// anything else, unreadable folders included (loading them says what is wrong).
    package static func holdsInt8Files(_ path: String) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return false }
        return names.contains { $0.hasPrefix("joiner") && $0.lowercased().hasSuffix(".onnx") }
            && names.contains { $0.hasPrefix("encoder") && $0.lowercased().hasSuffix(".int8.onnx") }
    }

    package init(_ path: String, precision wanted: Precision? = nil) throws(LoaderError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .fileNotFound(path)
        }
        guard isDirectory.boolValue else {
            throw .modelFolder(path, "a single file; expected \(Self.layoutsAccepted)")
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path).sorted() } catch {
            throw .unreadable(path, "cannot list the folder")
        }
        func inside(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
        let onnx = names.filter { $0.lowercased().hasSuffix(".onnx") }
        directory = path
        tokens = names.first { $0.lowercased() == "tokens.txt" }.map(inside)
        metadata = names.first { $0.lowercased() == "model.json" }.map(inside)

        if onnx.contains(where: { $0.hasPrefix("joiner") }) {
            layout = .sherpa
            func precisionOf(_ name: String) -> Precision { name.lowercased().hasSuffix(".int8.onnx") ? .int8 : .fp32 }
            let encoders = onnx.filter { $0.hasPrefix("encoder") }
            let available = Set(encoders.map(precisionOf))
            let chosen: Precision
            if let wanted {
                guard available.contains(wanted) else {
                    throw .modelFolder(path, "no \(wanted.rawValue) files in this sherpa-onnx folder (it has "
                        + (encoders.isEmpty ? "no encoder" : available.map(\.rawValue).sorted().joined(separator: ", ")
                            + ": \(onnx.joined(separator: ", "))") + ")")
                }
                chosen = wanted
            } else {
                chosen = available.contains(.fp32) || available.isEmpty ? .fp32 : .int8
            }
            precisionNote = wanted == nil && chosen == .int8
                ? "the folder has only int8 files (\(encoders.joined(separator: ", ")), …): loaded those, dequantized to float32"
                : nil
            func one(_ role: String) throws(LoaderError) -> String {
                let found = onnx.filter { $0.hasPrefix(role) && !$0.hasPrefix("decoder_joint") && precisionOf($0) == chosen }
                guard found.count == 1 else {
                    throw .modelFolder(path, found.isEmpty
                        ? "a sherpa-onnx folder (it has a joiner) without a \(chosen.rawValue) \(role) .onnx; expected \(Self.layoutsAccepted)"
                        : "several \(chosen.rawValue) \(role) files (\(found.joined(separator: ", "))); keep one per folder")
                }
                return inside(found[0])
            }
            precision = chosen
            encoder = try one("encoder")
            decoderJoint = try one("decoder")
            joiner = try one("joiner")
            return
        }

        layout = .nemo
        precision = .fp32
        precisionNote = nil
        joiner = nil
        let encoders = onnx.filter { $0.hasPrefix("encoder") || $0.hasPrefix("ctc") || $0 == "model.onnx" }
        if let wanted, wanted != .fp32 {
            throw .modelFolder(path, "no \(wanted.rawValue) files in this folder (it has fp32 NeMo export files: "
                + "\(onnx.isEmpty ? "none" : onnx.joined(separator: ", "))); \(wanted.rawValue) is read from sherpa-onnx's "
                + "*.\(wanted.rawValue).onnx files")
        }
        let decoders = onnx.filter { $0.hasPrefix("decoder_joint") || $0.hasPrefix("decoder-joint") }
        guard !encoders.isEmpty else {
            throw .modelFolder(path, "no encoder .onnx in the folder (found: \(onnx.isEmpty ? "no .onnx files" : onnx.joined(separator: ", "))); expected \(Self.layoutsAccepted)")
        }
        guard encoders.count == 1 else {
            throw .modelFolder(path, "several encoders (\(encoders.joined(separator: ", "))); keep one export per folder")
        }
        guard decoders.count <= 1 else {
            throw .modelFolder(path, "several decoder_joint files (\(decoders.joined(separator: ", "))); keep one per folder")
        }
        encoder = inside(encoders[0])
        decoderJoint = decoders.first.map(inside)
    }
}

/// Reads `tokens.txt`: one `piece id` per line in id order (the blank, last, included). CRLF line ends, a byte-order
/// mark and trailing spaces are read as the writer meant; a space piece (a character vocabulary's) is kept.
package enum TokenTable {
    package static func read(_ path: String) throws(LoaderError) -> [String] {
        try parse(readSmallFile(path, limit: limit), name: path)
    }

    /// The most bytes a tokens.txt may have.
    package static let limit = 64 << 20

    /// The pieces of a tokens.txt held in memory; `path` stands for it in errors.
    package static func parse(_ data: Data, name path: String) throws(LoaderError) -> [String] {
        guard var text = String(data: data, encoding: .utf8) else { throw .badMetadata(path, "tokens.txt is not UTF-8") }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        var pieces: [String] = []
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        for (number, raw) in lines.enumerated() {
            var line = Substring(raw)
            while let last = line.last, last == " " || last == "\t" { line.removeLast() }
            if line.isEmpty { continue }
            guard let space = line.lastIndex(where: { $0 == " " || $0 == "\t" }),
                  let id = Int(line[line.index(after: space)...]) else {
                throw .badMetadata(path, "line \(number + 1) is not `piece id`: \(quoted(String(line)))")
            }
            guard id == pieces.count else {
                throw .badMetadata(path, "line \(number + 1) has id \(id), expected \(pieces.count) (ids in order)")
            }
            pieces.append(String(line[..<space]))
        }
        guard !pieces.isEmpty else { throw .badMetadata(path, "tokens.txt is empty") }
        return pieces
    }
}

/// A small text file (tokens.txt, model.json), refusing anything that is not a regular file or is larger than `limit`.
func readSmallFile(_ path: String, limit: Int) throws(LoaderError) -> Data {
    var info = stat()
    guard stat(path, &info) == 0 else { throw .unreadable(path, String(cString: strerror(errno))) }
    guard info.st_mode & S_IFMT == S_IFREG else { throw .notARegularFile(path) }
    guard Int(info.st_size) <= limit else { throw .badMetadata(path, "the file is \(info.st_size) bytes, more than \(limit)") }
    guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path, "cannot open") }
    return data
}

/// A model folder loaded and checked: the encoder (or CTC graph), the decoder_joint when present (for sherpa-onnx's
/// layout, its decoder and joiner combined), and whether they fit each other.
package struct LoadedModel: Sendable {
    package let folder: ModelFolder
    package let encoder: ExportedGraph
    package let encoderDescription: EncoderDescription
    package let decoder: ExportedGraph?
    package let decoderDescription: DecoderDescription?
    /// The CTC head, for a CTC export.
    package let ctcDescription: CTCDescription?
    /// `model.json`, or for a sherpa-onnx folder what its encoder metadata implies.
    package let metadata: ModelMetadata?
    /// sherpa-onnx's encoder metadata, when the encoder carries it.
    package let sherpaMetadata: SherpaMetadata?
    /// Where the files' metadata disagrees with their tensors (the tensors are used).
    package let warnings: [String]
    package let tokens: [String]?

    package init(folder path: String, precision: ModelFolder.Precision? = nil) throws(LoaderError) {
        let folder = try ModelFolder(path, precision: precision)
        self.folder = folder
        var metadata = try folder.metadata.map { path throws(LoaderError) in try ModelMetadata.read(path) }
        encoder = try ExportedGraph(path: folder.encoder)
        (encoderDescription, ctcDescription) = try Self.describeEncoder(encoder)
        if let path = folder.decoderJoint {
            let decoder: ExportedGraph
            if let joiner = folder.joiner {
                // sherpa-onnx's layout: the prediction network and the joint in two graphs, read as one.
                decoder = try ExportedGraph(prediction: ExportedGraph(path: path), joint: ExportedGraph(path: joiner))
            } else {
                decoder = try ExportedGraph(path: path)
            }
            let description = try Self.describeDecoder(decoder)
            guard description.encoderDim == encoderDescription.dModel else {
                throw .mismatchedPair(encoder: folder.encoder, decoder: decoder.path,
                                      "the encoder emits \(encoderDescription.dModel)-wide frames, the joint takes \(description.encoderDim)")
            }
            self.decoder = decoder
            decoderDescription = description
        } else {
            decoder = nil
            decoderDescription = nil
        }
        let sherpa = SherpaMetadata(encoder.metadata)
        if sherpa.isPresent {
            sherpaMetadata = sherpa
            warnings = sherpa.warnings(encoder: encoderDescription, exportAttContext: encoder.exportAttContext,
                                       decoder: decoderDescription)
            if metadata == nil, let context = sherpa.exportAttContext(subsampling: encoderDescription.subsamplingFactor) {
                // Only consulted where the graph's attention mask could not be read.
                var implied = ModelMetadata()
                implied.exportAttContext = context
                if (try? implied.validate(folder.encoder)) != nil { metadata = implied }
            }
        } else {
            sherpaMetadata = nil
            warnings = []
        }
        self.metadata = metadata
        tokens = try folder.tokens.map { path throws(LoaderError) in try TokenTable.read(path) }
        if let tokens, let classes = decoderDescription?.classes ?? ctcDescription?.classes, tokens.count != classes {
            throw .badMetadata(folder.tokens ?? path, "tokens.txt has \(tokens.count) pieces, the model \(classes) classes")
        }
    }

    /// The checks a folder's encoder (or CTC graph) passes: the kind of graph, the architecture, the CTC head's width.
    package static func describeEncoder(_ encoder: ExportedGraph) throws(LoaderError)
        -> (EncoderDescription, CTCDescription?) {
        switch encoder.kind {
        case .encoder, .ctc: break
        case .encoderWithoutCache: throw .noCacheSupport(encoder.path)
        case .decoderJoint, .predictionNetwork, .joint:
            throw .wrongGraphKind(encoder.path, expected: "an encoder", found: encoder.kind.description)
        }
        let description = try EncoderDescription(graph: encoder, prefix: encoder.kind == .ctc ? "encoder." : "")
        guard encoder.kind == .ctc else { return (description, nil) }
        let ctc = try CTCDescription(graph: encoder)
        guard ctc.encoderDim == description.dModel else {
            throw .notFastConformer(encoder.path, "the CTC head takes \(ctc.encoderDim)-wide frames, the encoder emits \(description.dModel)")
        }
        return (description, ctc)
    }

    /// The checks a folder's decoder_joint passes on its own (the fit to the encoder is checked by the caller).
    package static func describeDecoder(_ decoder: ExportedGraph) throws(LoaderError) -> DecoderDescription {
        guard decoder.kind == .decoderJoint else {
            throw .wrongGraphKind(decoder.path, expected: "a decoder_joint export", found: decoder.kind.description)
        }
        return try DecoderDescription(graph: decoder)
    }
}
