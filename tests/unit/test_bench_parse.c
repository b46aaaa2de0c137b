/* test_bench_parse.c — the load generator's response reading: SSE content events and token counts, at every split. */
#include <string.h>

#include "bench/bench.h"
#include "check.h"
#include "core/json.h"

static json_tok_t toks[1024];

static const char STREAM[] =
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"2\\u00d7 Large\"},\"finish_reason\":null}]}\n\n"
    ": keep-alive comment\r\n\r\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" Pepperoni\"},\"finish_reason\":null}]}\r\n\r\n"
    "data:{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" Pizza\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n"
    "data: [DONE]\n\n";

int main(void) {
    static bench_stream_t s;
    size_t n = sizeof STREAM - 1;

    /* Whole, and cut in two at every position: same counts. */
    for (size_t cut = 0; cut <= n; cut++) {
        bench_stream_reset(&s);
        bench_stream_feed(&s, STREAM, cut, toks, 1024);
        bench_stream_feed(&s, STREAM + cut, n - cut, toks, 1024);
        CHECK_EQ_INT(s.content_events, 3);
        CHECK_EQ_INT(s.usage_tokens, 4);
        CHECK_EQ_INT(s.bad, 0);
        CHECK(s.first_content_ns != 0);
    }
    /* Byte at a time. */
    bench_stream_reset(&s);
    for (size_t i = 0; i < n; i++)
        bench_stream_feed(&s, STREAM + i, 1, toks, 1024);
    CHECK_EQ_INT(s.content_events, 3);
    CHECK_EQ_INT(s.usage_tokens, 4);

    /* Completions API (choices[0].text), no usage: tokens come from the events. */
    static const char COMPL[] = "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\":[{\"text\":\"b\"}]}\n\ndata: [DONE]\n\n";
    bench_stream_reset(&s);
    bench_stream_feed(&s, COMPL, sizeof COMPL - 1, toks, 1024);
    CHECK_EQ_INT(s.content_events, 2);
    CHECK_EQ_INT(s.usage_tokens, -1);

    /* Not JSON: flagged. No content: no first-token time. */
    bench_stream_reset(&s);
    bench_stream_feed(&s, "data: {oops\n\n", 13, toks, 1024);
    CHECK_EQ_INT(s.bad, 1);
    CHECK_EQ_INT(s.first_content_ns, 0);

    /* A line longer than the buffer still counts as one content event. */
    static char big[3 * BENCH_LINE_MAX];
    memset(big, 'x', sizeof big);
    memcpy(big, "data: {\"choices\":[{\"delta\":{\"content\":\"", 39);
    big[sizeof big - 1] = '\n';
    bench_stream_reset(&s);
    bench_stream_feed(&s, big, sizeof big, toks, 1024);
    bench_stream_feed(&s, "\n", 1, toks, 1024);
    CHECK_EQ_INT(s.content_events, 1);
    CHECK_EQ_INT(s.bad, 0);

    /* Non-streamed bodies. */
    static const char BODY[] = "{\"id\":\"x\",\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}}],"
                               "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}";
    CHECK_EQ_INT(bench_body_tokens(BODY, sizeof BODY - 1, toks, 1024), 7);
    CHECK_EQ_INT(bench_body_tokens("{\"choices\":[]}", 14, toks, 1024), 0);
    CHECK_EQ_INT(bench_body_tokens("<html>", 6, toks, 1024), -1);
    return check_summary("test_bench_parse");
}
