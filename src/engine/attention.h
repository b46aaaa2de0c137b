/* attention.h — causal multi-head attention of one token over one layer's f16 KV cache. */
#ifndef TOLLGATE_ENGINE_ATTENTION_H
#define TOLLGATE_ENGINE_ATTENTION_H

#include <stdint.h>

#include "engine/model.h"

/* One layer's cache of one sequence: row t (t < n_ctx) holds position t's keys / values,
 * n_head_kv * head_dim halves each. */
typedef struct attn_cache {
    const uint16_t *key;
    const uint16_t *val;
    int n_ctx;
} attn_cache_t;

/* Scratch, owned by the caller; sizes for a cache of C = n_ctx rows. */
typedef struct attn_scratch {
    float *att;   /* (n_head, C) scores, then probabilities */
    float *qh;    /* (head_dim) one head of q, rounded to f16 */
    float *kvrow; /* (max(head_dim, C + 32)) one K row or one V column, as floats */
} attn_scratch_t;

/* out (H*hd) = attention of the token at `pos` over positions lo..pos of the cache
 * (lo > 0 only with a sliding window); the cache must already hold row pos. q (H*hd)
 * roped query, scaled by `scale` inside the softmax. prompt: the token is part of a
 * multi-token prompt, which selects the reference's tiled f16 products instead of its
 * single-token ones (the numbers differ in the last bits; both are reproduced). */
void attention(const model_hparams_t *hp, const attn_cache_t *c, int pos, const float *q, float scale,
               int prompt, attn_scratch_t *s, float *out);

#endif
