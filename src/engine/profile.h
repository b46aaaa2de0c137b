/* profile.h — where engine steps spend their time (perf run and perf batch --breakdown): the weight products' parts and the phases between them. */
#ifndef TOLLGATE_ENGINE_PROFILE_H
#define TOLLGATE_ENGINE_PROFILE_H

#include <stdio.h>

/* Threads whose time in the products is kept apart (the pool's first ones). */
#define EP_THREADS 4
/* forward.c's row phases, in its order: attention norm, RoPE and the K/V store,
 * attention, FFN norm, SiLU. */
#define EP_PHASES 5

/* Sums over the profiled steps, in seconds: every product that goes through the pool
 * (matvec.c) and every row phase (forward.c) while eng_profile is set. The clock is read
 * a few times per product (ev_clock_s), so a profiled decode runs ~0.1% slower. */
typedef struct eng_profile {
    double products_s;            /* product calls, entry to return */
    double convert_s;             /* of which: converting the activations, before the workers start */
    double busy_s[EP_THREADS];    /* each thread inside the product's rows */
    double wait_s;                /* the first thread done waiting for the last (latest end - earliest end) */
    double bytes;                 /* weight bytes those products read */
    long products;
    double phase_s[EP_PHASES];
} eng_profile_t;

/* The profile being filled, or NULL (the default: nothing is measured). Set by the one
 * thread that runs the engine, between steps; the pool's workers only write into it
 * through their job (matvec.c). */
extern eng_profile_t *eng_profile;

/* One `perf: breakdown` line to f: p's sums per step in ms (`steps` steps of total_s
 * seconds in all), `step` naming one in the keys (token: ms_per_token ...), threads the
 * pool's size. */
void eng_profile_print(FILE *f, const eng_profile_t *p, const char *step, int threads, double total_s, int steps);

#endif
