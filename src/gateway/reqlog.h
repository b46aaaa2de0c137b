/* reqlog.h — the request log: sampled prompt/response pairs, redacted and written to SQLite
 * (WAL) by a background thread from a bounded queue, deleted after a retention window. */
#ifndef TOLLGATE_GATEWAY_REQLOG_H
#define TOLLGATE_GATEWAY_REQLOG_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/redact.h"

#define REQLOG_DEF_QUEUE     4096  /* entries waiting for the writer; more are dropped */
#define REQLOG_DEF_MAX_TEXT  16384 /* bytes kept of each of prompt and response */
#define REQLOG_DEF_RETENTION (72LL * 3600 * 1000)
#define REQLOG_BATCH         128   /* rows per transaction */

typedef struct reqlog reqlog_t;

/* Wall clock in unix milliseconds; injectable so that tests can move time. */
typedef int64_t (*reqlog_clock_fn)(void *arg);

typedef struct reqlog_rate {
    const char *service;
    double rate; /* 0..1 */
} reqlog_rate_t;

typedef struct reqlog_opts {
    const char *path;           /* SQLite file, created when missing */
    int64_t retention_ms;       /* rows older than this are deleted; 0 = kept forever */
    uint32_t prune_interval_ms; /* how often the writer deletes; 0: retention/100 in 1 s..60 s */
    uint32_t queue_cap;         /* 0: REQLOG_DEF_QUEUE */
    uint32_t max_text;          /* 0: REQLOG_DEF_MAX_TEXT */
    double sample_rate;         /* for services without their own rate */
    const reqlog_rate_t *rates; /* per-service rates (copied) */
    size_t nrates;
    const redact_t *redact;     /* applied before anything is written; NULL: none. Not owned:
                                   must outlive the reqlog */
    reqlog_clock_fn clock;      /* NULL: the real clock */
    void *clock_arg;
} reqlog_opts_t;

/* One finished request, as the request path hands it over. Strings may be NULL. Texts are
 * raw: the client's request body (JSON) and the upstream's body or SSE bytes; the writer
 * extracts the prompt and the generated text from them, off the request path. */
typedef struct reqlog_rec {
    int64_t ts_ms;              /* arrival, unix ms; 0: now */
    const char *service, *model, *variant, *endpoint, *outcome, *reason, *request_id;
    int status;
    int stream;
    int64_t prompt_tokens, completion_tokens; /* -1: unknown */
    double latency_ms;
    double ttft_ms;             /* < 0: none (not streamed, or no token) */
    const char *prompt;
    size_t prompt_len;
    const char *response;
    size_t response_len;
} reqlog_rec_t;

typedef struct reqlog_stats {
    uint64_t accepted; /* queued by reqlog_submit */
    uint64_t dropped;  /* refused: queue full (or closing) */
    uint64_t written;  /* rows committed */
    uint64_t failed;   /* rows lost to a database error (logged) */
    uint64_t deleted;  /* rows removed by retention */
    uint64_t queued;   /* waiting now */
} reqlog_stats_t;

/* Open (create) the database and its schema. 0 and *out, or a negative errno with a message
 * in err. The writer thread starts here. */
int reqlog_open(const reqlog_opts_t *opts, reqlog_t **out, char *err, size_t errlen);
/* Write everything accepted, stop the writer, close the database. NULL is fine. */
void reqlog_close(reqlog_t *rl);

/* The sample rate for a service (NULL: the default). */
double reqlog_rate(const reqlog_t *rl, const char *service);
/* Whether to log a request of service, given u uniform in [0, 1) from the caller's RNG. */
int reqlog_sampled(const reqlog_t *rl, const char *service, double u);

/* Copy rec into the queue. Never blocks on the disk: a short mutex, one allocation for the
 * sampled request. 0, or -EAGAIN (queue full) / -ESHUTDOWN / -ENOMEM, counted as dropped. */
int reqlog_submit(reqlog_t *rl, const reqlog_rec_t *rec);

/* Any thread (relaxed reads). */
void reqlog_stats(reqlog_t *rl, reqlog_stats_t *out);

/* Wait until everything submitted before the call is committed and one retention pass has
 * run after it. 0, or -ETIMEDOUT after timeout_ms. For tests and `logs` consistency. */
int reqlog_sync(reqlog_t *rl, uint32_t timeout_ms);
/* Test hook: while paused the writer takes nothing from the queue (a stalled disk). */
void reqlog_pause(reqlog_t *rl, int paused);

/* Text extraction used by the writer, exposed for the tests: append the prompt of an OpenAI
 * request body (chat messages as "role: content" lines, or the completion prompt) and the
 * generated text of a response (JSON body or SSE stream). When the input is not what is
 * expected, its raw bytes are appended. 0 or -ENOMEM. */
int reqlog_prompt_text(const char *body, size_t len, buf_t *out);
int reqlog_response_text(const char *body, size_t len, int sse, buf_t *out);

#endif
