/* proxy_admit.c — the admission stages of a proxied request: authenticate the key, apply
 * the service's limits (locally or through Redis), then wait for a turn in the backend's
 * fair queue before the first attempt. */
#include "gateway/proxy_admit.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "gateway/proxy_account.h"
#include "gateway/proxy_req.h"

static void gated_start(preq_t *p);

static void add_header_cb(void *arg, const char *name, const char *value) {
    httpd_add_header(arg, name, value);
}

/* Answer a governance refusal: OpenAI error JSON, Retry-After and x-ratelimit-* headers. */
void proxy_gov_refuse(httpd_req_t *req, const gov_decision_t *d, const gov_service_cfg_t *svc) {
    proxy_account_early(req, svc ? svc->name : NULL, NULL, d->status, d->code);
    gov_headers(d, svc, add_header_cb, req);
    httpd_error_ex(req, d->status, d->type, d->message, d->param, d->code);
}

/* Authenticate: with services configured, the bearer key names the service (401 when
 * missing or unknown). Returns the service index, -1 for anonymous (no services), or -2
 * when the request has been answered. */
int proxy_authenticate(proxy_worker_t *w, httpd_req_t *req) {
    gov_cfg_t *gc = w->snap->cfg.gov;
    if (!gc || !gc->nservices) return -1;
    gov_decision_t d;
    int s = gov_authenticate(gateway_gov(w->gw), gc, httpd_req_header(req, "authorization"), &d);
    if (s < 0) {
        proxy_gov_refuse(req, &d, NULL);
        return -2;
    }
    return s;
}

/* Admit: count the prompt, apply the per-request limits, charge the service's rate limits
 * and budget (p->gt), and make max_tokens what the service allows. On success *d may now
 * point into p->resp (a rewritten body). 0 = go on; -1 = answered. */
int proxy_admit(preq_t *p, json_doc_t *d, int service, int is_chat) {
    gov_cfg_t *gc = p->snap->cfg.gov;
    if (!gc) return 0;
    proxy_worker_t *w = p->w;
    gov_decision_t gd;
    gov_t *g = gateway_gov(w->gw);
    const gov_service_cfg_t *svc = service >= 0 ? &gc->services[service] : NULL;
    const tokcount_t *tc = govcfg_tokenizer(gc, p->route->cfg->model);
    if (svc && gov_shared_up(w->shared)) {
        /* Shared limits: the per-request checks now, the charge in Redis just before the
         * first attempt (attempt_admitted), once the body no longer needs the parser. */
        if (gov_admit_request(g, gc, service, tc, w->tcw, d, is_chat, &p->gt, &gd)) {
            proxy_gov_refuse(p->req, &gd, svc);
            return -1;
        }
        gov_ticket_model(&p->gt, p->route->cfg->model);
        p->gov_shared = 1;
    } else {
        if (svc && w->shared) /* configured but unreachable: local limits, counted */
            atomic_fetch_add_explicit(&g->redis_fallbacks, 1, memory_order_relaxed);
        if (gov_admit_request(g, gc, service, tc, w->tcw, d, is_chat, &p->gt, &gd)) {
            proxy_gov_refuse(p->req, &gd, svc);
            return -1;
        }
        gov_ticket_model(&p->gt, p->route->cfg->model);
        int64_t set_mt = gd.set_max_tokens;
        const char *mt_key = gd.max_tokens_key;
        if (gov_admit_local(g, &p->gt, ev_now_ns(w->loop), time(NULL), &gd)) {
            proxy_gov_refuse(p->req, &gd, svc);
            return -1;
        }
        gd.set_max_tokens = set_mt;
        gd.max_tokens_key = mt_key;
        if (svc) gov_headers(&gd, svc, add_header_cb, p->req);
    }
    if (gd.set_max_tokens >= 0) {
        buf_reset(&p->resp);
        if (gov_rewrite_max_tokens(d, gd.max_tokens_key, gd.set_max_tokens, &p->resp) < 0 ||
            proxy_parse(w, p->resp.data, p->resp.len, d) <= 0) {
            httpd_error(p->req, 500, "server_error", "out of memory");
            return -1;
        }
    }
    return 0;
}

/* The shared admission answered: refuse, or start the first attempt. */
static void shared_decided(void *arg, gov_decision_t *d) {
    preq_t *p = arg;
    p->gov_wait = 0;
    /* Limits per service and model stay local (per replica): checked once Redis said yes,
     * whose charge is given back when they say no. */
    if (!d->status && p->gt.ml && !p->gt.ml_charged) {
        gov_decision_t md;
        memset(&md, 0, sizeof md);
        if (gov_admit_model(gateway_gov(p->w->gw), &p->gt, ev_now_ns(p->w->loop), &md)) {
            if (p->gt.shared && p->w->shared)
                gov_shared_finish(p->w->shared, &p->gt, 0, time(NULL));
            proxy_gov_refuse(p->req, &md, p->gt.svc);
            p->req = NULL;
            proxy_req_release(p);
            return;
        }
    }
    if (d->status) {
        proxy_gov_refuse(p->req, d, p->gt.svc);
        p->req = NULL;
        proxy_req_release(p);
        return;
    }
    gov_headers(d, p->gt.svc, add_header_cb, p->req);
    gated_start(p);
}

/* ---------- fair queue in front of a backend ---------- */

static void gate_refuse(preq_t *p, int status, int reason, const char *code, const char *msg) {
    atomic_fetch_add_explicit(&gateway_gov(p->w->gw)->rejected[reason], 1, memory_order_relaxed);
    if (p->req) {
        if (status == 429) httpd_add_header(p->req, "Retry-After", "1");
        httpd_error_ex(p->req, status, status == 429 ? "requests" : "server_error", msg, NULL,
                       code);
        p->req = NULL;
    }
    proxy_req_release(p);
}

static void gate_timer(ev_loop_t *loop, void *arg) {
    wgate_t *g = arg;
    fairq_item_t *it;
    while ((it = fairq_expired(&g->g.q, ev_now_ns(loop)))) {
        preq_t *p = (preq_t *)((char *)it - offsetof(preq_t, fq));
        p->fq_state = 0;
        char msg[160];
        snprintf(msg, sizeof msg,
                 "backend `%s` is at capacity and this request waited its "
                 "queue deadline (%u ms) without a turn",
                 g->name, g->g.timeout_ms);
        gate_refuse(p, 503, GOV_R_QUEUE_TIMEOUT, "queue_timeout", msg);
    }
    uint64_t d = fairq_next_deadline(&g->g.q), now = ev_now_ns(loop);
    if (d != UINT64_MAX)
        ev_timer_start(loop, &g->timer, d > now ? (d - now + 999999) / 1000000 : 0, gate_timer, g);
}

void proxy_gate_leave(wgate_t *g) {
    if (g->g.in_flight) g->g.in_flight--;
    if (g->draining) return; /* the loop below, further up the stack, hands the slot on */
    g->draining = 1;
    while (g->g.in_flight < g->g.max_in_flight) {
        fairq_item_t *it = fairq_pop(&g->g.q);
        if (!it) break;
        g->g.in_flight++;
        preq_t *p = (preq_t *)((char *)it - offsetof(preq_t, fq));
        p->fq_state = 2;
        proxy_attempt_start(p); /* a failure releases p, and its slot, right here */
    }
    g->draining = 0;
}

/* This worker's gate for a backend, made (or remade for a new set of services while idle)
 * on demand. NULL without memory: the request then goes ungated. */
static wgate_t *worker_gate(proxy_worker_t *w, const gov_queue_cfg_t *qc, const gov_cfg_t *gc) {
    wgate_t *g = w->gates;
    while (g && strcmp(g->name, qc->backend)) g = g->next;
    size_t nflows = gc->nservices + 1;
    if (g && g->g.q.len == 0 && g->g.in_flight == 0 && g->nflows != nflows) {
        fairq_gate_free(&g->g);
        g->nflows = 0;
    }
    if (g && g->nflows) {
        g->g.max_in_flight = qc->max_in_flight; /* a reload may change these at any time */
        g->g.q.cap = qc->max_waiting;
        g->g.timeout_ms = qc->timeout_ms;
        return g;
    }
    uint32_t weights[TOKCOUNT_MAX_MSGS];
    if (nflows > TOKCOUNT_MAX_MSGS) return NULL;
    for (size_t i = 0; i < gc->nservices; i++) weights[i] = gc->services[i].weight;
    weights[gc->nservices] = 1;
    int fresh = !g;
    if (fresh && !(g = calloc(1, sizeof *g))) return NULL;
    if (fairq_gate_init(&g->g, nflows, weights, qc->max_in_flight, qc->max_waiting,
                        qc->timeout_ms)) {
        if (fresh) free(g);
        return NULL;
    }
    g->nflows = nflows;
    if (fresh) {
        snprintf(g->name, sizeof g->name, "%s", qc->backend);
        g->w = w;
        ev_timer_init(&g->timer);
        g->next = w->gates;
        w->gates = g;
    }
    return g;
}

/* Through the backend's gate (when it has a fair queue) to the first attempt. */
static void gated_start(preq_t *p) {
    proxy_worker_t *w = p->w;
    gov_cfg_t *gc = p->snap->cfg.gov;
    const gov_queue_cfg_t *qc = gc ? govcfg_queue(gc, p->backend->cfg->name) : NULL;
    wgate_t *g = qc ? worker_gate(w, qc, gc) : NULL;
    if (!g) return proxy_attempt_start(p);
    int flow = p->gt.svc ? (int)(p->gt.svc - gc->services) : (int)gc->nservices;
    if ((size_t)flow >= g->nflows) flow = (int)g->nflows - 1;
    int rc = fairq_gate_enter(&g->g, &p->fq, flow, ev_now_ns(w->loop));
    p->gate = g;
    if (rc == 1) {
        p->fq_state = 2;
        return proxy_attempt_start(p);
    }
    if (rc == 0) {
        p->fq_state = 1;
        if (!ev_timer_active(&g->timer))
            ev_timer_start(w->loop, &g->timer, g->g.timeout_ms, gate_timer, g);
        return;
    }
    p->gate = NULL;
    char msg[160];
    snprintf(msg, sizeof msg, "backend `%s` is at capacity and its queue is full (%u waiting)",
             g->name, (unsigned)g->g.q.cap);
    gate_refuse(p, 429, GOV_R_QUEUE_FULL, "queue_full", msg);
}

/* The first attempt, after the shared admission when there is one. */
void proxy_first_attempt(preq_t *p) {
    if (!p->gov_shared) return gated_start(p);
    p->gov_shared = 0;
    proxy_worker_t *w = p->w;
    int64_t h = gov_shared_admit(w->shared, &p->gt, time(NULL), shared_decided, p);
    if (h > 0) {
        p->gov_wait = h;
        return;
    }
    /* Redis went away since the request arrived: decide locally. */
    gov_t *g = gateway_gov(w->gw);
    atomic_fetch_add_explicit(&g->redis_fallbacks, 1, memory_order_relaxed);
    gov_decision_t d;
    memset(&d, 0, sizeof d);
    gov_admit_local(g, &p->gt, ev_now_ns(w->loop), time(NULL), &d);
    shared_decided(p, &d);
}
