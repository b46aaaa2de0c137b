/* forward.c — the transformer forward pass (llama and phi3): a batched step over tokens of several sequences, and the one-sequence wrappers. */
#include "engine/forward.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/ev.h"
#include "engine/attention.h"
#include "engine/matvec.h"
#include "engine/ops.h"
#include "engine/profile.h"
#include "engine/quant.h"
#include "model/gguf.h"

/* The numerics follow the reference engine step by step where it is free to do so
 * (double-precision sums in RMSNorm and softmax, RoPE angles by repeated multiplication,
 * f16 K/V cache, f16 query and probabilities in the two attention products, activations
 * quantized to the weight's vec-dot type): these random test models have logits with a
 * standard deviation of ~12, so small differences in the residual stream show up as
 * visible log-probability differences. */

/* Rows whose RMSNorms one call computes together (rmsnorm_rows). */
#define RMS_ROWS 4

/* The sums of squares of nr rows x[r] (n each) in double, as the reference sums them:
 * one serial chain per row in element order. One row alone waits on each add's latency;
 * with the row loop unrolled the compiler puts the rows' chains in the lanes of one
 * vector (each lane still one row's serial sum): 4 rows of 2048 in 2.4 us against 5.2
 * one after the other (gcc -O2, this machine). nr a constant where inlined. */
static inline __attribute__((always_inline)) void sumsq_rows(int nr, const float *const *x, int n, double *ss) {
    double s[RMS_ROWS] = {0};
    for (int i = 0; i < n; i++)
        _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++) s[r] += (double)(x[r][i] * x[r][i]);
    for (int r = 0; r < nr; r++) ss[r] = s[r];
}

/* o[r] (n) = x[r] * (1 / sqrt(mean(x[r]^2) + eps)) * w for nr <= RMS_ROWS rows. */
static void rmsnorm_rows(int nr, float *const *o, const float *const *x, const float *w, int n, float eps) {
    double ss[RMS_ROWS];
    switch (nr) {
    case 1: sumsq_rows(1, x, n, ss); break;
    case 2: sumsq_rows(2, x, n, ss); break;
    case 3: sumsq_rows(3, x, n, ss); break;
    default: sumsq_rows(RMS_ROWS, x, n, ss); break;
    }
    for (int r = 0; r < nr; r++) {
        float mean = (float)(ss[r] / n);
        float scale = 1.0f / sqrtf(mean + eps);
        for (int i = 0; i < n; i++) o[r][i] = (x[r][i] * scale) * w[i];
    }
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    rmsnorm_rows(1, &o, &x, w, n, eps);
}

/* cs (n_rot) = interleaved cos, sin of pos * base^(-2i/n_rot), i = 0..n_rot/2-1; the angle
 * is advanced by repeated multiplication in float, exactly as the reference computes it. */
static void rope_angles(float *cs, int pos, int n_rot, float base) {
    float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot; i += 2) {
        cs[i] = cosf(theta);
        cs[i + 1] = sinf(theta);
        theta *= theta_scale;
    }
}

/* Rotate the first n_rot dims of each of n_heads vectors of hd floats in v. Adjacent pairs
 * (2i, 2i+1) for llama (GGUF files hold Q/K rows permuted for this), halves (i, i+n_rot/2)
 * for NEOX (phi3). */
static void rope_apply(float *v, int n_heads, int hd, int n_rot, int neox, const float *cs) {
    for (int h = 0; h < n_heads; h++) {
        float *p = v + (size_t)h * hd;
        for (int i = 0; i < n_rot; i += 2) {
            float c = cs[i], s = cs[i + 1];
            int a = neox ? i / 2 : i, b = neox ? i / 2 + n_rot / 2 : i + 1;
            float x0 = p[a], x1 = p[b];
            p[a] = x0 * c - x1 * s;
            p[b] = x0 * s + x1 * c;
        }
    }
}

/* Y = X W^T for n rows of which the first nd are decode rows (prompt 0) and the rest
 * prompt rows. Only F16 has two kernel orders; the quantized types give the same bits
 * either way, so they take all rows in one pass over the weights. */
static void mm(tpool_t *pool, const model_tensor_t *W, const float *X, size_t ldx, int n, int nd,
               float *Y, size_t ldy, void *xq) {
    if (nd == 0 || nd == n || W->type != GGML_TYPE_F16) {
        matmat(pool, W, X, ldx, n, Y, ldy, xq, nd < n);
        return;
    }
    matmat(pool, W, X, ldx, nd, Y, ldy, xq, 0);
    matmat(pool, W, X + (size_t)nd * ldx, ldx, n - nd, Y + (size_t)nd * ldy, ldy, xq, 1);
}

/* mm of nw matrices that read the same X (Q, K, V; gate, up): one conversion of X and
 * one fork-join for all (matmat_multi), except for F16 with both kinds of rows. */
static void mm_multi(tpool_t *pool, const model_tensor_t *const *Ws, int nw, const float *X, size_t ldx, int n,
                     int nd, float *const *Ys, size_t ldy, void *xq) {
    int split = 0;
    for (int m = 0; m < nw; m++) split |= nd != 0 && nd != n && Ws[m]->type == GGML_TYPE_F16;
    if (!split) {
        matmat_multi(pool, Ws, nw, X, ldx, n, Ys, ldy, xq, nd < n);
        return;
    }
    for (int m = 0; m < nw; m++) mm(pool, Ws[m], X, ldx, n, nd, Ys[m], ldy, xq);
}

size_t forward_kv_bytes(const model_hparams_t *hp, int n_ctx) {
    return 2 * (size_t)hp->n_layer * (size_t)n_ctx * hp->n_head_kv * hp->head_dim * sizeof(uint16_t);
}

/* ---- the per-row work between the products ---------------------------------------- */

/* What runs on each row outside the weight products, one phase at a time. A step with
 * several rows shares each phase's rows out over the pool (claimed one by one, so a
 * descheduled worker costs nothing); a few rows stay on the caller. */
enum row_phase { /* profile.h's EP_PHASES, in this order */
    PH_ATTN_NORM, /* (l > 0: x += the last layer's FFN output) xb = rmsnorm(x) */
    PH_ROPE_KV,   /* rotate q and k, store k and v in the row's f16 cache */
    PH_ATTEND,    /* xb = attention of the row (each thread on its own scratch slot) */
    PH_FFN_NORM,  /* x += attention output projection; xb = rmsnorm(x) */
    PH_SILU,      /* gate = silu(gate) * up */
};
_Static_assert(PH_SILU + 1 == EP_PHASES, "profile.h counts the phases");

static int is_norm(enum row_phase p) {
    return p == PH_ATTN_NORM || p == PH_FFN_NORM;
}

/* One phase's shared state; only `next` is written while the threads run. */
typedef struct row_job {
    const model_t *m;
    forward_state_t *s;
    const fwd_row_t *rows;
    const ops_kernels_t *ops;
    int n, l;
    enum row_phase phase;
    int group;        /* rows per claim: several for the norms (rmsnorm_rows), else one */
    atomic_int next;
} row_job_t;

/* PH_ATTN_NORM or PH_FFN_NORM over rows t0 .. t0 + nr - 1 (nr <= RMS_ROWS): each row's
 * residual update (or, at layer 0, its RoPE angles), then their norms together. */
static void norm_rows(row_job_t *j, int t0, int nr) {
    const model_hparams_t *hp = &j->m->hp;
    const model_layer_t *w = &j->m->layers[j->l];
    forward_state_t *s = j->s;
    size_t Dz = (size_t)hp->n_embd;
    int attn = j->phase == PH_ATTN_NORM; /* else PH_FFN_NORM */
    float *o[RMS_ROWS];
    const float *x[RMS_ROWS];
    for (int r = 0; r < nr; r++) {
        int t = t0 + r;
        float *xt = s->bx + t * Dz;
        if (attn && j->l == 0)
            rope_angles(s->rope + (size_t)t * hp->n_rot, j->rows[t].pos, hp->n_rot, hp->rope_base);
        else
            j->ops->add(xt, s->bxb2 + t * Dz, hp->n_embd);
        x[r] = xt, o[r] = s->bxb + t * Dz;
    }
    rmsnorm_rows(nr, o, x, attn ? w->attn_norm : w->ffn_norm, hp->n_embd, hp->norm_eps);
}

/* One row of a phase other than the norms, on thread ith. */
static void row_phase_one(row_job_t *j, int t, int ith) {
    const model_t *m = j->m;
    const model_hparams_t *hp = &m->hp;
    forward_state_t *s = j->s;
    int D = hp->n_embd, hd = hp->head_dim, kv_dim = hp->n_head_kv * hd, F = hp->n_ff;
    size_t Dz = (size_t)D, W = (size_t)D + 2 * (size_t)kv_dim;
    const fwd_row_t *r = &j->rows[t];
    float *xb = s->bxb + t * Dz, *q = s->bqkv + t * W;
    const float *cs = s->rope + (size_t)t * hp->n_rot; /* this row's angles (norm_rows, layer 0) */
    float inv_sqrt = 1.0f / sqrtf((float)hd);
    switch (j->phase) {
    case PH_ATTN_NORM:
    case PH_FFN_NORM: /* several rows at once: norm_rows */
        break;
    case PH_ROPE_KV: {
        float *k = q + D, *v = k + kv_dim;
        rope_apply(q, hp->n_head, hd, hp->n_rot, hp->rope_neox, cs);
        rope_apply(k, hp->n_head_kv, hd, hp->n_rot, hp->rope_neox, cs);
        /* llama scales scores inside the softmax; phi3 scales q before the product */
        if (m->arch == MODEL_ARCH_PHI3)
            for (int i = 0; i < D; i++) q[i] *= inv_sqrt;
        size_t off = ((size_t)j->l * r->kv->n_ctx + r->pos) * kv_dim;
        j->ops->to_f16(r->kv->key + off, k, kv_dim);
        j->ops->to_f16(r->kv->val + off, v, kv_dim);
        break;
    }
    case PH_ATTEND: {
        float scale = m->arch == MODEL_ARCH_PHI3 ? 1.0f : inv_sqrt;
        size_t loff = (size_t)j->l * r->kv->n_ctx * kv_dim;
        attn_cache_t c = {r->kv->key + loff, r->kv->val + loff, r->kv->n_ctx};
        if (ith < 0) /* the caller alone, heads shared out over the pool */
            attention(hp, &c, r->pos, q, scale, r->prompt, s->attn, s->pool, xb);
        else
            attention_slot(hp, &c, r->pos, q, scale, r->prompt, s->attn, ith, xb);
        break;
    }
    case PH_SILU: {
        float *gate = s->bhb + t * 2 * (size_t)F;
        j->ops->silu_mul(gate, gate + F, F);
        break;
    }
    }
}

static void row_worker(void *arg, int ith) {
    row_job_t *j = arg;
    /* attention's scratch has ATTN_MAX_THREADS slots: threads beyond leave the rows to
     * the others */
    if (j->phase == PH_ATTEND && ith >= ATTN_MAX_THREADS) return;
    int norm = is_norm(j->phase), g = j->group;
    for (int t; (t = atomic_fetch_add_explicit(&j->next, g, memory_order_relaxed)) < j->n;) {
        if (norm)
            norm_rows(j, t, j->n - t < g ? j->n - t : g);
        else
            row_phase_one(j, t, ith);
    }
}

/* Rows from which a step shares its element-wise phases out: one row's phase takes 2-6 us
 * (TinyLlama to Mistral 7B shapes) and a round trip through the pool 5-10 us on a
 * loaded machine (docs/engine.md). */
#define ROWS_MIN_SHARE 4

/* Run one phase over all rows: over the pool when there are rows enough to share
 * (attention: two per thread, else each row's heads are shared instead), else here. */
static void run_rows(row_job_t *j, enum row_phase phase) {
    eng_profile_t *prof = eng_profile;
    double t0 = prof ? ev_clock_s() : 0;
    int nth = tpool_size(j->s->pool);
    j->phase = phase;
    atomic_store_explicit(&j->next, 0, memory_order_relaxed);
    int share = nth > 1 && j->n >= (phase == PH_ATTEND ? 2 * nth : ROWS_MIN_SHARE);
    /* the norms in groups: an even share of the rows per thread, at most RMS_ROWS */
    int g = share ? (j->n + nth - 1) / nth : j->n;
    j->group = is_norm(phase) ? (g < RMS_ROWS ? g : RMS_ROWS) : 1;
    if (share)
        tpool_run(j->s->pool, row_worker, j);
    else if (phase == PH_ATTEND)
        for (int t = 0; t < j->n; t++) row_phase_one(j, t, -1);
    else
        row_worker(j, 0);
    if (prof) prof->phase_s[phase] += ev_clock_s() - t0;
}

int forward_batch(const model_t *m, forward_state_t *s, const fwd_row_t *rows, int n) {
    const model_hparams_t *hp = &m->hp;
    int D = hp->n_embd, kv_dim = hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    size_t Dz = (size_t)D, W = (size_t)D + 2 * (size_t)kv_dim, F2 = 2 * (size_t)F;
    size_t V = (size_t)hp->n_vocab;
    tpool_t *pool = s->pool;
    if (n <= 0 || n > s->n_batch) return -EINVAL;
    int nd = 0, nl = 0;
    for (int t = 0; t < n; t++) {
        const fwd_row_t *r = &rows[t];
        if (r->token < 0 || r->token >= hp->n_vocab || !r->kv || r->pos < 0 ||
            r->pos >= r->kv->n_ctx || r->kv->n_ctx > s->n_ctx)
            return -EINVAL;
        if (!r->prompt) {
            if (nd != t) return -EINVAL; /* decode rows first */
            nd++;
        }
        nl += r->want_logits != 0;
        quant_dequantize_row(m->tok_embd.type,
                             (const uint8_t *)m->tok_embd.data + (size_t)r->token * m->tok_embd.row_bytes,
                             s->bx + t * Dz, D);
    }
    if (nl > s->n_logits) return -EINVAL;
    row_job_t job = {.m = m, .s = s, .rows = rows, .ops = ops_kernels(), .n = n};
    for (int l = 0; l < hp->n_layer; l++) {
        const model_layer_t *w = &m->layers[l];
        job.l = l;
        run_rows(&job, PH_ATTN_NORM);
        if (m->arch == MODEL_ARCH_PHI3) {
            mm(pool, &w->wqkv, s->bxb, Dz, n, nd, s->bqkv, W, s->bxq);
        } else {
            const model_tensor_t *ws[3] = {&w->wq, &w->wk, &w->wv};
            float *ys[3] = {s->bqkv, s->bqkv + D, s->bqkv + D + kv_dim};
            mm_multi(pool, ws, 3, s->bxb, Dz, n, nd, ys, W, s->bxq);
        }
        /* every row's k, v are stored before any row attends: a prompt's later rows
         * attend to its earlier ones */
        run_rows(&job, PH_ROPE_KV);
        run_rows(&job, PH_ATTEND);
        mm(pool, &w->wo, s->bxb, Dz, n, nd, s->bxb2, Dz, s->bxq);
        run_rows(&job, PH_FFN_NORM);
        if (m->arch == MODEL_ARCH_PHI3) {
            mm(pool, &w->w_up, s->bxb, Dz, n, nd, s->bhb, F2, s->bxq); /* (2F): gate then up */
        } else {
            const model_tensor_t *ws[2] = {&w->w_gate, &w->w_up};
            float *ys[2] = {s->bhb, s->bhb + F};
            mm_multi(pool, ws, 2, s->bxb, Dz, n, nd, ys, F2, s->bxq);
        }
        run_rows(&job, PH_SILU);
        mm(pool, &w->w_down, s->bhb, F2, n, nd, s->bxb2, Dz, s->bxq);
    }
    if (!nl) return 0;
    /* only the rows that are sampled from go through the (large) output matrix: their
     * streams (with the last FFN output added) normed and gathered in row order, decode
     * rows still first */
    int k = 0, nld = 0;
    for (int t = 0; t < n; t++) {
        if (!rows[t].want_logits) continue;
        job.ops->add(s->bx + t * Dz, s->bxb2 + t * Dz, D);
        rmsnorm(s->bxb + k * Dz, s->bx + t * Dz, m->output_norm, D, hp->norm_eps);
        nld += !rows[t].prompt;
        k++;
    }
    mm(pool, &m->output, s->bxb, Dz, nl, nld, s->logits, V, s->bxq);
    return 0;
}

static fwd_kv_t own_kv(const forward_state_t *s) {
    return (fwd_kv_t){s->key_cache, s->val_cache, s->n_ctx};
}

const float *forward(const model_t *m, forward_state_t *s, int token, int pos) {
    if (!s->key_cache) return NULL;
    fwd_kv_t kv = own_kv(s);
    fwd_row_t r = {.token = token, .pos = pos, .kv = &kv, .prompt = 0, .want_logits = 1};
    return forward_batch(m, s, &r, 1) ? NULL : s->logits;
}

const float *forward_prompt(const model_t *m, forward_state_t *s, const int32_t *tokens, int n,
                            int pos0) {
    if (!s->key_cache || n <= 0 || pos0 < 0 || pos0 + n > s->n_ctx) return NULL;
    fwd_kv_t kv = own_kv(s);
    fwd_row_t rows[FORWARD_BATCH];
    int cap = s->n_batch < FORWARD_BATCH ? s->n_batch : FORWARD_BATCH;
    for (int i = 0; i < n; i += cap) {
        int nb = n - i < cap ? n - i : cap;
        for (int t = 0; t < nb; t++)
            rows[t] = (fwd_row_t){.token = tokens[i + t], .pos = pos0 + i + t, .kv = &kv,
                                  .prompt = n > 1, .want_logits = i + t == n - 1};
        if (forward_batch(m, s, rows, nb)) return NULL;
    }
    return s->logits;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

int forward_state_new_batch(const model_t *m, int n_ctx, int n_batch, int n_logits, int own_kv,
                            forward_state_t **out) {
    const model_hparams_t *hp = &m->hp;
    *out = NULL;
    if (n_ctx <= 0) n_ctx = hp->n_ctx_train;
    if (n_ctx <= 0 || n_ctx > (1 << 22) || n_batch <= 0 || n_batch > 4096 || n_logits <= 0 ||
        n_logits > n_batch)
        return -EINVAL;
    forward_state_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    size_t D = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    size_t KV = (size_t)hp->n_head_kv * hp->head_dim, L = (size_t)hp->n_layer;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    s->n_logits = n_logits;
    /* the activation scratch must fit the widest quantized input of any matrix */
    size_t xq = matvec_xq_bytes(m->output.type, m->output.cols);
    for (size_t l = 0; l < L; l++) {
        const model_layer_t *w = &m->layers[l];
        const model_tensor_t *ts[] = {&w->wq, &w->wk, &w->wv, &w->wqkv, &w->wo,
                                      &w->w_gate, &w->w_up, &w->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            if (ts[i]->data) xq = max_sz(xq, matvec_xq_bytes(ts[i]->type, ts[i]->cols));
    }
    s->xq_bytes = xq;
    s->attn = attn_scratch_new(hp, n_ctx, ATTN_MAX_THREADS);
    s->rope = calloc((size_t)n_batch * hp->n_rot, sizeof(float));
    if (own_kv) {
        s->key_cache = calloc(L * (size_t)n_ctx * KV, sizeof(uint16_t));
        s->val_cache = calloc(L * (size_t)n_ctx * KV, sizeof(uint16_t));
    }
    s->logits = calloc((size_t)n_logits * hp->n_vocab, sizeof(float));
    size_t B = (size_t)n_batch;
    s->bx = calloc(B * D, sizeof(float));
    s->bxb = calloc(B * D, sizeof(float));
    s->bxb2 = calloc(B * D, sizeof(float));
    s->bqkv = calloc(B * (D + 2 * KV), sizeof(float));
    s->bhb = calloc(B * 2 * F, sizeof(float));
    s->bxq = aligned_alloc(64, (B * xq + 63) / 64 * 64 + 64);
    if (!s->bx || !s->bxb || !s->bxb2 || !s->bqkv || !s->bhb || !s->bxq || !s->attn ||
        !s->rope || (own_kv && (!s->key_cache || !s->val_cache)) || !s->logits) {
        forward_state_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

int forward_state_new(const model_t *m, int n_ctx, forward_state_t **out) {
    return forward_state_new_batch(m, n_ctx, FORWARD_BATCH, 1, 1, out);
}

void forward_state_free(forward_state_t *s) {
    if (!s) return;
    attn_scratch_free(s->attn);
    free(s->rope);
    free(s->key_cache);
    free(s->val_cache);
    free(s->logits);
    free(s->bx);
    free(s->bxb);
    free(s->bxb2);
    free(s->bqkv);
    free(s->bhb);
    free(s->bxq);
    free(s);
}
