/* test_orders.c — the order service's store (SQLite) and its input/answer validation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "orders/service.h"
#include "orders/store.h"
#include "orders/wire.h"

static char dir[64];

static store_order_t mk(const char *items, const char *desc, const char *src, const char *why) {
    return (store_order_t){.items = (char *)items,
                           .customer = (char *)"Ana",
                           .description = (char *)desc,
                           .description_source = (char *)src,
                           .reason = (char *)why,
                           .model = (char *)"m",
                           .variant = (char *)"stable",
                           .normalize_ms = 12};
}

static void test_store(void) {
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/orders.db", dir);
    store_t *s = NULL;
    CHECK_EQ_INT(store_open(path, &s, err, sizeof err), 0);
    if (!s) return;
    int64_t n = -1;
    CHECK_EQ_INT(store_count(s, &n), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(store_ping(s), 0);

    store_order_t a = mk("lgr pep pzza x2", "2× Large Pepperoni Pizza", "model", "");
    CHECK_EQ_INT(store_insert(s, &a), 0);
    CHECK_EQ_INT(a.id, 1);
    CHECK(a.created_ms > 1700000000000LL);
    store_order_t b = mk("sm coke", "sm coke", "raw", "timeout: no answer within 300 ms");
    CHECK_EQ_INT(store_insert(s, &b), 0);
    CHECK_EQ_INT(b.id, 2);
    /* The CHECK constraint keeps the source to the two documented values. */
    store_order_t bad = mk("x", "x", "guess", "");
    CHECK_EQ_INT(store_insert(s, &bad), -EIO);
    store_order_t missing = mk("x", NULL, "raw", "");
    CHECK_EQ_INT(store_insert(s, &missing), -EINVAL);
    /* Over-long text is refused by the store itself, whatever the HTTP layer does. */
    char *huge = malloc(STORE_MAX_TEXT + 2);
    memset(huge, 'a', STORE_MAX_TEXT + 1);
    huge[STORE_MAX_TEXT + 1] = '\0';
    store_order_t big = mk(huge, "x", "raw", "");
    CHECK_EQ_INT(store_insert(s, &big), -EINVAL);
    free(huge);

    store_order_t g;
    CHECK_EQ_INT(store_get(s, 1, &g), 0);
    CHECK_EQ_STR(g.items, "lgr pep pzza x2");
    CHECK_EQ_STR(g.description, "2× Large Pepperoni Pizza");
    CHECK_EQ_STR(g.description_source, "model");
    CHECK_EQ_STR(g.variant, "stable");
    CHECK_EQ_INT(g.normalize_ms, 12);
    CHECK_EQ_INT(g.created_ms, a.created_ms);
    store_order_clear(&g);
    CHECK_EQ_INT(store_get(s, 2, &g), 0);
    CHECK_EQ_STR(g.reason, "timeout: no answer within 300 ms");
    store_order_clear(&g);
    CHECK_EQ_INT(store_get(s, 3, &g), -ENOENT);

    for (int i = 0; i < 8; i++) {
        store_order_t o = mk("gb", "1× Garlic Bread", "model", "");
        CHECK_EQ_INT(store_insert(s, &o), 0);
    }
    store_order_t *v;
    size_t k;
    CHECK_EQ_INT(store_list(s, 0, 4, &v, &k), 0);
    CHECK_EQ_INT(k, 4);
    CHECK_EQ_INT(v[0].id, 10); /* newest first */
    CHECK_EQ_INT(v[3].id, 7);
    int64_t next = v[3].id;
    store_orders_free(v, k);
    CHECK_EQ_INT(store_list(s, next, 100, &v, &k), 0); /* the next page */
    CHECK_EQ_INT(k, 6);
    CHECK_EQ_INT(v[0].id, 6);
    CHECK_EQ_INT(v[5].id, 1);
    store_orders_free(v, k);
    CHECK_EQ_INT(store_list(s, 1, 10, &v, &k), 0);
    CHECK_EQ_INT(k, 0);
    store_orders_free(v, k);
    store_close(s);

    /* Reopened: everything is still there, and the database is in WAL mode. */
    s = NULL;
    CHECK_EQ_INT(store_open(path, &s, err, sizeof err), 0);
    if (!s) return;
    CHECK_EQ_INT(store_count(s, &n), 0);
    CHECK_EQ_INT(n, 10);
    store_order_t c = mk("x", "x", "raw", "disabled");
    CHECK_EQ_INT(store_insert(s, &c), 0);
    CHECK_EQ_INT(c.id, 11);
    store_close(s);
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    CHECK_EQ_INT(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* A path in a missing directory is a clear error, not a crash. */
    char e2[256] = "";
    s = NULL;
    CHECK(store_open("/nonexistent-dir/x/orders.db", &s, e2, sizeof e2) < 0);
    CHECK(s == NULL);
    CHECK(strstr(e2, "cannot open") != NULL);
}

/* Expect the body to be refused, naming param (NULL: the body as a whole) and containing msg. */
static void bad_order(const char *body, const char *param, const char *msg) {
    wire_order_in_t in;
    char err[256] = "";
    const char *p = "unset";
    int rc = wire_parse_order(body, strlen(body), &in, err, sizeof err, &p);
    CHECK_MSG(rc == -EINVAL, "%s accepted", body);
    CHECK_MSG((param == NULL && p == NULL) || (param && p && !strcmp(param, p)),
              "%s: param %s, wanted %s", body, p ? p : "(null)", param ? param : "(null)");
    CHECK_MSG(strstr(err, msg) != NULL, "%s: message \"%s\" lacks \"%s\"", body, err, msg);
}

static void test_wire_order(void) {
    wire_order_in_t in;
    char err[256];
    const char *p;
    const char *ok = "{\"items\": \"  lgr pep pzza x2 \", \"customer\": \"Ana \\u00e9\"}";
    CHECK_EQ_INT(wire_parse_order(ok, strlen(ok), &in, err, sizeof err, &p), 0);
    CHECK_EQ_STR(in.items, "lgr pep pzza x2"); /* trimmed */
    CHECK_EQ_STR(in.customer, "Ana \xc3\xa9"); /* unescaped */
    wire_order_in_clear(&in);

    bad_order("", NULL, "not valid JSON");
    bad_order("{\"items\": \"x\"", NULL, "not valid JSON");
    bad_order("[\"x\"]", NULL, "must be a JSON object");
    bad_order("\"lgr pep\"", NULL, "must be a JSON object");
    bad_order("{\"customer\": \"Ana\"}", "items", "missing field \"items\"");
    bad_order("{\"items\": \"x\"}", "customer", "missing field \"customer\"");
    bad_order("{\"items\": 3, \"customer\": \"Ana\"}", "items", "must be a string");
    bad_order("{\"items\": null, \"customer\": \"Ana\"}", "items", "must be a string");
    bad_order("{\"items\": \"   \", \"customer\": \"Ana\"}", "items", "must not be empty");
    bad_order("{\"items\": \"x\", \"customer\": \"\"}", "customer", "must not be empty");
    bad_order("{\"items\": \"a\\nb\", \"customer\": \"Ana\"}", "items", "control characters");
    bad_order("{\"items\": \"a\\u0000b\", \"customer\": \"Ana\"}", "items", "control characters");
    bad_order("{\"items\": \"x\", \"customer\": \"Ana\", \"item\": \"y\"}", NULL,
              "unknown field \"item\"");
    bad_order("{\"items\": \"x\", \"items\": \"y\", \"customer\": \"A\", \"tip\": 1}", NULL,
              "unknown field \"tip\"");
    char big[WIRE_MAX_ITEMS + 64];
    int n = snprintf(big, sizeof big, "{\"customer\": \"A\", \"items\": \"");
    memset(big + n, 'p', WIRE_MAX_ITEMS + 1);
    strcpy(big + n + WIRE_MAX_ITEMS + 1, "\"}");
    bad_order(big, "items", "the limit is 500");
    big[n + WIRE_MAX_ITEMS] = '"'; /* exactly the limit */
    strcpy(big + n + WIRE_MAX_ITEMS + 1, "}");
    CHECK_EQ_INT(wire_parse_order(big, strlen(big), &in, err, sizeof err, &p), 0);
    CHECK_EQ_INT(strlen(in.items), WIRE_MAX_ITEMS);
    wire_order_in_clear(&in);

    /* Every truncation of a valid body is refused cleanly (ASan checks the reads). */
    size_t len = strlen(ok);
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, ok, cut);
        if (wire_parse_order(copy, cut, &in, err, sizeof err, &p) == -EINVAL)
            refused++;
        else
            wire_order_in_clear(&in);
        free(copy);
    }
    CHECK_EQ_INT(refused, (int)len);
}

static void test_wire_answer(void) {
    wire_task_out_t t;
    char err[256];
    const char *ok = "{\"output\":\"2\\u00d7 Large Pepperoni Pizza\",\"fallback\":false,"
                     "\"reason\":null,\"model\":\"tinyorders\",\"variant\":\"stable\","
                     "\"latency_ms\":41,\"extra\":[1,2]}";
    CHECK_EQ_INT(wire_parse_task_answer(ok, strlen(ok), &t, err, sizeof err), 0);
    CHECK_EQ_STR(t.output, "2\xc3\x97 Large Pepperoni Pizza");
    CHECK_EQ_INT(t.fallback, 0);
    CHECK_EQ_STR(t.reason, "");
    CHECK_EQ_STR(t.model, "tinyorders");
    CHECK_EQ_STR(t.variant, "stable");
    wire_task_out_clear(&t);
    const char *fb = "{\"output\":\"lgr pep\",\"fallback\":true,\"reason\":\"timeout\"}";
    CHECK_EQ_INT(wire_parse_task_answer(fb, strlen(fb), &t, err, sizeof err), 0);
    CHECK_EQ_INT(t.fallback, 1);
    CHECK_EQ_STR(t.reason, "timeout");
    CHECK_EQ_STR(t.model, "");
    wire_task_out_clear(&t);

    static const struct {
        const char *body, *msg;
    } bad[] = {
        {"", "not JSON"},
        {"<html>502</html>", "not JSON"},
        {"[]", "not a JSON object"},
        {"{\"fallback\":false}", "no \"output\""},
        {"{\"output\":42,\"fallback\":false}", "must be a string"},
        {"{\"output\":\"  \",\"fallback\":false}", "must not be empty"},
        {"{\"output\":\"a\\nb\",\"fallback\":false}", "control characters"},
        {"{\"output\":\"x\"}", "\"fallback\" missing"},
        {"{\"output\":\"x\",\"fallback\":\"no\"}", "\"fallback\" missing or not a boolean"},
        {"{\"output\":\"x\",\"fallback\":false,\"model\":7}", "\"model\" must be a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = wire_parse_task_answer(bad[i].body, strlen(bad[i].body), &t, err, sizeof err);
        CHECK_MSG(rc == -EINVAL, "%s accepted", bad[i].body);
        CHECK_MSG(strstr(err, bad[i].msg) != NULL, "%s: \"%s\"", bad[i].body, err);
    }
    /* An output longer than any description is not a normalization. */
    char *big = malloc(WIRE_MAX_DESCRIPTION + 64);
    int n = sprintf(big, "{\"fallback\":false,\"output\":\"");
    memset(big + n, 'x', WIRE_MAX_DESCRIPTION + 1);
    strcpy(big + n + WIRE_MAX_DESCRIPTION + 1, "\"}");
    CHECK_EQ_INT(wire_parse_task_answer(big, strlen(big), &t, err, sizeof err), -EINVAL);
    free(big);
}

static void test_wire_query(void) {
    int limit;
    int64_t before;
    char err[160];
    CHECK_EQ_INT(wire_parse_list_query("", &limit, &before, err, sizeof err), 0);
    CHECK_EQ_INT(limit, WIRE_DEFAULT_LIMIT);
    CHECK_EQ_INT(before, 0);
    CHECK_EQ_INT(wire_parse_list_query("limit=5&before=42", &limit, &before, err, sizeof err), 0);
    CHECK_EQ_INT(limit, 5);
    CHECK_EQ_INT(before, 42);
    CHECK_EQ_INT(wire_parse_list_query("limit=1000", &limit, &before, err, sizeof err), 0);
    static const char *const bad[] = {"limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=",
                                      "limit",   "before=0",   "sort=id",  "limit=5x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(wire_parse_list_query(bad[i], &limit, &before, err, sizeof err) == -EINVAL,
                  "%s accepted", bad[i]);
    int64_t id;
    CHECK_EQ_INT(wire_parse_id("42", &id), 0);
    CHECK_EQ_INT(id, 42);
    CHECK_EQ_INT(wire_parse_id("9223372036854775807", &id), 0);
    CHECK_EQ_INT(wire_parse_id("9223372036854775808", &id), -EINVAL);
    CHECK_EQ_INT(wire_parse_id("0", &id), -EINVAL);
    CHECK_EQ_INT(wire_parse_id("", &id), -EINVAL);
    CHECK_EQ_INT(wire_parse_id("4/2", &id), -EINVAL);
    CHECK_EQ_INT(wire_parse_id("-3", &id), -EINVAL);
}

static void test_url(void) {
    char host[64], prefix[64];
    uint16_t port;
    CHECK_EQ_INT(
        orders_parse_url("http://127.0.0.1:8080", host, sizeof host, &port, prefix, sizeof prefix),
        0);
    CHECK_EQ_STR(host, "127.0.0.1");
    CHECK_EQ_INT(port, 8080);
    CHECK_EQ_STR(prefix, "");
    CHECK_EQ_INT(orders_parse_url("http://gateway.tollgate.svc/api/", host, sizeof host, &port,
                                  prefix, sizeof prefix),
                 0);
    CHECK_EQ_STR(host, "gateway.tollgate.svc");
    CHECK_EQ_INT(port, 80);
    CHECK_EQ_STR(prefix, "/api");
    CHECK_EQ_INT(
        orders_parse_url("http://[::1]:9/", host, sizeof host, &port, prefix, sizeof prefix), 0);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 9);
    static const char *const bad[] = {"https://x",    "127.0.0.1:8080", "http://",
                                      "http://:80",   "http://h:0",     "http://h:99999",
                                      "http://h:80x", "http://[::1",    "http://h/a?b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(orders_parse_url(bad[i], host, sizeof host, &port, prefix, sizeof prefix) ==
                      -EINVAL,
                  "%s accepted", bad[i]);
}

int main(void) {
    if (check_tmpdir(dir, sizeof dir, "test_orders")) return 1;
    test_store();
    test_wire_order();
    test_wire_answer();
    test_wire_query();
    test_url();
    check_tmpdir_remove(dir);
    return check_summary("test_orders");
}
