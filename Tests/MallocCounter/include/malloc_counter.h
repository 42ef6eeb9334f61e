#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H
// Counts heap allocations made by the calling thread between start and stop. The test binary's malloc family
// forwards to glibc's and counts while this thread is counting.
void malloc_counter_start(void);
long malloc_counter_stop(void);
#endif
