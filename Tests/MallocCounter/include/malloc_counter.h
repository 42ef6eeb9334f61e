#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H
// Counts heap allocations made by the calling thread between start and stop. In a plain build the test binary's
// malloc family forwards to glibc's and counts; under AddressSanitizer or ThreadSanitizer, whose runtimes own malloc,
// the count comes from the sanitizer's allocation hook instead.
void malloc_counter_start(void);
long malloc_counter_stop(void);
// 1 when start/stop count, 0 when this build has no way to see allocations (a sanitizer refused the hook).
int malloc_counter_available(void);
#endif
