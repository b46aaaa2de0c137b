/* httpd_conn.h — the HTTP server's internals shared by httpd.c (server, answering) and
 * httpd_conn.c (the connection state machine). Not for use outside src/core/httpd*.c. */
#ifndef TOLLGATE_CORE_HTTPD_CONN_H
#define TOLLGATE_CORE_HTTPD_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/ev.h"
#include "core/http1.h"
#include "core/httpd.h"

#define HTTPD_READ_CHUNK      16384
#define HTTPD_LINGER_MS       2000          /* how long to drain input after an error response */
#define HTTPD_KEEP_BUF_BYTES  (64u * 1024)  /* larger per-connection buffers are freed on reuse */

typedef struct httpd_worker httpd_worker_t;

/* Connection states. A connection handles one request at a time; bytes of a
 * pipelined next request wait in `in` until the current response completes. */
enum { ST_HEAD, ST_BODY, ST_HANDLER, ST_CLOSING, ST_LINGER };
/* What the connection's single timer currently measures. */
enum { T_NONE, T_IDLE, T_HEAD, T_BODY, T_WRITE, T_LINGER, T_GONE };

/* httpd_req_t is the connection: one live request per connection means the
 * request needs no allocation of its own. Connections are pooled per worker
 * with their buffers, so steady-state requests allocate nothing. */
struct httpd_req {
    httpd_worker_t *w;
    int fd;                /* -1 once closed (a zombie waiting for its handler) */
    int state;
    int tmode;             /* T_* */
    ev_timer_t timer;
    buf_t in;              /* raw bytes read, not yet consumed */
    buf_t out;             /* bytes to send; out_off of them already sent */
    size_t out_off;
    buf_t req;             /* current request: head copy (NUL-split) + NUL + body */
    buf_t hdrs;            /* extra response headers added by the handler */
    buf_t ebuf;            /* httpd_error's JSON body (its message may point into req) */
    http1_header_t *headers; /* w->h->max_headers slots; rebased into req */
    size_t nheaders;
    const char *method, *path, *query;
    const char *req_base;  /* req.data when the pointers above were set */
    size_t body_off, body_len;
    http1_framing_t framing;
    http1_chunked_t chunked;
    int minor;
    uint32_t ev_mask;      /* events registered with the loop */
    unsigned keep_alive : 1, is_head : 1, in_io : 1, resp_begun : 1, streaming : 1,
        stream_raw : 1, broken : 1, paused : 1;
    uint64_t start_ns;
    struct sockaddr_storage peer;
    httpd_close_fn on_close;
    void *on_close_arg;
    httpd_drain_fn on_drain;
    void *on_drain_arg;
    struct httpd_req *prev, *next; /* live list, or free list (next only) */
};
typedef struct httpd_req conn_t;

struct httpd_worker {
    httpd_t *h;
    int idx;
    ev_loop_t *loop;
    int lfd;
    pthread_t thread;
    int started;
    void *data;              /* from worker_init */
    conn_t *live;            /* connections with an fd or a pending handler */
    conn_t *pool;            /* free connections, buffers kept */
    int nconns, max_conns;
    int draining;
    ev_timer_t drain_timer;
};

struct httpd {
    httpd_config_t cfg;      /* defaults filled in */
    char host[64];
    int port;
    int nworkers;
    httpd_worker_t *workers;
    atomic_int stopping;     /* set by httpd_stop; workers read it on wakeup */
    atomic_uint drain_ms;
};

/* Connection state machine (httpd_conn.c). All run on the connection's loop thread. */

/* A fresh connection from the worker's pool (buffers kept), linked as live. NULL on no memory. */
conn_t *httpd_conn_get(httpd_worker_t *w);
/* The loop callback of a connection's socket. */
void httpd_conn_io(ev_loop_t *loop, int fd, uint32_t events, void *arg);
/* A client timeout of h's config: httpd_set_timeouts may change them while workers run, so
 * they are read with relaxed atomic loads (any recent value will do). */
#define HTTPD_TIMEOUT(h, field) __atomic_load_n(&(h)->cfg.field, __ATOMIC_RELAXED)

/* Arm the connection's one timer for `mode` (T_NONE stops it). */
void httpd_conn_set_timer(conn_t *c, int mode, uint32_t ms);
/* Send what is queued: 0 (all sent, or waiting for EPOLLOUT) or -1 (broken; the caller
 * decides when to call httpd_conn_gone). */
int httpd_conn_flush(conn_t *c);
/* Close the socket (reset: RST instead of FIN). */
void httpd_conn_close_fd(conn_t *c, int reset);
/* The client is gone: on_close for an unfinished request (or keep it as a zombie when the
 * handler registered none), then back to the pool. */
void httpd_conn_gone(conn_t *c);
/* Back to the pool; the fd is already closed. */
void httpd_conn_release(conn_t *c);
/* The response is completely queued: next request, or close once sent. */
void httpd_conn_done(conn_t *c);
/* After the handler finished a response outside the connection's own callback. */
void httpd_conn_after_user(conn_t *c);
/* Append {"error":{"message","type","param","code"}}. */
void httpd_conn_error_json(buf_t *b, const char *type, const char *message, const char *param,
                           const char *code);

static inline int httpd_conn_pending(const conn_t *c) {
    return c->out.len > c->out_off;
}

#endif
