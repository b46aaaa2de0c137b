/* fuzz_admin_body.c — libFuzzer target: the admin API's request bodies. The first byte picks
 * the body: PUT /routes/MODEL/weights (admin_parse_weights against a three-variant route),
 * POST /canary/MODEL/start (canaryapi_parse_start, then the controller run with whatever
 * settings were accepted) or POST /canary/MODEL/abort (canaryapi_abort_reason). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "gateway/admin.h"
#include "gateway/canary.h"
#include "gateway/canaryapi.h"

static gw_variant_cfg_t variants[3] = {{.name = "stable"}, {.name = "canary"}, {.name = "v3"}};
static const gw_route_cfg_t route = {.model = "m", .variants = variants, .nvariants = 3};
static json_tok_t toks[4096];

static void weights(const char *b, size_t n) {
    uint32_t nw[GW_MAX_VARIANTS];
    int set[GW_MAX_VARIANTS];
    char msg[256] = "";
    int rc = admin_parse_weights(b, n, &route, nw, set, msg, sizeof msg);
    if (rc && !msg[0])
        abort(); /* every refusal explains itself */
    for (size_t j = 0; rc == 0 && j < route.nvariants; j++)
        if (set[j] && nw[j] > 1000000)
            abort();
}

/* The controller must take any settings the parser accepted (or refuse them with -EINVAL),
 * and its status must stay valid JSON through outcomes and commands. */
static void start(const char *b, size_t n) {
    canary_cfg_t g;
    canary_cfg_defaults(&g);
    char stable[CANARYAPI_NAME] = "stable", variant[CANARYAPI_NAME] = "canary", err[512] = "";
    int rc = canaryapi_parse_start(b, n, &g, stable, variant, err, sizeof err);
    if (rc) {
        if (!err[0])
            abort();
        return;
    }
    if (g.nsteps > CANARY_MAX_STEPS || strlen(stable) >= CANARYAPI_NAME)
        abort();
    canary_t c;
    canary_init(&c, "m");
    uint64_t now = 1000000000ull;
    if (canary_start(&c, &g, stable, variant, now) == 0) {
        for (size_t i = 0; i < n && i < 64; i++) {
            now += (uint64_t)(unsigned char)b[i] * 10000000ull;
            canary_record(&c, now, NULL, (uint32_t)(unsigned char)b[i] * 37, b[i] & 1, b[i] & 2);
            if ((b[i] & 0x1c) == 0x1c)
                canary_promote(&c, now);
            canary_tick(&c, now);
        }
        int w = canary_weight(&c);
        if (w < -1 || w > 100)
            abort();
    }
    buf_t out;
    buf_init(&out);
    json_w_t jw;
    json_w_init(&jw, &out);
    canary_write_status(&c, now, &jw);
    json_doc_t d;
    if (!out.data || json_parse(out.data, out.len, toks, 4096, 16, &d, NULL) <= 0)
        abort();
    buf_free(&out);
    canary_destroy(&c);
}

static void abort_reason(const char *b, size_t n) {
    char reason[160];
    memset(reason, 'x', sizeof reason);
    canaryapi_abort_reason(b, n, reason, sizeof reason);
    if (!memchr(reason, 0, sizeof reason))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    /* A copy of exactly the body's bytes, so that reads past it are caught. */
    size_t n = size - 1;
    char *b = malloc(n ? n : 1);
    if (!b)
        return 0;
    memcpy(b, data + 1, n);
    switch (data[0] % 3) {
    case 0: weights(b, n); break;
    case 1: start(b, n); break;
    default: abort_reason(b, n); break;
    }
    free(b);
    return 0;
}
