/* sched.h — the engine thread: a bounded FIFO of generation jobs, continuous batching of the running sequences over a pool of KV slots, and per-worker mailboxes that carry output back to the HTTP loops. */
#ifndef TOLLGATE_ENGINE_SCHED_H
#define TOLLGATE_ENGINE_SCHED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "engine/generate.h"

/* Threads: the forward pass is CPU work, so it never runs on an HTTP loop thread. One
 * engine thread owns the model's run state and steps the running sequences; loop threads
 * submit jobs and receive their output through their worker's mailbox (a lock and a
 * wakeup). The running set is a list so that continuous batching can step several
 * sequences per iteration later; today it holds one (one forward state). */

typedef struct sched sched_t;

#define SCHED_DEFAULT_MAX_SEQS 8

/* Called on the engine thread after output was posted for `worker` (e.g. httpd_wakeup). */
typedef void (*sched_wake_fn)(int worker, void *arg);

/* One generation request. The loop thread allocates it (usually embedded in its request
 * context), fills the "in" fields and calls sched_submit; it owns the memory and frees it
 * only after it has seen `done` in sched_drain AND its client is finished or gone. */
typedef struct sched_job {
    /* in: set before sched_submit, read-only afterwards */
    int32_t *prompt;     /* n_prompt ids, owned by the submitter */
    int n_prompt;
    gen_params_t gp;     /* stop strings must live as long as the job */
    int worker;          /* mailbox that receives the output */
    uint64_t arrival_ns; /* monotonic (ev_clock_ns) time the request arrived, for metrics */
    atomic_int cancel;   /* set by the loop thread (client gone); the engine drops the job */

    /* engine -> loop: guarded by the worker's mailbox lock */
    buf_t out_text;        /* text not yet collected */
    gen_token_t *out_toks; /* tokens not yet collected (when logprobs are wanted) */
    int n_out_toks, cap_out_toks;
    int posted_done;       /* the engine is finished with the job */
    int in_mailbox;
    struct sched_job *mb_next;

    /* written once by the engine under the mailbox lock just before posted_done; read
     * by the loop thread only after sched_drain has set `done` */
    gen_finish_t finish;
    int error;             /* 0, or negative errno: -ECANCELED, -E2BIG, -EINVAL, -ENOMEM */
    int n_gen;             /* completion tokens (usage) */

    /* loop side, filled by sched_drain: what arrived since the last drain */
    buf_t text;            /* new text; the consumer resets it */
    gen_token_t *toks;     /* new tokens; the consumer sets n_toks = 0 */
    int n_toks, cap_toks;
    int done;              /* final: finish, error and n_gen are valid */
    struct sched_job *ready_next; /* loop-private list link during sched_drain */

    /* engine-private */
    struct sched_job *q_next;
} sched_job_t;

/* Metric children the scheduler updates (any may be NULL). */
typedef struct sched_metrics {
    metrics_child_t *running;        /* gauge: sequences being generated */
    metrics_child_t *waiting;        /* gauge: jobs in the queue */
    metrics_child_t *ttft;           /* histogram, seconds: arrival -> first token */
    metrics_child_t *tpot;           /* histogram, seconds: between output tokens */
    metrics_child_t *e2e;            /* histogram, seconds: arrival -> last token */
    metrics_child_t *prompt_tokens;  /* counter */
    metrics_child_t *gen_tokens;     /* counter */
    metrics_child_t *success_stop;   /* counter: finished with "stop" */
    metrics_child_t *success_length; /* counter: finished with "length" */
    metrics_child_t *queue_time;     /* histogram, seconds: arrival -> admitted to run */
    metrics_child_t *kv_usage;       /* gauge, 0..1: KV slots held by running sequences */
    metrics_child_t *kv_usage2;      /* the same value under a second name */
    metrics_child_t *prefix_queries; /* counter: prompt tokens looked up in the prefix cache */
    metrics_child_t *prefix_hits;    /* counter: prompt tokens found there (not computed) */
} sched_metrics_t;

typedef struct sched_config {
    int n_workers;        /* mailboxes: one per HTTP worker */
    int max_queue;        /* waiting jobs beyond which sched_submit refuses */
    int prefill_chunk;    /* tokens per engine step, decode and prompt rows together (0: 32;
                           * raised to max_seqs): bounds a step's time, hence how long
                           * decodes wait behind a prompt being prefilled */
    int max_seqs;         /* sequences running at once (0: SCHED_DEFAULT_MAX_SEQS) */
    size_t kv_bytes;      /* KV cache memory for all slots (0: max_seqs full-context slots);
                           * fewer slots than max_seqs lower the running limit */
    int threads;          /* compute threads of the forward pass (a tpool; <= 0: 2) */
    sched_wake_fn wake;
    void *wake_arg;
    sched_metrics_t metrics;
} sched_config_t;

/* Mailboxes and queue only; no thread yet. 0, -EINVAL, -ENOMEM. */
int sched_new(const sched_config_t *cfg, sched_t **out);
/* Start the engine thread on a loaded model (borrowed until sched_free). n_ctx as in
 * forward_state_new. 0 or negative errno: -ENOSPC when kv_bytes holds no slot of n_ctx
 * positions (forward_kv_bytes says what one needs). */
int sched_start(sched_t *s, const model_t *m, const tokenizer_t *tok, int n_ctx);
/* Stop the engine thread: the running and queued jobs end with -ECANCELED (posted to
 * their mailboxes, so a final sched_drain hands them back). Then join. */
void sched_stop(sched_t *s);
/* After sched_stop and after every loop thread is gone. NULL is fine. */
void sched_free(sched_t *s);

/* Initialise / release a job's buffers (the submitter does both). */
void sched_job_init(sched_job_t *j);
void sched_job_release(sched_job_t *j);

/* Queue a job (FIFO). 0, -EAGAIN when max_queue jobs are waiting, -ESHUTDOWN after stop,
 * -EINVAL when not started. Thread-safe. */
int sched_submit(sched_t *s, sched_job_t *j);
/* Loop thread of `worker`: move everything posted for its jobs into their loop-side
 * fields, then call cb(job, arg) for each job that received something, outside the lock.
 * cb may free the job once job->done is set. */
void sched_drain(sched_t *s, int worker, void (*cb)(sched_job_t *j, void *arg), void *arg);

/* Jobs queued / running, for /metrics and /health. */
int sched_waiting(const sched_t *s);
int sched_running(const sched_t *s);
int sched_n_ctx(const sched_t *s);
/* KV slots (after sched_start): sequences that can run at once is min(max_seqs, slots). */
int sched_kv_slots(const sched_t *s);

#endif
