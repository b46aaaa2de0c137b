/* test_sim.c — the simulator's request validation, token estimate, chunk shapes and knobs. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/json.h"
#include "sim/sim_gen.h"
#include "sim/sim_knobs.h"

static json_tok_t toks[4096];

static int parse(const char *body, int chat, sim_gen_req_t *r, buf_t *echo, char *param) {
    char err[256];
    char p[64];
    int rc = sim_gen_parse(body, strlen(body), chat, toks, 4096, r, echo, err, sizeof err, p,
                           sizeof p);
    if (param)
        strcpy(param, rc < 0 ? p : "");
    return rc;
}

static void test_parse_ok(void) {
    sim_gen_req_t r;
    buf_t echo;
    buf_init(&echo);
    CHECK_EQ_INT(parse("{\"model\":\"m\\u0031\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"two words\"}]}],"
                       "\"max_tokens\":7,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                       "\"seed\":9,\"temperature\":0.5,\"n\":1}",
                       1, &r, &echo, NULL),
                 0);
    CHECK_EQ_STR(r.model, "m1");
    CHECK_EQ_INT(r.max_tokens, 7);
    CHECK_EQ_INT(r.stream, 1);
    CHECK_EQ_INT(r.include_usage, 1);
    CHECK_EQ_INT(r.has_seed, 1);
    CHECK_EQ_INT(r.seed, 9);
    CHECK_EQ_INT(r.prompt_bytes, 8 + 9);
    CHECK_EQ_INT(sim_gen_prompt_tokens(&r), 5); /* ceil(17 / 4) */
    CHECK_EQ_STR(echo.data, "two words");

    CHECK_EQ_INT(parse("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":null},"
                       "{\"role\":\"user\",\"content\":\"a\\nb\"}],\"max_completion_tokens\":2}",
                       1, &r, &echo, NULL),
                 0);
    CHECK_EQ_INT(r.max_tokens, 2);
    CHECK_EQ_INT(r.stream, 0);
    CHECK_EQ_STR(echo.data, "a\nb");

    /* completions: strings and token ids */
    CHECK_EQ_INT(parse("{\"model\":\"m\",\"prompt\":\"hello\"}", 0, &r, &echo, NULL), 0);
    CHECK_EQ_INT(sim_gen_prompt_tokens(&r), 2);
    CHECK_EQ_INT(parse("{\"model\":\"m\",\"prompt\":[1,2,3]}", 0, &r, NULL, NULL), 0);
    CHECK_EQ_INT(sim_gen_prompt_tokens(&r), 3);
    CHECK_EQ_INT(parse("{\"model\":\"m\",\"prompt\":[[1,2],[3]]}", 0, &r, NULL, NULL), 0);
    CHECK_EQ_INT(sim_gen_prompt_tokens(&r), 3);
    CHECK_EQ_INT(parse("{\"model\":\"m\",\"prompt\":\"\"}", 0, &r, NULL, NULL), 0);
    CHECK_EQ_INT(sim_gen_prompt_tokens(&r), 1); /* at least one */
    buf_free(&echo);
}

static void test_parse_errors(void) {
    sim_gen_req_t r;
    char param[64];
    static const struct {
        const char *body;
        int chat;
        const char *param;
    } cases[] = {
        {"{\"model\":\"m\"", 1, ""},
        {"[1]", 1, ""},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 1, "model"},
        {"{\"model\":3,\"messages\":[]}", 1, "model"},
        {"{\"model\":\"m\"}", 1, "messages"},
        {"{\"model\":\"m\",\"messages\":{}}", 1, "messages"},
        {"{\"model\":\"m\",\"messages\":[]}", 1, "messages"},
        {"{\"model\":\"m\",\"messages\":[3]}", 1, "messages.[0]"},
        {"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", 1, "messages.[0].role"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"king\",\"content\":\"x\"}]}", 1, "messages.[0].role"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", 1, "messages.[0].content"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", 1,
         "messages.[0].content"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", 1,
         "max_tokens"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}", 1,
         "max_tokens"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", 1,
         "stream"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":1}", 1,
         "stream_options"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}",
         1, "temperature"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", 1, "n"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":\"s\"}", 1, "seed"},
        {"{\"model\":\"m\"}", 0, "prompt"},
        {"{\"model\":\"m\",\"prompt\":{}}", 0, "prompt"},
        {"{\"model\":\"m\",\"prompt\":[true]}", 0, "prompt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse(cases[i].body, cases[i].chat, &r, NULL, param);
        CHECK_MSG(rc == -1 && !strcmp(param, cases[i].param), "case %zu (%s): rc %d param '%s'", i,
                  cases[i].body, rc, param);
    }
    /* every truncation of a valid body is refused, never crashes */
    const char *good = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char err[128], p[64];
    for (size_t n = 0; n < strlen(good); n++)
        CHECK(sim_gen_parse(good, n, 1, toks, 4096, &r, NULL, err, sizeof err, p, sizeof p) == -1);
}

static void test_estimate_and_words(void) {
    CHECK_EQ_INT(sim_gen_estimate_tokens(0), 1);
    CHECK_EQ_INT(sim_gen_estimate_tokens(4), 1);
    CHECK_EQ_INT(sim_gen_estimate_tokens(5), 2);
    CHECK_EQ_INT(sim_gen_estimate_tokens(400), 100);
    uint64_t a = 42, b = 42;
    for (int i = 0; i < 20; i++)
        CHECK_EQ_STR(sim_gen_word(&a), sim_gen_word(&b)); /* same seed, same words */
    const char *t = "  one two\tthree\n";
    size_t pos = 0, st, n, count = 0;
    while ((n = sim_gen_next_word(t, strlen(t), &pos, &st)))
        count++;
    CHECK_EQ_INT(count, 3);
    pos = 0;
    n = sim_gen_next_word(t, strlen(t), &pos, &st);
    CHECK(n == 3 && !memcmp(t + st, "one", 3));
}

static void test_chunks(void) {
    sim_gen_req_t r;
    CHECK_EQ_INT(parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                       "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                       1, &r, NULL, NULL),
                 0);
    sim_gen_out_t o = {&r, "chatcmpl-1", 1700000000};
    buf_t b;
    buf_init(&b);
    sim_gen_chunk(&b, &o, SIM_CHUNK_ROLE, NULL, 0, NULL, 0, 0);
    CHECK_EQ_STR(b.data, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":"
                         "1700000000,\"model\":\"m\",\"system_fingerprint\":null,\"choices\":[{\"index\":0,"
                         "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                         "\"finish_reason\":null}],\"usage\":null}\n\n");
    buf_reset(&b);
    sim_gen_chunk(&b, &o, SIM_CHUNK_TEXT, " a\"b", 4, NULL, 0, 0);
    CHECK(strstr(b.data, "\"delta\":{\"content\":\" a\\\"b\"}") != NULL);
    buf_reset(&b);
    sim_gen_chunk(&b, &o, SIM_CHUNK_FINISH, NULL, 0, "length", 0, 0);
    CHECK(strstr(b.data, "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"length\"") != NULL);
    buf_reset(&b);
    sim_gen_chunk(&b, &o, SIM_CHUNK_USAGE, NULL, 0, NULL, 3, 4);
    CHECK(strstr(b.data, "\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,"
                         "\"total_tokens\":7}}\n\n") != NULL);
    /* every chunk is one SSE event with JSON that parses */
    json_doc_t d;
    CHECK(json_parse(b.data + 6, b.len - 8, toks, 4096, 0, &d, NULL) > 0);

    buf_reset(&b);
    r.chat = 0;
    r.include_usage = 0;
    sim_gen_full(&b, &o, "hi there", 8, "stop", 1, 2);
    CHECK_EQ_STR(b.data, "{\"id\":\"chatcmpl-1\",\"object\":\"text_completion\",\"created\":1700000000,"
                         "\"model\":\"m\",\"system_fingerprint\":null,\"choices\":[{\"index\":0,\"text\":"
                         "\"hi there\",\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{"
                         "\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}");
    buf_free(&b);
}

static void test_knobs(void) {
    sim_knobs_t k;
    sim_knobs_default(&k);
    CHECK_EQ_INT(k.output, SIM_OUT_FIXED);
    CHECK_EQ_INT(sim_knobs_parse_output("fixed:3", &k), 0);
    CHECK_EQ_INT(k.output_tokens, 3);
    CHECK_EQ_INT(sim_knobs_parse_output("echo", &k), 0);
    CHECK_EQ_INT(k.output, SIM_OUT_ECHO);
    CHECK(sim_knobs_parse_output("fixed:", &k) < 0);
    CHECK(sim_knobs_parse_output("fixed:-1", &k) < 0);
    CHECK(sim_knobs_parse_output("lots", &k) < 0);

    char err[160];
    const char *u = "{\"ttft_ms\":50,\"itl_jitter_ms\":3,\"output\":\"random\",\"max_seqs\":4,"
                    "\"fail_rate\":0.25,\"seed\":99}";
    CHECK_EQ_INT(sim_knobs_update(&k, u, strlen(u), err, sizeof err), 0);
    CHECK_EQ_INT(k.ttft_ms, 50);
    CHECK_EQ_INT(k.itl_jitter_ms, 3);
    CHECK_EQ_INT(k.output, SIM_OUT_RANDOM);
    CHECK_EQ_INT(k.max_seqs, 4);
    CHECK_NEAR(k.fail_rate, 0.25, 0);
    CHECK_EQ_INT(k.seed, 99);
    /* all or nothing */
    sim_knobs_t before = k;
    const char *bad[] = {"{\"ttft_ms\":1,\"fail_rate\":1.5}", "{\"ttft_ms\":-1}", "{\"nope\":1}",
                         "{\"output\":\"x\"}", "{\"itl_ms\":\"5\"}", "[]", "{"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(sim_knobs_update(&k, bad[i], strlen(bad[i]), err, sizeof err) == -1, "%s", bad[i]);
        CHECK(!memcmp(&k, &before, sizeof k));
    }
    buf_t b;
    buf_init(&b);
    sim_knobs_json(&k, &b);
    CHECK_EQ_STR(b.data, "{\"ttft_ms\":50,\"ttft_jitter_ms\":0,\"itl_ms\":0,\"itl_jitter_ms\":3,"
                         "\"output\":\"random\",\"output_tokens\":3,\"max_seqs\":4,\"max_queue\":1024,"
                         "\"fail_rate\":0.25,\"reset_rate\":0,\"stall_rate\":0,\"seed\":99}");
    /* what GET returns, POST accepts */
    sim_knobs_t again;
    sim_knobs_default(&again);
    CHECK_EQ_INT(sim_knobs_update(&again, b.data, b.len, err, sizeof err), 0);
    CHECK(!memcmp(&again, &k, sizeof k));
    buf_free(&b);
}

int main(void) {
    test_parse_ok();
    test_parse_errors();
    test_estimate_and_words();
    test_chunks();
    test_knobs();
    return check_summary("test_sim");
}
