/* gwconfig.c — gateway config: defaults, validation and freeing (loading is in gwconfig_yaml.c). */
#include "gateway/gwconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/httpd.h"
#include "gateway/govcfg.h"
#include "gateway/obscfg.h"
#include "gateway/taskcfg.h"

static int fail(char *err, size_t errlen, const gw_config_t *cfg, gw_where_t w, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

/* Every message starts "FILE:LINE: " so that an operator can jump to it. */
static int fail(char *err, size_t errlen, const gw_config_t *cfg, gw_where_t w, const char *fmt,
                ...) {
    if (err && errlen) {
        int n = w.line > 0 ? snprintf(err, errlen, "%s:%d: ", cfg->path ? cfg->path : "config",
                                      w.line)
                           : snprintf(err, errlen, "%s: ", cfg->path ? cfg->path : "config");
        if (n < 0)
            n = 0;
        if ((size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

int gwconfig_defaults(gw_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->listen.host = strdup("127.0.0.1");
    cfg->listen.port = GW_DEF_PORT;
    cfg->max_body_bytes = GW_DEF_MAX_BODY;
    cfg->http = (gw_http_cfg_t){
        .max_head_bytes = HTTPD_DEFAULT_MAX_HEAD,
        .max_headers = HTTPD_DEFAULT_MAX_HEADERS,
        .header_timeout_ms = HTTPD_DEFAULT_HEADER_TIMEOUT,
        .body_timeout_ms = HTTPD_DEFAULT_BODY_TIMEOUT,
        .idle_timeout_ms = HTTPD_DEFAULT_IDLE_TIMEOUT,
        .write_timeout_ms = HTTPD_DEFAULT_WRITE_TIMEOUT,
        .max_conns = HTTPD_DEFAULT_MAX_CONNS,
    };
    cfg->admin.listen.host = strdup("127.0.0.1");
    cfg->admin.listen.port = GW_DEF_ADMIN_PORT;
    if (!cfg->listen.host || !cfg->admin.listen.host) {
        gwconfig_free(cfg);
        return -ENOMEM;
    }
    return 0;
}

void gwconfig_free(gw_config_t *cfg) {
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->listen.host);
    free(cfg->admin.listen.host);
    free(cfg->admin.key);
    govcfg_free(cfg->gov);
    obscfg_free(cfg->obs);
    taskcfg_free(cfg->deg);
    for (size_t i = 0; i < cfg->nbackends; i++) {
        gw_backend_cfg_t *b = &cfg->backends[i];
        free(b->name);
        for (size_t j = 0; j < b->naddrs; j++) free(b->addrs[j].host);
        free(b->addrs);
        free(b->health.path);
        free(b->api_key);
    }
    free(cfg->backends);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        gw_route_cfg_t *r = &cfg->routes[i];
        free(r->model);
        for (size_t j = 0; j < r->nvariants; j++) {
            free(r->variants[j].name);
            free(r->variants[j].backend);
            free(r->variants[j].upstream_model);
        }
        free(r->variants);
    }
    free(cfg->routes);
    memset(cfg, 0, sizeof *cfg);
}

const gw_route_cfg_t *gwconfig_route(const gw_config_t *cfg, const char *model) {
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (!strcmp(cfg->routes[i].model, model))
            return &cfg->routes[i];
    return NULL;
}

const gw_backend_cfg_t *gwconfig_backend(const gw_config_t *cfg, const char *name) {
    for (size_t i = 0; i < cfg->nbackends; i++)
        if (!strcmp(cfg->backends[i].name, name))
            return &cfg->backends[i];
    return NULL;
}

int gwconfig_parse_hostport(const char *s, char **host, uint16_t *port) {
    const char *colon, *h = s;
    size_t hlen;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -EINVAL; /* bare IPv6 must be bracketed */
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= POOL_HOST_MAX)
        return -EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || errno || p < 1 || p > 65535)
        return -EINVAL;
    if (!(*host = strndup(h, hlen)))
        return -ENOMEM;
    *port = (uint16_t)p;
    return 0;
}

static int valid_port(int p) {
    return p >= 0 && p <= 65535;
}

int gwconfig_validate(gw_config_t *cfg, char *err, size_t errlen) {
    gw_where_t nowhere = {0};
    if (!valid_port(cfg->listen.port))
        return fail(err, errlen, cfg, nowhere, "listen.port: %d is not a port (0-65535)",
                    cfg->listen.port);
    if (cfg->threads < 0 || cfg->threads > 256)
        return fail(err, errlen, cfg, nowhere, "threads: %d out of range (0 = cores, 1-256)",
                    cfg->threads);
    if (cfg->max_body_bytes < 1024)
        return fail(err, errlen, cfg, nowhere, "max_body_bytes: %zu is too small (at least 1024)",
                    cfg->max_body_bytes);
    if (cfg->admin.enabled) {
        if (!cfg->admin.key || !cfg->admin.key[0])
            return fail(err, errlen, cfg, cfg->admin.where,
                        "admin.key: the admin API needs a key (set admin.key or admin.key_env, "
                        "or admin.enabled: false)");
        if (!valid_port(cfg->admin.listen.port))
            return fail(err, errlen, cfg, cfg->admin.where, "admin.port: %d is not a port",
                        cfg->admin.listen.port);
        if (cfg->admin.listen.port && cfg->admin.listen.port == cfg->listen.port &&
            !strcmp(cfg->admin.listen.host, cfg->listen.host))
            return fail(err, errlen, cfg, cfg->admin.where,
                        "admin.port: %d is also the main listener's port; pick another",
                        cfg->admin.listen.port);
    }

    for (size_t i = 0; i < cfg->nbackends; i++) {
        gw_backend_cfg_t *b = &cfg->backends[i];
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->backends[j].name, b->name))
                return fail(err, errlen, cfg, b->where,
                            "backends.%s: defined twice (first at line %d)", b->name,
                            cfg->backends[j].where.line);
        if (b->naddrs == 0)
            return fail(err, errlen, cfg, b->where,
                        "backends.%s.addresses: at least one host:port is needed", b->name);
        if (b->naddrs > POOL_MAX_ADDRS)
            return fail(err, errlen, cfg, b->where,
                        "backends.%s.addresses: %zu addresses, at most %d", b->name, b->naddrs,
                        POOL_MAX_ADDRS);
        for (size_t j = 0; j < b->naddrs; j++)
            for (size_t k = 0; k < j; k++)
                if (b->addrs[k].port == b->addrs[j].port &&
                    !strcmp(b->addrs[k].host, b->addrs[j].host))
                    return fail(err, errlen, cfg, b->addrs[j].where,
                                "backends.%s.addresses[%zu]: %s:%u is listed twice", b->name, j,
                                b->addrs[j].host, (unsigned)b->addrs[j].port);
        if (b->health.path) {
            if (b->health.path[0] != '/')
                return fail(err, errlen, cfg, b->where,
                            "backends.%s.health_check.path: \"%s\" must start with '/'",
                            b->name, b->health.path);
            if (b->health.interval_ms < 10 || b->health.timeout_ms < 1)
                return fail(err, errlen, cfg, b->where,
                            "backends.%s.health_check: interval_ms must be >= 10 and "
                            "timeout_ms >= 1",
                            b->name);
        }
        if (b->eject.failures && (b->eject.base_ms == 0 || b->eject.max_ms < b->eject.base_ms))
            return fail(err, errlen, cfg, b->where,
                        "backends.%s.ejection: base_ms must be > 0 and max_ms >= base_ms",
                        b->name);
    }

    for (size_t i = 0; i < cfg->nroutes; i++) {
        gw_route_cfg_t *r = &cfg->routes[i];
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->routes[j].model, r->model))
                return fail(err, errlen, cfg, r->where,
                            "routes.%s: defined twice (first at line %d)", r->model,
                            cfg->routes[j].where.line);
        if (r->nvariants == 0)
            return fail(err, errlen, cfg, r->where,
                        "routes.%s.variants: at least one variant is needed", r->model);
        if (r->nvariants > GW_MAX_VARIANTS)
            return fail(err, errlen, cfg, r->where,
                        "routes.%s.variants: %zu variants, at most %d", r->model, r->nvariants,
                        GW_MAX_VARIANTS);
        for (size_t j = 0; j < r->nvariants; j++) {
            gw_variant_cfg_t *v = &r->variants[j];
            for (size_t k = 0; k < j; k++)
                if (!strcmp(r->variants[k].name, v->name))
                    return fail(err, errlen, cfg, v->where,
                                "routes.%s.variants.%s: variant name used twice", r->model,
                                v->name);
            const gw_backend_cfg_t *b = v->backend ? gwconfig_backend(cfg, v->backend) : NULL;
            if (!b)
                return fail(err, errlen, cfg, v->where,
                            "routes.%s.variants.%s.backend: %s%s%s is not defined under "
                            "backends",
                            r->model, v->name, v->backend ? "\"" : "",
                            v->backend ? v->backend : "(missing)", v->backend ? "\"" : "");
            v->backend_idx = (size_t)(b - cfg->backends);
            if (v->weight > 1000000)
                return fail(err, errlen, cfg, v->where,
                            "routes.%s.variants.%s.weight: %u is too large (at most 1000000)",
                            r->model, v->name, v->weight);
        }
        if (r->deadlines.total_ms == 0 || r->deadlines.connect_ms == 0 || r->deadlines.ttft_ms == 0)
            return fail(err, errlen, cfg, r->where,
                        "routes.%s.deadlines: connect_ms, ttft_ms and total_ms must be > 0",
                        r->model);
        if (r->deadlines.ttft_ms > r->deadlines.total_ms)
            return fail(err, errlen, cfg, r->where,
                        "routes.%s.deadlines.ttft_ms: %u is larger than total_ms %u", r->model,
                        r->deadlines.ttft_ms, r->deadlines.total_ms);
        if (r->retry.max_attempts < 1 || r->retry.max_attempts > 10)
            return fail(err, errlen, cfg, r->where,
                        "routes.%s.retry.max_attempts: %u out of range (1-10)", r->model,
                        r->retry.max_attempts);
        if (r->retry.budget_percent > 100)
            return fail(err, errlen, cfg, r->where,
                        "routes.%s.retry.budget_percent: %u out of range (0-100)", r->model,
                        r->retry.budget_percent);
    }
    if (cfg->nroutes == 0)
        return fail(err, errlen, cfg, nowhere,
                    "routes: none defined; add at least one model (see docs/gateway.md)");
    return 0;
}
