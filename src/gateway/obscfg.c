/* obscfg.c — load and validate the request_log, access_log and metrics settings. */
#include "gateway/obscfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dup_str(const char *s, char **out) {
    return (*out = strdup(s)) ? 0 : -ENOMEM;
}

static int load_redact(const cfg_node_t *n, obs_cfg_t *c, char *err, size_t errlen) {
    static const char *const keys[] = {"email", "phone", "card", "patterns", NULL};
    int rc = cfg_check_keys(n, keys, err, errlen), e, p, k;
    if (rc || (rc = cfg_bool(n, "email", 1, &e, err, errlen)) ||
        (rc = cfg_bool(n, "phone", 1, &p, err, errlen)) ||
        (rc = cfg_bool(n, "card", 1, &k, err, errlen)))
        return rc;
    c->redact_builtin = (e ? REDACT_EMAIL : 0) | (p ? REDACT_PHONE : 0) | (k ? REDACT_CARD : 0);
    const cfg_node_t *ps = cfg_get(n, "patterns");
    if (!ps || ps->is_null)
        return 0;
    if (ps->type != CFG_SEQ)
        return cfg_err(ps, err, errlen, "expected a list of regular expressions");
    if (ps->n > REDACT_MAX_PATTERNS)
        return cfg_err(ps, err, errlen, "at most %d patterns", REDACT_MAX_PATTERNS);
    if (ps->n && !(c->patterns = calloc(ps->n, sizeof *c->patterns)))
        return -ENOMEM;
    for (size_t i = 0; i < ps->n; i++) {
        const cfg_node_t *it = ps->items[i];
        const char *re = NULL, *rep = NULL;
        c->npatterns = i + 1;
        if (it->type == CFG_SCALAR) {
            re = it->value;
        } else {
            static const char *const pk[] = {"regex", "replace", NULL};
            if ((rc = cfg_check_keys(it, pk, err, errlen)) ||
                (rc = cfg_require(it, "regex", err, errlen)) ||
                (rc = cfg_str(it, "regex", NULL, &re, err, errlen)) ||
                (rc = cfg_str(it, "replace", NULL, &rep, err, errlen)))
                return rc;
        }
        if ((rc = dup_str(re, (char **)&c->patterns[i].regex)) ||
            (rep && (rc = dup_str(rep, (char **)&c->patterns[i].replace))))
            return rc;
    }
    /* Compile now: a bad pattern is an error at load, with its line. */
    redact_t *r;
    char m[256];
    rc = redact_new(&(redact_opts_t){.patterns = c->patterns, .npatterns = c->npatterns}, &r,
                    m, sizeof m);
    if (rc == -EINVAL)
        return cfg_err(ps, err, errlen, "%s", m);
    redact_free(r);
    return rc;
}

static int load_log(const cfg_node_t *n, obs_cfg_t *c, char *err, size_t errlen) {
    static const char *const keys[] = {"path", "retention", "sample_rate", "services",
                                       "queue_size", "max_text_bytes", "redact", NULL};
    const char *path = NULL;
    int64_t q, mt;
    int rc = cfg_check_keys(n, keys, err, errlen);
    if (rc || (rc = cfg_require(n, "path", err, errlen)) ||
        (rc = cfg_str(n, "path", NULL, &path, err, errlen)) ||
        (rc = cfg_duration_ms(n, "retention", REQLOG_DEF_RETENTION, 0, 3650LL * 86400 * 1000,
                              &c->retention_ms, err, errlen)) ||
        (rc = cfg_double(n, "sample_rate", 1.0, 0.0, 1.0, &c->sample_rate, err, errlen)) ||
        (rc = cfg_int(n, "queue_size", REQLOG_DEF_QUEUE, 1, 1 << 20, &q, err, errlen)) ||
        (rc = cfg_int(n, "max_text_bytes", REQLOG_DEF_MAX_TEXT, 64, 1 << 24, &mt, err, errlen)) ||
        (rc = dup_str(path, &c->log_path)))
        return rc;
    c->queue_size = (uint32_t)q;
    c->max_text = (uint32_t)mt;
    const cfg_node_t *ss = cfg_get(n, "services");
    if (ss && !ss->is_null) {
        if (ss->type != CFG_MAP)
            return cfg_err(ss, err, errlen, "expected a mapping of service name: sample rate");
        if (ss->n && !(c->rates = calloc(ss->n, sizeof *c->rates)))
            return -ENOMEM;
        for (size_t i = 0; i < ss->n; i++) {
            c->nrates = i + 1;
            if ((rc = cfg_double(ss->items[i], NULL, 1.0, 0.0, 1.0, &c->rates[i].rate, err,
                                 errlen)) ||
                (rc = dup_str(ss->items[i]->key, (char **)&c->rates[i].service)))
                return rc;
        }
    }
    const cfg_node_t *rd = cfg_get(n, "redact");
    if (rd && !rd->is_null)
        return load_redact(rd, c, err, errlen);
    return 0;
}

/* metrics: {keys: [sha256:...], public: false} — the scrape keys of /metrics. */
static int load_metrics(const cfg_node_t *n, obs_cfg_t *c, char *err, size_t errlen) {
    static const char *const keys[] = {"keys", "public", NULL};
    if (n->type != CFG_MAP)
        return cfg_err(n, err, errlen, "expected a mapping (keys, public)");
    int rc = cfg_check_keys(n, keys, err, errlen);
    if (rc || (rc = cfg_bool(n, "public", 0, &c->metrics_public, err, errlen)))
        return rc;
    const cfg_node_t *ks = cfg_get(n, "keys");
    if (!ks || ks->is_null)
        return 0;
    return keys_table_add_list(&c->metrics_keys, ks, 0, "", err, errlen);
}

int obscfg_load(const cfg_node_t *root, obs_cfg_t **out, char *err, size_t errlen) {
    *out = NULL;
    obs_cfg_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->redact_builtin = REDACT_ALL;
    c->sample_rate = 1.0;
    keys_table_init(&c->metrics_keys);
    int rc = 0;
    const cfg_node_t *rl = cfg_get(root, "request_log"), *al = cfg_get(root, "access_log");
    if (rl && !rl->is_null) {
        if (rl->type != CFG_MAP)
            rc = cfg_err(rl, err, errlen, "expected a mapping (path, retention, sample_rate, ...)");
        else
            rc = load_log(rl, c, err, errlen);
    }
    const char *dest = NULL;
    if (rc == 0 && al && !al->is_null && (rc = cfg_str(root, "access_log", NULL, &dest, err,
                                                        errlen)) == 0)
        rc = dup_str(dest, &c->access_log);
    const cfg_node_t *mn = cfg_get(root, "metrics");
    if (rc == 0 && mn && !mn->is_null)
        rc = load_metrics(mn, c, err, errlen);
    if (rc) {
        obscfg_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void obscfg_free(obs_cfg_t *c) {
    if (!c)
        return;
    free(c->log_path);
    for (size_t i = 0; i < c->nrates; i++) free((char *)c->rates[i].service);
    free(c->rates);
    for (size_t i = 0; i < c->npatterns; i++) {
        free((char *)c->patterns[i].regex);
        free((char *)c->patterns[i].replace);
    }
    free(c->patterns);
    free(c->access_log);
    keys_table_free(&c->metrics_keys);
    free(c);
}

double obscfg_rate(const obs_cfg_t *c, const char *service) {
    if (!c)
        return 0;
    if (service)
        for (size_t i = 0; i < c->nrates; i++)
            if (!strcmp(c->rates[i].service, service))
                return c->rates[i].rate;
    return c->sample_rate;
}

static int str_differ(const char *a, const char *b) {
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b));
}

int obscfg_files_differ(const obs_cfg_t *a, const obs_cfg_t *b) {
    if (!a || !b)
        return a != b;
    if (str_differ(a->log_path, b->log_path) || str_differ(a->access_log, b->access_log) ||
        a->retention_ms != b->retention_ms || a->queue_size != b->queue_size ||
        a->max_text != b->max_text || a->redact_builtin != b->redact_builtin ||
        a->npatterns != b->npatterns)
        return 1;
    for (size_t i = 0; i < a->npatterns; i++)
        if (str_differ(a->patterns[i].regex, b->patterns[i].regex) ||
            str_differ(a->patterns[i].replace, b->patterns[i].replace))
            return 1;
    return 0;
}
