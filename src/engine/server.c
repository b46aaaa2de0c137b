/* server.c — the inference server: lifecycle (listener, background load, engine), routes, the small endpoints, metrics. */
#include "engine/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "engine/server_priv.h"

/* --- helpers shared with server_gen.c --- */

void server_respond_json(httpd_req_t *req, int status, buf_t *b) {
    httpd_respond(req, status, "application/json", b->data ? b->data : "", b->len);
}

uint64_t server_next_rand(server_t *s) {
    uint64_t z = atomic_fetch_add(&s->counter, 1) + 0x9E3779B97F4A7C15ull * (uint64_t)s->created;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Parse the body into the worker's token scratch. 0, or answers 400 itself and returns -1. */
int server_parse_body(worker_t *w, httpd_req_t *req, json_doc_t *d) {
    size_t len, err_pos = 0;
    const char *body = httpd_req_body(req, &len);
    size_t need = len / 2 + 8; /* a value takes at least one byte and a separator */
    if (need > w->cap) {
        json_tok_t *t = realloc(w->toks, need * sizeof *t);
        if (!t) {
            httpd_error(req, 500, "server_error", "out of memory");
            return -1;
        }
        w->toks = t;
        w->cap = need;
    }
    if (json_parse(body, len, w->toks, w->cap, 0, d, &err_pos) < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is not valid JSON (at byte %zu)", err_pos);
        httpd_error(req, 400, "invalid_request_error", msg);
        return -1;
    }
    return 0;
}

/* Tokenize into a heap array sized to fit. The count, or negative errno. */
int server_encode(worker_t *w, const char *text, size_t len, int add_special,
                  int parse_special, int32_t **out) {
    const tokenizer_t *t = w->srv->tok;
    int cap = (int)(len / 2) + 16;
    for (int tries = 0; tries < 2; tries++) {
        int32_t *ids = malloc((size_t)cap * sizeof *ids);
        if (!ids) return -ENOMEM;
        int n = tok_encode_w(t, w->tw, text, len, add_special, parse_special, ids, cap);
        if (n >= 0 && n <= cap) {
            *out = ids;
            return n;
        }
        free(ids);
        if (n < 0) return n;
        cap = n;
    }
    return -EIO;
}

int server_not_ready(server_t *s, httpd_req_t *req) {
    int st = atomic_load(&s->state);
    if (st == SERVER_READY) return 0;
    httpd_add_header(req, "Retry-After", "1");
    httpd_error(req, 503, "unavailable_error",
                st == SERVER_LOADING ? "the model is still loading" : "the model failed to load");
    return 1;
}

/* --- the other endpoints --- */

static void handle_tokenize(worker_t *w, httpd_req_t *req) {
    server_t *s = w->srv;
    if (server_not_ready(s, req)) return;
    json_doc_t d;
    if (server_parse_body(w, req, &d)) return;
    int c = json_obj_get(&d, 0, "content");
    if (c < 0 || d.toks[c].type != JSON_STRING) {
        httpd_error_ex(req, 400, "invalid_request_error", "'content' must be a string", "content",
                       NULL);
        return;
    }
    int add_special = 0, parse_special = 1, with_pieces = 0; /* llama.cpp's defaults */
    const char *keys[] = {"add_special", "parse_special", "with_pieces"};
    int *vals[] = {&add_special, &parse_special, &with_pieces};
    for (int i = 0; i < 3; i++) {
        int t = json_obj_get(&d, 0, keys[i]);
        if (t < 0 || d.toks[t].type == JSON_NULL) continue;
        int b = json_get_bool(&d, t);
        if (b < 0) {
            char msg[64];
            snprintf(msg, sizeof msg, "'%s' must be a boolean", keys[i]);
            httpd_error_ex(req, 400, "invalid_request_error", msg, keys[i], NULL);
            return;
        }
        *vals[i] = b;
    }
    buf_t text;
    buf_init(&text);
    int32_t *ids = NULL;
    int n = json_str_unescape(&d, c, &text) ? -ENOMEM
                                             : server_encode(w, text.data ? text.data : "", text.len,
                                                      add_special, parse_special, &ids);
    buf_free(&text);
    if (n < 0) {
        httpd_error(req, 500, "server_error", "tokenization failed");
        return;
    }
    buf_reset(&w->out);
    json_w_t jw;
    json_w_init(&jw, &w->out);
    json_w_obj_begin(&jw);
    json_w_key(&jw, "tokens");
    json_w_arr_begin(&jw);
    for (int i = 0; i < n; i++) {
        if (!with_pieces) {
            json_w_i64(&jw, ids[i]);
            continue;
        }
        size_t len;
        const char *p = tok_piece(s->tok, ids[i], 1, &len);
        json_w_obj_begin(&jw);
        json_w_key(&jw, "id");
        json_w_i64(&jw, ids[i]);
        json_w_key(&jw, "piece");
        json_w_strn(&jw, p, len);
        json_w_obj_end(&jw);
    }
    json_w_arr_end(&jw);
    json_w_obj_end(&jw);
    free(ids);
    server_respond_json(req, 200, &w->out);
}

static void handle_detokenize(worker_t *w, httpd_req_t *req) {
    server_t *s = w->srv;
    if (server_not_ready(s, req)) return;
    json_doc_t d;
    if (server_parse_body(w, req, &d)) return;
    int t = json_obj_get(&d, 0, "tokens");
    if (t < 0 || d.toks[t].type != JSON_ARRAY) {
        httpd_error_ex(req, 400, "invalid_request_error", "'tokens' must be an array of token ids",
                       "tokens", NULL);
        return;
    }
    buf_t text;
    buf_init(&text);
    int nv = tok_n_vocab(s->tok);
    for (size_t i = 0; i < d.toks[t].size; i++) {
        int64_t id;
        int e = json_arr_get(&d, t, i);
        if (d.toks[e].type != JSON_NUMBER || json_get_i64(&d, e, &id) || id < 0 || id >= nv) {
            buf_free(&text);
            httpd_error_ex(req, 400, "invalid_request_error",
                           "'tokens' must hold token ids within the vocabulary", "tokens", NULL);
            return;
        }
        /* the pieces as generated, control tokens rendered (llama.cpp's /detokenize) */
        size_t len;
        const char *p = tok_piece(s->tok, (int32_t)id, 1, &len);
        buf_append(&text, p, len);
    }
    buf_reset(&w->out);
    json_w_t jw;
    json_w_init(&jw, &w->out);
    json_w_obj_begin(&jw);
    json_w_key(&jw, "content");
    json_w_strn(&jw, text.data ? text.data : "", text.len);
    json_w_obj_end(&jw);
    buf_free(&text);
    server_respond_json(req, 200, &w->out);
}

static void handle_models(worker_t *w, httpd_req_t *req) {
    server_t *s = w->srv;
    buf_reset(&w->out);
    json_w_t jw;
    json_w_init(&jw, &w->out);
    json_w_obj_begin(&jw);
    json_w_key(&jw, "object");
    json_w_str(&jw, "list");
    json_w_key(&jw, "data");
    json_w_arr_begin(&jw);
    json_w_obj_begin(&jw);
    json_w_key(&jw, "id");
    json_w_str(&jw, s->model_name);
    json_w_key(&jw, "object");
    json_w_str(&jw, "model");
    json_w_key(&jw, "created");
    json_w_i64(&jw, s->created);
    json_w_key(&jw, "owned_by");
    json_w_str(&jw, "tollgate");
    if (atomic_load(&s->state) == SERVER_READY) {
        json_w_key(&jw, "max_model_len");
        json_w_i64(&jw, s->n_ctx);
    }
    json_w_obj_end(&jw);
    json_w_arr_end(&jw);
    json_w_obj_end(&jw);
    server_respond_json(req, 200, &w->out);
}

static void handle_health(worker_t *w, httpd_req_t *req) {
    int st = atomic_load(&w->srv->state);
    const char *body = st == SERVER_READY     ? "{\"status\":\"ok\"}"
                       : st == SERVER_LOADING ? "{\"status\":\"loading\"}"
                                              : "{\"status\":\"error\"}";
    httpd_respond(req, st == SERVER_READY ? 200 : 503, "application/json", body, strlen(body));
}

static void handle_metrics(worker_t *w, httpd_req_t *req) {
    buf_reset(&w->out);
    if (metrics_render(w->srv->reg, &w->out)) {
        httpd_error(req, 500, "server_error", "out of memory");
        return;
    }
    httpd_respond(req, 200, "text/plain; version=0.0.4", w->out.data ? w->out.data : "",
                  w->out.len);
}

typedef enum { R_CHAT, R_COMPL, R_TOKENIZE, R_DETOKENIZE, R_MODELS, R_HEALTH, R_METRICS } route_t;

static const struct {
    const char *path;
    const char *method;
    route_t r;
} ROUTES[] = {
    {"/v1/chat/completions", "POST", R_CHAT}, {"/v1/completions", "POST", R_COMPL},
    {"/tokenize", "POST", R_TOKENIZE},        {"/detokenize", "POST", R_DETOKENIZE},
    {"/v1/models", "GET", R_MODELS},          {"/health", "GET", R_HEALTH},
    {"/metrics", "GET", R_METRICS},
};

static void handler(httpd_req_t *req, void *arg) {
    worker_t *w = httpd_req_worker_data(req);
    const char *path = httpd_req_path(req), *method = httpd_req_method(req);
    (void)arg;
    if (!w) {
        httpd_error(req, 500, "server_error", "worker not initialised");
        return;
    }
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        if (strcmp(path, ROUTES[i].path)) continue;
        if (strcmp(method, ROUTES[i].method) &&
            !(!strcmp(method, "HEAD") && !strcmp(ROUTES[i].method, "GET"))) {
            char msg[128];
            snprintf(msg, sizeof msg, "method %s is not allowed on %s (use %s)", method, path,
                     ROUTES[i].method);
            httpd_add_header(req, "Allow", ROUTES[i].method);
            httpd_error(req, 405, "invalid_request_error", msg);
            return;
        }
        switch (ROUTES[i].r) {
        case R_CHAT: server_handle_generate(w, req, OAI_CHAT); return;
        case R_COMPL: server_handle_generate(w, req, OAI_COMPLETION); return;
        case R_TOKENIZE: handle_tokenize(w, req); return;
        case R_DETOKENIZE: handle_detokenize(w, req); return;
        case R_MODELS: handle_models(w, req); return;
        case R_HEALTH: handle_health(w, req); return;
        case R_METRICS: handle_metrics(w, req); return;
        }
    }
    char msg[160];
    snprintf(msg, sizeof msg, "no route for %s %.100s", method, path);
    httpd_error(req, 404, "invalid_request_error", msg);
}

static void *worker_init(int idx, ev_loop_t *loop, void *arg) {
    worker_t *w = calloc(1, sizeof *w);
    (void)loop;
    if (!w) return NULL;
    w->srv = arg;
    w->idx = idx;
    w->tw = tok_work_new();
    buf_init(&w->out);
    return w;
}

static void worker_fini(int idx, void *data, void *arg) {
    worker_t *w = data;
    (void)idx;
    (void)arg;
    if (!w) return;
    tok_work_free(w->tw);
    free(w->toks);
    buf_free(&w->out);
    free(w);
}

static void wake(int worker, void *arg) {
    server_t *s = arg;
    httpd_wakeup(s->httpd, worker);
}

/* --- lifecycle --- */

static void *loader_main(void *arg) {
    server_t *s = arg;
    char err[400];
    int rc = model_load(s->model_path, &s->model, err, sizeof err);
    if (rc) {
        snprintf(s->err, sizeof s->err, "cannot load %s: %s", s->model_path, err);
        goto fail;
    }
    if (s->opts.weights_anon && (rc = gguf_copy_to_memory(&s->model.file)) != 0) {
        snprintf(s->err, sizeof s->err, "cannot copy the weights of %s into memory: %s", s->model_path,
                 strerror(-rc));
        goto fail;
    }
    const char *tok_path = s->opts.tokenizer_path ? s->opts.tokenizer_path : s->model_path;
    const gguf_file_t *tok_src = &s->model.file;
    if (s->opts.tokenizer_path) {
        if (gguf_open(tok_path, &s->tok_file, err, sizeof err)) {
            snprintf(s->err, sizeof s->err, "cannot load %s: %s", tok_path, err);
            goto fail;
        }
        s->tok_file_open = 1;
        tok_src = &s->tok_file;
    }
    if ((rc = tok_load(tok_src, &s->tok, err, sizeof err)) != 0) {
        snprintf(s->err, sizeof s->err, "%s: tokenizer: %s", tok_path, err);
        goto fail;
    }
    if (tok_n_vocab(s->tok) != s->model.hp.n_vocab) {
        snprintf(s->err, sizeof s->err, "%s: the tokenizer has %d tokens, the model %d", tok_path,
                 tok_n_vocab(s->tok), s->model.hp.n_vocab);
        goto fail;
    }
    s->tmpl = s->tmpl_name ? chat_template_by_name(s->tmpl_name)
                           : chat_template_for_gguf(&s->model.file);
    int n_ctx = s->opts.ctx;
    if (n_ctx <= 0) {
        n_ctx = s->model.hp.n_ctx_train > 0 ? s->model.hp.n_ctx_train : SERVER_DEFAULT_CTX_CAP;
        if (n_ctx > SERVER_DEFAULT_CTX_CAP) n_ctx = SERVER_DEFAULT_CTX_CAP;
    }
    size_t slot = forward_kv_bytes(&s->model.hp, n_ctx);
    if (s->opts.kv_cache_mib > 0 && slot > ((size_t)s->opts.kv_cache_mib << 20)) {
        snprintf(s->err, sizeof s->err,
                 "--kv-cache-mib %d holds no sequence of %d positions: one needs %.1f MiB "
                 "(raise --kv-cache-mib or lower --ctx)",
                 s->opts.kv_cache_mib, n_ctx, (double)slot / (1 << 20));
        goto fail;
    }
    pthread_mutex_lock(&s->load_mu);
    rc = s->abandoned ? -ECANCELED : sched_start(s->sched, &s->model, s->tok, n_ctx);
    pthread_mutex_unlock(&s->load_mu);
    if (rc) {
        snprintf(s->err, sizeof s->err, "cannot start the engine with a %d-token context: %s",
                 n_ctx, strerror(-rc));
        goto fail;
    }
    s->n_ctx = sched_n_ctx(s->sched);
    log_info("model loaded", LOG_STR("file", s->model_path), LOG_STR("arch", s->model.arch_name),
             LOG_INT("layers", s->model.hp.n_layer), LOG_INT("vocab", s->model.hp.n_vocab),
             LOG_INT("context", s->n_ctx), LOG_INT("kv_slots", sched_kv_slots(s->sched)),
             LOG_INT("max_seqs", s->opts.max_seqs > 0 ? s->opts.max_seqs : SERVER_DEFAULT_MAX_SEQS),
             LOG_DBL("kv_slot_mib", (double)slot / (1 << 20)),
             LOG_STR("chat_template", chat_template_name(s->tmpl)),
             LOG_STR("model_name", s->model_name));
    atomic_store(&s->state, SERVER_READY);
    goto out;
fail:
    atomic_store(&s->state, SERVER_FAILED);
out:
    pthread_mutex_lock(&s->load_mu);
    s->load_done = 1;
    pthread_mutex_unlock(&s->load_mu);
    return NULL;
}

static char *dupstr(const char *p) {
    return p ? strdup(p) : NULL;
}

static int register_metrics(server_t *s) {
    static const char *const mn[] = {"model_name", NULL};
    static const char *const fr[] = {"finished_reason", "model_name", NULL};
    metrics_registry_t *r = s->reg;
    const double *lb = metrics_latency_buckets;
    size_t nb = metrics_latency_nbuckets;
    metrics_family_t *running = metrics_gauge(r, "vllm:num_requests_running",
                                              "Requests being generated by the engine.", mn);
    metrics_family_t *waiting = metrics_gauge(r, "vllm:num_requests_waiting",
                                              "Requests queued for the engine.", mn);
    metrics_family_t *ttft = metrics_histogram(r, "vllm:time_to_first_token_seconds",
                                               "Time from request arrival to the first output token.",
                                               mn, lb, nb);
    metrics_family_t *tpot = metrics_histogram(r, "vllm:time_per_output_token_seconds",
                                               "Time between consecutive output tokens.", mn, lb, nb);
    metrics_family_t *e2e = metrics_histogram(r, "vllm:e2e_request_latency_seconds",
                                              "Time from request arrival to the last output token.",
                                              mn, lb, nb);
    metrics_family_t *pt = metrics_counter(r, "vllm:prompt_tokens_total", "Prompt tokens processed.", mn);
    metrics_family_t *gt = metrics_counter(r, "vllm:generation_tokens_total", "Tokens generated.", mn);
    metrics_family_t *ok = metrics_counter(r, "vllm:request_success_total",
                                           "Requests that finished generating, by finish reason.", fr);
    metrics_family_t *qt = metrics_histogram(r, "vllm:request_queue_time_seconds",
                                             "Time requests spent waiting for a running slot.",
                                             mn, lb, nb);
    metrics_family_t *kv = metrics_gauge(r, "vllm:gpu_cache_usage_perc",
                                         "KV cache usage (fraction of KV slots held by running "
                                         "requests; vLLM's name, on the CPU here).", mn);
    metrics_family_t *kv2 = metrics_gauge(r, "vllm:kv_cache_usage_perc",
                                          "KV cache usage (fraction of KV slots held by running "
                                          "requests).", mn);
    metrics_family_t *pq = metrics_counter(r, "vllm:prefix_cache_queries_total",
                                           "Prompt tokens looked up in the prefix cache.", mn);
    metrics_family_t *ph = metrics_counter(r, "vllm:prefix_cache_hits_total",
                                           "Prompt tokens found in the prefix cache (not computed).", mn);
    if (!running || !waiting || !ttft || !tpot || !e2e || !pt || !gt || !ok || !qt || !kv ||
        !kv2 || !pq || !ph)
        return -ENOMEM;
    const char *name = s->model_name;
    s->sm.running = metrics_labels(running, name);
    s->sm.waiting = metrics_labels(waiting, name);
    s->sm.ttft = metrics_labels(ttft, name);
    s->sm.tpot = metrics_labels(tpot, name);
    s->sm.e2e = metrics_labels(e2e, name);
    s->sm.prompt_tokens = metrics_labels(pt, name);
    s->sm.gen_tokens = metrics_labels(gt, name);
    s->sm.success_stop = metrics_labels(ok, "stop", name);
    s->sm.success_length = metrics_labels(ok, "length", name);
    s->sm.queue_time = metrics_labels(qt, name);
    s->sm.kv_usage = metrics_labels(kv, name);
    s->sm.kv_usage2 = metrics_labels(kv2, name);
    s->sm.prefix_queries = metrics_labels(pq, name);
    s->sm.prefix_hits = metrics_labels(ph, name);
    return 0;
}

int server_new(const server_opts_t *opts, server_t **out, char *err, size_t errlen) {
    if (!opts->model_path || !*opts->model_path) {
        snprintf(err, errlen, "a model file is required (-m MODEL.gguf)");
        return -EINVAL;
    }
    if (opts->chat_template && chat_template_by_name(opts->chat_template) == CHAT_TMPL_UNKNOWN) {
        snprintf(err, errlen, "unknown chat template '%s' (llama2, mistral, phi3, chatml)",
                 opts->chat_template);
        return -EINVAL;
    }
    server_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->opts = *opts;
    s->model_path = dupstr(opts->model_path);
    s->host = dupstr(opts->host ? opts->host : "127.0.0.1");
    s->tmpl_name = dupstr(opts->chat_template);
    s->created = (int64_t)time(NULL);
    pthread_mutex_init(&s->load_mu, NULL);
    if (opts->model_name && *opts->model_name) {
        snprintf(s->model_name, sizeof s->model_name, "%s", opts->model_name);
    } else {
        const char *b = strrchr(opts->model_path, '/');
        snprintf(s->model_name, sizeof s->model_name, "%s", b ? b + 1 : opts->model_path);
        size_t n = strlen(s->model_name);
        if (n > 5 && !strcmp(s->model_name + n - 5, ".gguf")) s->model_name[n - 5] = 0;
    }
    int threads = opts->http_threads > 0 ? opts->http_threads : HTTPD_DEFAULT_THREADS;
    int rc = -ENOMEM;
    s->reg = metrics_registry_new();
    if (!s->model_path || !s->host || !s->reg || register_metrics(s)) goto fail;
    sched_config_t sc = {.n_workers = threads,
                         .max_queue = opts->max_queue > 0 ? opts->max_queue : SERVER_DEFAULT_MAX_QUEUE,
                         .threads = opts->threads > 0 ? opts->threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
                         .max_seqs = opts->max_seqs > 0 ? opts->max_seqs : SERVER_DEFAULT_MAX_SEQS,
                         .kv_bytes = (size_t)(opts->kv_cache_mib > 0 ? opts->kv_cache_mib : 0) << 20,
                         .wake = wake,
                         .wake_arg = s,
                         .metrics = s->sm};
    if ((rc = sched_new(&sc, &s->sched)) != 0) goto fail;
    httpd_config_t hc = {.host = s->host,
                         .port = opts->port,
                         .threads = threads,
                         .max_body_bytes = opts->max_body ? opts->max_body : (8u << 20),
                         .handler = handler,
                         .worker_init = worker_init,
                         .worker_fini = worker_fini,
                         .on_wakeup = server_on_wakeup,
                         .worker_arg = s};
    if ((rc = httpd_new(&hc, &s->httpd)) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", s->host, opts->port, strerror(-rc));
        server_free(s);
        return rc;
    }
    *out = s;
    return 0;
fail:
    snprintf(err, errlen, "cannot set up the server: %s", strerror(-rc));
    server_free(s);
    return rc;
}

int server_start(server_t *s) {
    int rc = httpd_start(s->httpd);
    if (rc) return rc;
    rc = pthread_create(&s->loader, NULL, loader_main, s);
    if (rc) return -rc;
    s->loader_started = 1;
    return 0;
}

int server_port(const server_t *s) {
    return httpd_port(s->httpd);
}

server_state_t server_state(const server_t *s) {
    return (server_state_t)atomic_load(&((server_t *)s)->state);
}

const char *server_error(const server_t *s) {
    return s->err;
}

void server_stop(server_t *s, uint32_t drain_ms) {
    if (!s || s->stopped) return;
    s->stopped = 1;
    if (s->httpd) {
        httpd_stop(s->httpd, drain_ms);
        httpd_wait(s->httpd); /* every request answered or its on_close run */
    }
    if (s->loader_started) {
        /* A load can block for long (a slow disk, a FIFO): a stop must not wait for it. */
        pthread_mutex_lock(&s->load_mu);
        s->abandoned = !s->load_done;
        pthread_mutex_unlock(&s->load_mu);
        if (s->abandoned) pthread_detach(s->loader);
        else pthread_join(s->loader, NULL);
    }
    s->loader_started = 0;
    if (s->sched) {
        sched_stop(s->sched); /* posts the remaining jobs as cancelled */
        for (int i = 0; i < (s->opts.http_threads > 0 ? s->opts.http_threads : HTTPD_DEFAULT_THREADS); i++)
            sched_drain(s->sched, i, server_orphan, NULL);
    }
}

void server_free(server_t *s) {
    if (!s) return;
    server_stop(s, 0);
    httpd_free(s->httpd);
    s->httpd = NULL;
    if (s->abandoned) return; /* the loader thread still uses the rest; we are exiting */
    sched_free(s->sched);
    if (s->tok) tok_free(s->tok);
    if (s->tok_file_open) gguf_close(&s->tok_file);
    model_free(&s->model);
    metrics_registry_free(s->reg);
    pthread_mutex_destroy(&s->load_mu);
    free(s->model_path);
    free(s->host);
    free(s->tmpl_name);
    free(s);
}
