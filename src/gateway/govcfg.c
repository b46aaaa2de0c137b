/* govcfg.c — load and validate services, keys, limits, budgets, tokenizers and redis. */
#include "gateway/govcfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gwconfig.h"

static int u64(const cfg_node_t *m, const char *k, uint64_t max, uint64_t *v, char *err,
               size_t errlen) {
    int64_t x;
    int rc = cfg_int(m, k, (int64_t)*v, 0, (int64_t)max, &x, err, errlen);
    if (rc == 0) *v = (uint64_t)x;
    return rc;
}

static int route_exists(const cfg_node_t *routes, const char *m) {
    return routes && routes->type == CFG_MAP && cfg_get(routes, m) != NULL;
}

/* requests/tokens per minute, bursts, concurrency: the rate-limit keys of a limits map. */
static int load_rl(const cfg_node_t *n, rl_limits_t *rl, char *err, size_t errlen) {
    uint64_t conc = 0;
    const uint64_t big = RL_MAX_BURST;
    int rc;
    if ((rc = u64(n, "requests_per_minute", big, &rl->rpm, err, errlen)) ||
        (rc = u64(n, "requests_burst", big, &rl->rpm_burst, err, errlen)) ||
        (rc = u64(n, "tokens_per_minute", big, &rl->tpm, err, errlen)) ||
        (rc = u64(n, "tokens_burst", big, &rl->tpm_burst, err, errlen)) ||
        (rc = u64(n, "concurrent_requests", 1000000, &conc, err, errlen)))
        return rc;
    rl->concurrency = (uint32_t)conc;
    if (rl->rpm_burst && !rl->rpm)
        return cfg_err(cfg_get(n, "requests_burst"), err, errlen,
                       "a burst needs requests_per_minute too");
    if (rl->tpm_burst && !rl->tpm)
        return cfg_err(cfg_get(n, "tokens_burst"), err, errlen,
                       "a burst needs tokens_per_minute too");
    return 0;
}

static int load_model_limits(const cfg_node_t *n, const cfg_node_t *routes, gov_service_cfg_t *s,
                             char *err, size_t errlen) {
    static const char *const keys[] = {"requests_per_minute", "requests_burst", "tokens_per_minute",
                                       "tokens_burst", "concurrent_requests", NULL};
    if (n->type != CFG_MAP)
        return cfg_err(n, err, errlen, "expected a mapping of model: {requests_per_minute, ...}");
    if (!(s->mlimits = calloc(n->n ? n->n : 1, sizeof *s->mlimits))) return -ENOMEM;
    for (size_t i = 0; i < n->n; i++) {
        const cfg_node_t *m = n->items[i];
        gov_model_limit_t *ml = &s->mlimits[i];
        if (!(ml->model = strdup(m->key))) return -ENOMEM;
        s->nmlimits = i + 1;
        if (!route_exists(routes, m->key))
            return cfg_err(m, err, errlen, "no route serves model \"%s\"", m->key);
        int rc = cfg_check_keys(m, keys, err, errlen);
        if (rc || (rc = load_rl(m, &ml->rl, err, errlen))) return rc;
    }
    return 0;
}

static int load_limits(const cfg_node_t *n, gov_service_cfg_t *s, char *err, size_t errlen) {
    static const char *const keys[] = {"requests_per_minute", "requests_burst",
                                       "tokens_per_minute",   "tokens_burst",
                                       "concurrent_requests", "daily_tokens",
                                       "max_prompt_tokens",   "max_completion_tokens",
                                       "over_max_completion", NULL};
    int rc = cfg_check_keys(n, keys, err, errlen);
    uint64_t conc = 0;
    const uint64_t big = RL_MAX_BURST;
    if (rc || (rc = u64(n, "requests_per_minute", big, &s->rl.rpm, err, errlen)) ||
        (rc = u64(n, "requests_burst", big, &s->rl.rpm_burst, err, errlen)) ||
        (rc = u64(n, "tokens_per_minute", big, &s->rl.tpm, err, errlen)) ||
        (rc = u64(n, "tokens_burst", big, &s->rl.tpm_burst, err, errlen)) ||
        (rc = u64(n, "concurrent_requests", 1000000, &conc, err, errlen)) ||
        (rc = u64(n, "daily_tokens", (uint64_t)1 << 50, &s->daily_tokens, err, errlen)) ||
        (rc = u64(n, "max_prompt_tokens", 100000000, &s->max_prompt_tokens, err, errlen)) ||
        (rc = u64(n, "max_completion_tokens", 100000000, &s->max_completion, err, errlen)))
        return rc;
    s->rl.concurrency = (uint32_t)conc;
    const char *pol = NULL;
    if ((rc = cfg_str(n, "over_max_completion", "clamp", &pol, err, errlen))) return rc;
    if (!strcmp(pol, "clamp"))
        s->over_completion = GOV_CLAMP;
    else if (!strcmp(pol, "reject"))
        s->over_completion = GOV_REJECT;
    else
        return cfg_err(cfg_get(n, "over_max_completion"), err, errlen,
                       "expected clamp or reject, got \"%s\"", pol);
    if (s->rl.rpm_burst && !s->rl.rpm)
        return cfg_err(cfg_get(n, "requests_burst"), err, errlen,
                       "a burst needs requests_per_minute too");
    if (s->rl.tpm_burst && !s->rl.tpm)
        return cfg_err(cfg_get(n, "tokens_burst"), err, errlen,
                       "a burst needs tokens_per_minute too");
    return 0;
}


static int load_service(const cfg_node_t *n, const cfg_node_t *routes, gov_cfg_t *g, size_t idx,
                        char *err, size_t errlen) {
    static const char *const keys[] = {"keys", "models", "limits", "model_limits", "weight", NULL};
    gov_service_cfg_t *s = &g->services[idx];
    s->line = n->key_line;
    s->weight = GOV_DEF_WEIGHT;
    if (!(s->name = strdup(n->key))) return -ENOMEM;
    int rc = cfg_check_keys(n, keys, err, errlen);
    if (rc || (rc = cfg_require(n, "keys", err, errlen))) return rc;
    const cfg_node_t *ks = cfg_get(n, "keys");
    if (ks->type == CFG_SEQ && ks->n == 0)
        return cfg_err(ks, err, errlen, "expected a list of key hashes (sha256:...; see tollgate keygen)");
    if ((rc = keys_table_add_list(&g->keys, ks, (int)idx, " (each key belongs to one service)", err,
                                  errlen)))
        return rc;
    const cfg_node_t *ms = cfg_get(n, "models");
    if (ms && !ms->is_null) {
        if (ms->type != CFG_SEQ)
            return cfg_err(ms, err, errlen, "expected a list of route model names");
        if (!(s->models = calloc(ms->n ? ms->n : 1, sizeof *s->models))) return -ENOMEM;
        for (size_t i = 0; i < ms->n; i++) {
            const cfg_node_t *m = cfg_at(ms, i);
            if (m->type != CFG_SCALAR || !*m->value)
                return cfg_err(m, err, errlen, "expected a model name");
            if (!route_exists(routes, m->value))
                return cfg_err(m, err, errlen, "no route serves model \"%s\"", m->value);
            if (!(s->models[i] = strdup(m->value))) return -ENOMEM;
            s->nmodels = i + 1;
        }
    }
    int64_t w;
    if ((rc = cfg_int(n, "weight", GOV_DEF_WEIGHT, 1, 1000, &w, err, errlen))) return rc;
    s->weight = (uint32_t)w;
    const cfg_node_t *l = cfg_get(n, "limits");
    if (l && !l->is_null && (rc = load_limits(l, s, err, errlen))) return rc;
    const cfg_node_t *ml = cfg_get(n, "model_limits");
    if (ml && !ml->is_null && (rc = load_model_limits(ml, routes, s, err, errlen))) return rc;
    return 0;
}

static int load_redis(const cfg_node_t *n, gov_cfg_t *g, char *err, size_t errlen) {
    static const char *const keys[] = {"address", "key_prefix", "timeout_ms", NULL};
    int rc = cfg_check_keys(n, keys, err, errlen);
    if (rc || (rc = cfg_require(n, "address", err, errlen))) return rc;
    const char *a = NULL, *pre = NULL;
    int64_t t;
    if ((rc = cfg_str(n, "address", NULL, &a, err, errlen)) ||
        (rc = cfg_str(n, "key_prefix", "tollgate", &pre, err, errlen)) ||
        (rc = cfg_int(n, "timeout_ms", GOV_DEF_REDIS_TIMEOUT, 1, 60000, &t, err, errlen)))
        return rc;
    if (gwconfig_parse_hostport(a, &g->redis_host, &g->redis_port))
        return cfg_err(cfg_get(n, "address"), err, errlen, "expected host:port, got \"%s\"", a);
    if (!*pre || strpbrk(pre, " {}"))
        return cfg_err(cfg_get(n, "key_prefix"), err, errlen,
                       "expected a non-empty prefix without spaces or braces");
    g->redis_timeout_ms = (uint32_t)t;
    return (g->redis_prefix = strdup(pre)) ? 0 : -ENOMEM;
}

static int load_tokenizers(const cfg_node_t *routes, const char *config_path, gov_cfg_t *g,
                           char *err, size_t errlen) {
    if (!routes || routes->type != CFG_MAP) return 0;
    if (!(g->toks = calloc(routes->n ? routes->n : 1, sizeof *g->toks))) return -ENOMEM;
    for (size_t i = 0; i < routes->n; i++) {
        const cfg_node_t *r = routes->items[i];
        const char *path = NULL, *tmpl = NULL;
        int rc;
        if ((rc = cfg_str(r, "tokenizer", NULL, &path, err, errlen)) ||
            (rc = cfg_str(r, "chat_template", NULL, &tmpl, err, errlen)))
            return rc;
        if (tmpl && !path)
            return cfg_err(cfg_get(r, "chat_template"), err, errlen, "needs a tokenizer too");
        if (!path) continue;
        char full[4096];
        const char *slash = strrchr(config_path, '/');
        if (path[0] != '/' && slash)
            snprintf(full, sizeof full, "%.*s/%s", (int)(slash - config_path), config_path, path);
        else
            snprintf(full, sizeof full, "%s", path);
        gov_route_tok_t *t = &g->toks[g->ntoks];
        char e[512];
        if (!(t->model = strdup(r->key))) return -ENOMEM;
        g->ntoks++;
        if ((rc = tokcount_load(full, tmpl, &t->tc, e, sizeof e)))
            return cfg_err(cfg_get(r, "tokenizer"), err, errlen, "%s", e);
    }
    return 0;
}

static int load_queues(const cfg_node_t *n, const cfg_node_t *backends, gov_cfg_t *g, char *err,
                       size_t errlen) {
    static const char *const keys[] = {"max_in_flight", "max_waiting", "timeout_ms", NULL};
    if (n->type != CFG_MAP)
        return cfg_err(
            n, err, errlen,
            "expected a mapping of backend name: {max_in_flight, max_waiting, timeout_ms}");
    if (!(g->queues = calloc(n->n ? n->n : 1, sizeof *g->queues))) return -ENOMEM;
    for (size_t i = 0; i < n->n; i++) {
        const cfg_node_t *q = n->items[i];
        gov_queue_cfg_t *qc = &g->queues[i];
        if (!(qc->backend = strdup(q->key))) return -ENOMEM;
        g->nqueues = i + 1;
        if (!backends || backends->type != CFG_MAP || !cfg_get(backends, q->key))
            return cfg_err(q, err, errlen, "no backend named \"%s\"", q->key);
        int64_t mf, mw, to;
        int rc = cfg_check_keys(q, keys, err, errlen);
        if (rc || (rc = cfg_require(q, "max_in_flight", err, errlen)) ||
            (rc = cfg_int(q, "max_in_flight", 0, 1, 100000, &mf, err, errlen)) ||
            (rc = cfg_int(q, "max_waiting", GOV_DEF_QUEUE_WAITING, 0, 1000000, &mw, err, errlen)) ||
            (rc = cfg_int(q, "timeout_ms", GOV_DEF_QUEUE_TIMEOUT, 1, 600000, &to, err, errlen)))
            return rc;
        qc->max_in_flight = (uint32_t)mf;
        qc->max_waiting = (uint32_t)mw;
        qc->timeout_ms = (uint32_t)to;
    }
    return 0;
}

int govcfg_load(const cfg_node_t *root, const char *config_path, gov_cfg_t **out, char *err,
                size_t errlen) {
    *out = NULL;
    const cfg_node_t *ss = cfg_get(root, "services"), *rd = cfg_get(root, "redis"),
                     *routes = cfg_get(root, "routes");
    gov_cfg_t *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    keys_table_init(&g->keys);
    int rc = 0;
    if (ss && !ss->is_null) {
        if (ss->type != CFG_MAP) {
            rc = cfg_err(ss, err, errlen, "expected a mapping of service name: settings");
            goto done;
        }
        if (!(g->services = calloc(ss->n ? ss->n : 1, sizeof *g->services))) {
            rc = -ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < ss->n; i++) {
            g->nservices = i + 1;
            if ((rc = load_service(ss->items[i], routes, g, i, err, errlen))) goto done;
        }
    }
    if (rd && !rd->is_null && (rc = load_redis(rd, g, err, errlen))) goto done;
    const cfg_node_t *fq = cfg_get(root, "fair_queue");
    if (fq && !fq->is_null && (rc = load_queues(fq, cfg_get(root, "backends"), g, err, errlen)))
        goto done;
    rc = load_tokenizers(routes, config_path, g, err, errlen);
done:
    if (rc == -ENOMEM) snprintf(err, errlen, "%s: out of memory", config_path);
    if (rc || (!g->nservices && !g->ntoks && !g->redis_host && !g->nqueues)) {
        govcfg_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void govcfg_free(gov_cfg_t *g) {
    if (!g) return;
    for (size_t i = 0; i < g->nservices; i++) {
        gov_service_cfg_t *s = &g->services[i];
        free(s->name);
        for (size_t j = 0; j < s->nmodels; j++) free(s->models[j]);
        for (size_t j = 0; j < s->nmlimits; j++) free(s->mlimits[j].model);
        free(s->mlimits);
        free(s->models);
    }
    free(g->services);
    keys_table_free(&g->keys);
    for (size_t i = 0; i < g->ntoks; i++) {
        free(g->toks[i].model);
        tokcount_free(g->toks[i].tc);
    }
    free(g->toks);
    free(g->redis_host);
    free(g->redis_prefix);
    for (size_t i = 0; i < g->nqueues; i++) free(g->queues[i].backend);
    free(g->queues);
    free(g);
}

int govcfg_model_allowed(const gov_service_cfg_t *s, const char *model) {
    if (!s->models) return 1;
    for (size_t i = 0; i < s->nmodels; i++)
        if (!strcmp(s->models[i], model)) return 1;
    return 0;
}

const tokcount_t *govcfg_tokenizer(const gov_cfg_t *g, const char *model) {
    for (size_t i = 0; g && i < g->ntoks; i++)
        if (!strcmp(g->toks[i].model, model)) return g->toks[i].tc;
    return NULL;
}

const gov_queue_cfg_t *govcfg_queue(const gov_cfg_t *g, const char *backend) {
    for (size_t i = 0; g && i < g->nqueues; i++)
        if (!strcmp(g->queues[i].backend, backend)) return &g->queues[i];
    return NULL;
}
