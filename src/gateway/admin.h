/* admin.h — the gateway's admin API (its own listener, loopback by default, its own key):
 * health, readiness, current config, reload, variant weights, upstream state, counters. */
#ifndef TOLLGATE_GATEWAY_ADMIN_H
#define TOLLGATE_GATEWAY_ADMIN_H

#include <stddef.h>

#include <stdint.h>

#include "core/httpd.h"
#include "gateway/gwconfig.h"

/* httpd handler; arg is the gateway_t. */
void admin_handle(httpd_req_t *req, void *arg);

/* Compare a presented key with the configured one in time independent of where they
 * differ. 1 when equal. */
int admin_key_equal(const char *given, const char *want);

/* The body of PUT /routes/MODEL/weights, {"variant": weight, ...}, checked against the
 * route's variants; nothing is stored. 0 with nw[j] and set[j] (1: named in the body) for
 * each variant j; -EINVAL (or -ENOMEM) with a message for the client in msg. */
int admin_parse_weights(const char *body, size_t len, const gw_route_cfg_t *route, uint32_t *nw,
                        int *set, char *msg, size_t msglen);

#endif
