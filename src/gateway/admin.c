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
    json_w_kv_i64(jw, "generation", (int64_t)s->generation);
    json_w_kv_str(jw, "path", c->path ? c->path : "");
    json_w_kv_i64(jw, "threads", c->threads);
    json_w_kv_i64(jw, "max_body_bytes", (int64_t)c->max_body_bytes);
    json_w_kv_obj(jw, "http");
    json_w_kv_i64(jw, "max_head_bytes", (int64_t)c->http.max_head_bytes);
    json_w_kv_i64(jw, "max_headers", (int64_t)c->http.max_headers);
    json_w_kv_i64(jw, "header_timeout_ms", c->http.header_timeout_ms);
    json_w_kv_i64(jw, "body_timeout_ms", c->http.body_timeout_ms);
    json_w_kv_i64(jw, "idle_timeout_ms", c->http.idle_timeout_ms);
    json_w_kv_i64(jw, "write_timeout_ms", c->http.write_timeout_ms);
    json_w_kv_i64(jw, "max_connections", c->http.max_conns);
    json_w_obj_end(jw);
    json_w_kv_obj(jw, "backends");
    for (size_t i = 0; i < c->nbackends; i++) {
        const gw_backend_cfg_t *b = &c->backends[i];
        json_w_kv_obj(jw, b->name);
        json_w_kv_arr(jw, "addresses");
        for (size_t j = 0; j < s->backends[i].naddrs; j++)
            json_w_str(jw, s->backends[i].addrs[j]->name);
        json_w_arr_end(jw);
        if (b->health.path) {
            json_w_kv_obj(jw, "health_check");
            json_w_kv_str(jw, "path", b->health.path);
            json_w_kv_i64(jw, "interval_ms", b->health.interval_ms);
            json_w_kv_i64(jw, "timeout_ms", b->health.timeout_ms);
            json_w_obj_end(jw);
        } else {
            json_w_kv_bool(jw, "health_check", 0);
        }
        json_w_kv_obj(jw, "ejection");
        json_w_kv_i64(jw, "consecutive_failures", b->eject.failures);
        json_w_kv_i64(jw, "base_ms", b->eject.base_ms);
        json_w_kv_i64(jw, "max_ms", b->eject.max_ms);
        json_w_obj_end(jw);
        json_w_kv_i64(jw, "max_connections", b->max_conns);
        json_w_kv_str(jw, "api_key", b->api_key ? "(set)" : NULL); /* never echo secrets */
        json_w_obj_end(jw);
    }
    json_w_obj_end(jw);
    json_w_kv_obj(jw, "routes");
    for (size_t i = 0; i < c->nroutes; i++) {
        const gw_route_cfg_t *r = &c->routes[i];
        json_w_kv_obj(jw, r->model);
        json_w_kv_obj(jw, "variants");
        for (size_t j = 0; j < r->nvariants; j++) {
            const gw_variant_cfg_t *v = &r->variants[j];
            json_w_kv_obj(jw, v->name);
            json_w_kv_str(jw, "backend", v->backend);
            json_w_kv_i64(jw, "weight",
                          atomic_load_explicit(&s->routes[i].weights[j], memory_order_relaxed));
            json_w_kv_str(jw, "upstream_model", v->upstream_model);
            json_w_obj_end(jw);
        }
        json_w_obj_end(jw);
        json_w_kv_obj(jw, "deadlines");
        json_w_kv_i64(jw, "connect_ms", r->deadlines.connect_ms);
        json_w_kv_i64(jw, "ttft_ms", r->deadlines.ttft_ms);
        json_w_kv_i64(jw, "total_ms", r->deadlines.total_ms);
        json_w_obj_end(jw);
        json_w_kv_obj(jw, "retry");
        json_w_kv_i64(jw, "max_attempts", r->retry.max_attempts);
        json_w_kv_i64(jw, "budget_percent", r->retry.budget_percent);
        json_w_kv_i64(jw, "budget_burst", r->retry.budget_burst);
        json_w_obj_end(jw);
        json_w_obj_end(jw);
    }
    json_w_obj_end(jw);
    json_w_obj_end(jw);
}

static void write_weights(json_w_t *jw, const snap_route_t *r) {
    json_w_obj_begin(jw);
    json_w_kv_str(jw, "model", r->cfg->model);
    json_w_kv_obj(jw, "weights");
    for (size_t j = 0; j < r->cfg->nvariants; j++) {
        json_w_kv_i64(jw, r->cfg->variants[j].name,
                      atomic_load_explicit(&r->weights[j], memory_order_relaxed));
    }
    json_w_obj_end(jw);
    json_w_obj_end(jw);
}

int admin_parse_weights(const char *body, size_t len, const gw_route_cfg_t *route, uint32_t *nw,
                        int *set, char *msg, size_t msglen) {
    json_tok_t toks[2 * GW_MAX_VARIANTS + 1];
    json_doc_t d;
    size_t nv = route->nvariants < GW_MAX_VARIANTS ? route->nvariants : GW_MAX_VARIANTS;
    for (size_t j = 0; j < nv; j++)
        set[j] = 0;
    if (json_parse(body, len, toks, sizeof toks / sizeof *toks, 4, &d, NULL) <= 0 ||
        toks[0].type != JSON_OBJECT) {
        snprintf(msg, msglen,
                 "expected a JSON object of variant name to weight, e.g. {\"stable\": 90}");
        return -EINVAL;
    }
    buf_t name;
    buf_init(&name);
    int rc = 0;
    for (uint32_t i = 1, k = 0; rc == 0 && k < toks[0].size; k++, i = toks[i + 1].next) {
        buf_reset(&name);
        if (json_str_unescape(&d, (int)i, &name) != 0) {
            rc = -ENOMEM;
            snprintf(msg, msglen, "out of memory");
            break;
        }
        const char *n = name.data ? name.data : "";
        int v = -1;
        for (size_t j = 0; j < nv && v < 0; j++)
            if (strlen(n) == name.len && !strcmp(route->variants[j].name, n))
                v = (int)j;
        int64_t w;
        if (v < 0) {
            snprintf(msg, msglen, "route %s has no variant \"%.100s\"", route->model, n);
            rc = -EINVAL;
        } else if (json_get_i64(&d, (int)i + 1, &w) != 0 || w < 0 || w > 1000000) {
            snprintf(msg, msglen, "weight of %.100s must be an integer 0-1000000", n);
            rc = -EINVAL;
        } else {
            nw[v] = (uint32_t)w;
            set[v] = 1;
        }
    }
    buf_free(&name);
    return rc;
}

/* PUT body {"variant": weight, ...}: all checked first, then stored (each an atomic store;
 * a request racing the update may see a mix of old and new weights, never a torn one).
 * 0 when stored; -1 when it answered the request with an error itself. */
static int put_weights(httpd_req_t *req, snap_route_t *r) {
    size_t len;
    const char *body = httpd_req_body(req, &len);
    char msg[256];
    uint32_t nw[GW_MAX_VARIANTS];
    int set[GW_MAX_VARIANTS];
    int rc = admin_parse_weights(body, len, r->cfg, nw, set, msg, sizeof msg);
    if (rc) {
        httpd_error(req, rc == -ENOMEM ? 500 : 400, "invalid_request_error", msg);
        return -1;
    }
    for (size_t j = 0; j < r->cfg->nvariants && j < GW_MAX_VARIANTS; j++)
        if (set[j])
            atomic_store_explicit(&r->weights[j], nw[j], memory_order_relaxed);
    return 0;
}

static void write_upstreams(json_w_t *jw, const snapshot_t *s) {
    uint64_t now = ev_clock_ns();
    json_w_obj_begin(jw);
    for (size_t i = 0; i < s->cfg.nbackends; i++) {
        const snap_backend_t *b = &s->backends[i];
        json_w_kv_arr(jw, b->cfg->name);
        for (size_t j = 0; j < b->naddrs; j++) {
            pool_addr_t *a = b->addrs[j];
            uint64_t until = atomic_load_explicit(&a->ejected_until, memory_order_relaxed);
            json_w_obj_begin(jw);
            json_w_kv_str(jw, "address", a->name);
            json_w_kv_bool(jw, "healthy", atomic_load_explicit(&a->health, memory_order_relaxed));
            json_w_kv_bool(jw, "ejected", until > now);
            json_w_kv_i64(jw, "ejected_for_ms",
                          until > now ? (int64_t)((until - now) / 1000000) : 0);
            json_w_kv_bool(jw, "usable", pool_addr_usable(a, now));
            json_w_kv_i64(jw, "outstanding",
                          atomic_load_explicit(&a->outstanding, memory_order_relaxed));
            json_w_kv_i64(jw, "requests",
                          (int64_t)atomic_load_explicit(&a->total, memory_order_relaxed));
            json_w_kv_i64(jw, "failures",
                          (int64_t)atomic_load_explicit(&a->failed, memory_order_relaxed));
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
        json_w_kv_i64(&jw, "generation", (int64_t)s->generation);
        json_w_key(&jw, "unavailable_models");
        int down = write_unavailable(&jw, s);
        json_w_kv_bool(&jw, "ready", !(strict && down));
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
                json_w_kv_bool(&jw, "reloaded", 1);
                json_w_kv_i64(&jw, "generation", (int64_t)gateway_generation(gw));
                json_w_kv_str(&jw, "message", msg);
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
            if (get || put_weights(req, r) == 0) {
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
