/* test_gw_obs.c — gateway metrics families and buckets, the per-worker label cache, the
 * access-log line, the observability config, and obs_request_end into the request log. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/config.h"
#include "core/json.h"
#include "gateway/obs.h"

static int has(const buf_t *b, const char *line) {
    return b->data && strstr(b->data, line) != NULL;
}

static void test_metrics(void) {
    gwm_t *m = gwm_new();
    gwm_cache_t *c = gwm_cache_new(m);
    CHECK(m && c);
    char svc1[] = "orders", svc2[] = "orders"; /* same text, other address: same series */
    double durs[] = {0.1, 0.5, 0.7};
    for (int i = 0; i < 3; i++) {
        gwm_req_t r = {.service = i == 2 ? svc2 : svc1, .model = "tiny", .variant = "stable",
                       .status = 200, .duration_s = durs[i], .ttft_s = 0.05 * (i + 1),
                       .tpot_s = 0.02, .overhead_s = 0.00003, .prompt_tokens = 20 + i * 100,
                       .completion_tokens = 7};
        gwm_record(c, &r);
    }
    gwm_req_t e = {.service = svc1, .model = "tiny", .variant = "stable", .status = 504,
                   .duration_s = 2, .ttft_s = -1, .tpot_s = -1, .overhead_s = -1,
                   .prompt_tokens = -1, .completion_tokens = -1};
    gwm_record(c, &e);
    gwm_cache_reset(c);
    gwm_record(c, &e);
    gwm_fallback(m, "orders", "tiny", "timeout");
    buf_t b;
    buf_init(&b);
    CHECK_EQ_INT(metrics_render(gwm_registry(m), &b), 0);
    const char *L = "{service=\"orders\",model=\"tiny\",variant=\"stable\"";
    char want[256];
#define HAS(fmt, ...)                                                                          \
    do {                                                                                       \
        snprintf(want, sizeof want, fmt, __VA_ARGS__);                                         \
        CHECK_MSG(has(&b, want), "missing: %s", want);                                         \
    } while (0)
    HAS("tollgate_requests_total%s,code=\"200\"} 3\n", L);
    HAS("tollgate_requests_total%s,code=\"504\"} 2\n", L);
    HAS("tollgate_request_duration_seconds_bucket%s,le=\"0.1\"} 1\n", L);
    HAS("tollgate_request_duration_seconds_bucket%s,le=\"0.5\"} 2\n", L); /* le is inclusive */
    HAS("tollgate_request_duration_seconds_bucket%s,le=\"0.75\"} 3\n", L);
    HAS("tollgate_request_duration_seconds_bucket%s,le=\"+Inf\"} 5\n", L);
    HAS("tollgate_request_duration_seconds_count%s} 5\n", L);
    HAS("tollgate_time_to_first_token_seconds_count%s} 3\n", L);
    HAS("tollgate_time_per_output_token_seconds_bucket%s,le=\"0.02\"} 3\n", L);
    HAS("%s", "tollgate_overhead_seconds_bucket{le=\"5e-05\"} 3\n");
    HAS("%s", "tollgate_overhead_seconds_count 3\n");
    HAS("%s", "tollgate_prompt_tokens_bucket{service=\"orders\",model=\"tiny\",le=\"32\"} 1\n");
    HAS("%s", "tollgate_prompt_tokens_sum{service=\"orders\",model=\"tiny\"} 360\n");
    HAS("%s", "tollgate_tokens_total{service=\"orders\",model=\"tiny\",kind=\"prompt\"} 360\n");
    HAS("%s", "tollgate_tokens_total{service=\"orders\",model=\"tiny\",kind=\"completion\"} 21\n");
    HAS("%s", "tollgate_fallbacks_total{service=\"orders\",model=\"tiny\",reason=\"timeout\"} 1\n");
    HAS("%s", "# TYPE tollgate_request_duration_seconds histogram\n");
    buf_free(&b);
    gwm_cache_free(c);
    gwm_free(m);
}

/* More label tuples than the cache holds: every request is still counted. */
static void test_cache_overflow(void) {
    gwm_t *m = gwm_new();
    gwm_cache_t *c = gwm_cache_new(m);
    static char names[600][16];
    for (int i = 0; i < 600; i++) {
        snprintf(names[i], sizeof names[i], "s%d", i);
        for (int k = 0; k < 2; k++) {
            gwm_req_t r = {.service = names[i], .model = "m", .variant = "v", .status = 200,
                           .duration_s = 0.01, .ttft_s = -1, .tpot_s = -1, .overhead_s = -1,
                           .prompt_tokens = -1, .completion_tokens = -1};
            gwm_record(c, &r);
        }
    }
    buf_t b;
    buf_init(&b);
    metrics_render(gwm_registry(m), &b);
    CHECK(has(&b, "tollgate_requests_total{service=\"s0\",model=\"m\",variant=\"v\",code=\"200\"} 2\n"));
    CHECK(has(&b, "tollgate_requests_total{service=\"s599\",model=\"m\",variant=\"v\",code=\"200\"} 2\n"));
    buf_free(&b);
    gwm_cache_free(c);
    gwm_free(m);
}

/* Two workers record while a third thread scrapes: every observation is counted once. */
typedef struct {
    gwm_t *m;
    int n;
} rec_arg_t;
static volatile int scraping;

static void *recorder(void *arg) {
    rec_arg_t *a = arg;
    gwm_cache_t *c = gwm_cache_new(a->m);
    for (int i = 0; i < a->n; i++) {
        gwm_req_t r = {.service = "orders", .model = "m", .variant = i % 2 ? "a" : "b",
                       .status = 200, .duration_s = 0.4, .ttft_s = -1, .tpot_s = -1,
                       .overhead_s = -1, .prompt_tokens = 3, .completion_tokens = -1};
        gwm_record(c, &r);
    }
    gwm_cache_free(c);
    return NULL;
}

static void *scraper(void *arg) {
    buf_t b;
    buf_init(&b);
    int n = 0;
    while (__atomic_load_n(&scraping, __ATOMIC_RELAXED) || n == 0) {
        buf_reset(&b);
        metrics_render(gwm_registry(arg), &b);
        n++;
    }
    buf_free(&b);
    return NULL;
}

static void test_concurrent(void) {
    gwm_t *m = gwm_new();
    rec_arg_t a = {m, 100000};
    pthread_t t1, t2, s;
    scraping = 1;
    pthread_create(&s, NULL, scraper, m);
    pthread_create(&t1, NULL, recorder, &a);
    pthread_create(&t2, NULL, recorder, &a);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    __atomic_store_n(&scraping, 0, __ATOMIC_RELAXED);
    pthread_join(s, NULL);
    buf_t b;
    buf_init(&b);
    metrics_render(gwm_registry(m), &b);
    CHECK(has(&b, "tollgate_requests_total{service=\"orders\",model=\"m\",variant=\"a\",code=\"200\"} 100000\n"));
    CHECK(has(&b, "tollgate_request_duration_seconds_bucket{service=\"orders\",model=\"m\",variant=\"b\",le=\"0.5\"} 100000\n"));
    CHECK(has(&b, "tollgate_tokens_total{service=\"orders\",model=\"m\",kind=\"prompt\"} 600000\n"));
    buf_free(&b);
    gwm_free(m);
}

static void test_access_line(void) {
    accesslog_rec_t r = {.ts_ms = 1700000000123, .method = "POST", .path = "/v1/chat/completions",
                         .service = "orders", .model = "tiny", .variant = "canary",
                         .request_id = "r\"1", .status = 200, .stream = 1, .attempts = 2,
                         .duration_ms = 41.25, .ttft_ms = 12.5, .prompt_tokens = 30,
                         .completion_tokens = -1};
    buf_t b;
    buf_init(&b);
    CHECK_EQ_INT(accesslog_format(&r, &b), 0);
    CHECK(b.len > 0 && b.data[b.len - 1] == '\n' && !memchr(b.data, '\n', b.len - 1));
    json_tok_t toks[64];
    json_doc_t d;
    CHECK(json_parse(b.data, b.len, toks, 64, 8, &d, NULL) > 0);
    CHECK(json_str_eq(&d, json_obj_get(&d, 0, "ts"), "2023-11-14T22:13:20.123Z"));
    CHECK(json_str_eq(&d, json_obj_get(&d, 0, "variant"), "canary"));
    CHECK(json_str_eq(&d, json_obj_get(&d, 0, "request_id"), "r\"1"));
    int64_t v;
    CHECK(json_get_i64(&d, json_obj_get(&d, 0, "status"), &v) == 0 && v == 200);
    CHECK(json_get_i64(&d, json_obj_get(&d, 0, "attempts"), &v) == 0 && v == 2);
    CHECK(d.toks[json_obj_get(&d, 0, "completion_tokens")].type == JSON_NULL);
    CHECK(json_obj_get(&d, 0, "prompt") < 0);
    buf_free(&b);
}

static int load(const char *yaml, obs_cfg_t **c, char *err, size_t errlen) {
    cfg_node_t *root;
    int rc = cfg_load_string(yaml, strlen(yaml), "t.yaml", &root, err, errlen);
    if (rc)
        return rc;
    rc = obscfg_load(root, c, err, errlen);
    cfg_free(root);
    return rc;
}

static void test_config(void) {
    obs_cfg_t *c;
    char err[512];
    CHECK_EQ_INT(load("listen: 1\n", &c, err, sizeof err), 0);
    CHECK(c->log_path == NULL && c->access_log == NULL);
    CHECK_NEAR(obscfg_rate(c, "x"), 1.0, 0);
    obscfg_free(c);
    const char *y = "request_log:\n"
                    "  path: /tmp/x.db\n"
                    "  retention: 24h\n"
                    "  sample_rate: 0.1\n"
                    "  services: {orders: 1, search: 0}\n"
                    "  redact:\n"
                    "    phone: false\n"
                    "    patterns:\n"
                    "      - \"ORD-[0-9]+\"\n"
                    "      - {regex: \"tok_[a-z]+\", replace: \"[TOKEN]\"}\n"
                    "access_log: \"-\"\n";
    CHECK_EQ_INT(load(y, &c, err, sizeof err), 0);
    CHECK_EQ_STR(c->log_path, "/tmp/x.db");
    CHECK_EQ_INT(c->retention_ms, 24 * 3600 * 1000LL);
    CHECK_NEAR(obscfg_rate(c, "orders"), 1.0, 0);
    CHECK_NEAR(obscfg_rate(c, "search"), 0.0, 0);
    CHECK_NEAR(obscfg_rate(c, "other"), 0.1, 1e-12);
    CHECK_EQ_INT(c->redact_builtin, REDACT_EMAIL | REDACT_CARD);
    CHECK_EQ_INT(c->npatterns, 2);
    CHECK_EQ_STR(c->patterns[1].replace, "[TOKEN]");
    CHECK_EQ_STR(c->access_log, "-");
    obscfg_free(c);
    CHECK_EQ_INT(load("request_log:\n  path: a.db\n  redact:\n    patterns: [\"([a-z\"]\n", &c,
                      err, sizeof err),
                 -EINVAL);
    CHECK_MSG(strstr(err, "t.yaml:4") && strstr(err, "([a-z"), "%s", err);
    CHECK_EQ_INT(load("request_log:\n  path: a.db\n  sample_rate: 2\n", &c, err, sizeof err),
                 -EINVAL);
    CHECK_MSG(strstr(err, "t.yaml:3") && strstr(err, "sample_rate"), "%s", err);
    CHECK_EQ_INT(load("request_log:\n  retention: 1h\n", &c, err, sizeof err), -EINVAL);
    CHECK_MSG(strstr(err, "path"), "%s", err);
    CHECK_EQ_INT(load("request_log:\n  path: a.db\n  colour: red\n", &c, err, sizeof err), -EINVAL);
    CHECK_MSG(strstr(err, "colour"), "%s", err);
}

/* metrics: the scrape keys of /metrics (hashes, as for service keys) and the opt-out. */
static void test_metrics_config(void) {
    obs_cfg_t *c;
    char err[512];
    CHECK_EQ_INT(load("listen: 1\n", &c, err, sizeof err), 0);
    CHECK_EQ_INT(c->metrics_keys.n, 0); /* no section: nobody may scrape */
    CHECK_EQ_INT(c->metrics_public, 0);
    obscfg_free(c);
    char hash[KEYS_HASH_TEXT], y[512];
    uint8_t h[KEYS_HASH_LEN];
    keys_sha256("scrape-me", 9, h);
    keys_format_hash(h, hash);
    snprintf(y, sizeof y, "metrics:\n  keys:\n    - %s\n", hash);
    CHECK_EQ_INT(load(y, &c, err, sizeof err), 0);
    CHECK_EQ_INT(c->metrics_keys.n, 1);
    CHECK_EQ_INT(keys_table_lookup(&c->metrics_keys, "scrape-me", 9), 0);
    CHECK_EQ_INT(keys_table_lookup(&c->metrics_keys, "scrape-m", 8), -1);
    obscfg_free(c);
    CHECK_EQ_INT(load("metrics: {public: true}\n", &c, err, sizeof err), 0);
    CHECK_EQ_INT(c->metrics_public, 1);
    obscfg_free(c);
    /* the key itself instead of its hash: refused with its line */
    CHECK_EQ_INT(load("listen: 1\nmetrics:\n  keys: [tg-plain-key]\n", &c, err, sizeof err),
                 -EINVAL);
    CHECK_MSG(strstr(err, "t.yaml:3") && strstr(err, "sha256:"), "%s", err);
    snprintf(y, sizeof y, "metrics:\n  keys: [%s, %s]\n", hash, hash);
    CHECK_EQ_INT(load(y, &c, err, sizeof err), -EINVAL);
    CHECK_MSG(strstr(err, "already listed"), "%s", err);
    CHECK_EQ_INT(load("metrics:\n  key: x\n", &c, err, sizeof err), -EINVAL);
    CHECK_MSG(strstr(err, "key"), "%s", err);
    CHECK_EQ_INT(load("metrics: [a]\n", &c, err, sizeof err), -EINVAL);
    CHECK_EQ_INT(load("metrics: {public: maybe}\n", &c, err, sizeof err), -EINVAL);
    CHECK_EQ_INT(load("metrics: {keys: sha256:00}\n", &c, err, sizeof err), -EINVAL);
}

/* What a reload can and cannot apply. */
static void test_reload_differ(void) {
    obs_cfg_t *a, *b;
    char err[256];
    const char *base = "request_log:\n  path: /tmp/a.db\n  sample_rate: 0.1\n"
                       "  redact: {patterns: [\"x+\"]}\naccess_log: \"-\"\n";
    CHECK_EQ_INT(load(base, &a, err, sizeof err), 0);
    CHECK_EQ_INT(load("request_log:\n  path: /tmp/a.db\n  sample_rate: 0.9\n"
                      "  services: {orders: 0}\n  redact: {patterns: [\"x+\"]}\n"
                      "access_log: \"-\"\n",
                      &b, err, sizeof err),
                 0);
    CHECK_EQ_INT(obscfg_files_differ(a, b), 0); /* rates only: applied by the reload */
    obscfg_free(b);
    const char *changed[] = {
        "request_log:\n  path: /tmp/b.db\n  sample_rate: 0.1\n  redact: {patterns: [\"x+\"]}\n"
        "access_log: \"-\"\n",
        "request_log:\n  path: /tmp/a.db\n  sample_rate: 0.1\n  redact: {patterns: [\"y+\"]}\n"
        "access_log: \"-\"\n",
        "request_log:\n  path: /tmp/a.db\n  retention: 1h\n  sample_rate: 0.1\n"
        "  redact: {patterns: [\"x+\"]}\naccess_log: \"-\"\n",
        "request_log:\n  path: /tmp/a.db\n  sample_rate: 0.1\n  redact: {patterns: [\"x+\"]}\n",
        "listen: 1\n",
    };
    for (size_t i = 0; i < sizeof changed / sizeof changed[0]; i++) {
        CHECK_EQ_INT(load(changed[i], &b, err, sizeof err), 0);
        CHECK_MSG(obscfg_files_differ(a, b) == 1, "case %zu", i);
        obscfg_free(b);
    }
    obscfg_free(a);
}

static void test_obs_end(void) {
    char dir[] = "/tmp/test_gw_obs.XXXXXX";
    if (!mkdtemp(dir))
        return;
    char yaml[1024], db[256], al[256], err[512];
    snprintf(db, sizeof db, "%s/req.db", dir);
    snprintf(al, sizeof al, "%s/access.log", dir);
    snprintf(yaml, sizeof yaml,
             "request_log:\n  path: %s\n  sample_rate: 0\n  services: {orders: 1}\n"
             "access_log: %s\n", db, al);
    obs_cfg_t *c;
    CHECK_EQ_INT(load(yaml, &c, err, sizeof err), 0);
    obs_t *o;
    CHECK_EQ_INT(obs_new(c, &o, err, sizeof err), 0);
    obs_worker_t *w = obs_worker_new(o, 7);
    int yes = 0, no = 0;
    for (int i = 0; i < 100; i++) {
        yes += obs_sample(w, c, "orders");
        no += obs_sample(w, c, "search");
    }
    CHECK_EQ_INT(yes, 100);
    CHECK_EQ_INT(no, 0);
    const char *body = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"to a@b.io\"}]}";
    const char *resp = "{\"choices\":[{\"message\":{\"content\":\"ok\"}}]}";
    obs_req_t r = {.ts_ms = 0 /* now: an old one would go with the 72 h retention */, .method = "POST", .path = "/v1/chat/completions",
                   .service = "orders", .model = "tiny", .variant = "stable", .status = 200,
                   .attempts = 1, .start_ns = 1000, .end_ns = 1000 + 40000000,
                   .upstream_ns = 39000000, .prompt_tokens = 9, .completion_tokens = 1,
                   .sampled = 1, .prompt = body, .prompt_len = strlen(body), .response = resp,
                   .response_len = strlen(resp)};
    obs_request_end(w, &r);
    CHECK_EQ_INT(reqlog_sync(obs_reqlog(o), 5000), 0);
    reqlog_stats_t rs;
    reqlog_stats(obs_reqlog(o), &rs);
    CHECK_EQ_INT(rs.written, 1);
    sqlite3 *s;
    sqlite3_stmt *st;
    CHECK(sqlite3_open(db, &s) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(s, "SELECT prompt, response, outcome, latency_ms FROM requests", -1,
                             &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "user: to [EMAIL]");
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 1), "ok");
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 2), "ok");
    CHECK_NEAR(sqlite3_column_double(st, 3), 40.0, 1e-9);
    sqlite3_finalize(st);
    sqlite3_close(s);
    buf_t b;
    buf_init(&b);
    metrics_render(gwm_registry(obs_metrics(o)), &b);
    CHECK(has(&b, "tollgate_overhead_seconds_bucket{le=\"0.001\"} 1\n"));
    CHECK(has(&b, "tollgate_overhead_seconds_bucket{le=\"0.0005\"} 0\n"));
    buf_free(&b);
    obs_worker_free(w);
    obs_free(o);
    obscfg_free(c);
    FILE *f = fopen(al, "r");
    char line[1024] = "";
    CHECK(f && fgets(line, sizeof line, f));
    if (f)
        fclose(f);
    CHECK(strstr(line, "\"status\":200") && strstr(line, "\"service\":\"orders\""));
    CHECK(!strstr(line, "a@b.io"));
    CHECK_EQ_STR(obs_outcome(429, 0), "rejected");
    CHECK_EQ_STR(obs_outcome(200, 1), "fallback");
    CHECK_EQ_STR(obs_outcome(504, 0), "timeout");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    test_metrics();
    test_cache_overflow();
    test_concurrent();
    test_access_line();
    test_config();
    test_metrics_config();
    test_reload_differ();
    test_obs_end();
    return check_summary("test_gw_obs");
}
