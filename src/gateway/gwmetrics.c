/* gwmetrics.c — registers the gateway's SLI families and records finished requests through
 * a per-worker cache of metric children (no lock once a label tuple has been seen). */
#include "gateway/gwmetrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double gwm_tpot_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05,
                                   0.075, 0.1,    0.15,  0.2,  0.3,  0.5,  1};
const size_t gwm_tpot_nbuckets = sizeof gwm_tpot_buckets / sizeof gwm_tpot_buckets[0];
/* The gateway should add tens of microseconds: fine buckets there, coarse beyond. */
const double gwm_overhead_buckets[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
                                       0.0005,  0.001,    0.0025,  0.005,  0.01,
                                       0.025,   0.05,     0.1};
const size_t gwm_overhead_nbuckets = sizeof gwm_overhead_buckets / sizeof gwm_overhead_buckets[0];
const double gwm_prompt_buckets[] = {8,   16,   32,   64,   128,  256,  512,
                                     1024, 2048, 4096, 8192, 16384, 32768};
const size_t gwm_prompt_nbuckets = sizeof gwm_prompt_buckets / sizeof gwm_prompt_buckets[0];

struct gwm {
    metrics_registry_t *reg;
    metrics_family_t *requests, *duration, *ttft, *tpot, *overhead, *prompt, *tokens,
        *fallbacks;
};

/* The children of one (service, model, variant, status) tuple. */
typedef struct slot {
    const char *service, *model, *variant; /* keys: addresses, compared by pointer */
    int status;                            /* 0: empty slot */
    metrics_child_t *requests, *duration, *ttft, *tpot, *prompt, *tok_prompt, *tok_completion;
} slot_t;

struct gwm_cache {
    gwm_t *m;
    metrics_child_t *overhead;
    slot_t slots[GWM_CACHE_SLOTS];
};

gwm_t *gwm_new(void) {
    gwm_t *m = calloc(1, sizeof *m);
    if (!m || !(m->reg = metrics_registry_new())) {
        free(m);
        return NULL;
    }
    static const char *const rq[] = {"service", "model", "variant", "code", NULL};
    static const char *const smv[] = {"service", "model", "variant", NULL};
    static const char *const sm[] = {"service", "model", NULL};
    static const char *const tk[] = {"service", "model", "kind", NULL};
    static const char *const fb[] = {"service", "model", "reason", NULL};
    metrics_registry_t *r = m->reg;
    m->requests = metrics_counter(r, "tollgate_requests_total",
                                  "Requests answered by the gateway, by service, model, variant "
                                  "and HTTP status.", rq);
    m->duration = metrics_histogram(r, "tollgate_request_duration_seconds",
                                    "End-to-end request latency at the gateway (arrival to "
                                    "last byte); the 0.5 bucket is the p99 SLO.",
                                    smv, metrics_latency_buckets, metrics_latency_nbuckets);
    m->ttft = metrics_histogram(r, "tollgate_time_to_first_token_seconds",
                                "Arrival to the first streamed token sent to the client.", smv,
                                metrics_latency_buckets, metrics_latency_nbuckets);
    m->tpot = metrics_histogram(r, "tollgate_time_per_output_token_seconds",
                                "Mean time per output token after the first, per streamed "
                                "request.", smv, gwm_tpot_buckets, gwm_tpot_nbuckets);
    m->overhead = metrics_histogram(r, "tollgate_overhead_seconds",
                                    "Time the gateway itself added to a request (end to end "
                                    "minus time waiting on upstreams).",
                                    NULL, gwm_overhead_buckets, gwm_overhead_nbuckets);
    m->prompt = metrics_histogram(r, "tollgate_prompt_tokens",
                                  "Prompt tokens per request as reported by the upstream.", sm,
                                  gwm_prompt_buckets, gwm_prompt_nbuckets);
    m->tokens = metrics_counter(r, "tollgate_tokens_total",
                                "Tokens processed, by kind (prompt, completion).", tk);
    m->fallbacks = metrics_counter(r, "tollgate_fallbacks_total",
                                   "Requests answered with a fallback instead of the model, "
                                   "by reason.", fb);
    if (!m->requests || !m->duration || !m->ttft || !m->tpot || !m->overhead || !m->prompt ||
        !m->tokens || !m->fallbacks) {
        gwm_free(m);
        return NULL;
    }
    return m;
}

void gwm_free(gwm_t *m) {
    if (!m)
        return;
    metrics_registry_free(m->reg);
    free(m);
}

metrics_registry_t *gwm_registry(gwm_t *m) {
    return m->reg;
}

gwm_cache_t *gwm_cache_new(gwm_t *m) {
    gwm_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->m = m;
    c->overhead = metrics_child(m->overhead, NULL);
    return c;
}

void gwm_cache_free(gwm_cache_t *c) {
    free(c);
}

void gwm_cache_reset(gwm_cache_t *c) {
    memset(c->slots, 0, sizeof c->slots);
}

static const char *nz(const char *s) {
    return s ? s : "";
}

/* Fill a slot's children (family locks, once per tuple). 0, or -1 on no memory. */
static int slot_fill(gwm_t *m, slot_t *s, const gwm_req_t *r) {
    char code[16];
    snprintf(code, sizeof code, "%d", r->status);
    const char *sv = nz(r->service), *mo = nz(r->model), *va = nz(r->variant);
    s->requests = metrics_labels(m->requests, sv, mo, va, code);
    s->duration = metrics_labels(m->duration, sv, mo, va);
    s->ttft = metrics_labels(m->ttft, sv, mo, va);
    s->tpot = metrics_labels(m->tpot, sv, mo, va);
    s->prompt = metrics_labels(m->prompt, sv, mo);
    s->tok_prompt = metrics_labels(m->tokens, sv, mo, "prompt");
    s->tok_completion = metrics_labels(m->tokens, sv, mo, "completion");
    return s->requests && s->duration && s->ttft && s->tpot && s->prompt && s->tok_prompt &&
                   s->tok_completion
               ? 0
               : -1;
}

static slot_t *lookup(gwm_cache_t *c, const gwm_req_t *r, slot_t *tmp) {
    uintptr_t h = (uintptr_t)r->service * 31 + (uintptr_t)r->model * 17 +
                  (uintptr_t)r->variant * 7 + (uintptr_t)r->status;
    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15ull;
    size_t i = (size_t)(h >> 40) % GWM_CACHE_SLOTS;
    for (int probe = 0; probe < 8; probe++, i = (i + 1) % GWM_CACHE_SLOTS) {
        slot_t *s = &c->slots[i];
        if (s->status == r->status && s->service == r->service && s->model == r->model &&
            s->variant == r->variant)
            return s;
        if (s->status == 0) {
            *s = (slot_t){.service = r->service, .model = r->model, .variant = r->variant, .status = r->status};
            if (slot_fill(c->m, s, r) < 0) {
                s->status = 0;
                return NULL;
            }
            return s;
        }
    }
    /* Full neighbourhood: look up without caching (locks, but correct). */
    *tmp = (slot_t){.service = r->service, .model = r->model, .variant = r->variant, .status = r->status};
    return slot_fill(c->m, tmp, r) == 0 ? tmp : NULL;
}

void gwm_record(gwm_cache_t *c, const gwm_req_t *r) {
    slot_t tmp, *s = lookup(c, r, &tmp);
    if (!s)
        return;
    metrics_inc(s->requests);
    if (r->duration_s >= 0)
        metrics_observe(s->duration, r->duration_s);
    if (r->ttft_s >= 0)
        metrics_observe(s->ttft, r->ttft_s);
    if (r->tpot_s >= 0)
        metrics_observe(s->tpot, r->tpot_s);
    if (r->overhead_s >= 0)
        metrics_observe(c->overhead, r->overhead_s);
    if (r->prompt_tokens >= 0) {
        metrics_observe(s->prompt, (double)r->prompt_tokens);
        metrics_add(s->tok_prompt, (double)r->prompt_tokens);
    }
    if (r->completion_tokens >= 0)
        metrics_add(s->tok_completion, (double)r->completion_tokens);
}

void gwm_fallback(gwm_t *m, const char *service, const char *model, const char *reason) {
    metrics_inc(metrics_labels(m->fallbacks, nz(service), nz(model), nz(reason)));
}
