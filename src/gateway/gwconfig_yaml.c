/* gwconfig_yaml.c — read the gateway's YAML file into a gw_config_t, naming line and field
 * in every error. Uses libyaml's document API; unknown keys are errors (typos must not pass). */
#include "gateway/gwconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* The walk's context: the document, the error buffer, the field path being read. */
typedef struct ld {
    yaml_document_t *doc;
    gw_config_t *cfg;
    char *err;
    size_t errlen;
    const char *name; /* file name for messages */
    char path[256];   /* dotted field path of the value being read */
} ld_t;

static int ld_fail(ld_t *l, yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ld_fail(ld_t *l, yaml_node_t *n, const char *fmt, ...) {
    int k = snprintf(l->err, l->errlen, "%s:%lu: %s%s", l->name,
                     n ? (unsigned long)n->start_mark.line + 1 : 1ul, l->path,
                     l->path[0] ? ": " : "");
    if (k >= 0 && (size_t)k < l->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err + k, l->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Push / pop a path component; returns the old length to pop back to. */
static size_t ld_push(ld_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t ld_push(ld_t *l, const char *fmt, ...) {
    size_t old = strlen(l->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->path + old, sizeof l->path - old, fmt, ap);
    va_end(ap);
    return old;
}
static void ld_pop(ld_t *l, size_t old) {
    l->path[old] = '\0';
}

static const char *scalar(yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int ld_line(yaml_node_t *n) {
    return (int)n->start_mark.line + 1;
}

static int ld_str(ld_t *l, yaml_node_t *n, char **out) {
    const char *s = scalar(n);
    if (!s || !*s)
        return ld_fail(l, n, "expected a non-empty string");
    char *d = strdup(s);
    if (!d)
        return -ENOMEM;
    free(*out);
    *out = d;
    return 0;
}

static int ld_u32(ld_t *l, yaml_node_t *n, uint32_t max, uint32_t *out) {
    const char *s = scalar(n);
    char *end;
    if (!s || !*s || *s == '-')
        return ld_fail(l, n, "expected a non-negative integer, got %s%s%s", s ? "\"" : "",
                       s ? s : "a list or map", s ? "\"" : "");
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno)
        return ld_fail(l, n, "expected a non-negative integer, got \"%s\"", s);
    if (v > max)
        return ld_fail(l, n, "%llu is too large (at most %u)", v, max);
    *out = (uint32_t)v;
    return 0;
}

static int ld_bool(ld_t *l, yaml_node_t *n, int *out) {
    const char *s = scalar(n);
    if (s && (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")))
        return *out = 1, 0;
    if (s && (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")))
        return *out = 0, 0;
    return ld_fail(l, n, "expected true or false");
}

static int ld_hostport(ld_t *l, yaml_node_t *n, char **host, int *port) {
    const char *s = scalar(n);
    char *h = NULL;
    uint16_t p = 0;
    /* A bare port ("8080") keeps the host; "host:0" asks for any free port. */
    if (s && *s && strspn(s, "0123456789") == strlen(s)) {
        uint32_t v;
        int rc = ld_u32(l, n, 65535, &v);
        if (rc == 0)
            *port = (int)v;
        return rc;
    }
    if (s && strlen(s) > 2 && !strcmp(s + strlen(s) - 2, ":0")) {
        if (!(h = strndup(s, strlen(s) - 2)))
            return -ENOMEM;
        free(*host);
        *host = h;
        *port = 0;
        return 0;
    }
    if (!s || gwconfig_parse_hostport(s, &h, &p) != 0)
        return ld_fail(l, n, "expected host:port (e.g. 127.0.0.1:8080), got \"%s\"",
                       s ? s : "a list or map");
    free(*host);
    *host = h;
    *port = p;
    return 0;
}

/* Mapping iteration: for each key/value pair call fn; keys must be scalars. */
typedef int (*ld_pair_fn)(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg);

static int ld_map(ld_t *l, yaml_node_t *n, ld_pair_fn fn, void *arg) {
    if (!n || n->type != YAML_MAPPING_NODE)
        return ld_fail(l, n, "expected a map of key: value");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
        const char *key = scalar(k);
        if (!key)
            return ld_fail(l, k, "keys must be plain strings");
        /* YAML lets a later duplicate win silently; in a config that hides a mistake. */
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *qk = yaml_document_get_node(l->doc, q->key);
            if (scalar(qk) && !strcmp(scalar(qk), key)) {
                ld_push(l, "%s%s", l->path[0] ? "." : "", key);
                return ld_fail(l, k, "given twice (first at line %d)", ld_line(qk));
            }
        }
        int rc = fn(l, key, k, v, arg);
        if (rc)
            return rc;
    }
    return 0;
}

static int ld_unknown(ld_t *l, yaml_node_t *k, const char *key, const char *known) {
    ld_push(l, "%s%s", l->path[0] ? "." : "", key);
    return ld_fail(l, k, "unknown key \"%s\" (known here: %s)", key, known);
}

/* Field with a path component pushed for the duration of the read. */
#define FIELD(l, key, expr)                                                                        \
    do {                                                                                           \
        size_t old_ = ld_push(l, "%s%s", (l)->path[0] ? "." : "", key);                            \
        int rc_ = (expr);                                                                          \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
        ld_pop(l, old_);                                                                           \
    } while (0)

/* --- admin --- */

static int admin_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_admin_cfg_t *a = arg;
    if (!strcmp(key, "listen")) {
        FIELD(l, key, ld_hostport(l, v, &a->listen.host, &a->listen.port));
    } else if (!strcmp(key, "enabled")) {
        FIELD(l, key, ld_bool(l, v, &a->enabled));
    } else if (!strcmp(key, "key")) {
        if (!a->key_from_env) /* a key from the environment wins over the file's */
            FIELD(l, key, ld_str(l, v, &a->key));
    } else if (!strcmp(key, "key_env")) {
        const char *var = scalar(v), *val = var ? getenv(var) : NULL;
        if (!var || !*var) {
            size_t old = ld_push(l, ".%s", key);
            (void)old;
            return ld_fail(l, v, "expected the name of an environment variable");
        }
        if (val && *val) {
            free(a->key);
            if (!(a->key = strdup(val)))
                return -ENOMEM;
            a->key_from_env = 1;
        }
    } else {
        return ld_unknown(l, k, key, "listen, enabled, key, key_env");
    }
    return 0;
}

/* --- backends --- */

static int health_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_health_cfg_t *h = arg;
    if (!strcmp(key, "path"))
        FIELD(l, key, ld_str(l, v, &h->path));
    else if (!strcmp(key, "interval_ms"))
        FIELD(l, key, ld_u32(l, v, 3600000, &h->interval_ms));
    else if (!strcmp(key, "timeout_ms"))
        FIELD(l, key, ld_u32(l, v, 600000, &h->timeout_ms));
    else
        return ld_unknown(l, k, key, "path, interval_ms, timeout_ms");
    return 0;
}

static int eject_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    pool_eject_cfg_t *e = arg;
    if (!strcmp(key, "consecutive_failures"))
        FIELD(l, key, ld_u32(l, v, 1000, &e->failures));
    else if (!strcmp(key, "base_ms"))
        FIELD(l, key, ld_u32(l, v, 3600000, &e->base_ms));
    else if (!strcmp(key, "max_ms"))
        FIELD(l, key, ld_u32(l, v, 86400000, &e->max_ms));
    else
        return ld_unknown(l, k, key, "consecutive_failures, base_ms, max_ms");
    return 0;
}

static int ld_addresses(ld_t *l, yaml_node_t *v, gw_backend_cfg_t *b) {
    if (!v || v->type != YAML_SEQUENCE_NODE)
        return ld_fail(l, v, "expected a list of host:port");
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (!(b->addrs = calloc(n ? n : 1, sizeof *b->addrs)))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = yaml_document_get_node(l->doc, v->data.sequence.items.start[i]);
        const char *s = scalar(item);
        size_t old = ld_push(l, "[%zu]", i);
        if (!s || gwconfig_parse_hostport(s, &b->addrs[i].host, &b->addrs[i].port) != 0)
            return ld_fail(l, item, "expected host:port with a port 1-65535, got \"%s\"",
                           s ? s : "a list or map");
        ld_pop(l, old);
        b->addrs[i].where.line = ld_line(item);
        b->naddrs = i + 1;
    }
    return 0;
}

static int backend_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_backend_cfg_t *b = arg;
    if (!strcmp(key, "addresses")) {
        FIELD(l, key, ld_addresses(l, v, b));
    } else if (!strcmp(key, "health_check")) {
        /* `health_check: false` turns active checks off. */
        const char *s = scalar(v);
        if (s && (!strcmp(s, "false") || !strcmp(s, "off") || !strcmp(s, "no"))) {
            free(b->health.path);
            b->health.path = NULL;
        } else {
            FIELD(l, key, ld_map(l, v, health_pair, &b->health));
        }
    } else if (!strcmp(key, "ejection")) {
        FIELD(l, key, ld_map(l, v, eject_pair, &b->eject));
    } else if (!strcmp(key, "max_connections")) {
        FIELD(l, key, ld_u32(l, v, 1000000, &b->max_conns));
    } else if (!strcmp(key, "api_key")) {
        FIELD(l, key, ld_str(l, v, &b->api_key));
    } else if (!strcmp(key, "api_key_env")) {
        const char *var = scalar(v), *val = var ? getenv(var) : NULL;
        size_t old = ld_push(l, ".%s", key);
        if (!val || !*val)
            return ld_fail(l, v, "environment variable %s is not set", var ? var : "(none)");
        ld_pop(l, old);
        free(b->api_key);
        if (!(b->api_key = strdup(val)))
            return -ENOMEM;
    } else {
        return ld_unknown(l, k, key,
                          "addresses, health_check, ejection, max_connections, api_key, "
                          "api_key_env");
    }
    return 0;
}

static int backends_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_config_t *c = l->cfg;
    gw_backend_cfg_t *nb = realloc(c->backends, (c->nbackends + 1) * sizeof *nb);
    if (!nb)
        return -ENOMEM;
    c->backends = nb;
    gw_backend_cfg_t *b = &nb[c->nbackends++];
    memset(b, 0, sizeof *b);
    b->where.line = ld_line(k);
    b->health.path = strdup(GW_DEF_HEALTH_PATH);
    b->health.interval_ms = GW_DEF_HEALTH_INTERVAL;
    b->health.timeout_ms = GW_DEF_HEALTH_TIMEOUT;
    b->eject = (pool_eject_cfg_t){GW_DEF_EJECT_FAILURES, GW_DEF_EJECT_BASE_MS, GW_DEF_EJECT_MAX_MS};
    b->max_conns = GW_DEF_MAX_CONNS;
    if (!(b->name = strdup(key)) || !b->health.path)
        return -ENOMEM;
    size_t old = ld_push(l, ".%s", key);
    int rc = ld_map(l, v, backend_pair, b);
    if (rc)
        return rc;
    if (b->naddrs == 0) {
        ld_push(l, ".addresses");
        return ld_fail(l, k, "at least one host:port is needed");
    }
    ld_pop(l, old);
    return 0;
}

/* --- routes --- */

static int variant_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_variant_cfg_t *va = arg;
    if (!strcmp(key, "backend"))
        FIELD(l, key, ld_str(l, v, &va->backend));
    else if (!strcmp(key, "weight"))
        FIELD(l, key, ld_u32(l, v, 1000000, &va->weight));
    else if (!strcmp(key, "upstream_model"))
        FIELD(l, key, ld_str(l, v, &va->upstream_model));
    else
        return ld_unknown(l, k, key, "backend, weight, upstream_model");
    return 0;
}

static int variants_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_route_cfg_t *r = arg;
    gw_variant_cfg_t *nv = realloc(r->variants, (r->nvariants + 1) * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    r->variants = nv;
    gw_variant_cfg_t *va = &nv[r->nvariants++];
    memset(va, 0, sizeof *va);
    va->where.line = ld_line(k);
    va->weight = 1;
    if (!(va->name = strdup(key)))
        return -ENOMEM;
    size_t old = ld_push(l, ".%s", key);
    int rc = ld_map(l, v, variant_pair, va);
    if (rc)
        return rc;
    if (!va->backend) {
        ld_push(l, ".backend");
        return ld_fail(l, k, "missing: name the backend pool this variant is served by");
    }
    ld_pop(l, old);
    return 0;
}

static int deadlines_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_deadlines_t *d = arg;
    if (!strcmp(key, "connect_ms"))
        FIELD(l, key, ld_u32(l, v, 600000, &d->connect_ms));
    else if (!strcmp(key, "ttft_ms"))
        FIELD(l, key, ld_u32(l, v, 86400000, &d->ttft_ms));
    else if (!strcmp(key, "total_ms"))
        FIELD(l, key, ld_u32(l, v, 86400000, &d->total_ms));
    else
        return ld_unknown(l, k, key, "connect_ms, ttft_ms, total_ms");
    return 0;
}

static int retry_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_retry_cfg_t *r = arg;
    if (!strcmp(key, "max_attempts"))
        FIELD(l, key, ld_u32(l, v, 1000, &r->max_attempts));
    else if (!strcmp(key, "budget_percent"))
        FIELD(l, key, ld_u32(l, v, 1000, &r->budget_percent));
    else if (!strcmp(key, "budget_burst"))
        FIELD(l, key, ld_u32(l, v, 1000000, &r->budget_burst));
    else
        return ld_unknown(l, k, key, "max_attempts, budget_percent, budget_burst");
    return 0;
}

static int route_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_route_cfg_t *r = arg;
    if (!strcmp(key, "variants"))
        FIELD(l, key, ld_map(l, v, variants_pair, r));
    else if (!strcmp(key, "deadlines"))
        FIELD(l, key, ld_map(l, v, deadlines_pair, &r->deadlines));
    else if (!strcmp(key, "retry"))
        FIELD(l, key, ld_map(l, v, retry_pair, &r->retry));
    else
        return ld_unknown(l, k, key, "variants, deadlines, retry");
    return 0;
}

static int routes_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_config_t *c = l->cfg;
    gw_route_cfg_t *nr = realloc(c->routes, (c->nroutes + 1) * sizeof *nr);
    if (!nr)
        return -ENOMEM;
    c->routes = nr;
    gw_route_cfg_t *r = &nr[c->nroutes++];
    memset(r, 0, sizeof *r);
    r->where.line = ld_line(k);
    r->deadlines = (gw_deadlines_t){GW_DEF_CONNECT_MS, GW_DEF_TTFT_MS, GW_DEF_TOTAL_MS};
    r->retry = (gw_retry_cfg_t){GW_DEF_RETRY_ATTEMPTS, GW_DEF_RETRY_PERCENT, GW_DEF_RETRY_BURST};
    if (!(r->model = strdup(key)))
        return -ENOMEM;
    size_t old = ld_push(l, ".%s", key);
    int rc = ld_map(l, v, route_pair, r);
    if (rc)
        return rc;
    if (r->nvariants == 0) {
        ld_push(l, ".variants");
        return ld_fail(l, k, "missing: a route needs at least one variant");
    }
    ld_pop(l, old);
    return 0;
}

/* --- top level --- */

static int top_pair(ld_t *l, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg) {
    gw_config_t *c = l->cfg;
    if (!strcmp(key, "listen")) {
        FIELD(l, key, ld_hostport(l, v, &c->listen.host, &c->listen.port));
    } else if (!strcmp(key, "threads")) {
        uint32_t t;
        FIELD(l, key, ld_u32(l, v, 256, &t));
        c->threads = (int)t;
    } else if (!strcmp(key, "max_body_bytes")) {
        uint32_t m;
        FIELD(l, key, ld_u32(l, v, 1u << 30, &m));
        c->max_body_bytes = m;
    } else if (!strcmp(key, "admin")) {
        c->admin.enabled = 1;
        c->admin.where.line = ld_line(k);
        FIELD(l, key, ld_map(l, v, admin_pair, &c->admin));
    } else if (!strcmp(key, "backends")) {
        FIELD(l, key, ld_map(l, v, backends_pair, NULL));
    } else if (!strcmp(key, "routes")) {
        FIELD(l, key, ld_map(l, v, routes_pair, NULL));
    } else {
        return ld_unknown(l, k, key, "listen, threads, max_body_bytes, admin, backends, routes");
    }
    return 0;
}

int gwconfig_load_string(const char *name, const char *text, size_t len, gw_config_t *cfg,
                         char *err, size_t errlen) {
    int rc = gwconfig_defaults(cfg);
    if (rc)
        return rc;
    if (!(cfg->path = strdup(name))) {
        gwconfig_free(cfg);
        return -ENOMEM;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        gwconfig_free(cfg);
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s:%lu: YAML syntax: %s%s%s", name,
                 (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "error", parser.context ? " " : "",
                 parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        gwconfig_free(cfg);
        return -EINVAL;
    }
    ld_t l = {.doc = &doc, .cfg = cfg, .err = err, .errlen = errlen, .name = name};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root)
        rc = ld_fail(&l, NULL, "the file is empty: it needs at least backends and routes");
    else
        rc = ld_map(&l, root, top_pair, NULL);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "%s: out of memory", name);
    if (rc == 0)
        rc = gwconfig_validate(cfg, err, errlen);
    if (rc)
        gwconfig_free(cfg);
    return rc;
}

int gwconfig_load(const char *path, gw_config_t *cfg, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        memset(cfg, 0, sizeof *cfg);
        return -e;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            char *t = realloc(text, cap = cap * 2 + 8192);
            if (!t) {
                free(text);
                fclose(f);
                return -ENOMEM;
            }
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    int rc = gwconfig_load_string(path, text ? text : "", len, cfg, err, errlen);
    free(text);
    return rc;
}
