/* test_httpc.c — the HTTP client against a scripted raw-socket server running in threads. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/buf.h"
#include "core/ev.h"
#include "core/httpc.h"

/* ---- the scripted server: one thread per connection, behaviour chosen by path ---- */

typedef struct srv {
    int lfd;
    uint16_t port;
    pthread_t th;
    atomic_int accepts;
    atomic_int closed;       /* connections that saw the client close */
    atomic_int stream_go;    /* set by the client when the first streamed piece arrived */
} srv_t;

typedef struct conn_arg {
    srv_t *s;
    int fd;
} conn_arg_t;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void send_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}
#define SEND(fd, lit) send_all(fd, lit, sizeof(lit) - 1)

/* Read one request head (and its Content-Length body) into path. 0 or -1 on close. */
static int read_request(int fd, char *acc, size_t *have, size_t cap, char *path, size_t pathcap,
                        char *host) {
    for (;;) {
        acc[*have] = '\0';
        char *end = strstr(acc, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end - acc) + 4;
            size_t clen = 0;
            char *cl = strcasestr(acc, "content-length:");
            if (cl && cl < end)
                clen = strtoul(cl + 15, NULL, 10);
            while (*have < head + clen) {
                ssize_t n = recv(fd, acc + *have, cap - *have - 1, 0);
                if (n <= 0)
                    return -1;
                *have += (size_t)n;
            }
            if (sscanf(acc, "%*s %255s", path) != 1)
                return -1;
            char *h = strcasestr(acc, "\r\nhost: ");
            host[0] = '\0';
            if (h && h < end)
                sscanf(h + 8, "%127[^\r]", host);
            (void)pathcap;
            memmove(acc, acc + head + clen, *have - head - clen);
            *have -= head + clen;
            return 0;
        }
        if (*have + 1 >= cap)
            return -1;
        ssize_t n = recv(fd, acc + *have, cap - *have - 1, 0);
        if (n <= 0)
            return -1;
        *have += (size_t)n;
    }
}

static void wait_close(srv_t *s, int fd) {
    char tmp[256];
    while (recv(fd, tmp, sizeof tmp, 0) > 0) {
    }
    atomic_fetch_add(&s->closed, 1);
}

static void *conn_main(void *p) {
    conn_arg_t *a = p;
    srv_t *s = a->s;
    int fd = a->fd;
    free(a);
    char acc[8192], path[256], host[128];
    size_t have = 0;
    int kill_next = 0;
    while (read_request(fd, acc, &have, sizeof acc, path, sizeof path, host) == 0) {
        if (kill_next)
            break; /* the keep-alive race: close as the next request arrives */
        if (!strcmp(path, "/cl")) {
            SEND(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        } else if (!strcmp(path, "/host")) {
            char resp[256];
            int n = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                             strlen(host), host);
            send_all(fd, resp, (size_t)n);
        } else if (!strcmp(path, "/chunked")) {
            SEND(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nhel\r\n8\r\nlo world\r\n0\r\n\r\n");
        } else if (!strcmp(path, "/continue")) {
            SEND(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
        } else if (!strcmp(path, "/eof")) {
            SEND(fd, "HTTP/1.1 200 OK\r\n\r\nuntil close");
            break;
        } else if (!strcmp(path, "/close-after")) {
            SEND(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            break; /* server closes the idle connection */
        } else if (!strcmp(path, "/kill-next")) {
            SEND(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            kill_next = 1;
        } else if (!strcmp(path, "/malformed")) {
            SEND(fd, "HTTP/1.1 abc\r\n\r\n");
        } else if (!strcmp(path, "/badchunk")) {
            SEND(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n");
        } else if (!strcmp(path, "/stream")) {
            SEND(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
            /* Hold the rest until the client has seen the first piece (2 s cap, so
             * a client that buffers everything fails the test instead of hanging). */
            for (int i = 0; i < 2000 && !atomic_load(&s->stream_go); i++)
                sleep_ms(1);
            SEND(fd, "6\r\nsecond\r\n0\r\n\r\n");
        } else if (!strcmp(path, "/stall")) {
            SEND(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
            wait_close(s, fd);
            close(fd);
            return NULL;
        } else if (!strcmp(path, "/hang")) {
            wait_close(s, fd);
            close(fd);
            return NULL;
        } else {
            SEND(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    }
    close(fd);
    return NULL;
}

static void *accept_main(void *p) {
    srv_t *s = p;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            return NULL; /* listener shut down */
        }
        atomic_fetch_add(&s->accepts, 1);
        conn_arg_t *a = malloc(sizeof *a);
        a->s = s;
        a->fd = fd;
        pthread_t t;
        pthread_create(&t, NULL, conn_main, a);
        pthread_detach(t);
    }
}

static int listen_any(int backlog, uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, backlog) < 0)
        return -1;
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static void srv_start(srv_t *s) {
    memset(s, 0, sizeof *s);
    s->lfd = listen_any(64, &s->port);
    pthread_create(&s->th, NULL, accept_main, s);
}

static void srv_stop(srv_t *s) {
    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* ---- client side ---- */

typedef struct result {
    int done;
    httpc_done_t d;
    int status_at_head;
    buf_t body;
    int pieces;
    int cancel_in_body;      /* call httpc_cancel from the first on_body */
    int cancel_in_head;      /* call httpc_cancel from on_head */
    int signal_stream;       /* set srv->stream_go on the first piece */
    httpc_req_t *handle;
    srv_t *srv;
    ev_loop_t *loop;
    int *stop_after;         /* decremented on done; loop stops at 0 */
    int chain;               /* on_done submits another GET /cl this many times */
    int chain_reused;        /* chained requests that ran on a reused connection */
    httpc_pool_t *pool;
} result_t;

static void on_done(void *arg, const httpc_done_t *d);

static void on_head(void *arg, const http1_response_t *res) {
    result_t *r = arg;
    r->status_at_head = res->status;
    if (r->cancel_in_head)
        httpc_cancel(r->handle);
}

static void on_body(void *arg, const char *data, size_t len) {
    result_t *r = arg;
    buf_append(&r->body, data, len);
    r->pieces++;
    if (r->pieces == 1 && r->signal_stream) {
        /* The done callback must not have happened yet: the server holds the rest. */
        CHECK(!r->done);
        atomic_store(&r->srv->stream_go, 1);
    }
    if (r->cancel_in_body)
        httpc_cancel(r->handle);
}

static const httpc_callbacks_t CBS;

static void on_done(void *arg, const httpc_done_t *d) {
    result_t *r = arg;
    r->done++;
    r->d = *d;
    if (r->done > 1 && d->reused)
        r->chain_reused++;
    if (r->chain > 0 && d->result == HTTPC_OK) {
        /* Submitting from on_done: the connection is already back in the pool. */
        r->chain--;
        httpc_request_t q = {.method = "GET", .path = "/cl"};
        CHECK_EQ_INT(httpc_request(r->pool, &q, &CBS, r, &r->handle), 0);
        return;
    }
    if (r->stop_after && --*r->stop_after == 0)
        ev_stop(r->loop);
}

static const httpc_callbacks_t CBS = {on_head, on_body, on_done};

static void guard_fire(ev_loop_t *loop, void *arg) {
    *(int *)arg = 1;
    ev_stop(loop);
}

/* Run the loop until `n` requests are done (or a 5 s guard against hangs). */
static void run_until(ev_loop_t *loop, int *remaining) {
    ev_timer_t guard;
    int fired = 0;
    ev_timer_init(&guard);
    ev_timer_start(loop, &guard, 5000, guard_fire, &fired);
    if (*remaining > 0)
        ev_run(loop);
    ev_timer_stop(loop, &guard);
    CHECK_MSG(!fired, "guard timer fired: request never finished");
}

static int do_request(ev_loop_t *loop, httpc_pool_t *pool, const char *method, const char *path,
                      uint32_t flags, result_t *r) {
    int remaining = 1;
    r->loop = loop;
    r->stop_after = &remaining;
    httpc_request_t q = {.method = method, .path = path, .flags = flags};
    if (!strcmp(method, "POST")) {
        q.body = "{\"a\":1}";
        q.body_len = 7;
    }
    int rc = httpc_request(pool, &q, &CBS, r, &r->handle);
    if (rc < 0)
        return rc;
    run_until(loop, &remaining);
    return 0;
}

static void res_init(result_t *r, srv_t *s) {
    memset(r, 0, sizeof *r);
    buf_init(&r->body);
    r->srv = s;
}

static void test_basic(ev_loop_t *loop, srv_t *s) {
    httpc_pool_t *pool;
    CHECK_EQ_INT(httpc_pool_new(loop, "127.0.0.1", s->port, NULL, &pool), 0);
    result_t r;

    res_init(&r, s);
    CHECK_EQ_INT(do_request(loop, pool, "GET", "/cl", 0, &r), 0);
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    CHECK_EQ_INT(r.d.status, 200);
    CHECK_EQ_INT(r.status_at_head, 200);
    CHECK_EQ_STR(r.body.data, "hello");
    CHECK_EQ_INT(r.d.reused, 0);
    buf_free(&r.body);

    /* Chunked, on the same connection (keep-alive reuse). */
    res_init(&r, s);
    CHECK_EQ_INT(do_request(loop, pool, "POST", "/chunked", 0, &r), 0);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    CHECK_EQ_STR(r.body.data, "hello world");
    CHECK_EQ_INT(r.d.body_bytes, 11);
    CHECK_EQ_INT(r.d.reused, 1);
    CHECK_EQ_INT(atomic_load(&s->accepts), 1); /* both served by one connection */
    buf_free(&r.body);

    /* 100 Continue is skipped; the final head is reported. */
    res_init(&r, s);
    CHECK_EQ_INT(do_request(loop, pool, "POST", "/continue", 0, &r), 0);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    CHECK_EQ_INT(r.d.status, 201);
    CHECK_EQ_STR(r.body.data, "ok");
    buf_free(&r.body);

    /* HEAD: no body even though... the server answers 404 with length 0. */
    res_init(&r, s);
    CHECK_EQ_INT(do_request(loop, pool, "HEAD", "/nothing", 0, &r), 0);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    CHECK_EQ_INT(r.d.status, 404);
    buf_free(&r.body);

    /* Read-until-close body. */
    res_init(&r, s);
    CHECK_EQ_INT(do_request(loop, pool, "GET", "/eof", 0, &r), 0);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    CHECK_EQ_STR(r.body.data, "until close");
    buf_free(&r.body);
    httpc_pool_stats_t st;
    httpc_pool_stats(pool, &st);
    CHECK_EQ_INT(st.open_conns, 0); /* the /eof connection cannot be reused */
    CHECK_EQ_INT(httpc_pool_outstanding(pool), 0);
    httpc_pool_free(pool);
}

/* The server closes an idle connection: the client notices, and the next
 * request transparently runs on a fresh one. */
static void test_idle_close(ev_loop_t *loop, srv_t *s) {
    httpc_pool_t *pool;
    CHECK_EQ_INT(httpc_pool_new(loop, "127.0.0.1", s->port, NULL, &pool), 0);
    int before = atomic_load(&s->accepts);
    result_t r;
    res_init(&r, s);
    do_request(loop, pool, "GET", "/close-after", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    buf_free(&r.body);
    /* Let the loop see the EOF on the idle connection (bounded wait, not a timing check). */
    httpc_pool_stats_t st;
    for (int i = 0; i < 200; i++) {
        httpc_pool_stats(pool, &st);
        if (st.idle_conns == 0)
            break;
        ev_timer_t t;
        int fired = 0;
        ev_timer_init(&t);
        ev_timer_start(loop, &t, 10, guard_fire, &fired);
        ev_run(loop);
    }
    CHECK_EQ_INT(st.idle_conns, 0);
    res_init(&r, s);
    do_request(loop, pool, "GET", "/cl", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    CHECK_EQ_INT(r.d.reused, 0);
    CHECK_EQ_INT(atomic_load(&s->accepts) - before, 2);
    buf_free(&r.body);
    httpc_pool_free(pool);
}

/* The keep-alive race: the server closes as our request arrives, before any
 * response byte. With HTTPC_F_RETRY_STALE the request is resent on a fresh
 * connection; without, the caller is told it was a stale reuse. */
static void test_stale_retry(ev_loop_t *loop, srv_t *s) {
    httpc_pool_t *pool;
    CHECK_EQ_INT(httpc_pool_new(loop, "127.0.0.1", s->port, NULL, &pool), 0);
    result_t r;
    res_init(&r, s);
    do_request(loop, pool, "GET", "/kill-next", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    buf_free(&r.body);
    res_init(&r, s);
    do_request(loop, pool, "POST", "/cl", HTTPC_F_RETRY_STALE, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    CHECK_EQ_INT(r.d.retried, 1);
    CHECK_EQ_INT(r.d.reused, 0);
    CHECK_EQ_STR(r.body.data, "hello");
    buf_free(&r.body);
    httpc_pool_stats_t st;
    httpc_pool_stats(pool, &st);
    CHECK_EQ_INT(st.retries, 1);

    /* Same race without permission to resend. */
    res_init(&r, s);
    do_request(loop, pool, "GET", "/kill-next", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    CHECK_EQ_INT(r.d.reused, 1);
    buf_free(&r.body);
    res_init(&r, s);
    do_request(loop, pool, "POST", "/cl", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_RESET);
    CHECK_EQ_INT(r.d.stale_reuse, 1);
    CHECK_EQ_INT(r.d.retried, 0);
    buf_free(&r.body);
    httpc_pool_free(pool);
}

static void test_errors(ev_loop_t *loop, srv_t *s) {
    httpc_pool_t *pool;
    result_t r;
    CHECK_EQ_INT(httpc_pool_new(loop, "127.0.0.1", s->port, NULL, &pool), 0);

    res_init(&r, s);
    do_request(loop, pool, "GET", "/malformed", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_MALFORMED);
    buf_free(&r.body);

    res_init(&r, s);
    do_request(loop, pool, "GET", "/badchunk", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_MALFORMED);
    CHECK_EQ_INT(r.d.status, 200);
    buf_free(&r.body);

    /* First-byte timeout: the server never answers. */
    httpc_request_t q = {.method = "GET", .path = "/hang", .first_byte_timeout_ms = 50};
    int remaining = 1;
    res_init(&r, s);
    r.loop = loop;
    r.stop_after = &remaining;
    CHECK_EQ_INT(httpc_request(pool, &q, &CBS, &r, NULL), 0);
    run_until(loop, &remaining);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_FIRST_BYTE_TIMEOUT);
    buf_free(&r.body);

    /* Total timeout: bytes arrive, so no first-byte timeout, but the body never ends. */
    httpc_request_t q2 = {.method = "GET", .path = "/stall", .first_byte_timeout_ms = 5000,
                          .total_timeout_ms = 80};
    remaining = 1;
    res_init(&r, s);
    r.loop = loop;
    r.stop_after = &remaining;
    CHECK_EQ_INT(httpc_request(pool, &q2, &CBS, &r, NULL), 0);
    run_until(loop, &remaining);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_TOTAL_TIMEOUT);
    CHECK_EQ_INT(r.d.status, 200);
    CHECK_EQ_STR(r.body.data, "partial");
    buf_free(&r.body);
    httpc_pool_free(pool);

    /* Connect refused: a port nobody listens on any more. */
    uint16_t dead;
    int fd = listen_any(1, &dead);
    close(fd);
    CHECK_EQ_INT(httpc_pool_new(loop, "127.0.0.1", dead, NULL, &pool), 0);
    res_init(&r, s);
    do_request(loop, pool, "GET", "/", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_CONNECT);
    CHECK_EQ_INT(r.d.sys_errno, ECONNREFUSED);
    buf_free(&r.body);
    httpc_pool_free(pool);

    /* Names resolve once at creation; an unknown one fails there. */
    CHECK(httpc_pool_new(loop, "no-such-host.invalid", 80, NULL, &pool) < 0);
    CHECK_EQ_INT(httpc_pool_new(loop, "localhost", s->port, NULL, &pool), 0);
    res_init(&r, s);
    do_request(loop, pool, "GET", "/host", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    char want[64];
    snprintf(want, sizeof want, "localhost:%u", (unsigned)s->port);
    CHECK_EQ_STR(r.body.data, want); /* Host carries the name as given */
    buf_free(&r.body);
    httpc_pool_free(pool);
}

static void cancel_fire(ev_loop_t *loop, void *arg) {
    result_t *r = arg;
    httpc_cancel(r->handle);
}

static void test_cancel_and_stream(ev_loop_t *loop, srv_t *s) {
    httpc_pool_t *pool;
    result_t r;
    CHECK_EQ_INT(httpc_pool_new(loop, "127.0.0.1", s->port, NULL, &pool), 0);

    /* Cancel from outside: on_done runs synchronously; the server sees the close. */
    int closed_before = atomic_load(&s->closed);
    httpc_request_t q = {.method = "GET", .path = "/hang"};
    int remaining = 1;
    res_init(&r, s);
    r.loop = loop;
    r.stop_after = &remaining;
    CHECK_EQ_INT(httpc_request(pool, &q, &CBS, &r, &r.handle), 0);
    ev_timer_t t;
    ev_timer_init(&t);
    ev_timer_start(loop, &t, 20, cancel_fire, &r);
    run_until(loop, &remaining);
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_CANCELLED);
    CHECK_EQ_INT(httpc_pool_outstanding(pool), 0);
    for (int i = 0; i < 2000 && atomic_load(&s->closed) == closed_before; i++)
        sleep_ms(1);
    CHECK_EQ_INT(atomic_load(&s->closed), closed_before + 1);
    buf_free(&r.body);

    /* Streaming: the first piece is delivered while the server still holds the rest. */
    atomic_store(&s->stream_go, 0);
    res_init(&r, s);
    r.signal_stream = 1;
    do_request(loop, pool, "GET", "/stream", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_OK);
    CHECK_EQ_STR(r.body.data, "firstsecond");
    CHECK(r.pieces >= 2);
    buf_free(&r.body);

    /* Cancel from inside on_body: no further body, one on_done with CANCELLED. */
    atomic_store(&s->stream_go, 1);
    res_init(&r, s);
    r.cancel_in_body = 1;
    do_request(loop, pool, "GET", "/stream", 0, &r);
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_CANCELLED);
    CHECK_EQ_INT(r.pieces, 1);
    buf_free(&r.body);

    /* Cancel from inside on_head (the gateway does this to retry elsewhere on a 503):
     * no body, CANCELLED, and the connection is not reused. */
    httpc_pool_stats_t st0, st1;
    httpc_pool_stats(pool, &st0);
    res_init(&r, s);
    r.cancel_in_head = 1;
    do_request(loop, pool, "GET", "/cl", 0, &r);
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_CANCELLED);
    CHECK_EQ_INT(r.d.status, 200);
    CHECK_EQ_INT(r.pieces, 0);
    httpc_pool_stats(pool, &st1);
    CHECK_EQ_INT(st1.idle_conns, 0);
    CHECK_EQ_INT(st1.open_conns, 0);
    buf_free(&r.body);
    httpc_pool_free(pool);
}

/* max_conns = 1: three requests at once share one connection in FIFO order. */
static void test_queue(ev_loop_t *loop, srv_t *s) {
    httpc_pool_t *pool;
    httpc_pool_opts_t o = {.max_conns = 1};
    CHECK_EQ_INT(httpc_pool_new(loop, "127.0.0.1", s->port, &o, &pool), 0);
    int before = atomic_load(&s->accepts);
    result_t r[3];
    int remaining = 3;
    httpc_request_t q = {.method = "GET", .path = "/cl"};
    for (int i = 0; i < 3; i++) {
        res_init(&r[i], s);
        r[i].loop = loop;
        r[i].stop_after = &remaining;
        CHECK_EQ_INT(httpc_request(pool, &q, &CBS, &r[i], NULL), 0);
    }
    CHECK_EQ_INT(httpc_pool_outstanding(pool), 3);
    run_until(loop, &remaining);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(r[i].d.result, HTTPC_OK);
        CHECK_EQ_STR(r[i].body.data, "hello");
        buf_free(&r[i].body);
    }
    CHECK_EQ_INT(atomic_load(&s->accepts) - before, 1);
    CHECK_EQ_INT(httpc_pool_outstanding(pool), 0);

    /* A request submitted from on_done gets the connection just released. */
    res_init(&r[0], s);
    r[0].chain = 5;
    r[0].pool = pool;
    do_request(loop, pool, "GET", "/cl", 0, &r[0]);
    CHECK_EQ_INT(r[0].done, 6);
    CHECK_EQ_INT(r[0].d.result, HTTPC_OK);
    CHECK_EQ_INT(r[0].chain_reused, 5);
    CHECK_EQ_INT(atomic_load(&s->accepts) - before, 1);
    buf_free(&r[0].body);

    /* Pool free cancels what is still outstanding. */
    httpc_request_t h = {.method = "GET", .path = "/hang"};
    res_init(&r[0], s);
    res_init(&r[1], s);
    CHECK_EQ_INT(httpc_request(pool, &h, &CBS, &r[0], NULL), 0);
    CHECK_EQ_INT(httpc_request(pool, &h, &CBS, &r[1], NULL), 0); /* queued */
    httpc_pool_free(pool);
    CHECK_EQ_INT(r[0].d.result, HTTPC_ERR_CANCELLED);
    CHECK_EQ_INT(r[1].d.result, HTTPC_ERR_CANCELLED);
    CHECK_EQ_INT(r[0].done + r[1].done, 2);
}

/* A listener whose accept queue is full drops our SYN: connect times out. */
static void test_connect_timeout(ev_loop_t *loop, srv_t *s) {
    uint16_t port;
    int lfd = listen_any(0, &port);
    int fillers[4];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(port)};
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&a, sizeof a);
    }
    httpc_pool_t *pool;
    httpc_pool_opts_t o = {.connect_timeout_ms = 100};
    CHECK_EQ_INT(httpc_pool_new(loop, "127.0.0.1", port, &o, &pool), 0);
    result_t r;
    res_init(&r, s);
    do_request(loop, pool, "GET", "/", 0, &r);
    CHECK_EQ_INT(r.d.result, HTTPC_ERR_CONNECT_TIMEOUT);
    buf_free(&r.body);
    httpc_pool_free(pool);
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(lfd);
}

int main(void) {
    srv_t s;
    srv_start(&s);
    ev_loop_t *loop = ev_loop_new();
    CHECK(loop != NULL);
    test_basic(loop, &s);
    test_idle_close(loop, &s);
    test_stale_retry(loop, &s);
    test_errors(loop, &s);
    test_cancel_and_stream(loop, &s);
    test_queue(loop, &s);
    test_connect_timeout(loop, &s);
    CHECK_EQ_STR(httpc_result_name(HTTPC_ERR_FIRST_BYTE_TIMEOUT), "first_byte_timeout");
    ev_loop_free(loop);
    srv_stop(&s);
    return check_summary("test_httpc");
}
