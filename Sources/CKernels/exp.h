#ifndef CK_EXP_H
#define CK_EXP_H
#include <stdint.h>
// exp(x) for float: x = n·ln2 + r with |r| ≤ ln2/2, exp(r) by a degree-6 polynomial (relative error below 2e-7 on
// the reduced range), scaled by 2^n through the exponent bits. Branch-free so that loops around it vectorize.
// A NaN (from a model file's weights) comes back as NaN: the clamps send it to a bound, so that no NaN is ever
// converted to an integer, and the result is replaced by the input at the end.
static inline float ck_exp(float input) {
    float x = input < 88.0f ? input : 88.0f;
    x = x > -87.0f ? x : -87.0f;
    const float log2e = 1.44269504088896341f;
    float n = __builtin_floorf(x * log2e + 0.5f);
    // ln2 split in two for an exact reduction.
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187045e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { float f; int32_t i; } scale;
    scale.i = ((int32_t)n + 127) << 23;
    float result = p * scale.f;
    return input == input ? result : input;
}
#endif
