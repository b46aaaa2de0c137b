/* perf_batch.c — `tollgate perf batch`: the time of one engine step with N sequences decoding together (continuous batching's cost without HTTP), side by side for several N. */
#define _GNU_SOURCE
#include "cli/perf_batch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ev.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/profile.h"
#include "engine/threadpool.h"

/* Steps not counted: the first pass over the weights in this process pays for mapping
 * them (docs/engine.md, "Decode and the page cache"). */
#define WARM_STEPS 2

/* n sequences, each with its own cache, decode `steps` tokens together from position
 * pos (the cache below pos holds zeros: attention costs what a filled one costs); with
 * prof, the timed steps are profiled into it. */
static int time_steps(const model_t *m, tpool_t *pool, int n, int steps, int pos, eng_profile_t *prof,
                      double *best, double *mean) {
    int n_ctx = pos + steps + WARM_STEPS + 1;
    forward_state_t *s = NULL;
    fwd_kv_t *kv = calloc((size_t)n, sizeof *kv);
    fwd_row_t *rows = calloc((size_t)n, sizeof *rows);
    int rc = -ENOMEM;
    if (!kv || !rows || forward_state_new_batch(m, n_ctx, n, n, 0, &s)) goto out;
    s->pool = pool;
    size_t half = forward_kv_bytes(&m->hp, n_ctx) / 2;
    for (int i = 0; i < n; i++) {
        kv[i] = (fwd_kv_t){calloc(half, 1), calloc(half, 1), n_ctx};
        if (!kv[i].key || !kv[i].val) goto out;
    }
    double sum = 0;
    *best = 0;
    for (int st = 0; st < WARM_STEPS + steps; st++) {
        for (int i = 0; i < n; i++) /* different tokens per sequence and step */
            rows[i] = (fwd_row_t){.token = (int32_t)(1 + (st * 7919u + i * 104729u) % (unsigned)(m->hp.n_vocab - 1)),
                                  .pos = pos + st, .kv = &kv[i], .prompt = 0, .want_logits = 1};
        eng_profile = st < WARM_STEPS ? NULL : prof;
        double t = ev_clock_s();
        rc = forward_batch(m, s, rows, n);
        t = ev_clock_s() - t;
        eng_profile = NULL;
        if (rc) goto out;
        if (st < WARM_STEPS) continue;
        sum += t;
        if (!*best || t < *best) *best = t;
    }
    *mean = sum / steps;
    rc = 0;
out:
    for (int i = 0; kv && i < n; i++) free(kv[i].key), free(kv[i].val);
    free(kv);
    free(rows);
    forward_state_free(s);
    return rc;
}

int perf_batch(const char *path, int threads, const int *seqs, int n_seqs, int steps, int pos, int breakdown) {
    model_t m;
    char err[256];
    if (model_load(path, &m, err, sizeof err)) {
        fprintf(stderr, "tollgate perf batch: %s\n", err);
        return 1;
    }
    tpool_t *pool = NULL;
    int rc = 1;
    if (tpool_new(threads, &pool)) {
        fprintf(stderr, "tollgate perf batch: cannot start %d threads\n", threads);
        goto out;
    }
    if (pos + steps + WARM_STEPS >= (m.hp.n_ctx_train > 0 ? m.hp.n_ctx_train : 1 << 20)) {
        fprintf(stderr, "tollgate perf batch: --pos %d + %d steps passes the model's context (%d)\n", pos,
                steps + WARM_STEPS, m.hp.n_ctx_train);
        rc = 2;
        goto out;
    }
    double base_tps = 0;
    for (int i = 0; i < n_seqs; i++) {
        double best = 0, mean = 0;
        eng_profile_t prof = {0};
        int e = time_steps(&m, pool, seqs[i], steps, pos, breakdown ? &prof : NULL, &best, &mean);
        if (e) {
            fprintf(stderr, "tollgate perf batch: %d sequences: %s\n", seqs[i], strerror(-e));
            goto out;
        }
        double tps = seqs[i] / mean;
        if (i == 0) base_tps = tps;
        printf("perf: batch model=%s threads=%d seqs=%d pos=%d steps=%d step_ms_best=%.3f step_ms_mean=%.3f "
               "agg_tps=%.1f vs_first=%.2f\n",
               m.name[0] ? m.name : path, tpool_size(pool), seqs[i], pos, steps, best * 1e3, mean * 1e3, tps,
               tps / base_tps);
        if (breakdown) eng_profile_print(stdout, &prof, "step", tpool_size(pool), mean * steps, steps);
        fflush(stdout);
    }
    rc = 0;
out:
    tpool_free(pool);
    model_free(&m);
    return rc;
}
