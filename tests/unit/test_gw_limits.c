/* test_gw_limits.c — rate limits and daily budgets at their edges, on an injected clock: the
 * N-th request passes, N+1 is refused with the exact wait, the bucket refills on time,
 * charge-then-correct, header values, UTC-midnight reset. */
#include <stdint.h>

#include "check.h"
#include "gateway/budget.h"
#include "gateway/ratelimit.h"

#define S 1000000000ull
#define T0 (1000 * S) /* an arbitrary monotonic start */

static void test_rpm_edge(void) {
    rl_limits_t l = {.rpm = 6}; /* one request every 10 s, burst 6 */
    rl_state_t s;
    rl_result_t r;
    rl_state_init(&s, &l, T0);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(rl_admit(&s, &l, 0, T0, &r), RL_OK);
        CHECK_EQ_INT(r.remaining_requests, 5 - i);
    }
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0, &r), RL_REQUESTS);
    CHECK_EQ_INT(r.retry_ns, 10 * S); /* exactly one refill interval */
    CHECK_EQ_INT(rl_retry_after_s(r.retry_ns), 10);
    CHECK_EQ_INT(r.reset_requests_ns, 60 * S);
    /* 1 ns before the refill: still refused, 1 ns left. */
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0 + 10 * S - 1, &r), RL_REQUESTS);
    CHECK_EQ_INT(r.retry_ns, 1);
    CHECK_EQ_INT(rl_retry_after_s(r.retry_ns), 1);
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0 + 10 * S, &r), RL_OK);
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0 + 10 * S, &r), RL_REQUESTS);
    /* A long idle refills to the burst, never past it. */
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0 + 3600 * S, &r), RL_OK);
    CHECK_EQ_INT(r.remaining_requests, 5);
    /* A clock stepping back refills nothing and breaks nothing. */
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0, &r), RL_OK);
    CHECK_EQ_INT(r.remaining_requests, 4);
}

static void test_rpm_burst(void) {
    rl_limits_t l = {.rpm = 60, .rpm_burst = 3}; /* 1/s sustained, 3 at once */
    rl_state_t s;
    rl_result_t r;
    rl_state_init(&s, &l, T0);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(rl_admit(&s, &l, 0, T0, &r), RL_OK);
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0, &r), RL_REQUESTS);
    CHECK_EQ_INT(r.retry_ns, S);
    CHECK_EQ_INT(r.reset_requests_ns, 3 * S);
    /* Half a second refills half a request: not enough, 0.5 s left. */
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0 + S / 2, &r), RL_REQUESTS);
    CHECK_EQ_INT(r.retry_ns, S / 2);
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0 + S, &r), RL_OK);
    /* Sustained: one per second passes forever, a second in the same second does not. */
    int ok = 1;
    for (int i = 2; i < 100; i++) {
        ok &= rl_admit(&s, &l, 0, T0 + (uint64_t)i * S, &r) == RL_OK;
        ok &= rl_admit(&s, &l, 0, T0 + (uint64_t)i * S, &r) == RL_REQUESTS;
    }
    CHECK(ok);
}

static void test_tpm_and_correction(void) {
    rl_limits_t l = {.tpm = 1000};
    rl_state_t s;
    rl_result_t r;
    rl_state_init(&s, &l, T0);
    /* Reserve prompt 100 + allowance 500 = 600. */
    CHECK_EQ_INT(rl_admit(&s, &l, 600, T0, &r), RL_OK);
    CHECK_EQ_INT(r.remaining_tokens, 400);
    /* Another 600 does not fit: wait until 200 more have refilled = 12 s. */
    CHECK_EQ_INT(rl_admit(&s, &l, 600, T0, &r), RL_TOKENS);
    CHECK_EQ_INT(r.retry_ns, 12 * S);
    CHECK_EQ_INT(r.remaining_tokens, 400);
    /* The first used only 150 in all: 450 come back, now 850. */
    rl_finish(&s, &l, 600, 150, T0);
    CHECK_EQ_INT(s.inflight, 0);
    CHECK_EQ_INT(rl_admit(&s, &l, 850, T0, &r), RL_OK);
    CHECK_EQ_INT(r.remaining_tokens, 0);
    CHECK_EQ_INT(rl_admit(&s, &l, 1, T0, &r), RL_TOKENS);
    CHECK_EQ_INT(r.retry_ns, 60 * S / 1000);
    /* An excess over the reservation is charged: debt of 100, repaid by refill. */
    rl_finish(&s, &l, 850, 950, T0);
    CHECK_EQ_INT(rl_bucket_remaining(&s.tok), 0);
    CHECK_EQ_INT(rl_admit(&s, &l, 1, T0, &r), RL_TOKENS);
    CHECK_EQ_INT(r.retry_ns, 101 * 60 * S / 1000);
    /* A refund never fills past the burst. */
    rl_state_init(&s, &l, T0);
    rl_admit(&s, &l, 10, T0, &r);
    rl_finish(&s, &l, 10, 0, T0 + 3600 * S);
    CHECK_EQ_INT(rl_bucket_remaining(&s.tok), 1000);
    /* Larger than the burst: never admissible. */
    CHECK_EQ_INT(rl_admit(&s, &l, 1001, T0, &r), RL_TOO_LARGE);
    CHECK_EQ_INT(rl_admit(&s, &l, 1000, T0, &r), RL_OK);
}

static void test_all_or_nothing(void) {
    rl_limits_t l = {.rpm = 10, .tpm = 100, .concurrency = 2};
    rl_state_t s;
    rl_result_t r;
    rl_state_init(&s, &l, T0);
    CHECK_EQ_INT(rl_admit(&s, &l, 50, T0, &r), RL_OK);
    CHECK_EQ_INT(rl_admit(&s, &l, 60, T0, &r), RL_TOKENS); /* tokens refuse ... */
    CHECK_EQ_INT(r.remaining_requests, 9);                 /* ... nothing else charged */
    CHECK_EQ_INT(s.inflight, 1);
    CHECK_EQ_INT(rl_admit(&s, &l, 50, T0, &r), RL_OK);
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0, &r), RL_CONCURRENCY); /* the 3rd at once */
    CHECK(r.retry_ns >= S);
    CHECK_EQ_INT(r.remaining_requests, 8);
    rl_finish(&s, &l, 50, 50, T0);
    CHECK_EQ_INT(rl_admit(&s, &l, 0, T0, &r), RL_OK);
    CHECK_EQ_INT(s.inflight, 2);
    /* Unlimited: everything passes. */
    rl_limits_t none = {0};
    rl_state_init(&s, &none, T0);
    int ok = 1;
    for (int i = 0; i < 1000; i++) ok &= rl_admit(&s, &none, 1u << 20, T0, &r) == RL_OK;
    CHECK(ok);
}

static void test_headers(void) {
    char b[32];
    struct {
        uint64_t ns;
        const char *want;
    } v[] = {
        {0, "0s"},
        {1, "1ms"},
        {20 * 1000000ull, "20ms"},
        {999 * 1000000ull, "999ms"},
        {S, "1s"},
        {S + 1, "1.001s"},
        {1500 * 1000000ull, "1.5s"},
        {1250 * 1000000ull, "1.25s"},
        {60 * S, "1m0s"},
        {360 * S, "6m0s"},
        {3723 * S, "1h2m3s"},
        {7200 * S, "2h0m0s"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        rl_fmt_duration(v[i].ns, b);
        CHECK_EQ_STR(b, v[i].want);
    }
    CHECK_EQ_INT(rl_retry_after_s(0), 1);
    CHECK_EQ_INT(rl_retry_after_s(S), 1);
    CHECK_EQ_INT(rl_retry_after_s(S + 1), 2);
    CHECK_EQ_STR(rl_verdict_name(RL_TOKENS), "tokens");
}

static void test_budget(void) {
    int64_t midnight = 20000LL * BUDGET_DAY_S; /* some UTC midnight */
    budget_t b;
    budget_init(&b, midnight - 100);
    CHECK_EQ_INT(budget_until_midnight_s(midnight - 100), 100);
    CHECK_EQ_INT(budget_until_midnight_s(midnight), BUDGET_DAY_S);
    CHECK_EQ_INT(budget_until_midnight_s(midnight - 1), 1);
    CHECK_EQ_INT(budget_take(&b, 1000, 600, midnight - 100), 1);
    CHECK_EQ_INT(budget_take(&b, 1000, 401, midnight - 100), 0); /* 1001 > 1000 */
    CHECK_EQ_INT(budget_take(&b, 1000, 400, midnight - 100), 1); /* exactly 1000 */
    CHECK_NEAR(budget_ratio(&b, 1000, midnight - 100), 1.0, 1e-12);
    CHECK_EQ_INT(budget_take(&b, 1000, 0, midnight - 100), 1); /* nothing more needed */
    CHECK_EQ_INT(budget_take(&b, 1000, 1, midnight - 1), 0);
    /* Correction: the 600 used only 100. */
    budget_adjust(&b, budget_day(midnight - 1), -500, midnight - 1);
    CHECK_EQ_INT(budget_used(&b, midnight - 1), 500);
    CHECK_NEAR(budget_ratio(&b, 1000, midnight - 1), 0.5, 1e-12);
    /* Midnight: a new day starts from zero; yesterday's corrections do not count. */
    CHECK_EQ_INT(budget_used(&b, midnight), 0);
    CHECK_EQ_INT(budget_take(&b, 1000, 1000, midnight), 1);
    budget_adjust(&b, budget_day(midnight - 1), -400, midnight);
    CHECK_EQ_INT(budget_used(&b, midnight), 1000);
    budget_adjust(&b, budget_day(midnight), 50, midnight + 10);
    CHECK_EQ_INT(budget_used(&b, midnight + 10), 1050);
    CHECK_EQ_INT(budget_take(&b, 1000, 0, midnight + 10), 0); /* over: exhausted */
    budget_adjust(&b, budget_day(midnight), -5000, midnight + 10);
    CHECK_EQ_INT(budget_used(&b, midnight + 10), 0);
    CHECK_EQ_INT(budget_take(&b, 0, 1u << 30, midnight), 1); /* unlimited */
    CHECK_NEAR(budget_ratio(&b, 0, midnight), 0.0, 0);
    CHECK_EQ_INT(budget_day(-1), -1);
}

int main(void) {
    test_rpm_edge();
    test_rpm_burst();
    test_tpm_and_correction();
    test_all_or_nothing();
    test_headers();
    test_budget();
    return check_summary("test_gw_limits");
}
