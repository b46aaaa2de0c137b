/* fuzz_bench_parse.c — libFuzzer target: the load generator's SSE scanner and body token counter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "core/json.h"

static json_tok_t toks[1024];
static bench_stream_t whole, split;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    /* Fed whole and byte by byte, a stream must give the same counts. */
    bench_stream_reset(&whole);
    bench_stream_feed(&whole, p, size, toks, 1024);
    bench_stream_reset(&split);
    for (size_t i = 0; i < size; i++)
        bench_stream_feed(&split, p + i, 1, toks, 1024);
    if (whole.content_events != split.content_events || whole.usage_tokens != split.usage_tokens ||
        whole.bad != split.bad || whole.len != split.len)
        abort();
    if (whole.len > BENCH_LINE_MAX)
        abort();
    int64_t t = bench_body_tokens(p, size, toks, 1024);
    if (t < -1)
        abort();
    return 0;
}
