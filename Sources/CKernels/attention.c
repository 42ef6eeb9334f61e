#include "ckernels.h"
#include "exp.h"
#include "simd.h"

// Relative-position attention of a block of queries, every head, in one call (see ckernels.h). The blocks a streaming
// step or an offline chunk makes are small (1–14 queries, up to 84 keys, 64 dimensions a head): a general product
// library spends more time packing such operands than multiplying them, so each score is two dot products here, read
// straight from the rows. One portable body, compiled again with AVX2+FMA on x86-64, where the dot products are
// written with intrinsics and the compiler vectorizes the context rows' multiply-adds.
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

// Key rows are the outer loop: each key and value row is read once for every query of the block, and the positional
// rows query i pairs with key j, (queries − 1 − i) + j, form a window of `queries` rows that slides by one row per key
// (in L1 for a block of 14). Scores of query i, head h are s[(i · heads + h) · key_count + j].
#define DEFINE_ATTENTION(SUFFIX, ATTR)                                                                          \
    ATTR static void attention_##SUFFIX(const float *q, long queries, const float *keys, const float *values,     \
                                        long key_count, const float *pos, const float *bias_u,                    \
                                        const float *bias_v, long heads, long head_dim, float scale,             \
                                        float *context, float *scratch) {                                        \
        const long d = heads * head_dim;                                                                         \
        float *qu = scratch, *qv = scratch + queries * d, *s = scratch + 2 * queries * d;                        \
        for (long i = 0; i < queries; i++) {                                                                     \
            for (long c = 0; c < d; c++) {                                                                       \
                qu[i * d + c] = q[i * d + c] + bias_u[c];                                                        \
                qv[i * d + c] = q[i * d + c] + bias_v[c];                                                        \
            }                                                                                                    \
        }                                                                                                        \
        for (long j = 0; j < key_count; j++) {                                                                   \
            const float *kj = keys + j * d;                                                                      \
            for (long i = 0; i < queries; i++) {                                                                 \
                const float *pj = pos + (queries - 1 - i + j) * d;                                               \
                for (long h = 0; h < heads; h++) {                                                               \
                    const long o = h * head_dim;                                                                 \
                    s[(i * heads + h) * key_count + j] =                                                         \
                        dot2_##SUFFIX(qu + i * d + o, kj + o, qv + i * d + o, pj + o, head_dim) * scale;         \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
        for (long row = 0; row < queries * heads; row++) {                                                       \
            float *sh = s + row * key_count, top = sh[0], sum = 0.0f;                                            \
            for (long j = 1; j < key_count; j++) top = sh[j] > top ? sh[j] : top;                                \
            for (long j = 0; j < key_count; j++) { sh[j] = ck_exp(sh[j] - top); sum += sh[j]; }                  \
            const float inv = 1.0f / sum;                                                                        \
            for (long j = 0; j < key_count; j++) sh[j] *= inv;                                                   \
        }                                                                                                        \
        for (long c = 0; c < queries * d; c++) context[c] = 0.0f;                                                \
        for (long j = 0; j < key_count; j++) {                                                                   \
            const float *vj = values + j * d;                                                                    \
            for (long i = 0; i < queries; i++) {                                                                 \
                float *ci = context + i * d;                                                                     \
                for (long h = 0; h < heads; h++) {                                                               \
                    const float a = s[(i * heads + h) * key_count + j];                                          \
                    for (long c = h * head_dim; c < (h + 1) * head_dim; c++) ci[c] += a * vj[c];                 \
                }                                                                                                \
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
    return queries * (2 * heads * head_dim + heads * key_count);
}
