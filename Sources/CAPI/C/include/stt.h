/*
 * stt.h: the C API of stt, streaming speech recognition with NVIDIA NeMo's cache-aware FastConformer models
 * (hybrid RNN-T + CTC) run natively. Link with libstt (`pkg-config --cflags --libs stt`).
 *
 * Use
 *   stt_model *model;                       load a model folder once
 *   stt_model_load("models/small/la13", NULL, &model);
 *   stt_stream *stream;                     one stream per audio source
 *   stt_stream_create(model, NULL, &stream);
 *   stt_stream_push_f32(stream, samples, count, 48000);   any sample rate, as the audio arrives
 *   stt_stream_read_new_text(stream, &text);             text that became final since the last read
 *   stt_stream_finish(stream);                           end of audio
 *   stt_stream_text(stream, &text);                      the text
 *   stt_stream_free(stream); stt_model_free(model);
 *
 * Errors
 *   Every function that can fail returns an stt_status. STT_OK is 0; on any other value nothing was changed unless the
 *   function says otherwise, every output argument is left as it was, and stt_last_error() holds a one-line message.
 *   Every pointer argument is checked: NULL where a value is needed is STT_ERROR_INVALID_ARGUMENT, never a crash. A
 *   handle must be one this library returned and has not freed (that cannot be checked).
 *
 * Threads
 *   A model is immutable once loaded: any number of threads may create and run streams on one model at the same time.
 *   A stream is used by one thread at a time (it may move between threads; calls on one stream from several threads at
 *   once are serialized inside, so they cannot corrupt it, but their order is then unspecified). stt_stream_free and
 *   stt_model_free must not run while another thread uses that handle. Streams keep their model alive: a model may be
 *   freed while its streams are still in use; its memory goes with the last of them.
 *
 * Memory
 *   Every string and array the library returns to the caller is one allocation that the caller owns and releases
 *   with stt_free() (arrays of structs include the strings they point to: one stt_free releases everything). Strings
 *   are UTF-8 and NUL-terminated. The library keeps no pointer the caller passes in after the call returns.
 *
 * Times are seconds from the start of the stream (its creation or last reset), as doubles.
 */
#ifndef STT_H
#define STT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this API's binary interface. It changes, together with the library's SONAME (libstt.so.1), only
 * when a change would break a program built against an earlier header. Fields appended to the option structs do not
 * change it (see struct_size). */
#define STT_ABI_VERSION 1
/* The library's version, "MAJOR.MINOR.PATCH": the version of STTKit it is built from. */
#define STT_VERSION "0.5.0"

/* The result of a call. */
typedef enum stt_status {
    STT_OK = 0,
    /* A NULL pointer where a value is needed, a negative or impossible size, an unknown option value, a struct_size
     * this library does not know, a path that is not UTF-8. */
    STT_ERROR_INVALID_ARGUMENT = 1,
    /* The model folder cannot be loaded: missing or malformed files. The message says which and why. */
    STT_ERROR_MODEL = 2,
    /* Options the model cannot run: a look-ahead it was not trained with, a decoder its folder lacks, a precision
     * this version does not offer. */
    STT_ERROR_UNSUPPORTED = 3,
    /* Audio the stream refuses: a NaN or infinite sample, a sample far outside [-1, 1], a sample rate outside
     * 1 Hz ... 768 kHz. Nothing of that push was used; the stream goes on as if it had not been made. */
    STT_ERROR_AUDIO = 4,
    /* A call the stream's state does not allow: a push after stt_stream_finish (call stt_stream_reset first). */
    STT_ERROR_STATE = 5,
    /* A string or array for the caller could not be allocated. (Memory the engine itself needs, for a model or a
     * stream as it opens, cannot be recovered this way: running out of it ends the process.) */
    STT_ERROR_OUT_OF_MEMORY = 6
} stt_status;

/* A loaded model folder. Opaque; from stt_model_load, released by stt_model_free. */
typedef struct stt_model stt_model;
/* One live stream of audio on a model. Opaque; from stt_stream_create, released by stt_stream_free. */
typedef struct stt_stream stt_stream;

/* ---- Version and errors ---- */

/* STT_ABI_VERSION of the library that is running: compare it with the header's to detect a mismatched install. */
uint32_t stt_abi_version(void);

/* The library's version string, STT_VERSION of the header it was built with. Static storage: never freed. */
const char *stt_version(void);

/* The message of the last call on this thread that did not return STT_OK: one line of UTF-8 without a trailing
 * newline, at most 1023 bytes; "" if no call on this thread has failed. Never NULL. The library owns it: it stays
 * valid and unchanged until the next failing call on the same thread, or until the thread exits. Calls that succeed
 * leave it as it is. */
const char *stt_last_error(void);

/* Releases a string or array the library returned (stt_stream_text, stt_stream_words, ...). NULL is ignored. */
void stt_free(void *pointer);

/* ---- Models ---- */

/* Precision of the weights the engine computes with. */
enum {
    /* 32-bit floats, exact (int8 exports are expanded to it when loaded). */
    STT_PRECISION_FP32 = 0,
    /* The encoder's weight matrices stored as bfloat16: half the bytes each step reads; the text may differ slightly
     * from fp32's. */
    STT_PRECISION_BF16 = 1,
    /* The encoder's weight matrices in 8 bits with a scale per column, each step's rows rounded to 16 bits: a quarter
     * of the bytes; a sherpa-onnx folder's *.int8.onnx files where it has them. The text differs more than bf16's. */
    STT_PRECISION_INT8 = 2
};

/* How a model is loaded. Fill with stt_model_options_init, then change fields. */
typedef struct stt_model_options {
    /* sizeof(stt_model_options) of the caller's header; set by stt_model_options_init. Lets a later library version
     * append fields: bytes past the fields this library knows must be zero. */
    uint32_t struct_size;
    /* Threads each weight product of the model's streams may use, the calling thread included: 1 ... 64. Default 1.
     * The model owns these threads; nothing process-wide changes. */
    int32_t threads;
    /* STT_PRECISION_FP32 (the default), STT_PRECISION_BF16 or STT_PRECISION_INT8; others are STT_ERROR_UNSUPPORTED. */
    int32_t precision;
} stt_model_options;

/* Sets every field of *options to its default (struct_size included). */
stt_status stt_model_options_init(stt_model_options *options);

/* Loads a model folder: NeMo's export (encoder-*.onnx with cache inputs, decoder_joint-*.onnx or a CTC graph,
 * tokens.txt, optional model.json) or a sherpa-onnx NeMo transducer folder. options may be NULL for the defaults.
 * On success *model is a new handle for stt_model_free. Loading reads and checks every weight (a fraction of a second
 * for the 114 M-parameter reference model); STT_ERROR_MODEL says what is wrong with a folder. */
stt_status stt_model_load(const char *folder, const stt_model_options *options, stt_model **model);

/* Releases a model. Streams created on it stay usable (they keep it alive). NULL is ignored. */
void stt_model_free(stt_model *model);

/* What a loaded model offers. */
typedef struct stt_model_info {
    /* sizeof(stt_model_info) of the caller's header: set it before calling stt_model_get_info, which fills the
     * fields that fit (and sets to 0 those of a later header that this library does not know). */
    uint32_t struct_size;
    /* The look-ahead a stream uses by default: the one the encoder was exported with. */
    int32_t default_lookahead_ms;
    /* Look-aheads the model was trained with, in milliseconds, shortest first; the first lookahead_count entries
     * (at most 16) are used. */
    int32_t lookahead_count;
    int32_t lookaheads_ms[16];
    /* 1 when the folder has that decoder, else 0. */
    int32_t has_rnnt;
    int32_t has_ctc;
    /* Threads the model's products use (as loaded; fewer than asked if the system refused some). */
    int32_t threads;
    /* Milliseconds of audio per encoder frame (80 for the reference model): the granularity of token times. */
    int32_t frame_ms;
    /* Entries in tokens.txt, the blank included. */
    int32_t vocabulary_size;
    /* The rate the model hears (16000); pushes at other rates are resampled to it. */
    int32_t sample_rate;
} stt_model_info;

/* Fills *info (up to info->struct_size bytes). */
stt_status stt_model_get_info(const stt_model *model, stt_model_info *info);

/* ---- Streams ---- */

/* stt_stream_options.lookahead_ms: the model's default look-ahead. */
#define STT_LOOKAHEAD_DEFAULT (-1)

/* stt_stream_options.decoder */
enum {
    STT_DECODER_DEFAULT = 0, /* RNN-T when the folder has it, else CTC */
    STT_DECODER_RNNT = 1,
    STT_DECODER_CTC = 2
};

/* stt_stream_options.convention: how the first encoder window is cut. */
enum {
    /* The streamed result equals the model's offline (whole-file) result at the same look-ahead. The default. */
    STT_CONVENTION_NATIVE = 0,
    /* What the ONNX export computes (first window padded with zero frames): compare with ONNX Runtime or
     * sherpa-onnx. */
    STT_CONVENTION_EXPORT_COMPATIBLE = 1
};

/* How a stream decodes. Fill with stt_stream_options_init, then change fields. */
typedef struct stt_stream_options {
    /* sizeof(stt_stream_options) of the caller's header; set by stt_stream_options_init (see stt_model_options). */
    uint32_t struct_size;
    /* Milliseconds of audio past a word the model hears before the word is final: one the model was trained with
     * (stt_model_info.lookaheads_ms; 0, 80, 480 or 1040 for the reference model), or STT_LOOKAHEAD_DEFAULT. */
    int32_t lookahead_ms;
    /* STT_DECODER_DEFAULT, STT_DECODER_RNNT or STT_DECODER_CTC. */
    int32_t decoder;
    /* STT_CONVENTION_NATIVE or STT_CONVENTION_EXPORT_COMPATIBLE. */
    int32_t convention;
    /* 1: watch for the end of an utterance with the three rules below (stt_stream_is_endpoint); 0 (default): off. */
    int32_t endpointing;
    /* Endpoint rules, in milliseconds; 0 turns a rule off, negative values are invalid. An endpoint is reached when
     * any rule that is on holds for the current utterance:
     *   silence_without_speech_ms (default 2400): this much trailing silence and nothing recognized yet;
     *   silence_after_speech_ms (default 1200): this much trailing silence after something was recognized;
     *   max_utterance_ms (default 20000): the utterance is this long.
     * Silence is judged from what the decoder emits (encoder frames on which it recognized nothing), not from the
     * signal's level. These are sherpa-onnx's rules and defaults. */
    int32_t silence_without_speech_ms;
    int32_t silence_after_speech_ms;
    int32_t max_utterance_ms;
} stt_stream_options;

/* Sets every field of *options to its default (struct_size included). */
stt_status stt_stream_options_init(stt_stream_options *options);

/* Opens a stream on a model. options may be NULL for the defaults. STT_ERROR_UNSUPPORTED when the model was not
 * trained with the look-ahead or lacks the decoder. On success *stream is a new handle for stt_stream_free. A
 * stream allocates the buffers of its encoder steps when it opens. */
stt_status stt_stream_create(const stt_model *model, const stt_stream_options *options, stt_stream **stream);

/* Releases a stream. NULL is ignored. */
void stt_stream_free(stt_stream *stream);

/* Adds count mono samples in [-1, 1] at sample_rate Hz (1 ... 768000; resampled to the model's rate as they arrive).
 * Any block size works; samples may be NULL when count is 0. Recognition runs inside the call, as far as the audio
 * and the look-ahead allow; what became final is then readable. STT_ERROR_AUDIO for NaN, infinite or absurd samples
 * (beyond 1000) or an unsupported rate (nothing of the block is used), STT_ERROR_STATE after stt_stream_finish. */
stt_status stt_stream_push_f32(stt_stream *stream, const float *samples, size_t count, int32_t sample_rate);

/* Adds count mono 16-bit samples at sample_rate Hz (scaled by 1/32768); otherwise as stt_stream_push_f32. */
stt_status stt_stream_push_s16(stt_stream *stream, const int16_t *samples, size_t count, int32_t sample_rate);

/* Ends the audio: runs the last, shorter window, so every word is final. Later pushes are STT_ERROR_STATE until
 * stt_stream_reset; reading goes on. Finishing a finished stream does nothing. */
stt_status stt_stream_finish(stt_stream *stream);

/* Back to a new stream on the same model and options: audio, text, utterances and time start again from zero. */
stt_status stt_stream_reset(stt_stream *stream);

/* *text = the text that became final since the last stt_stream_read_new_text on this stream (or since it was created
 * or reset, or since the last stt_stream_end_utterance): "" when nothing did. Concatenated, the pieces of one utterance
 * are exactly its text (stt_stream_text), spaces included. Caller frees *text with stt_free. */
stt_status stt_stream_read_new_text(stt_stream *stream, char **text);

/* *text = the text of the current utterance so far: everything since the stream started, or since the last
 * stt_stream_end_utterance. Caller frees *text with stt_free. */
stt_status stt_stream_text(stt_stream *stream, char **text);

/* A recognized word. */
typedef struct stt_word {
    /* The word, without spaces (inside the same allocation as the array). */
    const char *text;
    /* Seconds from the start of the stream: the start of its first token's frame, the end of its last token's. */
    double start;
    double end;
    /* Natural log of the probability the model gave the word (its tokens together); 0 is certain. */
    float logprob;
} stt_word;

/* *words = the words of the current utterance so far, *count of them. Caller frees *words (strings included) with
 * stt_free; *words is NULL when *count is 0. */
stt_status stt_stream_words(stt_stream *stream, stt_word **words, size_t *count);

/* A recognized token: a SentencePiece piece or a character. */
typedef struct stt_token {
    /* The piece as tokens.txt spells it ("\xe2\x96\x81", U+2581, marks a word start). */
    const char *piece;
    /* Its id in tokens.txt. */
    int32_t id;
    /* Natural log of the probability the model gave it. */
    float logprob;
    /* The encoder frame it was emitted on, and that frame's span in seconds from the start of the stream. */
    int64_t frame;
    double start;
    double end;
} stt_token;

/* *tokens = the tokens of the current utterance so far, *count of them. Caller frees *tokens with stt_free; *tokens is
 * NULL when *count is 0. */
stt_status stt_stream_tokens(stt_stream *stream, stt_token **tokens, size_t *count);

/* *seconds = the audio pushed so far (at the model's rate, after resampling). */
stt_status stt_stream_duration(stt_stream *stream, double *seconds);

/* *is_endpoint = 1 when an endpoint rule that is on holds for the current utterance, else 0 (always 0 with
 * endpointing off). The host then usually calls stt_stream_end_utterance. */
stt_status stt_stream_is_endpoint(stt_stream *stream, int *is_endpoint);

/* A finished utterance. */
typedef struct stt_utterance {
    /* 0 for the stream's first utterance, then 1, 2, ... */
    int64_t index;
    /* Seconds from the start of the stream. */
    double start;
    double end;
    /* Its text, and its words (word_count of them; NULL when none). */
    const char *text;
    const stt_word *words;
    size_t word_count;
} stt_utterance;

/* Closes the current utterance and starts the next; decoding goes on with the same audio and state, so nothing is
 * lost or heard twice. Text not yet read with stt_stream_read_new_text belongs to the closed utterance (it is in its
 * text). utterance may be NULL to discard it; else the caller frees *utterance (text and words included) with
 * stt_free. Works with endpointing off too, to split a stream where the host decides. */
stt_status stt_stream_end_utterance(stt_stream *stream, stt_utterance **utterance);

#ifdef __cplusplus
}
#endif

#endif /* STT_H */
