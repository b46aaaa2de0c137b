/* govcfg.h — the governance part of the gateway config: services with hashed keys, allowed
 * models, rate limits and budgets, route tokenizers, the Redis address. Immutable once
 * loaded; owned by the gw_config_t that holds it. */
#ifndef TOLLGATE_GATEWAY_GOVCFG_H
#define TOLLGATE_GATEWAY_GOVCFG_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "gateway/keys.h"
#include "gateway/ratelimit.h"
#include "gateway/tokcount.h"

#define GOV_DEF_ALLOWANCE                                                                          \
    256 /* completion tokens reserved when neither request nor service caps them */
#define GOV_DEF_WEIGHT 1
#define GOV_DEF_REDIS_TIMEOUT                                                                      \
    100 /* ms for one Redis round trip before falling back to local limits */

/* What happens to a max_tokens above the service's max_completion_tokens. */
enum { GOV_CLAMP = 0, GOV_REJECT = 1 };

/* Limits of one service on one model (`model_limits`), on top of the service's own. */
typedef struct gov_model_limit {
    char *model;
    rl_limits_t rl;
    void *state; /* its limiter state in the service's runtime state, bound by gov_bind */
} gov_model_limit_t;

typedef struct gov_service_cfg {
    char *name;
    rl_limits_t rl;             /* requests/tokens per minute, bursts, concurrency */
    uint64_t daily_tokens;      /* 0 = no daily budget */
    uint64_t max_prompt_tokens; /* 0 = unlimited */
    uint64_t max_completion;    /* 0 = unlimited; else the cap and the default max_tokens */
    int over_completion;        /* GOV_CLAMP or GOV_REJECT */
    uint32_t weight;            /* fair-queue share */
    char **models;              /* allowed route models; NULL = all */
    gov_model_limit_t *mlimits; /* per-model limits (model_limits) */
    size_t nmlimits;
    size_t nmodels;
    int line;    /* where it was defined */
    void *state; /* runtime state bound by gov_bind (not owned) */
} gov_service_cfg_t;

typedef struct gov_route_tok {
    char *model;    /* route model name */
    tokcount_t *tc; /* owned; NULL = estimate */
} gov_route_tok_t;

/* A backend pool's fair queue: beyond max_in_flight requests (per worker thread, as the
 * backend's max_connections) the rest wait in per-service weighted fair order. */
typedef struct gov_queue_cfg {
    char *backend; /* backend name */
    uint32_t max_in_flight;
    uint32_t max_waiting; /* per worker; beyond: 429 queue_full at once */
    uint32_t timeout_ms;  /* waiting longer: 503 queue_timeout */
} gov_queue_cfg_t;

#define GOV_DEF_QUEUE_WAITING 256
#define GOV_DEF_QUEUE_TIMEOUT 2000

typedef struct gov_cfg {
    gov_service_cfg_t *services; /* NULL/0: no services section, every caller anonymous */
    size_t nservices;
    keys_table_t keys;     /* every key hash -> service index */
    gov_route_tok_t *toks; /* one per route that names a tokenizer */
    size_t ntoks;
    char *redis_host; /* NULL: limits are local to this process */
    uint16_t redis_port;
    char *redis_prefix; /* key prefix, default "tollgate" */
    uint32_t redis_timeout_ms;
    gov_queue_cfg_t *queues; /* fair_queue section */
    size_t nqueues;
} gov_cfg_t;

/* Read `services`, `redis` and the routes' `tokenizer` / `chat_template` from a config root
 * (the caller has checked top-level keys). Loads each tokenizer file (relative paths are
 * relative to the config file's directory, config_path). *out stays NULL when there is no
 * governance to do (no services, no tokenizers, no redis). 0, or -EINVAL/-ENOMEM with
 * "FILE:LINE: field: what" in err. */
int govcfg_load(const cfg_node_t *root, const char *config_path, gov_cfg_t **out, char *err,
                size_t errlen);
void govcfg_free(gov_cfg_t *g);

/* The service allowed to use model? (NULL models list: everything.) */
int govcfg_model_allowed(const gov_service_cfg_t *s, const char *model);
/* The fair-queue settings of a backend; NULL when it has none. */
const gov_queue_cfg_t *govcfg_queue(const gov_cfg_t *g, const char *backend);
/* The tokenizer of a route model; NULL when it has none. */
const tokcount_t *govcfg_tokenizer(const gov_cfg_t *g, const char *model);

#endif
