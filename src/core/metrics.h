/* metrics.h — Prometheus metrics: a registry of labelled counter/gauge/histogram families and
 * their text exposition (format 0.0.4). */
#ifndef TOLLGATE_CORE_METRICS_H
#define TOLLGATE_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Most label names a family may have. */
#define METRICS_MAX_LABELS 8

/* Latency buckets in seconds, with a bucket at exactly 0.5 (the p99 SLO) and finer steps
 * below it so that quantiles near the SLO are estimated well. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_nbuckets;

typedef enum metrics_type {
    METRICS_COUNTER = 1,
    METRICS_GAUGE,
    METRICS_HISTOGRAM,
} metrics_type_t;

typedef struct metrics_registry metrics_registry_t;
typedef struct metrics_family metrics_family_t;
typedef struct metrics_child metrics_child_t;

/* Value of a callback gauge, computed at scrape time (on the scraping thread). */
typedef double (*metrics_read_fn)(void *arg);
/* Called at the start of every render, before any family is read (e.g. to refresh gauges). */
typedef void (*metrics_scrape_fn)(void *arg);

/* Thread model: registration, child creation and rendering take locks and may allocate;
 * metrics_inc/add/set/observe on a child pointer are lock-free (relaxed atomics) and can be
 * called from any thread. Children live as long as the registry, so keep the pointer. */
metrics_registry_t *metrics_registry_new(void);
void metrics_registry_free(metrics_registry_t *r);

/* Register a family. labels: NULL-terminated label names, or NULL for none. Names are
 * validated ([a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]*, no "__" prefix,
 * "le" reserved for histograms). Returns NULL on an invalid or duplicate name, or no
 * memory. Families render in registration order. */
metrics_family_t *metrics_counter(metrics_registry_t *r, const char *name, const char *help,
                                  const char *const *labels);
metrics_family_t *metrics_gauge(metrics_registry_t *r, const char *name, const char *help,
                                const char *const *labels);
/* bounds: strictly increasing upper bounds (finite); +Inf is added by the registry. */
metrics_family_t *metrics_histogram(metrics_registry_t *r, const char *name, const char *help,
                                    const char *const *labels, const double *bounds,
                                    size_t nbounds);
/* An unlabelled gauge whose value is fn(arg) at scrape time. 0 or negative errno. */
int metrics_gauge_fn(metrics_registry_t *r, const char *name, const char *help,
                     metrics_read_fn fn, void *arg);
/* Run fn(arg) at the start of each metrics_render. 0 or negative errno. */
int metrics_on_scrape(metrics_registry_t *r, metrics_scrape_fn fn, void *arg);

/* The child for one tuple of label values (as many as the family has label names; NULL for
 * an unlabelled family), created on first use. Same tuple, same pointer. NULL on no memory
 * or a NULL value. Takes the family lock: look up once, keep the pointer on the hot path. */
metrics_child_t *metrics_child(metrics_family_t *f, const char *const *values);
/* Same, values as arguments: metrics_labels(f, "orders", "200"). */
metrics_child_t *metrics_labels(metrics_family_t *f, ...);
/* Turn a gauge child into a callback child: its value is fn(arg) at scrape time. */
void metrics_child_set_fn(metrics_child_t *c, metrics_read_fn fn, void *arg);

/* Hot path (lock-free). inc/add: counters (add must be >= 0) and gauges; set: gauges;
 * observe: histograms (NaN is ignored). Calling one on the wrong type does nothing. */
void metrics_inc(metrics_child_t *c);
void metrics_add(metrics_child_t *c, double v);
void metrics_set(metrics_child_t *c, double v);
void metrics_observe(metrics_child_t *c, double v);

/* Reads for tests and admin endpoints: counter/gauge value, histogram count and sum. */
double metrics_value(const metrics_child_t *c);
uint64_t metrics_hist_count(const metrics_child_t *c);
double metrics_hist_sum(const metrics_child_t *c);
/* Cumulative count of observations <= bounds[i] (i == nbounds: all). */
uint64_t metrics_hist_bucket(const metrics_child_t *c, size_t i);

/* Append the exposition text of every family (HELP, TYPE, samples) to out. Families with
 * labels and no children yet print only HELP and TYPE. 0 or -ENOMEM. */
int metrics_render(metrics_registry_t *r, buf_t *out);

/* Format a sample value as the exposition format wants (integers plainly, NaN, +Inf, -Inf,
 * otherwise the shortest round-trip form). Returns the length written to out. */
int metrics_fmt_value(double v, char out[32]);

#endif
