/* forward.h — one sequence's run state (KV cache, scratch) and the token-by-token forward pass. */
#ifndef TOLLGATE_ENGINE_FORWARD_H
#define TOLLGATE_ENGINE_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/threadpool.h"

/* Shapes use the legend of model.h, plus C = n_ctx (positions the state can hold).
 *
 * The KV cache holds keys and values in IEEE half precision, as the reference engine
 * does by default (it matters for matching its numbers; it also halves the memory). */
/* Tokens of a prompt that go through each weight matrix together (forward_prompt). */
#define FORWARD_BATCH 32

typedef struct forward_state {
    int n_ctx;           /* C: positions 0..C-1 can be computed */
    float *x;            /* (D) residual stream */
    float *xb;           /* (D) normed input of a block / attention output */
    float *xb2;          /* (D) output of a projection before the residual add */
    float *qkv;          /* (D + 2*KV) q, k, v of the current token, contiguous */
    float *hb;           /* (2*F) feed-forward: gate then up (llama writes both halves) */
    struct attn_scratch *attn; /* attention's scratch (attention.h) */
    float *rope;         /* (n_rot) cos, sin pairs for the current position */
    void *xq;            /* activation row quantized to a weight's vec-dot type (bytes) */
    size_t xq_bytes;
    uint16_t *key_cache; /* (L, C, KV) f16 */
    uint16_t *val_cache; /* (L, C, KV) f16 */
    float *logits;       /* (V) output of the last forward() */
    /* prompt batches of up to FORWARD_BATCH tokens (forward_prompt): B = FORWARD_BATCH */
    float *bx;           /* (B, D) residual streams */
    float *bxb;          /* (B, D) normed inputs / attention outputs */
    float *bxb2;         /* (B, D) projection outputs */
    float *bqkv;         /* (B, D + 2*KV) q, k, v per token */
    float *bhb;          /* (B, 2*F) gate then up per token */
    void *bxq;           /* (B, xq_bytes) activation rows quantized */
    tpool_t *pool;       /* borrowed, may be NULL: the threads the matrix products are split
                          * across; set by the owner, used only by the thread calling forward */
} forward_state_t;

/* Allocate a state for sequences of up to n_ctx positions (all allocation happens here;
 * forward() never allocates). n_ctx <= 0 means the model's training context. 0, or
 * -EINVAL / -ENOMEM. The state is tied to the model's shapes, not to the model object:
 * it can be reused for a new sequence by starting again at pos 0. */
int forward_state_new(const model_t *m, int n_ctx, forward_state_t **out);
void forward_state_free(forward_state_t *s);

/* Run a prompt of n tokens at positions pos0.. and return the logits after the last
 * (as forward()), or NULL when out of range. Numerically this follows the reference's
 * prompt (batch) kernels where they differ from its single-token ones (attention).
 * Tokens go through the weight matrices FORWARD_BATCH at a time (matmat: each weight
 * block read once for the batch); the result is bit for bit that of running the tokens
 * one by one. */
const float *forward_prompt(const model_t *m, forward_state_t *s, const int32_t *tokens, int n,
                            int pos0);

/* Run one token at position pos (the KV cache must hold positions 0..pos-1 of the same
 * sequence) and return the logits (V floats, owned by the state, valid until the next
 * call), or NULL when token or pos is out of range. */
const float *forward(const model_t *m, forward_state_t *s, int token, int pos);

#endif
