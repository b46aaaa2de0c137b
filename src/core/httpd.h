/* httpd.h — HTTP/1.1 server: worker threads with their own event loop and SO_REUSEPORT socket. */
#ifndef TOLLGATE_CORE_HTTPD_H
#define TOLLGATE_CORE_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "core/ev.h"

/* Defaults used when a httpd_config_t field is 0. */
#define HTTPD_DEFAULT_THREADS         2
#define HTTPD_DEFAULT_MAX_HEAD        16384      /* bytes of request line + headers */
#define HTTPD_DEFAULT_MAX_HEADERS     64
#define HTTPD_DEFAULT_MAX_BODY        (1u << 20) /* 1 MiB */
#define HTTPD_DEFAULT_HEADER_TIMEOUT  10000      /* ms to receive a whole request head */
#define HTTPD_DEFAULT_BODY_TIMEOUT    30000      /* ms to receive the body after the head */
#define HTTPD_DEFAULT_IDLE_TIMEOUT    60000      /* ms a keep-alive connection may sit idle */
#define HTTPD_DEFAULT_WRITE_TIMEOUT   60000      /* ms without write progress before closing */
#define HTTPD_DEFAULT_MAX_CONNS       10000      /* over all workers */

typedef struct httpd httpd_t;
/* One in-flight request. Embedded in its connection (no allocation per request);
 * valid from the handler call until the response completes or on_close returns. */
typedef struct httpd_req httpd_req_t;

/* Called on the worker's loop thread once a request head and its whole body are
 * in. The handler answers now or later (from the same loop thread) with
 * httpd_respond / httpd_error / httpd_stream_*. */
typedef void (*httpd_handler_fn)(httpd_req_t *req, void *arg);
/* The client went away (or the server was stopped hard) before the response
 * completed. Runs on the loop thread, never inside an httpd_* call made by the
 * handler. After it returns, req is invalid: cancel timers, drop references. */
typedef void (*httpd_close_fn)(httpd_req_t *req, void *arg);
/* The connection's output buffer has drained completely (see httpd_stream_write). */
typedef void (*httpd_drain_fn)(httpd_req_t *req, void *arg);
/* Per-worker set-up/tear-down, on the worker's thread before/after its loop runs.
 * The value returned by init is available as httpd_req_worker_data(). */
typedef void *(*httpd_worker_init_fn)(int worker, ev_loop_t *loop, void *arg);
typedef void (*httpd_worker_fini_fn)(int worker, void *worker_data, void *arg);
/* A worker was woken by httpd_wakeup (on that worker's thread). */
typedef void (*httpd_wakeup_fn)(int worker, void *worker_data, void *arg);
/* The server answered a client itself, before any handler ran (400/408/413/431 from the
 * protocol checks, 503 past max_conns or without memory), on that worker's thread: so the
 * embedding server can count what its handler never saw. */
typedef void (*httpd_refused_fn)(int worker, void *worker_data, int status, void *arg);

typedef struct httpd_config {
    const char *host;            /* bind address, numeric IPv4/IPv6; NULL = 127.0.0.1 */
    int port;                    /* 0 = any free port (see httpd_port) */
    int threads;                 /* worker threads, each with a loop and a listener */
    size_t max_head_bytes;       /* larger request head -> 431 */
    size_t max_headers;          /* more header lines -> 431 */
    size_t max_body_bytes;       /* larger body -> 413 */
    uint32_t header_timeout_ms;  /* head not complete in time -> 408 and close (slow loris) */
    uint32_t body_timeout_ms;    /* body not complete in time -> 408 and close */
    uint32_t idle_timeout_ms;    /* keep-alive connection idle this long -> closed */
    uint32_t write_timeout_ms;   /* no write progress this long -> closed */
    int max_conns;               /* connections over all workers; beyond -> 503 and close */
    httpd_handler_fn handler;    /* required */
    void *handler_arg;
    httpd_worker_init_fn worker_init; /* optional */
    httpd_worker_fini_fn worker_fini; /* optional */
    httpd_wakeup_fn on_wakeup;        /* optional */
    httpd_refused_fn on_refused;      /* optional */
    void *worker_arg;                 /* passed to the four above */
} httpd_config_t;

/* Create the server and bind one listening socket per worker (so a bind error
 * is reported here, before any thread runs). 0 or negative errno. */
int httpd_new(const httpd_config_t *cfg, httpd_t **out);
/* Start the worker threads. 0 or negative errno. */
int httpd_start(httpd_t *h);
/* Change the client timeouts while the server runs (config reload); thread-safe, 0 keeps a
 * value. A new value applies the next time a connection arms that timer. */
void httpd_set_timeouts(httpd_t *h, uint32_t header_ms, uint32_t body_ms, uint32_t idle_ms,
                        uint32_t write_ms);
/* The bound port (useful with port 0). */
int httpd_port(const httpd_t *h);
int httpd_workers(const httpd_t *h);
/* Thread-safe: make worker i call cfg.on_wakeup soon on its own thread
 * (several calls may coalesce into one). */
void httpd_wakeup(httpd_t *h, int worker);
/* Begin stopping; thread-safe, returns at once. Listeners close, idle
 * connections close, in-flight requests finish (their connections then close)
 * for up to drain_ms; whatever remains is closed then (on_close fires).
 * drain_ms 0 closes everything at once. */
void httpd_stop(httpd_t *h, uint32_t drain_ms);
/* Wait for the workers to finish (after httpd_stop). */
void httpd_wait(httpd_t *h);
/* Stop (if running) at once, wait, and free everything. NULL is fine. */
void httpd_free(httpd_t *h);

/* --- the request (all on the loop thread) --- */

ev_loop_t *httpd_req_loop(const httpd_req_t *req);
int httpd_req_worker(const httpd_req_t *req);
void *httpd_req_worker_data(const httpd_req_t *req);
/* NUL-terminated views, valid as long as req: method ("GET"), path (target up
 * to '?', not decoded), query (after '?', "" when none). */
const char *httpd_req_method(const httpd_req_t *req);
const char *httpd_req_path(const httpd_req_t *req);
const char *httpd_req_query(const httpd_req_t *req);
/* Header value (NUL-terminated) by case-insensitive name; NULL when absent. */
const char *httpd_req_header(const httpd_req_t *req, const char *name);
/* Header i (0 <= i < count): name and value, NUL-terminated. */
size_t httpd_req_header_count(const httpd_req_t *req);
void httpd_req_header_at(const httpd_req_t *req, size_t i, const char **name, const char **value);
/* The decoded body (NUL-terminated; *len excludes the NUL). */
const char *httpd_req_body(const httpd_req_t *req, size_t *len);
/* Monotonic ns at which the request head was complete. */
uint64_t httpd_req_start_ns(const httpd_req_t *req);
/* Client address as "ip:port" into out (NUL-terminated, truncated to cap). */
void httpd_req_peer(const httpd_req_t *req, char *out, size_t cap);

void httpd_req_on_close(httpd_req_t *req, httpd_close_fn cb, void *arg);
void httpd_req_on_drain(httpd_req_t *req, httpd_drain_fn cb, void *arg);

/* --- answering --- */

/* Add a response header (before httpd_respond / httpd_stream_begin). The
 * server itself writes Content-Length, Transfer-Encoding and Connection.
 * 0 or negative errno. */
int httpd_add_header(httpd_req_t *req, const char *name, const char *value);
/* Complete response. content_type may be NULL (no Content-Type). After this
 * call req is finished: do not touch it again. 0 or negative errno (the
 * connection is gone; req is still finished). */
int httpd_respond(httpd_req_t *req, int status, const char *content_type, const void *body,
                  size_t len);
/* OpenAI-style error: {"error":{"message":M,"type":T,"param":null,"code":null}}. */
int httpd_error(httpd_req_t *req, int status, const char *type, const char *message);
/* The same with a param and code (either may be NULL -> null). */
int httpd_error_ex(httpd_req_t *req, int status, const char *type, const char *message,
                   const char *param, const char *code);

/* Streaming: the head is sent now, the body in chunks (chunked encoding, or
 * raw with close-delimiting for HTTP/1.0 clients). 0 or negative errno. */
int httpd_stream_begin(httpd_req_t *req, int status, const char *content_type);
/* Queue and try to send data. Returns the bytes still waiting in the output
 * buffer (>= 0; backpressure: wait for on_drain when it grows large), or a
 * negative errno when the connection is gone (on_close will follow). */
long httpd_stream_write(httpd_req_t *req, const void *data, size_t len);
/* Finish the stream. req is finished afterwards, as with httpd_respond. */
int httpd_stream_end(httpd_req_t *req);
/* Abort: close the connection without finishing the response (the client
 * sees a reset or a truncated body). req is finished; on_close does not fire. */
void httpd_abort(httpd_req_t *req);

#endif
