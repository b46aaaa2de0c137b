/* test_log.c — structured log lines captured through a pipe and a file, parsed with json.c. */
#define _GNU_SOURCE /* strptime, timegm */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/json.h"
#include "core/log.h"

static int pipefd[2];

/* Everything written to the pipe so far (non-blocking read), NUL-terminated. */
static char *drain(void) {
    static char out[65536];
    size_t n = 0;
    for (;;) {
        ssize_t k = read(pipefd[0], out + n, sizeof out - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    out[n] = '\0';
    return out;
}

/* Parse one line; returns token count (doc filled) or negative. */
static int parse_line(const char *s, size_t n, json_doc_t *d, json_tok_t *t, size_t cap) {
    return json_parse(s, n, t, cap, 0, d, NULL);
}

static int str_field(const json_doc_t *d, const char *key, const char *want) {
    int v = json_obj_get(d, 0, key);
    return v >= 0 && json_str_eq(d, v, want);
}

static void test_fields(void) {
    log_set_fd(pipefd[1]);
    log_set_level(LOG_INFO);
    char raw[] = {'a', 'b', 'c', 'd'};
    log_info("listening", LOG_STR("addr", "127.0.0.1"), LOG_INT("port", 8080),
             LOG_DBL("ratio", 0.25), LOG_BOOL("tls", 0), LOG_STRN("raw", raw, 3),
             LOG_STR("none", NULL), LOG_ERRNO("err", -ENOENT), LOG_INT("neg", -5),
             LOG_JSON("obj", "{\"a\":[1,2]}", 11), LOG_JSON("bad", "{oops", 5),
             LOG_DBL("nan", NAN));
    char *out = drain();
    size_t len = strlen(out);
    CHECK(len > 0 && out[len - 1] == '\n');
    CHECK(strchr(out, '\n') == out + len - 1); /* exactly one line */
    json_tok_t t[64];
    json_doc_t d;
    CHECK(parse_line(out, len - 1, &d, t, 64) > 0);
    CHECK_EQ_INT(t[0].type, JSON_OBJECT);
    CHECK(str_field(&d, "level", "info"));
    CHECK(str_field(&d, "msg", "listening"));
    CHECK(str_field(&d, "addr", "127.0.0.1"));
    CHECK(str_field(&d, "raw", "abc"));
    CHECK(str_field(&d, "err", "No such file or directory"));
    CHECK(str_field(&d, "bad", "{oops")); /* invalid JSON fragment kept as a string */
    int64_t i = 0;
    double x = 0;
    CHECK(json_get_i64(&d, json_obj_get(&d, 0, "port"), &i) == 0 && i == 8080);
    CHECK(json_get_i64(&d, json_obj_get(&d, 0, "neg"), &i) == 0 && i == -5);
    CHECK(json_get_double(&d, json_obj_get(&d, 0, "ratio"), &x) == 0 && x == 0.25);
    CHECK_EQ_INT(json_get_bool(&d, json_obj_get(&d, 0, "tls")), 0);
    CHECK_EQ_INT(t[json_obj_get(&d, 0, "none")].type, JSON_NULL);
    CHECK_EQ_INT(t[json_obj_get(&d, 0, "nan")].type, JSON_NULL);
    int obj = json_obj_get(&d, 0, "obj");
    CHECK(obj >= 0 && t[obj].type == JSON_OBJECT);
    CHECK_EQ_INT(json_arr_get(&d, json_obj_get(&d, obj, "a"), 1) >= 0, 1);
    /* the key order is ts, level, msg, then the fields as given */
    CHECK(json_str_eq(&d, 1, "ts"));
    CHECK(json_str_eq(&d, 3, "level"));
    CHECK(json_str_eq(&d, 5, "msg"));
    CHECK(json_str_eq(&d, 7, "addr"));
    /* timestamp: 2026-11-27T21:30:03.123Z, UTC, close to now */
    int ts = json_obj_get(&d, 0, "ts");
    CHECK_EQ_INT(t[ts].end - t[ts].start, 24);
    const char *s = out + t[ts].start;
    CHECK(s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' &&
          s[19] == '.' && s[23] == 'Z');
    struct tm tm = {0};
    CHECK(strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) != NULL);
    time_t when = timegm(&tm);
    CHECK(labs((long)(when - time(NULL))) <= 2);
}

static void test_levels(void) {
    log_set_fd(pipefd[1]);
    log_set_level(LOG_WARN);
    log_debug("d");
    log_info("i");
    log_warn("w");
    log_error("e", LOG_INT("code", 1));
    char *out = drain();
    CHECK(strstr(out, "\"msg\":\"d\"") == NULL);
    CHECK(strstr(out, "\"msg\":\"i\"") == NULL);
    CHECK(strstr(out, "\"level\":\"warn\",\"msg\":\"w\"}\n") != NULL);
    CHECK(strstr(out, "\"level\":\"error\",\"msg\":\"e\",\"code\":1}\n") != NULL);
    log_set_level(LOG_DEBUG);
    log_debug("d2");
    CHECK(strstr(drain(), "\"level\":\"debug\",\"msg\":\"d2\"}") != NULL);
    log_set_level(LOG_OFF);
    log_error("nothing");
    CHECK_EQ_STR(drain(), "");
    CHECK(!log_enabled(LOG_ERROR));
    log_set_level(LOG_INFO);
    CHECK(log_enabled(LOG_INFO) && !log_enabled(LOG_DEBUG));
    CHECK_EQ_INT(log_level_parse("debug"), LOG_DEBUG);
    CHECK_EQ_INT(log_level_parse("INFO"), LOG_INFO);
    CHECK_EQ_INT(log_level_parse("warning"), LOG_WARN);
    CHECK_EQ_INT(log_level_parse("error"), LOG_ERROR);
    CHECK_EQ_INT(log_level_parse("off"), LOG_OFF);
    CHECK_EQ_INT(log_level_parse("loud"), -1);
    CHECK_EQ_INT(log_level_parse(NULL), -1);
    CHECK_EQ_STR(log_level_name(LOG_WARN), "warn");
}

/* Hostile strings stay on one line and valid JSON. */
static void test_escaping(void) {
    log_set_fd(pipefd[1]);
    log_set_level(LOG_INFO);
    log_info("line1\nline2\r\"quoted\"\\", LOG_STR("we\"ird\nkey", "\x01\x7f\xff\xfe ok"),
             LOG_STRN("nul", "a\0b", 3));
    char *out = drain();
    size_t len = strlen(out);
    CHECK(strchr(out, '\n') == out + len - 1);
    json_tok_t t[32];
    json_doc_t d;
    CHECK(parse_line(out, len - 1, &d, t, 32) > 0);
    CHECK(str_field(&d, "msg", "line1\nline2\r\"quoted\"\\"));
    CHECK(str_field(&d, "we\"ird\nkey", "\x01\x7f\xef\xbf\xbd\xef\xbf\xbd ok"));
    CHECK(strstr(out, "\"nul\":\"a\\u0000b\"") != NULL);
}

#define THREADS 4
#define LINES 2000

static void *writer(void *arg) {
    long id = (long)arg;
    char pad[300];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < LINES; i++)
        log_info("tick", LOG_INT("thread", id), LOG_INT("i", i), LOG_STR("pad", pad));
    return NULL;
}

/* Lines from several threads never interleave: every line of the file parses and each
 * thread's lines are all there, in order. */
static void test_threads(void) {
    char path[] = "/tmp/test_log_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    unlink(path);
    log_set_fd(fd);
    log_set_level(LOG_INFO);
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, writer, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    log_set_fd(pipefd[1]);
    off_t size = lseek(fd, 0, SEEK_END);
    char *all = malloc((size_t)size + 1);
    CHECK(pread(fd, all, (size_t)size, 0) == size);
    all[size] = '\0';
    close(fd);
    int bad = 0, lines = 0;
    int next[THREADS] = {0};
    json_tok_t t[32];
    json_doc_t d;
    for (char *p = all, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        lines++;
        int64_t th_id = -1, i = -1;
        if (parse_line(p, (size_t)(nl - p), &d, t, 32) <= 0 ||
            json_get_i64(&d, json_obj_get(&d, 0, "thread"), &th_id) ||
            json_get_i64(&d, json_obj_get(&d, 0, "i"), &i) || th_id < 0 || th_id >= THREADS ||
            i != next[th_id]) {
            bad++;
            continue;
        }
        next[th_id]++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(lines, THREADS * LINES);
    free(all);
}

static void test_dropped(void) {
    /* writing to a closed fd fails: the line is counted as dropped, nothing crashes */
    int p[2];
    CHECK(pipe(p) == 0);
    close(p[1]);
    close(p[0]);
    uint64_t before = log_dropped();
    log_set_fd(p[1]);
    log_error("into the void");
    CHECK_EQ_INT(log_dropped(), before + 1);
    CHECK(log_write_fd(-1, LOG_INFO, "x", NULL, 0) < 0);
    log_set_fd(pipefd[1]);
}

int main(void) {
    if (pipe(pipefd))
        return 1;
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    test_fields();
    test_levels();
    test_escaping();
    test_threads();
    test_dropped();
    log_set_fd(2);
    return check_summary("test_log");
}
