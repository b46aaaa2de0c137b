/* test_redis.c — the RESP2 client against a real redis-server: pipelining in order, arrays,
 * EVALSHA with the EVAL fallback on NOSCRIPT, errors, a server killed and restarted (pending
 * commands fail, health goes down and comes back), a stopped server (timeout). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/redis.h"
#include "redis_server.h"

typedef struct ctx {
    ev_loop_t *loop;
    int got, want;
    int64_t last;
    int io_errors;
    int health_changes, up;
    char text[64];
    int order_ok;
} ctx_t;

static void stop_cb(ev_loop_t *loop, void *arg) {
    (void)arg;
    ev_stop(loop);
}

/* Run the loop until ev_stop or ms pass. */
static void run(ev_loop_t *loop, uint64_t ms) {
    ev_timer_t t;
    ev_timer_init(&t);
    ev_timer_start(loop, &t, ms, stop_cb, NULL);
    ev_run(loop);
    ev_timer_stop(loop, &t);
}

static void on_reply(void *arg, const redis_reply_t *r) {
    ctx_t *c = arg;
    c->got++;
    if (r->type == REDIS_ERR_IO) c->io_errors++;
    if (r->type == REDIS_INT) {
        if (r->integer != c->last + 1) c->order_ok = 0;
        c->last = r->integer;
    }
    if (r->type == REDIS_BULK || r->type == REDIS_STATUS || r->type == REDIS_ERROR)
        snprintf(c->text, sizeof c->text, "%.*s", (int)r->len, r->str ? r->str : "");
    if (r->type == REDIS_ARRAY && r->n == 3 && r->elems[0].type == REDIS_INT &&
        r->elems[1].type == REDIS_BULK)
        snprintf(c->text, sizeof c->text, "%lld,%.*s,%lld", (long long)r->elems[0].integer,
                 (int)r->elems[1].len, r->elems[1].str, (long long)r->elems[2].integer);
    if (c->got >= c->want) ev_stop(c->loop);
}

static void on_health(void *arg, int up) {
    ctx_t *c = arg;
    c->health_changes++;
    c->up = up;
    ev_stop(c->loop);
}

static int64_t cmd(redis_t *r, ctx_t *c, const char *a0, const char *a1, const char *a2) {
    const char *av[3] = {a0, a1, a2};
    size_t al[3] = {strlen(a0), a1 ? strlen(a1) : 0, a2 ? strlen(a2) : 0};
    return redis_command(r, a2 ? 3 : a1 ? 2 : 1, av, al, on_reply, c);
}

/* The reply parser: whole replies, every truncation (needs more), byte at a time, malformed
 * input, and a reply at the end of a guard-free heap copy (ASan catches a read past n). */
static void test_parser(void) {
    static const char stream[] = "+OK\r\n-ERR no\r\n:-42\r\n$5\r\nhe\r\no\r\n$-1\r\n$0\r\n\r\n"
                                 "*3\r\n:1\r\n$3\r\ntwo\r\n*2\r\n:3\r\n+x\r\n*-1\r\n*0\r\n";
    size_t n = sizeof stream - 1;
    redis_reply_t r, el[4];
    long off = 0;
    int count = 0, ok = 1;
    while ((size_t)off < n) {
        size_t left = n - (size_t)off;
        long u = redis_parse(stream + off, left, &r, el, 4);
        if (u <= 0) {
            ok = 0;
            break;
        }
        /* Every strict prefix of this reply needs more, copied so that ASan sees the end. */
        for (size_t k = 0; k < (size_t)u; k++) {
            char *c = malloc(k ? k : 1);
            memcpy(c, stream + off, k);
            redis_reply_t r2, e2[4];
            if (redis_parse(c, k, &r2, e2, 4) != 0) ok = 0;
            free(c);
        }
        if (count == 3) ok &= r.type == REDIS_BULK && r.len == 5 && !memcmp(r.str, "he\r\no", 5);
        if (count == 2) ok &= r.type == REDIS_INT && r.integer == -42;
        if (count == 4) ok &= r.type == REDIS_BULK && r.is_nil;
        if (count == 6)
            ok &= r.type == REDIS_ARRAY && r.n == 3 && el[0].integer == 1 && el[1].len == 3 &&
                  el[2].type == REDIS_ARRAY;
        if (count == 7) ok &= r.type == REDIS_ARRAY && r.is_nil;
        off += u;
        count++;
    }
    CHECK(ok);
    CHECK_EQ_INT(count, 9);
    /* More elements than room: all parsed, the first ones kept. */
    const char *big = "*6\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n";
    CHECK_EQ_INT(redis_parse(big, strlen(big), &r, el, 4), (long)strlen(big));
    CHECK(r.n == 4 && el[3].integer == 4);
    const char *bad[] = {"?\r\n",
                         ":12a\r\n",
                         "$3\r\nabcd\r\n",
                         "$-2\r\n",
                         ":\r\n",
                         "+OK\rX",
                         "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
                         "$ 3\r\nabc\r\n",
                         "\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(redis_parse(bad[i], strlen(bad[i]), &r, el, 4) == -1, "bad[%zu]", i);
    CHECK_EQ_INT(redis_parse("", 0, &r, el, 4), 0);
}

int main(void) {
    test_parser();
    redis_script_t s0;
    redis_script_init(&s0, "");
    CHECK_EQ_STR(s0.sha, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    redis_script_init(&s0, "abc");
    CHECK_EQ_STR(s0.sha, "a9993e364706816aba3e25717850c26c9cd0d89d");
    redis_script_init(&s0, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
    CHECK_EQ_STR(s0.sha, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");

    int port = rs_free_port();
    pid_t pid = rs_start(port);
    CHECK_MSG(pid > 0, "redis-server did not start (is it installed? scripts/setup.sh)");
    if (pid <= 0) return check_summary("test_redis");
    ev_loop_t *loop = ev_loop_new();
    ctx_t c = {.loop = loop, .order_ok = 1};
    redis_t *r;
    redis_opts_t o = {.timeout_ms = 200, .backoff_min_ms = 20, .backoff_max_ms = 100};
    CHECK_EQ_INT(redis_new(loop, "127.0.0.1", (uint16_t)port, &o, &r), 0);
    redis_on_health(r, on_health, &c);
    CHECK_EQ_INT(cmd(r, &c, "PING", NULL, NULL), -ENOTCONN); /* still connecting */
    run(loop, 2000);
    CHECK_EQ_INT(c.up, 1);
    CHECK(redis_up(r));

    /* 200 pipelined INCRs answer in order. */
    c.want = 200;
    for (int i = 0; i < 200; i++) cmd(r, &c, "INCR", "tg:test:n", NULL);
    run(loop, 2000);
    CHECK_EQ_INT(c.got, 200);
    CHECK_EQ_INT(c.last, 200);
    CHECK(c.order_ok);

    c.got = 0;
    c.want = 1;
    cmd(r, &c, "GET", "tg:test:n", NULL);
    run(loop, 1000);
    CHECK_EQ_STR(c.text, "200");
    c.got = 0;
    cmd(r, &c, "NOSUCHCOMMAND", NULL, NULL);
    run(loop, 1000);
    CHECK(!strncmp(c.text, "ERR", 3));

    /* A script the server has never seen: EVALSHA -> NOSCRIPT -> EVAL, then EVALSHA works. */
    redis_script_t s;
    redis_script_init(&s, "return {tonumber(ARGV[1]) + 1, KEYS[1], 3}");
    const char *av[2] = {"k1", "41"};
    size_t al[2] = {2, 2};
    c.got = 0;
    CHECK(redis_eval(r, &s, 1, 2, av, al, on_reply, &c) > 0);
    run(loop, 1000);
    CHECK_EQ_STR(c.text, "42,k1,3");
    redis_stats_t st;
    redis_get_stats(r, &st);
    CHECK_EQ_INT(st.noscript_fallbacks, 1);
    c.got = 0;
    c.text[0] = 0;
    redis_eval(r, &s, 1, 2, av, al, on_reply, &c);
    run(loop, 1000);
    CHECK_EQ_STR(c.text, "42,k1,3");
    redis_get_stats(r, &st);
    CHECK_EQ_INT(st.noscript_fallbacks, 1);

    /* A cancelled command's callback never runs. */
    c.got = 0;
    c.want = 1;
    int64_t h = cmd(r, &c, "PING", NULL, NULL);
    redis_cancel(r, h);
    cmd(r, &c, "ECHO", "after", NULL);
    run(loop, 1000);
    CHECK_EQ_INT(c.got, 1);
    CHECK_EQ_STR(c.text, "after");

    /* Kill the server with commands in flight: they fail, health goes down. */
    c.got = 0;
    c.want = 1000;
    c.io_errors = 0;
    c.health_changes = 0;
    for (int i = 0; i < 5; i++) cmd(r, &c, "BLPOP", "tg:test:never", "5");
    rs_stop(pid);
    run(loop, 2000); /* stops at the health change */
    CHECK_EQ_INT(c.up, 0);
    CHECK(!redis_up(r));
    CHECK_EQ_INT(c.io_errors, 5);
    CHECK_EQ_INT(cmd(r, &c, "PING", NULL, NULL), -ENOTCONN);
    /* Restart on the same port: the client reconnects by itself. */
    pid = rs_start(port);
    CHECK(pid > 0);
    run(loop, 3000);
    CHECK_EQ_INT(c.up, 1);
    c.got = 0;
    c.want = 1;
    cmd(r, &c, "ECHO", "back", NULL);
    run(loop, 1000);
    CHECK_EQ_STR(c.text, "back");
    /* After a restart the script cache is empty: the fallback runs again. */
    c.got = 0;
    redis_eval(r, &s, 1, 2, av, al, on_reply, &c);
    run(loop, 1000);
    CHECK_EQ_STR(c.text, "42,k1,3");
    redis_get_stats(r, &st);
    CHECK_EQ_INT(st.noscript_fallbacks, 2);

    /* A stopped (hung) server: the command times out and the connection goes down. */
    kill(pid, SIGSTOP);
    c.got = 0;
    c.io_errors = 0;
    c.want = 1;
    uint64_t t0 = ev_clock_ns();
    cmd(r, &c, "PING", NULL, NULL);
    run(loop, 3000);
    double ms = (double)(ev_clock_ns() - t0) / 1e6;
    CHECK_EQ_INT(c.io_errors, 1);
    CHECK_MSG(ms >= 190 && ms < 1000, "timeout after %.0f ms", ms);
    redis_get_stats(r, &st);
    CHECK_EQ_INT(st.timeouts, 1);
    kill(pid, SIGCONT);
    c.up = 0;
    run(loop, 3000);
    if (!c.up) run(loop, 3000);
    CHECK_EQ_INT(c.up, 1);

    redis_free(r);
    ev_loop_free(loop);
    rs_stop(pid);
    return check_summary("test_redis");
}
