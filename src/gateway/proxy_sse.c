/* proxy_sse.c — the stream relay: cuts the upstream's SSE bytes into events, reads the
 * usage event, and passes events on to the client as they complete. */
#define _GNU_SOURCE /* memmem */
#include "gateway/proxy_sse.h"

#include <string.h>

#include "core/log.h"
#include "gateway/proxy_req.h"

size_t proxy_sse_event_len(const char *p, size_t n) {
    int line_empty = 1;
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '\r' || c == '\n') {
            size_t eol = i + 1;
            if (c == '\r') {
                if (i + 1 >= n) return 0; /* a LF may follow: wait and see */
                if (p[i + 1] == '\n') eol++;
            }
            if (line_empty) return eol;
            line_empty = 1;
            i = eol;
            continue;
        }
        line_empty = 0;
        i++;
    }
    return 0;
}

int proxy_sse_usage(const char *ev, size_t len, json_tok_t *toks, size_t cap, int64_t *prompt,
                    int64_t *completion, int *usage_only) {
    /* Cheap test first: nearly every event is a token delta without a usage object. */
    if (!memmem(ev, len, "\"usage\"", 7)) return 0;
    const char *p = ev, *end = ev + len;
    while (p < end) {
        const char *eol = p;
        while (eol < end && *eol != '\n' && *eol != '\r') eol++;
        if (eol - p > 5 && !memcmp(p, "data:", 5)) {
            const char *s = p + 5;
            if (s < eol && *s == ' ') s++;
            json_doc_t d;
            if (json_parse(s, (size_t)(eol - s), toks, cap, PROXY_JSON_DEPTH, &d, NULL) <= 0 ||
                toks[0].type != JSON_OBJECT)
                return 0;
            int u = json_obj_get(&d, 0, "usage");
            if (u < 0 || d.toks[u].type != JSON_OBJECT) return 0;
            int pt = json_obj_get(&d, u, "prompt_tokens");
            int ct = json_obj_get(&d, u, "completion_tokens");
            int64_t v;
            *prompt = pt >= 0 && json_get_i64(&d, pt, &v) == 0 ? v : -1;
            *completion = ct >= 0 && json_get_i64(&d, ct, &v) == 0 ? v : -1;
            int ch = json_obj_get(&d, 0, "choices");
            *usage_only = ch < 0 || (d.toks[ch].type == JSON_ARRAY && d.toks[ch].size == 0);
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

/* Send the head of a streamed response (once). 0, or -1 when the client is gone. */
int proxy_relay_commit(preq_t *p) {
    if (p->committed) return 0;
    p->committed = 1;
    p->first_ns = ev_clock_ns(); /* time to first token, as the client sees it */
    proxy_variant_header(p);
    if (httpd_stream_begin(p->req, p->status, p->ctype[0] ? p->ctype : "text/event-stream") < 0)
        return -1;
    /* The first event is out: only the total deadline is left. */
    uint64_t now = ev_now_ns(p->w->loop);
    uint64_t left = p->deadline_total > now ? (p->deadline_total - now) / 1000000 + 1 : 0;
    ev_timer_start(p->w->loop, &p->timer, left, proxy_deadline_cb, p);
    return 0;
}

/* Write to a streaming client. The upstream is not paused while the client reads slowly
 * (the HTTP client has no flow control to offer), so a client that falls more than
 * PROXY_MAX_RESPONSE behind is dropped rather than buffered without bound. 0 or -1. */
static int client_write(preq_t *p, const char *data, size_t len) {
    long pending = httpd_stream_write(p->req, data, len);
    if (pending < 0) return -1;
    if ((size_t)pending > PROXY_MAX_RESPONSE) {
        log_warn("client too slow, stream dropped", LOG_INT("queued_bytes", pending),
                 LOG_STR("model", p->route->cfg->model));
        return -1;
    }
    return 0;
}

/* Forward the complete events in p->resp; keep a partial one. Strips the usage-only
 * event when the client did not ask for usage. 0, or -1 when the client is gone. */
int proxy_relay_forward(preq_t *p, int final) {
    const char *s = p->resp.data;
    size_t n = p->resp.len, off = 0, from = 0;
    while (off < n) {
        size_t el = proxy_sse_event_len(s + off, n - off);
        if (el == 0) {
            if (!final) break;
            el = n - off; /* the stream ended inside an event: pass on what there is */
        }
        int64_t pt, ct;
        int only;
        if (proxy_sse_usage(s + off, el, p->w->toks, p->w->ntoks, &pt, &ct, &only) == 1) {
            p->prompt_tokens = pt;
            p->completion_tokens = ct;
            if (only && !p->client_usage) {
                if (off > from) {
                    if (proxy_relay_commit(p) < 0 || client_write(p, s + from, off - from) < 0)
                        return -1;
                }
                from = off + el;
            }
        }
        off += el;
    }
    if (off > from) {
        if (proxy_relay_commit(p) < 0 || client_write(p, s + from, off - from) < 0) return -1;
    }
    buf_consume(&p->resp, off);
    return 0;
}
