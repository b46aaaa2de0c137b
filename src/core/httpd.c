/* httpd.c — HTTP/1.1 server: connections, limits, keep-alive, pipelining, streaming, drain. */
#define _GNU_SOURCE
#include "core/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/http1.h"
#include "core/json.h"

#define READ_CHUNK      16384
#define LINGER_MS       2000          /* how long to drain input after an error response */
#define KEEP_BUF_BYTES  (64u * 1024)  /* larger per-connection buffers are freed on reuse */

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

static void conn_io(ev_loop_t *loop, int fd, uint32_t events, void *arg);
static int conn_process(conn_t *c);
static void conn_after_user(conn_t *c);

/* ---- connection lifecycle ---- */

static void set_timer(conn_t *c, int mode, uint32_t ms);

static void timer_cb(ev_loop_t *loop, void *arg);

static void set_timer(conn_t *c, int mode, uint32_t ms) {
    c->tmode = mode;
    if (mode == T_NONE)
        ev_timer_stop(c->w->loop, &c->timer);
    else
        ev_timer_start(c->w->loop, &c->timer, ms, timer_cb, c);
}

static void want(conn_t *c, uint32_t mask) {
    if (c->fd < 0 || mask == c->ev_mask)
        return;
    if (ev_io_mod(c->w->loop, c->fd, mask) == 0)
        c->ev_mask = mask;
}

static void shrink(buf_t *b) {
    if (b->cap > KEEP_BUF_BYTES)
        buf_free(b);
    else
        buf_reset(b);
}

/* Return a connection to the pool. Its fd is already closed. */
static void conn_release(conn_t *c) {
    httpd_worker_t *w = c->w;
    ev_timer_stop(w->loop, &c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    shrink(&c->in);
    shrink(&c->out);
    shrink(&c->req);
    shrink(&c->hdrs);
    shrink(&c->ebuf);
    c->prev = NULL;
    c->next = w->pool;
    w->pool = c;
    w->nconns--;
    if (w->draining && w->nconns == 0)
        ev_stop(w->loop);
}

static void conn_close_fd(conn_t *c, int reset) {
    if (c->fd < 0)
        return;
    ev_io_del(c->w->loop, c->fd);
    if (reset) {
        struct linger lg = {1, 0}; /* RST instead of FIN: the client sees a reset */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd);
    c->fd = -1;
}

/* The client is gone (or the server closes it hard). A request whose response
 * is not complete tells its handler through on_close; without on_close the
 * connection stays as a zombie until the handler finishes the response. */
static void conn_gone(conn_t *c) {
    conn_close_fd(c, 0);
    ev_timer_stop(c->w->loop, &c->timer);
    c->tmode = T_NONE;
    if (c->state == ST_HANDLER) {
        c->broken = 1;
        if (!c->on_close)
            return; /* zombie: released by httpd_respond / _stream_end / _abort */
        httpd_close_fn cb = c->on_close;
        c->on_close = NULL;
        c->state = ST_CLOSING; /* httpd_* calls from inside cb are refused */
        cb(c, c->on_close_arg);
    }
    conn_release(c);
}

/* Send what is queued. 0 when all sent or waiting for EPOLLOUT; -1 on error
 * (the caller decides when to call conn_gone). */
static int conn_flush(conn_t *c) {
    if (c->fd < 0 || c->broken)
        return -1;
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            if (c->tmode == T_WRITE) /* progress: restart the write clock */
                set_timer(c, T_WRITE, c->w->h->cfg.write_timeout_ms);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want(c, (c->paused ? 0 : EV_READ) | EV_WRITE);
            if (c->tmode == T_NONE)
                set_timer(c, T_WRITE, c->w->h->cfg.write_timeout_ms);
            return 0;
        }
        c->broken = 1;
        return -1;
    }
    buf_reset(&c->out);
    c->out_off = 0;
    want(c, c->paused ? 0 : EV_READ);
    if (c->tmode == T_WRITE)
        set_timer(c, T_NONE, 0);
    return 0;
}

static int out_pending(const conn_t *c) {
    return c->out.len > c->out_off;
}

/* Close after the queued bytes are sent: half-close, then read and discard
 * what the client still sends for a moment so it can read our answer. */
static void conn_start_linger(conn_t *c) {
    if (c->w->draining) {
        set_timer(c, T_GONE, 0); /* no lingering while the server stops */
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = ST_LINGER;
    c->paused = 0;
    want(c, EV_READ);
    set_timer(c, T_LINGER, LINGER_MS);
}

/* ---- server-generated responses ---- */

static void append_error_json(buf_t *b, const char *type, const char *message, const char *param,
                              const char *code) {
    json_w_t jw;
    json_w_init(&jw, b);
    json_w_obj_begin(&jw);
    json_w_key(&jw, "error");
    json_w_obj_begin(&jw);
    json_w_key(&jw, "message");
    json_w_str(&jw, message ? message : "");
    json_w_key(&jw, "type");
    json_w_str(&jw, type ? type : "error");
    json_w_key(&jw, "param");
    if (param)
        json_w_str(&jw, param);
    else
        json_w_null(&jw);
    json_w_key(&jw, "code");
    if (code)
        json_w_str(&jw, code);
    else
        json_w_null(&jw);
    json_w_obj_end(&jw);
    json_w_obj_end(&jw);
}

/* A protocol-level error decided by the server (400/408/413/431/503): answer
 * and close, whatever the request said about keep-alive. */
static void conn_fail(conn_t *c, int status, const char *message) {
    c->state = ST_CLOSING;
    c->keep_alive = 0;
    c->paused = 1; /* stop reading: what else the client sends is discarded in linger */
    buf_appendf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: ",
                status, http1_reason(status));
    size_t len_at = c->out.len;
    buf_appends(&c->out, "0000000000\r\nConnection: close\r\n\r\n");
    size_t body_at = c->out.len;
    append_error_json(&c->out, "invalid_request_error", message, NULL, NULL);
    char num[16];
    snprintf(num, sizeof num, "%010zu", c->out.len - body_at);
    memcpy(c->out.data + len_at, num, 10); /* leading zeros are a valid length */
    set_timer(c, T_NONE, 0);
}

/* ---- request intake ---- */

static void body_timer_or_head(conn_t *c, int mode) {
    const httpd_config_t *cfg = &c->w->h->cfg;
    set_timer(c, mode, mode == T_HEAD ? cfg->header_timeout_ms : cfg->body_timeout_ms);
}

/* Copy the parsed head into c->req, NUL-terminating every field, so that the
 * read buffer may grow (and move) while the handler holds the request. */
static int take_head(conn_t *c, const http1_request_t *pr, size_t head_len) {
    buf_reset(&c->req);
    if (buf_append(&c->req, c->in.data, head_len) < 0)
        return -ENOMEM;
    char *base = c->req.data;
    const char *src = c->in.data;
#define REBASE(p) (base + ((p) - src))
    char *m = REBASE(pr->method);
    m[pr->method_len] = '\0';
    char *t = REBASE(pr->target);
    t[pr->target_len] = '\0';
    c->method = m;
    c->path = t;
    char *q = memchr(t, '?', pr->target_len);
    if (q) {
        *q = '\0';
        c->query = q + 1;
    } else {
        c->query = t + pr->target_len; /* "" */
    }
    for (size_t i = 0; i < pr->num_headers; i++) {
        http1_header_t *hd = &c->headers[i];
        char *n = REBASE(hd->name);
        n[hd->name_len] = '\0';
        hd->name = n;
        if (hd->value && hd->value_len) {
            char *v = REBASE(hd->value);
            v[hd->value_len] = '\0';
            hd->value = v;
        } else {
            hd->value = n + hd->name_len; /* "": the name's NUL, inside req like the rest */
        }
    }
#undef REBASE
    c->nheaders = pr->num_headers;
    c->framing = pr->framing;
    c->minor = pr->minor_version;
    c->is_head = !strcmp(c->method, "HEAD");
    c->req_base = c->req.data;
    c->body_off = c->req.len + 1;
    c->body_len = 0;
    /* A NUL separates head and body; buf_append keeps the body NUL-terminated. */
    return buf_append(&c->req, "", 1);
}

/* Appending the body may have moved c->req: re-point the head's fields. */
static const char *moved(const conn_t *c, const char *p) {
    return c->req.data + ((uintptr_t)p - (uintptr_t)c->req_base);
}

static void dispatch(conn_t *c) {
    httpd_t *h = c->w->h;
    if (c->req.data != c->req_base) {
        c->method = moved(c, c->method);
        c->path = moved(c, c->path);
        c->query = moved(c, c->query);
        for (size_t i = 0; i < c->nheaders; i++) {
            c->headers[i].name = moved(c, c->headers[i].name);
            c->headers[i].value = moved(c, c->headers[i].value);
        }
        c->req_base = c->req.data;
    }
    c->state = ST_HANDLER;
    set_timer(c, T_NONE, 0);
    c->start_ns = ev_now_ns(c->w->loop);
    c->keep_alive = c->framing.keep_alive && !c->w->draining;
    c->resp_begun = c->streaming = c->stream_raw = 0;
    c->on_close = NULL;
    c->on_drain = NULL;
    buf_reset(&c->hdrs);
    h->cfg.handler(c, h->cfg.handler_arg);
}

/* The response is complete (all queued): go back to reading the next request,
 * or close once it has been sent. */
static void response_done(conn_t *c) {
    c->on_close = NULL;
    c->on_drain = NULL;
    if (c->keep_alive && !c->w->draining) {
        c->state = ST_HEAD;
    } else {
        c->state = ST_CLOSING;
        c->paused = 1;
    }
}

/* Parse and dispatch as many requests as the buffer holds (pipelining).
 * Returns 0, or -1 when the connection was released. Caller holds in_io. */
static int conn_process(conn_t *c) {
    httpd_t *h = c->w->h;
    for (;;) {
        if (c->state == ST_HEAD) {
            if (c->in.len == 0) {
                if (c->w->draining) {
                    c->state = ST_CLOSING;
                    continue;
                }
                if (c->tmode != T_IDLE && c->tmode != T_HEAD)
                    set_timer(c, T_IDLE, h->cfg.idle_timeout_ms);
                return 0;
            }
            if (c->tmode != T_HEAD)
                body_timer_or_head(c, T_HEAD);
            http1_request_t pr;
            memset(&pr, 0, sizeof pr);
            pr.headers = c->headers;
            pr.num_headers = h->cfg.max_headers;
            int r = http1_parse_request(c->in.data, c->in.len, &pr);
            if (r == HTTP1_INCOMPLETE) {
                if (c->in.len > h->cfg.max_head_bytes)
                    conn_fail(c, 431, "request header fields too large");
                else
                    return 0;
            } else if (r == HTTP1_TOO_MANY) {
                conn_fail(c, 431, "too many request header fields");
            } else if (r < 0) {
                conn_fail(c, 400, "malformed HTTP request");
            } else if ((size_t)r > h->cfg.max_head_bytes) {
                conn_fail(c, 431, "request header fields too large");
            } else if (pr.framing.content_length > (int64_t)h->cfg.max_body_bytes) {
                conn_fail(c, 413, "request body too large");
            } else if (take_head(c, &pr, (size_t)r) < 0) {
                conn_fail(c, 503, "out of memory");
            } else {
                buf_consume(&c->in, (size_t)r);
                if (!c->framing.chunked && c->framing.content_length <= 0) {
                    dispatch(c);
                    continue;
                }
                memset(&c->chunked, 0, sizeof c->chunked);
                c->chunked.max_body = h->cfg.max_body_bytes;
                c->state = ST_BODY;
                body_timer_or_head(c, T_BODY);
                if (c->framing.expect_continue && c->in.len == 0)
                    buf_appends(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                continue;
            }
            continue; /* conn_fail: ST_CLOSING */
        }
        if (c->state == ST_BODY) {
            if (!c->framing.chunked) {
                size_t want_len = (size_t)c->framing.content_length;
                if (c->in.len < want_len)
                    return 0;
                if (buf_append(&c->req, c->in.data, want_len) < 0) {
                    conn_fail(c, 503, "out of memory");
                    continue;
                }
                c->body_len = want_len;
                buf_consume(&c->in, want_len);
                dispatch(c);
                continue;
            }
            if (c->in.len == 0)
                return 0;
            size_t n = c->in.len;
            ssize_t rest = http1_decode_chunked(&c->chunked, c->in.data, &n);
            if (rest == HTTP1_ERR) {
                /* The decoder refuses a chunk whose size would pass max_body. */
                if (c->chunked.remaining > h->cfg.max_body_bytes - c->chunked.total)
                    conn_fail(c, 413, "request body too large");
                else
                    conn_fail(c, 400, "malformed chunked request body");
                continue;
            }
            if (buf_append(&c->req, c->in.data, n) < 0) {
                conn_fail(c, 503, "out of memory");
                continue;
            }
            c->body_len += n;
            if (rest == HTTP1_INCOMPLETE) {
                c->in.len = 0;
                c->in.data[0] = '\0';
                return 0;
            }
            memmove(c->in.data, c->in.data + n, (size_t)rest);
            c->in.len = (size_t)rest;
            c->in.data[c->in.len] = '\0';
            dispatch(c);
            continue;
        }
        if (c->state == ST_HANDLER) {
            /* Keep reading so a disconnect is noticed, but bound what a
             * pipelining client can make us buffer meanwhile. */
            c->paused = c->in.len > h->cfg.max_head_bytes + h->cfg.max_body_bytes;
            want(c, (c->paused ? 0 : EV_READ) | (out_pending(c) ? EV_WRITE : 0));
            return 0;
        }
        if (c->state == ST_CLOSING) {
            if (conn_flush(c) < 0) {
                conn_gone(c);
                return -1;
            }
            if (out_pending(c))
                return 0; /* finished by the EPOLLOUT path */
            conn_start_linger(c);
            return 0;
        }
        return 0; /* ST_LINGER: nothing to parse */
    }
}

/* Read what is there; 0, or -1 on EOF/error (the caller calls conn_gone). */
static int conn_read(conn_t *c) {
    if (buf_reserve(&c->in, READ_CHUNK) < 0)
        return -1;
    ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
    if (n > 0) {
        c->in.len += (size_t)n;
        c->in.data[c->in.len] = '\0';
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return -1;
}

static void conn_io(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    conn_t *c = arg;
    (void)loop;
    (void)fd;
    c->in_io = 1;
    if (c->state == ST_LINGER) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_gone(c);
        else
            c->in_io = 0;
        return;
    }
    if (events & EV_WRITE) {
        if (conn_flush(c) < 0) {
            conn_gone(c);
            return;
        }
        if (!out_pending(c) && c->on_drain && c->state == ST_HANDLER)
            c->on_drain(c, c->on_drain_arg);
    }
    if ((events & (EV_READ | EV_ERROR)) && c->state != ST_CLOSING) {
        if (conn_read(c) < 0) {
            conn_gone(c);
            return;
        }
    } else if ((events & EV_ERROR) && !(events & EV_WRITE)) {
        conn_gone(c);
        return;
    }
    for (;;) {
        if (conn_process(c) < 0)
            return;
        int had = out_pending(c);
        if (conn_flush(c) < 0) {
            conn_gone(c);
            return;
        }
        /* Drained right here (the socket took it all): a streaming handler
         * waiting for on_drain must hear of it too, or it would wait forever. */
        if (had && !out_pending(c) && c->state == ST_HANDLER && c->on_drain) {
            c->on_drain(c, c->on_drain_arg);
            continue;
        }
        break;
    }
    if (c->state == ST_CLOSING && !out_pending(c))
        conn_start_linger(c);
    c->in_io = 0;
}

/* After the handler finished a response outside conn_io: send it and carry on
 * with pipelined requests. The handler no longer owns req. */
static void conn_after_user(conn_t *c) {
    if (c->in_io)
        return; /* conn_io's epilogue does it */
    if (c->fd < 0) {
        conn_release(c); /* a zombie whose handler just finished */
        return;
    }
    c->in_io = 1;
    if (conn_flush(c) < 0) {
        conn_gone(c);
        return;
    }
    if (conn_process(c) < 0)
        return;
    if (conn_flush(c) < 0) {
        conn_gone(c);
        return;
    }
    if (c->state == ST_CLOSING && !out_pending(c))
        conn_start_linger(c);
    c->in_io = 0;
}

static void timer_cb(ev_loop_t *loop, void *arg) {
    conn_t *c = arg;
    (void)loop;
    int mode = c->tmode;
    c->tmode = T_NONE;
    switch (mode) {
    case T_HEAD:
    case T_BODY:
        c->in_io = 1;
        conn_fail(c, 408, mode == T_HEAD ? "timed out reading the request head"
                                         : "timed out reading the request body");
        if (conn_process(c) == 0)
            c->in_io = 0;
        return;
    case T_IDLE:
    case T_WRITE:
    case T_LINGER:
    case T_GONE:
        conn_gone(c);
        return;
    default:
        return;
    }
}

/* ---- accepting ---- */

static conn_t *conn_get(httpd_worker_t *w) {
    conn_t *c = w->pool;
    if (c) {
        w->pool = c->next;
    } else {
        c = calloc(1, sizeof *c);
        if (!c)
            return NULL;
        c->headers = calloc(w->h->cfg.max_headers, sizeof *c->headers);
        if (!c->headers) {
            free(c);
            return NULL;
        }
        ev_timer_init(&c->timer);
        c->w = w;
    }
    c->state = ST_HEAD;
    c->tmode = T_NONE;
    c->out_off = 0;
    c->ev_mask = 0;
    c->keep_alive = c->is_head = c->in_io = c->resp_begun = c->streaming = 0;
    c->stream_raw = c->broken = c->paused = 0;
    c->on_close = NULL;
    c->on_drain = NULL;
    c->prev = NULL;
    c->next = w->live;
    if (w->live)
        w->live->prev = c;
    w->live = c;
    w->nconns++;
    return c;
}

static void accept_cb(ev_loop_t *loop, int lfd, uint32_t events, void *arg) {
    httpd_worker_t *w = arg;
    (void)events;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error (EMFILE...): try on the next event */
        if (w->nconns >= w->max_conns) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            ssize_t r = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
            (void)r;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = conn_get(w);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->peer = ss;
        if (ev_io_add(loop, fd, EV_READ, conn_io, c) < 0) {
            close(fd);
            c->fd = -1;
            conn_release(c);
            continue;
        }
        c->ev_mask = EV_READ;
        /* A silent new connection is held to the head timeout, not the idle one. */
        set_timer(c, T_HEAD, w->h->cfg.header_timeout_ms);
    }
}

/* ---- stopping ---- */

static void close_all(httpd_worker_t *w) {
    conn_t *c = w->live;
    while (c) {
        conn_t *next = c->next;
        if (c->fd >= 0 || c->on_close)
            conn_gone(c);
        c = next;
    }
    ev_stop(w->loop);
}

static void drain_timeout_cb(ev_loop_t *loop, void *arg) {
    (void)loop;
    close_all(arg);
}

static void wakeup_cb(ev_loop_t *loop, void *arg) {
    httpd_worker_t *w = arg;
    if (w->h->cfg.on_wakeup)
        w->h->cfg.on_wakeup(w->idx, w->data, w->h->cfg.worker_arg);
    if (!atomic_load(&w->h->stopping) || w->draining)
        return;
    w->draining = 1;
    if (w->lfd >= 0) {
        ev_io_del(loop, w->lfd);
        close(w->lfd);
        w->lfd = -1;
    }
    unsigned ms = atomic_load(&w->h->drain_ms);
    if (ms == 0) {
        close_all(w);
        return;
    }
    /* Idle connections go now; busy ones close after their response. */
    conn_t *c = w->live;
    while (c) {
        conn_t *next = c->next;
        if (c->fd >= 0 && c->state == ST_HEAD && c->in.len == 0 && !out_pending(c))
            conn_gone(c);
        else if (c->state == ST_HANDLER)
            c->keep_alive = 0;
        c = next;
    }
    if (w->nconns == 0)
        ev_stop(loop);
    else
        ev_timer_start(loop, &w->drain_timer, ms, drain_timeout_cb, w);
}

static void *worker_main(void *arg) {
    httpd_worker_t *w = arg;
    httpd_t *h = w->h;
    if (h->cfg.worker_init)
        w->data = h->cfg.worker_init(w->idx, w->loop, h->cfg.worker_arg);
    ev_set_wakeup(w->loop, wakeup_cb, w);
    if (w->lfd >= 0)
        ev_io_add(w->loop, w->lfd, EV_READ, accept_cb, w);
    if (!atomic_load(&h->stopping))
        ev_run(w->loop);
    /* Whatever is left (hard stop, loop error) is closed on this thread. */
    if (w->lfd >= 0) {
        ev_io_del(w->loop, w->lfd);
        close(w->lfd);
        w->lfd = -1;
    }
    conn_t *c = w->live;
    while (c) {
        conn_t *next = c->next;
        if (c->fd >= 0 || c->on_close)
            conn_gone(c);
        c = next;
    }
    ev_timer_stop(w->loop, &w->drain_timer);
    if (h->cfg.worker_fini)
        h->cfg.worker_fini(w->idx, w->data, h->cfg.worker_arg);
    return NULL;
}

/* ---- server ---- */

static int make_listener(const char *host, int port, struct sockaddr_storage *bound) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof *s6;
    } else {
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    socklen_t bl = sizeof *bound;
    getsockname(fd, (struct sockaddr *)bound, &bl);
    return fd;
}

static int bound_port(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

int httpd_new(const httpd_config_t *cfg, httpd_t **out) {
    if (!cfg || !cfg->handler || !out)
        return -EINVAL;
    httpd_t *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    int rc = 0;
    h->cfg = *cfg;
    httpd_config_t *c = &h->cfg;
    snprintf(h->host, sizeof h->host, "%s", cfg->host ? cfg->host : "127.0.0.1");
    c->host = h->host;
    if (c->threads <= 0)
        c->threads = HTTPD_DEFAULT_THREADS;
    if (!c->max_head_bytes)
        c->max_head_bytes = HTTPD_DEFAULT_MAX_HEAD;
    if (!c->max_headers)
        c->max_headers = HTTPD_DEFAULT_MAX_HEADERS;
    if (!c->max_body_bytes)
        c->max_body_bytes = HTTPD_DEFAULT_MAX_BODY;
    if (!c->header_timeout_ms)
        c->header_timeout_ms = HTTPD_DEFAULT_HEADER_TIMEOUT;
    if (!c->body_timeout_ms)
        c->body_timeout_ms = HTTPD_DEFAULT_BODY_TIMEOUT;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = HTTPD_DEFAULT_IDLE_TIMEOUT;
    if (!c->write_timeout_ms)
        c->write_timeout_ms = HTTPD_DEFAULT_WRITE_TIMEOUT;
    if (c->max_conns <= 0)
        c->max_conns = HTTPD_DEFAULT_MAX_CONNS;
    h->nworkers = c->threads;
    h->workers = calloc((size_t)h->nworkers, sizeof *h->workers);
    if (!h->workers) {
        rc = -ENOMEM;
        goto err;
    }
    for (int i = 0; i < h->nworkers; i++)
        h->workers[i].lfd = -1;
    int port = cfg->port;
    for (int i = 0; i < h->nworkers; i++) {
        httpd_worker_t *w = &h->workers[i];
        w->h = h;
        w->idx = i;
        w->max_conns = (c->max_conns + h->nworkers - 1) / h->nworkers;
        ev_timer_init(&w->drain_timer);
        w->loop = ev_loop_new();
        if (!w->loop) {
            rc = -ENOMEM;
            goto err;
        }
        struct sockaddr_storage bound;
        /* The first socket picks the port (maybe 0 -> any); the others join it. */
        int fd = make_listener(h->host, port, &bound);
        if (fd < 0) {
            rc = fd;
            goto err;
        }
        w->lfd = fd;
        port = bound_port(&bound);
    }
    h->port = port;
    *out = h;
    return 0;
err:
    httpd_free(h);
    return rc;
}

int httpd_start(httpd_t *h) {
    /* Workers never take process signals: the embedding program handles them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (int i = 0; i < h->nworkers; i++) {
        httpd_worker_t *w = &h->workers[i];
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e) {
            rc = -e;
            break;
        }
        w->started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        httpd_stop(h, 0);
    return rc;
}

int httpd_port(const httpd_t *h) {
    return h->port;
}

int httpd_workers(const httpd_t *h) {
    return h->nworkers;
}

void httpd_wakeup(httpd_t *h, int worker) {
    if (worker >= 0 && worker < h->nworkers && h->workers[worker].loop)
        ev_wakeup(h->workers[worker].loop);
}

void httpd_stop(httpd_t *h, uint32_t drain_ms) {
    atomic_store(&h->drain_ms, drain_ms);
    atomic_store(&h->stopping, 1);
    for (int i = 0; i < h->nworkers; i++)
        if (h->workers[i].loop)
            ev_wakeup(h->workers[i].loop);
}

void httpd_wait(httpd_t *h) {
    for (int i = 0; i < h->nworkers; i++) {
        httpd_worker_t *w = &h->workers[i];
        if (w->started) {
            pthread_join(w->thread, NULL);
            w->started = 0;
        }
    }
}

static void free_conn_list(conn_t *c) {
    while (c) {
        conn_t *next = c->next;
        if (c->fd >= 0)
            close(c->fd);
        buf_free(&c->in);
        buf_free(&c->out);
        buf_free(&c->req);
        buf_free(&c->hdrs);
        buf_free(&c->ebuf);
        free(c->headers);
        free(c);
        c = next;
    }
}

void httpd_free(httpd_t *h) {
    if (!h)
        return;
    if (h->workers) {
        httpd_stop(h, 0);
        httpd_wait(h);
        for (int i = 0; i < h->nworkers; i++) {
            httpd_worker_t *w = &h->workers[i];
            if (w->lfd >= 0)
                close(w->lfd);
            free_conn_list(w->live); /* zombies whose handlers never answered */
            free_conn_list(w->pool);
            if (w->loop)
                ev_loop_free(w->loop);
        }
        free(h->workers);
    }
    free(h);
}

/* ---- request accessors ---- */

ev_loop_t *httpd_req_loop(const httpd_req_t *req) { return req->w->loop; }
int httpd_req_worker(const httpd_req_t *req) { return req->w->idx; }
void *httpd_req_worker_data(const httpd_req_t *req) { return req->w->data; }
const char *httpd_req_method(const httpd_req_t *req) { return req->method; }
const char *httpd_req_path(const httpd_req_t *req) { return req->path; }
const char *httpd_req_query(const httpd_req_t *req) { return req->query; }
uint64_t httpd_req_start_ns(const httpd_req_t *req) { return req->start_ns; }
size_t httpd_req_header_count(const httpd_req_t *req) { return req->nheaders; }

const char *httpd_req_header(const httpd_req_t *req, const char *name) {
    for (size_t i = 0; i < req->nheaders; i++)
        if (!strcasecmp(req->headers[i].name, name))
            return req->headers[i].value;
    return NULL;
}

void httpd_req_header_at(const httpd_req_t *req, size_t i, const char **name, const char **value) {
    *name = i < req->nheaders ? req->headers[i].name : NULL;
    *value = i < req->nheaders ? req->headers[i].value : NULL;
}

const char *httpd_req_body(const httpd_req_t *req, size_t *len) {
    if (len)
        *len = req->body_len;
    return req->req.data + req->body_off;
}

void httpd_req_peer(const httpd_req_t *req, char *out, size_t cap) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (req->peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&req->peer;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
    } else if (req->peer.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&req->peer;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
    }
    snprintf(out, cap, "%s:%d", ip, port);
}

void httpd_req_on_close(httpd_req_t *req, httpd_close_fn cb, void *arg) {
    req->on_close = cb;
    req->on_close_arg = arg;
}

void httpd_req_on_drain(httpd_req_t *req, httpd_drain_fn cb, void *arg) {
    req->on_drain = cb;
    req->on_drain_arg = arg;
}

/* ---- answering ---- */

int httpd_add_header(httpd_req_t *req, const char *name, const char *value) {
    if (req->state != ST_HANDLER || req->resp_begun)
        return -EINVAL;
    /* Refuse CR/LF so a handler echoing input cannot split the response. */
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -EINVAL;
    return buf_appendf(&req->hdrs, "%s: %s\r\n", name, value);
}

static int status_has_body(int status) {
    return !(status < 200 || status == 204 || status == 304);
}

static void write_head(conn_t *c, int status, const char *ct) {
    buf_appendf(&c->out, "HTTP/1.1 %d %s\r\n", status, http1_reason(status));
    if (ct)
        buf_appendf(&c->out, "Content-Type: %s\r\n", ct);
    if (!c->keep_alive)
        buf_appends(&c->out, "Connection: close\r\n");
    else if (c->minor == 0)
        buf_appends(&c->out, "Connection: keep-alive\r\n");
    if (c->hdrs.len)
        buf_append(&c->out, c->hdrs.data, c->hdrs.len);
}

int httpd_respond(httpd_req_t *req, int status, const char *content_type, const void *body,
                  size_t len) {
    conn_t *c = req;
    if (c->state != ST_HANDLER || c->resp_begun)
        return -EINVAL;
    c->resp_begun = 1;
    int gone = c->fd < 0 || c->broken;
    if (!gone) {
        if (c->w->draining)
            c->keep_alive = 0;
        write_head(c, status, content_type);
        if (status_has_body(status))
            buf_appendf(&c->out, "Content-Length: %zu\r\n", len);
        buf_appends(&c->out, "\r\n");
        if (!c->is_head && status_has_body(status) && len)
            buf_append(&c->out, body, len);
    }
    response_done(c);
    conn_after_user(c);
    return gone ? -EPIPE : 0;
}

int httpd_error_ex(httpd_req_t *req, int status, const char *type, const char *message,
                   const char *param, const char *code) {
    conn_t *c = req;
    if (c->state != ST_HANDLER || c->resp_begun)
        return -EINVAL;
    /* Built in the connection's own scratch buffer: no allocation once warm. */
    buf_reset(&c->ebuf);
    append_error_json(&c->ebuf, type, message, param, code);
    return httpd_respond(req, status, "application/json", c->ebuf.data, c->ebuf.len);
}

int httpd_error(httpd_req_t *req, int status, const char *type, const char *message) {
    return httpd_error_ex(req, status, type, message, NULL, NULL);
}

int httpd_stream_begin(httpd_req_t *req, int status, const char *content_type) {
    conn_t *c = req;
    if (c->state != ST_HANDLER || c->resp_begun)
        return -EINVAL;
    c->resp_begun = 1;
    c->streaming = 1;
    if (c->fd < 0 || c->broken)
        return -EPIPE;
    if (c->minor == 0) {
        c->stream_raw = 1; /* no chunked encoding in HTTP/1.0: the close ends the body */
        c->keep_alive = 0;
    }
    if (c->w->draining)
        c->keep_alive = 0;
    write_head(c, status, content_type);
    buf_appends(&c->out, c->stream_raw ? "\r\n" : "Transfer-Encoding: chunked\r\n\r\n");
    if (!c->in_io && conn_flush(c) < 0) {
        set_timer(c, T_GONE, 0); /* on_close fires from the loop, not inside this call */
        return -EPIPE;
    }
    return 0;
}

long httpd_stream_write(httpd_req_t *req, const void *data, size_t len) {
    conn_t *c = req;
    if (c->state != ST_HANDLER || !c->streaming)
        return -EINVAL;
    if (c->fd < 0 || c->broken)
        return -EPIPE;
    if (len && !c->is_head) {
        if (!c->stream_raw)
            buf_appendf(&c->out, "%zx\r\n", len);
        buf_append(&c->out, data, len);
        if (!c->stream_raw)
            buf_appends(&c->out, "\r\n");
    }
    if (!c->in_io && conn_flush(c) < 0) {
        set_timer(c, T_GONE, 0);
        return -EPIPE;
    }
    return (long)(c->out.len - c->out_off);
}

int httpd_stream_end(httpd_req_t *req) {
    conn_t *c = req;
    if (c->state != ST_HANDLER || !c->streaming)
        return -EINVAL;
    int gone = c->fd < 0 || c->broken;
    if (!gone && !c->stream_raw && !c->is_head)
        buf_appends(&c->out, "0\r\n\r\n");
    if (gone)
        c->keep_alive = 0;
    response_done(c);
    if (c->tmode == T_GONE)
        set_timer(c, T_NONE, 0);
    conn_after_user(c);
    return gone ? -EPIPE : 0;
}

void httpd_abort(httpd_req_t *req) {
    conn_t *c = req;
    if (c->state != ST_HANDLER)
        return;
    c->on_close = NULL;
    c->on_drain = NULL;
    if (c->fd >= 0) {
        /* Send what the handler already wrote (e.g. a first SSE chunk), then reset. */
        if (!c->broken)
            conn_flush(c);
        conn_close_fd(c, 1);
    }
    c->state = ST_CLOSING;
    if (c->in_io)
        set_timer(c, T_GONE, 0); /* conn_io still runs on this conn: release later */
    else
        conn_release(c);
}
