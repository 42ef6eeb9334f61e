#include "ckernels.h"
#include <stdlib.h>
#include <string.h>

// Products of a few rows (a streaming step has 1 to 14) with a weight matrix. A general GEMM repacks the weight on
// every call; here it is packed once into column panels of 16 (each panel k×16 contiguous), and each panel is
// streamed sequentially while every row's accumulator stays in a register. Panels are the outer loop, so a panel
// stays in L2 while all row tiles use it.

#define PANEL 16

long ck_packed_size(long k, long n) { return k * ((n + PANEL - 1) / PANEL) * PANEL; }

void ck_pack_panels(const float *w, long k, long n, long ldw, float *packed) {
    long panels = (n + PANEL - 1) / PANEL;
    for (long j = 0; j < panels; j++) {
        float *dst = packed + j * k * PANEL;
        long cols = n - j * PANEL < PANEL ? n - j * PANEL : PANEL;
        for (long p = 0; p < k; p++) {
            memcpy(dst + p * PANEL, w + p * ldw + j * PANEL, (size_t)cols * sizeof(float));
            for (long c = cols; c < PANEL; c++) dst[p * PANEL + c] = 0.0f;
        }
    }
}

void ck_pack_panels_bytes(const void *w, long k, long n, int transposed, float *packed) {
    const unsigned char *bytes = (const unsigned char *)w;
    long panels = (n + PANEL - 1) / PANEL;
    for (long j = 0; j < panels; j++) {
        float *dst = packed + j * k * PANEL;
        long cols = n - j * PANEL < PANEL ? n - j * PANEL : PANEL;
        for (long p = 0; p < k; p++) {
            if (transposed) {
                for (long c = 0; c < cols; c++)
                    memcpy(dst + p * PANEL + c, bytes + ((j * PANEL + c) * k + p) * sizeof(float), sizeof(float));
            } else {
                memcpy(dst + p * PANEL, bytes + (p * n + j * PANEL) * sizeof(float), (size_t)cols * sizeof(float));
            }
            for (long c = cols; c < PANEL; c++) dst[p * PANEL + c] = 0.0f;
        }
    }
}

// Portable: MR ≤ 4 rows per tile, the 16-wide inner loop left to the compiler's vectorizer.
static void gemm_portable(const float *x, long m, long k, long ldx, const float *packed, long n, float *y, long ldy,
                          int accumulate) {
    long panels = (n + PANEL - 1) / PANEL;
    for (long j = 0; j < panels; j++) {
        const float *wp = packed + j * k * PANEL;
        long cols = n - j * PANEL < PANEL ? n - j * PANEL : PANEL;
        for (long r = 0; r < m; r++) {
            float acc[PANEL] = {0};
            const float *xr = x + r * ldx;
            for (long p = 0; p < k; p++) {
                float xv = xr[p];
                for (int c = 0; c < PANEL; c++) acc[c] += xv * wp[p * PANEL + c];
            }
            float *out = y + r * ldy + j * PANEL;
            for (long c = 0; c < cols; c++) out[c] = accumulate ? out[c] + acc[c] : acc[c];
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,fma")))

// AVX-512: up to 14 rows × one 16-wide panel, one weight vector per k used by every row. The rows come packed
// k-major (xt[p·stride + r]) so one k's broadcasts share a cache line; the weight panel is prefetched ahead.
// With few rows each accumulator would be one long chain of dependent FMAs, so `splits` independent accumulator
// sets take interleaved k and are summed at the end (rows × splits ≤ 14 registers).
static inline __attribute__((always_inline)) AVX512 void tile512(const float *xt, long stride, const float *wp,
                                                                  float *y, long ldy, long k, int mr, long cols,
                                                                  int accumulate) {
    const int splits = mr <= 3 ? 4 : mr <= 7 ? 2 : 1;
    __m512 c[14];
    for (int i = 0; i < mr * splits; i++) c[i] = _mm512_setzero_ps();
    long p = 0;
    for (; p + splits <= k; p += splits) {
        for (int s = 0; s < splits; s++) {
            _mm_prefetch((const char *)(wp + (p + s + 24) * PANEL), _MM_HINT_T0);
            __m512 wv = _mm512_loadu_ps(wp + (p + s) * PANEL);
            const float *xp = xt + (p + s) * stride;
            for (int r = 0; r < mr; r++) c[s * mr + r] = _mm512_fmadd_ps(_mm512_set1_ps(xp[r]), wv, c[s * mr + r]);
        }
    }
    for (; p < k; p++) {
        __m512 wv = _mm512_loadu_ps(wp + p * PANEL);
        const float *xp = xt + p * stride;
        for (int r = 0; r < mr; r++) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(xp[r]), wv, c[r]);
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

#define TILE512(MR) case MR: tile512(xt, stride, wp, yr, ldy, k, MR, cols, accumulate); break;

// Per-thread scratch for the k-major rows when the caller gives none, grown on first need and then reused.
static _Thread_local float *row_pack = 0;
static _Thread_local long row_pack_capacity = 0;

static float *row_scratch(long floats) {
    if (floats > row_pack_capacity) {
        free(row_pack);
        row_pack = aligned_alloc(64, (size_t)((floats + 15) / 16 * 16) * sizeof(float));
        row_pack_capacity = row_pack ? floats : 0;
    }
    return row_pack;
}

// Panels [p0, p1) of a product whose rows are already k-major in `rows` (row tile t at rows + t·k·stride).
static AVX512 void panels512(const float *rows, long stride, long m, long k, const float *packed, long n, float *y,
                             long ldy, int accumulate, long p0, long p1) {
    for (long j = p0; j < p1; j++) {
        const float *wp = packed + j * k * PANEL;
        long cols = n - j * PANEL < PANEL ? n - j * PANEL : PANEL;
        for (long r0 = 0; r0 < m; r0 += 14) {
            int mr = (int)(m - r0 < 14 ? m - r0 : 14);
            const float *xt = rows + (r0 / 14) * k * stride;
            float *yr = y + r0 * ldy + j * PANEL;
            switch (mr) {
                TILE512(1) TILE512(2) TILE512(3) TILE512(4) TILE512(5) TILE512(6) TILE512(7)
                TILE512(8) TILE512(9) TILE512(10) TILE512(11) TILE512(12) TILE512(13) TILE512(14)
            }
        }
    }
}

// Rows k-major per tile of 14 (a single row is already k-contiguous and is used in place).
static const float *pack_rows(const float *x, long m, long k, long ldx, float *scratch, long *stride) {
    if (m == 1) { *stride = 1; return x; }
    long tiles = (m + 13) / 14;
    float *rows = scratch ? scratch : row_scratch(tiles * k * 14);
    if (!rows) return 0;
    for (long t = 0; t < tiles; t++) {
        long r0 = t * 14, mr = m - r0 < 14 ? m - r0 : 14;
        float *xt = rows + t * k * 14;
        for (long r = 0; r < mr; r++)
            for (long p = 0; p < k; p++) xt[p * 14 + r] = x[(r0 + r) * ldx + p];
    }
    *stride = 14;
    return rows;
}

#include <stdatomic.h>

#define CHUNK_PANELS 4

typedef struct {
    const float *rows;
    long stride, m, k, n, ldy, panels;
    const float *packed;
    float *y;
    int accumulate;
    _Atomic long next;   // next chunk of CHUNK_PANELS panels to claim
} panel_job;

static void panel_part(void *context, long part, long parts) {
    (void)part; (void)parts;
    panel_job *job = (panel_job *)context;
    for (;;) {
        long p0 = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed) * CHUNK_PANELS;
        if (p0 >= job->panels) return;
        long p1 = p0 + CHUNK_PANELS < job->panels ? p0 + CHUNK_PANELS : job->panels;
        panels512(job->rows, job->stride, job->m, job->k, job->packed, job->n, job->y, job->ldy, job->accumulate, p0, p1);
    }
}

static void gemm512(const float *x, long m, long k, long ldx, const float *packed, long n, float *y, long ldy,
                    int accumulate, float *scratch) {
    long stride;
    const float *rows = pack_rows(x, m, k, ldx, scratch, &stride);
    if (!rows) { gemm_portable(x, m, k, ldx, packed, n, y, ldy, accumulate); return; }
    panel_job job = {rows, stride, m, k, n, ldy, (n + PANEL - 1) / PANEL, packed, y, accumulate, 0};
    // Split only products worth a hand-off (about 64 K multiply-adds or more, several panels per thread).
    if (ck_threads() > 1 && m * k * n >= 65536 && job.panels >= 2 * CHUNK_PANELS) {
        ck_parallel(panel_part, &job);
    } else {
        panel_part(&job, 0, 1);
    }
}

// AVX2: up to 6 rows × 16 columns (2 ymm): 12 accumulators.
static inline __attribute__((always_inline)) AVX2 void tile256(const float *x, long ldx, const float *wp, float *y,
                                                                long ldy, long k, int mr, long cols, int accumulate) {
    __m256 c0[6], c1[6];
    for (int r = 0; r < mr; r++) { c0[r] = _mm256_setzero_ps(); c1[r] = _mm256_setzero_ps(); }
    for (long p = 0; p < k; p++) {
        __m256 w0 = _mm256_loadu_ps(wp + p * PANEL), w1 = _mm256_loadu_ps(wp + p * PANEL + 8);
        for (int r = 0; r < mr; r++) {
            __m256 xv = _mm256_broadcast_ss(x + r * ldx + p);
            c0[r] = _mm256_fmadd_ps(xv, w0, c0[r]);
            c1[r] = _mm256_fmadd_ps(xv, w1, c1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        float out[PANEL];
        _mm256_storeu_ps(out, c0[r]);
        _mm256_storeu_ps(out + 8, c1[r]);
        float *dst = y + r * ldy;
        for (long c = 0; c < cols; c++) dst[c] = accumulate ? dst[c] + out[c] : out[c];
    }
}

#define TILE256(MR) case MR: tile256(xr, ldx, wp, yr, ldy, k, MR, cols, accumulate); break;

static AVX2 void gemm256(const float *x, long m, long k, long ldx, const float *packed, long n, float *y, long ldy,
                         int accumulate) {
    long panels = (n + PANEL - 1) / PANEL;
    for (long j = 0; j < panels; j++) {
        const float *wp = packed + j * k * PANEL;
        long cols = n - j * PANEL < PANEL ? n - j * PANEL : PANEL;
        for (long r0 = 0; r0 < m; r0 += 6) {
            int mr = (int)(m - r0 < 6 ? m - r0 : 6);
            const float *xr = x + r0 * ldx;
            float *yr = y + r0 * ldy + j * PANEL;
            switch (mr) { TILE256(1) TILE256(2) TILE256(3) TILE256(4) TILE256(5) TILE256(6) }
        }
    }
}
#endif

static int gemm_variant = -1;  // 2: AVX-512, 1: AVX2+FMA, 0: portable

static int variant(void) {
    int v = __atomic_load_n(&gemm_variant, __ATOMIC_ACQUIRE);
    if (v < 0) {
        v = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) v = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) v = 1;
#endif
        __atomic_store_n(&gemm_variant, v, __ATOMIC_RELEASE);
    }
    return v;
}

long ck_gemm_scratch_size(long m, long k) { return variant() == 2 && m > 1 ? (m + 13) / 14 * k * 14 : 0; }

void ck_gemm_packed(const float *x, long m, long k, long ldx, const float *packed, long n, float *y, long ldy,
                    int accumulate, float *scratch) {
    switch (variant()) {
#if defined(__x86_64__)
        case 2: gemm512(x, m, k, ldx, packed, n, y, ldy, accumulate, scratch); return;
        case 1: gemm256(x, m, k, ldx, packed, n, y, ldy, accumulate); return;
#endif
        default: gemm_portable(x, m, k, ldx, packed, n, y, ldy, accumulate); return;
    }
}

int ck_gemm_packed_variant(int v, const float *x, long m, long k, long ldx, const float *packed, long n, float *y,
                           long ldy, int accumulate) {
    if (v > variant()) return 0;
    switch (v) {
#if defined(__x86_64__)
        case 2: gemm512(x, m, k, ldx, packed, n, y, ldy, accumulate, 0); return 1;
        case 1: gemm256(x, m, k, ldx, packed, n, y, ldy, accumulate); return 1;
#endif
        case 0: gemm_portable(x, m, k, ldx, packed, n, y, ldy, accumulate); return 1;
        default: return 0;
    }
}

const char *ck_gemm_variant(void) {
    switch (variant()) { case 2: return "avx512"; case 1: return "avx2+fma"; default: return "portable"; }
}
