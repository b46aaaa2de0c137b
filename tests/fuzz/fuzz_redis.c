/* fuzz_redis.c — libFuzzer target: the RESP2 reply parser on arbitrary bytes. It must never
 * read past the input, must take no more than it was given, must agree with itself on the
 * prefix it took, and a reply it accepts whole must still need more when cut short. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    size_t off = 0;
    for (int i = 0; i < 64 && off < size; i++) {
        redis_reply_t r, el[8];
        long u = redis_parse(p + off, size - off, &r, el, 8);
        if (u <= 0) break;
        if ((size_t)u > size - off) abort();
        redis_reply_t r2, el2[8];
        if (redis_parse(p + off, (size_t)u, &r2, el2, 8) != u || r2.type != r.type) abort();
        if (u > 1 && redis_parse(p + off, (size_t)u - 1, &r2, el2, 8) > 0)
            abort(); /* a complete reply cut short cannot be complete */
        if ((r.type == REDIS_BULK || r.type == REDIS_STATUS || r.type == REDIS_ERROR) && r.str &&
            (r.str < p + off || r.str + r.len > p + off + (size_t)u))
            abort();
        off += (size_t)u;
    }
    return 0;
}
