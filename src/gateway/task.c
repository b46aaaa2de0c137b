/* task.c — POST /v1/tasks/NAME: build the chat request, send it through the route with a
 * deadline timer, and answer with the output or the fallback, never later than the deadline. */
#include "gateway/task.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/httpc.h"
#include "core/json.h"
#include "core/log.h"
#include "gateway/canary.h"
#include "gateway/canaryapi.h"
#include "gateway/circuit.h"
#include "gateway/degrade.h"
#include "gateway/govern.h"
#include "gateway/obs.h"
#include "gateway/proxy.h"
#include "gateway/route.h"
#include "gateway/taskcfg.h"

#define TASK_TOKS  1024         /* JSON values in a task body or an upstream answer (logprobs fit) */
#define TASK_KEEP  (64u * 1024) /* request buffers larger than this are freed on reuse */

/* One task request. From the worker's free list, with its buffers: the steady state does
 * not allocate. Lives until the client side is done (answered or gone) and no upstream
 * call is in flight. */
typedef struct treq {
    task_worker_t *tw;
    httpd_req_t *req;        /* NULL once answered or gone */
    snapshot_t *snap;        /* a reference: the generation the task started on */
    const task_def_t *task;
    const gw_route_cfg_t *route;
    const gw_variant_cfg_t *variant; /* NULL before one was chosen */
    snap_backend_t *backend;
    pool_addr_t *addr;
    circuit_t *circ;         /* the backend's breaker; NULL when breaking is off */
    int probe;               /* this call is the breaker's half-open probe */
    httpc_req_t *up;         /* the upstream call in flight */
    int status;              /* upstream status, 0 before the head */
    int timed_out;           /* the deadline fired: the call is being cancelled */
    uint64_t start_ns;       /* arrival (monotonic) */
    uint64_t up_ns;          /* start of the upstream call; 0: none */
    uint64_t upstream_ns;    /* time spent on it */
    int64_t prompt_tokens, completion_tokens;
    gov_ticket_t gt;         /* governance charge, corrected at the end */
    buf_t input;             /* the caller's input, unescaped */
    buf_t body;              /* the upstream request body */
    buf_t resp;              /* the upstream answer */
    ev_timer_t timer;        /* the task's deadline */
    struct treq *next;
} treq_t;

struct task_worker {
    struct proxy_worker *pw;
    treq_t *free;
    json_tok_t toks[TASK_TOKS];
    buf_t scratch;
};

/* ---------- pure helpers ---------- */

int task_render(const char *tmpl, const char *input, size_t len, buf_t *out) {
    const char *p = tmpl, *m;
    int rc = 0;
    while ((m = strstr(p, "{input}"))) {
        rc |= buf_append(out, p, (size_t)(m - p));
        rc |= buf_append(out, input, len);
        p = m + 7;
    }
    rc |= buf_appends(out, p);
    return rc ? -ENOMEM : 0;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void task_post(int rule, char *s, size_t *len) {
    size_t n = *len;
    if (rule == TASK_POST_NONE)
        return;
    size_t a = 0;
    while (a < n && is_space(s[a])) a++;
    if (rule == TASK_POST_FIRST_LINE) {
        const char *nl = memchr(s + a, '\n', n - a);
        if (nl)
            n = (size_t)(nl - s);
    }
    while (n > a && is_space(s[n - 1])) n--;
    memmove(s, s + a, n - a);
    *len = n - a;
    s[*len] = '\0';
}

int task_pick_variant(snapshot_t *s, size_t route_idx, const char *key, size_t len, uint32_t rnd) {
    const snap_route_t *r = &s->routes[route_idx];
    size_t n = r->cfg->nvariants < GW_MAX_VARIANTS ? r->cfg->nvariants : GW_MAX_VARIANTS;
    uint32_t w[GW_MAX_VARIANTS];
    for (size_t i = 0; i < n; i++) w[i] = atomic_load_explicit(&r->weights[i], memory_order_relaxed);
    const taskcfg_t *d = s->cfg.deg;
    if (key && d && route_idx < d->nroutes && d->routes[route_idx].sticky)
        return canary_pick_sticky(w, n, canary_bucket(key, len));
    return route_pick_variant(w, n, rnd);
}

/* ---------- the worker's task side ---------- */

void task_worker_free(task_worker_t *tw) {
    if (!tw)
        return;
    while (tw->free) {
        treq_t *t = tw->free;
        tw->free = t->next;
        buf_free(&t->input);
        buf_free(&t->body);
        buf_free(&t->resp);
        free(t);
    }
    buf_free(&tw->scratch);
    free(tw);
}

static treq_t *treq_get(task_worker_t *tw) {
    treq_t *t = tw->free;
    if (t) {
        tw->free = t->next;
    } else if ((t = calloc(1, sizeof *t))) {
        buf_init(&t->input);
        buf_init(&t->body);
        buf_init(&t->resp);
    } else {
        return NULL;
    }
    buf_t in = t->input, body = t->body, resp = t->resp;
    memset(t, 0, sizeof *t);
    t->input = in;
    t->body = body;
    t->resp = resp;
    t->tw = tw;
    t->prompt_tokens = t->completion_tokens = -1;
    ev_timer_init(&t->timer);
    return t;
}

static void keep_or_free(buf_t *b) {
    if (b->cap > TASK_KEEP)
        buf_free(b);
    else
        buf_reset(b);
}

static void treq_release(treq_t *t) {
    proxy_env_t env;
    proxy_worker_env(t->tw->pw, &env);
    ev_timer_stop(env.loop, &t->timer);
    if (t->gt.st)
        gov_finish(gateway_gov(env.gw), &t->gt, t->prompt_tokens, t->completion_tokens,
                   t->status == 200 ? 200 : 502, ev_now_ns(env.loop), time(NULL));
    snapshot_unref(t->snap);
    t->snap = NULL;
    keep_or_free(&t->input);
    keep_or_free(&t->body);
    keep_or_free(&t->resp);
    t->next = t->tw->free;
    t->tw->free = t;
}

/* ---------- answering ---------- */

static const char *answer_model(const treq_t *t) {
    return t->variant && t->variant->upstream_model ? t->variant->upstream_model : t->route->model;
}

/* Answer the client (once): the output, or the fallback with its reason. Then account. */
static void answer(treq_t *t, const char *out, size_t len, const char *reason) {
    if (!t->req)
        return;
    proxy_env_t env;
    proxy_worker_env(t->tw->pw, &env);
    uint64_t now = ev_clock_ns();
    int fallback = reason != NULL;
    if (fallback) {
        if (t->task->fallback_text) {
            out = t->task->fallback_text;
            len = strlen(out);
        } else {
            out = t->input.data ? t->input.data : "";
            len = t->input.len;
        }
    }
    uint64_t latency_ms = (now - t->start_ns) / 1000000;
    buf_t *b = &t->tw->scratch;
    buf_reset(b);
    json_w_t jw;
    json_w_init(&jw, b);
    json_w_obj_begin(&jw);
    json_w_key(&jw, "output");
    json_w_strn(&jw, out, len);
    json_w_key(&jw, "fallback");
    json_w_bool(&jw, fallback);
    json_w_key(&jw, "reason");
    if (reason)
        json_w_str(&jw, reason);
    else
        json_w_null(&jw);
    json_w_key(&jw, "model");
    json_w_str(&jw, answer_model(t));
    json_w_key(&jw, "variant");
    if (t->variant)
        json_w_str(&jw, t->variant->name);
    else
        json_w_null(&jw);
    json_w_key(&jw, "latency_ms");
    json_w_i64(&jw, (int64_t)latency_ms);
    json_w_obj_end(&jw);
    if (t->variant)
        httpd_add_header(t->req, "x-tollgate-variant", t->variant->name);
    if (fallback)
        httpd_add_header(t->req, "x-tollgate-fallback", reason);
    httpd_respond(t->req, 200, "application/json", b->data, b->len);
    t->req = NULL;

    /* Metrics (tollgate_fallbacks_total{reason} among them), access and request log. */
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    char path[160];
    snprintf(path, sizeof path, "/v1/tasks/%s", t->task->name);
    obs_req_t r = {
        .ts_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 - (int64_t)latency_ms,
        .method = "POST",
        .path = path,
        .service = t->gt.svc ? t->gt.svc->name : NULL,
        .model = t->route->model,
        .variant = t->variant ? t->variant->name : NULL,
        .reason = reason,
        .status = 200,
        .attempts = t->up_ns || t->upstream_ns ? 1 : 0,
        .fallback = fallback,
        .start_ns = t->start_ns,
        .end_ns = now,
        .upstream_ns = t->upstream_ns,
        .prompt_tokens = t->prompt_tokens,
        .completion_tokens = t->completion_tokens,
    };
    obs_request_end(env.obs, &r);
    /* Canary statistics: the outcome of a task on the canary variant includes its
     * fallbacks; an error is the upstream failing (a deadline counts as latency). */
    if (t->variant)
        canaryapi_observe(env.gw, t->route->model, t->variant->name, (uint32_t)latency_ms,
                          fallback && strcmp(reason, "timeout"), fallback);
}

static void answer_error(httpd_req_t *req, int status, const char *code, const char *param,
                         const char *msg) {
    httpd_error_ex(req, status, status >= 500 ? "server_error" : "invalid_request_error", msg,
                   param, code);
}

/* ---------- the upstream call ---------- */

static void up_head(void *arg, const http1_response_t *res) {
    treq_t *t = arg;
    t->status = res->status;
}

static void up_body(void *arg, const char *data, size_t len) {
    treq_t *t = arg;
    if (t->resp.len + len > TASK_MAX_RESPONSE || buf_append(&t->resp, data, len) < 0) {
        t->status = 599; /* counted as an upstream error */
        httpc_cancel(t->up);
    }
}

/* The model's text in an OpenAI answer (chat message content, or completion text) into
 * t->resp's place: 0 and the text in *out (unescaped, in scratch), -1 when absent. */
static int extract_output(treq_t *t, buf_t *out) {
    json_doc_t d;
    json_tok_t *toks = t->tw->toks;
    if (json_parse(t->resp.data ? t->resp.data : "", t->resp.len, toks, TASK_TOKS, 0, &d, NULL) <=
            0 ||
        toks[0].type != JSON_OBJECT)
        return -1;
    int u = json_obj_get(&d, 0, "usage"), k;
    int64_t v;
    if (u >= 0 && (k = json_obj_get(&d, u, "prompt_tokens")) >= 0 && json_get_i64(&d, k, &v) == 0)
        t->prompt_tokens = v;
    if (u >= 0 && (k = json_obj_get(&d, u, "completion_tokens")) >= 0 &&
        json_get_i64(&d, k, &v) == 0)
        t->completion_tokens = v;
    int ch = json_obj_get(&d, 0, "choices"), c0 = ch >= 0 ? json_arr_get(&d, ch, 0) : -1;
    if (c0 < 0 || d.toks[c0].type != JSON_OBJECT)
        return -1;
    int msg = json_obj_get(&d, c0, "message");
    int txt = msg >= 0 ? json_obj_get(&d, msg, "content") : json_obj_get(&d, c0, "text");
    if (txt < 0 || d.toks[txt].type != JSON_STRING)
        return -1;
    buf_reset(out);
    return json_str_unescape(&d, txt, out) < 0 ? -1 : 0;
}

static void up_done(void *arg, const httpc_done_t *done) {
    treq_t *t = arg;
    proxy_env_t env;
    proxy_worker_env(t->tw->pw, &env);
    uint64_t now = ev_clock_ns();
    t->up = NULL;
    t->upstream_ns += now - t->up_ns;
    pool_end(t->addr);
    int cancelled = done->result == HTTPC_ERR_CANCELLED && !t->timed_out && t->status != 599;
    int ok = done->result == HTTPC_OK && t->status < 500 && t->status != 599;
    /* The backend's health: a deadline counts against it, the client leaving does not. */
    if (!cancelled) {
        pool_report(t->addr, ok, now, &t->backend->cfg->eject);
        if (t->circ)
            circuit_report(t->circ, &t->snap->cfg.deg->circuit, t->probe, ok, now);
    } else if (t->circ) {
        circuit_report(t->circ, &t->snap->cfg.deg->circuit, t->probe, -1, now);
    }
    if (t->req) {
        buf_t *out = &t->tw->scratch;
        if (!ok || t->status != 200) {
            answer(t, NULL, 0,
                   t->status == 429 ? "upstream_rate_limited" : "upstream_error");
        } else if (extract_output(t, out) < 0) {
            answer(t, NULL, 0, "bad_output");
        } else {
            /* scratch is reused by answer(): move the text to the body buffer first. */
            buf_reset(&t->body);
            buf_append(&t->body, out->data ? out->data : "", out->len);
            size_t n = t->body.len;
            if (t->body.data)
                task_post(t->task->post, t->body.data, &n);
            if (n == 0)
                answer(t, NULL, 0, "empty_output");
            else
                answer(t, t->body.data, n, NULL);
        }
    }
    treq_release(t);
}

static void deadline_cb(ev_loop_t *loop, void *arg) {
    treq_t *t = arg;
    (void)loop;
    answer(t, NULL, 0, "timeout");
    if (t->up) {
        t->timed_out = 1;
        httpc_cancel(t->up); /* up_done runs now and releases t */
    } else {
        treq_release(t);
    }
}

static void client_gone(httpd_req_t *req, void *arg) {
    treq_t *t = arg;
    (void)req;
    t->req = NULL;
    if (t->up)
        httpc_cancel(t->up); /* up_done releases t */
    else
        treq_release(t);
}

/* The chat request: system prompt, user message from the template, generation settings. */
static int build_body(treq_t *t, int64_t max_tokens) {
    const task_def_t *k = t->task;
    buf_t *b = &t->body;
    buf_reset(b);
    json_w_t jw;
    json_w_init(&jw, b);
    json_w_obj_begin(&jw);
    json_w_key(&jw, "model");
    json_w_str(&jw, answer_model(t));
    json_w_key(&jw, "messages");
    json_w_arr_begin(&jw);
    if (k->system) {
        json_w_obj_begin(&jw);
        json_w_key(&jw, "role");
        json_w_str(&jw, "system");
        json_w_key(&jw, "content");
        json_w_str(&jw, k->system);
        json_w_obj_end(&jw);
    }
    json_w_obj_begin(&jw);
    json_w_key(&jw, "role");
    json_w_str(&jw, "user");
    json_w_key(&jw, "content");
    buf_t *u = &t->tw->scratch;
    buf_reset(u);
    if (task_render(k->tmpl, t->input.data ? t->input.data : "", t->input.len, u) < 0)
        return -ENOMEM;
    json_w_strn(&jw, u->data, u->len);
    json_w_obj_end(&jw);
    json_w_arr_end(&jw);
    json_w_key(&jw, "max_tokens");
    json_w_i64(&jw, max_tokens);
    if (k->temperature >= 0) {
        json_w_key(&jw, "temperature");
        json_w_double(&jw, k->temperature);
    }
    if (k->nstop) {
        json_w_key(&jw, "stop");
        json_w_arr_begin(&jw);
        for (size_t i = 0; i < k->nstop; i++) json_w_str(&jw, k->stop[i]);
        json_w_arr_end(&jw);
    }
    json_w_key(&jw, "stream");
    json_w_bool(&jw, 0);
    json_w_obj_end(&jw);
    return b->data ? 0 : -ENOMEM;
}

/* Admission by governance (local limits): 0 admitted; else the answer was given (a
 * fallback for rate limits and budget, an error for what the caller must fix). */
static int admit(treq_t *t, proxy_env_t *env, int service) {
    gov_cfg_t *gc = t->snap->cfg.gov;
    if (!gc)
        return 0;
    gov_decision_t gd;
    gov_t *g = gateway_gov(env->gw);
    if (service >= 0 && gov_check_model(g, gc, service, t->route->model, &gd)) {
        answer_error(t->req, gd.status, gd.code, gd.param, gd.message);
        t->req = NULL;
        return -1;
    }
    json_doc_t d;
    if (json_parse(t->body.data, t->body.len, t->tw->toks, TASK_TOKS, 0, &d, NULL) <= 0)
        return 0; /* our own body: cannot happen */
    if (gov_admit(g, gc, service, govcfg_tokenizer(gc, t->route->model), env->tcw, &d, 1,
                  ev_now_ns(env->loop), time(NULL), &t->gt, &gd)) {
        if (gd.status == 429) {
            answer(t, NULL, 0, gd.reason == GOV_R_BUDGET ? "budget" : "rate_limited");
        } else {
            answer_error(t->req, gd.status, gd.code, gd.param, gd.message);
            t->req = NULL;
        }
        return -1;
    }
    if (gd.set_max_tokens >= 0 && build_body(t, gd.set_max_tokens) < 0)
        return 0; /* keep the body as it was: the upstream clamps */
    return 0;
}

/* Pick the address and send; on a failure to start, the fallback. */
static void start_call(treq_t *t, proxy_env_t *env) {
    snap_backend_t *b = t->backend;
    uint64_t now = ev_now_ns(env->loop);
    const taskcfg_t *deg = t->snap->cfg.deg;
    int da = degrade_admit(env->gw, t->snap, b, now, &t->circ, &t->probe);
    if (da < 0)
        return answer(t, NULL, 0, da == DEGRADE_SHED ? "overloaded" : "circuit_open");
    int i = pool_pick(b->addrs, b->naddrs, now, route_rand(env->rnd), 0);
    httpc_pool_t *hp = i >= 0 ? proxy_worker_pool(t->tw->pw, b->addrs[i], b->cfg) : NULL;
    uint64_t left = t->start_ns + (uint64_t)t->task->deadline_ms * 1000000;
    left = left > now ? (left - now) / 1000000 : 0;
    if (!hp || left == 0) {
        if (t->circ)
            circuit_report(t->circ, &deg->circuit, t->probe, -1, now);
        return answer(t, NULL, 0, left == 0 ? "timeout" : "upstream_error");
    }
    t->addr = b->addrs[i];
    uint32_t conn = t->route->deadlines.connect_ms;
    httpc_request_t r = {
        .method = "POST",
        .path = "/v1/chat/completions",
        .body = t->body.data,
        .body_len = t->body.len,
        .connect_timeout_ms = conn && conn < left ? conn : (uint32_t)left,
        .total_timeout_ms = (uint32_t)left + 50, /* our timer fires first, with the fallback */
        .flags = HTTPC_F_RETRY_STALE,
    };
    buf_t *h = &t->tw->scratch;
    buf_reset(h);
    buf_appends(h, "Content-Type: application/json\r\nAccept: application/json\r\n");
    if (b->cfg->api_key)
        buf_appendf(h, "Authorization: Bearer %s\r\n", b->cfg->api_key);
    r.raw_headers = h->data;
    r.raw_headers_len = h->len;
    static const httpc_callbacks_t cbs = {up_head, up_body, up_done};
    pool_begin(t->addr);
    t->up_ns = ev_clock_ns();
    if (httpc_request(hp, &r, &cbs, t, &t->up) < 0) {
        pool_end(t->addr);
        t->up = NULL;
        if (t->circ)
            circuit_report(t->circ, &deg->circuit, t->probe, -1, now);
        return answer(t, NULL, 0, "upstream_error");
    }
}

/* Parse and check the task body into t->input. 0, or -1 when answered with a 400. */
static int parse_input(task_worker_t *tw, httpd_req_t *req, treq_t *t, const char **key,
                       size_t *keylen, int sticky_field, const char *field) {
    size_t len;
    const char *body = httpd_req_body(req, &len);
    json_doc_t d;
    int n = json_parse(body, len, tw->toks, TASK_TOKS, 0, &d, NULL);
    if (n <= 0 || tw->toks[0].type != JSON_OBJECT) {
        answer_error(req, 400, n == JSON_ERR_NOMEM ? "too_many_values" : "invalid_json", NULL,
                     "the request body must be a JSON object such as {\"input\": \"...\"}");
        return -1;
    }
    int in = json_obj_get(&d, 0, "input");
    if (in < 0) {
        answer_error(req, 400, "missing_input", "input",
                     "you must provide an input: {\"input\": \"...\"}");
        return -1;
    }
    if (d.toks[in].type != JSON_STRING) {
        answer_error(req, 400, "invalid_input", "input", "input must be a string");
        return -1;
    }
    if (json_str_unescape(&d, in, &t->input) < 0) {
        answer_error(req, 500, "out_of_memory", NULL, "the gateway is out of memory");
        return -1;
    }
    if (t->input.len == 0) {
        answer_error(req, 400, "invalid_input", "input", "input must not be empty");
        return -1;
    }
    if (t->input.len > t->task->max_input) {
        char msg[160];
        snprintf(msg, sizeof msg, "input is %zu bytes; this task accepts at most %u",
                 t->input.len, t->task->max_input);
        answer_error(req, 400, "input_too_long", "input", msg);
        return -1;
    }
    if (sticky_field) {
        int f = json_obj_get(&d, 0, field);
        if (f >= 0 && d.toks[f].type == JSON_STRING) {
            *key = d.src + d.toks[f].start; /* raw (escaped) bytes: stable, which is enough */
            *keylen = d.toks[f].end - d.toks[f].start;
        }
    }
    return 0;
}

void task_handle(struct proxy_worker *pw, httpd_req_t *req, const char *name, int service) {
    proxy_env_t env;
    proxy_worker_env(pw, &env);
    if (strcmp(httpd_req_method(req), "POST")) {
        httpd_add_header(req, "Allow", "POST");
        return answer_error(req, 405, "method_not_allowed", NULL, "use POST /v1/tasks/NAME");
    }
    const taskcfg_t *deg = env.snap->cfg.deg;
    const task_def_t *task = taskcfg_task(deg, name, strlen(name));
    if (!task) {
        char msg[200];
        snprintf(msg, sizeof msg, "The task `%.120s` does not exist.", name);
        return answer_error(req, 404, "task_not_found", NULL, msg);
    }
    task_worker_t *tw = *env.tasks;
    if (!tw) {
        if (!(tw = calloc(1, sizeof *tw)))
            return answer_error(req, 503, "out_of_memory", NULL, "the gateway is out of memory");
        tw->pw = pw;
        buf_init(&tw->scratch);
        *env.tasks = tw;
    }
    treq_t *t = treq_get(tw);
    if (!t)
        return answer_error(req, 503, "out_of_memory", NULL, "the gateway is out of memory");
    t->task = task;
    t->snap = snapshot_ref(env.snap);
    t->route = &t->snap->cfg.routes[task->route_idx];
    t->start_ns = httpd_req_start_ns(req);
    const taskcfg_route_t *rd = &deg->routes[task->route_idx];
    const char *key = NULL;
    size_t keylen = 0;
    if (parse_input(tw, req, t, &key, &keylen, rd->sticky == TASK_STICKY_FIELD, rd->sticky_name)) {
        treq_release(t);
        return;
    }
    t->req = req;
    if (rd->sticky == TASK_STICKY_HEADER && (key = httpd_req_header(req, rd->sticky_name)))
        keylen = strlen(key);
    /* From here on every outcome is an answer within the deadline. */
    uint64_t now = ev_now_ns(env.loop), end = t->start_ns + (uint64_t)task->deadline_ms * 1000000;
    ev_timer_start(env.loop, &t->timer, end > now ? (end - now + 999999) / 1000000 : 0, deadline_cb,
                   t);
    httpd_req_on_close(req, client_gone, t);
    int vi = task_pick_variant(t->snap, task->route_idx, key, keylen, route_rand(env.rnd));
    if (vi < 0) {
        answer(t, NULL, 0, "no_variant");
    } else {
        t->variant = &t->route->variants[vi];
        t->backend = &t->snap->backends[t->variant->backend_idx];
        if (build_body(t, task->max_tokens) < 0)
            answer(t, NULL, 0, "upstream_error");
        else if (admit(t, &env, service) == 0)
            start_call(t, &env);
    }
    if (!t->req && !t->up)
        treq_release(t);
}
