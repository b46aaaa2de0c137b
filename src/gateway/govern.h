/* govern.h — the gateway's governance at run time: authenticate a bearer key to a service,
 * admit a request against its per-request limits, rate limits and daily budget (charging
 * prompt + completion allowance), and correct the charge with the actual usage at the end. */
#ifndef TOLLGATE_GATEWAY_GOVERN_H
#define TOLLGATE_GATEWAY_GOVERN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/json.h"
#include "gateway/budget.h"
#include "gateway/govcfg.h"
#include "gateway/ratelimit.h"

/* Why a request was refused (the `reason` label of tollgate_rejected_total). */
enum {
    GOV_R_MISSING_KEY = 0, /* 401 */
    GOV_R_INVALID_KEY,     /* 401 */
    GOV_R_MODEL,           /* 403: key not allowed to use the model */
    GOV_R_PROMPT,          /* 400: prompt over max_prompt_tokens */
    GOV_R_COMPLETION,      /* 400: max_tokens over the cap with over_max_completion: reject */
    GOV_R_REQUESTS,        /* 429: requests per minute */
    GOV_R_TOKENS,          /* 429: tokens per minute */
    GOV_R_CONCURRENCY,     /* 429: concurrent requests */
    GOV_R_TOO_LARGE,       /* 400: one request above the tokens-per-minute burst */
    GOV_R_BUDGET,          /* 429: daily token budget */
    GOV_R_QUEUE_FULL,      /* 429: fair queue full */
    GOV_R_QUEUE_TIMEOUT,   /* 503: fair queue deadline */
    GOV_R_COUNT
};
const char *gov_reason_name(int r);

/* The mutable limiter state of one service. Shared by every worker thread (guarded by mu,
 * held for a few hundred ns per admission and per finish) and by every config generation
 * that names the service: a reload keeps the counts. Lives until gov_free. */
/* A service's limiter state on one model (model_limits), kept by model name. */
typedef struct gov_mstate {
    char model[128];
    rl_state_t rl;
    struct gov_mstate *next;
} gov_mstate_t;

typedef struct gov_state {
    char name[64];
    gov_mstate_t *models; /* per-model states, under mu too */
    pthread_mutex_t mu;
    rl_state_t rl;
    budget_t budget;
    uint64_t daily_limit; /* copy for the metric (last bound config) */
    struct gov_state *next;
} gov_state_t;

/* Process-wide governance runtime (one per gateway). */
typedef struct gov {
    pthread_mutex_t mu; /* guards the state list: insertions at config load only */
    gov_state_t *states;
    atomic_uint_fast64_t rejected[GOV_R_COUNT];
    atomic_uint_fast64_t estimated;              /* prompts counted by estimate (no tokenizer) */
    atomic_uint_fast64_t exact;                  /* prompts counted exactly */
    atomic_uint_fast64_t redis_fallbacks;        /* admissions decided locally: Redis down */
    atomic_uint_fast64_t redis_ups, redis_downs; /* connection health transitions */
    atomic_uint_fast64_t redis_lost_corrections; /* end-of-request corrections not applied */
} gov_t;

int gov_init(gov_t *g);
void gov_destroy(gov_t *g);
/* Point each service of cfg at its state (created full on first sight). Call before the
 * config is published to the workers. 0 or -ENOMEM. */
int gov_bind(gov_t *g, gov_cfg_t *cfg, uint64_t now_ns, int64_t unix_s);

/* One request's charges, kept from admission to the end. */
typedef struct gov_ticket {
    gov_state_t *st; /* NULL: nothing to correct */
    const gov_service_cfg_t *svc;
    uint64_t charged;   /* tokens reserved (prompt + allowance) */
    int64_t day;        /* budget day of the reservation */
    int64_t prompt;     /* counted prompt tokens, -1 when not counted */
    int exact;          /* prompt counted with the tokenizer */
    uint64_t allowance; /* completion tokens reserved */
    uint64_t cost;      /* prompt + allowance: what admission charges */
    int shared;         /* charged in Redis (govshared.h), not in st */
    char lease[40];     /* shared: the concurrency lease to give back */
    const gov_model_limit_t *ml; /* the service's limits on this request's model, or NULL */
    int ml_charged;     /* ml's bucket charged (always locally, also with Redis) */
} gov_ticket_t;

/* What the admission decided; on refusal everything the error response needs. */
typedef struct gov_decision {
    int status;        /* 0 admitted; else 400/401/403/429 */
    int reason;        /* GOV_R_* when refused */
    const char *type;  /* OpenAI error type */
    const char *code;  /* OpenAI error code */
    const char *param; /* or NULL */
    char message[320];
    uint64_t retry_after_s; /* 429: Retry-After */
    int rl_headers;         /* rl below is valid: send x-ratelimit-* */
    rl_result_t rl;
    int64_t set_max_tokens;     /* >= 0: the upstream body's max_tokens must become this */
    const char *max_tokens_key; /* "max_tokens" or "max_completion_tokens" */
} gov_decision_t;

/* Authenticate an Authorization header value. Returns the service index (>= 0), or -1
 * with *d filled (401) when the key is missing or unknown. */
int gov_authenticate(gov_t *g, const gov_cfg_t *cfg, const char *authorization, gov_decision_t *d);
/* 403 unless service may use model. 0 or -1 with *d filled. */
int gov_check_model(gov_t *g, const gov_cfg_t *cfg, int service, const char *model,
                    gov_decision_t *d);

/* The two halves of gov_admit, for callers that charge the service elsewhere (Redis):
 * gov_admit_request counts the prompt and applies the per-request limits (no shared state;
 * fills t->cost, t->allowance, d->set_max_tokens); gov_admit_local charges the local
 * limiter. Each returns 0 or the refusal status with d filled. */
int gov_admit_request(gov_t *g, const gov_cfg_t *cfg, int service, const tokcount_t *tc,
                      tokcount_work_t *w, const json_doc_t *body, int is_chat, gov_ticket_t *t,
                      gov_decision_t *d);
int gov_admit_local(gov_t *g, gov_ticket_t *t, uint64_t now_ns, int64_t unix_s, gov_decision_t *d);
/* Name the request's model, so that the service's model_limits for it apply (call after
 * gov_admit_request). */
void gov_ticket_model(gov_ticket_t *t, const char *model);
/* Charge only the model-level limits (the shared path: Redis charged the service). 0 or the
 * refusal status with d filled. */
int gov_admit_model(gov_t *g, gov_ticket_t *t, uint64_t now_ns, gov_decision_t *d);

/* Fill d for a refusal by verdict (rl_verdict_t, or GOV_V_BUDGET with the budget used),
 * d->rl holding the limiter's numbers. Counts it. Returns the status. */
#define GOV_V_BUDGET 100
int gov_refusal(gov_t *g, const gov_service_cfg_t *sc, const gov_ticket_t *t, int verdict,
                uint64_t budget_used_now, int64_t unix_s, gov_decision_t *d);

/* Admit a parsed request body (chat when is_chat, else completion) for service (-1: no
 * services configured, only counting). tc: the route's tokenizer or NULL (estimate). On
 * success the charges are in *t and d->status is 0; else d says why and nothing is
 * charged. now_ns: monotonic; unix_s: wall clock (budget days). Returns d->status. */
int gov_admit(gov_t *g, const gov_cfg_t *cfg, int service, const tokcount_t *tc, tokcount_work_t *w,
              const json_doc_t *body, int is_chat, uint64_t now_ns, int64_t unix_s, gov_ticket_t *t,
              gov_decision_t *d);
/* The request ended. prompt/completion: usage reported upstream (-1 unknown). Without
 * usage a request that got a 2xx keeps its reservation, any other gives it back. */
void gov_finish(gov_t *g, gov_ticket_t *t, int64_t prompt, int64_t completion, int status,
                uint64_t now_ns, int64_t unix_s);

/* The tokens a finished request is charged: prompt + completion as reported upstream; with
 * no usage, the reservation for a 2xx and nothing otherwise. */
uint64_t gov_actual(const gov_ticket_t *t, int64_t prompt, int64_t completion, int status);

/* Call add(name, value) for Retry-After (refusals) and the six x-ratelimit-* headers. */
typedef void (*gov_header_fn)(void *arg, const char *name, const char *value);
void gov_headers(const gov_decision_t *d, const gov_service_cfg_t *svc, gov_header_fn add,
                 void *arg);

/* Copy an object body with max_tokens / max_completion_tokens replaced by one `key: n`.
 * 0, -EINVAL (not an object), -ENOMEM. */
int gov_rewrite_max_tokens(const json_doc_t *d, const char *key, int64_t n, buf_t *out);

/* The live limits and budget state as JSON for the admin API (GET /limits): per service its
 * limits, what remains in each bucket now, requests in flight, tokens used today (this
 * process's view: with Redis the shared counters are in Redis), and the refusal counts. */
void gov_write_state(gov_t *g, const gov_cfg_t *cfg, uint64_t now_ns, int64_t unix_s, json_w_t *w);

/* Prometheus text for tollgate_rejected_total{reason}, tollgate_budget_used_ratio{service},
 * tollgate_prompt_count_total{method}. */
int gov_render_metrics(gov_t *g, int64_t unix_s, buf_t *out);

#endif
