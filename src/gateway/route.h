/* route.h — routing decisions that need no I/O: weighted variant choice and the retry budget. */
#ifndef TOLLGATE_GATEWAY_ROUTE_H
#define TOLLGATE_GATEWAY_ROUTE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Pick a variant with probability weight[i] / sum(weights), from a uniform rnd.
 * Zero weights are never chosen. Returns an index, or -1 when all weights are 0. */
int route_pick_variant(const uint32_t *weights, size_t n, uint32_t rnd);

/* Retry budget: retries may be at most `percent` % of first attempts, plus a burst so
 * that a quiet route can still retry. A token bucket in thousandths of a retry: every
 * first attempt deposits percent*10, a retry withdraws 1000, the bucket holds at most
 * burst*1000 and starts full. Shared by the workers (atomic), no lock. */
typedef struct route_budget {
    atomic_int_fast64_t milli; /* thousandths of a retry available */
} route_budget_t;

void route_budget_init(route_budget_t *b, uint32_t burst);
/* A first attempt was made: grow the budget by percent % of a retry. */
void route_budget_deposit(route_budget_t *b, uint32_t percent, uint32_t burst);
/* 1 when a retry may go ahead (and is charged), 0 when the budget is spent. */
int route_budget_withdraw(route_budget_t *b);

/* A small fast PRNG (xorshift32) for balancing choices; state must not be 0.
 * One per worker thread, never shared. */
static inline uint32_t route_rand(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

#endif
