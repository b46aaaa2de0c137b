/* canary.c — sticky assignment and the canary controller: steps, window, limits, abort. */
#include "gateway/canary.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

/* A bucket at exactly 500 ms so that the default limit is judged exactly. */
const uint32_t canary_bounds_ms[CANARY_BUCKETS] = {
    1,   2,   5,   10,  20,  30,   50,   75,   100,  150,  200,   250,
    300, 400, 500, 600, 750, 1000, 1500, 2000, 3000, 5000, 10000, UINT32_MAX};

uint32_t canary_bucket(const char *key, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h % 100);
}

int canary_pick_sticky(const uint32_t *weights, size_t n, uint32_t bucket) {
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += weights[i];
    if (total == 0)
        return -1;
    uint64_t x = (uint64_t)(bucket % 100) * total / 100;
    for (size_t i = 0; i < n; i++) {
        if (x < weights[i])
            return (int)i;
        x -= weights[i];
    }
    return -1; /* unreachable */
}

void canary_cfg_defaults(canary_cfg_t *c) {
    memset(c, 0, sizeof *c);
    static const uint32_t steps[] = {10, 25, 50, 100};
    memcpy(c->steps, steps, sizeof steps);
    c->nsteps = 4;
    c->pause_ms = CANARY_DEF_PAUSE_MS;
    c->window_ms = CANARY_DEF_WINDOW_MS;
    c->min_requests = CANARY_DEF_MIN_REQ;
    c->max_p99_ms = CANARY_DEF_P99_MS;
    c->max_error_pct = CANARY_DEF_ERR_PCT;
    c->max_fallback_pct = CANARY_DEF_FB_PCT;
}

void canary_init(canary_t *c, const char *model) {
    memset(c, 0, sizeof *c);
    snprintf(c->model, sizeof c->model, "%s", model);
    pthread_mutex_init(&c->mu, NULL);
    canary_cfg_defaults(&c->cfg);
    atomic_init(&c->weight, -1);
    atomic_init(&c->live, 0);
}

void canary_destroy(canary_t *c) {
    pthread_mutex_destroy(&c->mu);
}

static int cfg_ok(const canary_cfg_t *c) {
    if (c->nsteps == 0 || c->nsteps > CANARY_MAX_STEPS || c->steps[c->nsteps - 1] != 100 ||
        c->window_ms == 0 || c->max_error_pct < 0 || c->max_fallback_pct < 0)
        return 0;
    for (size_t i = 0; i < c->nsteps; i++)
        if (c->steps[i] == 0 || c->steps[i] > 100 || (i && c->steps[i] <= c->steps[i - 1]))
            return 0;
    return 1;
}

/* Enter step i: the last step is the promotion (the canary serves everything). */
static void enter_step(canary_t *c, size_t i, uint64_t now) {
    c->step = i;
    c->step_ns = now;
    c->step_requests = 0;
    if (i + 1 >= c->cfg.nsteps) {
        c->state = CANARY_PROMOTED;
        atomic_store_explicit(&c->live, 0, memory_order_relaxed);
        snprintf(c->reason, sizeof c->reason, "promoted: %s serves all traffic", c->variant);
    }
    atomic_store_explicit(&c->weight, (int)c->cfg.steps[i], memory_order_relaxed);
}

int canary_start(canary_t *c, const canary_cfg_t *cfg, const char *stable, const char *variant,
                 uint64_t now_ns) {
    if (!cfg_ok(cfg) || !stable || !variant || !strcmp(stable, variant))
        return -EINVAL;
    pthread_mutex_lock(&c->mu);
    int rc = -EALREADY;
    if (c->state != CANARY_RUNNING && c->state != CANARY_PAUSED) {
        c->cfg = *cfg;
        snprintf(c->stable, sizeof c->stable, "%s", stable);
        snprintf(c->variant, sizeof c->variant, "%s", variant);
        memset(c->slots, 0, sizeof c->slots);
        c->total = c->errors = c->fallbacks = 0;
        c->reason[0] = '\0';
        c->state = CANARY_RUNNING;
        atomic_store_explicit(&c->live, 1, memory_order_relaxed);
        enter_step(c, 0, now_ns);
        rc = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int active(const canary_t *c) {
    return c->state == CANARY_RUNNING || c->state == CANARY_PAUSED;
}

int canary_pause(canary_t *c, uint64_t now_ns) {
    (void)now_ns;
    pthread_mutex_lock(&c->mu);
    int rc = c->state == CANARY_RUNNING ? 0 : -EALREADY;
    if (!rc)
        c->state = CANARY_PAUSED;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int canary_resume(canary_t *c, uint64_t now_ns) {
    pthread_mutex_lock(&c->mu);
    int rc = c->state == CANARY_PAUSED ? 0 : -EALREADY;
    if (!rc) {
        c->state = CANARY_RUNNING;
        c->step_ns = now_ns; /* a full pause at this step from now */
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int canary_promote(canary_t *c, uint64_t now_ns) {
    pthread_mutex_lock(&c->mu);
    int rc = active(c) ? 0 : -EALREADY;
    if (!rc)
        enter_step(c, c->step + 1, now_ns);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void do_abort(canary_t *c, const char *reason) {
    c->state = CANARY_ABORTED;
    atomic_store_explicit(&c->live, 0, memory_order_relaxed);
    snprintf(c->reason, sizeof c->reason, "%s", reason);
    atomic_store_explicit(&c->weight, 0, memory_order_relaxed);
}

int canary_abort(canary_t *c, const char *reason, uint64_t now_ns) {
    (void)now_ns;
    pthread_mutex_lock(&c->mu);
    int rc = active(c) ? 0 : -EALREADY;
    if (!rc)
        do_abort(c, reason && *reason ? reason : "aborted by the operator");
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static uint64_t slot_ns(const canary_t *c) {
    return (uint64_t)c->cfg.window_ms * MS / CANARY_SLOTS + 1;
}

static void window_locked(canary_t *c, uint64_t now, canary_stats_t *o) {
    uint64_t epoch = now / slot_ns(c) + 1;
    uint32_t n = 0, e = 0, f = 0, hist[CANARY_BUCKETS] = {0};
    for (size_t i = 0; i < CANARY_SLOTS; i++) {
        const canary_slot_t *s = &c->slots[i];
        if (!s->epoch || s->epoch + CANARY_SLOTS <= epoch)
            continue;
        n += s->n;
        e += s->errors;
        f += s->fallbacks;
        for (size_t b = 0; b < CANARY_BUCKETS; b++) hist[b] += s->hist[b];
    }
    o->n = n;
    o->error_pct = n ? 100.0 * e / n : 0;
    o->fallback_pct = n ? 100.0 * f / n : 0;
    o->p99_ms = 0;
    /* p99: the bound of the bucket holding the ceil(0.99 n)-th fastest request. */
    uint64_t rank = ((uint64_t)n * 99 + 99) / 100, acc = 0;
    for (size_t b = 0; n && b < CANARY_BUCKETS; b++) {
        acc += hist[b];
        if (acc >= rank) {
            o->p99_ms = canary_bounds_ms[b];
            break;
        }
    }
}

void canary_window(canary_t *c, uint64_t now_ns, canary_stats_t *out) {
    pthread_mutex_lock(&c->mu);
    window_locked(c, now_ns, out);
    pthread_mutex_unlock(&c->mu);
}

static int tick_locked(canary_t *c, uint64_t now) {
    if (!active(c))
        return 0;
    int before = canary_weight(c);
    canary_stats_t s;
    window_locked(c, now, &s);
    const canary_cfg_t *g = &c->cfg;
    char why[192];
    if (s.n >= g->min_requests && s.n > 0) {
        why[0] = '\0';
        if (g->max_p99_ms && s.p99_ms > g->max_p99_ms)
            snprintf(why, sizeof why, "p99 latency %s%u ms > limit %u ms over %u requests",
                     s.p99_ms == UINT32_MAX ? "above " : "",
                     s.p99_ms == UINT32_MAX ? canary_bounds_ms[CANARY_BUCKETS - 2] : s.p99_ms,
                     g->max_p99_ms, s.n);
        else if (s.error_pct > g->max_error_pct)
            snprintf(why, sizeof why, "error rate %.1f%% > limit %.1f%% over %u requests",
                     s.error_pct, g->max_error_pct, s.n);
        else if (s.fallback_pct > g->max_fallback_pct)
            snprintf(why, sizeof why, "fallback rate %.1f%% > limit %.1f%% over %u requests",
                     s.fallback_pct, g->max_fallback_pct, s.n);
        if (why[0]) {
            do_abort(c, why);
            return before != 0;
        }
    }
    if (c->state == CANARY_RUNNING && g->pause_ms && now >= c->step_ns + (uint64_t)g->pause_ms * MS &&
        c->step_requests >= g->min_requests)
        enter_step(c, c->step + 1, now);
    return canary_weight(c) != before;
}

int canary_tick(canary_t *c, uint64_t now_ns) {
    pthread_mutex_lock(&c->mu);
    int r = tick_locked(c, now_ns);
    pthread_mutex_unlock(&c->mu);
    return r;
}

int canary_record(canary_t *c, uint64_t now_ns, const char *variant, uint32_t latency_ms,
                  int error, int fallback) {
    pthread_mutex_lock(&c->mu);
    int r = 0;
    if (active(c) && (!variant || !strcmp(variant, c->variant))) {
        uint64_t epoch = now_ns / slot_ns(c) + 1;
        canary_slot_t *s = &c->slots[epoch % CANARY_SLOTS];
        if (s->epoch != epoch) {
            memset(s, 0, sizeof *s);
            s->epoch = epoch;
        }
        size_t b = 0;
        while (b + 1 < CANARY_BUCKETS && latency_ms > canary_bounds_ms[b]) b++;
        s->hist[b]++;
        s->n++;
        s->errors += error != 0;
        s->fallbacks += fallback != 0;
        c->total++;
        c->errors += error != 0;
        c->fallbacks += fallback != 0;
        c->step_requests++;
        r = tick_locked(c, now_ns);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

int canary_state(canary_t *c) {
    pthread_mutex_lock(&c->mu);
    int s = c->state;
    pthread_mutex_unlock(&c->mu);
    return s;
}

const char *canary_state_name(int state) {
    switch (state) {
    case CANARY_RUNNING: return "running";
    case CANARY_PAUSED: return "paused";
    case CANARY_PROMOTED: return "promoted";
    case CANARY_ABORTED: return "aborted";
    default: return "idle";
    }
}

void canary_write_status(canary_t *c, uint64_t now_ns, json_w_t *jw) {
    pthread_mutex_lock(&c->mu);
    canary_stats_t s;
    window_locked(c, now_ns, &s);
    const canary_cfg_t *g = &c->cfg;
    json_w_obj_begin(jw);
    json_w_kv_str(jw, "model", c->model);
    json_w_kv_str(jw, "state", canary_state_name(c->state));
    json_w_kv_str(jw, "stable", c->stable);
    json_w_kv_str(jw, "canary", c->variant);
    json_w_kv_i64(jw, "step", (int64_t)c->step);
    json_w_kv_arr(jw, "steps");
    for (size_t i = 0; i < g->nsteps; i++) json_w_i64(jw, g->steps[i]);
    json_w_arr_end(jw);
    json_w_kv_i64(jw, "weight", canary_weight(c));
    json_w_kv_str(jw, "reason", c->reason);
    json_w_kv_obj(jw, "window");
    json_w_kv_i64(jw, "requests", s.n);
    json_w_key(jw, "p99_ms");
    if (s.p99_ms == UINT32_MAX)
        json_w_null(jw);
    else
        json_w_i64(jw, s.p99_ms);
    json_w_kv_double(jw, "error_pct", s.error_pct);
    json_w_kv_double(jw, "fallback_pct", s.fallback_pct);
    json_w_obj_end(jw);
    json_w_kv_obj(jw, "limits");
    json_w_kv_i64(jw, "pause_ms", g->pause_ms);
    json_w_kv_i64(jw, "window_ms", g->window_ms);
    json_w_kv_i64(jw, "min_requests", g->min_requests);
    json_w_kv_i64(jw, "max_p99_ms", g->max_p99_ms);
    json_w_kv_double(jw, "max_error_pct", g->max_error_pct);
    json_w_kv_double(jw, "max_fallback_pct", g->max_fallback_pct);
    json_w_obj_end(jw);
    json_w_kv_obj(jw, "totals");
    json_w_kv_i64(jw, "requests", (int64_t)c->total);
    json_w_kv_i64(jw, "errors", (int64_t)c->errors);
    json_w_kv_i64(jw, "fallbacks", (int64_t)c->fallbacks);
    json_w_obj_end(jw);
    json_w_obj_end(jw);
    pthread_mutex_unlock(&c->mu);
}

void canary_set_init(canary_set_t *s) {
    memset(s->items, 0, sizeof s->items);
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->n, 0);
}

void canary_set_free(canary_set_t *s) {
    size_t n = atomic_load(&s->n);
    for (size_t i = 0; i < n; i++) {
        canary_destroy(s->items[i]);
        free(s->items[i]);
        s->items[i] = NULL;
    }
    atomic_store(&s->n, 0);
    pthread_mutex_destroy(&s->mu);
}

static canary_t *find(canary_set_t *s, const char *model, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s->items[i]->model, model))
            return s->items[i];
    return NULL;
}

canary_t *canary_get(canary_set_t *s, const char *model, int create) {
    canary_t *c = find(s, model, atomic_load_explicit(&s->n, memory_order_acquire));
    if (c || !create)
        return c;
    pthread_mutex_lock(&s->mu);
    size_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
    if (!(c = find(s, model, n)) && n < CANARY_MAX && strlen(model) < CANARY_NAME &&
        (c = malloc(sizeof *c))) {
        canary_init(c, model);
        s->items[n] = c;
        atomic_store_explicit(&s->n, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&s->mu);
    return c;
}

size_t canary_count(canary_set_t *s) {
    return atomic_load_explicit(&s->n, memory_order_acquire);
}

canary_t *canary_at(canary_set_t *s, size_t i) {
    return i < canary_count(s) ? s->items[i] : NULL;
}
