#include "ckernels.h"
#include "exp.h"
#include "lanes.h"
#include "simd.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

// The 3×3 stride-2 causal convs of the stem, channel-last: output (y, x) reads input rows 2y − 2 … 2y and columns
// 2x − 2 … 2x (those inside), from one input channel (the first conv: `one`) or from the same channel (depthwise).
// Channels go in blocks of 32 whose sums stay in four 8-float vector registers over the nine taps (clang's vector
// extension: two SSE registers each in the portable build, one AVX2 register in the other); ReLU is applied on the way
// out when asked (the first conv is followed by one), NaN becoming 0 as in ck_relu.
typedef float conv_vec __attribute__((vector_size(32)));
typedef float conv_vec_unaligned __attribute__((vector_size(32), aligned(4), may_alias));
#define conv_load(p) (*(const conv_vec_unaligned *)(const void *)(p))
#define CONV_BLOCK 32

#define DEFINE_KERNELS(SUFFIX, ATTR)                                                                                   \
    ATTR static void swish_##SUFFIX(float *x, long n) {                                                                \
        for (long i = 0; i < n; i++) x[i] = x[i] / (1.0f + ck_exp(-x[i]));                                             \
    }                                                                                                                  \
    ATTR static void sigmoid_##SUFFIX(float *x, long n) {                                                              \
        for (long i = 0; i < n; i++) x[i] = 1.0f / (1.0f + ck_exp(-x[i]));                                             \
    }                                                                                                                  \
    ATTR static void glu_rows_##SUFFIX(const float *in, float *out, long rows, long channels) {                        \
        for (long t = 0; t < rows; t++) {                                                                              \
            const float *a = in + t * 2 * channels;                                                                    \
            const float *b = a + channels;                                                                             \
            float *o = out + t * channels;                                                                             \
            for (long c = 0; c < channels; c++) o[c] = a[c] / (1.0f + ck_exp(-b[c]));                                  \
        }                                                                                                              \
    }                                                                                                                  \
    ATTR static void layer_norm_##SUFFIX(const float *in, float *out, long rows, long width, const float *g,           \
                                         const float *b, float eps) {                                                  \
        for (long t = 0; t < rows; t++) {                                                                              \
            const float *x = in + t * width;                                                                           \
            float *y = out + t * width;                                                                                \
            float mean = sum_lanes(x, width, 0.0f, 0) / (float)width;                                                  \
            float var = sum_lanes(x, width, mean, 1);                                                                  \
            float inv = 1.0f / sqrtf(var / (float)width + eps);                                                        \
            for (long c = 0; c < width; c++) y[c] = (x[c] - mean) * inv * g[c] + b[c];                                 \
        }                                                                                                              \
    }                                                                                                                  \
    ATTR static void axpy_##SUFFIX(float *y, const float *x, long n, float alpha) {                                    \
        for (long i = 0; i < n; i++) y[i] += alpha * x[i];                                                             \
    }                                                                                                                  \
    ATTR static void add_bias_rows_##SUFFIX(float *x, const float *bias, long rows, long width) {                      \
        for (long t = 0; t < rows; t++)                                                                                \
            for (long c = 0; c < width; c++) x[t * width + c] += bias[c];                                              \
    }                                                                                                                  \
    ATTR static void relu_##SUFFIX(float *x, long n) {                                                                 \
        for (long i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;                                                 \
    }                                                                                                                  \
    ATTR static void conv3x3_stride2_##SUFFIX(const float *in, long height, long width, long in_channels,              \
                                              long channels, const float *taps, const float *bias, int relu,           \
                                              float *out) {                                                            \
        const long oh = height / 2 + 1, ow = width / 2 + 1;                                                            \
        const int one = in_channels == 1;                                                                              \
        for (long y = 0; y < oh; y++)                                                                                  \
            for (long x = 0; x < ow; x++) {                                                                            \
                const float *src[9], *tap[9];                                                                          \
                int n = 0;                                                                                             \
                for (long ky = 0; ky < 3; ky++)                                                                        \
                    for (long kx = 0; kx < 3; kx++) {                                                                  \
                        const long iy = 2 * y + ky - 2, ix = 2 * x + kx - 2;                                           \
                        if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;                                 \
                        src[n] = in + (iy * width + ix) * in_channels;                                                 \
                        tap[n++] = taps + (ky * 3 + kx) * channels;                                                    \
                    }                                                                                                  \
                float *o = out + (y * ow + x) * channels;                                                              \
                long c0 = 0;                                                                                           \
                for (; c0 + CONV_BLOCK <= channels; c0 += CONV_BLOCK) {                                                \
                    conv_vec a0 = conv_load(bias + c0), a1 = conv_load(bias + c0 + 8);                                 \
                    conv_vec a2 = conv_load(bias + c0 + 16), a3 = conv_load(bias + c0 + 24);                           \
                    for (int i = 0; i < n; i++) {                                                                      \
                        const float *t = tap[i] + c0;                                                                  \
                        if (one) {                                                                                     \
                            const conv_vec v = (conv_vec){0} + src[i][0];                                              \
                            a0 += conv_load(t) * v;                                                                    \
                            a1 += conv_load(t + 8) * v;                                                                \
                            a2 += conv_load(t + 16) * v;                                                               \
                            a3 += conv_load(t + 24) * v;                                                               \
                        } else {                                                                                       \
                            const float *v = src[i] + c0;                                                              \
                            a0 += conv_load(t) * conv_load(v);                                                         \
                            a1 += conv_load(t + 8) * conv_load(v + 8);                                                 \
                            a2 += conv_load(t + 16) * conv_load(v + 16);                                               \
                            a3 += conv_load(t + 24) * conv_load(v + 24);                                               \
                        }                                                                                              \
                    }                                                                                                  \
                    memcpy(o + c0, &a0, sizeof a0);                                                                    \
                    memcpy(o + c0 + 8, &a1, sizeof a1);                                                                \
                    memcpy(o + c0 + 16, &a2, sizeof a2);                                                               \
                    memcpy(o + c0 + 24, &a3, sizeof a3);                                                               \
                }                                                                                                      \
                for (; c0 < channels; c0++) {                                                                          \
                    float a = bias[c0];                                                                                \
                    for (int i = 0; i < n; i++) a += tap[i][c0] * (one ? src[i][0] : src[i][c0]);                      \
                    o[c0] = a;                                                                                         \
                }                                                                                                      \
                if (relu)                                                                                              \
                    for (long c = 0; c < channels; c++) o[c] = o[c] > 0.0f ? o[c] : 0.0f;                              \
            }                                                                                                          \
    }

DEFINE_KERNELS(base, )
#if CK_X86
DEFINE_KERNELS(avx2, CK_TARGET("avx2,fma"))
#endif

typedef struct {
    void (*swish)(float *, long);
    void (*sigmoid)(float *, long);
    void (*glu_rows)(const float *, float *, long, long);
    void (*layer_norm)(const float *, float *, long, long, const float *, const float *, float);
        void (*axpy)(float *, const float *, long, float);
    void (*add_bias_rows)(float *, const float *, long, long);
    void (*relu)(float *, long);
    void (*conv3x3_stride2)(const float *, long, long, long, long, const float *, const float *, int, float *);
    const char *name;
} kernel_table;

static const kernel_table base_table = {swish_base, sigmoid_base, glu_rows_base, layer_norm_base,
                                        axpy_base, add_bias_rows_base, relu_base, conv3x3_stride2_base, "portable"};
#if CK_X86
static const kernel_table avx2_table = {swish_avx2, sigmoid_avx2, glu_rows_avx2, layer_norm_avx2,
                                        axpy_avx2, add_bias_rows_avx2, relu_avx2, conv3x3_stride2_avx2, "avx2+fma"};
#endif

static const kernel_table *table(void) {
#if CK_X86
    if (ck_cpu_level() >= CK_LEVEL_AVX2) return &avx2_table;
#endif
    return &base_table;
}

void ck_swish(float *x, long n) { table()->swish(x, n); }
void ck_sigmoid(float *x, long n) { table()->sigmoid(x, n); }
void ck_glu_rows(const float *in, float *out, long rows, long channels) { table()->glu_rows(in, out, rows, channels); }
void ck_layer_norm(const float *in, float *out, long rows, long width, const float *scale, const float *shift,
                   float epsilon) {
    table()->layer_norm(in, out, rows, width, scale, shift, epsilon);
}
void ck_axpy(float *y, const float *x, long n, float alpha) { table()->axpy(y, x, n, alpha); }
void ck_add_bias_rows(float *x, const float *bias, long rows, long width) { table()->add_bias_rows(x, bias, rows, width); }
void ck_relu(float *x, long n) { table()->relu(x, n); }
void ck_conv3x3_stride2(const float *in, long height, long width, long in_channels, long channels, const float *taps,
                        const float *bias, int relu, float *out) {
    table()->conv3x3_stride2(in, height, width, in_channels, channels, taps, bias, relu, out);
}
const char *ck_variant(void) { return table()->name; }
