/* sse.h — Server-Sent Events: a writer and an incremental reader (WHATWG event-stream rules). */
#ifndef TOLLGATE_CORE_SSE_H
#define TOLLGATE_CORE_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Default limit on one event (event name + data + a partial line) held by a reader. */
#define SSE_DEFAULT_MAX_EVENT (1u << 20)

/* One dispatched event. Pointers are into the reader and stay valid until the next
 * sse_feed / sse_next / sse_reader_free call. Strings are NUL-terminated as well. */
typedef struct sse_event {
    const char *event; /* event type; "message" when the stream named none */
    size_t event_len;
    const char *data;  /* data lines joined with '\n' (no trailing newline) */
    size_t data_len;
    const char *id;    /* last event id seen so far on this stream ("" when none) */
    size_t id_len;
} sse_event_t;

/* Called once per event by sse_parse; return non-zero to stop (sse_parse returns it). */
typedef int (*sse_event_cb)(const sse_event_t *ev, void *arg);

/* Reader state for one stream. Owns its buffers: init, feed/next..., free. Not thread-safe
 * (one stream belongs to one event loop). */
typedef struct sse_reader {
    buf_t in;         /* unparsed input; bytes before `pos` are consumed */
    size_t pos;       /* start of the first unprocessed line in `in` */
    size_t scan;      /* where the search for the next line end resumes (>= pos) */
    buf_t data;       /* data buffer of the event being built */
    buf_t event;      /* event type buffer of the event being built */
    buf_t id;         /* last event id (persists across events, per the spec) */
    buf_t out_event;  /* event name handed out by sse_next (kept until the next call) */
    buf_t out_data;   /* data handed out by sse_next */
    size_t max_event; /* limit on event + data + pending line, bytes */
    int64_t retry_ms; /* last valid "retry:" value, -1 when none */
    int error;        /* sticky: once a limit is exceeded the stream is abandoned */
    uint8_t skip_lf;  /* the last line ended in '\r': a '\n' right after it is part of it */
    uint8_t bom_done; /* the optional leading U+FEFF has been dealt with */
    uint8_t has_data; /* at least one data field since the last dispatch */
} sse_reader_t;

/* Append one event: "event: NAME\n" (when event is not NULL), one "data: LINE\n" per line
 * of data (split on \n, \r\n or \r, so it reads back as the same text with \n), then the
 * blank line. 0, -EINVAL (event name containing CR or LF), or -ENOMEM. */
int sse_write(buf_t *out, const char *event, const char *data, size_t len);
/* Append a comment line and a blank line (": text\n\n"), e.g. a keep-alive. */
int sse_write_comment(buf_t *out, const char *text);

/* max_event 0 means SSE_DEFAULT_MAX_EVENT. */
void sse_reader_init(sse_reader_t *r, size_t max_event);
void sse_reader_free(sse_reader_t *r);
/* Give the reader the next bytes of the stream (any chunking). 0, or -ENOMEM, or the
 * sticky error. Input is copied; call sse_next until it returns 0 to drain events. */
int sse_feed(sse_reader_t *r, const void *p, size_t n);
/* Next complete event: 1 and *ev filled, 0 when more input is needed, -EMSGSIZE when an
 * event (or an unterminated line) grew past max_event (sticky), -ENOMEM. */
int sse_next(sse_reader_t *r, sse_event_t *ev);
/* sse_feed then sse_next until drained, calling cb per event. 0, a negative errno, or the
 * callback's non-zero return value. */
int sse_parse(sse_reader_t *r, const void *p, size_t n, sse_event_cb cb, void *arg);

#endif
