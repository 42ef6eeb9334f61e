#include "ckernels.h"
#include <stdlib.h>
#include <string.h>

static int selected_level = -1;

// What STT_KERNELS allows: CI sets it to run the fallback paths on a CPU that has better ones.
static int level_cap(void) {
    const char *cap = getenv("STT_KERNELS");
    if (!cap) return CK_LEVEL_AVX512;
    if (strcmp(cap, "portable") == 0) return CK_LEVEL_PORTABLE;
    if (strcmp(cap, "avx2") == 0) return CK_LEVEL_AVX2;
    return CK_LEVEL_AVX512;
}

int ck_cpu_level(void) {
    int level = __atomic_load_n(&selected_level, __ATOMIC_ACQUIRE);
    if (level >= 0) return level;
    level = CK_LEVEL_PORTABLE;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        level = CK_LEVEL_AVX2;
        if (__builtin_cpu_supports("avx512f")) level = CK_LEVEL_AVX512;
    }
#endif
    int cap = level_cap();
    if (cap < level) level = cap;
    __atomic_store_n(&selected_level, level, __ATOMIC_RELEASE);
    return level;
}
