/* test_config.c — YAML config loader: tree shape, lines, typed getters and their messages. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/config.h"

static const char *sample =
    "# gateway\n"                                  /* 1 */
    "listen: 0.0.0.0:8080\n"                       /* 2 */
    "workers: 2\n"                                 /* 3 */
    "debug: yes\n"                                 /* 4 */
    "timeouts:\n"                                  /* 5 */
    "  connect: 500ms\n"                           /* 6 */
    "  total: 2s\n"                                /* 7 */
    "max_body: 10MB\n"                             /* 8 */
    "routes:\n"                                    /* 9 */
    "  - model: mistral\n"                         /* 10 */
    "    variants:\n"                              /* 11 */
    "      - {name: stable, weight: 90}\n"         /* 12 */
    "      - name: canary\n"                       /* 13 */
    "        weight: abc\n"                        /* 14 */
    "        wieght: 3\n"                          /* 15 */
    "  - model: phi3\n"                            /* 16 */
    "    variants: []\n"                           /* 17 */
    "note: \"quoted: yes\"\n"                      /* 18 */
    "empty:\n"                                     /* 19 */
    "ratio: 0.25\n"                                /* 20 */
    "literal: |\n"                                 /* 21 */
    "  line one\n"                                 /* 22 */
    "  line two\n";                                /* 23 */

static void test_tree(void) {
    cfg_node_t *root = NULL;
    char err[512] = "";
    int rc = cfg_load_string(sample, strlen(sample), "tollgate.yaml", &root, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    CHECK_EQ_INT(root->type, CFG_MAP);
    CHECK_EQ_INT(cfg_len(root), 10);
    /* keys in file order */
    CHECK_EQ_STR(root->items[0]->key, "listen");
    CHECK_EQ_STR(root->items[9]->key, "literal");
    const cfg_node_t *routes = cfg_get(root, "routes");
    CHECK(routes && routes->type == CFG_SEQ && cfg_len(routes) == 2);
    CHECK_EQ_INT(routes->key_line, 9);
    const cfg_node_t *r0 = cfg_at(routes, 0);
    CHECK_EQ_INT(r0->line, 10);
    CHECK_EQ_INT(r0->col, 5);
    const cfg_node_t *v1 = cfg_at(cfg_get(r0, "variants"), 1);
    CHECK(v1 && v1->type == CFG_MAP);
    CHECK_EQ_INT(v1->line, 13);
    const cfg_node_t *w = cfg_get(v1, "weight");
    CHECK(w && w->type == CFG_SCALAR && w->line == 14);
    char path[128];
    cfg_path(w, path, sizeof path);
    CHECK_EQ_STR(path, "routes[0].variants[1].weight");
    cfg_path(root, path, sizeof path);
    CHECK_EQ_STR(path, "");
    CHECK(cfg_at(routes, 2) == NULL);
    CHECK(cfg_get(routes, "x") == NULL);
    CHECK(cfg_get(root, "nope") == NULL);
    CHECK_EQ_STR(cfg_type_name(routes), "sequence");
    CHECK_EQ_STR(cfg_get(root, "literal")->value, "line one\nline two\n");
    CHECK(cfg_get(root, "empty")->is_null);
    CHECK(cfg_get(root, "note")->quoted);

    /* typed getters: values */
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    int b = -1;
    uint64_t sz = 0;
    CHECK(cfg_str(root, "listen", NULL, &s, err, sizeof err) == 0 && !strcmp(s, "0.0.0.0:8080"));
    CHECK(cfg_str(root, "note", NULL, &s, err, sizeof err) == 0 && !strcmp(s, "quoted: yes"));
    CHECK(cfg_str(root, "missing", "dflt", &s, err, sizeof err) == 0 && !strcmp(s, "dflt"));
    CHECK(cfg_str(root, "empty", "dflt", &s, err, sizeof err) == 0 && !strcmp(s, "dflt"));
    CHECK(cfg_int(root, "workers", 1, 1, 64, &i, err, sizeof err) == 0 && i == 2);
    CHECK(cfg_int(root, "missing", 7, 1, 64, &i, err, sizeof err) == 0 && i == 7);
    CHECK(cfg_bool(root, "debug", 0, &b, err, sizeof err) == 0 && b == 1);
    CHECK(cfg_double(root, "ratio", 1, 0, 1, &d, err, sizeof err) == 0 && d == 0.25);
    const cfg_node_t *t = cfg_get(root, "timeouts");
    CHECK(cfg_duration_ms(t, "connect", 0, 0, 60000, &i, err, sizeof err) == 0 && i == 500);
    CHECK(cfg_duration_ms(t, "total", 0, 0, 60000, &i, err, sizeof err) == 0 && i == 2000);
    CHECK(cfg_size(root, "max_body", 0, 0, UINT64_MAX, &sz, err, sizeof err) == 0 &&
          sz == 10ull << 20);
    CHECK(cfg_int(cfg_get(cfg_at(cfg_get(r0, "variants"), 0), "weight"), NULL, 0, 0, 100, &i,
                  err, sizeof err) == 0 &&
          i == 90); /* key NULL reads the node itself */

    /* typed getters: messages */
    CHECK_EQ_INT(cfg_double(v1, "weight", 0, 0, 100, &d, err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:14: routes[0].variants[1].weight: expected a number "
                      "between 0 and 100, got \"abc\"");
    CHECK_EQ_INT(cfg_int(root, "workers", 1, 4, 64, &i, err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:3: workers: expected an integer between 4 and 64, got \"2\"");
    CHECK_EQ_INT(cfg_int(root, "routes", 1, 1, 64, &i, err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:9: routes: expected an integer between 1 and 64, got a "
                      "sequence");
    CHECK_EQ_INT(cfg_str(root, "timeouts", NULL, &s, err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:5: timeouts: expected a string, got a mapping");
    CHECK_EQ_INT(cfg_bool(root, "listen", 0, &b, err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:2: listen: expected true or false, got \"0.0.0.0:8080\"");
    CHECK_EQ_INT(cfg_duration_ms(t, "total", 0, 0, 1000, &i, err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:7: timeouts.total: expected a duration such as 500ms, 2s, "
                      "1m or 72h, between 0ms and 1s, got \"2s\"");
    CHECK_EQ_INT(cfg_size(root, "max_body", 0, 0, 1 << 20, &sz, err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:8: max_body: expected a size such as 512KB or 10MB, "
                      "between 0 and 1MB, got \"10MB\"");

    /* unknown keys and required fields */
    static const char *const vkeys[] = {"name", "weight", NULL};
    CHECK_EQ_INT(cfg_check_keys(v1, vkeys, err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:15: routes[0].variants[1]: unknown field \"wieght\" "
                      "(expected one of: name, weight)");
    CHECK_EQ_INT(cfg_check_keys(cfg_at(cfg_get(r0, "variants"), 0), vkeys, err, sizeof err), 0);
    CHECK_EQ_INT(cfg_check_keys(routes, vkeys, err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:9: routes: expected a mapping, got a sequence");
    CHECK_EQ_INT(cfg_check_keys(NULL, vkeys, err, sizeof err), 0);
    CHECK_EQ_INT(cfg_require(r0, "model", err, sizeof err), 0);
    CHECK_EQ_INT(cfg_require(cfg_at(routes, 1), "backend", err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:16: routes[1]: missing required field \"backend\"");
    CHECK_EQ_INT(cfg_require(root, "empty", err, sizeof err), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:19: empty: a value is required");
    CHECK_EQ_INT(cfg_err(w, err, sizeof err, "weights must add up to %d", 100), -EINVAL);
    CHECK_EQ_STR(err, "tollgate.yaml:14: routes[0].variants[1].weight: weights must add up to 100");
    cfg_free(root);
}

struct bad {
    const char *yaml;
    const char *want; /* expected message (after "t.yaml:") */
};

static const struct bad bad_docs[] = {
    {"a: 1\nb: 2\na: 3\n", "3: duplicate key \"a\" (first at line 1)"},
    {"base: &b {x: 1}\nother: *b\n", "1: anchors (&b) are not supported; write the value out"},
    {"other: *b\n", "1: aliases (*b) are not supported; write the value out"},
    {"a: !!int 3\n", "1: YAML tags (tag:yaml.org,2002:int) are not supported"},
    {"? [a, b]\n: 1\n", "1: mapping keys must be plain text"},
    {"a: 1\n---\nb: 2\n", "2: only one YAML document is allowed"},
    {"a: [1, 2\n", "2: YAML syntax error"},
    {"a: 1\n  b: 2\n", "2: YAML syntax error"},
    {"a:\tb: c\n", "1: YAML syntax error"},
};

static void test_bad(void) {
    int wrong = 0;
    for (size_t k = 0; k < sizeof bad_docs / sizeof *bad_docs; k++) {
        cfg_node_t *root = (cfg_node_t *)1;
        char err[256] = "";
        int rc = cfg_load_string(bad_docs[k].yaml, strlen(bad_docs[k].yaml), "t.yaml", &root, err,
                                 sizeof err);
        char want[256];
        snprintf(want, sizeof want, "t.yaml:%s", bad_docs[k].want);
        if (rc != -EINVAL || root != NULL || strncmp(err, want, strlen(want))) {
            wrong++;
            fprintf(stderr, "bad doc %zu: rc %d err \"%s\" want \"%s\"\n", k, rc, err, want);
        }
    }
    CHECK_EQ_INT(wrong, 0);

    /* nesting limit */
    char deep[1024];
    size_t n = 0;
    for (int i = 0; i < CFG_MAX_DEPTH + 5; i++) deep[n++] = '[';
    for (int i = 0; i < CFG_MAX_DEPTH + 5; i++) deep[n++] = ']';
    cfg_node_t *root;
    char err[256];
    CHECK_EQ_INT(cfg_load_string(deep, n, "d.yaml", &root, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "nested deeper than") != NULL);
    n = 0;
    for (int i = 0; i < CFG_MAX_DEPTH; i++) deep[n++] = '[';
    for (int i = 0; i < CFG_MAX_DEPTH; i++) deep[n++] = ']';
    CHECK_EQ_INT(cfg_load_string(deep, n, "d.yaml", &root, err, sizeof err), 0);
    cfg_free(root);
}

static void test_scalars(void) {
    int64_t ms = -1;
    CHECK(cfg_parse_duration_ms("500ms", &ms) == 0 && ms == 500);
    CHECK(cfg_parse_duration_ms("2s", &ms) == 0 && ms == 2000);
    CHECK(cfg_parse_duration_ms("1.5s", &ms) == 0 && ms == 1500);
    CHECK(cfg_parse_duration_ms("1m", &ms) == 0 && ms == 60000);
    CHECK(cfg_parse_duration_ms("72h", &ms) == 0 && ms == 72ll * 3600 * 1000);
    CHECK(cfg_parse_duration_ms("1d", &ms) == 0 && ms == 86400000);
    CHECK(cfg_parse_duration_ms("1h30m", &ms) == 0 && ms == 5400000);
    CHECK(cfg_parse_duration_ms("0", &ms) == 0 && ms == 0);
    CHECK(cfg_parse_duration_ms("0s", &ms) == 0 && ms == 0);
    static const char *const bad_d[] = {"", "5", "-1s", "1x", "s", "1.s", "1e3ms", "0x10s",
                                        "1 s", " 1s", "1s ", "1ms5", "10y", "1S", NULL};
    int wrong = 0;
    for (int k = 0; bad_d[k]; k++)
        if (cfg_parse_duration_ms(bad_d[k], &ms) == 0) {
            wrong++;
            fprintf(stderr, "duration \"%s\" accepted\n", bad_d[k]);
        }
    CHECK_EQ_INT(wrong, 0);
    CHECK(cfg_parse_duration_ms("999999999999999h", &ms) < 0);

    uint64_t b = 0;
    CHECK(cfg_parse_size("512", &b) == 0 && b == 512);
    CHECK(cfg_parse_size("512B", &b) == 0 && b == 512);
    CHECK(cfg_parse_size("64KB", &b) == 0 && b == 65536);
    CHECK(cfg_parse_size("64k", &b) == 0 && b == 65536);
    CHECK(cfg_parse_size("10MB", &b) == 0 && b == 10485760);
    CHECK(cfg_parse_size("10MiB", &b) == 0 && b == 10485760);
    CHECK(cfg_parse_size("1.5GB", &b) == 0 && b == 1610612736);
    CHECK(cfg_parse_size("2gib", &b) == 0 && b == 2147483648ull);
    CHECK(cfg_parse_size("1TB", &b) == 0 && b == 1099511627776ull);
    static const char *const bad_s[] = {"", "MB", "-1", "1.", "1..5MB", "10 MB", "10XB", "1e3",
                                        "0x10", NULL};
    wrong = 0;
    for (int k = 0; bad_s[k]; k++)
        if (cfg_parse_size(bad_s[k], &b) == 0) {
            wrong++;
            fprintf(stderr, "size \"%s\" accepted\n", bad_s[k]);
        }
    CHECK_EQ_INT(wrong, 0);
    CHECK(cfg_parse_size("99999999TB", &b) < 0);

    /* int/double/bool edge cases through the getters */
    const char *y = "a: 9223372036854775807\nb: 9223372036854775808\nc: -12\nd: 1.5\n"
                    "e: 1e3\nf: .inf\ng: 0x10\nh: ON\ni: \"true\"\nj: maybe\nk: +7\nl: 1_000\n";
    cfg_node_t *root;
    char err[256];
    CHECK_EQ_INT(cfg_load_string(y, strlen(y), "n.yaml", &root, err, sizeof err), 0);
    int64_t i;
    double d;
    int bo;
    CHECK(cfg_int(root, "a", 0, INT64_MIN, INT64_MAX, &i, err, sizeof err) == 0 && i == INT64_MAX);
    CHECK(cfg_int(root, "b", 0, INT64_MIN, INT64_MAX, &i, err, sizeof err) == -EINVAL);
    CHECK_EQ_STR(err, "n.yaml:2: b: expected an integer, got \"9223372036854775808\"");
    CHECK(cfg_int(root, "c", 0, -100, 100, &i, err, sizeof err) == 0 && i == -12);
    CHECK(cfg_int(root, "d", 0, -100, 100, &i, err, sizeof err) == -EINVAL);
    CHECK(cfg_int(root, "g", 0, -100, 100, &i, err, sizeof err) == -EINVAL);
    CHECK(cfg_int(root, "k", 0, -100, 100, &i, err, sizeof err) == 0 && i == 7);
    CHECK(cfg_int(root, "l", 0, 0, 10000, &i, err, sizeof err) == -EINVAL);
    CHECK(cfg_double(root, "d", 0, -INFINITY, INFINITY, &d, err, sizeof err) == 0 && d == 1.5);
    CHECK(cfg_double(root, "e", 0, 0, 1e4, &d, err, sizeof err) == 0 && d == 1000);
    CHECK(cfg_double(root, "f", 0, -INFINITY, INFINITY, &d, err, sizeof err) == -EINVAL);
    CHECK_EQ_STR(err, "n.yaml:6: f: expected a number, got \".inf\"");
    CHECK(cfg_bool(root, "h", 0, &bo, err, sizeof err) == 0 && bo == 1);
    CHECK(cfg_bool(root, "i", 0, &bo, err, sizeof err) == 0 && bo == 1);
    CHECK(cfg_bool(root, "j", 0, &bo, err, sizeof err) == -EINVAL);
    cfg_free(root);
}

static void test_files(void) {
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *y = "server:\n  port: 70000\n";
    CHECK(write(fd, y, strlen(y)) == (ssize_t)strlen(y));
    close(fd);
    cfg_node_t *root = NULL;
    char err[512];
    CHECK_EQ_INT(cfg_load_file(path, &root, err, sizeof err), 0);
    int64_t port;
    CHECK_EQ_INT(cfg_int(cfg_get(root, "server"), "port", 80, 1, 65535, &port, err, sizeof err),
                 -EINVAL);
    char want[600];
    snprintf(want, sizeof want, "%s:2: server.port: expected an integer between 1 and 65535, "
                                "got \"70000\"", path);
    CHECK_EQ_STR(err, want);
    cfg_free(root);
    unlink(path);
    CHECK_EQ_INT(cfg_load_file(path, &root, err, sizeof err), -ENOENT);
    CHECK(strstr(err, "cannot open") != NULL);
    CHECK(root == NULL);
    /* empty file and comment-only file: an empty map */
    CHECK_EQ_INT(cfg_load_string("", 0, "e.yaml", &root, err, sizeof err), 0);
    CHECK(root && root->type == CFG_MAP && cfg_len(root) == 0);
    cfg_free(root);
    CHECK_EQ_INT(cfg_load_string("# nothing\n", 10, "e.yaml", &root, err, sizeof err), 0);
    CHECK(root && root->type == CFG_MAP && cfg_len(root) == 0);
    cfg_free(root);
    /* a scalar document is a scalar root */
    CHECK_EQ_INT(cfg_load_string("hello", 5, "s.yaml", &root, err, sizeof err), 0);
    CHECK(root && root->type == CFG_SCALAR && !strcmp(root->value, "hello"));
    cfg_free(root);
}

/* Every prefix of the sample either loads or fails with a message; never crashes or leaks
 * (the ASan build checks the latter). */
static void test_truncation(void) {
    size_t len = strlen(sample);
    int no_msg = 0;
    for (size_t k = 0; k <= len; k++) {
        cfg_node_t *root = NULL;
        char err[256] = "";
        int rc = cfg_load_string(sample, k, "p.yaml", &root, err, sizeof err);
        if (rc && strncmp(err, "p.yaml:", 7))
            no_msg++;
        cfg_free(root);
    }
    CHECK_EQ_INT(no_msg, 0);
}

int main(void) {
    test_tree();
    test_bad();
    test_scalars();
    test_files();
    test_truncation();
    return check_summary("test_config");
}
