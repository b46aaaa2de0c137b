/* sim.c — the simulated upstream: routes, admission (max_seqs + queue), token timing, faults, metrics. */
#define _GNU_SOURCE
#include "sim/sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "core/metrics.h"
#include "sim/sim_gen.h"

#define SIM_MAX_WORKERS 256
#define SIM_JSON_TOKS   65536 /* per worker: the largest request body the simulator reads */
#define SIM_MODEL_LEN   4096  /* max_model_len reported */

typedef struct sim_worker sim_worker_t;

enum { B_NORMAL, B_RESET, B_STALL };

/* One generation in flight. Pooled per worker with its buffers, so a request
 * allocates nothing once the pool is warm. */
typedef struct sim_req {
    sim_worker_t *w;
    httpd_req_t *hr;
    ev_timer_t timer;
    sim_gen_req_t g;
    buf_t echo;            /* echo mode: the text whose words are replayed */
    size_t echo_pos;
    buf_t out;             /* SSE chunks being written / the full JSON body */
    buf_t text;            /* non-streaming: the completion so far */
    sim_knobs_t k;         /* snapshot at arrival */
    uint64_t rng;          /* words */
    uint32_t n_target, n_done, prompt_tokens;
    int finish_length;     /* stopped by max_tokens */
    int behaviour;         /* B_* */
    uint32_t first_ms;     /* delay before the first token */
    int queued, admitted, first_sent;
    uint64_t t_arrive, t_admit, t_last;
    char id[48];
    int64_t created;
    struct sim_req *prev, *next; /* waiting queue, or the free list */
} sim_req_t;

struct sim_worker {
    sim_t *s;
    int idx;
    ev_loop_t *loop;
    json_tok_t *toks;      /* SIM_JSON_TOKS */
    buf_t scratch;         /* bodies of the small endpoints */
    sim_req_t *pool;
    sim_req_t *qhead, *qtail; /* waiting for a slot, FIFO */
    atomic_int nqueued;    /* read by other workers deciding whom to wake */
    ev_timer_t pump;       /* admits waiters from the loop, never inside a callback */
    uint64_t rng;          /* fault rolls, jitter, unseeded words */
    unsigned knobs_gen;
    uint64_t nextid;
};

struct sim {
    pthread_mutex_t lock;  /* guards knobs */
    sim_knobs_t knobs;
    atomic_uint knobs_gen;
    char model[SIM_GEN_MODEL_MAX];
    int64_t started;
    httpd_t *httpd;
    atomic_int running;    /* admitted generations, all workers */
    atomic_int waiting;
    sim_worker_t *_Atomic workers[SIM_MAX_WORKERS]; /* set once by each worker's init */
    metrics_registry_t *reg;
    metrics_child_t *m_ttft, *m_tpot, *m_e2e, *m_queue, *m_ptok_h, *m_gtok_h;
    metrics_child_t *m_ptok, *m_gtok, *m_ok_stop, *m_ok_length, *m_running, *m_waiting, *m_cache;
    metrics_family_t *f_injected;
};

static void req_step(ev_loop_t *loop, void *arg);

/* ---- knobs ---- */

static void knobs_get(sim_t *s, sim_knobs_t *k) {
    pthread_mutex_lock(&s->lock);
    *k = s->knobs;
    pthread_mutex_unlock(&s->lock);
}

static uint32_t jitter(sim_worker_t *w, uint32_t base, uint32_t j) {
    if (!j)
        return base;
    int64_t d = (int64_t)(sim_gen_rand(&w->rng) % (2ull * j + 1)) - j;
    int64_t v = (int64_t)base + d;
    return v < 0 ? 0 : (uint32_t)v;
}

static double roll(sim_worker_t *w) {
    return (double)(sim_gen_rand(&w->rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- admission ---- */

static int try_admit(sim_t *s, uint32_t max_seqs) {
    int cur = atomic_load(&s->running);
    for (;;) {
        if (max_seqs && cur >= (int)max_seqs)
            return 0;
        if (atomic_compare_exchange_weak(&s->running, &cur, cur + 1))
            return 1;
    }
}

static void q_remove(sim_worker_t *w, sim_req_t *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        w->qhead = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        w->qtail = r->prev;
    r->prev = r->next = NULL;
    r->queued = 0;
    atomic_fetch_sub(&w->nqueued, 1);
    atomic_fetch_sub(&w->s->waiting, 1);
}

static void req_start(sim_req_t *r);

static void pump_cb(ev_loop_t *loop, void *arg) {
    sim_worker_t *w = arg;
    (void)loop;
    sim_knobs_t k;
    knobs_get(w->s, &k);
    while (w->qhead && try_admit(w->s, k.max_seqs)) {
        sim_req_t *r = w->qhead;
        q_remove(w, r);
        req_start(r);
    }
}

/* A slot was freed: let this worker's waiters in (from the loop, so that no
 * request starts inside another's callback) and wake the others that wait. */
static void slot_free(sim_worker_t *w) {
    sim_t *s = w->s;
    atomic_fetch_sub(&s->running, 1);
    if (!atomic_load(&s->waiting))
        return;
    if (w->qhead)
        ev_timer_start(w->loop, &w->pump, 0, pump_cb, w);
    for (int i = 0; i < SIM_MAX_WORKERS && s->workers[i]; i++)
        if (s->workers[i] != w && atomic_load(&s->workers[i]->nqueued) && s->httpd)
            httpd_wakeup(s->httpd, i);
}

static void on_wakeup(int worker, void *data, void *arg) {
    sim_worker_t *w = data;
    (void)worker;
    (void)arg;
    if (w && w->qhead)
        ev_timer_start(w->loop, &w->pump, 0, pump_cb, w);
}

/* ---- request pool ---- */

static sim_req_t *req_get(sim_worker_t *w) {
    sim_req_t *r = w->pool;
    if (r) {
        w->pool = r->next;
    } else {
        r = calloc(1, sizeof *r);
        if (!r)
            return NULL;
        ev_timer_init(&r->timer);
        r->w = w;
    }
    r->prev = r->next = NULL;
    r->queued = r->admitted = r->first_sent = 0;
    r->n_done = 0;
    r->echo_pos = 0;
    buf_reset(&r->out);
    buf_reset(&r->text);
    return r;
}

static void req_put(sim_req_t *r) {
    sim_worker_t *w = r->w;
    ev_timer_stop(w->loop, &r->timer);
    if (r->queued)
        q_remove(w, r);
    if (r->admitted) {
        r->admitted = 0;
        slot_free(w);
    }
    r->hr = NULL;
    r->next = w->pool;
    w->pool = r;
}

static void req_on_close(httpd_req_t *hr, void *arg) {
    (void)hr;
    req_put(arg); /* the client left: stop generating, give the slot back */
}

/* ---- generation ---- */

static double secs(uint64_t ns) {
    return (double)ns / 1e9;
}

/* The i-th generated token's text (with its leading space after the first). */
static size_t next_token(sim_req_t *r, char *tok, size_t cap) {
    const char *word;
    size_t wl;
    if (r->k.output == SIM_OUT_ECHO) {
        size_t start;
        wl = sim_gen_next_word(r->echo.data, r->echo.len, &r->echo_pos, &start);
        word = r->echo.data + start;
    } else {
        word = sim_gen_word(&r->rng);
        wl = strlen(word);
    }
    if (wl + 2 > cap)
        wl = cap - 2;
    size_t n = 0;
    if (r->n_done)
        tok[n++] = ' ';
    memcpy(tok + n, word, wl);
    return n + wl;
}

static void req_finish(sim_req_t *r) {
    sim_t *s = r->w->s;
    const char *finish = r->finish_length ? "length" : "stop";
    sim_gen_out_t o = {&r->g, r->id, r->created};
    uint64_t now = ev_now_ns(r->w->loop);
    metrics_observe(s->m_e2e, secs(now - r->t_arrive));
    metrics_observe(s->m_ptok_h, r->prompt_tokens);
    metrics_observe(s->m_gtok_h, r->n_done);
    metrics_add(s->m_ptok, r->prompt_tokens);
    metrics_add(s->m_gtok, r->n_done);
    metrics_inc(r->finish_length ? s->m_ok_length : s->m_ok_stop);
    httpd_req_t *hr = r->hr;
    if (r->g.stream) {
        sim_gen_chunk(&r->out, &o, SIM_CHUNK_FINISH, NULL, 0, finish, 0, 0);
        if (r->g.include_usage)
            sim_gen_chunk(&r->out, &o, SIM_CHUNK_USAGE, NULL, 0, NULL, r->prompt_tokens, r->n_done);
        buf_appends(&r->out, "data: [DONE]\n\n");
        httpd_stream_write(hr, r->out.data, r->out.len);
        req_put(r); /* before ending: the slot is free once the answer is complete */
        httpd_stream_end(hr);
    } else {
        buf_reset(&r->out);
        sim_gen_full(&r->out, &o, r->text.data ? r->text.data : "", r->text.len, finish,
                     r->prompt_tokens, r->n_done);
        req_put(r);
        /* r is back in the pool but untouched until this worker's next request. */
        httpd_respond(hr, 200, "application/json", r->out.data, r->out.len);
    }
}

/* First token: the TTFT moment; faults that strike there. 1 when r is done with. */
static int req_first(sim_req_t *r) {
    sim_t *s = r->w->s;
    uint64_t now = ev_now_ns(r->w->loop);
    r->first_sent = 1;
    r->t_last = now;
    metrics_observe(s->m_ttft, secs(now - r->t_arrive));
    if (r->behaviour == B_STALL) {
        /* Head (and for streams the role chunk) sent, then silence until the client leaves. */
        if (r->g.stream && r->g.chat) {
            sim_gen_out_t o = {&r->g, r->id, r->created};
            sim_gen_chunk(&r->out, &o, SIM_CHUNK_ROLE, NULL, 0, NULL, 0, 0);
            httpd_stream_write(r->hr, r->out.data, r->out.len);
            buf_reset(&r->out);
        }
        return 1;
    }
    if (r->behaviour == B_RESET && !r->g.stream) {
        httpd_req_t *hr = r->hr;
        req_put(r);
        httpd_abort(hr);
        return 1;
    }
    return 0;
}

/* Produce the next token(s): all that are due now (with itl 0, the rest). */
static void req_step(ev_loop_t *loop, void *arg) {
    sim_req_t *r = arg;
    (void)loop;
    if (!r->first_sent && req_first(r))
        return;
    sim_gen_out_t o = {&r->g, r->id, r->created};
    uint64_t now = ev_now_ns(r->w->loop);
    char tok[96];
    for (;;) {
        if (r->n_done >= r->n_target) {
            if (r->g.stream && r->g.chat && r->n_done == 0) /* nothing to say: still the role */
                sim_gen_chunk(&r->out, &o, SIM_CHUNK_ROLE, NULL, 0, NULL, 0, 0);
            req_finish(r);
            return;
        }
        size_t n = next_token(r, tok, sizeof tok);
        if (r->n_done)
            metrics_observe(r->w->s->m_tpot, secs(now - r->t_last));
        r->t_last = now;
        if (r->g.stream && r->g.chat && r->n_done == 0) /* OpenAI: the role comes first, alone */
            sim_gen_chunk(&r->out, &o, SIM_CHUNK_ROLE, NULL, 0, NULL, 0, 0);
        if (r->g.stream)
            sim_gen_chunk(&r->out, &o, SIM_CHUNK_TEXT, tok, n, NULL, 0, 0);
        else
            buf_append(&r->text, tok, n);
        r->n_done++;
        if (r->behaviour == B_RESET) {
            /* Reset after the first content chunk: the client has begun to read a stream. */
            httpd_req_t *hr = r->hr;
            httpd_stream_write(hr, r->out.data, r->out.len);
            req_put(r);
            httpd_abort(hr);
            return;
        }
        if (r->n_done < r->n_target && (r->k.itl_ms || r->k.itl_jitter_ms)) {
            ev_timer_start(r->w->loop, &r->timer, jitter(r->w, r->k.itl_ms, r->k.itl_jitter_ms),
                           req_step, r);
            break;
        }
    }
    if (r->g.stream && r->out.len) {
        long rc = httpd_stream_write(r->hr, r->out.data, r->out.len);
        buf_reset(&r->out);
        (void)rc; /* < 0: the client is gone and on_close will return r to the pool */
    }
}

/* Admitted: send the stream head and schedule the first token. */
static void req_start(sim_req_t *r) {
    sim_t *s = r->w->s;
    r->admitted = 1;
    r->t_admit = ev_now_ns(r->w->loop);
    metrics_observe(s->m_queue, secs(r->t_admit - r->t_arrive));
    if (r->g.stream) {
        httpd_add_header(r->hr, "Cache-Control", "no-cache");
        httpd_stream_begin(r->hr, 200, "text/event-stream");
    }
    if (r->first_ms)
        ev_timer_start(r->w->loop, &r->timer, r->first_ms, req_step, r);
    else
        req_step(r->w->loop, r);
}

static void count_injected(sim_t *s, const char *kind) {
    metrics_child_t *c = metrics_labels(s->f_injected, kind);
    if (c)
        metrics_inc(c);
}

/* x-sim-fail: 429|500|503|reset|stall|slow:<ms>. Returns the status to fail
 * with (0 none), sets behaviour / first-token delay; -1 for a bad value. */
static int forced(const char *h, sim_req_t *r) {
    if (!strcmp(h, "429") || !strcmp(h, "500") || !strcmp(h, "503"))
        return atoi(h);
    if (!strcmp(h, "reset")) {
        r->behaviour = B_RESET;
        return 0;
    }
    if (!strcmp(h, "stall")) {
        r->behaviour = B_STALL;
        return 0;
    }
    if (!strncmp(h, "slow:", 5)) {
        char *end;
        long ms = strtol(h + 5, &end, 10);
        if (*end || end == h + 5 || ms < 0 || ms > 3600000)
            return -1;
        r->first_ms = (uint32_t)ms;
        return 0;
    }
    return -1;
}

static void fail_status(httpd_req_t *hr, int status) {
    if (status == 429) {
        httpd_add_header(hr, "Retry-After", "1");
        httpd_error_ex(hr, 429, "rate_limit_error", "Simulated rate limit: too many requests.",
                       NULL, "rate_limit_exceeded");
    } else if (status == 503) {
        httpd_error(hr, 503, "server_error", "Simulated overload: the server is busy.");
    } else {
        httpd_error(hr, 500, "server_error", "Simulated internal error.");
    }
}

static void handle_generate(sim_worker_t *w, httpd_req_t *hr, int chat) {
    sim_t *s = w->s;
    sim_req_t *r = req_get(w);
    if (!r) {
        httpd_error(hr, 503, "server_error", "out of memory");
        return;
    }
    unsigned gen = atomic_load(&s->knobs_gen);
    knobs_get(s, &r->k);
    if (gen != w->knobs_gen) { /* a new seed takes effect on every worker */
        w->knobs_gen = gen;
        w->rng = r->k.seed * 0x9e3779b97f4a7c15ull + (uint64_t)w->idx;
    }
    size_t blen;
    const char *body = httpd_req_body(hr, &blen);
    char err[256], param[64];
    if (sim_gen_parse(body, blen, chat, w->toks, SIM_JSON_TOKS, &r->g,
                      r->k.output == SIM_OUT_ECHO ? &r->echo : NULL, err, sizeof err, param,
                      sizeof param) < 0) {
        req_put(r);
        httpd_error_ex(hr, 400, "invalid_request_error", err, param[0] ? param : NULL, NULL);
        return;
    }
    r->hr = hr;
    r->behaviour = B_NORMAL;
    r->first_ms = jitter(w, r->k.ttft_ms, r->k.ttft_jitter_ms);
    int status = 0;
    const char *fh = httpd_req_header(hr, "x-sim-fail");
    if (fh) {
        status = forced(fh, r);
        if (status < 0) {
            req_put(r);
            httpd_error_ex(hr, 400, "invalid_request_error",
                           "x-sim-fail must be 429, 500, 503, reset, stall or slow:<ms>",
                           "x-sim-fail", NULL);
            return;
        }
    } else if (r->k.fail_rate > 0 && roll(w) < r->k.fail_rate) {
        static const int mix[] = {429, 500, 503};
        status = mix[sim_gen_rand(&w->rng) % 3];
    } else if (r->k.reset_rate > 0 && roll(w) < r->k.reset_rate) {
        r->behaviour = B_RESET;
    } else if (r->k.stall_rate > 0 && roll(w) < r->k.stall_rate) {
        r->behaviour = B_STALL;
    }
    if (status) {
        char kind[8];
        snprintf(kind, sizeof kind, "%d", status);
        count_injected(s, kind);
        req_put(r);
        fail_status(hr, status);
        return;
    }
    if (r->behaviour != B_NORMAL)
        count_injected(s, r->behaviour == B_RESET ? "reset" : "stall");

    /* How many tokens, and whether max_tokens cut it short. */
    uint32_t natural;
    if (r->k.output == SIM_OUT_ECHO) {
        natural = 0;
        size_t pos = 0, st;
        while (sim_gen_next_word(r->echo.data, r->echo.len, &pos, &st))
            natural++;
    } else if (r->k.output == SIM_OUT_RANDOM) {
        uint64_t bound = r->g.max_tokens > 0 ? (uint64_t)r->g.max_tokens : r->k.output_tokens;
        natural = bound ? (uint32_t)(1 + sim_gen_rand(&w->rng) % bound) : 0;
    } else {
        natural = r->k.output_tokens;
    }
    r->n_target = natural;
    r->finish_length = 0;
    if (r->g.max_tokens > 0 && (int64_t)natural >= r->g.max_tokens) {
        r->n_target = (uint32_t)r->g.max_tokens;
        r->finish_length = 1;
    }
    r->prompt_tokens = sim_gen_prompt_tokens(&r->g);
    r->rng = r->g.has_seed ? (r->g.seed ^ (r->k.seed * 0x9e3779b97f4a7c15ull))
                           : sim_gen_rand(&w->rng);
    r->t_arrive = httpd_req_start_ns(hr);
    r->created = (int64_t)time(NULL);
    snprintf(r->id, sizeof r->id, "%s-sim%02x%012llx", chat ? "chatcmpl" : "cmpl", w->idx,
             (unsigned long long)++w->nextid);
    httpd_req_on_close(hr, req_on_close, r);

    if (try_admit(s, r->k.max_seqs)) {
        req_start(r);
        return;
    }
    if ((uint32_t)atomic_load(&s->waiting) >= r->k.max_queue) {
        req_put(r);
        httpd_error(hr, 503, "server_error", "The simulator's waiting queue is full.");
        return;
    }
    r->queued = 1;
    r->prev = w->qtail;
    if (w->qtail)
        w->qtail->next = r;
    else
        w->qhead = r;
    w->qtail = r;
    atomic_fetch_add(&w->nqueued, 1);
    atomic_fetch_add(&s->waiting, 1);
    /* A slot may have been freed between try_admit and the enqueue: look again
     * (from the loop, not inside this handler). */
    ev_timer_start(w->loop, &w->pump, 0, pump_cb, w);
}

/* ---- small endpoints ---- */

static void handle_models(sim_worker_t *w, httpd_req_t *hr) {
    buf_t *b = &w->scratch;
    buf_reset(b);
    json_w_t j;
    json_w_init(&j, b);
    json_w_obj_begin(&j);
    json_w_key(&j, "object");
    json_w_str(&j, "list");
    json_w_key(&j, "data");
    json_w_arr_begin(&j);
    json_w_obj_begin(&j);
    json_w_key(&j, "id");
    json_w_str(&j, w->s->model);
    json_w_key(&j, "object");
    json_w_str(&j, "model");
    json_w_key(&j, "created");
    json_w_i64(&j, w->s->started);
    json_w_key(&j, "owned_by");
    json_w_str(&j, "tollgate-sim");
    json_w_key(&j, "root");
    json_w_str(&j, w->s->model);
    json_w_key(&j, "parent");
    json_w_null(&j);
    json_w_key(&j, "max_model_len");
    json_w_i64(&j, SIM_MODEL_LEN);
    json_w_obj_end(&j);
    json_w_arr_end(&j);
    json_w_obj_end(&j);
    httpd_respond(hr, 200, "application/json", b->data, b->len);
}

/* llama.cpp's {"content": ...} (or vLLM's {"prompt": ...}) -> {"tokens": [...]}: one made-up
 * id per 4 bytes, the same estimate the completions' usage reports. */
static void handle_tokenize(sim_worker_t *w, httpd_req_t *hr) {
    size_t blen;
    const char *body = httpd_req_body(hr, &blen);
    json_doc_t d;
    if (json_parse(body, blen, w->toks, SIM_JSON_TOKS, 16, &d, NULL) < 0 ||
        w->toks[0].type != JSON_OBJECT) {
        httpd_error(hr, 400, "invalid_request_error", "expected a JSON object with \"content\"");
        return;
    }
    int c = json_obj_get(&d, 0, "content");
    if (c < 0)
        c = json_obj_get(&d, 0, "prompt");
    if (c < 0 || w->toks[c].type != JSON_STRING) {
        httpd_error_ex(hr, 400, "invalid_request_error", "\"content\" must be a string", "content",
                       NULL);
        return;
    }
    buf_t *b = &w->scratch;
    buf_reset(b);
    size_t tlen = w->toks[c].end - w->toks[c].start;
    const unsigned char *t = (const unsigned char *)body + w->toks[c].start;
    json_w_t j;
    json_w_init(&j, b);
    json_w_obj_begin(&j);
    json_w_key(&j, "tokens");
    json_w_arr_begin(&j);
    size_t count = 0;
    for (size_t i = 0; i < tlen; i += 4, count++) {
        uint32_t h = 2166136261u; /* FNV-1a of the 4-byte piece: stable ids */
        for (size_t k = i; k < i + 4 && k < tlen; k++)
            h = (h ^ t[k]) * 16777619u;
        json_w_i64(&j, 3 + h % 31997);
    }
    json_w_arr_end(&j);
    json_w_key(&j, "count");
    json_w_i64(&j, (int64_t)count);
    json_w_key(&j, "max_model_len");
    json_w_i64(&j, SIM_MODEL_LEN);
    json_w_obj_end(&j);
    httpd_respond(hr, 200, "application/json", b->data, b->len);
}

static void handle_config(sim_worker_t *w, httpd_req_t *hr, int post) {
    sim_t *s = w->s;
    sim_knobs_t k;
    if (post) {
        size_t blen;
        const char *body = httpd_req_body(hr, &blen);
        char err[160];
        pthread_mutex_lock(&s->lock);
        int rc = sim_knobs_update(&s->knobs, body, blen, err, sizeof err);
        if (rc == 0)
            atomic_fetch_add(&s->knobs_gen, 1);
        k = s->knobs;
        pthread_mutex_unlock(&s->lock);
        if (rc < 0) {
            httpd_error(hr, 400, "invalid_request_error", err);
            return;
        }
        /* A larger max_seqs may let waiters in now. */
        for (int i = 0; i < SIM_MAX_WORKERS && s->workers[i]; i++)
            if (atomic_load(&s->workers[i]->nqueued) && s->httpd)
                httpd_wakeup(s->httpd, i);
    } else {
        knobs_get(s, &k);
    }
    buf_reset(&w->scratch);
    sim_knobs_json(&k, &w->scratch);
    httpd_respond(hr, 200, "application/json", w->scratch.data, w->scratch.len);
}

static void handle_metrics(sim_worker_t *w, httpd_req_t *hr) {
    buf_reset(&w->scratch);
    metrics_render(w->s->reg, &w->scratch);
    httpd_respond(hr, 200, "text/plain; version=0.0.4; charset=utf-8", w->scratch.data,
                  w->scratch.len);
}

/* ---- routing ---- */

enum { R_CHAT, R_COMPL, R_MODELS, R_TOKENIZE, R_HEALTH, R_METRICS, R_CONFIG };

static const struct route {
    const char *path;
    int id;
    const char *allow; /* methods, as in the Allow header */
} routes[] = {
    {"/v1/chat/completions", R_CHAT, "POST"},
    {"/v1/completions", R_COMPL, "POST"},
    {"/v1/models", R_MODELS, "GET"},
    {"/tokenize", R_TOKENIZE, "POST"},
    {"/health", R_HEALTH, "GET"},
    {"/metrics", R_METRICS, "GET"},
    {"/sim/config", R_CONFIG, "GET, POST"},
};

static void handler(httpd_req_t *hr, void *arg) {
    (void)arg;
    sim_worker_t *w = httpd_req_worker_data(hr);
    const char *path = httpd_req_path(hr);
    const char *m = httpd_req_method(hr);
    const struct route *rt = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(path, routes[i].path))
            rt = &routes[i];
    if (!rt) {
        char msg[160];
        snprintf(msg, sizeof msg, "Unknown path: %.100s", path);
        httpd_error_ex(hr, 404, "invalid_request_error", msg, NULL, "unknown_url");
        return;
    }
    int post = !strcmp(m, "POST");
    int ok = strstr(rt->allow, m) != NULL && (post || !strcmp(m, "GET"));
    if (!ok) {
        httpd_add_header(hr, "Allow", rt->allow);
        char msg[160];
        snprintf(msg, sizeof msg, "Method %.16s not allowed on %s (allowed: %s)", m, rt->path,
                 rt->allow);
        httpd_error(hr, 405, "invalid_request_error", msg);
        return;
    }
    switch (rt->id) {
    case R_CHAT:
        handle_generate(w, hr, 1);
        return;
    case R_COMPL:
        handle_generate(w, hr, 0);
        return;
    case R_MODELS:
        handle_models(w, hr);
        return;
    case R_TOKENIZE:
        handle_tokenize(w, hr);
        return;
    case R_HEALTH:
        httpd_respond(hr, 200, "application/json", "{\"status\":\"ok\"}", 15);
        return;
    case R_METRICS:
        handle_metrics(w, hr);
        return;
    default:
        handle_config(w, hr, post);
        return;
    }
}

/* ---- workers ---- */

static void *worker_init(int idx, ev_loop_t *loop, void *arg) {
    sim_t *s = arg;
    if (idx >= SIM_MAX_WORKERS)
        return NULL;
    sim_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->toks = malloc(SIM_JSON_TOKS * sizeof *w->toks);
    if (!w->toks) {
        free(w);
        return NULL;
    }
    w->s = s;
    w->idx = idx;
    w->loop = loop;
    ev_timer_init(&w->pump);
    w->knobs_gen = (unsigned)-1; /* seed the rng on the first request */
    s->workers[idx] = w;
    return w;
}

static void worker_fini(int idx, void *data, void *arg) {
    sim_worker_t *w = data;
    (void)idx;
    (void)arg;
    if (!w)
        return;
    ev_timer_stop(w->loop, &w->pump);
    sim_req_t *r = w->pool;
    while (r) {
        sim_req_t *next = r->next;
        buf_free(&r->echo);
        buf_free(&r->out);
        buf_free(&r->text);
        free(r);
        r = next;
    }
    buf_free(&w->scratch);
    free(w->toks);
    /* The slot stays set (workers[] is read by others without a lock) until sim_free. */
    w->pool = NULL;
}

static double gauge_running(void *arg) {
    return atomic_load(&((sim_t *)arg)->running);
}
static double gauge_waiting(void *arg) {
    return atomic_load(&((sim_t *)arg)->waiting);
}
/* A stand-in for KV-cache use: the share of max_seqs in use (0 when unlimited). */
static double gauge_cache(void *arg) {
    sim_t *s = arg;
    sim_knobs_t k;
    knobs_get(s, &k);
    return k.max_seqs ? (double)atomic_load(&s->running) / k.max_seqs : 0.0;
}

/* ---- life cycle ---- */

static const double b_ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0};
static const double b_tpot[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                0.3,  0.4,   0.5,  0.75,  1.0, 2.5};
static const double b_e2e[] = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                               30.0, 40.0, 50.0, 60.0};
static const double b_toks[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
#define NB(a) (sizeof(a) / sizeof(a)[0])

static int setup_metrics(sim_t *s) {
    metrics_registry_t *r = s->reg;
    static const char *const lm[] = {"model_name", NULL};
    static const char *const lmf[] = {"model_name", "finished_reason", NULL};
    static const char *const lk[] = {"kind", NULL};
    const char *model = s->model;
    metrics_family_t *f;
#define CHILD(dst, fam)                          \
    do {                                         \
        if (!(f = (fam)))                        \
            return -ENOMEM;                      \
        if (!((dst) = metrics_labels(f, model))) \
            return -ENOMEM;                      \
    } while (0)
    CHILD(s->m_running, metrics_gauge(r, "vllm:num_requests_running",
                                      "Number of requests currently generating.", lm));
    metrics_child_set_fn(s->m_running, gauge_running, s);
    CHILD(s->m_waiting, metrics_gauge(r, "vllm:num_requests_waiting",
                                      "Number of requests waiting for a slot.", lm));
    metrics_child_set_fn(s->m_waiting, gauge_waiting, s);
    CHILD(s->m_cache, metrics_gauge(r, "vllm:gpu_cache_usage_perc",
                                    "Simulated KV-cache usage: running / max_seqs (1 = 100%).", lm));
    metrics_child_set_fn(s->m_cache, gauge_cache, s);
    CHILD(s->m_ttft, metrics_histogram(r, "vllm:time_to_first_token_seconds",
                                       "Histogram of time to first token in seconds.", lm, b_ttft,
                                       NB(b_ttft)));
    CHILD(s->m_tpot, metrics_histogram(r, "vllm:time_per_output_token_seconds",
                                       "Histogram of time per output token in seconds.", lm,
                                       b_tpot, NB(b_tpot)));
    CHILD(s->m_e2e, metrics_histogram(r, "vllm:e2e_request_latency_seconds",
                                      "Histogram of end to end request latency in seconds.", lm,
                                      b_e2e, NB(b_e2e)));
    CHILD(s->m_queue, metrics_histogram(r, "vllm:request_queue_time_seconds",
                                        "Histogram of time spent waiting for a slot in seconds.",
                                        lm, b_ttft, NB(b_ttft)));
    CHILD(s->m_ptok_h, metrics_histogram(r, "vllm:request_prompt_tokens",
                                         "Number of prefill tokens processed.", lm, b_toks,
                                         NB(b_toks)));
    CHILD(s->m_gtok_h, metrics_histogram(r, "vllm:request_generation_tokens",
                                         "Number of generation tokens processed.", lm, b_toks,
                                         NB(b_toks)));
    CHILD(s->m_ptok, metrics_counter(r, "vllm:prompt_tokens_total",
                                     "Number of prefill tokens processed.", lm));
    CHILD(s->m_gtok, metrics_counter(r, "vllm:generation_tokens_total",
                                     "Number of generation tokens processed.", lm));
#undef CHILD
    f = metrics_counter(r, "vllm:request_success_total", "Count of successfully processed requests.",
                        lmf);
    if (!f || !(s->m_ok_stop = metrics_labels(f, model, "stop")) ||
        !(s->m_ok_length = metrics_labels(f, model, "length")))
        return -ENOMEM;
    s->f_injected = metrics_counter(r, "tollgate_sim_injected_faults_total",
                                    "Faults the simulator injected, by kind.", lk);
    return s->f_injected ? 0 : -ENOMEM;
}

int sim_new(const sim_knobs_t *k, const char *model, sim_t **out) {
    sim_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    s->knobs = *k;
    snprintf(s->model, sizeof s->model, "%s", model && *model ? model : "tollgate-sim");
    s->started = (int64_t)time(NULL);
    s->reg = metrics_registry_new();
    int rc = s->reg ? setup_metrics(s) : -ENOMEM;
    if (rc < 0) {
        sim_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void sim_httpd_setup(sim_t *s, httpd_config_t *cfg) {
    cfg->handler = handler;
    cfg->handler_arg = s;
    cfg->worker_init = worker_init;
    cfg->worker_fini = worker_fini;
    cfg->on_wakeup = on_wakeup;
    cfg->worker_arg = s;
}

void sim_attach(sim_t *s, httpd_t *h) {
    s->httpd = h;
}

void sim_free(sim_t *s) {
    if (!s)
        return;
    for (int i = 0; i < SIM_MAX_WORKERS; i++)
        free(s->workers[i]);
    if (s->reg)
        metrics_registry_free(s->reg);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
