#ifndef CK_PANELS_H
#define CK_PANELS_H

#include <string.h>

// Row p of the panel of 16 columns that starts at column j0 of a k × n float32 weight matrix, read from its bytes
// wherever they lie (a mapped file need not align them): [k, n] (k-major) or transposed, [n, k]. Zeros past n and
// past k, so that the packings' loops run whole panels.
static inline void ck_panel_row(const void *weights, long k, long n, int transposed, long j0, long p, float *row) {
    const unsigned char *w = (const unsigned char *)weights;
    long cols = p < k ? (n - j0 < 16 ? n - j0 : 16) : 0;
    if (!transposed && cols == 16) {
        memcpy(row, w + (p * n + j0) * (long)sizeof(float), 16 * sizeof(float));
        return;
    }
    if (!transposed) {
        memcpy(row, w + (p * n + j0) * (long)sizeof(float), (size_t)cols * sizeof(float));
    } else {
        for (long c = 0; c < cols; c++) memcpy(row + c, w + ((j0 + c) * k + p) * (long)sizeof(float), sizeof(float));
    }
    for (long c = cols; c < 16; c++) row[c] = 0.0f;
}

#endif
