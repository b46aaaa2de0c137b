/* pool.h — upstream addresses and their shared state: least-outstanding choice, passive
 * ejection with recovery, active-check results. Pure functions of (state, now). */
#ifndef TOLLGATE_GATEWAY_POOL_H
#define TOLLGATE_GATEWAY_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define POOL_HOST_MAX 64
#define POOL_MAX_ADDRS 64 /* per backend: lets a request remember tried addresses in a bitmask */

/* When passive ejection takes an address out of rotation, and for how long. */
typedef struct pool_eject_cfg {
    uint32_t failures; /* consecutive failed requests that eject; 0 disables ejection */
    uint32_t base_ms;  /* first ejection lasts this long ... */
    uint32_t max_ms;   /* ... each further one (without a success between) twice as long, capped */
} pool_eject_cfg_t;

/* One upstream address. Shared by every worker thread and every config generation
 * that names it (state survives a reload): all mutable fields are atomics, read and
 * written relaxed — a slightly stale view only makes a balancing choice less exact. */
typedef struct pool_addr {
    char host[POOL_HOST_MAX]; /* numeric IPv4/IPv6 or a name, as configured */
    uint16_t port;
    char name[POOL_HOST_MAX + 8];   /* "host:port", for logs, metrics and the admin API */
    uint32_t id;                    /* 0, 1, 2... in registration order: index for per-worker
                                       tables such as connection pools */
    atomic_uint outstanding;        /* requests in flight to it, all workers */
    atomic_uint fails;              /* consecutive failures since the last success */
    atomic_uint ejections;          /* consecutive ejections, for the backoff */
    atomic_uint_fast64_t ejected_until; /* monotonic ns; 0 or past = in rotation */
    atomic_int health;              /* last active check: 1 up (also before any check), 0 down */
    atomic_uint_fast64_t total;     /* requests sent, for the admin API */
    atomic_uint_fast64_t failed;    /* requests failed, for the admin API */
    struct pool_addr *next;         /* registry list; immutable once linked */
} pool_addr_t;

/* Every address ever configured, keyed by host:port, so that a reload keeps the
 * counts and ejections of addresses that stay. Entries live until pool_registry_free
 * (there are as many as distinct addresses configured: a handful). The mutex guards
 * only insertion, done while a config is built, never on the request path. */
typedef struct pool_registry {
    pthread_mutex_t mu;
    pool_addr_t *head;
    uint32_t count; /* entries so far; ids are 0..count-1 */
} pool_registry_t;

void pool_registry_init(pool_registry_t *r);
void pool_registry_free(pool_registry_t *r);
/* The entry for host:port, created on first use. NULL on allocation failure or a
 * host longer than POOL_HOST_MAX - 1. */
pool_addr_t *pool_registry_get(pool_registry_t *r, const char *host, uint16_t port);

/* 1 when a is in rotation at now_ns: not ejected and not failing active checks. */
int pool_addr_usable(const pool_addr_t *a, uint64_t now_ns);

/* Choose an address among addrs[0..n) for the next attempt: the usable one with the
 * fewest outstanding requests, ties broken by rnd (so that equal addresses share load).
 * Addresses whose bit is set in tried are avoided while another is available. When no
 * address is usable the pool is in panic: all are candidates (better to try one than to
 * fail for sure). Returns an index, or -1 when n == 0. */
int pool_pick(pool_addr_t *const *addrs, size_t n, uint64_t now_ns, uint32_t rnd, uint64_t tried);

/* An attempt starts / ends: keeps `outstanding` for the balancing. */
void pool_begin(pool_addr_t *a);
void pool_end(pool_addr_t *a);

/* Report an attempt's outcome (ok: a response head arrived that was not 5xx; failure:
 * connect error, reset, timeout before the head, or 502/503/504). Returns 1 when this
 * failure ejected the address. */
int pool_report(pool_addr_t *a, int ok, uint64_t now_ns, const pool_eject_cfg_t *c);

/* Active health check result. A passing check after a failing one also ends an
 * ejection at once: the address came back. */
void pool_set_health(pool_addr_t *a, int up);

#endif
