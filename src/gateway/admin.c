/* admin.c — admin API handlers: read and change the gateway's live state. Runs on the admin
 * listener's single thread; touches shared state only through gateway_* and atomics. */
#include "gateway/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/json.h"
#include "gateway/canaryapi.h"
#include "gateway/gateway.h"
#include "gateway/govern.h"
#include "gateway/keys.h"

int admin_key_equal(const char *given, const char *want) {
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char diff = gl != wl;
    /* Walk the configured key's length whatever was given, so time does not tell where
     * the first difference is. */
    for (size_t i = 0; i < wl; i++) diff |= (unsigned char)(want[i] ^ (i < gl ? given[i] : 0));
    return diff == 0;
}

/* The admin key is configured either as "sha256:<hex>" (the digest of the key, as
 * `tollgate keygen` prints it: the file never holds the secret) or as the key itself. */
static int authorized(httpd_req_t *req, const snapshot_t *s) {
    const char *h = httpd_req_header(req, "authorization"), *want = s->cfg.admin.key;
    size_t len;
    const char *key = h ? keys_bearer(h, &len) : NULL;
    uint8_t wd[KEYS_HASH_LEN], gd[KEYS_HASH_LEN];
    if (!key || !want || len > KEYS_MAX_KEY)
        return 0;
    if (keys_parse_hash(want, wd) == 0) {
        keys_sha256(key, len, gd);
        return keys_ct_equal(gd, wd, KEYS_HASH_LEN);
    }
    char given[KEYS_MAX_KEY + 1];
    memcpy(given, key, len);
    given[len] = '\0';
    return admin_key_equal(given, want);
}

static void respond_json(httpd_req_t *req, int status, buf_t *b) {
    httpd_respond(req, status, "application/json", b->data, b->len);
}

static void write_config(json_w_t *jw, const snapshot_t *s) {
    const gw_config_t *c = &s->cfg;
    json_w_obj_begin(jw);
    json_w_key(jw, "generation");
    json_w_i64(jw, (int64_t)s->generation);
    json_w_key(jw, "path");
    json_w_str(jw, c->path ? c->path : "");
    json_w_key(jw, "threads");
    json_w_i64(jw, c->threads);
    json_w_key(jw, "max_body_bytes");
    json_w_i64(jw, (int64_t)c->max_body_bytes);
    json_w_key(jw, "backends");
    json_w_obj_begin(jw);
    for (size_t i = 0; i < c->nbackends; i++) {
        const gw_backend_cfg_t *b = &c->backends[i];
        json_w_key(jw, b->name);
        json_w_obj_begin(jw);
        json_w_key(jw, "addresses");
        json_w_arr_begin(jw);
        for (size_t j = 0; j < s->backends[i].naddrs; j++) json_w_str(jw, s->backends[i].addrs[j]->name);
        json_w_arr_end(jw);
        json_w_key(jw, "health_check");
        if (b->health.path) {
            json_w_obj_begin(jw);
            json_w_key(jw, "path");
            json_w_str(jw, b->health.path);
            json_w_key(jw, "interval_ms");
            json_w_i64(jw, b->health.interval_ms);
            json_w_key(jw, "timeout_ms");
            json_w_i64(jw, b->health.timeout_ms);
            json_w_obj_end(jw);
        } else {
            json_w_bool(jw, 0);
        }
        json_w_key(jw, "ejection");
        json_w_obj_begin(jw);
        json_w_key(jw, "consecutive_failures");
        json_w_i64(jw, b->eject.failures);
        json_w_key(jw, "base_ms");
        json_w_i64(jw, b->eject.base_ms);
        json_w_key(jw, "max_ms");
        json_w_i64(jw, b->eject.max_ms);
        json_w_obj_end(jw);
        json_w_key(jw, "max_connections");
        json_w_i64(jw, b->max_conns);
        json_w_key(jw, "api_key");
        if (b->api_key)
            json_w_str(jw, "(set)"); /* never echo secrets */
        else
            json_w_null(jw);
        json_w_obj_end(jw);
    }
    json_w_obj_end(jw);
    json_w_key(jw, "routes");
    json_w_obj_begin(jw);
    for (size_t i = 0; i < c->nroutes; i++) {
        const gw_route_cfg_t *r = &c->routes[i];
        json_w_key(jw, r->model);
        json_w_obj_begin(jw);
        json_w_key(jw, "variants");
        json_w_obj_begin(jw);
        for (size_t j = 0; j < r->nvariants; j++) {
            const gw_variant_cfg_t *v = &r->variants[j];
            json_w_key(jw, v->name);
            json_w_obj_begin(jw);
            json_w_key(jw, "backend");
            json_w_str(jw, v->backend);
            json_w_key(jw, "weight");
            json_w_i64(jw, atomic_load_explicit(&s->routes[i].weights[j], memory_order_relaxed));
            json_w_key(jw, "upstream_model");
            if (v->upstream_model)
                json_w_str(jw, v->upstream_model);
            else
                json_w_null(jw);
            json_w_obj_end(jw);
        }
        json_w_obj_end(jw);
        json_w_key(jw, "deadlines");
        json_w_obj_begin(jw);
        json_w_key(jw, "connect_ms");
        json_w_i64(jw, r->deadlines.connect_ms);
        json_w_key(jw, "ttft_ms");
        json_w_i64(jw, r->deadlines.ttft_ms);
        json_w_key(jw, "total_ms");
        json_w_i64(jw, r->deadlines.total_ms);
        json_w_obj_end(jw);
        json_w_key(jw, "retry");
        json_w_obj_begin(jw);
        json_w_key(jw, "max_attempts");
        json_w_i64(jw, r->retry.max_attempts);
        json_w_key(jw, "budget_percent");
        json_w_i64(jw, r->retry.budget_percent);
        json_w_key(jw, "budget_burst");
        json_w_i64(jw, r->retry.budget_burst);
        json_w_obj_end(jw);
        json_w_obj_end(jw);
    }
    json_w_obj_end(jw);
    json_w_obj_end(jw);
}

static void write_weights(json_w_t *jw, const snap_route_t *r) {
    json_w_obj_begin(jw);
    json_w_key(jw, "model");
    json_w_str(jw, r->cfg->model);
    json_w_key(jw, "weights");
    json_w_obj_begin(jw);
    for (size_t j = 0; j < r->cfg->nvariants; j++) {
        json_w_key(jw, r->cfg->variants[j].name);
        json_w_i64(jw, atomic_load_explicit(&r->weights[j], memory_order_relaxed));
    }
    json_w_obj_end(jw);
    json_w_obj_end(jw);
}

/* PUT body {"variant": weight, ...}: all checked first, then stored (each an atomic store;
 * a request racing the update may see a mix of old and new weights, never a torn one).
 * 0 when stored; -1 when it answered the request with an error itself. */
static int put_weights(httpd_req_t *req, snap_route_t *r, buf_t *b) {
    size_t len;
    const char *body = httpd_req_body(req, &len);
    json_tok_t toks[2 * GW_MAX_VARIANTS + 1];
    json_doc_t d;
    char msg[256];
    uint32_t nw[GW_MAX_VARIANTS];
    int set[GW_MAX_VARIANTS] = {0};
    if (json_parse(body, len, toks, sizeof toks / sizeof *toks, 4, &d, NULL) <= 0 ||
        toks[0].type != JSON_OBJECT) {
        httpd_error(req, 400, "invalid_request_error",
                    "expected a JSON object of variant name to weight, e.g. {\"stable\": 90}");
        return -1;
    }
    for (uint32_t i = 1, k = 0; k < toks[0].size; k++, i = toks[i + 1].next) {
        buf_reset(b);
        json_str_unescape(&d, (int)i, b);
        int v = snapshot_variant(r, b->data ? b->data : "");
        int64_t w;
        if (v < 0) {
            snprintf(msg, sizeof msg, "route %s has no variant \"%.100s\"", r->cfg->model,
                     b->data ? b->data : "");
            httpd_error(req, 400, "invalid_request_error", msg);
            return -1;
        }
        if (json_get_i64(&d, (int)i + 1, &w) != 0 || w < 0 || w > 1000000) {
            snprintf(msg, sizeof msg, "weight of %.100s must be an integer 0-1000000", b->data);
            httpd_error(req, 400, "invalid_request_error", msg);
            return -1;
        }
        nw[v] = (uint32_t)w;
        set[v] = 1;
    }
    for (size_t j = 0; j < r->cfg->nvariants; j++)
        if (set[j])
            atomic_store_explicit(&r->weights[j], nw[j], memory_order_relaxed);
    return 0;
}

static void write_upstreams(json_w_t *jw, const snapshot_t *s) {
    uint64_t now = ev_clock_ns();
    json_w_obj_begin(jw);
    for (size_t i = 0; i < s->cfg.nbackends; i++) {
        const snap_backend_t *b = &s->backends[i];
        json_w_key(jw, b->cfg->name);
        json_w_arr_begin(jw);
        for (size_t j = 0; j < b->naddrs; j++) {
            pool_addr_t *a = b->addrs[j];
            uint64_t until = atomic_load_explicit(&a->ejected_until, memory_order_relaxed);
            json_w_obj_begin(jw);
            json_w_key(jw, "address");
            json_w_str(jw, a->name);
            json_w_key(jw, "healthy");
            json_w_bool(jw, atomic_load_explicit(&a->health, memory_order_relaxed));
            json_w_key(jw, "ejected");
            json_w_bool(jw, until > now);
            json_w_key(jw, "ejected_for_ms");
            json_w_i64(jw, until > now ? (int64_t)((until - now) / 1000000) : 0);
            json_w_key(jw, "usable");
            json_w_bool(jw, pool_addr_usable(a, now));
            json_w_key(jw, "outstanding");
            json_w_i64(jw, atomic_load_explicit(&a->outstanding, memory_order_relaxed));
            json_w_key(jw, "requests");
            json_w_i64(jw, (int64_t)atomic_load_explicit(&a->total, memory_order_relaxed));
            json_w_key(jw, "failures");
            json_w_i64(jw, (int64_t)atomic_load_explicit(&a->failed, memory_order_relaxed));
            json_w_obj_end(jw);
        }
        json_w_arr_end(jw);
    }
    json_w_obj_end(jw);
}

/* Models that cannot be served now: no variant with weight > 0 has a usable address. */
static int write_unavailable(json_w_t *jw, const snapshot_t *s) {
    uint64_t now = ev_clock_ns();
    int n = 0;
    json_w_arr_begin(jw);
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const snap_route_t *r = &s->routes[i];
        int ok = 0;
        for (size_t j = 0; j < r->cfg->nvariants && !ok; j++) {
            if (!atomic_load_explicit(&r->weights[j], memory_order_relaxed))
                continue;
            const snap_backend_t *b = &s->backends[r->cfg->variants[j].backend_idx];
            for (size_t k = 0; k < b->naddrs && !ok; k++) ok = pool_addr_usable(b->addrs[k], now);
        }
        if (!ok) {
            json_w_str(jw, r->cfg->model);
            n++;
        }
    }
    json_w_arr_end(jw);
    return n;
}

/* "/routes/NAME/weights" -> NAME, percent-decoded into b. 0, or -1 when not that shape. */
static int route_from_path(const char *path, buf_t *b) {
    static const char pre[] = "/routes/", suf[] = "/weights";
    size_t n = strlen(path);
    if (strncmp(path, pre, sizeof pre - 1) || n <= sizeof pre - 1 + sizeof suf - 1 ||
        strcmp(path + n - (sizeof suf - 1), suf))
        return -1;
    buf_reset(b);
    for (const char *p = path + sizeof pre - 1; p < path + n - (sizeof suf - 1); p++) {
        char c = *p;
        if (c == '%' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            c = (char)strtol(hex, NULL, 16);
            p += 2;
        }
        buf_append(b, &c, 1);
    }
    return b->len ? 0 : -1;
}

void admin_handle(httpd_req_t *req, void *arg) {
    gateway_t *gw = arg;
    const char *path = httpd_req_path(req), *method = httpd_req_method(req);
    int get = !strcmp(method, "GET");
    buf_t b, name;
    buf_init(&b);
    buf_init(&name);
    json_w_t jw;
    json_w_init(&jw, &b);
    snapshot_t *s = gateway_acquire(gw);

    /* Probes come without a key (kubelets, load balancers). */
    if (get && !strcmp(path, "/health")) {
        buf_appends(&b, "{\"status\":\"ok\"}");
        respond_json(req, 200, &b);
    } else if (get && !strcmp(path, "/ready")) {
        /* Ready means this gateway serves: its listeners and config are up. Upstream
         * trouble is reported, not turned into unreadiness by default — taking every
         * gateway out of a load balancer because one model's pool is down would fail the
         * models that are fine too. ?strict=1 asks for 503 when any model is unservable. */
        int strict = strstr(httpd_req_query(req), "strict=1") != NULL;
        json_w_obj_begin(&jw);
        json_w_key(&jw, "generation");
        json_w_i64(&jw, (int64_t)s->generation);
        json_w_key(&jw, "unavailable_models");
        int down = write_unavailable(&jw, s);
        json_w_key(&jw, "ready");
        json_w_bool(&jw, !(strict && down));
        json_w_obj_end(&jw);
        respond_json(req, strict && down ? 503 : 200, &b);
    } else if (!authorized(req, s)) {
        httpd_add_header(req, "WWW-Authenticate", "Bearer");
        httpd_error_ex(req, 401, "invalid_request_error",
                       "the admin API needs Authorization: Bearer <admin key>", NULL,
                       "invalid_api_key");
    } else if (canaryapi_admin(gw, req)) {
        /* /canary...: answered there (canaryapi.c) */
    } else if (get && !strcmp(path, "/config")) {
        write_config(&jw, s);
        respond_json(req, 200, &b);
    } else if (!strcmp(path, "/reload")) {
        if (strcmp(method, "POST")) {
            httpd_add_header(req, "Allow", "POST");
            httpd_error(req, 405, "invalid_request_error", "use POST /reload");
        } else {
            char msg[GWCONFIG_ERR_MAX + 256];
            int rc = gateway_reload(gw, msg, sizeof msg);
            if (rc) {
                buf_reset(&b);
                buf_appendf(&name, "config refused, the running one is kept: %s", msg);
                httpd_error_ex(req, 400, "invalid_request_error", name.data, NULL,
                               "config_invalid");
            } else {
                json_w_obj_begin(&jw);
                json_w_key(&jw, "reloaded");
                json_w_bool(&jw, 1);
                json_w_key(&jw, "generation");
                json_w_i64(&jw, (int64_t)gateway_generation(gw));
                json_w_key(&jw, "message");
                json_w_str(&jw, msg);
                json_w_obj_end(&jw);
                respond_json(req, 200, &b);
            }
        }
    } else if (get && !strcmp(path, "/routes")) {
        json_w_arr_begin(&jw);
        for (size_t i = 0; i < s->cfg.nroutes; i++) write_weights(&jw, &s->routes[i]);
        json_w_arr_end(&jw);
        respond_json(req, 200, &b);
    } else if (route_from_path(path, &name) == 0) {
        snap_route_t *r = snapshot_route(s, name.data, name.len);
        if (!r) {
            buf_appends(&name, ": no such route");
            httpd_error(req, 404, "invalid_request_error", name.data);
        } else if (get || !strcmp(method, "PUT")) {
            if (get || put_weights(req, r, &name) == 0) {
                write_weights(&jw, r);
                respond_json(req, 200, &b);
            }
        } else {
            httpd_add_header(req, "Allow", "GET, PUT");
            httpd_error(req, 405, "invalid_request_error", "use GET or PUT");
        }
    } else if (get && !strcmp(path, "/upstreams")) {
        write_upstreams(&jw, s);
        respond_json(req, 200, &b);
    } else if (get && !strcmp(path, "/limits")) {
        /* Live limits and budget state of every service (docs/governance.md). */
        gov_write_state(gateway_gov(gw), s->cfg.gov, ev_clock_ns(), time(NULL), &jw);
        respond_json(req, 200, &b);
    } else if (get && !strcmp(path, "/stats")) {
        gateway_stats_t st;
        gateway_stats(gw, &st);
        buf_appendf(&b,
                    "{\"requests\":%llu,\"errors\":%llu,\"retries\":%llu,\"client_cancels\":%llu,"
                    "\"prompt_tokens\":%llu,\"completion_tokens\":%llu,\"generation\":%llu}",
                    (unsigned long long)st.requests, (unsigned long long)st.errors,
                    (unsigned long long)st.retries, (unsigned long long)st.client_cancels,
                    (unsigned long long)st.prompt_tokens, (unsigned long long)st.completion_tokens,
                    (unsigned long long)s->generation);
        respond_json(req, 200, &b);
    } else {
        buf_appendf(&name, "Unknown admin URL: %s %s", method, path);
        httpd_error(req, 404, "invalid_request_error", name.data);
    }
    snapshot_unref(s);
    buf_free(&b);
    buf_free(&name);
}
