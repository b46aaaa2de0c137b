/* admin.h — the gateway's admin API (its own listener, loopback by default, its own key):
 * health, readiness, current config, reload, variant weights, upstream state, counters. */
#ifndef TOLLGATE_GATEWAY_ADMIN_H
#define TOLLGATE_GATEWAY_ADMIN_H

#include <stddef.h>

#include "core/httpd.h"

/* httpd handler; arg is the gateway_t. */
void admin_handle(httpd_req_t *req, void *arg);

/* Compare a presented key with the configured one in time independent of where they
 * differ. 1 when equal. */
int admin_key_equal(const char *given, const char *want);

#endif
