/* attention.h — causal multi-head attention of one token over one layer's f16 KV cache. */
#ifndef TOLLGATE_ENGINE_ATTENTION_H
#define TOLLGATE_ENGINE_ATTENTION_H

#include <stdint.h>

#include "engine/model.h"
#include "engine/threadpool.h"

/* One layer's cache of one sequence: row t (t < n_ctx) holds position t's keys / values,
 * n_head_kv * head_dim halves each. */
typedef struct attn_cache {
    const uint16_t *key;
    const uint16_t *val;
    int n_ctx;
} attn_cache_t;

/* Scratch for caches of up to n_ctx rows, used by up to n_threads threads at once;
 * owned by the caller (one per thread that calls attention()). Each of the n_threads
 * slots holds ~(8 * n_ctx + 512 * head_dim) floats. */
typedef struct attn_scratch attn_scratch_t;

/* Threads a forward state's scratch is made for: a pool larger than this leaves the
 * extra threads out of attention (they still share the weight products). */
#define ATTN_MAX_THREADS 16

/* NULL when out of memory. */
attn_scratch_t *attn_scratch_new(const model_hparams_t *hp, int n_ctx, int n_threads);
void attn_scratch_free(attn_scratch_t *s);

/* out (H*hd) = attention of the token at `pos` over positions lo..pos of the cache
 * (lo > 0 only with a sliding window); the cache must already hold row pos. q (H*hd)
 * roped query, scaled by `scale` inside the softmax. prompt: the token is part of a
 * multi-token prompt, which selects the reference's tiled f16 products instead of its
 * single-token ones (the numbers differ in the last bits; both are reproduced). */
/* Heads are shared out over pool (NULL: the caller alone; at most the n_threads the
 * scratch was made for; short contexts stay on the caller). The result does not depend
 * on the kernel set or the number of threads: bit for bit the scalar definition.
 * Requires 0 <= pos < c->n_ctx <= the scratch's n_ctx (the caller's invariant). */
void attention(const model_hparams_t *hp, const attn_cache_t *c, int pos, const float *q, float scale,
               int prompt, attn_scratch_t *s, tpool_t *pool, float *out);

/* attention() by one thread alone on the scratch's slot `slot` (0 <= slot < the
 * n_threads it was made for), so that several threads can each attend a different token
 * at once (the same numbers: the result depends neither on the thread nor on the slot).
 * 0, or -1 when slot, pos or n_ctx are out of range. */
int attention_slot(const model_hparams_t *hp, const attn_cache_t *c, int pos, const float *q, float scale,
                   int prompt, attn_scratch_t *s, int slot, float *out);

/* The kernel set attention() uses: "scalar", "avx2" or "avx512", following the weight
 * kernels' choice (quant_kernels(), so TOLLGATE_KERNELS=scalar|avx2 caps it too). */
const char *attention_kernels(void);

/* attention() with a named kernel set (NULL: attention_kernels()); 0, or -1 when the
 * set is unknown or this CPU lacks its instructions, or pos / n_ctx are out of range
 * (nothing written). For tests and benchmarks. */
int attention_with(const char *kernels, const model_hparams_t *hp, const attn_cache_t *c, int pos,
                   const float *q, float scale, int prompt, attn_scratch_t *s, tpool_t *pool, float *out);

#endif
