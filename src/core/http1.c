/* http1.c — HTTP/1.1 head parser and chunked decoder: no allocation, strict framing (anti-smuggling). */
#include "core/http1.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/* Character classes (RFC 9110/9112), one table lookup per byte on the hot path. */
#define C_TCHAR  1 /* token character: methods, header names, codings */
#define C_VCHAR  2 /* allowed inside a field value or reason: HTAB SP VCHAR obs-text */
#define C_TARGET 4 /* request-target: visible ASCII */
#define C_HEX    8

static const unsigned char cls[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6, 6, 6, 6, 6, 6,
    6, 15, 15, 15, 15, 15, 15, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
    7, 15, 15, 15, 15, 15, 15, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Framing facts gathered header by header, judged once the head is complete. */
struct fstate {
    int64_t cl;   /* Content-Length, -1 while absent */
    int te;       /* a Transfer-Encoding header was seen */
    int chunked;  /* ... and it said exactly "chunked" */
    int close;    /* Connection: close */
    int keep;     /* Connection: keep-alive */
    int expect;   /* Expect: 100-continue */
};

static int is_ows(char c) {
    return c == ' ' || c == '\t';
}

static int eq_nocase(const char *a, size_t alen, const char *lit, size_t llen) {
    return alen == llen && strncasecmp(a, lit, llen) == 0;
}

/* Calls fn on each element of a comma-separated list value, with OWS trimmed.
 * Empty elements are passed through (as length 0) for the caller to judge. */
typedef int (*elem_fn)(const char *p, size_t n, struct fstate *fs);

static int for_each_elem(const char *v, size_t n, struct fstate *fs, elem_fn fn) {
    size_t i = 0;
    for (;;) {
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (s < e && is_ows(v[s]))
            s++;
        while (e > s && is_ows(v[e - 1]))
            e--;
        int rc = fn(v + s, e - s, fs);
        if (rc)
            return rc;
        if (i >= n)
            return 0;
        i++; /* skip ',' */
    }
}

/* Content-Length: 1*DIGIT, no sign, no overflow; every occurrence (repeated
 * header or list element) must carry the same value, else two parties could
 * disagree on where the body ends. */
static int cl_elem(const char *p, size_t n, struct fstate *fs) {
    if (n == 0)
        return HTTP1_ERR;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)p[i] - '0';
        if (d > 9)
            return HTTP1_ERR;
        if (v > (INT64_MAX - (int64_t)d) / 10)
            return HTTP1_ERR;
        v = v * 10 + (int64_t)d;
    }
    if (fs->cl >= 0 && fs->cl != v)
        return HTTP1_ERR;
    fs->cl = v;
    return 0;
}

/* Transfer-Encoding: we decode only chunked, so the only acceptable value is a
 * single "chunked". Any other coding (or chunked twice) is an error rather
 * than something to pass through: a body framed in a way we don't understand
 * is exactly what request smuggling exploits. */
static int te_elem(const char *p, size_t n, struct fstate *fs) {
    if (!eq_nocase(p, n, "chunked", 7) || fs->chunked)
        return HTTP1_ERR;
    fs->chunked = 1;
    return 0;
}

static int conn_elem(const char *p, size_t n, struct fstate *fs) {
    if (eq_nocase(p, n, "close", 5))
        fs->close = 1;
    else if (eq_nocase(p, n, "keep-alive", 10))
        fs->keep = 1;
    return 0; /* other options (Upgrade, TE, ...) don't affect framing */
}

static int frame_header(const http1_header_t *h, struct fstate *fs) {
    switch (h->name_len) {
    case 14:
        if (eq_nocase(h->name, 14, "content-length", 14))
            return for_each_elem(h->value, h->value_len, fs, cl_elem);
        break;
    case 17:
        if (eq_nocase(h->name, 17, "transfer-encoding", 17)) {
            fs->te = 1;
            return for_each_elem(h->value, h->value_len, fs, te_elem);
        }
        break;
    case 10:
        if (eq_nocase(h->name, 10, "connection", 10))
            return for_each_elem(h->value, h->value_len, fs, conn_elem);
        break;
    case 6:
        if (eq_nocase(h->name, 6, "expect", 6) && eq_nocase(h->value, h->value_len, "100-continue", 12))
            fs->expect = 1;
        break;
    }
    return 0;
}

/* Header lines from buf[*pos] up to and including the empty line. On success
 * *pos is past the empty line and *n the number of headers. */
static int parse_headers(const char *buf, size_t len, size_t *pos, http1_header_t *hs, size_t cap,
                         size_t *n_out, struct fstate *fs) {
    const unsigned char *u = (const unsigned char *)buf;
    size_t i = *pos, n = 0;
    for (;;) {
        if (i >= len)
            return HTTP1_INCOMPLETE;
        if (u[i] == '\r') {
            if (i + 1 >= len)
                return HTTP1_INCOMPLETE;
            if (u[i + 1] != '\n')
                return HTTP1_ERR;
            *pos = i + 2;
            *n_out = n;
            return 0;
        }
        /* Bare LF, and a line starting with whitespace (obs-fold, or space
         * before the first header name), are rejected: parsers that accept
         * them disagree with each other about where fields end. */
        if (!(cls[u[i]] & C_TCHAR))
            return HTTP1_ERR;
        if (n == cap)
            return HTTP1_TOO_MANY;
        size_t ns = i;
        while (i < len && (cls[u[i]] & C_TCHAR))
            i++;
        if (i >= len)
            return HTTP1_INCOMPLETE;
        if (u[i] != ':') /* includes whitespace before the colon */
            return HTTP1_ERR;
        size_t nl = i - ns;
        i++;
        while (i < len && is_ows(buf[i]))
            i++;
        size_t vs = i;
        while (i < len && (cls[u[i]] & C_VCHAR))
            i++;
        if (i >= len)
            return HTTP1_INCOMPLETE;
        if (u[i] != '\r') /* NUL, bare LF, other controls */
            return HTTP1_ERR;
        if (i + 1 >= len)
            return HTTP1_INCOMPLETE;
        if (u[i + 1] != '\n')
            return HTTP1_ERR;
        size_t ve = i;
        while (ve > vs && is_ows(buf[ve - 1]))
            ve--;
        http1_header_t *h = &hs[n++];
        h->name = buf + ns;
        h->name_len = nl;
        h->value = buf + vs;
        h->value_len = ve - vs;
        int rc = frame_header(h, fs);
        if (rc)
            return rc;
        i += 2;
    }
}

/* Matches a literal at buf[*i]: INCOMPLETE when the input is a proper prefix
 * of it, ERR on the first differing byte. */
static int expect_lit(const char *buf, size_t len, size_t *i, const char *lit, size_t n) {
    for (size_t k = 0; k < n; k++, (*i)++) {
        if (*i >= len)
            return HTTP1_INCOMPLETE;
        if (buf[*i] != lit[k])
            return HTTP1_ERR;
    }
    return 0;
}

/* "HTTP/1.0" or "HTTP/1.1"; *minor set. */
static int parse_version(const char *buf, size_t len, size_t *i, int *minor) {
    int rc = expect_lit(buf, len, i, "HTTP/1.", 7);
    if (rc)
        return rc;
    if (*i >= len)
        return HTTP1_INCOMPLETE;
    if (buf[*i] != '0' && buf[*i] != '1')
        return HTTP1_ERR;
    *minor = buf[*i] - '0';
    (*i)++;
    return 0;
}

static int parse_crlf(const char *buf, size_t len, size_t *i) {
    return expect_lit(buf, len, i, "\r\n", 2);
}

/* Shared tail of both parsers: turn framing facts into http1_framing_t. */
static int finish_framing(const struct fstate *fs, int minor, http1_framing_t *f) {
    /* Both lengths given: the classic CL.TE / TE.CL smuggling set-up. */
    if (fs->te && fs->cl >= 0)
        return HTTP1_ERR;
    /* Transfer-Encoding in an HTTP/1.0 message cannot be trusted (RFC 9112
     * 6.1): a 1.0 hop in between may have ignored it. */
    if (fs->te && minor == 0)
        return HTTP1_ERR;
    f->content_length = fs->cl;
    f->chunked = fs->chunked;
    f->keep_alive = fs->close ? 0 : minor == 1 ? 1 : fs->keep;
    f->expect_continue = 0;
    return 0;
}

static size_t clamp_len(size_t len) {
    return len > INT_MAX ? (size_t)INT_MAX : len;
}

int http1_parse_request(const char *buf, size_t len, http1_request_t *req) {
    const unsigned char *u = (const unsigned char *)buf;
    size_t cap = req->num_headers, i = 0, rawlen = len;
    struct fstate fs = {.cl = -1};
    int rc;
    len = clamp_len(len);
    /* RFC 9112 2.2: ignore empty lines before the request-line (some clients
     * send a stray CRLF after a body). */
    while (i < len && u[i] == '\r') {
        if (i + 1 >= len)
            goto incomplete;
        if (u[i + 1] != '\n')
            goto err;
        i += 2;
    }
    size_t ms = i;
    while (i < len && (cls[u[i]] & C_TCHAR))
        i++;
    if (i >= len)
        goto incomplete;
    if (u[i] != ' ' || i == ms)
        goto err;
    req->method = buf + ms;
    req->method_len = i - ms;
    size_t ts = ++i;
    while (i < len && (cls[u[i]] & C_TARGET))
        i++;
    if (i >= len)
        goto incomplete;
    if (u[i] != ' ' || i == ts)
        goto err;
    req->target = buf + ts;
    req->target_len = i - ts;
    i++;
    if ((rc = parse_version(buf, len, &i, &req->minor_version)) || (rc = parse_crlf(buf, len, &i)))
        goto fail;
    if ((rc = parse_headers(buf, len, &i, req->headers, cap, &req->num_headers, &fs)))
        goto fail;
    if ((rc = finish_framing(&fs, req->minor_version, &req->framing)))
        goto fail;
    /* RFC 9110 10.1.1: a server ignores 100-continue from an HTTP/1.0 client. */
    req->framing.expect_continue = fs.expect && req->minor_version == 1;
    return (int)i;
incomplete:
    rc = HTTP1_INCOMPLETE;
    goto fail;
err:
    rc = HTTP1_ERR;
fail:
    /* Leave the capacity in place so the caller can retry with more bytes. */
    req->num_headers = cap;
    if (rc == HTTP1_INCOMPLETE && rawlen > len)
        rc = HTTP1_ERR; /* a head of 2 GiB is never going to be valid */
    return rc;
}

int http1_parse_response(const char *buf, size_t len, http1_response_t *res) {
    const unsigned char *u = (const unsigned char *)buf;
    size_t cap = res->num_headers, i = 0, rawlen = len;
    struct fstate fs = {.cl = -1};
    int rc;
    len = clamp_len(len);
    if ((rc = parse_version(buf, len, &i, &res->minor_version)))
        goto fail;
    if (i >= len)
        goto incomplete;
    if (u[i++] != ' ')
        goto err;
    int st = 0;
    for (int k = 0; k < 3; k++, i++) {
        if (i >= len)
            goto incomplete;
        unsigned d = u[i] - '0';
        if (d > 9)
            goto err;
        st = st * 10 + (int)d;
    }
    if (st < 100 || st > 599)
        goto err;
    res->status = st;
    if (i >= len)
        goto incomplete;
    /* The reason phrase is optional, and so (leniently) is the SP before it. */
    if (u[i] == ' ')
        i++;
    else if (u[i] != '\r')
        goto err;
    size_t rs = i;
    while (i < len && (cls[u[i]] & C_VCHAR))
        i++;
    res->reason = buf + rs;
    res->reason_len = i - rs;
    if ((rc = parse_crlf(buf, len, &i)))
        goto fail;
    if ((rc = parse_headers(buf, len, &i, res->headers, cap, &res->num_headers, &fs)))
        goto fail;
    if ((rc = finish_framing(&fs, res->minor_version, &res->framing)))
        goto fail;
    if (st < 200 || st == 204 || st == 304) {
        /* No body whatever the headers say (RFC 9112 6.3). */
        res->framing.content_length = 0;
        res->framing.chunked = 0;
    } else if (fs.cl < 0 && !fs.chunked) {
        /* Body runs to connection close: the connection cannot be reused. */
        res->framing.keep_alive = 0;
    }
    return (int)i;
incomplete:
    rc = HTTP1_INCOMPLETE;
    goto fail;
err:
    rc = HTTP1_ERR;
fail:
    res->num_headers = cap;
    if (rc == HTTP1_INCOMPLETE && rawlen > len)
        rc = HTTP1_ERR;
    return rc;
}

const http1_header_t *http1_find_header(const http1_header_t *h, size_t n, const char *name) {
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (eq_nocase(h[i].name, h[i].name_len, name, nl))
            return &h[i];
    return NULL;
}

/* ---- chunked bodies ---------------------------------------------------- */

/* Decoder states; `hex_digits` counts size digits (and bounds them). */
enum {
    CK_SIZE = 0,  /* reading chunk-size hex digits */
    CK_SIZE_WS,   /* whitespace after the size, before ';' or CR */
    CK_EXT,       /* skipping a chunk extension up to CR */
    CK_SIZE_LF,   /* CR seen after the size line, need LF */
    CK_DATA,      /* copying chunk data */
    CK_DATA_CR,   /* CRLF after chunk data */
    CK_DATA_LF,
    CK_TRAILER,   /* at the start of a trailer line, or the final CRLF */
    CK_TRAILER_SKIP, /* inside a trailer field line, up to CR */
    CK_TRAILER_LF,
    CK_END_LF,    /* final CR seen, need LF */
    CK_DONE,
};

#define CK_MAX_HEX 16 /* 16 hex digits fill a uint64_t; more is abuse (leading zeros) */

ssize_t http1_decode_chunked(http1_chunked_t *d, char *buf, size_t *len) {
    const unsigned char *u = (const unsigned char *)buf;
    size_t n = *len, r = 0, w = 0; /* read and write positions; w <= r always */
    if (d->state == CK_DONE)
        goto done; /* called again after the end: everything is the next message */
    while (r < n) {
        unsigned char c = u[r];
        switch (d->state) {
        case CK_SIZE:
            if (cls[c] & C_HEX) {
                if (++d->hex_digits > CK_MAX_HEX || d->remaining > (UINT64_MAX >> 4))
                    return HTTP1_ERR;
                unsigned v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
                d->remaining = (d->remaining << 4) | v;
                r++;
                break;
            }
            if (d->hex_digits == 0)
                return HTTP1_ERR;
            /* Checked on the size line, before any data, so an oversized
             * body is refused without reading it. */
            if (d->max_body && d->remaining > (uint64_t)d->max_body - d->total)
                return HTTP1_ERR;
            d->state = CK_SIZE_WS;
            break; /* re-examine c there */
        case CK_SIZE_WS:
            if (c == ' ' || c == '\t')
                r++;
            else if (c == ';')
                r++, d->state = CK_EXT;
            else if (c == '\r')
                r++, d->state = CK_SIZE_LF;
            else
                return HTTP1_ERR;
            break;
        case CK_EXT:
            /* Extensions are skipped, but control bytes and bare LF inside
             * them are refused like anywhere else in the framing. */
            if (c == '\r')
                d->state = CK_SIZE_LF;
            else if (!(cls[c] & C_VCHAR))
                return HTTP1_ERR;
            r++;
            break;
        case CK_SIZE_LF:
            if (c != '\n')
                return HTTP1_ERR;
            r++;
            d->hex_digits = 0;
            d->state = d->remaining ? CK_DATA : CK_TRAILER;
            break;
        case CK_DATA: {
            size_t avail = n - r;
            size_t take = d->remaining < avail ? (size_t)d->remaining : avail;
            if (w != r)
                memmove(buf + w, buf + r, take);
            w += take;
            r += take;
            d->remaining -= take;
            d->total += take;
            if (!d->remaining)
                d->state = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
            if (c != '\r')
                return HTTP1_ERR;
            r++, d->state = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (c != '\n')
                return HTTP1_ERR;
            r++, d->state = CK_SIZE;
            break;
        case CK_TRAILER:
            if (c == '\r')
                d->state = CK_END_LF;
            else if (cls[c] & C_TCHAR)
                d->state = CK_TRAILER_SKIP; /* trailer fields are dropped */
            else
                return HTTP1_ERR;
            r++;
            break;
        case CK_TRAILER_SKIP:
            if (c == '\r')
                d->state = CK_TRAILER_LF;
            else if (!(cls[c] & C_VCHAR))
                return HTTP1_ERR;
            r++;
            break;
        case CK_TRAILER_LF:
            if (c != '\n')
                return HTTP1_ERR;
            r++, d->state = CK_TRAILER;
            break;
        case CK_END_LF:
            if (c != '\n')
                return HTTP1_ERR;
            r++, d->state = CK_DONE;
            break;
        case CK_DONE:
            goto done;
        default:
            return HTTP1_ERR;
        }
        if (d->state == CK_DONE)
            goto done;
    }
    *len = w;
    return HTTP1_INCOMPLETE;
done:
    /* The bytes after the body belong to the next message: keep them, right
     * after the decoded data. */
    if (w != r)
        memmove(buf + w, buf + r, n - r);
    *len = w;
    return (ssize_t)(n - r);
}

const char *http1_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}
