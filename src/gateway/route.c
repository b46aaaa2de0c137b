/* route.c — weighted variant choice and the retry token bucket. */
#include "gateway/route.h"

int route_pick_variant(const uint32_t *weights, size_t n, uint32_t rnd) {
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += weights[i];
    if (total == 0)
        return -1;
    /* rnd % total is biased by at most total / 2^32: invisible at weights up to 10^4. */
    uint64_t x = rnd % total;
    for (size_t i = 0; i < n; i++) {
        if (x < weights[i])
            return (int)i;
        x -= weights[i];
    }
    return -1; /* unreachable */
}

void route_budget_init(route_budget_t *b, uint32_t burst) {
    atomic_init(&b->milli, (int_fast64_t)burst * 1000);
}

void route_budget_deposit(route_budget_t *b, uint32_t percent, uint32_t burst) {
    int_fast64_t cap = (int_fast64_t)burst * 1000, add = (int_fast64_t)percent * 10;
    int_fast64_t cur = atomic_load_explicit(&b->milli, memory_order_relaxed);
    while (cur < cap) {
        int_fast64_t next = cur + add > cap ? cap : cur + add;
        if (atomic_compare_exchange_weak_explicit(&b->milli, &cur, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
}

int route_budget_withdraw(route_budget_t *b) {
    int_fast64_t cur = atomic_load_explicit(&b->milli, memory_order_relaxed);
    while (cur >= 1000) {
        if (atomic_compare_exchange_weak_explicit(&b->milli, &cur, cur - 1000,
                                                  memory_order_relaxed, memory_order_relaxed))
            return 1;
    }
    return 0;
}
