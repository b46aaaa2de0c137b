/* service.h — the example order service: endpoints, the call to the gateway's task, metrics. */
#ifndef TOLLGATE_ORDERS_SERVICE_H
#define TOLLGATE_ORDERS_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "core/httpd.h"
#include "orders/store.h"

#define ORDERS_DEFAULT_DEADLINE_MS 300
#define ORDERS_DEFAULT_TASK "normalize_order"

typedef struct orders_config {
    const char *gateway_host; /* NULL: no gateway, every order keeps its raw text ("disabled") */
    uint16_t gateway_port;
    const char *gateway_prefix; /* path before /v1/tasks/..., "" for none */
    const char *gateway_key;    /* sent as Authorization: Bearer KEY; NULL: no header */
    const char *task;           /* task name [normalize_order] */
    uint32_t deadline_ms;       /* whole normalization call, connect included */
} orders_config_t;

typedef struct orders orders_t;

/* The service over an open store (not owned: close it after orders_free). Strings in cfg
 * are copied. 0 or negative errno. */
int orders_new(const orders_config_t *cfg, store_t *store, orders_t **out);
/* Set cfg's handler and worker hooks (each worker gets its own client pool to the gateway).
 * Call before httpd_new. */
void orders_httpd_setup(orders_t *o, httpd_config_t *cfg);
/* After httpd_free. */
void orders_free(orders_t *o);

/* Split "http://HOST:PORT[/PREFIX]" (PORT defaults to 80; IPv6 as [::1]) into its parts.
 * prefix gets "" or "/PREFIX" without a trailing slash. 0 or -EINVAL. */
int orders_parse_url(const char *url, char *host, size_t hostcap, uint16_t *port, char *prefix,
                     size_t prefixcap);

#endif
