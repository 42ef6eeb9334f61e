/*
 * api MODEL_DIR FILE.wav: the C API as a C host meets it, built against the installed header and library only
 * (scripts/check-c). Bad arguments of every kind must give their status and a one-line message and change nothing;
 * 16-bit and float pushes, block sizes and sample rates must give the same text; the pieces of new text must add up
 * to the text; the error message must belong to the thread that failed. Prints each failed check and exits 1 if any.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stt.h>

#include "../../examples/c/wav.h"

static int failures = 0;

#define CHECK(condition)                                                                                               \
    do {                                                                                                               \
        if (!(condition)) {                                                                                            \
            fprintf(stderr, "api.c:%d: failed: %s (last error: %s)\n", __LINE__, #condition, stt_last_error());       \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

/* A failing call: the status, and a message that names something and is one line. */
#define CHECK_FAILS(call, status)                                                                                      \
    do {                                                                                                               \
        CHECK((call) == (status));                                                                                     \
        CHECK(strlen(stt_last_error()) > 0 && strchr(stt_last_error(), '\n') == NULL);                                 \
    } while (0)

static char *take_text(stt_stream *stream) {
    char *text = NULL;
    CHECK(stt_stream_text(stream, &text) == STT_OK);
    return text;
}

/* Pushes the file's samples in blocks of `block`, as 16-bit or float, reading new text after every push and checking
 * that the pieces concatenate to the text; returns the final text (caller frees). */
static char *transcribe(const stt_model *model, const float *samples, size_t count, int rate, size_t block,
                        int sixteen_bit) {
    stt_stream *stream = NULL;
    char pieces[4096] = "";
    int16_t *converted = (int16_t *)malloc((block > 0 ? block : 1) * sizeof *converted);
    CHECK(stt_stream_create(model, NULL, &stream) == STT_OK);
    for (size_t start = 0; start < count; start += block) {
        size_t n = count - start < block ? count - start : block;
        char *piece = NULL, *text;
        if (sixteen_bit) {
            for (size_t i = 0; i < n; i++) converted[i] = (int16_t)lrintf(samples[start + i] * 32768.0f);
            CHECK(stt_stream_push_s16(stream, converted, n, rate) == STT_OK);
        } else {
            CHECK(stt_stream_push_f32(stream, samples + start, n, rate) == STT_OK);
        }
        CHECK(stt_stream_read_new_text(stream, &piece) == STT_OK);
        strncat(pieces, piece, sizeof pieces - strlen(pieces) - 1);
        stt_free(piece);
        text = take_text(stream);
        CHECK(strcmp(text, pieces) == 0);
        stt_free(text);
    }
    CHECK(stt_stream_finish(stream) == STT_OK);
    {
        char *piece = NULL, *text;
        CHECK(stt_stream_read_new_text(stream, &piece) == STT_OK);
        strncat(pieces, piece, sizeof pieces - strlen(pieces) - 1);
        stt_free(piece);
        text = take_text(stream);
        CHECK(strcmp(text, pieces) == 0);
        stt_stream_free(stream);
        free(converted);
        return text;
    }
}

static void *fail_on_another_thread(void *unused) {
    (void)unused;
    CHECK(strcmp(stt_last_error(), "") == 0); /* this thread has not failed yet */
    CHECK(stt_model_load(NULL, NULL, NULL) == STT_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(stt_last_error(), "stt_model_load") != NULL);
    return NULL;
}

int main(int argc, char **argv) {
    wav_file wav;
    char error[256];
    float *samples;
    long frames;
    stt_model *model = NULL, *untouched_model = (stt_model *)&wav;
    stt_stream *stream = NULL, *untouched_stream = (stt_stream *)&wav;
    stt_model_options model_options;
    stt_stream_options options;
    stt_model_info info;
    const char *expected = "my brother likes green apples";

    if (argc != 3) {
        fprintf(stderr, "usage: api MODEL_DIR FILE.wav\n");
        return 2;
    }
    if (wav_open(&wav, argv[2], error, sizeof error) != 0) {
        fprintf(stderr, "api: %s: %s\n", argv[2], error);
        return 1;
    }
    samples = (float *)malloc((size_t)wav.frames * sizeof *samples + 1);
    frames = wav_read(&wav, samples, (size_t)wav.frames);
    CHECK(frames == (long)wav.frames);

    /* Version. */
    CHECK(stt_abi_version() == STT_ABI_VERSION);
    CHECK(strcmp(stt_version(), STT_VERSION) == 0);
    CHECK(strcmp(stt_last_error(), "") == 0);

    /* Models: NULLs, options, folders. */
    CHECK_FAILS(stt_model_options_init(NULL), STT_ERROR_INVALID_ARGUMENT);
    CHECK_FAILS(stt_model_load(NULL, NULL, &model), STT_ERROR_INVALID_ARGUMENT);
    CHECK_FAILS(stt_model_load(argv[1], NULL, NULL), STT_ERROR_INVALID_ARGUMENT);
    CHECK(stt_model_options_init(&model_options) == STT_OK);
    CHECK(model_options.struct_size == sizeof model_options && model_options.threads == 1);
    model_options.threads = 0;
    CHECK_FAILS(stt_model_load(argv[1], &model_options, &untouched_model), STT_ERROR_INVALID_ARGUMENT);
    model_options.threads = 65;
    CHECK_FAILS(stt_model_load(argv[1], &model_options, &untouched_model), STT_ERROR_INVALID_ARGUMENT);
    model_options.threads = 1;
    model_options.precision = 3;
    CHECK_FAILS(stt_model_load(argv[1], &model_options, &untouched_model), STT_ERROR_UNSUPPORTED);
    model_options.precision = -1;
    CHECK_FAILS(stt_model_load(argv[1], &model_options, &untouched_model), STT_ERROR_UNSUPPORTED);
    model_options.precision = STT_PRECISION_BF16;
    CHECK(stt_model_load(argv[1], &model_options, &model) == STT_OK && model != NULL);
    stt_model_free(model);
    model_options.precision = STT_PRECISION_INT8;
    CHECK(stt_model_load(argv[1], &model_options, &model) == STT_OK && model != NULL);
    stt_model_free(model);
    model = NULL;
    model_options.precision = STT_PRECISION_FP32;
    model_options.struct_size = 0; /* options that were never initialized */
    CHECK_FAILS(stt_model_load(argv[1], &model_options, &untouched_model), STT_ERROR_INVALID_ARGUMENT);
    model_options.struct_size = sizeof model_options;
    CHECK_FAILS(stt_model_load("/nonexistent/model", &model_options, &untouched_model), STT_ERROR_MODEL);
    CHECK_FAILS(stt_model_load("\xff\xfe", &model_options, &untouched_model), STT_ERROR_INVALID_ARGUMENT);
    CHECK(untouched_model == (stt_model *)&wav);
    CHECK(stt_model_load(argv[1], &model_options, &model) == STT_OK && model != NULL);

    info.struct_size = sizeof info;
    CHECK(stt_model_get_info(model, &info) == STT_OK);
    CHECK(info.lookahead_count >= 1 && info.has_rnnt == 1 && info.sample_rate == 16000 && info.frame_ms == 80);
    CHECK_FAILS(stt_model_get_info(NULL, &info), STT_ERROR_INVALID_ARGUMENT);
    CHECK_FAILS(stt_model_get_info(model, NULL), STT_ERROR_INVALID_ARGUMENT);
    info.struct_size = 2;
    CHECK_FAILS(stt_model_get_info(model, &info), STT_ERROR_INVALID_ARGUMENT);

    /* Streams: NULLs and options. */
    CHECK_FAILS(stt_stream_options_init(NULL), STT_ERROR_INVALID_ARGUMENT);
    CHECK(stt_stream_options_init(&options) == STT_OK);
    CHECK(options.lookahead_ms == STT_LOOKAHEAD_DEFAULT && options.endpointing == 0);
    CHECK(options.silence_without_speech_ms == 2400 && options.silence_after_speech_ms == 1200);
    CHECK(options.max_utterance_ms == 20000);
    CHECK_FAILS(stt_stream_create(NULL, &options, &stream), STT_ERROR_INVALID_ARGUMENT);
    CHECK_FAILS(stt_stream_create(model, &options, NULL), STT_ERROR_INVALID_ARGUMENT);
    options.lookahead_ms = 123;
    CHECK_FAILS(stt_stream_create(model, &options, &untouched_stream), STT_ERROR_UNSUPPORTED);
    options.lookahead_ms = -7;
    CHECK_FAILS(stt_stream_create(model, &options, &untouched_stream), STT_ERROR_INVALID_ARGUMENT);
    options.lookahead_ms = STT_LOOKAHEAD_DEFAULT;
    options.decoder = STT_DECODER_CTC; /* the RNN-T-only fixture has no CTC head */
    CHECK_FAILS(stt_stream_create(model, &options, &untouched_stream), STT_ERROR_UNSUPPORTED);
    options.decoder = 9;
    CHECK_FAILS(stt_stream_create(model, &options, &untouched_stream), STT_ERROR_INVALID_ARGUMENT);
    options.decoder = STT_DECODER_DEFAULT;
    options.convention = 2;
    CHECK_FAILS(stt_stream_create(model, &options, &untouched_stream), STT_ERROR_INVALID_ARGUMENT);
    options.convention = STT_CONVENTION_NATIVE;
    options.endpointing = 1;
    options.max_utterance_ms = -1;
    CHECK_FAILS(stt_stream_create(model, &options, &untouched_stream), STT_ERROR_INVALID_ARGUMENT);
    CHECK(untouched_stream == (stt_stream *)&wav);
    CHECK(stt_stream_options_init(&options) == STT_OK);
    CHECK(stt_stream_create(model, &options, &stream) == STT_OK && stream != NULL);

    /* Pushes: sizes, rates, samples, state. */
    CHECK_FAILS(stt_stream_push_f32(NULL, samples, 10, 16000), STT_ERROR_INVALID_ARGUMENT);
    CHECK_FAILS(stt_stream_push_f32(stream, NULL, 10, 16000), STT_ERROR_INVALID_ARGUMENT);
    CHECK(stt_stream_push_f32(stream, NULL, 0, 16000) == STT_OK);
    CHECK_FAILS(stt_stream_push_f32(stream, samples, (size_t)-1, 16000), STT_ERROR_INVALID_ARGUMENT);
    CHECK_FAILS(stt_stream_push_s16(stream, (const int16_t *)samples, SIZE_MAX / 2, 16000), STT_ERROR_INVALID_ARGUMENT);
    CHECK_FAILS(stt_stream_push_f32(stream, samples, 10, 0), STT_ERROR_AUDIO);
    CHECK_FAILS(stt_stream_push_f32(stream, samples, 10, -16000), STT_ERROR_AUDIO);
    CHECK_FAILS(stt_stream_push_f32(stream, samples, 10, 1000000000), STT_ERROR_AUDIO);
    CHECK_FAILS(stt_stream_push_s16(stream, (const int16_t *)samples, 10, 768001), STT_ERROR_AUDIO);
    {
        float bad[4] = {0.0f, 0.5f, NAN, 0.0f}, loud[2] = {0.0f, 5000.0f}, infinite[1] = {INFINITY};
        double seconds = -1;
        CHECK_FAILS(stt_stream_push_f32(stream, bad, 4, 16000), STT_ERROR_AUDIO);
        CHECK_FAILS(stt_stream_push_f32(stream, loud, 2, 16000), STT_ERROR_AUDIO);
        CHECK_FAILS(stt_stream_push_f32(stream, infinite, 1, 16000), STT_ERROR_AUDIO);
        CHECK(stt_stream_duration(stream, &seconds) == STT_OK && seconds == 0); /* nothing of those was used */
    }
    CHECK(stt_stream_finish(stream) == STT_OK);
    CHECK(stt_stream_finish(stream) == STT_OK);
    CHECK_FAILS(stt_stream_push_f32(stream, samples, 10, 16000), STT_ERROR_STATE);
    CHECK(stt_stream_reset(stream) == STT_OK);
    CHECK(stt_stream_push_f32(stream, samples, 10, 16000) == STT_OK);

    /* Reading: NULLs. */
    {
        char *text = (char *)&wav;
        stt_word *words = (stt_word *)&wav;
        stt_token *tokens = (stt_token *)&wav;
        size_t count = 7;
        int endpoint = 7;
        CHECK_FAILS(stt_stream_read_new_text(NULL, &text), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_read_new_text(stream, NULL), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_text(stream, NULL), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_words(stream, &words, NULL), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_words(stream, NULL, &count), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_tokens(NULL, &tokens, &count), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_duration(stream, NULL), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_is_endpoint(stream, NULL), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_end_utterance(NULL, NULL), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_finish(NULL), STT_ERROR_INVALID_ARGUMENT);
        CHECK_FAILS(stt_stream_reset(NULL), STT_ERROR_INVALID_ARGUMENT);
        CHECK(text == (char *)&wav && words == (stt_word *)&wav && tokens == (stt_token *)&wav && count == 7);
        CHECK(stt_stream_is_endpoint(stream, &endpoint) == STT_OK && endpoint == 0);
        CHECK(stt_stream_words(stream, &words, &count) == STT_OK && words == NULL && count == 0);
    }
    stt_stream_free(stream);
    stt_stream_free(NULL);
    stt_model_free(NULL);
    stt_free(NULL);

    /* The same text from float and 16-bit pushes, 100 ms, 1-sample-odd and whole-file blocks. */
    {
        const size_t blocks[] = {(size_t)wav.sample_rate / 10, 777, (size_t)wav.frames};
        for (int i = 0; i < 3; i++) {
            for (int sixteen = 0; sixteen < 2; sixteen++) {
                char *text = transcribe(model, samples, (size_t)wav.frames, wav.sample_rate, blocks[i], sixteen);
                if (strcmp(text, expected) != 0) {
                    fprintf(stderr, "api.c: block %zu, %s: \"%s\"\n", blocks[i], sixteen ? "s16" : "f32", text);
                    failures++;
                }
                stt_free(text);
            }
        }
    }

    /* Words, tokens and an utterance of the file. */
    CHECK(stt_stream_create(model, NULL, &stream) == STT_OK);
    CHECK(stt_stream_push_f32(stream, samples, (size_t)wav.frames, wav.sample_rate) == STT_OK);
    CHECK(stt_stream_finish(stream) == STT_OK);
    {
        stt_word *words = NULL;
        stt_token *tokens = NULL;
        stt_utterance *utterance = NULL;
        size_t count = 0;
        char *text = NULL;
        CHECK(stt_stream_words(stream, &words, &count) == STT_OK && count == 5);
        if (count == 5) {
            CHECK(strcmp(words[0].text, "my") == 0 && strcmp(words[4].text, "apples") == 0);
            for (size_t i = 0; i < count; i++) CHECK(words[i].start <= words[i].end && words[i].logprob <= 0);
            for (size_t i = 1; i < count; i++) CHECK(words[i - 1].end <= words[i].start);
        }
        stt_free(words);
        CHECK(stt_stream_tokens(stream, &tokens, &count) == STT_OK && count >= 5 && tokens != NULL);
        if (count > 0) CHECK(tokens[0].piece != NULL && tokens[0].id >= 0 && tokens[0].start < tokens[0].end);
        stt_free(tokens);
        CHECK(stt_stream_end_utterance(stream, &utterance) == STT_OK && utterance != NULL);
        if (utterance) {
            CHECK(utterance->index == 0 && strcmp(utterance->text, expected) == 0 && utterance->word_count == 5);
            CHECK(utterance->words != NULL && strcmp(utterance->words[1].text, "brother") == 0);
            CHECK(utterance->start == 0 && utterance->end > 1.9 && utterance->end < 2.0);
        }
        stt_free(utterance);
        text = take_text(stream);
        CHECK(text && strcmp(text, "") == 0); /* the next utterance is empty */
        stt_free(text);
        CHECK(stt_stream_end_utterance(stream, &utterance) == STT_OK && utterance && utterance->index == 1);
        CHECK(utterance && utterance->word_count == 0 && utterance->words == NULL);
        stt_free(utterance);
    }
    /* The stream keeps the model alive. */
    stt_model_free(model);
    CHECK(stt_stream_reset(stream) == STT_OK);
    CHECK(stt_stream_push_f32(stream, samples, (size_t)wav.frames, wav.sample_rate) == STT_OK);
    CHECK(stt_stream_finish(stream) == STT_OK);
    {
        char *text = take_text(stream);
        CHECK(text && strcmp(text, expected) == 0);
        stt_free(text);
    }
    stt_stream_free(stream);

    /* The error message belongs to its thread. */
    {
        pthread_t thread;
        char before[1024];
        CHECK(stt_stream_finish(NULL) == STT_ERROR_INVALID_ARGUMENT);
        snprintf(before, sizeof before, "%s", stt_last_error());
        CHECK(pthread_create(&thread, NULL, fail_on_another_thread, NULL) == 0);
        CHECK(pthread_join(thread, NULL) == 0);
        CHECK(strcmp(before, stt_last_error()) == 0 && strstr(before, "stt_stream_finish") != NULL);
    }

    free(samples);
    wav_close(&wav);
    if (failures) {
        fprintf(stderr, "api: %d checks failed\n", failures);
        return 1;
    }
    printf("api: every check passed\n");
    return 0;
}
