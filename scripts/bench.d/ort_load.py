"""ONNX Runtime's side of `scripts/bench load`: create sessions for a model folder's files, print one JSON line."""
import glob, json, os, resource, sys, time

import onnxruntime as ort

folder = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
files = sorted(glob.glob(os.path.join(folder, "encoder*.onnx")) + glob.glob(os.path.join(folder, "decoder_joint*.onnx")))
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
start = time.perf_counter()
sessions = [ort.InferenceSession(f, opts, providers=["CPUExecutionProvider"]) for f in files]
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"load_s": seconds, "peak_rss_bytes": peak, "file_bytes": sum(os.path.getsize(f) for f in files)}))
