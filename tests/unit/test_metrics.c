/* test_metrics.c — Prometheus registry: exact exposition text, histograms, threads, promtool. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/metrics.h"

static double read_42(void *arg) {
    return *(double *)arg;
}

static int hook_calls;
static void on_scrape(void *arg) {
    hook_calls++;
    metrics_set((metrics_child_t *)arg, 7);
}

static void test_render_exact(void) {
    metrics_registry_t *r = metrics_registry_new();
    static const char *const req_labels[] = {"service", "code", NULL};
    metrics_family_t *req = metrics_counter(r, "tollgate_requests_total", "Requests handled.",
                                            req_labels);
    metrics_family_t *up = metrics_gauge(r, "tollgate_up", "1 when up.\nSecond line \\ here", NULL);
    static const double bounds[] = {0.1, 0.5, 1};
    static const char *const hl[] = {"variant", NULL};
    metrics_family_t *lat =
        metrics_histogram(r, "tollgate_request_duration_seconds", "Latency.", hl, bounds, 3);
    double v42 = 42.5;
    CHECK_EQ_INT(metrics_gauge_fn(r, "vllm:num_requests_running", "Running.", read_42, &v42), 0);
    metrics_family_t *empty = metrics_gauge(r, "tollgate_empty", "No children yet.", hl);
    metrics_family_t *hooked = metrics_gauge(r, "tollgate_hooked", "Set by a scrape hook.", NULL);
    CHECK(req && up && lat && empty && hooked);
    CHECK_EQ_INT(metrics_on_scrape(r, on_scrape, metrics_child(hooked, NULL)), 0);

    metrics_child_t *ok = metrics_labels(req, "orders", "200");
    metrics_child_t *bad = metrics_labels(req, "a\"b\\c\nd", "500");
    CHECK(ok && bad && ok != bad);
    CHECK(metrics_labels(req, "orders", "200") == ok); /* same tuple, same pointer */
    static const char *const vals[] = {"orders", "200"};
    CHECK(metrics_child(req, vals) == ok);
    metrics_inc(ok);
    metrics_inc(ok);
    metrics_add(ok, 3);
    metrics_add(ok, -1); /* ignored: counters only go up */
    metrics_add(bad, 0.25);
    metrics_set(metrics_child(up, NULL), 1);
    metrics_child_t *st = metrics_labels(lat, "stable");
    metrics_observe(st, 0.05);
    metrics_observe(st, 0.1);  /* le is inclusive */
    metrics_observe(st, 0.5);  /* lands in the bucket at exactly 0.5 */
    metrics_observe(st, 0.75);
    metrics_observe(st, 3);    /* only in +Inf */
    metrics_observe(st, NAN);  /* ignored */
    metrics_observe(ok, 1);    /* wrong type: ignored */
    metrics_set(ok, 100);      /* wrong type: ignored */
    CHECK_NEAR(metrics_value(ok), 5, 0);
    CHECK_EQ_INT(metrics_hist_count(st), 5);
    CHECK_EQ_INT(metrics_hist_bucket(st, 0), 2);
    CHECK_EQ_INT(metrics_hist_bucket(st, 1), 3);
    CHECK_EQ_INT(metrics_hist_bucket(st, 2), 4);
    CHECK_EQ_INT(metrics_hist_bucket(st, 3), 5);
    CHECK_NEAR(metrics_hist_sum(st), 4.4, 1e-12);

    buf_t b;
    buf_init(&b);
    CHECK_EQ_INT(metrics_render(r, &b), 0);
    CHECK_EQ_INT(hook_calls, 1);
    const char *want =
        "# HELP tollgate_requests_total Requests handled.\n"
        "# TYPE tollgate_requests_total counter\n"
        "tollgate_requests_total{service=\"orders\",code=\"200\"} 5\n"
        "tollgate_requests_total{service=\"a\\\"b\\\\c\\nd\",code=\"500\"} 0.25\n"
        "# HELP tollgate_up 1 when up.\\nSecond line \\\\ here\n"
        "# TYPE tollgate_up gauge\n"
        "tollgate_up 1\n"
        "# HELP tollgate_request_duration_seconds Latency.\n"
        "# TYPE tollgate_request_duration_seconds histogram\n"
        "tollgate_request_duration_seconds_bucket{variant=\"stable\",le=\"0.1\"} 2\n"
        "tollgate_request_duration_seconds_bucket{variant=\"stable\",le=\"0.5\"} 3\n"
        "tollgate_request_duration_seconds_bucket{variant=\"stable\",le=\"1\"} 4\n"
        "tollgate_request_duration_seconds_bucket{variant=\"stable\",le=\"+Inf\"} 5\n"
        "tollgate_request_duration_seconds_sum{variant=\"stable\"} 4.4\n"
        "tollgate_request_duration_seconds_count{variant=\"stable\"} 5\n"
        "# HELP vllm:num_requests_running Running.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        "vllm:num_requests_running 42.5\n"
        "# HELP tollgate_empty No children yet.\n"
        "# TYPE tollgate_empty gauge\n"
        "# HELP tollgate_hooked Set by a scrape hook.\n"
        "# TYPE tollgate_hooked gauge\n"
        "tollgate_hooked 7\n";
    CHECK_EQ_STR(b.data, want);

    /* callback values are read at scrape time */
    v42 = -3;
    buf_reset(&b);
    metrics_render(r, &b);
    CHECK(strstr(b.data, "\nvllm:num_requests_running -3\n") != NULL);
    CHECK_EQ_INT(hook_calls, 2);

    /* render appends */
    size_t before = b.len;
    metrics_render(r, &b);
    CHECK_EQ_INT(b.len, 2 * before);

    /* promtool parses and lints the text when it is installed (make setup installs it). Its
     * lint rejects ':' in names (vLLM's names have one, and are legal), so those are left out. */
    if (access("/usr/bin/promtool", X_OK) == 0) {
        FILE *p = popen("grep -v vllm: | /usr/bin/promtool check metrics >/dev/null 2>&1", "w");
        CHECK(p != NULL);
        if (p) {
            fwrite(b.data, 1, before, p);
            int st2 = pclose(p);
            CHECK_MSG(st2 == 0, "promtool check metrics failed (%d)", st2);
        }
    }
    buf_free(&b);
    metrics_registry_free(r);
}

static void test_validation(void) {
    metrics_registry_t *r = metrics_registry_new();
    static const char *const dup[] = {"a", "a", NULL};
    static const char *const le[] = {"le", NULL};
    static const char *const bad[] = {"1x", NULL};
    static const char *const reserved[] = {"__x", NULL};
    static const char *const colon[] = {"a:b", NULL};
    CHECK(metrics_counter(r, "ok_total", "", NULL) != NULL);
    CHECK(metrics_counter(r, "ok_total", "", NULL) == NULL); /* duplicate name */
    CHECK(metrics_gauge(r, "ok_total", "", NULL) == NULL);
    CHECK(metrics_counter(r, "1bad", "", NULL) == NULL);
    CHECK(metrics_counter(r, "bad-name", "", NULL) == NULL);
    CHECK(metrics_counter(r, "", "", NULL) == NULL);
    CHECK(metrics_counter(r, "c1", "", dup) == NULL);
    CHECK(metrics_counter(r, "c2", "", bad) == NULL);
    CHECK(metrics_counter(r, "c3", "", reserved) == NULL);
    CHECK(metrics_counter(r, "c4", "", colon) == NULL);
    CHECK(metrics_histogram(r, "h1", "", le, metrics_latency_buckets,
                            metrics_latency_nbuckets) == NULL);
    CHECK(metrics_gauge(r, "g_le", "", le) != NULL); /* "le" is only reserved for histograms */
    static const double unsorted[] = {1, 0.5};
    static const double inf[] = {1, INFINITY};
    CHECK(metrics_histogram(r, "h2", "", NULL, unsorted, 2) == NULL);
    CHECK(metrics_histogram(r, "h3", "", NULL, inf, 2) == NULL);
    metrics_family_t *h = metrics_histogram(r, "h4", "", NULL, NULL, 0); /* only +Inf */
    CHECK(h != NULL);
    metrics_observe(metrics_child(h, NULL), 1e9);
    static const char *const one[] = {"x", NULL};
    metrics_family_t *f = metrics_counter(r, "c5", "", one);
    CHECK(metrics_child(f, NULL) == NULL); /* labelled family needs values */
    static const char *const nullval[] = {NULL};
    CHECK(metrics_child(f, nullval) == NULL);
    CHECK_EQ_INT(metrics_gauge_fn(r, "fn_gauge", "", NULL, NULL), -EINVAL);
    /* the latency buckets contain exactly 0.5 */
    int has_half = 0;
    for (size_t i = 0; i < metrics_latency_nbuckets; i++) has_half |= metrics_latency_buckets[i] == 0.5;
    CHECK(has_half);
    buf_t b;
    buf_init(&b);
    CHECK_EQ_INT(metrics_render(r, &b), 0);
    CHECK(strstr(b.data, "h4_bucket{le=\"+Inf\"} 1\nh4_sum 1000000000\nh4_count 1\n") != NULL);
    CHECK(strstr(b.data, "\nok_total 0\n") != NULL); /* unlabelled series exist from the start */
    buf_free(&b);
    metrics_registry_free(r);
}

static void test_fmt(void) {
    char s[32];
    metrics_fmt_value(0, s);
    CHECK_EQ_STR(s, "0");
    metrics_fmt_value(-17, s);
    CHECK_EQ_STR(s, "-17");
    metrics_fmt_value(0.005, s);
    CHECK_EQ_STR(s, "0.005");
    metrics_fmt_value(1e20, s);
    CHECK_EQ_STR(s, "1e+20");
    metrics_fmt_value(NAN, s);
    CHECK_EQ_STR(s, "NaN");
    metrics_fmt_value(INFINITY, s);
    CHECK_EQ_STR(s, "+Inf");
    metrics_fmt_value(-INFINITY, s);
    CHECK_EQ_STR(s, "-Inf");
    metrics_fmt_value(0.1 + 0.2, s);
    CHECK_EQ_STR(s, "0.30000000000000004");
}

#define THREADS 4
#define PER_THREAD 250000

typedef struct {
    metrics_family_t *cf, *hf;
    int id;
} targ_t;

static void *worker(void *p) {
    targ_t *a = p;
    /* every thread creates the same children concurrently and must get the same pointers */
    metrics_child_t *c = metrics_labels(a->cf, "shared");
    metrics_child_t *h = metrics_child(a->hf, NULL);
    for (int i = 0; i < PER_THREAD; i++) {
        metrics_inc(c);
        metrics_observe(h, (i % 4) * 0.25); /* 0, .25, .5, .75: sum is exact in binary */
    }
    return c;
}

static void test_threads(void) {
    metrics_registry_t *r = metrics_registry_new();
    static const char *const l[] = {"k", NULL};
    static const double bounds[] = {0.25, 0.5};
    targ_t a[THREADS];
    pthread_t t[THREADS];
    metrics_family_t *cf = metrics_counter(r, "hits_total", "", l);
    metrics_family_t *hf = metrics_histogram(r, "lat", "", NULL, bounds, 2);
    for (int i = 0; i < THREADS; i++) {
        a[i] = (targ_t){cf, hf, i};
        pthread_create(&t[i], NULL, worker, &a[i]);
    }
    void *ret[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], &ret[i]);
    int same = 1;
    for (int i = 1; i < THREADS; i++) same &= ret[i] == ret[0];
    CHECK(same);
    metrics_child_t *c = metrics_labels(cf, "shared");
    CHECK_NEAR(metrics_value(c), (double)THREADS * PER_THREAD, 0);
    metrics_child_t *h = metrics_child(hf, NULL);
    CHECK_EQ_INT(metrics_hist_count(h), THREADS * PER_THREAD);
    CHECK_EQ_INT(metrics_hist_bucket(h, 0), THREADS * PER_THREAD / 2);     /* 0 and .25 */
    CHECK_EQ_INT(metrics_hist_bucket(h, 1), THREADS * PER_THREAD / 4 * 3); /* + .5 */
    CHECK_NEAR(metrics_hist_sum(h), THREADS * (PER_THREAD / 4) * 1.5, 0);
    metrics_registry_free(r);
}

int main(void) {
    test_render_exact();
    test_validation();
    test_fmt();
    test_threads();
    return check_summary("test_metrics");
}
