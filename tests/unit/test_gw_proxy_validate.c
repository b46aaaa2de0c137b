/* test_gw_proxy_validate.c — proxy_validate: every field it knows at, inside and past its
 * bounds, wrong types, null as absent, and the parameter named in the refusal. */
#include "check.h"

#include <string.h>

#include "core/json.h"
#include "gateway/proxy_validate.h"

static json_tok_t toks[512];

/* Validate a chat body made of `{"model":"m","messages":[...],EXTRA}`; returns the refused
 * parameter ("" when accepted). */
static const char *chat_with(const char *extra, proxy_invalid_t *why) {
    static char body[1024];
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]%s%s}",
             *extra ? "," : "", extra);
    json_doc_t d;
    if (json_parse(body, strlen(body), toks, 512, 64, &d, NULL) <= 0) return "(bad test json)";
    memset(why, 0, sizeof *why);
    return proxy_validate(&d, 1, why) == 0 ? "" : why->param;
}

static const char *body_is(const char *body, int is_chat, proxy_invalid_t *why) {
    json_doc_t d;
    if (json_parse(body, strlen(body), toks, 512, 64, &d, NULL) <= 0) return "(bad test json)";
    memset(why, 0, sizeof *why);
    return proxy_validate(&d, is_chat, why) == 0 ? "" : why->param;
}

#define OK(extra) CHECK_EQ_STR(chat_with(extra, &why), "")
#define BAD(extra, param) CHECK_EQ_STR(chat_with(extra, &why), param)

static void test_numbers(void) {
    proxy_invalid_t why;
    OK("");
    OK("\"max_tokens\":1");
    OK("\"max_tokens\":1048576");
    OK("\"max_tokens\":null");
    OK("\"max_tokens\":16.0");
    BAD("\"max_tokens\":0", "max_tokens");
    CHECK_EQ_STR(why.code, "invalid_value");
    CHECK(strstr(why.message, "max_tokens") != NULL);
    BAD("\"max_tokens\":-1", "max_tokens");
    BAD("\"max_tokens\":1048577", "max_tokens");
    BAD("\"max_tokens\":1e999", "max_tokens");
    BAD("\"max_tokens\":18446744073709551616", "max_tokens");
    BAD("\"max_tokens\":1.5", "max_tokens");
    BAD("\"max_tokens\":\"12\"", "max_tokens");
    CHECK_EQ_STR(why.code, "invalid_type");
    BAD("\"max_tokens\":true", "max_tokens");
    BAD("\"max_completion_tokens\":-7", "max_completion_tokens");
    OK("\"max_completion_tokens\":4");

    OK("\"temperature\":0");
    OK("\"temperature\":2");
    OK("\"temperature\":0.7");
    BAD("\"temperature\":-0.01", "temperature");
    BAD("\"temperature\":2.0001", "temperature");
    BAD("\"temperature\":1e999", "temperature");
    BAD("\"temperature\":\"hot\"", "temperature");
    OK("\"top_p\":1");
    OK("\"top_p\":0.01");
    BAD("\"top_p\":0", "top_p");
    BAD("\"top_p\":1.5", "top_p");
    BAD("\"top_p\":-1", "top_p");
    OK("\"n\":1");
    OK("\"n\":128");
    BAD("\"n\":0", "n");
    BAD("\"n\":129", "n");
    BAD("\"n\":-1", "n");
    OK("\"presence_penalty\":-2");
    OK("\"frequency_penalty\":2");
    BAD("\"presence_penalty\":-2.5", "presence_penalty");
    BAD("\"frequency_penalty\":1e308", "frequency_penalty");
    OK("\"logprobs\":true");
    OK("\"logprobs\":5");
    BAD("\"logprobs\":21", "logprobs");
    BAD("\"logprobs\":-1", "logprobs");
    BAD("\"logprobs\":\"x\"", "logprobs");
    OK("\"top_logprobs\":20");
    BAD("\"top_logprobs\":21", "top_logprobs");
    OK("\"seed\":-9223372036854775808");
    BAD("\"seed\":1.5", "seed");
    BAD("\"seed\":9223372036854775808", "seed");
    BAD("\"seed\":\"1\"", "seed");
    OK("\"stream\":false");
    BAD("\"stream\":1", "stream");
    BAD("\"stream\":\"true\"", "stream");
    OK("\"stream_options\":{\"include_usage\":true}");
    BAD("\"stream_options\":[]", "stream_options");
    BAD("\"stream_options\":{\"include_usage\":1}", "stream_options.include_usage");
    OK("\"top_k\":-5"); /* not one of the fields it knows: passed on for the upstream to judge */
}

static void test_shapes(void) {
    proxy_invalid_t why;
    OK("\"stop\":\"\\n\"");
    OK("\"stop\":[\"a\",\"b\",\"c\",\"d\"]");
    BAD("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop");
    BAD("\"stop\":[\"a\",1]", "stop");
    BAD("\"stop\":5", "stop");
    CHECK_EQ_STR(body_is("{\"model\":\"m\"}", 1, &why), "messages");
    CHECK_EQ_STR(why.code, "missing_required_parameter");
    CHECK_EQ_STR(body_is("{\"model\":\"m\",\"messages\":[]}", 1, &why), "messages");
    CHECK_EQ_STR(body_is("{\"model\":\"m\",\"messages\":\"hi\"}", 1, &why), "messages");
    CHECK_EQ_STR(body_is("{\"model\":\"m\",\"messages\":[\"hi\"]}", 1, &why), "messages");
    CHECK_EQ_STR(body_is("{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}", 1, &why),
                 "messages");
    CHECK_EQ_STR(
        body_is("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", 1, &why),
        "messages");
    CHECK_EQ_STR(body_is("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":null,"
                         "\"tool_calls\":[]},{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                         "\"text\":\"x\"}]}]}",
                         1, &why),
                 "");
    /* completions: a prompt, string or array */
    CHECK_EQ_STR(body_is("{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":3}", 0, &why), "");
    CHECK_EQ_STR(body_is("{\"model\":\"m\",\"prompt\":[1,2,3]}", 0, &why), "");
    CHECK_EQ_STR(body_is("{\"model\":\"m\"}", 0, &why), "prompt");
    CHECK_EQ_STR(body_is("{\"model\":\"m\",\"prompt\":7}", 0, &why), "prompt");
    CHECK_EQ_STR(body_is("{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":-3}", 0, &why),
                 "max_tokens");
}

/* Many messages: each is looked at (the last one's fault is found and named by index). */
static void test_many_messages(void) {
    enum { N = 50000 };
    static char body[N * 40 + 64];
    static json_tok_t big[N * 5 + 16];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s{\"role\":\"user\",\"content\":%s}",
                              i ? "," : "", i == N - 1 ? "7" : "\"x\"");
    n += (size_t)snprintf(body + n, sizeof body - n, "]}");
    json_doc_t d;
    CHECK(json_parse(body, n, big, sizeof big / sizeof big[0], 64, &d, NULL) > 0);
    proxy_invalid_t why;
    CHECK_EQ_INT(proxy_validate(&d, 1, &why), -1);
    CHECK_EQ_STR(why.param, "messages");
    CHECK(strstr(why.message, "messages[49999]") != NULL);
}

int main(void) {
    test_numbers();
    test_shapes();
    test_many_messages();
    return check_summary("test_gw_proxy_validate");
}
