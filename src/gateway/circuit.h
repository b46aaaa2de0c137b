/* circuit.h — circuit breakers per backend pool: closed → open after consecutive failures
 * or a failure ratio over a sliding window, open → half-open after a cool-down, a few
 * successful probes close it again. Pure functions of (state, now); time is injected. */
#ifndef TOLLGATE_GATEWAY_CIRCUIT_H
#define TOLLGATE_GATEWAY_CIRCUIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CIRCUIT_SLOTS 10   /* the failure-ratio window is this many time slots */
#define CIRCUIT_MAX   256  /* breakers per gateway (one per backend name ever configured) */
#define CIRCUIT_NAME  64

/* Defaults (docs/gateway.md, "Circuit breaking"). */
#define CIRCUIT_DEF_FAILURES    5
#define CIRCUIT_DEF_RATIO_PCT   50
#define CIRCUIT_DEF_MIN_REQ     20
#define CIRCUIT_DEF_WINDOW_MS   10000
#define CIRCUIT_DEF_COOLDOWN_MS 5000
#define CIRCUIT_DEF_PROBES      2

enum { CIRCUIT_CLOSED = 0, CIRCUIT_OPEN = 1, CIRCUIT_HALF_OPEN = 2 };

/* What circuit_allow decided for one call. */
enum { CIRCUIT_REJECT = -1, CIRCUIT_PASS = 0, CIRCUIT_PROBE = 1 };

typedef struct circuit_cfg {
    uint32_t failures;     /* consecutive failures that open it; 0: this rule is off */
    uint32_t ratio_pct;    /* failure percentage over the window that opens it; 0: off */
    uint32_t min_requests; /* ... counted only once the window holds this many outcomes */
    uint32_t window_ms;    /* length of the sliding window */
    uint32_t cooldown_ms;  /* open this long before probes are let through */
    uint32_t probes;       /* successful probes (one at a time each) that close it, >= 1 */
} circuit_cfg_t;

/* One breaker. Shared by every worker thread and config generation (a reload keeps the
 * state): `state` is readable without the lock, so the closed fast path takes none on
 * admission; outcomes take mu for a few dozen ns. */
typedef struct circuit {
    char name[CIRCUIT_NAME];     /* backend name; immutable once published */
    pthread_mutex_t mu;          /* guards everything below but `state` writes' readers */
    atomic_int state;            /* CIRCUIT_* */
    uint32_t consec;             /* consecutive failures while closed */
    uint64_t opened_ns;          /* when it last opened */
    uint32_t probes_out;         /* probes in flight while half-open */
    uint32_t probes_ok;          /* successful probes since half-open */
    uint64_t slot_epoch[CIRCUIT_SLOTS]; /* window slot number each slot's counts belong to */
    uint32_t ok[CIRCUIT_SLOTS], fail[CIRCUIT_SLOTS];
    atomic_uint_fast64_t opens;  /* times opened, for metrics */
    atomic_uint_fast64_t rejected; /* calls refused while open */
    const char *why;             /* why it last opened (a literal) */
} circuit_t;

void circuit_init(circuit_t *c, const char *name);
void circuit_destroy(circuit_t *c);
/* Fill cfg with the defaults above. */
void circuit_cfg_defaults(circuit_cfg_t *cfg);

/* May a call go to the backend now? CIRCUIT_PASS (closed), CIRCUIT_PROBE (half-open: this
 * call is a probe and must be reported with probe = 1), CIRCUIT_REJECT (open: fail fast). */
int circuit_allow(circuit_t *c, const circuit_cfg_t *cfg, uint64_t now_ns);
/* The outcome of an allowed call: ok 1 success, 0 failure, -1 no verdict (cancelled by the
 * caller: only frees a probe slot). probe: what circuit_allow returned was CIRCUIT_PROBE. */
void circuit_report(circuit_t *c, const circuit_cfg_t *cfg, int probe, int ok, uint64_t now_ns);
/* The state as seen at now (an open breaker past its cool-down reads half-open). */
int circuit_state(circuit_t *c, const circuit_cfg_t *cfg, uint64_t now_ns);
const char *circuit_state_name(int state);

/* Every breaker of a gateway, by backend name. Entries live until circuit_set_free.
 * Lookups read a published count without the lock; insertions take mu. */
typedef struct circuit_set {
    pthread_mutex_t mu;
    circuit_t *items[CIRCUIT_MAX];
    atomic_size_t n;
} circuit_set_t;

void circuit_set_init(circuit_set_t *s);
void circuit_set_free(circuit_set_t *s);
/* The breaker of a backend, created on first use; NULL without memory or room. */
circuit_t *circuit_get(circuit_set_t *s, const char *name);

/* Prometheus text: tollgate_circuit_state{backend} (0 closed, 1 open, 2 half-open; an open
 * breaker reads open until a call after its cool-down makes it half-open),
 * tollgate_circuit_opens_total{backend}, tollgate_circuit_rejected_total{backend}.
 * Appends to out (core/buf.h); 0 or -ENOMEM. */
struct buf;
int circuit_set_render(circuit_set_t *s, struct buf *out);

#endif
