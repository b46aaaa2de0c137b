/* json.c — strict RFC 8259 JSON: a non-allocating tokenizer, getters over its tokens, a writer. */
#include "core/json.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Depth used when the caller passes max_depth <= 0. */
#define JSON_DEFAULT_DEPTH 128
/* `next` of a container that is still open holds its parent's index; this marks "no parent". */
#define NO_PARENT UINT32_MAX

static inline size_t skip_ws(const unsigned char *s, size_t len, size_t p) {
    while (p < len && (s[p] == ' ' || s[p] == '\n' || s[p] == '\r' || s[p] == '\t'))
        p++;
    return p;
}

static inline int hexval(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Four hex digits at s[p..p+4) as a code unit, or -1. The caller checked the length. */
static inline long hex4(const unsigned char *s, size_t p) {
    int a = hexval(s[p]), b = hexval(s[p + 1]), c = hexval(s[p + 2]), d = hexval(s[p + 3]);
    if ((a | b | c | d) < 0)
        return -1;
    return (long)((a << 12) | (b << 8) | (c << 4) | d);
}

/* Four hex digits at s[p..p+4) as a code unit, or -1 with *bad at the first non-hex byte
 * (len when the text ends first). */
static long hex4_at(const unsigned char *s, size_t len, size_t p, size_t *bad) {
    long v = 0;
    for (size_t i = p; i < p + 4; i++) {
        if (i >= len) {
            *bad = len;
            return -1;
        }
        int h = hexval(s[i]);
        if (h < 0) {
            *bad = i;
            return -1;
        }
        v = v << 4 | h;
    }
    return v;
}

/* Length of the well-formed UTF-8 sequence starting at s[p] (a byte >= 0x80), or 0 when
 * it is not well formed (Unicode table 3-7: no overlongs, no surrogates, <= U+10FFFF).
 * *bad gets the offset of the first offending byte. */
static inline size_t utf8_seq(const unsigned char *s, size_t len, size_t p, size_t *bad) {
    unsigned c = s[p];
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F; /* U+D800..DFFF are surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        *bad = p;
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (p + i >= len) {
            *bad = len;
            return 0;
        }
        unsigned d = s[p + i];
        if (d < lo || d > hi) {
            *bad = p + i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return n;
}

/* Scan a string whose opening quote is at s[p]. On success returns 0, *end is the index of
 * the closing quote; otherwise -1 with *bad at the problem (len when truncated). */
static int scan_string(const unsigned char *s, size_t len, size_t p, size_t *end, int *esc,
                       size_t *bad) {
    size_t q = p + 1;
    for (;;) {
#ifdef __SSE2__
        /* Skip 16 plain ASCII bytes at a time: most of a prompt is plain text. */
        const __m128i quote = _mm_set1_epi8('"'), bsl = _mm_set1_epi8('\\'),
                      ctl = _mm_set1_epi8(0x1F);
        while (q + 16 <= len) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + q));
            __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bsl));
            m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
            unsigned mask = (unsigned)_mm_movemask_epi8(m) | (unsigned)_mm_movemask_epi8(v);
            if (mask) {
                q += (size_t)__builtin_ctz(mask);
                break;
            }
            q += 16;
        }
#endif
        if (q >= len) {
            *bad = len;
            return -1;
        }
        unsigned c = s[q];
        if (c == '"') {
            *end = q;
            return 0;
        }
        if (c == '\\') {
            *esc = 1;
            if (q + 1 >= len) {
                *bad = len;
                return -1;
            }
            switch (s[q + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                q += 2;
                continue;
            case 'u':
                break;
            default:
                *bad = q + 1;
                return -1;
            }
            long u = hex4_at(s, len, q + 2, bad);
            if (u < 0)
                return -1;
            if (u >= 0xDC00 && u <= 0xDFFF) { /* a low surrogate with no high one before it */
                *bad = q;
                return -1;
            }
            if (u >= 0xD800 && u <= 0xDBFF) { /* must be followed by \uDC00..\uDFFF */
                if (q + 6 >= len || (s[q + 6] == '\\' && q + 7 >= len)) {
                    *bad = len;
                    return -1;
                }
                if (s[q + 6] != '\\' || s[q + 7] != 'u') {
                    *bad = q + 6;
                    return -1;
                }
                long l = hex4_at(s, len, q + 8, bad);
                if (l < 0)
                    return -1;
                if (l < 0xDC00 || l > 0xDFFF) {
                    *bad = q + 6;
                    return -1;
                }
                q += 12;
            } else {
                q += 6;
            }
            continue;
        }
        if (c < 0x20) {
            *bad = q;
            return -1;
        }
        if (c < 0x80) {
            q++;
            continue;
        }
        size_t n = utf8_seq(s, len, q, bad);
        if (!n)
            return -1;
        q += n;
    }
}

/* Scan a number starting at s[p] per the RFC grammar; returns one past it, or 0 with *bad. */
static size_t scan_number(const unsigned char *s, size_t len, size_t p, size_t *bad) {
    size_t q = p;
    if (s[q] == '-')
        q++;
    if (q >= len) {
        *bad = len;
        return 0;
    }
    if (s[q] == '0') {
        q++;
    } else if (s[q] >= '1' && s[q] <= '9') {
        while (q < len && s[q] >= '0' && s[q] <= '9') q++;
    } else {
        *bad = q;
        return 0;
    }
    if (q < len && s[q] == '.') {
        q++;
        if (q >= len || s[q] < '0' || s[q] > '9') {
            *bad = q;
            return 0;
        }
        while (q < len && s[q] >= '0' && s[q] <= '9') q++;
    }
    if (q < len && (s[q] == 'e' || s[q] == 'E')) {
        q++;
        if (q < len && (s[q] == '+' || s[q] == '-'))
            q++;
        if (q >= len || s[q] < '0' || s[q] > '9') {
            *bad = q;
            return 0;
        }
        while (q < len && s[q] >= '0' && s[q] <= '9') q++;
    }
    return q;
}

/* The parser keeps no stack: an open container's `next` field holds its parent's index until
 * the container closes, so nesting costs nothing beyond the caller's token array. */
int json_parse(const char *src, size_t len, json_tok_t *toks, size_t cap, int max_depth,
               json_doc_t *doc, size_t *err_pos) {
    const unsigned char *s = (const unsigned char *)src;
    size_t p = 0, n = 0, bad = 0;
    uint32_t parent = NO_PARENT;
    int depth = 0, rc;
    json_tok_t *t;

    if (max_depth <= 0)
        max_depth = JSON_DEFAULT_DEPTH;
    if (cap > INT_MAX)
        cap = INT_MAX;
    if (len >= UINT32_MAX) { /* offsets are 32-bit; no request body comes near 4 GiB */
        bad = 0;
        rc = JSON_ERR_NOMEM;
        goto fail;
    }

value:
    p = skip_ws(s, len, p);
    if (p >= len)
        goto syntax_end;
    if (n >= cap)
        goto nomem;
    t = &toks[n];
    t->start = (uint32_t)p;
    t->size = 0;
    t->has_escape = 0;
    if (parent != NO_PARENT && toks[parent].type == JSON_ARRAY)
        toks[parent].size++;
    switch (s[p]) {
    case '{':
    case '[':
        if (depth >= max_depth) {
            bad = p;
            rc = JSON_ERR_DEPTH;
            goto fail;
        }
        t->type = s[p] == '{' ? JSON_OBJECT : JSON_ARRAY;
        t->next = parent;
        parent = (uint32_t)n++;
        depth++;
        p = skip_ws(s, len, p + 1);
        if (p >= len)
            goto syntax_end;
        if (s[p] == (t->type == JSON_OBJECT ? '}' : ']'))
            goto close;
        if (t->type == JSON_OBJECT)
            goto key;
        goto value;
    case '"': {
        size_t end;
        int esc = 0;
        if (scan_string(s, len, p, &end, &esc, &bad))
            goto syntax;
        t->type = JSON_STRING;
        t->has_escape = (uint8_t)esc;
        t->start = (uint32_t)(p + 1);
        t->end = (uint32_t)end;
        p = end + 1;
        break;
    }
    case 't':
        if (len - p < 4 || memcmp(s + p, "true", 4)) {
            bad = p;
            goto syntax;
        }
        t->type = JSON_TRUE;
        p += 4;
        t->end = (uint32_t)p;
        break;
    case 'f':
        if (len - p < 5 || memcmp(s + p, "false", 5)) {
            bad = p;
            goto syntax;
        }
        t->type = JSON_FALSE;
        p += 5;
        t->end = (uint32_t)p;
        break;
    case 'n':
        if (len - p < 4 || memcmp(s + p, "null", 4)) {
            bad = p;
            goto syntax;
        }
        t->type = JSON_NULL;
        p += 4;
        t->end = (uint32_t)p;
        break;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': {
        size_t q = scan_number(s, len, p, &bad);
        if (!q)
            goto syntax;
        t->type = JSON_NUMBER;
        p = q;
        t->end = (uint32_t)p;
        break;
    }
    default:
        bad = p;
        goto syntax;
    }
    n++;
    t->next = (uint32_t)n;

after_value:
    if (parent == NO_PARENT)
        goto done;
    p = skip_ws(s, len, p);
    if (p >= len)
        goto syntax_end;
    if (s[p] == ',') {
        p++;
        if (toks[parent].type == JSON_OBJECT)
            goto key;
        goto value;
    }
    if (s[p] == (toks[parent].type == JSON_OBJECT ? '}' : ']'))
        goto close;
    bad = p;
    goto syntax;

close: /* s[p] closes the innermost open container */
    t = &toks[parent];
    parent = t->next;
    t->end = (uint32_t)(p + 1);
    t->next = (uint32_t)n;
    depth--;
    p++;
    goto after_value;

key:
    p = skip_ws(s, len, p);
    if (p >= len)
        goto syntax_end;
    if (s[p] != '"') {
        bad = p;
        goto syntax;
    }
    if (n >= cap)
        goto nomem;
    {
        size_t end;
        int esc = 0;
        if (scan_string(s, len, p, &end, &esc, &bad))
            goto syntax;
        t = &toks[n];
        t->type = JSON_STRING;
        t->has_escape = (uint8_t)esc;
        t->start = (uint32_t)(p + 1);
        t->end = (uint32_t)end;
        t->size = 0;
        t->next = (uint32_t)(n + 1);
        n++;
        toks[parent].size++;
        p = skip_ws(s, len, end + 1);
    }
    if (p >= len)
        goto syntax_end;
    if (s[p] != ':') {
        bad = p;
        goto syntax;
    }
    p++;
    goto value;

done:
    p = skip_ws(s, len, p);
    if (p != len) {
        bad = p;
        goto syntax;
    }
    if (doc) {
        doc->src = src;
        doc->len = len;
        doc->toks = toks;
        doc->ntoks = n;
    }
    return (int)n;

syntax_end:
    bad = len;
syntax:
    rc = JSON_ERR_SYNTAX;
    goto fail;
nomem:
    bad = p;
    rc = JSON_ERR_NOMEM;
fail:
    if (err_pos)
        *err_pos = bad;
    return rc;
}

/* ---- getters ---- */

static int is_tok(const json_doc_t *d, int tok, int type) {
    return d && tok >= 0 && (size_t)tok < d->ntoks && d->toks[tok].type == type;
}

/* Decode one unit of a (validated) string body at s[*p] into out; returns bytes written (1..4).
 * Escapes become UTF-8; anything else is copied through. */
static int str_unit(const unsigned char *s, size_t end, size_t *p, char out[4]) {
    size_t q = *p;
    if (s[q] != '\\' || q + 1 >= end) {
        out[0] = (char)s[q];
        *p = q + 1;
        return 1;
    }
    unsigned char e = s[q + 1];
    *p = q + 2;
    switch (e) {
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u': break;
    default: out[0] = (char)e; return 1; /* " \ / */
    }
    long cp = q + 6 <= end ? hex4(s, q + 2) : -1;
    if (cp < 0) { /* cannot happen after json_parse; keep the bytes rather than guess */
        out[0] = '\\';
        *p = q + 1;
        return 1;
    }
    *p = q + 6;
    if (cp >= 0xD800 && cp <= 0xDBFF && q + 12 <= end && s[q + 6] == '\\' && s[q + 7] == 'u') {
        long lo = hex4(s, q + 8);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            *p = q + 12;
        }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = 0xFFFD; /* a lone surrogate has no UTF-8 form */
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int json_str_eq(const json_doc_t *d, int tok, const char *str) {
    if (!is_tok(d, tok, JSON_STRING) || !str)
        return 0;
    const json_tok_t *t = &d->toks[tok];
    const unsigned char *s = (const unsigned char *)d->src;
    size_t n = t->end - t->start;
    if (!t->has_escape)
        return strncmp(str, (const char *)s + t->start, n) == 0 && str[n] == '\0';
    size_t p = t->start, k = 0;
    char u[4];
    while (p < t->end) {
        int m = str_unit(s, t->end, &p, u);
        for (int i = 0; i < m; i++, k++)
            if (str[k] != u[i] || str[k] == '\0')
                return 0;
    }
    return str[k] == '\0';
}

int json_append_src(buf_t *out, const json_doc_t *d, int tok) {
    const json_tok_t *t = &d->toks[tok];
    int q = t->type == JSON_STRING; /* a string token's span excludes its quotes */
    return buf_append(out, d->src + t->start - q, t->end - t->start + 2 * (size_t)q) ? -ENOMEM : 0;
}

int json_str_unescape(const json_doc_t *d, int tok, buf_t *out) {
    if (!is_tok(d, tok, JSON_STRING) || !out)
        return -EINVAL;
    const json_tok_t *t = &d->toks[tok];
    const unsigned char *s = (const unsigned char *)d->src;
    int rc = buf_reserve(out, t->end - t->start);
    if (rc)
        return rc;
    size_t p = t->start;
    while (p < t->end) {
        /* Copy the run up to the next backslash in one go. */
        const unsigned char *bs = memchr(s + p, '\\', t->end - p);
        size_t run = bs ? (size_t)(bs - s) - p : t->end - p;
        if (run) {
            if ((rc = buf_append(out, s + p, run)))
                return rc;
            p += run;
        }
        if (p < t->end) {
            char u[4];
            int m = str_unit(s, t->end, &p, u);
            if ((rc = buf_append(out, u, (size_t)m)))
                return rc;
        }
    }
    if (out->cap == 0) /* keep the promise of a NUL-terminated result for "" too */
        return buf_reserve(out, 1);
    return 0;
}

int json_obj_get(const json_doc_t *d, int obj, const char *key) {
    if (!is_tok(d, obj, JSON_OBJECT))
        return -1;
    size_t i = (size_t)obj + 1;
    for (uint32_t k = 0; k < d->toks[obj].size && i + 1 < d->ntoks; k++) {
        if (json_str_eq(d, (int)i, key))
            return (int)i + 1;
        i = d->toks[i + 1].next;
    }
    return -1;
}

int json_arr_get(const json_doc_t *d, int arr, size_t idx) {
    if (!is_tok(d, arr, JSON_ARRAY) || idx >= d->toks[arr].size)
        return -1;
    size_t i = (size_t)arr + 1;
    for (size_t k = 0; k < idx; k++) i = d->toks[i].next;
    return i < d->ntoks ? (int)i : -1;
}

int json_get_double(const json_doc_t *d, int tok, double *out) {
    if (!is_tok(d, tok, JSON_NUMBER))
        return -1;
    const json_tok_t *t = &d->toks[tok];
    size_t n = t->end - t->start;
    char small[64], *tmp = small;
    if (n >= sizeof small && !(tmp = malloc(n + 1))) /* absurdly long digits: cold path */
        return -1;
    memcpy(tmp, d->src + t->start, n);
    tmp[n] = '\0';
    errno = 0;
    double v = strtod(tmp, NULL);
    int erange = errno == ERANGE;
    if (tmp != small)
        free(tmp);
    if (erange && isinf(v))
        return -1; /* 1e999 is out of range; underflow to 0 is fine */
    *out = v;
    return 0;
}

int json_get_i64(const json_doc_t *d, int tok, int64_t *out) {
    if (!is_tok(d, tok, JSON_NUMBER))
        return -1;
    const json_tok_t *t = &d->toks[tok];
    const char *s = d->src + t->start;
    size_t n = t->end - t->start, i = 0;
    int neg = s[0] == '-';
    i = (size_t)neg;
    uint64_t v = 0;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned dg = (unsigned)(s[i] - '0');
        if (v > (lim - dg) / 10)
            return -1;
        v = v * 10 + dg;
    }
    if (i == n) {
        *out = neg ? (int64_t)(0 - v) : (int64_t)v;
        return 0;
    }
    /* "100.0" or "1e3": accept when the value is an exact integer in range. */
    double dv;
    if (json_get_double(d, tok, &dv) || dv != floor(dv) || dv < -9223372036854775808.0 ||
        dv >= 9223372036854775808.0)
        return -1;
    *out = (int64_t)dv;
    return 0;
}

int json_get_bool(const json_doc_t *d, int tok) {
    if (!d || tok < 0 || (size_t)tok >= d->ntoks)
        return -1;
    if (d->toks[tok].type == JSON_TRUE)
        return 1;
    if (d->toks[tok].type == JSON_FALSE)
        return 0;
    return -1;
}

/* ---- writer ---- */

void json_w_init(json_w_t *w, buf_t *out) {
    memset(w, 0, sizeof *w);
    w->out = out;
}

static inline int wlevel(const json_w_t *w) {
    return w->depth < JSON_W_MAX_DEPTH ? w->depth : JSON_W_MAX_DEPTH - 1;
}

/* Emit the comma a value needs, unless it follows its key. */
static void w_sep(json_w_t *w) {
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    int l = wlevel(w);
    if (w->need_comma[l])
        buf_append(w->out, ",", 1);
    w->need_comma[l] = 1;
}

static void w_open(json_w_t *w, char c) {
    w_sep(w);
    buf_append(w->out, &c, 1);
    w->depth++;
    w->need_comma[wlevel(w)] = 0;
}

static void w_close(json_w_t *w, char c) {
    buf_append(w->out, &c, 1);
    if (w->depth > 0)
        w->depth--;
    w->after_key = 0;
}

void json_w_obj_begin(json_w_t *w) { w_open(w, '{'); }
void json_w_obj_end(json_w_t *w) { w_close(w, '}'); }
void json_w_arr_begin(json_w_t *w) { w_open(w, '['); }
void json_w_arr_end(json_w_t *w) { w_close(w, ']'); }

/* Bytes that need work when writing a string: quote, backslash, controls, non-ASCII. */
static inline int w_plain(unsigned char c) {
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static void w_string(buf_t *b, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    if (buf_reserve(b, n + 2))
        return;
    buf_append(b, "\"", 1);
    size_t p = 0;
    while (p < n) {
        size_t run = p;
        while (run < n && w_plain(s[run])) run++;
        if (run > p) {
            buf_append(b, s + p, run - p);
            p = run;
            if (p >= n)
                break;
        }
        unsigned c = s[p];
        if (c >= 0x80) {
            size_t bad;
            size_t m = utf8_seq(s, n, p, &bad);
            if (m) {
                buf_append(b, s + p, m);
                p += m;
            } else {
                /* One U+FFFD per maximal ill-formed prefix (the Unicode-recommended policy). */
                buf_append(b, "\xEF\xBF\xBD", 3);
                p = bad > p ? bad : p + 1;
            }
            continue;
        }
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            el = 6;
        }
        buf_append(b, e, el);
        p++;
    }
    buf_append(b, "\"", 1);
}

void json_w_key(json_w_t *w, const char *key) {
    int l = wlevel(w);
    if (w->need_comma[l])
        buf_append(w->out, ",", 1);
    w->need_comma[l] = 1;
    w_string(w->out, key, strlen(key));
    buf_append(w->out, ":", 1);
    w->after_key = 1;
}

void json_w_strn(json_w_t *w, const char *s, size_t n) {
    w_sep(w);
    w_string(w->out, s, n);
}

void json_w_str(json_w_t *w, const char *s) {
    if (!s) {
        json_w_null(w);
        return;
    }
    json_w_strn(w, s, strlen(s));
}

void json_w_i64(json_w_t *w, int64_t v) {
    char tmp[24];
    char *e = tmp + sizeof tmp, *p = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    w_sep(w);
    buf_append(w->out, p, (size_t)(e - p));
}

/* Shortest of %.15g / %.16g / %.17g that reads back as the same double (17 always does). */
int json_fmt_double(double v, char out[32]) {
    if (!isfinite(v)) {
        memcpy(out, "null", 5);
        return 4;
    }
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return n;
}

void json_w_double(json_w_t *w, double v) {
    char tmp[32];
    int n = json_fmt_double(v, tmp);
    w_sep(w);
    buf_append(w->out, tmp, (size_t)n);
}

void json_w_bool(json_w_t *w, int v) {
    w_sep(w);
    if (v)
        buf_append(w->out, "true", 4);
    else
        buf_append(w->out, "false", 5);
}

void json_w_null(json_w_t *w) {
    w_sep(w);
    buf_append(w->out, "null", 4);
}

void json_w_raw(json_w_t *w, const char *json, size_t n) {
    w_sep(w);
    buf_append(w->out, json, n);
}
