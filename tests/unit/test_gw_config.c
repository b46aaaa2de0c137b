/* test_gw_config.c — gateway config: a full file, defaults, and errors that name line and field. */
#include "check.h"

#include <errno.h>
#include <stdlib.h>

#include "core/httpd.h"
#include "gateway/gwconfig.h"

static const char *good =
    "listen: 127.0.0.1:9000\n"                         /* 1 */
    "threads: 2\n"                                     /* 2 */
    "max_body_bytes: 65536\n"                          /* 3 */
    "admin:\n"                                         /* 4 */
    "  listen: 127.0.0.1:9001\n"                       /* 5 */
    "  key: s3cret\n"                                  /* 6 */
    "backends:\n"                                      /* 7 */
    "  sim_a:\n"                                       /* 8 */
    "    addresses: [127.0.0.1:7001, '[::1]:7002']\n"  /* 9 */
    "    health_check: {path: /healthz, interval_ms: 200, timeout_ms: 100}\n"
    "    ejection: {consecutive_failures: 2, base_ms: 100, max_ms: 1000}\n"
    "    max_connections: 8\n"
    "  sim_b:\n"                                       /* 13 */
    "    addresses:\n"
    "      - 127.0.0.1:7003\n"
    "    health_check: false\n"
    "routes:\n"                                        /* 17 */
    "  tiny:\n"
    "    variants:\n"
    "      stable: {backend: sim_a, weight: 90}\n"     /* 20 */
    "      canary: {backend: sim_b, weight: 10, upstream_model: phi3}\n"
    "    deadlines: {connect_ms: 100, ttft_ms: 2000, total_ms: 5000}\n"
    "    retry: {max_attempts: 3, budget_percent: 50, budget_burst: 4}\n"
    "  \"org/model:q4\":\n"
    "    variants:\n"
    "      only: {backend: sim_b}\n";

static void test_good(void) {
    gw_config_t c;
    char err[GWCONFIG_ERR_MAX] = "";
    int rc = gwconfig_load_string("t.yaml", good, strlen(good), &c, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    CHECK_EQ_STR(c.listen.host, "127.0.0.1");
    CHECK_EQ_INT(c.listen.port, 9000);
    CHECK_EQ_INT(c.threads, 2);
    CHECK_EQ_INT(c.max_body_bytes, 65536);
    CHECK_EQ_INT(c.admin.enabled, 1);
    CHECK_EQ_INT(c.admin.listen.port, 9001);
    CHECK_EQ_STR(c.admin.key, "s3cret");
    CHECK_EQ_INT(c.nbackends, 2);
    const gw_backend_cfg_t *a = gwconfig_backend(&c, "sim_a");
    CHECK(a != NULL);
    if (a) {
        CHECK_EQ_INT(a->naddrs, 2);
        CHECK_EQ_STR(a->addrs[1].host, "::1");
        CHECK_EQ_INT(a->addrs[1].port, 7002);
        CHECK_EQ_INT(a->addrs[0].where.line, 9);
        CHECK_EQ_STR(a->health.path, "/healthz");
        CHECK_EQ_INT(a->health.interval_ms, 200);
        CHECK_EQ_INT(a->eject.failures, 2);
        CHECK_EQ_INT(a->eject.max_ms, 1000);
        CHECK_EQ_INT(a->max_conns, 8);
        CHECK_EQ_INT(a->where.line, 8);
    }
    const gw_backend_cfg_t *b = gwconfig_backend(&c, "sim_b");
    CHECK(b && b->health.path == NULL && b->eject.failures == GW_DEF_EJECT_FAILURES);
    const gw_route_cfg_t *r = gwconfig_route(&c, "tiny");
    CHECK(r != NULL);
    if (r) {
        CHECK_EQ_INT(r->nvariants, 2);
        CHECK_EQ_STR(r->variants[0].name, "stable");
        CHECK_EQ_INT(r->variants[0].weight, 90);
        CHECK_EQ_INT(r->variants[0].backend_idx, 0);
        CHECK_EQ_INT(r->variants[1].backend_idx, 1);
        CHECK_EQ_STR(r->variants[1].upstream_model, "phi3");
        CHECK(r->variants[0].upstream_model == NULL);
        CHECK_EQ_INT(r->deadlines.connect_ms, 100);
        CHECK_EQ_INT(r->deadlines.ttft_ms, 2000);
        CHECK_EQ_INT(r->deadlines.total_ms, 5000);
        CHECK_EQ_INT(r->retry.max_attempts, 3);
        CHECK_EQ_INT(r->retry.budget_burst, 4);
        CHECK_EQ_INT(r->variants[1].where.line, 21);
    }
    const gw_route_cfg_t *r2 = gwconfig_route(&c, "org/model:q4");
    CHECK(r2 && r2->variants[0].weight == 1 && r2->deadlines.total_ms == GW_DEF_TOTAL_MS &&
          r2->retry.max_attempts == GW_DEF_RETRY_ATTEMPTS);
    CHECK(gwconfig_route(&c, "nope") == NULL);
    gwconfig_free(&c);
}

/* Load text that must fail; the message must contain want. */
static void expect_err(const char *text, const char *want) {
    gw_config_t c;
    char err[GWCONFIG_ERR_MAX] = "";
    int rc = gwconfig_load_string("bad.yaml", text, strlen(text), &c, err, sizeof err);
    CHECK_MSG(rc == -EINVAL, "rc %d for: %s", rc, text);
    CHECK_MSG(strstr(err, want) != NULL, "got \"%s\", want \"%s\"", err, want);
    if (rc == 0)
        gwconfig_free(&c);
}

#define BK "backends:\n  a:\n    addresses: [127.0.0.1:1]\n"
#define RT "routes:\n  m:\n    variants:\n      v: {backend: a}\n"

static void test_errors(void) {
    expect_err("listen: [1\n", "bad.yaml:2: YAML syntax");
    expect_err("", "bad.yaml: routes: none defined");
    expect_err("lisen: 1.2.3.4:5\n", "bad.yaml:1: unknown field \"lisen\" (expected one of: listen,");
    expect_err("listen: localhost\n", "bad.yaml:1: listen: expected host:port");
    expect_err("threads: -1\n", "bad.yaml:1: threads: expected an integer between 0 and 256, got \"-1\"");
    expect_err("threads: 1000\n", "bad.yaml:1: threads: expected an integer between 0 and 256, got \"1000\"");
    expect_err(BK RT "admin:\n  listen: 127.0.0.1:9\n", "bad.yaml:8: admin.key: the admin API needs a key");
    expect_err("admin:\n  key_env: TOLLGATE_TEST_UNSET_VAR\n",
               "bad.yaml:1: admin.key: the admin API needs a key");
    expect_err("admin:\n  key_env: ''\n", "bad.yaml:2: admin.key_env: expected the name");
    expect_err("backends:\n  a:\n    addresses: [127.0.0.1:1, 'x:99999']\n",
               "bad.yaml:3: backends.a.addresses[1]: expected host:port with a port 1-65535, got \"x:99999\"");
    expect_err("backends:\n  a:\n    adresses: [127.0.0.1:1]\n",
               "bad.yaml:3: backends.a: unknown field \"adresses\"");
    expect_err("backends:\n  a:\n    health_check: {path: /h}\n",
               "bad.yaml:2: backends.a: missing required field \"addresses\"");
    expect_err("backends:\n  a:\n    addresses: [127.0.0.1:1, 127.0.0.1:1]\n",
               "bad.yaml:3: backends.a.addresses[1]: 127.0.0.1:1 is listed twice");
    expect_err("backends:\n  a:\n    addresses: [127.0.0.1:1]\n    health_check: {path: h}\n",
               "bad.yaml:2: backends.a.health_check.path: \"h\" must start with '/'");
    expect_err(BK "routes:\n  m:\n    variants:\n      v: {backend: b}\n",
               "bad.yaml:7: routes.m.variants.v.backend: \"b\" is not defined under backends");
    expect_err(BK "routes:\n  m:\n    variants:\n      v: {weight: 3}\n",
               "bad.yaml:7: routes.m.variants.v: missing required field \"backend\"");
    expect_err(BK "routes:\n  m:\n    variants:\n      v: {backend: a, weight: ten}\n",
               "bad.yaml:7: routes.m.variants.v.weight: expected an integer between 0 and 1000000, got \"ten\"");
    expect_err(BK "routes:\n  m:\n    deadlines: {total_ms: 5}\n",
               "bad.yaml:5: routes.m: missing required field \"variants\"");
    expect_err(BK RT "    deadlines: {ttft_ms: 50, total_ms: 10}\n",
               "bad.yaml:5: routes.m.deadlines.ttft_ms: 50 is larger than total_ms 10");
    expect_err(BK RT "    retry: {max_attempts: 0}\n",
               "bad.yaml:5: routes.m.retry.max_attempts: 0 out of range");
    expect_err(BK RT "    retry: {max_tries: 2}\n",
               "bad.yaml:8: routes.m.retry: unknown field \"max_tries\"");
    expect_err(BK RT "routes: {}\n", "bad.yaml:8: duplicate key \"routes\" (first at line 4)");
    expect_err(BK "routes:\n  m:\n    variants:\n      v: {backend: a, weight: 1, weight: 2}\n",
               "bad.yaml:7: duplicate key \"weight\"");
    expect_err(BK "routes:\n  m:\n    variants: [a]\n",
               "bad.yaml:6: routes.m.variants: expected a map");
}

/* http: the main listener's head limits and client timeouts; absent: core httpd's defaults. */
static void test_http(void) {
    const char *text = BK RT
        "http:\n"                                      /* 8 */
        "  max_head_bytes: 8KB\n"
        "  max_headers: 32\n"
        "  header_timeout_ms: 1500\n"
        "  body_timeout_ms: 2000\n"
        "  idle_timeout_ms: 3000\n"
        "  write_timeout_ms: 4000\n"
        "  max_connections: 500\n";
    gw_config_t c;
    char err[GWCONFIG_ERR_MAX] = "";
    int rc = gwconfig_load_string("t.yaml", text, strlen(text), &c, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK_EQ_INT(c.http.max_head_bytes, 8192);
        CHECK_EQ_INT(c.http.max_headers, 32);
        CHECK_EQ_INT(c.http.header_timeout_ms, 1500);
        CHECK_EQ_INT(c.http.body_timeout_ms, 2000);
        CHECK_EQ_INT(c.http.idle_timeout_ms, 3000);
        CHECK_EQ_INT(c.http.write_timeout_ms, 4000);
        CHECK_EQ_INT(c.http.max_conns, 500);
        CHECK_EQ_INT(c.http.where.line, 8);
        gwconfig_free(&c);
    }
    /* Absent, or only some fields: the others keep core httpd's defaults. */
    const char *part = BK RT "http: {header_timeout_ms: 700}\n";
    rc = gwconfig_load_string("t.yaml", part, strlen(part), &c, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK_EQ_INT(c.http.header_timeout_ms, 700);
        CHECK_EQ_INT(c.http.max_head_bytes, HTTPD_DEFAULT_MAX_HEAD);
        CHECK_EQ_INT(c.http.max_headers, HTTPD_DEFAULT_MAX_HEADERS);
        CHECK_EQ_INT(c.http.body_timeout_ms, HTTPD_DEFAULT_BODY_TIMEOUT);
        CHECK_EQ_INT(c.http.idle_timeout_ms, HTTPD_DEFAULT_IDLE_TIMEOUT);
        CHECK_EQ_INT(c.http.write_timeout_ms, HTTPD_DEFAULT_WRITE_TIMEOUT);
        CHECK_EQ_INT(c.http.max_conns, HTTPD_DEFAULT_MAX_CONNS);
        gwconfig_free(&c);
    }
    expect_err(BK RT "http:\n  header_timeout_ms: 5\n",
               "bad.yaml:9: http.header_timeout_ms: expected an integer between 100 and 86400000, "
               "got \"5\"");
    expect_err(BK RT "http:\n  max_head_bytes: 100\n", "bad.yaml:9: http.max_head_bytes:");
    expect_err(BK RT "http:\n  max_headers: 100000\n",
               "bad.yaml:9: http.max_headers: expected an integer between 8 and 1024");
    expect_err(BK RT "http:\n  idle_timeout_ms: soon\n", "bad.yaml:9: http.idle_timeout_ms:");
    expect_err(BK RT "http:\n  max_connections: 0\n", "bad.yaml:9: http.max_connections:");
    expect_err(BK RT "http:\n  header_timeout: 1000\n",
               "bad.yaml:9: http: unknown field \"header_timeout\"");
    expect_err(BK RT "http: 5\n", "bad.yaml:8: http:");
}

static void test_hostport(void) {
    char *h = NULL;
    uint16_t p = 0;
    CHECK_EQ_INT(gwconfig_parse_hostport("10.1.2.3:80", &h, &p), 0);
    CHECK_EQ_STR(h, "10.1.2.3");
    CHECK_EQ_INT(p, 80);
    free(h);
    CHECK_EQ_INT(gwconfig_parse_hostport("[::1]:443", &h, &p), 0);
    CHECK_EQ_STR(h, "::1");
    free(h);
    CHECK_EQ_INT(gwconfig_parse_hostport("::1:443", &h, &p), -EINVAL);
    CHECK_EQ_INT(gwconfig_parse_hostport("host:", &h, &p), -EINVAL);
    CHECK_EQ_INT(gwconfig_parse_hostport(":80", &h, &p), -EINVAL);
    CHECK_EQ_INT(gwconfig_parse_hostport("host:0", &h, &p), -EINVAL);
    CHECK_EQ_INT(gwconfig_parse_hostport("host:8x", &h, &p), -EINVAL);
    CHECK_EQ_INT(gwconfig_parse_hostport("[::1]443", &h, &p), -EINVAL);
}

static void test_file(void) {
    gw_config_t c;
    char err[GWCONFIG_ERR_MAX] = "";
    CHECK(gwconfig_load("/nonexistent/tollgate.yaml", &c, err, sizeof err) < 0);
    CHECK(strstr(err, "/nonexistent/tollgate.yaml: cannot open") != NULL);
}

/* key_env wins over key when its variable is set, whatever the order. */
static void test_key_env(void) {
    const char *t = "admin:\n  key: from-file\n  key_env: TOLLGATE_TEST_ADMIN_KEY\n" BK RT;
    gw_config_t c;
    char err[GWCONFIG_ERR_MAX] = "";
    unsetenv("TOLLGATE_TEST_ADMIN_KEY");
    CHECK_EQ_INT(gwconfig_load_string("k.yaml", t, strlen(t), &c, err, sizeof err), 0);
    CHECK_EQ_STR(c.admin.key, "from-file");
    gwconfig_free(&c);
    setenv("TOLLGATE_TEST_ADMIN_KEY", "from-env", 1);
    CHECK_EQ_INT(gwconfig_load_string("k.yaml", t, strlen(t), &c, err, sizeof err), 0);
    CHECK_EQ_STR(c.admin.key, "from-env");
    gwconfig_free(&c);
    const char *t2 = "admin:\n  key_env: TOLLGATE_TEST_ADMIN_KEY\n  key: from-file\n" BK RT;
    CHECK_EQ_INT(gwconfig_load_string("k.yaml", t2, strlen(t2), &c, err, sizeof err), 0);
    CHECK_EQ_STR(c.admin.key, "from-env");
    gwconfig_free(&c);
    unsetenv("TOLLGATE_TEST_ADMIN_KEY");
}

int main(void) {
    test_good();
    test_key_env();
    test_errors();
    test_hostport();
    test_http();
    test_file();
    return check_summary("test_gw_config");
}
