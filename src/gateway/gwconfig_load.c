/* gwconfig_load.c — read the gateway's YAML file (through core/config's tree) into a
 * gw_config_t; every error names the file, line and field. Unknown fields are errors. */
#include "gateway/gwconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "gateway/govcfg.h"
#include "gateway/obscfg.h"
#include "gateway/taskcfg.h"

/* Errors and the buffer they go to, threaded through the walk. */
typedef struct ld {
    char *err;
    size_t errlen;
} ld_t;

static int dup_to(char **dst, const char *s) {
    char *d = strdup(s);
    if (!d)
        return -ENOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

/* map[key] as a non-empty string into *dst (kept when absent). */
static int get_str(ld_t *l, const cfg_node_t *map, const char *key, char **dst) {
    const char *s = NULL;
    int rc = cfg_str(map, key, NULL, &s, l->err, l->errlen);
    if (rc || !s)
        return rc;
    if (!*s)
        return cfg_err(cfg_get(map, key), l->err, l->errlen, "must not be empty");
    return dup_to(dst, s);
}

static int get_u32(ld_t *l, const cfg_node_t *map, const char *key, uint32_t max, uint32_t *v) {
    int64_t x;
    int rc = cfg_int(map, key, *v, 0, max, &x, l->err, l->errlen);
    if (rc == 0)
        *v = (uint32_t)x;
    return rc;
}

/* An environment variable named by map[key]; *val NULL when the key is absent or the
 * variable unset. */
static int get_env(ld_t *l, const cfg_node_t *map, const char *key, const char **val) {
    const char *var = NULL;
    *val = NULL;
    int rc = cfg_str(map, key, NULL, &var, l->err, l->errlen);
    if (rc || !var)
        return rc;
    if (!*var)
        return cfg_err(cfg_get(map, key), l->err, l->errlen,
                       "expected the name of an environment variable");
    *val = getenv(var);
    if (*val && !**val)
        *val = NULL;
    return 0;
}

/* "host:port", or a bare port that keeps the host; "host:0" asks for any free port. */
static int get_listen(ld_t *l, const cfg_node_t *map, const char *key, gw_listen_t *out) {
    const cfg_node_t *n = cfg_get(map, key);
    if (!n || n->is_null)
        return 0;
    const char *s = n->type == CFG_SCALAR ? n->value : NULL;
    char *h = NULL;
    uint16_t p = 0;
    if (s && *s && strspn(s, "0123456789") == strlen(s)) {
        int64_t v;
        int rc = cfg_int(n, NULL, 0, 0, 65535, &v, l->err, l->errlen);
        if (rc == 0)
            out->port = (int)v;
        return rc;
    }
    size_t len = s ? strlen(s) : 0;
    if (len > 2 && !strcmp(s + len - 2, ":0") && s[len - 3] != ':') {
        if (!(h = strndup(s, len - 2)))
            return -ENOMEM;
    } else if (!s || gwconfig_parse_hostport(s, &h, &p) != 0) {
        return cfg_err(n, l->err, l->errlen, "expected host:port (e.g. 127.0.0.1:8080), got %s%s%s",
                       s ? "\"" : "", s ? s : cfg_type_name(n), s ? "\"" : "");
    }
    free(out->host);
    out->host = h;
    out->port = p;
    return 0;
}

static int load_admin(ld_t *l, const cfg_node_t *n, gw_admin_cfg_t *a) {
    static const char *const keys[] = {"listen", "enabled", "key", "key_env", NULL};
    int rc = cfg_check_keys(n, keys, l->err, l->errlen);
    if (rc)
        return rc;
    a->enabled = 1;
    a->where.line = n->key_line;
    const char *env;
    if ((rc = get_listen(l, n, "listen", &a->listen)) || (rc = cfg_bool(n, "enabled", 1, &a->enabled, l->err, l->errlen)) ||
        (rc = get_str(l, n, "key", &a->key)) || (rc = get_env(l, n, "key_env", &env)))
        return rc;
    /* A key from the environment wins over the file's, so the file can hold a default. */
    if (env) {
        a->key_from_env = 1;
        return dup_to(&a->key, env);
    }
    return 0;
}

/* http: head limits and client timeouts of the main listener. Ranges keep a typo from
 * disabling a defence: a head must fit a request line and a few headers, timeouts are at
 * least 100 ms and at most a day. */
static int load_http(ld_t *l, const cfg_node_t *n, gw_http_cfg_t *h) {
    static const char *const keys[] = {"max_head_bytes",    "max_headers",     "header_timeout_ms",
                                       "body_timeout_ms",   "idle_timeout_ms", "write_timeout_ms",
                                       "max_connections",   NULL};
    int rc = cfg_check_keys(n, keys, l->err, l->errlen);
    if (rc)
        return rc;
    h->where.line = n->key_line;
    const int64_t day = 24LL * 3600 * 1000;
    uint64_t head;
    int64_t nh, conns, t[4];
    uint32_t *dst[4] = {&h->header_timeout_ms, &h->body_timeout_ms, &h->idle_timeout_ms,
                        &h->write_timeout_ms};
    static const char *const tkeys[4] = {"header_timeout_ms", "body_timeout_ms",
                                         "idle_timeout_ms", "write_timeout_ms"};
    if ((rc = cfg_size(n, "max_head_bytes", h->max_head_bytes, 1024, 1u << 20, &head, l->err,
                       l->errlen)) ||
        (rc = cfg_int(n, "max_headers", (int64_t)h->max_headers, 8, 1024, &nh, l->err,
                      l->errlen)) ||
        (rc = cfg_int(n, "max_connections", h->max_conns, 16, 1000000, &conns, l->err,
                      l->errlen)))
        return rc;
    for (int i = 0; i < 4; i++)
        if ((rc = cfg_int(n, tkeys[i], *dst[i], 100, day, &t[i], l->err, l->errlen)))
            return rc;
    h->max_head_bytes = (size_t)head;
    h->max_headers = (size_t)nh;
    h->max_conns = (int)conns;
    for (int i = 0; i < 4; i++)
        *dst[i] = (uint32_t)t[i];
    return 0;
}

static int load_backend(ld_t *l, const cfg_node_t *n, gw_backend_cfg_t *b) {
    static const char *const keys[] = {"addresses",   "health_check", "ejection",
                                       "max_connections", "api_key", "api_key_env", NULL};
    static const char *const hkeys[] = {"path", "interval_ms", "timeout_ms", NULL};
    static const char *const ekeys[] = {"consecutive_failures", "base_ms", "max_ms", NULL};
    b->where.line = n->key_line;
    b->health.interval_ms = GW_DEF_HEALTH_INTERVAL;
    b->health.timeout_ms = GW_DEF_HEALTH_TIMEOUT;
    b->eject = (pool_eject_cfg_t){GW_DEF_EJECT_FAILURES, GW_DEF_EJECT_BASE_MS, GW_DEF_EJECT_MAX_MS};
    b->max_conns = GW_DEF_MAX_CONNS;
    if (!(b->name = strdup(n->key)) || !(b->health.path = strdup(GW_DEF_HEALTH_PATH)))
        return -ENOMEM;
    int rc = cfg_check_keys(n, keys, l->err, l->errlen);
    if (rc || (rc = cfg_require(n, "addresses", l->err, l->errlen)))
        return rc;
    const cfg_node_t *as = cfg_get(n, "addresses");
    if (as->type != CFG_SEQ || as->n == 0)
        return cfg_err(as, l->err, l->errlen, "expected a list of host:port, at least one");
    if (!(b->addrs = calloc(as->n, sizeof *b->addrs)))
        return -ENOMEM;
    for (size_t i = 0; i < as->n; i++) {
        const cfg_node_t *it = cfg_at(as, i);
        const char *s = it->type == CFG_SCALAR ? it->value : NULL;
        if (!s || gwconfig_parse_hostport(s, &b->addrs[i].host, &b->addrs[i].port) != 0)
            return cfg_err(it, l->err, l->errlen,
                           "expected host:port with a port 1-65535, got %s%s%s", s ? "\"" : "",
                           s ? s : cfg_type_name(it), s ? "\"" : "");
        b->addrs[i].where.line = it->line;
        b->naddrs = i + 1;
    }
    const cfg_node_t *h = cfg_get(n, "health_check");
    int on = 1;
    if (h && h->type == CFG_SCALAR) {
        /* `health_check: false` turns active checks off. */
        if ((rc = cfg_bool(h, NULL, 1, &on, l->err, l->errlen)))
            return rc;
        if (on)
            return cfg_err(h, l->err, l->errlen, "expected false or a mapping of path, interval_ms, timeout_ms");
        free(b->health.path);
        b->health.path = NULL;
    } else if (h) {
        if ((rc = cfg_check_keys(h, hkeys, l->err, l->errlen)) ||
            (rc = get_str(l, h, "path", &b->health.path)) ||
            (rc = get_u32(l, h, "interval_ms", 3600000, &b->health.interval_ms)) ||
            (rc = get_u32(l, h, "timeout_ms", 600000, &b->health.timeout_ms)))
            return rc;
    }
    const cfg_node_t *e = cfg_get(n, "ejection");
    if (e && ((rc = cfg_check_keys(e, ekeys, l->err, l->errlen)) ||
              (rc = get_u32(l, e, "consecutive_failures", 1000, &b->eject.failures)) ||
              (rc = get_u32(l, e, "base_ms", 3600000, &b->eject.base_ms)) ||
              (rc = get_u32(l, e, "max_ms", 86400000, &b->eject.max_ms))))
        return rc;
    const char *env;
    if ((rc = get_u32(l, n, "max_connections", 1000000, &b->max_conns)) ||
        (rc = get_str(l, n, "api_key", &b->api_key)) ||
        (rc = get_env(l, n, "api_key_env", &env)))
        return rc;
    if (env)
        return dup_to(&b->api_key, env);
    if (cfg_get(n, "api_key_env") && !b->api_key)
        return cfg_err(cfg_get(n, "api_key_env"), l->err, l->errlen,
                       "environment variable %s is not set", cfg_get(n, "api_key_env")->value);
    return 0;
}

static int load_route(ld_t *l, const cfg_node_t *n, gw_route_cfg_t *r) {
    static const char *const keys[] = {"variants", "deadlines", "retry", "tokenizer",
                                       "chat_template", "fallback", "sticky", "canary", NULL};
    /* tokenizer, chat_template: govcfg.c; fallback, sticky, canary: taskcfg.c */
    static const char *const vkeys[] = {"backend", "weight", "upstream_model", NULL};
    static const char *const dkeys[] = {"connect_ms", "ttft_ms", "total_ms", NULL};
    static const char *const rkeys[] = {"max_attempts", "budget_percent", "budget_burst", NULL};
    r->where.line = n->key_line;
    r->deadlines = (gw_deadlines_t){GW_DEF_CONNECT_MS, GW_DEF_TTFT_MS, GW_DEF_TOTAL_MS};
    r->retry = (gw_retry_cfg_t){GW_DEF_RETRY_ATTEMPTS, GW_DEF_RETRY_PERCENT, GW_DEF_RETRY_BURST};
    if (!(r->model = strdup(n->key)))
        return -ENOMEM;
    int rc = cfg_check_keys(n, keys, l->err, l->errlen);
    if (rc || (rc = cfg_require(n, "variants", l->err, l->errlen)))
        return rc;
    const cfg_node_t *vs = cfg_get(n, "variants");
    if (vs->type != CFG_MAP || vs->n == 0)
        return cfg_err(vs, l->err, l->errlen,
                       "expected a mapping of variant name to {backend, weight}, at least one");
    if (!(r->variants = calloc(vs->n, sizeof *r->variants)))
        return -ENOMEM;
    for (size_t i = 0; i < vs->n; i++) {
        const cfg_node_t *v = vs->items[i];
        gw_variant_cfg_t *va = &r->variants[i];
        r->nvariants = i + 1;
        va->where.line = v->key_line;
        va->weight = 1;
        if (!(va->name = strdup(v->key)))
            return -ENOMEM;
        if ((rc = cfg_check_keys(v, vkeys, l->err, l->errlen)) ||
            (rc = cfg_require(v, "backend", l->err, l->errlen)) ||
            (rc = get_str(l, v, "backend", &va->backend)) ||
            (rc = get_u32(l, v, "weight", 1000000, &va->weight)) ||
            (rc = get_str(l, v, "upstream_model", &va->upstream_model)))
            return rc;
    }
    const cfg_node_t *d = cfg_get(n, "deadlines"), *rt = cfg_get(n, "retry");
    if (d && ((rc = cfg_check_keys(d, dkeys, l->err, l->errlen)) ||
              (rc = get_u32(l, d, "connect_ms", 600000, &r->deadlines.connect_ms)) ||
              (rc = get_u32(l, d, "ttft_ms", 86400000, &r->deadlines.ttft_ms)) ||
              (rc = get_u32(l, d, "total_ms", 86400000, &r->deadlines.total_ms))))
        return rc;
    if (rt && ((rc = cfg_check_keys(rt, rkeys, l->err, l->errlen)) ||
               (rc = get_u32(l, rt, "max_attempts", 1000, &r->retry.max_attempts)) ||
               (rc = get_u32(l, rt, "budget_percent", 1000, &r->retry.budget_percent)) ||
               (rc = get_u32(l, rt, "budget_burst", 1000000, &r->retry.budget_burst))))
        return rc;
    return 0;
}

/* A section that is a mapping of name -> entry; NULL or null means none. */
static int section(ld_t *l, const cfg_node_t *n, size_t *count) {
    *count = 0;
    if (!n || (n->type == CFG_SCALAR && n->is_null))
        return 0;
    if (n->type != CFG_MAP)
        return cfg_err(n, l->err, l->errlen, "expected a mapping of name: settings");
    *count = n->n;
    return 0;
}

static int load_tree(ld_t *l, const cfg_node_t *root, gw_config_t *c) {
    static const char *const keys[] = {"listen", "threads", "max_body_bytes", "http", "admin",
                                       "backends", "routes", "services", "redis",
                                       "fair_queue", "request_log", "access_log", "metrics", "tasks",
                                       "circuit_breaker", NULL};
    int rc = cfg_check_keys(root, keys, l->err, l->errlen);
    int64_t threads;
    uint64_t body;
    if (rc || (rc = get_listen(l, root, "listen", &c->listen)) ||
        (rc = cfg_int(root, "threads", 0, 0, 256, &threads, l->err, l->errlen)) ||
        (rc = cfg_size(root, "max_body_bytes", GW_DEF_MAX_BODY, 1024, 1u << 30, &body, l->err,
                       l->errlen)))
        return rc;
    c->threads = (int)threads;
    c->max_body_bytes = (size_t)body;
    const cfg_node_t *hs = cfg_get(root, "http");
    if (hs && !(hs->type == CFG_SCALAR && hs->is_null) && (rc = load_http(l, hs, &c->http)))
        return rc;
    const cfg_node_t *a = cfg_get(root, "admin");
    if (a && !(a->type == CFG_SCALAR && a->is_null) && (rc = load_admin(l, a, &c->admin)))
        return rc;

    const cfg_node_t *bs = cfg_get(root, "backends"), *rs = cfg_get(root, "routes");
    size_t nb, nr;
    if ((rc = section(l, bs, &nb)) || (rc = section(l, rs, &nr)))
        return rc;
    if (nb && !(c->backends = calloc(nb, sizeof *c->backends)))
        return -ENOMEM;
    for (size_t i = 0; i < nb; i++) {
        c->nbackends = i + 1;
        if ((rc = load_backend(l, bs->items[i], &c->backends[i])))
            return rc;
    }
    if (nr && !(c->routes = calloc(nr, sizeof *c->routes)))
        return -ENOMEM;
    for (size_t i = 0; i < nr; i++) {
        c->nroutes = i + 1;
        if ((rc = load_route(l, rs->items[i], &c->routes[i])))
            return rc;
    }
    /* Governance: services, keys, limits, route tokenizers, redis. */
    if ((rc = govcfg_load(root, c->path, &c->gov, l->err, l->errlen)))
        return rc;
    /* Degradation: tasks, circuit breaker, fallback variants, sticky, canary. */
    if ((rc = taskcfg_load(root, c, &c->deg, l->err, l->errlen)))
        return rc;
    /* Observability: request log, access log. */
    return obscfg_load(root, &c->obs, l->err, l->errlen);
}

/* Common tail of both loaders: walk the tree, validate, clean up on error. */
static int finish(const char *name, cfg_node_t *root, gw_config_t *cfg, char *err, size_t errlen) {
    ld_t l = {err, errlen};
    int rc = load_tree(&l, root, cfg);
    cfg_free(root);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "%s: out of memory", name);
    if (rc == 0)
        rc = gwconfig_validate(cfg, err, errlen);
    if (rc)
        gwconfig_free(cfg);
    return rc;
}

static int start(const char *name, gw_config_t *cfg) {
    int rc = gwconfig_defaults(cfg);
    if (rc == 0 && !(cfg->path = strdup(name))) {
        gwconfig_free(cfg);
        rc = -ENOMEM;
    }
    return rc;
}

int gwconfig_load_string(const char *name, const char *text, size_t len, gw_config_t *cfg,
                         char *err, size_t errlen) {
    cfg_node_t *root;
    memset(cfg, 0, sizeof *cfg);
    int rc = cfg_load_string(text, len, name, &root, err, errlen);
    if (rc)
        return rc;
    if ((rc = start(name, cfg))) {
        cfg_free(root);
        return rc;
    }
    return finish(name, root, cfg, err, errlen);
}

int gwconfig_load(const char *path, gw_config_t *cfg, char *err, size_t errlen) {
    cfg_node_t *root;
    memset(cfg, 0, sizeof *cfg);
    int rc = cfg_load_file(path, &root, err, errlen);
    if (rc)
        return rc;
    if ((rc = start(path, cfg))) {
        cfg_free(root);
        return rc;
    }
    return finish(path, root, cfg, err, errlen);
}
