#!/usr/bin/env python3
"""Build the ONNX model fixtures and reference data used by the Swift tests.

    python models/make_fixtures.py tiny|small|large|sherpa|sherpa-small|narrow-small|all|check-export [--out models] [--retrain]

Every fixture is a NeMo ``EncDecHybridRNNTCTCModel`` (character labels) built from a config written
below with the architecture of ``stt_en_fastconformer_hybrid_large_streaming_multi`` (cache-aware
streaming FastConformer, hybrid RNN-T + CTC), exported with NeMo's own exporter:

    tiny   random seeded weights, 2 layers, d_model 64; exports for every look-ahead, opsets 13/16/17,
           an export without cache support and a CTC export; ONNX Runtime + NeMo references in tiny/ref.
    small  trained for a few minutes on espeak-ng sentences so that greedy decoding yields real text;
           [70,13] RNN-T export, CTC export and references in small/ref. Trained weights are cached in
           models/.cache/small.pt (use --retrain to train again).
    sherpa the tiny model in sherpa-onnx's layout (tiny/sherpa: encoder.onnx with its metadata, decoder.onnx,
           joiner.onnx, tokens.txt; tiny/sherpa-int8: the *.int8.onnx files) and ORT references in
           tiny/ref-sherpa. Needs tiny/ (its stream_mel and la13 encoder). The layout is written by
           export_nemo.py's export_sherpa_folder / quantize_sherpa_folder.
    sherpa-small  the same for the trained small model (small/sherpa, small/sherpa-int8, small/ref-sherpa with NeMo's
           tokens, also with the int8 weights dequantized into NeMo). Needs small/ and transcription_reference.py's
           transcriptions.json.
    narrow-small  NeMo's streaming tokens of the trained small model with its encoder matrices rounded as the engine's
           bf16 and int8 store them (small/ref-narrow); the model is rebuilt from small/la13. Needs small/ and
           transcriptions.json.
    check-export  .nemo files of tiny and small (the small one's config naming the wrong class) through
           export_nemo.py, compared with the committed folders; `stt transcribe` on them when stt is built.
    large  random seeded weights with exactly the parameter shapes of the real model (114,226,689
           parameters in the RNN-T export); export only, into large/la13 and large/la0.

Reference data is written as .npy files (little-endian, C order) described by ref/manifest.json.
Nothing here reads files outside this repository; all architecture numbers are written in the code.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

from export_nemo import SHERPA_FILES, export_model_folder, export_sherpa_folder, quantize_sherpa_folder

# --------------------------------------------------------------------------------------------------
# Architecture facts (stt_en_fastconformer_hybrid_large_streaming_multi)
# --------------------------------------------------------------------------------------------------

SAMPLE_RATE = 16000
N_MELS = 80
SUBSAMPLING = 8
CONV_KERNEL = 9
ATT_CONTEXT_SIZES = [[70, 13], [70, 6], [70, 1], [70, 0]]
LOOKAHEADS = {"la13": 13, "la6": 6, "la1": 1, "la0": 0}
LEFT_CONTEXT = 70
MAX_SYMBOLS = 10
PRE_ENCODE_CACHE = SUBSAMPLING + 1  # 9 mel frames of overlap between consecutive windows

CHAR_LABELS = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]

SIZES = {
    # exact numbers of the real model; 1024 synthetic labels give the same parameter shapes as its
    # 1024-piece SentencePiece vocabulary
    "large": dict(
        n_layers=17, d_model=512, n_heads=8, conv_channels=256, pos_emb_max_len=5000,
        pred_hidden=640, joint_hidden=640, labels=["▁"] + ["p%04d" % i for i in range(1, 1024)], seed=5150,
    ),
    "tiny": dict(
        n_layers=2, d_model=64, n_heads=4, conv_channels=64, pos_emb_max_len=500,
        pred_hidden=64, joint_hidden=64, labels=CHAR_LABELS, seed=1234,
    ),
    "small": dict(
        n_layers=2, d_model=96, n_heads=4, conv_channels=96, pos_emb_max_len=500,
        pred_hidden=96, joint_hidden=96, labels=CHAR_LABELS, seed=4321,
    ),
}

# parameter counts of the real model's RNN-T export (CTC head excluded)
LARGE_PARAMS = {"encoder": 108_893_184, "prediction": 3_937_920, "joint": 1_395_585, "total": 114_226_689}

N_CALLS = 40                   # encoder calls stored per look-ahead
SMALL_CACHE_CALLS = [0, 9, 19, 29, 39]
DEC_CALLS = 32                 # decoder_joint calls stored


def log(*args):
    print(*args, flush=True)


# --------------------------------------------------------------------------------------------------
# Speech (espeak-ng + sox)
# --------------------------------------------------------------------------------------------------

TRAIN_SENTENCES = [
    "the cat sat by the warm window", "please open the door for me", "we walked along the quiet river",
    "my brother likes green apples", "the train leaves at seven today", "she wrote a long letter home",
    "turn left at the next corner", "the coffee is too hot to drink", "birds sing early in the morning",
    "he found his keys under the bed", "the children played in the park", "it is raining again this evening",
    "can you hear the music playing", "the old man fixed the red bicycle", "we need more bread and milk",
    "the moon was bright last night", "she plays the piano very well", "our team won the final game",
    "the dog barked at the mailman", "they built a small wooden boat", "i forgot my umbrella at work",
    "the shop closes at nine o'clock", "a cold wind blew from the north", "he reads the news every morning",
    "the flowers need fresh water", "we watched a movie together", "the baby is sleeping upstairs",
    "let's meet at the station", "the road was long and dusty", "she bought a blue winter coat",
    "the teacher asked a hard question", "my phone battery is almost empty", "the river flows into the sea",
    "they laughed at the funny story", "please write your name here", "the kitchen smells of fresh soup",
    "he runs five miles every day", "the window glass is cracked", "we planted tomatoes in the garden",
    "the bus was late again", "she can't find her glasses", "the city lights shine at night",
    "i like reading old books", "the horse jumped over the fence", "they moved to a new house",
    "the clock on the wall stopped", "we heard thunder in the distance", "the soup needs a little salt",
]

UNSEEN_SENTENCES = [
    "the farmer sold fresh eggs at the market", "a small boat drifted slowly toward the island",
    "my sister painted the fence bright yellow", "the library opens early on saturday",
    "snow covered the mountains all winter", "he carried the heavy boxes up the stairs",
    "we ate dinner by the fire", "the students finished their project on time",
]

VOICE = "en-us"
REF_SPEED = 160                 # words per minute of the reference audio
TRAIN_SPEEDS = [145, 160, 175]  # training audio: every sentence at these speeds
PAUSE_S = 0.3                   # silence between concatenated sentences


def synth(text, speed=REF_SPEED, voice=VOICE):
    """espeak-ng speech resampled by sox to 16 kHz mono 16-bit, returned as float32 in [-1, 1)."""
    import soundfile as sf
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "16k.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", raw, text], check=True)
        subprocess.run(["sox", "-D", raw, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer", wav],
                       check=True)
        audio, sr = sf.read(wav, dtype="float32")
    assert sr == SAMPLE_RATE and audio.ndim == 1
    return audio


def concat_sentences(sentences, min_seconds):
    """Concatenates sentences (with PAUSE_S of silence between them) until min_seconds is reached."""
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), dtype=np.float32)
    parts, used, total = [], [], 0
    for s in sentences:
        a = synth(s)
        if parts:
            parts.append(pause)
            total += pause.size
        parts.append(a)
        used.append(s)
        total += a.size
        if total >= min_seconds * SAMPLE_RATE:
            break
    assert total >= min_seconds * SAMPLE_RATE, "not enough sentences for %.1f s" % min_seconds
    return np.concatenate(parts).astype(np.float32), used


def reference_audio():
    """The stream (>= 48 s) and three utterances (>= 10 s each) used by every reference."""
    stream, stream_text = concat_sentences(TRAIN_SENTENCES, 48.0)
    utt1, utt1_text = concat_sentences(TRAIN_SENTENCES[24:], 10.5)
    utt2, utt2_text = concat_sentences(TRAIN_SENTENCES[36:] + TRAIN_SENTENCES[:12], 10.5)
    utt3, utt3_text = concat_sentences(UNSEEN_SENTENCES, 10.5)
    return {
        "stream": (stream, stream_text),
        "utt1": (utt1, utt1_text),
        "utt2": (utt2, utt2_text),
        "utt3": (utt3, utt3_text),
    }


def normalize_text(text):
    out = "".join(c if c in CHAR_LABELS else " " for c in text.lower())
    return " ".join(out.split())


# --------------------------------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------------------------------

def model_config(size):
    s = SIZES[size]
    d = s["d_model"]
    return {
        "sample_rate": SAMPLE_RATE,
        "labels": s["labels"],
        "model_defaults": {"enc_hidden": d, "pred_hidden": s["pred_hidden"], "joint_hidden": s["joint_hidden"]},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": SAMPLE_RATE, "normalize": "NA", "window_size": 0.025, "window_stride": 0.01,
            "window": "hann", "features": N_MELS, "n_fft": 512, "frame_splicing": 1,
            "dither": 1.0e-5,  # applied by NeMo in training mode only
            "pad_to": 0,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": N_MELS, "feat_out": -1, "n_layers": s["n_layers"], "d_model": d,
            "subsampling": "dw_striding", "subsampling_factor": SUBSAMPLING,
            "subsampling_conv_channels": s["conv_channels"], "causal_downsampling": True,
            "reduction": None, "reduction_position": None, "reduction_factor": 1,
            "ff_expansion_factor": 4, "self_attention_model": "rel_pos", "n_heads": s["n_heads"],
            "att_context_size": ATT_CONTEXT_SIZES, "att_context_style": "chunked_limited",
            "xscaling": True, "untie_biases": True, "pos_emb_max_len": s["pos_emb_max_len"],
            "conv_kernel_size": CONV_KERNEL, "conv_norm_type": "layer_norm", "conv_context_size": "causal",
            "dropout": 0.1, "dropout_pre_encoder": 0.1, "dropout_emb": 0.0, "dropout_att": 0.1,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None, "random_state_sampling": False, "blank_as_pad": True,
            "prednet": {"pred_hidden": s["pred_hidden"], "pred_rnn_layers": 1, "t_max": None, "dropout": 0.2},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None, "preserve_memory": False,
            "fuse_loss_wer": False,  # the training loop below calls joint and loss separately
            "fused_batch_size": 2,
            "jointnet": {"joint_hidden": s["joint_hidden"], "activation": "relu", "dropout": 0.2},
        },
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": MAX_SYMBOLS}},
        "aux_ctc": {
            "ctc_loss_weight": 0.3, "use_cer": False, "ctc_reduction": "mean_batch",
            "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": d,
                        "num_classes": -1, "vocabulary": s["labels"]},
            "decoding": {"strategy": "greedy"},
        },
        "loss": {"loss_name": "pytorch"},  # NeMo's numba RNN-T loss takes ~4 s per batch on this CPU, this one ~0.4 s
        "compute_eval_loss": False,
        "log_prediction": False,
    }


def seed_everything(seed):
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(size):
    """A freshly initialised model with seeded random weights.

    NeMo initialises LayerNorm scales to 1, LayerNorm biases and pos_bias_u/v to 0. Such identical
    tensors are merged into one initializer by the ONNX exporter (consumed through Identity nodes), and
    u/v or scale/bias mix-ups would go unnoticed. Every constant-initialised tensor is therefore redrawn
    around its initial value so that each one is distinct, as in a trained model.
    """
    import torch
    from omegaconf import OmegaConf
    from nemo.collections.asr.models import EncDecHybridRNNTCTCModel

    seed_everything(SIZES[size]["seed"])
    model = EncDecHybridRNNTCTCModel(cfg=OmegaConf.create(model_config(size)))
    gen = torch.Generator().manual_seed(SIZES[size]["seed"] + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.numel() > 1 and float(p.std()) == 0.0:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
        # the blank row of the prediction embedding stays zero (padding_idx == blank)
        emb = model.decoder.prediction["embed"].weight
        assert float(emb[-1].abs().max()) == 0.0
    model.eval()
    return model


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def rnnt_export_param_counts(model):
    enc = count_params(model.encoder)
    pred = count_params(model.decoder)
    joint = count_params(model.joint)
    return {"encoder": enc, "prediction": pred, "joint": joint, "total": enc + pred + joint}


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------

def export_folder(model, folder, fixture, lookahead, opset=17, cache_support=True, decoder_type="rnnt"):
    """Exports `model` with NeMo's exporter into a self-contained model folder (see export_nemo.py):
    RNN-T: encoder-<fixture>.onnx + decoder_joint-<fixture>.onnx; CTC: ctc-<fixture>.onnx (one graph);
    plus tokens.txt and model.json. Returns the file names written."""
    files = export_model_folder(model, folder, fixture, [LEFT_CONTEXT, lookahead], decoder_type=decoder_type,
                                opset=opset, cache_support=cache_support)
    max_len = int(model.cfg.encoder.pos_emb_max_len)
    assert model.encoder.pos_enc.pe.shape[1] == 2 * max_len - 1
    model.encoder.set_default_att_context_size(ATT_CONTEXT_SIZES[0])
    return files


def onnx_io(path):
    """Input/output names, element types and shapes (symbolic axes as strings) of an ONNX file."""
    import onnx
    m = onnx.load(path, load_external_data=False)

    def desc(v):
        t = v.type.tensor_type
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                "shape": [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]}
    return {"inputs": [desc(v) for v in m.graph.input], "outputs": [desc(v) for v in m.graph.output]}


# --------------------------------------------------------------------------------------------------
# ONNX Runtime references
# --------------------------------------------------------------------------------------------------

def ort_model(path):
    import onnxruntime as ort
    return ort.InferenceSession(path, sess_options=ort.SessionOptions(), providers=["CPUExecutionProvider"])


def window_geometry(lookahead):
    """Export-convention windows: hop = 8(R+1) mel frames, window = hop + 9."""
    hop = SUBSAMPLING * (lookahead + 1)
    return hop, hop + PRE_ENCODE_CACHE


def export_windows(mel, lookahead, n_calls):
    """Window k = padded[:, hop*k : hop*k + W] with padded = 9 zero columns + mel (NeMo's
    CacheAwareStreamingAudioBuffer with pad_and_drop_preencoded=True)."""
    hop, width = window_geometry(lookahead)
    padded = np.concatenate([np.zeros((mel.shape[0], PRE_ENCODE_CACHE), np.float32), mel], axis=1)
    assert hop * (n_calls - 1) + width <= padded.shape[1], "stream too short for %d calls" % n_calls
    return [padded[:, hop * k: hop * k + width] for k in range(n_calls)]


def run_encoder_stream(sess, windows, n_layers, d_model):
    """Feeds windows one call at a time, caches from the previous call's *_next outputs."""
    c_ch = np.zeros((1, n_layers, LEFT_CONTEXT, d_model), np.float32)
    c_t = np.zeros((1, n_layers, d_model, CONV_KERNEL - 1), np.float32)
    c_len = np.zeros((1,), np.int64)
    res = {"outputs": [], "encoded_lengths": [], "cache_channel": [], "cache_time": [], "cache_channel_len": []}
    for w in windows:
        outs = sess.run(None, {
            "audio_signal": w[None].astype(np.float32),
            "length": np.array([w.shape[1]], np.int64),
            "cache_last_channel": c_ch, "cache_last_time": c_t, "cache_last_channel_len": c_len,
        })
        y, y_len, c_ch, c_t, c_len = outs
        res["outputs"].append(y[0])
        res["encoded_lengths"].append(int(y_len[0]))
        res["cache_channel"].append(c_ch[0])
        res["cache_time"].append(c_t[0])
        res["cache_channel_len"].append(int(c_len[0]))
    out = {k: np.stack(v) if k in ("outputs", "cache_channel", "cache_time") else np.array(v, np.int64)
           for k, v in res.items()}
    assert out["cache_channel"].shape[2] == LEFT_CONTEXT and out["cache_time"].shape[3] == CONV_KERNEL - 1
    return out


def run_ctc_stream(sess, windows, n_layers, d_model):
    c_ch = np.zeros((1, n_layers, LEFT_CONTEXT, d_model), np.float32)
    c_t = np.zeros((1, n_layers, d_model, CONV_KERNEL - 1), np.float32)
    c_len = np.zeros((1,), np.int64)
    logprobs, lens = [], []
    for w in windows:
        lp, lp_len, c_ch, c_t, c_len = sess.run(None, {
            "audio_signal": w[None].astype(np.float32),
            "length": np.array([w.shape[1]], np.int64),
            "cache_last_channel": c_ch, "cache_last_time": c_t, "cache_last_channel_len": c_len,
        })
        logprobs.append(lp[0])
        lens.append(int(lp_len[0]))
    return np.stack(logprobs), np.array(lens, np.int64)


def run_decoder_joint(sess, enc_frames, blank, hidden):
    """Greedy RNN-T over encoder frames [T, d] with the decoder_joint graph, one call per joint evaluation
    (at most MAX_SYMBOLS emissions per frame, as NeMo's greedy decoding). Returns per-call inputs and
    outputs and the emitted token ids."""
    rec = {k: [] for k in ("enc", "frame", "targets", "state1_in", "state2_in", "logits", "state1_out",
                           "state2_out")}
    s1 = np.zeros((1, 1, hidden), np.float32)
    s2 = np.zeros((1, 1, hidden), np.float32)
    last, tokens = blank, []
    for t in range(enc_frames.shape[0]):
        frame = enc_frames[t]
        for _ in range(MAX_SYMBOLS):
            logits, _, o1, o2 = sess.run(None, {
                "encoder_outputs": frame[None, :, None].astype(np.float32),
                "targets": np.array([[last]], np.int32),
                "target_length": np.array([1], np.int32),
                "input_states_1": s1, "input_states_2": s2,
            })
            for k, v in (("enc", frame), ("frame", t), ("targets", last), ("state1_in", s1[0, 0]),
                         ("state2_in", s2[0, 0]), ("logits", logits[0, 0, 0]), ("state1_out", o1[0, 0]),
                         ("state2_out", o2[0, 0])):
                rec[k].append(np.array(v))
            k = int(np.argmax(logits[0, 0, 0]))
            if k == blank:
                break
            tokens.append(k)
            last, s1, s2 = k, o1, o2
    return {k: np.stack(v) for k, v in rec.items()}, tokens


# --------------------------------------------------------------------------------------------------
# NeMo references
# --------------------------------------------------------------------------------------------------

def assert_eval(model):
    parts = (model.preprocessor, model.encoder, model.decoder, model.joint, model.ctc_decoder)
    assert not any(m.training for p in parts for m in p.modules()), "model must be in eval mode"


def nemo_mel(model, audio):
    """NeMo's preprocessor in eval mode (no dither): mel [80, T] and NeMo's valid length."""
    import torch
    model.preprocessor.eval()
    with torch.no_grad():
        mel, mel_len = model.preprocessor(input_signal=torch.from_numpy(audio)[None],
                                          length=torch.tensor([audio.size]))
    return mel[0].numpy().astype(np.float32), int(mel_len[0])


def nemo_offline_encoder(model, mel, length, lookahead):
    import torch
    assert_eval(model)
    model.encoder.set_default_att_context_size([LEFT_CONTEXT, lookahead])
    with torch.no_grad():
        y, y_len = model.encoder(audio_signal=torch.from_numpy(mel)[None], length=torch.tensor([length]))
    model.encoder.set_default_att_context_size(ATT_CONTEXT_SIZES[0])
    return y[0].numpy(), int(y_len[0])


def nemo_streaming_encoder(model, mel, lookahead, pad_and_drop_preencoded=False):
    """NeMo's own cache-aware streaming (CacheAwareStreamingAudioBuffer + cache_aware_stream_step, as in
    NeMo's speech_to_text_cache_aware_streaming_infer.py). Returns the concatenated encoder output [d, T]."""
    import torch
    assert_eval(model)
    from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer
    model.encoder.set_default_att_context_size([LEFT_CONTEXT, lookahead])
    buf = CacheAwareStreamingAudioBuffer(model=model, pad_and_drop_preencoded=pad_and_drop_preencoded)
    buf.append_processed_signal(torch.from_numpy(mel)[None])
    cache = model.encoder.get_initial_cache_state(batch_size=1)
    pieces = []
    with torch.no_grad():
        for step, (chunk, chunk_len) in enumerate(buf):
            drop = 0 if (step == 0 and not pad_and_drop_preencoded) else \
                model.encoder.streaming_cfg.drop_extra_pre_encoded
            y, y_len, c1, c2, c3 = model.encoder.cache_aware_stream_step(
                processed_signal=chunk, processed_signal_length=chunk_len,
                cache_last_channel=cache[0], cache_last_time=cache[1], cache_last_channel_len=cache[2],
                keep_all_outputs=buf.is_buffer_empty(), drop_extra_pre_encoded=drop)
            cache = (c1, c2, c3)
            pieces.append(y[0, :, : int(y_len[0])].numpy())
    model.encoder.set_default_att_context_size(ATT_CONTEXT_SIZES[0])
    return np.concatenate(pieces, axis=1)


def nemo_streaming_transcribe(model, mel, lookahead, pad_and_drop_preencoded):
    """NeMo's streaming greedy RNN-T (conformer_stream_step) over one mel stream: token ids."""
    import torch
    assert_eval(model)
    from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer
    model.encoder.set_default_att_context_size([LEFT_CONTEXT, lookahead])
    buf = CacheAwareStreamingAudioBuffer(model=model, pad_and_drop_preencoded=pad_and_drop_preencoded)
    buf.append_processed_signal(torch.from_numpy(mel)[None])
    c1, c2, c3 = model.encoder.get_initial_cache_state(batch_size=1)
    hyps, pred = None, None
    with torch.no_grad():
        for step, (chunk, chunk_len) in enumerate(buf):
            drop = 0 if (step == 0 and not pad_and_drop_preencoded) else \
                model.encoder.streaming_cfg.drop_extra_pre_encoded
            pred, _, c1, c2, c3, hyps = model.conformer_stream_step(
                processed_signal=chunk, processed_signal_length=chunk_len,
                cache_last_channel=c1, cache_last_time=c2, cache_last_channel_len=c3,
                keep_all_outputs=buf.is_buffer_empty(), previous_hypotheses=hyps, previous_pred_out=pred,
                drop_extra_pre_encoded=drop, return_transcription=True)
    model.encoder.set_default_att_context_size(ATT_CONTEXT_SIZES[0])
    return [int(t) for t in hyps[0].y_sequence]


def nemo_offline_transcribe(model, audios):
    """NeMo's greedy RNN-T transcription (model.transcribe) with the default [70,13] look-ahead."""
    model.encoder.set_default_att_context_size(ATT_CONTEXT_SIZES[0])
    hyps = model.transcribe(audios, batch_size=1, return_hypotheses=True, verbose=False)
    # transcribe() ends by unfreezing the encoder/decoder/joint, which puts them in training mode
    # (dropout on); everything here needs eval mode
    model.eval()
    if isinstance(hyps, tuple):
        hyps = hyps[0]
    return [([int(t) for t in h.y_sequence], h.text) for h in hyps]


def ids_to_text(ids, labels):
    return "".join(labels[i] for i in ids).strip()


# --------------------------------------------------------------------------------------------------
# Reference writer
# --------------------------------------------------------------------------------------------------

class RefWriter:
    """Writes .npy arrays and collects their description for manifest.json."""

    def __init__(self, folder):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        # replace this script's own outputs, keep anything else (params.json from param_reference.py,
        # transcriptions.json and extra*_audio.npy from transcription_reference.py)
        for f in os.listdir(folder):
            if (f.endswith(".npy") and not f.startswith("extra")) or f == "manifest.json":
                os.remove(os.path.join(folder, f))
        self.arrays = {}
        self.info = {}

    def add(self, name, array, description, dtype=None):
        a = np.asarray(array)
        if dtype is None:
            dtype = np.float32 if a.dtype.kind == "f" else np.int64
        a = np.ascontiguousarray(a.astype(np.dtype(dtype).newbyteorder("<")))
        np.save(os.path.join(self.folder, name + ".npy"), a)
        self.arrays[name] = {"file": name + ".npy", "dtype": np.dtype(dtype).name, "shape": list(a.shape),
                             "description": description}
        return a

    def write_manifest(self, extra):
        manifest = dict(extra)
        manifest["arrays"] = self.arrays
        with open(os.path.join(self.folder, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
            f.write("\n")


WINDOW_RULE = (
    "Export convention (what the exported encoder computes): for look-ahead [70,R], hop = 8*(R+1) mel frames, "
    "window W = hop + 9. padded = 9 columns of 0.0 followed by stream_mel (all columns); call k (k = 0..N-1) gets "
    "padded[:, hop*k : hop*k + W] with length = W. Caches are zeros at k = 0 (cache_last_channel [1,L,70,d], "
    "cache_last_time [1,L,d,8], cache_last_channel_len [1] int64 = 0) and afterwards the *_next outputs of call k-1. "
    "Verified in NeMo 3.0.0: ConformerEncoder.setup_streaming_params gives chunk_size = [1+8R, 8+8R], shift_size = "
    "[1+8R, 8+8R], pre_encode_cache_size = [0, 9], drop_extra_pre_encoded = 2, valid_out_len = R+1, "
    "last_channel_cache_size = 70; CacheAwareStreamingAudioBuffer(pad_and_drop_preencoded=True) yields for its first "
    "chunk 9 zero columns + buffer[0 : 8+8R] and afterwards buffer[i-9 : i+8+8R] with i advancing by 8+8R; its "
    "chunk length is min(remaining, chunk) + 9 (= W for full windows). forward_for_export always drops the first 2 "
    "subsampled frames when caches are given and keeps at most R+1 output frames."
)

NATIVE_RULE = (
    "NeMo native convention (CacheAwareStreamingAudioBuffer with pad_and_drop_preencoded=False + "
    "encoder.cache_aware_stream_step, drop_extra_pre_encoded = 0 on the first step, 2 afterwards, "
    "keep_all_outputs only on the last step): first chunk = mel[:, 0 : 1+8R] (no padding, no drop), then windows "
    "mel[:, i-9 : i+8+8R] with i = 1+8R, 9+16R, ... advancing by 8+8R; the last window may be shorter."
)


def encoder_refs(ref, enc_path, mel, lookahead, n_layers, d_model, prefix, cache_calls=None, desc_extra=""):
    """ORT encoder references for one export fed the windows of one look-ahead."""
    sess = ort_model(enc_path)
    windows = export_windows(mel, lookahead, N_CALLS)
    r = run_encoder_stream(sess, windows, n_layers, d_model)
    hop, width = window_geometry(lookahead)
    what = "look-ahead %d windows (hop %d, W %d)%s" % (lookahead, hop, width, desc_extra)
    ref.add(prefix + "_outputs", r["outputs"], "ORT `outputs` of each call [N, d, T_out], " + what)
    ref.add(prefix + "_encoded_lengths", r["encoded_lengths"], "ORT `encoded_lengths` of each call [N]")
    if cache_calls is not False:
        sel = list(range(N_CALLS)) if cache_calls is None else cache_calls
        note = "" if cache_calls is None else " at calls %s only" % sel
        ref.add(prefix + "_cache_channel", r["cache_channel"][sel],
                "ORT `cache_last_channel_next` after each call%s [n, L, 70, d]" % note)
        ref.add(prefix + "_cache_time", r["cache_time"][sel],
                "ORT `cache_last_time_next` after each call%s [n, L, d, 8]" % note)
        ref.add(prefix + "_cache_channel_len", r["cache_channel_len"][sel],
                "ORT `cache_last_channel_next_len` after each call%s [n]" % note)
    return r


def audio_and_mel_refs(ref, model, audio):
    mels, info = {}, {}
    for key in ("stream", "utt1", "utt2", "utt3"):
        a, text = audio[key]
        # The audio is 16-bit PCM (sox -D): stored as int16 samples, exactly a * 32768, at half the size.
        pcm = a * 32768.0
        assert np.array_equal(pcm, np.round(pcm)) and np.abs(pcm).max() <= 32767
        ref.add(key + "_audio", pcm.astype(np.int16), "16 kHz mono audio as int16 PCM samples; the float signal NeMo "
                "was given is samples / 32768 (espeak-ng %s, %d wpm, sox -D to 16 kHz 16-bit)" % (VOICE, REF_SPEED),
                dtype=np.int16)
        mel, valid = nemo_mel(model, a)
        assert mel.shape == (N_MELS, a.size // 160 + 1)
        ref.add(key + "_mel", mel, "NeMo AudioToMelSpectrogramPreprocessor (eval, no dither) of %s_audio, "
                "[80, T], T = 1 + samples//160; the last column is zeroed by NeMo (valid length = T-1)" % key)
        mels[key] = mel
        info[key] = {"samples": int(a.size), "seconds": round(a.size / SAMPLE_RATE, 3), "mel_frames": mel.shape[1],
                     "mel_valid_length": valid, "sentences": text, "text": normalize_text(" ".join(text))}
    return mels, info


def offline_refs(ref, model, mels, check_streaming=True):
    """NeMo offline encoder per utterance and look-ahead, plus the native-streaming == offline check.

    Finding (NeMo 3.0.0): for R >= 1 the native stream equals the offline output (up to float rounding).
    For [70,0] it does not: the second chunk starts at mel frame 1 < 9, so CacheAwareStreamingAudioBuffer
    left-pads its pre-encode cache with 8 zero *mel* columns, which the subsampling convolutions turn into
    non-zero activations (offline, each causal conv pads its own input with zeros instead). Encoder frame 0
    matches, frame 1 differs and the difference propagates through the caches. The native [70,0] stream is
    stored as native_uttK_la0 so both behaviours can be checked.
    """
    devs = {}
    for key in ("utt1", "utt2", "utt3"):
        mel = mels[key]
        for la, r in LOOKAHEADS.items():
            y, y_len = nemo_offline_encoder(model, mel, mel.shape[1], r)
            ref.add("offline_%s_%s" % (key, la), y[:, :y_len],
                    "NeMo offline encoder output [d, T_enc] of %s_mel (length = all %d columns) with "
                    "att_context_size [70,%d]" % (key, mel.shape[1], r))
            if not check_streaming:
                continue
            s = nemo_streaming_encoder(model, mel, r, pad_and_drop_preencoded=False)
            n = min(s.shape[1], y_len)
            frame_dev = np.abs(s[:, :n] - y[:, :n]).max(axis=0)
            dev = float(frame_dev.max())
            bad = np.nonzero(frame_dev > 1e-4)[0]
            # NeMo's buffer stops when fewer than 8 mel frames are left (its sampling_frames check), so
            # the native stream can end one encoder frame before the offline output
            hop = SUBSAMPLING * (r + 1)
            rest = (mel.shape[1] - (1 + SUBSAMPLING * r)) % hop
            unread = int(rest) if 0 < rest < SUBSAMPLING else 0
            devs["%s_%s" % (key, la)] = {
                "offline_frames": y_len, "streaming_frames": int(s.shape[1]), "mel_frames_left_unread": unread,
                "max_abs_diff": dev, "first_frame_over_1e-4": int(bad[0]) if bad.size else None}
            log("  native streaming vs offline %s %s: frames %d/%d max|diff| %.3g first frame > 1e-4: %s"
                % (key, la, s.shape[1], y_len, dev, bad[0] if bad.size else "-"))
            assert s.shape[1] == y_len - (1 if unread else 0), (s.shape[1], y_len)
            if r >= 1:
                assert dev < 1e-4, "native streaming differs from offline by %g" % dev
            else:
                assert frame_dev[0] < 1e-4 and bad.size and bad[0] == 1, "unexpected [70,0] behaviour"
                ref.add("native_%s_%s" % (key, la), s,
                        "NeMo native cache-aware streaming encoder output [d, T] of %s_mel at [70,0] "
                        "(differs from offline from frame 1 on, see native_streaming_vs_offline)" % key)
    return devs


def decoder_refs(ref, dec_path, enc_outputs, blank, hidden, labels):
    """decoder_joint references: a greedy walk over all la13 encoder frames of the stream (the calls'
    outputs concatenated along time); DEC_CALLS consecutive calls are stored, starting 4 calls before the
    first non-blank emission, and the walk's complete token sequence."""
    frames = np.concatenate([o.T for o in enc_outputs], axis=0)  # [N*(R+1), d]
    r, tokens = run_decoder_joint(ort_model(dec_path), frames, blank, hidden)
    emits = np.nonzero(np.argmax(r["logits"], axis=1) != blank)[0]
    j0 = max(0, int(emits[0]) - 4) if emits.size else 0
    sl = slice(j0, j0 + DEC_CALLS)
    assert r["enc"][sl].shape[0] == DEC_CALLS
    ref.add("dec_enc", r["enc"][sl], "encoder frame fed as `encoder_outputs` [1, d, 1] in each call [J, d]")
    ref.add("dec_frame", r["frame"][sl], "index of that frame in the concatenated enc_la13_outputs frames [J]")
    ref.add("dec_targets", r["targets"][sl], "`targets` (int32 [1,1] in the graph) of each call [J]")
    ref.add("dec_state1_in", r["state1_in"][sl], "`input_states_1` [1,1,H] of each call, stored [J, H]")
    ref.add("dec_state2_in", r["state2_in"][sl], "`input_states_2` [1,1,H] of each call, stored [J, H]")
    ref.add("dec_logits", r["logits"][sl], "`outputs` [1,1,1,V+1] of each call (raw joint logits), stored [J, V+1]")
    ref.add("dec_state1_out", r["state1_out"][sl], "`output_states_1` of each call [J, H]")
    ref.add("dec_state2_out", r["state2_out"][sl], "`output_states_2` of each call [J, H]")
    ref.add("greedy_la13_tokens", np.array(tokens, np.int64),
            "token ids of the whole greedy walk: ORT encoder (la13 export, la13 windows, %d calls) + ORT "
            "decoder_joint greedy RNN-T, max %d symbols per frame [n]" % (N_CALLS, MAX_SYMBOLS))
    return {"first_stored_call": j0, "total_calls": int(r["enc"].shape[0]), "frames": int(frames.shape[0]),
            "tokens": len(tokens), "text": ids_to_text(tokens, labels)[:400]}


DEC_RULE = (
    "decoder_joint walk over the frames of enc_la13_outputs (calls concatenated): the walk starts at frame 0 with "
    "targets = blank and zero states; target_length = 1 always. After each call, k = argmax(logits): blank -> "
    "next frame with the same targets and input states; non-blank -> emit k, the next call feeds targets = k and "
    "this call's output states (same frame); after 10 emissions on one frame the walk moves to the next frame. "
    "dec_* store %d consecutive calls of this walk starting at call decoder_joint_walk.first_stored_call "
    "(4 calls before its first non-blank emission)." % DEC_CALLS
)


def io_description(folder_files):
    return {name: onnx_io(path) for name, path in folder_files.items()}


# --------------------------------------------------------------------------------------------------
# tiny
# --------------------------------------------------------------------------------------------------

def make_tiny(out):
    t0 = time.time()
    size = "tiny"
    s = SIZES[size]
    model = build_model(size)
    root = os.path.join(out, size)
    L, d = s["n_layers"], s["d_model"]
    labels = s["labels"]
    blank = len(labels)

    folders = {}
    for la, r in LOOKAHEADS.items():
        folders[la] = export_folder(model, os.path.join(root, la), size, r)
    for opset in (13, 16):
        folders["opset%d" % opset] = export_folder(model, os.path.join(root, "opset%d" % opset), size, 13,
                                                   opset=opset)
    folders["nocache"] = export_folder(model, os.path.join(root, "nocache"), size, 13, cache_support=False)
    folders["ctc"] = export_folder(model, os.path.join(root, "ctc"), size, 13, decoder_type="ctc")
    log("tiny: exports done in %.1f s" % (time.time() - t0))

    audio = reference_audio()
    ref = RefWriter(os.path.join(root, "ref"))
    mels, audio_info = audio_and_mel_refs(ref, model, audio)
    stream_mel = mels["stream"]

    enc = {la: os.path.join(root, la, folders[la]["encoder"]) for la in LOOKAHEADS}
    results = {}
    for la, r in LOOKAHEADS.items():
        results[la] = encoder_refs(ref, enc[la], stream_mel, r, L, d, "enc_" + la)
    for la in ("la6", "la1", "la0"):
        res = encoder_refs(ref, enc["la13"], stream_mel, LOOKAHEADS[la], L, d, "enc_la13export_at_" + la,
                           cache_calls=False, desc_extra=", fed to the [70,13] export")
        dev = float(np.abs(res["outputs"] - results[la]["outputs"]).max())
        log("  la13 export at %s windows vs %s export: max|diff| %.3g" % (la, la, dev))

    opset_dev = {}
    for opset in (13, 16):
        path = os.path.join(root, "opset%d" % opset, folders["opset%d" % opset]["encoder"])
        r = run_encoder_stream(ort_model(path), export_windows(stream_mel, 13, N_CALLS), L, d)
        dev = max(float(np.abs(r[k] - results["la13"][k]).max())
                  for k in ("outputs", "cache_channel", "cache_time"))
        opset_dev["opset%d" % opset] = dev
        log("  opset %d vs opset 17 (la13 windows, outputs and caches): max|diff| %.3g" % (opset, dev))
        assert dev < 1e-4, "opset %d export differs from opset 17 by %g" % (opset, dev)
        assert (r["encoded_lengths"] == results["la13"]["encoded_lengths"]).all()

    ctc_path = os.path.join(root, "ctc", folders["ctc"]["ctc"])
    lp, lp_len = run_ctc_stream(ort_model(ctc_path), export_windows(stream_mel, 13, N_CALLS), L, d)
    ref.add("ctc_la13_logprobs", lp, "ORT `logprobs` of the ctc/ export on the la13 windows [N, T_out, V+1]")
    ref.add("ctc_la13_encoded_lengths", lp_len, "ORT encoded_lengths of the ctc/ export [N]")

    dec_path = os.path.join(root, "la13", folders["la13"]["decoder_joint"])
    walk = decoder_refs(ref, dec_path, results["la13"]["outputs"], blank, s["pred_hidden"], labels)

    stream_devs = offline_refs(ref, model, mels)

    ref.write_manifest(common_manifest(size, model, audio_info, root, folders, {
        "opset_max_abs_diff_vs_17": opset_dev,
        "native_streaming_vs_offline": stream_devs,
        "decoder_joint_walk": walk,
    }))
    log("tiny: done in %.1f s" % (time.time() - t0))


def common_manifest(size, model, audio_info, root, folders, extra):
    s = SIZES[size]
    io = {kind: onnx_io(os.path.join(root, name, f))
          for name in ("la13", "ctc") if name in folders for kind, f in folders[name].items()}
    if "nocache" in folders:
        io["encoder_without_cache_support"] = onnx_io(os.path.join(root, "nocache", folders["nocache"]["encoder"]))
    m = {
        "fixture": size,
        "generator": "models/make_fixtures.py",
        "versions": versions(),
        "architecture": {
            "n_layers": s["n_layers"], "d_model": s["d_model"], "n_heads": s["n_heads"],
            "ff_dim": 4 * s["d_model"], "subsampling_conv_channels": s["conv_channels"],
            "pos_emb_max_len": s["pos_emb_max_len"], "pred_hidden": s["pred_hidden"],
            "joint_hidden": s["joint_hidden"], "vocab_size": len(s["labels"]), "blank_id": len(s["labels"]),
            "labels": s["labels"], "att_context_sizes": ATT_CONTEXT_SIZES, "conv_kernel_size": CONV_KERNEL,
            "subsampling_factor": SUBSAMPLING, "params_rnnt_export": rnnt_export_param_counts(model),
            "params_ctc_head": count_params(model.ctc_decoder),
        },
        "folders": folders,
        "onnx_io": io,
        "n_calls": N_CALLS,
        "window_rule": WINDOW_RULE,
        "native_rule": NATIVE_RULE,
        "decoder_joint_rule": DEC_RULE,
        "offline_rule": "offline_uttK_X: model.encoder(audio_signal=uttK_mel[None], length=[T]) in eval mode with "
                        "set_default_att_context_size([70,R]); T = all mel columns (as NeMo's streaming buffer "
                        "counts them), output cut to the returned length.",
        "audio": audio_info,
        "onnxruntime": "CPUExecutionProvider, default options",
    }
    m.update(extra)
    return m


def versions():
    import importlib.metadata as md
    return {p: md.version(p) for p in ("nemo_toolkit", "torch", "onnx", "onnxruntime", "numpy")}


# --------------------------------------------------------------------------------------------------
# sherpa-onnx's layout (tiny/sherpa, tiny/sherpa-int8, tiny/ref-sherpa)
# --------------------------------------------------------------------------------------------------

def run_sherpa_walk(dec_sess, join_sess, enc_frames, blank, hidden, layers):
    """Greedy RNN-T with sherpa-onnx's decoder and joiner, every graph input bound by position (their names are
    torch-generated): the prediction network runs once per emitted token, the joint once per evaluation. Records
    each joint evaluation like run_decoder_joint: frame, token fed, states in, logits, states out."""
    d_in = [i.name for i in dec_sess.get_inputs()]
    j_in = [i.name for i in join_sess.get_inputs()]

    def predict(token, s1, s2):
        g, _, o1, o2 = dec_sess.run(None, {d_in[0]: np.array([[token]], np.int32), d_in[1]: np.array([1], np.int32),
                                           d_in[2]: s1, d_in[3]: s2})
        return g, o1, o2
    rec = {k: [] for k in ("enc", "frame", "targets", "state1_in", "state2_in", "pred", "logits", "state1_out",
                           "state2_out")}
    s1 = np.zeros((layers, 1, hidden), np.float32)
    s2 = np.zeros((layers, 1, hidden), np.float32)
    last, tokens = blank, []
    g, o1, o2 = predict(last, s1, s2)
    for t in range(enc_frames.shape[0]):
        frame = enc_frames[t]
        for _ in range(MAX_SYMBOLS):
            logits = join_sess.run(None, {j_in[0]: frame[None, :, None].astype(np.float32), j_in[1]: g})[0]
            for k, v in (("enc", frame), ("frame", t), ("targets", last), ("state1_in", s1[-1, 0]),
                         ("state2_in", s2[-1, 0]), ("pred", g[0, :, 0]), ("logits", logits[0, 0, 0]),
                         ("state1_out", o1[-1, 0]), ("state2_out", o2[-1, 0])):
                rec[k].append(np.array(v))
            k = int(np.argmax(logits[0, 0, 0]))
            if k == blank:
                break
            tokens.append(k)
            last, s1, s2 = k, o1, o2
            g, o1, o2 = predict(last, s1, s2)
    return {k: np.stack(v) for k, v in rec.items()}, tokens


def sherpa_refs(ref, folder, suffix, prefix, stream_mel, n_layers, d_model, blank, hidden):
    """ORT references of one sherpa folder on the la13 export-convention windows: encoder outputs of every
    call, the caches after the last call, the greedy walk's first DEC_CALLS joint evaluations from 4 calls
    before the first emission, and the walk's tokens."""
    enc = run_encoder_stream(ort_model(os.path.join(folder, "encoder" + suffix)),
                             export_windows(stream_mel, 13, N_CALLS), n_layers, d_model)
    ref.add(prefix + "enc_outputs", enc["outputs"], "ORT `outputs` of each call [N, d, T_out], la13 windows")
    ref.add(prefix + "enc_encoded_lengths", enc["encoded_lengths"], "ORT `encoded_lengths` of each call [N]")
    ref.add(prefix + "enc_cache_channel_last", enc["cache_channel"][-1], "cache_last_channel_next after the last call")
    ref.add(prefix + "enc_cache_time_last", enc["cache_time"][-1], "cache_last_time_next after the last call")
    frames = np.concatenate([o.T for o in enc["outputs"]], axis=0)
    r, tokens = run_sherpa_walk(ort_model(os.path.join(folder, "decoder" + suffix)),
                                ort_model(os.path.join(folder, "joiner" + suffix)), frames, blank, hidden, 1)
    emitting = np.nonzero(r["targets"] != blank)[0]
    j0 = max(0, int(emitting[0]) - 5) if emitting.size else 0
    sl = slice(j0, j0 + DEC_CALLS)
    for k in ("enc", "frame", "targets", "state1_in", "state2_in", "pred", "logits", "state1_out", "state2_out"):
        ref.add(prefix + "dec_" + k, r[k][sl], "sherpa walk, call j0+j: %s" % k)
    ref.add(prefix + "greedy_tokens", np.array(tokens, np.int64), "token ids of the whole sherpa greedy walk")
    return enc, tokens, {"first_stored_call": j0, "total_calls": int(r["enc"].shape[0]), "tokens": len(tokens)}


def make_sherpa(out, size="tiny"):
    """<size>/sherpa (fp32) and <size>/sherpa-int8 from the tiny model (references in tiny/ref-sherpa) or the trained
    small one (references in small/ref-sherpa, see small_sherpa_refs)."""
    import onnx
    t0 = time.time()
    s = SIZES[size]
    model = build_model(size) if size == "tiny" else load_or_train_small(out, False)[0]
    root = os.path.join(out, size)
    fp32, int8 = os.path.join(root, "sherpa"), os.path.join(root, "sherpa-int8")
    meta = export_sherpa_folder(model, fp32, ATT_CONTEXT_SIZES[0], url="models/make_fixtures.py (%s fixture)" % size)
    quantize_sherpa_folder(fp32, int8)
    # the same weights as NeMo's own layout of this model: the encoder graphs hold identical tensors
    nemo_enc = onnx.load(os.path.join(root, "la13", "encoder-%s.onnx" % size))
    ours = onnx.load(os.path.join(fp32, "encoder.onnx"))
    a = {t.name: onnx.numpy_helper.to_array(t) for t in nemo_enc.graph.initializer}
    b = {t.name: onnx.numpy_helper.to_array(t) for t in ours.graph.initializer}
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), "encoder weights differ from la13"
    log("sherpa: exported and quantized in %.1f s" % (time.time() - t0))
    if size == "small":
        small_sherpa_refs(out, model, fp32, int8, meta)
        log("sherpa-small: done in %.1f s" % (time.time() - t0))
        return

    L, d, blank, hidden = s["n_layers"], s["d_model"], len(s["labels"]), s["pred_hidden"]
    stream_mel = np.load(os.path.join(root, "ref", "stream_mel.npy"))
    ref = RefWriter(os.path.join(root, "ref-sherpa"))
    enc32, tok32, walk32 = sherpa_refs(ref, fp32, ".onnx", "", stream_mel, L, d, blank, hidden)
    enc8, tok8, walk8 = sherpa_refs(ref, int8, ".int8.onnx", "int8_", stream_mel, L, d, blank, hidden)
    nemo_layout = np.load(os.path.join(root, "ref", "enc_la13_outputs.npy"))
    same_as_nemo = float(np.abs(enc32["outputs"] - nemo_layout).max())
    dev8 = float(np.abs(enc8["outputs"] - enc32["outputs"]).max())
    agree = sum(1 for x, y in zip(tok8, tok32) if x == y)
    log("  fp32 encoder vs NeMo layout la13: max|diff| %.3g; int8 vs fp32 (ORT): max|diff| %.3g, scale %.3g"
        % (same_as_nemo, dev8, float(np.abs(enc32["outputs"]).max())))
    log("  tokens: fp32 %d, int8 %d, equal at %d positions" % (len(tok32), len(tok8), agree))
    ref.write_manifest({
        "fixture": size + "/sherpa", "generator": "models/make_fixtures.py sherpa", "versions": versions(),
        "metadata": {k: str(v) for k, v in meta.items()},
        "windows": "la13 export-convention windows of ../ref/stream_mel.npy (see ../ref/manifest.json window_rule)",
        "walk_rule": "greedy RNN-T as ../ref decoder_joint_walk, with decoder.onnx (run once per emitted token) "
                     "and joiner.onnx (once per evaluation); dec_* hold %d consecutive joint evaluations" % DEC_CALLS,
        "quantization": "onnxruntime.quantization.quantize_dynamic(op_types_to_quantize=['MatMul'], "
                        "weight_type=QUInt8) per graph",
        "walk_fp32": walk32, "walk_int8": walk8,
        "onnx_io": {part: onnx_io(os.path.join(fp32, part + ".onnx")) for part in SHERPA_FILES},
        "fp32_encoder_vs_nemo_layout_max_abs_diff": same_as_nemo,
        "int8_vs_fp32_encoder_max_abs_diff": dev8,
        "int8_tokens_equal_fp32_positions": agree,
    })
    log("sherpa: done in %.1f s" % (time.time() - t0))


SMALL_RECORDINGS = ("stream", "utt1", "utt2", "utt3", "extra1", "extra2")
# NeMo streaming settings run with the QUInt8-rounded weights: the export's look-ahead in both conventions, and the
# shortest look-ahead
QUINT8_SETTINGS = (("la13", "export"), ("la13", "native"), ("la0", "export"))
INT8_STORED_CALLS = 10   # int8 encoder outputs stored for the small fixture (the fp32 ones for all N_CALLS calls)


def edit_distance(a, b):
    """Levenshtein distance between two sequences (characters or token ids)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def agreement(candidate, reference):
    """1 - edit distance / reference length (0 at worst); 1 for two empty sequences."""
    if not reference:
        return 1.0 if not candidate else 0.0
    return max(0.0, 1.0 - edit_distance(candidate, reference) / len(reference))


def with_quint8_weights(model, size, fp32, int8):
    """A copy of `model` whose weights are those the int8 folder holds, dequantized: every MatMul weight that
    quantize_dynamic quantized (an initializer `<W>_quantized` with `<W>_scale`, `<W>_zero_point`) replaced by
    (q - zero_point) * scale in the PyTorch parameter it was exported from (found by exact equality of the fp32
    initializer with the parameter, transposed). Returns the copy and the number of weights replaced."""
    import onnx
    import torch
    from onnx import numpy_helper
    rounded = build_model(size)  # a NeMo model cannot be deep-copied
    rounded.load_state_dict(model.state_dict())
    params = {n: p for n, p in rounded.named_parameters() if p.dim() == 2}
    replaced = {}
    for part in SHERPA_FILES:
        f32 = {t.name: numpy_helper.to_array(t) for t in onnx.load(os.path.join(fp32, part + ".onnx")).graph.initializer}
        i8 = {t.name: numpy_helper.to_array(t)
              for t in onnx.load(os.path.join(int8, part + ".int8.onnx")).graph.initializer}
        for name, q in i8.items():
            if not name.endswith("_quantized"):
                continue
            base = name[: -len("_quantized")]
            w = f32[base]
            deq = (q.astype(np.float32) - np.float32(i8[base + "_zero_point"])) * np.float32(i8[base + "_scale"])
            found = [n for n, p in params.items()
                     if tuple(p.shape) == w.shape[::-1] and np.array_equal(p.detach().numpy().T, w)]
            assert len(found) == 1, "%s/%s: %d parameters match" % (part, base, len(found))
            assert found[0] not in replaced
            replaced[found[0]] = deq.T
    with torch.no_grad():
        for n, value in replaced.items():
            params[n].copy_(torch.from_numpy(np.ascontiguousarray(value)))
    rounded.eval()
    return rounded, len(replaced)


def small_sherpa_refs(out, model, fp32, int8, meta):
    """small/ref-sherpa: ORT on small/sherpa and small/sherpa-int8 (la13 windows of ../ref/stream_mel: every fp32
    encoder output, the first INT8_STORED_CALLS int8 ones, both greedy walks' tokens), and NeMo's own streaming
    tokens at the export's look-ahead [70,13] for every small recording, with the fp32 weights and with the
    QUInt8-rounded weights of the int8 folder."""
    s = SIZES["small"]
    labels, root = s["labels"], os.path.join(out, "small")
    L, d, blank, hidden = s["n_layers"], s["d_model"], len(labels), s["pred_hidden"]
    ref_dir = os.path.join(root, "ref")
    missing = [r for r in SMALL_RECORDINGS if not os.path.exists(os.path.join(ref_dir, r + "_audio.npy"))]
    assert not missing, "%s missing: run make_fixtures.py small and transcription_reference.py first" % missing
    with open(os.path.join(ref_dir, "transcriptions.json")) as f:
        nemo_refs = json.load(f)["recordings"]
    stream_mel = np.load(os.path.join(ref_dir, "stream_mel.npy"))
    windows = export_windows(stream_mel, 13, N_CALLS)
    ref = RefWriter(os.path.join(root, "ref-sherpa"))
    enc32 = run_encoder_stream(ort_model(os.path.join(fp32, "encoder.onnx")), windows, L, d)
    enc8 = run_encoder_stream(ort_model(os.path.join(int8, "encoder.int8.onnx")), windows, L, d)
    ref.add("enc_outputs", enc32["outputs"], "ORT `outputs` of encoder.onnx for each call [N, d, T_out], la13 windows")
    ref.add("enc_encoded_lengths", enc32["encoded_lengths"], "ORT `encoded_lengths` of each call [N]")
    ref.add("int8_enc_outputs", enc8["outputs"][:INT8_STORED_CALLS],
            "ORT `outputs` of encoder.int8.onnx for the first %d calls [n, d, T_out]" % INT8_STORED_CALLS)
    scale = float(np.abs(enc32["outputs"]).max())
    dev8 = float(np.abs(enc8["outputs"] - enc32["outputs"]).max())
    same_as_nemo = float(np.abs(enc32["outputs"] - np.load(os.path.join(ref_dir, "enc_la13_outputs.npy"))).max())
    walks = {}
    for key, folder, suffix, enc in (("fp32", fp32, ".onnx", enc32), ("int8", int8, ".int8.onnx", enc8)):
        frames = np.concatenate([o.T for o in enc["outputs"]], axis=0)
        _, tokens = run_sherpa_walk(ort_model(os.path.join(folder, "decoder" + suffix)),
                                    ort_model(os.path.join(folder, "joiner" + suffix)), frames, blank, hidden, 1)
        ref.add(("" if key == "fp32" else "int8_") + "greedy_tokens", np.array(tokens, np.int64),
                "token ids of the whole ORT greedy walk over the %d calls (%s files)" % (N_CALLS, key))
        walks[key] = tokens
    # the fp32 folder holds the weights of small/la13: its walk is the NeMo layout's walk
    assert walks["fp32"] == np.load(os.path.join(ref_dir, "greedy_la13_tokens.npy")).tolist()
    ort_text = {k: ids_to_text(v, labels) for k, v in walks.items()}
    ort_agreement = {"tokens": agreement(walks["int8"], walks["fp32"]),
                     "characters": agreement(ort_text["int8"], ort_text["fp32"])}
    log("  small sherpa: fp32 encoder vs NeMo layout %.3g; int8 vs fp32 (ORT) max|diff| %.3g, scaled %.3g; "
        "walk agreement %s" % (same_as_nemo, dev8, dev8 / scale, ort_agreement))

    rounded, n_rounded = with_quint8_weights(model, "small", fp32, int8)
    log("  NeMo with the QUInt8-rounded weights of %d MatMuls" % n_rounded)
    nemo, quint8 = {}, {}
    for rec in SMALL_RECORDINGS:
        audio = np.load(os.path.join(ref_dir, rec + "_audio.npy")).astype(np.float32) / 32768.0
        mel, _ = nemo_mel(model, audio)
        nemo[rec], quint8[rec] = {}, {}
        for la, conv in QUINT8_SETTINGS:
            key, pad = "%s_%s" % (conv, la), conv == "export"
            # NeMo's fp32 tokens are in transcriptions.json; one setting is recomputed to check they still hold
            ids32 = nemo_refs[rec][la][conv]
            if key == "export_la13":
                assert nemo_streaming_transcribe(model, mel, LOOKAHEADS[la], pad) == ids32, \
                    "%s: NeMo differs from transcriptions.json" % rec
            ids8 = nemo_streaming_transcribe(rounded, mel, LOOKAHEADS[la], pad)
            t32, t8 = ids_to_text(ids32, labels), ids_to_text(ids8, labels)
            if la == "la13":
                nemo[rec][key] = {"ids": ids32, "text": t32}
            quint8[rec][key] = {"tokens_equal_fp32": ids8 == ids32, "token_agreement": agreement(ids8, ids32),
                                "character_agreement": agreement(t8, t32)}
            if ids8 != ids32:
                quint8[rec][key].update({"ids": ids8, "text": t8})
        log("  NeMo %s la13: %s" % (rec, nemo[rec]["export_la13"]["text"][:120]))
    equal = sum(v["tokens_equal_fp32"] for r in quint8.values() for v in r.values())
    total = sum(len(r) for r in quint8.values())
    log("  NeMo QUInt8-rounded weights: tokens equal fp32 in %d of %d runs" % (equal, total))
    ref.write_manifest({
        "fixture": "small/sherpa", "generator": "models/make_fixtures.py sherpa-small", "versions": versions(),
        "metadata": {k: str(v) for k, v in meta.items()},
        "windows": "la13 export-convention windows of ../ref/stream_mel.npy (see ../ref/manifest.json window_rule)",
        "walk_rule": "greedy RNN-T as ../ref decoder_joint_walk, with decoder.onnx (run once per emitted token) and "
                     "joiner.onnx (once per evaluation)",
        "quantization": "onnxruntime.quantization.quantize_dynamic(op_types_to_quantize=['MatMul'], "
                        "weight_type=QUInt8) per graph",
        "onnx_io": {part: onnx_io(os.path.join(fp32, part + ".onnx")) for part in SHERPA_FILES},
        "fp32_encoder_vs_nemo_layout_max_abs_diff": same_as_nemo,
        "int8_vs_fp32_encoder_max_abs_diff": dev8,
        "int8_vs_fp32_encoder_max_scaled_diff": dev8 / scale,
        "fp32_encoder_max_abs": scale,
        "ort_walk_tokens": {k: len(v) for k, v in walks.items()},
        "ort_walk_int8_agreement": ort_agreement,
        "recordings": list(SMALL_RECORDINGS),
        "nemo_tokens": nemo,
        "nemo_tokens_rule": "NeMo's streaming greedy RNN-T (conformer_stream_step over CacheAwareStreamingAudioBuffer "
                            "chunks of NeMo's mel of ../ref/<recording>_audio.npy) at the export's look-ahead [70,13]: "
                            "export convention (pad_and_drop_preencoded=True) and native, from "
                            "../ref/transcriptions.json (export_la13 recomputed here and asserted equal)",
        "nemo_quint8": quint8,
        "nemo_quint8_rule": "the same NeMo streaming with the %d MatMul weights of the int8 folder dequantized "
                            "((q - zero_point) * scale) into the PyTorch model, at %s (look-ahead, convention); "
                            "compared with ../ref/transcriptions.json; agreement = 1 - edit distance / length of the "
                            "fp32 result (token ids, characters of the text)" % (n_rounded, QUINT8_SETTINGS),
        "nemo_quint8_tokens_equal_fp32_runs": [equal, total],
    })


# --------------------------------------------------------------------------------------------------
# narrow-small: NeMo with the weights rounded as the engine's bf16 and int8 store them
# --------------------------------------------------------------------------------------------------

# PyTorch's LSTM gates (input, forget, cell, output) in ONNX's order (input, output, forget, cell)
ONNX_LSTM_GATES = (0, 3, 1, 2)


def small_from_export(out):
    """The trained small model rebuilt from its committed export, models/small/la13, without the training cache: a
    freshly built model is exported to a temporary folder, each of its parameters found among that export's
    initializers by exact equality (MatMul weights transposed; the LSTM's gates in ONNX's order, its two biases
    concatenated), and given the committed initializer of the same name. Every parameter is then checked against
    small/ref/params.json (sum and sum of squares in float64, sampled values), which param_reference.py wrote from
    the trained model itself."""
    import onnx
    import torch
    from onnx import numpy_helper
    model = build_model("small")
    root = os.path.join(out, "small")
    files = ("encoder-small.onnx", "decoder_joint-small.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        export_folder(model, tmp, "small", 13)
        fresh = {f: {t.name: numpy_helper.to_array(t) for t in onnx.load(os.path.join(tmp, f)).graph.initializer}
                 for f in files}
    trained = {f: {t.name: numpy_helper.to_array(t)
                   for t in onnx.load(os.path.join(root, "la13", f)).graph.initializer} for f in files}

    def lstm_onnx(value, hidden):
        blocks = [value[g * hidden:(g + 1) * hidden] for g in range(4)]
        return np.concatenate([blocks[g] for g in ONNX_LSTM_GATES], axis=0)

    def lstm_torch(value, hidden):
        blocks = [value[g * hidden:(g + 1) * hidden] for g in range(4)]
        order = [ONNX_LSTM_GATES.index(g) for g in range(4)]
        return np.concatenate([blocks[o] for o in order], axis=0)

    restored = {}
    for name, p in model.named_parameters():
        v = p.detach().numpy()
        found = []
        for f in files:
            for init, a in fresh[f].items():
                if a.shape == v.shape and np.array_equal(a, v):
                    found.append((f, init, lambda t: t))
                elif v.ndim == 2 and a.shape == v.shape[::-1] and np.array_equal(a, v.T):
                    found.append((f, init, lambda t: np.ascontiguousarray(t.T)))
                elif ".lstm." in name and a.ndim >= 2 and a.shape[0] == 1:
                    hidden = v.shape[0] // 4
                    if "weight" in name and a.shape[1:] == v.shape and np.array_equal(a[0], lstm_onnx(v, hidden)):
                        found.append((f, init, lambda t, h=hidden: lstm_torch(t[0], h)))
                    elif "bias_ih" in name and a.shape == (1, 2 * v.size) and \
                            np.array_equal(a[0, :v.size], lstm_onnx(v, hidden)):
                        found.append((f, init, lambda t, h=hidden, n=v.size: lstm_torch(t[0, :n], h)))
                    elif "bias_hh" in name and a.shape == (1, 2 * v.size) and \
                            np.array_equal(a[0, v.size:], lstm_onnx(v, hidden)):
                        found.append((f, init, lambda t, h=hidden, n=v.size: lstm_torch(t[0, n:], h)))
        if not found:
            continue   # not in the RNN-T export (the CTC head)
        assert len(found) == 1, "%s: %d initializers match" % (name, len(found))
        f, init, convert = found[0]
        restored[name] = convert(trained[f][init]).astype(np.float32)
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in restored.items():
            params[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))
    with open(os.path.join(root, "ref", "params.json")) as f:
        expected = json.load(f)
    modules = (("", model.encoder), ("decoder.", model.decoder), ("joint.", model.joint))
    checked = 0
    for prefix, module in modules:
        for name, p in module.named_parameters():
            e = expected[prefix + name]
            flat = p.detach().numpy().astype(np.float32).reshape(-1)
            assert list(p.shape) == e["shape"], name
            assert abs(float(flat.astype(np.float64).sum()) - e["sum"]) <= 1e-9 * max(1.0, abs(e["sum"])), name
            assert abs(float((flat.astype(np.float64) ** 2).sum()) - e["sum_squares"]) <= 1e-9 * e["sum_squares"], name
            assert all(float(flat[i]) == v for i, v in e["samples"]), name
            checked += 1
    assert checked == len(expected), "%d of %d parameters checked" % (checked, len(expected))
    model.eval()
    log("  small rebuilt from small/la13: %d parameters restored, %d checked against params.json"
        % (len(restored), checked))
    return model


def narrowed_matrices(model):
    """The encoder weights the engine stores in bf16 or int8: every Linear and every 1 x 1 convolution of one group
    (pre_encode's pointwise convolutions, the conv modules' pointwise_conv1/2), as name -> parameter."""
    chosen = {}
    for name, p in model.encoder.named_parameters():
        if not name.endswith(".weight") or p.dim() < 2:
            continue
        if p.dim() == 2 or (p.shape[1] > 1 and all(n == 1 for n in p.shape[2:])):
            chosen[name] = p
    return chosen


def round_bf16(w):
    """float32 -> the nearest bfloat16 (ties to even), as float32: what `ck_pack_panels_bf16` stores."""
    u = np.ascontiguousarray(w, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def round_int8(w, group=None):
    """float32 [outputs, inputs, ...] -> 8-bit integers times a float32 scale per output (its largest |w| / 127),
    rounded to nearest even and kept within +-127, as float32: what `ck_pack_panels_int8` stores. With `group`, a
    scale per output and per `group` consecutive inputs instead (a study of finer scales; the engine has none)."""
    w = np.asarray(w, dtype=np.float32)
    flat = w.reshape(w.shape[0], -1)
    inputs = flat.shape[1]
    group = group or inputs
    pad = -inputs % group
    grouped = np.pad(flat, ((0, 0), (0, pad))).reshape(flat.shape[0], -1, group)
    scale = (np.abs(grouped).max(axis=2, keepdims=True) / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    q = np.clip(np.rint(grouped / safe), -127, 127).astype(np.float32)
    rounded = np.where(scale > 0, q * scale, np.float32(0)).astype(np.float32)
    return rounded.reshape(flat.shape[0], -1)[:, :inputs].reshape(w.shape)


def make_narrow_small(out):
    """small/ref-narrow/manifest.json: NeMo's streaming tokens (native convention, every recording, every trained
    look-ahead) with the encoder matrices rounded as the engine's bf16 and int8 store them, and with int8 scales per
    group of 64 and of 16 inputs (what finer scales would change)."""
    import torch
    t0 = time.time()
    s = SIZES["small"]
    labels, root = s["labels"], os.path.join(out, "small")
    ref_dir = os.path.join(root, "ref")
    with open(os.path.join(ref_dir, "transcriptions.json")) as f:
        nemo_refs = json.load(f)["recordings"]
    model = small_from_export(out)
    matrices = narrowed_matrices(model)
    log("  %d encoder matrices rounded: %s" % (len(matrices), ", ".join(sorted(matrices))))
    results, summary = {}, {}
    for precision, rounding in (("bf16", round_bf16), ("int8", round_int8),
                                ("int8_groups_of_64", lambda w: round_int8(w, 64)),
                                ("int8_groups_of_16", lambda w: round_int8(w, 16))):
        rounded = build_model("small")
        rounded.load_state_dict(model.state_dict())
        with torch.no_grad():
            params = dict(rounded.encoder.named_parameters())
            for name in matrices:
                params[name].copy_(torch.from_numpy(rounding(params[name].detach().numpy())))
        rounded.eval()
        results[precision], tokens, differing, equal, runs = {}, 0, 0, 0, 0
        for rec in SMALL_RECORDINGS:
            audio = np.load(os.path.join(ref_dir, rec + "_audio.npy")).astype(np.float32) / 32768.0
            mel, _ = nemo_mel(model, audio)
            results[precision][rec] = {}
            for la, r in LOOKAHEADS.items():
                ids32 = nemo_refs[rec][la]["native"]
                if precision == "bf16":   # the rebuilt model still gives transcriptions.json's tokens
                    assert nemo_streaming_transcribe(model, mel, r, False) == ids32, "%s %s: fp32 differs" % (rec, la)
                ids = nemo_streaming_transcribe(rounded, mel, r, False)
                distance = edit_distance(ids, ids32)
                results[precision][rec][la] = {"ids": ids, "text": ids_to_text(ids, labels),
                                               "tokens_equal_fp32": ids == ids32, "edit_distance_to_fp32": distance}
                tokens, differing, equal, runs = tokens + len(ids32), differing + distance, equal + (ids == ids32), runs + 1
        summary[precision] = {"fp32_tokens": tokens, "edit_distance": differing, "results_equal": [equal, runs]}
        log("  NeMo %s: %d of %d fp32 tokens differ (edit distance); %d of %d results equal"
            % (precision, differing, tokens, equal, runs))
    ref = RefWriter(os.path.join(root, "ref-narrow"))
    ref.write_manifest({
        "fixture": "small/la13", "generator": "models/make_fixtures.py narrow-small", "versions": versions(),
        "recordings": list(SMALL_RECORDINGS),
        "rule": "NeMo's streaming greedy RNN-T, native convention (conformer_stream_step over "
                "CacheAwareStreamingAudioBuffer(pad_and_drop_preencoded=False) chunks of NeMo's mel of "
                "../ref/<recording>_audio.npy) at every trained look-ahead, with the trained small model (rebuilt from "
                "../la13 and checked against ../ref/params.json) whose encoder matrices (%s) are rounded: bf16 to the "
                "nearest bfloat16, ties to even; int8 to q * scale with scale = max |w| / 127 per output and q = "
                "round-half-even(w / scale) within +-127; int8_groups_of_G (a study: the engine has no such "
                "precision) with a scale per output and per G consecutive inputs. Everything else stays float32. "
                "Compared with ../ref/transcriptions.json's native tokens." % ", ".join(sorted(matrices)),
        "matrices": sorted(matrices),
        "tokens": results,
        "summary": summary,
    })
    log("narrow-small: done in %.1f s" % (time.time() - t0))


# --------------------------------------------------------------------------------------------------
# large
# --------------------------------------------------------------------------------------------------

def make_large(out, lookaheads=("la13", "la0")):
    t0 = time.time()
    model = build_model("large")
    counts = rnnt_export_param_counts(model)
    log("large: built in %.1f s, RNN-T export params %s" % (time.time() - t0, counts))
    assert counts == LARGE_PARAMS, counts
    assert count_params(model.ctc_decoder) == 525_825
    for la in lookaheads:
        t1 = time.time()
        export_folder(model, os.path.join(out, "large", la), "large", LOOKAHEADS[la])
        log("large: %s exported in %.1f s" % (la, time.time() - t1))
    log("large: done in %.1f s" % (time.time() - t0))


# --------------------------------------------------------------------------------------------------
# small (trained)
# --------------------------------------------------------------------------------------------------

# Measured here (2 cores, torch.set_num_threads(1)): 1500 steps of batch 16 in 1232 s (0.82 s/step) with a few other
# builds sharing the CPU, 5573 s (3.7 s/step) with many; mean loss of the last 20 steps 0.066 (RNN-T + 0.3 CTC) in
# the run the committed small/ comes from (an earlier run ended at 0.074: retraining gave other weights, so --retrain
# means regenerating all of small/); greedy output then reproduces training sentences ("my brother likes green apples")
# and gives fragments on unseen ones ("we ate dinner by the fire" -> "we at bive the finer").
TRAIN = dict(steps=1500, batch=16, lr=2e-3, warmup=50, min_lr=1e-5, weight_decay=1e-3, seed=777)


def training_clips():
    clips = []
    for speed in TRAIN_SPEEDS:
        for s in TRAIN_SENTENCES:
            clips.append((synth(s, speed=speed), normalize_text(s)))
    return clips


def make_batch(clips, idx, labels):
    import torch
    audio = [clips[i][0] for i in idx]
    text = [[labels.index(c) for c in clips[i][1]] for i in idx]
    a = torch.zeros(len(idx), max(x.size for x in audio))
    for i, x in enumerate(audio):
        a[i, : x.size] = torch.from_numpy(x)
    t = torch.zeros(len(idx), max(len(x) for x in text), dtype=torch.long)
    for i, x in enumerate(text):
        t[i, : len(x)] = torch.tensor(x)
    return (a, torch.tensor([x.size for x in audio]), t, torch.tensor([len(x) for x in text]))


def train_step_loss(model, batch):
    a, a_len, t, t_len = batch
    mel, mel_len = model.preprocessor(input_signal=a, length=a_len)
    enc, enc_len = model.encoder(audio_signal=mel, length=mel_len)
    dec, _, _ = model.decoder(targets=t, target_length=t_len)
    joint = model.joint(encoder_outputs=enc, decoder_outputs=dec)
    rnnt = model.loss(log_probs=joint, targets=t, input_lengths=enc_len, target_lengths=t_len)
    lp = model.ctc_decoder(encoder_output=enc)
    ctc = model.ctc_loss(log_probs=lp, targets=t, input_lengths=enc_len, target_lengths=t_len)
    w = model.ctc_loss_weight
    return (1 - w) * rnnt + w * ctc, rnnt, ctc


def train_small(model, cfg, max_steps=None):
    import torch
    from nemo.core.optim.lr_scheduler import CosineAnnealing
    labels = SIZES["small"]["labels"]
    seed_everything(cfg["seed"])
    t0 = time.time()
    clips = training_clips()
    log("small: %d training clips (%.1f s of audio) synthesised in %.1f s"
        % (len(clips), sum(c[0].size for c in clips) / SAMPLE_RATE, time.time() - t0))
    steps = cfg["steps"] if max_steps is None else max_steps
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.98), weight_decay=cfg["weight_decay"])
    sched = CosineAnnealing(opt, max_steps=cfg["steps"], warmup_steps=cfg["warmup"], min_lr=cfg["min_lr"])
    rng = np.random.default_rng(cfg["seed"])
    order = []
    model.train()
    t0 = time.time()
    history = []
    for step in range(steps):
        if len(order) < cfg["batch"]:
            order += list(rng.permutation(len(clips)))
        idx, order = order[: cfg["batch"]], order[cfg["batch"]:]
        loss, rnnt, ctc = train_step_loss(model, make_batch(clips, idx, labels))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append(float(loss))
        if step % 10 == 0 or step == steps - 1:
            log("step %4d loss %.3f (rnnt %.3f ctc %.3f) lr %.2e %.2f s/step"
                % (step, float(loss), float(rnnt), float(ctc), opt.param_groups[0]["lr"],
                   (time.time() - t0) / (step + 1)))
    model.eval()
    return {"steps": steps, "seconds": round(time.time() - t0, 1), "final_loss": float(np.mean(history[-20:])),
            "s_per_step": round((time.time() - t0) / steps, 3)}


def run_export_nemo(args):
    """export_nemo.py in a separate process, as a user runs it: (exit status, stdout, stderr)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "export_nemo.py")
    r = subprocess.run([sys.executable, script] + args, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def retarget_nemo(src, dst, target):
    """A copy of the .nemo archive `src` whose model_config.yaml names `target` as the model class."""
    import tarfile
    import yaml
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(src) as t:
            t.extractall(tmp, filter="data")
        cfg_path = os.path.join(tmp, "model_config.yaml")
        with open(cfg_path) as f:
            cfg = yaml.safe_load(f)
        cfg["target"] = target
        with open(cfg_path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        with tarfile.open(dst, "w") as t:
            for name in sorted(os.listdir(tmp)):
                t.add(os.path.join(tmp, name), arcname="./" + name)


def same_graphs(a, b, ignore_metadata=("url",)):
    """Whether two ONNX files hold the same graph and tensors, and the same metadata but for `ignore_metadata`."""
    import onnx
    ma, mb = onnx.load(a), onnx.load(b)
    ta = {t.name: onnx.numpy_helper.to_array(t) for t in ma.graph.initializer}
    tb = {t.name: onnx.numpy_helper.to_array(t) for t in mb.graph.initializer}
    meta = [{p.key: p.value for p in m.metadata_props if p.key not in ignore_metadata} for m in (ma, mb)]
    return (sorted(ta) == sorted(tb) and all(np.array_equal(ta[k], tb[k]) for k in ta)
            and [n.SerializeToString() for n in ma.graph.node] == [n.SerializeToString() for n in mb.graph.node]
            and meta[0] == meta[1])


def built_stt():
    """The most recently built `stt` release binary in this checkout (.build*/release/stt), or None."""
    import glob
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = [p for p in glob.glob(os.path.join(root, ".build*", "release", "stt")) if os.access(p, os.X_OK)]
    return max(found, key=os.path.getmtime) if found else None


def check_export_nemo(out):
    """export_nemo.py on .nemo files, in separate processes as a user runs it:
    1. the tiny model's .nemo -> files byte-identical to tiny/la13, ORT outputs equal to tiny/ref;
    2. the small model's .nemo with its config's `target` naming the SentencePiece hybrid class (which NeMo cannot
       restore from a character model): restored as EncDecHybridRNNTCTCModel, chosen from the config; files
       byte-identical to small/la13 and ORT outputs equal to small/ref; `stt transcribe` on the folder gives NeMo's
       text of samples/green-apples.wav; a wrong --model-class fails with one line;
    3. --layout sherpa --int8 on both -> the graphs of tiny/sherpa(-int8) and small/sherpa(-int8)."""
    t0 = time.time()
    checks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in ("tiny", "small"):
            s = SIZES[size]
            model = build_model(size) if size == "tiny" else load_or_train_small(out, False)[0]
            ref = os.path.join(out, size, "ref")
            mel = np.load(os.path.join(ref, "stream_mel.npy"))
            os.makedirs(os.path.join(tmp, size))
            nemo_path = os.path.join(tmp, size, size + ".nemo")
            model.save_to(nemo_path)
            if size == "small":
                from nemo.collections.asr.models import ASRModel
                bpe = "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel"
                os.makedirs(os.path.join(tmp, "retargeted"))
                plain, nemo_path = nemo_path, os.path.join(tmp, "retargeted", size + ".nemo")
                retarget_nemo(plain, nemo_path, bpe)
                try:
                    ASRModel.restore_from(nemo_path, map_location="cpu")
                    raise AssertionError("NeMo restored the retargeted .nemo without help")
                except AssertionError:
                    raise
                except Exception as e:
                    log("NeMo's own restore of the retargeted .nemo fails: %s: %s"
                        % (type(e).__name__, str(e).splitlines()[0][:160]))
            folder = os.path.join(tmp, size + "-nemo")
            status, stdout, stderr = run_export_nemo(["--nemo", nemo_path, "--out", folder, "--lookahead", "1040"])
            log("export_nemo.py (%s) printed:\n%s%s" % (size, stdout, stderr))
            assert status == 0 and not stderr.strip(), (status, stderr)
            lines = stdout.strip().splitlines()
            assert lines[-1] == "try:   stt transcribe --model %s FILE.wav" % folder, lines
            assert len(lines) == (3 if size == "small" else 2), "expected only the summary lines: %s" % lines
            if size == "small":
                assert "restored as EncDecHybridRNNTCTCModel" in lines[0], lines[0]
            # ORT on the export and on the committed folder, in this process; and against the stored references
            # (ONNX Runtime's results can move by ~1e-6 between runs on different CPU loads or thread counts)
            windows = export_windows(mel, 13, N_CALLS)
            r, committed = (run_encoder_stream(ort_model(os.path.join(d, "encoder-%s.onnx" % size)), windows,
                                               s["n_layers"], s["d_model"]) for d in (folder, os.path.join(out, size, "la13")))
            keys = ("outputs", "cache_channel", "cache_time")
            dev = max(float(np.abs(r[k] - committed[k]).max()) for k in keys)
            calls = list(range(N_CALLS)) if size == "tiny" else SMALL_CACHE_CALLS
            stored = max([float(np.abs(r["outputs"] - np.load(os.path.join(ref, "enc_la13_outputs.npy"))).max())] +
                         [float(np.abs(r[k][calls] - np.load(os.path.join(ref, "enc_la13_%s.npy" % k))).max())
                          for k in keys[1:]])
            same = {f: open(os.path.join(folder, f), "rb").read() == open(os.path.join(out, size, "la13", f), "rb").read()
                    for f in ("encoder-%s.onnx" % size, "decoder_joint-%s.onnx" % size, "tokens.txt")}
            log("%s: ORT on the export vs on %s/la13: max|diff| %.3g (vs %s/ref: %.3g); byte-identical to %s/la13: %s"
                % (size, size, dev, size, stored, size, same))
            assert dev == 0.0 and stored < 1e-5 and all(same.values())
            with open(os.path.join(folder, "model.json")) as f:
                meta = json.load(f)
            assert meta["cache_support"] is True and meta["export_att_context"] == [70, 13]
            checks[size] = {"ort_max_abs_diff": dev, "ort_vs_stored_refs": stored, "byte_identical": same}

            sherpa = os.path.join(tmp, size + "-sherpa")
            status, stdout, stderr = run_export_nemo(["--nemo", nemo_path, "--out", sherpa, "--layout", "sherpa",
                                                      "--int8"])
            assert status == 0 and not stderr.strip(), (status, stdout, stderr)
            pairs = [(p + ".onnx", os.path.join(out, size, "sherpa")) for p in SHERPA_FILES] + \
                    [(p + ".int8.onnx", os.path.join(out, size, "sherpa-int8")) for p in SHERPA_FILES]
            sherpa_same = {f: same_graphs(os.path.join(sherpa, f), os.path.join(d, f)) for f, d in pairs}
            tokens_same = open(os.path.join(sherpa, "tokens.txt"), "rb").read() == \
                open(os.path.join(out, size, "sherpa", "tokens.txt"), "rb").read()
            log("%s --layout sherpa --int8: %s; graphs (metadata url aside) equal to %s/sherpa(-int8): %s, "
                "tokens.txt equal: %s" % (size, sorted(os.listdir(sherpa)), size, sherpa_same, tokens_same))
            assert all(sherpa_same.values()) and tokens_same
            checks[size]["sherpa_layout_equal"] = sherpa_same

            if size != "small":
                continue
            status, stdout, stderr = run_export_nemo(["--nemo", nemo_path, "--out", os.path.join(tmp, "wrong"),
                                                      "--model-class", "EncDecHybridRNNTCTCBPEModel"])
            log("forced wrong class: exit %d, stderr: %s" % (status, stderr.strip()))
            assert status == 1 and len(stderr.strip().splitlines()) == 1 and not stdout.strip()
            assert stderr.startswith("export_nemo.py: error: NeMo could not restore")
            # NeMo's text of the sample: its streaming decode in the engine's default setting (native, [70,13]) and
            # its offline transcription
            import soundfile as sf
            repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            wav = os.path.join(repo, "samples", "green-apples.wav")
            audio, sr = sf.read(wav, dtype="float32")
            assert sr == SAMPLE_RATE
            mel_wav, _ = nemo_mel(model, audio)
            native = ids_to_text(nemo_streaming_transcribe(model, mel_wav, 13, False), s["labels"])
            offline = nemo_offline_transcribe(model, [audio])[0][1]
            checks["nemo_text"] = {"streaming_native_la13": native, "offline": offline}
            stt = built_stt()
            if stt is None:
                log("no built stt found (.build*/release/stt): `stt transcribe` not checked; NeMo says %r" % native)
                checks["stt"] = None
                continue
            texts = {}
            for name, d in (("nemo layout", folder), ("sherpa layout", sherpa)):
                r = subprocess.run([stt, "transcribe", "--model", d, wav], capture_output=True, text=True)
                assert r.returncode == 0, r.stderr
                texts[name] = r.stdout.strip()
            log("stt transcribe (%s): %s; NeMo streaming (native, la13): %r, NeMo offline: %r"
                % (stt, texts, native, offline))
            assert all(t == native for t in texts.values()), (texts, native)
            checks["stt"] = texts
    log("export check done in %.1f s: %s" % (time.time() - t0, json.dumps(checks, default=str)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fixture", choices=["tiny", "small", "large", "sherpa", "sherpa-small", "narrow-small", "all",
                                       "check-export"],
                   help="check-export: export .nemo files of tiny and small with export_nemo.py and compare")
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--retrain", action="store_true", help="train small again instead of using the cache")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--steps", type=int, default=TRAIN["steps"], help="training steps for small (with --retrain)")
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    import logging as pylog
    from nemo.utils import logging as nemo_logging
    nemo_logging.setLevel(pylog.ERROR)

    TRAIN["steps"] = args.steps
    todo = ["tiny", "sherpa", "large", "small", "sherpa-small", "narrow-small"] if args.fixture == "all" else [args.fixture]
    for f in todo:
        {"tiny": make_tiny, "large": make_large, "small": lambda o: make_small(o, args.retrain),
         "sherpa": make_sherpa, "sherpa-small": lambda o: make_sherpa(o, "small"), "narrow-small": make_narrow_small,
         "check-export": check_export_nemo}[f](args.out)


def load_or_train_small(out, retrain):
    """The trained small model: from models/.cache/small.pt unless missing or --retrain."""
    import torch
    cache_dir = os.path.join(out, ".cache")
    weights, summary_path = os.path.join(cache_dir, "small.pt"), os.path.join(cache_dir, "small.json")
    if retrain or not (os.path.exists(weights) and os.path.exists(summary_path)):
        model = build_model("small")
        summary = train_small(model, TRAIN)
        summary.update({"config": TRAIN, "speeds": TRAIN_SPEEDS, "sentences": len(TRAIN_SENTENCES),
                        "torch_threads": torch.get_num_threads()})
        os.makedirs(cache_dir, exist_ok=True)
        torch.save(model.state_dict(), weights)
        with open(summary_path, "w") as f:
            json.dump(summary, f, indent=1)
        log("small: trained %d steps in %.1f s (%.3f s/step), final loss %.3f"
            % (summary["steps"], summary["seconds"], summary["s_per_step"], summary["final_loss"]))
    with open(summary_path) as f:
        summary = json.load(f)
    # a fresh instance: default positional table size, no exporter state, eval mode
    model = build_model("small")
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()
    return model, summary


def make_small(out, retrain):
    t0 = time.time()
    size = "small"
    s = SIZES[size]
    model, summary = load_or_train_small(out, retrain)
    labels = s["labels"]
    blank = len(labels)
    L, d = s["n_layers"], s["d_model"]

    samples = [TRAIN_SENTENCES[3], TRAIN_SENTENCES[30], UNSEEN_SENTENCES[6]]
    hyps = nemo_offline_transcribe(model, [synth(x) for x in samples])
    sample_out = []
    for x, (ids, text) in zip(samples, hyps):
        seen = "training" if x in TRAIN_SENTENCES else "unseen"
        log("  sample (%s): %-45s -> %s" % (seen, x, text))
        sample_out.append({"sentence": x, "kind": seen, "nemo_greedy": text})
    log("small: training %d steps, %.1f s (%.3f s/step), final loss %.3f"
        % (summary["steps"], summary["seconds"], summary["s_per_step"], summary["final_loss"]))

    root = os.path.join(out, size)
    folders = {
        "la13": export_folder(model, os.path.join(root, "la13"), size, 13),
        "ctc": export_folder(model, os.path.join(root, "ctc"), size, 13, decoder_type="ctc"),
    }
    audio = reference_audio()
    ref = RefWriter(os.path.join(root, "ref"))
    mels, audio_info = audio_and_mel_refs(ref, model, audio)
    stream_mel = mels["stream"]
    enc_path = os.path.join(root, "la13", folders["la13"]["encoder"])
    res13 = encoder_refs(ref, enc_path, stream_mel, 13, L, d, "enc_la13", cache_calls=SMALL_CACHE_CALLS)
    encoder_refs(ref, enc_path, stream_mel, 0, L, d, "enc_la13export_at_la0", cache_calls=SMALL_CACHE_CALLS,
                 desc_extra=", fed to the [70,13] export")
    lp, lp_len = run_ctc_stream(ort_model(os.path.join(root, "ctc", folders["ctc"]["ctc"])),
                                export_windows(stream_mel, 13, N_CALLS), L, d)
    ref.add("ctc_la13_logprobs", lp, "ORT `logprobs` of the ctc/ export on the la13 windows [N, T_out, V+1]")
    ref.add("ctc_la13_encoded_lengths", lp_len, "ORT encoded_lengths of the ctc/ export [N]")
    walk = decoder_refs(ref, os.path.join(root, "la13", folders["la13"]["decoder_joint"]), res13["outputs"],
                        blank, s["pred_hidden"], labels)
    log("  ORT greedy over %d la13 calls: %s" % (N_CALLS, walk["text"]))
    stream_devs = offline_refs(ref, model, mels)

    # NeMo transcriptions (greedy RNN-T)
    keys = ("utt1", "utt2", "utt3", "stream")
    offline = nemo_offline_transcribe(model, [audio[k][0] for k in keys])
    nemo_text = {}
    for k, (ids, text) in zip(keys, offline):
        nemo_text[k] = {"offline_la13": {"ids": ids, "text": text}}
        log("  NeMo offline %s: %s" % (k, text[:200]))
    for k in keys:
        for conv, pad in (("native", False), ("export", True)):
            for la in ("la13", "la0"):
                ids = nemo_streaming_transcribe(model, mels[k], LOOKAHEADS[la], pad)
                nemo_text[k]["streaming_%s_%s" % (conv, la)] = {"ids": ids, "text": ids_to_text(ids, labels)}
        log("  NeMo streaming %s (native la13): %s" % (k, nemo_text[k]["streaming_native_la13"]["text"][:200]))

    # the ORT greedy walk over the export-convention la13 calls must be what NeMo's own streaming
    # (pad_and_drop_preencoded=True) decodes for the same frames
    ort_ids = np.load(os.path.join(root, "ref", "greedy_la13_tokens.npy")).tolist()
    nemo_ids = nemo_text["stream"]["streaming_export_la13"]["ids"]
    assert ort_ids == nemo_ids[: len(ort_ids)], "ORT greedy walk differs from NeMo's export-convention stream"
    log("  ORT greedy walk (%d tokens) == prefix of NeMo streaming_export_la13 (%d tokens)"
        % (len(ort_ids), len(nemo_ids)))
    walk["equals_prefix_of"] = "nemo_transcriptions.stream.streaming_export_la13"

    ref.write_manifest(common_manifest(size, model, audio_info, root, folders, {
        "cache_calls": SMALL_CACHE_CALLS,
        "native_streaming_vs_offline": stream_devs,
        "decoder_joint_walk": walk,
        "nemo_transcriptions": nemo_text,
        "nemo_transcriptions_rule": (
            "offline_la13: model.transcribe(audio) (NeMo greedy_batch RNN-T, max_symbols 10, att_context [70,13], "
            "mel length = NeMo's valid length). streaming_<conv>_<la>: model.conformer_stream_step over "
            "CacheAwareStreamingAudioBuffer chunks of the stored mel (native: pad_and_drop_preencoded=False, "
            "export: True), hypotheses carried across chunks; ids exclude blank."),
        "training": summary,
        "training_samples": sample_out,
    }))
    log("small: done in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
