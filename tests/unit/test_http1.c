/* test_http1.c — HTTP/1.1 parser: every prefix, guard-page placement, malformed input, framing, chunked splits. */
#include "check.h"
#include "core/http1.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- guard page: input placed so its last byte is the last byte before a
 * PROT_NONE page; reading one byte too far faults. ---- */
static char *g_pages;
static size_t g_page;

static void guard_init(void) {
    g_page = (size_t)sysconf(_SC_PAGESIZE);
    g_pages = mmap(NULL, 2 * 16 * g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(g_pages != MAP_FAILED);
    /* 16 usable pages, then a guard page */
    CHECK_EQ_INT(mprotect(g_pages + 16 * g_page, g_page, PROT_NONE), 0);
}

static char *guarded(const char *s, size_t n) {
    char *p = g_pages + 16 * g_page - n;
    memcpy(p, s, n);
    return p;
}

#define NH 16
static http1_header_t g_hdrs[NH];

static int req_parse(const char *s, size_t n, http1_request_t *r, size_t cap) {
    memset(r, 0, sizeof *r);
    r->headers = g_hdrs;
    r->num_headers = cap;
    return http1_parse_request(guarded(s, n), n, r);
}

static int res_parse(const char *s, size_t n, http1_response_t *r, size_t cap) {
    memset(r, 0, sizeof *r);
    r->headers = g_hdrs;
    r->num_headers = cap;
    return http1_parse_response(guarded(s, n), n, r);
}

/* Every strict prefix of a complete head must be INCOMPLETE, never an error
 * or a success; returns the number of prefixes that misbehaved. */
static int prefixes_incomplete_req(const char *s, size_t head_len) {
    int bad = 0;
    http1_request_t r;
    for (size_t k = 0; k < head_len; k++)
        bad += req_parse(s, k, &r, NH) != HTTP1_INCOMPLETE;
    return bad;
}

static int prefixes_incomplete_res(const char *s, size_t head_len) {
    int bad = 0;
    http1_response_t r;
    for (size_t k = 0; k < head_len; k++)
        bad += res_parse(s, k, &r, NH) != HTTP1_INCOMPLETE;
    return bad;
}

static int span_eq(const char *p, size_t n, const char *s) {
    return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

/* ---- valid requests ---- */
static void test_valid_requests(void) {
    const char *s = "POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
                    "Host: gw.local:8080\r\n"
                    "Authorization:   Bearer abc  \r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: 12\r\n"
                    "X-Empty:\r\n"
                    "X-Obs: caf\xc3\xa9\t v\r\n"
                    "\r\n"
                    "{\"a\":\"b\"}xyz";
    size_t head = strlen(s) - 12;
    http1_request_t r;
    int rc = req_parse(s, strlen(s), &r, NH);
    CHECK_EQ_INT(rc, (int)head);
    CHECK(span_eq(r.method, r.method_len, "POST"));
    CHECK(span_eq(r.target, r.target_len, "/v1/chat/completions?x=1"));
    CHECK_EQ_INT(r.minor_version, 1);
    CHECK_EQ_INT(r.num_headers, 6);
    CHECK(span_eq(r.headers[0].name, r.headers[0].name_len, "Host"));
    CHECK(span_eq(r.headers[0].value, r.headers[0].value_len, "gw.local:8080"));
    CHECK(span_eq(r.headers[1].value, r.headers[1].value_len, "Bearer abc"));
    CHECK_EQ_INT(r.headers[4].value_len, 0);
    CHECK(span_eq(r.headers[5].value, r.headers[5].value_len, "caf\xc3\xa9\t v"));
    CHECK_EQ_INT(r.framing.content_length, 12);
    CHECK_EQ_INT(r.framing.chunked, 0);
    CHECK_EQ_INT(r.framing.keep_alive, 1);
    CHECK_EQ_INT(r.framing.expect_continue, 0);
    CHECK_EQ_INT(prefixes_incomplete_req(s, head), 0);
    /* Exactly the head, no body bytes: same result. */
    CHECK_EQ_INT(req_parse(s, head, &r, NH), (int)head);

    const http1_header_t *h = http1_find_header(r.headers, r.num_headers, "content-TYPE");
    CHECK(h && span_eq(h->value, h->value_len, "application/json"));
    CHECK(http1_find_header(r.headers, r.num_headers, "Content-Typ") == NULL);
    CHECK(http1_find_header(r.headers, r.num_headers, "Accept") == NULL);

    /* A table of smaller valid requests with their framing. */
    static const struct {
        const char *s;
        const char *method, *target;
        int minor;
        size_t nh;
        int64_t cl;
        int chunked, keep, expect;
    } v[] = {
        {"GET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0, -1, 0, 1, 0},
        {"GET / HTTP/1.0\r\n\r\n", "GET", "/", 0, 0, -1, 0, 0, 0},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/", 0, 1, -1, 0, 1, 0},
        {"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", "GET", "/a", 1, 1, -1, 0, 0, 0},
        {"GET /a HTTP/1.1\r\nConnection: keep-alive, CLOSE\r\n\r\n", "GET", "/a", 1, 1, -1, 0, 0, 0},
        {"GET /a HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", "GET", "/a", 1, 1, -1, 0, 1, 0},
        {"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", "/p", 1, 1, -1, 1, 1, 0},
        {"POST /p HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n", "POST", "/p", 1, 1, -1, 1, 1, 0},
        {"POST /p HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "POST", "/p", 1, 2, 5, 0, 1, 0},
        {"POST /p HTTP/1.1\r\nContent-Length: 7, 7 ,7\r\n\r\n", "POST", "/p", 1, 1, 7, 0, 1, 0},
        {"POST /p HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "POST", "/p", 1, 1, 0, 0, 1, 0},
        {"POST /p HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", "POST", "/p", 1, 1,
         INT64_MAX, 0, 1, 0},
        {"POST /p HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", "POST", "/p", 1, 2,
         3, 0, 1, 1},
        {"POST /p HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", "POST", "/p", 0, 2,
         3, 0, 0, 0},
        {"\r\n\r\nGET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0, -1, 0, 1, 0},
        {"M-SEARCH* * HTTP/1.1\r\n\r\n", "M-SEARCH*", "*", 1, 0, -1, 0, 1, 0},
        {"OPTIONS http://a.b/c?d=%20 HTTP/1.1\r\nX!#$%&'*+-.^_`|~9: v\r\n\r\n", "OPTIONS",
         "http://a.b/c?d=%20", 1, 1, -1, 0, 1, 0},
    };
    int bad_prefix = 0;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = strlen(v[i].s);
        rc = req_parse(v[i].s, n, &r, NH);
        CHECK_MSG(rc == (int)n, "case %zu: rc %d", i, rc);
        if (rc != (int)n)
            continue;
        int ok = span_eq(r.method, r.method_len, v[i].method) &&
                 span_eq(r.target, r.target_len, v[i].target) && r.minor_version == v[i].minor &&
                 r.num_headers == v[i].nh && r.framing.content_length == v[i].cl &&
                 r.framing.chunked == v[i].chunked && r.framing.keep_alive == v[i].keep &&
                 r.framing.expect_continue == v[i].expect;
        CHECK_MSG(ok, "request case %zu fields", i);
        bad_prefix += prefixes_incomplete_req(v[i].s, n);
    }
    CHECK_EQ_INT(bad_prefix, 0);
}

/* ---- pipelining: heads parsed one after another from one buffer ---- */
static void test_pipelined(void) {
    const char *s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                    "POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /3 HTTP/1.0\r\n\r\n";
    size_t n = strlen(s), off = 0;
    const char *want[] = {"/1", "/2", "/3"};
    http1_request_t r;
    char *g = guarded(s, n);
    for (int k = 0; k < 3; k++) {
        memset(&r, 0, sizeof r);
        r.headers = g_hdrs;
        r.num_headers = NH;
        int rc = http1_parse_request(g + off, n - off, &r);
        CHECK(rc > 0);
        if (rc <= 0)
            return;
        CHECK(span_eq(r.target, r.target_len, want[k]));
        off += (size_t)rc + (r.framing.content_length > 0 ? (size_t)r.framing.content_length : 0);
    }
    CHECK_EQ_INT(off, n);
}

/* ---- malformed requests: each is HTTP1_ERR, and no prefix of it succeeds ---- */
static void test_malformed_requests(void) {
    static const char *bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",                 /* double SP */
        " GET / HTTP/1.1\r\n\r\n",                 /* leading SP */
        "GE(T / HTTP/1.1\r\n\r\n",                 /* non-tchar in method */
        "GET / HTTP/1.1\n\r\n",                    /* bare LF after request line */
        "GET / HTTP/1.1\r\nHost: a\n\r\n",         /* bare LF after header */
        "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",     /* CR CR */
        "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",    /* bare CR in value */
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.2\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET /\r\n\r\n",                           /* HTTP/0.9 */
        "GET / HTTP/1.1 \r\n\r\n",                 /* trailing space */
        "GET /a b HTTP/1.1\r\n\r\n",               /* space in target */
        "GET /\x7f HTTP/1.1\r\n\r\n",              /* DEL in target */
        "GET /\x80 HTTP/1.1\r\n\r\n",              /* raw 8-bit in target */
        "GET  HTTP/1.1\r\n\r\n",                   /* empty target */
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",      /* space before colon */
        "GET / HTTP/1.1\r\n: a\r\n\r\n",           /* empty name */
        "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",      /* non-tchar in name */
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",        /* no colon */
        "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",    /* obs-fold */
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",      /* space before first header */
        "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n",     /* CTL in value */
        "GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n",     /* DEL in value */
        "\r\rGET / HTTP/1.1\r\n\r\n",
        "\nGET / HTTP/1.1\r\n\r\n",
        /* framing */
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    http1_request_t r;
    int bad_prefix = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]);
        int rc = req_parse(bad[i], n, &r, NH);
        CHECK_MSG(rc == HTTP1_ERR, "case %zu (%s): rc %d", i, bad[i], rc);
        CHECK_EQ_INT(r.num_headers, NH); /* capacity restored */
        for (size_t k = 0; k < n; k++) {
            int prc = req_parse(bad[i], k, &r, NH);
            bad_prefix += prc != HTTP1_INCOMPLETE && prc != HTTP1_ERR;
        }
    }
    CHECK_EQ_INT(bad_prefix, 0);

    /* NUL inside a value (can't be in a C string literal table). */
    const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    CHECK_EQ_INT(req_parse(nul, sizeof nul - 1, &r, NH), HTTP1_ERR);
    const char nul2[] = "GET /\0 HTTP/1.1\r\n\r\n";
    CHECK_EQ_INT(req_parse(nul2, sizeof nul2 - 1, &r, NH), HTTP1_ERR);
}

static void test_too_many(void) {
    const char *s = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    http1_request_t r;
    size_t n = strlen(s);
    CHECK_EQ_INT(req_parse(s, n, &r, 4), HTTP1_TOO_MANY);
    CHECK_EQ_INT(r.num_headers, 4);
    CHECK_EQ_INT(req_parse(s, n, &r, 5), (int)n);
    CHECK_EQ_INT(r.num_headers, 5);
    CHECK(span_eq(r.headers[4].name, r.headers[4].name_len, "E"));
    CHECK_EQ_INT(req_parse(s, n, &r, 0), HTTP1_TOO_MANY);
    CHECK_EQ_INT(req_parse("GET / HTTP/1.1\r\n\r\n", 18, &r, 0), 18);
}

/* ---- responses ---- */
static void test_responses(void) {
    static const struct {
        const char *s;
        int minor, status;
        const char *reason;
        size_t nh;
        int64_t cl;
        int chunked, keep;
    } v[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 1, 200, "OK", 1, 2, 0, 1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 200, "OK", 1, -1, 1, 1},
        {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", 1, 200, "OK", 1, -1, 0, 0},
        {"HTTP/1.1 204 No Content\r\n\r\n", 1, 204, "No Content", 0, 0, 0, 1},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", 1, 304, "Not Modified", 1, 0, 0, 1},
        {"HTTP/1.1 100 Continue\r\n\r\n", 1, 100, "Continue", 0, 0, 0, 1},
        {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 200, "OK", 1, 0, 0, 0},
        {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", 0, 200, "OK", 2, 0,
         0, 1},
        {"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 1, 503,
         "Service Unavailable", 2, 0, 0, 0},
        {"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", 1, 200, "", 1, 1, 0, 1},
        {"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", 1, 200, "", 1, 1, 0, 1},
        {"HTTP/1.1 404 Not \xc3\xa9 Found\r\nContent-Length: 1\r\n\r\n", 1, 404, "Not \xc3\xa9 Found", 1,
         1, 0, 1},
    };
    http1_response_t r;
    int bad_prefix = 0;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = strlen(v[i].s);
        int rc = res_parse(v[i].s, n, &r, NH);
        CHECK_MSG(rc == (int)n, "case %zu: rc %d", i, rc);
        if (rc != (int)n)
            continue;
        int ok = r.minor_version == v[i].minor && r.status == v[i].status &&
                 span_eq(r.reason, r.reason_len, v[i].reason) && r.num_headers == v[i].nh &&
                 r.framing.content_length == v[i].cl && r.framing.chunked == v[i].chunked &&
                 r.framing.keep_alive == v[i].keep;
        CHECK_MSG(ok, "response case %zu fields", i);
        bad_prefix += prefixes_incomplete_res(v[i].s, n);
    }
    CHECK_EQ_INT(bad_prefix, 0);

    static const char *bad[] = {
        "HTTP/1.1 99 Low\r\n\r\n",
        "HTTP/1.1 600 High\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = res_parse(bad[i], strlen(bad[i]), &r, NH);
        CHECK_MSG(rc == HTTP1_ERR, "bad response %zu: rc %d", i, rc);
    }
    const char *many = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    CHECK_EQ_INT(res_parse(many, strlen(many), &r, 1), HTTP1_TOO_MANY);
}

/* ---- chunked decoding ---- */

/* Feeds `in` to a fresh decoder in pieces at the given cut points (sorted,
 * within (0, n)), the way a connection would: raw bytes not yet consumed are
 * never kept (the decoder consumes everything it is given). Returns the final
 * return code, decoded body in body/blen and the bytes after the body in rest. */
static ssize_t feed_chunked(const char *in, size_t n, const size_t *cuts, size_t ncuts, size_t max_body,
                            char *body, size_t *blen, char *rest, size_t *rlen) {
    http1_chunked_t d;
    memset(&d, 0, sizeof d);
    d.max_body = max_body;
    *blen = *rlen = 0;
    size_t start = 0;
    ssize_t rc = HTTP1_INCOMPLETE;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : n;
        size_t len = end - start;
        char *g = guarded(in + start, len);
        rc = http1_decode_chunked(&d, g, &len);
        if (rc == HTTP1_ERR)
            return rc;
        memcpy(body + *blen, g, len);
        *blen += len;
        if (rc >= 0) {
            memcpy(rest, g + len, (size_t)rc);
            *rlen = (size_t)rc;
            /* what the remaining pieces hold is also the next message */
            memcpy(rest + *rlen, in + end, n - end);
            *rlen += n - end;
            return rc;
        }
        start = end;
    }
    return rc;
}

static void test_chunked(void) {
    const char *in = "5;name=val;q=\"x y\"\r\nhello\r\n"
                     "6 \r\n world\r\n"
                     "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                     "0;last\r\n"
                     "Trailer-One: 1\r\nX-Trailer:two  2\r\n"
                     "\r\n"
                     "GET /next HTTP/1.1\r\n\r\n";
    const char *want_body = "hello worldabcdefghijklmnopqrstuvwxyz";
    const char *want_rest = "GET /next HTTP/1.1\r\n\r\n";
    size_t n = strlen(in);
    char body[512], rest[512];
    size_t blen, rlen;

    ssize_t rc = feed_chunked(in, n, NULL, 0, 0, body, &blen, rest, &rlen);
    CHECK_EQ_INT(rc, (ssize_t)strlen(want_rest));
    CHECK(blen == strlen(want_body) && memcmp(body, want_body, blen) == 0);
    CHECK(rlen == strlen(want_rest) && memcmp(rest, want_rest, rlen) == 0);

    /* Every single split point, every pair of split points, and byte by byte. */
    int bad = 0;
    for (size_t a = 1; a < n; a++) {
        for (size_t b = a; b < n; b++) {
            size_t cuts[2] = {a, b};
            rc = feed_chunked(in, n, cuts, a == b ? 1 : 2, 0, body, &blen, rest, &rlen);
            bad += rc < 0 || blen != strlen(want_body) || memcmp(body, want_body, blen) != 0 ||
                   rlen != strlen(want_rest) || memcmp(rest, want_rest, rlen) != 0;
        }
    }
    CHECK_EQ_INT(bad, 0);
    size_t *cuts = malloc(n * sizeof *cuts);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    rc = feed_chunked(in, n, cuts, n - 1, 0, body, &blen, rest, &rlen);
    CHECK(rc >= 0 && blen == strlen(want_body) && memcmp(body, want_body, blen) == 0 &&
          rlen == strlen(want_rest));
    free(cuts);

    /* Every strict prefix is INCOMPLETE with a decoded prefix of the body. */
    const char *body_only = "5\r\nhello\r\n0\r\n\r\n";
    size_t bn = strlen(body_only);
    bad = 0;
    for (size_t k = 0; k < bn; k++) {
        rc = feed_chunked(body_only, k, NULL, 0, 0, body, &blen, rest, &rlen);
        bad += rc != HTTP1_INCOMPLETE || blen > 5 || memcmp(body, "hello", blen) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    rc = feed_chunked(body_only, bn, NULL, 0, 0, body, &blen, rest, &rlen);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(blen, 5);

    /* Empty body; upper-case hex; leading zeros. */
    rc = feed_chunked("0\r\n\r\n", 5, NULL, 0, 0, body, &blen, rest, &rlen);
    CHECK(rc == 0 && blen == 0);
    const char *hx = "0000A\r\n0123456789\r\n0\r\n\r\n";
    rc = feed_chunked(hx, strlen(hx), NULL, 0, 0, body, &blen, rest, &rlen);
    CHECK(rc == 0 && blen == 10 && memcmp(body, "0123456789", 10) == 0);

    /* max_body: exactly at the limit passes, one over fails at the size line. */
    const char *ten = "4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n";
    rc = feed_chunked(ten, strlen(ten), NULL, 0, 10, body, &blen, rest, &rlen);
    CHECK(rc == 0 && blen == 10);
    rc = feed_chunked(ten, strlen(ten), NULL, 0, 9, body, &blen, rest, &rlen);
    CHECK_EQ_INT(rc, HTTP1_ERR);
    {
        http1_chunked_t d = {.max_body = 100};
        char big[] = "ffffffff\r\n";
        size_t len = strlen(big);
        CHECK_EQ_INT(http1_decode_chunked(&d, big, &len), HTTP1_ERR);
        CHECK(d.max_body && d.remaining > d.max_body - d.total); /* tells 413 */
    }

    /* A decoder called again after the end hands everything back as "next". */
    {
        http1_chunked_t d = {0};
        char b1[] = "0\r\n\r\n";
        size_t len = 5;
        CHECK_EQ_INT(http1_decode_chunked(&d, b1, &len), 0);
        char b2[] = "XYZ";
        len = 3;
        CHECK_EQ_INT(http1_decode_chunked(&d, b2, &len), 3);
        CHECK_EQ_INT(len, 0);
    }

    static const char *badc[] = {
        "10000000000000000\r\n",  /* 17 significant hex digits: overflow */
        "00000000000000001\r\n",  /* 17 digits even if small */
        "g\r\n",
        "\r\n",
        ";ext\r\n",
        "-1\r\n",
        "5\nhello\r\n0\r\n\r\n",   /* bare LF after size */
        "5\r\nhelloX\r\n",         /* data not followed by CRLF */
        "5\r\nhello\n0\r\n\r\n",
        "5 x\r\nhello\r\n",        /* junk after size */
        "5;a\x01\r\nhello\r\n",     /* CTL in extension */
        "5;a\nb\r\nhello\r\n",      /* bare LF in extension */
        "0\r\nX: a\x01\r\n\r\n",    /* CTL in trailer */
        "0\r\n X: a\r\n\r\n",       /* trailer starting with space */
        "0\r\n\rX",                /* CR not followed by LF at the end */
        "0x5\r\nhello\r\n",
    };
    for (size_t i = 0; i < sizeof badc / sizeof badc[0]; i++) {
        rc = feed_chunked(badc[i], strlen(badc[i]), NULL, 0, 0, body, &blen, rest, &rlen);
        CHECK_MSG(rc == HTTP1_ERR, "bad chunked %zu: rc %zd", i, rc);
    }
    /* The largest chunk size that fits is not an error by itself. */
    {
        http1_chunked_t d = {0};
        char mx[] = "ffffffffffffffff\r\nab";
        size_t len = strlen(mx);
        CHECK_EQ_INT(http1_decode_chunked(&d, mx, &len), HTTP1_INCOMPLETE);
        CHECK_EQ_INT(len, 2);
        CHECK(d.remaining == UINT64_MAX - 2);
    }
}

static void test_reasons(void) {
    static const struct {
        int code;
        const char *r;
    } v[] = {{100, "Continue"}, {200, "OK"}, {201, "Created"}, {204, "No Content"},
             {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"},
             {405, "Method Not Allowed"}, {408, "Request Timeout"}, {409, "Conflict"},
             {413, "Content Too Large"}, {414, "URI Too Long"}, {415, "Unsupported Media Type"},
             {422, "Unprocessable Content"}, {429, "Too Many Requests"},
             {431, "Request Header Fields Too Large"}, {500, "Internal Server Error"},
             {501, "Not Implemented"}, {502, "Bad Gateway"}, {503, "Service Unavailable"},
             {504, "Gateway Timeout"}, {299, "Unknown"}, {-1, "Unknown"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        CHECK_EQ_STR(http1_reason(v[i].code), v[i].r);
}

/* Not a benchmark, but a guard on the "tens of microseconds" budget: parsing a
 * typical gateway request head must take well under a microsecond. */
static void test_speed(void) {
    const char *s = "POST /v1/chat/completions HTTP/1.1\r\n"
                    "Host: localhost:8080\r\n"
                    "User-Agent: OpenAI/JS 4.0\r\n"
                    "Accept: application/json\r\n"
                    "Authorization: Bearer sk-0123456789abcdef0123456789abcdef\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: 120\r\n"
                    "X-Request-Id: 7f0c1d2e-3b4a-5968-7a8b-9c0d1e2f3a4b\r\n"
                    "\r\n";
    size_t n = strlen(s);
    char *g = guarded(s, n);
    http1_request_t r;
    const int iters = 200000;
    int fails = 0;
    uint64_t t0 = (uint64_t)clock();
    for (int i = 0; i < iters; i++) {
        r.headers = g_hdrs;
        r.num_headers = NH;
        fails += http1_parse_request(g, n, &r) != (int)n;
    }
    double ns = (double)((uint64_t)clock() - t0) * 1e9 / CLOCKS_PER_SEC / iters;
    CHECK_EQ_INT(fails, 0);
    printf("parse %zu-byte request head: %.0f ns\n", n, ns);
    CHECK(ns < 5000); /* generous: sanitizer builds are several times slower */
}

int main(void) {
    guard_init();
    test_valid_requests();
    test_pipelined();
    test_malformed_requests();
    test_too_many();
    test_responses();
    test_chunked();
    test_reasons();
    test_speed();
    return check_summary("test_http1");
}
