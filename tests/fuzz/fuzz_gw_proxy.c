/* fuzz_gw_proxy.c — libFuzzer target: the proxy's upstream-body rewrite (output must be
 * valid JSON whenever the input was an object) and its SSE event framing and usage scan
 * (events must tile the input exactly). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "gateway/proxy.h"

static json_tok_t toks[4096], toks2[8192];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    json_doc_t d, d2;
    if (json_parse(s, size, toks, 4096, 64, &d, NULL) > 0 && toks[0].type == JSON_OBJECT) {
        buf_t out;
        buf_init(&out);
        if (proxy_rewrite_body(&d, (size & 1) ? "renamed\"model" : NULL, (int)(size & 2), &out) == 0 &&
            json_parse(out.data, out.len, toks2, 8192, 66, &d2, NULL) <= 0)
            abort();
        buf_free(&out);
    }
    size_t off = 0;
    while (off < size) {
        size_t el = proxy_sse_event_len(s + off, size - off);
        if (el == 0)
            break;
        if (el > size - off)
            abort();
        int64_t p, c;
        int only;
        (void)proxy_sse_usage(s + off, el, toks, 4096, &p, &c, &only);
        off += el;
    }
    return 0;
}
