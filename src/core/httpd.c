/* httpd.c — HTTP/1.1 server: workers, listeners, accept, stop/drain, and the request/answer API. */
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

#include "core/httpd_conn.h"

/* ---- accepting ---- */

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
            if (w->h->cfg.on_refused)
                w->h->cfg.on_refused(w->idx, w->data, 503, w->h->cfg.worker_arg);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = httpd_conn_get(w);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->peer = ss;
        if (ev_io_add(loop, fd, EV_READ, httpd_conn_io, c) < 0) {
            close(fd);
            c->fd = -1;
            httpd_conn_release(c);
            continue;
        }
        c->ev_mask = EV_READ;
        /* A silent new connection is held to the head timeout, not the idle one. */
        httpd_conn_set_timer(c, T_HEAD, HTTPD_TIMEOUT(w->h, header_timeout_ms));
    }
}

/* ---- stopping ---- */

/* Close every connection that still has a socket or an on_close to run. The
 * scan restarts after each one: an on_close may finish other requests, which
 * can release (and re-pool) any connection of the list. Zombies stay. */
static void gone_all(httpd_worker_t *w) {
    for (;;) {
        conn_t *c = w->live;
        while (c && !(c->fd >= 0 || c->on_close))
            c = c->next;
        if (!c)
            return;
        httpd_conn_gone(c);
    }
}

static void close_all(httpd_worker_t *w) {
    gone_all(w);
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
        if (c->fd >= 0 && c->state == ST_HEAD && c->in.len == 0 && !httpd_conn_pending(c))
            httpd_conn_gone(c);
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
    gone_all(w);
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

void httpd_set_timeouts(httpd_t *h, uint32_t header_ms, uint32_t body_ms, uint32_t idle_ms,
                        uint32_t write_ms) {
    if (header_ms)
        __atomic_store_n(&h->cfg.header_timeout_ms, header_ms, __ATOMIC_RELAXED);
    if (body_ms)
        __atomic_store_n(&h->cfg.body_timeout_ms, body_ms, __ATOMIC_RELAXED);
    if (idle_ms)
        __atomic_store_n(&h->cfg.idle_timeout_ms, idle_ms, __ATOMIC_RELAXED);
    if (write_ms)
        __atomic_store_n(&h->cfg.write_timeout_ms, write_ms, __ATOMIC_RELAXED);
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
    httpd_conn_done(c);
    httpd_conn_after_user(c);
    return gone ? -EPIPE : 0;
}

int httpd_error_ex(httpd_req_t *req, int status, const char *type, const char *message,
                   const char *param, const char *code) {
    conn_t *c = req;
    if (c->state != ST_HANDLER || c->resp_begun)
        return -EINVAL;
    /* Built in the connection's own scratch buffer: no allocation once warm. */
    buf_reset(&c->ebuf);
    httpd_conn_error_json(&c->ebuf, type, message, param, code);
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
    if (!c->in_io && httpd_conn_flush(c) < 0) {
        httpd_conn_set_timer(c, T_GONE, 0); /* on_close fires from the loop, not inside this call */
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
    if (!c->in_io && httpd_conn_flush(c) < 0) {
        httpd_conn_set_timer(c, T_GONE, 0);
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
    httpd_conn_done(c);
    if (c->tmode == T_GONE)
        httpd_conn_set_timer(c, T_NONE, 0);
    httpd_conn_after_user(c);
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
            httpd_conn_flush(c);
        httpd_conn_close_fd(c, 1);
    }
    c->state = ST_CLOSING;
    if (c->in_io)
        httpd_conn_set_timer(c, T_GONE, 0); /* httpd_conn_io still runs on this conn: release later */
    else
        httpd_conn_release(c);
}
