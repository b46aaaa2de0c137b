/* govshared.h — limits shared by all gateway replicas through Redis: one atomic Lua script
 * admits a request against the service's request and token buckets, its concurrency leases
 * and its daily budget; another corrects the charge at the end. One per worker thread (its
 * own Redis connection on the worker's loop). When Redis is unreachable the caller admits
 * on its local limiter instead (gov_admit_local) and the fallbacks are counted. */
#ifndef TOLLGATE_GATEWAY_GOVSHARED_H
#define TOLLGATE_GATEWAY_GOVSHARED_H

#include <stdint.h>

#include "core/ev.h"
#include "core/redis.h"
#include "gateway/govern.h"

#define GOVSHARED_LEASE_MS                                                                         \
    600000 /* a replica that dies mid-request frees its concurrency slot after this */

typedef struct gov_shared gov_shared_t;

/* Called once with the decision (d->status 0: admitted, t charged in Redis). */
typedef void (*gov_shared_cb)(void *arg, gov_decision_t *d);

/* A client on loop for cfg's redis settings; worker: a number unique in this process (for
 * lease names). 0 and *out, or a negative errno. */
int gov_shared_new(ev_loop_t *loop, gov_t *g, const gov_cfg_t *cfg, int worker, gov_shared_t **out);
void gov_shared_free(gov_shared_t *s);
int gov_shared_up(const gov_shared_t *s);

/* Charge t (filled by gov_admit_request) in Redis. Returns a handle > 0 and cb runs later
 * (with the decision; on a Redis failure cb gets the local decision: it falls back itself),
 * or a negative errno when Redis is not usable now (cb not called: admit locally). */
int64_t gov_shared_admit(gov_shared_t *s, gov_ticket_t *t, int64_t unix_s, gov_shared_cb cb,
                         void *arg);
/* The request went away before the answer: cb will not run. A charge already made is
 * repaired by the lease expiry and the bucket refill. */
void gov_shared_cancel(gov_shared_t *s, int64_t handle);
/* Correct a shared charge with the actual usage (fire and forget). */
void gov_shared_finish(gov_shared_t *s, gov_ticket_t *t, uint64_t actual, int64_t unix_s);

#endif
