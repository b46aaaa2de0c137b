/* test_forward.c — the forward pass against the reference engine's log-probabilities (../shared/ref). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/json.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/quant.h"

#include "model/tokenizer.h"

/* Tolerances on |our log-prob - reference log-prob|, in nats, by the weight types of the
 * file (docs/engine.md "Forward pass and accuracy" has the measurements).
 *
 * The engine reproduces the reference's arithmetic order (matvec.c, forward.c), so where
 * it does so exactly the only differences left are last-bit ones (measured <= 3e-4 on
 * F16, ~1e-5 on Q8_0, Q6_K and the K-quant mixes). What a tolerance must allow for is
 * a different rounding of one 8-bit activation code (8-bit activations before every
 * quantized product): these random models have logits with a standard deviation of ~12
 * and one such flip moves log-probs by 0.04-0.45 nats. So:
 *  - F16: no 8-bit activations, f16 roundings only: 0.01;
 *  - Q8_0, Q6_K, K-quant mixes: our order is the reference's, no flip occurs: 0.05
 *    (a flip, i.e. a kernel that stopped matching the reference, fails the test);
 *  - Q4_0: the reference repacks Q4_0 for kernels whose order we match in all but one
 *    of 96 steps (one flip, 0.22 nats, then carried by the KV cache): 0.30, still
 *    better than the 0.6 of an independent engine quoted in ref/README.md. */
#define TOL_F16 0.01
#define TOL_EXACT 0.05
#define TOL_Q4_0 0.30

/* Under AddressSanitizer the scalar kernels run ~20x slower: check the first completion
 * of every file there (same code paths), all of them otherwise. */
#if defined(__SANITIZE_ADDRESS__)
#define MAX_COMPLETIONS 1
#else
#define MAX_COMPLETIONS 1000
#endif

typedef struct ref_doc {
    char *text;
    size_t len;
    json_tok_t *toks;
    json_doc_t d;
} ref_doc_t;

static const char *ref_dir(void) {
    const char *r = getenv("TOLLGATE_REF");
    return r && *r ? r : "../shared/ref";
}

static int read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        fclose(f);
        return -EIO;
    }
    fclose(f);
    p[n] = 0;
    *out = p;
    *len = (size_t)n;
    return 0;
}

static int ref_load(const char *path, ref_doc_t *r) {
    size_t cap = 1 << 17, err_pos = 0;
    memset(r, 0, sizeof *r);
    if (read_file(path, &r->text, &r->len) != 0) return -1;
    r->toks = malloc(cap * sizeof *r->toks);
    int n = json_parse(r->text, r->len, r->toks, cap, 0, &r->d, &err_pos);
    if (n < 0) {
        fprintf(stderr, "%s: JSON error %d at %zu\n", path, n, err_pos);
        return -1;
    }
    return 0;
}

static void ref_free(ref_doc_t *r) {
    free(r->text);
    free(r->toks);
}

static int get_int(const json_doc_t *d, int tok) {
    int64_t v = -1;
    if (tok < 0 || json_get_i64(d, tok, &v) != 0) return -1;
    return (int)v;
}

static double get_num(const json_doc_t *d, int tok) {
    double v = NAN;
    if (tok >= 0) json_get_double(d, tok, &v);
    return v;
}

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Prompt token ids (with BOS, no special-token parsing) into ids; the count, or -1. */
static int prompt_tokens(const tokenizer_t *t, const char *prompt, int32_t *ids, int cap) {
    int n = tok_encode(t, prompt, strlen(prompt), 1, 0, ids, cap);
    return n < 0 || n > cap ? -1 : n;
}

/* The reference reports a token that does not complete a UTF-8 character (a byte token)
 * merged with the next one: one step whose text starts with U+FFFD, with the id and
 * log-probs of the later token, and one step fewer than tokens_predicted. 1 when step k
 * is such a merged step: its text starts with U+FFFD but the piece of its id does not. */
static int merged_step(const json_doc_t *d, int step, const tokenizer_t *t, int id) {
    buf_t b;
    size_t len;
    buf_init(&b);
    json_str_unescape(d, json_obj_get(d, step, "text"), &b);
    int fffd = b.len >= 3 && !memcmp(b.data, "\xef\xbf\xbd", 3);
    buf_free(&b);
    const char *piece = tok_piece(t, id, 0, &len);
    return fffd && !(len >= 3 && !memcmp(piece, "\xef\xbf\xbd", 3));
}

/* Before a merged step: feed the byte tokens the reference generated but did not list,
 * i.e. our greedy choice while it is a byte token, at most *missing of them. */
static const float *feed_hidden_bytes(const model_t *m, forward_state_t *s, const tokenizer_t *t,
                                      const float *logits, int *pos, int *missing, int want) {
    while (*missing > 0) {
        int b = argmax(logits, m->hp.n_vocab);
        if (b == want || tok_type(t, b) != TOK_TYPE_BYTE) break;
        logits = forward(m, s, b, (*pos)++);
        (*missing)--;
        if (!logits) break;
    }
    return logits;
}

/* lp (V) = log_softmax(logits), in double. */
static void log_softmax(const float *logits, int n, double *lp) {
    double max = -INFINITY, sum = 0.0;
    for (int i = 0; i < n; i++)
        if (logits[i] > max) max = logits[i];
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - max);
    double lse = max + log(sum);
    for (int i = 0; i < n; i++) lp[i] = (double)logits[i] - lse;
}

/* The tolerance for a file: the loosest of its weight types. */
static double model_tolerance(const model_t *m, const char **why) {
    int worst = 0; /* 0 F16/F32, 1 8-bit activations in our exact order, 2 Q4_0 */
    for (int l = -1; l < m->hp.n_layer; l++) {
        const model_tensor_t *ts[8] = {&m->tok_embd, &m->output};
        int n = 2;
        if (l >= 0) {
            const model_layer_t *w = &m->layers[l];
            const model_tensor_t *lt[] = {&w->wq, &w->wk, &w->wv, &w->wqkv, &w->wo,
                                          &w->w_gate, &w->w_up, &w->w_down};
            memcpy(ts, lt, sizeof lt);
            n = 8;
        }
        for (int i = 0; i < n; i++) {
            if (!ts[i]->data) continue;
            int t = ts[i]->type;
            int rank = t == GGML_TYPE_Q4_0 ? 2 : (t == GGML_TYPE_F16 || t == GGML_TYPE_F32) ? 0 : 1;
            if (rank > worst) worst = rank;
        }
    }
    static const double tols[] = {TOL_F16, TOL_EXACT, TOL_Q4_0};
    static const char *names[] = {"F16", "8-bit", "Q4_0"};
    *why = names[worst];
    return tols[worst];
}

typedef struct stats {
    double max_diff;     /* over every compared log-prob */
    int n_compared;      /* log-probs compared */
    int n_steps;         /* teacher-forced steps */
    int greedy_checked;  /* greedy steps required to match */
    int greedy_matched;
} stats_t;

/* Teacher-force one completion, comparing every step; then greedy-decode it again. */
static void run_completion(const model_t *m, const tokenizer_t *t, forward_state_t *s,
                           const ref_doc_t *r, int comp, double tol, double *lp, stats_t *st,
                           const char *model_name) {
    const json_doc_t *d = &r->d;
    char prompt[512];
    int32_t ids[512];
    buf_t pb;
    buf_init(&pb);
    json_str_unescape(d, json_obj_get(d, comp, "prompt"), &pb);
    snprintf(prompt, sizeof prompt, "%s", pb.data ? pb.data : "");
    buf_free(&pb);
    int n_prompt = prompt_tokens(t, prompt, ids, 256);
    CHECK_MSG(n_prompt > 1, "%s: cannot tokenize \"%s\"", model_name, prompt);
    if (n_prompt <= 1) return;
    int steps = json_obj_get(d, comp, "steps");
    int n_steps = 0, missing;
    while (json_arr_get(d, steps, (size_t)n_steps) >= 0) n_steps++;
    int n_pred = get_int(d, json_obj_get(d, comp, "tokens_predicted"));

    /* teacher forcing: logits after the prompt predict step 0, and so on */
    const float *logits = NULL;
    int pos = 0;
    logits = forward_prompt(m, s, ids, n_prompt, 0);
    pos = n_prompt;
    CHECK(logits != NULL);
    if (!logits) return;
    double comp_max = 0.0;
    missing = n_pred > n_steps ? n_pred - n_steps : 0;
    for (int k = 0; k < n_steps; k++) {
        int step = json_arr_get(d, steps, (size_t)k);
        int id = get_int(d, json_obj_get(d, step, "id"));
        if (missing && merged_step(d, step, t, id)) {
            logits = feed_hidden_bytes(m, s, t, logits, &pos, &missing, id);
            if (!logits) return;
        }
        log_softmax(logits, m->hp.n_vocab, lp);
        double want = get_num(d, json_obj_get(d, step, "logprob"));
        double diff = fabs(lp[id] - want);
        int top = json_obj_get(d, step, "top");
        for (size_t j = 0;; j++) {
            int e = json_arr_get(d, top, j);
            if (e < 0) break;
            int tid = get_int(d, json_obj_get(d, e, "id"));
            double tl = get_num(d, json_obj_get(d, e, "logprob"));
            double dd = fabs(lp[tid] - tl);
            if (getenv("TOLLGATE_FWD_VERBOSE")) printf("      id %6d ours %9.5f ref %9.5f\n", tid, lp[tid], tl);
            if (dd > diff) diff = dd;
            st->n_compared++;
        }
        st->n_compared++;
        st->n_steps++;
        if (diff > comp_max) comp_max = diff;
        if (getenv("TOLLGATE_FWD_VERBOSE")) printf("    step %2d diff %.5f\n", k, diff);
        CHECK_MSG(diff <= tol, "%s \"%s\" step %d: log-prob diff %.4f > %.2f", model_name, prompt,
                  k, diff, tol);
        logits = forward(m, s, id, pos++);
        CHECK(logits != NULL);
        if (!logits) return;
    }
    if (comp_max > st->max_diff) st->max_diff = comp_max;

    /* greedy: must reproduce the reference's ids while its top-two margin exceeds tol */
    pos = 0;
    logits = forward_prompt(m, s, ids, n_prompt, 0);
    pos = n_prompt;
    missing = n_pred > n_steps ? n_pred - n_steps : 0;
    for (int k = 0; k < n_steps && logits; k++) {
        int step = json_arr_get(d, steps, (size_t)k);
        int top = json_obj_get(d, step, "top");
        if (missing && merged_step(d, step, t, get_int(d, json_obj_get(d, step, "id")))) {
            logits = feed_hidden_bytes(m, s, t, logits, &pos, &missing,
                                       get_int(d, json_obj_get(d, step, "id")));
            if (!logits) return;
        }
        double l0 = get_num(d, json_obj_get(d, json_arr_get(d, top, 0), "logprob"));
        double l1 = get_num(d, json_obj_get(d, json_arr_get(d, top, 1), "logprob"));
        if (l0 - l1 < tol) break; /* either choice is right from here on */
        int want = get_int(d, json_obj_get(d, step, "id"));
        int got = argmax(logits, m->hp.n_vocab);
        st->greedy_checked++;
        CHECK_MSG(got == want, "%s \"%s\" greedy step %d: %d, reference %d", model_name, prompt,
                  k, got, want);
        if (got != want) break;
        st->greedy_matched++;
        logits = forward(m, s, got, pos++);
    }
}

static void run_model(const char *dir, const char *file) {
    char path[1024], refpath[1024], err[256], base[256];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(file) - 5), file);
    snprintf(path, sizeof path, "%s/models/%s", dir, file);
    snprintf(refpath, sizeof refpath, "%s/expected/%s.ref.json", dir, base);
    model_t m;
    int rc = model_load(path, &m, err, sizeof err);
    CHECK_MSG(rc == 0, "%s: %s", file, err);
    if (rc) return;
    ref_doc_t r;
    if (ref_load(refpath, &r) != 0) {
        CHECK_MSG(0, "%s: cannot read reference %s", file, refpath);
        model_free(&m);
        return;
    }
    tokenizer_t *t = NULL;
    rc = tok_load(&m.file, &t, err, sizeof err);
    CHECK_MSG(rc == 0, "%s: tokenizer: %s", file, err);
    forward_state_t *s = NULL;
    CHECK_EQ_INT(forward_state_new(&m, 512, &s), 0);
    if (rc || !s) {
        tok_free(t);
        forward_state_free(s);
        ref_free(&r);
        model_free(&m);
        return;
    }
    double *lp = malloc((size_t)m.hp.n_vocab * sizeof *lp);
    const char *tname;
    double tol = model_tolerance(&m, &tname);
    stats_t st = {0};
    int comps = json_obj_get(&r.d, 0, "completions");
    for (size_t c = 0; c < MAX_COMPLETIONS; c++) {
        int comp = json_arr_get(&r.d, comps, c);
        if (comp < 0) break;
        run_completion(&m, t, s, &r, comp, tol, lp, &st, base);
    }
    printf("  %-20s %-7s tol %.2f  max |dlogprob| %.6f over %d log-probs (%d steps); "
           "greedy %d/%d\n",
           base, tname, tol, st.max_diff, st.n_compared, st.n_steps, st.greedy_matched,
           st.greedy_checked);
    free(lp);
    tok_free(t);
    forward_state_free(s);
    ref_free(&r);
    model_free(&m);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int main(void) {
    char dir_models[1024];
    const char *dir = ref_dir();
    snprintf(dir_models, sizeof dir_models, "%s/models", dir);
    DIR *dp = opendir(dir_models);
    CHECK_MSG(dp != NULL, "cannot open %s", dir_models);
    char *names[64];
    int n = 0;
    if (dp) {
        struct dirent *e;
        while ((e = readdir(dp)) && n < 64) {
            size_t l = strlen(e->d_name);
            if (l > 5 && !strcmp(e->d_name + l - 5, ".gguf")) names[n++] = strdup(e->d_name);
        }
        closedir(dp);
    }
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    CHECK(n >= 7);
    for (int i = 0; i < n; i++) {
        const char *only = getenv("TOLLGATE_FWD_MODEL"); /* run one file, for debugging */
        if (only && *only && strcmp(only, names[i])) {
            free(names[i]);
            continue;
        }
        run_model(dir, names[i]);
        free(names[i]);
    }
    return check_summary("test_forward");
}
