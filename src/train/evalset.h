/* evalset.h — the held-out evaluation: cases from JSON lines, greedy decoding with the
 * engine, and the report (exact match overall and per noise kind, latency percentiles). */
#ifndef TOLLGATE_TRAIN_EVALSET_H
#define TOLLGATE_TRAIN_EVALSET_H

#include <stdio.h>

#include "core/buf.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "model/tokenizer.h"
#include "train/orders_data.h"

typedef struct ev_case {
    char *input;  /* messy order text */
    char *output; /* expected normal form */
    int kinds;    /* enum ord_kind mask */
} ev_case_t;

typedef struct ev_report {
    long n, ok;            /* cases, exact matches */
    long kn[ORD_N_KINDS];  /* cases carrying each kind */
    long kok[ORD_N_KINDS]; /* ...and matched */
    long errors;           /* requests that failed (counted as misses) */
    long fallbacks;        /* task answers marked fallback (counted as misses) */
    double *lat_ms;        /* (cap) latency of each case, caller-owned */
    long cap;
} ev_report_t;

/* Read {"input", "output", "kinds": [...]} lines (tollgate traingen). *cases is malloc'd;
 * ev_free releases it. 0 or a negative errno with a message in err. */
int ev_load_jsonl(const char *path, ev_case_t **cases, int *n, char *err, size_t errlen);
void ev_free(ev_case_t *cases, int n);

/* Greedy answer of the model to one order, rendered and tokenized as `tollgate serve`
 * renders a chat request, decoded until an end-of-generation token or max_new tokens.
 * out is reset first. 0 or a negative errno. */
int ev_greedy(const model_t *m, forward_state_t *s, const tokenizer_t *t, const char *input,
              int max_new, buf_t *out);

/* Count one answer (got NULL: the request failed) with its latency. */
void ev_add(ev_report_t *r, const ev_case_t *c, const char *got, double ms);
/* Print accuracy, per-kind accuracy and latency percentiles. */
void ev_print(const ev_report_t *r, FILE *f);

#endif
