/* sim_knobs.h — the simulator's behaviour knobs: defaults, parsing, JSON in and out. */
#ifndef TOLLGATE_SIM_SIM_KNOBS_H
#define TOLLGATE_SIM_SIM_KNOBS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef enum sim_output {
    SIM_OUT_FIXED = 0, /* output_tokens tokens (capped by max_tokens) */
    SIM_OUT_RANDOM,    /* uniform in 1..max_tokens (output_tokens when absent) */
    SIM_OUT_ECHO,      /* the words of the last user message / the prompt */
} sim_output_t;

/* Behaviour knobs; changeable at run time (POST /sim/config). */
typedef struct sim_knobs {
    uint32_t ttft_ms;        /* time to first token */
    uint32_t ttft_jitter_ms; /* +- uniformly */
    uint32_t itl_ms;         /* inter-token latency */
    uint32_t itl_jitter_ms;
    int output;              /* sim_output_t */
    uint32_t output_tokens;  /* fixed: N; random: the bound when max_tokens is absent */
    uint32_t max_seqs;       /* requests generating at once; 0 = unlimited */
    uint32_t max_queue;      /* requests waiting for a slot; more -> 503 */
    double fail_rate;        /* share answered 429/500/503 (equal mix) */
    double reset_rate;       /* share whose connection is reset mid-response */
    double stall_rate;       /* share that stops after the head / first chunk */
    uint64_t seed;
} sim_knobs_t;

void sim_knobs_default(sim_knobs_t *k);
/* "fixed", "fixed:N", "random", "echo". 0 or -EINVAL. */
int sim_knobs_parse_output(const char *s, sim_knobs_t *k);
/* The knobs as a JSON object (the GET /sim/config body). */
void sim_knobs_json(const sim_knobs_t *k, buf_t *out);
/* Apply the keys present in a JSON object onto k (all or nothing). 0, or -1
 * with a message. */
int sim_knobs_update(sim_knobs_t *k, const char *json, size_t len, char *err, size_t errcap);

#endif
