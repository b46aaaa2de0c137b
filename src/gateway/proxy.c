/* proxy.c — the lifecycle of a proxied request on one worker: route, forward with deadlines
 * and safe retries, fall back, answer; the stages live in proxy_admit.c (authenticate,
 * admit, fair queue), proxy_sse.c (stream relay) and proxy_account.c (metrics, logs). */
#include "gateway/proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/httpc.h"
#include "core/log.h"
#include "gateway/degrade.h"
#include "gateway/keys.h"
#include "gateway/proxy_account.h"
#include "gateway/proxy_admit.h"
#include "gateway/proxy_req.h"
#include "gateway/proxy_validate.h"
#include "gateway/task.h"

#define LOG_CAPTURE (256u * 1024) /* SSE bytes kept of a sampled stream for the request log */

/* Finish with an error of the gateway's own and release (no attempt in flight). */
static void fail_request(preq_t *p, int status, const char *code, const char *msg) {
    p->fail_code = code;
    httpd_req_t *req = p->req;
    if (req && !p->committed) proxy_variant_header(p);
    /* accounted before the answer leaves, as in finish_ok */
    p->req = NULL;
    proxy_account(p, status);
    if (req) {
        if (p->committed) {
            /* Mid-stream: the status is gone; an error event tells OpenAI clients. */
            buf_t *b = &p->w->scratch;
            buf_reset(b);
            json_w_t jw;
            json_w_init(&jw, b);
            buf_appends(b, "data: ");
            json_w_obj_begin(&jw);
            json_w_key(&jw, "error");
            json_w_obj_begin(&jw);
            json_w_key(&jw, "message");
            json_w_str(&jw, msg);
            json_w_key(&jw, "type");
            json_w_str(&jw, "server_error");
            json_w_key(&jw, "code");
            json_w_str(&jw, code);
            json_w_obj_end(&jw);
            json_w_obj_end(&jw);
            buf_appends(b, "\n\n");
            if (httpd_stream_write(req, b->data, b->len) >= 0)
                httpd_stream_end(req);
            else
                httpd_abort(req);
        } else {
            httpd_error_ex(req, status, status >= 500 ? "server_error" : "invalid_request_error", msg, NULL,
                           code);
        }
    }
    proxy_req_release(p);
}

/* ---------- upstream callbacks ---------- */

static void up_head(void *arg, const http1_response_t *res) {
    preq_t *p = arg;
    p->status = res->status;
    const http1_header_t *ct = http1_find_header(res->headers, res->num_headers, "content-type");
    size_t l = ct ? ct->value_len : 0;
    if (l >= sizeof p->ctype) l = sizeof p->ctype - 1;
    memcpy(p->ctype, ct ? ct->value : "", l);
    p->ctype[l] = '\0';
    p->is_sse = l >= 17 && !strncasecmp(p->ctype, "text/event-stream", 17);
    /* Overloaded or broken upstream: try elsewhere while the budget allows. */
    if ((p->status == 502 || p->status == 503 || p->status == 504) &&
        (uint32_t)p->attempts < p->route->cfg->retry.max_attempts &&
        route_budget_withdraw(&p->route->budget)) {
        p->reason = PROXY_R_RETRY;
        httpc_cancel(p->up); /* on_done follows once this callback returns */
    }
}

static void up_body(void *arg, const char *data, size_t len) {
    preq_t *p = arg;
    if (p->reason || !p->req) return;
    if (buf_append(&p->resp, data, len) < 0 ||
        (!(p->stream && p->is_sse) && p->resp.len > PROXY_MAX_RESPONSE)) {
        p->reason = PROXY_R_TOTAL; /* treated as a failed attempt, no retry */
        httpc_cancel(p->up);
        return;
    }
    if (p->sampled && p->stream && p->cap.len < LOG_CAPTURE)
        buf_append(&p->cap, data, len); /* best effort: the log is not worth failing for */
    if (p->stream && p->is_sse && p->status == 200 && proxy_relay_forward(p, 0) < 0) {
        httpd_abort(p->req);
        p->req = NULL;
        p->reason = PROXY_R_CLIENT;
        httpc_cancel(p->up);
    }
}

static void finish_ok(preq_t *p) {
    httpd_req_t *req = p->req;
    if (p->stream && p->is_sse && p->status == 200) {
        int ok = proxy_relay_forward(p, 1) >= 0 && (p->committed || proxy_relay_commit(p) >= 0);
        /* accounted (the service's in-flight slot released) before the client sees the
         * end: it may send its next request at once, and another worker may take it */
        p->req = NULL;
        proxy_account(p, p->status);
        if (ok)
            httpd_stream_end(req);
        else
            httpd_abort(req);
    } else {
        json_doc_t d;
        if (p->status == 200 &&
            proxy_parse(p->w, p->resp.data ? p->resp.data : "", p->resp.len, &d) > 0) {
            int u = json_obj_get(&d, 0, "usage");
            int64_t v;
            int t;
            if (u >= 0 && (t = json_obj_get(&d, u, "prompt_tokens")) >= 0 &&
                json_get_i64(&d, t, &v) == 0)
                p->prompt_tokens = v;
            if (u >= 0 && (t = json_obj_get(&d, u, "completion_tokens")) >= 0 &&
                json_get_i64(&d, t, &v) == 0)
                p->completion_tokens = v;
        }
        proxy_variant_header(p);
        p->req = NULL;
        proxy_account(p, p->status); /* before the answer leaves, as above */
        httpd_respond(req, p->status, p->ctype[0] ? p->ctype : NULL, p->resp.data, p->resp.len);
    }
    proxy_req_release(p);
}

/* Move to the route's fallback variant (once, nothing sent yet, time left): its backend,
 * its upstream model in the body. 1 when there is one to try. */
static int use_fallback(preq_t *p, uint64_t now) {
    int vi = p->fell_back ? -1 : degrade_fallback(p->snap, p->route, p->variant);
    json_doc_t d;
    if (vi < 0 || p->committed || now + 1000000 >= p->deadline_total ||
        proxy_parse(p->w, p->body.data, p->body.len, &d) <= 0)
        return 0;
    p->fell_back = 1;
    p->variant = &p->route->cfg->variants[vi];
    p->backend = &p->snap->backends[p->variant->backend_idx];
    p->tried = 0;
    buf_reset(&p->resp);
    const char *um = p->variant->upstream_model ? p->variant->upstream_model : p->route->cfg->model;
    if (proxy_rewrite_body(&d, um, 0, &p->resp) < 0) return 0;
    buf_t t = p->body;
    p->body = p->resp;
    p->resp = t;
    buf_reset(&p->resp);
    return 1;
}

static void up_done(void *arg, const httpc_done_t *done) {
    preq_t *p = arg;
    proxy_worker_t *w = p->w;
    uint64_t now = ev_now_ns(w->loop);
    int reason = p->reason;
    p->up = NULL;
    p->reason = PROXY_R_NONE;
    if (p->attempt_ns) {
        p->upstream_ns += ev_clock_ns() - p->attempt_ns;
        p->attempt_ns = 0;
    }
    pool_end(p->addr);
    const pool_eject_cfg_t *ej = &p->backend->cfg->eject;
    degrade_report(p->snap, p->circ, p->probe,
                   !p->req || reason == PROXY_R_CLIENT                  ? -1
                   : done->result == HTTPC_OK && reason == PROXY_R_NONE ? p->status < 500
                                                                        : 0,
                   now);
    p->circ = NULL;

    if (!p->req) { /* the client went away: not the upstream's fault */
        proxy_count(&w->c.client_cancels, 1);
        proxy_account(p, 499);
        proxy_req_release(p);
        return;
    }
    if (done->result == HTTPC_OK && reason == PROXY_R_NONE) {
        pool_report(p->addr, p->status < 500, now, ej);
        finish_ok(p);
        return;
    }
    /* The attempt failed. Blame the address unless the failure is the total deadline
     * running out on a response that was already flowing. */
    int total = reason == PROXY_R_TOTAL || done->result == HTTPC_ERR_TOTAL_TIMEOUT;
    if (!(total && p->committed)) {
        if (pool_report(p->addr, 0, now, ej))
            log_warn("upstream ejected", LOG_STR("address", p->addr->name),
                     LOG_STR("backend", p->backend->cfg->name),
                     LOG_STR("last_error", reason == PROXY_R_RETRY ? "5xx"
                                           : reason == PROXY_R_TTFT
                                               ? "ttft_timeout"
                                               : httpc_result_name(done->result)),
                     LOG_INT("consecutive_failures", ej->failures));
    }
    if (p->committed) {
        fail_request(p, 502, total ? "total_timeout" : "upstream_error",
                     total ? "the response did not finish within the route's total deadline"
                           : "the upstream connection failed mid-response");
        return;
    }
    /* Nothing was sent to the client yet: another attempt is safe. */
    int may_retry = reason == PROXY_R_RETRY;
    if (!may_retry && !total && (uint32_t)p->attempts < p->route->cfg->retry.max_attempts &&
        now + 1000000 < p->deadline_total)
        may_retry = route_budget_withdraw(&p->route->budget);
    if ((may_retry && now < p->deadline_total) || (!total && use_fallback(p, now))) {
        proxy_count(&w->c.retries, 1);
        proxy_attempt_start(p);
        return;
    }
    char msg[256];
    const gw_deadlines_t *dl = &p->route->cfg->deadlines;
    if (total) {
        snprintf(msg, sizeof msg,
                 "the upstream did not answer within the route's total deadline "
                 "(%u ms)",
                 dl->total_ms);
        fail_request(p, 504, "total_timeout", msg);
    } else if (reason == PROXY_R_TTFT) {
        snprintf(msg, sizeof msg,
                 "no first token from the upstream within the route's ttft "
                 "deadline (%u ms)",
                 dl->ttft_ms);
        fail_request(p, 504, "ttft_timeout", msg);
    } else if (reason == PROXY_R_RETRY) {
        snprintf(msg, sizeof msg,
                 "upstream %s answered %d and the deadline left no time to try "
                 "again (after %d attempt%s)",
                 p->addr->name, p->status, p->attempts, p->attempts == 1 ? "" : "s");
        fail_request(p, 502, "upstream_unavailable", msg);
    } else {
        snprintf(msg, sizeof msg, "upstream %s failed: %s (after %d attempt%s)", p->addr->name,
                 httpc_result_name(done->result), p->attempts, p->attempts == 1 ? "" : "s");
        fail_request(p, done->result == HTTPC_ERR_CONNECT_TIMEOUT ? 504 : 502,
                     "upstream_unavailable", msg);
    }
}

void proxy_deadline_cb(ev_loop_t *loop, void *arg) {
    preq_t *p = arg;
    if (!p->up) return;
    p->reason = ev_now_ns(loop) >= p->deadline_total || p->committed ? PROXY_R_TOTAL : PROXY_R_TTFT;
    httpc_cancel(p->up); /* up_done runs now and may release p */
}

static void client_gone(httpd_req_t *req, void *arg) {
    preq_t *p = arg;
    p->req = NULL;
    if (p->up) {
        p->reason = PROXY_R_CLIENT;
        httpc_cancel(p->up); /* up_done releases p */
    } else {
        proxy_req_release(p);
    }
}

/* Start one attempt on the least-loaded usable address of the variant's backend. */
void proxy_attempt_start(preq_t *p) {
    proxy_worker_t *w = p->w;
    uint64_t now = ev_now_ns(w->loop);
    int da = degrade_admit(w->gw, p->snap, p->backend, now, &p->circ, &p->probe);
    if (da < 0) {
        if (use_fallback(p, now)) return proxy_attempt_start(p);
        fail_request(p, 503, da == DEGRADE_SHED ? "overloaded" : "circuit_open",
                     da == DEGRADE_SHED ? "the backend's queue is full; try again shortly"
                                        : "the backend's circuit is open after repeated "
                                          "failures; try again after its cool-down");
        return;
    }
    snap_backend_t *b = p->backend;
    int i = pool_pick(b->addrs, b->naddrs, now, route_rand(&w->rnd), p->tried);
    if (i < 0) {
        fail_request(p, 503, "no_upstream", "the backend pool has no addresses");
        return;
    }
    p->tried |= 1ull << i;
    p->addr = b->addrs[i];
    p->status = 0;
    p->is_sse = 0;
    p->ctype[0] = '\0';
    buf_reset(&p->resp);
    buf_reset(&p->cap);
    httpc_pool_t *hp = proxy_worker_pool(w, p->addr, b->cfg);
    const gw_deadlines_t *dl = &p->route->cfg->deadlines;
    uint64_t left_ms = p->deadline_total > now ? (p->deadline_total - now) / 1000000 : 0;
    if (!hp || left_ms == 0) {
        fail_request(p, hp ? 504 : 502, hp ? "total_timeout" : "upstream_unavailable",
                     hp ? "the route's total deadline passed before an attempt could start"
                        : "cannot reach the upstream (address does not resolve)");
        return;
    }
    httpc_request_t r = {
        .method = "POST",
        .path = httpd_req_path(p->req),
        .raw_headers = p->hdrs.data,
        .raw_headers_len = p->hdrs.len,
        .body = p->body.data,
        .body_len = p->body.len,
        .connect_timeout_ms = dl->connect_ms,
        .total_timeout_ms = (uint32_t)left_ms,
        .flags = HTTPC_F_RETRY_STALE, /* nothing sent to the client: a resend is safe */
    };
    static const httpc_callbacks_t cbs = {up_head, up_body, up_done};
    p->attempts++;
    p->attempt_ns = ev_clock_ns();
    pool_begin(p->addr);
    int rc = httpc_request(hp, &r, &cbs, p, &p->up);
    if (rc < 0) {
        pool_end(p->addr);
        p->up = NULL;
        fail_request(p, 502, "upstream_unavailable", "cannot start the upstream request");
        return;
    }
    /* Streams first wait for their first event (per attempt, so that a retry gets its own
     * time to first token), everything for the total deadline. */
    p->deadline_ttft = now + (uint64_t)dl->ttft_ms * 1000000;
    uint64_t when = p->stream && !p->committed && p->deadline_ttft < p->deadline_total
                        ? p->deadline_ttft
                        : p->deadline_total;
    uint64_t delay = when > now ? (when - now + 999999) / 1000000 : 0;
    ev_timer_start(w->loop, &p->timer, delay, proxy_deadline_cb, p);
}
/* ---------- endpoints ---------- */

static void answer_models(proxy_worker_t *w, httpd_req_t *req, const char *one) {
    buf_t *b = &w->scratch;
    buf_reset(b);
    json_w_t jw;
    json_w_init(&jw, b);
    snapshot_t *s = w->snap;
    if (!one) {
        json_w_obj_begin(&jw);
        json_w_key(&jw, "object");
        json_w_str(&jw, "list");
        json_w_key(&jw, "data");
        json_w_arr_begin(&jw);
    }
    int found = 0;
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const char *m = s->cfg.routes[i].model;
        if (one && strcmp(one, m)) continue;
        found = 1;
        json_w_obj_begin(&jw);
        json_w_key(&jw, "id");
        json_w_str(&jw, m);
        json_w_key(&jw, "object");
        json_w_str(&jw, "model");
        json_w_key(&jw, "created");
        json_w_i64(&jw, 0);
        json_w_key(&jw, "owned_by");
        json_w_str(&jw, "tollgate");
        json_w_obj_end(&jw);
    }
    if (!one) {
        json_w_arr_end(&jw);
        json_w_obj_end(&jw);
    } else if (!found) {
        buf_reset(b);
        buf_appendf(b, "The model `%s` does not exist or you do not have access to it.", one);
        httpd_error_ex(req, 404, "invalid_request_error", b->data, "model", "model_not_found");
        return;
    }
    httpd_respond(req, 200, "application/json", b->data, b->len);
}

static void method_not_allowed(httpd_req_t *req, const char *allow) {
    httpd_add_header(req, "Allow", allow);
    httpd_error_ex(req, 405, "invalid_request_error", "method not allowed for this URL; see Allow",
                   NULL, "method_not_allowed");
}

/* May this request read /metrics? With `metrics.public: true` anyone may; otherwise the
 * bearer key's hash must be one of `metrics.keys` (constant-time lookup, like service
 * keys). The counters are not secret, but they map the deployment (services, models,
 * backends, budgets) for whoever can reach the listener. */
static int metrics_allowed(const snapshot_t *s, httpd_req_t *req) {
    const obs_cfg_t *oc = s->cfg.obs;
    if (!oc) return 0;
    if (oc->metrics_public) return 1;
    const char *auth = httpd_req_header(req, "authorization");
    size_t len;
    const char *key = auth ? keys_bearer(auth, &len) : NULL;
    return key && len <= KEYS_MAX_KEY && keys_table_lookup(&oc->metrics_keys, key, len) >= 0;
}

/* GET /metrics: Prometheus text for a scraper with a metrics key (401 otherwise). Rendered
 * on this worker from atomics: the other workers are not disturbed. */
static void answer_metrics(proxy_worker_t *w, httpd_req_t *req, const char *method) {
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) return method_not_allowed(req, "GET");
    if (!metrics_allowed(w->snap, req)) {
        httpd_add_header(req, "WWW-Authenticate", "Bearer realm=\"tollgate metrics\"");
        httpd_error_ex(req, 401, "invalid_request_error",
                       "/metrics needs a scrape key: send `Authorization: Bearer KEY` with the "
                       "hash of KEY listed in the config's metrics.keys (tollgate keygen)",
                       NULL, "invalid_api_key");
        return;
    }
    buf_reset(&w->scratch);
    if (obs_render(gateway_obs(w->gw), w->gw, &w->scratch) < 0) {
        httpd_error(req, 500, "server_error", "out of memory");
        return;
    }
    httpd_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", w->scratch.data,
                  w->scratch.len);
}

void proxy_handle(httpd_req_t *req, void *arg) {
    (void)arg;
    proxy_worker_t *w = httpd_req_worker_data(req);
    const char *path = httpd_req_path(req), *method = httpd_req_method(req);
    proxy_refresh(w);
    if (!strcmp(path, "/metrics")) return answer_metrics(w, req, method);
    int service = proxy_authenticate(w, req);
    if (service == -2) return;
    if (!strncmp(path, "/v1/tasks/", 10)) return task_handle(w, req, path + 10, service);

    /* Parse: which endpoint. */
    if (!strcmp(path, "/v1/models") || !strncmp(path, "/v1/models/", 11)) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD")) return method_not_allowed(req, "GET");
        return answer_models(w, req, path[10] == '/' ? path + 11 : NULL);
    }
    const char *svc_name = service >= 0 ? w->snap->cfg.gov->services[service].name : NULL;
    if (strcmp(path, "/v1/chat/completions") && strcmp(path, "/v1/completions")) {
        proxy_account_early(req, svc_name, NULL, 404, "unknown_url");
        buf_reset(&w->scratch);
        buf_appendf(&w->scratch, "Unknown request URL: %s %s", method, path);
        httpd_error_ex(req, 404, "invalid_request_error", w->scratch.data, NULL, "unknown_url");
        return;
    }
    if (strcmp(method, "POST")) {
        proxy_account_early(req, svc_name, NULL, 405, "method_not_allowed");
        return method_not_allowed(req, "POST");
    }

    size_t len;
    const char *body = httpd_req_body(req, &len);
    json_doc_t d;
    int n = proxy_parse(w, body, len, &d);
    if (n <= 0 || d.toks[0].type != JSON_OBJECT) {
        proxy_account_early(req, svc_name, NULL, 400, "invalid_json");
        httpd_error_ex(req, 400, "invalid_request_error",
                       n == JSON_ERR_NOMEM ? "the request body has too many JSON values"
                                           : "the request body is not a valid JSON object",
                       NULL, "invalid_json");
        return;
    }
    int mt = json_obj_get(&d, 0, "model");
    if (mt < 0 || d.toks[mt].type != JSON_STRING) {
        proxy_account_early(req, svc_name, NULL, 400, "missing_model");
        httpd_error_ex(req, 400, "invalid_request_error",
                       "you must provide a model parameter (a string)", "model", NULL);
        return;
    }
    proxy_invalid_t why;
    if (proxy_validate(&d, !strcmp(path, "/v1/chat/completions"), &why) < 0) {
        proxy_account_early(req, svc_name, NULL, 400, why.code);
        httpd_error_ex(req, 400, "invalid_request_error", why.message, why.param, why.code);
        return;
    }
    int st = json_obj_get(&d, 0, "stream");
    int stream = st >= 0 && json_get_bool(&d, st) == 1;
    int so = json_obj_get(&d, 0, "stream_options"),
        iu = so >= 0 ? json_obj_get(&d, so, "include_usage") : -1;
    buf_t *name = &w->scratch;
    buf_reset(name);
    if (json_str_unescape(&d, mt, name) < 0) {
        httpd_error(req, 500, "server_error", "out of memory");
        return;
    }
    snap_route_t *route = snapshot_route(w->snap, name->data, name->len);
    if (!route) {
        char msg[320];
        snprintf(msg, sizeof msg,
                 "The model `%.200s` does not exist or you do not have access to it.", name->data);
        proxy_account_early(req, svc_name, NULL, 404, "model_not_found");
        httpd_error_ex(req, 404, "invalid_request_error", msg, "model", "model_not_found");
        return;
    }
    if (service >= 0) {
        gov_decision_t gd;
        if (gov_check_model(gateway_gov(w->gw), w->snap->cfg.gov, service, name->data, &gd)) {
            proxy_gov_refuse(req, &gd, NULL);
            return;
        }
    }

    preq_t *p = proxy_req_get(w);
    if (!p) {
        httpd_error(req, 503, "server_error", "the gateway is out of memory");
        return;
    }
    p->req = req;
    p->snap = snapshot_ref(w->snap);
    p->route = route;
    p->stream = stream;
    p->client_usage = iu >= 0 && json_get_bool(&d, iu) == 1;
    p->prompt_tokens = p->completion_tokens = -1;
    p->start_ns = httpd_req_start_ns(req);
    p->is_chat = !strcmp(path, "/v1/chat/completions");
    p->sampled = obs_sample(w->obs, w->snap->cfg.obs,
                            service >= 0 ? w->snap->cfg.gov->services[service].name : NULL);
    const char *xrid = httpd_req_header(req, "x-request-id");
    if (xrid) snprintf(p->rid, sizeof p->rid, "%s", xrid);

    if (proxy_admit(p, &d, service, !strcmp(path, "/v1/chat/completions"))) {
        proxy_req_release(p);
        return;
    }

    /* Route: a variant by weight, its backend pool. */
    const gw_route_cfg_t *rc = route->cfg;
    int vi = degrade_pick(w->snap, route, req, &d, route_rand(&w->rnd));
    if (vi < 0) {
        p->req = NULL;
        proxy_req_release(p);
        proxy_account_early(req, svc_name, rc->model, 503, "no_variant");
        httpd_error_ex(req, 503, "server_error", "every variant of this model has weight 0",
                       "model", "no_variant");
        return;
    }
    p->variant = &rc->variants[vi];
    p->backend = &w->snap->backends[p->variant->backend_idx];

    /* Forward: the upstream body and headers (a client's request id travels along, for
     * tracing across the hop), then the first attempt. */
    const char *rid = httpd_req_header(req, "x-request-id");
    if (proxy_rewrite_body(&d, p->variant->upstream_model, stream, &p->body) < 0 ||
        buf_appends(&p->hdrs, "Content-Type: application/json\r\n") < 0 ||
        buf_appends(&p->hdrs, stream ? "Accept: text/event-stream\r\n"
                                     : "Accept: application/json\r\n") < 0 ||
        (rid && strlen(rid) <= 128 && buf_appendf(&p->hdrs, "X-Request-Id: %s\r\n", rid) < 0) ||
        (p->backend->cfg->api_key &&
         buf_appendf(&p->hdrs, "Authorization: Bearer %s\r\n", p->backend->cfg->api_key) < 0)) {
        p->req = NULL;
        proxy_req_release(p);
        httpd_error(req, 500, "server_error", "out of memory");
        return;
    }
    uint64_t start = httpd_req_start_ns(req);
    p->deadline_total = start + (uint64_t)rc->deadlines.total_ms * 1000000;
    route_budget_deposit(&route->budget, rc->retry.budget_percent, rc->retry.budget_burst);
    httpd_req_on_close(req, client_gone, p);
    proxy_first_attempt(p);
}
