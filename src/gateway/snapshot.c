/* snapshot.c — build, look up and free one generation of routing state. */
#include "gateway/snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void snapshot_free(snapshot_t *s) {
    if (s->routes)
        for (size_t i = 0; i < s->cfg.nroutes; i++) free(s->routes[i].weights);
    free(s->routes);
    free(s->backends);
    gwconfig_free(&s->cfg);
    free(s);
}

int snapshot_new(gw_config_t *cfg, pool_registry_t *reg, uint64_t generation, snapshot_t **out) {
    snapshot_t *s = calloc(1, sizeof *s);
    if (!s) {
        gwconfig_free(cfg);
        return -ENOMEM;
    }
    s->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    atomic_init(&s->refs, 1);
    s->generation = generation;
    s->backends = calloc(s->cfg.nbackends ? s->cfg.nbackends : 1, sizeof *s->backends);
    s->routes = calloc(s->cfg.nroutes ? s->cfg.nroutes : 1, sizeof *s->routes);
    if (!s->backends || !s->routes)
        goto err;
    for (size_t i = 0; i < s->cfg.nbackends; i++) {
        const gw_backend_cfg_t *bc = &s->cfg.backends[i];
        snap_backend_t *b = &s->backends[i];
        b->cfg = bc;
        for (size_t j = 0; j < bc->naddrs && j < POOL_MAX_ADDRS; j++) {
            if (!(b->addrs[j] = pool_registry_get(reg, bc->addrs[j].host, bc->addrs[j].port)))
                goto err;
            b->naddrs = j + 1;
        }
    }
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const gw_route_cfg_t *rc = &s->cfg.routes[i];
        snap_route_t *r = &s->routes[i];
        r->cfg = rc;
        if (!(r->weights = calloc(rc->nvariants, sizeof *r->weights)))
            goto err;
        for (size_t j = 0; j < rc->nvariants; j++) atomic_init(&r->weights[j], rc->variants[j].weight);
        route_budget_init(&r->budget, rc->retry.budget_burst);
    }
    *out = s;
    return 0;
err:
    snapshot_free(s);
    return -ENOMEM;
}

void snapshot_unref(snapshot_t *s) {
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(s);
}

snap_route_t *snapshot_route(snapshot_t *s, const char *model, size_t len) {
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const char *m = s->cfg.routes[i].model;
        if (strlen(m) == len && !memcmp(m, model, len))
            return &s->routes[i];
    }
    return NULL;
}

int snapshot_variant(const snap_route_t *r, const char *name) {
    for (size_t i = 0; i < r->cfg->nvariants; i++)
        if (!strcmp(r->cfg->variants[i].name, name))
            return (int)i;
    return -1;
}
