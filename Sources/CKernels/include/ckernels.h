#ifndef CKERNELS_H
#define CKERNELS_H
#include <stdint.h>
// Element-wise kernels that need exp() or tight loops. Each has one portable body, compiled for the build's target
// and, on x86-64, again with AVX2+FMA (per-function target attributes, no build flags); ck_cpu_level() picks one.

// x[i] = x[i] * sigmoid(x[i])
void ck_swish(float *x, long n);
// x[i] = 1 / (1 + exp(-x[i]))
void ck_sigmoid(float *x, long n);
// out[t, c] = in[t, c] * sigmoid(in[t, c + channels]) for rows t of width 2·channels
void ck_glu_rows(const float *in, float *out, long rows, long channels);
// Row-wise LayerNorm over `width` with scale and shift: out may equal in.
void ck_layer_norm(const float *in, float *out, long rows, long width, const float *scale, const float *shift,
                   float epsilon);
// y[i] += alpha * x[i]
void ck_axpy(float *y, const float *x, long n, float alpha);
// x[r, c] += bias[c] for every row r
void ck_add_bias_rows(float *x, const float *bias, long rows, long width);
// x[i] = max(x[i], 0)
void ck_relu(float *x, long n);
// The stem's causal 3×3 stride-2 conv, channel-last: in [height, width, in_channels] → out [height/2 + 1, width/2 + 1,
// channels], output (y, x, c) = bias[c] + Σ taps[3·ky + kx, c] · in[2y + ky − 2, 2x + kx − 2, in_channels == 1 ? 0 : c]
// over the taps inside the input; in_channels is 1 (the first conv) or channels (depthwise). With relu, max(·, 0).
void ck_conv3x3_stride2(const float *in, long height, long width, long in_channels, long channels, const float *taps,
                        const float *bias, int relu, float *out);
// Relative-position multi-head attention (Transformer-XL, NeMo's RelPositionMultiHeadAttention) of `queries` query
// rows that all see the same `key_count` keys: for every head h (columns h·head_dim ..< (h + 1)·head_dim of each row,
// rows d = heads·head_dim floats apart),
//   s[i, j] = ((q_i + u_h)·k_j + (q_i + v_h)·pos[(queries − 1 − i) + j]) · scale,  softmax over j,
//   context_i = Σ_j s[i, j] · v_j.
// pos holds key_count + queries − 1 rows; bias_u and bias_v are [heads, head_dim]; scratch holds
// ck_rel_attention_scratch_size(queries, key_count, heads, head_dim) floats. Follows ck_cpu_level() like the kernels above.
void ck_rel_attention(const float *q, long queries, const float *keys, const float *values, long key_count,
                      const float *pos, const float *bias_u, const float *bias_v, long heads, long head_dim,
                      float scale, float *context, float *scratch);
long ck_rel_attention_scratch_size(long queries, long key_count, long heads, long head_dim);
// Name of the selected variant ("avx2+fma" or "portable"), for benchmarks.
const char *ck_variant(void);


// Weights packed once at load for products with few rows: column panels of 16, each panel k×16 contiguous (the
// last one zero-padded), so a product streams every weight exactly once, sequentially.
// Packing reads little-endian float bytes at any alignment (a tensor in a mapped file, or floats in memory): w is
// [k×n], or [n×k] when transposed (PyTorch's [out, in]).
long ck_packed_size(long k, long n);
void ck_pack_panels_bytes(const void *w, long k, long n, int transposed, float *packed);
// The same panels in bfloat16 (each float rounded to nearest even), with k taken in pairs (k rounded up to even, the
// extra row zero): for each pair, 16 columns × (W[2p, c], W[2p + 1, c]) — the operand layout of AVX512_BF16's
// vdpbf16ps, and two k's weights per 32-bit lane for the variants that widen them. ck_packed_bf16_size(k, n) values.
long ck_packed_bf16_size(long k, long n);
void ck_pack_panels_bf16(const void *w, long k, long n, int transposed, uint16_t *packed);

// Instruction-set levels, best first as chosen once at run time from the CPU and capped by the environment variable
// STT_KERNELS=portable|avx2|avx512 (read once). Both the products and the element-wise kernels follow it.
#define CK_LEVEL_PORTABLE 0
#define CK_LEVEL_AVX2 1     // AVX2 + FMA
#define CK_LEVEL_AVX512 2   // AVX-512F (and BW for int8)
int ck_cpu_level(void);
// Whether the AVX-512 dot-product extensions (AVX512_VNNI for int8, AVX512_BF16 for bf16 products) may be used where
// the CPU has them: at CK_LEVEL_AVX512 unless STT_KERNELS=avx512 caps them off.
int ck_cpu_extensions_allowed(void);
// Whether this CPU has AMX tiles with 8-bit and bfloat16 products and the system lets this process use them (asked for
// once); the products use them only where ck_cpu_extensions_allowed().
int ck_amx_available(void);

// Worker threads for splitting one product at a time. ck_pool_create starts threads − 1 workers (fewer if the
// system refuses some; ck_pool_threads says how many took part, the caller included) and returns NULL only when out
// of memory; ck_pool_destroy stops and joins them. A NULL pool is the calling thread alone.
typedef struct ck_pool ck_pool;
ck_pool *ck_pool_create(int threads);
void ck_pool_destroy(ck_pool *pool);
int ck_pool_threads(const ck_pool *pool);
// Runs task(context, part, parts) on the calling thread (part 0) and on each worker that joins in time. A task must
// share its work out itself (chunks claimed through an atomic counter), since a worker may not join at all. One
// caller at a time: while a pool is busy, another caller runs its task alone.
typedef void (*ck_task)(void *context, long part, long parts);
void ck_pool_run(ck_pool *pool, ck_task task, void *context);

// y[m×n] = x[m×k]·W (+ y when accumulate), W packed by ck_pack_panels_bytes; x and y row-major with leading
// dimensions.
// Large enough products split their column panels across `pool` (NULL: the calling thread alone); each output is
// summed by one thread, so the result does not depend on the thread count. scratch holds ck_gemm_scratch_size(m, k)
// floats for the variant that repacks rows; without it rows are read in place (same result, slower). Nothing is
// allocated.
void ck_gemm_packed(ck_pool *pool, const float *x, long m, long k, long ldx, const float *packed, long n, float *y,
                    long ldy, int accumulate, float *scratch);
long ck_gemm_scratch_size(long m, long k);
// ck_gemm_packed with bfloat16 panels (ck_pack_panels_bf16): each weight widened to float32 in registers, products
// and sums in float32 (with AMX, CK_GEMM_AMX_BF16: rows split in two bfloat16 values, sums in float32). Else, on a
// CPU with AVX512_BF16 and STT_BF16_ROWS=1 in the environment (ck_gemm_bf16_variant),
// vdpbf16ps multiplies pairs of bfloat16 weights by pairs of the rows rounded to bfloat16 too (twice the multiply-adds
// per instruction, and the rows' rounding on top of the weights'), sums in float32; without scratch that variant
// allocates its rounded rows (and the AMX variant its split ones).
void ck_gemm_packed_bf16(ck_pool *pool, const float *x, long m, long k, long ldx, const uint16_t *packed, long n,
                         float *y, long ldy, int accumulate, float *scratch);

// int8 weights: per output column a scale (max |column| / 127) and the column rounded to [−127, 127], packed in
// panels of 16 columns with k in pairs: ck_packed_int8_size(k, n) bytes and n scales. A NaN weight packs as 0.
long ck_packed_int8_size(long k, long n);
void ck_pack_panels_int8(const void *w, long k, long n, int transposed, int8_t *packed, float *scales);
// y[m×n] = x[m×k]·W (+ y when accumulate) for int8 panels: each row of x is rounded to 16-bit integers in [−L, L] with
// its own scale (max |row| / L), L = min(32767, (2³¹ − 1) / (127 · k rounded up to even)) so that the sums are exact
// 32-bit integers, then scaled by the row's and the column's scale. scratch holds
// ck_gemm_int8_scratch_size(m, k) floats (ck_gemm_scratch_size covers it); without it one is allocated. Splits across
// `pool` like ck_gemm_packed; every variant gives the same result bit for bit.
long ck_gemm_int8_scratch_size(long m, long k);
void ck_gemm_packed_int8(ck_pool *pool, const float *x, long m, long k, long ldx, const int8_t *packed,
                         const float *scales, long n, float *y, long ldy, int accumulate, float *scratch);
// With a given variant, for tests: 0 portable, 1 AVX2 (vpmaddwd), 2 AVX-512 BW (vpmaddwd), 3 AVX512_VNNI (vpdpwssd),
// 4 AMX (tdpbssd and tdpbusd on the rows' 8-bit halves); returns 0 when this CPU lacks it or STT_KERNELS excludes it.
int ck_gemm_packed_int8_variant(int variant, ck_pool *pool, const float *x, long m, long k, long ldx,
                                const int8_t *packed, const float *scales, long n, float *y, long ldy, int accumulate,
                                float *scratch);
const char *ck_gemm_int8_variant(void);

// The measured peak of one core's product instruction on the selected variant of float32 (CK_PEAK_FP32), int8 or
// bf16 products, in billions of float operations per second (a multiply-add counts 2), and that instruction's name
// — for benchmarks. AMX's count a pair of instructions (the rows' two halves) as one product.
#define CK_PEAK_FP32 0
#define CK_PEAK_INT8 1
#define CK_PEAK_BF16 2
double ck_peak_gflops(int precision);
const char *ck_peak_instruction(int precision);
const char *ck_int8_peak_instruction(void);

// Name of the selected product variant ("avx512", "avx2+fma" or "portable"), and of the bf16 products' (the same, or
// "avx512_bf16 (vdpbf16ps)").
const char *ck_gemm_variant(void);
const char *ck_gemm_bf16_variant(void);
// ck_gemm_packed (bf16 = 0) or ck_gemm_packed_bf16 (bf16 = 1) with a given variant (a CK_LEVEL_*, or
// CK_GEMM_AVX512_BF16 or CK_GEMM_AMX_BF16 for bf16 products), for tests. Returns 0 when this CPU lacks it or
// STT_KERNELS excludes it.
#define CK_GEMM_AVX512_BF16 3
// AMX: tdpbf16ps on each row split into two bfloat16 values (16 of its 24 significant bits kept), float32 sums; chosen
// for bf16 products wherever ck_amx_available() and ck_cpu_extensions_allowed().
#define CK_GEMM_AMX_BF16 4
// Whether this CPU has AVX512_BF16 and STT_KERNELS allows it (the variant runs; it is chosen only with STT_BF16_ROWS=1).
int ck_gemm_bf16_dot_supported(void);
int ck_gemm_packed_variant(int variant, ck_pool *pool, const float *x, long m, long k, long ldx, const void *packed,
                           int bf16, long n, float *y, long ldy, int accumulate, float *scratch);

#endif
