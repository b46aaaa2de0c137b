/* proxy_account.h — accounting of finished and refused proxy requests. */
#ifndef TOLLGATE_GATEWAY_PROXY_ACCOUNT_H
#define TOLLGATE_GATEWAY_PROXY_ACCOUNT_H

#include "core/httpd.h"

struct preq;

/* The last stage of a routed request answered with status (499: client gone): counters,
 * metrics and logs, canary statistics, the correction of the governance charge. */
void proxy_account(struct preq *p, int status);

/* A request answered with an error before it was routed (refused, malformed, unknown):
 * counted in requests_total by status and access-logged, but kept out of the latency
 * histograms (a fast refusal is not a fast answer). Labels come from the config only
 * (service, a route's model), never from the request, so clients cannot add series. */
void proxy_account_early(httpd_req_t *req, const char *service, const char *model, int status,
                         const char *code);

#endif
