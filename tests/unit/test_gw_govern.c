/* test_gw_govern.c — governance config (errors name line and field) and decisions: 401/403,
 * prompt over its limit (400 with both numbers), max_tokens clamp/reject/default, rate limit
 * and budget refusals with Retry-After and x-ratelimit-* headers, correction at the end. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/ev.h"
#include "gateway/govern.h"
#include "gateway/gwconfig.h"

#define S 1000000000ull
#define T0 (5000 * S)
#define DAY0 (20000LL * 86400 + 3600) /* 01:00 UTC on some day */

/* sha256("key-orders"), sha256("key-search") */
static char h_orders[KEYS_HASH_TEXT], h_search[KEYS_HASH_TEXT];

static void hashes(void) {
    uint8_t h[32];
    keys_sha256("key-orders", 10, h);
    keys_format_hash(h, h_orders);
    keys_sha256("key-search", 10, h);
    keys_format_hash(h, h_search);
}

static int load(const char *text, gw_config_t *c, char *err) {
    return gwconfig_load_string("gw.yaml", text, strlen(text), c, err, 512);
}

static const char *BASE = "backends:\n"
                          "  b: {addresses: [127.0.0.1:9]}\n"
                          "routes:\n"
                          "  m1: {variants: {v: {backend: b}}}\n"
                          "  m2: {variants: {v: {backend: b}}}\n";

static void cfg_with(buf_t *b, const char *services) {
    buf_reset(b);
    buf_appends(b, BASE);
    buf_appends(b, services);
}

static void test_config_errors(void) {
    buf_t b;
    buf_init(&b);
    gw_config_t c;
    char err[512];
    struct {
        const char *svc;
        const char *want;
    } bad[] = {
        {"services:\n  orders:\n    keys: [abc]\n", "gw.yaml:8: services.orders.keys[0]"},
        {"services:\n  orders:\n    models: [m1]\n", "keys"},
        {"services:\n  orders:\n    keys: []\n", "gw.yaml:8: services.orders.keys"},
        {"services:\n  orders:\n    keys: [KEY]\n    models: [nope]\n",
         "gw.yaml:9: services.orders.models[0]: no route serves model \"nope\""},
        {"services:\n  orders:\n    keys: [KEY]\n    limits: {requests_per_minute: -1}\n",
         "services.orders.limits.requests_per_minute"},
        {"services:\n  orders:\n    keys: [KEY]\n    limits: {over_max_completion: cut}\n",
         "expected clamp or reject"},
        {"services:\n  orders:\n    keys: [KEY]\n    limits: {tokens_burst: 5}\n",
         "tokens_per_minute"},
        {"services:\n  orders:\n    keys: [KEY]\n    limit: {}\n", "limit"},
        {"services:\n  a:\n    keys: [KEY]\n  b:\n    keys: [KEY]\n",
         "gw.yaml:10: services.b.keys[0]: this key hash is already listed"},
        {"redis: {address: nohost}\n", "gw.yaml:6: redis.address"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_t s;
        buf_init(&s);
        /* KEY stands for a valid hash. */
        const char *p = bad[i].svc, *k;
        while ((k = strstr(p, "KEY"))) {
            buf_append(&s, p, (size_t)(k - p));
            buf_appends(&s, h_orders);
            p = k + 3;
        }
        buf_appends(&s, p);
        cfg_with(&b, s.data);
        int rc = load(b.data, &c, err);
        CHECK_MSG(rc == -EINVAL && strstr(err, bad[i].want), "case %zu: rc %d err \"%s\"", i, rc,
                  err);
        buf_free(&s);
    }
    /* A route tokenizer that does not exist: named with its line. */
    const char *tk = "backends:\n  b: {addresses: [127.0.0.1:9]}\nroutes:\n  m1:\n    variants: "
                     "{v: {backend: b}}\n    tokenizer: /nonexistent.gguf\n";
    CHECK(load(tk, &c, err) == -EINVAL && strstr(err, "gw.yaml:6: routes.m1.tokenizer") &&
          strstr(err, "/nonexistent.gguf"));
    /* Without services, tokenizers or redis there is no governance at all. */
    cfg_with(&b, "");
    CHECK_EQ_INT(load(b.data, &c, err), 0);
    CHECK(c.gov == NULL);
    gwconfig_free(&c);
    buf_free(&b);
}

/* Header collector. */
typedef struct hdrs {
    char names[16][48];
    char values[16][48];
    int n;
} hdrs_t;
static void add_hdr(void *arg, const char *name, const char *value) {
    hdrs_t *h = arg;
    if (h->n < 16) {
        snprintf(h->names[h->n], 48, "%s", name);
        snprintf(h->values[h->n], 48, "%s", value);
        h->n++;
    }
}
static const char *hget(const hdrs_t *h, const char *name) {
    for (int i = 0; i < h->n; i++)
        if (!strcmp(h->names[i], name)) return h->values[i];
    return NULL;
}

static int parse(const char *s, json_tok_t *toks, json_doc_t *d) {
    return json_parse(s, strlen(s), toks, 256, 32, d, NULL);
}

static void test_decisions(void) {
    buf_t b, s;
    buf_init(&b);
    buf_init(&s);
    buf_appendf(
        &s,
        "services:\n"
        "  orders:\n"
        "    keys: [%s]\n"
        "    models: [m1]\n"
        "    limits: {requests_per_minute: 3, tokens_per_minute: 1000, daily_tokens: 1500,\n"
        "             max_prompt_tokens: 20, max_completion_tokens: 100}\n"
        "  search:\n"
        "    keys: [%s]\n"
        "    limits: {max_completion_tokens: 50, over_max_completion: reject, concurrent_requests: "
        "1}\n",
        h_orders, h_search);
    cfg_with(&b, s.data);
    gw_config_t c;
    char err[512];
    CHECK_MSG(load(b.data, &c, err) == 0, "%s", err);
    if (!c.gov) return;
    gov_t g;
    gov_init(&g);
    CHECK_EQ_INT(gov_bind(&g, c.gov, T0, DAY0), 0);
    gov_cfg_t *gc = c.gov;
    gov_decision_t d;
    tokcount_work_t *w = tokcount_work_new();

    /* Authentication. */
    CHECK_EQ_INT(gov_authenticate(&g, gc, NULL, &d), -1);
    CHECK_EQ_INT(d.status, 401);
    CHECK_EQ_STR(d.code, "missing_api_key");
    CHECK_EQ_INT(gov_authenticate(&g, gc, "Bearer key-unknown-123456", &d), -1);
    CHECK_EQ_STR(d.code, "invalid_api_key");
    CHECK(strstr(d.message, "key-...3456") != NULL && !strstr(d.message, "unknown"));
    CHECK_EQ_INT(gov_authenticate(&g, gc, "Bearer key-orders", &d), 0);
    CHECK_EQ_INT(gov_authenticate(&g, gc, "bearer key-search", &d), 1);
    CHECK_EQ_INT(gov_check_model(&g, gc, 0, "m1", &d), 0);
    CHECK_EQ_INT(gov_check_model(&g, gc, 0, "m2", &d), -1);
    CHECK_EQ_INT(d.status, 403);
    CHECK_EQ_INT(gov_check_model(&g, gc, 1, "m2", &d), 0);

    json_tok_t toks[256];
    json_doc_t jd;
    gov_ticket_t t;
    /* Prompt over max_prompt_tokens (estimate: 1 + 3 + 4 + ceil(80/4) = 28 > 20). */
    char big[200];
    snprintf(big, sizeof big, "{\"messages\":[{\"role\":\"user\",\"content\":\"%080d\"}]}", 0);
    parse(big, toks, &jd);
    CHECK_EQ_INT(gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0, DAY0, &t, &d), 400);
    CHECK_EQ_STR(d.code, "prompt_too_long");
    CHECK(strstr(d.message, "28 tokens") && strstr(d.message, "limit of 20"));
    /* No max_tokens: the service cap becomes it (and is the allowance). Prompt: 1+3+4+1 = 9. */
    parse("{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", toks, &jd);
    CHECK_EQ_INT(gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0, DAY0, &t, &d), 0);
    CHECK_EQ_INT(d.set_max_tokens, 100);
    CHECK_EQ_INT(t.charged, 109);
    buf_t out;
    buf_init(&out);
    CHECK_EQ_INT(gov_rewrite_max_tokens(&jd, d.max_tokens_key, d.set_max_tokens, &out), 0);
    CHECK_EQ_STR(out.data, "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
                           ",\"max_tokens\":100}");
    hdrs_t h = {0};
    gov_headers(&d, &gc->services[0], add_hdr, &h);
    CHECK_EQ_STR(hget(&h, "x-ratelimit-limit-requests"), "3");
    CHECK_EQ_STR(hget(&h, "x-ratelimit-remaining-requests"), "2");
    CHECK_EQ_STR(hget(&h, "x-ratelimit-reset-requests"), "20s");
    CHECK_EQ_STR(hget(&h, "x-ratelimit-limit-tokens"), "1000");
    CHECK_EQ_STR(hget(&h, "x-ratelimit-remaining-tokens"), "891");
    CHECK(hget(&h, "Retry-After") == NULL);
    /* The response used 9 + 5: 95 come back to the bucket and the budget. */
    gov_finish(&g, &t, 9, 5, 200, T0, DAY0);
    gov_state_t *st = gc->services[0].state;
    CHECK_EQ_INT(rl_bucket_remaining(&st->rl.tok), 986);
    CHECK_EQ_INT(budget_used(&st->budget, DAY0), 14);
    /* max_tokens over the cap is clamped (with the client's key kept). */
    parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_tokens\":500}",
          toks, &jd);
    CHECK_EQ_INT(gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0, DAY0, &t, &d), 0);
    CHECK_EQ_INT(d.set_max_tokens, 100);
    CHECK_EQ_STR(d.max_tokens_key, "max_completion_tokens");
    gov_finish(&g, &t, -1, -1, 502, T0, DAY0); /* failed, no usage: all refunded */
    CHECK_EQ_INT(budget_used(&st->budget, DAY0), 14);
    /* Third request of the minute passes, the fourth is refused with the exact wait. */
    parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":10}", toks, &jd);
    CHECK_EQ_INT(gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0, DAY0, &t, &d), 0);
    CHECK_EQ_INT(d.set_max_tokens, -1);
    gov_finish(&g, &t, -1, -1, 200, T0, DAY0); /* no usage but 200: reservation kept */
    CHECK_EQ_INT(budget_used(&st->budget, DAY0), 14 + 19);
    CHECK_EQ_INT(gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0 + 5 * S, DAY0, &t, &d), 429);
    CHECK_EQ_STR(d.code, "rate_limit_exceeded");
    CHECK_EQ_INT(d.retry_after_s, 15);
    h.n = 0;
    gov_headers(&d, &gc->services[0], add_hdr, &h);
    CHECK_EQ_STR(hget(&h, "Retry-After"), "15");
    CHECK_EQ_STR(hget(&h, "x-ratelimit-remaining-requests"), "0");
    CHECK(strstr(d.message, "requests per min (RPM): Limit 3") != NULL);
    CHECK_EQ_INT(gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0 + 20 * S, DAY0, &t, &d), 0);
    gov_finish(&g, &t, 100, 400, 200, T0 + 20 * S, DAY0); /* more than reserved: charged */
    CHECK_EQ_INT(budget_used(&st->budget, DAY0), 14 + 19 + 500);
    /* Daily budget 1500, 533 used: eight requests reserving 109 each pass (1405), the ninth
     * would reach 1514 and is refused until midnight. */
    parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1000}", toks, &jd);
    CHECK_EQ_INT(gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0 + 60 * S, DAY0, &t, &d),
                 0); /* clamped to 100 */
    gov_finish(&g, &t, 9, 100, 200, T0 + 60 * S, DAY0);
    for (int i = 0; i < 7; i++) {
        CHECK_EQ_INT(
            gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0 + (uint64_t)(80 + 20 * i) * S, DAY0, &t, &d),
            0);
        gov_finish(&g, &t, 9, 100, 200, T0 + (uint64_t)(80 + 20 * i) * S, DAY0);
    }
    CHECK_EQ_INT(budget_used(&st->budget, DAY0), 533 + 8 * 109);
    CHECK_EQ_INT(gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0 + 1000 * S, DAY0, &t, &d), 429);
    CHECK_EQ_STR(d.code, "daily_budget_exceeded");
    CHECK_EQ_INT(d.retry_after_s, 23 * 3600);
    CHECK(strstr(d.message, "1405 of its daily budget of 1500") != NULL);
    buf_reset(&out);
    gov_render_metrics(&g, DAY0, &out);
    CHECK(strstr(out.data, "tollgate_budget_used_ratio{service=\"orders\"} 0.93666") != NULL);
    CHECK(strstr(out.data, "tollgate_rejected_total{reason=\"daily_budget\"} 1\n") != NULL);
    CHECK(strstr(out.data, "tollgate_rejected_total{reason=\"requests\"} 1\n") != NULL);
    CHECK(strstr(out.data, "tollgate_limits_local_fallbacks_total 0\n") != NULL);
    CHECK(strstr(out.data, "tollgate_prompt_counts_total{method=\"estimate\"}") != NULL);
    /* After midnight the budget is back. */
    CHECK_EQ_INT(gov_admit(&g, gc, 0, NULL, w, &jd, 1, T0 + 1000 * S, DAY0 + 23 * 3600, &t, &d), 0);
    gov_finish(&g, &t, -1, -1, 200, T0 + 1000 * S, DAY0 + 23 * 3600);

    /* search: reject policy and concurrency 1. */
    parse("{\"prompt\":\"hi\",\"max_tokens\":51}", toks, &jd);
    CHECK_EQ_INT(gov_admit(&g, gc, 1, NULL, w, &jd, 0, T0, DAY0, &t, &d), 400);
    CHECK_EQ_STR(d.code, "max_tokens_too_large");
    CHECK(strstr(d.message, "max_tokens is 51") && strstr(d.message, "limit of 50"));
    parse("{\"prompt\":\"hi\",\"max_tokens\":50}", toks, &jd);
    gov_ticket_t t2;
    CHECK_EQ_INT(gov_admit(&g, gc, 1, NULL, w, &jd, 0, T0, DAY0, &t, &d), 0);
    CHECK_EQ_INT(gov_admit(&g, gc, 1, NULL, w, &jd, 0, T0, DAY0, &t2, &d), 429);
    CHECK_EQ_INT(d.reason, GOV_R_CONCURRENCY);
    gov_finish(&g, &t, 2, 3, 200, T0, DAY0);
    CHECK_EQ_INT(gov_admit(&g, gc, 1, NULL, w, &jd, 0, T0, DAY0, &t2, &d), 0);
    gov_finish(&g, &t2, 2, 3, 200, T0, DAY0);

    /* A reload keeps the state: same service name, same state. */
    gw_config_t c2;
    CHECK_EQ_INT(load(b.data, &c2, err), 0);
    CHECK_EQ_INT(gov_bind(&g, c2.gov, T0, DAY0), 0);
    CHECK(c2.gov->services[0].state == st);
    gwconfig_free(&c2);

    buf_free(&out);
    tokcount_work_free(w);
    gov_destroy(&g);
    gwconfig_free(&c);
    buf_free(&b);
    buf_free(&s);
}

/* The CPU cost of governance per request, in process: authenticate (SHA-256 + table),
 * count (exact with the llama-tiny vocabulary + Mistral template, or the estimate), admit
 * (per-request limits, budget, buckets under the service lock) and finish. */
static void test_cost(void) {
    const char *ref = getenv("TOLLGATE_REF");
    char yaml[2048], err[512];
    snprintf(yaml, sizeof yaml,
             "backends: {b: {addresses: [127.0.0.1:9]}}\n"
             "routes:\n"
             "  m: {variants: {v: {backend: b}}, tokenizer: %s/models/llama-tiny-Q8_0.gguf}\n"
             "  e: {variants: {v: {backend: b}}}\n"
             "services:\n"
             "  orders:\n"
             "    keys: [%s]\n"
             "    limits: {requests_per_minute: 100000000, tokens_per_minute: 100000000,\n"
             "             concurrent_requests: 1000, daily_tokens: 1000000000000, "
             "max_completion_tokens: 16}\n",
             ref && *ref ? ref : "../shared/ref", h_orders);
    gw_config_t c;
    if (gwconfig_load_string("gw.yaml", yaml, strlen(yaml), &c, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    gov_t g;
    gov_init(&g);
    gov_bind(&g, c.gov, T0, DAY0);
    tokcount_work_t *w = tokcount_work_new();
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"lgr pep "
                       "pzza x2\"}],\"max_tokens\":16}";
    json_tok_t toks[64];
    json_doc_t jd;
    json_parse(body, strlen(body), toks, 64, 16, &jd, NULL);
    const tokcount_t *tcs[2] = {govcfg_tokenizer(c.gov, "m"), NULL};
    for (int k = 0; k < 2; k++) {
        int n = 20000, ok = 1;
        uint64_t t0 = ev_clock_ns();
        for (int i = 0; i < n; i++) {
            gov_decision_t d;
            gov_ticket_t t;
            int s = gov_authenticate(&g, c.gov, "Bearer key-orders", &d);
            ok &= s == 0 && gov_admit(&g, c.gov, s, tcs[k], w, &jd, 1, T0 + (uint64_t)i * 1000,
                                      DAY0, &t, &d) == 0;
            gov_finish(&g, &t, 12, 16, 200, T0 + (uint64_t)i * 1000, DAY0);
        }
        double us = (double)(ev_clock_ns() - t0) / n / 1000.0;
        CHECK(ok);
        printf("governance per request (%s count): %.2f us\n", k ? "estimated" : "exact", us);
    }
    uint64_t t0 = ev_clock_ns();
    uint8_t hh[32];
    for (int i = 0; i < 100000; i++)
        keys_sha256("tg-C6UZnBTtGFxS4POZNM4Bd8A9YSmz0tIUD7pHbg_hWRQ", 46, hh);
    printf("SHA-256 of a 46-byte key: %.3f us\n", (double)(ev_clock_ns() - t0) / 100000 / 1000.0);
    tokcount_work_free(w);
    gov_destroy(&g);
    gwconfig_free(&c);
}

/* model_limits: a service's limits on one model, on top of its own, all or nothing. */
static void test_model_limits(void) {
    buf_t b, sv;
    buf_init(&b);
    buf_init(&sv);
    buf_appendf(&sv,
                "services:\n"
                "  orders:\n"
                "    keys: [%s]\n"
                "    limits: {requests_per_minute: 5}\n"
                "    model_limits:\n"
                "      m1: {requests_per_minute: 2, concurrent_requests: 1}\n",
                h_orders);
    cfg_with(&b, sv.data);
    gw_config_t c;
    char err[512];
    CHECK_MSG(load(b.data, &c, err) == 0, "%s", err);
    if (!c.gov) return;
    gov_t g;
    gov_init(&g);
    gov_bind(&g, c.gov, T0, DAY0);
    tokcount_work_t *w = tokcount_work_new();
    json_tok_t toks[64];
    json_doc_t jd;
    parse("{\"prompt\":\"hi\",\"max_tokens\":1}", toks, &jd);
    gov_ticket_t t[4];
    gov_decision_t d;
    const char *model[4] = {"m1", "m1", "m1", "m2"};
    int st[4];
    for (int i = 0; i < 4; i++) {
        gov_admit_request(&g, c.gov, 0, NULL, w, &jd, 0, &t[i], &d);
        gov_ticket_model(&t[i], model[i]);
    }
    st[0] = gov_admit_local(&g, &t[0], T0, DAY0, &d);
    CHECK_EQ_INT(st[0], 0);
    /* Concurrency 1 on m1: the second at once is refused, naming the model. */
    st[1] = gov_admit_local(&g, &t[1], T0, DAY0, &d);
    CHECK_EQ_INT(st[1], 429);
    CHECK(strstr(d.message, "on model `m1`") != NULL);
    gov_finish(&g, &t[0], 1, 1, 200, T0, DAY0);
    /* m1's RPM is 2: the refused one did not count; m2 has only the service's limits. */
    CHECK_EQ_INT(gov_admit_local(&g, &t[2], T0, DAY0, &d), 0);
    CHECK_EQ_INT(gov_admit_local(&g, &t[3], T0, DAY0, &d), 0);
    gov_finish(&g, &t[2], 1, 1, 200, T0, DAY0);
    gov_finish(&g, &t[3], 1, 1, 200, T0, DAY0);
    gov_ticket_t t5;
    gov_admit_request(&g, c.gov, 0, NULL, w, &jd, 0, &t5, &d);
    gov_ticket_model(&t5, "m1");
    CHECK_EQ_INT(gov_admit_local(&g, &t5, T0, DAY0, &d), 429);
    CHECK(strstr(d.message, "on model `m1` on requests per min (RPM): Limit 2") != NULL);
    CHECK_EQ_INT(d.retry_after_s, 30);
    /* The service's own bucket was charged for the 3 admitted only (5 - 3 = 2 left). */
    gov_state_t *ss = c.gov->services[0].state;
    CHECK_EQ_INT(rl_bucket_remaining(&ss->rl.req), 2);
    CHECK_EQ_INT(ss->rl.inflight, 0);
    /* Unknown model in model_limits: an error naming it. */
    buf_reset(&sv);
    buf_appendf(&sv, "services:\n  o:\n    keys: [%s]\n    model_limits: {nope: {requests_per_minute: 1}}\n",
                h_orders);
    cfg_with(&b, sv.data);
    gw_config_t c2;
    CHECK(load(b.data, &c2, err) == -EINVAL && strstr(err, "services.o.model_limits.nope: no route serves model"));
    tokcount_work_free(w);
    gov_destroy(&g);
    gwconfig_free(&c);
    buf_free(&b);
    buf_free(&sv);
}

int main(void) {
    hashes();
    test_model_limits();
    test_cost();
    test_config_errors();
    test_decisions();
    return check_summary("test_gw_govern");
}
