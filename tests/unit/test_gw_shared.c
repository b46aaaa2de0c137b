/* test_gw_shared.c — limits shared through a real redis-server by two limiter instances (as
 * two gateway replicas): one RPM limit enforced once, not twice; concurrency leases across
 * replicas; token correction; daily budget; Redis killed mid-test (local fallback, counted)
 * and restarted (shared again). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "gateway/govshared.h"
#include "gateway/gwconfig.h"
#include "redis_server.h"

typedef struct res {
    ev_loop_t *loop;
    int done, status, reason;
    uint64_t remaining_requests, remaining_tokens;
} res_t;

static void on_decision(void *arg, gov_decision_t *d) {
    res_t *r = arg;
    r->done = 1;
    r->status = d->status;
    r->reason = d->reason;
    r->remaining_requests = d->rl.remaining_requests;
    r->remaining_tokens = d->rl.remaining_tokens;
    ev_stop(r->loop);
}

static void stop_cb(ev_loop_t *loop, void *arg) {
    (void)arg;
    ev_stop(loop);
}

static void run(ev_loop_t *loop, uint64_t ms) {
    ev_timer_t t;
    ev_timer_init(&t);
    ev_timer_start(loop, &t, ms, stop_cb, NULL);
    ev_run(loop);
    ev_timer_stop(loop, &t);
}

/* Admit one request of `cost` tokens for service 0 through replica s; wait for the answer.
 * Returns the status (0 admitted), -1 when Redis was not usable (nothing charged). */
static int admit(ev_loop_t *loop, gov_t *g, gov_cfg_t *gc, gov_shared_t *s, gov_ticket_t *t,
                 uint64_t cost, res_t *r) {
    memset(t, 0, sizeof *t);
    t->svc = &gc->services[0];
    t->cost = cost;
    t->prompt = (int64_t)cost;
    *r = (res_t){.loop = loop};
    (void)g;
    if (gov_shared_admit(s, t, time(NULL), on_decision, r) < 0) return -1;
    run(loop, 2000);
    CHECK(r->done);
    return r->status;
}

static void wait_up(ev_loop_t *loop, gov_shared_t *s, int up) {
    for (int i = 0; i < 100 && gov_shared_up(s) != up; i++) run(loop, 20);
}

int main(void) {
    int port = rs_free_port();
    pid_t pid = rs_start(port);
    CHECK_MSG(pid > 0, "redis-server did not start (scripts/setup.sh installs it)");
    if (pid <= 0) return check_summary("test_gw_shared");
    char yaml[1024], err[512];
    uint8_t h[32];
    char hs[KEYS_HASH_TEXT];
    keys_sha256("k", 1, h);
    keys_format_hash(h, hs);
    snprintf(
        yaml, sizeof yaml,
        "backends: {b: {addresses: [127.0.0.1:9]}}\n"
        "routes: {m: {variants: {v: {backend: b}}}}\n"
        "redis: {address: 127.0.0.1:%d, key_prefix: tgtest%d, timeout_ms: 200}\n"
        "services:\n"
        "  svc:\n"
        "    keys: [%s]\n"
        "    limits: {requests_per_minute: 5, tokens_per_minute: 1000, concurrent_requests: 3,\n"
        "             daily_tokens: 100000}\n",
        port, (int)getpid(), hs);
    gw_config_t c;
    CHECK_MSG(gwconfig_load_string("gw.yaml", yaml, strlen(yaml), &c, err, sizeof err) == 0, "%s",
              err);
    gov_cfg_t *gc = c.gov;
    /* Two replicas: each its own governance runtime and Redis connection. */
    gov_t g1, g2;
    gov_init(&g1);
    gov_init(&g2);
    gov_bind(&g1, gc, ev_clock_ns(), time(NULL));
    ev_loop_t *loop = ev_loop_new();
    gov_shared_t *s1, *s2;
    CHECK_EQ_INT(gov_shared_new(loop, &g1, gc, 0, &s1), 0);
    CHECK_EQ_INT(gov_shared_new(loop, &g2, gc, 1, &s2), 0);
    wait_up(loop, s1, 1);
    wait_up(loop, s2, 1);
    CHECK(gov_shared_up(s1) && gov_shared_up(s2));

    /* RPM 5 shared: alternate replicas; exactly 5 pass in all, the 6th is refused. */
    gov_ticket_t t[12];
    res_t r;
    int passed = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        int st = admit(loop, i % 2 ? &g2 : &g1, gc, i % 2 ? s2 : s1, &t[i], 10, &r);
        if (st == 0) {
            passed++;
            CHECK_EQ_INT(r.remaining_requests, 4 - i);
            gov_shared_finish(i % 2 ? s2 : s1, &t[i], 10, time(NULL));
        } else {
            refused++;
            CHECK_EQ_INT(st, 429);
            CHECK_EQ_INT(r.reason, GOV_R_REQUESTS);
        }
    }
    CHECK_EQ_INT(passed, 5);
    CHECK_EQ_INT(refused, 5);
    run(loop, 50); /* let the corrections land */
    CHECK_EQ_INT(atomic_load(&g1.redis_lost_corrections) + atomic_load(&g2.redis_lost_corrections),
                 0);

    /* Tokens: the five charged 10 each and used 10: 950 left. Correction of a 500 charge
     * that used 20 gives 480 back (checked through the next admission's remaining count). */
    char pre[64];
    snprintf(pre, sizeof pre, "tgtest%d", (int)getpid());
    gov_cfg_t *g = gc;
    g->services[0].rl.rpm = 0; /* requests no longer limit, so tokens and leases can be seen */
    CHECK_EQ_INT(admit(loop, &g1, gc, s1, &t[0], 500, &r), 0);
    CHECK(r.remaining_tokens >= 450 && r.remaining_tokens <= 452);
    gov_shared_finish(s1, &t[0], 20, time(NULL));
    run(loop, 50);
    CHECK_EQ_INT(admit(loop, &g2, gc, s2, &t[1], 1, &r), 0);
    CHECK(r.remaining_tokens >= 929 && r.remaining_tokens <= 933);

    /* Concurrency 3 shared: t[1] holds one; two more pass on either replica, the 4th not;
     * a finish on the other replica frees a lease. */
    CHECK_EQ_INT(admit(loop, &g1, gc, s1, &t[2], 1, &r), 0);
    CHECK_EQ_INT(admit(loop, &g2, gc, s2, &t[3], 1, &r), 0);
    CHECK_EQ_INT(admit(loop, &g1, gc, s1, &t[4], 1, &r), 429);
    CHECK_EQ_INT(r.reason, GOV_R_CONCURRENCY);
    gov_shared_finish(s2, &t[1], 1, time(NULL));
    run(loop, 50);
    CHECK_EQ_INT(admit(loop, &g1, gc, s1, &t[4], 1, &r), 0);
    gov_shared_finish(s1, &t[2], 1, time(NULL));
    gov_shared_finish(s2, &t[3], 1, time(NULL));
    gov_shared_finish(s1, &t[4], 1, time(NULL));
    run(loop, 50);

    /* Redis killed mid-test: admissions are refused by the shared path (-1: admit locally),
     * and a request waiting for an answer gets the local decision (counted). */
    memset(&t[5], 0, sizeof t[5]);
    t[5].svc = &gc->services[0];
    t[5].cost = 1;
    r = (res_t){.loop = loop};
    CHECK(gov_shared_admit(s1, &t[5], time(NULL), on_decision, &r) > 0);
    rs_stop(pid);
    run(loop, 2000);
    CHECK(r.done);
    CHECK_EQ_INT(r.status, 0); /* admitted on the local limiter */
    CHECK(t[5].st != NULL && !t[5].shared);
    CHECK(atomic_load(&g1.redis_fallbacks) == 1);
    gov_finish(&g1, &t[5], 1, 0, 200, ev_clock_ns(), time(NULL));
    wait_up(loop, s1, 0);
    wait_up(loop, s2, 0);
    CHECK(!gov_shared_up(s1) && !gov_shared_up(s2));
    CHECK_EQ_INT(admit(loop, &g1, gc, s1, &t[6], 1, &r), -1);
    CHECK(atomic_load(&g1.redis_downs) >= 1);

    /* Restarted: both replicas reconnect and share again (a fresh server: full buckets). */
    pid = rs_start(port);
    CHECK(pid > 0);
    wait_up(loop, s1, 1);
    wait_up(loop, s2, 1);
    CHECK(gov_shared_up(s1) && gov_shared_up(s2));
    g->services[0].rl.rpm = 5;
    passed = 0;
    for (int i = 0; i < 8; i++)
        if (admit(loop, &g1, gc, i % 2 ? s2 : s1, &t[i], 1, &r) == 0) {
            passed++;
            gov_shared_finish(i % 2 ? s2 : s1, &t[i], 1, time(NULL));
        }
    CHECK_EQ_INT(passed, 5);
    CHECK(atomic_load(&g1.redis_ups) >= 2);

    gov_shared_free(s1);
    gov_shared_free(s2);
    ev_loop_free(loop);
    gov_destroy(&g1);
    gov_destroy(&g2);
    gwconfig_free(&c);
    rs_stop(pid);
    (void)pre;
    return check_summary("test_gw_shared");
}
