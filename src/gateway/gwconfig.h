/* gwconfig.h — the gateway's configuration: data model, defaults, validation, YAML loading. */
#ifndef TOLLGATE_GATEWAY_GWCONFIG_H
#define TOLLGATE_GATEWAY_GWCONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/pool.h"

#define GWCONFIG_ERR_MAX 512 /* room for one "FILE:LINE: field: message" */
#define GW_MAX_VARIANTS  64  /* per route */

/* Defaults, applied by gwconfig_defaults() and written down in docs/gateway.md. */
#define GW_DEF_PORT            8080
#define GW_DEF_ADMIN_PORT      8081
#define GW_DEF_MAX_BODY        (1u << 20)
#define GW_DEF_CONNECT_MS      1000
#define GW_DEF_TTFT_MS         30000
#define GW_DEF_TOTAL_MS        120000
#define GW_DEF_RETRY_ATTEMPTS  2     /* the first attempt and one retry */
#define GW_DEF_RETRY_PERCENT   20
#define GW_DEF_RETRY_BURST     10
#define GW_DEF_HEALTH_PATH     "/health"
#define GW_DEF_HEALTH_INTERVAL 5000
#define GW_DEF_HEALTH_TIMEOUT  1000
#define GW_DEF_EJECT_FAILURES  3
#define GW_DEF_EJECT_BASE_MS   5000
#define GW_DEF_EJECT_MAX_MS    60000
#define GW_DEF_MAX_CONNS       0     /* per address and worker: 0 = unlimited */

/* Where a value came from, so that errors found after parsing still name it. */
typedef struct gw_where {
    int line; /* 1-based line in the file, 0 when the value is a default */
} gw_where_t;

typedef struct gw_listen {
    char *host; /* numeric address to bind */
    int port;
} gw_listen_t;

typedef struct gw_admin_cfg {
    int enabled;  /* 0 when the section is absent or `enabled: false` */
    gw_listen_t listen; /* default 127.0.0.1:GW_DEF_ADMIN_PORT */
    char *key;    /* bearer key for the admin API (from `key` or the env var in `key_env`) */
    int key_from_env; /* key came from key_env's variable, which wins over `key` */
    gw_where_t where;
} gw_admin_cfg_t;

typedef struct gw_addr_cfg {
    char *host;
    uint16_t port;
    gw_where_t where;
} gw_addr_cfg_t;

typedef struct gw_health_cfg {
    char *path;           /* NULL: no active checks */
    uint32_t interval_ms;
    uint32_t timeout_ms;
} gw_health_cfg_t;

/* A backend pool: addresses serving the same models, balanced by least outstanding. */
typedef struct gw_backend_cfg {
    char *name;
    gw_addr_cfg_t *addrs;
    size_t naddrs;
    gw_health_cfg_t health;
    pool_eject_cfg_t eject;
    uint32_t max_conns;    /* per address and worker thread; 0 = unlimited */
    char *api_key;         /* sent upstream as `Authorization: Bearer`; NULL = none */
    gw_where_t where;
} gw_backend_cfg_t;

typedef struct gw_variant_cfg {
    char *name;
    char *backend;         /* backend name as written */
    size_t backend_idx;    /* resolved by validation */
    uint32_t weight;
    char *upstream_model;  /* model name sent upstream; NULL = the route's model */
    gw_where_t where;
} gw_variant_cfg_t;

typedef struct gw_deadlines {
    uint32_t connect_ms; /* TCP connect to an upstream address, per attempt */
    uint32_t ttft_ms;    /* request start to the first streamed event sent on (streams only) */
    uint32_t total_ms;   /* request start to the end of the response, retries included */
} gw_deadlines_t;

typedef struct gw_retry_cfg {
    uint32_t max_attempts;   /* attempts in all, >= 1 (1 = never retry) */
    uint32_t budget_percent; /* retries at most this % of first attempts ... */
    uint32_t budget_burst;   /* ... plus this many */
} gw_retry_cfg_t;

/* A model name clients ask for, and how its requests are shared out. */
typedef struct gw_route_cfg {
    char *model;
    gw_variant_cfg_t *variants;
    size_t nvariants;
    gw_deadlines_t deadlines;
    gw_retry_cfg_t retry;
    gw_where_t where;
} gw_route_cfg_t;

/* Limits on what clients send the main listener (core/httpd's, defaults HTTPD_DEFAULT_*).
 * The timeouts apply on reload; the rest at start-up only. */
typedef struct gw_http_cfg {
    size_t max_head_bytes;      /* request line + headers; larger: 431 */
    size_t max_headers;         /* header lines; more: 431 */
    uint32_t header_timeout_ms; /* the whole head within this, or 408 and close (slow loris) */
    uint32_t body_timeout_ms;   /* the body after the head within this, or 408 and close */
    uint32_t idle_timeout_ms;   /* an idle keep-alive connection is closed after this */
    uint32_t write_timeout_ms;  /* a client that takes nothing for this long is dropped */
    int max_conns;              /* client connections over all workers; beyond: 503 */
    gw_where_t where;
} gw_http_cfg_t;

typedef struct gw_config {
    char *path;              /* the file it was loaded from (for reload and errors) */
    gw_listen_t listen;
    int threads;             /* worker threads; 0 = number of cores */
    size_t max_body_bytes;   /* request bodies larger than this: 413 */
    gw_http_cfg_t http;      /* the `http:` section: head limits and client timeouts */
    gw_admin_cfg_t admin;
    gw_backend_cfg_t *backends;
    size_t nbackends;
    gw_route_cfg_t *routes;
    size_t nroutes;
    struct gov_cfg *gov;     /* services, keys, limits, tokenizers, redis (govcfg.h); NULL: none */
    struct obs_cfg *obs;     /* request log, access log (obscfg.h); set by a successful load */
    struct taskcfg *deg;     /* tasks, circuit breaker, fallback/sticky/canary (taskcfg.h) */
} gw_config_t;

/* Fill cfg with defaults and no backends or routes (all pointers owned by cfg). */
int gwconfig_defaults(gw_config_t *cfg);

/* Load and validate a YAML file. 0 and a complete *cfg, or a negative errno with a
 * message in err ("FILE:LINE: field.path: what is wrong, what to do") and *cfg empty. */
int gwconfig_load(const char *path, gw_config_t *cfg, char *err, size_t errlen);
/* The same from text in memory; `name` stands for the file in messages. */
int gwconfig_load_string(const char *name, const char *text, size_t len, gw_config_t *cfg,
                         char *err, size_t errlen);

/* Check cross-references and ranges of a filled-in config, resolve variant backends.
 * 0, or -EINVAL with a message in err naming the line and field. */
int gwconfig_validate(gw_config_t *cfg, char *err, size_t errlen);

void gwconfig_free(gw_config_t *cfg);

/* Lookups by name; NULL when absent. Linear: a config holds a handful of each. */
const gw_route_cfg_t *gwconfig_route(const gw_config_t *cfg, const char *model);
const gw_backend_cfg_t *gwconfig_backend(const gw_config_t *cfg, const char *name);

/* Parse "host:port", "[v6]:port" into host (malloc'd) and port. 0 or -EINVAL. */
int gwconfig_parse_hostport(const char *s, char **host, uint16_t *port);

#endif
