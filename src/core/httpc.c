/* httpc.c — the HTTP/1.1 client: connection pool, request state machine, timeouts, cancel. */
#include "core/httpc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"

#define HTTPC_MAX_HEADERS 64
#define HTTPC_READ_CHUNK  16384 /* bytes of room asked for before each read */

enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_EOF };
enum conn_state { CONN_FREE, CONN_CONNECTING, CONN_ACTIVE, CONN_IDLE };
enum req_state { REQ_FREE, REQ_QUEUED, REQ_CONNECTING, REQ_WAITING, REQ_RECEIVING, REQ_DEFERRED };

typedef struct httpc_conn httpc_conn_t;

/* A connection. Lives on the pool's free list (fd -1), idle list, or attached
 * to exactly one request. The read buffer keeps its allocation across reuse. */
struct httpc_conn {
    httpc_pool_t *pool;
    int fd;
    int state;          /* enum conn_state */
    uint32_t uses;      /* responses completed on this connection */
    httpc_req_t *req;   /* the request using it, or NULL */
    buf_t rbuf;         /* unprocessed response bytes */
    /* response parsing state for the current request */
    int head_done;
    int body_mode;      /* enum body_mode */
    uint64_t body_left; /* BODY_LENGTH: bytes still expected */
    http1_chunked_t chunk;
    int keep_alive;     /* connection may serve another request after this one */
    http1_header_t hdrs[HTTPC_MAX_HEADERS];
    httpc_conn_t *next, *prev; /* idle or free list */
};

/* A request handle; from the pool's free list, its write buffer reused. */
struct httpc_req {
    httpc_pool_t *pool;
    httpc_conn_t *conn;
    int state;              /* enum req_state */
    buf_t wbuf;             /* serialized request: head + body */
    size_t woff;            /* bytes of wbuf written */
    httpc_callbacks_t cb;
    void *arg;
    uint32_t connect_ms, first_byte_ms, total_ms, flags;
    int is_head;            /* HEAD request: responses have no body */
    int in_queue;           /* on the pool's wait queue */
    int got_byte;           /* any response byte seen for the current attempt */
    int in_cb;              /* inside one of this request's user callbacks */
    int pending;            /* a finish was requested while in_cb */
    httpc_result_t pending_result;
    httpc_result_t deferred_result; /* REQ_DEFERRED: what the zero timer reports */
    ev_timer_t t_total;
    ev_timer_t t_phase;     /* connect or first-byte timeout, or the deferred report */
    httpc_done_t done;
    httpc_req_t *next, *prev;      /* queue or free list */
    httpc_req_t *lnext, *lprev;    /* live list (every accepted, unfinished request) */
};

struct httpc_pool {
    ev_loop_t *loop;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host_hdr[300]; /* "Host: value\r\n" content */
    size_t host_hdr_len;
    httpc_pool_opts_t o;
    httpc_conn_t *idle;      /* most recently used first (warm caches, LIFO) */
    httpc_conn_t *free_conns;
    httpc_req_t *free_reqs;
    httpc_req_t *q_head, *q_tail; /* requests waiting for a connection slot */
    httpc_req_t *live;
    uint32_t open, idle_n, outstanding;
    int in_submit;           /* inside httpc_request: failures are reported later */
    int closing;             /* httpc_pool_free running: refuse new requests */
    httpc_pool_stats_t st;
};

static void conn_on_io(ev_loop_t *loop, int fd, uint32_t events, void *arg);
static void dispatch(httpc_pool_t *p, httpc_req_t *r, int force_new);
static void conn_close(httpc_conn_t *c);

const char *httpc_result_name(httpc_result_t r) {
    static const char *const names[] = {"ok",
                                        "connect",
                                        "connect_timeout",
                                        "first_byte_timeout",
                                        "total_timeout",
                                        "reset",
                                        "malformed",
                                        "cancelled"};
    return (unsigned)r < HTTPC_RESULT_COUNT ? names[r] : "unknown";
}

/* ---- lists ---------------------------------------------------------------- */

static void idle_push(httpc_pool_t *p, httpc_conn_t *c) {
    c->prev = NULL;
    c->next = p->idle;
    if (p->idle)
        p->idle->prev = c;
    p->idle = c;
    p->idle_n++;
}

static void idle_remove(httpc_pool_t *p, httpc_conn_t *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        p->idle = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    p->idle_n--;
}

static void queue_push(httpc_pool_t *p, httpc_req_t *r) {
    r->next = NULL;
    r->prev = p->q_tail;
    if (p->q_tail)
        p->q_tail->next = r;
    else
        p->q_head = r;
    p->q_tail = r;
    r->state = REQ_QUEUED;
    r->in_queue = 1;
    p->st.queued++;
}

static void queue_remove(httpc_pool_t *p, httpc_req_t *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        p->q_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        p->q_tail = r->prev;
    r->next = r->prev = NULL;
    r->in_queue = 0;
}

static void live_add(httpc_pool_t *p, httpc_req_t *r) {
    r->lprev = NULL;
    r->lnext = p->live;
    if (p->live)
        p->live->lprev = r;
    p->live = r;
}

static void live_remove(httpc_pool_t *p, httpc_req_t *r) {
    if (r->lprev)
        r->lprev->lnext = r->lnext;
    else
        p->live = r->lnext;
    if (r->lnext)
        r->lnext->lprev = r->lprev;
    r->lnext = r->lprev = NULL;
}

/* ---- finishing ------------------------------------------------------------ */

static void deferred_fire(ev_loop_t *loop, void *arg);

/* End request r with res. Its connection must already be released or closed.
 * Inside one of r's callbacks the finish is postponed until the callback
 * returns; inside httpc_request it is reported from a zero timer, so on_done
 * never runs re-entrantly in the submitter. The first result requested wins. */
static void req_finish(httpc_req_t *r, httpc_result_t res) {
    httpc_pool_t *p = r->pool;
    if (r->state == REQ_FREE)
        return;
    if (r->in_cb) {
        if (!r->pending) {
            r->pending = 1;
            r->pending_result = res;
        }
        return;
    }
    if (p->in_submit && r->state != REQ_DEFERRED) {
        ev_timer_stop(p->loop, &r->t_total);
        r->state = REQ_DEFERRED;
        r->deferred_result = res;
        if (ev_timer_start(p->loop, &r->t_phase, 0, deferred_fire, r) == 0)
            return;
        /* No memory for the timer: report now rather than never. */
    }
    ev_timer_stop(p->loop, &r->t_total);
    ev_timer_stop(p->loop, &r->t_phase);
    if (r->in_queue)
        queue_remove(p, r);
    live_remove(p, r);
    p->outstanding--;
    r->done.result = res;
    httpc_done_t done = r->done;
    httpc_callbacks_t cb = r->cb;
    void *arg = r->arg;
    r->state = REQ_FREE;
    r->conn = NULL;
    r->arg = NULL;
    r->next = p->free_reqs;
    p->free_reqs = r;
    if (cb.on_done)
        cb.on_done(arg, &done);
}

static void deferred_fire(ev_loop_t *loop, void *arg) {
    httpc_req_t *r = arg;
    req_finish(r, r->deferred_result);
}

/* The request on c failed with res: close the connection and finish it. A
 * failure before any response byte on a reused connection is a stale keep-alive
 * (the server closed it as we sent): resent once if the caller allowed it. */
static void conn_fail(httpc_conn_t *c, httpc_result_t res, int err) {
    httpc_req_t *r = c->req;
    int stale = r && !r->got_byte && c->uses > 0 && res == HTTPC_ERR_RESET;
    conn_close(c);
    if (!r)
        return;
    r->done.sys_errno = err;
    if (stale) {
        if ((r->flags & HTTPC_F_RETRY_STALE) && !r->done.retried) {
            r->done.retried = 1;
            r->pool->st.retries++;
            dispatch(r->pool, r, 1);
            return;
        }
        r->done.stale_reuse = 1;
    }
    req_finish(r, res);
}

/* ---- connections ------------------------------------------------------------ */

/* Close c's socket and return it to the free list; then give a freed slot to
 * the next queued request. Does not finish c's request (the caller does). */
static void conn_close(httpc_conn_t *c) {
    httpc_pool_t *p = c->pool;
    if (c->state == CONN_FREE)
        return;
    if (c->state == CONN_IDLE)
        idle_remove(p, c);
    if (c->req) {
        ev_timer_stop(p->loop, &c->req->t_phase);
        c->req->conn = NULL;
        c->req = NULL;
    }
    ev_io_del(p->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    c->state = CONN_FREE;
    buf_reset(&c->rbuf);
    p->open--;
    c->next = p->free_conns;
    p->free_conns = c;
    if (p->q_head) {
        httpc_req_t *q = p->q_head;
        queue_remove(p, q);
        dispatch(p, q, 0);
    }
}

static void phase_timeout(ev_loop_t *loop, void *arg) {
    httpc_req_t *r = arg;
    httpc_result_t res =
        r->state == REQ_CONNECTING ? HTTPC_ERR_CONNECT_TIMEOUT : HTTPC_ERR_FIRST_BYTE_TIMEOUT;
    if (r->conn)
        conn_close(r->conn);
    req_finish(r, res);
}

static void total_timeout(ev_loop_t *loop, void *arg) {
    httpc_req_t *r = arg;
    if (r->conn)
        conn_close(r->conn);
    req_finish(r, HTTPC_ERR_TOTAL_TIMEOUT);
}

/* Write what is left of the request. 0 while in progress or done, or the
 * negative errno of a failed write. */
static int conn_flush(httpc_conn_t *c) {
    httpc_req_t *r = c->req;
    while (r->woff < r->wbuf.len) {
        ssize_t n = send(c->fd, r->wbuf.data + r->woff, r->wbuf.len - r->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return ev_io_mod(c->pool->loop, c->fd, EV_READ | EV_WRITE);
            return -errno;
        }
        r->woff += (size_t)n;
    }
    return ev_io_mod(c->pool->loop, c->fd, EV_READ);
}

/* c is connected and attached to r: reset the parser and send. */
static void conn_start(httpc_conn_t *c) {
    httpc_req_t *r = c->req;
    httpc_pool_t *p = c->pool;
    c->state = CONN_ACTIVE;
    c->head_done = 0;
    c->keep_alive = 0;
    buf_reset(&c->rbuf);
    r->state = REQ_WAITING;
    r->woff = 0;
    r->got_byte = 0;
    ev_timer_stop(p->loop, &r->t_phase);
    if (r->first_byte_ms)
        ev_timer_start(p->loop, &r->t_phase, r->first_byte_ms, phase_timeout, r);
    int rc = conn_flush(c);
    if (rc < 0)
        conn_fail(c, rc == -ENOMEM ? HTTPC_ERR_CONNECT : HTTPC_ERR_RESET, -rc);
}

/* Open a new connection for r. */
static void conn_open(httpc_pool_t *p, httpc_req_t *r) {
    httpc_conn_t *c = p->free_conns;
    if (c) {
        p->free_conns = c->next;
    } else {
        c = calloc(1, sizeof *c);
        if (!c) {
            r->done.sys_errno = ENOMEM;
            req_finish(r, HTTPC_ERR_CONNECT);
            return;
        }
        c->pool = p;
        buf_init(&c->rbuf);
    }
    c->next = c->prev = NULL;
    c->uses = 0;
    c->fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = c->fd < 0 ? errno : 0;
    if (!err) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&p->addr, p->addrlen) < 0 && errno != EINPROGRESS)
            err = errno;
    }
    if (!err) {
        int rc = ev_io_add(p->loop, c->fd, EV_WRITE, conn_on_io, c);
        if (rc < 0)
            err = -rc;
    }
    if (err) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        c->next = p->free_conns;
        p->free_conns = c;
        r->done.sys_errno = err;
        req_finish(r, HTTPC_ERR_CONNECT);
        return;
    }
    p->open++;
    if (p->open > p->st.peak_conns)
        p->st.peak_conns = p->open;
    p->st.connects++;
    c->state = CONN_CONNECTING;
    c->req = r;
    r->conn = c;
    r->state = REQ_CONNECTING;
    r->done.reused = 0;
    if (r->connect_ms)
        ev_timer_start(p->loop, &r->t_phase, r->connect_ms, phase_timeout, r);
}

/* Give r a connection: an idle one (unless force_new), a new one, or a place in
 * the queue when max_conns are open. */
static void dispatch(httpc_pool_t *p, httpc_req_t *r, int force_new) {
    if (!force_new && p->idle) {
        httpc_conn_t *c = p->idle;
        idle_remove(p, c);
        c->req = r;
        r->conn = c;
        r->done.reused = 1;
        p->st.reuses++;
        conn_start(c);
        return;
    }
    if (p->o.max_conns && p->open >= p->o.max_conns) {
        /* A stale retry must not wait behind an idle connection: drop one. */
        if (p->idle) {
            conn_close(p->idle);
            if (p->open >= p->o.max_conns) {
                queue_push(p, r);
                return;
            }
        } else {
            queue_push(p, r);
            return;
        }
    }
    conn_open(p, r);
}

/* The response on c is complete: return c to the pool (or close it) and
 * report success. */
static void conn_response_done(httpc_conn_t *c) {
    httpc_pool_t *p = c->pool;
    httpc_req_t *r = c->req;
    c->uses++;
    c->req = NULL;
    r->conn = NULL;
    ev_timer_stop(p->loop, &r->t_phase);
    if (!c->keep_alive || c->rbuf.len || r->woff < r->wbuf.len) {
        /* rbuf.len: bytes after the response we did not ask for; woff: the server
         * answered before reading all of our request. Either way unsafe to reuse. */
        c->req = NULL;
        conn_close(c);
    } else if (p->q_head) {
        httpc_req_t *q = p->q_head;
        queue_remove(p, q);
        c->req = q;
        q->conn = c;
        q->done.reused = 1;
        p->st.reuses++;
        conn_start(c);
    } else if (p->idle_n < p->o.max_idle) {
        c->state = CONN_IDLE;
        idle_push(p, c);
        ev_io_mod(p->loop, c->fd, EV_READ); /* notice the server closing it */
    } else {
        conn_close(c);
    }
    req_finish(r, HTTPC_OK);
}

/* Run a user callback with r's re-entrancy guard. Returns 1 if r was cancelled
 * or finished from inside (its connection is then closed and r is done). */
static int after_cb(httpc_req_t *r) {
    r->in_cb--;
    if (!r->pending)
        return 0;
    r->pending = 0;
    if (r->conn)
        conn_close(r->conn);
    req_finish(r, r->pending_result);
    return 1;
}

static int deliver_body(httpc_req_t *r, const char *data, size_t len) {
    if (!len)
        return 0;
    r->done.body_bytes += len;
    if (!r->cb.on_body)
        return 0;
    r->in_cb++;
    r->cb.on_body(r->arg, data, len);
    return after_cb(r);
}

/* Process c->rbuf. Returns 1 when the request finished (c may be reused or
 * closed by then), 0 when more bytes are needed. */
static int conn_process(httpc_conn_t *c) {
    httpc_req_t *r = c->req;
    httpc_pool_t *p = c->pool;
    while (!c->head_done) {
        http1_response_t res;
        res.headers = c->hdrs;
        res.num_headers = HTTPC_MAX_HEADERS;
        int n = http1_parse_response(c->rbuf.data, c->rbuf.len, &res);
        if (n == HTTP1_INCOMPLETE) {
            if (c->rbuf.len > p->o.max_head) {
                conn_fail(c, HTTPC_ERR_MALFORMED, 0);
                return 1;
            }
            return 0;
        }
        if (n < 0) {
            conn_fail(c, HTTPC_ERR_MALFORMED, 0);
            return 1;
        }
        if (res.status >= 100 && res.status < 200) {
            buf_consume(&c->rbuf, (size_t)n); /* 100 Continue and friends: skip */
            continue;
        }
        c->head_done = 1;
        c->keep_alive = res.framing.keep_alive;
        r->state = REQ_RECEIVING;
        r->done.status = res.status;
        if (r->is_head || res.status == 204 || res.status == 304) {
            c->body_mode = BODY_NONE;
        } else if (res.framing.chunked) {
            c->body_mode = BODY_CHUNKED;
            memset(&c->chunk, 0, sizeof c->chunk);
        } else if (res.framing.content_length >= 0) {
            c->body_mode = res.framing.content_length ? BODY_LENGTH : BODY_NONE;
            c->body_left = (uint64_t)res.framing.content_length;
        } else {
            c->body_mode = BODY_EOF;
            c->keep_alive = 0;
        }
        if (r->cb.on_head) {
            r->in_cb++;
            r->cb.on_head(r->arg, &res);
            if (after_cb(r))
                return 1;
        }
        buf_consume(&c->rbuf, (size_t)n);
    }
    switch (c->body_mode) {
    case BODY_NONE:
        conn_response_done(c);
        return 1;
    case BODY_LENGTH: {
        size_t take = c->rbuf.len < c->body_left ? c->rbuf.len : (size_t)c->body_left;
        c->body_left -= take;
        if (deliver_body(r, c->rbuf.data, take))
            return 1;
        buf_consume(&c->rbuf, take);
        if (c->body_left)
            return 0;
        conn_response_done(c);
        return 1;
    }
    case BODY_CHUNKED: {
        size_t len = c->rbuf.len;
        ssize_t rc = http1_decode_chunked(&c->chunk, c->rbuf.data, &len);
        if (rc == HTTP1_ERR) {
            conn_fail(c, HTTPC_ERR_MALFORMED, 0);
            return 1;
        }
        if (deliver_body(r, c->rbuf.data, len))
            return 1;
        if (rc == HTTP1_INCOMPLETE) {
            buf_reset(&c->rbuf);
            return 0;
        }
        /* Keep only what followed the body (should be nothing). */
        memmove(c->rbuf.data, c->rbuf.data + len, (size_t)rc);
        c->rbuf.len = (size_t)rc;
        conn_response_done(c);
        return 1;
    }
    default: /* BODY_EOF: everything until the server closes */
        if (deliver_body(r, c->rbuf.data, c->rbuf.len))
            return 1;
        buf_reset(&c->rbuf);
        return 0;
    }
}

/* The server closed the connection (read returned 0). */
static void conn_eof(httpc_conn_t *c) {
    httpc_req_t *r = c->req;
    if (r && c->head_done && c->body_mode == BODY_EOF) {
        c->keep_alive = 0;
        conn_response_done(c);
        return;
    }
    conn_fail(c, HTTPC_ERR_RESET, 0);
}

static void conn_read(httpc_conn_t *c) {
    for (;;) {
        if (buf_reserve(&c->rbuf, HTTPC_READ_CHUNK) < 0) {
            conn_fail(c, HTTPC_ERR_MALFORMED, ENOMEM);
            return;
        }
        size_t room = c->rbuf.cap - c->rbuf.len;
        ssize_t n = recv(c->fd, c->rbuf.data + c->rbuf.len, room, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_fail(c, HTTPC_ERR_RESET, errno);
            return;
        }
        if (n == 0) {
            conn_eof(c);
            return;
        }
        c->rbuf.len += (size_t)n;
        c->rbuf.data[c->rbuf.len] = '\0';
        httpc_req_t *r = c->req;
        if (!r->got_byte) {
            r->got_byte = 1;
            ev_timer_stop(c->pool->loop, &r->t_phase);
        }
        if (conn_process(c))
            return; /* c may now belong to another request or be closed */
        if ((size_t)n < room)
            return; /* drained; level-triggered epoll tells us about more */
    }
}

static void conn_on_io(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    httpc_conn_t *c = arg;
    if (c->state == CONN_IDLE) {
        /* An idle connection has nothing to say: EOF, reset or junk all mean
         * it cannot be reused. */
        conn_close(c);
        return;
    }
    if (c->state == CONN_CONNECTING) {
        if (!(events & (EV_WRITE | EV_ERROR)))
            return;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            httpc_req_t *r = c->req;
            conn_close(c);
            r->done.sys_errno = err;
            req_finish(r, HTTPC_ERR_CONNECT);
            return;
        }
        conn_start(c);
        return;
    }
    if ((events & EV_WRITE) && c->req && c->req->woff < c->req->wbuf.len) {
        int rc = conn_flush(c);
        if (rc < 0) {
            conn_fail(c, HTTPC_ERR_RESET, -rc);
            return;
        }
    }
    if (events & (EV_READ | EV_ERROR))
        conn_read(c);
}

/* ---- requests --------------------------------------------------------------- */

static int append_u64(buf_t *b, uint64_t v) {
    char tmp[24];
    int i = (int)sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

static int build_request(httpc_pool_t *p, httpc_req_t *r, const httpc_request_t *q) {
    buf_t *b = &r->wbuf;
    buf_reset(b);
    int rc = 0;
    rc |= buf_appends(b, q->method);
    rc |= buf_append(b, " ", 1);
    rc |= buf_appends(b, q->path);
    rc |= buf_append(b, " HTTP/1.1\r\nHost: ", 17);
    rc |= buf_append(b, p->host_hdr, p->host_hdr_len);
    rc |= buf_append(b, "\r\n", 2);
    for (size_t i = 0; i < q->num_headers; i++) {
        rc |= buf_append(b, q->headers[i].name, q->headers[i].name_len);
        rc |= buf_append(b, ": ", 2);
        rc |= buf_append(b, q->headers[i].value, q->headers[i].value_len);
        rc |= buf_append(b, "\r\n", 2);
    }
    if (q->raw_headers_len)
        rc |= buf_append(b, q->raw_headers, q->raw_headers_len);
    int wants_len = q->body_len || !strcmp(q->method, "POST") || !strcmp(q->method, "PUT") ||
                    !strcmp(q->method, "PATCH");
    if (wants_len) {
        rc |= buf_append(b, "Content-Length: ", 16);
        rc |= append_u64(b, q->body_len);
        rc |= buf_append(b, "\r\n", 2);
    }
    rc |= buf_append(b, "\r\n", 2);
    if (q->body_len)
        rc |= buf_append(b, q->body, q->body_len);
    return rc ? -ENOMEM : 0;
}

int httpc_request(httpc_pool_t *p, const httpc_request_t *q, const httpc_callbacks_t *cb, void *arg,
                  httpc_req_t **out) {
    if (out)
        *out = NULL;
    if (!p || !q || !q->method || !q->path || !cb || (q->body_len && !q->body))
        return -EINVAL;
    if (p->closing)
        return -ESHUTDOWN;
    httpc_req_t *r = p->free_reqs;
    if (r) {
        p->free_reqs = r->next;
    } else {
        r = calloc(1, sizeof *r);
        if (!r)
            return -ENOMEM;
        r->pool = p;
        buf_init(&r->wbuf);
        ev_timer_init(&r->t_total);
        ev_timer_init(&r->t_phase);
    }
    if (build_request(p, r, q) < 0) {
        r->next = p->free_reqs;
        p->free_reqs = r;
        return -ENOMEM;
    }
    r->next = r->prev = NULL;
    r->conn = NULL;
    r->cb = *cb;
    r->arg = arg;
    r->connect_ms = q->connect_timeout_ms ? q->connect_timeout_ms : p->o.connect_timeout_ms;
    r->first_byte_ms = q->first_byte_timeout_ms ? q->first_byte_timeout_ms : p->o.first_byte_timeout_ms;
    r->total_ms = q->total_timeout_ms ? q->total_timeout_ms : p->o.total_timeout_ms;
    r->flags = q->flags;
    r->is_head = !strcmp(q->method, "HEAD");
    r->got_byte = 0;
    r->in_cb = 0;
    r->pending = 0;
    memset(&r->done, 0, sizeof r->done);
    r->in_queue = 0;
    r->state = REQ_CONNECTING; /* any non-FREE state; dispatch sets the real one */
    live_add(p, r);
    p->outstanding++;
    if (r->total_ms)
        ev_timer_start(p->loop, &r->t_total, r->total_ms, total_timeout, r);
    if (out)
        *out = r;
    p->in_submit++;
    dispatch(p, r, 0);
    p->in_submit--;
    return 0;
}

void httpc_cancel(httpc_req_t *r) {
    if (!r || r->state == REQ_FREE)
        return;
    if (r->in_cb) {
        if (!r->pending) {
            r->pending = 1;
            r->pending_result = HTTPC_ERR_CANCELLED;
        }
        return;
    }
    if (r->conn)
        conn_close(r->conn);
    if (r->state == REQ_DEFERRED)
        r->state = REQ_WAITING; /* report CANCELLED now instead of the deferred result */
    httpc_pool_t *p = r->pool;
    int saved = p->in_submit;
    p->in_submit = 0; /* cancel reports synchronously, even from inside httpc_request's caller */
    req_finish(r, HTTPC_ERR_CANCELLED);
    p->in_submit = saved;
}

/* ---- pool ------------------------------------------------------------------- */

int httpc_pool_new(ev_loop_t *loop, const char *host, uint16_t port, const httpc_pool_opts_t *opts,
                   httpc_pool_t **out) {
    *out = NULL;
    if (!loop || !host || !*host)
        return -EINVAL;
    httpc_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->loop = loop;
    if (opts)
        p->o = *opts;
    if (!p->o.max_idle)
        p->o.max_idle = 64;
    if (!p->o.connect_timeout_ms)
        p->o.connect_timeout_ms = 5000;
    if (!p->o.max_head)
        p->o.max_head = 65536;

    /* Strip brackets from "[::1]". */
    char name[256];
    size_t hl = strlen(host);
    if (hl >= sizeof name)
        goto err_inval;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memcpy(name, host + 1, hl - 2);
        name[hl - 2] = '\0';
    } else {
        memcpy(name, host, hl + 1);
    }
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(name, portstr, &hints, &ai) != 0 || !ai) {
        free(p);
        return -ENOENT;
    }
    memcpy(&p->addr, ai->ai_addr, ai->ai_addrlen);
    p->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    /* Host: an IPv6 literal goes in brackets; a name as given, whatever it resolved to. */
    int n = snprintf(p->host_hdr, sizeof p->host_hdr, strchr(name, ':') ? "[%s]:%u" : "%s:%u", name,
                     (unsigned)port);
    p->host_hdr_len = (size_t)n;
    *out = p;
    return 0;
err_inval:
    free(p);
    return -EINVAL;
}

void httpc_pool_free(httpc_pool_t *p) {
    if (!p)
        return;
    p->closing = 1;
    while (p->live) {
        httpc_req_t *r = p->live;
        r->in_cb = 0;
        httpc_cancel(r);
    }
    while (p->idle)
        conn_close(p->idle);
    while (p->free_conns) {
        httpc_conn_t *c = p->free_conns;
        p->free_conns = c->next;
        buf_free(&c->rbuf);
        free(c);
    }
    while (p->free_reqs) {
        httpc_req_t *r = p->free_reqs;
        p->free_reqs = r->next;
        buf_free(&r->wbuf);
        free(r);
    }
    free(p);
}

uint32_t httpc_pool_outstanding(const httpc_pool_t *p) {
    return p->outstanding;
}

void httpc_pool_stats(const httpc_pool_t *p, httpc_pool_stats_t *out) {
    *out = p->st;
    out->open_conns = p->open;
    out->idle_conns = p->idle_n;
}
