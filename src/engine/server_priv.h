/* server_priv.h — what server.c (lifecycle, routes, small endpoints) and server_gen.c (generation requests) share; not for other modules. */
#ifndef TOLLGATE_ENGINE_SERVER_PRIV_H
#define TOLLGATE_ENGINE_SERVER_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/httpd.h"
#include "core/json.h"
#include "core/metrics.h"
#include "engine/model.h"
#include "engine/oai.h"
#include "engine/sched.h"
#include "engine/server.h"
#include "model/chat.h"
#include "model/tokenizer.h"

struct server {
    server_opts_t opts;
    char *model_path, *host, *tmpl_name;
    char model_name[256];
    httpd_t *httpd;
    sched_t *sched;
    metrics_registry_t *reg;
    sched_metrics_t sm;
    atomic_int state;        /* server_state_t; READY publishes model, tok, tmpl, n_ctx */
    char err[512];           /* why loading failed; written before state becomes FAILED */
    pthread_t loader;
    int loader_started, stopped;
    pthread_mutex_t load_mu; /* guards load_done and abandoned (loader vs server_stop) */
    int load_done;           /* the loader thread has finished, successfully or not */
    int abandoned;           /* stopped while loading: the loader must not start the engine,
                              * and the server's memory stays for it (the process exits) */
    model_t model;
    tokenizer_t *tok;
    gguf_file_t tok_file;    /* --tokenizer's file, open while tok lives (tok_file_open) */
    int tok_file_open;
    chat_tmpl_t tmpl;
    int n_ctx;
    int64_t created;             /* unix time the server started (/v1/models) */
    atomic_uint_fast64_t counter; /* request ids and default seeds */
};

/* Per HTTP worker, owned by its thread. */
typedef struct worker {
    server_t *srv;
    int idx;
    json_tok_t *toks;  /* JSON token scratch, grown to the largest body seen */
    size_t cap;
    tok_work_t *tw;    /* tokenizer scratch */
    buf_t out;         /* response scratch */
} worker_t;

/* Answer b as application/json. */
void server_respond_json(httpd_req_t *req, int status, buf_t *b);
/* A fresh 64-bit value for ids and default seeds (thread-safe). */
uint64_t server_next_rand(server_t *s);
/* Parse the body into the worker's token scratch. 0, or answers 400 itself and returns -1. */
int server_parse_body(worker_t *w, httpd_req_t *req, json_doc_t *d);
/* Tokenize into a heap array sized to fit (*out, caller frees). The count, or negative errno. */
int server_encode(worker_t *w, const char *text, size_t len, int add_special,
                  int parse_special, int32_t **out);
/* 0 when the model is ready; otherwise answers 503 and returns 1. */
int server_not_ready(server_t *s, httpd_req_t *req);

/* server_gen.c: POST /v1/chat/completions and /v1/completions. */
void server_handle_generate(worker_t *w, httpd_req_t *req, oai_kind_t kind);
/* httpd on_wakeup: drain the worker's mailbox and answer what arrived. */
void server_on_wakeup(int worker, void *wdata, void *arg);
/* sched_drain callback after the workers are gone: free finished requests. */
void server_orphan(sched_job_t *job, void *arg);

#endif
