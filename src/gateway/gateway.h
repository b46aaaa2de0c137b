/* gateway.h — the gateway process: listeners, worker threads, the current config generation,
 * live reload, the health checker and the admin API, tied together. */
#ifndef TOLLGATE_GATEWAY_GATEWAY_H
#define TOLLGATE_GATEWAY_GATEWAY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/snapshot.h"

typedef struct gateway gateway_t;

/* Start-up options; command-line values override the file's. */
typedef struct gateway_opts {
    const char *config_path; /* required */
    const char *host;        /* NULL: the file's listen host */
    int port;                /* -1: the file's listen port; 0: any free port */
    int threads;             /* 0: the file's, else the number of cores */
    int admin_port;          /* -1: the file's admin port; 0: any free port */
} gateway_opts_t;

/* Load the config and bind the listeners. 0 and *out, or a negative errno with a message
 * for the operator in err. */
int gateway_new(const gateway_opts_t *opts, gateway_t **out, char *err, size_t errlen);
/* Start the worker, admin and health-check threads. 0 or negative errno. */
int gateway_start(gateway_t *gw);
/* Bound ports (after gateway_new). admin_port is -1 when the admin API is off. */
int gateway_port(const gateway_t *gw);
int gateway_admin_port(const gateway_t *gw);
/* Number of worker threads serving the main listener. */
int gateway_threads(const gateway_t *gw);

/* Re-read the config file; a valid one becomes current for new requests (requests in
 * flight finish on the generation they started with), a broken one is refused and the
 * current one kept. Thread-safe, any thread. 0 and a summary in msg, or a negative errno
 * with the reason (file, line, field) in msg. Listener addresses and thread count are
 * start-up settings: a change to them is reported in msg and takes effect on restart. */
int gateway_reload(gateway_t *gw, char *msg, size_t msglen);

/* The current generation, with a reference for the caller (snapshot_unref when done). */
snapshot_t *gateway_acquire(gateway_t *gw);
/* The governance runtime (services' limiter state, rejection counters): govern.h. */
struct gov *gateway_gov(gateway_t *gw);
/* Metrics, request log and access log (obs.h). */
struct obs *gateway_obs(gateway_t *gw);
/* Circuit breakers by backend and canary controllers by route (circuit.h, canary.h): shared
 * by every worker and generation, alive until gateway_free. */
struct circuit_set *gateway_circuits(gateway_t *gw);
struct canary_set *gateway_canaries(gateway_t *gw);
/* Its number: workers compare it with theirs (one relaxed load) to notice a new one. */
uint64_t gateway_generation(gateway_t *gw);

/* Stop listening and finish in-flight requests for up to drain_ms, then wait for every
 * thread. Thread-safe; a second call is harmless. */
void gateway_stop(gateway_t *gw, uint32_t drain_ms);
void gateway_wait(gateway_t *gw);
void gateway_free(gateway_t *gw);

/* Counters summed over the workers (relaxed reads), for the admin API and tests. */
typedef struct gateway_stats {
    uint64_t requests;          /* proxied requests finished */
    uint64_t errors;            /* ... answered with a status >= 400 by the gateway or upstream */
    uint64_t retries;           /* extra attempts made */
    uint64_t client_cancels;    /* clients that went away before the end */
    uint64_t prompt_tokens;     /* usage reported by upstreams */
    uint64_t completion_tokens;
} gateway_stats_t;
void gateway_stats(gateway_t *gw, gateway_stats_t *out);

#endif
