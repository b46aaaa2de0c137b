/* sim.h — a simulated OpenAI/vLLM-compatible upstream served over httpd, with run-time knobs. */
#ifndef TOLLGATE_SIM_SIM_H
#define TOLLGATE_SIM_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/httpd.h"
#include "sim/sim_knobs.h"

typedef struct sim sim_t;

/* model: the served model name (listed at /v1/models, the metrics' model_name). */
int sim_new(const sim_knobs_t *k, const char *model, sim_t **out);
/* Set cfg's handler and worker hooks to the simulator's. Call before httpd_new. */
void sim_httpd_setup(sim_t *s, httpd_config_t *cfg);
/* Tell the simulator its server (for cross-worker wakeups); before httpd_start. */
void sim_attach(sim_t *s, httpd_t *h);
/* After httpd_free. */
void sim_free(sim_t *s);

#endif
