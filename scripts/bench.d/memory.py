"""Peak memory of stt on long inputs: `stt stream` fed N minutes of raw PCM on stdin, and `stt transcribe` of an
N-minute WAV file, each against its 1-minute run. The audio is a recording repeated with a second of silence between
repetitions. Prints peak RSS per run and the ratio long / 1 minute (target ≤ 1.3)."""
import os, resource, struct, subprocess, sys, tempfile, time, wave

stt, model, sample = sys.argv[1], sys.argv[2], sys.argv[3]
minutes = [int(m) for m in sys.argv[4].split(",")] if len(sys.argv) > 4 else [1, 20, 60]

with wave.open(sample, "rb") as w:
    assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2, "needs 16 kHz mono s16"
    clip = w.readframes(w.getnframes()) + b"\0\0" * 16000


def pcm(total_bytes):
    """Yields the repeated clip in 100 ms pieces until total_bytes."""
    sent = 0
    position = 0
    while sent < total_bytes:
        n = min(3200, total_bytes - sent)
        piece = (clip[position:] + clip)[:n]
        position = (position + n) % len(clip)
        sent += n
        yield piece


def peak_of(argv, stdin_bytes=None):
    """Runs argv as a fresh child (feeding stdin_bytes of PCM when given); returns (peak RSS bytes, seconds)."""
    start = time.time()
    pid = os.fork()
    if pid == 0:
        if stdin_bytes is not None:
            r, w = os.pipe()
            feeder = os.fork()
            if feeder == 0:
                os.close(r)
                for piece in pcm(stdin_bytes):
                    os.write(w, piece)
                os._exit(0)
            os.close(w)
            os.dup2(r, 0)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execv(argv[0], argv)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed with {status}")
    return usage.ru_maxrss * 1024, time.time() - start


def wav_file(path, total_bytes):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        for piece in pcm(total_bytes):
            w.writeframes(piece)


print(f"model {model}; audio: {sample} repeated; peak RSS of a fresh process per run")
print(f"{'command':<34}{'minutes':>8}{'peak RSS (MB)':>15}{'seconds':>9}{'vs 1 min':>10}")
with tempfile.TemporaryDirectory() as tmp:
    for name in ("stream", "transcribe"):
        base = None
        for m in minutes:
            size = m * 60 * 32000
            if name == "stream":
                peak, seconds = peak_of([stt, "stream", "--model", model], stdin_bytes=size)
                label = "stt stream (raw PCM on stdin)"
            else:
                path = os.path.join(tmp, f"{m}min.wav")
                wav_file(path, size)
                peak, seconds = peak_of([stt, "transcribe", "--model", model, path])
                os.remove(path)
                label = "stt transcribe (a WAV file)"
            base = base or peak
            print(f"{label:<34}{m:>8}{peak / 1e6:>15.1f}{seconds:>9.1f}{peak / base:>9.2f}x")
