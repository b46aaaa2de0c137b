/* test_reqlog.c — the request log: sampling rate, text extraction, redaction before disk,
 * retention on an injected clock, drops while the writer is stalled, no loss on close. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "gateway/reqlog.h"

static char dir[64];

static void db_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

/* One value of a one-row, one-column query ("" when none). */
static char qbuf[4096];
static const char *q1(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *st;
    qbuf[0] = '\0';
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return qbuf;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(qbuf, sizeof qbuf, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return qbuf;
}

static reqlog_rec_t rec(const char *service, const char *prompt, const char *resp) {
    return (reqlog_rec_t){.service = service, .model = "tiny", .variant = "stable",
                          .endpoint = "/v1/chat/completions", .outcome = "ok", .status = 200,
                          .prompt_tokens = 12, .completion_tokens = 5, .latency_ms = 41.5,
                          .ttft_ms = -1, .prompt = prompt, .prompt_len = prompt ? strlen(prompt) : 0,
                          .response = resp, .response_len = resp ? strlen(resp) : 0};
}

static void test_sampling(void) {
    char p[128];
    db_path(p, sizeof p, "s.db");
    reqlog_rate_t rates[] = {{"orders", 0.25}, {"search", 1.0}};
    reqlog_t *rl;
    char err[256];
    CHECK_EQ_INT(reqlog_open(&(reqlog_opts_t){.path = p, .sample_rate = 0.0, .rates = rates,
                                              .nrates = 2},
                             &rl, err, sizeof err),
                 0);
    uint64_t x = 88172645463325252ull;
    int n = 200000, hit = 0, other = 0, all = 0;
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0;
        hit += reqlog_sampled(rl, "orders", u);
        other += reqlog_sampled(rl, "unknown", u);
        all += reqlog_sampled(rl, "search", u);
    }
    /* 0.25 of 200k: sd ~ 0.001; 0.01 is ten sigmas. */
    CHECK_NEAR((double)hit / n, 0.25, 0.01);
    CHECK_EQ_INT(other, 0);
    CHECK_EQ_INT(all, n);
    CHECK_NEAR(reqlog_rate(rl, NULL), 0.0, 0);
    reqlog_close(rl);
}

static void test_extract(void) {
    buf_t b;
    buf_init(&b);
    const char *chat = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"lgr pep\"},"
                       "{\"type\":\"text\",\"text\":\"pzza x2\"}]}]}";
    CHECK_EQ_INT(reqlog_prompt_text(chat, strlen(chat), &b), 0);
    CHECK_EQ_STR(b.data, "system: Be brief\nuser: lgr pep pzza x2");
    buf_reset(&b);
    const char *comp = "{\"model\":\"m\",\"prompt\":\"Once\\nupon\"}";
    reqlog_prompt_text(comp, strlen(comp), &b);
    CHECK_EQ_STR(b.data, "Once\nupon");
    buf_reset(&b);
    reqlog_prompt_text("not json", 8, &b);
    CHECK_EQ_STR(b.data, "not json");
    buf_reset(&b);
    const char *resp = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"2\\u00d7 Pizza\"}}]}";
    reqlog_response_text(resp, strlen(resp), 0, &b);
    CHECK_EQ_STR(b.data, "2× Pizza");
    buf_reset(&b);
    const char *sse = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
                      "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
                      "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
                      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n"
                      "data: [DONE]\n\n";
    reqlog_response_text(sse, strlen(sse), 1, &b);
    CHECK_EQ_STR(b.data, "Hello");
    buf_reset(&b);
    const char *legacy = "{\"choices\":[{\"text\":\" there\"}]}";
    reqlog_response_text(legacy, strlen(legacy), 0, &b);
    CHECK_EQ_STR(b.data, " there");
    buf_reset(&b);
    const char *erj = "{\"error\":{\"message\":\"boom\"}}";
    reqlog_response_text(erj, strlen(erj), 0, &b);
    CHECK_EQ_STR(b.data, "[error] boom");
    buf_free(&b);
}

static void test_redacted_row(void) {
    char p[128], err[256];
    db_path(p, sizeof p, "r.db");
    redact_t *red;
    CHECK_EQ_INT(redact_new(&(redact_opts_t){.builtin = REDACT_ALL}, &red, err, sizeof err), 0);
    reqlog_t *rl;
    CHECK_EQ_INT(reqlog_open(&(reqlog_opts_t){.path = p, .sample_rate = 1, .redact = red}, &rl,
                             err, sizeof err),
                 0);
    reqlog_rec_t r = rec("orders",
                         "{\"messages\":[{\"role\":\"user\",\"content\":\"pizza for jo@x.com, "
                         "card 4111 1111 1111 1111, call +1 555 123 4567\"}]}",
                         "{\"choices\":[{\"message\":{\"content\":\"Pizza, mail jo@x.com\"}}]}");
    r.request_id = "req-1";
    CHECK_EQ_INT(reqlog_submit(rl, &r), 0);
    CHECK_EQ_INT(reqlog_sync(rl, 5000), 0);
    CHECK_EQ_STR(q1(p, "SELECT prompt FROM requests"),
                 "user: pizza for [EMAIL], card [CARD], call [PHONE]");
    CHECK_EQ_STR(q1(p, "SELECT response FROM requests"), "Pizza, mail [EMAIL]");
    CHECK_EQ_STR(q1(p, "SELECT redactions FROM requests"), "4");
    CHECK_EQ_STR(q1(p, "SELECT service||'|'||model||'|'||variant||'|'||status||'|'||outcome||'|'"
                       "||prompt_tokens||'|'||completion_tokens||'|'||request_id FROM requests"),
                 "orders|tiny|stable|200|ok|12|5|req-1");
    CHECK_EQ_STR(q1(p, "SELECT ttft_ms IS NULL FROM requests"), "1");
    /* Nothing unredacted anywhere in the file or its WAL. */
    reqlog_close(rl);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cat %s/r.db* | grep -c -a 'jo@x.com\\|4111 1111' >/dev/null", dir);
    CHECK(system(cmd) != 0);
    CHECK_EQ_STR(q1(p, "PRAGMA journal_mode"), "wal");
    redact_free(red);
}

static int64_t fake_now;
static int64_t fake_clock(void *arg) {
    (void)arg;
    return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

static void test_retention(void) {
    char p[128], err[256];
    db_path(p, sizeof p, "t.db");
    fake_now = 1700000000000;
    reqlog_t *rl;
    int64_t hour = 3600 * 1000;
    CHECK_EQ_INT(reqlog_open(&(reqlog_opts_t){.path = p, .retention_ms = 72 * hour,
                                              .prune_interval_ms = 20, .clock = fake_clock},
                             &rl, err, sizeof err),
                 0);
    reqlog_rec_t r = rec("orders", "{}", NULL);
    r.ts_ms = fake_now - 73 * hour; /* already past the window */
    reqlog_submit(rl, &r);
    r.ts_ms = fake_now - 71 * hour;
    reqlog_submit(rl, &r);
    r.ts_ms = 0; /* now */
    reqlog_submit(rl, &r);
    CHECK_EQ_INT(reqlog_sync(rl, 5000), 0);
    CHECK_EQ_STR(q1(p, "SELECT count(*) FROM requests"), "2");
    reqlog_stats_t s;
    reqlog_stats(rl, &s);
    CHECK_EQ_INT(s.deleted, 1);
    /* Two hours later the 71-hour-old row is gone, continuously (no sync: the periodic pass). */
    __atomic_store_n(&fake_now, fake_now + 2 * hour, __ATOMIC_RELAXED);
    for (int i = 0; i < 500; i++) {
        reqlog_stats(rl, &s);
        if (s.deleted == 2)
            break;
        usleep(10000);
    }
    CHECK_EQ_INT(s.deleted, 2);
    CHECK_EQ_STR(q1(p, "SELECT count(*) FROM requests"), "1");
    __atomic_store_n(&fake_now, fake_now + 73 * hour, __ATOMIC_RELAXED);
    reqlog_sync(rl, 5000);
    CHECK_EQ_STR(q1(p, "SELECT count(*) FROM requests"), "0");
    reqlog_close(rl);
}

static void test_drops(void) {
    char p[128], err[256];
    db_path(p, sizeof p, "d.db");
    reqlog_t *rl;
    CHECK_EQ_INT(reqlog_open(&(reqlog_opts_t){.path = p, .queue_cap = 8}, &rl, err, sizeof err),
                 0);
    reqlog_pause(rl, 1); /* a stalled disk */
    int ok = 0, full = 0;
    for (int i = 0; i < 20; i++) {
        reqlog_rec_t r = rec("orders", "{\"prompt\":\"x\"}", NULL);
        int rc = reqlog_submit(rl, &r);
        ok += rc == 0;
        full += rc == -EAGAIN;
    }
    CHECK_EQ_INT(ok, 8);
    CHECK_EQ_INT(full, 12);
    reqlog_stats_t s;
    reqlog_stats(rl, &s);
    CHECK_EQ_INT(s.dropped, 12);
    CHECK_EQ_INT(s.queued, 8);
    CHECK_EQ_INT(s.written, 0);
    reqlog_pause(rl, 0);
    CHECK_EQ_INT(reqlog_sync(rl, 5000), 0);
    reqlog_stats(rl, &s);
    CHECK_EQ_INT(s.written, 8);
    CHECK_EQ_INT(s.queued, 0);
    CHECK_EQ_STR(q1(p, "SELECT count(*) FROM requests"), "8");
    reqlog_close(rl);
}

typedef struct {
    reqlog_t *rl;
    int n, ok;
} producer_t;

static void *produce(void *arg) {
    producer_t *pr = arg;
    for (int i = 0; i < pr->n; i++) {
        reqlog_rec_t r = rec("orders", "{\"prompt\":\"lgr pep pzza x2\"}",
                             "{\"choices\":[{\"text\":\"2x Large Pepperoni Pizza\"}]}");
        pr->ok += reqlog_submit(pr->rl, &r) == 0;
    }
    return NULL;
}

static void test_drain(void) {
    char p[128], err[256];
    db_path(p, sizeof p, "n.db");
    reqlog_t *rl;
    CHECK_EQ_INT(reqlog_open(&(reqlog_opts_t){.path = p, .queue_cap = 20000}, &rl, err,
                             sizeof err),
                 0);
    /* Accepted while the writer is stalled, then closed at once: close drains it all. */
    reqlog_pause(rl, 1);
    producer_t a = {rl, 3000, 0}, b = {rl, 3000, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, produce, &a);
    pthread_create(&tb, NULL, produce, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    reqlog_stats_t s;
    reqlog_stats(rl, &s);
    CHECK_EQ_INT(a.ok + b.ok, 6000);
    CHECK_EQ_INT(s.accepted, 6000);
    reqlog_close(rl);
    CHECK_EQ_STR(q1(p, "SELECT count(*) FROM requests"), "6000");
    CHECK_EQ_STR(q1(p, "SELECT response FROM requests LIMIT 1"), "2x Large Pepperoni Pizza");
}

static void test_open_error(void) {
    reqlog_t *rl;
    char err[256] = "";
    int rc = reqlog_open(&(reqlog_opts_t){.path = "/nonexistent-dir/x/requests.db"}, &rl, err,
                         sizeof err);
    CHECK(rc < 0);
    CHECK(strstr(err, "/nonexistent-dir/x/requests.db") != NULL);
}

/* The database and SQLite's -wal/-shm beside it are owner-only whatever the umask; an
 * existing database open to others is narrowed. */
static int mode_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static void test_owner_only(void) {
    char p[128], side[160];
    db_path(p, sizeof p, "perm.db");
    mode_t old = umask(0); /* the widest: SQLite alone would create 0644 */
    reqlog_t *rl;
    char err[256];
    CHECK_EQ_INT(reqlog_open(&(reqlog_opts_t){.path = p, .sample_rate = 1}, &rl, err, sizeof err),
                 0);
    reqlog_rec_t r = rec("s", "{\"prompt\":\"secret-ish\"}", "{}");
    CHECK_EQ_INT(reqlog_submit(rl, &r), 0);
    CHECK_EQ_INT(reqlog_sync(rl, 5000), 0);
    CHECK_EQ_INT(mode_of(p), 0600);
    snprintf(side, sizeof side, "%s-wal", p);
    CHECK_EQ_INT(mode_of(side), 0600);
    snprintf(side, sizeof side, "%s-shm", p);
    CHECK_EQ_INT(mode_of(side), 0600);
    reqlog_close(rl);

    /* An existing file readable by everyone is narrowed on open. */
    CHECK_EQ_INT(chmod(p, 0644), 0);
    CHECK_EQ_INT(reqlog_open(&(reqlog_opts_t){.path = p}, &rl, err, sizeof err), 0);
    CHECK_EQ_INT(mode_of(p), 0600);
    reqlog_close(rl);
    CHECK_EQ_STR(q1(p, "SELECT count(*) FROM requests"), "1");

    /* A directory where the file should be: refused with the path named. */
    db_path(p, sizeof p, "adir.db");
    CHECK_EQ_INT(mkdir(p, 0700), 0);
    CHECK(reqlog_open(&(reqlog_opts_t){.path = p}, &rl, err, sizeof err) < 0);
    CHECK(strstr(err, "adir.db") != NULL);
    umask(old);
}

int main(void) {
    if (check_tmpdir(dir, sizeof dir, "test_reqlog")) return 1;
    test_sampling();
    test_extract();
    test_redacted_row();
    test_retention();
    test_drops();
    test_drain();
    test_open_error();
    test_owner_only();
    check_tmpdir_remove(dir);
    return check_summary("test_reqlog");
}
