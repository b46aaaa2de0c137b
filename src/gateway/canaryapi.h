/* canaryapi.h — canaries at run time: outcomes from the request path, the controller's
 * weights applied to the live routes, and the admin API's /canary endpoints. */
#ifndef TOLLGATE_GATEWAY_CANARYAPI_H
#define TOLLGATE_GATEWAY_CANARYAPI_H

#include <stdint.h>

#include "core/httpd.h"
#include "gateway/gateway.h"

/* A request of `variant` on route `model` finished (any thread). Counted only when that
 * route's canary is running and variant is its canary; may abort it or move it a step,
 * and then applies the new weights. Lock-free when no canary was ever started. */
void canaryapi_observe(gateway_t *gw, const char *model, const char *variant,
                       uint32_t latency_ms, int error, int fallback);

/* Apply every decided canary's weights to the current generation (after a reload, whose
 * new generation starts from the file's weights). */
void canaryapi_reapply(gateway_t *gw);

/* The admin API's canary endpoints (admin thread):
 *   GET  /canary                     every controller's status
 *   GET  /canary/MODEL               one status
 *   POST /canary/MODEL/start         body (optional): the route's `canary:` keys, overriding
 *   POST /canary/MODEL/pause|resume|promote
 *   POST /canary/MODEL/abort         body (optional): {"reason": "..."}
 * Returns 1 when path is one of these (the request is answered), 0 otherwise. */
int canaryapi_admin(gateway_t *gw, httpd_req_t *req);

#endif
