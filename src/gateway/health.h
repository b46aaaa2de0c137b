/* health.h — active health checks: a thread that GETs each upstream address's health path
 * on its interval and records up/down in the shared pool state. */
#ifndef TOLLGATE_GATEWAY_HEALTH_H
#define TOLLGATE_GATEWAY_HEALTH_H

#include <stdint.h>

#include "gateway/gateway.h"

typedef struct health health_t;

/* Start the checker on the gateway's current config (re-read every round, so a reload
 * changes what is checked). 0 and *out, or a negative errno. */
int health_start(gateway_t *gw, health_t **out);
/* Ask the thread to stop (returns at once); wait for it; free. NULL is fine for each. */
void health_stop(health_t *h);
void health_wait(health_t *h);
void health_free(health_t *h);

/* One check, blocking for at most timeout_ms: 1 when GET path answers 2xx, else 0. */
int health_check_once(const char *host, uint16_t port, const char *path, uint32_t timeout_ms);

#endif
