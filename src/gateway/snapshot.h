/* snapshot.h — one generation of the gateway's routing state: an immutable config with the
 * runtime it needs (resolved pool addresses, live variant weights, retry budgets),
 * reference-counted so that in-flight requests keep the generation they started with. */
#ifndef TOLLGATE_GATEWAY_SNAPSHOT_H
#define TOLLGATE_GATEWAY_SNAPSHOT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gwconfig.h"
#include "gateway/pool.h"
#include "gateway/route.h"

typedef struct snap_backend {
    const gw_backend_cfg_t *cfg;
    pool_addr_t *addrs[POOL_MAX_ADDRS]; /* registry entries, shared with other generations */
    size_t naddrs;
} snap_backend_t;

typedef struct snap_route {
    const gw_route_cfg_t *cfg;
    atomic_uint *weights;  /* per variant; start at the config's, set by the admin API */
    route_budget_t budget; /* retry budget, shared by the workers */
} snap_route_t;

typedef struct snapshot {
    atomic_int refs;         /* holders: the gateway while current, each worker, each request */
    uint64_t generation;     /* 1, 2, ... one per config loaded */
    gw_config_t cfg;         /* owned, never modified after snapshot_new */
    snap_backend_t *backends; /* cfg.nbackends */
    snap_route_t *routes;     /* cfg.nroutes */
} snapshot_t;

/* Build a generation from a validated config, which it takes over (*cfg is emptied,
 * even on failure). Addresses are looked up in (or added to) reg. Returns 0 and
 * *out with one reference, or -ENOMEM. */
int snapshot_new(gw_config_t *cfg, pool_registry_t *reg, uint64_t generation, snapshot_t **out);

static inline snapshot_t *snapshot_ref(snapshot_t *s) {
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}
/* Drop a reference; the last one frees the generation (on whichever thread drops it). */
void snapshot_unref(snapshot_t *s);

/* The route for a model name (not NUL-terminated: len bytes); NULL when none. */
snap_route_t *snapshot_route(snapshot_t *s, const char *model, size_t len);

/* Variant index in r for a name; -1 when none. */
int snapshot_variant(const snap_route_t *r, const char *name);

#endif
