#ifndef CK_AMX_H
#define CK_AMX_H
// AMX tiles, shared by the int8 (gemm_int8.c) and bfloat16 (gemm.c) products. Both use one configuration: eight
// tiles of 64-byte rows, tiles 0–5 (sums, and the rows' operands) as many rows as a product's row tile has (at most
// 16), tiles 6 and 7 16 rows (weights; or, with more than 16 rows a product, the rows' operands and weights). The
// configuration is per thread: each thread that takes part in a product sets it, and releases the tiles after.
#include "simd.h"
#include <stdint.h>
#include <string.h>
#if CK_X86
#define AMX_TILE CK_TARGET("amx-tile")

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} ck_amx_config;

// How far ahead in a panel the AMX products prefetch their weights: without it, 14 rows of 40 matrices of 512 × 2048
// from memory (Xeon, Emerald Rapids) took 4.9–10.7 ms in int8 and 8.4–11.7 in bf16, with it 2.9–5.2 and 7.0–10.9 (1
// row of bf16: 7.5–9.7 → 5.6–6.1); 4 KB ahead was as good as 8 KB and steadier.
#define CK_AMX_AHEAD 4096

// Rows of a product's row tiles: all of them up to 16, else tiles of 16.
static inline long ck_amx_tile_rows(long m) { return m < 16 ? m : 16; }
// Rows rounded up to whole row tiles.
static inline long ck_amx_padded_rows(long m) { return (m + ck_amx_tile_rows(m) - 1) / ck_amx_tile_rows(m) * ck_amx_tile_rows(m); }

static inline __attribute__((always_inline)) AMX_TILE void ck_amx_configure(long m) {
    ck_amx_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.rows[t] = (uint8_t)(t < 6 || m > 16 ? ck_amx_tile_rows(m) : 16);
        config.bytes_per_row[t] = 64;
    }
    config.rows[7] = 16;
    _tile_loadconfig(&config);
}

double ck_seconds(void);   // gemm.c

// One core's peak, in GFLOP/s, of an AMX product as the kernels issue it: FIRST and SECOND (the instructions for the
// rows' two halves) on three independent pairs of sums, over OPERAND (a 1 KB tile) loaded in tiles 6 and 7; each pair
// counts as one product of 16 rows × 16 columns × K. Tile 0 is stored to OUT (16 × 16 four-byte sums) at the end.
#define CK_AMX_PEAK_GFLOPS(FIRST, SECOND, K, OPERAND, OUT, ITERATIONS)                                           \
    __extension__({                                                                                             \
        const long rounds_ = (ITERATIONS) / 16 + 1;                                                             \
        ck_amx_configure(16);                                                                                   \
        const double start_ = ck_seconds();                                                                     \
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3); _tile_zero(4); _tile_zero(5);              \
        _tile_loadd(6, OPERAND, 64);                                                                            \
        _tile_loadd(7, OPERAND, 64);                                                                            \
        for (long r_ = 0; r_ < rounds_; r_++) {                                                                 \
            FIRST(0, 6, 7); SECOND(1, 6, 7);                                                                    \
            FIRST(2, 6, 7); SECOND(3, 6, 7);                                                                    \
            FIRST(4, 6, 7); SECOND(5, 6, 7);                                                                    \
        }                                                                                                       \
        _tile_stored(0, OUT, 64);                                                                               \
        const double seconds_ = ck_seconds() - start_;                                                          \
        _tile_release();                                                                                        \
        rounds_ * 3.0 * 16 * 16 * (K) * 2 / seconds_ / 1e9;                                                     \
    })
#endif
#endif
