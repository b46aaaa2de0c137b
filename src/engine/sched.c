/* sched.c — the engine thread, its job queue and the mailboxes back to the HTTP loops. */
#include "engine/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/ev.h"
#include "engine/threadpool.h"

#define SCHED_MAX_RUNNING 1 /* one forward state today; batching raises this */

/* Output on its way to one worker's loop. Lock order: sched.mu before mailbox.mu. */
typedef struct mailbox {
    pthread_mutex_t mu;
    sched_job_t *head, *tail; /* jobs with output not yet drained */
} mailbox_t;

/* A running sequence (engine thread only). */
typedef struct seq {
    sched_job_t *job;
    gen_t g;
    int inited;           /* g is set up and must be freed */
    uint64_t last_tok_ns; /* time of the previous output token, 0 before the first */
    buf_t piece;          /* text of the current step */
} seq_t;

struct sched {
    sched_config_t cfg;
    mailbox_t *mb;           /* (n_workers) */
    pthread_mutex_t mu;      /* guards the queue, stopping, started */
    pthread_cond_t cv;       /* a job arrived or stop was asked */
    sched_job_t *qhead, *qtail;
    int nq;
    int stopping, started;
    atomic_int n_running;    /* readable without the lock (metrics, health) */
    atomic_int n_waiting;
    pthread_t thread;
    /* engine thread only, after sched_start */
    const model_t *m;
    const tokenizer_t *tok;
    forward_state_t *fs;
    tpool_t *pool;           /* compute threads; used by the engine thread only */
    int n_ctx;
    seq_t run[SCHED_MAX_RUNNING];
    int n_run;
};

static void gauge(metrics_child_t *c, double v) {
    if (c) metrics_set(c, v);
}
static void observe(metrics_child_t *c, double v) {
    if (c) metrics_observe(c, v);
}
static void add(metrics_child_t *c, double v) {
    if (c) metrics_add(c, v);
}

int sched_new(const sched_config_t *cfg, sched_t **out) {
    if (!cfg || cfg->n_workers <= 0 || cfg->max_queue < 0) return -EINVAL;
    sched_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->mb = calloc((size_t)cfg->n_workers, sizeof *s->mb);
    if (!s->mb) {
        free(s);
        return -ENOMEM;
    }
    s->cfg = *cfg;
    if (s->cfg.prefill_chunk <= 0) s->cfg.prefill_chunk = 32;
    for (int i = 0; i < cfg->n_workers; i++) pthread_mutex_init(&s->mb[i].mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    *out = s;
    return 0;
}

void sched_job_init(sched_job_t *j) {
    memset(j, 0, sizeof *j);
    buf_init(&j->out_text);
    buf_init(&j->text);
}

void sched_job_release(sched_job_t *j) {
    buf_free(&j->out_text);
    buf_free(&j->text);
    free(j->out_toks);
    free(j->toks);
    j->out_toks = j->toks = NULL;
}

static int push_tok(gen_token_t **arr, int *n, int *cap, const gen_token_t *t) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        gen_token_t *p = realloc(*arr, (size_t)nc * sizeof *p);
        if (!p) return -ENOMEM;
        *arr = p;
        *cap = nc;
    }
    (*arr)[(*n)++] = *t;
    return 0;
}

/* Hand output to the job's loop. With done, the job is the loop's alone afterwards: not
 * one field of it may be touched after the unlock. */
static void post(sched_t *s, sched_job_t *j, const char *text, size_t len, const gen_token_t *tok,
                 int done, gen_finish_t finish, int error, int n_gen) {
    int worker = j->worker;
    mailbox_t *mb = &s->mb[worker];
    pthread_mutex_lock(&mb->mu);
    int rc = 0;
    if (len) rc |= buf_append(&j->out_text, text, len);
    if (tok) rc |= push_tok(&j->out_toks, &j->n_out_toks, &j->cap_out_toks, tok);
    if (rc && !done) { /* lost output: end the job rather than send a gap */
        atomic_store(&j->cancel, 1);
    }
    if (done) {
        j->finish = finish;
        j->error = error ? error : rc ? -ENOMEM : 0;
        j->n_gen = n_gen;
        j->posted_done = 1;
    }
    int wake = mb->head == NULL;
    if (!j->in_mailbox) {
        j->in_mailbox = 1;
        j->mb_next = NULL;
        if (mb->tail) mb->tail->mb_next = j;
        else mb->head = j;
        mb->tail = j;
    }
    pthread_mutex_unlock(&mb->mu);
    if (wake && s->cfg.wake) s->cfg.wake(worker, s->cfg.wake_arg);
}

/* Finish a running sequence (any reason) and post its final state. `left` sequences run
 * on: the gauge drops before the client can see its answer. */
static void end_seq(sched_t *s, seq_t *q, int error, int left) {
    sched_job_t *j = q->job;
    gen_finish_t f = q->inited ? q->g.finish : GEN_RUNNING;
    int n_gen = q->inited ? q->g.n_gen : 0;
    if (!error && f != GEN_RUNNING) {
        observe(s->cfg.metrics.e2e, (double)(ev_clock_ns() - j->arrival_ns) / 1e9);
        add(f == GEN_FINISH_STOP ? s->cfg.metrics.success_stop : s->cfg.metrics.success_length,
            1.0);
    }
    if (q->inited) gen_free(&q->g);
    q->inited = 0;
    q->job = NULL;
    atomic_store(&s->n_running, left);
    gauge(s->cfg.metrics.running, left);
    post(s, j, NULL, 0, NULL, 1, f, error, n_gen);
}

/* One unit of work for a sequence: a prefill chunk or one token. 1 while it runs on. */
static int step(sched_t *s, seq_t *q) {
    sched_job_t *j = q->job;
    if (atomic_load(&j->cancel)) {
        end_seq(s, q, -ECANCELED, s->n_run - 1);
        return 0;
    }
    if (!q->inited) {
        int rc = gen_init(&q->g, s->m, s->tok, s->fs, j->prompt, j->n_prompt, &j->gp);
        if (rc) {
            end_seq(s, q, rc, s->n_run - 1);
            return 0;
        }
        q->inited = 1;
        q->last_tok_ns = 0;
        add(s->cfg.metrics.prompt_tokens, j->n_prompt);
    }
    if (q->g.n_past < q->g.n_prompt) {
        int rc = gen_prefill(&q->g, s->cfg.prefill_chunk);
        if (rc < 0) end_seq(s, q, rc, s->n_run - 1);
        return rc >= 0;
    }
    buf_reset(&q->piece);
    gen_out_t o = {.text = &q->piece};
    int before = q->g.n_gen;
    int rc = gen_step(&q->g, &o);
    if (q->g.n_gen > before) {
        uint64_t now = ev_clock_ns();
        add(s->cfg.metrics.gen_tokens, 1.0);
        if (!q->last_tok_ns) observe(s->cfg.metrics.ttft, (double)(now - j->arrival_ns) / 1e9);
        else observe(s->cfg.metrics.tpot, (double)(now - q->last_tok_ns) / 1e9);
        q->last_tok_ns = now;
    }
    const gen_token_t *tok = o.has_token && j->gp.sp.want_logprobs ? &o.tok : NULL;
    if (rc == 1) {
        post(s, j, q->piece.data, q->piece.len, tok, 0, GEN_RUNNING, 0, 0);
        return 1;
    }
    if (q->piece.len || tok) post(s, j, q->piece.data, q->piece.len, tok, 0, GEN_RUNNING, 0, 0);
    end_seq(s, q, rc < 0 ? rc : 0, s->n_run - 1);
    return 0;
}

static sched_job_t *pop(sched_t *s) {
    sched_job_t *j = s->qhead;
    if (j) {
        s->qhead = j->q_next;
        if (!s->qhead) s->qtail = NULL;
        s->nq--;
        atomic_store(&s->n_waiting, s->nq);
        gauge(s->cfg.metrics.waiting, s->nq);
    }
    return j;
}

static void *engine_main(void *arg) {
    sched_t *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && !s->qhead && s->n_run == 0) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        while (s->n_run < SCHED_MAX_RUNNING && s->qhead) {
            seq_t *q = &s->run[s->n_run++];
            q->job = pop(s);
        }
        atomic_store(&s->n_running, s->n_run);
        gauge(s->cfg.metrics.running, s->n_run);
        pthread_mutex_unlock(&s->mu);

        for (int i = 0; i < s->n_run;) {
            if (step(s, &s->run[i])) {
                i++;
                continue;
            }
            /* keep the running list dense; the state of a finished entry is gone */
            seq_t done = s->run[i];
            s->run[i] = s->run[--s->n_run];
            s->run[s->n_run] = done;
            atomic_store(&s->n_running, s->n_run);
            gauge(s->cfg.metrics.running, s->n_run);
        }
    }
    while (s->n_run > 0) {
        s->n_run--;
        end_seq(s, &s->run[s->n_run], -ECANCELED, s->n_run);
    }
    atomic_store(&s->n_running, 0);
    pthread_mutex_lock(&s->mu);
    sched_job_t *j, *list = NULL, **tail = &list;
    while ((j = pop(s))) {
        *tail = j;
        tail = &j->q_next;
    }
    *tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        j = list;
        list = j->q_next;
        post(s, j, NULL, 0, NULL, 1, GEN_RUNNING, -ECANCELED, 0);
    }
    return NULL;
}

int sched_start(sched_t *s, const model_t *m, const tokenizer_t *tok, int n_ctx) {
    int rc = forward_state_new(m, n_ctx, &s->fs);
    if (rc) return rc;
    if ((rc = tpool_new(s->cfg.threads > 0 ? s->cfg.threads : 2, &s->pool))) return rc;
    s->fs->pool = s->pool;
    s->m = m;
    s->tok = tok;
    s->n_ctx = s->fs->n_ctx;
    for (int i = 0; i < SCHED_MAX_RUNNING; i++) buf_init(&s->run[i].piece);
    pthread_mutex_lock(&s->mu);
    rc = -pthread_create(&s->thread, NULL, engine_main, s);
    if (!rc) s->started = 1;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void sched_stop(sched_t *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    int was = s->started && !s->stopping;
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (was) pthread_join(s->thread, NULL);
}

void sched_free(sched_t *s) {
    if (!s) return;
    sched_stop(s);
    for (int i = 0; i < s->cfg.n_workers; i++) pthread_mutex_destroy(&s->mb[i].mu);
    for (int i = 0; i < SCHED_MAX_RUNNING; i++) buf_free(&s->run[i].piece);
    forward_state_free(s->fs);
    tpool_free(s->pool);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->mb);
    free(s);
}

int sched_submit(sched_t *s, sched_job_t *j) {
    if (j->worker < 0 || j->worker >= s->cfg.n_workers) return -EINVAL;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (!s->started) rc = -EINVAL;
    else if (s->stopping) rc = -ESHUTDOWN;
    else if (s->nq >= s->cfg.max_queue) rc = -EAGAIN;
    if (!rc) {
        j->q_next = NULL;
        if (s->qtail) s->qtail->q_next = j;
        else s->qhead = j;
        s->qtail = j;
        s->nq++;
        atomic_store(&s->n_waiting, s->nq);
        gauge(s->cfg.metrics.waiting, s->nq);
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void sched_drain(sched_t *s, int worker, void (*cb)(sched_job_t *j, void *arg), void *arg) {
    if (worker < 0 || worker >= s->cfg.n_workers) return;
    mailbox_t *mb = &s->mb[worker];
    sched_job_t *ready = NULL, **tail = &ready;
    pthread_mutex_lock(&mb->mu);
    for (sched_job_t *j = mb->head; j; j = j->mb_next) {
        j->in_mailbox = 0;
        if (j->out_text.len) {
            if (buf_append(&j->text, j->out_text.data, j->out_text.len) == 0)
                buf_reset(&j->out_text);
        }
        for (int i = 0; i < j->n_out_toks; i++)
            if (push_tok(&j->toks, &j->n_toks, &j->cap_toks, &j->out_toks[i])) break;
        j->n_out_toks = 0;
        if (j->posted_done) j->done = 1;
        *tail = j;
        tail = &j->ready_next;
    }
    *tail = NULL;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->mu);
    while (ready) {
        sched_job_t *j = ready;
        ready = j->ready_next;
        cb(j, arg);
    }
}

int sched_waiting(const sched_t *s) {
    return atomic_load(&((sched_t *)s)->n_waiting);
}

int sched_running(const sched_t *s) {
    return atomic_load(&((sched_t *)s)->n_running);
}

int sched_n_ctx(const sched_t *s) {
    return s->n_ctx;
}
