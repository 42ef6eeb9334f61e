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
#endif
#endif
