/* proxy_worker.c — a worker thread's proxy side: its config snapshot, upstream connection
 * pools, JSON scratch, counters and the free list of requests (no allocation when steady). */
#include "gateway/proxy_req.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "gateway/proxy_admit.h"
#include "gateway/task.h"

#define TOKS_INITIAL 4096
#define TOKS_MAX (1u << 20)
#define KEEP_BYTES (256u * 1024) /* request buffers larger than this are freed on reuse */

proxy_worker_t *proxy_worker_new(gateway_t *gw, int idx, ev_loop_t *loop) {
    proxy_worker_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->gw = gw;
    w->idx = idx;
    w->loop = loop;
    w->rnd = 0x9e3779b9u ^ (uint32_t)(idx * 7919 + 1) ^ (uint32_t)ev_clock_ns();
    if (!w->rnd) w->rnd = 1;
    w->ntoks = TOKS_INITIAL;
    w->toks = malloc(w->ntoks * sizeof *w->toks);
    buf_init(&w->scratch);
    w->tcw = tokcount_work_new();
    if (!w->toks || !w->tcw) {
        tokcount_work_free(w->tcw);
        free(w->toks);
        free(w);
        return NULL;
    }
    w->snap = gateway_acquire(gw);
    w->gen = w->snap->generation;
    /* Without it (no memory) requests are served but not measured. */
    w->obs = obs_worker_new(gateway_obs(gw), w->rnd);
    obs_worker_generation(w->obs, w->gen);
    /* Redis is a start-up setting: the worker keeps the connection it made here. */
    gov_cfg_t *gc = w->snap->cfg.gov;
    if (gc && gc->redis_host && gov_shared_new(loop, gateway_gov(gw), gc, idx, &w->shared) < 0)
        log_warn("cannot set up the redis client: limits stay local", LOG_INT("worker", idx));
    return w;
}

void proxy_worker_free(proxy_worker_t *w) {
    if (!w) return;
    while (w->gates) {
        wgate_t *g = w->gates;
        w->gates = g->next;
        ev_timer_stop(w->loop, &g->timer);
        fairq_gate_free(&g->g);
        free(g);
    }
    /* Admissions waiting for Redis are dropped first: their requests go with the pools. */
    gov_shared_free(w->shared);
    w->shared = NULL;
    /* Freeing a pool cancels its requests: their on_done releases the preqs. */
    for (size_t i = 0; i < w->npools; i++) httpc_pool_free(w->pools[i]);
    free(w->pools);
    task_worker_free(w->tasks); /* after the pools: their cancelled tasks came back to it */
    while (w->free) {
        preq_t *p = w->free;
        w->free = p->next;
        buf_free(&p->body);
        buf_free(&p->hdrs);
        buf_free(&p->resp);
        buf_free(&p->cap);
        free(p);
    }
    obs_worker_free(w->obs);
    snapshot_unref(w->snap);
    buf_free(&w->scratch);
    tokcount_work_free(w->tcw);
    free(w->toks);
    free(w);
}

void proxy_worker_stats(proxy_worker_t *w, gateway_stats_t *acc) {
    acc->requests += atomic_load_explicit(&w->c.requests, memory_order_relaxed);
    acc->errors += atomic_load_explicit(&w->c.errors, memory_order_relaxed);
    acc->retries += atomic_load_explicit(&w->c.retries, memory_order_relaxed);
    acc->client_cancels += atomic_load_explicit(&w->c.client_cancels, memory_order_relaxed);
    acc->prompt_tokens += atomic_load_explicit(&w->c.prompt_tokens, memory_order_relaxed);
    acc->completion_tokens += atomic_load_explicit(&w->c.completion_tokens, memory_order_relaxed);
}

void proxy_refresh(proxy_worker_t *w) {
    if (gateway_generation(w->gw) == w->gen) return;
    snapshot_t *s = gateway_acquire(w->gw);
    snapshot_unref(w->snap);
    w->snap = s;
    w->gen = s->generation;
    obs_worker_generation(w->obs, w->gen); /* label strings moved: forget cached children */
}

httpc_pool_t *proxy_worker_pool(proxy_worker_t *w, pool_addr_t *a, const gw_backend_cfg_t *b) {
    if (a->id >= w->npools) {
        size_t n = a->id + 8;
        httpc_pool_t **np = realloc(w->pools, n * sizeof *np);
        if (!np) return NULL;
        memset(np + w->npools, 0, (n - w->npools) * sizeof *np);
        w->pools = np;
        w->npools = n;
    }
    if (!w->pools[a->id]) {
        httpc_pool_opts_t o = {.max_conns = b->max_conns, .max_idle = 256};
        if (httpc_pool_new(w->loop, a->host, a->port, &o, &w->pools[a->id]) != 0) return NULL;
    }
    return w->pools[a->id];
}

void proxy_worker_env(proxy_worker_t *w, proxy_env_t *out) {
    *out = (proxy_env_t){w->gw, w->loop, w->snap, w->obs, w->tcw, &w->rnd, &w->tasks};
}

int proxy_parse(proxy_worker_t *w, const char *s, size_t len, json_doc_t *d) {
    for (;;) {
        int n = json_parse(s, len, w->toks, w->ntoks, PROXY_JSON_DEPTH, d, NULL);
        if (n != JSON_ERR_NOMEM || w->ntoks >= TOKS_MAX) return n;
        json_tok_t *nt = realloc(w->toks, w->ntoks * 4 * sizeof *nt);
        if (!nt) return JSON_ERR_NOMEM;
        w->toks = nt;
        w->ntoks *= 4;
    }
}

preq_t *proxy_req_get(proxy_worker_t *w) {
    preq_t *p = w->free;
    if (p) {
        w->free = p->next;
    } else if ((p = calloc(1, sizeof *p))) {
        buf_init(&p->body);
        buf_init(&p->hdrs);
        buf_init(&p->resp);
        buf_init(&p->cap);
    } else {
        return NULL;
    }
    buf_t body = p->body, hdrs = p->hdrs, resp = p->resp, cap = p->cap;
    memset(p, 0, sizeof *p);
    p->body = body;
    p->hdrs = hdrs;
    p->resp = resp;
    p->cap = cap;
    p->w = w;
    ev_timer_init(&p->timer);
    return p;
}

static void keep_or_free(buf_t *b) {
    if (b->cap > KEEP_BYTES)
        buf_free(b);
    else
        buf_reset(b);
}

void proxy_req_release(preq_t *p) {
    proxy_worker_t *w = p->w;
    ev_timer_stop(w->loop, &p->timer);
    if (p->fq_state == 1) fairq_remove(&p->gate->g.q, &p->fq);
    int held = p->fq_state == 2;
    p->fq_state = 0;

    if (p->gov_wait && w->shared) gov_shared_cancel(w->shared, p->gov_wait);
    p->gov_wait = 0;
    /* Ended without an account stage (client gone early): give it all back. */
    if (p->gt.shared && w->shared) gov_shared_finish(w->shared, &p->gt, 0, time(NULL));
    if (p->gt.st || p->gt.ml_charged)
        gov_finish(gateway_gov(w->gw), &p->gt, -1, -1, 499, ev_now_ns(w->loop), time(NULL));
    snapshot_unref(p->snap);
    p->snap = NULL;
    keep_or_free(&p->body);
    keep_or_free(&p->hdrs);
    keep_or_free(&p->resp);
    keep_or_free(&p->cap);
    wgate_t *gate = p->gate;
    p->gate = NULL;
    p->next = w->free;
    w->free = p;
    /* Its slot in the backend's gate goes to the next waiting request (fair order). */
    if (held) proxy_gate_leave(gate);
}
