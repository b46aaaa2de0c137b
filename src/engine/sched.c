/* sched.c — the engine thread, its job queue and the mailboxes back to the HTTP loops. */
#include "engine/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/ev.h"
#include "engine/kvcache.h"
#include "engine/threadpool.h"

/* Output on its way to one worker's loop. Lock order: sched.mu before mailbox.mu. */
typedef struct mailbox {
    pthread_mutex_t mu;
    sched_job_t *head, *tail; /* jobs with output not yet drained */
} mailbox_t;

/* A running sequence (engine thread only). */
typedef struct seq {
    sched_job_t *job;     /* NULL once ended (removed at the end of the step) */
    gen_t g;
    int inited;           /* g is set up and must be freed */
    int slot;             /* KV slot, -1 before it has one */
    fwd_kv_t *kv;
    int prompt_numerics;  /* prompt rows take the multi-token prompt numerics (n_prompt > 1) */
    int fresh;            /* admitted this step, not set up yet */
    int n_rows;           /* rows fed in the current step */
    int logit_row;        /* its row of the step's logits, -1 for none */
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
    kv_pool_t kv;
    int n_ctx;
    int max_run;             /* min(max_seqs, KV slots) */
    int step_tokens;         /* rows per forward_batch */
    seq_t *run;              /* (max_run) admission order, dense */
    int n_run;               /* entries in run, ended ones included until the step's end */
    int n_live;              /* entries still running */
    fwd_row_t *rows;         /* (step_tokens) */
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
    if (s->cfg.prefill_chunk <= 0) s->cfg.prefill_chunk = FORWARD_BATCH;
    if (s->cfg.max_seqs <= 0) s->cfg.max_seqs = SCHED_DEFAULT_MAX_SEQS;
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

static void kv_gauge(sched_t *s) {
    double v = s->kv.n_slots ? (double)s->kv.n_used / s->kv.n_slots : 0.0;
    gauge(s->cfg.metrics.kv_usage, v);
    gauge(s->cfg.metrics.kv_usage2, v);
}

/* Finish a running sequence (any reason) and post its final state; its slot is free for
 * the next step (its prompt rows stay for the prefix cache). The running gauge drops
 * before the client can see its answer. */
static void end_seq(sched_t *s, seq_t *q, int error) {
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
    if (q->slot >= 0) kv_pool_release(&s->kv, q->slot);
    q->slot = -1;
    q->job = NULL;
    s->n_live--;
    atomic_store(&s->n_running, s->n_live);
    gauge(s->cfg.metrics.running, s->n_live);
    kv_gauge(s);
    post(s, j, NULL, 0, NULL, 1, f, error, n_gen);
}

/* Set up a newly admitted sequence: its generation state and a KV slot, reusing the
 * longest cached prefix of its prompt. 1 when it runs, 0 when it ended (bad request). */
static int start_seq(sched_t *s, seq_t *q) {
    sched_job_t *j = q->job;
    q->fresh = 0;
    observe(s->cfg.metrics.queue_time, (double)(ev_clock_ns() - j->arrival_ns) / 1e9);
    int rc = gen_init_seq(&q->g, s->m, s->tok, s->n_ctx, j->prompt, j->n_prompt, &j->gp);
    if (rc) {
        end_seq(s, q, rc);
        return 0;
    }
    q->inited = 1;
    q->last_tok_ns = 0;
    q->prompt_numerics = j->n_prompt > 1;
    int reused = 0;
    q->slot = kv_pool_acquire(&s->kv, j->prompt, j->n_prompt, &reused);
    if (q->slot < 0) { /* cannot happen: max_run <= slots */
        end_seq(s, q, -ENOSPC);
        return 0;
    }
    q->kv = &s->kv.slots[q->slot].kv;
    kv_gauge(s);
    if (reused) gen_fed(&q->g, reused, NULL);
    add(s->cfg.metrics.prompt_tokens, j->n_prompt);
    add(s->cfg.metrics.prefix_queries, j->n_prompt);
    add(s->cfg.metrics.prefix_hits, reused);
    return 1;
}

/* Sample from the logits a sequence just got and post what came out. */
static void sample_seq(sched_t *s, seq_t *q) {
    sched_job_t *j = q->job;
    buf_reset(&q->piece);
    gen_out_t o = {.text = &q->piece};
    int before = q->g.n_gen;
    int rc = gen_sample(&q->g, &o);
    if (q->g.n_gen > before) {
        uint64_t now = ev_clock_ns();
        add(s->cfg.metrics.gen_tokens, 1.0);
        if (!q->last_tok_ns) observe(s->cfg.metrics.ttft, (double)(now - j->arrival_ns) / 1e9);
        else observe(s->cfg.metrics.tpot, (double)(now - q->last_tok_ns) / 1e9);
        q->last_tok_ns = now;
    }
    const gen_token_t *tok = o.has_token && j->gp.sp.want_logprobs ? &o.tok : NULL;
    if (q->piece.len || tok) post(s, j, q->piece.data, q->piece.len, tok, 0, GEN_RUNNING, 0, 0);
    if (rc != 1) end_seq(s, q, rc < 0 ? rc : 0);
}

static int decoding(const seq_t *q) {
    return q->g.n_past >= q->g.n_prompt;
}

static void add_row(sched_t *s, int *nr, int *nl, seq_t *q, int32_t token, int pos, int prompt,
                    int want_logits) {
    s->rows[*nr] = (fwd_row_t){.token = token, .pos = pos, .kv = q->kv, .prompt = prompt,
                               .want_logits = want_logits};
    (*nr)++;
    q->n_rows++;
    if (want_logits) q->logit_row = (*nl)++;
}

/* One engine step over the running sequences: build the batch (decode-numerics rows
 * first, as forward_batch wants), run it, hand each sequence its logits and sample. */
static void step_all(sched_t *s) {
    int nr = 0, nl = 0;
    for (int i = 0; i < s->n_run; i++) {
        seq_t *q = &s->run[i];
        if (!q->job) continue;
        if (atomic_load(&q->job->cancel)) {
            end_seq(s, q, -ECANCELED);
            continue;
        }
        q->n_rows = 0;
        q->logit_row = -1;
        if (decoding(q)) add_row(s, &nr, &nl, q, q->g.next, q->g.n_past, 0, 1);
        else if (!q->prompt_numerics) /* a one-token prompt runs as a decode token */
            add_row(s, &nr, &nl, q, q->g.prompt[0], 0, 0, 1);
    }
    /* prompt chunks in admission order with what the decodes left of the budget (at
     * least one token: the budget is >= max_seqs) */
    for (int i = 0; i < s->n_run && nr < s->step_tokens; i++) {
        seq_t *q = &s->run[i];
        if (!q->job || decoding(q) || !q->prompt_numerics) continue;
        int n = q->g.n_prompt - q->g.n_past;
        if (n > s->step_tokens - nr) n = s->step_tokens - nr;
        for (int t = 0; t < n; t++) {
            int pos = q->g.n_past + t;
            add_row(s, &nr, &nl, q, q->g.prompt[pos], pos, 1, pos == q->g.n_prompt - 1);
        }
    }
    if (!nr) return;
    int rc = forward_batch(s->m, s->fs, s->rows, nr);
    size_t V = (size_t)s->m->hp.n_vocab;
    for (int i = 0; i < s->n_run; i++) {
        seq_t *q = &s->run[i];
        if (!q->job || !q->n_rows) continue;
        if (rc) {
            end_seq(s, q, rc);
            continue;
        }
        if (!decoding(q) && q->prompt_numerics)
            for (int t = 0; t < q->n_rows; t++)
                kv_pool_note_prompt_row(&s->kv, q->slot, q->g.n_past + t, q->g.prompt[q->g.n_past + t]);
        gen_fed(&q->g, q->n_rows, q->logit_row >= 0 ? s->fs->logits + (size_t)q->logit_row * V : NULL);
        if (q->logit_row >= 0) sample_seq(s, q);
    }
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

/* Drop ended entries, keeping admission order (the prefill order). */
static void compact(sched_t *s) {
    int k = 0;
    for (int i = 0; i < s->n_run; i++) {
        if (!s->run[i].job) continue;
        if (k != i) {
            buf_t keep = s->run[k].piece; /* each entry keeps its own buffer */
            s->run[k] = s->run[i];
            s->run[i].piece = keep;
            s->run[i].job = NULL;
        }
        k++;
    }
    s->n_run = k;
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
        /* new requests join at this step; a slot per running sequence */
        while (s->n_run < s->max_run && s->qhead) {
            seq_t *q = &s->run[s->n_run++];
            q->job = pop(s);
            q->fresh = 1;
            q->slot = -1;
            q->inited = 0;
            s->n_live++;
        }
        atomic_store(&s->n_running, s->n_live);
        gauge(s->cfg.metrics.running, s->n_live);
        pthread_mutex_unlock(&s->mu);

        for (int i = 0; i < s->n_run; i++)
            if (s->run[i].job && s->run[i].fresh) start_seq(s, &s->run[i]);
        step_all(s);
        compact(s);
    }
    for (int i = 0; i < s->n_run; i++)
        if (s->run[i].job) end_seq(s, &s->run[i], -ECANCELED);
    s->n_run = 0;
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
    if (n_ctx <= 0) n_ctx = m->hp.n_ctx_train;
    if (n_ctx <= 0 || n_ctx > (1 << 22)) return -EINVAL;
    int slots = kv_pool_slots_for(&m->hp, n_ctx, s->cfg.kv_bytes, s->cfg.max_seqs);
    if (slots <= 0) return -ENOSPC;
    s->max_run = slots < s->cfg.max_seqs ? slots : s->cfg.max_seqs;
    s->step_tokens = s->cfg.prefill_chunk > s->max_run ? s->cfg.prefill_chunk : s->max_run;
    int rc = kv_pool_init(&s->kv, &m->hp, n_ctx, slots);
    if (rc) return rc;
    if ((rc = forward_state_new_batch(m, n_ctx, s->step_tokens, s->max_run, 0, &s->fs))) return rc;
    if ((rc = tpool_new(s->cfg.threads > 0 ? s->cfg.threads : 2, &s->pool))) return rc;
    s->run = calloc((size_t)s->max_run, sizeof *s->run);
    s->rows = calloc((size_t)s->step_tokens, sizeof *s->rows);
    if (!s->run || !s->rows) return -ENOMEM;
    s->fs->pool = s->pool;
    /* One throwaway decode step before the engine takes requests: the first pass over
     * the weights faults in every page of the file mapping in this process (0.7-1.3 s
     * for a 7B file here, docs/engine.md), which would otherwise land on the first
     * request's time to first token. It writes position 0 of slot 0, which is not
     * offered for reuse (only noted prompt rows are) and is overwritten by the slot's
     * first sequence. */
    fwd_row_t warm = {.token = 0, .pos = 0, .kv = &s->kv.slots[0].kv, .prompt = 0, .want_logits = 1};
    if ((rc = forward_batch(m, s->fs, &warm, 1))) return rc;
    s->m = m;
    s->tok = tok;
    s->n_ctx = n_ctx;
    for (int i = 0; i < s->max_run; i++) {
        buf_init(&s->run[i].piece);
        s->run[i].slot = -1;
    }
    kv_gauge(s);
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
    if (s->run)
        for (int i = 0; i < s->max_run; i++) buf_free(&s->run[i].piece);
    free(s->run);
    free(s->rows);
    kv_pool_free(&s->kv);
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

int sched_kv_slots(const sched_t *s) {
    return s->kv.n_slots;
}
