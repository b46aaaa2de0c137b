/* fuzz_http1_chunked.c — libFuzzer target: chunked decoding; never grows, and split input decodes like whole input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/http1.h"

/* Input: byte 0 picks max_body (0 = unlimited), byte 1 a split point; the rest
 * is the raw chunked stream. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    size_t max_body = data[0] < 128 ? 0 : (size_t)(data[0] - 128) * 4;
    const char *in = (const char *)data + 2;
    size_t n = size - 2;
    size_t split = n ? data[1] % (n + 1) : 0;

    /* Whole input in one call, in an exactly sized heap copy (ASan bounds). */
    char *a = malloc(n ? n : 1);
    memcpy(a, in, n);
    http1_chunked_t d1 = {.max_body = max_body};
    size_t alen = n;
    ssize_t r1 = http1_decode_chunked(&d1, a, &alen);
    if (r1 != HTTP1_ERR && r1 != HTTP1_INCOMPLETE && r1 < 0)
        abort();
    if (r1 != HTTP1_ERR) {
        if (alen > n || (r1 >= 0 && alen + (size_t)r1 > n) || d1.total != alen)
            abort(); /* decoded length never exceeds the input */
        if (max_body && d1.total > max_body)
            abort();
    }

    /* The same bytes in two calls. */
    char *b = malloc(n ? n : 1);
    memcpy(b, in, n);
    http1_chunked_t d2 = {.max_body = max_body};
    size_t l1 = split;
    ssize_t r2 = http1_decode_chunked(&d2, b, &l1);
    if (r2 >= 0) {
        /* finished in the first piece: the second piece is "next message" too */
        if (r1 < 0 || (size_t)r1 != (size_t)r2 + (n - split) || l1 != alen || memcmp(b, a, l1) != 0)
            abort();
        free(a);
        free(b);
        return 0;
    }
    if (r2 == HTTP1_ERR) {
        if (r1 != HTTP1_ERR)
            abort();
        free(a);
        free(b);
        return 0;
    }
    size_t out = l1;
    char *c = b + split; /* second piece, decoded in place where it lies */
    size_t l2 = n - split;
    r2 = http1_decode_chunked(&d2, c, &l2);
    if (r2 != r1)
        abort();
    if (r1 != HTTP1_ERR) {
        if (out + l2 != alen || memcmp(b, a, out) != 0 || memcmp(c, a + out, l2) != 0)
            abort();
        if (r1 > 0 && memcmp(c + l2, a + alen, (size_t)r1) != 0)
            abort();
    }
    free(a);
    free(b);
    return 0;
}
