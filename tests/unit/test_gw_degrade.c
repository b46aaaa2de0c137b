/* test_gw_degrade.c — circuit breaker states, canary controller steps / window / abort,
 * sticky assignment. Time is injected. */
#include "check.h"

#include <errno.h>
#include <stdint.h>

#include "gateway/canary.h"
#include "gateway/circuit.h"
#include "gateway/degrade.h"
#include "gateway/snapshot.h"
#include "gateway/gwconfig.h"
#include "gateway/task.h"
#include "gateway/taskcfg.h"

#define MS 1000000ull

static void test_circuit_consecutive(void) {
    circuit_cfg_t cfg;
    circuit_cfg_defaults(&cfg);
    cfg.failures = 3;
    cfg.ratio_pct = 0;
    cfg.cooldown_ms = 1000;
    cfg.probes = 2;
    circuit_t c;
    circuit_init(&c, "b");
    uint64_t t = 1000 * MS;
    CHECK_EQ_INT(circuit_allow(&c, &cfg, t), CIRCUIT_PASS);
    circuit_report(&c, &cfg, 0, 0, t);
    circuit_report(&c, &cfg, 0, 0, t);
    circuit_report(&c, &cfg, 0, 1, t); /* a success resets the count */
    circuit_report(&c, &cfg, 0, 0, t);
    circuit_report(&c, &cfg, 0, 0, t);
    CHECK_EQ_INT(circuit_state(&c, &cfg, t), CIRCUIT_CLOSED);
    circuit_report(&c, &cfg, 0, 0, t);
    CHECK_EQ_INT(circuit_state(&c, &cfg, t), CIRCUIT_OPEN);
    CHECK_EQ_STR(c.why, "consecutive_failures");
    CHECK_EQ_INT(circuit_allow(&c, &cfg, t + 999 * MS), CIRCUIT_REJECT);
    /* A late report from a call admitted before it opened changes nothing. */
    circuit_report(&c, &cfg, 0, 1, t + 10 * MS);
    CHECK_EQ_INT(circuit_state(&c, &cfg, t + 10 * MS), CIRCUIT_OPEN);
    /* Cool-down over: one probe at a time. */
    t += 1000 * MS;
    CHECK_EQ_INT(circuit_state(&c, &cfg, t), CIRCUIT_HALF_OPEN);
    CHECK_EQ_INT(circuit_allow(&c, &cfg, t), CIRCUIT_PROBE);
    CHECK_EQ_INT(circuit_allow(&c, &cfg, t), CIRCUIT_REJECT);
    circuit_report(&c, &cfg, 1, 0, t); /* the probe failed: open again, a new cool-down */
    CHECK_EQ_INT(circuit_state(&c, &cfg, t + 500 * MS), CIRCUIT_OPEN);
    CHECK_EQ_STR(c.why, "probe_failed");
    t += 1000 * MS;
    CHECK_EQ_INT(circuit_allow(&c, &cfg, t), CIRCUIT_PROBE);
    circuit_report(&c, &cfg, 1, -1, t); /* cancelled: frees the slot only */
    CHECK_EQ_INT(circuit_allow(&c, &cfg, t), CIRCUIT_PROBE);
    circuit_report(&c, &cfg, 1, 1, t);
    CHECK_EQ_INT(circuit_state(&c, &cfg, t), CIRCUIT_HALF_OPEN);
    CHECK_EQ_INT(circuit_allow(&c, &cfg, t), CIRCUIT_PROBE);
    circuit_report(&c, &cfg, 1, 1, t);
    CHECK_EQ_INT(circuit_state(&c, &cfg, t), CIRCUIT_CLOSED);
    CHECK_EQ_INT(circuit_allow(&c, &cfg, t), CIRCUIT_PASS);
    CHECK_EQ_INT(atomic_load(&c.opens), 2);
    CHECK_EQ_INT(atomic_load(&c.rejected), 2);
    circuit_destroy(&c);
}

static void test_circuit_ratio(void) {
    circuit_cfg_t cfg;
    circuit_cfg_defaults(&cfg);
    cfg.failures = 0;
    cfg.ratio_pct = 50;
    cfg.min_requests = 10;
    cfg.window_ms = 1000;
    circuit_t c;
    circuit_init(&c, "r");
    uint64_t t = 5000 * MS;
    /* Alternating: 50% failures, but not before 10 outcomes. */
    for (int i = 0; i < 9; i++) circuit_report(&c, &cfg, 0, i % 2, t);
    CHECK_EQ_INT(circuit_state(&c, &cfg, t), CIRCUIT_CLOSED);
    circuit_report(&c, &cfg, 0, 0, t); /* 10th, 5 failures of 10 */
    CHECK_EQ_INT(circuit_state(&c, &cfg, t), CIRCUIT_OPEN);
    CHECK_EQ_STR(c.why, "failure_ratio");
    circuit_destroy(&c);

    /* Old outcomes leave the window. */
    circuit_init(&c, "r2");
    for (int i = 0; i < 9; i++) circuit_report(&c, &cfg, 0, 0, t);
    t += 2000 * MS;
    for (int i = 0; i < 9; i++) circuit_report(&c, &cfg, 0, 1, t);
    circuit_report(&c, &cfg, 0, 0, t);
    CHECK_EQ_INT(circuit_state(&c, &cfg, t), CIRCUIT_CLOSED);
    circuit_destroy(&c);
}

static void test_circuit_set(void) {
    circuit_set_t s;
    circuit_set_init(&s);
    circuit_t *a = circuit_get(&s, "a"), *b = circuit_get(&s, "b");
    CHECK(a && b && a != b);
    CHECK(circuit_get(&s, "a") == a);
    CHECK_EQ_STR(circuit_state_name(CIRCUIT_HALF_OPEN), "half_open");
    circuit_set_free(&s);
}

static void test_sticky(void) {
    /* Same key, same bucket; buckets spread over 0..99. */
    CHECK_EQ_INT(canary_bucket("alice", 5), canary_bucket("alice", 5));
    int seen[100] = {0}, distinct = 0;
    char k[16];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(k, sizeof k, "user-%d", i);
        uint32_t b = canary_bucket(k, (size_t)n);
        CHECK(b < 100);
        if (b < 100 && !seen[b]++)
            distinct++;
    }
    CHECK(distinct > 95);
    uint32_t w[2] = {90, 10};
    CHECK_EQ_INT(canary_pick_sticky(w, 2, 0), 0);
    CHECK_EQ_INT(canary_pick_sticky(w, 2, 89), 0);
    CHECK_EQ_INT(canary_pick_sticky(w, 2, 90), 1);
    CHECK_EQ_INT(canary_pick_sticky(w, 2, 99), 1);
    /* Monotone: whoever is in the canary at 10% stays there at 25% and 50%. */
    uint32_t w25[2] = {75, 25}, w50[2] = {50, 50};
    int moved_out = 0;
    for (uint32_t b = 0; b < 100; b++)
        if (canary_pick_sticky(w, 2, b) == 1 &&
            (canary_pick_sticky(w25, 2, b) != 1 || canary_pick_sticky(w50, 2, b) != 1))
            moved_out++;
    CHECK_EQ_INT(moved_out, 0);
    uint32_t z[2] = {0, 0};
    CHECK_EQ_INT(canary_pick_sticky(z, 2, 5), -1);
    uint32_t x[3] = {1, 0, 3}; /* non-percent weights scale */
    CHECK_EQ_INT(canary_pick_sticky(x, 3, 24), 0);
    CHECK_EQ_INT(canary_pick_sticky(x, 3, 25), 2);
}

static canary_cfg_t small_cfg(void) {
    canary_cfg_t g;
    canary_cfg_defaults(&g);
    g.pause_ms = 1000;
    g.window_ms = 10000;
    g.min_requests = 5;
    return g;
}

static void test_canary_steps(void) {
    canary_t c;
    canary_init(&c, "m");
    CHECK_EQ_INT(canary_weight(&c), -1);
    canary_cfg_t g = small_cfg();
    canary_cfg_t bad = g;
    bad.steps[1] = 5; /* not ascending */
    CHECK_EQ_INT(canary_start(&c, &bad, "stable", "canary", 0), -EINVAL);
    bad = g;
    bad.steps[3] = 90; /* does not end at 100 */
    CHECK_EQ_INT(canary_start(&c, &bad, "stable", "canary", 0), -EINVAL);
    CHECK_EQ_INT(canary_start(&c, &g, "stable", "stable", 0), -EINVAL);
    uint64_t t = 100 * MS;
    CHECK_EQ_INT(canary_start(&c, &g, "stable", "canary", t), 0);
    CHECK_EQ_INT(canary_start(&c, &g, "stable", "canary", t), -EALREADY);
    CHECK_EQ_INT(canary_weight(&c), 10);
    CHECK_EQ_INT(canary_live(&c), 1);
    /* The pause passes, but a step needs min_requests outcomes. */
    CHECK_EQ_INT(canary_tick(&c, t + 2000 * MS), 0);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(canary_record(&c, t + 2000 * MS, NULL, 40, 0, 0), 0);
    CHECK_EQ_INT(canary_weight(&c), 10);
    CHECK_EQ_INT(canary_record(&c, t + 2000 * MS, NULL, 40, 0, 0), 1);
    CHECK_EQ_INT(canary_weight(&c), 25);
    /* Healthy traffic walks through the steps; one error in 20 (5%) is at the limit, not
     * over it. */
    t += 2000 * MS;
    for (int i = 0; i < 5; i++) canary_record(&c, t, NULL, 100, 0, 0);
    t += 1001 * MS;
    CHECK_EQ_INT(canary_tick(&c, t), 1);
    CHECK_EQ_INT(canary_state(&c), CANARY_RUNNING);
    CHECK_EQ_INT(canary_weight(&c), 50);
    for (int i = 0; i < 9; i++) canary_record(&c, t, NULL, 100, 0, 0);
    canary_record(&c, t, NULL, 100, 1, 0);
    CHECK_EQ_INT(canary_state(&c), CANARY_RUNNING); /* 1 of 20 in the window: 5% */
    /* Pause holds the step; resume restarts its clock; promote jumps. */
    CHECK_EQ_INT(canary_pause(&c, t), 0);
    for (int i = 0; i < 5; i++) canary_record(&c, t + 5000 * MS, NULL, 100, 0, 0);
    CHECK_EQ_INT(canary_weight(&c), 50);
    CHECK_EQ_INT(canary_resume(&c, t + 5000 * MS), 0);
    CHECK_EQ_INT(canary_tick(&c, t + 5500 * MS), 0);
    CHECK_EQ_INT(canary_promote(&c, t + 5500 * MS), 0);
    CHECK_EQ_INT(canary_weight(&c), 100);
    CHECK_EQ_INT(canary_state(&c), CANARY_PROMOTED);
    CHECK_EQ_INT(canary_live(&c), 0);
    CHECK_EQ_INT(canary_promote(&c, t), -EALREADY);
    CHECK_EQ_INT(canary_abort(&c, "x", t), -EALREADY);
    canary_destroy(&c);
}

static void test_canary_abort(void) {
    canary_t c;
    canary_init(&c, "m");
    canary_cfg_t g = small_cfg();
    uint64_t t = 50 * MS;
    /* Slow: p99 over 500 ms once the window holds min_requests. */
    CHECK_EQ_INT(canary_start(&c, &g, "stable", "canary", t), 0);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(canary_record(&c, t, NULL, 900, 0, 0), 0);
    CHECK_EQ_INT(canary_state(&c), CANARY_RUNNING);
    CHECK_EQ_INT(canary_record(&c, t, NULL, 900, 0, 0), 1);
    CHECK_EQ_INT(canary_state(&c), CANARY_ABORTED);
    CHECK_EQ_INT(canary_weight(&c), 0);
    canary_stats_t s0;
    canary_window(&c, t + 1000 * MS, &s0);
    CHECK_EQ_INT(s0.n, 5); /* the window stays readable after the abort */
    CHECK_MSG(strstr(c.reason, "p99 latency 1000 ms > limit 500 ms over 5 requests") != NULL,
              "%s", c.reason);
    /* Exactly 500 ms is within the limit (a bucket bound at 500). */
    CHECK_EQ_INT(canary_start(&c, &g, "stable", "canary", t), 0);
    for (int i = 0; i < 10; i++) canary_record(&c, t, NULL, 500, 0, 0);
    CHECK_EQ_INT(canary_state(&c), CANARY_RUNNING);
    canary_stats_t s;
    canary_window(&c, t, &s);
    CHECK_EQ_INT(s.n, 10);
    CHECK_EQ_INT(s.p99_ms, 500);
    /* Errors. */
    for (int i = 0; i < 2; i++) canary_record(&c, t, NULL, 10, 1, 0);
    CHECK_EQ_INT(canary_state(&c), CANARY_ABORTED);
    CHECK(strstr(c.reason, "error rate 9.1% > limit 5.0% over 11 requests") != NULL);
    /* Fallbacks; and the window forgets old outcomes. */
    CHECK_EQ_INT(canary_start(&c, &g, "stable", "canary", t), 0);
    for (int i = 0; i < 10; i++) canary_record(&c, t, NULL, 10, 0, 1);
    CHECK_EQ_INT(canary_state(&c), CANARY_ABORTED);
    CHECK(strstr(c.reason, "fallback rate 100.0%") != NULL);
    CHECK_EQ_INT(canary_start(&c, &g, "stable", "canary", t), 0);
    canary_record(&c, t, NULL, 3000, 0, 0);
    canary_window(&c, t + 20000 * MS, &s);
    CHECK_EQ_INT(s.n, 0);
    for (int i = 0; i < 5; i++) canary_record(&c, t + 20000 * MS, NULL, 30, 0, 0);
    CHECK_EQ_INT(canary_state(&c), CANARY_RUNNING);
    /* Operator abort. */
    CHECK_EQ_INT(canary_abort(&c, NULL, t), 0);
    CHECK_EQ_STR(c.reason, "aborted by the operator");
    CHECK_EQ_INT(canary_record(&c, t, NULL, 30, 0, 0), 0); /* ignored once decided */
    CHECK_EQ_INT(canary_start(&c, &g, "stable", "canary", t), 0);
    for (int i = 0; i < 10; i++) canary_record(&c, t, "stable", 3000, 1, 1); /* not the canary */
    CHECK_EQ_INT(canary_state(&c), CANARY_RUNNING);
    canary_abort(&c, NULL, t);
    /* Status JSON parses. */
    buf_t b;
    buf_init(&b);
    json_w_t jw;
    json_w_init(&jw, &b);
    canary_write_status(&c, t, &jw);
    json_tok_t toks[128];
    json_doc_t d;
    CHECK(json_parse(b.data, b.len, toks, 128, 0, &d, NULL) > 0);
    int st = json_obj_get(&d, 0, "state");
    CHECK(st > 0 && json_str_eq(&d, st, "aborted"));
    buf_free(&b);
    canary_destroy(&c);
}

static void test_canary_set(void) {
    canary_set_t s;
    canary_set_init(&s);
    CHECK(canary_get(&s, "m", 0) == NULL);
    canary_t *a = canary_get(&s, "m", 1);
    CHECK(a && canary_get(&s, "m", 0) == a);
    CHECK_EQ_INT(canary_count(&s), 1);
    CHECK(canary_at(&s, 0) == a && canary_at(&s, 1) == NULL);
    CHECK_EQ_STR(canary_state_name(canary_state(a)), "idle");
    canary_set_free(&s);
}

static void test_task_helpers(void) {
    buf_t b;
    buf_init(&b);
    CHECK_EQ_INT(task_render("Order: {input} / {input}!", "a\"b", 3, &b), 0);
    CHECK_EQ_STR(b.data, "Order: a\"b / a\"b!");
    buf_reset(&b);
    task_render("{input}", "", 0, &b);
    CHECK_EQ_STR(b.data ? b.data : "", "");
    buf_free(&b);
    char s1[] = "  2x Large Pepperoni Pizza \n more\n";
    size_t n = strlen(s1);
    task_post(TASK_POST_FIRST_LINE, s1, &n);
    CHECK_EQ_STR(s1, "2x Large Pepperoni Pizza");
    CHECK_EQ_INT(n, strlen(s1));
    char s2[] = "\t a\nb \n";
    n = strlen(s2);
    task_post(TASK_POST_TRIM, s2, &n);
    CHECK_EQ_STR(s2, "a\nb");
    char s3[] = " x ";
    n = 3;
    task_post(TASK_POST_NONE, s3, &n);
    CHECK_EQ_INT(n, 3);
    char s4[] = " \n ";
    n = 3;
    task_post(TASK_POST_FIRST_LINE, s4, &n);
    CHECK_EQ_INT(n, 0);
}

static const char base_cfg[] =
    "backends:\n  b: {addresses: [127.0.0.1:9]}\n"
    "routes:\n  m:\n    variants: {s: {backend: b}, c: {backend: b, weight: 0}}\n";

static int load(const char *extra, gw_config_t *c, char *err) {
    char text[2048];
    snprintf(text, sizeof text, "%s%s", base_cfg, extra);
    return gwconfig_load_string("t.yaml", text, strlen(text), c, err, 512);
}

static void test_taskcfg(void) {
    gw_config_t c;
    char err[512];
    CHECK_EQ_INT(load("", &c, err), 0);
    CHECK(c.deg && c.deg->ntasks == 0 && c.deg->circuit_enabled);
    CHECK_EQ_INT(c.deg->circuit.failures, CIRCUIT_DEF_FAILURES);
    CHECK_EQ_INT(c.deg->routes[0].fallback_variant, -1);
    CHECK_EQ_INT(c.deg->routes[0].stable_variant, 0); /* two variants: first stable */
    CHECK_EQ_INT(c.deg->routes[0].canary_variant, 1);
    gwconfig_free(&c);

    int rc = load("    fallback: c\n    sticky: {header: x-tollgate-user}\n"
                  "    canary: {steps: [5, 100], pause_ms: 10, min_requests: 3, max_p99_ms: 300}\n"
                  "circuit_breaker: {consecutive_failures: 2, cooldown_ms: 100, probes: 1}\n"
                  "tasks:\n  norm:\n    route: m\n    system: Normalize.\n"
                  "    template: 'Order: {input}'\n    max_tokens: 20\n    temperature: 0\n"
                  "    stop: ['\\n']\n    post: first_line\n    deadline_ms: 250\n"
                  "  fixed: {route: m, fallback: {text: n/a}}\n",
                  &c, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        const taskcfg_t *t = c.deg;
        CHECK_EQ_INT(t->routes[0].fallback_variant, 1);
        CHECK_EQ_INT(t->routes[0].sticky, TASK_STICKY_HEADER);
        CHECK_EQ_STR(t->routes[0].sticky_name, "x-tollgate-user");
        CHECK_EQ_INT(t->routes[0].canary.nsteps, 2);
        CHECK_EQ_INT(t->routes[0].canary.max_p99_ms, 300);
        CHECK_EQ_INT(t->circuit.failures, 2);
        const task_def_t *k = taskcfg_task(t, "norm", 4);
        CHECK(k != NULL);
        if (k) {
            CHECK_EQ_STR(k->tmpl, "Order: {input}");
            CHECK_EQ_INT(k->max_tokens, 20);
            CHECK_EQ_INT(k->deadline_ms, 250);
            CHECK_EQ_INT(k->post, TASK_POST_FIRST_LINE);
            CHECK_EQ_INT(k->nstop, 1);
            CHECK(k->fallback_text == NULL);
        }
        k = taskcfg_task(t, "fixed", 5);
        CHECK(k && k->fallback_text && !strcmp(k->fallback_text, "n/a"));
        CHECK(k && k->deadline_ms == TASK_DEF_DEADLINE_MS && !strcmp(k->tmpl, "{input}"));
        CHECK(taskcfg_task(t, "nor", 3) == NULL);
        gwconfig_free(&c);
    }
    /* Errors name the line and field. */
    static const struct { const char *extra, *want; } bad[] = {
        {"    fallback: nosuch\n", "t.yaml:6: routes.m.fallback: no variant `nosuch`"},
        {"tasks:\n  t: {route: nope}\n", "no route `nope`"},
        {"tasks:\n  t: {route: m, template: 'no placeholder'}\n", "must contain {input}"},
        {"tasks:\n  t: {route: m, post: upper}\n", "expected trim, first_line or none"},
        {"tasks:\n  t: {route: m, deadline_ms: 0}\n", "deadline_ms"},
        {"tasks:\n  t: {route: m, colour: red}\n", "colour"},
        {"tasks:\n  t: {template: '{input}'}\n", "route"},
        {"tasks:\n  t: {route: m, fallback: raw}\n", "expected `input` or {text"},
        {"    canary: {steps: [50, 20, 100]}\n", "steps must increase"},
        {"    canary: {steps: [10, 50]}\n", "the last step must be 100"},
        {"    sticky: {cookie: x}\n", "cookie"},
        {"circuit_breaker: {probes: 0}\n", "probes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = load(bad[i].extra, &c, err);
        CHECK_MSG(rc == -EINVAL && strstr(err, bad[i].want), "%s -> %d %s", bad[i].extra, rc, err);
        if (rc == 0)
            gwconfig_free(&c);
    }
}

/* The proxy's hooks on a real generation: sticky by body field, fallback variant. */
static void test_degrade_hooks(void) {
    gw_config_t c;
    char err[512];
    int rc = load("    sticky: {field: user}\n    fallback: c\n", &c, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    pool_registry_t reg;
    pool_registry_init(&reg);
    snapshot_t *s = NULL;
    CHECK_EQ_INT(snapshot_new(&c, &reg, 1, &s), 0);
    if (!s) {
        pool_registry_free(&reg);
        return;
    }
    snap_route_t *r = &s->routes[0];
    atomic_store(&r->weights[0], 50);
    atomic_store(&r->weights[1], 50);
    json_tok_t toks[32];
    json_doc_t d;
    int seen[2] = {0, 0};
    char body[64];
    for (int u = 0; u < 40; u++) {
        int n = snprintf(body, sizeof body, "{\"model\":\"m\",\"user\":\"u%d\"}", u);
        CHECK(json_parse(body, (size_t)n, toks, 32, 0, &d, NULL) > 0);
        int first = degrade_pick(s, r, NULL, &d, 1);
        for (uint32_t rnd = 2; rnd < 12; rnd++) CHECK_EQ_INT(degrade_pick(s, r, NULL, &d, rnd), first);
        if (first >= 0)
            seen[first]++;
    }
    CHECK(seen[0] > 5 && seen[1] > 5);
    /* Without the field: by rnd. */
    CHECK(json_parse("{\"model\":\"m\"}", 13, toks, 32, 0, &d, NULL) > 0);
    CHECK_EQ_INT(degrade_pick(s, r, NULL, &d, 10), 0);
    CHECK_EQ_INT(degrade_pick(s, r, NULL, &d, 60), 1);
    CHECK_EQ_INT(degrade_fallback(s, r, &r->cfg->variants[0]), 1);
    CHECK_EQ_INT(degrade_fallback(s, r, &r->cfg->variants[1]), -1);
    /* Circuit admission through the set of a gateway is covered end to end (e2e tasks). */
    snapshot_unref(s);
    pool_registry_free(&reg);
}

int main(void) {
    test_degrade_hooks();
    test_task_helpers();
    test_taskcfg();
    test_circuit_consecutive();
    test_circuit_ratio();
    test_circuit_set();
    test_sticky();
    test_canary_steps();
    test_canary_abort();
    test_canary_set();
    return check_summary("test_gw_degrade");
}
