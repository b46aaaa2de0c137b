/* buf.c — growable byte buffer: amortised-doubling appends, always NUL-terminated. */
#include "core/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_free(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Grows geometrically so a run of small appends costs O(1) amortised; the +1
 * slot for the NUL is never counted in cap. */
int buf_reserve(buf_t *b, size_t extra) {
    if (extra > SIZE_MAX - 1 - b->len)
        return -ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap && b->data)
        return 0;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need) {
        if (ncap > (SIZE_MAX - 1) / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    char *p = realloc(b->data, ncap + 1);
    if (!p)
        return -ENOMEM;
    if (!b->data)
        p[0] = '\0';
    b->data = p;
    b->cap = ncap;
    return 0;
}

int buf_append(buf_t *b, const void *p, size_t n) {
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_appends(buf_t *b, const char *s) {
    return buf_append(b, s, strlen(s));
}

int buf_vappendf(buf_t *b, const char *fmt, va_list ap) {
    /* Try into the free tail first: most formatted appends are short and fit. */
    va_list ap2;
    va_copy(ap2, ap);
    int rc = buf_reserve(b, 64);
    if (rc) {
        va_end(ap2);
        return rc;
    }
    size_t room = b->cap - b->len + 1;
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    if (n < 0) {
        b->data[b->len] = '\0';
        va_end(ap2);
        return -EINVAL;
    }
    if ((size_t)n >= room) {
        rc = buf_reserve(b, (size_t)n);
        if (rc) {
            b->data[b->len] = '\0';
            va_end(ap2);
            return rc;
        }
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    b->len += (size_t)n;
    return 0;
}

int buf_appendf(buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void buf_consume(buf_t *b, size_t n) {
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void buf_reset(buf_t *b) {
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}
