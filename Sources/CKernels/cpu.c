#include "ckernels.h"
#include "simd.h"
#include <stdlib.h>
#include <string.h>
#if defined(__linux__) && defined(__x86_64__) && !defined(CK_EMULATE_X86)
#include <sys/syscall.h>
#include <unistd.h>
#endif

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

// AMX: the CPU has its tiles and 8-bit products (and AVX512BW, which its callers use beside them), and Linux lets this
// process use the tiles' 8 KB of state, which it grants only when asked (arch_prctl ARCH_REQ_XCOMP_PERM for
// XTILEDATA, once for the whole process). Any refusal leaves AMX out.
int ck_amx_available(void) {
    static int known = -1;
    int available = __atomic_load_n(&known, __ATOMIC_ACQUIRE);
    if (available >= 0) return available;
    available = 0;
#if CK_X86
    if (ck_cpu_level() >= CK_LEVEL_AVX512 && ck_cpu_supports("avx512bw") && ck_cpu_supports("amx-tile") &&
        ck_cpu_supports("amx-int8") && ck_cpu_supports("amx-bf16")) {
#if defined(CK_EMULATE_X86)
        available = 1;
#elif defined(__linux__)
        const long request_permission = 0x1023, xtiledata = 18;   // ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA
        available = syscall(SYS_arch_prctl, request_permission, xtiledata) == 0;
#endif
    }
#endif
    __atomic_store_n(&known, available, __ATOMIC_RELEASE);
    return available;
}
