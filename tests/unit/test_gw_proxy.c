/* test_gw_proxy.c — the proxy's pure helpers: upstream body rewriting, SSE event framing
 * (every split point), usage detection in stream events. */
#include "check.h"

#include <errno.h>

#include "core/json.h"
#include "gateway/proxy.h"

static json_tok_t toks[256];

/* Rewrite src and compare with want. */
static void rewrite(const char *src, const char *model, int usage, const char *want) {
    json_doc_t d;
    int n = json_parse(src, strlen(src), toks, 256, 32, &d, NULL);
    CHECK_MSG(n > 0, "parse %s", src);
    if (n <= 0)
        return;
    buf_t out;
    buf_init(&out);
    CHECK_EQ_INT(proxy_rewrite_body(&d, model, usage, &out), 0);
    CHECK_EQ_STR(out.data, want);
    /* Whatever it wrote must itself be valid JSON. */
    json_doc_t d2;
    json_tok_t t2[256];
    CHECK(json_parse(out.data, out.len, t2, 256, 32, &d2, NULL) > 0);
    buf_free(&out);
}

static void test_rewrite(void) {
    rewrite("{\"model\":\"a\",\"x\":1}", NULL, 0, "{\"model\":\"a\",\"x\":1}");
    rewrite("{ \"model\" : \"a\" , \"x\" : [1, {\"y\":2}] }", "b", 0,
            "{\"model\":\"b\",\"x\":[1, {\"y\":2}]}");
    rewrite("{\"model\":\"a\",\"stream\":true}", NULL, 1,
            "{\"model\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    rewrite("{\"stream_options\":{\"include_usage\":false,\"other\":\"k\"},\"model\":\"a\"}", "q\"z",
            1, "{\"stream_options\":{\"other\":\"k\",\"include_usage\":true},\"model\":\"q\\\"z\"}");
    rewrite("{\"stream_options\":null}", NULL, 1, "{\"stream_options\":{\"include_usage\":true}}");
    rewrite("{}", NULL, 1, "{\"stream_options\":{\"include_usage\":true}}");
    rewrite("{\"m\\u006fdel\":\"a\"}", "b", 0, "{\"m\\u006fdel\":\"b\"}"); /* escaped key */
    rewrite("{\"messages\":[{\"content\":\"\\\"model\\\": x\"}],\"model\":\"a\"}", "b", 0,
            "{\"messages\":[{\"content\":\"\\\"model\\\": x\"}],\"model\":\"b\"}");
    json_doc_t d;
    json_parse("[1]", 3, toks, 256, 32, &d, NULL);
    buf_t out;
    buf_init(&out);
    CHECK_EQ_INT(proxy_rewrite_body(&d, NULL, 0, &out), -EINVAL);
    buf_free(&out);
}

static void test_event_len(void) {
    const char *s = "data: a\n\ndata: b\r\n\r\n: c\r\rdata: d\n";
    CHECK_EQ_INT(proxy_sse_event_len(s, strlen(s)), 9);
    CHECK_EQ_INT(proxy_sse_event_len(s + 9, strlen(s + 9)), 11);
    CHECK_EQ_INT(proxy_sse_event_len(s + 20, strlen(s + 20)), 5);
    CHECK_EQ_INT(proxy_sse_event_len(s + 25, strlen(s + 25)), 0); /* unterminated */
    /* A CR at the end may be followed by LF: wait. */
    CHECK_EQ_INT(proxy_sse_event_len("data: a\r\n\r", 10), 0);
    CHECK_EQ_INT(proxy_sse_event_len("data: a\n\r", 9), 0);
    CHECK_EQ_INT(proxy_sse_event_len("\n", 1), 1);
    CHECK_EQ_INT(proxy_sse_event_len("", 0), 0);
    /* Every prefix of a two-event stream: the first event is found exactly when whole. */
    const char *two = "data: {\"x\":1}\r\n\r\ndata: [DONE]\n\n";
    size_t first = 17;
    int bad = 0;
    for (size_t k = 0; k <= strlen(two); k++) {
        size_t got = proxy_sse_event_len(two, k);
        if (got != (k >= first ? first : 0))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_usage(void) {
    int64_t p = 0, c = 0;
    int only = -1;
    const char *ev = "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
                     "\"completion_tokens\":34,\"total_tokens\":46}}\n\n";
    CHECK_EQ_INT(proxy_sse_usage(ev, strlen(ev), toks, 256, &p, &c, &only), 1);
    CHECK_EQ_INT(p, 12);
    CHECK_EQ_INT(c, 34);
    CHECK_EQ_INT(only, 1);
    const char *mixed = "data:{\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":1}}";
    CHECK_EQ_INT(proxy_sse_usage(mixed, strlen(mixed), toks, 256, &p, &c, &only), 1);
    CHECK_EQ_INT(p, 1);
    CHECK_EQ_INT(c, -1);
    CHECK_EQ_INT(only, 0);
    const char *null_usage = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    CHECK_EQ_INT(proxy_sse_usage(null_usage, strlen(null_usage), toks, 256, &p, &c, &only), 0);
    const char *text = "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\"\"}}]}\n\n";
    CHECK_EQ_INT(proxy_sse_usage(text, strlen(text), toks, 256, &p, &c, &only), 0);
    const char *done = "data: [DONE]\n\n";
    CHECK_EQ_INT(proxy_sse_usage(done, strlen(done), toks, 256, &p, &c, &only), 0);
    const char *evname = "event: x\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,"
                         "\"completion_tokens\":3}}\n\n";
    CHECK_EQ_INT(proxy_sse_usage(evname, strlen(evname), toks, 256, &p, &c, &only), 1);
    CHECK_EQ_INT(c, 3);
}

int main(void) {
    test_rewrite();
    test_event_len();
    test_usage();
    return check_summary("test_gw_proxy");
}
