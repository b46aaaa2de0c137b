/* sse.c — Server-Sent Events: writing events, and parsing a stream fed in arbitrary chunks. */
#include "core/sse.h"

#include <errno.h>
#include <string.h>

/* ---- writer ---- */

int sse_write(buf_t *out, const char *event, const char *data, size_t len) {
    size_t start = out->len, elen = event ? strlen(event) : 0;
    if (event && (memchr(event, '\n', elen) || memchr(event, '\r', elen)))
        return -EINVAL;
    int rc = buf_reserve(out, len + elen + 24);
    if (rc)
        return rc;
    if (event) {
        rc |= buf_append(out, "event: ", 7);
        rc |= buf_append(out, event, elen);
        rc |= buf_append(out, "\n", 1);
    }
    size_t p = 0;
    for (;;) {
        size_t e = p;
        while (e < len && data[e] != '\n' && data[e] != '\r') e++;
        if (e > p) {
            rc |= buf_append(out, "data: ", 6);
            rc |= buf_append(out, data + p, e - p);
            rc |= buf_append(out, "\n", 1);
        } else {
            rc |= buf_append(out, "data:\n", 6);
        }
        if (e >= len)
            break;
        p = e + 1;
        if (data[e] == '\r' && p < len && data[p] == '\n')
            p++;
        if (p == len) { /* data ended in a newline: that is one more, empty, line */
            rc |= buf_append(out, "data:\n", 6);
            break;
        }
    }
    rc |= buf_append(out, "\n", 1);
    if (rc) { /* never leave half an event behind */
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        return -ENOMEM;
    }
    return 0;
}

int sse_write_comment(buf_t *out, const char *text) {
    size_t start = out->len;
    int rc = buf_append(out, ": ", 2);
    rc |= buf_appends(out, text ? text : "");
    rc |= buf_append(out, "\n\n", 2);
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        return -ENOMEM;
    }
    return 0;
}

/* ---- reader ---- */

void sse_reader_init(sse_reader_t *r, size_t max_event) {
    memset(r, 0, sizeof *r);
    buf_init(&r->in);
    buf_init(&r->data);
    buf_init(&r->event);
    buf_init(&r->id);
    buf_init(&r->out_event);
    buf_init(&r->out_data);
    r->max_event = max_event ? max_event : SSE_DEFAULT_MAX_EVENT;
    r->retry_ms = -1;
}

void sse_reader_free(sse_reader_t *r) {
    buf_free(&r->in);
    buf_free(&r->data);
    buf_free(&r->event);
    buf_free(&r->id);
    buf_free(&r->out_event);
    buf_free(&r->out_data);
}

int sse_feed(sse_reader_t *r, const void *p, size_t n) {
    if (r->error)
        return r->error;
    /* Only a partial line is left before pos; drop what was consumed so `in` stays small. */
    if (r->pos) {
        buf_consume(&r->in, r->pos);
        r->scan -= r->pos;
        r->pos = 0;
    }
    return buf_append(&r->in, p, n);
}

static void set_buf(buf_t *b, const char *p, size_t n) {
    buf_reset(b);
    buf_append(b, p, n);
}

static int field_is(const char *f, size_t n, const char *name) {
    return strlen(name) == n && memcmp(f, name, n) == 0;
}

/* Apply one non-empty line to the event being built. */
static int process_line(sse_reader_t *r, const char *line, size_t n) {
    if (line[0] == ':')
        return 0; /* comment */
    const char *colon = memchr(line, ':', n);
    size_t fl = colon ? (size_t)(colon - line) : n;
    const char *v = colon ? colon + 1 : line + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl && *v == ' ') { /* exactly one leading space belongs to the syntax */
        v++;
        vl--;
    }
    if (field_is(line, fl, "data")) {
        if (r->data.len + vl + 1 + r->event.len > r->max_event)
            return -EMSGSIZE;
        int rc = buf_append(&r->data, v, vl);
        if (!rc)
            rc = buf_append(&r->data, "\n", 1);
        r->has_data = 1;
        return rc;
    }
    if (field_is(line, fl, "event")) {
        set_buf(&r->event, v, vl);
        return 0;
    }
    if (field_is(line, fl, "id")) {
        if (!memchr(v, '\0', vl))
            set_buf(&r->id, v, vl);
        return 0;
    }
    if (field_is(line, fl, "retry")) {
        int64_t ms = 0;
        if (!vl)
            return 0;
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9')
                return 0; /* not all digits: ignored, per the spec */
            if (ms < INT64_MAX / 10 - 10)
                ms = ms * 10 + (v[i] - '0');
        }
        r->retry_ms = ms;
        return 0;
    }
    return 0; /* unknown fields are ignored */
}

static void fill_event(sse_reader_t *r, sse_event_t *ev) {
    static const char message[] = "message";
    if (r->out_event.len) {
        ev->event = r->out_event.data;
        ev->event_len = r->out_event.len;
    } else {
        ev->event = message;
        ev->event_len = sizeof message - 1;
    }
    ev->data = r->out_data.data ? r->out_data.data : "";
    ev->data_len = r->out_data.len;
    ev->id = r->id.data ? r->id.data : "";
    ev->id_len = r->id.len;
}

int sse_next(sse_reader_t *r, sse_event_t *ev) {
    if (r->error)
        return r->error;
    for (;;) {
        char *s = r->in.data;
        size_t len = r->in.len;
        if (!r->bom_done) {
            static const char bom[3] = {'\xEF', '\xBB', '\xBF'};
            size_t avail = len - r->pos, k = avail < 3 ? avail : 3;
            if (!avail)
                return 0;
            if (memcmp(s + r->pos, bom, k)) {
                r->bom_done = 1;
            } else if (avail < 3) {
                return 0;
            } else {
                r->pos += 3;
                r->scan = r->pos;
                r->bom_done = 1;
            }
        }
        if (r->skip_lf && r->pos < len) {
            if (s[r->pos] == '\n')
                r->pos++;
            r->skip_lf = 0;
            if (r->scan < r->pos)
                r->scan = r->pos;
        }
        size_t e = r->scan > r->pos ? r->scan : r->pos;
        while (e < len && s[e] != '\n' && s[e] != '\r') e++;
        if (e >= len) {
            r->scan = len;
            if (len - r->pos + r->data.len + r->event.len > r->max_event)
                return r->error = -EMSGSIZE;
            return 0;
        }
        size_t start = r->pos, n = e - start;
        r->pos = e + 1;
        if (s[e] == '\r') {
            if (r->pos < len) {
                if (s[r->pos] == '\n')
                    r->pos++;
            } else {
                r->skip_lf = 1; /* the '\n' of a "\r\n" may be in the next chunk */
            }
        }
        r->scan = r->pos;
        if (n) {
            int rc = process_line(r, s + start, n);
            if (rc == -EMSGSIZE)
                return r->error = rc;
            if (rc)
                return rc;
            continue;
        }
        /* Blank line: dispatch, unless no data field was seen (then just reset the type). */
        if (!r->has_data) {
            buf_reset(&r->event);
            continue;
        }
        buf_t tmp = r->out_data;
        r->out_data = r->data;
        r->data = tmp;
        buf_reset(&r->data);
        r->out_data.len--; /* the newline after the last data line */
        r->out_data.data[r->out_data.len] = '\0';
        tmp = r->out_event;
        r->out_event = r->event;
        r->event = tmp;
        buf_reset(&r->event);
        r->has_data = 0;
        fill_event(r, ev);
        return 1;
    }
}

int sse_parse(sse_reader_t *r, const void *p, size_t n, sse_event_cb cb, void *arg) {
    int rc = sse_feed(r, p, n);
    if (rc)
        return rc;
    sse_event_t ev;
    while ((rc = sse_next(r, &ev)) == 1) {
        int stop = cb(&ev, arg);
        if (stop)
            return stop;
    }
    return rc;
}
