/* buf.h — growable byte buffer: the one way the project accumulates bytes. */
#ifndef TOLLGATE_CORE_BUF_H
#define TOLLGATE_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

/* A contiguous byte buffer. `data` is always NUL-terminated when cap > 0 (the
 * NUL is not counted in len), so text can be handed to C string functions.
 * Ownership: the struct's owner calls buf_free; data may move on any append. */
typedef struct buf {
    char *data; /* bytes, NULL until the first append */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated, not counting the trailing NUL slot */
} buf_t;

void buf_init(buf_t *b);
void buf_free(buf_t *b);
/* Make room for `extra` more bytes. 0, or -ENOMEM. */
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const void *p, size_t n);
int buf_appends(buf_t *b, const char *s);
int buf_appendf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vappendf(buf_t *b, const char *fmt, va_list ap);
/* Drop the first n bytes (n > len drops all). */
void buf_consume(buf_t *b, size_t n);
/* len = 0, keeps the allocation. */
void buf_reset(buf_t *b);

#endif
