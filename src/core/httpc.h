/* httpc.h — HTTP/1.1 client on a caller's ev_loop: per-upstream keep-alive pool, incremental responses. */
#ifndef TOLLGATE_CORE_HTTPC_H
#define TOLLGATE_CORE_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#include "core/ev.h"
#include "core/http1.h"

/* How a request ended; passed to on_done. */
typedef enum httpc_result {
    HTTPC_OK = 0,                 /* full response received (any status) */
    HTTPC_ERR_CONNECT,            /* connect refused / unreachable / socket error */
    HTTPC_ERR_CONNECT_TIMEOUT,    /* connect did not complete within connect_timeout_ms */
    HTTPC_ERR_FIRST_BYTE_TIMEOUT, /* no response byte within first_byte_timeout_ms */
    HTTPC_ERR_TOTAL_TIMEOUT,      /* whole exchange exceeded total_timeout_ms */
    HTTPC_ERR_RESET,              /* connection reset or closed before the response ended */
    HTTPC_ERR_MALFORMED,          /* unparseable head, bad chunking, head too large */
    HTTPC_ERR_CANCELLED,          /* httpc_cancel */
    HTTPC_RESULT_COUNT
} httpc_result_t;

/* Request flags. */
#define HTTPC_F_RETRY_STALE 0x1u /* caller says a resend is safe: if a reused keep-alive
                                    connection fails before any response byte, resend
                                    once on a fresh connection (on_done says so) */

typedef struct httpc_pool httpc_pool_t;
typedef struct httpc_req httpc_req_t; /* a request handle: valid until on_done returns */

/* Facts about a finished request, passed to on_done. */
typedef struct httpc_done {
    httpc_result_t result;
    int status;          /* HTTP status, 0 when no head was received */
    int sys_errno;       /* errno behind CONNECT/RESET, else 0 */
    uint8_t reused;      /* the (last) attempt ran on a reused keep-alive connection */
    uint8_t retried;     /* resent once on a fresh connection after a stale reuse */
    uint8_t stale_reuse; /* failed on a reused connection before any response byte and
                            was NOT retried (flag absent): a resend would likely succeed */
    uint64_t body_bytes; /* decoded body bytes delivered to on_body */
} httpc_done_t;

/* Callbacks; each gets the `arg` passed to httpc_request. Any of them may call
 * httpc_cancel on this request (on_done is then called with CANCELLED after the
 * current callback returns), and on_done may submit new requests.
 * on_head: once, after the final (non-1xx) response head; header pointers are
 *   valid only during the call.
 * on_body: for each piece of decoded body as it arrives (may be NULL).
 * on_done: exactly once per accepted request, never from inside httpc_request;
 *   the handle is released before it runs, so do not touch it afterwards. */
typedef struct httpc_callbacks {
    void (*on_head)(void *arg, const http1_response_t *res);
    void (*on_body)(void *arg, const char *data, size_t len);
    void (*on_done)(void *arg, const httpc_done_t *done);
} httpc_callbacks_t;

/* One request. httpc copies everything it needs during httpc_request, so the
 * caller's strings may be reused as soon as it returns. httpc adds Host,
 * Content-Length (when body_len > 0 or the method is POST/PUT/PATCH) and
 * nothing else; keep-alive is HTTP/1.1's default. */
typedef struct httpc_request {
    const char *method;               /* "GET", "POST", ... */
    const char *path;                 /* request-target, e.g. "/v1/chat/completions" */
    const http1_header_t *headers;    /* extra headers (may be NULL) */
    size_t num_headers;
    const char *raw_headers;          /* extra, already formatted "K: V\r\n" lines (may be NULL) */
    size_t raw_headers_len;
    const char *body;
    size_t body_len;
    uint32_t connect_timeout_ms;      /* 0: the pool's default */
    uint32_t first_byte_timeout_ms;   /* from the request being written; 0: pool default */
    uint32_t total_timeout_ms;        /* from httpc_request; 0: pool default */
    uint32_t flags;                   /* HTTPC_F_* */
} httpc_request_t;

/* Pool options; zero fields take the defaults in brackets. */
typedef struct httpc_pool_opts {
    uint32_t max_conns;             /* open connections cap; requests beyond it wait in FIFO [unlimited] */
    uint32_t max_idle;              /* idle keep-alive connections kept [64] */
    uint32_t connect_timeout_ms;    /* [5000] */
    uint32_t first_byte_timeout_ms; /* [0 = none] */
    uint32_t total_timeout_ms;      /* [0 = none] */
    size_t max_head;                /* largest response head accepted [65536] */
} httpc_pool_opts_t;

/* Create a pool for host:port on loop. host is an IPv4/IPv6 literal or a name,
 * resolved here once (blocking getaddrinfo) and never per request. opts may be
 * NULL. 0 and *out, or a negative errno (-EHOSTUNREACH... / -ENOENT when the
 * name does not resolve). The pool must be used and freed on loop's thread. */
int httpc_pool_new(ev_loop_t *loop, const char *host, uint16_t port, const httpc_pool_opts_t *opts,
                   httpc_pool_t **out);
/* Cancel every outstanding request (their on_done runs with CANCELLED and may not
 * submit: httpc_request then fails with -ESHUTDOWN), close
 * all connections, free everything. Call it from the loop's thread, from a timer
 * or the code around ev_run, never from inside one of this pool's callbacks. */
void httpc_pool_free(httpc_pool_t *pool);

/* Start a request. 0 and *out (may be NULL if the caller has no use for the
 * handle), or a negative errno (-ENOMEM, -EINVAL) with no callback ever made.
 * Handles, connections and their buffers come from free lists in the pool, so
 * the steady state does not allocate. */
int httpc_request(httpc_pool_t *pool, const httpc_request_t *req, const httpc_callbacks_t *cb,
                  void *arg, httpc_req_t **out);
/* Abort a request: its connection is closed (never reused, since a response may
 * be in flight) and on_done reports HTTPC_ERR_CANCELLED, synchronously unless
 * called from inside one of this request's callbacks. */
void httpc_cancel(httpc_req_t *r);

/* Requests accepted and not yet done (queued + in flight): the load metric for
 * least-outstanding balancing. */
uint32_t httpc_pool_outstanding(const httpc_pool_t *pool);

/* Counters for tests and metrics. */
typedef struct httpc_pool_stats {
    uint64_t connects;   /* connections opened */
    uint64_t reuses;     /* requests served on an already-used connection */
    uint64_t retries;    /* stale-reuse resends */
    uint64_t queued;     /* requests that waited for a connection slot (max_conns reached) */
    uint32_t peak_conns; /* most connections open at once */
    uint32_t open_conns; /* currently open */
    uint32_t idle_conns; /* currently idle */
} httpc_pool_stats_t;
void httpc_pool_stats(const httpc_pool_t *pool, httpc_pool_stats_t *out);

/* "ok", "connect", "connect_timeout", ... for logs and reports. */
const char *httpc_result_name(httpc_result_t r);

#endif
