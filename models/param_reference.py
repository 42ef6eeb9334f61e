#!/usr/bin/env python3
"""PyTorch's view of a fixture's parameters, for the loader's tests: models/<size>/ref/params.json.

For every parameter the RNN-T export carries (encoder, decoder, joint; not the CTC head), under the module path the
engine's loader must find it at (encoder parameters relative to the encoder, decoder and joint ones prefixed), the
PyTorch shape, the sum and sum of squares in float64, and a few values at flat indices in PyTorch layout. The model
is the one the fixture was exported from: tiny is rebuilt from its seed, small restored from models/.cache/small.pt.

    .venv-nemo/bin/python models/param_reference.py tiny small
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as fixtures  # noqa: E402


def stats(tensor, seed):
    values = tensor.detach().cpu().numpy().astype(np.float32)
    flat = values.reshape(-1)
    rng = np.random.default_rng(seed)
    picks = sorted(set([0, flat.size // 2, flat.size - 1] + rng.integers(0, flat.size, 5).tolist()))
    return {"shape": list(values.shape), "sum": float(flat.astype(np.float64).sum()),
            "sum_squares": float((flat.astype(np.float64) ** 2).sum()),
            "samples": [[int(i), float(flat[i])] for i in picks]}


def write(size, out):
    if size == "small":
        model, _ = fixtures.load_or_train_small(out, retrain=False)
    else:
        model = fixtures.build_model(size)
    params = {}
    for prefix, module in (("", model.encoder), ("decoder.", model.decoder), ("joint.", model.joint)):
        for name, p in module.named_parameters():
            params[prefix + name] = stats(p, len(params))
    path = os.path.join(out, size, "ref", "params.json")
    with open(path, "w") as f:
        json.dump(params, f, indent=0, sort_keys=True)
    total = sum(int(np.prod(v["shape"])) for v in params.values())
    print(f"{path}: {len(params)} parameters, {total:,} values")


if __name__ == "__main__":
    out = os.path.dirname(os.path.abspath(__file__))
    for size in sys.argv[1:] or ["tiny", "small"]:
        write(size, out)
