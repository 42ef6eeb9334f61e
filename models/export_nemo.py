#!/usr/bin/env python3
"""Export a NeMo cache-aware streaming FastConformer model into a model folder the engine reads.

    python models/export_nemo.py --nemo my_model.nemo --out DIR [--lookahead 1040] [--decoder rnnt] [--opset 17]
    python models/export_nemo.py --pretrained nvidia/stt_en_fastconformer_hybrid_large_streaming_multi --out DIR

The folder receives
    encoder-<name>.onnx, decoder_joint-<name>.onnx   (--decoder rnnt, the default)
    ctc-<name>.onnx                                   (--decoder ctc, hybrid models only: one graph)
    tokens.txt                                        `piece id` per line in id order, `<blk> V` last
    model.json                                        look-ahead, cache support, decoder type, ...

The encoder is always exported with cache support (its attention and convolution caches are inputs and
outputs of the graph). An encoder exported without it cannot be streamed chunk by chunk: every chunk would
be encoded without its left context, which turns speech into garbage such as "sh sh sh". This script refuses
to write such an export, and the engine refuses to load one.

Look-ahead (--lookahead, milliseconds) selects the attention context [70, R] baked into the export:
0 -> [70,0], 80 -> [70,1], 480 -> [70,6], 1040 -> [70,13] (one encoder frame is 80 ms). The model must have
been trained with that context (see att_context_size in its config).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

LOOKAHEAD_MS = {0: 0, 80: 1, 480: 6, 1040: 13}
FRAME_MS = 80  # 10 ms mel hop x subsampling 8


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
                raise ValueError("token %d (%r) cannot be written to tokens.txt" % (i, piece))
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
        raise ValueError("decoder must be rnnt or ctc")
    is_hybrid = hasattr(model, "ctc_decoder")
    if decoder_type == "ctc" and not is_hybrid:
        raise ValueError("--decoder ctc needs a hybrid RNN-T/CTC model")
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
        raise RuntimeError("could not set cache support on the encoder")
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
            raise RuntimeError("unexpected export files: %s" % written)
        graph = os.path.join(tmp, [f for f in written if produced.get(f) in ("encoder", "ctc")][0])
        has_cache = "cache_last_channel" in onnx_inputs(graph)
        if has_cache != bool(cache_support):
            raise RuntimeError("the exported encoder %s cache inputs" % ("lacks" if cache_support else "has"))
        for f in written:
            if f in produced:
                shutil.move(os.path.join(tmp, f), os.path.join(out_dir, files[produced[f]]))
    if is_hybrid:
        model.set_export_config({"decoder_type": "rnnt"})
    write_tokens(os.path.join(out_dir, "tokens.txt"), model_vocabulary(model))
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
    if source:
        meta["source"] = source
    write_json_flat(os.path.join(out_dir, "model.json"), meta)
    return files


def resolve_att_context(model, lookahead_ms):
    """[left, R] for a look-ahead in ms, checked against the contexts the model was trained with."""
    if lookahead_ms % FRAME_MS:
        raise ValueError("look-ahead must be a multiple of %d ms" % FRAME_MS)
    r = lookahead_ms // FRAME_MS
    trained = [list(c) for c in model.encoder.att_context_size_all]
    match = [c for c in trained if c[1] == r]
    if not match:
        raise ValueError("the model was not trained for a %d ms look-ahead; trained contexts: %s (ms: %s)"
                         % (lookahead_ms, trained, [c[1] * FRAME_MS for c in trained]))
    return match[0]


def check_streaming_model(model):
    from nemo.collections.asr.parts.mixins.streaming import StreamingEncoder
    enc = model.encoder
    if not isinstance(enc, StreamingEncoder) or getattr(enc, "att_context_style", None) != "chunked_limited":
        raise ValueError("this is not a cache-aware streaming model (encoder %s, att_context_style %s)"
                         % (type(enc).__name__, getattr(enc, "att_context_style", None)))
    if getattr(model.joint, "num_extra_outputs", 0):
        raise ValueError("TDT / multi-blank joints are not supported")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--nemo", help="a .nemo checkpoint")
    src.add_argument("--pretrained", help="a pretrained model name, e.g. "
                     "nvidia/stt_en_fastconformer_hybrid_large_streaming_multi (downloads it)")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--lookahead", type=int, default=1040, choices=sorted(LOOKAHEAD_MS),
                   help="look-ahead in ms (default 1040 = [70,13])")
    p.add_argument("--decoder", default="rnnt", choices=["rnnt", "ctc"])
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--name", help="file name stem (default: from the checkpoint or model name)")
    args = p.parse_args()

    import logging as pylog
    import torch
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    from nemo.utils import logging as nemo_logging
    nemo_logging.setLevel(pylog.WARNING)
    from nemo.collections.asr.models import ASRModel
    if args.nemo:
        model = ASRModel.restore_from(args.nemo, map_location="cpu")
        source = os.path.basename(args.nemo)
        name = args.name or os.path.splitext(os.path.basename(args.nemo))[0]
    else:
        model = ASRModel.from_pretrained(args.pretrained, map_location="cpu")
        source = args.pretrained
        name = args.name or args.pretrained.split("/")[-1]
    model.eval()
    check_streaming_model(model)
    att = resolve_att_context(model, args.lookahead)
    files = export_model_folder(model, args.out, name, att, decoder_type=args.decoder, opset=args.opset,
                                cache_support=True, source=source)
    print("wrote %s: %s, tokens.txt, model.json (att_context %s, cache support on)"
          % (args.out, ", ".join(files.values()), att))


if __name__ == "__main__":
    sys.exit(main())
