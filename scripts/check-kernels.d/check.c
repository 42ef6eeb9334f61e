// The product kernels of every instruction-set variant, on emulated x86 (scripts/check-kernels builds the kernels
// with CK_EMULATE_X86): float32 and bfloat16 products (AVX512_BF16's and AMX's too) against a double-precision sum of the same
// rounded operands, and each row's result the same bits as the row alone; int8 products bit for bit against the
// portable variant; over tile heights 1–29, odd and even k, partial panels, accumulate, with and without scratch, on
// one thread and on a pool. Exits 1 with one line per failure.
#include "ckernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double ck_int8_peak_gflops(long iterations);

static int failures = 0;
#define CHECK(condition, ...)                                                                                    \
    do {                                                                                                         \
        if (!(condition)) {                                                                                      \
            if (failures++ < 20) { fprintf(stderr, "check-kernels: " __VA_ARGS__); fputc('\n', stderr); }    \
        }                                                                                                        \
    } while (0)

static unsigned long long state = 0x9E3779B97F4A7C15ull;
static float uniform(void) {   // in [-1, 1)
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((state >> 40) * (1.0 / (1ull << 23)) - 1.0);
}

// bfloat16 rounding to nearest even, written out here rather than taken from the kernels.
static float round_bf16(float x) {
    unsigned int u;
    memcpy(&u, &x, 4);
    unsigned int lower = u & 0xFFFFu, kept = u & 0xFFFF0000u;
    if (lower > 0x8000u || (lower == 0x8000u && (kept & 0x10000u))) kept += 0x10000u;
    memcpy(&x, &kept, 4);
    return x;
}

// AMX splits each value of the rows into h, its bits cut to bfloat16, and the rest rounded to bfloat16.
static double split_bf16(float x) {
    unsigned int u;
    memcpy(&u, &x, 4);
    u &= 0xFFFF0000u;
    float h;
    memcpy(&h, &u, 4);
    return (double)h + (double)round_bf16(x - h);
}

static void check_float(ck_pool *pool, int variant, int bf16, long m, long k, long n, int accumulate, int scratch_on) {
    float *w = malloc(sizeof(float) * k * n), *x = malloc(sizeof(float) * m * (k + 3));
    float *y = malloc(sizeof(float) * m * (n + 5)), *y0 = malloc(sizeof(float) * m * (n + 5));
    long ldx = k + 3, ldy = n + 5;
    for (long i = 0; i < k * n; i++) w[i] = uniform();
    for (long i = 0; i < m * ldx; i++) x[i] = uniform();
    for (long i = 0; i < m * ldy; i++) y[i] = y0[i] = uniform();
    long size = bf16 ? ck_packed_bf16_size(k, n) : ck_packed_size(k, n);
    void *packed = malloc((size_t)size * (bf16 ? 2 : 4));
    if (bf16) ck_pack_panels_bf16(w, k, n, 0, packed); else ck_pack_panels_bytes(w, k, n, 0, packed);
    float *scratch = scratch_on ? malloc(sizeof(float) * ck_gemm_scratch_size(m, k)) : NULL;
    int ran = ck_gemm_packed_variant(variant, pool, x, m, k, ldx, packed, bf16, n, y, ldy, accumulate, scratch);
    CHECK(ran, "variant %d did not run", variant);
    for (long r = 0; r < m && ran; r++) {
        for (long c = 0; c < n + 5; c++) {
            float got = y[r * ldy + c];
            if (c >= n) {
                CHECK(got == y0[r * ldy + c], "variant %d bf16 %d m %ld k %ld n %ld: column %ld past n written",
                      variant, bf16, m, k, n, c);
                continue;
            }
            double sum = accumulate ? y0[r * ldy + c] : 0, size = fabs(sum);
            for (long p = 0; p < k; p++) {
                double wv = bf16 ? round_bf16(w[p * n + c]) : w[p * n + c];
                // AVX512_BF16 rounds the rows to bfloat16 too, AMX splits them in two; then every product is exact
                // in float32.
                double xv = variant == CK_GEMM_AVX512_BF16 ? round_bf16(x[r * ldx + p])
                            : variant == CK_GEMM_AMX_BF16  ? split_bf16(x[r * ldx + p])
                                                           : x[r * ldx + p];
                sum += xv * wv;
                size += fabs(xv * wv);
            }
            // The bound of any order of float32 summation: (k + 1) units of rounding times the sum of magnitudes
            // (one more for AMX's two sums, of h and of l).
            CHECK(fabs(got - sum) <= (k + 2) * 6e-8 * size + 1e-30, "variant %d bf16 %d m %ld k %ld n %ld acc %d: y[%ld,%ld] = %g, expected %g",
                  variant, bf16, m, k, n, accumulate, r, c, got, sum);
        }
    }
    free(w); free(x); free(y); free(y0); free(packed); free(scratch);
}

// A row's result does not depend on the rows beside it (a batch of streams gives each its own bits): m rows at once
// against each row alone, bit for bit.
static void check_rows_alone(int variant, int bf16, long m, long k, long n) {
    float *w = malloc(sizeof(float) * k * n), *x = malloc(sizeof(float) * m * k);
    float *together = malloc(sizeof(float) * m * n), *alone = malloc(sizeof(float) * n);
    for (long i = 0; i < k * n; i++) w[i] = uniform();
    for (long i = 0; i < m * k; i++) x[i] = uniform();
    void *packed = malloc((size_t)(bf16 ? ck_packed_bf16_size(k, n) * 2 : ck_packed_size(k, n) * 4));
    if (bf16) ck_pack_panels_bf16(w, k, n, 0, packed); else ck_pack_panels_bytes(w, k, n, 0, packed);
    float *scratch = malloc(sizeof(float) * ck_gemm_scratch_size(m, k));
    ck_gemm_packed_variant(variant, NULL, x, m, k, k, packed, bf16, n, together, n, 0, scratch);
    for (long r = 0; r < m; r++) {
        ck_gemm_packed_variant(variant, NULL, x + r * k, 1, k, k, packed, bf16, n, alone, n, 0, scratch);
        CHECK(memcmp(alone, together + r * n, sizeof(float) * n) == 0,
              "variant %d bf16 %d k %ld: row %ld of %ld differs from the row alone", variant, bf16, k, r, m);
    }
    free(w); free(x); free(together); free(alone); free(packed); free(scratch);
}

static void check_int8(ck_pool *pool, int variant, long m, long k, long n, int accumulate, int scratch_on) {
    float *w = malloc(sizeof(float) * k * n), *x = malloc(sizeof(float) * m * (k + 1));
    float *y = malloc(sizeof(float) * m * n), *expected = malloc(sizeof(float) * m * n), scales[512];
    for (long i = 0; i < k * n; i++) w[i] = uniform();
    for (long i = 0; i < m * (k + 1); i++) x[i] = uniform() * 3;
    for (long i = 0; i < m * n; i++) y[i] = expected[i] = uniform();
    int8_t *packed = malloc((size_t)ck_packed_int8_size(k, n));
    ck_pack_panels_int8(w, k, n, 1, packed, scales);
    float *scratch = scratch_on ? malloc(sizeof(float) * ck_gemm_scratch_size(m, k)) : NULL;
    ck_gemm_packed_int8_variant(0, NULL, x, m, k, k + 1, packed, scales, n, expected, n, accumulate, NULL);
    int ran = ck_gemm_packed_int8_variant(variant, pool, x, m, k, k + 1, packed, scales, n, y, n, accumulate, scratch);
    CHECK(ran, "int8 variant %d did not run", variant);
    CHECK(!ran || memcmp(y, expected, sizeof(float) * m * n) == 0,
          "int8 variant %d m %ld k %ld n %ld acc %d differs from the portable variant", variant, m, k, n, accumulate);
    free(w); free(x); free(y); free(expected); free(packed); free(scratch);
}

// Relative-position attention (ck_rel_attention) of the selected element-wise variant against a double-precision
// evaluation of the same formula with the exact exp: every context value within 1e-5 of its size (values are in
// [-1, 1), so each context value is a convex combination within [-1, 1]).
static void check_attention(long queries, long key_count, long heads, long head_dim) {
    const long d = heads * head_dim, pos_rows = key_count + queries - 1;
    float *q = malloc(sizeof(float) * queries * d), *k = malloc(sizeof(float) * key_count * d);
    float *v = malloc(sizeof(float) * key_count * d), *p = malloc(sizeof(float) * pos_rows * d);
    float *u = malloc(sizeof(float) * d), *bv = malloc(sizeof(float) * d);
    float *context = malloc(sizeof(float) * queries * d);
    const long scratch_size = ck_rel_attention_scratch_size(queries, key_count, heads, head_dim);
    float *scratch = malloc(sizeof(float) * scratch_size);
    for (long i = 0; i < scratch_size; i++) scratch[i] = NAN;   // what the kernel reads before writing shows
    double *s = malloc(sizeof(double) * key_count);
    for (long i = 0; i < queries * d; i++) q[i] = 2 * uniform();
    for (long i = 0; i < key_count * d; i++) { k[i] = uniform(); v[i] = uniform(); }
    for (long i = 0; i < pos_rows * d; i++) p[i] = uniform();
    for (long i = 0; i < d; i++) { u[i] = uniform(); bv[i] = uniform(); }
    const float scale = 1.0f / sqrtf((float)head_dim);
    ck_rel_attention(q, queries, k, v, key_count, p, u, bv, heads, head_dim, scale, context, scratch);
    for (long h = 0; h < heads; h++) {
        for (long i = 0; i < queries; i++) {
            double top = -INFINITY, sum = 0;
            for (long j = 0; j < key_count; j++) {
                double score = 0;
                for (long c = h * head_dim; c < (h + 1) * head_dim; c++)
                    score += ((double)q[i * d + c] + u[c]) * k[j * d + c]
                             + ((double)q[i * d + c] + bv[c]) * p[(queries - 1 - i + j) * d + c];
                s[j] = score * scale;
                top = s[j] > top ? s[j] : top;
            }
            for (long j = 0; j < key_count; j++) { s[j] = exp(s[j] - top); sum += s[j]; }
            for (long c = h * head_dim; c < (h + 1) * head_dim; c++) {
                double expected = 0;
                for (long j = 0; j < key_count; j++) expected += s[j] / sum * v[j * d + c];
                double got = context[i * d + c];
                CHECK(fabs(got - expected) <= 1e-5, "attention (%s) queries %ld keys %ld heads %ld dim %ld: "
                      "context[%ld, %ld] = %.8g, expected %.8g", ck_variant(), queries, key_count, heads, head_dim, i,
                      c, got, expected);
            }
        }
    }
    free(q); free(k); free(v); free(p); free(u); free(bv); free(context); free(scratch); free(s);
}

static void check_attention_shapes(void) {
    // Key counts that leave every remainder of the kernel's blocks of 32 keys (8, 16, 24), and several blocks.
    const long queries[] = {1, 2, 5, 14}, keys[] = {1, 7, 13, 24, 48, 71, 84, 95}, heads[] = {1, 3, 8};
    const long dims[] = {1, 5, 8, 64, 67};
    for (unsigned a = 0; a < 4; a++)
        for (unsigned b = 0; b < 8; b++)
            for (unsigned c = 0; c < 3; c++)
                for (unsigned e = 0; e < 5; e++) check_attention(queries[a], keys[b], heads[c], dims[e]);
}

// The stem's 3×3 stride-2 conv (ck_conv3x3_stride2) of the selected element-wise variant against a double-precision
// sum of the taps inside the input, for channel counts below, at and across its blocks of 32, from one input channel
// and depthwise, with and without the ReLU; a NaN sum must come out of the ReLU as 0, as from ck_relu.
static void check_conv(long height, long width, long in_channels, long channels, int relu) {
    const long oh = height / 2 + 1, ow = width / 2 + 1;
    float *in = malloc(sizeof(float) * height * width * in_channels), *taps = malloc(sizeof(float) * 9 * channels);
    float *bias = malloc(sizeof(float) * channels), *out = malloc(sizeof(float) * oh * ow * channels);
    for (long i = 0; i < height * width * in_channels; i++) in[i] = uniform();
    for (long i = 0; i < 9 * channels; i++) taps[i] = uniform();
    for (long i = 0; i < channels; i++) bias[i] = uniform();
    if (relu && channels > 3) taps[3] = NAN;   // channel 3 of tap 0: NaN wherever that tap is inside
    for (long i = 0; i < oh * ow * channels; i++) out[i] = NAN;
    ck_conv3x3_stride2(in, height, width, in_channels, channels, taps, bias, relu, out);
    for (long y = 0; y < oh; y++)
        for (long x = 0; x < ow; x++)
            for (long c = 0; c < channels; c++) {
                double expected = bias[c];
                for (long ky = 0; ky < 3; ky++)
                    for (long kx = 0; kx < 3; kx++) {
                        long iy = 2 * y + ky - 2, ix = 2 * x + kx - 2;
                        if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
                        expected += (double)taps[(ky * 3 + kx) * channels + c]
                                    * in[(iy * width + ix) * in_channels + (in_channels == 1 ? 0 : c)];
                    }
                if (relu) expected = expected > 0 ? expected : 0;   // NaN > 0 is false: 0
                double got = out[(y * ow + x) * channels + c];
                CHECK(fabs(got - expected) <= 1e-5, "conv3x3 (%s) %ld×%ld×%ld → %ld relu %d: out[%ld, %ld, %ld] = "
                      "%.8g, expected %.8g", ck_variant(), height, width, in_channels, channels, relu, y, x, c, got,
                      expected);
            }
    free(in); free(taps); free(bias); free(out);
}

static void check_conv_shapes(void) {
    const long sizes[] = {1, 2, 5, 8}, channels[] = {1, 7, 31, 32, 37, 64, 77};
    for (unsigned h = 0; h < 4; h++)
        for (unsigned w = 0; w < 4; w++)
            for (unsigned c = 0; c < 7; c++)
                for (int relu = 0; relu <= 1; relu++) {
                    check_conv(sizes[h], sizes[w] + 1, 1, channels[c], relu);
                    check_conv(sizes[h], sizes[w] + 1, channels[c], channels[c], relu);
                }
}

// `check`: every product variant, the attention and the stem's conv; `check elementwise`: the attention and the conv
// of the variant STT_KERNELS selects (scripts/check-kernels runs it again capped to the portable code).
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "elementwise") == 0) {
        check_attention_shapes();
        check_conv_shapes();
        if (failures) {
            fprintf(stderr, "check-kernels: %d failures\n", failures);
            return 1;
        }
        printf("check-kernels: the %s attention and stem conv agree\n", ck_variant());
        return 0;
    }
    CHECK(ck_cpu_level() == CK_LEVEL_AVX512, "the emulated CPU reports level %d, not AVX-512", ck_cpu_level());
    ck_pool *pool = ck_pool_create(2);
    const long ms[] = {1, 2, 3, 4, 5, 6, 7, 9, 13, 14, 15, 29}, ks[] = {1, 2, 7, 64, 257}, ns[] = {1, 16, 37, 200};
    for (int variant = 0; variant <= CK_GEMM_AMX_BF16; variant++)
        for (int bf16 = variant >= CK_GEMM_AVX512_BF16; bf16 <= 1; bf16++)
            for (unsigned a = 0; a < sizeof ms / sizeof *ms; a++)
                for (unsigned b = 0; b < sizeof ks / sizeof *ks; b++)
                    for (unsigned c = 0; c < sizeof ns / sizeof *ns; c++)
                        check_float(c % 2 ? pool : NULL, variant, bf16, ms[a], ks[b], ns[c], (a + b) % 2, (a + c) % 2);
    for (int variant = 0; variant <= CK_GEMM_AMX_BF16; variant++)
        for (int bf16 = variant >= CK_GEMM_AVX512_BF16; bf16 <= 1; bf16++)
            for (unsigned b = 0; b < sizeof ks / sizeof *ks; b++) check_rows_alone(variant, bf16, 29, ks[b], 37);
    for (int variant = 1; variant <= 4; variant++)
        for (unsigned a = 0; a < sizeof ms / sizeof *ms; a++)
            for (unsigned b = 0; b < sizeof ks / sizeof *ks; b++)
                for (unsigned c = 0; c < sizeof ns / sizeof *ns; c++)
                    check_int8(c % 2 ? pool : NULL, variant, ms[a], ks[b], ns[c], (a + b) % 2, (a + c) % 2);
    // More rows than AMX's tiles hold at once (three of 16), as the stem's pointwise convs have.
    for (int variant = 1; variant <= 4; variant++) {
        check_int8(pool, variant, 51, 257, 37, 1, 1);
        check_int8(NULL, variant, 70, 64, 200, 0, 0);
    }
    check_attention_shapes();
    check_conv_shapes();
    CHECK(ck_int8_peak_gflops(1000) > 0, "the int8 peak loop of variant %s measured nothing", ck_gemm_int8_variant());
    ck_pool_destroy(pool);
    if (failures) {
        fprintf(stderr, "check-kernels: %d failures\n", failures);
        return 1;
    }
    printf("check-kernels: every float32, bfloat16 and int8 variant and the %s attention and stem conv agree (emulated: %s, bf16 %s, "
           "int8 %s)\n", ck_variant(), ck_gemm_variant(), ck_gemm_bf16_variant(), ck_gemm_int8_variant());
    return 0;
}
