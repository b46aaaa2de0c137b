/* server_gen.c — generation requests: validate, render, tokenize, submit to the engine; stream or collect the output; cancel when the client goes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ev.h"
#include "core/log.h"
#include "engine/server_priv.h"

/* One generation request. Lives from submission until the engine is done with it AND the
 * client is answered or gone (see sched_job_t); only its worker's thread touches it.
 * Allocation: one calloc per request plus its strings, prompt ids and output buffers --
 * a handful of mallocs against milliseconds of forward pass per token; a per-worker free
 * list can take them off when batching makes requests cheap. */
typedef struct sreq {
    sched_job_t job;   /* first: the scheduler hands back this pointer */
    worker_t *w;
    httpd_req_t *req;  /* NULL once the response is complete or the client went away */
    oai_request_t oreq;
    oai_resp_t resp;
    char id[48];
    int32_t *ids;      /* prompt */
    int stream;
    int write_failed;  /* the stream is broken: generate nothing more, wait for on_close */
    buf_t text;        /* non-streamed: the whole completion */
    gen_token_t *toks; /* non-streamed: every token (logprobs) */
    int n_toks, cap_toks;
} sreq_t;

static void sreq_free(sreq_t *r) {
    oai_request_free(&r->oreq);
    sched_job_release(&r->job);
    buf_free(&r->text);
    free(r->toks);
    free(r->ids);
    free(r);
}

static void on_close(httpd_req_t *req, void *arg) {
    sreq_t *r = arg;
    r->req = NULL;
    atomic_store(&r->job.cancel, 1); /* the engine drops it at its next step */
    if (r->job.done) sreq_free(r);
}

static void stream_write(sreq_t *r, buf_t *b) {
    if (r->write_failed || !b->len) return;
    if (httpd_stream_write(r->req, b->data, b->len) < 0) {
        r->write_failed = 1; /* on_close follows; stop generating now */
        atomic_store(&r->job.cancel, 1);
    }
}

static const char *error_text(int err, int *status, const char **type) {
    *status = 500;
    *type = "server_error";
    switch (err) {
    case -E2BIG:
        *status = 400;
        *type = "invalid_request_error";
        return "the prompt does not fit in the context";
    case -ECANCELED:
        *status = 503;
        *type = "unavailable_error";
        return "the server is shutting down";
    case -EINVAL: return "a token is out of the vocabulary's range";
    case -ENOMEM: return "out of memory";
    default: return "generation failed";
    }
}

/* One line per finished request (the access log of the engine). */
static void log_done(const sreq_t *r, const char *outcome) {
    const sched_job_t *j = &r->job;
    log_info("request", LOG_STR("id", r->id),
             LOG_STR("endpoint", r->resp.kind == OAI_CHAT ? "chat" : "completions"),
             LOG_BOOL("stream", r->stream), LOG_STR("outcome", outcome),
             LOG_INT("prompt_tokens", j->n_prompt), LOG_INT("completion_tokens", j->n_gen),
             LOG_DBL("seconds", (double)(ev_clock_ns() - j->arrival_ns) / 1e9));
}

/* Output of r's job arrived (on r's worker thread). */
static void deliver(sched_job_t *job, void *arg) {
    sreq_t *r = (sreq_t *)job;
    worker_t *w = r->w;
    (void)arg;
    if (!r->req) { /* client gone: drop the output; free once the engine is done */
        buf_reset(&job->text);
        job->n_toks = 0;
        if (job->done) {
            log_done(r, "client gone");
            sreq_free(r);
        }
        return;
    }
    buf_t *out = &w->out;
    buf_reset(out);
    const char *finish = job->done && !job->error ? gen_finish_reason(job->finish) : NULL;
    if (r->stream) {
        if (job->text.len || job->n_toks)
            oai_chunk(&r->resp, out, 0, job->text.data, job->text.len, job->toks, job->n_toks, NULL);
        if (job->done) {
            if (job->error) {
                int st;
                const char *type;
                oai_error_event(out, "server_error", error_text(job->error, &st, &type));
            } else {
                oai_chunk(&r->resp, out, 0, NULL, 0, NULL, 0, finish);
                if (r->oreq.include_usage) oai_usage_chunk(&r->resp, out, job->n_prompt, job->n_gen);
            }
            buf_appends(out, "data: [DONE]\n\n");
        }
        stream_write(r, out);
        buf_reset(&job->text);
        job->n_toks = 0;
        if (job->done) {
            log_done(r, job->error ? "error" : r->write_failed ? "client gone" : finish);
            httpd_stream_end(r->req);
            sreq_free(r);
        }
        return;
    }
    buf_append(&r->text, job->text.data, job->text.len);
    for (int i = 0; i < job->n_toks; i++) {
        if (r->n_toks == r->cap_toks) {
            int nc = r->cap_toks ? r->cap_toks * 2 : 32;
            gen_token_t *t = realloc(r->toks, (size_t)nc * sizeof *t);
            if (!t) break;
            r->toks = t;
            r->cap_toks = nc;
        }
        r->toks[r->n_toks++] = job->toks[i];
    }
    buf_reset(&job->text);
    job->n_toks = 0;
    if (!job->done) return;
    if (job->error) {
        int st;
        const char *type, *msg = error_text(job->error, &st, &type);
        httpd_error(r->req, st, type, msg);
    } else {
        oai_response(&r->resp, out, r->text.data, r->text.len, r->toks, r->n_toks, finish,
                     job->n_prompt, job->n_gen);
        server_respond_json(r->req, 200, out);
    }
    log_done(r, job->error ? "error" : finish);
    sreq_free(r);
}

void server_on_wakeup(int worker, void *wdata, void *arg) {
    server_t *s = arg;
    if (s->sched) sched_drain(s->sched, worker, deliver, wdata);
}

/* Render and tokenize the prompt into r->ids. 0, or answers the error and returns -1. */
static int build_prompt(worker_t *w, httpd_req_t *req, sreq_t *r) {
    server_t *s = w->srv;
    oai_request_t *o = &r->oreq;
    int n;
    if (o->kind == OAI_CHAT) {
        buf_t p;
        buf_init(&p);
        int rc = chat_apply(s->tmpl, o->msgs, o->n_msgs, 1, &p);
        if (rc) {
            buf_free(&p);
            httpd_error_ex(req, rc == -EINVAL ? 400 : 500, "invalid_request_error",
                           rc == -EINVAL ? "the messages cannot be rendered with this model's chat template"
                                         : "out of memory",
                           "messages", NULL);
            return -1;
        }
        n = server_encode(w, p.data ? p.data : "", p.len, 1, 1, &r->ids);
        buf_free(&p);
    } else if (o->prompt) {
        n = server_encode(w, o->prompt, strlen(o->prompt), 1, 1, &r->ids);
    } else {
        int nv = tok_n_vocab(s->tok);
        for (int i = 0; i < o->n_prompt_ids; i++)
            if (o->prompt_ids[i] >= nv) {
                httpd_error_ex(req, 400, "invalid_request_error",
                               "a prompt token id is outside the vocabulary", "prompt", NULL);
                return -1;
            }
        r->ids = o->prompt_ids;
        o->prompt_ids = NULL;
        n = o->n_prompt_ids;
    }
    if (n < 0) {
        httpd_error(req, 500, "server_error", "tokenization failed");
        return -1;
    }
    r->job.n_prompt = n;
    char msg[256];
    if (n >= s->n_ctx) {
        snprintf(msg, sizeof msg,
                 "This model's maximum context length is %d tokens. However, your %s resulted in "
                 "%d tokens.",
                 s->n_ctx, o->kind == OAI_CHAT ? "messages" : "prompt", n);
        httpd_error_ex(req, 400, "invalid_request_error", msg,
                       o->kind == OAI_CHAT ? "messages" : "prompt", "context_length_exceeded");
        return -1;
    }
    if (o->max_tokens > 0 && (int64_t)n + o->max_tokens > s->n_ctx) {
        snprintf(msg, sizeof msg,
                 "This model's maximum context length is %d tokens. However, you requested %lld "
                 "tokens (%d in the %s, %d in the completion).",
                 s->n_ctx, (long long)n + o->max_tokens, n,
                 o->kind == OAI_CHAT ? "messages" : "prompt", o->max_tokens);
        httpd_error_ex(req, 400, "invalid_request_error", msg, "max_tokens",
                       "context_length_exceeded");
        return -1;
    }
    return 0;
}

void server_handle_generate(worker_t *w, httpd_req_t *req, oai_kind_t kind) {
    server_t *s = w->srv;
    if (server_not_ready(s, req)) return;
    json_doc_t d;
    if (server_parse_body(w, req, &d)) return;
    sreq_t *r = calloc(1, sizeof *r);
    if (!r) {
        httpd_error(req, 500, "server_error", "out of memory");
        return;
    }
    r->w = w;
    sched_job_init(&r->job);
    oai_request_init(&r->oreq);
    buf_init(&r->text);
    char err[256];
    const char *param = NULL;
    int rc = oai_parse(kind, &d, &r->oreq, err, sizeof err, &param);
    if (rc) {
        httpd_error_ex(req, rc == -EINVAL ? 400 : 500, "invalid_request_error",
                       rc == -EINVAL ? err : "out of memory", param, NULL);
        sreq_free(r);
        return;
    }
    if (build_prompt(w, req, r)) {
        sreq_free(r);
        return;
    }
    oai_request_t *o = &r->oreq;
    gen_params_t *gp = &r->job.gp;
    gp->max_tokens = o->max_tokens > 0 ? o->max_tokens : 0;
    gp->sp.temperature = o->temperature;
    gp->sp.top_p = o->top_p;
    gp->sp.top_k = o->top_k;
    gp->sp.min_p = o->min_p;
    gp->sp.seed = o->has_seed ? o->seed : server_next_rand(s);
    gp->sp.want_logprobs = o->logprobs;
    gp->sp.n_top = o->top_logprobs;
    for (int i = 0; i < o->n_stop; i++) gp->stop[i] = o->stop[i];
    gp->n_stop = o->n_stop;
    r->job.prompt = r->ids;
    r->job.worker = w->idx;
    r->job.arrival_ns = httpd_req_start_ns(req);
    r->stream = o->stream;

    snprintf(r->id, sizeof r->id, "%s%016llx", kind == OAI_CHAT ? "chatcmpl-" : "cmpl-",
             (unsigned long long)server_next_rand(s));
    r->resp = (oai_resp_t){.kind = kind, .id = r->id, .created = (int64_t)time(NULL),
                           .model = s->model_name, .tok = s->tok, .logprobs = o->logprobs,
                           .top_logprobs = o->top_logprobs, .include_usage = o->include_usage};
    rc = sched_submit(s->sched, &r->job);
    if (rc) {
        char msg[128];
        snprintf(msg, sizeof msg, "the server is busy: %d requests are already waiting",
                 sched_waiting(s->sched));
        httpd_add_header(req, "Retry-After", "1");
        httpd_error(req, 503, "unavailable_error",
                    rc == -EAGAIN ? msg : "the server is shutting down");
        sreq_free(r);
        return;
    }
    /* from here the job belongs to the engine as well: free only through deliver/on_close */
    r->req = req;
    httpd_req_on_close(req, on_close, r);
    if (r->stream) {
        httpd_add_header(req, "Cache-Control", "no-cache");
        if (httpd_stream_begin(req, 200, "text/event-stream") < 0) {
            r->write_failed = 1;
            atomic_store(&r->job.cancel, 1);
            return;
        }
        if (kind == OAI_CHAT) { /* OpenAI opens the stream with the role */
            buf_reset(&w->out);
            oai_chunk(&r->resp, &w->out, 1, "", 0, NULL, 0, NULL);
            stream_write(r, &w->out);
        }
    }
}

/* A job handed back after the HTTP workers are gone: nobody else will free it. */
void server_orphan(sched_job_t *job, void *arg) {
    (void)arg;
    if (job->done) sreq_free((sreq_t *)job);
}

