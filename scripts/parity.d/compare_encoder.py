"""ONNX Runtime's half of scripts/parity: feed the engine's windows to the export with ORT's own carried caches and
compare every output of every call. Prints a table; exits 1 above tolerance."""
import json
import os
import sys

import numpy as np
import onnxruntime as ort

encoder_path, folder, tolerance = sys.argv[1], sys.argv[2], float(sys.argv[3])
meta = json.load(open(os.path.join(folder, "meta.json")))
load = lambda name: np.load(os.path.join(folder, name + ".npy"))
windows = load("windows")
ours = {name: load(name) for name in ["outputs", "encoded_lengths", "cache_last_channel_next", "cache_last_time_next",
                                       "cache_last_channel_next_len"]}

options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(encoder_path, options, providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
if "outputs" not in names:
    sys.exit(f"{encoder_path}: its outputs are {names}; parity compares encoder exports (outputs + caches), not CTC graphs")
layers, d, left, conv = meta["layers"], meta["d_model"], meta["left_context"], meta["conv_cache"]
cache_channel = np.zeros((1, layers, left, d), np.float32)
cache_time = np.zeros((1, layers, d, conv), np.float32)
cache_len = np.zeros((1,), np.int64)

worst = {name: [0.0, 0.0, -1] for name in ours}  # abs, scaled, call
mismatched_integers = []
for k in range(meta["calls"]):
    feeds = {"audio_signal": windows[k][None], "length": np.array([windows.shape[2]], np.int64),
             "cache_last_channel": cache_channel, "cache_last_time": cache_time, "cache_last_channel_len": cache_len}
    result = dict(zip(names, session.run(None, feeds)))
    first = names[0]  # "outputs", or "logprobs" for a CTC graph (compared as the encoder it wraps is not possible)
    reference = {"outputs": result["outputs"][0], "encoded_lengths": result["encoded_lengths"],
                 "cache_last_channel_next": result["cache_last_channel_next"][0],
                 "cache_last_time_next": result["cache_last_time_next"][0],
                 "cache_last_channel_next_len": result["cache_last_channel_next_len"]}
    for name, ref in reference.items():
        mine = ours[name][k]
        if ref.dtype.kind == "i":
            if int(np.asarray(ref).ravel()[0]) != int(np.asarray(mine).ravel()[0]):
                mismatched_integers.append(f"call {k} {name}: ORT {int(np.asarray(ref).ravel()[0])}, ours {int(mine)}")
            continue
        frames = ref.shape[-1] if name == "outputs" else None
        mine = mine[..., :frames] if frames is not None else mine
        delta = float(np.max(np.abs(mine - ref))) if ref.size else 0.0
        scaled = delta / max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
        if scaled >= worst[name][1]:
            worst[name] = [max(worst[name][0], delta), scaled, k]
        else:
            worst[name][0] = max(worst[name][0], delta)
    cache_channel = result["cache_last_channel_next"]
    cache_time = result["cache_last_time_next"]
    cache_len = result["cache_last_channel_next_len"]

print(f"{os.path.basename(encoder_path)}: {meta['calls']} consecutive calls at att_context [{left},{meta['lookahead']}], "
      f"windows of {meta['window']} mel frames, {layers} layers × d_model {d}")
print(f"{'output':30}{'max |Δ|':>12}{'max |Δ| / max(1,|ref|)':>26}{'at call':>9}  verdict")
failed = bool(mismatched_integers)
for name in ["outputs", "cache_last_channel_next", "cache_last_time_next"]:
    absolute, scaled, call = worst[name]
    ok = scaled <= tolerance
    failed |= not ok
    print(f"{name:30}{absolute:>12.3g}{scaled:>26.3g}{call:>9}  {'ok' if ok else 'ABOVE ' + str(tolerance)}")
for name in ["encoded_lengths", "cache_last_channel_next_len"]:
    bad = [m for m in mismatched_integers if name + ":" in m]
    print(f"{name:30}{'equal at every call' if not bad else bad[0]:>47}")
if failed:
    print("PARITY FAILED", file=sys.stderr)
    for m in mismatched_integers[:5]:
        print(m, file=sys.stderr)
    sys.exit(1)
print(f"parity ok: every call within {tolerance} (scaled)")
