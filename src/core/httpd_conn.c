/* httpd_conn.c — the HTTP server's connection state machine: read, parse, limits, timers, write. */
#define _GNU_SOURCE
#include "core/httpd_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/json.h"

/* ---- connection lifecycle ---- */

static void timer_cb(ev_loop_t *loop, void *arg);

void httpd_conn_set_timer(conn_t *c, int mode, uint32_t ms) {
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
    if (b->cap > HTTPD_KEEP_BUF_BYTES)
        buf_free(b);
    else
        buf_reset(b);
}

/* Return a connection to the pool. Its fd is already closed. */
void httpd_conn_release(conn_t *c) {
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

void httpd_conn_close_fd(conn_t *c, int reset) {
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
void httpd_conn_gone(conn_t *c) {
    httpd_conn_close_fd(c, 0);
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
    httpd_conn_release(c);
}

/* Send what is queued. 0 when all sent or waiting for EPOLLOUT; -1 on error
 * (the caller decides when to call httpd_conn_gone). */
int httpd_conn_flush(conn_t *c) {
    if (c->fd < 0 || c->broken)
        return -1;
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            if (c->tmode == T_WRITE) /* progress: restart the write clock */
                httpd_conn_set_timer(c, T_WRITE, HTTPD_TIMEOUT(c->w->h, write_timeout_ms));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want(c, (c->paused ? 0 : EV_READ) | EV_WRITE);
            if (c->tmode == T_NONE)
                httpd_conn_set_timer(c, T_WRITE, HTTPD_TIMEOUT(c->w->h, write_timeout_ms));
            return 0;
        }
        c->broken = 1;
        return -1;
    }
    buf_reset(&c->out);
    c->out_off = 0;
    want(c, c->paused ? 0 : EV_READ);
    if (c->tmode == T_WRITE)
        httpd_conn_set_timer(c, T_NONE, 0);
    return 0;
}

/* Close after the queued bytes are sent: half-close, then read and discard
 * what the client still sends for a moment so it can read our answer. */
static void conn_start_linger(conn_t *c) {
    if (c->w->draining) {
        httpd_conn_set_timer(c, T_GONE, 0); /* no lingering while the server stops */
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = ST_LINGER;
    c->paused = 0;
    want(c, EV_READ);
    httpd_conn_set_timer(c, T_LINGER, HTTPD_LINGER_MS);
}

/* ---- server-generated responses ---- */

void httpd_conn_error_json(buf_t *b, const char *type, const char *message, const char *param,
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
    httpd_conn_error_json(&c->out, "invalid_request_error", message, NULL, NULL);
    char num[16];
    snprintf(num, sizeof num, "%010zu", c->out.len - body_at);
    memcpy(c->out.data + len_at, num, 10); /* leading zeros are a valid length */
    const httpd_t *h = c->w->h;
    if (h->cfg.on_refused)
        h->cfg.on_refused(c->w->idx, c->w->data, status, h->cfg.worker_arg);
    httpd_conn_set_timer(c, T_NONE, 0);
}

/* ---- request intake ---- */

static void body_timer_or_head(conn_t *c, int mode) {
    httpd_t *h = c->w->h;
    httpd_conn_set_timer(c, mode, mode == T_HEAD ? HTTPD_TIMEOUT(h, header_timeout_ms)
                                                 : HTTPD_TIMEOUT(h, body_timeout_ms));
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
    httpd_conn_set_timer(c, T_NONE, 0);
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
void httpd_conn_done(conn_t *c) {
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
                    httpd_conn_set_timer(c, T_IDLE, HTTPD_TIMEOUT(h, idle_timeout_ms));
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
            want(c, (c->paused ? 0 : EV_READ) | (httpd_conn_pending(c) ? EV_WRITE : 0));
            return 0;
        }
        if (c->state == ST_CLOSING) {
            if (httpd_conn_flush(c) < 0) {
                httpd_conn_gone(c);
                return -1;
            }
            if (httpd_conn_pending(c))
                return 0; /* finished by the EPOLLOUT path */
            conn_start_linger(c);
            return 0;
        }
        return 0; /* ST_LINGER: nothing to parse */
    }
}

/* Read what is there; 0, or -1 on EOF/error (the caller calls httpd_conn_gone). */
static int conn_read(conn_t *c) {
    if (buf_reserve(&c->in, HTTPD_READ_CHUNK) < 0)
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

void httpd_conn_io(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    conn_t *c = arg;
    (void)loop;
    (void)fd;
    c->in_io = 1;
    if (c->state == ST_LINGER) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            httpd_conn_gone(c);
        else
            c->in_io = 0;
        return;
    }
    if (events & EV_WRITE) {
        if (httpd_conn_flush(c) < 0) {
            httpd_conn_gone(c);
            return;
        }
        if (!httpd_conn_pending(c) && c->on_drain && c->state == ST_HANDLER)
            c->on_drain(c, c->on_drain_arg);
    }
    if ((events & (EV_READ | EV_ERROR)) && c->state != ST_CLOSING) {
        if (conn_read(c) < 0) {
            httpd_conn_gone(c);
            return;
        }
    } else if ((events & EV_ERROR) && !(events & EV_WRITE)) {
        httpd_conn_gone(c);
        return;
    }
    for (;;) {
        if (conn_process(c) < 0)
            return;
        int had = httpd_conn_pending(c);
        if (httpd_conn_flush(c) < 0) {
            httpd_conn_gone(c);
            return;
        }
        /* Drained right here (the socket took it all): a streaming handler
         * waiting for on_drain must hear of it too, or it would wait forever. */
        if (had && !httpd_conn_pending(c) && c->state == ST_HANDLER && c->on_drain) {
            c->on_drain(c, c->on_drain_arg);
            continue;
        }
        break;
    }
    if (c->state == ST_CLOSING && !httpd_conn_pending(c))
        conn_start_linger(c);
    c->in_io = 0;
}

/* After the handler finished a response outside httpd_conn_io: send it and carry on
 * with pipelined requests. The handler no longer owns req. */
void httpd_conn_after_user(conn_t *c) {
    if (c->in_io)
        return; /* httpd_conn_io's epilogue does it */
    if (c->fd < 0) {
        httpd_conn_release(c); /* a zombie whose handler just finished */
        return;
    }
    c->in_io = 1;
    if (httpd_conn_flush(c) < 0) {
        httpd_conn_gone(c);
        return;
    }
    if (conn_process(c) < 0)
        return;
    if (httpd_conn_flush(c) < 0) {
        httpd_conn_gone(c);
        return;
    }
    if (c->state == ST_CLOSING && !httpd_conn_pending(c))
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
        httpd_conn_gone(c);
        return;
    default:
        return;
    }
}

conn_t *httpd_conn_get(httpd_worker_t *w) {
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
