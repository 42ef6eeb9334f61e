#!/usr/bin/env python3
"""NeMo's own transcriptions of more recordings with the trained small fixture, at more look-aheads:
models/small/ref/transcriptions.json plus <name>_audio.npy (int16 PCM) for the recordings not already stored.

For each recording and look-ahead R in (13, 6, 1, 0): NeMo's cache-aware streaming (conformer_stream_step over
CacheAwareStreamingAudioBuffer) in both first-chunk conventions, NeMo's offline encoder + greedy decoding at that
look-ahead (model.transcribe uses [70,13] only), and whether NeMo's native streaming equals that offline result.

    .venv-nemo/bin/python models/transcription_reference.py
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as fx  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "small", "ref")
# Two more: a training sentence pair and an unseen pair (the fixture's stream and utt1-3 are stored already).
EXTRA = {
    "extra1": ["my brother likes green apples", "the teacher asked a hard question"],
    "extra2": ["we ate dinner by the fire", "the garden gate was left open"],
}


def offline_greedy(model, mel, valid, lookahead):
    """NeMo's offline encoder at [70, R] on the valid mel frames, then NeMo's greedy RNN-T decoding."""
    import torch
    model.encoder.set_default_att_context_size([fx.LEFT_CONTEXT, lookahead])
    with torch.no_grad():
        encoded, length = model.encoder(audio_signal=torch.from_numpy(mel[:, :valid])[None], length=torch.tensor([valid]))
        hyps = model.decoding.rnnt_decoder_predictions_tensor(encoder_output=encoded, encoded_lengths=length,
                                                               return_hypotheses=True)
    model.encoder.set_default_att_context_size(fx.ATT_CONTEXT_SIZES[0])
    hyp = hyps[0][0] if isinstance(hyps[0], list) else hyps[0]
    return [int(t) for t in hyp.y_sequence]


def main():
    model, _ = fx.load_or_train_small(HERE, retrain=False)
    labels = fx.CHAR_LABELS
    recordings = {}
    for name in ["utt1", "utt2", "utt3", "stream"]:
        recordings[name] = np.load(os.path.join(REF, name + "_audio.npy")).astype(np.float32) / 32768.0
    for name, sentences in EXTRA.items():
        audio = np.concatenate([np.concatenate([fx.synth(s), np.zeros(int(0.3 * fx.SAMPLE_RATE), np.float32)])
                                for s in sentences])
        pcm = audio * 32768.0
        assert np.array_equal(pcm, np.round(pcm))
        np.save(os.path.join(REF, name + "_audio.npy"), np.ascontiguousarray(pcm.astype("<i2")))
        recordings[name] = audio
    out = {"generator": "models/transcription_reference.py", "extra_sentences": EXTRA, "recordings": {}}
    for name, audio in recordings.items():
        mel, valid = fx.nemo_mel(model, audio)
        entry = {}
        for r in (13, 6, 1, 0):
            native = fx.nemo_streaming_transcribe(model, mel, r, pad_and_drop_preencoded=False)
            export = fx.nemo_streaming_transcribe(model, mel, r, pad_and_drop_preencoded=True)
            offline = offline_greedy(model, mel, valid, r)
            entry[f"la{r}"] = {"native": native, "export": export, "offline": offline,
                               "native_equals_offline": native == offline,
                               "offline_text": fx.ids_to_text(offline, labels)}
            print(name, r, "native==offline", native == offline, "|", fx.ids_to_text(native, labels)[:60])
        out["recordings"][name] = entry
    with open(os.path.join(REF, "transcriptions.json"), "w") as f:
        json.dump(out, f, indent=0)


if __name__ == "__main__":
    main()
