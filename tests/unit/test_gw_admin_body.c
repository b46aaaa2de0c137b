/* test_gw_admin_body.c — the admin API's request bodies, parsed apart from HTTP: variant
 * weights (admin_parse_weights), canary start settings (canaryapi_parse_start) and the abort
 * reason (canaryapi_abort_reason). */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "gateway/admin.h"
#include "gateway/canaryapi.h"

static gw_variant_cfg_t variants[3] = {{.name = "stable"}, {.name = "canary"}, {.name = "v3"}};
static const gw_route_cfg_t route = {.model = "m", .variants = variants, .nvariants = 3};

static int weights(const char *body, uint32_t *nw, int *set, char *msg) {
    return admin_parse_weights(body, strlen(body), &route, nw, set, msg, 256);
}

static void test_weights(void) {
    uint32_t nw[GW_MAX_VARIANTS];
    int set[GW_MAX_VARIANTS];
    char msg[256];
    CHECK_EQ_INT(weights("{\"stable\": 90, \"canary\": 10}", nw, set, msg), 0);
    CHECK(set[0] && set[1] && !set[2]);
    CHECK_EQ_INT(nw[0], 90);
    CHECK_EQ_INT(nw[1], 10);
    CHECK_EQ_INT(weights("{}", nw, set, msg), 0);
    CHECK(!set[0] && !set[1] && !set[2]);

    CHECK_EQ_INT(weights("{\"nope\": 5}", nw, set, msg), -EINVAL);
    CHECK_EQ_STR(msg, "route m has no variant \"nope\"");
    CHECK_EQ_INT(weights("{\"v3\": -1}", nw, set, msg), -EINVAL);
    CHECK_EQ_STR(msg, "weight of v3 must be an integer 0-1000000");
    CHECK_EQ_INT(weights("{\"v3\": 1000001}", nw, set, msg), -EINVAL);
    CHECK_EQ_INT(weights("{\"v3\": \"5\"}", nw, set, msg), -EINVAL);
    CHECK_EQ_INT(weights("[1]", nw, set, msg), -EINVAL);
    CHECK(strstr(msg, "expected a JSON object") != NULL);
    CHECK_EQ_INT(weights("{\"stable\": 1", nw, set, msg), -EINVAL);
    CHECK_EQ_INT(weights("", nw, set, msg), -EINVAL);
    /* A name with a NUL inside is not the variant its first part names. */
    CHECK_EQ_INT(weights("{\"stable\\u0000x\": 5}", nw, set, msg), -EINVAL);
    /* One bad entry refuses the whole body: nothing is marked set before it. */
    CHECK_EQ_INT(weights("{\"stable\": 5, \"nope\": 1}", nw, set, msg), -EINVAL);
}

static void test_canary_start(void) {
    canary_cfg_t g;
    canary_cfg_defaults(&g);
    char stable[CANARYAPI_NAME] = "stable", variant[CANARYAPI_NAME] = "canary", err[512];
    /* An empty body keeps everything. */
    CHECK_EQ_INT(canaryapi_parse_start("", 0, &g, stable, variant, err, sizeof err), 0);
    CHECK_EQ_INT(g.nsteps, 4);
    const char *b = "{\"stable\":\"v3\",\"canary\":\"stable\",\"steps\":[5,50,100],\"pause_ms\":1000}";
    CHECK_EQ_INT(canaryapi_parse_start(b, strlen(b), &g, stable, variant, err, sizeof err), 0);
    CHECK_EQ_STR(stable, "v3");
    CHECK_EQ_STR(variant, "stable");
    CHECK_EQ_INT(g.nsteps, 3);
    CHECK_EQ_INT(g.steps[0], 5);
    CHECK_EQ_INT(g.pause_ms, 1000);
    /* A variant name longer than the room for it is cut, never overflows. */
    char lng[200];
    memset(lng, 'a', sizeof lng);
    char body[300];
    snprintf(body, sizeof body, "{\"canary\":\"%.150s\"}", lng);
    CHECK_EQ_INT(canaryapi_parse_start(body, strlen(body), &g, stable, variant, err, sizeof err),
                 0);
    CHECK_EQ_INT(strlen(variant), CANARYAPI_NAME - 1);
    const char *bad[] = {"[1,2]", "{\"steps\": \"x\"}", "{\"pause_ms\": -5}", "{\"bogus\": 1}",
                         "{\"stable\": [1]}", "{"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        CHECK_MSG(canaryapi_parse_start(bad[i], strlen(bad[i]), &g, stable, variant, err,
                                        sizeof err) != 0 && err[0],
                  "accepted or unexplained: %s", bad[i]);
    }
}

static void test_abort_reason(void) {
    char r[160];
    const char *b = "{\"reason\": \"p99 \\u00e9 too high\"}";
    canaryapi_abort_reason(b, strlen(b), r, sizeof r);
    CHECK_EQ_STR(r, "aborted by the operator: p99 \xc3\xa9 too high");
    canaryapi_abort_reason("{\"reason\": 5}", 13, r, sizeof r);
    CHECK_EQ_STR(r, "");
    canaryapi_abort_reason("", 0, r, sizeof r);
    CHECK_EQ_STR(r, "");
    canaryapi_abort_reason("{\"reason\": \"\"}", 14, r, sizeof r);
    CHECK_EQ_STR(r, "aborted by the operator: ");
    char small[8];
    canaryapi_abort_reason(b, strlen(b), small, sizeof small);
    CHECK_EQ_STR(small, "aborted");
}

int main(void) {
    test_weights();
    test_canary_start();
    test_abort_reason();
    return check_summary("test_gw_admin_body");
}
