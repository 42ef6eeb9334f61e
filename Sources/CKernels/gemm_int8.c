#include "ckernels.h"
#include "simd.h"
#include "amx.h"
#include "panels.h"
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Products with int8 weights. Each output column j has a scale s_j = max|W[:, j]| / 127 and stores
// q = round(W / s_j) in [−127, 127]. At run time each row of x gets a scale t = max|x_row| / L and becomes 16-bit
// integers round(x / t) in [−L, L], where L = row_limit(k) is as large as 16 bits and a 32-bit sum allow (32,767 for
// k ≤ 516, 8,256 for k = 2,048): the products' operands are 16-bit anyway, so the rows lose almost nothing and the
// error is the weights' rounding. Sums are exact 32-bit integers, and y = t · s_j · Σ q_x·q_w, in float32. Every
// variant computes the same integers and the same final float operations, so they agree bit for bit.
//
// Panels of 16 columns as for float32, with k taken in pairs (k rounded up to even, the extra row zero): for each pair
// p, 16 columns × (W[2p, c], W[2p + 1, c]), 32 bytes; AVX2 sign-extends them to 16 bits and multiplies a broadcast
// pair of the row's integers with vpmaddwd, which sums each pair into a 32-bit lane.

#define PANEL 16
#define CHUNK_PANELS 4
#define TILE_ROWS 6

static long even(long k) { return (k + 1) & ~1L; }

// Rounds a float of magnitude up to 2²² to the nearest integer, ties to even: 1.5 · 2²³ added and subtracted.
#define ROUND_MAGIC 12582912.0f

long ck_packed_int8_size(long k, long n) { return even(k) * ((n + PANEL - 1) / PANEL) * PANEL; }

void ck_pack_panels_int8(const void *weights, long k, long n, int transposed, int8_t *packed, float *scales) {
    long panels = (n + PANEL - 1) / PANEL, k2 = even(k);
    for (long j = 0; j < panels; j++) {
        float row[PANEL], largest[PANEL] = {0}, scale[PANEL], divisor[PANEL];
        for (long p = 0; p < k; p++) {
            ck_panel_row(weights, k, n, transposed, j * PANEL, p, row);
            for (long c = 0; c < PANEL; c++) {
                float a = fabsf(row[c]);
                largest[c] = a > largest[c] ? a : largest[c];   // a NaN weight is left out of the scale
            }
        }
        for (long c = 0; c < PANEL; c++) {
            scale[c] = isfinite(largest[c]) ? largest[c] / 127.0f : 0.0f;
            divisor[c] = scale[c] > 0.0f ? scale[c] : 1.0f;
            if (j * PANEL + c < n) scales[j * PANEL + c] = scale[c];
        }
        // Each weight divided by its column's scale, kept within ±127 and rounded to nearest even (ROUND_MAGIC, exact
        // here); a NaN weight and a column of scale 0 pack as 0.
        int8_t *dst = packed + j * k2 * PANEL;
        for (long p = 0; p < k2; p += 2) {
            float pair[2][PANEL];
            int8_t q[2][PANEL];
            ck_panel_row(weights, k, n, transposed, j * PANEL, p, pair[0]);
            ck_panel_row(weights, k, n, transposed, j * PANEL, p + 1, pair[1]);
            for (int h = 0; h < 2; h++) {
                for (long c = 0; c < PANEL; c++) {
                    float x = pair[h][c];
                    float v = scale[c] > 0.0f && x == x ? x / divisor[c] : 0.0f;
                    v = v > 127.0f ? 127.0f : v;
                    v = v > -127.0f ? v : -127.0f;
                    q[h][c] = (int8_t)(int)((v + ROUND_MAGIC) - ROUND_MAGIC);
                }
            }
            for (long c = 0; c < PANEL; c++) {
                dst[p * PANEL + 2 * c] = q[0][c];
                dst[p * PANEL + 2 * c + 1] = q[1][c];
            }
        }
    }
}

static int int8_level(void);
#define CK_INT8_AMX 4

// AMX's operands (below): the rows' 16-bit integers split into two 8-bit halves, rows padded to whole tiles and k to
// whole 64-byte tile rows.
static long amx_k(long k) { return (even(k) + 63) / 64 * 64; }

long ck_gemm_int8_scratch_size(long m, long k) {
    // 16-bit integers of every row (k rounded up to even) and one scale per row, in floats; with AMX, the halves too.
    long halves = int8_level() >= CK_INT8_AMX && m > 0 ? (2 * ck_amx_padded_rows(m) * amx_k(k) + 3) / 4 : 0;
    return (m * even(k) + 1) / 2 + m + halves;
}

// The largest integer a row is rounded to: as many bits as vpmaddwd's 16-bit operands allow while a sum of k2
// products with weights up to 127 stays within 32 bits, (2³¹ − 1) / (127 · k2), at most 32,767 (k2 ≤ 516) and at
// least 258 for the largest k kept in int8 (2¹⁶).
static long row_limit(long k2) {
    long limit = 2147483647L / (127L * (k2 > 0 ? k2 : 1));
    return limit < 32767 ? limit : 32767;
}

// Rows as 16-bit integers and their scales. Compiled for the portable products and again with AVX2 for the others,
// where every loop vectorizes (the rounding was a library call per element, in scalar code). Both make the same
// integers: the largest |x| is kept in 8 lanes (a maximum does not round), each x is divided by the scale and rounded
// to nearest even by adding and subtracting ROUND_MAGIC, exact for |v| ≤ 2²². Infinite rows (scale 0) become zeros; a
// NaN takes the lower bound, never reaching the conversion.
#define MAX_LANES 8
#define DEFINE_QUANTIZE(SUFFIX, ATTR)                                                                            \
    ATTR static void quantize_rows_##SUFFIX(const float *x, long m, long k, long ldx, int16_t *q,                  \
                                            float *row_scales) {                                                   \
        const long k2 = even(k);                                                                                   \
        const float limit = (float)row_limit(k2);                                                                  \
        for (long r = 0; r < m; r++) {                                                                             \
            const float *row = x + r * ldx;                                                                        \
            float lanes[MAX_LANES] = {0}, largest = 0.0f;                                                          \
            long p = 0;                                                                                            \
            for (; p + MAX_LANES <= k; p += MAX_LANES)                                                             \
                for (int l = 0; l < MAX_LANES; l++) {                                                              \
                    float a = fabsf(row[p + l]);                                                                   \
                    lanes[l] = a > lanes[l] ? a : lanes[l];                                                        \
                }                                                                                                  \
            for (; p < k; p++) {                                                                                   \
                float a = fabsf(row[p]);                                                                           \
                largest = a > largest ? a : largest;                                                               \
            }                                                                                                      \
            for (int l = 0; l < MAX_LANES; l++) largest = lanes[l] > largest ? lanes[l] : largest;                \
            float scale = isfinite(largest) && largest > 0.0f ? largest / limit : 0.0f;                          \
            row_scales[r] = scale;                                                                                 \
            int16_t *out = q + r * k2;                                                                             \
            for (p = 0; p < k; p++) {                                                                              \
                float v = scale > 0.0f ? row[p] / scale : 0.0f;                                                    \
                v = v > limit ? limit : v;                                                                         \
                v = v > -limit ? v : -limit;                                                                       \
                out[p] = (int16_t)((v + ROUND_MAGIC) - ROUND_MAGIC);                                               \
            }                                                                                                      \
            for (; p < k2; p++) out[p] = 0;                                                                        \
        }                                                                                                          \
    }

DEFINE_QUANTIZE(base, )
#if CK_X86
DEFINE_QUANTIZE(avx2, CK_TARGET("avx2,fma"))
#endif

typedef struct {
    const int16_t *q;
    const float *row_scales;
    long m, k2, n;
    const int8_t *weights;
    const float *scales;
    float *y;
    long ldy;
    int accumulate;
    long panels;
    void (*panel)(const void *job, long j);
    _Atomic long next_chunk;
    const int8_t *high;      // AMX: each row's integers q as 256 · high + low, rows of amx_k(k) bytes
    const uint8_t *low;
} int8_job;

static inline void store(const int8_job *job, const int32_t *sums, long r, long j) {
    long cols = job->n - j * PANEL < PANEL ? job->n - j * PANEL : PANEL;
    float *out = job->y + r * job->ldy + j * PANEL;
    float t = job->row_scales[r];
    const float *s = job->scales + j * PANEL;
    for (long c = 0; c < cols; c++) {
        float v = (float)sums[c] * t * s[c];
        out[c] = job->accumulate ? out[c] + v : v;
    }
}

static void portable_panel(const void *context, long j) {
    const int8_job *job = (const int8_job *)context;
    const int8_t *wp = job->weights + j * job->k2 * PANEL;
    for (long r = 0; r < job->m; r++) {
        const int16_t *x = job->q + r * job->k2;
        int32_t sums[PANEL] = {0};
        for (long p = 0; p < job->k2 / 2; p++) {
            const int8_t *w = wp + p * 2 * PANEL;
            for (int c = 0; c < PANEL; c++) sums[c] += x[2 * p] * w[2 * c] + x[2 * p + 1] * w[2 * c + 1];
        }
        store(job, sums, r, j);
    }
}

#if CK_X86
#define AVX2 CK_TARGET("avx2,fma")

// As for float32 (gemm.c), a product of more rows than one tile prefetches the next panel, a line per k pair.
static inline __attribute__((always_inline)) AVX2 void tile(const int8_job *job, long j, long r0, int mr) {
    const int8_t *wp = job->weights + j * job->k2 * PANEL;
    const char *next = job->m > TILE_ROWS ? (const char *)(wp + job->k2 * PANEL) : NULL;
    __m256i c0[TILE_ROWS], c1[TILE_ROWS];
    for (int r = 0; r < mr; r++) { c0[r] = _mm256_setzero_si256(); c1[r] = _mm256_setzero_si256(); }
    for (long p = 0; p < job->k2 / 2; p++) {
        if (next) _mm_prefetch(next + p * 2 * PANEL, _MM_HINT_T0);
        __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wp + p * 2 * PANEL)));
        __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wp + p * 2 * PANEL + PANEL)));
        for (int r = 0; r < mr; r++) {
            int32_t pair;
            memcpy(&pair, job->q + (r0 + r) * job->k2 + 2 * p, sizeof pair);
            __m256i xv = _mm256_set1_epi32(pair);
            c0[r] = _mm256_add_epi32(c0[r], _mm256_madd_epi16(xv, w0));
            c1[r] = _mm256_add_epi32(c1[r], _mm256_madd_epi16(xv, w1));
        }
    }
    for (int r = 0; r < mr; r++) {
        int32_t sums[PANEL];
        _mm256_storeu_si256((__m256i *)sums, c0[r]);
        _mm256_storeu_si256((__m256i *)(sums + 8), c1[r]);
        store(job, sums, r0 + r, j);
    }
}

#define TILE(MR) case MR: tile(job, j, r0, MR); break;
// The fewest tiles of near-equal height, as for float32 (gemm.c).
static AVX2 void avx2_panel(const void *context, long j) {
    const int8_job *job = (const int8_job *)context;
    const long tiles = (job->m + TILE_ROWS - 1) / TILE_ROWS;
    for (long t = 0, r0 = 0; t < tiles; t++) {
        int mr = (int)((job->m - r0) / (tiles - t));
        switch (mr) { TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) }
        r0 += mr;
    }
}

// AVX-512 (BW): one k pair of a whole panel is 32 bytes, sign-extended to 32 16-bit integers in one register, and a
// row's broadcast pair times it gives the 16 columns' 32-bit sums in order. Up to 14 rows a tile (14 accumulators).
// With AVX512_VNNI, vpdpwssd does vpmaddwd and the add in one instruction (not saturating: the same integers).
#define AVX512_TILE_ROWS 14
#define AVX512BW CK_TARGET("avx512f,avx512bw")
#define AVX512VNNI CK_TARGET("avx512f,avx512bw,avx512vnni")

// A product of one tile prefetches its panel 8 KB ahead; the hardware's prefetching alone left one row from memory at
// 5.2–6.2 ms for 40 matrices of 512 × 2048 on a Xeon (Emerald Rapids), against 2.1–2.4 with it (2 KB ahead:
// 2.8–3.4, 4 KB: 2.2–2.4). A product of several tiles prefetches the next panel instead, a line per pair.
#define AHEAD 8192

// One tile's body; ACCUMULATE(c, x, w) adds the pair products of x and w to c. A tile of at most 7 rows keeps two sets
// of sums, for even and odd pairs, added at the end: vpdpwssd adds into its sum, so with one set a row is a chain of
// dependent instructions at their latency, 5 cycles a 32-byte pair, about 19 GB/s at 3 GHz, which is what one row
// reads with the prefetching above (the gain measured stayed within the machine's noise). Integer sums, so the order
// changes no bit.
#define TILE512_STEP(ACCUMULATE, SUMS, P)                                                                       \
    do {                                                                                                        \
        if (next) _mm_prefetch(next + (P) * 2 * PANEL, _MM_HINT_T0);                                            \
        else _mm_prefetch((const char *)wp + (P) * 2 * PANEL + AHEAD, _MM_HINT_T0);                             \
        __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(wp + (P) * 2 * PANEL)));          \
        for (int r = 0; r < mr; r++) {                                                                          \
            int32_t pair;                                                                                       \
            memcpy(&pair, job->q + (r0 + r) * job->k2 + 2 * (P), sizeof pair);                                  \
            (SUMS)[r] = ACCUMULATE((SUMS)[r], _mm512_set1_epi32(pair), w);                                      \
        }                                                                                                       \
    } while (0)
#define TILE512_BODY(ACCUMULATE)                                                                                \
    const int8_t *wp = job->weights + j * job->k2 * PANEL;                                                      \
    const char *next = job->m > AVX512_TILE_ROWS ? (const char *)(wp + job->k2 * PANEL) : NULL;                 \
    const int two = mr <= AVX512_TILE_ROWS / 2;                                                                 \
    __m512i c[AVX512_TILE_ROWS];                                                                                \
    for (int r = 0; r < (two ? 2 * mr : mr); r++) c[r] = _mm512_setzero_si512();                                \
    long p = 0;                                                                                                 \
    for (; two && p + 2 <= job->k2 / 2; p += 2) {                                                               \
        TILE512_STEP(ACCUMULATE, c, p);                                                                         \
        TILE512_STEP(ACCUMULATE, c + mr, p + 1);                                                                \
    }                                                                                                           \
    for (; p < job->k2 / 2; p++) TILE512_STEP(ACCUMULATE, c, p);                                                \
    for (int r = 0; two && r < mr; r++) c[r] = _mm512_add_epi32(c[r], c[mr + r]);                               \
    for (int r = 0; r < mr; r++) {                                                                              \
        int32_t sums[PANEL];                                                                                    \
        _mm512_storeu_si512((void *)sums, c[r]);                                                                \
        store(job, sums, r0 + r, j);                                                                            \
    }

#define MADD_ADD(c, x, w) _mm512_add_epi32(c, _mm512_madd_epi16(x, w))
static inline __attribute__((always_inline)) AVX512BW void tile512_bw(const int8_job *job, long j, long r0, int mr) {
    TILE512_BODY(MADD_ADD)
}
static inline __attribute__((always_inline)) AVX512VNNI void tile512_vnni(const int8_job *job, long j, long r0,
                                                                           int mr) {
    TILE512_BODY(_mm512_dpwssd_epi32)
}

#define TILE512(MR, KIND) case MR: tile512_##KIND(job, j, r0, MR); break;
#define TILES512(KIND)                                                                                          \
    switch (mr) {                                                                                               \
        TILE512(1, KIND) TILE512(2, KIND) TILE512(3, KIND) TILE512(4, KIND) TILE512(5, KIND) TILE512(6, KIND)   \
        TILE512(7, KIND) TILE512(8, KIND) TILE512(9, KIND) TILE512(10, KIND) TILE512(11, KIND)                  \
        TILE512(12, KIND) TILE512(13, KIND) TILE512(14, KIND)                                                   \
    }

// One panel in the fewest tiles of near-equal height, as for AVX2.
#define PANEL512(KIND, TARGET)                                                                                  \
    static TARGET void avx512##KIND##_panel(const void *context, long j) {                                      \
        const int8_job *job = (const int8_job *)context;                                                        \
        const long tiles = (job->m + AVX512_TILE_ROWS - 1) / AVX512_TILE_ROWS;                                  \
        for (long t = 0, r0 = 0; t < tiles; t++) {                                                              \
            int mr = (int)((job->m - r0) / (tiles - t));                                                        \
            TILES512(KIND)                                                                                      \
            r0 += mr;                                                                                           \
        }                                                                                                       \
    }
PANEL512(bw, AVX512BW)
PANEL512(vnni, AVX512VNNI)

// AMX (TMUL) has no 16-bit integer product, but its 8-bit ones (tdpbssd: signed × signed, tdpbusd: unsigned × signed)
// sum 64 k of 16 columns for up to 16 rows in one instruction. Each row's 16-bit integer q is split as 256 · h + l,
// h = q >> 8 in [−128, 127] and l = q & 255 in [0, 255]; two products give Σ h·w and Σ l·w exactly, and
// 256 · Σ h·w + Σ l·w, taken modulo 2³² like the other variants' sums, is the same exact Σ q·w: the same integers, so
// this variant too agrees bit for bit. A tile of weights is 16 rows of 64 bytes, each the 16 columns' four
// consecutive k; the panels keep k in pairs (32 bytes a pair), so each 64-byte line of two pairs is interleaved into
// one tile row with one word permutation (vpermw) on the way, into a 1 KB buffer the tile is loaded from.
// Tiles: with at most 16 rows, two panels at a time — 0–3 the two panels' sums of h and of l, 4 and 5 the rows' h and
// l, 6 and 7 the panels' weights — so that four independent chains of products overlap; with more rows (the stem's
// pointwise convs), up to three tiles of 16 rows for one panel — 0–5 their sums, 6 the rows, 7 the weights.
#define AMX CK_TARGET("amx-tile,amx-int8,avx512f,avx512bw")

// Tile k block b of panel j (k from 64·b) into `tile`: rows of 16 columns × 4 k, zeros past the panel's pairs.
static inline __attribute__((always_inline)) AMX void amx_weights(const int8_job *job, long j, long b, int8_t *tile) {
    // Word w of a tile row: column w/2, the first (w even) or second pair of the line.
    const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                           6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const int8_t *wp = job->weights + j * job->k2 * PANEL;
    const long pairs = job->k2 / 2;
    for (long r = 0; r < 16; r++) {
        const long p = b * 32 + 2 * r;
        __m512i line;
        _mm_prefetch((const char *)(wp + p * 2 * PANEL) + CK_AMX_AHEAD, _MM_HINT_T0);
        if (p + 1 < pairs) line = _mm512_loadu_si512((const void *)(wp + p * 2 * PANEL));
        else if (p < pairs) line = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_loadu_si256((const __m256i *)(wp + p * 2 * PANEL)), 0);
        else line = _mm512_setzero_si512();
        _mm512_storeu_si512((void *)(tile + r * 64), _mm512_permutexvar_epi16(order, line));
    }
}

// Rows [r0, r0 + rows) of panel j from the stored sums of h (sh) and l (sl), 16 a row: as store() does, in vectors.
static inline __attribute__((always_inline)) AMX void amx_store(const int8_job *job, const int32_t *sh,
                                                                 const int32_t *sl, long r0, long rows, long j) {
    const long cols = job->n - j * PANEL < PANEL ? job->n - j * PANEL : PANEL;
    const __mmask16 mask = (__mmask16)((1u << cols) - 1);
    const __m512 s = _mm512_maskz_loadu_ps(mask, job->scales + j * PANEL);
    for (long r = 0; r < rows; r++) {
        __m512i sum = _mm512_add_epi32(_mm512_slli_epi32(_mm512_loadu_si512((const void *)(sh + r * PANEL)), 8),
                                       _mm512_loadu_si512((const void *)(sl + r * PANEL)));
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(job->row_scales[r0 + r])), s);
        float *out = job->y + (r0 + r) * job->ldy + j * PANEL;
        if (job->accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
        _mm512_mask_storeu_ps(out, mask, v);
    }
}

// Panels [p0, p1) with at most 16 rows: two at a time (a last odd one alone).
static AMX void amx_few_rows(const int8_job *job, long p0, long p1) {
    _Alignas(64) int8_t tiles[2][16 * 64];
    _Alignas(64) int32_t sums[4][16 * PANEL];
    const long kp = amx_k(job->k2), rows = job->m;
    for (long j = p0; j < p1; j += 2) {
        const int two = j + 1 < p1;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (long b = 0; b < kp / 64; b++) {
            amx_weights(job, j, b, tiles[0]);
            _tile_loadd(6, tiles[0], 64);
            _tile_loadd(4, job->high + b * 64, kp);
            _tile_loadd(5, job->low + b * 64, kp);
            _tile_dpbssd(0, 4, 6);
            _tile_dpbusd(1, 5, 6);
            if (two) {
                amx_weights(job, j + 1, b, tiles[1]);
                _tile_loadd(7, tiles[1], 64);
                _tile_dpbssd(2, 4, 7);
                _tile_dpbusd(3, 5, 7);
            }
        }
        _tile_stored(0, sums[0], 64); _tile_stored(1, sums[1], 64);
        amx_store(job, sums[0], sums[1], 0, rows, j);
        if (two) {
            _tile_stored(2, sums[2], 64); _tile_stored(3, sums[3], 64);
            amx_store(job, sums[2], sums[3], 0, rows, j + 1);
        }
    }
}

#define AMX_ROW_TILE(T, CH, CL)                                                                                 \
    if (tiles > T) {                                                                                            \
        const long at = (g + T) * 16 * kp + b * 64;                                                             \
        _tile_loadd(6, job->high + at, kp); _tile_dpbssd(CH, 6, 7);                                             \
        _tile_loadd(6, job->low + at, kp); _tile_dpbusd(CL, 6, 7);                                              \
    }
#define AMX_ROW_STORE(T, CH, CL)                                                                                \
    if (tiles > T) {                                                                                            \
        _tile_stored(CH, sums[0], 64); _tile_stored(CL, sums[1], 64);                                           \
        const long r0 = (g + T) * 16;                                                                           \
        amx_store(job, sums[0], sums[1], r0, job->m - r0 < 16 ? job->m - r0 : 16, j);                           \
    }

// Panels [p0, p1) with more than 16 rows: tiles of 16 rows, three at a time.
static AMX void amx_many_rows(const int8_job *job, long p0, long p1) {
    _Alignas(64) int8_t tile[16 * 64];
    _Alignas(64) int32_t sums[2][16 * PANEL];
    const long kp = amx_k(job->k2), row_tiles = ck_amx_padded_rows(job->m) / 16;
    for (long j = p0; j < p1; j++) {
        for (long g = 0; g < row_tiles; g += 3) {
            const long tiles = row_tiles - g < 3 ? row_tiles - g : 3;
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3); _tile_zero(4); _tile_zero(5);
            for (long b = 0; b < kp / 64; b++) {
                amx_weights(job, j, b, tile);
                _tile_loadd(7, tile, 64);
                AMX_ROW_TILE(0, 0, 1) AMX_ROW_TILE(1, 2, 3) AMX_ROW_TILE(2, 4, 5)
            }
            AMX_ROW_STORE(0, 0, 1) AMX_ROW_STORE(1, 2, 3) AMX_ROW_STORE(2, 4, 5)
        }
    }
}

// The rows' integers as AMX operands: high and low halves, zero past the rows and past k; 32 at a time.
static AMX void amx_split_rows(const int16_t *q, long m, long k2, int8_t *high, uint8_t *low) {
    const long kp = amx_k(k2), padded = ck_amx_padded_rows(m);
    const __m512i byte = _mm512_set1_epi16(255);
    for (long r = 0; r < m; r++) {
        const int16_t *row = q + r * k2;
        int8_t *h = high + r * kp;
        uint8_t *l = low + r * kp;
        long p = 0;
        for (; p + 32 <= k2; p += 32) {
            const __m512i v = _mm512_loadu_si512((const void *)(row + p));
            _mm256_storeu_si256((__m256i *)(void *)(h + p), _mm512_cvtepi16_epi8(_mm512_srai_epi16(v, 8)));
            _mm256_storeu_si256((__m256i *)(void *)(l + p), _mm512_cvtepi16_epi8(_mm512_and_si512(v, byte)));
        }
        for (; p < k2; p++) {
            h[p] = (int8_t)(row[p] >> 8);
            l[p] = (uint8_t)(row[p] & 255);
        }
        memset(h + k2, 0, (size_t)(kp - k2));
        memset(l + k2, 0, (size_t)(kp - k2));
    }
    memset(high + m * kp, 0, (size_t)((padded - m) * kp));
    memset(low + m * kp, 0, (size_t)((padded - m) * kp));
}

// A thread's share of an AMX product: the tile configuration is per thread.
static AMX void amx_run_chunks(void *context, long part, long parts) {
    (void)part; (void)parts;
    int8_job *job = (int8_job *)context;
    ck_amx_configure(job->m);
    for (;;) {
        long p0 = atomic_fetch_add_explicit(&job->next_chunk, 1, memory_order_relaxed) * CHUNK_PANELS;
        if (p0 >= job->panels) break;
        long p1 = p0 + CHUNK_PANELS < job->panels ? p0 + CHUNK_PANELS : job->panels;
        if (job->m <= 16) amx_few_rows(job, p0, p1);
        else amx_many_rows(job, p0, p1);
    }
    _tile_release();
}
#endif

// What this CPU runs, as the int8 variants number it: 0 portable, 1 AVX2 (vpmaddwd), 2 AVX-512 BW (vpmaddwd on 512
// bits), 3 AVX512_VNNI (vpdpwssd), 4 AMX (tdpbssd and tdpbusd). STT_KERNELS caps it as it caps the float products
// (ck_cpu_level); =avx512 leaves out VNNI and AMX (ck_cpu_extensions_allowed).
static int int8_level(void) {
    static int level = -1;
    int known = __atomic_load_n(&level, __ATOMIC_ACQUIRE);
    if (known >= 0) return known;
    int found = ck_cpu_level() >= CK_LEVEL_AVX2 ? 1 : 0;
#if CK_X86
    if (ck_cpu_level() >= CK_LEVEL_AVX512 && ck_cpu_supports("avx512bw")) {
        found = 2;
        if (ck_cpu_extensions_allowed() && ck_cpu_supports("avx512vnni")) found = 3;
        if (ck_cpu_extensions_allowed() && ck_amx_available()) found = CK_INT8_AMX;
    }
#endif
    __atomic_store_n(&level, found, __ATOMIC_RELEASE);
    return found;
}

static void run_chunks(void *context, long part, long parts) {
    (void)part; (void)parts;
    int8_job *job = (int8_job *)context;
    for (;;) {
        long p0 = atomic_fetch_add_explicit(&job->next_chunk, 1, memory_order_relaxed) * CHUNK_PANELS;
        if (p0 >= job->panels) return;
        long p1 = p0 + CHUNK_PANELS < job->panels ? p0 + CHUNK_PANELS : job->panels;
        for (long j = p0; j < p1; j++) job->panel(job, j);
    }
}

static int gemm_int8(int variant, ck_pool *pool, const float *x, long m, long k, long ldx, const int8_t *packed,
                     const float *scales, long n, float *y, long ldy, int accumulate, float *scratch) {
    if (m <= 0 || n <= 0) return 1;
    float *owned = NULL;
    if (!scratch) {
        owned = malloc((size_t)ck_gemm_int8_scratch_size(m, k) * sizeof(float));
        if (!owned) return 0;
        scratch = owned;
    }
    float *row_scales = scratch;
    int16_t *q = (int16_t *)(scratch + m);
#if CK_X86
    if (variant > 0) quantize_rows_avx2(x, m, k, ldx, q, row_scales);
    else
#endif
        quantize_rows_base(x, m, k, ldx, q, row_scales);
    int8_job job = {q, row_scales, m, even(k), n, packed, scales, y, ldy, accumulate, (n + PANEL - 1) / PANEL,
                    portable_panel, 0, NULL, NULL};
    ck_task run = run_chunks;
#if CK_X86
    if (variant == 1) job.panel = avx2_panel;
    if (variant == 2) job.panel = avx512bw_panel;
    if (variant == 3) job.panel = avx512vnni_panel;
    if (variant == CK_INT8_AMX) {
        int8_t *high = (int8_t *)(q + m * even(k) + (m * even(k)) % 2);
        uint8_t *low = (uint8_t *)(high + ck_amx_padded_rows(m) * amx_k(k));
        amx_split_rows(q, m, even(k), high, low);
        job.high = high;
        job.low = low;
        run = amx_run_chunks;
    }
#endif
    if (m * k * n >= 65536 && job.panels >= 2 * CHUNK_PANELS) {
        ck_pool_run(pool, run, &job);
    } else {
        run(&job, 0, 1);
    }
    free(owned);
    return 1;
}

// AMX for products of 4 rows or more: with fewer, one that reads its weights from memory is bound by the reading,
// and the tiles only add work (1 row of 512 × 2048 from memory: 6.9 ms for 40 against 5.7 with VNNI; 4 rows: the
// same). Every variant gives the same bits, so which one runs a product changes nothing but its time.
#define AMX_MIN_ROWS 4

void ck_gemm_packed_int8(ck_pool *pool, const float *x, long m, long k, long ldx, const int8_t *packed,
                         const float *scales, long n, float *y, long ldy, int accumulate, float *scratch) {
    int variant = int8_level();
    if (variant == CK_INT8_AMX && m < AMX_MIN_ROWS) variant = ck_cpu_supports("avx512vnni") ? 3 : 2;
    gemm_int8(variant, pool, x, m, k, ldx, packed, scales, n, y, ldy, accumulate, scratch);
}

int ck_gemm_packed_int8_variant(int variant, ck_pool *pool, const float *x, long m, long k, long ldx,
                                const int8_t *packed, const float *scales, long n, float *y, long ldy, int accumulate,
                                float *scratch) {
    if (variant < 0 || variant > int8_level()) return 0;
    return gemm_int8(variant, pool, x, m, k, ldx, packed, scales, n, y, ldy, accumulate, scratch);
}

const char *ck_gemm_int8_variant(void) {
    static const char *names[] = {"portable", "avx2 (vpmaddwd)", "avx512bw (vpmaddwd)", "avx512_vnni (vpdpwssd)",
                                  "amx (tdpbssd, tdpbusd)"};
    return names[int8_level()];
}

// One core's peak of the selected variant's instruction, for ck_peak_gflops: vpmaddwd (two 16-bit multiply-adds a
// 32-bit lane) and the vpaddd that accumulates it, or vpdpwssd; 0 for the portable code (ck_peak_gflops measures it).
double ck_seconds(void);
#define PEAK_CHAINS 12
#if CK_X86
static AVX2 double avx2_int8_peak(long iterations, int seed) {
    double start = ck_seconds();
    __m256i c[PEAK_CHAINS], w = _mm256_set1_epi16((short)(seed * 3)), b = _mm256_set1_epi32(seed * 5);
    for (int i = 0; i < PEAK_CHAINS; i++) c[i] = _mm256_set1_epi32(seed + i);
    for (long r = 0; r < iterations; r++)
        for (int i = 0; i < PEAK_CHAINS; i++) c[i] = _mm256_add_epi32(b, _mm256_madd_epi16(c[i], w));
    for (int i = 1; i < PEAK_CHAINS; i++) c[0] = _mm256_add_epi32(c[0], c[i]);
    int32_t out[8];
    _mm256_storeu_si256((__m256i *)out, c[0]);
    if (out[0] == 12345) return -1;
    return iterations * (double)PEAK_CHAINS * 16 * 2 / (ck_seconds() - start) / 1e9;
}
#define PEAK512_BODY(ACCUMULATE)                                                                                \
    double start = ck_seconds();                                                                                \
    __m512i c[2 * PEAK_CHAINS], w = _mm512_set1_epi16((short)(seed * 3)), b = _mm512_set1_epi32(seed * 5);      \
    for (int i = 0; i < 2 * PEAK_CHAINS; i++) c[i] = _mm512_set1_epi32(seed + i);                               \
    for (long r = 0; r < iterations; r++)                                                                       \
        for (int i = 0; i < 2 * PEAK_CHAINS; i++) c[i] = ACCUMULATE(b, c[i], w);                                \
    for (int i = 1; i < 2 * PEAK_CHAINS; i++) c[0] = _mm512_add_epi32(c[0], c[i]);                              \
    int32_t out[16];                                                                                            \
    _mm512_storeu_si512((void *)out, c[0]);                                                                     \
    if (out[0] == 12345) return -1;                                                                             \
    return iterations * (double)PEAK_CHAINS * 2 * 32 * 2 / (ck_seconds() - start) / 1e9;
static AVX512BW double avx512bw_int8_peak(long iterations, int seed) { PEAK512_BODY(MADD_ADD) }
static AVX512VNNI double avx512vnni_int8_peak(long iterations, int seed) { PEAK512_BODY(_mm512_dpwssd_epi32) }
// AMX: tdpbssd for h and tdpbusd for l of the rows.
static AMX double amx_int8_peak(long iterations, int seed) {
    _Alignas(64) int8_t operand[16 * 64];
    _Alignas(64) int32_t out[16 * 16];
    memset(operand, seed, sizeof operand);
    double gflops = CK_AMX_PEAK_GFLOPS(_tile_dpbssd, _tile_dpbusd, 64, operand, out, iterations);
    return out[0] == 12345 ? -1 : gflops;
}
#endif

const char *ck_int8_peak_instruction(void) {
    static const char *names[] = {"scalar multiply-add", "vpmaddwd + vpaddd", "vpmaddwd + vpaddd", "vpdpwssd",
                                  "tdpbssd + tdpbusd"};
    return names[int8_level()];
}

double ck_int8_peak_gflops(long iterations) {
    volatile int seed = 1;
#if CK_X86
    switch (int8_level()) {
    case 1: return avx2_int8_peak(iterations, seed);
    case 2: return avx512bw_int8_peak(iterations, seed);
    case 3: return avx512vnni_int8_peak(iterations, seed);
    case CK_INT8_AMX: return amx_int8_peak(iterations, seed);
    }
#endif
    (void)iterations; (void)seed;
    return 0;
}
