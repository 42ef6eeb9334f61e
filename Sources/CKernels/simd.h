#ifndef CK_SIMD_H
#define CK_SIMD_H
// The x86 vector instructions of the products, and how each function asks for its instruction set: CK_TARGET(...) is
// a per-function target attribute (no build flags), chosen at run time by ck_cpu_level() and ck_cpu_supports().
//
// Built with CK_EMULATE_X86 (scripts/check-kernels), the same source uses SIMDe's portable definitions of every
// intrinsic instead, and the CPU reports every feature: each variant, AVX-512 ones included, then runs and is
// checked on any CPU, however slowly.
#if defined(CK_EMULATE_X86)
#define SIMDE_ENABLE_NATIVE_ALIASES
#pragma GCC diagnostic ignored "-Wpsabi"   // SIMDe's 256- and 512-bit types passed by value without AVX
// Recent clang's emmintrin.h (which SIMDe includes) declares __m128bh itself: SIMDe's alias of it is renamed away.
#include <emmintrin.h>
#define __m128bh ck_emulated_m128bh
#include <simde/x86/avx512.h>
#undef __m128bh
#define CK_X86 1
#define CK_TARGET(features)
#define ck_cpu_supports(feature) 1
// Gaps in SIMDe 0.7.4 (Debian's libsimde-dev): a wrong alias for _mm512_madd_epi16; no _mm512_cvtepu16_epi32 and no
// masked float loads and stores.
#undef _mm512_madd_epi16
#define _mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)
static inline simde__m512i ck_emulated_cvtepu16_epi32(simde__m256i a) {
    uint16_t in[16];
    uint32_t out[16];
    simde_mm256_storeu_si256((simde__m256i *)in, a);
    for (int i = 0; i < 16; i++) out[i] = in[i];
    return simde_mm512_loadu_si512(out);
}
#define _mm512_cvtepu16_epi32(a) ck_emulated_cvtepu16_epi32(a)
#define __mmask16 simde__mmask16
static inline simde__m512 ck_emulated_maskz_loadu_ps(simde__mmask16 mask, const float *p) {
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = (mask >> i) & 1 ? p[i] : 0.0f;
    return simde_mm512_loadu_ps(v);
}
static inline void ck_emulated_mask_storeu_ps(float *p, simde__mmask16 mask, simde__m512 a) {
    float v[16];
    simde_mm512_storeu_ps(v, a);
    for (int i = 0; i < 16; i++)
        if ((mask >> i) & 1) p[i] = v[i];
}
#define _mm512_maskz_loadu_ps(mask, p) ck_emulated_maskz_loadu_ps(mask, p)
#define _mm512_mask_storeu_ps(p, mask, a) ck_emulated_mask_storeu_ps(p, mask, a)
#elif defined(__x86_64__)
#include <immintrin.h>
#define CK_X86 1
#define CK_TARGET(features) __attribute__((target(features)))
#define ck_cpu_supports(feature) __builtin_cpu_supports(feature)
#else
#define CK_X86 0
#endif
#endif
