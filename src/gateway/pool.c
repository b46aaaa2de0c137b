/* pool.c — upstream address registry, least-outstanding choice and passive ejection. */
#include "gateway/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pool_registry_init(pool_registry_t *r) {
    pthread_mutex_init(&r->mu, NULL);
    r->head = NULL;
    r->count = 0;
}

void pool_registry_free(pool_registry_t *r) {
    pool_addr_t *a = r->head;
    while (a) {
        pool_addr_t *n = a->next;
        free(a);
        a = n;
    }
    r->head = NULL;
    pthread_mutex_destroy(&r->mu);
}

pool_addr_t *pool_registry_get(pool_registry_t *r, const char *host, uint16_t port) {
    if (strlen(host) >= POOL_HOST_MAX)
        return NULL;
    pthread_mutex_lock(&r->mu);
    pool_addr_t *a;
    for (a = r->head; a; a = a->next)
        if (a->port == port && !strcmp(a->host, host))
            break;
    if (!a && (a = calloc(1, sizeof *a))) {
        snprintf(a->host, sizeof a->host, "%s", host);
        a->port = port;
        a->id = r->count++;
        snprintf(a->name, sizeof a->name, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
                 (unsigned)port);
        atomic_init(&a->outstanding, 0);
        atomic_init(&a->fails, 0);
        atomic_init(&a->ejections, 0);
        atomic_init(&a->ejected_until, 0);
        atomic_init(&a->health, 1);
        atomic_init(&a->total, 0);
        atomic_init(&a->failed, 0);
        a->next = r->head;
        r->head = a;
    }
    pthread_mutex_unlock(&r->mu);
    return a;
}

int pool_addr_usable(const pool_addr_t *a, uint64_t now_ns) {
    if (!atomic_load_explicit(&a->health, memory_order_relaxed))
        return 0;
    return atomic_load_explicit(&a->ejected_until, memory_order_relaxed) <= now_ns;
}

/* Scan from a rotating start so ties go to different addresses on successive calls;
 * the scan is O(n) with n a handful, cheaper than any ordered structure to maintain. */
static int pick_among(pool_addr_t *const *addrs, size_t n, uint32_t rnd, uint64_t allowed) {
    int best = -1;
    unsigned best_out = 0;
    size_t start = rnd % n;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!(allowed >> i & 1))
            continue;
        unsigned out = atomic_load_explicit(&addrs[i]->outstanding, memory_order_relaxed);
        if (best < 0 || out < best_out) {
            best = (int)i;
            best_out = out;
        }
    }
    return best;
}

int pool_pick(pool_addr_t *const *addrs, size_t n, uint64_t now_ns, uint32_t rnd, uint64_t tried) {
    if (n == 0)
        return -1;
    if (n > POOL_MAX_ADDRS)
        n = POOL_MAX_ADDRS;
    uint64_t all = n == 64 ? ~0ull : (1ull << n) - 1, usable = 0;
    for (size_t i = 0; i < n; i++)
        if (pool_addr_usable(addrs[i], now_ns))
            usable |= 1ull << i;
    /* Preference order: usable and untried, usable, untried (panic), anything. */
    uint64_t order[4] = {usable & ~tried, usable, all & ~tried, all};
    for (int k = 0; k < 4; k++)
        if (order[k])
            return pick_among(addrs, n, rnd, order[k]);
    return -1;
}

void pool_begin(pool_addr_t *a) {
    atomic_fetch_add_explicit(&a->outstanding, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->total, 1, memory_order_relaxed);
}

void pool_end(pool_addr_t *a) {
    atomic_fetch_sub_explicit(&a->outstanding, 1, memory_order_relaxed);
}

int pool_report(pool_addr_t *a, int ok, uint64_t now_ns, const pool_eject_cfg_t *c) {
    if (ok) {
        atomic_store_explicit(&a->fails, 0, memory_order_relaxed);
        atomic_store_explicit(&a->ejections, 0, memory_order_relaxed);
        return 0;
    }
    atomic_fetch_add_explicit(&a->failed, 1, memory_order_relaxed);
    unsigned f = atomic_fetch_add_explicit(&a->fails, 1, memory_order_relaxed) + 1;
    if (!c || c->failures == 0 || f < c->failures)
        return 0;
    /* Exactly one reporter crosses the threshold: it resets the count and ejects. */
    unsigned expect = f;
    if (!atomic_compare_exchange_strong(&a->fails, &expect, 0))
        return 0;
    unsigned e = atomic_fetch_add_explicit(&a->ejections, 1, memory_order_relaxed);
    uint64_t ms = c->base_ms;
    for (unsigned i = 0; i < e && ms < c->max_ms; i++) ms *= 2;
    if (c->max_ms && ms > c->max_ms)
        ms = c->max_ms;
    atomic_store_explicit(&a->ejected_until, now_ns + ms * 1000000ull, memory_order_relaxed);
    return 1;
}

void pool_set_health(pool_addr_t *a, int up) {
    int was = atomic_exchange_explicit(&a->health, up ? 1 : 0, memory_order_relaxed);
    /* Only a down -> up transition ends an ejection: an address that passes /health
     * while its requests fail stays ejected until its backoff runs out. */
    if (up && !was) {
        atomic_store_explicit(&a->ejected_until, 0, memory_order_relaxed);
        atomic_store_explicit(&a->fails, 0, memory_order_relaxed);
    }
}
