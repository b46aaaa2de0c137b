/* obs.h — the gateway's observability runtime: metrics registry, request log and access log
 * tied together, a per-worker side for the request path, and the /metrics text. */
#ifndef TOLLGATE_GATEWAY_OBS_H
#define TOLLGATE_GATEWAY_OBS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "gateway/accesslog.h"
#include "gateway/gwmetrics.h"
#include "gateway/obscfg.h"
#include "gateway/reqlog.h"

struct gateway;
typedef struct obs obs_t;
typedef struct obs_worker obs_worker_t;

/* One finished request as the request path reports it. Strings may be NULL. */
typedef struct obs_req {
    int64_t ts_ms;            /* arrival, unix ms */
    const char *method, *path, *service, *model, *variant, *request_id;
    const char *reason;       /* error code or fallback reason; NULL when none */
    int status;
    int stream;
    int attempts;
    int fallback;             /* answered with a fallback (counts tollgate_fallbacks_total) */
    int refused;              /* refused before routing (governance): counted and access-logged,
                                 no latency observed */
    uint64_t start_ns;        /* monotonic: arrival */
    uint64_t first_ns;        /* first streamed token sent; 0: none */
    uint64_t end_ns;          /* last byte */
    uint64_t upstream_ns;     /* time spent waiting on upstream attempts */
    int64_t prompt_tokens, completion_tokens; /* -1: unknown */
    int sampled;              /* obs_sample said yes: the texts below go to the request log */
    const char *prompt;       /* the client's body */
    size_t prompt_len;
    const char *response;     /* upstream body or SSE bytes */
    size_t response_len;
} obs_req_t;

/* Open the request log and access log named in cfg (its start-up settings) and register
 * the metrics. 0 and *out, or a negative errno with a message in err. */
int obs_new(const obs_cfg_t *cfg, obs_t **out, char *err, size_t errlen);
/* Drains the request log (everything accepted is written), closes the logs. */
void obs_free(obs_t *o);
/* Log rotation (SIGHUP, admin reload): reopen the access log file by its path. 0, or a
 * negative errno with a message in err (the old file stays in use). */
int obs_reopen_logs(obs_t *o, char *err, size_t errlen);
gwm_t *obs_metrics(obs_t *o);
reqlog_t *obs_reqlog(obs_t *o);

/* The worker side: owned by one worker thread. */
obs_worker_t *obs_worker_new(obs_t *o, uint32_t seed);
void obs_worker_free(obs_worker_t *w);
/* Tell the worker which config generation its strings come from (resets the label cache
 * when it changed). */
void obs_worker_generation(obs_worker_t *w, uint64_t gen);
/* Whether to keep the texts of a request of service (generation cfg's rates; no request log:
 * never). */
int obs_sample(obs_worker_t *w, const obs_cfg_t *cfg, const char *service);
/* Metrics, access log line, request log entry (sampled). No lock on the steady path but the
 * request log queue's (sampled requests only). */
void obs_request_end(obs_worker_t *w, const obs_req_t *r);

/* The Prometheus text of /metrics: request metrics, governance (rejections, budgets),
 * upstream health, canary weights, request/access log counters. 0 or -ENOMEM. */
int obs_render(obs_t *o, struct gateway *gw, buf_t *out);

/* The outcome word stored in the request log for a status: ok, rejected, timeout,
 * cancelled, error (fallback when fallback is set). */
const char *obs_outcome(int status, int fallback);

#endif
