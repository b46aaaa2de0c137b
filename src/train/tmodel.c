/* tmodel.c — forward and backward of the trainable llama model for one sequence. */
#include "train/tmodel.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"
#include "train/tkern.h"

size_t tm_param_count(const tm_config_t *c) {
    size_t V = c->vocab, D = c->dim, L = c->n_layer, F = c->ff;
    return V * D + L * (2 * D + 4 * D * D + 3 * F * D) + D;
}

void tm_params_bind(const tm_config_t *c, float *m, tm_params_t *p) {
    size_t V = c->vocab, D = c->dim, L = c->n_layer, F = c->ff;
    p->tok_embd = m, m += V * D;
    p->attn_norm = m, m += L * D;
    p->wq = m, m += L * D * D;
    p->wk = m, m += L * D * D;
    p->wv = m, m += L * D * D;
    p->wo = m, m += L * D * D;
    p->ffn_norm = m, m += L * D;
    p->w_gate = m, m += L * F * D;
    p->w_up = m, m += L * F * D;
    p->w_down = m, m += L * D * F;
    p->out_norm = m;
}

static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Standard normal by Box-Muller. */
static float gauss(uint64_t *s) {
    double u1 = ((mix(s) >> 11) + 1.0) / 9007199254740993.0,
           u2 = (mix(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void fill(float *w, size_t n, float std, uint64_t *s) {
    for (size_t i = 0; i < n; i++) w[i] = std * gauss(s);
}

void tm_params_init(const tm_config_t *c, float *mem, uint64_t seed) {
    tm_params_t p;
    size_t V = c->vocab, D = c->dim, L = c->n_layer, F = c->ff;
    uint64_t s = seed ^ 0x5DEECE66Dull;
    tm_params_bind(c, mem, &p);
    /* residual projections scaled down with depth, as GPT-2 does, so that the stream's
     * variance does not grow with the number of layers */
    float std = 0.02f, rstd = 0.02f / sqrtf(2.0f * (float)L);
    fill(p.tok_embd, V * D, std, &s);
    fill(p.wq, L * D * D, std, &s);
    fill(p.wk, L * D * D, std, &s);
    fill(p.wv, L * D * D, std, &s);
    fill(p.wo, L * D * D, rstd, &s);
    fill(p.w_gate, L * F * D, std, &s);
    fill(p.w_up, L * F * D, std, &s);
    fill(p.w_down, L * D * F, rstd, &s);
    for (size_t i = 0; i < L * D; i++) p.attn_norm[i] = p.ffn_norm[i] = 1.0f;
    for (size_t i = 0; i < D; i++) p.out_norm[i] = 1.0f;
}

void tm_acts_free(tm_acts_t *a) {
    float **fs[] = {&a->res,   &a->xn1, &a->rstd1,  &a->q,     &a->k,    &a->v,   &a->att,
                    &a->ao,    &a->mid, &a->xn2,    &a->rstd2, &a->gate, &a->up,  &a->hsw,
                    &a->rstdf, &a->xf,  &a->logits, &a->dres,  &a->dx,   &a->dq,  &a->dk,
                    &a->dv,    &a->dao, &a->dh,     &a->dg,    &a->du,   &a->dxf, &a->rope};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) free(*fs[i]), *fs[i] = NULL;
    free(a->rows);
    a->rows = NULL;
}

int tm_acts_new(const tm_config_t *c, tm_acts_t *a) {
    size_t V = c->vocab, D = c->dim, L = c->n_layer, F = c->ff, T = c->ctx, H = c->n_head;
    size_t hd = D / H;
    memset(a, 0, sizeof *a);
#define A(f, n) (a->f = calloc((n), sizeof(float)))
    A(res, (L + 1) * T * D), A(xn1, L * T * D), A(rstd1, L * T), A(q, L * T * D), A(k, L * T * D);
    A(v, L * T * D), A(att, L * H * T * T), A(ao, L * T * D), A(mid, L * T * D), A(xn2, L * T * D);
    A(rstd2, L * T), A(gate, L * T * F), A(up, L * T * F), A(hsw, L * T * F), A(rstdf, T);
    A(xf, T * D), A(logits, T * V), A(dres, T * D), A(dx, T * D), A(dq, T * D), A(dk, T * D);
    A(dv, T * D), A(dao, T * D), A(dh, T * F), A(dg, T * F), A(du, T * F), A(dxf, T * D);
    A(rope, T * hd);
#undef A
    a->rows = calloc(T, sizeof(int));
    if (!a->res || !a->xn1 || !a->rstd1 || !a->q || !a->k || !a->v || !a->att || !a->ao ||
        !a->mid || !a->xn2 || !a->rstd2 || !a->gate || !a->up || !a->hsw || !a->rstdf || !a->xf ||
        !a->logits || !a->dres || !a->dx || !a->dq || !a->dk || !a->dv || !a->dao || !a->dh ||
        !a->dg || !a->du || !a->dxf || !a->rope || !a->rows) {
        tm_acts_free(a);
        return -ENOMEM;
    }
    /* RoPE table: pair i of position t turns by t * base^(-2i/hd), as the engine */
    for (size_t t = 0; t < T; t++)
        for (size_t i = 0; i < hd / 2; i++) {
            double th = (double)t * pow(c->rope_base, -2.0 * (double)i / (double)hd);
            a->rope[t * hd + 2 * i] = (float)cos(th);
            a->rope[t * hd + 2 * i + 1] = (float)sin(th);
        }
    return 0;
}

/* o (D) = x * rstd * w; returns rstd. */
static float rmsnorm(float *o, const float *x, const float *w, int D, float eps) {
    double ss = 0;
    for (int i = 0; i < D; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / D) + eps);
    for (int i = 0; i < D; i++) o[i] = x[i] * r * w[i];
    return r;
}

/* dx (D) += d(rmsnorm)/dx . dy; dw (D) += dy * x * r. */
static void rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                        float r, int D) {
    double dot = 0;
    for (int i = 0; i < D; i++) dot += (double)dy[i] * w[i] * x[i];
    float k = (float)(dot / D) * r * r;
    for (int i = 0; i < D; i++) {
        dx[i] += r * (dy[i] * w[i] - x[i] * k);
        dw[i] += dy[i] * x[i] * r;
    }
}

/* Rotate n_heads vectors of hd at v by the table row cs (dir = -1: the inverse). */
static void rope(float *v, int D, int hd, const float *cs, float dir) {
    for (int h = 0; h < D; h += hd)
        for (int i = 0; i < hd; i += 2) {
            float c = cs[i], s = dir * cs[i + 1], x0 = v[h + i], x1 = v[h + i + 1];
            v[h + i] = x0 * c - x1 * s;
            v[h + i + 1] = x0 * s + x1 * c;
        }
}

static float sigm(float x) {
    return 1.0f / (1.0f + expf(-x));
}

double tm_forward(const tm_config_t *c, const tm_params_t *p, tm_acts_t *a, const int32_t *tokens,
                  const int32_t *targets, int T, int *n_targets) {
    int V = c->vocab, D = c->dim, L = c->n_layer, F = c->ff, H = c->n_head, hd = D / H;
    size_t TD = (size_t)T * D, CD = (size_t)c->ctx * D, CF = (size_t)c->ctx * F;
    float scale = 1.0f / sqrtf((float)hd);
    if (T <= 0 || T > c->ctx) return -1;
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= V) return -1;
        memcpy(a->res + (size_t)t * D, p->tok_embd + (size_t)tokens[t] * D, D * sizeof(float));
    }
    for (int l = 0; l < L; l++) {
        float *x = a->res + l * CD, *xn = a->xn1 + l * CD, *q = a->q + l * CD, *k = a->k + l * CD;
        float *v = a->v + l * CD, *ao = a->ao + l * CD, *mid = a->mid + l * CD;
        float *att = a->att + (size_t)l * H * c->ctx * c->ctx;
        for (int t = 0; t < T; t++)
            a->rstd1[l * c->ctx + t] = rmsnorm(xn + (size_t)t * D, x + (size_t)t * D,
                                               p->attn_norm + (size_t)l * D, D, c->norm_eps);
        tk_matmul(q, xn, p->wq + (size_t)l * D * D, T, D, D); /* (T, D) */
        tk_matmul(k, xn, p->wk + (size_t)l * D * D, T, D, D);
        tk_matmul(v, xn, p->wv + (size_t)l * D * D, T, D, D);
        for (int t = 0; t < T; t++) {
            rope(q + (size_t)t * D, D, hd, a->rope + (size_t)t * hd, 1.0f);
            rope(k + (size_t)t * D, D, hd, a->rope + (size_t)t * hd, 1.0f);
        }
        /* causal attention per head; att row (h, t) holds p over positions 0..t */
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                float *pr = att + ((size_t)h * c->ctx + t) * c->ctx, max = -INFINITY;
                const float *qt = q + (size_t)t * D + h * hd;
                for (int s = 0; s <= t; s++) {
                    const float *ks = k + (size_t)s * D + h * hd;
                    float d = 0;
                    for (int i = 0; i < hd; i++) d += qt[i] * ks[i];
                    pr[s] = d * scale;
                    if (pr[s] > max) max = pr[s];
                }
                float sum = 0;
                for (int s = 0; s <= t; s++) sum += (pr[s] = expf(pr[s] - max));
                float *o = ao + (size_t)t * D + h * hd;
                memset(o, 0, hd * sizeof(float));
                for (int s = 0; s <= t; s++) {
                    pr[s] /= sum;
                    const float *vs = v + (size_t)s * D + h * hd;
                    for (int i = 0; i < hd; i++) o[i] += pr[s] * vs[i];
                }
            }
        tk_matmul(mid, ao, p->wo + (size_t)l * D * D, T, D, D);
        for (size_t i = 0; i < TD; i++) mid[i] += x[i];
        float *xn2 = a->xn2 + l * CD, *g = a->gate + l * CF, *u = a->up + l * CF,
              *hs = a->hsw + l * CF;
        float *xo = a->res + (l + 1) * CD;
        for (int t = 0; t < T; t++)
            a->rstd2[l * c->ctx + t] = rmsnorm(xn2 + (size_t)t * D, mid + (size_t)t * D,
                                               p->ffn_norm + (size_t)l * D, D, c->norm_eps);
        tk_matmul(g, xn2, p->w_gate + (size_t)l * F * D, T, D, F); /* (T, F) */
        tk_matmul(u, xn2, p->w_up + (size_t)l * F * D, T, D, F);
        for (size_t i = 0; i < (size_t)T * F; i++) hs[i] = g[i] * sigm(g[i]) * u[i];
        tk_matmul(xo, hs, p->w_down + (size_t)l * D * F, T, F, D);
        for (size_t i = 0; i < TD; i++) xo[i] += mid[i];
    }
    /* final norm and logits only where a loss is taken (most positions are the prompt) */
    const float *xl = a->res + (size_t)L * CD;
    int M = 0;
    for (int t = 0; t < T; t++) {
        if (targets && targets[t] < 0) continue;
        a->rows[M] = t;
        a->rstdf[t] =
            rmsnorm(a->xf + (size_t)M * D, xl + (size_t)t * D, p->out_norm, D, c->norm_eps);
        M++;
    }
    a->M = M;
    tk_matmul(a->logits, a->xf, p->tok_embd, M, D, V); /* (M, V) */
    double loss = 0;
    for (int r = 0; targets && r < M; r++) {
        const float *lg = a->logits + (size_t)r * V;
        float max = -INFINITY;
        for (int i = 0; i < V; i++) max = lg[i] > max ? lg[i] : max;
        double sum = 0;
        for (int i = 0; i < V; i++) sum += exp((double)(lg[i] - max));
        loss += log(sum) + max - lg[targets[a->rows[r]]];
    }
    if (n_targets) *n_targets = targets ? M : 0;
    return loss;
}

void tm_backward(const tm_config_t *c, const tm_params_t *p, const tm_params_t *g, tm_acts_t *a,
                 const int32_t *tokens, const int32_t *targets, int T, float lscale) {
    int V = c->vocab, D = c->dim, L = c->n_layer, F = c->ff, H = c->n_head, hd = D / H, M = a->M;
    size_t TD = (size_t)T * D, TF = (size_t)T * F, CD = (size_t)c->ctx * D, CF = (size_t)c->ctx * F;
    float scale = 1.0f / sqrtf((float)hd);
    /* dlogits = (softmax - onehot) * lscale, in place */
    for (int r = 0; r < M; r++) {
        float *lg = a->logits + (size_t)r * V, max = -INFINITY;
        for (int i = 0; i < V; i++) max = lg[i] > max ? lg[i] : max;
        double sum = 0;
        for (int i = 0; i < V; i++) sum += (lg[i] = expf(lg[i] - max));
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < V; i++) lg[i] *= inv * lscale;
        lg[targets[a->rows[r]]] -= lscale;
    }
    memset(a->dxf, 0, (size_t)M * D * sizeof(float));
    tk_matmul_bwd(a->dxf, g->tok_embd, a->logits, a->xf, p->tok_embd, M, D, V);
    memset(a->dres, 0, TD * sizeof(float));
    const float *xl = a->res + (size_t)L * CD;
    for (int r = 0; r < M; r++) {
        int t = a->rows[r];
        rmsnorm_bwd(a->dres + (size_t)t * D, g->out_norm, a->dxf + (size_t)r * D,
                    xl + (size_t)t * D, p->out_norm, a->rstdf[t], D);
    }
    for (int l = L - 1; l >= 0; l--) {
        /* feed-forward: res[l+1] = mid + w_down . (silu(gate) * up) */
        float *xn2 = a->xn2 + l * CD, *gt = a->gate + l * CF, *u = a->up + l * CF,
              *hs = a->hsw + l * CF;
        float *mid = a->mid + l * CD;
        memset(a->dh, 0, TF * sizeof(float));
        tk_matmul_bwd(a->dh, g->w_down + (size_t)l * D * F, a->dres, hs,
                      p->w_down + (size_t)l * D * F, T, F, D);
        for (size_t i = 0; i < TF; i++) {
            float s = sigm(gt[i]), sl = gt[i] * s;
            a->du[i] = a->dh[i] * sl;
            a->dg[i] = a->dh[i] * u[i] * s * (1.0f + gt[i] * (1.0f - s));
        }
        memset(a->dx, 0, TD * sizeof(float));
        tk_matmul_bwd(a->dx, g->w_gate + (size_t)l * F * D, a->dg, xn2,
                      p->w_gate + (size_t)l * F * D, T, D, F);
        tk_matmul_bwd(a->dx, g->w_up + (size_t)l * F * D, a->du, xn2, p->w_up + (size_t)l * F * D,
                      T, D, F);
        for (int t = 0; t < T; t++)
            rmsnorm_bwd(a->dres + (size_t)t * D, g->ffn_norm + (size_t)l * D, a->dx + (size_t)t * D,
                        mid + (size_t)t * D, p->ffn_norm + (size_t)l * D, a->rstd2[l * c->ctx + t],
                        D);
        /* attention: mid = res[l] + wo . attention(q, k, v) */
        float *x = a->res + l * CD, *xn = a->xn1 + l * CD, *q = a->q + l * CD, *k = a->k + l * CD;
        float *v = a->v + l * CD, *ao = a->ao + l * CD;
        float *att = a->att + (size_t)l * H * c->ctx * c->ctx;
        memset(a->dao, 0, TD * sizeof(float));
        tk_matmul_bwd(a->dao, g->wo + (size_t)l * D * D, a->dres, ao, p->wo + (size_t)l * D * D, T,
                      D, D);
        memset(a->dq, 0, TD * sizeof(float));
        memset(a->dk, 0, TD * sizeof(float));
        memset(a->dv, 0, TD * sizeof(float));
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *pr = att + ((size_t)h * c->ctx + t) * c->ctx;
                const float *dot = a->dao + (size_t)t * D + h * hd,
                            *qt = q + (size_t)t * D + h * hd;
                float *dqt = a->dq + (size_t)t * D + h * hd;
                float dp[512], sum = 0; /* T <= ctx <= 512 (checked by the trainer) */
                for (int s = 0; s <= t; s++) {
                    const float *vs = v + (size_t)s * D + h * hd;
                    float *dvs = a->dv + (size_t)s * D + h * hd, d = 0;
                    for (int i = 0; i < hd; i++) d += dot[i] * vs[i], dvs[i] += pr[s] * dot[i];
                    dp[s] = d;
                    sum += pr[s] * d;
                }
                for (int s = 0; s <= t; s++) {
                    float ds = pr[s] * (dp[s] - sum) * scale;
                    const float *ks = k + (size_t)s * D + h * hd;
                    float *dks = a->dk + (size_t)s * D + h * hd;
                    for (int i = 0; i < hd; i++) dqt[i] += ds * ks[i], dks[i] += ds * qt[i];
                }
            }
        for (int t = 0; t < T; t++) {
            rope(a->dq + (size_t)t * D, D, hd, a->rope + (size_t)t * hd, -1.0f);
            rope(a->dk + (size_t)t * D, D, hd, a->rope + (size_t)t * hd, -1.0f);
        }
        memset(a->dx, 0, TD * sizeof(float));
        tk_matmul_bwd(a->dx, g->wq + (size_t)l * D * D, a->dq, xn, p->wq + (size_t)l * D * D, T, D,
                      D);
        tk_matmul_bwd(a->dx, g->wk + (size_t)l * D * D, a->dk, xn, p->wk + (size_t)l * D * D, T, D,
                      D);
        tk_matmul_bwd(a->dx, g->wv + (size_t)l * D * D, a->dv, xn, p->wv + (size_t)l * D * D, T, D,
                      D);
        for (int t = 0; t < T; t++)
            rmsnorm_bwd(a->dres + (size_t)t * D, g->attn_norm + (size_t)l * D,
                        a->dx + (size_t)t * D, x + (size_t)t * D, p->attn_norm + (size_t)l * D,
                        a->rstd1[l * c->ctx + t], D);
    }
    for (int t = 0; t < T; t++) {
        float *ge = g->tok_embd + (size_t)tokens[t] * D;
        for (int i = 0; i < D; i++) ge[i] += a->dres[(size_t)t * D + i];
    }
}

/* One matrix (rows, cols) as F32 or F16 into the writer. */
static int put(gguf_writer_t *w, const char *name, const float *x, int64_t rows, int64_t cols,
               int f16) {
    int64_t ne[2] = {cols, rows};
    size_t n = (size_t)(rows * cols);
    if (rows == 1 || !f16)
        return gguf_w_tensor(w, name, GGML_TYPE_F32, rows == 1 ? 1 : 2, ne, x, n * 4);
    uint16_t *h = malloc(n * 2);
    if (!h) return -ENOMEM;
    for (size_t i = 0; i < n; i++) h[i] = quant_f32_to_f16(x[i]);
    int rc = gguf_w_tensor(w, name, GGML_TYPE_F16, 2, ne, h, n * 2);
    free(h);
    return rc;
}

int tm_write_gguf(const tm_config_t *c, const tm_params_t *p, int f16, gguf_writer_t *w) {
    int rc, D = c->dim, F = c->ff;
    char n[64];
    if ((rc = gguf_w_u32(w, "llama.context_length", (uint32_t)c->ctx)) ||
        (rc = gguf_w_u32(w, "llama.embedding_length", (uint32_t)D)) ||
        (rc = gguf_w_u32(w, "llama.block_count", (uint32_t)c->n_layer)) ||
        (rc = gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)F)) ||
        (rc = gguf_w_u32(w, "llama.attention.head_count", (uint32_t)c->n_head)) ||
        (rc = gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_head)) ||
        (rc = gguf_w_u32(w, "llama.rope.dimension_count", (uint32_t)(D / c->n_head))) ||
        (rc = gguf_w_f32(w, "llama.rope.freq_base", c->rope_base)) ||
        (rc = gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps)) ||
        (rc = gguf_w_u32(w, "llama.vocab_size", (uint32_t)c->vocab)) ||
        (rc = gguf_w_u32(w, "general.file_type", f16 ? 1 : 0)))
        return rc;
    if ((rc = put(w, "token_embd.weight", p->tok_embd, c->vocab, D, f16)) ||
        (rc = put(w, "output_norm.weight", p->out_norm, 1, D, 0)))
        return rc;
    for (int l = 0; l < c->n_layer; l++) {
        size_t dd = (size_t)l * D * D, fd = (size_t)l * F * D;
#define P(suffix, x, r, cc, h) (snprintf(n, sizeof n, "blk.%d." suffix, l), put(w, n, x, r, cc, h))
        if ((rc = P("attn_norm.weight", p->attn_norm + (size_t)l * D, 1, D, 0)) ||
            (rc = P("attn_q.weight", p->wq + dd, D, D, f16)) ||
            (rc = P("attn_k.weight", p->wk + dd, D, D, f16)) ||
            (rc = P("attn_v.weight", p->wv + dd, D, D, f16)) ||
            (rc = P("attn_output.weight", p->wo + dd, D, D, f16)) ||
            (rc = P("ffn_norm.weight", p->ffn_norm + (size_t)l * D, 1, D, 0)) ||
            (rc = P("ffn_gate.weight", p->w_gate + fd, F, D, f16)) ||
            (rc = P("ffn_up.weight", p->w_up + fd, F, D, f16)) ||
            (rc = P("ffn_down.weight", p->w_down + fd, D, F, f16)))
            return rc;
#undef P
    }
    return 0;
}
