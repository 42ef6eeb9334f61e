#include "malloc_counter.h"
#include <errno.h>
#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define COUNT_THROUGH_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNT_THROUGH_SANITIZER 1
#endif

// initial-exec: reaching the counters must never allocate, since it happens inside the allocator.
static _Thread_local int counting __attribute__((tls_model("initial-exec"))) = 0;
static _Thread_local long count __attribute__((tls_model("initial-exec"))) = 0;

void malloc_counter_start(void) { count = 0; counting = 1; }
long malloc_counter_stop(void) { counting = 0; return count; }

#ifdef COUNT_THROUGH_SANITIZER

// The sanitizer runtime defines malloc and frees only what it allocated, so replacing malloc here would hand it
// glibc's blocks. It calls these hooks on the allocating thread for every malloc, calloc, realloc and aligned
// allocation instead.
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static int hooked = 0;

static void on_malloc(const volatile void *p, size_t n) { (void)p; (void)n; if (counting) count++; }
static void on_free(const volatile void *p) { (void)p; }

// Before main, so no test thread can race the installation.
__attribute__((constructor)) static void install_hooks(void) {
    hooked = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0;
}

int malloc_counter_available(void) { return hooked; }

#else

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

int malloc_counter_available(void) { return 1; }

void *malloc(size_t n) { if (counting) count++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { if (counting) count++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { if (counting) count++; return __libc_realloc(p, n); }
void *aligned_alloc(size_t alignment, size_t n) { if (counting) count++; return __libc_memalign(alignment, n); }
void *memalign(size_t alignment, size_t n) { if (counting) count++; return __libc_memalign(alignment, n); }
int posix_memalign(void **out, size_t alignment, size_t n) {
    if (counting) count++;
    void *p = __libc_memalign(alignment, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

#endif
