/* proxy_account.c — the last stage of a request: counters, metrics, access and request
 * log, canary statistics and the correction of the governance charge. */
#include "gateway/proxy_account.h"

#include <time.h>

#include "gateway/canaryapi.h"
#include "gateway/proxy_req.h"

/* Metrics, access log and (when sampled) request log of a finished request (obs.h). */
static void obs_account(preq_t *p, int status) {
    uint64_t now = ev_clock_ns();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t wall_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    const buf_t *resp = p->stream && p->is_sse ? &p->cap : &p->resp;
    obs_req_t r = {
        .ts_ms = wall_ms - (int64_t)((now - p->start_ns) / 1000000),
        .method = "POST",
        .path = p->is_chat ? "/v1/chat/completions" : "/v1/completions",
        .service = p->gt.svc ? p->gt.svc->name : NULL,
        .model = p->route ? p->route->cfg->model : NULL,
        .variant = p->variant ? p->variant->name : NULL,
        .request_id = p->rid[0] ? p->rid : NULL,
        .reason = p->fail_code,
        .status = status,
        .stream = p->stream && p->is_sse,
        .attempts = p->attempts,
        .start_ns = p->start_ns,
        .first_ns = p->first_ns,
        .end_ns = now,
        .upstream_ns = p->upstream_ns,
        .prompt_tokens = p->prompt_tokens,
        .completion_tokens = p->completion_tokens,
        .sampled = p->sampled,
        .prompt = p->body.data,
        .prompt_len = p->body.len,
        .response = resp->data,
        .response_len = resp->len,
    };
    obs_request_end(p->w->obs, &r);
}

/* The last stage: counters, metrics and logs, the correction of the governance charge. */
void proxy_account(preq_t *p, int status) {
    proxy_counters_t *c = &p->w->c;
    obs_account(p, status);
    if (p->variant) /* canary statistics (a no-op unless this route's canary runs) */
        canaryapi_observe(p->w->gw, p->route->cfg->model, p->variant->name,
                          (uint32_t)((ev_clock_ns() - p->start_ns) / 1000000), status >= 500, 0);
    proxy_count(&c->requests, 1);
    if (status >= 400) proxy_count(&c->errors, 1);
    if (p->prompt_tokens > 0) proxy_count(&c->prompt_tokens, (uint64_t)p->prompt_tokens);
    if (p->completion_tokens > 0)
        proxy_count(&c->completion_tokens, (uint64_t)p->completion_tokens);
    /* Correct the reservation with the usage the upstream reported. */
    if (p->gt.shared && p->w->shared)
        gov_shared_finish(p->w->shared, &p->gt,
                          gov_actual(&p->gt, p->prompt_tokens, p->completion_tokens, status),
                          time(NULL));
    if (p->gt.st || p->gt.ml_charged)
        gov_finish(gateway_gov(p->w->gw), &p->gt, p->prompt_tokens, p->completion_tokens, status,
                   ev_now_ns(p->w->loop), time(NULL));
}

/* A request answered with an error before it was routed (refused, malformed, unknown):
 * counted in requests_total by status and access-logged, but kept out of the latency
 * histograms (a fast refusal is not a fast answer). Labels come from the config only
 * (service, a route's model), never from the request, so clients cannot add series. */
void proxy_account_early(httpd_req_t *req, const char *service, const char *model, int status,
                         const char *code) {
    proxy_worker_t *w = httpd_req_worker_data(req);
    uint64_t now = ev_clock_ns(), start = httpd_req_start_ns(req);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    obs_req_t r = {
        .ts_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 -
                 (int64_t)((now - start) / 1000000),
        .method = httpd_req_method(req),
        .path = httpd_req_path(req),
        .service = service,
        .model = model,
        .request_id = httpd_req_header(req, "x-request-id"),
        .reason = code,
        .status = status,
        .refused = 1,
        .start_ns = start,
        .end_ns = now,
        .prompt_tokens = -1,
        .completion_tokens = -1,
    };
    obs_request_end(w->obs, &r);
}

void proxy_refused(proxy_worker_t *w, int status) {
    uint64_t now = ev_clock_ns();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    obs_req_t r = {
        .ts_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000,
        .reason = status == 408   ? "client_timeout"
                  : status == 413 ? "body_too_large"
                  : status == 431 ? "headers_too_large"
                  : status == 503 ? "overloaded"
                                  : "malformed_request",
        .status = status,
        .refused = 1,
        .start_ns = now,
        .end_ns = now,
        .prompt_tokens = -1,
        .completion_tokens = -1,
    };
    obs_request_end(w->obs, &r);
}
