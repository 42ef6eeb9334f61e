#include "ckernels.h"
#include "simd.h"
#include <stdlib.h>
#include <string.h>

static int selected_level = -1;

// What STT_KERNELS allows: CI sets it to run the fallback paths on a CPU that has better ones. One above
// CK_LEVEL_AVX512 also allows the AVX-512 dot-product extensions.
static int level_cap(void) {
    const char *cap = getenv("STT_KERNELS");
    if (!cap) return CK_LEVEL_AVX512 + 1;
    if (strcmp(cap, "portable") == 0) return CK_LEVEL_PORTABLE;
    if (strcmp(cap, "avx2") == 0) return CK_LEVEL_AVX2;
    if (strcmp(cap, "avx512") == 0) return CK_LEVEL_AVX512;
    return CK_LEVEL_AVX512 + 1;
}

int ck_cpu_extensions_allowed(void) { return ck_cpu_level() == CK_LEVEL_AVX512 && level_cap() > CK_LEVEL_AVX512; }

int ck_cpu_level(void) {
    int level = __atomic_load_n(&selected_level, __ATOMIC_ACQUIRE);
    if (level >= 0) return level;
    level = CK_LEVEL_PORTABLE;
#if CK_X86
#if !defined(CK_EMULATE_X86)
    __builtin_cpu_init();
#endif
    if (ck_cpu_supports("avx2") && ck_cpu_supports("fma")) {
        level = CK_LEVEL_AVX2;
        if (ck_cpu_supports("avx512f")) level = CK_LEVEL_AVX512;
    }
#endif
    int cap = level_cap();
    if (cap < level) level = cap;
    __atomic_store_n(&selected_level, level, __ATOMIC_RELEASE);
    return level;
}
