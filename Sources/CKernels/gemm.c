#include "ckernels.h"
#include "simd.h"
#include "amx.h"
#include "panels.h"
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Products of a few rows (a streaming step has 1 to 14) with a weight matrix, stored as float32 or as bfloat16 (the
// top half of a float32: half the bytes to read, widened back to float32 in registers; sums stay float32). A general GEMM repacks the weight on
// every call; here it is packed once into column panels of 16 (each panel k×16 contiguous), and each panel is
// streamed sequentially while every row's accumulators stay in registers. Panels are the outer loop, so a panel
// stays in L2 while all row tiles use it, and a product splits across threads by panels: every output is summed by
// one thread in one order, whatever the thread count.

#define PANEL 16
#define CHUNK_PANELS 4
// Rows per register tile of each variant (accumulators: rows × 16 columns, in 16- or 8-wide registers).
#define AVX512_TILE_ROWS 14
#define AVX2_TILE_ROWS 6
#define PORTABLE_TILE_ROWS 4

static long even(long k) { return (k + 1) & ~1L; }

long ck_packed_size(long k, long n) { return k * ((n + PANEL - 1) / PANEL) * PANEL; }
long ck_packed_bf16_size(long k, long n) { return ck_packed_size(even(k), n); }

void ck_pack_panels_bytes(const void *weights, long k, long n, int transposed, float *packed) {
    const unsigned char *w = (const unsigned char *)weights;
    long panels = (n + PANEL - 1) / PANEL;
    for (long j = 0; j < panels; j++) {
        float *dst = packed + j * k * PANEL;
        long cols = n - j * PANEL < PANEL ? n - j * PANEL : PANEL;
        for (long p = 0; p < k; p++) {
            if (transposed) {
                for (long c = 0; c < cols; c++)
                    memcpy(dst + p * PANEL + c, w + ((j * PANEL + c) * k + p) * sizeof(float), sizeof(float));
            } else {
                memcpy(dst + p * PANEL, w + (p * n + j * PANEL) * sizeof(float), (size_t)cols * sizeof(float));
            }
            for (long c = cols; c < PANEL; c++) dst[p * PANEL + c] = 0.0f;
        }
    }
}

// bfloat16 of x, rounded to nearest even (NaN stays NaN).
static inline uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// Element (p, c) of a bfloat16 panel: k in pairs, each column's pair in one 32-bit lane, the even k in its low half.
static inline long bf16_index(long p, long c) { return (p / 2) * 2 * PANEL + c * 2 + (p & 1); }

void ck_pack_panels_bf16(const void *weights, long k, long n, int transposed, uint16_t *packed) {
    long panels = (n + PANEL - 1) / PANEL, k2 = even(k);
    for (long j = 0; j < panels; j++) {
        uint16_t *dst = packed + j * k2 * PANEL;
        for (long p = 0; p < k2; p += 2) {
            float pair[2][PANEL];
            ck_panel_row(weights, k, n, transposed, j * PANEL, p, pair[0]);
            ck_panel_row(weights, k, n, transposed, j * PANEL, p + 1, pair[1]);
            for (long c = 0; c < PANEL; c++) {
                dst[bf16_index(p, c)] = to_bf16(pair[0][c]);
                dst[bf16_index(p + 1, c)] = to_bf16(pair[1][c]);
            }
        }
    }
}

// One product as the variants see it. Row r of the tile that starts at row t·tile_rows, at input p, is
// rows[t·tile_step + r·row_stride + p·k_stride]: the caller's rows in place (k_stride 1), or, for a variant that
// packs, the rows of each tile repacked k-major (row_stride 1, k_stride tile_rows) — for AVX512_BF16, k pairs
// rounded to bfloat16, one 32-bit pair where a float would be.
typedef struct gemm_job gemm_job;
typedef void (*panel_range)(const gemm_job *job, long p0, long p1);

struct gemm_job {
    const float *rows;
    long tile_step, row_stride, k_stride;
    long m, k, n;
    const void *weights;   // float panels, or uint16_t (bfloat16) panels when bf16
    int bf16;
    float *y;
    long ldy;
    int accumulate;
    long panels;
    panel_range compute;
    _Atomic long next_chunk;   // the next CHUNK_PANELS panels to claim
};

// Bytes of one weight panel.
static inline long panel_bytes(const gemm_job *job) { return job->bf16 ? even(job->k) * PANEL * 2 : job->k * PANEL * 4; }

static inline void store_row(float *out, const float *sums, long cols, int accumulate) {
    for (long c = 0; c < cols; c++) out[c] = accumulate ? out[c] + sums[c] : sums[c];
}

// Rows [r0, r0 + mr) of one panel: xt is the row tile, wp the panel, y its first output.
typedef void (*row_tile)(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr);

// Panels [p0, p1) of a product, row tile by row tile.
static inline __attribute__((always_inline)) void each_tile(const gemm_job *job, long p0, long p1, int tile_rows,
                                                            row_tile tile) {
    for (long j = p0; j < p1; j++) {
        const void *wp = (const char *)job->weights + j * panel_bytes(job);
        long cols = job->n - j * PANEL < PANEL ? job->n - j * PANEL : PANEL;
        for (long r0 = 0; r0 < job->m; r0 += tile_rows) {
            int mr = (int)(job->m - r0 < tile_rows ? job->m - r0 : tile_rows);
            tile(job, job->rows + (r0 / tile_rows) * job->tile_step, wp, job->y + r0 * job->ldy + j * PANEL, cols, mr);
        }
    }
}

// Portable: the 16-wide inner loop is left to the compiler's vectorizer.
static inline __attribute__((always_inline)) void portable_tile(const gemm_job *job, const float *xt, const void *wp,
                                                                float *y, long cols, int mr, int bf16) {
    float acc[PORTABLE_TILE_ROWS][PANEL] = {{0}};
    for (long p = 0; p < job->k; p++) {
        float w[PANEL];
        for (int c = 0; c < PANEL; c++)
            w[c] = bf16 ? from_bf16(((const uint16_t *)wp)[bf16_index(p, c)]) : ((const float *)wp)[p * PANEL + c];
        for (int r = 0; r < mr; r++) {
            float xv = xt[r * job->row_stride + p];
            for (int c = 0; c < PANEL; c++) acc[r][c] += xv * w[c];
        }
    }
    for (int r = 0; r < mr; r++) store_row(y + r * job->ldy, acc[r], cols, job->accumulate);
}

static void portable_tile_f32(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr) {
    portable_tile(job, xt, wp, y, cols, mr, 0);
}
static void portable_tile_bf16(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr) {
    portable_tile(job, xt, wp, y, cols, mr, 1);
}
static void portable_panels(const gemm_job *job, long p0, long p1) {
    each_tile(job, p0, p1, PORTABLE_TILE_ROWS, job->bf16 ? portable_tile_bf16 : portable_tile_f32);
}

#if CK_X86
#define AVX512 CK_TARGET("avx512f")
#define AVX2 CK_TARGET("avx2,fma")

// Pair q of a bfloat16 panel widened to float32: w[0], w[1] the even k's columns 0–7 and 8–15 (each lane's low half
// shifted up), w[2], w[3] the odd k's (the high halves, masked).
static inline __attribute__((always_inline)) AVX2 void widen_pair256(const uint16_t *wp, long q, __m256 w[4]) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(wp + q * 2 * PANEL));
    __m256i b = _mm256_loadu_si256((const __m256i *)(wp + q * 2 * PANEL + PANEL));
    const __m256i high = _mm256_set1_epi32((int)0xFFFF0000u);
    w[0] = _mm256_castsi256_ps(_mm256_slli_epi32(a, 16));
    w[1] = _mm256_castsi256_ps(_mm256_slli_epi32(b, 16));
    w[2] = _mm256_castsi256_ps(_mm256_and_si256(a, high));
    w[3] = _mm256_castsi256_ps(_mm256_and_si256(b, high));
}

// AVX2: up to 6 rows × 16 columns (2 ymm each): 12 accumulators; rows read in place. When a product has more rows
// than one tile, each panel is used by several tiles in turn and the later ones find it in cache while memory would
// idle; so the tiles of a panel share out the prefetching of the next one: tile t of T prefetches the t-th T-th of it,
// `stride` bytes further at each k (or pair of k), and memory streams at one even pace over all of the panel's
// arithmetic. (When the first tile alone prefetched the whole next panel, a line per k, memory was busy for its third
// of the time and idle for the rest: 14 rows of a 512 × 2048 product from memory ran at 39–57 GFLOP/s against 54–73
// shared out.) With one tile the hardware prefetcher alone streams faster (measured), so `next` is NULL.
static inline __attribute__((always_inline)) AVX2 void tile256(const float *x, long ldx, const void *wp,
                                                                const char *next, long stride, float *y, long ldy,
                                                                long k, int mr,
                                                                long cols, int accumulate, int bf16) {
    __m256 c0[AVX2_TILE_ROWS], c1[AVX2_TILE_ROWS];
    for (int r = 0; r < mr; r++) { c0[r] = _mm256_setzero_ps(); c1[r] = _mm256_setzero_ps(); }
    if (bf16) {
        // A pair of k a line: the even k's weights, then the odd k's.
        __m256 w[4];
        for (long q = 0; q < k / 2; q++) {
            if (next) _mm_prefetch(next + q * stride, _MM_HINT_T0);
            widen_pair256((const uint16_t *)wp, q, w);
            for (int r = 0; r < mr; r++) {
                __m256 xe = _mm256_broadcast_ss(x + r * ldx + 2 * q), xo = _mm256_broadcast_ss(x + r * ldx + 2 * q + 1);
                c0[r] = _mm256_fmadd_ps(xe, w[0], c0[r]);
                c1[r] = _mm256_fmadd_ps(xe, w[1], c1[r]);
                c0[r] = _mm256_fmadd_ps(xo, w[2], c0[r]);
                c1[r] = _mm256_fmadd_ps(xo, w[3], c1[r]);
            }
        }
        if (k & 1) {   // the last k alone: its pair's odd weights are zero, and the row has no element there
            widen_pair256((const uint16_t *)wp, k / 2, w);
            for (int r = 0; r < mr; r++) {
                __m256 xe = _mm256_broadcast_ss(x + r * ldx + k - 1);
                c0[r] = _mm256_fmadd_ps(xe, w[0], c0[r]);
                c1[r] = _mm256_fmadd_ps(xe, w[1], c1[r]);
            }
        }
    } else {
        for (long p = 0; p < k; p++) {
            if (next) _mm_prefetch(next + p * stride, _MM_HINT_T0);
            __m256 w0 = _mm256_loadu_ps((const float *)wp + p * PANEL), w1 = _mm256_loadu_ps((const float *)wp + p * PANEL + 8);
            for (int r = 0; r < mr; r++) {
                __m256 xv = _mm256_broadcast_ss(x + r * ldx + p);
                c0[r] = _mm256_fmadd_ps(xv, w0, c0[r]);
                c1[r] = _mm256_fmadd_ps(xv, w1, c1[r]);
            }
        }
    }
    for (int r = 0; r < mr; r++) {
        float sums[PANEL];
        _mm256_storeu_ps(sums, c0[r]);
        _mm256_storeu_ps(sums + 8, c1[r]);
        store_row(y + r * ldy, sums, cols, accumulate);
    }
}

#define TILE256(MR, BF16) \
    case MR: \
        tile256(xt, job->row_stride, wp, next, stride, y, job->ldy, job->k, MR, cols, job->accumulate, BF16); \
        break;

static AVX2 void avx2_tile_f32(const gemm_job *job, const float *xt, const void *wp, const char *next, long stride,
                               float *y, long cols, int mr) {
    switch (mr) { TILE256(1, 0) TILE256(2, 0) TILE256(3, 0) TILE256(4, 0) TILE256(5, 0) TILE256(6, 0) }
}
static AVX2 void avx2_tile_bf16(const gemm_job *job, const float *xt, const void *wp, const char *next, long stride,
                                float *y, long cols, int mr) {
    switch (mr) { TILE256(1, 1) TILE256(2, 1) TILE256(3, 1) TILE256(4, 1) TILE256(5, 1) TILE256(6, 1) }
}

// Rows in place, split into the fewest tiles of near-equal height: 14 rows as 4 + 5 + 5 rather than 6 + 6 + 2, whose
// two-row tile would wait on the FMA latency (4 accumulator chains) instead of filling both FMA units.
static void avx2_panels(const gemm_job *job, long p0, long p1) {
    void (*tile)(const gemm_job *, const float *, const void *, const char *, long, float *, long, int) =
        job->bf16 ? avx2_tile_bf16 : avx2_tile_f32;
    const long tiles = (job->m + AVX2_TILE_ROWS - 1) / AVX2_TILE_ROWS, bytes = panel_bytes(job);
    const long share = (bytes + tiles - 1) / tiles, steps = job->bf16 ? even(job->k) / 2 : job->k;
    const long stride = (share + steps - 1) / steps;
    for (long j = p0; j < p1; j++) {
        const char *wp = (const char *)job->weights + j * bytes;
        long cols = job->n - j * PANEL < PANEL ? job->n - j * PANEL : PANEL;
        for (long t = 0, r0 = 0; t < tiles; t++) {
            int mr = (int)((job->m - r0) / (tiles - t));
            const char *next = tiles > 1 ? wp + bytes + t * share : NULL;
            tile(job, job->rows + r0 * job->row_stride, wp, next, stride, job->y + r0 * job->ldy + j * PANEL, cols, mr);
            r0 += mr;
        }
    }
}

// AVX-512: up to 14 rows × one 16-wide panel, one weight vector per k used by every row. Packed rows put one k's
// broadcasts in one cache line; the weight panel is prefetched ahead. Two accumulator sets take alternate k (k pairs
// for bfloat16) and are summed at the end, so that even one row has two independent chains of FMAs (a memory-bound
// row needs no more). It is two for every tile height (2 × 14 of the 32 registers): each row's sum then has the same
// order whatever the rows beside it, so a batch of streams gives each stream the bits it gets alone.
#define SPLITS 2
// How far ahead in a panel each step prefetches: 128 lines. A 14-row tile spends about 7 cycles of FMAs on each line
// of float32 weights, so a prefetch 24 lines (1,536 bytes) ahead was issued about 60 ns before its use, less than a
// read from memory takes. 14 rows of 40 matrices of 512 × 2048 from memory (Xeon, Sapphire Rapids generation), three
// alternating runs each: 16.5–17.7 ms at 1,536 bytes, 14.0–15.7 at 4,096, 14.2–15.3 at 8,192, 14.5–14.8 at 16,384;
// 1 row unchanged (10.9 ms at 1,536 and 8,192).
#define AVX512_PREFETCH_BYTES 8192

// Step `at` (a k, or a pair of k for bfloat16) of a panel into accumulator set c: float32 weights, or a bfloat16 pair
// widened (the even k's are each lane's low half shifted up, the odd k's the high half masked).
static inline __attribute__((always_inline)) AVX512 void step512(__m512 *c, const float *xt, long rs, long ks,
                                                                  const void *wp, long at, int mr, int bf16) {
    if (bf16) {
        _mm_prefetch((const char *)wp + at * 2 * PANEL * 2 + AVX512_PREFETCH_BYTES, _MM_HINT_T0);
        __m512i pair = _mm512_loadu_si512((const void *)((const uint16_t *)wp + at * 2 * PANEL));
        __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(pair, 16));
        __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(pair, _mm512_set1_epi32((int)0xFFFF0000u)));
        const float *xp = xt + 2 * at * ks;
        for (int r = 0; r < mr; r++) {
            c[r] = _mm512_fmadd_ps(_mm512_set1_ps(xp[r * rs]), we, c[r]);
            c[r] = _mm512_fmadd_ps(_mm512_set1_ps(xp[ks + r * rs]), wo, c[r]);
        }
    } else {
        _mm_prefetch((const char *)wp + at * PANEL * 4 + AVX512_PREFETCH_BYTES, _MM_HINT_T0);
        __m512 wv = _mm512_loadu_ps((const float *)wp + at * PANEL);
        const float *xp = xt + at * ks;
        for (int r = 0; r < mr; r++) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(xp[r * rs]), wv, c[r]);
    }
}

// Sums the accumulator sets and stores (or adds) the tile's rows, the last panel's columns masked.
static inline __attribute__((always_inline)) AVX512 void store512(__m512 *c, int splits, float *y, long ldy, int mr,
                                                                   long cols, int accumulate) {
    for (int s = 1; s < splits; s++)
        for (int r = 0; r < mr; r++) c[r] = _mm512_add_ps(c[r], c[s * mr + r]);
    __mmask16 mask = cols >= PANEL ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    for (int r = 0; r < mr; r++) {
        float *out = y + r * ldy;
        if (accumulate) c[r] = _mm512_add_ps(c[r], _mm512_maskz_loadu_ps(mask, out));
        _mm512_mask_storeu_ps(out, mask, c[r]);
    }
}

static inline __attribute__((always_inline)) AVX512 void tile512(const float *xt, long rs, long ks, const void *wp,
                                                                  float *y, long ldy, long k, int mr, long cols,
                                                                  int accumulate, int bf16) {
    const int splits = SPLITS;
    const long steps = bf16 ? k / 2 : k;
    __m512 c[SPLITS * AVX512_TILE_ROWS];
    for (int i = 0; i < mr * splits; i++) c[i] = _mm512_setzero_ps();
    long at = 0;
    for (; at + splits <= steps; at += splits)
        for (int s = 0; s < splits; s++) step512(c + s * mr, xt, rs, ks, wp, at + s, mr, bf16);
    for (; at < steps; at++) step512(c, xt, rs, ks, wp, at, mr, bf16);
    if (bf16 && (k & 1)) {   // the last k alone: its pair's odd weights are zero, and the rows have no element there
        __m512 we = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_loadu_si512((const void *)((const uint16_t *)wp + steps * 2 * PANEL)), 16));
        const float *xp = xt + (k - 1) * ks;
        for (int r = 0; r < mr; r++) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(xp[r * rs]), we, c[r]);
    }
    store512(c, splits, y, ldy, mr, cols, accumulate);
}

// Packed rows get constant strides, so each tile height compiles to immediate offsets.
#define TILE512(MR, RS, KS, BF16) \
    case MR: tile512(xt, RS, KS, wp, y, job->ldy, job->k, MR, cols, job->accumulate, BF16); break;
#define TILES(TILE, A, B, C)                                                                                     \
    switch (mr) {                                                                                                \
        TILE(1, A, B, C) TILE(2, A, B, C) TILE(3, A, B, C) TILE(4, A, B, C) TILE(5, A, B, C) TILE(6, A, B, C)    \
        TILE(7, A, B, C) TILE(8, A, B, C) TILE(9, A, B, C) TILE(10, A, B, C) TILE(11, A, B, C)                   \
        TILE(12, A, B, C) TILE(13, A, B, C) TILE(14, A, B, C)                                                    \
    }

static AVX512 void avx512_tile_f32(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr) {
    if (job->k_stride != 1) {
        TILES(TILE512, 1, AVX512_TILE_ROWS, 0)
    } else {
        TILES(TILE512, job->row_stride, 1, 0)
    }
}
static AVX512 void avx512_tile_bf16(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr) {
    if (job->k_stride != 1) {
        TILES(TILE512, 1, AVX512_TILE_ROWS, 1)
    } else {
        TILES(TILE512, job->row_stride, 1, 1)
    }
}

static void avx512_panels(const gemm_job *job, long p0, long p1) {
    each_tile(job, p0, p1, AVX512_TILE_ROWS, job->bf16 ? avx512_tile_bf16 : avx512_tile_f32);
}

// AVX512_BF16: vdpbf16ps multiplies a lane's pair of bfloat16 weights by a broadcast pair of the row (rounded to
// bfloat16 when the rows are packed) and adds both products to the lane's float32 sum: one instruction per row for
// two k. Rows are always packed here, pair-major (row_stride 1, k_stride tile rows, in 32-bit pairs).
#define AVX512BF16 CK_TARGET("avx512f,avx512bf16")
#if defined(CK_EMULATE_X86)
#define AS_BF16_PAIRS(v) ((__m512bh)simde__m512i_to_private(v).f32)
#else
#define AS_BF16_PAIRS(v) ((__m512bh)(v))
#endif

static inline __attribute__((always_inline)) AVX512BF16 void dot_step512(__m512 *c, const int32_t *xp, const void *wp,
                                                                        long q, int mr) {
    _mm_prefetch((const char *)wp + q * 2 * PANEL * 2 + AVX512_PREFETCH_BYTES, _MM_HINT_T0);
    __m512bh w = AS_BF16_PAIRS(_mm512_loadu_si512((const void *)((const uint16_t *)wp + q * 2 * PANEL)));
    for (int r = 0; r < mr; r++)
        c[r] = _mm512_dpbf16_ps(c[r], AS_BF16_PAIRS(_mm512_set1_epi32(xp[q * AVX512_TILE_ROWS + r])), w);
}

static inline __attribute__((always_inline)) AVX512BF16 void tile512_dot(const float *xt, const void *wp, float *y,
                                                                        long ldy, long k, int mr, long cols,
                                                                        int accumulate) {
    const int splits = SPLITS;
    const long pairs = even(k) / 2;
    const int32_t *xp = (const int32_t *)(const void *)xt;
    __m512 c[SPLITS * AVX512_TILE_ROWS];
    for (int i = 0; i < mr * splits; i++) c[i] = _mm512_setzero_ps();
    long q = 0;
    for (; q + splits <= pairs; q += splits)
        for (int s = 0; s < splits; s++) dot_step512(c + s * mr, xp, wp, q + s, mr);
    for (; q < pairs; q++) dot_step512(c, xp, wp, q, mr);
    store512(c, splits, y, ldy, mr, cols, accumulate);
}

#define TILE512_DOT(MR, A, B, C) case MR: tile512_dot(xt, wp, y, job->ldy, job->k, MR, cols, job->accumulate); break;
static AVX512BF16 void avx512_dot_tile(const gemm_job *job, const float *xt, const void *wp, float *y, long cols,
                                      int mr) {
    TILES(TILE512_DOT, 0, 0, 0)
}

static void avx512_dot_panels(const gemm_job *job, long p0, long p1) {
    each_tile(job, p0, p1, AVX512_TILE_ROWS, avx512_dot_tile);
}

// AMX bfloat16: tdpbf16ps multiplies a tile of rows (up to 16 rows × 32 k, in bfloat16 pairs) by a tile of weights
// (16 pairs of k × 16 columns: 1 KB of a panel as it is packed, read in place) and adds each pair's products to the
// float32 sums of 16 rows × 16 columns. Rounding the rows to bfloat16 would add their error to the weights'
// (AVX512_BF16 above), so each row is split in two: h, its float32 value cut to bfloat16, and l = bfloat16(x − h),
// whose sum holds 16 of x's 24 significant bits (|x − h − l| ≤ 2⁻¹⁶ |x|); two products, of h and of l, into separate
// sums added at the end. The sums are float32 throughout, in their own order, so results differ from the widening
// variants' by float32 rounding; every row's sums depend on that row alone, so a batch of streams gives each stream
// the bits it gets alone. Tiles as for int8 (gemm_int8.c): with at most 16 rows two panels at a time (0–3 the sums
// of h and l for each, 4 and 5 the rows' h and l, 6 and 7 the weights), with more up to three row tiles a panel.
#define AMXBF16 CK_TARGET("amx-tile,amx-bf16,avx512f")

// k in bfloat16 values, rounded up to whole 64-byte tile rows.
static long amx_bf16_k(long k) { return (even(k) + 31) / 32 * 32; }

// Rows as AMX operands (see above): h and l of every value, zeros past k and past the rows. A NaN is h alone (a quiet
// NaN), and so is ±∞ (its l would be NaN). Sixteen values at a time; the same in scalar code for the rest.
static inline uint16_t amx_bf16_high(uint32_t u) {
    return (u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0 : (uint16_t)(u >> 16);
}
static inline uint16_t amx_bf16_low(uint32_t u, float v) {
    return (u & 0x7f800000u) == 0x7f800000u ? 0 : to_bf16(v - from_bf16((uint16_t)(u >> 16)));
}

static AMXBF16 void amx_bf16_split_rows(const float *x, long m, long k, long ldx, uint16_t *high, uint16_t *low) {
    const long kp = amx_bf16_k(k), padded = ck_amx_padded_rows(m);
    const __m512i top = _mm512_set1_epi32((int)0xFFFF0000u), exponent = _mm512_set1_epi32(0x7f800000);
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff), quiet_nan = _mm512_set1_epi32(0x7fc00000);
    const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    for (long r = 0; r < m; r++) {
        const float *row = x + r * ldx;
        uint16_t *h = high + r * kp, *l = low + r * kp;
        long p = 0;
        for (; p + 16 <= k; p += 16) {
            const __m512i u = _mm512_loadu_si512((const void *)(row + p));
            const __m512 cut = _mm512_castsi512_ps(_mm512_and_si512(u, top));
            const __m512i rest = _mm512_castps_si512(_mm512_sub_ps(_mm512_castsi512_ps(u), cut));
            const __m512i rounded = _mm512_add_epi32(
                rest, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(rest, 16), one)));
            const __mmask16 special = _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, exponent), exponent);
            const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, magnitude), exponent);
            const __m512i hv = _mm512_mask_blend_epi32(nan, u, quiet_nan);
            const __m512i lv = _mm512_mask_blend_epi32(special, rounded, _mm512_setzero_si512());
            _mm256_storeu_si256((__m256i *)(void *)(h + p), _mm512_cvtepi32_epi16(_mm512_srli_epi32(hv, 16)));
            _mm256_storeu_si256((__m256i *)(void *)(l + p), _mm512_cvtepi32_epi16(_mm512_srli_epi32(lv, 16)));
        }
        for (; p < k; p++) {
            uint32_t u;
            memcpy(&u, row + p, sizeof u);
            h[p] = amx_bf16_high(u);
            l[p] = amx_bf16_low(u, row[p]);
        }
        memset(h + k, 0, (size_t)(kp - k) * sizeof *h);
        memset(l + k, 0, (size_t)(kp - k) * sizeof *l);
    }
    memset(high + m * kp, 0, (size_t)((padded - m) * kp) * sizeof *high);
    memset(low + m * kp, 0, (size_t)((padded - m) * kp) * sizeof *low);
}

// Block b (pairs 16b to 16b + 15) of panel j as a weight tile: in place, or copied with zeros past the last pair.
static inline __attribute__((always_inline)) const uint16_t *amx_bf16_weights(const gemm_job *job, long j, long b,
                                                                           uint16_t *tail) {
    const long pairs = even(job->k) / 2;
    const uint16_t *wp = (const uint16_t *)job->weights + j * even(job->k) * PANEL + b * 16 * 2 * PANEL;
    for (int l = 0; l < 16; l++) _mm_prefetch((const char *)wp + l * 64 + CK_AMX_AHEAD, _MM_HINT_T0);
    if (b * 16 + 16 <= pairs) return wp;
    memset(tail, 0, 16 * 2 * PANEL * sizeof *tail);
    memcpy(tail, wp, (size_t)(pairs - b * 16) * 2 * PANEL * sizeof *tail);
    return tail;
}

// Rows [r0, r0 + rows) of panel j: the sums of h and of l added, stored or accumulated.
static inline __attribute__((always_inline)) AMXBF16 void amx_bf16_store(const gemm_job *job, const float *sh,
                                                                        const float *sl, long r0, long rows, long j) {
    const long cols = job->n - j * PANEL < PANEL ? job->n - j * PANEL : PANEL;
    const __mmask16 mask = (__mmask16)((1u << cols) - 1);
    for (long r = 0; r < rows; r++) {
        __m512 v = _mm512_add_ps(_mm512_loadu_ps(sh + r * PANEL), _mm512_loadu_ps(sl + r * PANEL));
        float *out = job->y + (r0 + r) * job->ldy + j * PANEL;
        if (job->accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
        _mm512_mask_storeu_ps(out, mask, v);
    }
}

static AMXBF16 void amx_bf16_few_rows(const gemm_job *job, const uint16_t *high, const uint16_t *low, long p0,
                                      long p1) {
    _Alignas(64) uint16_t tails[2][16 * 2 * PANEL];
    _Alignas(64) float sums[4][16 * PANEL];
    const long kp = amx_bf16_k(job->k);
    for (long j = p0; j < p1; j += 2) {
        const int two = j + 1 < p1;
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (long b = 0; b < kp / 32; b++) {
            _tile_loadd(4, high + b * 32, kp * 2);
            _tile_loadd(5, low + b * 32, kp * 2);
            _tile_loadd(6, amx_bf16_weights(job, j, b, tails[0]), 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 5, 6);
            if (two) {
                _tile_loadd(7, amx_bf16_weights(job, j + 1, b, tails[1]), 64);
                _tile_dpbf16ps(2, 4, 7);
                _tile_dpbf16ps(3, 5, 7);
            }
        }
        _tile_stored(0, sums[0], 64); _tile_stored(1, sums[1], 64);
        amx_bf16_store(job, sums[0], sums[1], 0, job->m, j);
        if (two) {
            _tile_stored(2, sums[2], 64); _tile_stored(3, sums[3], 64);
            amx_bf16_store(job, sums[2], sums[3], 0, job->m, j + 1);
        }
    }
}

#define AMX_BF16_ROW_TILE(T, CH, CL)                                                                            \
    if (tiles > T) {                                                                                            \
        const long at = (g + T) * 16 * kp + b * 32;                                                             \
        _tile_loadd(6, high + at, kp * 2); _tile_dpbf16ps(CH, 6, 7);                                            \
        _tile_loadd(6, low + at, kp * 2); _tile_dpbf16ps(CL, 6, 7);                                             \
    }
#define AMX_BF16_ROW_STORE(T, CH, CL)                                                                           \
    if (tiles > T) {                                                                                            \
        _tile_stored(CH, sums[0], 64); _tile_stored(CL, sums[1], 64);                                           \
        const long r0 = (g + T) * 16;                                                                           \
        amx_bf16_store(job, sums[0], sums[1], r0, job->m - r0 < 16 ? job->m - r0 : 16, j);                      \
    }

static AMXBF16 void amx_bf16_many_rows(const gemm_job *job, const uint16_t *high, const uint16_t *low, long p0,
                                       long p1) {
    _Alignas(64) uint16_t tail[16 * 2 * PANEL];
    _Alignas(64) float sums[2][16 * PANEL];
    const long kp = amx_bf16_k(job->k), row_tiles = ck_amx_padded_rows(job->m) / 16;
    for (long j = p0; j < p1; j++) {
        for (long g = 0; g < row_tiles; g += 3) {
            const long tiles = row_tiles - g < 3 ? row_tiles - g : 3;
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3); _tile_zero(4); _tile_zero(5);
            for (long b = 0; b < kp / 32; b++) {
                _tile_loadd(7, amx_bf16_weights(job, j, b, tail), 64);
                AMX_BF16_ROW_TILE(0, 0, 1) AMX_BF16_ROW_TILE(1, 2, 3) AMX_BF16_ROW_TILE(2, 4, 5)
            }
            AMX_BF16_ROW_STORE(0, 0, 1) AMX_BF16_ROW_STORE(1, 2, 3) AMX_BF16_ROW_STORE(2, 4, 5)
        }
    }
}

// Panels [p0, p1): the split rows are job->rows, h then l (amx_bf16_split_rows).
static void amx_bf16_panels(const gemm_job *job, long p0, long p1) {
    const uint16_t *high = (const uint16_t *)(const void *)job->rows;
    const uint16_t *low = high + ck_amx_padded_rows(job->m) * amx_bf16_k(job->k);
    if (job->m <= 16) amx_bf16_few_rows(job, high, low, p0, p1);
    else amx_bf16_many_rows(job, high, low, p0, p1);
}
#endif

enum { ROWS_IN_PLACE, ROWS_PACKED, ROWS_BF16_PAIRS, ROWS_AMX_BF16 };

typedef struct {
    const char *name;
    int tile_rows;
    // ROWS_PACKED: reads each row tile k-major from the caller's scratch when there is one; ROWS_BF16_PAIRS: always
    // (allocated when there is no scratch), rounded to bfloat16 pairs.
    int rows;
    panel_range panels;
} gemm_variant;

// Indexed by CK_LEVEL_*, then CK_GEMM_AVX512_BF16 and CK_GEMM_AMX_BF16.
static const gemm_variant variants[] = {
    {"portable", PORTABLE_TILE_ROWS, ROWS_IN_PLACE, portable_panels},
#if CK_X86
    {"avx2+fma", AVX2_TILE_ROWS, ROWS_IN_PLACE, avx2_panels},
    {"avx512", AVX512_TILE_ROWS, ROWS_PACKED, avx512_panels},
    {"avx512_bf16 (vdpbf16ps)", AVX512_TILE_ROWS, ROWS_BF16_PAIRS, avx512_dot_panels},
    {"amx_bf16 (tdpbf16ps, rows split in two)", 16, ROWS_AMX_BF16, amx_bf16_panels},
#endif
};

int ck_gemm_bf16_dot_supported(void) {
#if CK_X86
    static int known = -1;
    int available = __atomic_load_n(&known, __ATOMIC_ACQUIRE);
    if (available < 0) {
        available = ck_cpu_extensions_allowed() && ck_cpu_supports("avx512bf16");
        __atomic_store_n(&known, available, __ATOMIC_RELEASE);
    }
    return available;
#else
    return 0;
#endif
}

// AVX512_BF16 for bf16 products only when asked for (STT_BF16_ROWS=1): on the trained fixture (emulated), rounding the
// rows too changed 27 of 3,666 RNN-T tokens against fp32 (one result in 12 of its 126), where widening changes 12.
static int bf16_dot_available(void) {
    static int known = -1;
    int chosen = __atomic_load_n(&known, __ATOMIC_ACQUIRE);
    if (chosen < 0) {
        const char *asked = getenv("STT_BF16_ROWS");
        chosen = ck_gemm_bf16_dot_supported() && asked && strcmp(asked, "1") == 0;
        __atomic_store_n(&known, chosen, __ATOMIC_RELEASE);
    }
    return chosen;
}

// AMX bfloat16 products wherever they can run: their rows keep 16 bits (see above).
static int amx_bf16_available(void) { return ck_cpu_extensions_allowed() && ck_amx_available(); }

static const gemm_variant *selected(int bf16) {
    if (bf16 && amx_bf16_available()) return &variants[CK_GEMM_AMX_BF16];
    return &variants[bf16 && bf16_dot_available() ? CK_GEMM_AVX512_BF16 : ck_cpu_level()];
}


static void run_chunks(void *context, long part, long parts) {
    (void)part; (void)parts;
    gemm_job *job = (gemm_job *)context;
    for (;;) {
        long p0 = atomic_fetch_add_explicit(&job->next_chunk, 1, memory_order_relaxed) * CHUNK_PANELS;
        if (p0 >= job->panels) return;
        long p1 = p0 + CHUNK_PANELS < job->panels ? p0 + CHUNK_PANELS : job->panels;
        job->compute(job, p0, p1);
    }
}

#if CK_X86
// A thread's share of an AMX product: the tile configuration is per thread.
static AMX_TILE void amx_run_chunks(void *context, long part, long parts) {
    ck_amx_configure(((gemm_job *)context)->m);
    run_chunks(context, part, parts);
    _tile_release();
}
#endif

static void gemm_with(const gemm_variant *v, ck_pool *pool, const float *x, long m, long k, long ldx,
                      const void *packed, int bf16, long n, float *y, long ldy, int accumulate, float *scratch) {
    if (m <= 0 || n <= 0) return;
    gemm_job job = {x, v->tile_rows * ldx, ldx, 1, m, k, n, packed, bf16, y, ldy, accumulate, (n + PANEL - 1) / PANEL,
                    v->panels, 0};
    float *owned = NULL;
    if (v->rows == ROWS_BF16_PAIRS) {
        // Each tile's rows pair-major: pair q of row r is 32-bit element q·tile + r, the even k in the low half.
        const long tile = v->tile_rows, pairs = even(k) / 2, tiles = (m + tile - 1) / tile;
        if (!scratch) {
            owned = malloc((size_t)(tiles * tile * pairs) * sizeof(float));
            if (!owned) return;
            scratch = owned;
        }
        uint32_t *packed_rows = (uint32_t *)(void *)scratch;
        for (long t = 0; t < tiles; t++) {
            for (long r = 0; r < tile; r++) {
                uint32_t *out = packed_rows + t * tile * pairs + r;
                if (t * tile + r >= m) {   // past the last row: zeros
                    for (long q = 0; q < pairs; q++) out[q * tile] = 0;
                    continue;
                }
                const float *row = x + (t * tile + r) * ldx;
                for (long q = 0; q < pairs; q++) {
                    uint32_t odd_k = 2 * q + 1 < k ? to_bf16(row[2 * q + 1]) : 0;
                    out[q * tile] = to_bf16(row[2 * q]) | odd_k << 16;
                }
            }
        }
        job.rows = scratch;
        job.tile_step = tile * pairs;
        job.row_stride = 1;
        job.k_stride = tile;
    }
    ck_task run = run_chunks;
#if CK_X86
    if (v->rows == ROWS_AMX_BF16) {
        const long values = ck_amx_padded_rows(m) * amx_bf16_k(k);   // h, then l: a float's room holds both
        if (!scratch) {
            owned = malloc((size_t)values * sizeof(float));
            if (!owned) return;
            scratch = owned;
        }
        uint16_t *high = (uint16_t *)(void *)scratch;
        amx_bf16_split_rows(x, m, k, ldx, high, high + values);
        job.rows = scratch;
        run = amx_run_chunks;
    }
#endif
    // A single row is already k-contiguous; without scratch the rows are read in place rather than allocated for.
    if (v->rows == ROWS_PACKED && m > 1 && scratch) {
        const long tile = v->tile_rows;
        for (long t = 0; t * tile < m; t++) {
            long r0 = t * tile, mr = m - r0 < tile ? m - r0 : tile;
            float *xt = scratch + t * k * tile;
            for (long r = 0; r < mr; r++)
                for (long p = 0; p < k; p++) xt[p * tile + r] = x[(r0 + r) * ldx + p];
        }
        job.rows = scratch;
        job.tile_step = k * tile;
        job.row_stride = 1;
        job.k_stride = tile;
    }
    // Split only products worth a hand-off (about 64 K multiply-adds or more, several panels per thread).
    if (m * k * n >= 65536 && job.panels >= 2 * CHUNK_PANELS) {
        ck_pool_run(pool, run, &job);
    } else {
        run(&job, 0, 1);
    }
    free(owned);
}

long ck_gemm_scratch_size(long m, long k) {
    // The float32 variant's packed rows are the largest (bfloat16 pairs take half as many 32-bit slots).
    const gemm_variant *v = selected(0);
    long rows = v->rows == ROWS_PACKED && m > 1 ? (m + v->tile_rows - 1) / v->tile_rows * v->tile_rows * k : 0;
    if (ck_gemm_bf16_dot_supported()) {
        long pairs = (m + AVX512_TILE_ROWS - 1) / AVX512_TILE_ROWS * AVX512_TILE_ROWS * (even(k) / 2);
        rows = pairs > rows ? pairs : rows;
    }
#if CK_X86
    if (amx_bf16_available() && m > 0) {
        long halves = ck_amx_padded_rows(m) * amx_bf16_k(k);
        rows = halves > rows ? halves : rows;
    }
#endif
    long int8 = ck_gemm_int8_scratch_size(m, k);
    return rows > int8 ? rows : int8;
}

void ck_gemm_packed(ck_pool *pool, const float *x, long m, long k, long ldx, const float *packed, long n, float *y,
                    long ldy, int accumulate, float *scratch) {
    gemm_with(selected(0), pool, x, m, k, ldx, packed, 0, n, y, ldy, accumulate, scratch);
}

void ck_gemm_packed_bf16(ck_pool *pool, const float *x, long m, long k, long ldx, const uint16_t *packed, long n,
                         float *y, long ldy, int accumulate, float *scratch) {
    gemm_with(selected(1), pool, x, m, k, ldx, packed, 1, n, y, ldy, accumulate, scratch);
}

int ck_gemm_packed_variant(int variant, ck_pool *pool, const float *x, long m, long k, long ldx, const void *packed,
                           int bf16, long n, float *y, long ldy, int accumulate, float *scratch) {
    if (variant == CK_GEMM_AMX_BF16 ? !bf16 || !amx_bf16_available()
        : variant == CK_GEMM_AVX512_BF16 ? !bf16 || !ck_gemm_bf16_dot_supported()
                                         : variant < 0 || variant > ck_cpu_level())
        return 0;
    gemm_with(&variants[variant], pool, x, m, k, ldx, packed, bf16 != 0, n, y, ldy, accumulate, scratch);
    return 1;
}

const char *ck_peak_instruction(int precision) {
    if (precision == CK_PEAK_INT8) return ck_int8_peak_instruction();
    if (precision == CK_PEAK_BF16 && selected(1)->rows == ROWS_AMX_BF16) return "tdpbf16ps, h and l";
    return ck_cpu_level() == CK_LEVEL_PORTABLE ? "scalar multiply-add" : "FMA";
}

const char *ck_gemm_variant(void) { return selected(0)->name; }
const char *ck_gemm_bf16_variant(void) { return selected(1)->name; }

// The most multiply-adds per second one core's product instruction can do here, measured: independent chains
// (enough to cover the latency) of the instruction the selected variant's products use, each chain on its own
// values so that none can be merged, for `iterations` rounds. Benchmarks print it beside what a product achieves.
double ck_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#if CK_X86
#define CHAINS 12
static AVX2 double avx2_peak(long iterations, volatile float seed) {
    double start = ck_seconds();
    __m256 c[CHAINS], w = _mm256_set1_ps(seed * 0.5f), b = _mm256_set1_ps(seed * 0.25f);
    for (int i = 0; i < CHAINS; i++) c[i] = _mm256_set1_ps(seed + (float)i);
    for (long r = 0; r < iterations; r++)
        for (int i = 0; i < CHAINS; i++) c[i] = _mm256_fmadd_ps(c[i], w, b);
    float out[8];
    for (int i = 1; i < CHAINS; i++) c[0] = _mm256_add_ps(c[0], c[i]);
    _mm256_storeu_ps(out, c[0]);
    if (out[0] == 12345.0f) return -1;
    return iterations * (double)CHAINS * 8 * 2 / (ck_seconds() - start) / 1e9;
}
#define CHAINS512 24
static AVX512 double avx512_peak(long iterations, volatile float seed) {
    double start = ck_seconds();
    __m512 c[CHAINS512], w = _mm512_set1_ps(seed * 0.5f), b = _mm512_set1_ps(seed * 0.25f);
    for (int i = 0; i < CHAINS512; i++) c[i] = _mm512_set1_ps(seed + (float)i);
    for (long r = 0; r < iterations; r++)
        for (int i = 0; i < CHAINS512; i++) c[i] = _mm512_fmadd_ps(c[i], w, b);
    float out[16];
    for (int i = 1; i < CHAINS512; i++) c[0] = _mm512_add_ps(c[0], c[i]);
    _mm512_storeu_ps(out, c[0]);
    if (out[0] == 12345.0f) return -1;
    return iterations * (double)CHAINS512 * 16 * 2 / (ck_seconds() - start) / 1e9;
}
#endif

double ck_int8_peak_gflops(long iterations);   // gemm_int8.c: the same for its selected variant

#if CK_X86
// AMX bfloat16: tdpbf16ps for h and for l of the rows.
static AMXBF16 double amx_bf16_peak(long iterations) {
    _Alignas(64) uint16_t operand[16 * 32];
    _Alignas(64) float out[16 * 16];
    for (int i = 0; i < 16 * 32; i++) operand[i] = 0x3f80;   // 1.0
    double gflops = CK_AMX_PEAK_GFLOPS(_tile_dpbf16ps, _tile_dpbf16ps, 32, operand, out, iterations);
    return out[0] == 12345.0f ? -1 : gflops;
}
#endif

double ck_peak_gflops(int precision) {
    const int int8 = precision == CK_PEAK_INT8;
    const long iterations = 20 * 1000 * 1000;
    volatile float seed = 0.999f;
    double best = 0;
    for (int round = 0; round < 3; round++) {
        double g = 0;
        if (int8) g = ck_int8_peak_gflops(iterations);
#if CK_X86
        if (precision == CK_PEAK_BF16 && selected(1)->rows == ROWS_AMX_BF16) g = amx_bf16_peak(iterations);
        int level = ck_cpu_level();
        if (g == 0 && !int8 && level == CK_LEVEL_AVX512) g = avx512_peak(iterations, seed);
        else if (g == 0 && !int8 && level >= CK_LEVEL_AVX2) g = avx2_peak(iterations, seed);
#endif
        if (g == 0) {
            // Portable: what the compiler makes of 16 independent scalar chains.
            float c[16];
            for (int i = 0; i < 16; i++) c[i] = seed + (float)i;
            const float w = seed * 0.5f, b = seed * 0.25f;
            double start = ck_seconds();
            for (long r = 0; r < iterations / 4; r++)
                for (int i = 0; i < 16; i++) c[i] = c[i] * w + b;
            float sum = 0;
            for (int i = 0; i < 16; i++) sum += c[i];
            if (sum == 12345.0f) return -1;
            g = iterations / 4 * 16.0 * 2 / (ck_seconds() - start) / 1e9;
        }
        if (g > best) best = g;
    }
    return best;
}
