/* metrics.c — Prometheus registry: families, lock-free children, text exposition 0.0.4. */
#include "core/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

const double metrics_latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4,
                                          0.5,   0.75, 1,     2.5,  5,   10,  30,  60};
const size_t metrics_latency_nbuckets =
    sizeof metrics_latency_buckets / sizeof metrics_latency_buckets[0];

/* One time series (or one histogram's set of series) for a tuple of label values.
 * Doubles are kept as their bit patterns in 64-bit atomics so that updates are lock-free. */
struct metrics_child {
    metrics_family_t *fam;
    _Atomic uint64_t val;      /* counter/gauge value, double bits */
    _Atomic uint64_t sum;      /* histogram sum, double bits */
    _Atomic uint64_t *buckets; /* histogram: per-bucket (not cumulative) counts, nbounds+1 */
    metrics_read_fn fn;        /* callback gauge: value read at scrape time */
    void *fn_arg;
    uint64_t hash;             /* of the label values, to make lookups cheap */
    char **values;             /* label values, one per family label */
};

struct metrics_family {
    metrics_family_t *next; /* registration order */
    metrics_type_t type;
    char *name;
    char *help;
    size_t nlabels;
    char *labels[METRICS_MAX_LABELS];
    double *bounds; /* histogram upper bounds, without +Inf */
    size_t nbounds;
    pthread_mutex_t lock; /* guards the children array (not their values) */
    metrics_child_t **children;
    size_t nchildren, capchildren;
};

typedef struct scrape_hook {
    struct scrape_hook *next;
    metrics_scrape_fn fn;
    void *arg;
} scrape_hook_t;

struct metrics_registry {
    pthread_mutex_t lock; /* guards the family list and hooks; held while rendering */
    metrics_family_t *first, *last;
    scrape_hook_t *hooks;
};

static inline double bits_to_d(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline uint64_t d_to_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* Lock-free add to a double held as bits. One uncontended CAS in the common case. */
static inline void atomic_add_double(_Atomic uint64_t *a, double v) {
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, d_to_bits(bits_to_d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* ---- registry ---- */

metrics_registry_t *metrics_registry_new(void) {
    metrics_registry_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

static void child_free(metrics_child_t *c, size_t nlabels) {
    if (!c)
        return;
    for (size_t i = 0; c->values && i < nlabels; i++) free(c->values[i]);
    free(c->values);
    free(c->buckets);
    free(c);
}

static void family_free(metrics_family_t *f) {
    for (size_t i = 0; i < f->nchildren; i++) child_free(f->children[i], f->nlabels);
    free(f->children);
    for (size_t i = 0; i < f->nlabels; i++) free(f->labels[i]);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void metrics_registry_free(metrics_registry_t *r) {
    if (!r)
        return;
    for (metrics_family_t *f = r->first, *n; f; f = n) {
        n = f->next;
        family_free(f);
    }
    for (scrape_hook_t *h = r->hooks, *n; h; h = n) {
        n = h->next;
        free(h);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static int valid_name(const char *s, int colon_ok) {
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (colon_ok && c == ':') || (p > s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static metrics_family_t *family_new(metrics_registry_t *r, metrics_type_t type, const char *name,
                                    const char *help, const char *const *labels,
                                    const double *bounds, size_t nbounds) {
    if (!r || !valid_name(name, 1))
        return NULL;
    size_t nl = 0;
    for (; labels && labels[nl]; nl++) {
        if (nl >= METRICS_MAX_LABELS || !valid_name(labels[nl], 0) ||
            !strncmp(labels[nl], "__", 2) || (type == METRICS_HISTOGRAM && !strcmp(labels[nl], "le")))
            return NULL;
        for (size_t j = 0; j < nl; j++)
            if (!strcmp(labels[j], labels[nl]))
                return NULL;
    }
    for (size_t i = 0; i < nbounds; i++)
        if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
            return NULL;
    metrics_family_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->lock, NULL);
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (!f->name || !f->help)
        goto err;
    for (size_t i = 0; i < nl; i++) {
        if (!(f->labels[i] = strdup(labels[i])))
            goto err;
        f->nlabels = i + 1;
    }
    if (nbounds) {
        if (!(f->bounds = malloc(nbounds * sizeof *bounds)))
            goto err;
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    pthread_mutex_lock(&r->lock);
    for (metrics_family_t *g = r->first; g; g = g->next) {
        if (!strcmp(g->name, name)) {
            pthread_mutex_unlock(&r->lock);
            goto err;
        }
    }
    if (r->last)
        r->last->next = f;
    else
        r->first = f;
    r->last = f;
    pthread_mutex_unlock(&r->lock);
    /* An unlabelled family has exactly one series: create it now so it renders as 0. */
    if (nl == 0 && !metrics_child(f, NULL))
        return NULL; /* stays registered (owned by r) but unusable; only on no memory */
    return f;
err:
    family_free(f);
    return NULL;
}

metrics_family_t *metrics_counter(metrics_registry_t *r, const char *name, const char *help,
                                  const char *const *labels) {
    return family_new(r, METRICS_COUNTER, name, help, labels, NULL, 0);
}

metrics_family_t *metrics_gauge(metrics_registry_t *r, const char *name, const char *help,
                                const char *const *labels) {
    return family_new(r, METRICS_GAUGE, name, help, labels, NULL, 0);
}

metrics_family_t *metrics_histogram(metrics_registry_t *r, const char *name, const char *help,
                                    const char *const *labels, const double *bounds,
                                    size_t nbounds) {
    if (nbounds && !bounds)
        return NULL;
    return family_new(r, METRICS_HISTOGRAM, name, help, labels, bounds, nbounds);
}

int metrics_gauge_fn(metrics_registry_t *r, const char *name, const char *help,
                     metrics_read_fn fn, void *arg) {
    if (!fn)
        return -EINVAL;
    metrics_family_t *f = metrics_gauge(r, name, help, NULL);
    if (!f)
        return -EINVAL;
    metrics_child_set_fn(metrics_child(f, NULL), fn, arg);
    return 0;
}

int metrics_on_scrape(metrics_registry_t *r, metrics_scrape_fn fn, void *arg) {
    scrape_hook_t *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->fn = fn;
    h->arg = arg;
    pthread_mutex_lock(&r->lock);
    scrape_hook_t **pp = &r->hooks;
    while (*pp) pp = &(*pp)->next;
    *pp = h;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

/* ---- children ---- */

static uint64_t hash_values(const char *const *values, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, with a separator between values */
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xFF) * 1099511628211ull;
    }
    return h;
}

metrics_child_t *metrics_child(metrics_family_t *f, const char *const *values) {
    if (!f)
        return NULL;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!values || !values[i])
            return NULL;
    uint64_t h = hash_values(values, f->nlabels);
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nchildren; i++) {
        metrics_child_t *c = f->children[i];
        if (c->hash != h)
            continue;
        size_t k = 0;
        while (k < f->nlabels && !strcmp(c->values[k], values[k])) k++;
        if (k == f->nlabels) {
            pthread_mutex_unlock(&f->lock);
            return c;
        }
    }
    metrics_child_t *c = calloc(1, sizeof *c);
    if (!c)
        goto err;
    c->fam = f;
    c->hash = h;
    if (f->nlabels) {
        if (!(c->values = calloc(f->nlabels, sizeof *c->values)))
            goto err;
        for (size_t i = 0; i < f->nlabels; i++)
            if (!(c->values[i] = strdup(values[i])))
                goto err;
    }
    if (f->type == METRICS_HISTOGRAM && !(c->buckets = calloc(f->nbounds + 1, sizeof *c->buckets)))
        goto err;
    if (f->nchildren == f->capchildren) {
        size_t nc = f->capchildren ? 2 * f->capchildren : 4;
        metrics_child_t **p = realloc(f->children, nc * sizeof *p);
        if (!p)
            goto err;
        f->children = p;
        f->capchildren = nc;
    }
    f->children[f->nchildren++] = c;
    pthread_mutex_unlock(&f->lock);
    return c;
err:
    pthread_mutex_unlock(&f->lock);
    child_free(c, f->nlabels);
    return NULL;
}

metrics_child_t *metrics_labels(metrics_family_t *f, ...) {
    if (!f)
        return NULL;
    const char *values[METRICS_MAX_LABELS];
    va_list ap;
    va_start(ap, f);
    for (size_t i = 0; i < f->nlabels; i++) values[i] = va_arg(ap, const char *);
    va_end(ap);
    return metrics_child(f, f->nlabels ? values : NULL);
}

void metrics_child_set_fn(metrics_child_t *c, metrics_read_fn fn, void *arg) {
    if (!c || c->fam->type != METRICS_GAUGE)
        return;
    /* Under the family lock, which rendering holds while it reads fn and fn_arg. */
    pthread_mutex_lock(&c->fam->lock);
    c->fn_arg = arg;
    c->fn = fn;
    pthread_mutex_unlock(&c->fam->lock);
}

/* ---- hot path ---- */

void metrics_inc(metrics_child_t *c) {
    metrics_add(c, 1.0);
}

void metrics_add(metrics_child_t *c, double v) {
    if (!c || c->fam->type == METRICS_HISTOGRAM)
        return;
    if (c->fam->type == METRICS_COUNTER && !(v >= 0))
        return; /* counters only go up */
    atomic_add_double(&c->val, v);
}

void metrics_set(metrics_child_t *c, double v) {
    if (!c || c->fam->type != METRICS_GAUGE)
        return;
    atomic_store_explicit(&c->val, d_to_bits(v), memory_order_relaxed);
}

void metrics_observe(metrics_child_t *c, double v) {
    if (!c || c->fam->type != METRICS_HISTOGRAM || isnan(v))
        return;
    const metrics_family_t *f = c->fam;
    /* First bucket whose bound is >= v ("le" is inclusive); nbounds means +Inf. */
    size_t lo = 0, hi = f->nbounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&c->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&c->sum, v);
}

double metrics_value(const metrics_child_t *c) {
    if (!c)
        return 0;
    if (c->fn)
        return c->fn(c->fn_arg);
    return bits_to_d(atomic_load_explicit(&c->val, memory_order_relaxed));
}

uint64_t metrics_hist_bucket(const metrics_child_t *c, size_t i) {
    if (!c || !c->buckets)
        return 0;
    if (i > c->fam->nbounds)
        i = c->fam->nbounds;
    uint64_t n = 0;
    for (size_t k = 0; k <= i; k++) n += atomic_load_explicit(&c->buckets[k], memory_order_relaxed);
    return n;
}

uint64_t metrics_hist_count(const metrics_child_t *c) {
    return c && c->buckets ? metrics_hist_bucket(c, c->fam->nbounds) : 0;
}

double metrics_hist_sum(const metrics_child_t *c) {
    return c && c->buckets ? bits_to_d(atomic_load_explicit(&c->sum, memory_order_relaxed)) : 0;
}

/* ---- exposition ---- */

int metrics_fmt_value(double v, char out[32]) {
    if (isnan(v))
        return snprintf(out, 32, "NaN");
    if (isinf(v))
        return snprintf(out, 32, v > 0 ? "+Inf" : "-Inf");
    if (v == floor(v) && fabs(v) < 9007199254740992.0) /* exact integers print plainly */
        return snprintf(out, 32, "%.0f", v);
    return json_fmt_double(v, out);
}

/* HELP text escapes \ and newline; label values also escape the double quote. */
static int append_escaped(buf_t *b, const char *s, int quote) {
    const char *run = s;
    int rc = 0;
    for (; *s; s++) {
        const char *e = NULL;
        if (*s == '\\')
            e = "\\\\";
        else if (*s == '\n')
            e = "\\n";
        else if (quote && *s == '"')
            e = "\\\"";
        if (!e)
            continue;
        rc |= buf_append(b, run, (size_t)(s - run));
        rc |= buf_append(b, e, 2);
        run = s + 1;
    }
    return rc | buf_append(b, run, (size_t)(s - run));
}

/* name{l1="v1",...[,le="x"]} value\n */
static int sample(buf_t *b, const metrics_family_t *f, const char *suffix,
                  const metrics_child_t *c, const char *le, double v) {
    int rc = buf_appends(b, f->name);
    rc |= buf_appends(b, suffix);
    if (f->nlabels || le) {
        rc |= buf_append(b, "{", 1);
        for (size_t i = 0; i < f->nlabels; i++) {
            if (i)
                rc |= buf_append(b, ",", 1);
            rc |= buf_appends(b, f->labels[i]);
            rc |= buf_append(b, "=\"", 2);
            rc |= append_escaped(b, c->values[i], 1);
            rc |= buf_append(b, "\"", 1);
        }
        if (le) {
            if (f->nlabels)
                rc |= buf_append(b, ",", 1);
            rc |= buf_append(b, "le=\"", 4);
            rc |= buf_appends(b, le);
            rc |= buf_append(b, "\"", 1);
        }
        rc |= buf_append(b, "}", 1);
    }
    char num[32];
    int n = metrics_fmt_value(v, num);
    rc |= buf_append(b, " ", 1);
    rc |= buf_append(b, num, (size_t)n);
    return rc | buf_append(b, "\n", 1);
}

static int render_family(buf_t *b, metrics_family_t *f) {
    static const char *const tnames[] = {"", "counter", "gauge", "histogram"};
    int rc = buf_append(b, "# HELP ", 7);
    rc |= buf_appends(b, f->name);
    rc |= buf_append(b, " ", 1);
    rc |= append_escaped(b, f->help, 0);
    rc |= buf_append(b, "\n# TYPE ", 8);
    rc |= buf_appends(b, f->name);
    rc |= buf_append(b, " ", 1);
    rc |= buf_appends(b, tnames[f->type]);
    rc |= buf_append(b, "\n", 1);
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nchildren; i++) {
        const metrics_child_t *c = f->children[i];
        if (f->type != METRICS_HISTOGRAM) {
            rc |= sample(b, f, "", c, NULL, metrics_value(c));
            continue;
        }
        /* Cumulative buckets; _count is the +Inf bucket so the two always agree even while
         * other threads observe (the sum may be a few observations ahead or behind). */
        uint64_t cum = 0;
        char le[32];
        for (size_t k = 0; k <= f->nbounds; k++) {
            cum += atomic_load_explicit(&c->buckets[k], memory_order_relaxed);
            if (k < f->nbounds)
                metrics_fmt_value(f->bounds[k], le);
            else
                memcpy(le, "+Inf", 5);
            rc |= sample(b, f, "_bucket", c, le, (double)cum);
        }
        rc |= sample(b, f, "_sum", c, NULL, metrics_hist_sum(c));
        rc |= sample(b, f, "_count", c, NULL, (double)cum);
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

int metrics_render(metrics_registry_t *r, buf_t *out) {
    size_t start = out->len;
    pthread_mutex_lock(&r->lock);
    for (scrape_hook_t *h = r->hooks; h; h = h->next) h->fn(h->arg);
    int rc = 0;
    for (metrics_family_t *f = r->first; f; f = f->next) rc |= render_family(out, f);
    pthread_mutex_unlock(&r->lock);
    if (rc) { /* no memory part-way: hand back nothing rather than a torn scrape */
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        return -ENOMEM;
    }
    return 0;
}
