#include "ckernels.h"
#include <pthread.h>
#include <stdatomic.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define PAUSE() _mm_pause()
#else
#define PAUSE() ((void)0)
#endif

// A small pool for splitting one product across cores. Workers spin briefly after each task (the products of a
// step follow each other within microseconds), then sleep on a condition variable until the next task.
// The caller never waits for a worker that has not started: a worker joins a task only while it is open, tasks
// hand out their work in small chunks that whoever is inside claims, and the caller closes the task once it finds
// no chunk left, then waits only for workers already inside. One caller at a time: a second concurrent caller
// runs its task alone.

#define MAX_THREADS 64
#define SPIN_LIMIT 20000

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int created;               // workers started (threads − 1 at most)
    _Atomic int active;        // threads taking part, the caller included
    _Atomic unsigned long generation;
    _Atomic int state;         // OPEN bit | workers inside the current task
    atomic_flag busy;
    ck_task task;
    void *context;
    int parts;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 1, 0, 0, ATOMIC_FLAG_INIT, 0, 0, 1};

#define OPEN (1 << 30)

static void *worker(void *argument) {
    int index = (int)(long)argument;
    unsigned long seen = 0;
    for (;;) {
        unsigned long g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen) {
            if (++spins < SPIN_LIMIT) { PAUSE(); continue; }
            pthread_mutex_lock(&pool.lock);
            while ((g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
            break;
        }
        seen = g;
        if (index >= atomic_load(&pool.active)) continue;
        int s = atomic_load_explicit(&pool.state, memory_order_acquire);
        while (s & OPEN) {
            if (atomic_compare_exchange_weak_explicit(&pool.state, &s, s + 1, memory_order_acq_rel,
                                                      memory_order_acquire)) {
                pool.task(pool.context, index, pool.parts);
                atomic_fetch_sub_explicit(&pool.state, 1, memory_order_release);
                break;
            }
        }
    }
    return 0;
}

void ck_set_threads(int threads) {
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    pthread_mutex_lock(&pool.lock);
    while (pool.created < threads - 1) {
        pthread_t thread;
        if (pthread_create(&thread, 0, worker, (void *)(long)(pool.created + 1)) != 0) break;
        pthread_detach(thread);
        pool.created++;
    }
    atomic_store(&pool.active, pool.created + 1 < threads ? pool.created + 1 : threads);
    pthread_mutex_unlock(&pool.lock);
}

int ck_threads(void) { return atomic_load(&pool.active); }

void ck_parallel(ck_task task, void *context) {
    int parts = atomic_load(&pool.active);
    if (parts <= 1 || atomic_flag_test_and_set_explicit(&pool.busy, memory_order_acquire)) {
        task(context, 0, 1);
        return;
    }
    pool.task = task;
    pool.context = context;
    pool.parts = parts;
    atomic_store_explicit(&pool.state, OPEN, memory_order_release);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    task(context, 0, parts);
    atomic_fetch_and_explicit(&pool.state, ~OPEN, memory_order_acq_rel);
    while (atomic_load_explicit(&pool.state, memory_order_acquire) != 0) PAUSE();
    atomic_flag_clear_explicit(&pool.busy, memory_order_release);
}
