/// Everything that can be wrong with a model file or folder. Each message is one line: what was expected,
/// what was found, and what to do about it.
public enum LoaderError: Error, Equatable, CustomStringConvertible, Sendable {
    case fileNotFound(String)
    case notAFile(String)
    case notARegularFile(String)
    case unreadable(String, String)
    case emptyFile(String)
    case truncated(String, String)
    case notONNX(String, String)
    case noCacheSupport(String)
    case notFastConformer(String, String)
    case wrongGraphKind(String, expected: String, found: String)
    case mismatchedPair(encoder: String, decoder: String, String)
    case unsupportedTensorType(String, tensor: String, type: String)
    case externalData(String, tensor: String)
    case unmappedInitializer(String, tensor: String)
    case badTensor(String, tensor: String, String)
    case modelFolder(String, String)
    case badMetadata(String, String)
    case malformedGraph(String, String)
    case shapeMismatch(String, tensor: String, found: [Int], expected: String)

    public var description: String { printable(message) }

    private var message: String {
        switch self {
        case .fileNotFound(let p): "\(p): no such file"
        case .notAFile(let p): "\(p): is a directory, expected an .onnx file"
        case .notARegularFile(let p): "\(p): not a regular file (a FIFO, socket or device); give the path of an .onnx file"
        case .unreadable(let p, let why): "\(p): cannot be read: \(why)"
        case .emptyFile(let p): "\(p): the file is empty (0 bytes), expected an ONNX model"
        case .truncated(let p, let why):
            "\(p): the ONNX file is truncated (\(why)); copy or download it again"
        case .notONNX(let p, let why): "\(p): not an ONNX model (\(why))"
        case .noCacheSupport(let p):
            "\(p): this encoder was exported without cache support (no cache_last_channel / cache_last_time inputs), "
                + "so it cannot stream; re-export with set_export_config({'cache_support': True}) "
                + "(models/export_nemo.py does this)"
        case .notFastConformer(let p, let why):
            "\(p): not a NeMo FastConformer export: \(why)"
        case .wrongGraphKind(let p, let expected, let found):
            "\(p): expected \(expected), but this file is \(found)"
        case .mismatchedPair(let e, let d, let why):
            "\(e) and \(d) do not belong together: \(why); use the encoder and decoder_joint of the same export"
        case .unsupportedTensorType(let p, let t, let type):
            "\(p): parameter \(t) is \(type); only float32 exports are supported, re-export without "
                + "quantization or half precision"
        case .externalData(let p, let t):
            "\(p): tensor \(t) is stored in an external data file, which is not supported; "
                + "re-export as a single .onnx file"
        case .unmappedInitializer(let p, let t):
            "\(p): weight \(t) is not used by any layer this loader understands; is this a FastConformer export?"
        case .badTensor(let p, let t, let why): "\(p): tensor \(t): \(why)"
        case .modelFolder(let p, let why): "\(p): \(why)"
        case .badMetadata(let p, let why): "\(p): \(why)"
        case .malformedGraph(let p, let why): "\(p): not a valid ONNX graph: \(why)"
        case .shapeMismatch(let p, let t, let found, let expected):
            "\(p): tensor \(quoted(t)) has shape \(found), the architecture needs \(expected); the file is damaged or not "
                + "from this model family"
        }
    }
}

/// An untrusted string (a name read from a file) for a message: in quotes, control and non-printable characters
/// escaped, at most 80 characters.
package func quoted(_ text: String, limit: Int = 80) -> String {
    let escaped = printable(text)
    let short = escaped.count > limit ? String(escaped.prefix(limit)) + "…" : escaped
    return "\"" + short + "\""
}

/// The message with every control or unassigned character escaped, so it stays one printable line.
package func printable(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .surrogate, .privateUse, .lineSeparator, .paragraphSeparator:
            out += scalar.escaped(asASCII: true)
        default:
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}
