#!/usr/bin/env python3
"""Export a NeMo cache-aware streaming FastConformer model into a model folder the engine reads.

    python models/export_nemo.py --nemo my_model.nemo --out DIR [--lookahead 1040] [--decoder rnnt] [--opset 17]
    python models/export_nemo.py --pretrained nvidia/stt_en_fastconformer_hybrid_large_streaming_multi --out DIR
    python models/export_nemo.py --nemo my_model.nemo --out DIR --layout sherpa [--int8]

With --layout nemo (the default) the folder receives
    encoder-<name>.onnx, decoder_joint-<name>.onnx   (--decoder rnnt, the default)
    ctc-<name>.onnx                                   (--decoder ctc: one graph, encoder + CTC head)
    tokens.txt                                        `piece id` per line in id order, `<blk> V` last
    model.json                                        look-ahead, cache support, decoder type, ...
With --layout sherpa it receives sherpa-onnx's layout instead (made as sherpa-onnx's NeMo recipe makes it):
    encoder.onnx (with sherpa-onnx's streaming settings in its metadata), decoder.onnx, joiner.onnx, tokens.txt,
    model.json (read by stt, ignored by sherpa-onnx), and with --int8 also encoder.int8.onnx, decoder.int8.onnx,
    joiner.int8.onnx (onnxruntime's quantize_dynamic, MatMul weights, QUInt8, as sherpa-onnx publishes them).

The encoder is always exported with cache support (its attention and convolution caches are inputs and
outputs of the graph). An encoder exported without it cannot be streamed chunk by chunk: every chunk would
be encoded without its left context, which turns speech into garbage such as "sh sh sh". This script refuses
to write such an export, and the engine refuses to load one.

Look-ahead (--lookahead, milliseconds) selects the attention context [70, R] baked into the export:
0 -> [70,0], 80 -> [70,1], 480 -> [70,6], 1040 -> [70,13] (one encoder frame is 80 ms). The model must have
been trained with that context (see att_context_size in its config).

A .nemo is restored with the class its config names. When that fails (for example a config whose `target` names
the SentencePiece class of a character model), the class is chosen from the config instead: `labels` -> the
character classes, `tokenizer` -> the BPE classes (hybrid, RNN-T or CTC after the decoders it has); --model-class
forces one. NeMo's own messages go to OUT/export.log (--verbose shows them, and a failure's full traceback).
"""

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile

LOOKAHEAD_MS = {0: 0, 80: 1, 480: 6, 1040: 13}
FRAME_MS = 80  # 10 ms mel hop x subsampling 8
LOG_NAME = "export.log"


class ExportError(Exception):
    """A failure this script explains in one line (what is wrong and what to do)."""


# --------------------------------------------------------------------------------------------------
# helpers shared with make_fixtures.py
# --------------------------------------------------------------------------------------------------

def write_json_flat(path, obj):
    """JSON with one top-level key per line."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(" %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in obj.items()) + "\n}\n")


def model_vocabulary(model):
    """Token pieces in id order, blank excluded: the tokenizer's pieces for BPE models, the labels otherwise."""
    tok = getattr(model, "tokenizer", None)
    if tok is not None:
        pieces = [tok.ids_to_tokens([i])[0] for i in range(tok.vocab_size)]
    else:
        pieces = list(model.joint.vocabulary if hasattr(model, "joint") else model.decoder.vocabulary)
    return pieces


def write_tokens(path, pieces):
    """tokens.txt: `piece id` per line in id order, last line `<blk> V`; a space is written as U+2581."""
    with open(path, "w", encoding="utf-8") as f:
        for i, piece in enumerate(pieces):
            piece = piece.replace(" ", "\u2581")
            if not piece or any(c.isspace() for c in piece):
                raise ExportError("token %d (%r) cannot be written to tokens.txt" % (i, piece))
            f.write("%s %d\n" % (piece, i))
        f.write("<blk> %d\n" % len(pieces))


def reset_positional_table(model):
    """Restores the relative positional table to its configured size: forward passes on long inputs enlarge
    it, and the exporter writes whatever size it has as a Constant."""
    enc = model.encoder
    max_len = int(model.cfg.encoder.get("pos_emb_max_len", 5000))
    if hasattr(enc.pos_enc, "pe"):
        del enc.pos_enc.pe
    enc.set_max_audio_length(max_len)


def onnx_inputs(path):
    import onnx
    return [i.name for i in onnx.load(path, load_external_data=False).graph.input]


def preprocessor_facts(model):
    p = model.cfg.preprocessor
    keys = ("sample_rate", "features", "n_fft", "window_size", "window_stride", "window", "normalize", "pad_to")
    return {k: (p.get(k) if not hasattr(p.get(k), "items") else dict(p.get(k))) for k in keys if k in p}


def export_model_folder(model, out_dir, name, att_context, decoder_type="rnnt", opset=17, cache_support=True,
                        source=None):
    """Exports `model` (eval mode) with NeMo's exporter into `out_dir`; returns the written ONNX file names."""
    import torch
    if decoder_type not in ("rnnt", "ctc"):
        raise ExportError("decoder must be rnnt or ctc")
    is_hybrid = hasattr(model, "ctc_decoder")
    is_ctc = not hasattr(model, "joint")
    if decoder_type == "ctc" and not (is_hybrid or is_ctc):
        raise ExportError("--decoder ctc needs a hybrid RNN-T/CTC or a CTC model; this one is RNN-T only")
    if decoder_type == "rnnt" and is_ctc:
        raise ExportError("this is a CTC model (no RNN-T joint): export it with --decoder ctc")
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.endswith(".onnx"):
            os.remove(os.path.join(out_dir, f))
    model.eval()
    if is_hybrid:
        model.set_export_config({"decoder_type": decoder_type})
    # NeMo evaluates bool(value): the string 'True' enables it, a real False disables it
    model.set_export_config({"cache_support": "True" if cache_support else False})
    if bool(model.encoder.export_cache_support) != bool(cache_support):
        raise ExportError("could not set cache support on the encoder")
    model.encoder.set_default_att_context_size(list(att_context))
    reset_positional_table(model)
    torch.manual_seed(0)  # the exporter traces with random example inputs
    with tempfile.TemporaryDirectory() as tmp:
        model.export(os.path.join(tmp, name + ".onnx"), onnx_opset_version=opset)
        written = sorted(os.listdir(tmp))
        if decoder_type == "rnnt":
            files = {"encoder": "encoder-%s.onnx" % name, "decoder_joint": "decoder_joint-%s.onnx" % name}
        else:
            files = {"ctc": "ctc-%s.onnx" % name}
        produced = {"encoder-%s.onnx" % name: "encoder", "decoder_joint-%s.onnx" % name: "decoder_joint",
                    "%s.onnx" % name: "ctc"}
        if sorted(produced[f] for f in written if f in produced) != sorted(files):
            raise ExportError("NeMo's exporter wrote unexpected files: %s" % written)
        graph = os.path.join(tmp, [f for f in written if produced.get(f) in ("encoder", "ctc")][0])
        has_cache = "cache_last_channel" in onnx_inputs(graph)
        if has_cache != bool(cache_support):
            raise ExportError("the exported encoder %s cache inputs" % ("lacks" if cache_support else "has"))
        for f in written:
            if f in produced:
                shutil.move(os.path.join(tmp, f), os.path.join(out_dir, files[produced[f]]))
    if is_hybrid:
        model.set_export_config({"decoder_type": "rnnt"})
    write_tokens(os.path.join(out_dir, "tokens.txt"), model_vocabulary(model))
    write_model_json(model, out_dir, att_context, decoder_type, opset, cache_support, files, source)
    return files


def write_model_json(model, out_dir, att_context, decoder_type, opset, cache_support, files, source=None,
                     layout=None):
    """model.json: what the ONNX files cannot tell the engine (trained look-aheads, max symbols, ...)."""
    greedy = model.cfg.get("decoding", {}).get("greedy", {}) if decoder_type == "rnnt" else {}
    meta = {
        "att_context_sizes": [list(c) for c in model.encoder.att_context_size_all],
        "export_att_context": list(att_context),
        "cache_support": bool(cache_support),
        "decoder_type": decoder_type,
        "max_symbols": int(greedy.get("max_symbols", 10) or 10),
        "sample_rate": int(model.cfg.get("sample_rate", 16000)),
        "opset": opset,
        "files": files,
        "preprocessor": preprocessor_facts(model),
    }
    if layout:
        meta["layout"] = layout
    if source:
        meta["source"] = source
    write_json_flat(os.path.join(out_dir, "model.json"), meta)


def resolve_att_context(model, lookahead_ms):
    """[left, R] for a look-ahead in ms, checked against the contexts the model was trained with."""
    if lookahead_ms % FRAME_MS:
        raise ExportError("look-ahead must be a multiple of %d ms" % FRAME_MS)
    r = lookahead_ms // FRAME_MS
    trained = [list(c) for c in model.encoder.att_context_size_all]
    match = [c for c in trained if c[1] == r]
    if not match:
        raise ExportError("the model was not trained for a %d ms look-ahead; trained contexts: %s (ms: %s)"
                         % (lookahead_ms, trained, [c[1] * FRAME_MS for c in trained]))
    return match[0]


def check_streaming_model(model):
    from nemo.collections.asr.parts.mixins.streaming import StreamingEncoder
    enc = model.encoder
    if not isinstance(enc, StreamingEncoder) or getattr(enc, "att_context_style", None) != "chunked_limited":
        raise ExportError("this is not a cache-aware streaming model (encoder %s, att_context_style %s)"
                         % (type(enc).__name__, getattr(enc, "att_context_style", None)))
    if getattr(getattr(model, "joint", None), "num_extra_outputs", 0):
        raise ExportError("TDT / multi-blank joints are not supported")


# --------------------------------------------------------------------------------------------------
# sherpa-onnx's layout (also used by make_fixtures.py for tiny/sherpa and small/sherpa)
# --------------------------------------------------------------------------------------------------

SHERPA_FILES = ("encoder", "decoder", "joiner")
# what sherpa-onnx's recipe writes as model_type for these hybrid models, whatever their tokenizer
SHERPA_MODEL_TYPE = "EncDecHybridRNNTCTCBPEModel"


def export_sherpa_folder(model, folder, att_context, url, opset=None):
    """The folder sherpa-onnx publishes for a NeMo streaming hybrid model, made the way its recipe makes it
    (scripts/nemo/fast-conformer-hybrid-transducer-ctc/export-onnx-transducer.py in k2-fsa/sherpa-onnx): NeMo's
    exporter run on the encoder (cache support on), the prediction network and the joint one by one, tokens.txt
    as `piece id` lines with `<blk> V` last (the vocabulary as NeMo holds it, a character model's space as a
    space), and the encoder's streaming settings in its metadata_props. Returns that metadata."""
    import random

    import numpy as np
    import onnx
    import torch
    os.makedirs(folder, exist_ok=True)
    model.eval()
    model.encoder.set_default_att_context_size(list(att_context))
    reset_positional_table(model)
    cfg = model.encoder.streaming_cfg

    def second(v):
        return v[1] if isinstance(v, (list, tuple)) else v
    chunk, pre_cache = int(second(cfg.chunk_size)), int(second(cfg.pre_encode_cache_size))
    labels = list(model.joint.vocabulary)
    with open(os.path.join(folder, "tokens.txt"), "w", encoding="utf-8") as f:
        for i, piece in enumerate(labels):
            f.write("%s %d\n" % (piece, i))
        f.write("<blk> %d\n" % len(labels))
    model.set_export_config({"decoder_type": "rnnt", "cache_support": True})
    # the exporter traces with random example inputs
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    kwargs = {} if opset is None else {"onnx_opset_version": opset}
    with torch.no_grad():
        for part, module in zip(SHERPA_FILES, (model.encoder, model.decoder, model.joint)):
            module.export(os.path.join(folder, part + ".onnx"), **kwargs)
    path = os.path.join(folder, "encoder.onnx")
    if "cache_last_channel" not in onnx_inputs(path):
        raise ExportError("the exported encoder lacks the cache inputs")
    meta = {
        "vocab_size": model.decoder.vocab_size, "window_size": chunk + pre_cache, "chunk_shift": chunk,
        "normalize_type": "None",
        "cache_last_channel_dim1": len(model.encoder.layers),
        "cache_last_channel_dim2": cfg.last_channel_cache_size,
        "cache_last_channel_dim3": model.encoder.d_model,
        "cache_last_time_dim1": len(model.encoder.layers),
        "cache_last_time_dim2": model.encoder.d_model,
        "cache_last_time_dim3": model.encoder.conv_context_size[0],
        "pred_rnn_layers": model.decoder.pred_rnn_layers, "pred_hidden": model.decoder.pred_hidden,
        "subsampling_factor": int(model.encoder.subsampling_factor), "model_type": SHERPA_MODEL_TYPE,
        "version": "1", "model_author": "NeMo", "url": url,
        "comment": "Only the transducer branch is exported",
    }
    m = onnx.load(path)
    del m.metadata_props[:]
    for key, value in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(m, path)
    return meta


def quantize_sherpa_folder(src, dst):
    """sherpa-onnx's int8 files: onnxruntime's dynamic quantization of each graph (8-bit unsigned weights,
    activations quantized at run time), MatMul weights only, written as <part>.int8.onnx into `dst` (with
    tokens.txt when `dst` is another folder)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    os.makedirs(dst, exist_ok=True)
    for part in SHERPA_FILES:
        quantize_dynamic(model_input=os.path.join(src, part + ".onnx"),
                         model_output=os.path.join(dst, part + ".int8.onnx"),
                         op_types_to_quantize=["MatMul"], weight_type=QuantType.QUInt8)
    if os.path.abspath(src) != os.path.abspath(dst):
        shutil.copy(os.path.join(src, "tokens.txt"), os.path.join(dst, "tokens.txt"))


# --------------------------------------------------------------------------------------------------
# restoring a checkpoint
# --------------------------------------------------------------------------------------------------

# (uses a tokenizer, has an RNN-T joint, has an auxiliary CTC head) -> class in nemo.collections.asr.models
MODEL_CLASSES = {
    (False, True, True): "EncDecHybridRNNTCTCModel",
    (True, True, True): "EncDecHybridRNNTCTCBPEModel",
    (False, True, False): "EncDecRNNTModel",
    (True, True, False): "EncDecRNNTBPEModel",
    (False, False, False): "EncDecCTCModel",
    (True, False, False): "EncDecCTCModelBPE",
}


def class_from_config(conf):
    """The concrete model class a checkpoint's config describes: `tokenizer` -> a SentencePiece (BPE) class,
    `labels` -> a character class; hybrid, RNN-T or CTC after the decoders it configures. None if unclear."""
    tokenizer = conf.get("tokenizer") is not None
    labels = bool(conf.get("labels"))
    if tokenizer == labels:
        return None
    rnnt = conf.get("joint") is not None
    hybrid = rnnt and conf.get("aux_ctc") is not None
    return MODEL_CLASSES[(tokenizer, rnnt, hybrid)]


def restore_nemo(path, model_class=None):
    """Restores a .nemo on the CPU; returns (model, note). With `model_class` that class is used; otherwise the
    class the config's `target` names, and when that fails the class chosen from the config (class_from_config)."""
    from omegaconf import open_dict
    from nemo.collections.asr import models as asr_models
    if not os.path.isfile(path):
        raise ExportError("%s: no such file" % path)

    def restore_as(name, conf):
        cls = getattr(asr_models, name)
        with open_dict(conf):
            conf.target = "%s.%s" % (cls.__module__, cls.__qualname__)
        return cls.restore_from(path, map_location="cpu", override_config_path=conf)

    try:
        conf = asr_models.ASRModel.restore_from(path, map_location="cpu", return_config=True)
    except Exception as e:
        raise ExportError("%s is not a readable .nemo checkpoint (%s)" % (path, first_line(e))) from e
    named = str(conf.get("target", "?")).split(".")[-1]
    chosen = class_from_config(conf)
    if model_class:
        try:
            return restore_as(model_class, conf), "restored as %s (--model-class)" % model_class
        except Exception as e:
            hint = ("; the config suggests --model-class %s" % chosen) if chosen and chosen != model_class else ""
            raise ExportError("NeMo could not restore %s as %s (%s)%s" % (path, model_class, first_line(e), hint)) from e
    try:
        return asr_models.ASRModel.restore_from(path, map_location="cpu"), None
    except Exception as e:
        first = e
    if chosen is None or named == chosen:
        raise ExportError("NeMo could not restore %s as %s (%s); try --model-class with one of: %s"
                          % (path, named, first_line(first), ", ".join(sorted(set(MODEL_CLASSES.values()))))) \
            from first
    try:
        model = restore_as(chosen, conf)
    except Exception as e:
        raise ExportError("NeMo could not restore %s as %s (%s) nor as %s (%s); try --model-class"
                          % (path, named, first_line(first), chosen, first_line(e))) from e
    kind = "a SentencePiece tokenizer" if conf.get("tokenizer") is not None else "character labels, no tokenizer"
    return model, ("the config names %s, which NeMo could not restore; the config has %s: restored as %s"
                   % (named, kind, chosen))


def first_line(error):
    lines = [x.strip() for x in str(error).splitlines() if x.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


@contextlib.contextmanager
def quiet(log_path, verbose):
    """Sends everything written to stdout and stderr (NeMo's config dumps and logging, the ONNX exporter's
    warnings, C-level output included) to `log_path`; with `verbose`, leaves them on the terminal."""
    if verbose:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (log,) + saved:
            os.close(fd)


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--nemo", help="a .nemo checkpoint")
    src.add_argument("--pretrained", help="a pretrained model name, e.g. "
                     "nvidia/stt_en_fastconformer_hybrid_large_streaming_multi (downloads it)")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--lookahead", type=int, default=1040, choices=sorted(LOOKAHEAD_MS),
                   help="look-ahead in ms (default 1040 = [70,13])")
    p.add_argument("--decoder", default="rnnt", choices=["rnnt", "ctc"])
    p.add_argument("--layout", default="nemo", choices=["nemo", "sherpa"],
                   help="nemo: NeMo's export (encoder-NAME.onnx, decoder_joint-NAME.onnx); sherpa: sherpa-onnx's "
                        "(encoder.onnx with its metadata, decoder.onnx, joiner.onnx)")
    p.add_argument("--int8", action="store_true",
                   help="with --layout sherpa: also write encoder/decoder/joiner.int8.onnx (quantize_dynamic, QUInt8)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--name", help="file name stem for --layout nemo (default: from the checkpoint or model name)")
    p.add_argument("--model-class", choices=sorted(set(MODEL_CLASSES.values())),
                   help="restore the .nemo as this class of nemo.collections.asr.models instead of the one its "
                        "config names")
    p.add_argument("--verbose", action="store_true",
                   help="show NeMo's messages and, on failure, the full traceback")
    args = p.parse_args(argv)
    if args.int8 and args.layout != "sherpa":
        p.error("--int8 writes sherpa-onnx's *.int8.onnx files; use it with --layout sherpa")
    if args.layout == "sherpa" and args.decoder != "rnnt":
        p.error("sherpa-onnx's layout holds the transducer (RNN-T) only; use --layout nemo for --decoder ctc")
    if args.model_class and not args.nemo:
        p.error("--model-class applies to --nemo checkpoints")
    return args


def export(args):
    """Restores, checks and exports; returns the lines to print."""
    import logging as pylog
    import torch
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    from nemo.utils import logging as nemo_logging
    nemo_logging.setLevel(pylog.INFO if args.verbose else pylog.WARNING)
    from nemo.collections.asr.models import ASRModel
    notes = []
    if args.nemo:
        model, note = restore_nemo(args.nemo, args.model_class)
        if note:
            notes.append(note)
        source = os.path.basename(args.nemo)
        name = args.name or os.path.splitext(os.path.basename(args.nemo))[0]
    else:
        try:
            model = ASRModel.from_pretrained(args.pretrained, map_location="cpu")
        except Exception as e:
            raise ExportError("NeMo could not load the pretrained model %s (%s); check the name and the network"
                              % (args.pretrained, first_line(e))) from e
        source = args.pretrained
        name = args.name or args.pretrained.split("/")[-1]
    model.eval()
    check_streaming_model(model)
    att = resolve_att_context(model, args.lookahead)
    try:
        if args.layout == "nemo":
            files = list(export_model_folder(model, args.out, name, att, decoder_type=args.decoder,
                                             opset=args.opset, cache_support=True, source=source).values())
        else:
            for f in os.listdir(args.out):
                if f.endswith(".onnx"):
                    os.remove(os.path.join(args.out, f))
            export_sherpa_folder(model, args.out, att, url=source, opset=args.opset)
            files = [p + ".onnx" for p in SHERPA_FILES]
            if args.int8:
                quantize_sherpa_folder(args.out, args.out)
                files += [p + ".int8.onnx" for p in SHERPA_FILES]
            write_model_json(model, args.out, att, "rnnt", args.opset, True,
                             {p: p + ".onnx" for p in SHERPA_FILES}, source=source, layout="sherpa-onnx")
    except ExportError:
        raise
    except Exception as e:
        raise ExportError("NeMo's exporter failed (%s)" % first_line(e)) from e
    return notes, files, att


def main(argv=None):
    args = parse_args(argv)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        print("export_nemo.py: error: cannot create %s (%s)" % (args.out, e.strerror), file=sys.stderr)
        return 1
    log_path = os.path.join(args.out, LOG_NAME)
    if os.path.exists(log_path):
        os.remove(log_path)
    try:
        with quiet(log_path, args.verbose):
            notes, files, att = export(args)
    except Exception as e:
        if args.verbose:
            raise
        hint = "" if isinstance(e, ExportError) else " (NeMo failed unexpectedly)"
        print("export_nemo.py: error: %s%s; NeMo's messages are in %s, --verbose shows the traceback"
              % (e if isinstance(e, ExportError) else first_line(e), hint, log_path), file=sys.stderr)
        return 1
    for note in notes:
        print("note: " + note)
    out = shlex.quote(args.out)
    print("wrote %s: %s, tokens.txt, model.json (att_context %s, cache support on%s)"
          % (args.out, ", ".join(files), att, "" if args.verbose else "; NeMo's messages in " + LOG_NAME))
    print("try:   stt transcribe --model %s FILE.wav" % out)
    if args.int8:
        print("int8:  stt transcribe --model %s --precision int8 FILE.wav" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
