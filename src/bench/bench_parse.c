/* bench_parse.c — what the load generator reads from responses: SSE content events, token counts. */
#include <string.h>

#include "bench/bench.h"
#include "core/ev.h"
#include "core/json.h"

/* Why not core/sse: the reader copies input into growable buffers and has no
 * reset, so reusing it per request would allocate; the load generator only
 * needs "data:" lines of OpenAI streams (one data line per event), scanned
 * here in a fixed per-slot line buffer. */

void bench_stream_reset(bench_stream_t *s) {
    s->first_content_ns = 0;
    s->content_events = 0;
    s->usage_tokens = -1;
    s->bad = 0;
    s->overflow = 0;
    s->len = 0;
}

/* Does choices[0] carry output text (delta.content for chat, text for completions)? */
static int has_content(const json_doc_t *d) {
    int choices = json_obj_get(d, 0, "choices");
    int c0 = choices >= 0 ? json_arr_get(d, choices, 0) : -1;
    if (c0 < 0)
        return 0;
    int t = -1;
    int delta = json_obj_get(d, c0, "delta");
    if (delta >= 0)
        t = json_obj_get(d, delta, "content");
    if (t < 0)
        t = json_obj_get(d, c0, "text");
    return t >= 0 && d->toks[t].type == JSON_STRING && d->toks[t].end > d->toks[t].start;
}

/* usage.completion_tokens, or -1. */
static int64_t usage_tokens(const json_doc_t *d) {
    int u = json_obj_get(d, 0, "usage");
    int c = u >= 0 ? json_obj_get(d, u, "completion_tokens") : -1;
    int64_t v;
    if (c >= 0 && json_get_i64(d, c, &v) == 0 && v >= 0)
        return v;
    return -1;
}

static void data_line(bench_stream_t *s, const char *p, size_t n, void *toks, size_t ntoks) {
    if (n >= 1 && p[0] == ' ')
        p++, n--;
    if (n == 6 && !memcmp(p, "[DONE]", 6))
        return;
    json_doc_t d;
    if (json_parse(p, n, toks, ntoks, 64, &d, NULL) < 0) {
        s->bad = 1;
        return;
    }
    if (has_content(&d)) {
        if (!s->content_events)
            s->first_content_ns = ev_clock_ns();
        s->content_events++;
    }
    int64_t u = usage_tokens(&d);
    if (u >= 0)
        s->usage_tokens = u;
}

static void end_line(bench_stream_t *s, void *toks, size_t ntoks) {
    size_t n = s->len;
    if (n && s->line[n - 1] == '\r')
        n--;
    if (s->overflow) {
        /* Too long to parse: a data line this big carries content. */
        if (n >= 5 && !memcmp(s->line, "data:", 5)) {
            if (!s->content_events)
                s->first_content_ns = ev_clock_ns();
            s->content_events++;
        }
    } else if (n >= 5 && !memcmp(s->line, "data:", 5)) {
        data_line(s, s->line + 5, n - 5, toks, ntoks);
    }
    s->len = 0;
    s->overflow = 0;
}

void bench_stream_feed(bench_stream_t *s, const char *p, size_t n, void *toks, size_t ntoks) {
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        size_t room = sizeof s->line - s->len;
        if (take <= room) {
            memcpy(s->line + s->len, p, take);
            s->len += take;
        } else {
            /* Keep the prefix (enough to recognise "data:"), drop the rest. */
            memcpy(s->line + s->len, p, room);
            s->len += room;
            s->overflow = 1;
        }
        if (!nl)
            return;
        end_line(s, toks, ntoks);
        p += take + 1;
        n -= take + 1;
    }
}

int64_t bench_body_tokens(const char *body, size_t len, void *toks, size_t ntoks) {
    json_doc_t d;
    if (json_parse(body, len, toks, ntoks, 64, &d, NULL) < 0)
        return -1;
    int64_t u = usage_tokens(&d);
    return u < 0 ? 0 : u;
}
