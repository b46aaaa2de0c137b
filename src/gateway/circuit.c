/* circuit.c — per-backend circuit breakers: the state machine and its registry. */
#include "gateway/circuit.h"

#include "core/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

void circuit_cfg_defaults(circuit_cfg_t *cfg) {
    cfg->failures = CIRCUIT_DEF_FAILURES;
    cfg->ratio_pct = CIRCUIT_DEF_RATIO_PCT;
    cfg->min_requests = CIRCUIT_DEF_MIN_REQ;
    cfg->window_ms = CIRCUIT_DEF_WINDOW_MS;
    cfg->cooldown_ms = CIRCUIT_DEF_COOLDOWN_MS;
    cfg->probes = CIRCUIT_DEF_PROBES;
}

void circuit_init(circuit_t *c, const char *name) {
    memset(c, 0, sizeof *c);
    size_t n = strlen(name);
    if (n >= sizeof c->name)
        n = sizeof c->name - 1;
    memcpy(c->name, name, n);
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->state, CIRCUIT_CLOSED);
}

void circuit_destroy(circuit_t *c) {
    pthread_mutex_destroy(&c->mu);
}

static uint64_t slot_ns(const circuit_cfg_t *cfg) {
    uint64_t w = cfg->window_ms ? cfg->window_ms : CIRCUIT_DEF_WINDOW_MS;
    return w * MS / CIRCUIT_SLOTS + 1;
}

static void clear_window(circuit_t *c) {
    memset(c->slot_epoch, 0, sizeof c->slot_epoch);
    memset(c->ok, 0, sizeof c->ok);
    memset(c->fail, 0, sizeof c->fail);
}

static void trip(circuit_t *c, uint64_t now, const char *why) {
    atomic_store_explicit(&c->state, CIRCUIT_OPEN, memory_order_relaxed);
    c->opened_ns = now;
    c->consec = 0;
    c->probes_out = c->probes_ok = 0;
    c->why = why;
    clear_window(c);
    atomic_fetch_add_explicit(&c->opens, 1, memory_order_relaxed);
}

/* Count an outcome into the window; then the ratio over the slots still inside it. */
static int ratio_exceeded(circuit_t *c, const circuit_cfg_t *cfg, int ok, uint64_t now) {
    uint64_t sn = slot_ns(cfg), epoch = now / sn + 1; /* + 1: epoch 0 means "empty slot" */
    size_t i = (size_t)(epoch % CIRCUIT_SLOTS);
    if (c->slot_epoch[i] != epoch) {
        c->slot_epoch[i] = epoch;
        c->ok[i] = c->fail[i] = 0;
    }
    if (ok)
        c->ok[i]++;
    else
        c->fail[i]++;
    if (!cfg->ratio_pct)
        return 0;
    uint64_t n = 0, f = 0;
    for (size_t j = 0; j < CIRCUIT_SLOTS; j++) {
        if (c->slot_epoch[j] && c->slot_epoch[j] + CIRCUIT_SLOTS > epoch) {
            n += c->ok[j] + c->fail[j];
            f += c->fail[j];
        }
    }
    return n >= cfg->min_requests && n > 0 && f * 100 >= (uint64_t)cfg->ratio_pct * n;
}

int circuit_allow(circuit_t *c, const circuit_cfg_t *cfg, uint64_t now_ns) {
    if (atomic_load_explicit(&c->state, memory_order_relaxed) == CIRCUIT_CLOSED)
        return CIRCUIT_PASS;
    int r = CIRCUIT_REJECT;
    pthread_mutex_lock(&c->mu);
    int st = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (st == CIRCUIT_CLOSED) {
        r = CIRCUIT_PASS;
    } else {
        if (st == CIRCUIT_OPEN && now_ns >= c->opened_ns + (uint64_t)cfg->cooldown_ms * MS) {
            atomic_store_explicit(&c->state, CIRCUIT_HALF_OPEN, memory_order_relaxed);
            c->probes_out = c->probes_ok = 0;
            st = CIRCUIT_HALF_OPEN;
        }
        /* Half-open: one probe at a time, so that a still-broken backend costs one call. */
        if (st == CIRCUIT_HALF_OPEN && c->probes_out == 0) {
            c->probes_out++;
            r = CIRCUIT_PROBE;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (r == CIRCUIT_REJECT)
        atomic_fetch_add_explicit(&c->rejected, 1, memory_order_relaxed);
    return r;
}

void circuit_report(circuit_t *c, const circuit_cfg_t *cfg, int probe, int ok, uint64_t now_ns) {
    pthread_mutex_lock(&c->mu);
    int st = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (probe) {
        if (c->probes_out)
            c->probes_out--;
        if (st == CIRCUIT_HALF_OPEN && ok == 1) {
            uint32_t need = cfg->probes ? cfg->probes : 1;
            if (++c->probes_ok >= need) {
                atomic_store_explicit(&c->state, CIRCUIT_CLOSED, memory_order_relaxed);
                c->consec = 0;
                clear_window(c);
            }
        } else if (st == CIRCUIT_HALF_OPEN && ok == 0) {
            trip(c, now_ns, "probe_failed");
        }
    } else if (st == CIRCUIT_CLOSED && ok >= 0) {
        /* Calls admitted before it opened may still report: only a closed breaker counts. */
        c->consec = ok ? 0 : c->consec + 1;
        int ratio = ratio_exceeded(c, cfg, ok, now_ns);
        if (!ok && cfg->failures && c->consec >= cfg->failures)
            trip(c, now_ns, "consecutive_failures");
        else if (!ok && ratio)
            trip(c, now_ns, "failure_ratio");
    }
    pthread_mutex_unlock(&c->mu);
}

int circuit_state(circuit_t *c, const circuit_cfg_t *cfg, uint64_t now_ns) {
    pthread_mutex_lock(&c->mu);
    int st = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (st == CIRCUIT_OPEN && now_ns >= c->opened_ns + (uint64_t)cfg->cooldown_ms * MS)
        st = CIRCUIT_HALF_OPEN;
    pthread_mutex_unlock(&c->mu);
    return st;
}

const char *circuit_state_name(int state) {
    switch (state) {
    case CIRCUIT_OPEN: return "open";
    case CIRCUIT_HALF_OPEN: return "half_open";
    default: return "closed";
    }
}

/* A label value: backslash, quote and newline escaped as the text format wants. */
static int label(buf_t *b, const char *s) {
    int rc = 0;
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            rc |= buf_append(b, "\\", 1);
        rc |= *s == '\n' ? buf_append(b, "\\n", 2) : buf_append(b, s, 1);
    }
    return rc;
}

int circuit_set_render(circuit_set_t *s, buf_t *out) {
    static const char *const fam[3][3] = {
        {"tollgate_circuit_state", "gauge",
         "Circuit breaker of a backend: 0 closed, 1 open, 2 half-open."},
        {"tollgate_circuit_opens_total", "counter", "Times a backend's circuit opened."},
        {"tollgate_circuit_rejected_total", "counter",
         "Calls refused at once because the backend's circuit was open."}};
    size_t n = atomic_load_explicit(&s->n, memory_order_acquire);
    int rc = 0;
    for (int f = 0; f < 3; f++) {
        rc |= buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f][0], fam[f][2], fam[f][0],
                          fam[f][1]);
        for (size_t i = 0; i < n; i++) {
            circuit_t *c = s->items[i];
            unsigned long long v =
                f == 0   ? (unsigned long long)atomic_load_explicit(&c->state, memory_order_relaxed)
                : f == 1 ? (unsigned long long)atomic_load_explicit(&c->opens, memory_order_relaxed)
                         : (unsigned long long)atomic_load_explicit(&c->rejected,
                                                                    memory_order_relaxed);
            rc |= buf_appendf(out, "%s{backend=\"", fam[f][0]);
            rc |= label(out, c->name);
            rc |= buf_appendf(out, "\"} %llu\n", v);
        }
    }
    return rc ? -ENOMEM : 0;
}

void circuit_set_init(circuit_set_t *s) {
    memset(s->items, 0, sizeof s->items);
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->n, 0);
}

void circuit_set_free(circuit_set_t *s) {
    size_t n = atomic_load(&s->n);
    for (size_t i = 0; i < n; i++) {
        circuit_destroy(s->items[i]);
        free(s->items[i]);
        s->items[i] = NULL;
    }
    atomic_store(&s->n, 0);
    pthread_mutex_destroy(&s->mu);
}

static circuit_t *find(circuit_set_t *s, const char *name, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strncmp(s->items[i]->name, name, CIRCUIT_NAME - 1))
            return s->items[i];
    return NULL;
}

circuit_t *circuit_get(circuit_set_t *s, const char *name) {
    circuit_t *c = find(s, name, atomic_load_explicit(&s->n, memory_order_acquire));
    if (c)
        return c;
    pthread_mutex_lock(&s->mu);
    size_t n = atomic_load_explicit(&s->n, memory_order_relaxed);
    if (!(c = find(s, name, n)) && n < CIRCUIT_MAX && (c = malloc(sizeof *c))) {
        circuit_init(c, name);
        s->items[n] = c;
        atomic_store_explicit(&s->n, n + 1, memory_order_release); /* publish after init */
    }
    pthread_mutex_unlock(&s->mu);
    return c;
}
