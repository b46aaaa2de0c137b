/* test_sse.c — SSE writer and reader: WHATWG field rules, every chunking, limits, round trip. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/sse.h"

/* Collects events as "event|id|data\n" records so whole streams compare as one string. */
typedef struct collect {
    buf_t out;
    int n;
} collect_t;

static int on_event(const sse_event_t *ev, void *arg) {
    collect_t *c = arg;
    buf_append(&c->out, ev->event, ev->event_len);
    buf_append(&c->out, "|", 1);
    buf_append(&c->out, ev->id, ev->id_len);
    buf_append(&c->out, "|", 1);
    buf_append(&c->out, ev->data, ev->data_len);
    buf_append(&c->out, "\n", 1);
    c->n++;
    return 0;
}

/* Parse a whole stream in one chunk; returns the records (caller frees). */
static char *parse_all(const char *s, size_t n, int *count) {
    sse_reader_t r;
    collect_t c = {0};
    buf_init(&c.out);
    sse_reader_init(&r, 0);
    int rc = sse_parse(&r, s, n, on_event, &c);
    sse_reader_free(&r);
    if (count)
        *count = rc ? -1 : c.n;
    buf_append(&c.out, "", 0);
    return c.out.data ? c.out.data : calloc(1, 1);
}

/* The same stream split at every position (two chunks) and fed byte by byte must give the
 * same records as one chunk. Returns the number of chunkings that differed. */
static int split_mismatches(const char *s, size_t n, const char *want) {
    int bad = 0;
    for (size_t cut = 0; cut <= n; cut++) {
        sse_reader_t r;
        collect_t c = {0};
        buf_init(&c.out);
        sse_reader_init(&r, 0);
        int rc = sse_parse(&r, s, cut, on_event, &c);
        rc |= sse_parse(&r, s + cut, n - cut, on_event, &c);
        if (rc || strcmp(c.out.data ? c.out.data : "", want))
            bad++;
        buf_free(&c.out);
        sse_reader_free(&r);
    }
    sse_reader_t r;
    collect_t c = {0};
    buf_init(&c.out);
    sse_reader_init(&r, 0);
    int rc = 0;
    for (size_t i = 0; i < n; i++) rc |= sse_parse(&r, s + i, 1, on_event, &c);
    if (rc || strcmp(c.out.data ? c.out.data : "", want))
        bad++;
    buf_free(&c.out);
    sse_reader_free(&r);
    return bad;
}

struct tcase {
    const char *in;
    const char *want; /* records "event|id|data\n" */
};

static const struct tcase cases[] = {
    {"data: hello\n\n", "message||hello\n"},
    {"data:hello\n\n", "message||hello\n"},
    {"data:  two spaces\n\n", "message|| two spaces\n"}, /* only one space is stripped */
    {"data: a\ndata: b\n\n", "message||a\nb\n"},
    {"data\n\n", "message||\n"},                 /* field with no colon: empty value */
    {"data:\n\n", "message||\n"},
    {"data\ndata\n\n", "message||\n\n"},
    {"\n\n\n", ""},                              /* blank lines with no data dispatch nothing */
    {"event: ping\n\n", ""},                      /* no data: no event, type is reset */
    {"event: ping\n\ndata: x\n\n", "message||x\n"},
    {"event: add\ndata: 1\n\n", "add||1\n"},
    {"event:add\r\ndata:1\r\n\r\n", "add||1\n"},  /* CRLF */
    {"event:add\rdata:1\r\r", "add||1\n"},        /* bare CR */
    {"data:a\r\n\ndata:b\n\r\n", "message||a\nmessage||b\n"},
    {": comment\ndata: x\n: another\n\n", "message||x\n"},
    {":\n\n", ""},
    {"id: 7\ndata: a\n\ndata: b\n\n", "message|7|a\nmessage|7|b\n"}, /* id persists */
    {"id: 7\ndata: a\n\nid\ndata: b\n\n", "message|7|a\nmessage||b\n"}, /* id reset */
    {"data: x\nfoo: bar\nDATA: y\n\n", "message||x\n"}, /* unknown (case-sensitive) fields */
    {"data: x", ""},                                   /* unterminated event: never dispatched */
    {"data: x\n", ""},
    {"\xEF\xBB\xBF" "data: bom\n\n", "message||bom\n"}, /* a leading BOM is skipped */
    {"\xEF\xBB" "data: x\n\n", ""},                   /* not a BOM: a field named "\xEF\xBB" "data" */
    {"data: {\"a\":1}\n\ndata: [DONE]\n\n", "message||{\"a\":1}\nmessage||[DONE]\n"},
    {"data: a:b: c\n\n", "message||a:b: c\n"},
    {"event: e\ndata: 1\nevent: f\n\n", "f||1\n"},     /* last event field wins */
    {"data: x\n\n\n\ndata: y\n\n", "message||x\nmessage||y\n"},
};

static void test_cases(void) {
    int bad = 0, split_bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int n;
        char *got = parse_all(cases[i].in, strlen(cases[i].in), &n);
        if (n < 0 || strcmp(got, cases[i].want)) {
            bad++;
            fprintf(stderr, "case %zu: got \"%s\" want \"%s\"\n", i, got, cases[i].want);
        }
        free(got);
        int m = split_mismatches(cases[i].in, strlen(cases[i].in), cases[i].want);
        if (m) {
            split_bad++;
            fprintf(stderr, "case %zu: %d chunkings differ\n", i, m);
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(split_bad, 0);
}

/* An OpenAI-style stream with usage at the end, through the pull API. */
static void test_openai_stream(void) {
    const char *s =
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"2\\u00d7 Large\"}}]}\n\n"
        ": keep-alive\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4}}\n\n"
        "data: [DONE]\n\n";
    sse_reader_t r;
    sse_reader_init(&r, 0);
    sse_event_t ev;
    int events = 0, done = 0, rc = 0;
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i += 7) { /* 7-byte chunks */
        CHECK_EQ_INT(sse_feed(&r, s + i, i + 7 <= n ? 7 : n - i), 0);
        while ((rc = sse_next(&r, &ev)) == 1) {
            events++;
            if (ev.data_len == 6 && !memcmp(ev.data, "[DONE]", 6))
                done = events;
            CHECK_EQ_INT(strlen(ev.data), ev.data_len); /* NUL-terminated */
            CHECK_EQ_STR(ev.event, "message");
        }
        if (rc < 0)
            break;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(events, 4);
    CHECK_EQ_INT(done, 4);
    CHECK_EQ_INT(sse_next(&r, &ev), 0);
    sse_reader_free(&r);
}

static void test_retry_and_id(void) {
    sse_reader_t r;
    sse_reader_init(&r, 0);
    sse_event_t ev;
    static const char s[] = "retry: 3000\nretry: 12x\nretry:\nid: a\0b\nid: ok\ndata: 1\n\n";
    CHECK_EQ_INT(sse_feed(&r, s, sizeof s - 1), 0);
    CHECK_EQ_INT(sse_next(&r, &ev), 1);
    CHECK_EQ_INT(r.retry_ms, 3000); /* invalid retry values are ignored */
    CHECK_EQ_STR(ev.id, "ok");      /* an id containing NUL is ignored */
    CHECK_EQ_STR(ev.data, "1");
    sse_reader_free(&r);
    sse_reader_init(&r, 0);
    static const char s2[] = "id: x\0y\ndata: 2\n\n";
    CHECK_EQ_INT(sse_feed(&r, s2, sizeof s2 - 1), 0);
    CHECK_EQ_INT(sse_next(&r, &ev), 1);
    CHECK_EQ_INT(ev.id_len, 0);
    CHECK_EQ_INT(r.retry_ms, -1);
    sse_reader_free(&r);
}

static void test_limits(void) {
    sse_reader_t r;
    sse_event_t ev;
    /* many data lines building one big event */
    sse_reader_init(&r, 100);
    int rc = 0;
    for (int i = 0; i < 20 && rc >= 0; i++) {
        rc = sse_feed(&r, "data: 0123456789\n", 17);
        if (rc == 0)
            rc = sse_next(&r, &ev);
    }
    CHECK_EQ_INT(rc, -EMSGSIZE);
    CHECK_EQ_INT(sse_next(&r, &ev), -EMSGSIZE); /* sticky */
    CHECK_EQ_INT(sse_feed(&r, "\n", 1), -EMSGSIZE);
    sse_reader_free(&r);
    /* one endless line */
    sse_reader_init(&r, 100);
    rc = 0;
    for (int i = 0; i < 20 && rc >= 0; i++) {
        rc = sse_feed(&r, "xxxxxxxxxx", 10);
        if (rc == 0)
            rc = sse_next(&r, &ev);
    }
    CHECK_EQ_INT(rc, -EMSGSIZE);
    sse_reader_free(&r);
    /* events under the limit pass however many there are */
    sse_reader_init(&r, 100);
    int n = 0;
    for (int i = 0; i < 1000; i++) {
        sse_feed(&r, "data: 0123456789012345678901234567890123456789\n\n", 48);
        while ((rc = sse_next(&r, &ev)) == 1) n++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, 1000);
    CHECK(r.in.cap < 1024); /* consumed input does not pile up */
    sse_reader_free(&r);
}

static int stop_after_one(const sse_event_t *ev, void *arg) {
    (*(int *)arg)++;
    return 42;
}

static void test_callback_stop(void) {
    sse_reader_t r;
    sse_reader_init(&r, 0);
    int calls = 0;
    CHECK_EQ_INT(sse_parse(&r, "data: a\n\ndata: b\n\n", 18, stop_after_one, &calls), 42);
    CHECK_EQ_INT(calls, 1);
    sse_event_t ev; /* the rest is still there */
    CHECK_EQ_INT(sse_next(&r, &ev), 1);
    CHECK_EQ_STR(ev.data, "b");
    sse_reader_free(&r);
}

static void test_writer(void) {
    buf_t b;
    buf_init(&b);
    CHECK_EQ_INT(sse_write(&b, NULL, "{\"a\":1}", 7), 0);
    CHECK_EQ_STR(b.data, "data: {\"a\":1}\n\n");
    buf_reset(&b);
    CHECK_EQ_INT(sse_write(&b, "update", "l1\nl2\r\nl3\rl4", 12), 0);
    CHECK_EQ_STR(b.data, "event: update\ndata: l1\ndata: l2\ndata: l3\ndata: l4\n\n");
    buf_reset(&b);
    CHECK_EQ_INT(sse_write(&b, NULL, "", 0), 0);
    CHECK_EQ_STR(b.data, "data:\n\n");
    buf_reset(&b);
    CHECK_EQ_INT(sse_write(&b, NULL, "a\n", 2), 0);
    CHECK_EQ_STR(b.data, "data: a\ndata:\n\n");
    buf_reset(&b);
    CHECK_EQ_INT(sse_write(&b, "bad\nname", "x", 1), -EINVAL);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(sse_write_comment(&b, "ping"), 0);
    CHECK_EQ_STR(b.data, ": ping\n\n");
    int n;
    char *got = parse_all(b.data, b.len, &n);
    CHECK_EQ_INT(n, 0);
    free(got);
    buf_free(&b);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random data written then read back at random chunkings equals the input with CRLF/CR
 * normalised to LF. */
static void test_roundtrip(void) {
    static const char alphabet[] = "ab :\n\r\x01\xc3\xa9{}\"";
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        char data[64], norm[64];
        size_t n = rnd() % 40, m = 0;
        for (size_t i = 0; i < n; i++) data[i] = alphabet[rnd() % (sizeof alphabet - 1)];
        for (size_t i = 0; i < n; i++) {
            if (data[i] == '\r') {
                norm[m++] = '\n';
                if (i + 1 < n && data[i + 1] == '\n')
                    i++;
            } else {
                norm[m++] = data[i];
            }
        }
        buf_t b;
        buf_init(&b);
        const char *evname = (rnd() & 1) ? "delta" : NULL;
        sse_write(&b, evname, data, n);
        sse_write(&b, NULL, "end", 3);
        sse_reader_t r;
        sse_reader_init(&r, 0);
        sse_event_t ev;
        int got = 0;
        size_t p = 0;
        while (p < b.len) {
            size_t k = 1 + rnd() % 9;
            if (k > b.len - p)
                k = b.len - p;
            sse_feed(&r, b.data + p, k);
            p += k;
            while (sse_next(&r, &ev) == 1) {
                if (got == 0 && (ev.data_len != m || memcmp(ev.data, norm, m) ||
                                 strcmp(ev.event, evname ? evname : "message")))
                    bad++;
                if (got == 1 && strcmp(ev.data, "end"))
                    bad++;
                got++;
            }
        }
        if (got != 2)
            bad++;
        sse_reader_free(&r);
        buf_free(&b);
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void) {
    test_cases();
    test_openai_stream();
    test_retry_and_id();
    test_limits();
    test_callback_stop();
    test_writer();
    test_roundtrip();
    return check_summary("test_sse");
}
