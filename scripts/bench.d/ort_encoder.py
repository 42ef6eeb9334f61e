"""ONNX Runtime's side of `scripts/bench encoder`: time consecutive streaming calls of an encoder export fed windows of
look-ahead R (a [70,13] export computes any smaller look-ahead exactly), print one JSON line."""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

path, lookahead, threads, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
inputs = {i.name: i for i in session.get_inputs()}
layers, d = inputs["cache_last_channel"].shape[1], inputs["cache_last_channel"].shape[3]
hop = 8 * (lookahead + 1)
window = hop + 9
rng = np.random.default_rng(0)
feeds = {"audio_signal": (rng.random((1, 80, window), dtype=np.float32) * 20 - 16),
         "length": np.array([window], np.int64),
         "cache_last_channel": np.zeros((1, layers, 70, d), np.float32),
         "cache_last_time": np.zeros((1, layers, d, 8), np.float32),
         "cache_last_channel_len": np.zeros((1,), np.int64)}
names = [o.name for o in session.get_outputs()]


def step():
    out = dict(zip(names, session.run(None, feeds)))
    feeds["cache_last_channel"] = out["cache_last_channel_next"]
    feeds["cache_last_time"] = out["cache_last_time_next"]
    feeds["cache_last_channel_len"] = out["cache_last_channel_next_len"]


for _ in range(3):
    step()
times = []
for _ in range(calls):
    start = time.perf_counter()
    step()
    times.append((time.perf_counter() - start) * 1000)
times.sort()
median = times[len(times) // 2]
print(json.dumps({"lookahead": lookahead, "threads": threads, "median_ms": median, "min_ms": times[0],
                  "rtf": median / (hop * 10)}))
