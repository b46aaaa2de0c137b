/* proxy_admit.h — authentication, admission (governance) and the fair-queue gate of the
 * proxy's request path. */
#ifndef TOLLGATE_GATEWAY_PROXY_ADMIT_H
#define TOLLGATE_GATEWAY_PROXY_ADMIT_H

#include "core/httpd.h"
#include "core/json.h"
#include "gateway/govern.h"

struct preq;
struct proxy_worker;
struct wgate;

/* Answer a governance refusal: OpenAI error JSON, Retry-After and x-ratelimit-* headers. */
void proxy_gov_refuse(httpd_req_t *req, const gov_decision_t *d, const gov_service_cfg_t *svc);

/* Authenticate: with services configured, the bearer key names the service (401 when
 * missing or unknown). Returns the service index, -1 for anonymous (no services), or -2
 * when the request has been answered. */
int proxy_authenticate(struct proxy_worker *w, httpd_req_t *req);

/* Admit: count the prompt, apply the per-request limits, charge the service's rate limits
 * and budget (p->gt), and make max_tokens what the service allows. On success *d may now
 * point into p->resp (a rewritten body). 0 = go on; -1 = answered. */
int proxy_admit(struct preq *p, json_doc_t *d, int service, int is_chat);

/* The first attempt, after the shared (Redis) admission when there is one and through
 * the backend's fair queue when it has one. */
void proxy_first_attempt(struct preq *p);

/* A request holding a slot of the gate is done: the slot goes to the next waiting request
 * (fair order). */
void proxy_gate_leave(struct wgate *g);

#endif
