#include "ckernels.h"
#include <stdatomic.h>
#include <stdint.h>
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

long ck_packed_size(long k, long n) { return k * ((n + PANEL - 1) / PANEL) * PANEL; }

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

void ck_pack_panels_bf16(const void *weights, long k, long n, int transposed, uint16_t *packed) {
    const unsigned char *w = (const unsigned char *)weights;
    long panels = (n + PANEL - 1) / PANEL;
    for (long j = 0; j < panels; j++) {
        uint16_t *dst = packed + j * k * PANEL;
        long cols = n - j * PANEL < PANEL ? n - j * PANEL : PANEL;
        for (long p = 0; p < k; p++) {
            for (long c = 0; c < PANEL; c++) {
                float x = 0.0f;
                if (c < cols) {
                    long index = transposed ? (j * PANEL + c) * k + p : p * n + j * PANEL + c;
                    memcpy(&x, w + index * (long)sizeof(float), sizeof(float));
                }
                dst[p * PANEL + c] = to_bf16(x);
            }
        }
    }
}

// One product as the variants see it. Row r of the tile that starts at row t·tile_rows, at input p, is
// rows[t·tile_step + r·row_stride + p·k_stride]: the caller's rows in place (k_stride 1), or, for a variant that
// packs, the rows of each tile repacked k-major (row_stride 1, k_stride tile_rows).
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

static inline void store_row(float *out, const float *sums, long cols, int accumulate) {
    for (long c = 0; c < cols; c++) out[c] = accumulate ? out[c] + sums[c] : sums[c];
}

// Rows [r0, r0 + mr) of one panel: xt is the row tile, wp the panel, y its first output.
typedef void (*row_tile)(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr);

// Panels [p0, p1) of a product, row tile by row tile.
static inline __attribute__((always_inline)) void each_tile(const gemm_job *job, long p0, long p1, int tile_rows,
                                                            row_tile tile) {
    for (long j = p0; j < p1; j++) {
        const void *wp = (const char *)job->weights + j * job->k * PANEL * (job->bf16 ? 2 : 4);
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
            w[c] = bf16 ? from_bf16(((const uint16_t *)wp)[p * PANEL + c]) : ((const float *)wp)[p * PANEL + c];
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

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,fma")))

// 8 weights from element i of a panel, widened from bfloat16 (a 16-bit shift) or loaded as they are.
static inline __attribute__((always_inline)) AVX2 __m256 load8(const void *wp, long i, int bf16) {
    if (bf16) {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)wp + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    return _mm256_loadu_ps((const float *)wp + i);
}

// AVX2: up to 6 rows × 16 columns (2 ymm each): 12 accumulators; rows read in place. When a product has more rows
// than one tile, each panel is used by several tiles in turn and the later ones find it in cache while memory would
// idle; every tile then prefetches the next panel, one k's line per k (`next`), so its read overlaps this panel's
// arithmetic. With one tile the hardware prefetcher alone streams faster (measured), so `next` is NULL.
static inline __attribute__((always_inline)) AVX2 void tile256(const float *x, long ldx, const void *wp,
                                                                const char *next, float *y, long ldy, long k, int mr,
                                                                long cols, int accumulate, int bf16) {
    const long esize = bf16 ? 2 : 4;
    __m256 c0[AVX2_TILE_ROWS], c1[AVX2_TILE_ROWS];
    for (int r = 0; r < mr; r++) { c0[r] = _mm256_setzero_ps(); c1[r] = _mm256_setzero_ps(); }
    for (long p = 0; p < k; p++) {
        if (next) _mm_prefetch(next + p * PANEL * esize, _MM_HINT_T0);
        __m256 w0 = load8(wp, p * PANEL, bf16), w1 = load8(wp, p * PANEL + 8, bf16);
        for (int r = 0; r < mr; r++) {
            __m256 xv = _mm256_broadcast_ss(x + r * ldx + p);
            c0[r] = _mm256_fmadd_ps(xv, w0, c0[r]);
            c1[r] = _mm256_fmadd_ps(xv, w1, c1[r]);
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
    case MR: tile256(xt, job->row_stride, wp, next, y, job->ldy, job->k, MR, cols, job->accumulate, BF16); break;

static AVX2 void avx2_tile_f32(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr) {
    const char *next = job->m > AVX2_TILE_ROWS ? (const char *)wp + job->k * PANEL * 4 : NULL;
    switch (mr) { TILE256(1, 0) TILE256(2, 0) TILE256(3, 0) TILE256(4, 0) TILE256(5, 0) TILE256(6, 0) }
}
static AVX2 void avx2_tile_bf16(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr) {
    const char *next = job->m > AVX2_TILE_ROWS ? (const char *)wp + job->k * PANEL * 2 : NULL;
    switch (mr) { TILE256(1, 1) TILE256(2, 1) TILE256(3, 1) TILE256(4, 1) TILE256(5, 1) TILE256(6, 1) }
}

// Rows in place, split into the fewest tiles of near-equal height: 14 rows as 4 + 5 + 5 rather than 6 + 6 + 2, whose
// two-row tile would wait on the FMA latency (4 accumulator chains) instead of filling both FMA units.
static void avx2_panels(const gemm_job *job, long p0, long p1) {
    row_tile tile = job->bf16 ? avx2_tile_bf16 : avx2_tile_f32;
    const long tiles = (job->m + AVX2_TILE_ROWS - 1) / AVX2_TILE_ROWS;
    for (long j = p0; j < p1; j++) {
        const void *wp = (const char *)job->weights + j * job->k * PANEL * (job->bf16 ? 2 : 4);
        long cols = job->n - j * PANEL < PANEL ? job->n - j * PANEL : PANEL;
        for (long t = 0, r0 = 0; t < tiles; t++) {
            int mr = (int)((job->m - r0) / (tiles - t));
            tile(job, job->rows + r0 * job->row_stride, wp, job->y + r0 * job->ldy + j * PANEL, cols, mr);
            r0 += mr;
        }
    }
}

// AVX-512: up to 14 rows × one 16-wide panel, one weight vector per k used by every row. Packed rows put one k's
// broadcasts in one cache line; the weight panel is prefetched ahead. With few rows each accumulator would be one
// long chain of dependent FMAs, so `splits` independent accumulator sets take interleaved k and are summed at the
// end (rows × splits ≤ 14 registers).
static inline __attribute__((always_inline)) AVX512 __m512 load16(const void *wp, long i, int bf16) {
    if (bf16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)wp + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_loadu_ps((const float *)wp + i);
}

static inline __attribute__((always_inline)) AVX512 void tile512(const float *xt, long rs, long ks, const void *wp,
                                                                  float *y, long ldy, long k, int mr, long cols,
                                                                  int accumulate, int bf16) {
    const long esize = bf16 ? 2 : 4;
    const int splits = mr <= 3 ? 4 : mr <= 7 ? 2 : 1;
    __m512 c[AVX512_TILE_ROWS];
    for (int i = 0; i < mr * splits; i++) c[i] = _mm512_setzero_ps();
    long p = 0;
    for (; p + splits <= k; p += splits) {
        for (int s = 0; s < splits; s++) {
            _mm_prefetch((const char *)wp + (p + s + 24) * PANEL * esize, _MM_HINT_T0);
            __m512 wv = load16(wp, (p + s) * PANEL, bf16);
            const float *xp = xt + (p + s) * ks;
            for (int r = 0; r < mr; r++) c[s * mr + r] = _mm512_fmadd_ps(_mm512_set1_ps(xp[r * rs]), wv, c[s * mr + r]);
        }
    }
    for (; p < k; p++) {
        __m512 wv = load16(wp, p * PANEL, bf16);
        const float *xp = xt + p * ks;
        for (int r = 0; r < mr; r++) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(xp[r * rs]), wv, c[r]);
    }
    for (int s = 1; s < splits; s++)
        for (int r = 0; r < mr; r++) c[r] = _mm512_add_ps(c[r], c[s * mr + r]);
    __mmask16 mask = cols >= PANEL ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    for (int r = 0; r < mr; r++) {
        float *out = y + r * ldy;
        if (accumulate) c[r] = _mm512_add_ps(c[r], _mm512_maskz_loadu_ps(mask, out));
        _mm512_mask_storeu_ps(out, mask, c[r]);
    }
}

// Packed rows get constant strides, so each tile height compiles to immediate offsets.
#define TILE512(MR, RS, KS, BF16) \
    case MR: tile512(xt, RS, KS, wp, y, job->ldy, job->k, MR, cols, job->accumulate, BF16); break;
#define TILES512(RS, KS, BF16)                                                                                   \
    switch (mr) {                                                                                                \
        TILE512(1, RS, KS, BF16) TILE512(2, RS, KS, BF16) TILE512(3, RS, KS, BF16) TILE512(4, RS, KS, BF16)      \
        TILE512(5, RS, KS, BF16) TILE512(6, RS, KS, BF16) TILE512(7, RS, KS, BF16) TILE512(8, RS, KS, BF16)      \
        TILE512(9, RS, KS, BF16) TILE512(10, RS, KS, BF16) TILE512(11, RS, KS, BF16)                             \
        TILE512(12, RS, KS, BF16) TILE512(13, RS, KS, BF16) TILE512(14, RS, KS, BF16)                            \
    }

static AVX512 void avx512_tile_f32(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr) {
    if (job->k_stride != 1) {
        TILES512(1, AVX512_TILE_ROWS, 0)
    } else {
        TILES512(job->row_stride, 1, 0)
    }
}
static AVX512 void avx512_tile_bf16(const gemm_job *job, const float *xt, const void *wp, float *y, long cols, int mr) {
    if (job->k_stride != 1) {
        TILES512(1, AVX512_TILE_ROWS, 1)
    } else {
        TILES512(job->row_stride, 1, 1)
    }
}

static void avx512_panels(const gemm_job *job, long p0, long p1) {
    each_tile(job, p0, p1, AVX512_TILE_ROWS, job->bf16 ? avx512_tile_bf16 : avx512_tile_f32);
}
#endif

typedef struct {
    const char *name;
    int tile_rows;
    int packs_rows;     // reads each row tile k-major from the caller's scratch when there is one
    panel_range panels;
} gemm_variant;

// Indexed by CK_LEVEL_*.
static const gemm_variant variants[] = {
    {"portable", PORTABLE_TILE_ROWS, 0, portable_panels},
#if defined(__x86_64__)
    {"avx2+fma", AVX2_TILE_ROWS, 0, avx2_panels},
    {"avx512", AVX512_TILE_ROWS, 1, avx512_panels},
#endif
};

static const gemm_variant *selected(void) { return &variants[ck_cpu_level()]; }

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
    gemm_job job = {x, v->tile_rows * ldx, ldx, 1, m, k, n, packed, bf16, y, ldy, accumulate, (n + PANEL - 1) / PANEL,
                    v->panels, 0};
    // A single row is already k-contiguous; without scratch the rows are read in place rather than allocated for.
    if (v->packs_rows && m > 1 && scratch) {
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
}

long ck_gemm_scratch_size(long m, long k) {
    const gemm_variant *v = selected();
    long rows = v->packs_rows && m > 1 ? (m + v->tile_rows - 1) / v->tile_rows * v->tile_rows * k : 0;
    long int8 = ck_gemm_int8_scratch_size(m, k);
    return rows > int8 ? rows : int8;
}

void ck_gemm_packed(ck_pool *pool, const float *x, long m, long k, long ldx, const float *packed, long n, float *y,
                    long ldy, int accumulate, float *scratch) {
    gemm_with(selected(), pool, x, m, k, ldx, packed, 0, n, y, ldy, accumulate, scratch);
}

void ck_gemm_packed_bf16(ck_pool *pool, const float *x, long m, long k, long ldx, const uint16_t *packed, long n,
                         float *y, long ldy, int accumulate, float *scratch) {
    gemm_with(selected(), pool, x, m, k, ldx, packed, 1, n, y, ldy, accumulate, scratch);
}

int ck_gemm_packed_variant(int variant, ck_pool *pool, const float *x, long m, long k, long ldx, const void *packed,
                           int bf16, long n, float *y, long ldy, int accumulate, float *scratch) {
    if (variant < 0 || variant > ck_cpu_level()) return 0;
    gemm_with(&variants[variant], pool, x, m, k, ldx, packed, bf16 != 0, n, y, ldy, accumulate, scratch);
    return 1;
}

const char *ck_gemm_variant(void) { return selected()->name; }

// The most multiply-adds per second one core's product instruction can do here, measured: independent chains
// (enough to cover the latency) of the instruction the selected variant's products use, each chain on its own
// values so that none can be merged, for `iterations` rounds. Benchmarks print it beside what a product achieves.
double ck_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
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
#if defined(__x86_64__)
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
