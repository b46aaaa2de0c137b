/* evalset.c — held-out cases, greedy decoding with the engine, accuracy and latency report. */
#include "train/evalset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "train/trainer.h"

void ev_free(ev_case_t *cases, int n) {
    for (int i = 0; cases && i < n; i++) free(cases[i].input), free(cases[i].output);
    free(cases);
}

int ev_load_jsonl(const char *path, ev_case_t **out, int *nout, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int n = 0, cap = 0, rc = 0, lineno = 0;
    ev_case_t *cs = NULL;
    json_tok_t toks[64];
    *out = NULL, *nout = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    while ((len = getline(&line, &lcap, f)) > 0) {
        lineno++;
        if (len <= 1) continue;
        json_doc_t d;
        if (json_parse(line, (size_t)len, toks, 64, 8, &d, NULL) < 0 ||
            toks[0].type != JSON_OBJECT) {
            snprintf(err, errlen, "%s:%d: not a JSON object", path, lineno);
            rc = -EINVAL;
            break;
        }
        int ti = json_obj_get(&d, 0, "input"), to = json_obj_get(&d, 0, "output"),
            tk = json_obj_get(&d, 0, "kinds");
        if (ti < 0 || to < 0 || toks[ti].type != JSON_STRING || toks[to].type != JSON_STRING) {
            snprintf(err, errlen, "%s:%d: \"input\" and \"output\" strings expected", path, lineno);
            rc = -EINVAL;
            break;
        }
        if (n == cap) {
            ev_case_t *ncs = realloc(cs, sizeof *cs * (size_t)(cap = cap ? cap * 2 : 256));
            if (!ncs) {
                rc = -ENOMEM;
                break;
            }
            cs = ncs;
        }
        buf_t a, b;
        buf_init(&a), buf_init(&b);
        if (json_str_unescape(&d, ti, &a) || json_str_unescape(&d, to, &b)) {
            buf_free(&a), buf_free(&b);
            rc = -ENOMEM;
            break;
        }
        ev_case_t *c = &cs[n++];
        c->input = a.data ? a.data : strdup("");
        c->output = b.data ? b.data : strdup("");
        c->kinds = 0;
        for (int i = 0; tk >= 0 && toks[tk].type == JSON_ARRAY && i < (int)toks[tk].size; i++) {
            int e = json_arr_get(&d, tk, (size_t)i);
            for (int k = 0; k < ORD_N_KINDS; k++)
                if (json_str_eq(&d, e, ord_kind_name(k))) c->kinds |= 1 << k;
        }
    }
    free(line);
    fclose(f);
    if (rc) {
        ev_free(cs, n);
        return rc;
    }
    *out = cs, *nout = n;
    return 0;
}

int ev_greedy(const model_t *m, forward_state_t *s, const tokenizer_t *t, const char *input,
              int max_new, buf_t *out) {
    int32_t ids[512];
    int n = train_encode_prompt(t, input, ids, 512);
    buf_reset(out);
    if (n < 0) return n;
    if (n > 512 || n + max_new > s->n_ctx) n = n > 512 ? 512 : n, max_new = s->n_ctx - n;
    if (max_new <= 0) return -E2BIG;
    const float *lg = forward_prompt(m, s, ids, n, 0);
    tok_stream_t ts;
    tok_stream_init(&ts);
    for (int i = 0; lg && i < max_new; i++) {
        int best = 0;
        for (int v = 1; v < m->hp.n_vocab; v++)
            if (lg[v] > lg[best]) best = v;
        if (tok_is_eog(t, best)) break;
        int rc = tok_stream_push(&ts, t, best, 0, out);
        if (rc) return rc;
        lg = forward(m, s, best, n + i);
    }
    int rc = tok_stream_flush(&ts, out);
    if (!rc && !out->data) rc = buf_appends(out, "");
    return rc;
}

void ev_add(ev_report_t *r, const ev_case_t *c, const char *got, double ms) {
    int ok = got && !strcmp(got, c->output);
    if (!got) r->errors++;
    if (r->n < r->cap) r->lat_ms[r->n] = ms;
    r->n++, r->ok += ok;
    for (int k = 0; k < ORD_N_KINDS; k++)
        if (c->kinds & (1 << k)) r->kn[k]++, r->kok[k] += ok;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void ev_print(const ev_report_t *r, FILE *f) {
    fprintf(f, "exact match: %ld/%ld = %.2f%%", r->ok, r->n, r->n ? 100.0 * r->ok / r->n : 0.0);
    if (r->errors || r->fallbacks)
        fprintf(f, " (%ld request errors, %ld fallbacks)", r->errors, r->fallbacks);
    fprintf(f, "\nper kind:\n");
    for (int k = 0; k < ORD_N_KINDS; k++)
        if (r->kn[k])
            fprintf(f, "  %-8s %5ld/%-5ld %6.2f%%\n", ord_kind_name(k), r->kok[k], r->kn[k],
                    100.0 * r->kok[k] / r->kn[k]);
    long n = r->n < r->cap ? r->n : r->cap;
    if (n > 0) {
        double *l = malloc(sizeof(double) * (size_t)n);
        if (!l) return;
        memcpy(l, r->lat_ms, sizeof(double) * (size_t)n);
        qsort(l, (size_t)n, sizeof(double), cmp_d);
        double sum = 0;
        for (long i = 0; i < n; i++) sum += l[i];
        fprintf(f, "latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", l[n / 2],
                l[(long)(n * 0.9)], l[(long)(n * 0.99) < n ? (long)(n * 0.99) : n - 1], l[n - 1],
                sum / n);
        free(l);
    }
}
