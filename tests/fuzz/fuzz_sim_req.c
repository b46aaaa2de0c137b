/* fuzz_sim_req.c — libFuzzer target: the simulator's request validation, its output JSON, and knob updates. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "sim/sim_gen.h"
#include "sim/sim_knobs.h"

#define NTOKS 4096

/* Whatever the simulator writes must be valid JSON. */
static void must_parse(const char *s, size_t n) {
    static json_tok_t t[NTOKS];
    if (json_parse(s, n, t, NTOKS, 64, NULL, NULL) <= 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_tok_t toks[NTOKS];
    const char *in = (const char *)data;
    char err[256], param[64];
    buf_t echo, out;
    buf_init(&echo);
    buf_init(&out);
    for (int chat = 0; chat < 2; chat++) {
        sim_gen_req_t r;
        int rc = sim_gen_parse(in, size, chat, toks, NTOKS, &r, &echo, err, sizeof err, param,
                               sizeof param);
        if (rc < 0) {
            if (!memchr(err, '\0', sizeof err) || !err[0])
                abort(); /* every refusal says why */
            continue;
        }
        if (sim_gen_prompt_tokens(&r) < 1 || strlen(r.model) >= SIM_GEN_MODEL_MAX)
            abort();
        sim_gen_out_t o = {&r, "id-1", 1};
        buf_reset(&out);
        sim_gen_full(&out, &o, echo.data ? echo.data : "", echo.len, "stop", 1, 1);
        must_parse(out.data, out.len);
        for (int k = SIM_CHUNK_ROLE; k <= SIM_CHUNK_USAGE; k++) {
            buf_reset(&out);
            sim_gen_chunk(&out, &o, (sim_chunk_kind_t)k, echo.data ? echo.data : "", echo.len,
                          "stop", 1, 1);
            if (out.len < 8 || memcmp(out.data, "data: ", 6) || memcmp(out.data + out.len - 2, "\n\n", 2) ||
                memchr(out.data, '\n', out.len - 2))
                abort(); /* one SSE event, one data line */
            must_parse(out.data + 6, out.len - 8);
        }
    }
    sim_knobs_t k, before;
    sim_knobs_default(&k);
    before = k;
    if (sim_knobs_update(&k, in, size, err, sizeof err) < 0 && memcmp(&k, &before, sizeof k))
        abort(); /* a refused update changes nothing */
    buf_free(&echo);
    buf_free(&out);
    return 0;
}
