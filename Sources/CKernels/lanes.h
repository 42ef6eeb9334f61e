#ifndef CK_LANES_H
#define CK_LANES_H
// Reductions over a row in 8 partial results, so that their loops vectorize: a single running sum is one chain of
// dependent adds (LayerNorms and softmaxes summed that way took most of their time in it).
#define SUM_LANES 8

// Σ x[c] (squares = 0) or Σ (x[c] − mean)² (squares = 1).
static inline __attribute__((always_inline)) float sum_lanes(const float *x, long n, float mean, int squares) {
    float acc[SUM_LANES] = {0};
    long c = 0;
    for (; c + SUM_LANES <= n; c += SUM_LANES)
        for (int l = 0; l < SUM_LANES; l++) {
            float v = x[c + l] - mean;
            acc[l] += squares ? v * v : v;
        }
    float tail = 0.0f;
    for (; c < n; c++) {
        float v = x[c] - mean;
        tail += squares ? v * v : v;
    }
    for (int l = 0; l < SUM_LANES / 2; l++) acc[l] += acc[l + SUM_LANES / 2];
    return ((acc[0] + acc[2]) + (acc[1] + acc[3])) + tail;
}

// The largest x[c] (n ≥ 1), NaNs after x[0] passed over, as a running maximum from x[0] would: the same value in any
// order.
static inline __attribute__((always_inline)) float max_lanes(const float *x, long n) {
    float acc[SUM_LANES];
    for (int l = 0; l < SUM_LANES; l++) acc[l] = x[0];
    long c = 0;
    for (; c + SUM_LANES <= n; c += SUM_LANES)
        for (int l = 0; l < SUM_LANES; l++) acc[l] = x[c + l] > acc[l] ? x[c + l] : acc[l];
    float top = x[0];
    for (; c < n; c++) top = x[c] > top ? x[c] : top;
    for (int l = 0; l < SUM_LANES; l++) top = acc[l] > top ? acc[l] : top;
    return top;
}
#endif
