/* fuzz_oai.c — libFuzzer target: OpenAI request validation on any JSON, and the response encoder on what it accepted. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "engine/oai.h"

#define NTOKS 8192

/* The encoder's output must be JSON again. */
static void check_json(const buf_t *b) {
    static json_tok_t toks[NTOKS];
    if (json_parse(b->data, b->len, toks, NTOKS, 64, NULL, NULL) < 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_tok_t toks[NTOKS];
    json_doc_t d;
    if (json_parse((const char *)data, size, toks, NTOKS, 64, &d, NULL) < 0) return 0;
    for (int kind = OAI_CHAT; kind <= OAI_COMPLETION; kind++) {
        oai_request_t r;
        char err[256] = "";
        const char *param = NULL;
        oai_request_init(&r);
        int rc = oai_parse((oai_kind_t)kind, &d, &r, err, sizeof err, &param);
        if (rc == -EINVAL && !err[0]) abort(); /* a rejection always says why */
        if (rc == 0) {
            if (r.n_stop < 0 || r.n_stop > GEN_MAX_STOP) abort();
            for (int i = 0; i < r.n_stop; i++)
                if (!r.stop[i] || !r.stop[i][0]) abort();
            if (!(r.temperature >= 0 && r.temperature <= 2) || !(r.top_p >= 0 && r.top_p <= 1))
                abort();
            if (r.top_logprobs < 0 || r.top_logprobs > SAMPLER_MAX_TOP) abort();
            const char *text = "";
            if (kind == OAI_CHAT) {
                if (r.n_msgs == 0) abort();
                for (size_t i = 0; i < r.n_msgs; i++)
                    if (!r.msgs[i].role || !r.msgs[i].content) abort();
                text = r.msgs[0].content;
            } else {
                if (!r.prompt && r.n_prompt_ids <= 0) abort();
                if (r.prompt) text = r.prompt;
            }
            oai_resp_t o = {.kind = (oai_kind_t)kind, .id = "x", .created = 1, .model = "m",
                            .include_usage = r.include_usage};
            buf_t b;
            buf_init(&b);
            oai_response(&o, &b, text, strlen(text), NULL, 0, "stop", 1, 2);
            check_json(&b);
            buf_reset(&b);
            oai_chunk(&o, &b, kind == OAI_CHAT, text, strlen(text), NULL, 0, NULL);
            /* "data: " + JSON + "\n\n" */
            if (b.len < 8 || memcmp(b.data, "data: ", 6)) abort();
            buf_t j;
            buf_init(&j);
            buf_append(&j, b.data + 6, b.len - 8);
            check_json(&j);
            buf_free(&j);
            buf_free(&b);
        }
        oai_request_free(&r);
    }
    return 0;
}
