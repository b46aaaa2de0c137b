/* gwmetrics.h — the gateway's request metrics (SLIs): families in a core metrics registry
 * and a per-worker cache of their children so that recording a request takes no lock. */
#ifndef TOLLGATE_GATEWAY_GWMETRICS_H
#define TOLLGATE_GATEWAY_GWMETRICS_H

#include <stdint.h>

#include "core/metrics.h"

#define GWM_CACHE_SLOTS 256 /* label tuples a worker remembers; more go through the lock */

typedef struct gwm gwm_t;
typedef struct gwm_cache gwm_cache_t;

/* One finished request as the metrics see it. Strings are label values (NULL = ""). */
typedef struct gwm_req {
    const char *service, *model, *variant;
    int status;              /* HTTP status answered (499: client went away) */
    double duration_s;       /* arrival to last byte; < 0: not observed (a refusal) */
    double ttft_s;           /* arrival to first streamed token sent; < 0: none */
    double tpot_s;           /* mean time per output token after the first; < 0: none */
    double overhead_s;       /* time the gateway added (total minus upstream time); < 0: none */
    int64_t prompt_tokens;   /* < 0: unknown */
    int64_t completion_tokens;
} gwm_req_t;

/* Register the families in a new registry. NULL on no memory. */
gwm_t *gwm_new(void);
void gwm_free(gwm_t *m);
metrics_registry_t *gwm_registry(gwm_t *m);

/* A worker's cache. Only its owner thread uses it. Its keys are the addresses of label
 * strings, so call gwm_cache_reset when those may have moved (new config generation). */
gwm_cache_t *gwm_cache_new(gwm_t *m);
void gwm_cache_free(gwm_cache_t *c);
void gwm_cache_reset(gwm_cache_t *c);

/* Count one request: requests_total, duration / TTFT / TPOT / overhead / prompt-token
 * histograms, tokens_total. Lock-free once the label tuple is cached. */
void gwm_record(gwm_cache_t *c, const gwm_req_t *r);
/* tollgate_fallbacks_total{service,model,reason} += 1 (takes the family lock: rare). */
void gwm_fallback(gwm_t *m, const char *service, const char *model, const char *reason);

/* Bucket bounds, for tests and docs. */
extern const double gwm_tpot_buckets[];
extern const size_t gwm_tpot_nbuckets;
extern const double gwm_overhead_buckets[];
extern const size_t gwm_overhead_nbuckets;
extern const double gwm_prompt_buckets[];
extern const size_t gwm_prompt_nbuckets;

#endif
