/* canaryapi.h — canaries at run time: outcomes from the request path, the controller's
 * weights applied to the live routes, and the admin API's /canary endpoints. */
#ifndef TOLLGATE_GATEWAY_CANARYAPI_H
#define TOLLGATE_GATEWAY_CANARYAPI_H

#include <stddef.h>
#include <stdint.h>

#include "core/httpd.h"
#include "gateway/canary.h"
#include "gateway/gateway.h"

#define CANARYAPI_NAME 64 /* room for a variant name, as canary_t's stable/variant */

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

/* The body of POST /canary/MODEL/start (JSON, read as YAML): the route's `canary:` keys over
 * *g, and "stable"/"canary" variant names into stable and variant (CANARYAPI_NAME bytes each,
 * kept when absent). An empty body changes nothing. 0, or -EINVAL with the field in err. */
int canaryapi_parse_start(const char *body, size_t len, canary_cfg_t *g, char *stable,
                          char *variant, char *err, size_t errlen);
/* The body of POST /canary/MODEL/abort, {"reason": "..."}: "aborted by the operator: ..."
 * into reason (cap bytes), or "" when the body has no string reason. */
void canaryapi_abort_reason(const char *body, size_t len, char *reason, size_t cap);

#endif
