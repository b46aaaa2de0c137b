/* proxy_req.h — what the proxy's stages share: one proxied request, a worker, a backend's
 * fair-queue gate on that worker, and the worker's request free list. */
#ifndef TOLLGATE_GATEWAY_PROXY_REQ_H
#define TOLLGATE_GATEWAY_PROXY_REQ_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/httpc.h"
#include "core/httpd.h"
#include "core/json.h"
#include "gateway/degrade.h"
#include "gateway/fairq.h"
#include "gateway/gateway.h"
#include "gateway/govern.h"
#include "gateway/govshared.h"
#include "gateway/obs.h"
#include "gateway/pool.h"
#include "gateway/proxy.h"
#include "gateway/route.h"

#define PROXY_JSON_DEPTH 64 /* nesting accepted in request bodies and SSE events */

/* Why the gateway itself cancelled an upstream attempt. */
enum { PROXY_R_NONE, PROXY_R_RETRY, PROXY_R_TTFT, PROXY_R_TOTAL, PROXY_R_CLIENT };

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
    httpd_req_t *req; /* NULL once the client side is finished or gone */
    snapshot_t *snap; /* the generation this request started on (a reference) */
    snap_route_t *route;
    const gw_variant_cfg_t *variant;
    snap_backend_t *backend;
    pool_addr_t *addr;      /* address of the current attempt */
    httpc_req_t *up;        /* current attempt; NULL when none in flight */
    uint64_t tried;         /* bitmask of address indexes tried */
    uint64_t deadline_ttft; /* monotonic ns; per attempt */
    uint64_t deadline_total;
    int attempts;
    int reason;       /* PROXY_R_*: why we cancelled `up` */
    int status;       /* upstream status of the current attempt, 0 before the head */
    int is_sse;       /* upstream answered text/event-stream */
    int stream;       /* client asked for a stream */
    int client_usage; /* client asked for stream_options.include_usage */
    int committed;    /* response head sent to the client: no retry any more */
    int64_t prompt_tokens, completion_tokens;
    uint64_t start_ns;     /* arrival (monotonic), for the metrics */
    uint64_t first_ns;     /* first event sent to a streaming client; 0: none yet */
    uint64_t attempt_ns;   /* start of the attempt in flight; 0: none */
    uint64_t upstream_ns;  /* time spent in upstream attempts so far (overhead = rest) */
    int is_chat;           /* /v1/chat/completions, else /v1/completions */
    int sampled;           /* goes to the request log (obs_sample) */
    const char *fail_code; /* error code the gateway answered with (a literal), for the logs */
    char rid[129];         /* the client's X-Request-Id, for the logs */
    gov_ticket_t gt;       /* governance charges to correct at the end (govern.h) */
    int64_t gov_wait;      /* > 0: waiting for the shared (Redis) admission with this handle */
    int gov_shared;        /* admission still to be charged in Redis before the first attempt */
    fairq_item_t fq;       /* place in a backend's fair queue (govcfg fair_queue) */
    circuit_t *circ;       /* breaker of the current attempt's backend (degrade.h); NULL: none */
    int probe;             /* that attempt is the breaker's half-open probe */
    int fell_back;         /* moved to the route's fallback variant already */
    struct wgate *gate;    /* that backend's gate, when fq_state != 0 */
    int fq_state;          /* 0 not gated, 1 waiting in the queue, 2 holding a slot */
    char ctype[96];        /* upstream Content-Type */
    buf_t body;            /* upstream request body */
    buf_t hdrs;            /* upstream extra headers */
    buf_t resp;            /* non-stream: the upstream body; stream: bytes of a partial event */
    buf_t cap;             /* sampled stream: the SSE bytes received, for the request log */
    ev_timer_t timer;      /* the next deadline */
    struct preq *next;     /* free list */
} preq_t;

/* A backend's fair-queue gate on this worker (fairq.h), found by backend name so that it
 * survives a reload. */
typedef struct wgate {
    char name[64];
    fairq_gate_t g;
    size_t nflows;    /* services + 1 (the last flow: requests without a service) */
    int draining;     /* handing freed slots to waiting requests: no recursion */
    ev_timer_t timer; /* the earliest queue deadline */
    proxy_worker_t *w;
    struct wgate *next;
} wgate_t;

struct proxy_worker {
    gateway_t *gw;
    int idx;
    ev_loop_t *loop;
    snapshot_t *snap; /* this worker's reference to the newest generation it has seen */
    uint64_t gen;
    httpc_pool_t **pools; /* by pool_addr id; created on first use */
    size_t npools;
    uint32_t rnd;         /* xorshift state */
    json_tok_t *toks;     /* scratch for parsing bodies; grows on demand, kept */
    tokcount_work_t *tcw; /* scratch for counting prompt tokens (governance) */
    gov_shared_t *shared; /* limits shared through Redis (config `redis:`); NULL: local only */
    wgate_t *gates;       /* fair-queue gates, made on first use */
    size_t ntoks;
    buf_t scratch; /* scratch for small responses and names */
    preq_t *free;
    obs_worker_t *obs;         /* metrics cache, access/request log side of this worker */
    struct task_worker *tasks; /* the task endpoint's side (task.c); NULL until used */
    proxy_counters_t c;
};

/* --- the worker (proxy_worker.c) --- */

/* Pick up a new config generation if one was published: one relaxed load per request,
 * the gateway's lock only when the number changed. */
void proxy_refresh(proxy_worker_t *w);
/* Parse a body into the worker's token array, growing it when the body has more values.
 * json_parse's result. */
int proxy_parse(proxy_worker_t *w, const char *s, size_t len, json_doc_t *d);
/* A request from the worker's free list (its buffers kept), zeroed; NULL without memory. */
preq_t *proxy_req_get(proxy_worker_t *w);
/* Back to the free list: gives back an admission still held (governance, fair-queue slot,
 * shared Redis charge) and the snapshot reference. */
void proxy_req_release(preq_t *p);
static inline void proxy_count(atomic_uint_fast64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
static inline void proxy_variant_header(preq_t *p) {
    if (p->variant) httpd_add_header(p->req, "x-tollgate-variant", p->variant->name);
}

/* --- the lifecycle (proxy.c) --- */

/* Start one attempt on the least-loaded usable address of the variant's backend; on
 * failure the request is answered and released. */
void proxy_attempt_start(preq_t *p);
/* The request's timer: cancels the attempt in flight (TTFT or total deadline). */
void proxy_deadline_cb(ev_loop_t *loop, void *arg);

#endif
