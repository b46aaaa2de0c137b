/* test_oai.c — OpenAI request validation (defaults, every rejection names its field) and the exact response / chunk JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/json.h"
#include "engine/oai.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

static json_tok_t toks[4096];

/* Parse body as kind; returns oai_parse's code, fills r (caller frees) and param. */
static int parse(oai_kind_t kind, const char *body, oai_request_t *r, const char **param,
                 char *err, size_t errlen) {
    json_doc_t d;
    oai_request_init(r);
    if (json_parse(body, strlen(body), toks, 4096, 0, &d, NULL) < 0) return -999;
    return oai_parse(kind, &d, r, err, errlen, param);
}

static void test_defaults_and_fields(void) {
    oai_request_t r;
    const char *param;
    char err[256];
    CHECK_EQ_INT(parse(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r, &param, err, sizeof err), 0);
    CHECK_EQ_INT(r.max_tokens, -1);
    CHECK_NEAR(r.temperature, 1.0, 0);
    CHECK_NEAR(r.top_p, 1.0, 0);
    CHECK_EQ_INT(r.top_k, 0);
    CHECK_EQ_INT(r.stream, 0);
    CHECK_EQ_INT(r.has_seed, 0);
    CHECK_EQ_INT(r.n_msgs, 1);
    CHECK_EQ_STR(r.msgs[0].role, "user");
    CHECK_EQ_STR(r.msgs[0].content, "hi");
    oai_request_free(&r);

    const char *full =
        "{\"model\":\"x\",\"messages\":[{\"role\":\"developer\",\"content\":\"be \\\"brief\\\"\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":null}],"
        "\"max_completion_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,\"top_k\":-1,\"min_p\":0.1,"
        "\"seed\":-3,\"stop\":[\"\",\"END\",\"\\n\"],\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"logprobs\":true,\"top_logprobs\":20,"
        "\"n\":1,\"presence_penalty\":0.5,\"unknown\":{\"x\":[1]}}";
    CHECK_EQ_INT(parse(OAI_CHAT, full, &r, &param, err, sizeof err), 0);
    CHECK_EQ_INT(r.max_tokens, 7);
    CHECK_NEAR(r.temperature, 0.5, 1e-7);
    CHECK_EQ_INT(r.top_k, 0);
    CHECK_NEAR(r.min_p, 0.1, 1e-7);
    CHECK_EQ_INT(r.has_seed, 1);
    CHECK(r.seed == (uint64_t)-3);
    CHECK_EQ_INT(r.n_stop, 2); /* "" dropped */
    CHECK_EQ_STR(r.stop[0], "END");
    CHECK_EQ_STR(r.stop[1], "\n");
    CHECK(r.stream && r.include_usage && r.logprobs);
    CHECK_EQ_INT(r.top_logprobs, 20);
    CHECK_EQ_INT(r.n_msgs, 3);
    CHECK_EQ_STR(r.msgs[0].role, "system");
    CHECK_EQ_STR(r.msgs[0].content, "be \"brief\"");
    CHECK_EQ_STR(r.msgs[1].content, "a\nb");
    CHECK_EQ_STR(r.msgs[2].role, "assistant");
    CHECK_EQ_STR(r.msgs[2].content, "");
    oai_request_free(&r);

    CHECK_EQ_INT(parse(OAI_COMPLETION, "{\"prompt\":\"Once\",\"logprobs\":0,\"stop\":\"x\"}", &r, &param, err, sizeof err), 0);
    CHECK_EQ_STR(r.prompt, "Once");
    CHECK_EQ_INT(r.logprobs, 1); /* given, even as 0 */
    CHECK_EQ_INT(r.top_logprobs, 0);
    CHECK_EQ_INT(r.n_stop, 1);
    oai_request_free(&r);
    CHECK_EQ_INT(parse(OAI_COMPLETION, "{\"prompt\":[[1,2,3]]}", &r, &param, err, sizeof err), 0);
    CHECK_EQ_INT(r.n_prompt_ids, 3);
    CHECK(r.prompt == NULL && r.prompt_ids && r.prompt_ids[2] == 3);
    oai_request_free(&r);
    CHECK_EQ_INT(parse(OAI_COMPLETION, "{\"prompt\":[\"one\"]}", &r, &param, err, sizeof err), 0);
    CHECK_EQ_STR(r.prompt, "one");
    oai_request_free(&r);
}

static void test_rejections(void) {
    static const struct {
        oai_kind_t kind;
        const char *body;
        const char *param; /* NULL: the body as a whole */
    } cases[] = {
        {OAI_CHAT, "[1]", NULL},
        {OAI_CHAT, "{}", "messages"},
        {OAI_CHAT, "{\"messages\":{}}", "messages"},
        {OAI_CHAT, "{\"messages\":[]}", "messages"},
        {OAI_CHAT, "{\"messages\":[1]}", "messages"},
        {OAI_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "messages"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", "messages"},
        {OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages"},
        {OAI_CHAT, "{\"model\":1,\"messages\":[]}", "model"},
        {OAI_CHAT, "{\"stream\":1}", "stream"},
        {OAI_CHAT, "{\"stream_options\":true}", "stream_options"},
        {OAI_CHAT, "{\"n\":2}", "n"},
        {OAI_CHAT, "{\"max_tokens\":0}", "max_tokens"},
        {OAI_CHAT, "{\"max_tokens\":\"5\"}", "max_tokens"},
        {OAI_CHAT, "{\"max_completion_tokens\":-5}", "max_completion_tokens"},
        {OAI_CHAT, "{\"temperature\":-0.1}", "temperature"},
        {OAI_CHAT, "{\"temperature\":null,\"top_p\":2}", "top_p"},
        {OAI_CHAT, "{\"min_p\":1.5}", "min_p"},
        {OAI_CHAT, "{\"top_k\":-2}", "top_k"},
        {OAI_CHAT, "{\"seed\":1.5}", "seed"},
        {OAI_CHAT, "{\"stop\":[1]}", "stop"},
        {OAI_CHAT, "{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}", "stop"},
        {OAI_CHAT, "{\"logprobs\":\"yes\"}", "logprobs"},
        {OAI_CHAT, "{\"top_logprobs\":2}", "top_logprobs"},
        {OAI_CHAT, "{\"presence_penalty\":3}", "presence_penalty"},
        {OAI_COMPLETION, "{}", "prompt"},
        {OAI_COMPLETION, "{\"prompt\":5}", "prompt"},
        {OAI_COMPLETION, "{\"prompt\":[]}", "prompt"},
        {OAI_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt"},
        {OAI_COMPLETION, "{\"prompt\":[1,-1]}", "prompt"},
        {OAI_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":21}", "logprobs"},
        {OAI_COMPLETION, "{\"prompt\":\"a\",\"echo\":true}", "echo"},
        {OAI_COMPLETION, "{\"prompt\":\"a\",\"suffix\":\"b\"}", "suffix"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        oai_request_t r;
        const char *param = "unset";
        char err[256] = "";
        int rc = parse(cases[i].kind, cases[i].body, &r, &param, err, sizeof err);
        CHECK_MSG(rc == -EINVAL, "%s: rc %d", cases[i].body, rc);
        CHECK_MSG(err[0] != 0, "%s: no message", cases[i].body);
        CHECK_MSG(cases[i].param ? (param && !strcmp(param, cases[i].param)) : param == NULL,
                  "%s: param %s, want %s (%s)", cases[i].body, param ? param : "null",
                  cases[i].param ? cases[i].param : "null", err);
        oai_request_free(&r);
    }
}

static void test_shapes(const tokenizer_t *tok) {
    oai_resp_t o = {.kind = OAI_CHAT, .id = "chatcmpl-1", .created = 7, .model = "m"};
    buf_t b;
    buf_init(&b);
    oai_chunk(&o, &b, 1, "", 0, NULL, 0, NULL);
    CHECK_EQ_STR(b.data, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
                         "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                         "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    buf_reset(&b);
    o.include_usage = 1;
    oai_chunk(&o, &b, 0, NULL, 0, NULL, 0, "stop");
    CHECK_EQ_STR(b.data, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
                         "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                         "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n");
    buf_reset(&b);
    oai_usage_chunk(&o, &b, 3, 4);
    CHECK_EQ_STR(b.data, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,"
                         "\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
                         "\"completion_tokens\":4,\"total_tokens\":7}}\n\n");
    buf_reset(&b);
    oai_response(&o, &b, "hi \"x\"", 6, NULL, 0, "length", 3, 4);
    CHECK_EQ_STR(b.data, "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":7,\"model\":\"m\","
                         "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                         "\"hi \\\"x\\\"\"},\"logprobs\":null,\"finish_reason\":\"length\"}],"
                         "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}");

    /* completions with logprobs: 15043 " Hello", 3186 " world" */
    gen_token_t t[2];
    memset(t, 0, sizeof t);
    t[0].r.id = 15043;
    t[0].r.logprob = -0.5f;
    t[0].r.n_top = 2;
    t[0].r.top[0] = (sampler_logprob_t){15043, -0.5f};
    t[0].r.top[1] = (sampler_logprob_t){3186, -1.0f};
    t[1].r.id = 3186;
    t[1].r.logprob = -2.0f;
    t[1].r.n_top = 2;
    t[1].r.top[0] = (sampler_logprob_t){15043, -0.25f};
    t[1].r.top[1] = (sampler_logprob_t){1, -1.5f};
    t[1].text_offset = 6;
    oai_resp_t c = {.kind = OAI_COMPLETION, .id = "cmpl-1", .created = 7, .model = "m", .tok = tok,
                    .logprobs = 1, .top_logprobs = 1};
    buf_reset(&b);
    oai_response(&c, &b, " Hello world", 12, t, 2, "stop", 2, 3);
    CHECK_EQ_STR(b.data, "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":7,\"model\":\"m\","
                         "\"choices\":[{\"index\":0,\"text\":\" Hello world\",\"logprobs\":{\"tokens\":"
                         "[\" Hello\",\" world\"],\"token_logprobs\":[-0.5,-2],\"top_logprobs\":"
                         "[{\" Hello\":-0.5},{\" Hello\":-0.25,\" world\":-2}],\"text_offset\":[0,6]},"
                         "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2,"
                         "\"completion_tokens\":3,\"total_tokens\":5}}");
    /* chat logprobs: token, logprob, bytes, top_logprobs limited to top_logprobs */
    o = (oai_resp_t){.kind = OAI_CHAT, .id = "c", .created = 1, .model = "m", .tok = tok,
                     .logprobs = 1, .top_logprobs = 1};
    buf_reset(&b);
    oai_chunk(&o, &b, 0, " world", 6, &t[1], 1, NULL);
    CHECK_EQ_STR(b.data, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
                         "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"logprobs\":"
                         "{\"content\":[{\"token\":\" world\",\"logprob\":-2,\"bytes\":[32,119,111,114,108,100],"
                         "\"top_logprobs\":[{\"token\":\" Hello\",\"logprob\":-0.25,\"bytes\":"
                         "[32,72,101,108,108,111]}]}]},\"finish_reason\":null}]}\n\n");
    buf_reset(&b);
    oai_error_event(&b, "server_error", "boom");
    CHECK_EQ_STR(b.data, "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,"
                         "\"code\":null}}\n\n");
    buf_free(&b);
}

int main(void) {
    test_defaults_and_fields();
    test_rejections();
    const char *ref = getenv("TOLLGATE_REF");
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/models/llama-tiny-Q8_0.gguf", ref && *ref ? ref : "../shared/ref");
    gguf_file_t f;
    tokenizer_t *tok = NULL;
    if (gguf_open(path, &f, err, sizeof err) || tok_load(&f, &tok, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", path, err);
        CHECK(0);
    } else {
        gguf_close(&f);
        test_shapes(tok);
        tok_free(tok);
    }
    return check_summary("test_oai");
}
