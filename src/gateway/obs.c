/* obs.c — observability glue: builds metrics, request log and access log from the config,
 * records each finished request on its worker, renders /metrics. */
#include "gateway/obs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ev.h"
#include "gateway/canary.h"
#include "gateway/circuit.h"
#include "gateway/gateway.h"
#include "gateway/govern.h"
#include "gateway/snapshot.h"

struct obs {
    gwm_t *metrics;
    redact_t *redact;    /* owned; the request log points at it */
    reqlog_t *reqlog;    /* NULL: no request log */
    accesslog_t *access; /* NULL: no access log */
};

struct obs_worker {
    obs_t *o;
    gwm_cache_t *cache;
    uint64_t gen;
    uint64_t rnd;        /* xorshift64 for sampling */
    buf_t line;          /* access log scratch, reused */
};

int obs_new(const obs_cfg_t *cfg, obs_t **out, char *err, size_t errlen) {
    *out = NULL;
    obs_t *o = calloc(1, sizeof *o);
    if (!o || !(o->metrics = gwm_new())) {
        free(o);
        return -ENOMEM;
    }
    int rc = 0;
    if (cfg && cfg->log_path) {
        redact_opts_t ro = {cfg->redact_builtin, cfg->patterns, cfg->npatterns};
        reqlog_opts_t lo = {
            .path = cfg->log_path,
            .retention_ms = cfg->retention_ms,
            .queue_cap = cfg->queue_size,
            .max_text = cfg->max_text,
            .sample_rate = cfg->sample_rate,
            .rates = cfg->rates,
            .nrates = cfg->nrates,
        };
        if ((rc = redact_new(&ro, &o->redact, err, errlen)) == 0) {
            lo.redact = o->redact;
            rc = reqlog_open(&lo, &o->reqlog, err, errlen);
        }
    }
    if (rc == 0 && cfg && cfg->access_log)
        rc = accesslog_open(cfg->access_log, &o->access, err, errlen);
    if (rc) {
        obs_free(o);
        return rc;
    }
    *out = o;
    return 0;
}

void obs_free(obs_t *o) {
    if (!o)
        return;
    reqlog_close(o->reqlog);
    redact_free(o->redact);
    accesslog_close(o->access);
    gwm_free(o->metrics);
    free(o);
}

int obs_reopen_logs(obs_t *o, char *err, size_t errlen) {
    return accesslog_reopen(o->access, err, errlen);
}

gwm_t *obs_metrics(obs_t *o) {
    return o->metrics;
}

reqlog_t *obs_reqlog(obs_t *o) {
    return o->reqlog;
}

obs_worker_t *obs_worker_new(obs_t *o, uint32_t seed) {
    if (!o)
        return NULL;
    obs_worker_t *w = calloc(1, sizeof *w);
    if (!w || !(w->cache = gwm_cache_new(o->metrics))) {
        free(w);
        return NULL;
    }
    w->o = o;
    w->rnd = 0x2545F4914F6CDD1Dull ^ ((uint64_t)seed << 32 | seed);
    if (!w->rnd)
        w->rnd = 1;
    buf_init(&w->line);
    return w;
}

void obs_worker_free(obs_worker_t *w) {
    if (!w)
        return;
    gwm_cache_free(w->cache);
    buf_free(&w->line);
    free(w);
}

void obs_worker_generation(obs_worker_t *w, uint64_t gen) {
    if (w && w->gen != gen) {
        gwm_cache_reset(w->cache);
        w->gen = gen;
    }
}

int obs_sample(obs_worker_t *w, const obs_cfg_t *cfg, const char *service) {
    if (!w || !w->o->reqlog)
        return 0;
    double rate = obscfg_rate(cfg, service);
    if (rate <= 0)
        return 0;
    if (rate >= 1)
        return 1;
    w->rnd ^= w->rnd << 13;
    w->rnd ^= w->rnd >> 7;
    w->rnd ^= w->rnd << 17;
    return (double)(w->rnd >> 11) / 9007199254740992.0 < rate;
}

const char *obs_outcome(int status, int fallback) {
    if (fallback)
        return "fallback";
    if (status >= 200 && status < 300)
        return "ok";
    if (status == 499)
        return "cancelled";
    if (status == 504)
        return "timeout";
    if (status == 401 || status == 403 || status == 429 || status == 400)
        return "rejected";
    return "error";
}

static double secs(uint64_t ns) {
    return (double)ns / 1e9;
}

void obs_request_end(obs_worker_t *w, const obs_req_t *r) {
    if (!w)
        return;
    obs_t *o = w->o;
    uint64_t dur = r->end_ns > r->start_ns ? r->end_ns - r->start_ns : 0;
    gwm_req_t m = {
        .service = r->service,
        .model = r->model,
        .variant = r->variant,
        .status = r->status,
        .duration_s = secs(dur),
        .ttft_s = r->first_ns > r->start_ns ? secs(r->first_ns - r->start_ns) : -1,
        .tpot_s = -1,
        .overhead_s = r->attempts > 0 && dur >= r->upstream_ns ? secs(dur - r->upstream_ns) : -1,
        .prompt_tokens = r->prompt_tokens,
        .completion_tokens = r->completion_tokens,
    };
    if (r->refused)
        m.duration_s = m.ttft_s = m.overhead_s = -1;
    /* TPOT: the stream's time after its first token over the tokens after the first. */
    if (r->first_ns && r->end_ns > r->first_ns && r->completion_tokens > 1 && r->status < 400)
        m.tpot_s = secs(r->end_ns - r->first_ns) / (double)(r->completion_tokens - 1);
    gwm_record(w->cache, &m);
    if (r->fallback)
        gwm_fallback(o->metrics, r->service, r->model, r->reason);
    if (o->access) {
        accesslog_rec_t a = {
            .ts_ms = r->ts_ms,
            .method = r->method,
            .path = r->path,
            .service = r->service,
            .model = r->model,
            .variant = r->variant,
            .request_id = r->request_id,
            .reason = r->reason,
            .status = r->status,
            .stream = r->stream,
            .attempts = r->attempts,
            .duration_ms = (double)dur / 1e6,
            .ttft_ms = m.ttft_s >= 0 ? m.ttft_s * 1000 : -1,
            .prompt_tokens = r->prompt_tokens,
            .completion_tokens = r->completion_tokens,
        };
        accesslog_write(o->access, &a, &w->line);
    }
    if (r->sampled && o->reqlog) {
        reqlog_rec_t l = {
            .ts_ms = r->ts_ms,
            .service = r->service,
            .model = r->model,
            .variant = r->variant,
            .endpoint = r->path,
            .outcome = obs_outcome(r->status, r->fallback),
            .reason = r->reason,
            .request_id = r->request_id,
            .status = r->status,
            .stream = r->stream,
            .prompt_tokens = r->prompt_tokens,
            .completion_tokens = r->completion_tokens,
            .latency_ms = (double)dur / 1e6,
            .ttft_ms = m.ttft_s >= 0 ? m.ttft_s * 1000 : -1,
            .prompt = r->prompt,
            .prompt_len = r->prompt_len,
            .response = r->response,
            .response_len = r->response_len,
        };
        reqlog_submit(o->reqlog, &l); /* a full queue drops and counts: never waits */
    }
}

/* Label values come from the config: escape what the text format requires. */
static int label(buf_t *b, const char *s) {
    int rc = 0;
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            rc |= buf_append(b, "\\", 1), rc |= buf_append(b, s, 1);
        else if (*s == '\n')
            rc |= buf_append(b, "\\n", 2);
        else
            rc |= buf_append(b, s, 1);
    }
    return rc;
}

/* tollgate_canary_state{model,canary,state}: 1 for the controller's state, 0 for the others
 * (the enum-as-labels convention, so that `== 1` selects and changes show as steps). */
static int render_canaries(struct gateway *gw, buf_t *b) {
    static const int states[] = {CANARY_IDLE, CANARY_RUNNING, CANARY_PAUSED, CANARY_PROMOTED,
                                 CANARY_ABORTED};
    canary_set_t *cs = gateway_canaries(gw);
    int rc = buf_appends(b, "# HELP tollgate_canary_state State of each route's canary "
                            "controller (1 for the current state).\n"
                            "# TYPE tollgate_canary_state gauge\n");
    size_t n = canary_count(cs);
    for (size_t i = 0; i < n; i++) {
        canary_t *c = canary_at(cs, i);
        if (!c)
            continue;
        int st = canary_state(c);
        pthread_mutex_lock(&c->mu); /* the variant name changes on start */
        char variant[sizeof c->variant];
        memcpy(variant, c->variant, sizeof variant);
        pthread_mutex_unlock(&c->mu);
        variant[sizeof variant - 1] = '\0';
        for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
            rc |= buf_appends(b, "tollgate_canary_state{model=\"");
            rc |= label(b, c->model);
            rc |= buf_appends(b, "\",canary=\"");
            rc |= label(b, variant);
            rc |= buf_appendf(b, "\",state=\"%s\"} %d\n", canary_state_name(states[k]),
                              st == states[k]);
        }
    }
    return rc;
}

static int render_routing(struct gateway *gw, buf_t *b) {
    snapshot_t *s = gateway_acquire(gw);
    uint64_t now = ev_clock_ns();
    int rc = buf_appends(b, "# HELP tollgate_upstream_up Whether the backend pool has a usable "
                            "address (1) or none (0).\n# TYPE tollgate_upstream_up gauge\n");
    for (size_t i = 0; i < s->cfg.nbackends; i++) {
        const snap_backend_t *sb = &s->backends[i];
        int up = 0;
        for (size_t k = 0; k < sb->naddrs; k++) up |= pool_addr_usable(sb->addrs[k], now);
        rc |= buf_appends(b, "tollgate_upstream_up{backend=\"");
        rc |= label(b, sb->cfg->name);
        rc |= buf_appendf(b, "\"} %d\n", up);
    }
    rc |= buf_appends(b, "# HELP tollgate_upstream_address_up Whether an upstream address is in "
                         "rotation (healthy and not ejected).\n"
                         "# TYPE tollgate_upstream_address_up gauge\n");
    for (size_t i = 0; i < s->cfg.nbackends; i++) {
        const snap_backend_t *sb = &s->backends[i];
        for (size_t k = 0; k < sb->naddrs; k++) {
            rc |= buf_appends(b, "tollgate_upstream_address_up{backend=\"");
            rc |= label(b, sb->cfg->name);
            rc |= buf_appends(b, "\",address=\"");
            rc |= label(b, sb->addrs[k]->name);
            rc |= buf_appendf(b, "\"} %d\n", pool_addr_usable(sb->addrs[k], now));
        }
    }
    rc |= buf_appends(b, "# HELP tollgate_canary_weight Share of the model's traffic routed to "
                         "each variant (live weights, 0..1).\n"
                         "# TYPE tollgate_canary_weight gauge\n");
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const snap_route_t *r = &s->routes[i];
        double sum = 0;
        for (size_t v = 0; v < r->cfg->nvariants; v++)
            sum += atomic_load_explicit(&r->weights[v], memory_order_relaxed);
        for (size_t v = 0; v < r->cfg->nvariants; v++) {
            double wv = atomic_load_explicit(&r->weights[v], memory_order_relaxed);
            char val[32];
            metrics_fmt_value(sum > 0 ? wv / sum : 0, val);
            rc |= buf_appends(b, "tollgate_canary_weight{model=\"");
            rc |= label(b, r->cfg->model);
            rc |= buf_appends(b, "\",variant=\"");
            rc |= label(b, r->cfg->variants[v].name);
            rc |= buf_appendf(b, "\"} %s\n", val);
        }
    }
    snapshot_unref(s);
    return rc | render_canaries(gw, b);
}

static int render_logs(obs_t *o, buf_t *b) {
    reqlog_stats_t s = {0};
    if (o->reqlog)
        reqlog_stats(o->reqlog, &s);
    return buf_appendf(
        b,
        "# HELP tollgate_request_log_entries_total Request-log entries by what happened to them.\n"
        "# TYPE tollgate_request_log_entries_total counter\n"
        "tollgate_request_log_entries_total{result=\"accepted\"} %llu\n"
        "tollgate_request_log_entries_total{result=\"dropped\"} %llu\n"
        "tollgate_request_log_entries_total{result=\"written\"} %llu\n"
        "tollgate_request_log_entries_total{result=\"failed\"} %llu\n"
        "tollgate_request_log_entries_total{result=\"deleted\"} %llu\n"
        "# HELP tollgate_request_log_queue Entries waiting for the request-log writer.\n"
        "# TYPE tollgate_request_log_queue gauge\n"
        "tollgate_request_log_queue %llu\n"
        "# HELP tollgate_access_log_lost_total Access-log lines that could not be written.\n"
        "# TYPE tollgate_access_log_lost_total counter\n"
        "tollgate_access_log_lost_total %llu\n",
        (unsigned long long)s.accepted, (unsigned long long)s.dropped,
        (unsigned long long)s.written, (unsigned long long)s.failed,
        (unsigned long long)s.deleted, (unsigned long long)s.queued,
        (unsigned long long)(o->access ? accesslog_lost(o->access) : 0));
}

int obs_render(obs_t *o, struct gateway *gw, buf_t *out) {
    int rc = metrics_render(gwm_registry(o->metrics), out);
    rc |= gov_render_metrics(gateway_gov(gw), time(NULL), out);
    rc |= render_routing(gw, out);
    rc |= circuit_set_render(gateway_circuits(gw), out); /* circuit.h */
    rc |= render_logs(o, out);
    return rc ? -ENOMEM : 0;
}
