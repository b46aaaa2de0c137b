/* degrade.c — sticky choice, circuit checks and fallback variants for the proxy. */
#include "gateway/degrade.h"

#include <string.h>

#include "gateway/task.h"
#include "gateway/taskcfg.h"

int degrade_pick(snapshot_t *s, snap_route_t *r, httpd_req_t *req, const json_doc_t *d,
                 uint32_t rnd) {
    size_t ri = (size_t)(r - s->routes);
    const taskcfg_t *t = s->cfg.deg;
    const char *key = NULL;
    size_t len = 0;
    if (t && ri < t->nroutes && t->routes[ri].sticky == TASK_STICKY_HEADER) {
        if ((key = httpd_req_header(req, t->routes[ri].sticky_name)))
            len = strlen(key);
    } else if (t && ri < t->nroutes && t->routes[ri].sticky == TASK_STICKY_FIELD && d) {
        int f = json_obj_get(d, 0, t->routes[ri].sticky_name);
        if (f >= 0 && d->toks[f].type == JSON_STRING) {
            key = d->src + d->toks[f].start; /* raw bytes: stable per caller, enough here */
            len = d->toks[f].end - d->toks[f].start;
        }
    }
    return task_pick_variant(s, ri, key, len, rnd);
}

int degrade_admit(gateway_t *gw, snapshot_t *s, const snap_backend_t *b, uint64_t now_ns,
                  circuit_t **c, int *probe) {
    const taskcfg_t *t = s->cfg.deg;
    *c = NULL;
    *probe = 0;
    if (b->cfg->max_conns && b->naddrs) {
        uint64_t cap = 2ull * b->cfg->max_conns * (uint64_t)gateway_threads(gw);
        size_t full = 0;
        for (size_t i = 0; i < b->naddrs; i++)
            full += atomic_load_explicit(&b->addrs[i]->outstanding, memory_order_relaxed) >= cap;
        if (full == b->naddrs)
            return DEGRADE_SHED;
    }
    if (!t || !t->circuit_enabled)
        return 0;
    circuit_t *k = circuit_get(gateway_circuits(gw), b->cfg->name);
    if (!k)
        return 0; /* no memory for a breaker: go on unprotected */
    int a = circuit_allow(k, &t->circuit, now_ns);
    if (a == CIRCUIT_REJECT)
        return DEGRADE_OPEN;
    *c = k;
    *probe = a == CIRCUIT_PROBE;
    return 0;
}

void degrade_report(snapshot_t *s, circuit_t *c, int probe, int ok, uint64_t now_ns) {
    if (c && s->cfg.deg)
        circuit_report(c, &s->cfg.deg->circuit, probe, ok, now_ns);
}

int degrade_fallback(const snapshot_t *s, const snap_route_t *r, const gw_variant_cfg_t *cur) {
    size_t ri = (size_t)(r - s->routes);
    const taskcfg_t *t = s->cfg.deg;
    if (!t || ri >= t->nroutes || t->routes[ri].fallback_variant < 0)
        return -1;
    int vi = t->routes[ri].fallback_variant;
    return &r->cfg->variants[vi] == cur ? -1 : vi;
}
