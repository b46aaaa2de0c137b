/* gateway.c — the gateway process: owns the listeners, the current config generation and its
 * swaps (reload), and starts and stops the workers, the admin API and the health checker. */
#include "gateway/gateway.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/httpd.h"
#include "core/log.h"
#include "gateway/admin.h"
#include "gateway/canary.h"
#include "gateway/canaryapi.h"
#include "gateway/circuit.h"
#include "gateway/govern.h"
#include "gateway/health.h"
#include "gateway/obs.h"
#include "gateway/proxy.h"

struct gateway {
    char *config_path;
    pool_registry_t reg;           /* every upstream address, shared by all generations */
    gov_t gov;                     /* services' limiter state, shared by all generations */
    pthread_mutex_t mu;            /* guards cur and serialises reloads; never on the request path */
    snapshot_t *cur;               /* the current generation (one reference held here) */
    atomic_uint_fast64_t gen;      /* cur->generation, readable without the lock */
    httpd_t *main;
    httpd_t *admin;                /* NULL when the admin API is off */
    int threads;
    _Atomic(proxy_worker_t *) *workers; /* slot per worker thread, set by the thread itself */
    health_t *health;
    obs_t *obs;                    /* metrics, request log, access log (start-up settings) */
    circuit_set_t circuits;        /* breakers by backend name, shared by all generations */
    canary_set_t canaries;         /* canary controllers by route, shared by all generations */
    int started;
    atomic_int stopped;
};

static void *worker_init(int idx, ev_loop_t *loop, void *arg) {
    gateway_t *gw = arg;
    proxy_worker_t *w = proxy_worker_new(gw, idx, loop);
    if (w && idx < gw->threads)
        atomic_store(&gw->workers[idx], w);
    return w;
}

static void worker_fini(int idx, void *data, void *arg) {
    gateway_t *gw = arg;
    if (idx < gw->threads)
        atomic_store(&gw->workers[idx], NULL);
    proxy_worker_free(data);
}

/* The HTTP layer answered a client itself (oversized head or body, slow client, too many
 * connections): counted in the request metrics and access log like the proxy's refusals. */
static void refused(int idx, void *data, int status, void *arg) {
    (void)idx;
    (void)arg;
    if (data)
        proxy_refused(data, status);
}

static int ncores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* The config's http: limits on a listener (main and admin alike). */
static void http_limits(httpd_config_t *c, const gw_http_cfg_t *h) {
    c->max_head_bytes = h->max_head_bytes;
    c->max_headers = h->max_headers;
    c->header_timeout_ms = h->header_timeout_ms;
    c->body_timeout_ms = h->body_timeout_ms;
    c->idle_timeout_ms = h->idle_timeout_ms;
    c->write_timeout_ms = h->write_timeout_ms;
    c->max_conns = h->max_conns;
}

int gateway_new(const gateway_opts_t *opts, gateway_t **out, char *err, size_t errlen) {
    gw_config_t cfg;
    int rc = gwconfig_load(opts->config_path, &cfg, err, errlen);
    if (rc)
        return rc;
    gateway_t *gw = calloc(1, sizeof *gw);
    if (!gw) {
        gwconfig_free(&cfg);
        return -ENOMEM;
    }
    pool_registry_init(&gw->reg);
    gov_init(&gw->gov);
    circuit_set_init(&gw->circuits);
    canary_set_init(&gw->canaries);
    pthread_mutex_init(&gw->mu, NULL);
    gw->config_path = strdup(opts->config_path);
    gw->threads = opts->threads > 0 ? opts->threads : cfg.threads > 0 ? cfg.threads : ncores();
    gw->workers = calloc((size_t)gw->threads, sizeof *gw->workers);

    /* Listener settings are fixed for the process: copy them before the config moves. */
    char host[POOL_HOST_MAX], ahost[POOL_HOST_MAX];
    snprintf(host, sizeof host, "%s", opts->host ? opts->host : cfg.listen.host);
    snprintf(ahost, sizeof ahost, "%s", cfg.admin.listen.host);
    int port = opts->port >= 0 ? opts->port : cfg.listen.port;
    int aport = opts->admin_port >= 0 ? opts->admin_port : cfg.admin.listen.port;
    int admin_on = cfg.admin.enabled;
    size_t max_body = cfg.max_body_bytes;
    gw_http_cfg_t http = cfg.http;

    if (!gw->config_path || !gw->workers ||
        gov_bind(&gw->gov, cfg.gov, ev_clock_ns(), time(NULL)) != 0 ||
        (rc = snapshot_new(&cfg, &gw->reg, 1, &gw->cur)) != 0) {
        snprintf(err, errlen, "out of memory");
        gwconfig_free(&cfg);
        gateway_free(gw);
        return -ENOMEM;
    }
    atomic_init(&gw->gen, 1);
    /* The request log and access log are opened once, from the first config. */
    if ((rc = obs_new(gw->cur->cfg.obs, &gw->obs, err, errlen)) != 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
        gateway_free(gw);
        return rc;
    }

    httpd_config_t hc = {
        .host = host,
        .port = port,
        .threads = gw->threads,
        .max_body_bytes = max_body,
        .handler = proxy_handle,
        .worker_init = worker_init,
        .worker_fini = worker_fini,
        .on_refused = refused,
        .worker_arg = gw,
    };
    http_limits(&hc, &http);
    if ((rc = httpd_new(&hc, &gw->main)) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(-rc));
        gateway_free(gw);
        return rc;
    }
    if (admin_on) {
        /* the same defences as the main listener (a loopback port is still reachable by
         * every local process); bodies are small JSON commands */
        httpd_config_t ac = {
            .host = ahost,
            .port = aport,
            .threads = 1,
            .max_body_bytes = 65536,
            .handler = admin_handle,
            .handler_arg = gw,
        };
        http_limits(&ac, &http);
        if ((rc = httpd_new(&ac, &gw->admin)) != 0) {
            snprintf(err, errlen, "cannot listen on %s:%d (admin): %s", ahost, aport,
                     strerror(-rc));
            gateway_free(gw);
            return rc;
        }
    }
    *out = gw;
    return 0;
}

int gateway_start(gateway_t *gw) {
    int rc = httpd_start(gw->main);
    if (rc)
        return rc;
    gw->started = 1;
    if (gw->admin && (rc = httpd_start(gw->admin)) != 0)
        return rc;
    return health_start(gw, &gw->health);
}

int gateway_port(const gateway_t *gw) {
    return httpd_port(gw->main);
}

int gateway_admin_port(const gateway_t *gw) {
    return gw->admin ? httpd_port(gw->admin) : -1;
}

int gateway_threads(const gateway_t *gw) {
    return gw->threads;
}

snapshot_t *gateway_acquire(gateway_t *gw) {
    pthread_mutex_lock(&gw->mu);
    snapshot_t *s = snapshot_ref(gw->cur);
    pthread_mutex_unlock(&gw->mu);
    return s;
}

struct gov *gateway_gov(gateway_t *gw) {
    return &gw->gov;
}

struct circuit_set *gateway_circuits(gateway_t *gw) {
    return &gw->circuits;
}

struct canary_set *gateway_canaries(gateway_t *gw) {
    return &gw->canaries;
}

struct obs *gateway_obs(gateway_t *gw) {
    return gw->obs;
}

uint64_t gateway_generation(gateway_t *gw) {
    return atomic_load_explicit(&gw->gen, memory_order_acquire);
}

/* Append "; NAME changed (takes effect on restart)" for start-up settings that differ. */
static void note_restart_only(const gw_config_t *a, const gw_config_t *b, char *msg,
                              size_t msglen) {
    size_t n = strlen(msg);
    if (strcmp(a->listen.host, b->listen.host) || a->listen.port != b->listen.port)
        n += (size_t)snprintf(msg + n, n < msglen ? msglen - n : 0,
                              "; listen changed (takes effect on restart)");
    if (a->threads != b->threads && n < msglen)
        n += (size_t)snprintf(msg + n, msglen - n, "; threads changed (takes effect on restart)");
    if ((a->admin.enabled != b->admin.enabled || a->admin.listen.port != b->admin.listen.port ||
         strcmp(a->admin.listen.host, b->admin.listen.host)) &&
        n < msglen)
        n += (size_t)snprintf(msg + n, msglen - n,
                              "; admin listener changed (takes effect on restart)");
    if (a->max_body_bytes != b->max_body_bytes && n < msglen)
        n += (size_t)snprintf(msg + n, msglen - n,
                              "; max_body_bytes changed (takes effect on restart)");
    if ((a->http.max_head_bytes != b->http.max_head_bytes ||
         a->http.max_headers != b->http.max_headers || a->http.max_conns != b->http.max_conns) &&
        n < msglen)
        n += (size_t)snprintf(msg + n, msglen - n,
                              "; http head/connection limits changed (take effect on restart; "
                              "timeouts apply now)");
    if (obscfg_files_differ(a->obs, b->obs) && n < msglen)
        snprintf(msg + n, msglen - n,
                 "; request_log/access_log files changed (take effect on restart; sample rates "
                 "apply now)");
}

int gateway_reload(gateway_t *gw, char *msg, size_t msglen) {
    gw_config_t cfg;
    /* Log rotation comes first and does not depend on the file being valid: after a
     * rename-then-HUP the lines go to a fresh file even when the config is refused. */
    if (obs_reopen_logs(gw->obs, msg, msglen) != 0)
        log_warn("cannot reopen the access log", LOG_STR("error", msg));
    /* Built and validated off to the side: a broken file never touches the current one. */
    int rc = gwconfig_load(gw->config_path, &cfg, msg, msglen);
    if (rc) {
        log_warn("config refused, the running one is kept", LOG_STR("error", msg));
        return rc;
    }
    pthread_mutex_lock(&gw->mu);
    snapshot_t *old = gw->cur, *s;
    char notes[256] = "";
    note_restart_only(&old->cfg, &cfg, notes, sizeof notes);
    size_t nr = cfg.nroutes, nb = cfg.nbackends;
    rc = gov_bind(&gw->gov, cfg.gov, ev_clock_ns(), time(NULL));
    if (rc)
        gwconfig_free(&cfg);
    else
        rc = snapshot_new(&cfg, &gw->reg, old->generation + 1, &s);
    if (rc == 0) {
        gw->cur = s;
        atomic_store_explicit(&gw->gen, s->generation, memory_order_release);
        const gw_http_cfg_t *h = &s->cfg.http;
        httpd_set_timeouts(gw->main, h->header_timeout_ms, h->body_timeout_ms,
                           h->idle_timeout_ms, h->write_timeout_ms);
        if (gw->admin)
            httpd_set_timeouts(gw->admin, h->header_timeout_ms, h->body_timeout_ms,
                               h->idle_timeout_ms, h->write_timeout_ms);
    }
    pthread_mutex_unlock(&gw->mu);
    if (rc) {
        snprintf(msg, msglen, "%s: out of memory building the new config; the old one is kept",
                 gw->config_path);
        return rc;
    }
    snapshot_unref(old); /* freed when the last in-flight request on it finishes */
    canaryapi_reapply(gw); /* a running or decided canary keeps its weights over the file's */
    snprintf(msg, msglen, "generation %llu: %zu route%s, %zu backend%s%s",
             (unsigned long long)s->generation, nr, nr == 1 ? "" : "s", nb, nb == 1 ? "" : "s",
             notes);
    log_info("config reloaded", LOG_INT("generation", s->generation), LOG_STR("summary", msg));
    return 0;
}

void gateway_stop(gateway_t *gw, uint32_t drain_ms) {
    if (atomic_exchange(&gw->stopped, 1))
        return;
    health_stop(gw->health);
    /* The admin API goes first and completely: it reads the workers' counters, which
     * go away with the workers. */
    if (gw->admin) {
        httpd_stop(gw->admin, 0);
        httpd_wait(gw->admin);
    }
    httpd_stop(gw->main, drain_ms);
}

void gateway_wait(gateway_t *gw) {
    if (gw->admin)
        httpd_wait(gw->admin);
    httpd_wait(gw->main);
    health_wait(gw->health);
}

void gateway_free(gateway_t *gw) {
    if (!gw)
        return;
    httpd_free(gw->admin);
    httpd_free(gw->main);
    health_free(gw->health);
    /* After the workers: everything they queued for the request log is written now. */
    obs_free(gw->obs);
    snapshot_unref(gw->cur);
    pool_registry_free(&gw->reg);
    gov_destroy(&gw->gov);
    circuit_set_free(&gw->circuits);
    canary_set_free(&gw->canaries);
    pthread_mutex_destroy(&gw->mu);
    free(gw->workers);
    free(gw->config_path);
    free(gw);
}

void gateway_stats(gateway_t *gw, gateway_stats_t *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < gw->threads; i++) {
        proxy_worker_t *w = atomic_load(&gw->workers[i]);
        if (w)
            proxy_worker_stats(w, out);
    }
}
