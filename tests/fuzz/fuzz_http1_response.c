/* fuzz_http1_response.c — libFuzzer target: response heads; results inside the head, framing self-consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/http1.h"

#define NH 32

static int inside(const char *p, size_t n, const char *base, size_t len) {
    return p >= base && p + n <= base + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    http1_header_t hs[NH], hs2[NH];
    http1_response_t r = {.headers = hs, .num_headers = NH};
    int rc = http1_parse_response(buf, size, &r);
    if (rc == HTTP1_ERR || rc == HTTP1_INCOMPLETE || rc == HTTP1_TOO_MANY) {
        if (r.num_headers != NH)
            abort();
        return 0;
    }
    if (rc <= 0 || (size_t)rc > size)
        abort();
    size_t head = (size_t)rc;
    if (r.num_headers > NH || r.status < 100 || r.status > 599 ||
        !inside(r.reason, r.reason_len, buf, head) || (r.minor_version != 0 && r.minor_version != 1))
        abort();
    for (size_t i = 0; i < r.num_headers; i++)
        if (hs[i].name_len == 0 || !inside(hs[i].name, hs[i].name_len, buf, head) ||
            !inside(hs[i].value, hs[i].value_len, buf, head) ||
            memchr(hs[i].value, '\r', hs[i].value_len) || memchr(hs[i].value, '\n', hs[i].value_len))
            abort();
    const http1_framing_t *f = &r.framing;
    if (f->content_length < -1 || (f->chunked && f->content_length >= 0))
        abort();
    int bodyless = r.status < 200 || r.status == 204 || r.status == 304;
    if (bodyless && (f->content_length != 0 || f->chunked))
        abort();
    if (f->content_length < 0 && !f->chunked && f->keep_alive)
        abort(); /* close-delimited bodies can't keep the connection */
    http1_response_t r2 = {.headers = hs2, .num_headers = NH};
    if (http1_parse_response(buf, head, &r2) != rc || r2.status != r.status ||
        r2.framing.content_length != f->content_length || r2.framing.chunked != f->chunked ||
        r2.framing.keep_alive != f->keep_alive)
        abort();
    r2.num_headers = NH;
    if (http1_parse_response(buf, head - 1, &r2) != HTTP1_INCOMPLETE)
        abort();
    return 0;
}
