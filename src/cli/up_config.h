/* up_config.h — the gateway config `tollgate up` runs, derived from a template config. */
#ifndef TOLLGATE_CLI_UP_CONFIG_H
#define TOLLGATE_CLI_UP_CONFIG_H

#include <stddef.h>

/* The addresses the template (examples/tollgate.yaml) routes to; up moves them. */
#define UP_TEMPLATE_SIM_STABLE "127.0.0.1:9001"
#define UP_TEMPLATE_SIM_CANARY "127.0.0.1:9002"
#define UP_TEMPLATE_ENGINE "127.0.0.1:9003"

typedef struct up_config_opts {
    const char *sim_stable;     /* "host:port" replacing 127.0.0.1:9001 */
    const char *sim_canary;     /* "host:port" replacing 127.0.0.1:9002 */
    const char *engine;         /* "host:port" replacing 127.0.0.1:9003 (maybe an upstream) */
    const char *upstream_model; /* NULL keeps the route's name; else set as upstream_model
                                 * on every variant whose backend holds the engine address */
    const char *engine_health;  /* NULL keeps the engine backend's health-check path; else
                                 * replaces its "/health" (an upstream without /health) */
    int instruct;               /* 1: enable the commented-out `# system:` prompt of the
                                 * template's tasks (a general instruction model needs it) */
} up_config_opts_t;

/* Read the YAML config at template_path, apply opts line by line, write the result to
 * out_path. The edits are textual, for configs shaped like examples/tollgate.yaml; one
 * that is not (no engine address, no system prompt when instruct is asked) is refused.
 * Returns 0, or -1 with a message for the user in err. */
int up_config_write(const char *template_path, const char *out_path, const up_config_opts_t *opts,
                    char *err, size_t errcap);

#endif
