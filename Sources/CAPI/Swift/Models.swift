import CSTT
import STTAudio
import STTKit

// The model half of stt.h: options, loading, information, release. Each function is documented in stt.h; the
// compiler checks every signature here against its declaration there (`@c @implementation`).

/// Most threads a model's products may use (the engine's pool takes no more).
let largestThreadCount: Int32 = 64

/// `stt_model_options_init`: defaults (see stt.h).
@c @implementation
public func stt_model_options_init(_ options: UnsafeMutablePointer<stt_model_options>?) -> stt_status {
    entry { () throws(Failure) in
        let options = try required(options, "options", "stt_model_options_init")
        options.pointee = stt_model_options(struct_size: UInt32(MemoryLayout<stt_model_options>.size), threads: 1,
                                            precision: Int32(STT_PRECISION_FP32))
    }
}

/// `stt_model_load`: loads a model folder (see stt.h).
@c @implementation
public func stt_model_load(_ folder: UnsafePointer<CChar>?, _ options: UnsafePointer<stt_model_options>?,
                           _ model: UnsafeMutablePointer<OpaquePointer?>?) -> stt_status {
    entry { () throws(Failure) in
        let function = "stt_model_load"
        let folder = try required(folder, "folder", function)
        let model = try required(model, "model", function)
        var settings = stt_model_options()
        _ = stt_model_options_init(&settings)
        if let options { settings = try readOptions(options, "stt_model_options", function) }
        guard settings.threads >= 1 && settings.threads <= largestThreadCount else {
            throw .argument(function, "threads is \(settings.threads); it must be 1 ... \(largestThreadCount)")
        }
        let precision: SpeechModel.Precision
        switch settings.precision {
        case Int32(STT_PRECISION_FP32): precision = .fp32
        case Int32(STT_PRECISION_BF16): precision = .bf16
        case Int32(STT_PRECISION_INT8): precision = .int8
        default:
            throw Failure(status: STT_ERROR_UNSUPPORTED, message: "\(function): precision \(settings.precision) is not "
                          + "available; this version has STT_PRECISION_FP32, STT_PRECISION_BF16 and STT_PRECISION_INT8")
        }
        guard let path = String(validatingCString: folder) else {
            throw .argument(function, "folder is not valid UTF-8")
        }
        do throws(LoaderError) {
            let loaded = try SpeechModel(folder: path, threads: Int(settings.threads), precision: precision)
            model.pointee = retained(ModelHandle(loaded))
        } catch {
            throw Failure(status: STT_ERROR_MODEL, message: error.description)
        }
    }
}

/// `stt_model_free` (see stt.h).
@c @implementation
public func stt_model_free(_ model: OpaquePointer?) {
    release(model)
}

/// `stt_model_get_info` (see stt.h).
@c @implementation
public func stt_model_get_info(_ model: OpaquePointer?, _ info: UnsafeMutablePointer<stt_model_info>?) -> stt_status {
    entry { () throws(Failure) in
        let function = "stt_model_get_info"
        let speech = try STTCAPI.model(model, function).model
        let info = try required(info, "info", function)
        let raw = UnsafeMutableRawPointer(info)
        let size = Int(raw.loadUnaligned(as: UInt32.self))
        let header = MemoryLayout<UInt32>.size
        guard size >= header && size <= largestStructSize else {
            throw .argument(function, "info->struct_size is \(size); set it to sizeof(stt_model_info)")
        }
        var value = stt_model_info()
        value.struct_size = UInt32(size)
        value.default_lookahead_ms = Int32(clamping: speech.defaultLookahead.milliseconds)
        let lookaheads = speech.lookaheads.sorted().prefix(16)
        value.lookahead_count = Int32(lookaheads.count)
        withUnsafeMutableBytes(of: &value.lookaheads_ms) { bytes in
            let slots = bytes.bindMemory(to: Int32.self)
            for (i, lookahead) in lookaheads.enumerated() { slots[i] = Int32(clamping: lookahead.milliseconds) }
        }
        value.has_rnnt = speech.decoders.contains(.rnnt) ? 1 : 0
        value.has_ctc = speech.decoders.contains(.ctc) ? 1 : 0
        value.threads = Int32(clamping: speech.threads)
        value.frame_ms = Int32(clamping: speech.frameMilliseconds)
        value.vocabulary_size = Int32(clamping: speech.tokens.count)
        value.sample_rate = Int32(MelFrontend.sampleRate)
        // The fields that fit the caller's struct; fields of a later header that this library does not know are 0.
        let ours = MemoryLayout<stt_model_info>.size
        withUnsafeBytes(of: &value) { bytes in
            guard let base = bytes.baseAddress else { return }
            (raw + header).copyMemory(from: base + header, byteCount: min(size, ours) - header)
        }
        if size > ours { (raw + ours).initializeMemory(as: UInt8.self, repeating: 0, count: size - ours) }
    }
}
