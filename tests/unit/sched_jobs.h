/* sched_jobs.h — the scheduler tests' jobs: a sched_job_t that collects its text and token count and notes when it finished, and a wait that drains the mailboxes. */
#ifndef TOLLGATE_TESTS_SCHED_JOBS_H
#define TOLLGATE_TESTS_SCHED_JOBS_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/ev.h"
#include "engine/sched.h"
#include "model/tokenizer.h"

typedef struct job {
    sched_job_t j; /* first */
    buf_t text;    /* everything delivered */
    int n_toks;
    int done;
    int order;     /* completion order */
} job_t;

static int finished; /* jobs seen done so far, in the order the drains saw them */

static inline void deliver(sched_job_t *sj, void *arg) {
    job_t *j = (job_t *)sj;
    (void)arg;
    buf_append(&j->text, sj->text.data, sj->text.len);
    buf_reset(&sj->text);
    j->n_toks += sj->n_toks;
    sj->n_toks = 0;
    if (sj->done && !j->done) {
        j->done = 1;
        j->order = finished++;
    }
}

static inline void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Drain workers 0..n_workers-1 every 1 ms until every job in js is done (or ~60 s: a hang
 * fails the test's checks instead of stalling it). Polling that often sees completions in
 * the engine's order (one token takes several ms). *max_running, when not NULL: the most
 * sequences seen running. */
static inline void wait_jobs(sched_t *s, int n_workers, job_t **js, int n, int *max_running) {
    for (int tries = 0; tries < 60000; tries++) {
        for (int w = 0; w < n_workers; w++) sched_drain(s, w, deliver, NULL);
        if (max_running && sched_running(s) > *max_running) *max_running = sched_running(s);
        int all = 1;
        for (int i = 0; i < n; i++) all &= js[i]->done;
        if (all) return;
        sleep_ms(1);
    }
}

/* A greedy job (top_p 1, logprobs wanted) for `worker`: the prompt encoded with BOS into
 * at most `cap` ids. */
static inline job_t *job_new(const tokenizer_t *t, const char *prompt, int max_tokens, int worker, int cap) {
    job_t *j = calloc(1, sizeof *j);
    sched_job_init(&j->j);
    buf_init(&j->text);
    j->j.prompt = malloc((size_t)cap * sizeof(int32_t));
    j->j.n_prompt = tok_encode(t, prompt, strlen(prompt), 1, 0, j->j.prompt, cap);
    j->j.gp.max_tokens = max_tokens;
    j->j.gp.sp.top_p = 1.0f;
    j->j.gp.sp.want_logprobs = 1;
    j->j.worker = worker;
    j->j.arrival_ns = ev_clock_ns();
    return j;
}

static inline void free_job(job_t *j) {
    free(j->j.prompt);
    sched_job_release(&j->j);
    buf_free(&j->text);
    free(j);
}

#endif
