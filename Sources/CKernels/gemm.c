#include "ckernels.h"
#include "simd.h"
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
    const unsigned char *w = (const unsigned char *)weights;
    long panels = (n + PANEL - 1) / PANEL, k2 = even(k);
    for (long j = 0; j < panels; j++) {
        uint16_t *dst = packed + j * k2 * PANEL;
        long cols = n - j * PANEL < PANEL ? n - j * PANEL : PANEL;
        for (long p = 0; p < k2; p++) {
            for (long c = 0; c < PANEL; c++) {
                float x = 0.0f;
                if (c < cols && p < k) {
                    long index = transposed ? (j * PANEL + c) * k + p : p * n + j * PANEL + c;
                    memcpy(&x, w + index * (long)sizeof(float), sizeof(float));
                }
                dst[bf16_index(p, c)] = to_bf16(x);
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
#define AVX512_PREFETCH_BYTES 1536

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
#endif

enum { ROWS_IN_PLACE, ROWS_PACKED, ROWS_BF16_PAIRS };

typedef struct {
    const char *name;
    int tile_rows;
    // ROWS_PACKED: reads each row tile k-major from the caller's scratch when there is one; ROWS_BF16_PAIRS: always
    // (allocated when there is no scratch), rounded to bfloat16 pairs.
    int rows;
    panel_range panels;
} gemm_variant;

// Indexed by CK_LEVEL_*, then CK_GEMM_AVX512_BF16.
static const gemm_variant variants[] = {
    {"portable", PORTABLE_TILE_ROWS, ROWS_IN_PLACE, portable_panels},
#if CK_X86
    {"avx2+fma", AVX2_TILE_ROWS, ROWS_IN_PLACE, avx2_panels},
    {"avx512", AVX512_TILE_ROWS, ROWS_PACKED, avx512_panels},
    {"avx512_bf16 (vdpbf16ps)", AVX512_TILE_ROWS, ROWS_BF16_PAIRS, avx512_dot_panels},
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

static const gemm_variant *selected(int bf16) {
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
        ck_pool_run(pool, run_chunks, &job);
    } else {
        run_chunks(&job, 0, 1);
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
    if (variant == CK_GEMM_AVX512_BF16 ? !bf16 || !ck_gemm_bf16_dot_supported() : variant < 0 || variant > ck_cpu_level())
        return 0;
    gemm_with(&variants[variant], pool, x, m, k, ldx, packed, bf16 != 0, n, y, ldy, accumulate, scratch);
    return 1;
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

double ck_peak_gflops(int int8) {
    const long iterations = 20 * 1000 * 1000;
    volatile float seed = 0.999f;
    double best = 0;
    for (int round = 0; round < 3; round++) {
        double g = 0;
        if (int8) g = ck_int8_peak_gflops(iterations);
#if CK_X86
        int level = ck_cpu_level();
        if (!int8 && level == CK_LEVEL_AVX512) g = avx512_peak(iterations, seed);
        else if (!int8 && level >= CK_LEVEL_AVX2) g = avx2_peak(iterations, seed);
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
