/* taskcfg.h — configuration of graceful degradation: tasks (named prompts with a deadline
 * and a fallback), the circuit breaker settings, and per route the fallback variant, sticky
 * assignment and canary settings. Immutable once loaded. */
#ifndef TOLLGATE_GATEWAY_TASKCFG_H
#define TOLLGATE_GATEWAY_TASKCFG_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "gateway/canary.h"
#include "gateway/circuit.h"
#include "gateway/gwconfig.h"

#define TASK_MAX_STOP        4     /* stop strings per task (OpenAI allows 4) */
#define TASK_DEF_DEADLINE_MS 500
#define TASK_DEF_MAX_TOKENS  64
#define TASK_DEF_MAX_INPUT   4096  /* bytes of input a task accepts */

enum { TASK_POST_NONE = 0, TASK_POST_TRIM, TASK_POST_FIRST_LINE };
enum { TASK_STICKY_NONE = 0, TASK_STICKY_HEADER, TASK_STICKY_FIELD };

typedef struct task_def {
    char *name;
    char *route;            /* route (model) the task's requests go to */
    size_t route_idx;       /* index in the config's routes */
    char *system;           /* system prompt; NULL: none */
    char *tmpl;             /* user message; "{input}" is replaced by the caller's input */
    uint32_t max_tokens;
    double temperature;     /* < 0: not sent */
    char *stop[TASK_MAX_STOP];
    size_t nstop;
    int post;               /* TASK_POST_* applied to the model's output */
    uint32_t deadline_ms;   /* end to end, from the request's arrival */
    char *fallback_text;    /* NULL: the fallback is the raw input */
    uint32_t max_input;     /* longer input: 400 */
    int line;
} task_def_t;

/* Degradation settings of one route (parallel to gw_config_t.routes). */
typedef struct taskcfg_route {
    int fallback_variant;   /* tried when the primary fails before anything was sent; -1 none */
    int sticky;             /* TASK_STICKY_* */
    char *sticky_name;      /* header name or top-level body field */
    int has_canary;         /* a `canary:` section: defaults for the admin API's start */
    canary_cfg_t canary;
    int stable_variant, canary_variant; /* -1 when the route does not say (admin must) */
} taskcfg_route_t;

typedef struct taskcfg {
    task_def_t *tasks;
    size_t ntasks;
    circuit_cfg_t circuit;  /* applies to every backend */
    int circuit_enabled;
    taskcfg_route_t *routes;
    size_t nroutes;
} taskcfg_t;

/* Read `tasks`, `circuit_breaker` and the routes' `fallback`, `sticky`, `canary` from a
 * config root whose routes are already loaded into c (names are resolved against them).
 * 0 and *out (never NULL on success), or -EINVAL/-ENOMEM with "FILE:LINE: path: message". */
int taskcfg_load(const cfg_node_t *root, const gw_config_t *c, taskcfg_t **out, char *err,
                 size_t errlen);
void taskcfg_free(taskcfg_t *t);

/* The task of a name (len bytes, not NUL-terminated); NULL when none. */
const task_def_t *taskcfg_task(const taskcfg_t *t, const char *name, size_t len);

/* Read a `canary:` mapping (also the admin API's start body, converted) over *out's values. */
int taskcfg_canary(const cfg_node_t *n, canary_cfg_t *out, char *err, size_t errlen);

#endif
