/* service.c — the example order service: POST/GET /orders, the bounded task call, metrics. */
#include "orders/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/httpc.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "orders/wire.h"

#define ORDERS_MAX_ANSWER 65536 /* a task answer is a line of text; more is malformed */

/* Why an order kept its raw text (or NONE: the model's description was used). Bounded, so
 * each is one metrics label value. */
typedef enum orders_reason {
    R_NONE = 0,         /* normalized by the model */
    R_DISABLED,         /* no gateway configured */
    R_TIMEOUT,          /* the call did not finish within the deadline */
    R_UNREACHABLE,      /* connection refused / unreachable */
    R_RESET,            /* connection closed before the answer was complete */
    R_HTTP_STATUS,      /* the gateway answered something other than 200 */
    R_MALFORMED,        /* 200, but not the task contract */
    R_GATEWAY_FALLBACK, /* the gateway itself fell back (its reason is kept in the order) */
    R_ERROR,            /* a local failure starting the call */
    R_COUNT
} orders_reason_t;

static const char *const reason_names[R_COUNT] = {
    "none",        "disabled",  "timeout",          "unreachable", "reset",
    "http_status", "malformed", "gateway_fallback", "error"};

struct orders {
    store_t *store;
    char *gateway_host; /* NULL: disabled */
    uint16_t gateway_port;
    char *task_path;    /* "/PREFIX/v1/tasks/NAME" */
    char *auth_headers; /* "Authorization: Bearer K\r\nContent-Type: ...\r\n" */
    uint32_t deadline_ms;
    metrics_registry_t *metrics;
    metrics_child_t *created;            /* tollgate_orders_created_total */
    metrics_child_t *by_source[R_COUNT]; /* tollgate_orders_description_total{source,reason} */
    metrics_child_t *rejected_bad, *rejected_store;
    metrics_child_t *normalize_seconds; /* histogram of the call's duration */
};

/* Per worker thread: the client pool to the gateway lives on that worker's loop. */
typedef struct orders_worker {
    orders_t *svc;
    httpc_pool_t *pool; /* NULL when disabled or the pool could not be made */
} orders_worker_t;

/* One POST /orders waiting for its normalization. Allocated per order (the service writes
 * to disk for every order anyway; one malloc is not what limits it). Owned by the
 * in-flight call: freed in finish() or, when the client left, in on_done. */
typedef struct orders_call {
    orders_t *svc;
    httpd_req_t *req;  /* NULL once the client has gone */
    httpc_req_t *hreq; /* the gateway call, NULL when none is in flight */
    wire_order_in_t in;
    uint64_t t0_ns;
    int status;  /* gateway's HTTP status */
    int too_big; /* answer exceeded ORDERS_MAX_ANSWER */
    buf_t answer;
} orders_call_t;

/* ---------- answers ---------- */

static void respond_json(httpd_req_t *req, int status, buf_t *b) {
    httpd_respond(req, status, "application/json", b->data ? b->data : "", b->len);
}

static void call_free(orders_call_t *c) {
    wire_order_in_clear(&c->in);
    buf_free(&c->answer);
    free(c);
}

/* Store the order with its description and answer the client. reason_detail is the text
 * kept in the order ("" for the model's description). */
static void finish(orders_call_t *c, orders_reason_t why, const char *detail,
                   const wire_task_out_t *t) {
    orders_t *s = c->svc;
    uint64_t dt_ns = ev_clock_ns() - c->t0_ns;
    char reason[320];
    if (why == R_NONE)
        reason[0] = '\0';
    else if (detail && *detail)
        snprintf(reason, sizeof reason, "%s: %s", reason_names[why], detail);
    else
        snprintf(reason, sizeof reason, "%s", reason_names[why]);
    store_order_t o = {
        .items = c->in.items,
        .customer = c->in.customer,
        .description = why == R_NONE ? t->output : c->in.items,
        .description_source = why == R_NONE ? "model" : "raw",
        .reason = reason,
        .model = t && t->model ? t->model : "",
        .variant = t && t->variant ? t->variant : "",
        .normalize_ms = (int64_t)(dt_ns / 1000000u),
    };
    if (why != R_DISABLED) metrics_observe(s->normalize_seconds, (double)dt_ns / 1e9);
    /* The order is durable before the client hears of it: store_insert returns after
     * the commit. (SQLite's fsync runs on this worker's loop; see docs/orders.md.) */
    int rc = store_insert(s->store, &o);
    if (rc < 0) {
        metrics_inc(s->rejected_store);
        log_error("order not stored", LOG_ERRNO("error", rc)); /* no customer data in logs */
        httpd_error(c->req, 503, "store_error",
                    "the order could not be stored and was NOT created; retry");
    } else {
        metrics_inc(s->created);
        metrics_inc(s->by_source[why]);
        if (why != R_NONE)
            log_info("order kept its raw text", LOG_INT("id", o.id), LOG_STR("reason", reason),
                     LOG_INT("normalize_ms", o.normalize_ms));
        buf_t b;
        buf_init(&b);
        json_w_t w;
        json_w_init(&w, &b);
        wire_write_order(&w, &o);
        char loc[48];
        snprintf(loc, sizeof loc, "/orders/%lld", (long long)o.id);
        httpd_add_header(c->req, "Location", loc);
        respond_json(c->req, 201, &b);
        buf_free(&b);
    }
    call_free(c);
}

/* ---------- the normalization call ---------- */

static void on_head(void *arg, const http1_response_t *res) {
    ((orders_call_t *)arg)->status = res->status;
}

static void on_body(void *arg, const char *data, size_t len) {
    orders_call_t *c = arg;
    if (c->answer.len + len > ORDERS_MAX_ANSWER) {
        c->too_big = 1;
        return;
    }
    if (buf_append(&c->answer, data, len) < 0) c->too_big = 1;
}

static void on_done(void *arg, const httpc_done_t *d) {
    orders_call_t *c = arg;
    c->hreq = NULL;
    if (!c->req) { /* the client left: nothing was acknowledged, nothing is stored */
        call_free(c);
        return;
    }
    char detail[256] = "";
    switch (d->result) {
    case HTTPC_OK:
        break;
    case HTTPC_ERR_CONNECT_TIMEOUT:
    case HTTPC_ERR_FIRST_BYTE_TIMEOUT:
    case HTTPC_ERR_TOTAL_TIMEOUT:
        snprintf(detail, sizeof detail, "no answer within %u ms", c->svc->deadline_ms);
        finish(c, R_TIMEOUT, detail, NULL);
        return;
    case HTTPC_ERR_CONNECT:
        snprintf(detail, sizeof detail, "%s", strerror(d->sys_errno ? d->sys_errno : ECONNREFUSED));
        finish(c, R_UNREACHABLE, detail, NULL);
        return;
    case HTTPC_ERR_RESET:
        finish(c, R_RESET, "", NULL);
        return;
    case HTTPC_ERR_MALFORMED:
        finish(c, R_MALFORMED, "not an HTTP response", NULL);
        return;
    default:
        finish(c, R_ERROR, httpc_result_name(d->result), NULL);
        return;
    }
    if (c->status != 200) {
        snprintf(detail, sizeof detail, "%d", c->status);
        finish(c, R_HTTP_STATUS, detail, NULL);
        return;
    }
    if (c->too_big) {
        finish(c, R_MALFORMED, "answer too large", NULL);
        return;
    }
    wire_task_out_t t;
    if (wire_parse_task_answer(c->answer.data ? c->answer.data : "", c->answer.len, &t, detail,
                               sizeof detail) < 0) {
        finish(c, R_MALFORMED, detail, NULL);
        return;
    }
    if (t.fallback) {
        /* Keep the customer's own text rather than whatever the gateway echoed. */
        finish(c, R_GATEWAY_FALLBACK, *t.reason ? t.reason : "unspecified", &t);
    } else {
        finish(c, R_NONE, "", &t);
    }
    wire_task_out_clear(&t);
}

static void on_client_close(httpd_req_t *req, void *arg) {
    orders_call_t *c = arg;
    c->req = NULL;
    if (c->hreq) httpc_cancel(c->hreq); /* on_done runs now and frees c */
}

static void create_order(httpd_req_t *req, orders_worker_t *wk) {
    orders_t *s = wk->svc;
    size_t len;
    const char *body = httpd_req_body(req, &len);
    char err[256];
    const char *param = NULL;
    orders_call_t *c = calloc(1, sizeof *c);
    if (!c) {
        httpd_error(req, 503, "overloaded", "out of memory; the order was NOT created, retry");
        return;
    }
    c->svc = s;
    c->req = req;
    c->t0_ns = ev_clock_ns();
    buf_init(&c->answer);
    if (wire_parse_order(body, len, &c->in, err, sizeof err, &param) < 0) {
        metrics_inc(s->rejected_bad);
        httpd_error_ex(req, 400, "invalid_request_error", err, param, NULL);
        call_free(c);
        return;
    }
    if (!wk->pool) {
        finish(c, s->gateway_host ? R_ERROR : R_DISABLED,
               s->gateway_host ? "no client for the gateway" : "", NULL);
        return;
    }
    buf_t rb;
    buf_init(&rb);
    json_w_t w;
    json_w_init(&w, &rb);
    json_w_obj_begin(&w);
    json_w_key(&w, "input");
    json_w_str(&w, c->in.items);
    json_w_obj_end(&w);
    /* Each phase gets the whole deadline, and total_timeout bounds them together, so the
     * call never outlives the deadline whatever phase it stalls in. */
    httpc_request_t hr = {
        .method = "POST",
        .path = s->task_path,
        .raw_headers = s->auth_headers,
        .raw_headers_len = strlen(s->auth_headers),
        .body = rb.data,
        .body_len = rb.len,
        .connect_timeout_ms = s->deadline_ms,
        .first_byte_timeout_ms = s->deadline_ms,
        .total_timeout_ms = s->deadline_ms,
        .flags = HTTPC_F_RETRY_STALE, /* the task is idempotent: a resend is safe */
    };
    static const httpc_callbacks_t cbs = {on_head, on_body, on_done};
    int rc = httpc_request(wk->pool, &hr, &cbs, c, &c->hreq);
    buf_free(&rb);
    if (rc < 0) {
        c->hreq = NULL;
        finish(c, R_ERROR, strerror(-rc), NULL);
        return;
    }
    httpd_req_on_close(req, on_client_close, c);
}

/* ---------- reads ---------- */

static void get_order(httpd_req_t *req, orders_t *s, const char *idtext) {
    int64_t id;
    if (wire_parse_id(idtext, &id) < 0) {
        httpd_error_ex(req, 400, "invalid_request_error",
                       "an order id is a whole number >= 1, as in /orders/42", "id", NULL);
        return;
    }
    store_order_t o;
    int rc = store_get(s->store, id, &o);
    if (rc == -ENOENT) {
        httpd_error(req, 404, "not_found", "no order with this id");
        return;
    }
    if (rc < 0) {
        httpd_error(req, 503, "store_error", "the order store could not be read; retry");
        return;
    }
    buf_t b;
    buf_init(&b);
    json_w_t w;
    json_w_init(&w, &b);
    wire_write_order(&w, &o);
    respond_json(req, 200, &b);
    buf_free(&b);
    store_order_clear(&o);
}

static void list_orders(httpd_req_t *req, orders_t *s) {
    int limit;
    int64_t before;
    char err[160];
    if (wire_parse_list_query(httpd_req_query(req), &limit, &before, err, sizeof err) < 0) {
        httpd_error(req, 400, "invalid_request_error", err);
        return;
    }
    store_order_t *v;
    size_t n;
    if (store_list(s->store, before, limit, &v, &n) < 0) {
        httpd_error(req, 503, "store_error", "the order store could not be read; retry");
        return;
    }
    buf_t b;
    buf_init(&b);
    json_w_t w;
    json_w_init(&w, &b);
    json_w_obj_begin(&w);
    json_w_key(&w, "orders");
    json_w_arr_begin(&w);
    for (size_t i = 0; i < n; i++) wire_write_order(&w, &v[i]);
    json_w_arr_end(&w);
    json_w_key(&w, "next_before"); /* pass as before= for the next (older) page */
    if (n == (size_t)limit && n > 0)
        json_w_i64(&w, v[n - 1].id);
    else
        json_w_null(&w);
    json_w_obj_end(&w);
    respond_json(req, 200, &b);
    buf_free(&b);
    store_orders_free(v, n);
}

static void handle(httpd_req_t *req, void *arg) {
    orders_worker_t *wk = httpd_req_worker_data(req);
    orders_t *s = wk->svc;
    const char *m = httpd_req_method(req), *p = httpd_req_path(req);
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD"), post = !strcmp(m, "POST");
    if (!strcmp(p, "/orders")) {
        if (post)
            create_order(req, wk);
        else if (get)
            list_orders(req, s);
        else
            goto not_allowed;
    } else if (!strncmp(p, "/orders/", 8)) {
        if (!get) goto not_allowed;
        get_order(req, s, p + 8);
    } else if (!strcmp(p, "/health")) {
        if (!get) goto not_allowed;
        if (store_ping(s->store) == 0)
            httpd_respond(req, 200, "application/json", "{\"status\":\"ok\"}", 15);
        else
            httpd_respond(req, 503, "application/json", "{\"status\":\"store unavailable\"}", 31);
    } else if (!strcmp(p, "/metrics")) {
        if (!get) goto not_allowed;
        buf_t b;
        buf_init(&b);
        if (metrics_render(s->metrics, &b) < 0)
            httpd_error(req, 500, "server_error", "out of memory");
        else
            httpd_respond(req, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
        buf_free(&b);
    } else {
        httpd_error(req, 404, "not_found",
                    "unknown path; the order service has POST /orders, GET /orders, "
                    "GET /orders/ID, GET /health, GET /metrics");
    }
    return;
not_allowed:
    httpd_add_header(req, "Allow", !strcmp(p, "/orders") ? "GET, POST" : "GET");
    httpd_error(req, 405, "invalid_request_error", "method not allowed on this path");
}

/* ---------- workers ---------- */

static void *worker_init(int worker, ev_loop_t *loop, void *arg) {
    orders_t *s = arg;
    orders_worker_t *wk = calloc(1, sizeof *wk);
    if (!wk) return NULL;
    wk->svc = s;
    if (s->gateway_host) {
        httpc_pool_opts_t po = {.max_idle = 32,
                                .connect_timeout_ms = s->deadline_ms,
                                .total_timeout_ms = s->deadline_ms};
        int rc = httpc_pool_new(loop, s->gateway_host, s->gateway_port, &po, &wk->pool);
        if (rc < 0) {
            wk->pool = NULL;
            log_error("no client pool for the gateway; orders keep their raw text",
                      LOG_STR("host", s->gateway_host), LOG_ERRNO("error", rc));
        }
    }
    return wk;
}

static void worker_fini(int worker, void *data, void *arg) {
    orders_worker_t *wk = data;
    if (!wk) return;
    httpc_pool_free(wk->pool);
    free(wk);
}

void orders_httpd_setup(orders_t *o, httpd_config_t *cfg) {
    cfg->handler = handle;
    cfg->handler_arg = o;
    cfg->worker_init = worker_init;
    cfg->worker_fini = worker_fini;
    cfg->worker_arg = o;
}

/* ---------- set-up ---------- */

int orders_new(const orders_config_t *cfg, store_t *store, orders_t **out) {
    *out = NULL;
    orders_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->store = store;
    s->deadline_ms = cfg->deadline_ms ? cfg->deadline_ms : ORDERS_DEFAULT_DEADLINE_MS;
    s->gateway_port = cfg->gateway_port;
    buf_t b;
    buf_init(&b);
    if (cfg->gateway_host && !(s->gateway_host = strdup(cfg->gateway_host))) goto nomem;
    if (buf_appendf(&b, "%s/v1/tasks/%s", cfg->gateway_prefix ? cfg->gateway_prefix : "",
                    cfg->task ? cfg->task : ORDERS_DEFAULT_TASK) < 0 ||
        !(s->task_path = strdup(b.data)))
        goto nomem;
    buf_reset(&b);
    if (cfg->gateway_key && buf_appendf(&b, "Authorization: Bearer %s\r\n", cfg->gateway_key) < 0)
        goto nomem;
    if (buf_appends(&b, "Content-Type: application/json\r\n") < 0 ||
        !(s->auth_headers = strdup(b.data)))
        goto nomem;
    buf_free(&b);

    s->metrics = metrics_registry_new();
    if (!s->metrics) goto nomem;
    static const char *const src_labels[] = {"source", "reason", NULL};
    static const char *const rej_labels[] = {"reason", NULL};
    metrics_family_t *fc = metrics_counter(s->metrics, "tollgate_orders_created_total",
                                           "Orders stored and acknowledged.", NULL);
    metrics_family_t *fs = metrics_counter(
        s->metrics, "tollgate_orders_description_total",
        "Orders by where their description came from: the model, or the raw text and why.",
        src_labels);
    metrics_family_t *fr =
        metrics_counter(s->metrics, "tollgate_orders_rejected_total",
                        "POST /orders not created: bad input or store failure.", rej_labels);
    metrics_family_t *fh =
        metrics_histogram(s->metrics, "tollgate_orders_normalize_duration_seconds",
                          "Time spent on the normalization call (bounded by the deadline).", NULL,
                          metrics_latency_buckets, metrics_latency_nbuckets);
    if (!fc || !fs || !fr || !fh) goto nomem;
    s->created = metrics_child(fc, NULL);
    s->normalize_seconds = metrics_child(fh, NULL);
    s->rejected_bad = metrics_labels(fr, "bad_request");
    s->rejected_store = metrics_labels(fr, "store_error");
    if (!s->created || !s->normalize_seconds || !s->rejected_bad || !s->rejected_store) goto nomem;
    for (int r = 0; r < R_COUNT; r++)
        if (!(s->by_source[r] = metrics_labels(fs, r == R_NONE ? "model" : "raw", reason_names[r])))
            goto nomem;
    *out = s;
    return 0;
nomem:
    buf_free(&b);
    orders_free(s);
    return -ENOMEM;
}

void orders_free(orders_t *s) {
    if (!s) return;
    metrics_registry_free(s->metrics);
    free(s->gateway_host);
    free(s->task_path);
    free(s->auth_headers);
    free(s);
}

int orders_parse_url(const char *url, char *host, size_t hostcap, uint16_t *port, char *prefix,
                     size_t prefixcap) {
    if (strncmp(url, "http://", 7) != 0)
        return -EINVAL; /* https would need TLS; put a sidecar or the in-cluster Service in front */
    const char *h = url + 7, *hend, *rest;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend) return -EINVAL;
        h++;
        rest = hend + 1;
    } else {
        hend = h + strcspn(h, ":/");
        rest = hend;
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl >= hostcap) return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    long p = 80;
    if (*rest == ':') {
        char *end;
        p = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || p < 1 || p > 65535) return -EINVAL;
        rest = end;
    }
    if (*rest && *rest != '/') return -EINVAL;
    size_t pl = strlen(rest);
    while (pl > 0 && rest[pl - 1] == '/') pl--;
    if (pl >= prefixcap || strpbrk(rest, "?# ")) return -EINVAL;
    memcpy(prefix, rest, pl);
    prefix[pl] = '\0';
    *port = (uint16_t)p;
    return 0;
}
