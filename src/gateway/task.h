/* task.h — the task endpoint, POST /v1/tasks/NAME {"input": "..."}: a named prompt sent
 * through the route's variants with a deadline, answered with the model's output or, on
 * deadline, upstream error, open circuit, rate limit or exhausted budget, with the task's
 * fallback (status 200, "fallback": true, the reason) within the deadline. */
#ifndef TOLLGATE_GATEWAY_TASK_H
#define TOLLGATE_GATEWAY_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/httpd.h"
#include "gateway/snapshot.h"

struct proxy_worker;
typedef struct task_worker task_worker_t;

#define TASK_MAX_RESPONSE (1u << 20) /* a larger upstream answer is an upstream error */

/* Serve one task request on a proxy worker's thread. name: the path after /v1/tasks/;
 * service: the authenticated service index, -1 when no services are configured. */
void task_handle(struct proxy_worker *pw, httpd_req_t *req, const char *name, int service);

/* Free a worker's task side (its idle requests). Call after the worker's connection pools
 * are freed (that cancels the requests in flight, which come back to the free list). */
void task_worker_free(task_worker_t *tw);

/* Choose a variant of a route (index in the config's routes) by its live weights: by the
 * caller's sticky key when the route has `sticky` and key is not NULL, else by rnd.
 * -1 when every weight is 0. Used by the task endpoint and the proxy alike. */
int task_pick_variant(snapshot_t *s, size_t route_idx, const char *key, size_t len, uint32_t rnd);

/* --- pure helpers, exposed for the unit tests --- */

/* The user message: tmpl with every "{input}" replaced by input. 0 or -ENOMEM. */
int task_render(const char *tmpl, const char *input, size_t len, buf_t *out);
/* Apply a TASK_POST_* rule in place to s[0..*len): trim, first line (then trim). */
void task_post(int rule, char *s, size_t *len);

#endif
