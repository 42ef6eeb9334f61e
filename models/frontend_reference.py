#!/usr/bin/env python3
"""Reference log-mel frames from NeMo's own preprocessor for recordings that stress the frontend: digital silence,
speech clipped hard at full scale, near-silent speech, and the same sentence at 8 kHz and 44.1 kHz (for the
resampler). Writes models/frontend/<name>_audio.npy (int16 PCM at the file's rate), <name>.wav and, for 16 kHz ones,
<name>_mel.npy [80, T] plus manifest.json.

    .venv-nemo/bin/python models/frontend_reference.py
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as fixtures  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frontend")
SENTENCE = "the quick brown fox jumps over the lazy dog"


def espeak(text, rate):
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "out.wav")
        subprocess.run(["espeak-ng", "-v", fixtures.VOICE, "-s", str(fixtures.REF_SPEED), "-w", raw, text], check=True)
        subprocess.run(["sox", "-D", raw, "-r", str(rate), "-c", "1", "-b", "16", wav], check=True)
        audio, sr = soundfile.read(wav, dtype="int16")
        assert sr == rate
        return audio


def main():
    import torch
    from nemo.collections.asr.modules import AudioToMelSpectrogramPreprocessor
    os.makedirs(OUT, exist_ok=True)
    pre = AudioToMelSpectrogramPreprocessor(sample_rate=16000, normalize="NA", window_size=0.025, window_stride=0.01,
                                            window="hann", features=80, n_fft=512, frame_splicing=1, dither=0.0,
                                            pad_to=0)
    pre.eval()
    speech = espeak(SENTENCE, 16000)
    clipped = np.clip(speech.astype(np.int64) * 12, -32768, 32767).astype(np.int16)
    recordings = {
        "silence": (np.zeros(16000 * 2, np.int16), 16000, "2 s of digital silence"),
        "clipped": (clipped, 16000, "the sentence ×12, clipped at full scale"),
        "quiet": ((speech.astype(np.int64) // 256).astype(np.int16), 16000, "the sentence at −48 dB"),
        "speech_8k": (espeak(SENTENCE, 8000), 8000, "the sentence rendered at 8 kHz"),
        "speech_16k": (speech, 16000, "the sentence at 16 kHz"),
        "speech_44k": (espeak(SENTENCE, 44100), 44100, "the sentence rendered at 44.1 kHz"),
    }
    manifest = {"generator": "models/frontend_reference.py", "sentence": SENTENCE, "recordings": {}}
    for name, (pcm, rate, what) in recordings.items():
        np.save(os.path.join(OUT, name + "_audio.npy"), np.ascontiguousarray(pcm.astype("<i2")))
        soundfile.write(os.path.join(OUT, name + ".wav"), pcm, rate, subtype="PCM_16")
        entry = {"rate": rate, "samples": int(pcm.size), "description": what}
        if rate == 16000:
            signal = torch.from_numpy(pcm.astype(np.float32) / 32768.0)[None]
            with torch.no_grad():
                mel, length = pre(input_signal=signal, length=torch.tensor([pcm.size]))
            np.save(os.path.join(OUT, name + "_mel.npy"), np.ascontiguousarray(mel[0].numpy().astype("<f4")))
            entry.update({"mel_frames": int(mel.shape[2]), "mel_valid_length": int(length[0])})
        manifest["recordings"][name] = entry
        print(name, entry)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
