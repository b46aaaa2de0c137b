/* sim_run.c — the simulator's generation: admission (max_seqs + queue), token timing, faults. */
#define _GNU_SOURCE
#include "sim/sim_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void req_step(ev_loop_t *loop, void *arg);

/* ---- knobs ---- */

void sim_run_knobs(sim_t *s, sim_knobs_t *k) {
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
    sim_run_knobs(w->s, &k);
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

void sim_run_wakeup(sim_worker_t *w) {
    if (w->qhead)
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

void sim_run_generate(sim_worker_t *w, httpd_req_t *hr, int chat) {
    sim_t *s = w->s;
    sim_req_t *r = req_get(w);
    if (!r) {
        httpd_error(hr, 503, "server_error", "out of memory");
        return;
    }
    unsigned gen = atomic_load(&s->knobs_gen);
    sim_run_knobs(s, &r->k);
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
