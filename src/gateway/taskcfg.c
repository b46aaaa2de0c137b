/* taskcfg.c — load and validate tasks, circuit breaker settings and route degradation keys. */
#include "gateway/taskcfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dup_opt(const cfg_node_t *map, const char *key, char **out, char *err, size_t errlen) {
    const char *s = NULL;
    int rc = cfg_str(map, key, NULL, &s, err, errlen);
    if (rc || !s)
        return rc;
    return (*out = strdup(s)) ? 0 : -ENOMEM;
}

static int u32(const cfg_node_t *m, const char *key, uint32_t def, uint32_t min, uint32_t max,
               uint32_t *out, char *err, size_t errlen) {
    int64_t v;
    int rc = cfg_int(m, key, def, min, max, &v, err, errlen);
    if (!rc)
        *out = (uint32_t)v;
    return rc;
}

static int find_route(const gw_config_t *c, const char *name) {
    for (size_t i = 0; i < c->nroutes; i++)
        if (!strcmp(c->routes[i].model, name))
            return (int)i;
    return -1;
}

static int find_variant(const gw_route_cfg_t *r, const char *name) {
    for (size_t i = 0; i < r->nvariants; i++)
        if (!strcmp(r->variants[i].name, name))
            return (int)i;
    return -1;
}

int taskcfg_canary(const cfg_node_t *n, canary_cfg_t *g, char *err, size_t errlen) {
    static const char *const keys[] = {"stable", "canary", "steps", "pause_ms", "window_ms",
                                       "min_requests", "max_p99_ms", "max_error_pct",
                                       "max_fallback_pct", NULL};
    int rc = cfg_check_keys(n, keys, err, errlen);
    if (rc || (rc = u32(n, "pause_ms", g->pause_ms, 0, 86400000, &g->pause_ms, err, errlen)) ||
        (rc = u32(n, "window_ms", g->window_ms, 100, 86400000, &g->window_ms, err, errlen)) ||
        (rc = u32(n, "min_requests", g->min_requests, 1, 1000000, &g->min_requests, err,
                  errlen)) ||
        (rc = u32(n, "max_p99_ms", g->max_p99_ms, 0, 3600000, &g->max_p99_ms, err, errlen)) ||
        (rc = cfg_double(n, "max_error_pct", g->max_error_pct, 0, 100, &g->max_error_pct, err,
                         errlen)) ||
        (rc = cfg_double(n, "max_fallback_pct", g->max_fallback_pct, 0, 100,
                         &g->max_fallback_pct, err, errlen)))
        return rc;
    const cfg_node_t *st = cfg_get(n, "steps");
    if (st && !st->is_null) {
        if (st->type != CFG_SEQ || st->n == 0 || st->n > CANARY_MAX_STEPS)
            return cfg_err(st, err, errlen, "expected a list of 1 to %d percentages ending at 100",
                           CANARY_MAX_STEPS);
        for (size_t i = 0; i < st->n; i++) {
            if ((rc = u32(st->items[i], NULL, 0, 1, 100, &g->steps[i], err, errlen)))
                return rc;
            if (i && g->steps[i] <= g->steps[i - 1])
                return cfg_err(st->items[i], err, errlen, "steps must increase");
        }
        g->nsteps = st->n;
        if (g->steps[g->nsteps - 1] != 100)
            return cfg_err(st, err, errlen, "the last step must be 100 (the promotion)");
    }
    return 0;
}

static int load_route(const cfg_node_t *rn, const gw_route_cfg_t *r, taskcfg_route_t *o,
                      char *err, size_t errlen) {
    o->fallback_variant = o->stable_variant = o->canary_variant = -1;
    canary_cfg_defaults(&o->canary);
    const char *fb = NULL;
    int rc = cfg_str(rn, "fallback", NULL, &fb, err, errlen);
    if (rc)
        return rc;
    if (fb && (o->fallback_variant = find_variant(r, fb)) < 0)
        return cfg_err(cfg_get(rn, "fallback"), err, errlen,
                       "no variant `%s` in this route; name one of its variants", fb);
    const cfg_node_t *sn = cfg_get(rn, "sticky");
    if (sn && !sn->is_null) {
        static const char *const sk[] = {"header", "field", NULL};
        if ((rc = cfg_check_keys(sn, sk, err, errlen)))
            return rc;
        if (sn->type != CFG_MAP || sn->n != 1)
            return cfg_err(sn, err, errlen, "expected {header: NAME} or {field: NAME}");
        o->sticky = cfg_get(sn, "header") ? TASK_STICKY_HEADER : TASK_STICKY_FIELD;
        if ((rc = dup_opt(sn, sn->items[0]->key, &o->sticky_name, err, errlen)))
            return rc;
        if (!o->sticky_name || !*o->sticky_name)
            return cfg_err(sn->items[0], err, errlen, "must not be empty");
    }
    const cfg_node_t *cn = cfg_get(rn, "canary");
    if (r->nvariants == 2) { /* the common case needs no naming: first stable, second canary */
        o->stable_variant = 0;
        o->canary_variant = 1;
    }
    if (!cn || cn->is_null)
        return 0;
    o->has_canary = 1;
    if ((rc = taskcfg_canary(cn, &o->canary, err, errlen)))
        return rc;
    const char *sv = NULL, *cv = NULL;
    if ((rc = cfg_str(cn, "stable", NULL, &sv, err, errlen)) ||
        (rc = cfg_str(cn, "canary", NULL, &cv, err, errlen)))
        return rc;
    if (sv && (o->stable_variant = find_variant(r, sv)) < 0)
        return cfg_err(cfg_get(cn, "stable"), err, errlen, "no variant `%s` in this route", sv);
    if (cv && (o->canary_variant = find_variant(r, cv)) < 0)
        return cfg_err(cfg_get(cn, "canary"), err, errlen, "no variant `%s` in this route", cv);
    if (o->stable_variant < 0 || o->canary_variant < 0 || o->stable_variant == o->canary_variant)
        return cfg_err(cn, err, errlen, "name two different variants as `stable` and `canary`");
    return 0;
}

static int load_task(const cfg_node_t *n, const gw_config_t *c, task_def_t *t, char *err,
                     size_t errlen) {
    static const char *const keys[] = {"route", "system", "template", "max_tokens",
                                       "temperature", "stop", "post", "deadline_ms",
                                       "fallback", "max_input_bytes", NULL};
    t->line = n->key_line;
    if (!(t->name = strdup(n->key)))
        return -ENOMEM;
    int rc = cfg_check_keys(n, keys, err, errlen);
    if (rc || (rc = cfg_require(n, "route", err, errlen)) ||
        (rc = dup_opt(n, "route", &t->route, err, errlen)) ||
        (rc = dup_opt(n, "system", &t->system, err, errlen)) ||
        (rc = dup_opt(n, "template", &t->tmpl, err, errlen)) ||
        (rc = u32(n, "max_tokens", TASK_DEF_MAX_TOKENS, 1, 1000000, &t->max_tokens, err,
                  errlen)) ||
        (rc = cfg_double(n, "temperature", -1, -1, 2, &t->temperature, err, errlen)) ||
        (rc = u32(n, "deadline_ms", TASK_DEF_DEADLINE_MS, 1, 600000, &t->deadline_ms, err,
                  errlen)) ||
        (rc = u32(n, "max_input_bytes", TASK_DEF_MAX_INPUT, 1, 1u << 20, &t->max_input, err,
                  errlen)))
        return rc;
    int ri = find_route(c, t->route);
    if (ri < 0)
        return cfg_err(cfg_get(n, "route"), err, errlen,
                       "no route `%s`; name a model under `routes`", t->route);
    t->route_idx = (size_t)ri;
    if (!t->tmpl && !(t->tmpl = strdup("{input}")))
        return -ENOMEM;
    if (!strstr(t->tmpl, "{input}"))
        return cfg_err(cfg_get(n, "template"), err, errlen, "must contain {input}");
    const char *post = NULL;
    if ((rc = cfg_str(n, "post", "trim", &post, err, errlen)))
        return rc;
    if (!strcmp(post, "trim"))
        t->post = TASK_POST_TRIM;
    else if (!strcmp(post, "first_line"))
        t->post = TASK_POST_FIRST_LINE;
    else if (!strcmp(post, "none"))
        t->post = TASK_POST_NONE;
    else
        return cfg_err(cfg_get(n, "post"), err, errlen, "expected trim, first_line or none");
    const cfg_node_t *st = cfg_get(n, "stop");
    if (st && !st->is_null) {
        if (st->type == CFG_SCALAR) {
            if (!(t->stop[0] = strdup(st->value)))
                return -ENOMEM;
            t->nstop = 1;
        } else if (st->type != CFG_SEQ || st->n > TASK_MAX_STOP) {
            return cfg_err(st, err, errlen, "expected a string or a list of up to %d strings",
                           TASK_MAX_STOP);
        } else {
            for (size_t i = 0; i < st->n; i++) {
                if (st->items[i]->type != CFG_SCALAR)
                    return cfg_err(st->items[i], err, errlen, "expected a string");
                if (!(t->stop[i] = strdup(st->items[i]->value)))
                    return -ENOMEM;
                t->nstop = i + 1;
            }
        }
    }
    /* fallback: input (the raw input, the default) or {text: "..."} (a fixed answer). */
    const cfg_node_t *fb = cfg_get(n, "fallback");
    if (fb && !fb->is_null) {
        if (fb->type == CFG_SCALAR && !strcmp(fb->value, "input"))
            return 0;
        static const char *const fk[] = {"text", NULL};
        if (fb->type != CFG_MAP || (rc = cfg_check_keys(fb, fk, err, errlen)) ||
            !cfg_get(fb, "text"))
            return rc ? rc : cfg_err(fb, err, errlen, "expected `input` or {text: \"...\"}");
        if ((rc = dup_opt(fb, "text", &t->fallback_text, err, errlen)))
            return rc;
    }
    return 0;
}

int taskcfg_load(const cfg_node_t *root, const gw_config_t *c, taskcfg_t **out, char *err,
                 size_t errlen) {
    taskcfg_t *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t)
        return -ENOMEM;
    int rc = 0;
    circuit_cfg_defaults(&t->circuit);
    t->circuit_enabled = 1;
    const cfg_node_t *cb = cfg_get(root, "circuit_breaker");
    if (cb && !cb->is_null) {
        static const char *const keys[] = {"enabled", "consecutive_failures", "failure_ratio",
                                           "min_requests", "window_ms", "cooldown_ms",
                                           "probes", NULL};
        circuit_cfg_t *g = &t->circuit;
        if ((rc = cfg_check_keys(cb, keys, err, errlen)) ||
            (rc = cfg_bool(cb, "enabled", 1, &t->circuit_enabled, err, errlen)) ||
            (rc = u32(cb, "consecutive_failures", g->failures, 0, 1000000, &g->failures, err,
                      errlen)) ||
            (rc = u32(cb, "failure_ratio", g->ratio_pct, 0, 100, &g->ratio_pct, err, errlen)) ||
            (rc = u32(cb, "min_requests", g->min_requests, 1, 1000000, &g->min_requests, err,
                      errlen)) ||
            (rc = u32(cb, "window_ms", g->window_ms, 100, 86400000, &g->window_ms, err,
                      errlen)) ||
            (rc = u32(cb, "cooldown_ms", g->cooldown_ms, 1, 86400000, &g->cooldown_ms, err,
                      errlen)) ||
            (rc = u32(cb, "probes", g->probes, 1, 1000, &g->probes, err, errlen)))
            goto fail;
    }
    const cfg_node_t *rs = cfg_get(root, "routes");
    if (c->nroutes && !(t->routes = calloc(c->nroutes, sizeof *t->routes))) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < c->nroutes; i++) {
        t->nroutes = i + 1;
        if ((rc = load_route(rs->items[i], &c->routes[i], &t->routes[i], err, errlen)))
            goto fail;
    }
    const cfg_node_t *ts = cfg_get(root, "tasks");
    if (ts && !ts->is_null) {
        if (ts->type != CFG_MAP) {
            rc = cfg_err(ts, err, errlen, "expected a mapping of task name: settings");
            goto fail;
        }
        if (ts->n && !(t->tasks = calloc(ts->n, sizeof *t->tasks))) {
            rc = -ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < ts->n; i++) {
            t->ntasks = i + 1;
            if ((rc = load_task(ts->items[i], c, &t->tasks[i], err, errlen)))
                goto fail;
        }
    }
    *out = t;
    return 0;
fail:
    taskcfg_free(t);
    return rc;
}

void taskcfg_free(taskcfg_t *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->ntasks; i++) {
        task_def_t *d = &t->tasks[i];
        free(d->name);
        free(d->route);
        free(d->system);
        free(d->tmpl);
        for (size_t j = 0; j < d->nstop; j++) free(d->stop[j]);
        free(d->fallback_text);
    }
    free(t->tasks);
    for (size_t i = 0; i < t->nroutes; i++) free(t->routes[i].sticky_name);
    free(t->routes);
    free(t);
}

const task_def_t *taskcfg_task(const taskcfg_t *t, const char *name, size_t len) {
    for (size_t i = 0; t && i < t->ntasks; i++)
        if (strlen(t->tasks[i].name) == len && !memcmp(t->tasks[i].name, name, len))
            return &t->tasks[i];
    return NULL;
}
