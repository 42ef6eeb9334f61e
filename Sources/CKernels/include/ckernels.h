#ifndef CKERNELS_H
#define CKERNELS_H
// Element-wise kernels that need exp() or tight loops. Each has a portable body compiled twice: plain x86-64 and
// with AVX2+FMA (per-function target attributes, no build flags); the variant is chosen once at run time.

// x[i] = x[i] * sigmoid(x[i])
void ck_swish(float *x, long n);
// x[i] = 1 / (1 + exp(-x[i]))
void ck_sigmoid(float *x, long n);
// out[t, c] = in[t, c] * sigmoid(in[t, c + channels]) for rows t of width 2·channels
void ck_glu_rows(const float *in, float *out, long rows, long channels);
// Row-wise LayerNorm over `width` with scale and shift: out may equal in.
void ck_layer_norm(const float *in, float *out, long rows, long width, const float *scale, const float *shift,
                   float epsilon);
// In-place softmax of x[0..<n] (already scaled); returns nothing. n ≥ 1.
void ck_softmax(float *x, long n);
// y[i] += alpha * x[i]
void ck_axpy(float *y, const float *x, long n, float alpha);
// x[r, c] += bias[c] for every row r
void ck_add_bias_rows(float *x, const float *bias, long rows, long width);
// x[i] = max(x[i], 0)
void ck_relu(float *x, long n);
// Name of the selected variant ("avx2+fma" or "x86-64"), for benchmarks.
const char *ck_variant(void);

#endif
