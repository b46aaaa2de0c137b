/* threadpool.h — a persistent pool of worker threads that run one function on every thread at once (fork-join, no thread creation per call). */
#ifndef TOLLGATE_ENGINE_THREADPOOL_H
#define TOLLGATE_ENGINE_THREADPOOL_H

/* Threads: tpool_run is called from one thread at a time (the pool's owner, e.g. the
 * engine thread); it runs fn on the caller (ith 0) and on every worker that arrives
 * before the caller has finished its own call of fn, and returns when all of those have
 * returned. So fn must claim its work dynamically (an atomic counter over chunks): on a
 * busy machine a descheduled worker then costs nothing, where a static split would make
 * every product wait for it. Between calls the workers spin briefly, then sleep on a
 * condition variable. The pool shares only fn, arg, a generation counter, the last
 * closed generation and the count of workers inside fn (its mutex / seq_cst atomics). */

typedef struct tpool tpool_t;

/* fn(arg, ith): ith in 0..n-1 names the thread (for per-thread scratch); fn claims
 * chunks of the shared work until none is left. */
typedef void (*tpool_fn)(void *arg, int ith);

/* A pool of n threads in total (n - 1 workers started here; n <= 1: none). 0, or
 * -EINVAL / -ENOMEM / -errno of pthread_create. */
int tpool_new(int n, tpool_t **out);
/* Stop and join the workers. NULL is fine. */
void tpool_free(tpool_t *p);
/* Threads in the pool (1 for NULL). */
int tpool_size(const tpool_t *p);
/* Run fn on the caller and on the workers that join in time, and wait for all of them
 * (NULL pool: fn(arg, 0)). */
void tpool_run(tpool_t *p, tpool_fn fn, void *arg);

#endif
