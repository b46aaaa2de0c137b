/* obscfg.h — the observability part of the gateway config: request log (path, retention,
 * sampling, redaction) and access log. Immutable once loaded; owned by its gw_config_t. */
#ifndef TOLLGATE_GATEWAY_OBSCFG_H
#define TOLLGATE_GATEWAY_OBSCFG_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "gateway/keys.h"
#include "gateway/redact.h"
#include "gateway/reqlog.h"

typedef struct obs_cfg {
    /* request_log: the database settings are start-up settings; the rates apply per
     * generation (a reload changes them). */
    char *log_path;              /* NULL: no request log */
    int64_t retention_ms;
    uint32_t queue_size;
    uint32_t max_text;
    double sample_rate;          /* default for every service */
    reqlog_rate_t *rates;        /* per service (strings owned) */
    size_t nrates;
    int redact_builtin;          /* REDACT_* bits; all three by default */
    redact_pattern_t *patterns;  /* extra patterns (strings owned) */
    size_t npatterns;
    char *access_log;            /* NULL: off; "-"/"stdout", "stderr" or a path */
    /* metrics: who may scrape the main listener's /metrics (applies per generation). */
    keys_table_t metrics_keys;   /* hashes of scrape keys (`metrics.keys`); empty: none */
    int metrics_public;          /* `metrics.public: true`: no key needed */
} obs_cfg_t;

/* Read `request_log`, `access_log` and `metrics` from the config root into a new *out (always set on
 * success, with defaults when both are absent). Patterns are compiled once here so that a
 * bad one is a config error with its line. 0, -EINVAL with "FILE:LINE: field: ..." in err,
 * or -ENOMEM. */
int obscfg_load(const cfg_node_t *root, obs_cfg_t **out, char *err, size_t errlen);
void obscfg_free(obs_cfg_t *c);

/* 1 when the start-up settings (request log file, retention, queue, text size, redaction,
 * access log destination) of b differ from a's: a reload cannot apply them. */
int obscfg_files_differ(const obs_cfg_t *a, const obs_cfg_t *b);

/* The sample rate of a service in this generation (NULL service: the default). */
double obscfg_rate(const obs_cfg_t *c, const char *service);

#endif
