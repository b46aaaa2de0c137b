/* membw.c — threaded memory read bandwidth: every thread streams its own buffer between two barriers. */
#include "bench/membw.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bw_thread {
    pthread_t tid;
    pthread_barrier_t *bar;
    uint8_t *buf;
    size_t bytes;
    int passes, rounds, isa; /* isa: 2 avx512, 1 avx2, 0 scalar */
    double *start, *end;     /* per round, written by thread 0 */
    int ith;
    volatile unsigned long long sink;
    pthread_mutex_t *mu;     /* with cv and go: the start gate */
    pthread_cond_t *cv;
    int *go;                 /* 1: all threads exist, run; -1: creation failed, leave */
} bw_thread_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static unsigned long long sum_scalar(const void *p, size_t bytes) {
    const uint64_t *v = p;
    uint64_t a = 0, b = 0;
    for (size_t i = 0; i + 2 <= bytes / 8; i += 2) a ^= v[i], b ^= v[i + 1];
    return a ^ b;
}

static void *bw_main(void *arg) {
    bw_thread_t *t = arg;
    pthread_mutex_lock(t->mu);
    while (!*t->go) pthread_cond_wait(t->cv, t->mu);
    int go = *t->go;
    pthread_mutex_unlock(t->mu);
    if (go < 0) return NULL;
    /* touch: the pages exist before timing; every word different, so that no page of
     * the buffer equals another (a hypervisor that merges or compresses identical pages
     * would otherwise serve the reads from a few cached ones) */
    uint64_t *w = (uint64_t *)t->buf;
    for (size_t i = 0; i < t->bytes / 8; i++) w[i] = (i + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)t->ith;
    for (int r = 0; r < t->rounds; r++) {
        pthread_barrier_wait(t->bar);
        if (t->ith == 0) t->start[r] = now_s();
        for (int p = 0; p < t->passes; p++)
            t->sink += t->isa == 2   ? membw_sum_avx512(t->buf, t->bytes)
                       : t->isa == 1 ? membw_sum_avx2(t->buf, t->bytes)
                                     : sum_scalar(t->buf, t->bytes);
        pthread_barrier_wait(t->bar);
        if (t->ith == 0) t->end[r] = now_s();
    }
    return NULL;
}

double membw_read(int threads, size_t bytes_per_thread, int passes, int rounds) {
    if (threads < 1 || passes < 1 || rounds < 1 || rounds > 64) return -EINVAL;
    bytes_per_thread = (bytes_per_thread + 4095) & ~(size_t)4095;
    int isa = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) isa = 2;
    else if (__builtin_cpu_supports("avx2")) isa = 1;
#endif
    bw_thread_t *ts = calloc((size_t)threads, sizeof *ts);
    double start[64], end[64];
    pthread_barrier_t bar;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int go = 0;
    if (!ts) return -ENOMEM;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    int rc = 0, started = 0;
    for (int i = 0; i < threads && !rc; i++) {
        ts[i] = (bw_thread_t){.bar = &bar, .bytes = bytes_per_thread, .passes = passes, .rounds = rounds,
                              .isa = isa, .start = start, .end = end, .ith = i,
                              .mu = &mu, .cv = &cv, .go = &go};
        ts[i].buf = aligned_alloc(4096, bytes_per_thread);
        if (!ts[i].buf) rc = -ENOMEM;
    }
    /* all buffers exist, so either every thread starts or none does (the barrier counts all) */
    for (int i = 0; i < threads && !rc; i++) {
        if (pthread_create(&ts[i].tid, NULL, bw_main, &ts[i])) {
            rc = -EAGAIN;
            break;
        }
        started++;
    }
    /* open the gate: everyone runs, or (a thread is missing) everyone leaves */
    pthread_mutex_lock(&mu);
    go = rc ? -1 : 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < started; i++) pthread_join(ts[i].tid, NULL);
    double best = 0;
    for (int r = 0; !rc && r < rounds; r++) {
        double bw = (double)bytes_per_thread * passes * threads / (end[r] - start[r]);
        if (bw > best) best = bw;
    }
    for (int i = 0; i < threads; i++) free(ts[i].buf);
    free(ts);
    pthread_barrier_destroy(&bar);
    return rc ? rc : best;
}
