#include "ckernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define PAUSE() _mm_pause()
#else
#define PAUSE() ((void)0)
#endif

// Workers spin briefly after each task (the products of a step follow each other within microseconds), then sleep
// on a condition variable until the next task.
// The caller never waits for a worker that has not started: a worker joins a task only while it is open, tasks
// hand out their work in small chunks that whoever is inside claims, and the caller closes the task once it finds
// no chunk left, then waits only for workers already inside. One caller at a time: a second concurrent caller
// runs its task alone.

#define MAX_THREADS 64
#define SPIN_LIMIT 20000
#define OPEN (1 << 30)

typedef struct {
    ck_pool *pool;
    int index;
} worker_start;

struct ck_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int threads;                        // the caller and the workers that started
    pthread_t workers[MAX_THREADS - 1];
    worker_start starts[MAX_THREADS - 1];
    _Atomic unsigned long generation;   // bumped for every task, and once more to stop
    _Atomic int state;                  // OPEN bit | workers inside the current task
    _Atomic int stopping;
    atomic_flag busy;
    ck_task task;
    void *context;
    int parts;
};

static void *worker(void *argument) {
    worker_start *start = (worker_start *)argument;
    ck_pool *pool = start->pool;
    unsigned long seen = 0;
    for (;;) {
        unsigned long g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (++spins < SPIN_LIMIT) { PAUSE(); continue; }
            pthread_mutex_lock(&pool->lock);
            while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&pool->wake, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
            break;
        }
        seen = g;
        if (atomic_load_explicit(&pool->stopping, memory_order_acquire)) return 0;
        int s = atomic_load_explicit(&pool->state, memory_order_acquire);
        while (s & OPEN) {
            if (atomic_compare_exchange_weak_explicit(&pool->state, &s, s + 1, memory_order_acq_rel,
                                                      memory_order_acquire)) {
                pool->task(pool->context, start->index, pool->parts);
                atomic_fetch_sub_explicit(&pool->state, 1, memory_order_release);
                break;
            }
        }
    }
}

static void publish(ck_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

ck_pool *ck_pool_create(int threads) {
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    ck_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return 0;
    if (pthread_mutex_init(&pool->lock, 0) != 0) { free(pool); return 0; }
    if (pthread_cond_init(&pool->wake, 0) != 0) { pthread_mutex_destroy(&pool->lock); free(pool); return 0; }
    atomic_flag_clear(&pool->busy);
    pool->threads = 1;
    // A worker that cannot be started leaves the pool smaller, not broken.
    for (int i = 0; i < threads - 1; i++) {
        pool->starts[i] = (worker_start){pool, i + 1};
        if (pthread_create(&pool->workers[i], 0, worker, &pool->starts[i]) != 0) break;
        pool->threads++;
    }
    return pool;
}

void ck_pool_destroy(ck_pool *pool) {
    if (!pool) return;
    atomic_store_explicit(&pool->stopping, 1, memory_order_release);
    publish(pool);
    for (int i = 0; i < pool->threads - 1; i++) pthread_join(pool->workers[i], 0);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

int ck_pool_threads(const ck_pool *pool) { return pool ? pool->threads : 1; }

void ck_pool_run(ck_pool *pool, ck_task task, void *context) {
    if (!pool || pool->threads <= 1 || atomic_flag_test_and_set_explicit(&pool->busy, memory_order_acquire)) {
        task(context, 0, 1);
        return;
    }
    pool->task = task;
    pool->context = context;
    pool->parts = pool->threads;
    atomic_store_explicit(&pool->state, OPEN, memory_order_release);
    publish(pool);
    task(context, 0, pool->parts);
    atomic_fetch_and_explicit(&pool->state, ~OPEN, memory_order_acq_rel);
    while (atomic_load_explicit(&pool->state, memory_order_acquire) != 0) PAUSE();
    atomic_flag_clear_explicit(&pool->busy, memory_order_release);
}
