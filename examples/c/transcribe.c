/*
 * transcribe MODEL_DIR FILE.wav
 *
 * Streams a WAV file (16-bit PCM or 32-bit float, any channels and sample rate) through libstt in 100 ms blocks at
 * the file's own rate, as a live source would arrive. Text is printed to stderr as it becomes final; the whole text is
 * the last line of stdout. Exit status: 0 success, 1 error (one line on stderr), 2 usage.
 *
 *   cc -std=c11 transcribe.c $(pkg-config --cflags --libs stt) -o transcribe
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stt.h>

#include "wav.h"

/* Prints the text that became final since the last call to stderr; returns 0, or -1 after printing the error. */
static int show_new_text(stt_stream *stream, int *shown) {
    char *text = NULL;
    if (stt_stream_read_new_text(stream, &text) != STT_OK) return -1;
    if (text[0] != '\0') {
        fputs(text, stderr);
        fflush(stderr);
        *shown = 1;
    }
    stt_free(text);
    return 0;
}

int main(int argc, char **argv) {
    wav_file wav;
    char wav_error[256];
    stt_model *model = NULL;
    stt_stream *stream = NULL;
    float *block = NULL;
    char *text = NULL;
    size_t block_frames;
    long frames;
    int shown = 0, status = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: transcribe MODEL_DIR FILE.wav\n");
        return 2;
    }
    if (wav_open(&wav, argv[2], wav_error, sizeof wav_error) != 0) {
        fprintf(stderr, "transcribe: %s: %s\n", argv[2], wav_error);
        return 1;
    }
    block_frames = wav.sample_rate / 10 > 0 ? (size_t)(wav.sample_rate / 10) : 1;
    block = (float *)malloc(block_frames * sizeof *block);
    if (!block) {
        fprintf(stderr, "transcribe: out of memory\n");
        goto done;
    }
    if (stt_model_load(argv[1], NULL, &model) != STT_OK) goto failed;
    if (stt_stream_create(model, NULL, &stream) != STT_OK) goto failed;

    while ((frames = wav_read(&wav, block, block_frames)) > 0) {
        if (stt_stream_push_f32(stream, block, (size_t)frames, wav.sample_rate) != STT_OK) goto failed;
        if (show_new_text(stream, &shown) != 0) goto failed;
    }
    if (frames < 0) {
        if (shown) fputc('\n', stderr);
        fprintf(stderr, "transcribe: %s: %s\n", argv[2], wav.error);
        goto done;
    }
    if (stt_stream_finish(stream) != STT_OK) goto failed;
    if (show_new_text(stream, &shown) != 0) goto failed;
    if (shown) fputc('\n', stderr);
    if (stt_stream_text(stream, &text) != STT_OK) goto failed;
    printf("%s\n", text);
    status = 0;
    goto done;

failed:
    if (shown) fputc('\n', stderr);
    fprintf(stderr, "transcribe: %s\n", stt_last_error());
done:
    stt_free(text);
    stt_stream_free(stream);
    stt_model_free(model);
    free(block);
    wav_close(&wav);
    return status;
}
