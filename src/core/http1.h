/* http1.h — incremental HTTP/1.1 request/response head parser and chunked-body decoder.
 * Never allocates: results point into the caller's buffer. */
#ifndef TOLLGATE_CORE_HTTP1_H
#define TOLLGATE_CORE_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Return codes of the parse functions (a positive value is the head's length). */
#define HTTP1_ERR          (-1) /* malformed: answer 400 and close */
#define HTTP1_INCOMPLETE   (-2) /* need more bytes: call again with the longer buffer */
#define HTTP1_TOO_MANY     (-3) /* more headers than the caller's array holds: 431 */

typedef struct http1_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing whitespace stripped */
    size_t value_len;
} http1_header_t;

/* Facts about the body and connection, derived from the headers while parsing.
 * Request: content_length -1 and chunked 0 means no body. Response: status
 * 1xx/204/304 report content_length 0 (never a body); otherwise -1 and chunked
 * 0 means the body runs until the connection closes (keep_alive is then 0). */
typedef struct http1_framing {
    int64_t content_length; /* -1 when absent */
    int chunked;            /* Transfer-Encoding: chunked */
    int keep_alive;         /* after this message: HTTP/1.1 default yes, 1.0 default no */
    int expect_continue;    /* Expect: 100-continue */
} http1_framing_t;

typedef struct http1_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent, e.g. "/v1/models?x=1" */
    size_t target_len;
    int minor_version;  /* 0 or 1 */
    http1_header_t *headers; /* caller's array */
    size_t num_headers;      /* in: capacity of headers; out: headers found */
    http1_framing_t framing;
} http1_request_t;

typedef struct http1_response {
    int minor_version;
    int status;
    const char *reason;
    size_t reason_len;
    http1_header_t *headers;
    size_t num_headers; /* in: capacity; out: found */
    http1_framing_t framing;
} http1_response_t;

/* Parse a request head from buf[0..len). Returns the head's length in bytes
 * (the body starts there), HTTP1_INCOMPLETE, HTTP1_ERR or HTTP1_TOO_MANY.
 * Conflicting framing (Content-Length with chunked, two different lengths,
 * an unknown transfer-coding) is HTTP1_ERR. The caller enforces the head-size
 * limit: if INCOMPLETE and len exceeds its limit, answer 431. Stateless: call
 * again from the start of the head with more bytes. On any non-positive return
 * num_headers is left at its input capacity, so the struct can be reused as is.
 * Strict: CRLF line ends only, no obs-fold, token method/names, no CTL in values,
 * HTTP/1.0 and 1.1 only, Transfer-Encoding must be exactly "chunked" (and is an
 * error in HTTP/1.0). Empty lines before the request-line are skipped. */
int http1_parse_request(const char *buf, size_t len, http1_request_t *req);

/* Parse a response head; same contract. */
int http1_parse_response(const char *buf, size_t len, http1_response_t *res);

/* Case-insensitive header lookup; NULL when absent. */
const http1_header_t *http1_find_header(const http1_header_t *h, size_t n, const char *name);

/* Incremental chunked-body decoder, zero-initialised before the first call. */
typedef struct http1_chunked {
    uint64_t remaining; /* bytes left in the current chunk */
    int state;          /* internal */
    int hex_digits;     /* internal */
    size_t max_body;    /* 0 = unlimited; else decoding more is HTTP1_ERR */
    uint64_t total;     /* decoded bytes so far */
} http1_chunked_t;

/* Decode chunked data in place. On entry buf[0..*len) holds raw bytes; on
 * return buf[0..*len) holds the decoded body bytes found so far in this call.
 * Returns HTTP1_INCOMPLETE (body not finished: call again with the next bytes),
 * HTTP1_ERR (malformed, or over max_body), or >= 0 when the body is complete:
 * the number of bytes following it (the next pipelined message), which were
 * moved to directly after the decoded data: buf[*len .. *len + ret).
 * Chunk extensions and trailer fields are validated and dropped. After an ERR,
 * d->max_body && d->remaining > d->max_body - d->total tells "too large" (413)
 * from "malformed" (400). */
ssize_t http1_decode_chunked(http1_chunked_t *d, char *buf, size_t *len);

/* Reason phrase for a status code ("OK", "Too Many Requests"...; "Unknown"). */
const char *http1_reason(int status);

#endif
