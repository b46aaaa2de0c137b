/* sim.c — the simulated upstream's endpoints, routing, workers, metrics and life cycle. */
#define _GNU_SOURCE
#include "sim/sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/sim_int.h"

/* ---- small endpoints ---- */

static void handle_models(sim_worker_t *w, httpd_req_t *hr) {
    buf_t *b = &w->scratch;
    buf_reset(b);
    json_w_t j;
    json_w_init(&j, b);
    json_w_obj_begin(&j);
    json_w_key(&j, "object");
    json_w_str(&j, "list");
    json_w_key(&j, "data");
    json_w_arr_begin(&j);
    json_w_obj_begin(&j);
    json_w_key(&j, "id");
    json_w_str(&j, w->s->model);
    json_w_key(&j, "object");
    json_w_str(&j, "model");
    json_w_key(&j, "created");
    json_w_i64(&j, w->s->started);
    json_w_key(&j, "owned_by");
    json_w_str(&j, "tollgate-sim");
    json_w_key(&j, "root");
    json_w_str(&j, w->s->model);
    json_w_key(&j, "parent");
    json_w_null(&j);
    json_w_key(&j, "max_model_len");
    json_w_i64(&j, SIM_MODEL_LEN);
    json_w_obj_end(&j);
    json_w_arr_end(&j);
    json_w_obj_end(&j);
    httpd_respond(hr, 200, "application/json", b->data, b->len);
}

/* llama.cpp's {"content": ...} (or vLLM's {"prompt": ...}) -> {"tokens": [...]}: one made-up
 * id per 4 bytes, the same estimate the completions' usage reports. */
static void handle_tokenize(sim_worker_t *w, httpd_req_t *hr) {
    size_t blen;
    const char *body = httpd_req_body(hr, &blen);
    json_doc_t d;
    if (json_parse(body, blen, w->toks, SIM_JSON_TOKS, 16, &d, NULL) < 0 ||
        w->toks[0].type != JSON_OBJECT) {
        httpd_error(hr, 400, "invalid_request_error", "expected a JSON object with \"content\"");
        return;
    }
    int c = json_obj_get(&d, 0, "content");
    if (c < 0)
        c = json_obj_get(&d, 0, "prompt");
    if (c < 0 || w->toks[c].type != JSON_STRING) {
        httpd_error_ex(hr, 400, "invalid_request_error", "\"content\" must be a string", "content",
                       NULL);
        return;
    }
    buf_t *b = &w->scratch;
    buf_reset(b);
    size_t tlen = w->toks[c].end - w->toks[c].start;
    const unsigned char *t = (const unsigned char *)body + w->toks[c].start;
    json_w_t j;
    json_w_init(&j, b);
    json_w_obj_begin(&j);
    json_w_key(&j, "tokens");
    json_w_arr_begin(&j);
    size_t count = 0;
    for (size_t i = 0; i < tlen; i += 4, count++) {
        uint32_t h = 2166136261u; /* FNV-1a of the 4-byte piece: stable ids */
        for (size_t k = i; k < i + 4 && k < tlen; k++)
            h = (h ^ t[k]) * 16777619u;
        json_w_i64(&j, 3 + h % 31997);
    }
    json_w_arr_end(&j);
    json_w_key(&j, "count");
    json_w_i64(&j, (int64_t)count);
    json_w_key(&j, "max_model_len");
    json_w_i64(&j, SIM_MODEL_LEN);
    json_w_obj_end(&j);
    httpd_respond(hr, 200, "application/json", b->data, b->len);
}

static void handle_config(sim_worker_t *w, httpd_req_t *hr, int post) {
    sim_t *s = w->s;
    sim_knobs_t k;
    if (post) {
        size_t blen;
        const char *body = httpd_req_body(hr, &blen);
        char err[160];
        pthread_mutex_lock(&s->lock);
        int rc = sim_knobs_update(&s->knobs, body, blen, err, sizeof err);
        if (rc == 0)
            atomic_fetch_add(&s->knobs_gen, 1);
        k = s->knobs;
        pthread_mutex_unlock(&s->lock);
        if (rc < 0) {
            httpd_error(hr, 400, "invalid_request_error", err);
            return;
        }
        /* A larger max_seqs may let waiters in now. */
        for (int i = 0; i < SIM_MAX_WORKERS && s->workers[i]; i++)
            if (atomic_load(&s->workers[i]->nqueued) && s->httpd)
                httpd_wakeup(s->httpd, i);
    } else {
        sim_run_knobs(s, &k);
    }
    buf_reset(&w->scratch);
    sim_knobs_json(&k, &w->scratch);
    httpd_respond(hr, 200, "application/json", w->scratch.data, w->scratch.len);
}

static void handle_metrics(sim_worker_t *w, httpd_req_t *hr) {
    buf_reset(&w->scratch);
    metrics_render(w->s->reg, &w->scratch);
    httpd_respond(hr, 200, "text/plain; version=0.0.4; charset=utf-8", w->scratch.data,
                  w->scratch.len);
}

/* ---- routing ---- */

enum { R_CHAT, R_COMPL, R_MODELS, R_TOKENIZE, R_HEALTH, R_METRICS, R_CONFIG };

static const struct route {
    const char *path;
    int id;
    const char *allow; /* methods, as in the Allow header */
} routes[] = {
    {"/v1/chat/completions", R_CHAT, "POST"},
    {"/v1/completions", R_COMPL, "POST"},
    {"/v1/models", R_MODELS, "GET"},
    {"/tokenize", R_TOKENIZE, "POST"},
    {"/health", R_HEALTH, "GET"},
    {"/metrics", R_METRICS, "GET"},
    {"/sim/config", R_CONFIG, "GET, POST"},
};

static void handler(httpd_req_t *hr, void *arg) {
    (void)arg;
    sim_worker_t *w = httpd_req_worker_data(hr);
    const char *path = httpd_req_path(hr);
    const char *m = httpd_req_method(hr);
    const struct route *rt = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(path, routes[i].path))
            rt = &routes[i];
    if (!rt) {
        char msg[160];
        snprintf(msg, sizeof msg, "Unknown path: %.100s", path);
        httpd_error_ex(hr, 404, "invalid_request_error", msg, NULL, "unknown_url");
        return;
    }
    int post = !strcmp(m, "POST");
    int ok = strstr(rt->allow, m) != NULL && (post || !strcmp(m, "GET"));
    if (!ok) {
        httpd_add_header(hr, "Allow", rt->allow);
        char msg[160];
        snprintf(msg, sizeof msg, "Method %.16s not allowed on %s (allowed: %s)", m, rt->path,
                 rt->allow);
        httpd_error(hr, 405, "invalid_request_error", msg);
        return;
    }
    switch (rt->id) {
    case R_CHAT:
        sim_run_generate(w, hr, 1);
        return;
    case R_COMPL:
        sim_run_generate(w, hr, 0);
        return;
    case R_MODELS:
        handle_models(w, hr);
        return;
    case R_TOKENIZE:
        handle_tokenize(w, hr);
        return;
    case R_HEALTH:
        httpd_respond(hr, 200, "application/json", "{\"status\":\"ok\"}", 15);
        return;
    case R_METRICS:
        handle_metrics(w, hr);
        return;
    default:
        handle_config(w, hr, post);
        return;
    }
}

/* ---- workers ---- */

static void on_wakeup(int worker, void *data, void *arg) {
    (void)worker;
    (void)arg;
    if (data)
        sim_run_wakeup(data);
}

static void *worker_init(int idx, ev_loop_t *loop, void *arg) {
    sim_t *s = arg;
    if (idx >= SIM_MAX_WORKERS)
        return NULL;
    sim_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->toks = malloc(SIM_JSON_TOKS * sizeof *w->toks);
    if (!w->toks) {
        free(w);
        return NULL;
    }
    w->s = s;
    w->idx = idx;
    w->loop = loop;
    ev_timer_init(&w->pump);
    w->knobs_gen = (unsigned)-1; /* seed the rng on the first request */
    s->workers[idx] = w;
    return w;
}

static void worker_fini(int idx, void *data, void *arg) {
    sim_worker_t *w = data;
    (void)idx;
    (void)arg;
    if (!w)
        return;
    ev_timer_stop(w->loop, &w->pump);
    sim_req_t *r = w->pool;
    while (r) {
        sim_req_t *next = r->next;
        buf_free(&r->echo);
        buf_free(&r->out);
        buf_free(&r->text);
        free(r);
        r = next;
    }
    buf_free(&w->scratch);
    free(w->toks);
    /* The slot stays set (workers[] is read by others without a lock) until sim_free. */
    w->pool = NULL;
}

static double gauge_running(void *arg) {
    return atomic_load(&((sim_t *)arg)->running);
}
static double gauge_waiting(void *arg) {
    return atomic_load(&((sim_t *)arg)->waiting);
}
/* A stand-in for KV-cache use: the share of max_seqs in use (0 when unlimited). */
static double gauge_cache(void *arg) {
    sim_t *s = arg;
    sim_knobs_t k;
    sim_run_knobs(s, &k);
    return k.max_seqs ? (double)atomic_load(&s->running) / k.max_seqs : 0.0;
}

/* ---- life cycle ---- */

static const double b_ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0};
static const double b_tpot[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                0.3,  0.4,   0.5,  0.75,  1.0, 2.5};
static const double b_e2e[] = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                               30.0, 40.0, 50.0, 60.0};
static const double b_toks[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
#define NB(a) (sizeof(a) / sizeof(a)[0])

static int setup_metrics(sim_t *s) {
    metrics_registry_t *r = s->reg;
    static const char *const lm[] = {"model_name", NULL};
    static const char *const lmf[] = {"model_name", "finished_reason", NULL};
    static const char *const lk[] = {"kind", NULL};
    const char *model = s->model;
    metrics_family_t *f;
#define CHILD(dst, fam)                          \
    do {                                         \
        if (!(f = (fam)))                        \
            return -ENOMEM;                      \
        if (!((dst) = metrics_labels(f, model))) \
            return -ENOMEM;                      \
    } while (0)
    CHILD(s->m_running, metrics_gauge(r, "vllm:num_requests_running",
                                      "Number of requests currently generating.", lm));
    metrics_child_set_fn(s->m_running, gauge_running, s);
    CHILD(s->m_waiting, metrics_gauge(r, "vllm:num_requests_waiting",
                                      "Number of requests waiting for a slot.", lm));
    metrics_child_set_fn(s->m_waiting, gauge_waiting, s);
    CHILD(s->m_cache, metrics_gauge(r, "vllm:gpu_cache_usage_perc",
                                    "Simulated KV-cache usage: running / max_seqs (1 = 100%).", lm));
    metrics_child_set_fn(s->m_cache, gauge_cache, s);
    CHILD(s->m_ttft, metrics_histogram(r, "vllm:time_to_first_token_seconds",
                                       "Histogram of time to first token in seconds.", lm, b_ttft,
                                       NB(b_ttft)));
    CHILD(s->m_tpot, metrics_histogram(r, "vllm:time_per_output_token_seconds",
                                       "Histogram of time per output token in seconds.", lm,
                                       b_tpot, NB(b_tpot)));
    CHILD(s->m_e2e, metrics_histogram(r, "vllm:e2e_request_latency_seconds",
                                      "Histogram of end to end request latency in seconds.", lm,
                                      b_e2e, NB(b_e2e)));
    CHILD(s->m_queue, metrics_histogram(r, "vllm:request_queue_time_seconds",
                                        "Histogram of time spent waiting for a slot in seconds.",
                                        lm, b_ttft, NB(b_ttft)));
    CHILD(s->m_ptok_h, metrics_histogram(r, "vllm:request_prompt_tokens",
                                         "Number of prefill tokens processed.", lm, b_toks,
                                         NB(b_toks)));
    CHILD(s->m_gtok_h, metrics_histogram(r, "vllm:request_generation_tokens",
                                         "Number of generation tokens processed.", lm, b_toks,
                                         NB(b_toks)));
    CHILD(s->m_ptok, metrics_counter(r, "vllm:prompt_tokens_total",
                                     "Number of prefill tokens processed.", lm));
    CHILD(s->m_gtok, metrics_counter(r, "vllm:generation_tokens_total",
                                     "Number of generation tokens processed.", lm));
#undef CHILD
    f = metrics_counter(r, "vllm:request_success_total", "Count of successfully processed requests.",
                        lmf);
    if (!f || !(s->m_ok_stop = metrics_labels(f, model, "stop")) ||
        !(s->m_ok_length = metrics_labels(f, model, "length")))
        return -ENOMEM;
    s->f_injected = metrics_counter(r, "tollgate_sim_injected_faults_total",
                                    "Faults the simulator injected, by kind.", lk);
    return s->f_injected ? 0 : -ENOMEM;
}

int sim_new(const sim_knobs_t *k, const char *model, sim_t **out) {
    sim_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    s->knobs = *k;
    snprintf(s->model, sizeof s->model, "%s", model && *model ? model : "tollgate-sim");
    s->started = (int64_t)time(NULL);
    s->reg = metrics_registry_new();
    int rc = s->reg ? setup_metrics(s) : -ENOMEM;
    if (rc < 0) {
        sim_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void sim_httpd_setup(sim_t *s, httpd_config_t *cfg) {
    cfg->handler = handler;
    cfg->handler_arg = s;
    cfg->worker_init = worker_init;
    cfg->worker_fini = worker_fini;
    cfg->on_wakeup = on_wakeup;
    cfg->worker_arg = s;
}

void sim_attach(sim_t *s, httpd_t *h) {
    s->httpd = h;
}

void sim_free(sim_t *s) {
    if (!s)
        return;
    for (int i = 0; i < SIM_MAX_WORKERS; i++)
        free(s->workers[i]);
    if (s->reg)
        metrics_registry_free(s->reg);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
