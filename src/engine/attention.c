/* attention.c — causal multi-head attention of one token over one layer's f16 KV cache, in the reference's arithmetic. */
#include "engine/attention.h"

#include <math.h>
#include <stdlib.h>

#include "engine/quant.h"
#include "engine/vexp.h"

/* Round to half precision and back (the reference converts the f32 operand of a product
 * with an f16 tensor to f16 first). */
static float f16_round(float x) { return quant_f16_to_f32(quant_f32_to_f16(x)); }

/* The reference's f16 dot products inside attention take two routes: a prompt (several
 * tokens) goes through a tiled kernel keeping 16 float lanes with FMA (lane = i % 16);
 * a single token goes through its vector dot, which keeps four 16-lane accumulators over
 * chunks of 64 and adds the rest in double. Both are reproduced. a, b (n) floats that
 * are exactly representable in f16. */
static float reduce16(float *acc) {
    for (int i = 0; i < 8; i++) acc[i] = acc[i + 8] + acc[i];
    for (int i = 0; i < 4; i++) acc[i] = acc[i + 4] + acc[i];
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

static float dot_f16_tiled(int n, const float *a, int sa, const float *b) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] = fmaf(a[(size_t)(i + l) * sa], b[i + l], acc[l]);
    float r = reduce16(acc);
    for (; i < n; i++) r += a[(size_t)i * sa] * b[i];
    return r;
}

static float dot_f16_vec(int n, const float *a, int sa, const float *b) {
    double sum = 0.0;
    int i = 0, np = n & ~63;
    if (np) {
        float acc[4][16] = {{0}};
        for (; i < np; i += 64)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 16; l++)
                    acc[j][l] = fmaf(a[(size_t)(i + 16 * j + l) * sa], b[i + 16 * j + l], acc[j][l]);
        for (int l = 0; l < 16; l++) {
            acc[0][l] = acc[0][l] + acc[2][l];
            acc[1][l] = acc[1][l] + acc[3][l];
            acc[0][l] = acc[0][l] + acc[1][l];
        }
        sum = reduce16(acc[0]);
    }
    for (; i < n; i++) sum += (double)(a[(size_t)i * sa] * b[i]);
    return (float)sum;
}

struct attn_scratch {
    float *att;   /* (n_head, C) scores, then probabilities */
    float *qh;    /* (head_dim) one head of q, rounded to f16 */
    float *kvrow; /* (max(head_dim, C + 32)) one K row or one V column, as floats */
};

attn_scratch_t *attn_scratch_new(const model_hparams_t *hp, int n_ctx, int n_threads) {
    (void)n_threads; /* one thread for now */
    attn_scratch_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t C = (size_t)n_ctx, hd = (size_t)hp->head_dim;
    s->att = calloc((size_t)hp->n_head * C, sizeof(float));
    s->qh = calloc(hd, sizeof(float));
    s->kvrow = calloc(hd > C + 32 ? hd : C + 32, sizeof(float));
    if (!s->att || !s->qh || !s->kvrow) {
        attn_scratch_free(s);
        return NULL;
    }
    return s;
}

void attn_scratch_free(attn_scratch_t *s) {
    if (!s) return;
    free(s->att);
    free(s->qh);
    free(s->kvrow);
    free(s);
}

/* Positions are padded to n_kv = pos+1 rounded up to 32 as the reference's cache view;
 * padding and positions outside the window weigh exactly 0. */
void attention(const model_hparams_t *hp, const attn_cache_t *c, int pos, const float *q, float scale,
               int prompt, attn_scratch_t *s, tpool_t *pool, float *out) {
    (void)pool; /* heads run on the caller for now */
    int hd = hp->head_dim, kv_dim = hp->n_head_kv * hd, group = hp->n_head / hp->n_head_kv;
    int lo = 0, n_kv = (pos + 1 + 31) / 32 * 32;
    if (n_kv > c->n_ctx) n_kv = c->n_ctx;
    if (hp->sliding_window > 0 && pos - hp->sliding_window + 1 > 0) lo = pos - hp->sliding_window + 1;
    float (*dot)(int, const float *, int, const float *) = prompt ? dot_f16_tiled : dot_f16_vec;
    for (int h = 0; h < hp->n_head; h++) {
        float *qh = s->qh;                          /* (hd) this head of q, f16 precision */
        float *att = s->att + (size_t)h * c->n_ctx; /* (n_kv) scores, then probabilities */
        float *kv = s->kvrow;                       /* (max(hd, n_kv)) a K row or a V column */
        int kvh = h / group;
        for (int i = 0; i < hd; i++) qh[i] = f16_round(q[(size_t)h * hd + i]);
        float max = -INFINITY;
        for (int t = lo; t <= pos; t++) {
            const uint16_t *k = c->key + (size_t)t * kv_dim + (size_t)kvh * hd;
            for (int i = 0; i < hd; i++) kv[i] = quant_f16_to_f32(k[i]);
            att[t] = dot(hd, kv, 1, qh) * scale;
            if (att[t] > max) max = att[t];
        }
        /* softmax: exp per element, float sums of 16 lanes added in double */
        double sum = 0.0;
        for (int c0 = 0; c0 < n_kv; c0 += 16) {
            float acc[16];
            for (int l = 0; l < 16; l++) {
                int t = c0 + l;
                acc[l] = (t >= lo && t <= pos) ? v_expf(att[t] - max) : 0.0f;
                if (t < n_kv) att[t] = acc[l];
            }
            sum += (double)reduce16(acc);
        }
        float inv = (float)(1.0 / sum);
        for (int t = 0; t < n_kv; t++) att[t] = f16_round(att[t] * inv); /* f16 operand */
        /* out[i] = sum_t p_t v[t][i], over the padded view (zeros weigh nothing) */
        for (int i = 0; i < hd; i++) {
            for (int t = 0; t < n_kv; t++)
                kv[t] = (t >= lo && t <= pos)
                            ? quant_f16_to_f32(c->val[(size_t)t * kv_dim + (size_t)kvh * hd + i])
                            : 0.0f;
            out[(size_t)h * hd + i] = dot(n_kv, kv, 1, att);
        }
    }
}

