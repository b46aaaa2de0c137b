/* bench_report.c — the load generator's results as a readable table and as JSON. */
#include <errno.h>
#include <stdio.h>

#include "bench/bench.h"
#include "core/json.h"

static const char *mode_name(bench_arrival_t a) {
    return a == BENCH_CLOSED ? "closed" : a == BENCH_CONSTANT ? "constant" : "poisson";
}

static double ms(uint64_t ns) {
    return (double)ns / 1e6;
}

static uint64_t finished(const bench_result_t *r) {
    return r->ok + r->errors;
}

static double per_s(uint64_t n, const bench_result_t *r) {
    return r->elapsed_s > 0 ? (double)n / r->elapsed_s : 0;
}

static void text_row(FILE *out, const char *name, const hist_t *h) {
    if (!h->count) {
        fprintf(out, "  %-6s %10s\n", name, "-");
        return;
    }
    fprintf(out, "  %-6s %10.3f %10.3f %10.3f %10.3f %10.3f %10.3f\n", name, ms(hist_percentile(h, 50)),
            ms(hist_percentile(h, 90)), ms(hist_percentile(h, 99)), ms(h->max), ms(h->min),
            hist_mean(h) / 1e6);
}

void bench_report_text(FILE *out, const bench_cfg_t *c, const bench_result_t *r) {
    fprintf(out, "tollgate bench: %s %s%s  (%s)\n", c->method, c->url ? c->url : "", c->path,
            c->stream ? "streaming" : "not streaming");
    if (c->arrival == BENCH_CLOSED)
        fprintf(out, "load: closed loop, %u in flight, %u threads", c->concurrency, c->threads);
    else
        fprintf(out, "load: open loop, %s arrivals at %.1f req/s, %u threads", mode_name(c->arrival),
                c->rate, c->threads);
    if (c->connections)
        fprintf(out, ", at most %u connections", c->connections);
    fprintf(out, "\n\n");
    fprintf(out, "requests:  %llu sent, %llu ok, %llu errors, %llu unfinished in %.2f s\n",
            (unsigned long long)r->sent, (unsigned long long)r->ok, (unsigned long long)r->errors,
            (unsigned long long)r->unfinished, r->elapsed_s);
    fprintf(out, "rate:      %.1f req/s completed, %.1f req/s ok\n", per_s(finished(r), r), per_s(r->ok, r));
    fprintf(out, "tokens:    %llu output tokens, %.1f per request, %.1f tokens/s\n",
            (unsigned long long)r->tokens_total, r->ok ? (double)r->tokens_total / (double)r->ok : 0.0,
            per_s(r->tokens_total, r));
    fprintf(out, "conns:     %llu opened (at most %u open), %llu reuses, %llu stale-connection resends\n",
            (unsigned long long)r->connects, r->peak_conns, (unsigned long long)r->reuses,
            (unsigned long long)r->retries);
    if (r->queued)
        fprintf(out, "           %llu requests waited for a free connection (--connections cap)\n",
                (unsigned long long)r->queued);
    fprintf(out, "\n");
    fprintf(out, "  %-6s %10s %10s %10s %10s %10s %10s\n", "ms", "p50", "p90", "p99", "max", "min", "mean");
    text_row(out, "e2e", &r->e2e);
    text_row(out, "ttft", &r->ttft);
    text_row(out, "tpot", &r->tpot);
    if (!r->errors) {
        fprintf(out, "\nerrors: none\n");
        return;
    }
    fprintf(out, "\nerrors:\n");
    for (int i = 1; i < HTTPC_RESULT_COUNT; i++)
        if (r->by_kind[i])
            fprintf(out, "  %-20s %llu\n", httpc_result_name((httpc_result_t)i),
                    (unsigned long long)r->by_kind[i]);
    for (int s = 0; s < BENCH_MAX_STATUS; s++)
        if (r->by_status[s])
            fprintf(out, "  http %-15d %llu\n", s, (unsigned long long)r->by_status[s]);
    if (r->submit_errors)
        fprintf(out, "  %-20s %llu\n", "client", (unsigned long long)r->submit_errors);
}

static void json_hist(json_w_t *w, const char *name, const hist_t *h) {
    json_w_key(w, name);
    json_w_obj_begin(w);
    json_w_key(w, "count");
    json_w_i64(w, (int64_t)h->count);
    static const struct {
        const char *k;
        double p;
    } ps[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"max", 100}};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        json_w_key(w, ps[i].k);
        if (h->count)
            json_w_double(w, ms(hist_percentile(h, ps[i].p)));
        else
            json_w_null(w);
    }
    json_w_key(w, "min");
    if (h->count)
        json_w_double(w, ms(h->min));
    else
        json_w_null(w);
    json_w_key(w, "mean");
    if (h->count)
        json_w_double(w, hist_mean(h) / 1e6);
    else
        json_w_null(w);
    json_w_obj_end(w);
}

int bench_report_json(buf_t *out, const bench_cfg_t *c, const bench_result_t *r) {
    json_w_t w;
    size_t before = out->len;
    json_w_init(&w, out);
    json_w_obj_begin(&w);
    json_w_key(&w, "url");
    json_w_str(&w, c->url ? c->url : "");
    json_w_key(&w, "method");
    json_w_str(&w, c->method);
    json_w_key(&w, "path");
    json_w_str(&w, c->path);
    json_w_key(&w, "stream");
    json_w_bool(&w, c->stream);
    json_w_key(&w, "load");
    json_w_obj_begin(&w);
    json_w_key(&w, "mode");
    json_w_str(&w, mode_name(c->arrival));
    if (c->arrival == BENCH_CLOSED) {
        json_w_key(&w, "concurrency");
        json_w_i64(&w, c->concurrency);
    } else {
        json_w_key(&w, "rate");
        json_w_double(&w, c->rate);
    }
    json_w_key(&w, "threads");
    json_w_i64(&w, c->threads);
    json_w_key(&w, "connections");
    json_w_i64(&w, c->connections);
    json_w_obj_end(&w);
    json_w_key(&w, "elapsed_s");
    json_w_double(&w, r->elapsed_s);
    json_w_key(&w, "requests");
    json_w_obj_begin(&w);
    json_w_key(&w, "sent");
    json_w_i64(&w, (int64_t)r->sent);
    json_w_key(&w, "ok");
    json_w_i64(&w, (int64_t)r->ok);
    json_w_key(&w, "errors");
    json_w_i64(&w, (int64_t)r->errors);
    json_w_key(&w, "unfinished");
    json_w_i64(&w, (int64_t)r->unfinished);
    json_w_obj_end(&w);
    json_w_key(&w, "rps");
    json_w_double(&w, per_s(finished(r), r));
    json_w_key(&w, "ok_rps");
    json_w_double(&w, per_s(r->ok, r));
    json_w_key(&w, "tokens");
    json_w_obj_begin(&w);
    json_w_key(&w, "total");
    json_w_i64(&w, (int64_t)r->tokens_total);
    json_w_key(&w, "per_request");
    json_w_double(&w, r->ok ? (double)r->tokens_total / (double)r->ok : 0.0);
    json_w_key(&w, "min");
    json_w_i64(&w, r->tokens.count ? (int64_t)r->tokens.min : 0);
    json_w_key(&w, "max");
    json_w_i64(&w, (int64_t)r->tokens.max);
    json_w_key(&w, "per_s");
    json_w_double(&w, per_s(r->tokens_total, r));
    json_w_obj_end(&w);
    json_w_key(&w, "latency_ms");
    json_w_obj_begin(&w);
    json_hist(&w, "e2e", &r->e2e);
    json_hist(&w, "ttft", &r->ttft);
    json_hist(&w, "tpot", &r->tpot);
    json_w_obj_end(&w);
    json_w_key(&w, "errors");
    json_w_obj_begin(&w);
    for (int i = 1; i < HTTPC_RESULT_COUNT; i++) {
        if (i == HTTPC_ERR_CANCELLED)
            continue; /* end-of-run cancellations are "unfinished", not errors */
        json_w_key(&w, httpc_result_name((httpc_result_t)i));
        json_w_i64(&w, (int64_t)r->by_kind[i]);
    }
    json_w_key(&w, "client");
    json_w_i64(&w, (int64_t)r->submit_errors);
    json_w_key(&w, "http");
    json_w_obj_begin(&w);
    for (int s = 0; s < BENCH_MAX_STATUS; s++) {
        if (!r->by_status[s])
            continue;
        char k[16];
        snprintf(k, sizeof k, "%d", s);
        json_w_key(&w, k);
        json_w_i64(&w, (int64_t)r->by_status[s]);
    }
    json_w_obj_end(&w);
    json_w_obj_end(&w);
    json_w_key(&w, "connections");
    json_w_obj_begin(&w);
    json_w_key(&w, "opened");
    json_w_i64(&w, (int64_t)r->connects);
    json_w_key(&w, "reuses");
    json_w_i64(&w, (int64_t)r->reuses);
    json_w_key(&w, "stale_resends");
    json_w_i64(&w, (int64_t)r->retries);
    json_w_key(&w, "peak_open");
    json_w_i64(&w, r->peak_conns);
    json_w_key(&w, "waited_for_connection");
    json_w_i64(&w, (int64_t)r->queued);
    json_w_obj_end(&w);
    json_w_obj_end(&w);
    return buf_append(out, "\n", 1) < 0 || out->len == before ? -ENOMEM : 0;
}
