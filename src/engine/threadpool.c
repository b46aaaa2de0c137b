/* threadpool.c — fork-join worker pool: spin-then-sleep workers woken by a generation counter, late ones turned away. */
#include "engine/threadpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Iterations of the spin before sleeping: a few tens of microseconds, long enough to
 * bridge the gap between two matrix products of one forward pass, short enough not to
 * burn a core while the engine is idle. */
#define SPIN_ITERS 2000

typedef struct worker {
    struct tpool *pool;
    int ith;
    pthread_t tid;
} worker_t;

struct tpool {
    int n;                   /* threads including the caller */
    worker_t *workers;       /* (n - 1) */
    pthread_mutex_t mu;      /* guards sleeping on both condition variables */
    pthread_cond_t start_cv; /* workers sleep here for the next generation */
    pthread_cond_t done_cv;  /* the caller sleeps here for pending == 0 */
    /* what the caller writes per call (read by the spinning workers) and what the
     * workers write (read by the waiting caller) on separate cache lines */
    _Alignas(64) atomic_uint gen; /* incremented by tpool_run once fn/arg are set */
    atomic_uint closed;           /* the last generation whose caller finished its own fn */
    atomic_int stop;
    tpool_fn fn;                  /* written by the caller before gen moves (seq_cst) */
    void *arg;
    _Alignas(64) atomic_int inside; /* workers between joining and leaving a generation */
    atomic_int sleepers;     /* workers on start_cv or about to wait there (under mu) */
    atomic_int caller_waits; /* the caller is on done_cv or about to wait there (under mu) */
};

static void *worker_main(void *a) {
    worker_t *w = a;
    struct tpool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && spins++ < SPIN_ITERS)
            CPU_RELAX();
        if (g == seen) {
            /* announce the sleep before the last look at gen; kick() moves gen before it
             * looks at sleepers (both seq_cst), so one of the two sees the other */
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->start_cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load(&p->stop)) break;
        /* join, then look whether the caller has closed this generation already (both
         * seq_cst: the caller stores closed, then reads inside, so either it waits for us
         * or we see the close and never touch fn/arg, which may be gone) */
        atomic_fetch_add(&p->inside, 1);
        if ((int)(atomic_load(&p->closed) - g) < 0) p->fn(p->arg, w->ith);
        /* the last one out wakes the caller only if it went to sleep (it announces that
         * before its last look at inside: the same handshake as kick's) */
        if (atomic_fetch_sub(&p->inside, 1) == 1 && atomic_load(&p->caller_waits)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* Start the next generation. Spinning workers see gen move by themselves; the mutex and
 * the broadcast (a system call) are paid only when a worker sleeps. */
static void kick(struct tpool *p) {
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->start_cv);
        pthread_mutex_unlock(&p->mu);
    }
}

int tpool_new(int n, tpool_t **out) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (n < 1) n = 1;
    struct tpool *p = aligned_alloc(_Alignof(struct tpool), sizeof *p); /* sizeof is a multiple */
    if (!p) return -ENOMEM;
    memset(p, 0, sizeof *p);
    p->n = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    if (n > 1 && !(p->workers = calloc((size_t)n - 1, sizeof *p->workers))) goto err_nomem;
    for (int i = 1; i < n; i++) {
        worker_t *w = &p->workers[i - 1];
        w->pool = p;
        w->ith = i;
        int rc = pthread_create(&w->tid, NULL, worker_main, w);
        if (rc) {
            tpool_free(p);
            return -rc;
        }
        p->n = i + 1;
    }
    *out = p;
    return 0;
err_nomem:
    tpool_free(p);
    return -ENOMEM;
}

void tpool_free(tpool_t *p) {
    if (!p) return;
    if (p->n > 1) {
        atomic_store(&p->stop, 1);
        kick(p);
        for (int i = 0; i < p->n - 1; i++) pthread_join(p->workers[i].tid, NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->workers);
    free(p);
}

int tpool_size(const tpool_t *p) { return p ? p->n : 1; }

void tpool_run(tpool_t *p, tpool_fn fn, void *arg) {
    if (!p || p->n <= 1) {
        fn(arg, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    unsigned g = atomic_load(&p->gen) + 1;
    kick(p); /* gen = g */
    fn(arg, 0);
    atomic_store(&p->closed, g);
    int spins = 0;
    while (atomic_load(&p->inside) > 0 && spins++ < SPIN_ITERS) CPU_RELAX();
    if (atomic_load(&p->inside) > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_waits, 1);
        while (atomic_load(&p->inside) > 0) pthread_cond_wait(&p->done_cv, &p->mu);
        atomic_store(&p->caller_waits, 0);
        pthread_mutex_unlock(&p->mu);
    }
}
