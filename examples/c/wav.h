/*
 * wav.h: the small WAV reader of the examples (C11 or C++). 16-bit PCM or 32-bit float, any channel count (mixed
 * down to mono), read a block at a time; WAVE_FORMAT_EXTENSIBLE headers of those two formats too. Every size in the
 * header is checked against the file before a sample is read, so a truncated or lying file is an error, not a short
 * or garbled read.
 *
 *   wav_file wav;
 *   char error[256];
 *   if (wav_open(&wav, path, error, sizeof error) != 0) { ... error ... }
 *   long n;
 *   while ((n = wav_read(&wav, floats, max_frames)) > 0) { ... }   // n < 0: read error (wav.error says which)
 *   wav_close(&wav);
 */
#ifndef STT_EXAMPLE_WAV_H
#define STT_EXAMPLE_WAV_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WAV_PCM16 = 1, WAV_FLOAT32 = 3 };

typedef struct wav_file {
    FILE *file;
    int format;               /* WAV_PCM16 or WAV_FLOAT32 */
    int channels;             /* 1 ... 64 */
    int32_t sample_rate;      /* 1 ... 768000 Hz */
    uint64_t frames;          /* frames in the data chunk */
    uint64_t frames_left;     /* frames not read yet */
    unsigned char *block;     /* raw bytes of the frames being read */
    size_t block_frames;      /* frames that fit in block */
    const char *error;        /* why the last wav_read returned -1 */
} wav_file;

static uint32_t wav_u32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint16_t wav_u16(const unsigned char *b) { return (uint16_t)(b[0] | b[1] << 8); }

/* Formats an error into the caller's buffer and closes what was opened; returns -1. */
static int wav_fail(wav_file *wav, char *error, size_t error_size, const char *message) {
    snprintf(error, error_size, "%s", message);
    if (wav->file) fclose(wav->file);
    wav->file = NULL;
    return -1;
}

/* Opens a WAV file and reads its header up to the first sample. Returns 0, or -1 with a one-line reason in error. */
static int wav_open(wav_file *wav, const char *path, char *error, size_t error_size) {
    unsigned char header[40];
    long size, position;
    int have_format = 0, bits = 0, block_align = 0;
    memset(wav, 0, sizeof *wav);
    wav->file = fopen(path, "rb");
    if (!wav->file) return wav_fail(wav, error, error_size, "cannot open the file");
    if (fseek(wav->file, 0, SEEK_END) != 0 || (size = ftell(wav->file)) < 0 || fseek(wav->file, 0, SEEK_SET) != 0)
        return wav_fail(wav, error, error_size, "cannot read the file (not a regular file?)");
    if (size < 12 || fread(header, 1, 12, wav->file) != 12)
        return wav_fail(wav, error, error_size, "not a WAV file: shorter than a RIFF header");
    if (memcmp(header, "RIFF", 4) != 0 || memcmp(header + 8, "WAVE", 4) != 0)
        return wav_fail(wav, error, error_size, "not a WAV file: no RIFF/WAVE header");
    position = 12;
    for (;;) {
        uint32_t chunk;
        long skip;
        if (size - position < 8 || fread(header, 1, 8, wav->file) != 8)
            return wav_fail(wav, error, error_size, have_format ? "no data chunk" : "no fmt chunk");
        position += 8;
        chunk = wav_u32(header + 4);
        if ((uint64_t)chunk > (uint64_t)(size - position))
            return wav_fail(wav, error, error_size, "a chunk is longer than the rest of the file (truncated file?)");
        if (memcmp(header, "fmt ", 4) == 0) {
            uint16_t tag;
            size_t wanted = chunk < sizeof header ? chunk : sizeof header;
            if (chunk < 16) return wav_fail(wav, error, error_size, "fmt chunk shorter than 16 bytes");
            if (fread(header, 1, wanted, wav->file) != wanted)
                return wav_fail(wav, error, error_size, "cannot read the fmt chunk");
            position += (long)wanted;
            tag = wav_u16(header);
            wav->channels = wav_u16(header + 2);
            wav->sample_rate = (int32_t)wav_u32(header + 4);
            block_align = wav_u16(header + 12);
            bits = wav_u16(header + 14);
            if (tag == 0xFFFE) {   /* WAVE_FORMAT_EXTENSIBLE: the format is the subformat GUID's first two bytes */
                if (chunk < 40) return wav_fail(wav, error, error_size, "extensible fmt chunk shorter than 40 bytes");
                tag = wav_u16(header + 24);
            }
            if (tag == WAV_PCM16 && bits == 16) wav->format = WAV_PCM16;
            else if (tag == WAV_FLOAT32 && bits == 32) wav->format = WAV_FLOAT32;
            else return wav_fail(wav, error, error_size, "unsupported format: only 16-bit PCM and 32-bit float");
            if (wav->channels < 1 || wav->channels > 64)
                return wav_fail(wav, error, error_size, "unsupported channel count (1 ... 64)");
            if (wav->sample_rate < 1 || wav->sample_rate > 768000)
                return wav_fail(wav, error, error_size, "unsupported sample rate (1 Hz ... 768 kHz)");
            if (block_align != wav->channels * bits / 8)
                return wav_fail(wav, error, error_size, "block alignment does not match channels and sample size");
            have_format = 1;
            skip = (long)(chunk - wanted) + (long)(chunk & 1);
        } else if (memcmp(header, "data", 4) == 0) {
            if (!have_format) return wav_fail(wav, error, error_size, "data chunk before the fmt chunk");
            wav->frames = chunk / (uint32_t)block_align;
            wav->frames_left = wav->frames;
            return 0;
        } else {
            skip = (long)chunk + (long)(chunk & 1);
        }
        if (skip > size - position) skip = size - position;   /* the pad byte of a last odd chunk may be missing */
        if (fseek(wav->file, skip, SEEK_CUR) != 0) return wav_fail(wav, error, error_size, "cannot skip a chunk");
        position += skip;
    }
}

/* Reads up to max_frames frames as mono floats in [-1, 1] (channels averaged). Returns the frames read, 0 at the end
 * of the data, -1 on a read error (wav->error says why). */
static long wav_read(wav_file *wav, float *mono, size_t max_frames) {
    size_t frame_bytes = (size_t)wav->channels * (wav->format == WAV_PCM16 ? 2 : 4), count, i;
    int c;
    if (max_frames > wav->frames_left) max_frames = (size_t)wav->frames_left;
    if (max_frames == 0) return 0;
    if (max_frames > wav->block_frames) {
        unsigned char *grown = (unsigned char *)realloc(wav->block, max_frames * frame_bytes);
        if (!grown) {
            wav->error = "out of memory";
            return -1;
        }
        wav->block = grown;
        wav->block_frames = max_frames;
    }
    count = fread(wav->block, frame_bytes, max_frames, wav->file);
    if (count != max_frames) {
        wav->error = "the file ended before its data chunk did";
        return -1;
    }
    for (i = 0; i < count; i++) {
        const unsigned char *frame = wav->block + i * frame_bytes;
        float sum = 0;
        for (c = 0; c < wav->channels; c++) {
            if (wav->format == WAV_PCM16) {
                int32_t value = wav_u16(frame + 2 * c);
                if (value >= 32768) value -= 65536;
                sum += (float)value / 32768.0f;
            } else {
                uint32_t bits = wav_u32(frame + 4 * c);
                float value;
                memcpy(&value, &bits, sizeof value);
                sum += value;
            }
        }
        mono[i] = sum / (float)wav->channels;
    }
    wav->frames_left -= count;
    return (long)count;
}

static void wav_close(wav_file *wav) {
    if (wav->file) fclose(wav->file);
    free(wav->block);
    memset(wav, 0, sizeof *wav);
}

#endif
