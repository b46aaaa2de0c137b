/* test_sched.c — the engine thread one sequence at a time (max_seqs 1): FIFO order, output through mailboxes, queue bound, cancellation, stop. Batching: test_sched_batch.c. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "sched_jobs.h"
#include "core/ev.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/sched.h"
#include "model/tokenizer.h"

/* The wakeups, counted per worker (the engine calls wake on its own thread). */
static atomic_int wakes[2];

/* A job to cancel from the engine's own thread at its worker's next wakeup (the job's
 * first output): cancellation mid-generation without depending on how fast tokens come. */
static sched_job_t *_Atomic cancel_at_wake;

/* While hold_engine is set, the engine thread stops in its next wakeup (engine_held
 * tells the test it is there): the queue can then be filled while a job is certainly
 * running, however fast the engine would have finished it. */
static atomic_int hold_engine, engine_held;

static void wake(int worker, void *arg) {
    (void)arg;
    atomic_fetch_add(&wakes[worker], 1);
    sched_job_t *j = atomic_load(&cancel_at_wake);
    if (j && j->worker == worker) atomic_store(&j->cancel, 1);
    if (atomic_load(&hold_engine)) {
        atomic_store(&engine_held, 1);
        while (atomic_load(&hold_engine)) sleep_ms(1);
        atomic_store(&engine_held, 0);
    }
}

static void wait_all(sched_t *s, job_t **js, int n) { wait_jobs(s, 2, js, n, NULL); }

static job_t *new_job(const tokenizer_t *t, const char *prompt, int max_tokens, int worker) {
    return job_new(t, prompt, max_tokens, worker, 64);
}

int main(void) {
    const char *ref = getenv("TOLLGATE_REF");
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/models/llama-tiny-Q8_0.gguf", ref && *ref ? ref : "../shared/ref");
    model_t m;
    tokenizer_t *tok = NULL;
    if (model_load(path, &m, err, sizeof err) || tok_load(&m.file, &tok, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", path, err);
        CHECK(0);
        return check_summary("test_sched");
    }
    metrics_registry_t *reg = metrics_registry_new();
    metrics_family_t *gen = metrics_counter(reg, "gen_total", "x", NULL);
    metrics_family_t *ok = metrics_counter(reg, "ok_total", "x", NULL);
    sched_config_t cfg = {.n_workers = 2, .max_queue = 2, .wake = wake, .prefill_chunk = 2, .max_seqs = 1};
    cfg.metrics.gen_tokens = metrics_child(gen, NULL);
    cfg.metrics.success_length = metrics_child(ok, NULL);
    sched_t *s;
    CHECK_EQ_INT(sched_new(&cfg, &s), 0);
    job_t *early = new_job(tok, "Hello", 4, 0);
    CHECK_EQ_INT(sched_submit(s, &early->j), -EINVAL); /* not started */
    CHECK_EQ_INT(sched_start(s, &m, tok, 64), 0);
    CHECK_EQ_INT(sched_n_ctx(s), 64);

    /* FIFO: three jobs on two workers; the queue holds 2, the engine takes one at once */
    job_t *a = new_job(tok, "Once upon a time", 24, 0);
    job_t *b = new_job(tok, "The capital of France is", 8, 1);
    job_t *c = new_job(tok, "1 2 3 4 5", 8, 0);
    atomic_store(&hold_engine, 1); /* the engine stops at a's first output */
    CHECK_EQ_INT(sched_submit(s, &a->j), 0);
    while (!atomic_load(&engine_held)) sleep_ms(1);
    CHECK_EQ_INT(sched_running(s), 1); /* a runs; b and c fill the queue */
    CHECK_EQ_INT(sched_submit(s, &b->j), 0);
    CHECK_EQ_INT(sched_submit(s, &c->j), 0);
    job_t *d = new_job(tok, "Hello", 4, 0);
    int rc = sched_submit(s, &d->j);
    CHECK_EQ_INT(rc, -EAGAIN); /* full: 2 waiting */
    CHECK_EQ_INT(sched_waiting(s), 2);
    atomic_store(&hold_engine, 0);
    job_t *abc[] = {a, b, c};
    wait_all(s, abc, 3);
    CHECK(a->done && b->done && c->done);
    CHECK_EQ_INT(a->order, 0);
    CHECK_EQ_INT(b->order, 1);
    CHECK_EQ_INT(c->order, 2);
    CHECK(atomic_load(&wakes[0]) > 0 && atomic_load(&wakes[1]) > 0);
    CHECK_EQ_INT(a->j.error, 0);
    CHECK_EQ_INT(a->j.finish, GEN_FINISH_LENGTH);
    CHECK_EQ_INT(a->j.n_gen, 24);
    CHECK_EQ_INT(a->n_toks, 24);
    CHECK_EQ_STR(a->text.data, " followґ Must Junior HamburgけRootk neu3 complaроеким Errrache overflow "
                               "Width floorбар мало».Planполоdru"); /* the reference's greedy text */
    CHECK_EQ_INT(b->j.n_gen, 8);
    CHECK_EQ_INT(sched_running(s), 0);
    CHECK_EQ_INT(sched_waiting(s), 0);
    CHECK_EQ_INT(metrics_value(cfg.metrics.gen_tokens), 24 + 8 + 8);
    CHECK_EQ_INT(metrics_value(cfg.metrics.success_length), 3);

    /* a prompt that does not fit: the engine refuses it with -E2BIG */
    job_t *big = new_job(tok, "The quick brown fox jumps over the lazy dog.", 4, 0);
    for (int i = 0; i < 64; i++) big->j.prompt[i] = 450;
    big->j.n_prompt = 64;
    CHECK_EQ_INT(sched_submit(s, &big->j), 0);
    job_t *bigs[] = {big};
    wait_all(s, bigs, 1);
    CHECK_EQ_INT(big->j.error, -E2BIG);

    /* cancellation: a long job cancelled after it started ends early with -ECANCELED */
    job_t *x = new_job(tok, "Once upon a time", 50, 1);
    atomic_store(&cancel_at_wake, &x->j);
    CHECK_EQ_INT(sched_submit(s, &x->j), 0);
    job_t *xs[] = {x};
    wait_all(s, xs, 1);
    atomic_store(&cancel_at_wake, NULL);
    CHECK_EQ_INT(x->j.error, -ECANCELED);
    CHECK(x->j.n_gen >= 1 && x->j.n_gen < 50);

    /* stop with work queued: every job comes back done and cancelled */
    job_t *y = new_job(tok, "Once upon a time", 50, 0);
    job_t *z = new_job(tok, "Hello", 50, 0);
    CHECK_EQ_INT(sched_submit(s, &y->j), 0);
    CHECK_EQ_INT(sched_submit(s, &z->j), 0);
    sched_stop(s);
    sched_drain(s, 0, deliver, NULL);
    CHECK(y->done && z->done);
    CHECK_EQ_INT(z->j.error, -ECANCELED);
    CHECK(y->j.error == -ECANCELED || y->j.error == 0);
    CHECK_EQ_INT(sched_submit(s, &d->j), -ESHUTDOWN);

    sched_free(s);
    job_t *all[] = {early, a, b, c, d, big, x, y, z};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free_job(all[i]);
    metrics_registry_free(reg);
    tok_free(tok);
    model_free(&m);
    return check_summary("test_sched");
}
