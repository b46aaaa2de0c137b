/* test_gw_route.c — gateway routing decisions: variant weights, least-outstanding choice,
 * passive ejection with backoff and recovery, retry budget. Time is injected. */
#include "check.h"

#include "gateway/pool.h"
#include "gateway/route.h"

#define MS 1000000ull

static void test_variants(void) {
    uint32_t w[3] = {90, 10, 0};
    int count[3] = {0, 0, 0};
    uint32_t st = 12345;
    int bad = 0;
    for (int i = 0; i < 100000; i++) {
        int v = route_pick_variant(w, 3, route_rand(&st));
        if (v < 0 || v > 2)
            bad++;
        else
            count[v]++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(count[2], 0);
    CHECK_NEAR(count[1] / 100000.0, 0.10, 0.01);
    /* Exact boundaries: rnd picks by cumulative weight. */
    CHECK_EQ_INT(route_pick_variant(w, 3, 0), 0);
    CHECK_EQ_INT(route_pick_variant(w, 3, 89), 0);
    CHECK_EQ_INT(route_pick_variant(w, 3, 90), 1);
    CHECK_EQ_INT(route_pick_variant(w, 3, 99), 1);
    CHECK_EQ_INT(route_pick_variant(w, 3, 100), 0);
    uint32_t z[2] = {0, 0};
    CHECK_EQ_INT(route_pick_variant(z, 2, 7), -1);
    CHECK_EQ_INT(route_pick_variant(z, 0, 7), -1);
    uint32_t one[2] = {0, 5};
    for (uint32_t r = 0; r < 20; r++) CHECK_EQ_INT(route_pick_variant(one, 2, r), 1);
}

static void test_least_outstanding(void) {
    pool_registry_t reg;
    pool_registry_init(&reg);
    pool_addr_t *a[3] = {pool_registry_get(&reg, "127.0.0.1", 9001),
                         pool_registry_get(&reg, "127.0.0.1", 9002),
                         pool_registry_get(&reg, "::1", 9003)};
    CHECK(a[0] && a[1] && a[2]);
    CHECK(pool_registry_get(&reg, "127.0.0.1", 9001) == a[0]); /* same entry */
    CHECK_EQ_STR(a[0]->name, "127.0.0.1:9001");
    CHECK_EQ_STR(a[2]->name, "[::1]:9003");
    CHECK_EQ_INT(pool_pick(a, 0, 0, 0, 0), -1);

    /* All idle: ties spread by rnd. */
    int seen[3] = {0, 0, 0};
    for (uint32_t r = 0; r < 30; r++) seen[pool_pick(a, 3, 0, r, 0)]++;
    CHECK(seen[0] == 10 && seen[1] == 10 && seen[2] == 10);

    pool_begin(a[0]);
    pool_begin(a[0]);
    pool_begin(a[1]);
    for (uint32_t r = 0; r < 10; r++) CHECK_EQ_INT(pool_pick(a, 3, 0, r, 0), 2);
    pool_begin(a[2]);
    pool_begin(a[2]);
    for (uint32_t r = 0; r < 10; r++) CHECK_EQ_INT(pool_pick(a, 3, 0, r, 0), 1);
    /* Tried addresses are avoided while others exist. */
    for (uint32_t r = 0; r < 10; r++) CHECK(pool_pick(a, 3, 0, r, 1u << 1) != 1);
    for (uint32_t r = 0; r < 10; r++) CHECK_EQ_INT(pool_pick(a, 3, 0, r, 7), 1);
    pool_end(a[0]);
    pool_end(a[0]);
    pool_end(a[1]);
    pool_end(a[2]);
    pool_end(a[2]);
    CHECK_EQ_INT(atomic_load(&a[0]->outstanding), 0);
    CHECK_EQ_INT(atomic_load(&a[0]->total), 2);
    pool_registry_free(&reg);
}

static void test_ejection(void) {
    pool_registry_t reg;
    pool_registry_init(&reg);
    pool_addr_t *a[2] = {pool_registry_get(&reg, "10.0.0.1", 1), pool_registry_get(&reg, "10.0.0.2", 2)};
    pool_eject_cfg_t c = {.failures = 3, .base_ms = 1000, .max_ms = 5000};
    uint64_t t = 1000 * MS;

    CHECK_EQ_INT(pool_report(a[0], 0, t, &c), 0);
    CHECK_EQ_INT(pool_report(a[0], 0, t, &c), 0);
    CHECK(pool_addr_usable(a[0], t));
    CHECK_EQ_INT(pool_report(a[0], 0, t, &c), 1); /* third consecutive failure ejects */
    CHECK(!pool_addr_usable(a[0], t));
    for (uint32_t r = 0; r < 10; r++) CHECK_EQ_INT(pool_pick(a, 2, t, r, 0), 1);
    /* Recovery by time: back after base_ms. */
    CHECK(!pool_addr_usable(a[0], t + 999 * MS));
    CHECK(pool_addr_usable(a[0], t + 1000 * MS));
    /* Failing again doubles the ejection: 2 s, then 4 s, then capped at 5 s. */
    t += 1000 * MS;
    for (int i = 0; i < 3; i++) pool_report(a[0], 0, t, &c);
    CHECK(!pool_addr_usable(a[0], t + 1999 * MS));
    CHECK(pool_addr_usable(a[0], t + 2000 * MS));
    t += 2000 * MS;
    for (int i = 0; i < 3; i++) pool_report(a[0], 0, t, &c);
    CHECK(pool_addr_usable(a[0], t + 4000 * MS) && !pool_addr_usable(a[0], t + 3999 * MS));
    t += 4000 * MS;
    for (int i = 0; i < 3; i++) pool_report(a[0], 0, t, &c);
    CHECK(pool_addr_usable(a[0], t + 5000 * MS) && !pool_addr_usable(a[0], t + 4999 * MS));
    /* A success resets the backoff and the failure count. */
    t += 5000 * MS;
    pool_report(a[0], 1, t, &c);
    pool_report(a[0], 0, t, &c);
    pool_report(a[0], 0, t, &c);
    pool_report(a[0], 1, t, &c);
    pool_report(a[0], 0, t, &c);
    pool_report(a[0], 0, t, &c);
    CHECK(pool_addr_usable(a[0], t));
    pool_report(a[0], 0, t, &c);
    CHECK(!pool_addr_usable(a[0], t) && pool_addr_usable(a[0], t + 1000 * MS));

    /* Both out: panic mode still offers an address rather than none. */
    for (int i = 0; i < 3; i++) pool_report(a[1], 0, t, &c);
    CHECK(pool_pick(a, 2, t, 0, 0) >= 0);

    /* Active checks: down takes it out; down -> up ends an ejection early. */
    pool_set_health(a[1], 0);
    CHECK(!pool_addr_usable(a[1], t + 10000 * MS));
    pool_set_health(a[1], 1);
    CHECK(pool_addr_usable(a[1], t));
    /* Passing checks while ejected (no transition) do not end the ejection. */
    for (int i = 0; i < 3; i++) pool_report(a[1], 0, t, &c);
    pool_set_health(a[1], 1);
    CHECK(!pool_addr_usable(a[1], t));
    /* Ejection disabled. */
    pool_eject_cfg_t off = {.failures = 0};
    pool_addr_t *b = pool_registry_get(&reg, "10.0.0.3", 3);
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(pool_report(b, 0, t, &off), 0);
    CHECK(pool_addr_usable(b, t));
    CHECK_EQ_INT(atomic_load(&b->failed), 100);
    pool_registry_free(&reg);
}

static void test_budget(void) {
    route_budget_t b;
    route_budget_init(&b, 3);
    /* Starts full: the burst. */
    CHECK_EQ_INT(route_budget_withdraw(&b), 1);
    CHECK_EQ_INT(route_budget_withdraw(&b), 1);
    CHECK_EQ_INT(route_budget_withdraw(&b), 1);
    CHECK_EQ_INT(route_budget_withdraw(&b), 0);
    /* 20%: five first attempts earn one retry. */
    for (int i = 0; i < 4; i++) route_budget_deposit(&b, 20, 3);
    CHECK_EQ_INT(route_budget_withdraw(&b), 0);
    route_budget_deposit(&b, 20, 3);
    CHECK_EQ_INT(route_budget_withdraw(&b), 1);
    CHECK_EQ_INT(route_budget_withdraw(&b), 0);
    /* Capped at the burst. */
    for (int i = 0; i < 1000; i++) route_budget_deposit(&b, 20, 3);
    int n = 0;
    while (route_budget_withdraw(&b)) n++;
    CHECK_EQ_INT(n, 3);
    /* percent 0, burst 0: never retries. */
    route_budget_init(&b, 0);
    route_budget_deposit(&b, 0, 0);
    CHECK_EQ_INT(route_budget_withdraw(&b), 0);
}

int main(void) {
    test_variants();
    test_least_outstanding();
    test_ejection();
    test_budget();
    return check_summary("test_gw_route");
}
