/* canary.h — A/B and canary decisions: sticky assignment of callers to variants, and the
 * canary controller (steps, pauses, a sliding window of the canary's outcomes compared with
 * limits, automatic abort). Pure functions of (state, now); the caller applies weights. */
#ifndef TOLLGATE_GATEWAY_CANARY_H
#define TOLLGATE_GATEWAY_CANARY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json.h"

#define CANARY_MAX_STEPS 16
#define CANARY_SLOTS     10   /* the sliding window is this many time slots */
#define CANARY_BUCKETS   24   /* latency histogram buckets per slot (canary_bounds_ms) */
#define CANARY_MAX       64   /* controllers per gateway (one per route model) */
#define CANARY_NAME      128

/* Defaults (docs/gateway.md, "Canary"). */
#define CANARY_DEF_PAUSE_MS   30000
#define CANARY_DEF_WINDOW_MS  60000
#define CANARY_DEF_MIN_REQ    20
#define CANARY_DEF_P99_MS     500
#define CANARY_DEF_ERR_PCT    5.0
#define CANARY_DEF_FB_PCT     5.0

enum { CANARY_IDLE = 0, CANARY_RUNNING, CANARY_PAUSED, CANARY_PROMOTED, CANARY_ABORTED };

/* --- sticky assignment --- */

/* A caller's stable bucket 0..99 from a key (user id): FNV-1a, so the same key lands in
 * the same bucket on every replica and after a restart. */
uint32_t canary_bucket(const char *key, size_t len);
/* The variant for a bucket: the bucket's share (bucket/100 of the total weight) taken
 * along the cumulative weights, so that raising the last variant's weight moves callers
 * only towards it (a caller in the canary stays there as it grows). -1 when all are 0. */
int canary_pick_sticky(const uint32_t *weights, size_t n, uint32_t bucket);

/* --- the controller --- */

typedef struct canary_cfg {
    uint32_t steps[CANARY_MAX_STEPS]; /* canary weight in percent at each step, ascending */
    size_t nsteps;
    uint32_t pause_ms;      /* time at a step before the next; 0: only a manual promote */
    uint32_t window_ms;     /* sliding window of the canary's outcomes */
    uint32_t min_requests;  /* judge (and advance) only with this many in the window */
    uint32_t max_p99_ms;    /* abort when the canary's p99 latency is above this */
    double max_error_pct;   /* ... its error rate above this percentage */
    double max_fallback_pct;/* ... its fallback rate (tasks) above this percentage */
} canary_cfg_t;

void canary_cfg_defaults(canary_cfg_t *c); /* steps 10, 25, 50, 100 and the values above */

typedef struct canary_slot {
    uint64_t epoch;         /* window slot number its counts belong to; 0: empty */
    uint32_t n, errors, fallbacks;
    uint32_t hist[CANARY_BUCKETS];
} canary_slot_t;

/* One route's canary. Shared by the worker threads (outcomes), the admin thread (commands)
 * and every config generation: everything under mu, held for O(window slots) per canary
 * request. The controller decides a weight; applying it to the routes is the caller's job
 * (canary_weight after any call that returns 1). */
typedef struct canary {
    char model[CANARY_NAME];    /* the route; immutable once published */
    char stable[64], variant[64]; /* variant names: the stable one and the canary */
    pthread_mutex_t mu;
    canary_cfg_t cfg;
    int state;                  /* CANARY_* */
    size_t step;                /* index into cfg.steps */
    uint64_t step_ns;           /* when the current step began */
    uint32_t step_requests;     /* canary outcomes since then */
    char reason[192];           /* why it was aborted / what the last command was */
    canary_slot_t slots[CANARY_SLOTS];
    uint64_t total, errors, fallbacks; /* canary outcomes since start */
    atomic_int weight;          /* the canary weight in percent the controller wants; -1 idle */
    atomic_int live;            /* 1 while running or paused: read without the lock so that
                                   routes whose canary is decided pay nothing per request */
} canary_t;

void canary_init(canary_t *c, const char *model);
void canary_destroy(canary_t *c);

/* Commands. Each returns 0, or -EINVAL (bad config) / -EALREADY (not in a state that
 * allows it) with nothing changed. */
int canary_start(canary_t *c, const canary_cfg_t *cfg, const char *stable, const char *variant,
                 uint64_t now_ns);
int canary_pause(canary_t *c, uint64_t now_ns);
int canary_resume(canary_t *c, uint64_t now_ns);
/* Next step now (the last step: promoted, the canary serves everything). */
int canary_promote(canary_t *c, uint64_t now_ns);
int canary_abort(canary_t *c, const char *reason, uint64_t now_ns);

/* One finished request of variant (NULL: the canary's, unchecked): counted only when it is
 * the canary variant of a running or paused canary. latency, failure (5xx, timeout,
 * gateway error) and fallback (a task answered with its fallback). Also advances and judges
 * (the same as canary_tick). Returns 1 when the wanted weight changed. */
int canary_record(canary_t *c, uint64_t now_ns, const char *variant, uint32_t latency_ms,
                  int error, int fallback);
/* Judge the window and advance a paused-out step. 1 when the wanted weight changed. */
int canary_tick(canary_t *c, uint64_t now_ns);
/* The wanted canary weight in percent, -1 when no canary is running or decided. */
static inline int canary_weight(canary_t *c) {
    return atomic_load_explicit(&c->weight, memory_order_relaxed);
}
int canary_state(canary_t *c);
static inline int canary_live(canary_t *c) {
    return atomic_load_explicit(&c->live, memory_order_relaxed);
}
const char *canary_state_name(int state);

/* Window figures at now: requests, error and fallback percent, p99 (bucket bound, ms). */
typedef struct canary_stats {
    uint32_t n;
    double error_pct, fallback_pct;
    uint32_t p99_ms;
} canary_stats_t;
void canary_window(canary_t *c, uint64_t now_ns, canary_stats_t *out);

/* The status object of the admin API (no tick: call canary_tick first and apply weights): {model, state, stable, canary, step, steps, weight,
 * reason, window:{requests, p99_ms, error_pct, fallback_pct}, limits:{...}, totals}. */
void canary_write_status(canary_t *c, uint64_t now_ns, json_w_t *jw);

/* Latency bucket upper bounds in ms (the last is "above": UINT32_MAX). */
extern const uint32_t canary_bounds_ms[CANARY_BUCKETS];

/* Every controller of a gateway, by model. Insertions under mu; lookups lock-free. */
typedef struct canary_set {
    pthread_mutex_t mu;
    canary_t *items[CANARY_MAX];
    atomic_size_t n;
} canary_set_t;

void canary_set_init(canary_set_t *s);
void canary_set_free(canary_set_t *s);
/* The controller of a route: created when create is set (NULL without memory or room),
 * else NULL when there is none yet. */
canary_t *canary_get(canary_set_t *s, const char *model, int create);
/* The i-th controller (0 <= i < count), for listings and metrics. */
size_t canary_count(canary_set_t *s);
canary_t *canary_at(canary_set_t *s, size_t i);

#endif
