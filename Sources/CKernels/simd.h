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
// Gaps in SIMDe 0.7.4 (Debian's libsimde-dev): a wrong alias for _mm512_madd_epi16; no _mm512_cvtepu16_epi32, no
// _mm512_cvtepi32_ps or _mm512_cvtepi32_epi16 and no masked float loads and stores.
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
static inline simde__m512 ck_emulated_cvtepi32_ps(simde__m512i a) {
    int32_t in[16];
    float out[16];
    simde_mm512_storeu_si512(in, a);
    for (int i = 0; i < 16; i++) out[i] = (float)in[i];
    return simde_mm512_loadu_ps(out);
}
#define _mm512_cvtepi32_ps(a) ck_emulated_cvtepi32_ps(a)
static inline simde__m256i ck_emulated_cvtepi32_epi16(simde__m512i a) {
    int32_t in[16];
    int16_t out[16];
    simde_mm512_storeu_si512(in, a);
    for (int i = 0; i < 16; i++) out[i] = (int16_t)in[i];
    return simde_mm256_loadu_si256(out);
}
#define _mm512_cvtepi32_epi16(a) ck_emulated_cvtepi32_epi16(a)
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
// AMX, which SIMDe lacks: eight tiles of up to 16 rows × 64 bytes per thread, as configured, and the products as
// Intel's definitions of tdpbssd, tdpbusd and tdpbf16ps give them (sums modulo 2³²; float sums in the definition's
// order, each bfloat16 pair's products added one after the other).
#include <stdint.h>
#include <string.h>
typedef struct {
    uint8_t rows[8];
    uint16_t bytes[8];
    uint8_t data[8][16 * 64];
} ck_emulated_tiles;
static inline ck_emulated_tiles *ck_emulated_tile_file(void) {
    static _Thread_local ck_emulated_tiles tiles;
    return &tiles;
}
static inline void _tile_loadconfig(const void *config) {
    const uint8_t *c = (const uint8_t *)config;
    ck_emulated_tiles *t = ck_emulated_tile_file();
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 8; i++) {
        t->bytes[i] = (uint16_t)(c[16 + 2 * i] | c[17 + 2 * i] << 8);
        t->rows[i] = c[48 + i];
    }
}
static inline void _tile_release(void) { memset(ck_emulated_tile_file(), 0, sizeof(ck_emulated_tiles)); }
static inline void _tile_zero(int tile) { memset(ck_emulated_tile_file()->data[tile], 0, 16 * 64); }
static inline void _tile_loadd(int tile, const void *base, long stride) {
    ck_emulated_tiles *t = ck_emulated_tile_file();
    memset(t->data[tile], 0, 16 * 64);
    for (int r = 0; r < t->rows[tile]; r++)
        memcpy(t->data[tile] + r * 64, (const uint8_t *)base + r * stride, t->bytes[tile]);
}
static inline void _tile_stored(int tile, void *base, long stride) {
    ck_emulated_tiles *t = ck_emulated_tile_file();
    for (int r = 0; r < t->rows[tile]; r++) memcpy((uint8_t *)base + r * stride, t->data[tile] + r * 64, t->bytes[tile]);
}
static inline void ck_emulated_tile_dp8(int c, int a, int b, int unsigned_a) {
    ck_emulated_tiles *t = ck_emulated_tile_file();
    for (int m = 0; m < t->rows[c]; m++)
        for (int n = 0; n < t->bytes[c] / 4; n++) {
            int32_t sum;
            memcpy(&sum, t->data[c] + m * 64 + 4 * n, 4);
            uint32_t acc = (uint32_t)sum;
            for (int q = 0; q < t->bytes[a] / 4; q++)
                for (int i = 0; i < 4; i++) {
                    const uint8_t x = t->data[a][m * 64 + 4 * q + i];
                    const int32_t w = (int8_t)t->data[b][q * 64 + 4 * n + i];
                    acc += (uint32_t)((unsigned_a ? (int32_t)x : (int32_t)(int8_t)x) * w);
                }
            sum = (int32_t)acc;
            memcpy(t->data[c] + m * 64 + 4 * n, &sum, 4);
        }
}
#define _tile_dpbssd(c, a, b) ck_emulated_tile_dp8(c, a, b, 0)
#define _tile_dpbusd(c, a, b) ck_emulated_tile_dp8(c, a, b, 1)
static inline float ck_emulated_bf16(const uint8_t *p) {
    uint32_t u = (uint32_t)(p[0] | p[1] << 8) << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}
static inline void _tile_dpbf16ps(int c, int a, int b) {
    ck_emulated_tiles *t = ck_emulated_tile_file();
    for (int m = 0; m < t->rows[c]; m++)
        for (int n = 0; n < t->bytes[c] / 4; n++) {
            float sum;
            memcpy(&sum, t->data[c] + m * 64 + 4 * n, 4);
            for (int q = 0; q < t->bytes[a] / 4; q++)
                for (int i = 0; i < 2; i++)
                    sum += ck_emulated_bf16(t->data[a] + m * 64 + 4 * q + 2 * i) *
                           ck_emulated_bf16(t->data[b] + q * 64 + 4 * n + 2 * i);
            memcpy(t->data[c] + m * 64 + 4 * n, &sum, 4);
        }
}
#elif defined(__x86_64__)
#include <immintrin.h>
#define CK_X86 1
#define CK_TARGET(features) __attribute__((target(features)))
#define ck_cpu_supports(feature) __builtin_cpu_supports(feature)
#else
#define CK_X86 0
#endif
#endif
