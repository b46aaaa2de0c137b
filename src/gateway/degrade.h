/* degrade.h — the proxy's hooks into graceful degradation: sticky variant choice, the
 * circuit breaker around each upstream attempt, the route's fallback variant. */
#ifndef TOLLGATE_GATEWAY_DEGRADE_H
#define TOLLGATE_GATEWAY_DEGRADE_H

#include <stdint.h>

#include "core/httpd.h"
#include "core/json.h"
#include "gateway/circuit.h"
#include "gateway/gateway.h"
#include "gateway/snapshot.h"

/* A variant of route r for this request: by the route's `sticky` key (header, or a
 * top-level string field of the parsed body d) when the request carries one, else by rnd
 * over the live weights. -1 when every weight is 0. */
int degrade_pick(snapshot_t *s, snap_route_t *r, httpd_req_t *req, const json_doc_t *d,
                 uint32_t rnd);

#define DEGRADE_OPEN (-1) /* the backend's circuit is open */
#define DEGRADE_SHED (-2) /* the backend's queue is full: shed the request */

/* Before an attempt on backend b: 0 and *c (NULL when breaking is off) with *probe set, or
 * DEGRADE_OPEN / DEGRADE_SHED to fail fast. Load shedding needs `max_connections` on the backend:
 * when every address already has as many requests waiting for a connection as the gateway
 * may open to it (max_connections per worker), one more would only wait and time out. */
int degrade_admit(gateway_t *gw, snapshot_t *s, const snap_backend_t *b, uint64_t now_ns,
                  circuit_t **c, int *probe);
/* The attempt's outcome for the breaker (ok 1, failure 0, -1 no verdict); c may be NULL. */
void degrade_report(snapshot_t *s, circuit_t *c, int probe, int ok, uint64_t now_ns);

/* The route's fallback variant index when it is not cur; -1 when none. */
int degrade_fallback(const snapshot_t *s, const snap_route_t *r, const gw_variant_cfg_t *cur);

#endif
