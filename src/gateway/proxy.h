/* proxy.h — the gateway's request path on a worker thread: parse → authenticate → admit →
 * route → forward → account, for /v1/chat/completions, /v1/completions and /v1/models. */
#ifndef TOLLGATE_GATEWAY_PROXY_H
#define TOLLGATE_GATEWAY_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/httpd.h"
#include "core/json.h"
#include "gateway/gateway.h"
#include "gateway/proxy_body.h"
#include "gateway/proxy_sse.h"

#define PROXY_MAX_RESPONSE (16u << 20) /* a non-streamed upstream body larger than this: 502 */

typedef struct proxy_worker proxy_worker_t;

/* One per worker thread, made on that thread (httpd's worker_init) and freed there. */
proxy_worker_t *proxy_worker_new(gateway_t *gw, int idx, ev_loop_t *loop);
/* Cancels what is still in flight upstream and frees the connection pools. */
void proxy_worker_free(proxy_worker_t *w);

/* The httpd handler of the main listener (arg unused; the worker comes from
 * httpd_req_worker_data). */
void proxy_handle(httpd_req_t *req, void *arg);

/* The HTTP layer answered a client of this worker itself (httpd's on_refused: 400, 408,
 * 413, 431, 503): counted in tollgate_requests_total by status and access-logged. */
void proxy_refused(proxy_worker_t *w, int status);

/* What the task endpoint (task.c) borrows from the worker it runs on. */
typedef struct proxy_env {
    gateway_t *gw;
    ev_loop_t *loop;
    snapshot_t *snap;           /* the worker's newest generation (no reference taken) */
    struct obs_worker *obs;     /* may be NULL (no memory at start) */
    struct tokcount_work *tcw;  /* scratch for counting prompt tokens */
    uint32_t *rnd;              /* the worker's PRNG state */
    struct task_worker **tasks; /* the worker's task side, made by task.c on first use */
} proxy_env_t;
void proxy_worker_env(proxy_worker_t *w, proxy_env_t *out);
/* The worker's connection pool to an address, made on first use; NULL without memory. */
struct httpc_pool *proxy_worker_pool(proxy_worker_t *w, pool_addr_t *a, const gw_backend_cfg_t *b);

/* Add this worker's counters to *acc (relaxed atomic reads: any thread). */
void proxy_worker_stats(proxy_worker_t *w, gateway_stats_t *acc);

#endif
