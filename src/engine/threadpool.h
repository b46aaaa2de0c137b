/* threadpool.h — a persistent pool of worker threads that run one function on every thread at once (fork-join, no thread creation per call). */
#ifndef TOLLGATE_ENGINE_THREADPOOL_H
#define TOLLGATE_ENGINE_THREADPOOL_H

/* Threads: tpool_run is called from one thread at a time (the pool's owner, e.g. the
 * engine thread); it runs fn on the caller as thread 0 and on the n - 1 workers, and
 * returns when all have returned. Between calls the workers spin briefly, then sleep on
 * a condition variable. The pool shares only fn, arg, a generation counter and a
 * pending count with its workers (under its mutex / atomics). */

typedef struct tpool tpool_t;

/* fn(arg, ith, nth): ith in 0..nth-1; each thread must do its own share. */
typedef void (*tpool_fn)(void *arg, int ith, int nth);

/* A pool of n threads in total (n - 1 workers started here; n <= 1: none). 0, or
 * -EINVAL / -ENOMEM / -errno of pthread_create. */
int tpool_new(int n, tpool_t **out);
/* Stop and join the workers. NULL is fine. */
void tpool_free(tpool_t *p);
/* Threads in the pool (1 for NULL). */
int tpool_size(const tpool_t *p);
/* Run fn on every thread of the pool and wait for all (NULL pool: fn(arg, 0, 1)). */
void tpool_run(tpool_t *p, tpool_fn fn, void *arg);

#endif
