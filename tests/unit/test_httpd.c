/* test_httpd.c — the HTTP server over raw sockets: keep-alive, pipelining, bodies, limits, streaming, close. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/httpd.h"

static atomic_int closes_seen;

/* Per-request state of the asynchronous test handlers (malloc is fine in a test). */
typedef struct job {
    httpd_req_t *req;
    ev_timer_t timer;
    int step;
} job_t;

static void job_close(httpd_req_t *req, void *arg) {
    job_t *j = arg;
    (void)req;
    ev_timer_stop(httpd_req_loop(j->req), &j->timer);
    free(j);
    atomic_fetch_add(&closes_seen, 1);
}

static void slow_tick(ev_loop_t *loop, void *arg) {
    job_t *j = arg;
    (void)loop;
    httpd_respond(j->req, 200, "text/plain", "slow", 4);
    free(j);
}

/* /late: answers after 100 ms without registering on_close (the server keeps
 * the request valid until then even if the client left). */
typedef struct late {
    httpd_req_t *req;
    ev_timer_t timer;
} late_t;
static atomic_int late_rc = 1;

static void late_tick(ev_loop_t *loop, void *arg) {
    late_t *l = arg;
    (void)loop;
    atomic_store(&late_rc, httpd_respond(l->req, 200, "text/plain", "late", 4));
    free(l);
}

static void stream_tick(ev_loop_t *loop, void *arg) {
    job_t *j = arg;
    static const char *words[] = {"one ", "two ", "three"};
    if (j->step < 3) {
        httpd_stream_write(j->req, words[j->step], strlen(words[j->step]));
        j->step++;
        ev_timer_start(loop, &j->timer, 5, stream_tick, j);
        return;
    }
    httpd_stream_end(j->req);
    free(j);
}

/* /big: 4 MiB streamed in 64 KiB pieces, pausing whenever 256 KiB are queued
 * and resuming from on_drain, the way a proxy relays a fast upstream. */
#define BIG_TOTAL (4u << 20)
static char big_piece[65536];

static void big_pump(httpd_req_t *req, void *arg) {
    job_t *j = arg;
    while (j->step < (int)(BIG_TOTAL / sizeof big_piece)) {
        long pending = httpd_stream_write(req, big_piece, sizeof big_piece);
        j->step++;
        if (pending < 0)
            return; /* gone: on_close frees j */
        if (pending > 256 * 1024)
            return; /* wait for on_drain */
    }
    httpd_stream_end(req);
    free(j);
}

static job_t *job_new(httpd_req_t *req) {
    job_t *j = calloc(1, sizeof *j);
    j->req = req;
    ev_timer_init(&j->timer);
    httpd_req_on_close(req, job_close, j);
    return j;
}

static void handler(httpd_req_t *req, void *arg) {
    (void)arg;
    const char *p = httpd_req_path(req);
    if (!strcmp(p, "/hello")) {
        httpd_add_header(req, "X-Test", "yes");
        httpd_respond(req, 200, "text/plain", "hello", 5);
    } else if (!strcmp(p, "/echo")) {
        size_t n;
        const char *b = httpd_req_body(req, &n);
        char q[64];
        snprintf(q, sizeof q, "%s", httpd_req_query(req));
        httpd_add_header(req, "X-Query", q);
        httpd_respond(req, 200, "application/octet-stream", b, n);
    } else if (!strcmp(p, "/header")) {
        const char *v = httpd_req_header(req, "x-thing");
        httpd_respond(req, 200, "text/plain", v ? v : "none", v ? strlen(v) : 4);
    } else if (!strcmp(p, "/slow")) {
        job_t *j = job_new(req);
        ev_timer_start(httpd_req_loop(req), &j->timer, 100, slow_tick, j);
    } else if (!strcmp(p, "/stream")) {
        job_t *j = job_new(req);
        httpd_stream_begin(req, 200, "text/event-stream");
        ev_timer_start(httpd_req_loop(req), &j->timer, 5, stream_tick, j);
    } else if (!strcmp(p, "/big")) {
        job_t *j = job_new(req);
        memset(big_piece, 'x', sizeof big_piece); /* text: the test client uses strstr */
        httpd_req_on_drain(req, big_pump, j);
        httpd_stream_begin(req, 200, "application/octet-stream");
        big_pump(req, j);
    } else if (!strcmp(p, "/bigrespond")) {
        static char body[3u << 20];
        memset(body, 'b', sizeof body);
        httpd_respond(req, 200, "application/octet-stream", body, sizeof body);
    } else if (!strcmp(p, "/late")) {
        late_t *l = calloc(1, sizeof *l);
        l->req = req;
        ev_timer_init(&l->timer);
        ev_timer_start(httpd_req_loop(req), &l->timer, 100, late_tick, l);
    } else if (!strcmp(p, "/whoami")) {
        char peer[64], out[256];
        httpd_req_peer(req, peer, sizeof peer);
        const char *n, *v;
        httpd_req_header_at(req, 0, &n, &v);
        snprintf(out, sizeof out, "%s %s %s %s=%s %zu", httpd_req_method(req), httpd_req_path(req),
                 strncmp(peer, "127.0.0.1:", 10) ? "?" : "local", n, v, httpd_req_header_count(req));
        httpd_respond(req, 200, "text/plain", out, strlen(out));
    } else if (!strcmp(p, "/hang")) {
        job_new(req); /* never answers: only on_close frees it */
    } else if (!strcmp(p, "/abort")) {
        httpd_stream_begin(req, 200, "text/plain");
        httpd_stream_write(req, "partial", 7);
        httpd_abort(req);
    } else if (!strcmp(p, "/error")) {
        httpd_error(req, 429, "rate_limit_error", "slow \"down\"");
    } else {
        httpd_error(req, 404, "invalid_request_error", "no such path");
    }
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0}; /* generous: a hung server fails the test, not the suite */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
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
static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

/* A received response: status, head, decoded body. */
typedef struct resp {
    int status;
    char head[4096];
    char body[8192];
    size_t body_len;
    int eof_after; /* connection closed right after (only checked when asked) */
} resp_t;

/* Per-connection receive buffer so pipelined responses split correctly. */
typedef struct rbuf {
    char d[65536];
    size_t n;
} rbuf_t;

static int fill(int fd, rbuf_t *rb) {
    ssize_t r = recv(fd, rb->d + rb->n, sizeof rb->d - rb->n - 1, 0);
    if (r <= 0)
        return -1;
    rb->n += (size_t)r;
    rb->d[rb->n] = '\0';
    return 0;
}

static void eat(rbuf_t *rb, size_t k) {
    memmove(rb->d, rb->d + k, rb->n - k);
    rb->n -= k;
    rb->d[rb->n] = '\0';
}

/* Read one response (Content-Length, chunked, or until close). 0 or -1. */
static int read_resp(int fd, rbuf_t *rb, resp_t *r) {
    memset(r, 0, sizeof *r);
    char *e;
    while (!(e = strstr(rb->d, "\r\n\r\n")))
        if (fill(fd, rb) < 0)
            return -1;
    size_t hl = (size_t)(e - rb->d) + 4;
    snprintf(r->head, sizeof r->head, "%.*s", (int)hl, rb->d);
    r->status = atoi(rb->d + 9);
    eat(rb, hl);
    if (r->status < 200)
        return 0; /* interim response: no body */
    const char *cl = strcasestr(r->head, "content-length:");
    if (cl) {
        size_t n = strtoul(cl + 15, NULL, 10);
        while (rb->n < n)
            if (fill(fd, rb) < 0)
                return -1;
        memcpy(r->body, rb->d, n);
        r->body_len = n;
        eat(rb, n);
        return 0;
    }
    if (strcasestr(r->head, "transfer-encoding: chunked")) {
        for (;;) {
            char *le;
            while (!(le = strstr(rb->d, "\r\n")))
                if (fill(fd, rb) < 0)
                    return -1;
            size_t sz = strtoul(rb->d, NULL, 16);
            size_t need = (size_t)(le - rb->d) + 2 + sz + 2;
            while (rb->n < need)
                if (fill(fd, rb) < 0)
                    return -1;
            memcpy(r->body + r->body_len, le + 2, sz);
            r->body_len += sz;
            eat(rb, need);
            if (sz == 0)
                return 0;
        }
    }
    while (fill(fd, rb) == 0) {
    }
    memcpy(r->body, rb->d, rb->n);
    r->body_len = rb->n;
    rb->n = 0;
    return 0;
}

/* 1 when the peer closes (EOF or reset) within the receive timeout. */
static int sees_close(int fd) {
    char c;
    for (;;) {
        ssize_t r = recv(fd, &c, 1, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 1;
        if (r < 0)
            return 0; /* timeout */
    }
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_basic(int port) {
    int fd = connect_to(port);
    CHECK(fd >= 0);
    rbuf_t rb = {.n = 0};
    resp_t r;
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body_len == 5 && !memcmp(r.body, "hello", 5));
    CHECK(strstr(r.head, "X-Test: yes\r\n") != NULL);
    CHECK(strstr(r.head, "Content-Type: text/plain\r\n") != NULL);
    /* keep-alive: same connection again */
    send_str(fd, "GET /header HTTP/1.1\r\nHost: x\r\nX-Thing:   spaced value  \r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR(r.body, "spaced value");
    /* unknown path through the error helper */
    send_str(fd, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 404);
    send_str(fd, "GET /error HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 429);
    CHECK_EQ_STR(r.body, "{\"error\":{\"message\":\"slow \\\"down\\\"\",\"type\":\"rate_limit_error\","
                         "\"param\":null,\"code\":null}}");
    CHECK(strstr(r.head, "application/json") != NULL);
    /* HEAD: length, no body */
    send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    char *e;
    while (!(e = strstr(rb.d, "\r\n\r\n")))
        if (fill(fd, &rb) < 0)
            break;
    CHECK(e && strstr(rb.d, "Content-Length: 5") != NULL);
    if (e)
        eat(&rb, (size_t)(e - rb.d) + 4);
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_STR(r.body, "hello");

    /* request accessors */
    send_str(fd, "DELETE /whoami?q HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_STR(r.body, "DELETE /whoami local Host=x 2");
    /* Connection: close from the client is honoured */
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK(strstr(r.head, "Connection: close") != NULL);
    CHECK(sees_close(fd));
    close(fd);

    /* HTTP/1.0 with keep-alive stays open */
    fd = connect_to(port);
    rb.n = 0;
    send_str(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK(strstr(r.head, "Connection: keep-alive") != NULL);
    send_str(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_STR(r.body, "hello");
    close(fd);

    /* HTTP/1.0 without keep-alive closes after the response */
    fd = connect_to(port);
    rb.n = 0;
    send_str(fd, "GET /hello HTTP/1.0\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.head, "Connection: close") != NULL);
    CHECK(sees_close(fd));
    close(fd);
}

static void test_pipelining_and_bodies(int port) {
    int fd = connect_to(port);
    rbuf_t rb = {.n = 0};
    resp_t r;
    send_str(fd, "POST /echo?n=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
                 "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                 "POST /echo?n=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nccc"
                 "POST /echo?n=4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_STR(r.body, "a");
    CHECK(strstr(r.head, "X-Query: n=1") != NULL);
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_STR(r.body, "slow"); /* the async answer keeps its place in line */
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_STR(r.body, "ccc");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_STR(r.body, "hello world");
    CHECK(strstr(r.head, "X-Query: n=4") != NULL);

    /* the same request byte by byte */
    const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n";
    for (const char *p = req; *p; p++)
        send_all(fd, p, 1);
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_STR(r.body, "abcde");

    /* Expect: 100-continue is answered before the body is sent */
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 100);
    send_str(fd, "body");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR(r.body, "body");
    close(fd);
}

static void expect_status_and_close(int port, const char *req, size_t len, int status) {
    int fd = connect_to(port);
    rbuf_t rb = {.n = 0};
    resp_t r;
    send_all(fd, req, len);
    int rc = read_resp(fd, &rb, &r);
    CHECK_MSG(rc == 0 && r.status == status, "want %d got %d (rc %d) for %.40s", status, r.status,
              rc, req);
    CHECK(strstr(r.head, "Connection: close") != NULL);
    CHECK(strstr(r.body, "\"error\"") != NULL);
    CHECK(sees_close(fd));
    close(fd);
}

static void test_limits(int port) {
    char big[8192];
    /* body over max_body (1024) by Content-Length */
    const char *r413 = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nabc";
    expect_status_and_close(port, r413, strlen(r413), 413);
    /* ... and by chunks */
    int n = snprintf(big, sizeof big, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "200\r\n%0512d\r\n", 0);
    expect_status_and_close(port, big, (size_t)n, 413);
    /* head over max_head (2048) */
    n = snprintf(big, sizeof big, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Long: ");
    memset(big + n, 'a', 3000);
    n += 3000;
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n\r\n");
    expect_status_and_close(port, big, (size_t)n, 431);
    /* more headers than max_headers (16) */
    n = snprintf(big, sizeof big, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 20; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-H%d: v\r\n", i);
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    expect_status_and_close(port, big, (size_t)n, 431);
    /* malformed */
    const char *bad = "GARBAGE\r\n\r\n";
    expect_status_and_close(port, bad, strlen(bad), 400);
    const char *badchunk = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    expect_status_and_close(port, badchunk, strlen(badchunk), 400);
    /* slow loris: a head never finished gets 408 after header_timeout (200 ms) */
    const char *partial = "GET /hello HTTP/1.1\r\nHost: x\r\n";
    expect_status_and_close(port, partial, strlen(partial), 408);
    /* a body that never arrives: 408 after body_timeout */
    const char *nobody = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
    expect_status_and_close(port, nobody, strlen(nobody), 408);
    /* idle keep-alive connections are closed after idle_timeout (300 ms) */
    int fd = connect_to(port);
    rbuf_t rb = {.n = 0};
    resp_t r;
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK(sees_close(fd));
    close(fd);
}

static void test_streaming(int port) {
    int fd = connect_to(port);
    rbuf_t rb = {.n = 0};
    resp_t r;
    send_str(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.head, "Transfer-Encoding: chunked") != NULL);
    CHECK(strstr(r.head, "text/event-stream") != NULL);
    CHECK(r.body_len == 13 && !memcmp(r.body, "one two three", 13));
    /* the connection is still usable after a stream */
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK_EQ_STR(r.body, "hello");
    close(fd);

    /* HTTP/1.0: raw body ended by close */
    fd = connect_to(port);
    rb.n = 0;
    send_str(fd, "GET /stream HTTP/1.0\r\n\r\n");
    CHECK_EQ_INT(read_resp(fd, &rb, &r), 0);
    CHECK(r.body_len == 13 && !memcmp(r.body, "one two three", 13));
    close(fd);

    /* abort: the client gets the head and a partial body, then a reset, no final chunk */
    fd = connect_to(port);
    rb.n = 0;
    send_str(fd, "GET /abort HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(read_resp(fd, &rb, &r) < 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body, "partial") != NULL);
    close(fd);
}

static void test_disconnect(int port) {
    int before = atomic_load(&closes_seen);
    int fd = connect_to(port);
    send_str(fd, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
    sleep_ms(50);
    close(fd);
    int seen = 0;
    for (int i = 0; i < 500 && !seen; i++) {
        seen = atomic_load(&closes_seen) > before;
        sleep_ms(10);
    }
    CHECK_MSG(seen, "on_close did not fire after the client disconnected");

    /* no on_close: the handler answers after the client left; the answer goes nowhere */
    atomic_store(&late_rc, 1);
    fd = connect_to(port);
    send_str(fd, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&late_rc) == 1; i++)
        sleep_ms(10);
    CHECK_EQ_INT(atomic_load(&late_rc), -EPIPE);

    /* a client leaving mid-stream also fires on_close */
    before = atomic_load(&closes_seen);
    fd = connect_to(port);
    send_str(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    sleep_ms(200);
    /* Either the stream finished before the reset arrived or on_close fired; no crash either way. */
    CHECK(atomic_load(&closes_seen) >= before);
}

static void test_graceful_stop(httpd_t *h, int port) {
    int idle = connect_to(port);
    int busy = connect_to(port);
    rbuf_t rb = {.n = 0};
    resp_t r;
    send_str(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    sleep_ms(30);
    httpd_stop(h, 5000);
    CHECK_EQ_INT(read_resp(busy, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR(r.body, "slow");
    CHECK(strstr(r.head, "Connection: close") != NULL);
    CHECK(sees_close(busy));
    CHECK(sees_close(idle));
    httpd_wait(h);
    CHECK(connect_to(port) < 0);
    close(idle);
    close(busy);
}

/* Read a whole chunked or sized response of any length, counting body bytes. */
static long read_big(int fd, int chunked) {
    static rbuf_t rb;
    rb.n = 0;
    rb.d[0] = 0;
    char *e;
    while (!(e = strstr(rb.d, "\r\n\r\n")))
        if (fill(fd, &rb) < 0)
            return -1;
    long total = 0, want = -1;
    const char *cl = strcasestr(rb.d, "content-length:");
    if (cl && cl < e)
        want = strtol(cl + 15, NULL, 10);
    eat(&rb, (size_t)(e - rb.d) + 4);
    if (!chunked) {
        total = (long)rb.n;
        rb.n = 0;
        while (total < want) {
            if (fill(fd, &rb) < 0)
                return -1;
            total += (long)rb.n;
            rb.n = 0;
        }
        return total;
    }
    for (;;) {
        char *le;
        while (!(le = strstr(rb.d, "\r\n")))
            if (fill(fd, &rb) < 0)
                return -1;
        size_t sz = strtoul(rb.d, NULL, 16);
        eat(&rb, (size_t)(le - rb.d) + 2);
        if (sz == 0)
            return total;
        size_t left = sz + 2;
        while (left) {
            if (rb.n == 0 && fill(fd, &rb) < 0)
                return -1;
            size_t k = rb.n < left ? rb.n : left;
            eat(&rb, k);
            left -= k;
        }
        total += (long)sz;
    }
}

static void test_big_and_conn_limit(void) {
    httpd_config_t cfg = {.threads = 1, .max_conns = 2, .handler = handler};
    httpd_t *h = NULL;
    CHECK_EQ_INT(httpd_new(&cfg, &h), 0);
    if (!h)
        return;
    CHECK_EQ_INT(httpd_start(h), 0);
    int port = httpd_port(h);
    int a = connect_to(port), b = connect_to(port);
    /* a large streamed answer with backpressure, then a large plain one, same connection */
    send_str(a, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    sleep_ms(100); /* let the server fill the socket and wait for EPOLLOUT */
    CHECK_EQ_INT(read_big(a, 1), BIG_TOTAL);
    send_str(a, "GET /bigrespond HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(read_big(a, 0), 3u << 20);
    /* a third connection is over max_conns: 503 and closed */
    int c = connect_to(port);
    rbuf_t rb = {.n = 0};
    resp_t r;
    CHECK_EQ_INT(read_resp(c, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 503);
    close(c);
    close(b);
    /* once one leaves, new connections are served again */
    sleep_ms(100);
    c = connect_to(port);
    rb.n = 0;
    send_str(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(read_resp(c, &rb, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    close(c);
    close(a);
    httpd_free(h); /* hard stop with no drain */
}

/* What on_refused reported, by status (any worker thread). */
static atomic_int refused_by_status[600];
static void on_refused(int worker, void *worker_data, int status, void *arg) {
    (void)worker;
    (void)worker_data;
    (void)arg;
    if (status >= 0 && status < 600)
        atomic_fetch_add(&refused_by_status[status], 1);
}

int main(void) {
    httpd_config_t cfg = {
        .host = "127.0.0.1",
        .port = 0,
        .threads = 2,
        .max_head_bytes = 2048,
        .max_headers = 16,
        .max_body_bytes = 1024,
        .header_timeout_ms = 200,
        .body_timeout_ms = 200,
        .idle_timeout_ms = 300,
        .handler = handler,
        .on_refused = on_refused,
    };
    httpd_t *h = NULL;
    CHECK_EQ_INT(httpd_new(&cfg, &h), 0);
    if (!h)
        return check_summary("test_httpd");
    int port = httpd_port(h);
    CHECK(port > 0);
    CHECK_EQ_INT(httpd_start(h), 0);

    /* a host that is not a numeric address is refused at once */
    httpd_config_t bad = cfg;
    bad.host = "not-an-ip";
    httpd_t *h2 = NULL;
    CHECK(httpd_new(&bad, &h2) < 0);

    test_basic(port);
    test_pipelining_and_bodies(port);
    CHECK_EQ_INT(atomic_load(&refused_by_status[400]), 0); /* handled requests are not refusals */
    test_limits(port);
    /* every answer the server gave itself in test_limits was reported (the embedding
     * server's metrics count them) */
    CHECK(atomic_load(&refused_by_status[413]) >= 2);
    CHECK(atomic_load(&refused_by_status[431]) >= 2);
    CHECK(atomic_load(&refused_by_status[400]) >= 2);
    CHECK(atomic_load(&refused_by_status[408]) >= 2);
    CHECK_EQ_INT(atomic_load(&refused_by_status[200]), 0);
    test_streaming(port);
    test_disconnect(port);
    test_graceful_stop(h, port);
    httpd_free(h);
    test_big_and_conn_limit();
    return check_summary("test_httpd");
}
