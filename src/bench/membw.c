/* membw.c — threaded memory read bandwidth: every thread streams its own buffer between two barriers. */
#include "bench/membw.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ev.h"

typedef struct bw_thread {
    pthread_t tid;
    pthread_barrier_t *bar;
    uint8_t *buf;
    size_t bytes;
    int passes, rounds, isa; /* isa: 2 avx512, 1 avx2, 0 scalar */
    int fill;                /* first measurement: fill the buffer before timing */
    double *start, *end;     /* per round, written by thread 0 */
    int ith;
    volatile unsigned long long sink;
    pthread_mutex_t *mu;     /* with cv and go: the start gate */
    pthread_cond_t *cv;
    int *go;                 /* 1: all threads exist, run; -1: creation failed, leave */
} bw_thread_t;

struct membw {
    int threads, isa, filled;
    size_t bytes; /* per thread */
    uint8_t **buf;
};

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
    if (t->fill)
        for (size_t i = 0; i < t->bytes / 8; i++) w[i] = (i + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)t->ith;
    for (int r = 0; r < t->rounds; r++) {
        pthread_barrier_wait(t->bar);
        if (t->ith == 0) t->start[r] = ev_clock_s();
        for (int p = 0; p < t->passes; p++)
            t->sink += t->isa == 2   ? membw_sum_avx512(t->buf, t->bytes)
                       : t->isa == 1 ? membw_sum_avx2(t->buf, t->bytes)
                                     : sum_scalar(t->buf, t->bytes);
        pthread_barrier_wait(t->bar);
        if (t->ith == 0) t->end[r] = ev_clock_s();
    }
    return NULL;
}

int membw_open(int threads, size_t bytes_per_thread, membw_t **out) {
    *out = NULL;
    if (threads < 1 || bytes_per_thread < 1) return -EINVAL;
    membw_t *b = calloc(1, sizeof *b);
    if (!b || !(b->buf = calloc((size_t)threads, sizeof *b->buf))) {
        free(b);
        return -ENOMEM;
    }
    b->threads = threads;
    b->bytes = (bytes_per_thread + 4095) & ~(size_t)4095;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) b->isa = 2;
    else if (__builtin_cpu_supports("avx2")) b->isa = 1;
#endif
    for (int i = 0; i < threads; i++)
        if (!(b->buf[i] = aligned_alloc(4096, b->bytes))) {
            membw_close(b);
            return -ENOMEM;
        }
    *out = b;
    return 0;
}

void membw_close(membw_t *b) {
    if (!b) return;
    for (int i = 0; i < b->threads; i++) free(b->buf[i]);
    free(b->buf);
    free(b);
}

double membw_measure(membw_t *b, int passes, int rounds) {
    if (!b || passes < 1 || rounds < 1 || rounds > 64) return -EINVAL;
    int threads = b->threads;
    bw_thread_t *ts = calloc((size_t)threads, sizeof *ts);
    double start[64], end[64];
    pthread_barrier_t bar;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int go = 0;
    if (!ts) return -ENOMEM;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    int rc = 0, started = 0;
    for (int i = 0; i < threads; i++)
        ts[i] = (bw_thread_t){.bar = &bar, .buf = b->buf[i], .bytes = b->bytes, .passes = passes, .rounds = rounds,
                              .isa = b->isa, .fill = !b->filled, .start = start, .end = end, .ith = i,
                              .mu = &mu, .cv = &cv, .go = &go};
    /* either every thread starts or none does (the barrier counts all) */
    for (int i = 0; i < threads; i++) {
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
        double bw = (double)b->bytes * passes * threads / (end[r] - start[r]);
        if (bw > best) best = bw;
    }
    b->filled |= !rc;
    free(ts);
    pthread_barrier_destroy(&bar);
    return rc ? rc : best;
}

double membw_read(int threads, size_t bytes_per_thread, int passes, int rounds) {
    if (passes < 1 || rounds < 1 || rounds > 64) return -EINVAL;
    membw_t *b;
    int rc = membw_open(threads, bytes_per_thread, &b);
    if (rc) return rc;
    double bw = membw_measure(b, passes, rounds);
    membw_close(b);
    return bw;
}
