/* proxy.c — the gateway's request path on one worker: parse, route, forward with deadlines
 * and safe retries, stream SSE through event by event, read usage, account. */
#define _GNU_SOURCE /* memmem */
#include "gateway/proxy.h"

#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/httpc.h"
#include "core/log.h"
#include "gateway/fairq.h"
#include "gateway/obs.h"
#include "gateway/govern.h"
#include "gateway/govshared.h"
#include "gateway/pool.h"
#include "gateway/route.h"
#include "gateway/task.h"
#include "gateway/canaryapi.h"
#include "gateway/degrade.h"

#define TOKS_INITIAL 4096
#define TOKS_MAX     (1u << 20)
#define JSON_DEPTH   64
#define KEEP_BYTES   (256u * 1024) /* request buffers larger than this are freed on reuse */
#define LOG_CAPTURE  (256u * 1024) /* SSE bytes kept of a sampled stream for the request log */

/* Why the gateway itself cancelled an upstream attempt. */
enum { R_NONE, R_RETRY, R_TTFT, R_TOTAL, R_CLIENT };

/* Per-worker counters; written by the worker, read by the admin thread (relaxed). */
typedef struct proxy_counters {
    atomic_uint_fast64_t requests, errors, retries, client_cancels, prompt_tokens,
        completion_tokens;
} proxy_counters_t;

/* One proxied request. Taken from the worker's free list with its buffers, so the steady
 * state allocates nothing. Lives until both the client side is finished (response sent,
 * or on_close) and no upstream attempt is in flight. */
typedef struct preq {
    proxy_worker_t *w;
    httpd_req_t *req;       /* NULL once the client side is finished or gone */
    snapshot_t *snap;       /* the generation this request started on (a reference) */
    snap_route_t *route;
    const gw_variant_cfg_t *variant;
    snap_backend_t *backend;
    pool_addr_t *addr;      /* address of the current attempt */
    httpc_req_t *up;        /* current attempt; NULL when none in flight */
    uint64_t tried;         /* bitmask of address indexes tried */
    uint64_t deadline_ttft; /* monotonic ns; per attempt */
    uint64_t deadline_total;
    int attempts;
    int reason;             /* R_*: why we cancelled `up` */
    int status;             /* upstream status of the current attempt, 0 before the head */
    int is_sse;             /* upstream answered text/event-stream */
    int stream;             /* client asked for a stream */
    int client_usage;       /* client asked for stream_options.include_usage */
    int committed;          /* response head sent to the client: no retry any more */
    int64_t prompt_tokens, completion_tokens;
    uint64_t start_ns;      /* arrival (monotonic), for the metrics */
    uint64_t first_ns;      /* first event sent to a streaming client; 0: none yet */
    uint64_t attempt_ns;    /* start of the attempt in flight; 0: none */
    uint64_t upstream_ns;   /* time spent in upstream attempts so far (overhead = rest) */
    int is_chat;            /* /v1/chat/completions, else /v1/completions */
    int sampled;            /* goes to the request log (obs_sample) */
    const char *fail_code;  /* error code the gateway answered with (a literal), for the logs */
    char rid[129];          /* the client's X-Request-Id, for the logs */
    gov_ticket_t gt;        /* governance charges to correct at the end (govern.h) */
    int64_t gov_wait;       /* > 0: waiting for the shared (Redis) admission with this handle */
    int gov_shared;         /* admission still to be charged in Redis before the first attempt */
    fairq_item_t fq;        /* place in a backend's fair queue (govcfg fair_queue) */
    circuit_t *circ;        /* breaker of the current attempt's backend (degrade.h); NULL: none */
    int probe;              /* that attempt is the breaker's half-open probe */
    int fell_back;          /* moved to the route's fallback variant already */
    struct wgate *gate;     /* that backend's gate, when fq_state != 0 */
    int fq_state;           /* 0 not gated, 1 waiting in the queue, 2 holding a slot */
    char ctype[96];         /* upstream Content-Type */
    buf_t body;             /* upstream request body */
    buf_t hdrs;             /* upstream extra headers */
    buf_t resp;             /* non-stream: the upstream body; stream: bytes of a partial event */
    buf_t cap;              /* sampled stream: the SSE bytes received, for the request log */
    ev_timer_t timer;       /* the next deadline */
    struct preq *next;      /* free list */
} preq_t;

/* A backend's fair-queue gate on this worker (fairq.h), found by backend name so that it
 * survives a reload. */
typedef struct wgate {
    char name[64];
    fairq_gate_t g;
    size_t nflows;          /* services + 1 (the last flow: requests without a service) */
    int draining;           /* handing freed slots to waiting requests: no recursion */
    ev_timer_t timer;       /* the earliest queue deadline */
    proxy_worker_t *w;
    struct wgate *next;
} wgate_t;

struct proxy_worker {
    gateway_t *gw;
    int idx;
    ev_loop_t *loop;
    snapshot_t *snap;       /* this worker's reference to the newest generation it has seen */
    uint64_t gen;
    httpc_pool_t **pools;   /* by pool_addr id; created on first use */
    size_t npools;
    uint32_t rnd;           /* xorshift state */
    json_tok_t *toks;       /* scratch for parsing bodies; grows on demand, kept */
    tokcount_work_t *tcw;   /* scratch for counting prompt tokens (governance) */
    gov_shared_t *shared;   /* limits shared through Redis (config `redis:`); NULL: local only */
    wgate_t *gates;         /* fair-queue gates, made on first use */
    size_t ntoks;
    buf_t scratch;          /* scratch for small responses and names */
    preq_t *free;
    obs_worker_t *obs;      /* metrics cache, access/request log side of this worker */
    struct task_worker *tasks; /* the task endpoint's side (task.c); NULL until used */
    proxy_counters_t c;
};

static void attempt_start(preq_t *p);
static void deadline_cb(ev_loop_t *loop, void *arg);

/* ---------- pure helpers ---------- */

/* Append a value's text as sent (a STRING token's span excludes its quotes). */
static int append_raw(buf_t *out, const json_doc_t *d, uint32_t tok) {
    const json_tok_t *t = &d->toks[tok];
    int q = t->type == JSON_STRING;
    return buf_append(out, d->src + t->start - q, t->end - t->start + 2 * (size_t)q);
}

int proxy_rewrite_body(const json_doc_t *d, const char *upstream_model, int add_usage,
                       buf_t *out) {
    if (d->ntoks == 0 || d->toks[0].type != JSON_OBJECT)
        return -EINVAL;
    const json_tok_t *t = d->toks;
    int rc = buf_append(out, "{", 1), saw_so = 0;
    uint32_t i = 1;
    for (uint32_t k = 0; k < t[0].size; k++) {
        uint32_t key = i, val = i + 1;
        i = t[val].next;
        if (k)
            rc |= buf_append(out, ",", 1);
        rc |= append_raw(out, d, key);
        rc |= buf_append(out, ":", 1);
        if (upstream_model && json_str_eq(d, (int)key, "model")) {
            json_w_t jw;
            json_w_init(&jw, out);
            json_w_str(&jw, upstream_model);
        } else if (add_usage && json_str_eq(d, (int)key, "stream_options")) {
            saw_so = 1;
            rc |= buf_append(out, "{", 1);
            if (t[val].type == JSON_OBJECT) {
                uint32_t j = val + 1;
                for (uint32_t m = 0; m < t[val].size; m++) {
                    uint32_t sk = j, sv = j + 1;
                    j = t[sv].next;
                    if (json_str_eq(d, (int)sk, "include_usage"))
                        continue;
                    rc |= append_raw(out, d, sk);
                    rc |= buf_append(out, ":", 1);
                    rc |= append_raw(out, d, sv);
                    rc |= buf_append(out, ",", 1);
                }
            }
            rc |= buf_appends(out, "\"include_usage\":true}");
        } else {
            rc |= append_raw(out, d, val);
        }
    }
    if (add_usage && !saw_so)
        rc |= buf_appends(out, t[0].size ? ",\"stream_options\":{\"include_usage\":true}"
                                         : "\"stream_options\":{\"include_usage\":true}");
    rc |= buf_append(out, "}", 1);
    return rc ? -ENOMEM : 0;
}

size_t proxy_sse_event_len(const char *p, size_t n) {
    int line_empty = 1;
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '\r' || c == '\n') {
            size_t eol = i + 1;
            if (c == '\r') {
                if (i + 1 >= n)
                    return 0; /* a LF may follow: wait and see */
                if (p[i + 1] == '\n')
                    eol++;
            }
            if (line_empty)
                return eol;
            line_empty = 1;
            i = eol;
            continue;
        }
        line_empty = 0;
        i++;
    }
    return 0;
}

int proxy_sse_usage(const char *ev, size_t len, json_tok_t *toks, size_t cap, int64_t *prompt,
                    int64_t *completion, int *usage_only) {
    /* Cheap test first: nearly every event is a token delta without a usage object. */
    if (!memmem(ev, len, "\"usage\"", 7))
        return 0;
    const char *p = ev, *end = ev + len;
    while (p < end) {
        const char *eol = p;
        while (eol < end && *eol != '\n' && *eol != '\r') eol++;
        if (eol - p > 5 && !memcmp(p, "data:", 5)) {
            const char *s = p + 5;
            if (s < eol && *s == ' ')
                s++;
            json_doc_t d;
            if (json_parse(s, (size_t)(eol - s), toks, cap, JSON_DEPTH, &d, NULL) <= 0 ||
                toks[0].type != JSON_OBJECT)
                return 0;
            int u = json_obj_get(&d, 0, "usage");
            if (u < 0 || d.toks[u].type != JSON_OBJECT)
                return 0;
            int pt = json_obj_get(&d, u, "prompt_tokens");
            int ct = json_obj_get(&d, u, "completion_tokens");
            int64_t v;
            *prompt = pt >= 0 && json_get_i64(&d, pt, &v) == 0 ? v : -1;
            *completion = ct >= 0 && json_get_i64(&d, ct, &v) == 0 ? v : -1;
            int ch = json_obj_get(&d, 0, "choices");
            *usage_only = ch < 0 || (d.toks[ch].type == JSON_ARRAY && d.toks[ch].size == 0);
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

/* ---------- worker ---------- */

proxy_worker_t *proxy_worker_new(gateway_t *gw, int idx, ev_loop_t *loop) {
    proxy_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->gw = gw;
    w->idx = idx;
    w->loop = loop;
    w->rnd = 0x9e3779b9u ^ (uint32_t)(idx * 7919 + 1) ^ (uint32_t)ev_clock_ns();
    if (!w->rnd)
        w->rnd = 1;
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
    if (!w)
        return;
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

static void count(atomic_uint_fast64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Pick up a new config generation if one was published: one relaxed load per request,
 * the gateway's lock only when the number changed. */
static void worker_refresh(proxy_worker_t *w) {
    if (gateway_generation(w->gw) == w->gen)
        return;
    snapshot_t *s = gateway_acquire(w->gw);
    snapshot_unref(w->snap);
    w->snap = s;
    w->gen = s->generation;
    obs_worker_generation(w->obs, w->gen); /* label strings moved: forget cached children */
}

/* The worker's connection pool to an address, made on first use. */
static httpc_pool_t *worker_pool(proxy_worker_t *w, pool_addr_t *a, const gw_backend_cfg_t *b) {
    if (a->id >= w->npools) {
        size_t n = a->id + 8;
        httpc_pool_t **np = realloc(w->pools, n * sizeof *np);
        if (!np)
            return NULL;
        memset(np + w->npools, 0, (n - w->npools) * sizeof *np);
        w->pools = np;
        w->npools = n;
    }
    if (!w->pools[a->id]) {
        httpc_pool_opts_t o = {.max_conns = b->max_conns, .max_idle = 256};
        if (httpc_pool_new(w->loop, a->host, a->port, &o, &w->pools[a->id]) != 0)
            return NULL;
    }
    return w->pools[a->id];
}

httpc_pool_t *proxy_worker_pool(proxy_worker_t *w, pool_addr_t *a, const gw_backend_cfg_t *b) {
    return worker_pool(w, a, b);
}

void proxy_worker_env(proxy_worker_t *w, proxy_env_t *out) {
    *out = (proxy_env_t){w->gw, w->loop, w->snap, w->obs, w->tcw, &w->rnd, &w->tasks};
}

/* Parse a body into the worker's token array, growing it when the body has more values. */
static int worker_parse(proxy_worker_t *w, const char *s, size_t len, json_doc_t *d) {
    for (;;) {
        int n = json_parse(s, len, w->toks, w->ntoks, JSON_DEPTH, d, NULL);
        if (n != JSON_ERR_NOMEM || w->ntoks >= TOKS_MAX)
            return n;
        json_tok_t *nt = realloc(w->toks, w->ntoks * 4 * sizeof *nt);
        if (!nt)
            return JSON_ERR_NOMEM;
        w->toks = nt;
        w->ntoks *= 4;
    }
}

static preq_t *preq_get(proxy_worker_t *w) {
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

static void gate_leave(wgate_t *g);
static void gated_start(preq_t *p);

static void preq_release(preq_t *p) {
    proxy_worker_t *w = p->w;
    ev_timer_stop(w->loop, &p->timer);
    if (p->fq_state == 1)
        fairq_remove(&p->gate->g.q, &p->fq);
    int held = p->fq_state == 2;
    p->fq_state = 0;

    if (p->gov_wait && w->shared)
        gov_shared_cancel(w->shared, p->gov_wait);
    p->gov_wait = 0;
    /* Ended without an account stage (client gone early): give it all back. */
    if (p->gt.shared && w->shared)
        gov_shared_finish(w->shared, &p->gt, 0, time(NULL));
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
    if (held)
        gate_leave(gate);
}

/* ---------- account ---------- */

/* Metrics, access log and (when sampled) request log of a finished request (obs.h). */
static void obs_account(preq_t *p, int status) {
    uint64_t now = ev_clock_ns();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t wall_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    const buf_t *resp = p->stream && p->is_sse ? &p->cap : &p->resp;
    obs_req_t r = {
        .ts_ms = wall_ms - (int64_t)((now - p->start_ns) / 1000000),
        .method = "POST",
        .path = p->is_chat ? "/v1/chat/completions" : "/v1/completions",
        .service = p->gt.svc ? p->gt.svc->name : NULL,
        .model = p->route ? p->route->cfg->model : NULL,
        .variant = p->variant ? p->variant->name : NULL,
        .request_id = p->rid[0] ? p->rid : NULL,
        .reason = p->fail_code,
        .status = status,
        .stream = p->stream && p->is_sse,
        .attempts = p->attempts,
        .start_ns = p->start_ns,
        .first_ns = p->first_ns,
        .end_ns = now,
        .upstream_ns = p->upstream_ns,
        .prompt_tokens = p->prompt_tokens,
        .completion_tokens = p->completion_tokens,
        .sampled = p->sampled,
        .prompt = p->body.data,
        .prompt_len = p->body.len,
        .response = resp->data,
        .response_len = resp->len,
    };
    obs_request_end(p->w->obs, &r);
}

/* The last stage: counters, metrics and logs, the correction of the governance charge. */
static void stage_account(preq_t *p, int status) {
    proxy_counters_t *c = &p->w->c;
    obs_account(p, status);
    if (p->variant) /* canary statistics (a no-op unless this route's canary runs) */
        canaryapi_observe(p->w->gw, p->route->cfg->model, p->variant->name,
                          (uint32_t)((ev_clock_ns() - p->start_ns) / 1000000), status >= 500, 0);
    count(&c->requests, 1);
    if (status >= 400)
        count(&c->errors, 1);
    if (p->prompt_tokens > 0)
        count(&c->prompt_tokens, (uint64_t)p->prompt_tokens);
    if (p->completion_tokens > 0)
        count(&c->completion_tokens, (uint64_t)p->completion_tokens);
    /* Correct the reservation with the usage the upstream reported. */
    if (p->gt.shared && p->w->shared)
        gov_shared_finish(p->w->shared, &p->gt,
                          gov_actual(&p->gt, p->prompt_tokens, p->completion_tokens, status),
                          time(NULL));
    if (p->gt.st || p->gt.ml_charged)
        gov_finish(gateway_gov(p->w->gw), &p->gt, p->prompt_tokens, p->completion_tokens, status,
                   ev_now_ns(p->w->loop), time(NULL));
}

/* ---------- answering the client ---------- */

static void add_variant_header(preq_t *p) {
    if (p->variant)
        httpd_add_header(p->req, "x-tollgate-variant", p->variant->name);
}

/* Finish with an error of the gateway's own and release (no attempt in flight). */
static void fail_request(preq_t *p, int status, const char *code, const char *msg) {
    p->fail_code = code;
    if (p->req) {
        if (p->committed) {
            /* Mid-stream: the status is gone; an error event tells OpenAI clients. */
            buf_t *b = &p->w->scratch;
            buf_reset(b);
            json_w_t jw;
            json_w_init(&jw, b);
            buf_appends(b, "data: ");
            json_w_obj_begin(&jw);
            json_w_key(&jw, "error");
            json_w_obj_begin(&jw);
            json_w_key(&jw, "message");
            json_w_str(&jw, msg);
            json_w_key(&jw, "type");
            json_w_str(&jw, "server_error");
            json_w_key(&jw, "code");
            json_w_str(&jw, code);
            json_w_obj_end(&jw);
            json_w_obj_end(&jw);
            buf_appends(b, "\n\n");
            if (httpd_stream_write(p->req, b->data, b->len) >= 0)
                httpd_stream_end(p->req);
            else
                httpd_abort(p->req);
        } else {
            add_variant_header(p);
            httpd_error_ex(p->req, status, status >= 500 ? "server_error" : "invalid_request_error",
                           msg, NULL, code);
        }
        p->req = NULL;
    }
    stage_account(p, status);
    preq_release(p);
}

/* Send the head of a streamed response (once). 0, or -1 when the client is gone. */
static int commit_stream(preq_t *p) {
    if (p->committed)
        return 0;
    p->committed = 1;
    p->first_ns = ev_clock_ns(); /* time to first token, as the client sees it */
    add_variant_header(p);
    if (httpd_stream_begin(p->req, p->status, p->ctype[0] ? p->ctype : "text/event-stream") < 0)
        return -1;
    /* The first event is out: only the total deadline is left. */
    uint64_t now = ev_now_ns(p->w->loop);
    uint64_t left = p->deadline_total > now ? (p->deadline_total - now) / 1000000 + 1 : 0;
    ev_timer_start(p->w->loop, &p->timer, left, deadline_cb, p);
    return 0;
}

/* Write to a streaming client. The upstream is not paused while the client reads slowly
 * (the HTTP client has no flow control to offer), so a client that falls more than
 * PROXY_MAX_RESPONSE behind is dropped rather than buffered without bound. 0 or -1. */
static int client_write(preq_t *p, const char *data, size_t len) {
    long pending = httpd_stream_write(p->req, data, len);
    if (pending < 0)
        return -1;
    if ((size_t)pending > PROXY_MAX_RESPONSE) {
        log_warn("client too slow, stream dropped", LOG_INT("queued_bytes", pending),
                 LOG_STR("model", p->route->cfg->model));
        return -1;
    }
    return 0;
}

/* Forward the complete events in p->resp; keep a partial one. Strips the usage-only
 * event when the client did not ask for usage. 0, or -1 when the client is gone. */
static int forward_events(preq_t *p, int final) {
    const char *s = p->resp.data;
    size_t n = p->resp.len, off = 0, from = 0;
    while (off < n) {
        size_t el = proxy_sse_event_len(s + off, n - off);
        if (el == 0) {
            if (!final)
                break;
            el = n - off; /* the stream ended inside an event: pass on what there is */
        }
        int64_t pt, ct;
        int only;
        if (proxy_sse_usage(s + off, el, p->w->toks, p->w->ntoks, &pt, &ct, &only) == 1) {
            p->prompt_tokens = pt;
            p->completion_tokens = ct;
            if (only && !p->client_usage) {
                if (off > from) {
                    if (commit_stream(p) < 0 || client_write(p, s + from, off - from) < 0)
                        return -1;
                }
                from = off + el;
            }
        }
        off += el;
    }
    if (off > from) {
        if (commit_stream(p) < 0 || client_write(p, s + from, off - from) < 0)
            return -1;
    }
    buf_consume(&p->resp, off);
    return 0;
}

/* ---------- upstream callbacks ---------- */

static void up_head(void *arg, const http1_response_t *res) {
    preq_t *p = arg;
    p->status = res->status;
    const http1_header_t *ct = http1_find_header(res->headers, res->num_headers, "content-type");
    size_t l = ct ? ct->value_len : 0;
    if (l >= sizeof p->ctype)
        l = sizeof p->ctype - 1;
    memcpy(p->ctype, ct ? ct->value : "", l);
    p->ctype[l] = '\0';
    p->is_sse = l >= 17 && !strncasecmp(p->ctype, "text/event-stream", 17);
    /* Overloaded or broken upstream: try elsewhere while the budget allows. */
    if ((p->status == 502 || p->status == 503 || p->status == 504) &&
        (uint32_t)p->attempts < p->route->cfg->retry.max_attempts &&
        route_budget_withdraw(&p->route->budget)) {
        p->reason = R_RETRY;
        httpc_cancel(p->up); /* on_done follows once this callback returns */
    }
}

static void up_body(void *arg, const char *data, size_t len) {
    preq_t *p = arg;
    if (p->reason || !p->req)
        return;
    if (buf_append(&p->resp, data, len) < 0 ||
        (!(p->stream && p->is_sse) && p->resp.len > PROXY_MAX_RESPONSE)) {
        p->reason = R_TOTAL; /* treated as a failed attempt, no retry */
        httpc_cancel(p->up);
        return;
    }
    if (p->sampled && p->stream && p->cap.len < LOG_CAPTURE)
        buf_append(&p->cap, data, len); /* best effort: the log is not worth failing for */
    if (p->stream && p->is_sse && p->status == 200 && forward_events(p, 0) < 0) {
        httpd_abort(p->req);
        p->req = NULL;
        p->reason = R_CLIENT;
        httpc_cancel(p->up);
    }
}

static void finish_ok(preq_t *p) {
    if (p->stream && p->is_sse && p->status == 200) {
        if (forward_events(p, 1) < 0 || (!p->committed && commit_stream(p) < 0))
            httpd_abort(p->req);
        else
            httpd_stream_end(p->req);
    } else {
        json_doc_t d;
        if (p->status == 200 && worker_parse(p->w, p->resp.data ? p->resp.data : "", p->resp.len,
                                             &d) > 0) {
            int u = json_obj_get(&d, 0, "usage");
            int64_t v;
            int t;
            if (u >= 0 && (t = json_obj_get(&d, u, "prompt_tokens")) >= 0 &&
                json_get_i64(&d, t, &v) == 0)
                p->prompt_tokens = v;
            if (u >= 0 && (t = json_obj_get(&d, u, "completion_tokens")) >= 0 &&
                json_get_i64(&d, t, &v) == 0)
                p->completion_tokens = v;
        }
        add_variant_header(p);
        httpd_respond(p->req, p->status, p->ctype[0] ? p->ctype : NULL, p->resp.data, p->resp.len);
    }
    p->req = NULL;
    stage_account(p, p->status);
    preq_release(p);
}

/* Move to the route's fallback variant (once, nothing sent yet, time left): its backend,
 * its upstream model in the body. 1 when there is one to try. */
static int use_fallback(preq_t *p, uint64_t now) {
    int vi = p->fell_back ? -1 : degrade_fallback(p->snap, p->route, p->variant);
    json_doc_t d;
    if (vi < 0 || p->committed || now + 1000000 >= p->deadline_total ||
        worker_parse(p->w, p->body.data, p->body.len, &d) <= 0)
        return 0;
    p->fell_back = 1;
    p->variant = &p->route->cfg->variants[vi];
    p->backend = &p->snap->backends[p->variant->backend_idx];
    p->tried = 0;
    buf_reset(&p->resp);
    const char *um = p->variant->upstream_model ? p->variant->upstream_model : p->route->cfg->model;
    if (proxy_rewrite_body(&d, um, 0, &p->resp) < 0)
        return 0;
    buf_t t = p->body;
    p->body = p->resp;
    p->resp = t;
    buf_reset(&p->resp);
    return 1;
}

static void up_done(void *arg, const httpc_done_t *done) {
    preq_t *p = arg;
    proxy_worker_t *w = p->w;
    uint64_t now = ev_now_ns(w->loop);
    int reason = p->reason;
    p->up = NULL;
    p->reason = R_NONE;
    if (p->attempt_ns) {
        p->upstream_ns += ev_clock_ns() - p->attempt_ns;
        p->attempt_ns = 0;
    }
    pool_end(p->addr);
    const pool_eject_cfg_t *ej = &p->backend->cfg->eject;
    degrade_report(p->snap, p->circ, p->probe,
                   !p->req || reason == R_CLIENT ? -1
                   : done->result == HTTPC_OK && reason == R_NONE ? p->status < 500 : 0, now);
    p->circ = NULL;

    if (!p->req) { /* the client went away: not the upstream's fault */
        count(&w->c.client_cancels, 1);
        stage_account(p, 499);
        preq_release(p);
        return;
    }
    if (done->result == HTTPC_OK && reason == R_NONE) {
        pool_report(p->addr, p->status < 500, now, ej);
        finish_ok(p);
        return;
    }
    /* The attempt failed. Blame the address unless the failure is the total deadline
     * running out on a response that was already flowing. */
    int total = reason == R_TOTAL || done->result == HTTPC_ERR_TOTAL_TIMEOUT;
    if (!(total && p->committed)) {
        if (pool_report(p->addr, 0, now, ej))
            log_warn("upstream ejected", LOG_STR("address", p->addr->name),
                     LOG_STR("backend", p->backend->cfg->name),
                     LOG_STR("last_error", reason == R_RETRY  ? "5xx"
                                           : reason == R_TTFT ? "ttft_timeout"
                                                              : httpc_result_name(done->result)),
                     LOG_INT("consecutive_failures", ej->failures));
    }
    if (p->committed) {
        fail_request(p, 502, total ? "total_timeout" : "upstream_error",
                     total ? "the response did not finish within the route's total deadline"
                           : "the upstream connection failed mid-response");
        return;
    }
    /* Nothing was sent to the client yet: another attempt is safe. */
    int may_retry = reason == R_RETRY;
    if (!may_retry && !total && (uint32_t)p->attempts < p->route->cfg->retry.max_attempts &&
        now + 1000000 < p->deadline_total)
        may_retry = route_budget_withdraw(&p->route->budget);
    if ((may_retry && now < p->deadline_total) || (!total && use_fallback(p, now))) {
        count(&w->c.retries, 1);
        attempt_start(p);
        return;
    }
    char msg[256];
    const gw_deadlines_t *dl = &p->route->cfg->deadlines;
    if (total) {
        snprintf(msg, sizeof msg, "the upstream did not answer within the route's total deadline "
                                  "(%u ms)", dl->total_ms);
        fail_request(p, 504, "total_timeout", msg);
    } else if (reason == R_TTFT) {
        snprintf(msg, sizeof msg, "no first token from the upstream within the route's ttft "
                                  "deadline (%u ms)", dl->ttft_ms);
        fail_request(p, 504, "ttft_timeout", msg);
    } else if (reason == R_RETRY) {
        snprintf(msg, sizeof msg, "upstream %s answered %d and the deadline left no time to try "
                                  "again (after %d attempt%s)", p->addr->name, p->status,
                 p->attempts, p->attempts == 1 ? "" : "s");
        fail_request(p, 502, "upstream_unavailable", msg);
    } else {
        snprintf(msg, sizeof msg, "upstream %s failed: %s (after %d attempt%s)", p->addr->name,
                 httpc_result_name(done->result), p->attempts, p->attempts == 1 ? "" : "s");
        fail_request(p, done->result == HTTPC_ERR_CONNECT_TIMEOUT ? 504 : 502,
                     "upstream_unavailable", msg);
    }
}

static void deadline_cb(ev_loop_t *loop, void *arg) {
    preq_t *p = arg;
    if (!p->up)
        return;
    p->reason = ev_now_ns(loop) >= p->deadline_total || p->committed ? R_TOTAL : R_TTFT;
    httpc_cancel(p->up); /* up_done runs now and may release p */
}

static void client_gone(httpd_req_t *req, void *arg) {
    preq_t *p = arg;
    p->req = NULL;
    if (p->up) {
        p->reason = R_CLIENT;
        httpc_cancel(p->up); /* up_done releases p */
    } else {
        preq_release(p);
    }
}

/* Start one attempt on the least-loaded usable address of the variant's backend. */
static void attempt_start(preq_t *p) {
    proxy_worker_t *w = p->w;
    uint64_t now = ev_now_ns(w->loop);
    int da = degrade_admit(w->gw, p->snap, p->backend, now, &p->circ, &p->probe);
    if (da < 0) {
        if (use_fallback(p, now))
            return attempt_start(p);
        fail_request(p, 503, da == DEGRADE_SHED ? "overloaded" : "circuit_open",
                     da == DEGRADE_SHED ? "the backend's queue is full; try again shortly"
                                        : "the backend's circuit is open after repeated "
                                          "failures; try again after its cool-down");
        return;
    }
    snap_backend_t *b = p->backend;
    int i = pool_pick(b->addrs, b->naddrs, now, route_rand(&w->rnd), p->tried);
    if (i < 0) {
        fail_request(p, 503, "no_upstream", "the backend pool has no addresses");
        return;
    }
    p->tried |= 1ull << i;
    p->addr = b->addrs[i];
    p->status = 0;
    p->is_sse = 0;
    p->ctype[0] = '\0';
    buf_reset(&p->resp);
    buf_reset(&p->cap);
    httpc_pool_t *hp = worker_pool(w, p->addr, b->cfg);
    const gw_deadlines_t *dl = &p->route->cfg->deadlines;
    uint64_t left_ms = p->deadline_total > now ? (p->deadline_total - now) / 1000000 : 0;
    if (!hp || left_ms == 0) {
        fail_request(p, hp ? 504 : 502, hp ? "total_timeout" : "upstream_unavailable",
                     hp ? "the route's total deadline passed before an attempt could start"
                        : "cannot reach the upstream (address does not resolve)");
        return;
    }
    httpc_request_t r = {
        .method = "POST",
        .path = httpd_req_path(p->req),
        .raw_headers = p->hdrs.data,
        .raw_headers_len = p->hdrs.len,
        .body = p->body.data,
        .body_len = p->body.len,
        .connect_timeout_ms = dl->connect_ms,
        .total_timeout_ms = (uint32_t)left_ms,
        .flags = HTTPC_F_RETRY_STALE, /* nothing sent to the client: a resend is safe */
    };
    static const httpc_callbacks_t cbs = {up_head, up_body, up_done};
    p->attempts++;
    p->attempt_ns = ev_clock_ns();
    pool_begin(p->addr);
    int rc = httpc_request(hp, &r, &cbs, p, &p->up);
    if (rc < 0) {
        pool_end(p->addr);
        p->up = NULL;
        fail_request(p, 502, "upstream_unavailable", "cannot start the upstream request");
        return;
    }
    /* Streams first wait for their first event (per attempt, so that a retry gets its own
     * time to first token), everything for the total deadline. */
    p->deadline_ttft = now + (uint64_t)dl->ttft_ms * 1000000;
    uint64_t when = p->stream && !p->committed && p->deadline_ttft < p->deadline_total
                        ? p->deadline_ttft
                        : p->deadline_total;
    uint64_t delay = when > now ? (when - now + 999999) / 1000000 : 0;
    ev_timer_start(w->loop, &p->timer, delay, deadline_cb, p);
}

/* ---------- the stages ---------- */

static void add_header_cb(void *arg, const char *name, const char *value) {
    httpd_add_header(arg, name, value);
}

/* A request answered with an error before it was routed (refused, malformed, unknown):
 * counted in requests_total by status and access-logged, but kept out of the latency
 * histograms (a fast refusal is not a fast answer). Labels come from the config only
 * (service, a route's model), never from the request, so clients cannot add series. */
static void account_early(httpd_req_t *req, const char *service, const char *model, int status,
                          const char *code) {
    proxy_worker_t *w = httpd_req_worker_data(req);
    uint64_t now = ev_clock_ns(), start = httpd_req_start_ns(req);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    obs_req_t r = {
        .ts_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 -
                 (int64_t)((now - start) / 1000000),
        .method = httpd_req_method(req),
        .path = httpd_req_path(req),
        .service = service,
        .model = model,
        .request_id = httpd_req_header(req, "x-request-id"),
        .reason = code,
        .status = status,
        .refused = 1,
        .start_ns = start,
        .end_ns = now,
        .prompt_tokens = -1,
        .completion_tokens = -1,
    };
    obs_request_end(w->obs, &r);
}

/* Answer a governance refusal: OpenAI error JSON, Retry-After and x-ratelimit-* headers. */
static void gov_refuse(httpd_req_t *req, const gov_decision_t *d, const gov_service_cfg_t *svc) {
    account_early(req, svc ? svc->name : NULL, NULL, d->status, d->code);
    gov_headers(d, svc, add_header_cb, req);
    httpd_error_ex(req, d->status, d->type, d->message, d->param, d->code);
}

/* Authenticate: with services configured, the bearer key names the service (401 when
 * missing or unknown). Returns the service index, -1 for anonymous (no services), or -2
 * when the request has been answered. */
static int stage_authenticate(proxy_worker_t *w, httpd_req_t *req) {
    gov_cfg_t *gc = w->snap->cfg.gov;
    if (!gc || !gc->nservices)
        return -1;
    gov_decision_t d;
    int s = gov_authenticate(gateway_gov(w->gw), gc, httpd_req_header(req, "authorization"), &d);
    if (s < 0) {
        gov_refuse(req, &d, NULL);
        return -2;
    }
    return s;
}

/* Admit: count the prompt, apply the per-request limits, charge the service's rate limits
 * and budget (p->gt), and make max_tokens what the service allows. On success *d may now
 * point into p->resp (a rewritten body). 0 = go on; -1 = answered. */
static int stage_admit(preq_t *p, json_doc_t *d, int service, int is_chat) {
    gov_cfg_t *gc = p->snap->cfg.gov;
    if (!gc)
        return 0;
    proxy_worker_t *w = p->w;
    gov_decision_t gd;
    gov_t *g = gateway_gov(w->gw);
    const gov_service_cfg_t *svc = service >= 0 ? &gc->services[service] : NULL;
    const tokcount_t *tc = govcfg_tokenizer(gc, p->route->cfg->model);
    if (svc && gov_shared_up(w->shared)) {
        /* Shared limits: the per-request checks now, the charge in Redis just before the
         * first attempt (attempt_admitted), once the body no longer needs the parser. */
        if (gov_admit_request(g, gc, service, tc, w->tcw, d, is_chat, &p->gt, &gd)) {
            gov_refuse(p->req, &gd, svc);
            return -1;
        }
        gov_ticket_model(&p->gt, p->route->cfg->model);
        p->gov_shared = 1;
    } else {
        if (svc && w->shared) /* configured but unreachable: local limits, counted */
            atomic_fetch_add_explicit(&g->redis_fallbacks, 1, memory_order_relaxed);
        if (gov_admit_request(g, gc, service, tc, w->tcw, d, is_chat, &p->gt, &gd)) {
            gov_refuse(p->req, &gd, svc);
            return -1;
        }
        gov_ticket_model(&p->gt, p->route->cfg->model);
        int64_t set_mt = gd.set_max_tokens;
        const char *mt_key = gd.max_tokens_key;
        if (gov_admit_local(g, &p->gt, ev_now_ns(w->loop), time(NULL), &gd)) {
            gov_refuse(p->req, &gd, svc);
            return -1;
        }
        gd.set_max_tokens = set_mt;
        gd.max_tokens_key = mt_key;
        if (svc)
            gov_headers(&gd, svc, add_header_cb, p->req);
    }
    if (gd.set_max_tokens >= 0) {
        buf_reset(&p->resp);
        if (gov_rewrite_max_tokens(d, gd.max_tokens_key, gd.set_max_tokens, &p->resp) < 0 ||
            worker_parse(w, p->resp.data, p->resp.len, d) <= 0) {
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
            if (p->gt.shared && p->w->shared) gov_shared_finish(p->w->shared, &p->gt, 0, time(NULL));
            gov_refuse(p->req, &md, p->gt.svc);
            p->req = NULL;
            preq_release(p);
            return;
        }
    }
    if (d->status) {
        gov_refuse(p->req, d, p->gt.svc);
        p->req = NULL;
        preq_release(p);
        return;
    }
    gov_headers(d, p->gt.svc, add_header_cb, p->req);
    gated_start(p);
}

/* ---------- fair queue in front of a backend ---------- */

static void gate_refuse(preq_t *p, int status, int reason, const char *code, const char *msg) {
    atomic_fetch_add_explicit(&gateway_gov(p->w->gw)->rejected[reason], 1, memory_order_relaxed);
    if (p->req) {
        if (status == 429)
            httpd_add_header(p->req, "Retry-After", "1");
        httpd_error_ex(p->req, status, status == 429 ? "requests" : "server_error", msg, NULL, code);
        p->req = NULL;
    }
    preq_release(p);
}

static void gate_timer(ev_loop_t *loop, void *arg) {
    wgate_t *g = arg;
    fairq_item_t *it;
    while ((it = fairq_expired(&g->g.q, ev_now_ns(loop)))) {
        preq_t *p = (preq_t *)((char *)it - offsetof(preq_t, fq));
        p->fq_state = 0;
        char msg[160];
        snprintf(msg, sizeof msg, "backend `%s` is at capacity and this request waited its "
                                  "queue deadline (%u ms) without a turn", g->name, g->g.timeout_ms);
        gate_refuse(p, 503, GOV_R_QUEUE_TIMEOUT, "queue_timeout", msg);
    }
    uint64_t d = fairq_next_deadline(&g->g.q), now = ev_now_ns(loop);
    if (d != UINT64_MAX)
        ev_timer_start(loop, &g->timer, d > now ? (d - now + 999999) / 1000000 : 0, gate_timer, g);
}

static void gate_leave(wgate_t *g) {
    if (g->g.in_flight)
        g->g.in_flight--;
    if (g->draining)
        return; /* the loop below, further up the stack, hands the slot on */
    g->draining = 1;
    while (g->g.in_flight < g->g.max_in_flight) {
        fairq_item_t *it = fairq_pop(&g->g.q);
        if (!it)
            break;
        g->g.in_flight++;
        preq_t *p = (preq_t *)((char *)it - offsetof(preq_t, fq));
        p->fq_state = 2;
        attempt_start(p); /* a failure releases p, and its slot, right here */
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
    if (nflows > TOKCOUNT_MAX_MSGS)
        return NULL;
    for (size_t i = 0; i < gc->nservices; i++) weights[i] = gc->services[i].weight;
    weights[gc->nservices] = 1;
    int fresh = !g;
    if (fresh && !(g = calloc(1, sizeof *g)))
        return NULL;
    if (fairq_gate_init(&g->g, nflows, weights, qc->max_in_flight, qc->max_waiting, qc->timeout_ms)) {
        if (fresh)
            free(g);
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
    if (!g)
        return attempt_start(p);
    int flow = p->gt.svc ? (int)(p->gt.svc - gc->services) : (int)gc->nservices;
    if ((size_t)flow >= g->nflows)
        flow = (int)g->nflows - 1;
    int rc = fairq_gate_enter(&g->g, &p->fq, flow, ev_now_ns(w->loop));
    p->gate = g;
    if (rc == 1) {
        p->fq_state = 2;
        return attempt_start(p);
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
static void first_attempt(preq_t *p) {
    if (!p->gov_shared)
        return gated_start(p);
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

static void answer_models(proxy_worker_t *w, httpd_req_t *req, const char *one) {
    buf_t *b = &w->scratch;
    buf_reset(b);
    json_w_t jw;
    json_w_init(&jw, b);
    snapshot_t *s = w->snap;
    if (!one) {
        json_w_obj_begin(&jw);
        json_w_key(&jw, "object");
        json_w_str(&jw, "list");
        json_w_key(&jw, "data");
        json_w_arr_begin(&jw);
    }
    int found = 0;
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const char *m = s->cfg.routes[i].model;
        if (one && strcmp(one, m))
            continue;
        found = 1;
        json_w_obj_begin(&jw);
        json_w_key(&jw, "id");
        json_w_str(&jw, m);
        json_w_key(&jw, "object");
        json_w_str(&jw, "model");
        json_w_key(&jw, "created");
        json_w_i64(&jw, 0);
        json_w_key(&jw, "owned_by");
        json_w_str(&jw, "tollgate");
        json_w_obj_end(&jw);
    }
    if (!one) {
        json_w_arr_end(&jw);
        json_w_obj_end(&jw);
    } else if (!found) {
        buf_reset(b);
        buf_appendf(b, "The model `%s` does not exist or you do not have access to it.", one);
        httpd_error_ex(req, 404, "invalid_request_error", b->data, "model", "model_not_found");
        return;
    }
    httpd_respond(req, 200, "application/json", b->data, b->len);
}

static void method_not_allowed(httpd_req_t *req, const char *allow) {
    httpd_add_header(req, "Allow", allow);
    httpd_error_ex(req, 405, "invalid_request_error", "method not allowed for this URL; see Allow",
                   NULL, "method_not_allowed");
}

/* GET /metrics: Prometheus text, without a key (scrapers carry none; nothing in it is
 * secret). Rendered on this worker from atomics: the other workers are not disturbed. */
static void answer_metrics(proxy_worker_t *w, httpd_req_t *req, const char *method) {
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return method_not_allowed(req, "GET");
    buf_reset(&w->scratch);
    if (obs_render(gateway_obs(w->gw), w->gw, &w->scratch) < 0) {
        httpd_error(req, 500, "server_error", "out of memory");
        return;
    }
    httpd_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", w->scratch.data,
                  w->scratch.len);
}

void proxy_handle(httpd_req_t *req, void *arg) {
    (void)arg;
    proxy_worker_t *w = httpd_req_worker_data(req);
    const char *path = httpd_req_path(req), *method = httpd_req_method(req);
    worker_refresh(w);
    if (!strcmp(path, "/metrics"))
        return answer_metrics(w, req, method);
    int service = stage_authenticate(w, req);
    if (service == -2)
        return;
    if (!strncmp(path, "/v1/tasks/", 10))
        return task_handle(w, req, path + 10, service);

    /* Parse: which endpoint. */
    if (!strcmp(path, "/v1/models") || !strncmp(path, "/v1/models/", 11)) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return method_not_allowed(req, "GET");
        return answer_models(w, req, path[10] == '/' ? path + 11 : NULL);
    }
    const char *svc_name = service >= 0 ? w->snap->cfg.gov->services[service].name : NULL;
    if (strcmp(path, "/v1/chat/completions") && strcmp(path, "/v1/completions")) {
        account_early(req, svc_name, NULL, 404, "unknown_url");
        buf_reset(&w->scratch);
        buf_appendf(&w->scratch, "Unknown request URL: %s %s", method, path);
        httpd_error_ex(req, 404, "invalid_request_error", w->scratch.data, NULL, "unknown_url");
        return;
    }
    if (strcmp(method, "POST")) {
        account_early(req, svc_name, NULL, 405, "method_not_allowed");
        return method_not_allowed(req, "POST");
    }

    size_t len;
    const char *body = httpd_req_body(req, &len);
    json_doc_t d;
    int n = worker_parse(w, body, len, &d);
    if (n <= 0 || d.toks[0].type != JSON_OBJECT) {
        account_early(req, svc_name, NULL, 400, "invalid_json");
        httpd_error_ex(req, 400, "invalid_request_error",
                       n == JSON_ERR_NOMEM ? "the request body has too many JSON values"
                                           : "the request body is not a valid JSON object",
                       NULL, "invalid_json");
        return;
    }
    int mt = json_obj_get(&d, 0, "model");
    if (mt < 0 || d.toks[mt].type != JSON_STRING) {
        account_early(req, svc_name, NULL, 400, "missing_model");
        httpd_error_ex(req, 400, "invalid_request_error",
                       "you must provide a model parameter (a string)", "model", NULL);
        return;
    }
    int st = json_obj_get(&d, 0, "stream");
    int stream = st >= 0 && json_get_bool(&d, st) == 1;
    int so = json_obj_get(&d, 0, "stream_options"), iu = so >= 0 ? json_obj_get(&d, so, "include_usage") : -1;
    buf_t *name = &w->scratch;
    buf_reset(name);
    if (json_str_unescape(&d, mt, name) < 0) {
        httpd_error(req, 500, "server_error", "out of memory");
        return;
    }
    snap_route_t *route = snapshot_route(w->snap, name->data, name->len);
    if (!route) {
        char msg[320];
        snprintf(msg, sizeof msg, "The model `%.200s` does not exist or you do not have access to it.",
                 name->data);
        account_early(req, svc_name, NULL, 404, "model_not_found");
        httpd_error_ex(req, 404, "invalid_request_error", msg, "model", "model_not_found");
        return;
    }
    if (service >= 0) {
        gov_decision_t gd;
        if (gov_check_model(gateway_gov(w->gw), w->snap->cfg.gov, service, name->data, &gd)) {
            gov_refuse(req, &gd, NULL);
            return;
        }
    }

    preq_t *p = preq_get(w);
    if (!p) {
        httpd_error(req, 503, "server_error", "the gateway is out of memory");
        return;
    }
    p->req = req;
    p->snap = snapshot_ref(w->snap);
    p->route = route;
    p->stream = stream;
    p->client_usage = iu >= 0 && json_get_bool(&d, iu) == 1;
    p->prompt_tokens = p->completion_tokens = -1;
    p->start_ns = httpd_req_start_ns(req);
    p->is_chat = !strcmp(path, "/v1/chat/completions");
    p->sampled = obs_sample(w->obs, w->snap->cfg.obs,
                            service >= 0 ? w->snap->cfg.gov->services[service].name : NULL);
    const char *xrid = httpd_req_header(req, "x-request-id");
    if (xrid)
        snprintf(p->rid, sizeof p->rid, "%s", xrid);

    if (stage_admit(p, &d, service, !strcmp(path, "/v1/chat/completions"))) {
        preq_release(p);
        return;
    }

    /* Route: a variant by weight, its backend pool. */
    const gw_route_cfg_t *rc = route->cfg;
    int vi = degrade_pick(w->snap, route, req, &d, route_rand(&w->rnd));
    if (vi < 0) {
        p->req = NULL;
        preq_release(p);
        account_early(req, svc_name, rc->model, 503, "no_variant");
        httpd_error_ex(req, 503, "server_error", "every variant of this model has weight 0",
                       "model", "no_variant");
        return;
    }
    p->variant = &rc->variants[vi];
    p->backend = &w->snap->backends[p->variant->backend_idx];

    /* Forward: the upstream body and headers (a client's request id travels along, for
     * tracing across the hop), then the first attempt. */
    const char *rid = httpd_req_header(req, "x-request-id");
    if (proxy_rewrite_body(&d, p->variant->upstream_model, stream, &p->body) < 0 ||
        buf_appends(&p->hdrs, "Content-Type: application/json\r\n") < 0 ||
        buf_appends(&p->hdrs, stream ? "Accept: text/event-stream\r\n"
                                     : "Accept: application/json\r\n") < 0 ||
        (rid && strlen(rid) <= 128 && buf_appendf(&p->hdrs, "X-Request-Id: %s\r\n", rid) < 0) ||
        (p->backend->cfg->api_key &&
         buf_appendf(&p->hdrs, "Authorization: Bearer %s\r\n", p->backend->cfg->api_key) < 0)) {
        p->req = NULL;
        preq_release(p);
        httpd_error(req, 500, "server_error", "out of memory");
        return;
    }
    uint64_t start = httpd_req_start_ns(req);
    p->deadline_total = start + (uint64_t)rc->deadlines.total_ms * 1000000;
    route_budget_deposit(&route->budget, rc->retry.budget_percent, rc->retry.budget_burst);
    httpd_req_on_close(req, client_gone, p);
    first_attempt(p);
}
