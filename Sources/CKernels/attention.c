#include "ckernels.h"
#include "exp.h"
#include "lanes.h"
#include "simd.h"

// Relative-position attention of a block of queries, every head, in one call (see ckernels.h). The blocks a streaming
// step or an offline chunk makes are small (1–14 queries, up to 84 keys, 64 dimensions a head): a general product
// library spends more time packing such operands than multiplying them, so the kernel reads the rows as they are, or
// transposes one head's rows itself (below). One portable body, compiled again with AVX2+FMA on x86-64, where the
// dot products and the transposes are written with intrinsics and the compiler vectorizes the register-blocked
// multiply-adds.
#define LANES 8

// (a·b + c·e) over n: portable, in LANES partial sums.
static inline float dot2_base(const float *a, const float *b, const float *c, const float *e, long n) {
    float acc[LANES] = {0};
    long x = 0;
    for (; x + LANES <= n; x += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += a[x + l] * b[x + l] + c[x + l] * e[x + l];
    float tail = 0.0f;
    for (; x < n; x++) tail += a[x] * b[x] + c[x] * e[x];
    for (int l = 0; l < LANES / 2; l++) acc[l] += acc[l + LANES / 2];
    return ((acc[0] + acc[2]) + (acc[1] + acc[3])) + tail;
}

#if CK_X86
// The same with AVX2 and FMA: one vector of partial sums for each product, added at the end.
static inline __attribute__((always_inline)) CK_TARGET("avx2,fma") float dot2_avx2(const float *a, const float *b,
                                                                                  const float *c, const float *e,
                                                                                  long n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    long x = 0;
    for (; x + LANES <= n; x += LANES) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + x), _mm256_loadu_ps(b + x), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + x), _mm256_loadu_ps(e + x), s1);
    }
    __m256 s = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float tail = 0.0f;
    for (; x < n; x++) tail += a[x] * b[x] + c[x] * e[x];
    return _mm_cvtss_f32(h) + tail;
}
#endif

// A block of few queries (below TRANSPOSED_QUERIES) is read in memory order: key rows outer, each key, positional and
// value row read once and whole, each score two dot products straight from the rows (dot2), the context summed in
// memory. With more queries (a [70,13] step has 14, [70,6] 7) scores are computed a block of keys at a time,
// vectorized across the keys: one head's key rows and positional rows are first transposed (head_dim rows of keys,
// zero past the last), so that each score's two dot products become broadcast multiply-adds into KEY_BLOCK sums held
// in registers, with no horizontal add per score; two sets of sums (content and position) make independent chains.
// Keys are padded to a multiple of KEY_TAIL. Each query's context in a head is summed in registers too, over the
// head's value rows first copied side by side: read in place, 2 KB apart (d = 512), they all fell in a few L1 sets.
// Measured per call of the full-size model (17 layers, 8 heads of 64), attention scores, softmax and context:
// - on a Zen 3 EPYC, with the value rows read in place: [70,13] 5.2–6.0 → 4.0–4.6 ms transposed; [70,1] (2 queries)
//   1.1–1.2 ms in memory order against 1.9–2.1 transposed; [70,6] (7 queries) 3.1–3.3 either way;
// - on a Xeon (Emerald Rapids), the kernel alone, 200 calls of 17 layers: copying the value rows took [70,13] from
//   2.6–4.0 to 2.1 ms; then in the model, two alternating runs: [70,6] 3.0–3.9 ms in memory order against 2.2–2.4
//   transposed, [70,1] 1.1–1.3 against 1.0–1.4. Two queries stay in memory order.
#define TRANSPOSED_QUERIES 3
#define KEY_BLOCK 32
#define KEY_TAIL 8
#define CONTEXT_BLOCK 64

static long padded_keys(long key_count) { return (key_count + KEY_TAIL - 1) / KEY_TAIL * KEY_TAIL; }

// Scores of one query and head for `width` keys: kt and pt are the transposed keys and positions (row c of each at
// c · kstride and c · pstride), already at the block's first key.
static inline __attribute__((always_inline)) void score_block(const float *qu, const float *qv, const float *kt,
                                                              long kstride, const float *pt, long pstride,
                                                              long head_dim, long width, float scale, float *out) {
    float a[KEY_BLOCK] = {0}, b[KEY_BLOCK] = {0};
    for (long c = 0; c < head_dim; c++) {
        const float x = qu[c], y = qv[c];
        const float *kc = kt + c * kstride, *pc = pt + c * pstride;
        for (long l = 0; l < width; l++) {
            a[l] += x * kc[l];
            b[l] += y * pc[l];
        }
    }
    for (long l = 0; l < width; l++) out[l] = (a[l] + b[l]) * scale;
}

// `width` columns of one query's context in one head: Σ_j w[j] · values[j], the sums in registers.
static inline __attribute__((always_inline)) void context_block(const float *w, const float *values, long d,
                                                                long key_count, long width, float *out) {
    float acc[CONTEXT_BLOCK] = {0};
    for (long j = 0; j < key_count; j++) {
        const float a = w[j], *v = values + j * d;
        for (long l = 0; l < width; l++) acc[l] += a * v[l];
    }
    for (long l = 0; l < width; l++) out[l] = acc[l];
}

// Rows [0, rows) of `columns` columns of src (row stride ld) as columns of dst (row stride rows_to), zeros up to
// column `rows_to` − 1. Source rows are read whole, one after another: a column walk would step by the row stride
// (2 KB for d = 512), which maps every row to the same two L1 sets.
static inline __attribute__((always_inline)) void transpose_base(const float *src, long ld, long rows, long columns,
                                                                 float *dst, long rows_to) {
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < columns; c++) dst[c * rows_to + r] = src[r * ld + c];
    for (long c = 0; c < columns; c++)
        for (long r = rows; r < rows_to; r++) dst[c * rows_to + r] = 0.0f;
}

#if CK_X86
// The same in blocks of 8 × 8 (eight row loads, three rounds of shuffles, eight stores); the edges as above.
static inline __attribute__((always_inline)) CK_TARGET("avx2,fma") void transpose_avx2(const float *src, long ld,
                                                                                      long rows, long columns,
                                                                                      float *dst, long rows_to) {
    long r = 0;
    for (; r + 8 <= rows; r += 8) {
        long c = 0;
        for (; c + 8 <= columns; c += 8) {
            __m256 x[8], y[8];
            for (int k = 0; k < 8; k++) x[k] = _mm256_loadu_ps(src + (r + k) * ld + c);
            for (int k = 0; k < 8; k += 2) {
                y[k] = _mm256_unpacklo_ps(x[k], x[k + 1]);
                y[k + 1] = _mm256_unpackhi_ps(x[k], x[k + 1]);
            }
            for (int k = 0; k < 8; k += 4) {
                x[k] = _mm256_shuffle_ps(y[k], y[k + 2], 0x44);
                x[k + 1] = _mm256_shuffle_ps(y[k], y[k + 2], 0xEE);
                x[k + 2] = _mm256_shuffle_ps(y[k + 1], y[k + 3], 0x44);
                x[k + 3] = _mm256_shuffle_ps(y[k + 1], y[k + 3], 0xEE);
            }
            // x[0..3]: columns c, c+1, c+2, c+3 of rows r..r+3 (low half) and of rows r..r+3 at c+4..c+7 (high);
            // x[4..7] the same for rows r+4..r+7.
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_ps(dst + (c + k) * rows_to + r, _mm256_permute2f128_ps(x[k], x[k + 4], 0x20));
                _mm256_storeu_ps(dst + (c + k + 4) * rows_to + r, _mm256_permute2f128_ps(x[k], x[k + 4], 0x31));
            }
        }
        for (; c < columns; c++)
            for (int k = 0; k < 8; k++) dst[c * rows_to + r + k] = src[(r + k) * ld + c];
    }
    for (; r < rows; r++)
        for (long c = 0; c < columns; c++) dst[c * rows_to + r] = src[r * ld + c];
    for (long c = 0; c < columns; c++)
        for (long t = rows; t < rows_to; t++) dst[c * rows_to + t] = 0.0f;
}
#endif

#define SCORE_TAIL(WIDTH)                                                                                      \
    case WIDTH:                                                                                                  \
        score_block(qu + i * d + o, qv + i * d + o, kt + j, kp, ptq + j, prows, head_dim, WIDTH, scale, out + j); \
        break;

// Scores of query i, head h are s[(i · heads + h) · kp + j].
#define DEFINE_ATTENTION(SUFFIX, ATTR)                                                                          \
    ATTR static void attention_##SUFFIX(const float *q, long queries, const float *keys, const float *values,     \
                                        long key_count, const float *pos, const float *bias_u,                    \
                                        const float *bias_v, long heads, long head_dim, float scale,             \
                                        float *context, float *scratch) {                                        \
        const long d = heads * head_dim, kp = padded_keys(key_count), prows = queries - 1 + kp;                 \
        float *qu = scratch, *qv = qu + queries * d, *s = qv + queries * d, *kt = s + queries * heads * kp;      \
        float *pt = kt + head_dim * kp;                                                                          \
        for (long i = 0; i < queries; i++) {                                                                     \
            for (long c = 0; c < d; c++) {                                                                       \
                qu[i * d + c] = q[i * d + c] + bias_u[c];                                                        \
                qv[i * d + c] = q[i * d + c] + bias_v[c];                                                        \
            }                                                                                                    \
        }                                                                                                        \
        const int by_rows = queries < TRANSPOSED_QUERIES;                                                        \
        for (long j = 0; j < key_count && by_rows; j++) {   /* key rows outer, each read once and whole */       \
            for (long i = 0; i < queries; i++) {                                                                 \
                const float *pj = pos + (queries - 1 - i + j) * d;                                               \
                for (long h = 0; h < heads; h++) {                                                               \
                    const long o = h * head_dim;                                                                 \
                    s[(i * heads + h) * kp + j] =                                                                \
                        dot2_##SUFFIX(qu + i * d + o, keys + j * d + o, qv + i * d + o, pj + o, head_dim) * scale; \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
        for (long h = 0; h < heads && !by_rows; h++) {                                                        \
            const long o = h * head_dim;                                                                         \
            transpose_##SUFFIX(keys + o, d, key_count, head_dim, kt, kp);                                        \
            transpose_##SUFFIX(pos + o, d, queries - 1 + key_count, head_dim, pt, prows);                        \
            for (long i = 0; i < queries; i++) {                                                                 \
                const float *ptq = pt + (queries - 1 - i);                                                       \
                float *out = s + (i * heads + h) * kp;                                                           \
                long j = 0;                                                                                      \
                for (; j + KEY_BLOCK <= kp; j += KEY_BLOCK)                                                      \
                    score_block(qu + i * d + o, qv + i * d + o, kt + j, kp, ptq + j, prows, head_dim, KEY_BLOCK, \
                                scale, out + j);                                                                 \
                switch (kp - j) {   /* the rest in one block, whose sums make independent chains */          \
                    SCORE_TAIL(8) SCORE_TAIL(16) SCORE_TAIL(24)                                                  \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
        for (long row = 0; row < queries * heads; row++) {                                                       \
            float *sh = s + row * kp;                                                                            \
            const float top = max_lanes(sh, key_count);                                                          \
            for (long j = 0; j < key_count; j++) sh[j] = ck_exp(sh[j] - top);                                    \
            const float inv = 1.0f / sum_lanes(sh, key_count, 0.0f, 0);                                          \
            for (long j = 0; j < key_count; j++) sh[j] *= inv;                                                   \
        }                                                                                                        \
        if (by_rows) {   /* each value row read once, whole, into every query's and head's sums */              \
            for (long c = 0; c < queries * d; c++) context[c] = 0.0f;                                            \
            for (long j = 0; j < key_count; j++) {                                                               \
                const float *vj = values + j * d;                                                                \
                for (long i = 0; i < queries; i++) {                                                             \
                    float *ci = context + i * d;                                                                 \
                    for (long h = 0; h < heads; h++) {                                                           \
                        const float a = s[(i * heads + h) * kp + j];                                             \
                        for (long c = h * head_dim; c < (h + 1) * head_dim; c++) ci[c] += a * vj[c];             \
                    }                                                                                            \
                }                                                                                                \
            }                                                                                                    \
            return;                                                                                              \
        }                                                                                                        \
        for (long h = 0; h < heads; h++) {                                                                       \
            /* the head's value rows side by side (in kt's room, free by now): read in place, 2 KB apart, */     \
            /* they fell in a few L1 sets and the sums waited on L2 */                                           \
            float *v = kt;                                                                                       \
            for (long j = 0; j < key_count; j++)                                                                 \
                for (long c = 0; c < head_dim; c++) v[j * head_dim + c] = values[j * d + h * head_dim + c];      \
            for (long i = 0; i < queries; i++) {                                                                 \
                const float *w = s + (i * heads + h) * kp;                                                       \
                float *out = context + i * d + h * head_dim;                                                     \
                long c = 0;                                                                                      \
                for (; c + CONTEXT_BLOCK <= head_dim; c += CONTEXT_BLOCK)                                        \
                    context_block(w, v + c, head_dim, key_count, CONTEXT_BLOCK, out + c);                        \
                for (; c + KEY_TAIL <= head_dim; c += KEY_TAIL)                                                  \
                    context_block(w, v + c, head_dim, key_count, KEY_TAIL, out + c);                             \
                for (; c < head_dim; c++) context_block(w, v + c, head_dim, key_count, 1, out + c);              \
            }                                                                                                    \
        }                                                                                                        \
    }

DEFINE_ATTENTION(base, )
#if CK_X86
DEFINE_ATTENTION(avx2, CK_TARGET("avx2,fma"))
#endif

void ck_rel_attention(const float *q, long queries, const float *keys, const float *values, long key_count,
                      const float *pos, const float *bias_u, const float *bias_v, long heads, long head_dim,
                      float scale, float *context, float *scratch) {
#if CK_X86
    if (ck_cpu_level() >= CK_LEVEL_AVX2) {
        attention_avx2(q, queries, keys, values, key_count, pos, bias_u, bias_v, heads, head_dim, scale, context,
                       scratch);
        return;
    }
#endif
    attention_base(q, queries, keys, values, key_count, pos, bias_u, bias_v, heads, head_dim, scale, context, scratch);
}

long ck_rel_attention_scratch_size(long queries, long key_count, long heads, long head_dim) {
    const long kp = padded_keys(key_count);
    // One head's keys and positions transposed (kt, pt) only for blocks of queries that take that path.
    const long transposed = queries >= TRANSPOSED_QUERIES ? head_dim * kp + head_dim * (queries - 1 + kp) : 0;
    return queries * (2 * heads * head_dim + heads * kp) + transposed;
}
