/* bench.h — the LLM-aware load generator: run configuration, measured results, the runner. */
#ifndef TOLLGATE_BENCH_BENCH_H
#define TOLLGATE_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/hist.h"
#include "core/buf.h"
#include "core/httpc.h"

typedef enum bench_arrival {
    BENCH_CLOSED = 0,  /* closed loop: `concurrency` requests always in flight */
    BENCH_CONSTANT,    /* open loop, evenly spaced arrivals at `rate` */
    BENCH_POISSON,     /* open loop, exponential inter-arrival times at mean `rate` */
} bench_arrival_t;

#define BENCH_MAX_STATUS 600

/* What to run. Strings are borrowed for the duration of bench_run. */
typedef struct bench_cfg {
    const char *url;         /* as given, for reports only */
    int stream;              /* the body asks for streaming (reports only: parsing
                                follows the response's Content-Type) */
    const char *host;        /* IPv4/IPv6 literal or name (resolved once per thread) */
    uint16_t port;
    const char *method;      /* "POST" */
    const char *path;        /* "/v1/chat/completions" */
    const char *body;        /* request body sent with every request (may be NULL) */
    size_t body_len;
    const char *raw_headers; /* extra "K: V\r\n" lines, Content-Type included */
    size_t raw_headers_len;
    bench_arrival_t arrival;
    double rate;             /* open loop: requests per second, all threads together */
    uint32_t concurrency;    /* closed loop: requests in flight, all threads together */
    double duration_s;       /* stop sending after this long (0: no time limit) */
    uint64_t requests;       /* stop after this many requests (0: no count limit) */
    uint32_t threads;        /* worker threads, one ev_loop each */
    uint32_t connections;    /* open-connection cap, all threads together (0: none) */
    uint32_t max_inflight;   /* open loop: requests in flight cap (later ones wait; their
                                latency still counts from their scheduled time) */
    uint32_t timeout_ms;     /* per-request total timeout */
    int quiet;               /* no progress lines on stderr */
    uint64_t seed;           /* Poisson arrivals' RNG seed */
} bench_cfg_t;

/* What was measured. Latencies are in ns; `tokens` counts output tokens per
 * successful request. ~240 KiB: allocate it, do not put it on the stack. */
typedef struct bench_result {
    uint64_t sent;                        /* requests handed to the client */
    uint64_t ok;                          /* complete 1xx-3xx responses with a sane body */
    uint64_t errors;                      /* everything else that finished */
    uint64_t unfinished;                  /* still in flight at the end, cancelled */
    uint64_t by_kind[HTTPC_RESULT_COUNT]; /* transport errors by httpc result (malformed
                                             includes unparseable 2xx bodies) */
    uint64_t by_status[BENCH_MAX_STATUS]; /* HTTP >= 400 by status code */
    uint64_t submit_errors;               /* httpc_request refused (out of memory...) */
    uint64_t tokens_total;
    uint64_t connects, reuses, retries;   /* connection pool counters */
    uint64_t queued;                      /* requests that waited for a free connection */
    uint32_t peak_conns;                  /* sum over threads of each one's peak */
    double elapsed_s;                     /* first scheduled send to last completion */
    hist_t e2e, ttft, tpot, tokens;
} bench_result_t;

/* Run the load described by cfg; fill *res (caller-allocated). 0, or a negative
 * errno when the run could not start (bad host, no threads); a run that
 * started always returns 0 and reports its errors in *res. Progress lines
 * (unless cfg->quiet) go to `progress`. */
int bench_run(const bench_cfg_t *cfg, bench_result_t *res, FILE *progress);

/* ---- response parsing (bench_parse.c) ---- */

#define BENCH_LINE_MAX 4096 /* longest SSE line parsed; longer ones count as content */

/* Per-request state of a streamed (SSE) response; lives in a reusable slot. */
typedef struct bench_stream {
    uint64_t first_content_ns; /* clock when the first event carrying content arrived; 0 none */
    uint32_t content_events;   /* data events whose delta carried non-empty content */
    int64_t usage_tokens;      /* usage.completion_tokens when the stream reported it, else -1 */
    int bad;                   /* a data event was not valid JSON */
    int overflow;              /* the current line is longer than BENCH_LINE_MAX */
    size_t len;                /* bytes in line */
    char line[BENCH_LINE_MAX];
} bench_stream_t;

void bench_stream_reset(bench_stream_t *s);
/* Feed the next piece of an SSE body. toks is scratch space (per thread). */
void bench_stream_feed(bench_stream_t *s, const char *p, size_t n, void *toks, size_t ntoks);
/* Output tokens of a complete non-streamed response body (usage.completion_tokens,
 * 0 when absent), or -1 when the body is not JSON. */
int64_t bench_body_tokens(const char *body, size_t len, void *toks, size_t ntoks);

/* ---- reports (bench_report.c) ---- */

/* Human-readable table. */
void bench_report_text(FILE *out, const bench_cfg_t *cfg, const bench_result_t *res);
/* The same as one JSON object appended to out. 0 or -ENOMEM. */
int bench_report_json(buf_t *out, const bench_cfg_t *cfg, const bench_result_t *res);

#endif
