/* forward.c — the transformer forward pass for one token of one sequence (llama and phi3). */
#include "engine/forward.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attention.h"
#include "engine/matvec.h"
#include "engine/quant.h"
#include "engine/vexp.h"

/* The numerics follow the reference engine step by step where it is free to do so
 * (double-precision sums in RMSNorm and softmax, RoPE angles by repeated multiplication,
 * f16 K/V cache, f16 query and probabilities in the two attention products, activations
 * quantized to the weight's vec-dot type): these random test models have logits with a
 * standard deviation of ~12, so small differences in the residual stream show up as
 * visible log-probability differences. */

/* o (n) = x * (1 / sqrt(mean(x^2) + eps)) * w, summing squares in double as the reference. */
static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    float mean = (float)(ss / n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++) o[i] = (x[i] * scale) * w[i];
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

/* attention() over layer l of the state's cache. */
static void attend(const model_t *m, forward_state_t *s, int l, int pos, const float *q, float scale,
                   int prompt, float *out) {
    size_t loff = (size_t)l * s->n_ctx * m->hp.n_head_kv * m->hp.head_dim;
    attn_cache_t c = {s->key_cache + loff, s->val_cache + loff, s->n_ctx};
    attention(&m->hp, &c, pos, q, scale, prompt, s->attn, s->pool, out);
}

static float silu(float x) { return x / (1.0f + v_expf(-x)); }

/* One token through every layer; prompt as in attention(). */
static const float *step(const model_t *m, forward_state_t *s, int token, int pos, int prompt) {
    const model_hparams_t *hp = &m->hp;
    int D = hp->n_embd, hd = hp->head_dim, kv_dim = hp->n_head_kv * hd, F = hp->n_ff;
    if (token < 0 || token >= hp->n_vocab || pos < 0 || pos >= s->n_ctx) return NULL;
    float *x = s->x, *q = s->qkv, *k = s->qkv + D, *v = s->qkv + D + kv_dim;

    /* x (D) = token_embd[token] */
    quant_dequantize_row(m->tok_embd.type,
                         (const uint8_t *)m->tok_embd.data + (size_t)token * m->tok_embd.row_bytes,
                         x, D);
    rope_angles(s->rope, pos, hp->n_rot, hp->rope_base);
    /* llama scales scores inside the softmax; phi3 scales q before the product */
    float inv_sqrt = 1.0f / sqrtf((float)hd);

    for (int l = 0; l < hp->n_layer; l++) {
        const model_layer_t *w = &m->layers[l];
        rmsnorm(s->xb, x, w->attn_norm, D, hp->norm_eps);
        if (m->arch == MODEL_ARCH_PHI3) {
            matvec_mt(s->pool, &w->wqkv, s->xb, s->qkv, s->xq, prompt); /* (D + 2*KV) */
        } else {
            matvec_mt(s->pool, &w->wq, s->xb, q, s->xq, prompt); /* (D) */
            matvec_mt(s->pool, &w->wk, s->xb, k, s->xq, prompt); /* (KV) */
            matvec_mt(s->pool, &w->wv, s->xb, v, s->xq, prompt); /* (KV) */
        }
        rope_apply(q, hp->n_head, hd, hp->n_rot, hp->rope_neox, s->rope);
        rope_apply(k, hp->n_head_kv, hd, hp->n_rot, hp->rope_neox, s->rope);
        float scale = inv_sqrt;
        if (m->arch == MODEL_ARCH_PHI3) {
            for (int i = 0; i < D; i++) q[i] *= inv_sqrt;
            scale = 1.0f;
        }
        /* store k, v at pos in the f16 cache */
        size_t off = ((size_t)l * s->n_ctx + pos) * kv_dim;
        for (int i = 0; i < kv_dim; i++) {
            s->key_cache[off + i] = quant_f32_to_f16(k[i]);
            s->val_cache[off + i] = quant_f32_to_f16(v[i]);
        }
        attend(m, s, l, pos, q, scale, prompt, s->xb);
        matvec_mt(s->pool, &w->wo, s->xb, s->xb2, s->xq, prompt);
        for (int i = 0; i < D; i++) x[i] += s->xb2[i];

        rmsnorm(s->xb, x, w->ffn_norm, D, hp->norm_eps);
        float *gate = s->hb, *up = s->hb + F; /* (F) each */
        if (m->arch == MODEL_ARCH_PHI3) {
            matvec_mt(s->pool, &w->w_up, s->xb, s->hb, s->xq, prompt); /* (2F): gate then up */
        } else {
            matvec_mt(s->pool, &w->w_gate, s->xb, gate, s->xq, prompt);
            matvec_mt(s->pool, &w->w_up, s->xb, up, s->xq, prompt);
        }
        for (int i = 0; i < F; i++) gate[i] = silu(gate[i]) * up[i];
        matvec_mt(s->pool, &w->w_down, gate, s->xb2, s->xq, prompt);
        for (int i = 0; i < D; i++) x[i] += s->xb2[i];
    }
    rmsnorm(x, x, m->output_norm, D, hp->norm_eps);
    matvec_mt(s->pool, &m->output, x, s->logits, s->xq, prompt);
    return s->logits;
}

const float *forward(const model_t *m, forward_state_t *s, int token, int pos) {
    return step(m, s, token, pos, 0);
}

/* n (<= FORWARD_BATCH) tokens at positions pos0.. through every layer, each weight
 * matrix applied to all of them at once; the per-token steps (norms, RoPE, cache,
 * attention) are step()'s, in the same order for each token, so the numbers are the
 * same. Logits of the last token only, when want_logits. */
static const float *step_batch(const model_t *m, forward_state_t *s, const int32_t *tokens, int n,
                               int pos0, int prompt, int want_logits) {
    const model_hparams_t *hp = &m->hp;
    int D = hp->n_embd, hd = hp->head_dim, kv_dim = hp->n_head_kv * hd, F = hp->n_ff;
    size_t Dz = (size_t)D, W = (size_t)D + 2 * (size_t)kv_dim, F2 = 2 * (size_t)F;
    tpool_t *pool = s->pool;
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= hp->n_vocab || pos0 + t < 0 || pos0 + t >= s->n_ctx) return NULL;
        quant_dequantize_row(m->tok_embd.type,
                             (const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                             s->bx + t * Dz, D);
    }
    float inv_sqrt = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < hp->n_layer; l++) {
        const model_layer_t *w = &m->layers[l];
        for (int t = 0; t < n; t++) rmsnorm(s->bxb + t * Dz, s->bx + t * Dz, w->attn_norm, D, hp->norm_eps);
        if (m->arch == MODEL_ARCH_PHI3) {
            matmat(pool, &w->wqkv, s->bxb, Dz, n, s->bqkv, W, s->bxq, prompt);
        } else {
            matmat(pool, &w->wq, s->bxb, Dz, n, s->bqkv, W, s->bxq, prompt);
            matmat(pool, &w->wk, s->bxb, Dz, n, s->bqkv + D, W, s->bxq, prompt);
            matmat(pool, &w->wv, s->bxb, Dz, n, s->bqkv + D + kv_dim, W, s->bxq, prompt);
        }
        for (int t = 0; t < n; t++) {
            int pos = pos0 + t;
            float *q = s->bqkv + t * W, *k = q + D, *v = k + kv_dim;
            rope_angles(s->rope, pos, hp->n_rot, hp->rope_base);
            rope_apply(q, hp->n_head, hd, hp->n_rot, hp->rope_neox, s->rope);
            rope_apply(k, hp->n_head_kv, hd, hp->n_rot, hp->rope_neox, s->rope);
            float scale = inv_sqrt;
            if (m->arch == MODEL_ARCH_PHI3) {
                for (int i = 0; i < D; i++) q[i] *= inv_sqrt;
                scale = 1.0f;
            }
            size_t off = ((size_t)l * s->n_ctx + pos) * kv_dim;
            for (int i = 0; i < kv_dim; i++) {
                s->key_cache[off + i] = quant_f32_to_f16(k[i]);
                s->val_cache[off + i] = quant_f32_to_f16(v[i]);
            }
            attend(m, s, l, pos, q, scale, prompt, s->bxb + t * Dz);
        }
        matmat(pool, &w->wo, s->bxb, Dz, n, s->bxb2, Dz, s->bxq, prompt);
        for (size_t i = 0; i < (size_t)n * Dz; i++) s->bx[i] += s->bxb2[i];
        for (int t = 0; t < n; t++) rmsnorm(s->bxb + t * Dz, s->bx + t * Dz, w->ffn_norm, D, hp->norm_eps);
        if (m->arch == MODEL_ARCH_PHI3) {
            matmat(pool, &w->w_up, s->bxb, Dz, n, s->bhb, F2, s->bxq, prompt);
        } else {
            matmat(pool, &w->w_gate, s->bxb, Dz, n, s->bhb, F2, s->bxq, prompt);
            matmat(pool, &w->w_up, s->bxb, Dz, n, s->bhb + F, F2, s->bxq, prompt);
        }
        for (int t = 0; t < n; t++) {
            float *gate = s->bhb + t * F2, *up = gate + F;
            for (int i = 0; i < F; i++) gate[i] = silu(gate[i]) * up[i];
        }
        matmat(pool, &w->w_down, s->bhb, F2, n, s->bxb2, Dz, s->bxq, prompt);
        for (size_t i = 0; i < (size_t)n * Dz; i++) s->bx[i] += s->bxb2[i];
    }
    if (!want_logits) return s->logits;
    rmsnorm(s->x, s->bx + (size_t)(n - 1) * Dz, m->output_norm, D, hp->norm_eps);
    matvec_mt(pool, &m->output, s->x, s->logits, s->xq, prompt);
    return s->logits;
}

const float *forward_prompt(const model_t *m, forward_state_t *s, const int32_t *tokens, int n,
                            int pos0) {
    const float *logits = NULL;
    if (n <= 0 || pos0 < 0 || pos0 + n > s->n_ctx) return NULL;
    for (int i = 0; i < n; i += FORWARD_BATCH) {
        int nb = n - i < FORWARD_BATCH ? n - i : FORWARD_BATCH;
        if (!(logits = step_batch(m, s, tokens + i, nb, pos0 + i, n > 1, i + nb == n))) return NULL;
    }
    return logits;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

int forward_state_new(const model_t *m, int n_ctx, forward_state_t **out) {
    const model_hparams_t *hp = &m->hp;
    *out = NULL;
    if (n_ctx <= 0) n_ctx = hp->n_ctx_train;
    if (n_ctx <= 0 || n_ctx > (1 << 22)) return -EINVAL;
    forward_state_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    size_t D = (size_t)hp->n_embd, F = (size_t)hp->n_ff, C = (size_t)n_ctx;
    size_t KV = (size_t)hp->n_head_kv * hp->head_dim, L = (size_t)hp->n_layer;
    s->n_ctx = n_ctx;
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
    s->x = calloc(D, sizeof(float));
    s->xb = calloc(D, sizeof(float));
    s->xb2 = calloc(D, sizeof(float));
    s->qkv = calloc(D + 2 * KV, sizeof(float));
    s->hb = calloc(2 * F, sizeof(float));
    s->attn = attn_scratch_new(hp, n_ctx, 2);
    s->rope = calloc((size_t)hp->n_rot, sizeof(float));
    s->xq = aligned_alloc(64, (xq + 63) / 64 * 64 + 64);
    s->key_cache = calloc(L * C * KV, sizeof(uint16_t));
    s->val_cache = calloc(L * C * KV, sizeof(uint16_t));
    s->logits = calloc((size_t)hp->n_vocab, sizeof(float));
    size_t B = FORWARD_BATCH;
    s->bx = calloc(B * D, sizeof(float));
    s->bxb = calloc(B * D, sizeof(float));
    s->bxb2 = calloc(B * D, sizeof(float));
    s->bqkv = calloc(B * (D + 2 * KV), sizeof(float));
    s->bhb = calloc(B * 2 * F, sizeof(float));
    s->bxq = aligned_alloc(64, (B * xq + 63) / 64 * 64 + 64);
    if (!s->bx || !s->bxb || !s->bxb2 || !s->bqkv || !s->bhb || !s->bxq ||
        !s->x || !s->xb || !s->xb2 || !s->qkv || !s->hb || !s->attn || !s->rope || !s->xq ||
        !s->key_cache || !s->val_cache || !s->logits) {
        forward_state_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

void forward_state_free(forward_state_t *s) {
    if (!s) return;
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->qkv);
    free(s->hb);
    attn_scratch_free(s->attn);
    free(s->rope);
    free(s->xq);
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
