/* forward.h — the transformer forward pass: a batched step over tokens of several sequences (each with its own KV cache), and the one-sequence wrappers. */
#ifndef TOLLGATE_ENGINE_FORWARD_H
#define TOLLGATE_ENGINE_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/threadpool.h"

/* Shapes use the legend of model.h, plus C = n_ctx (positions a cache can hold) and
 * B = rows of a batched step.
 *
 * The KV cache holds keys and values in IEEE half precision, as the reference engine
 * does by default (it matters for matching its numbers; it also halves the memory). */
/* Tokens of a prompt that go through each weight matrix together (forward_prompt), and
 * the default rows of a batched step (and so the scheduler's prefill chunk). Measured on
 * a 2-core Zen 4 (docs/engine.md): CPU per prompt token falls from 32 to 64 to 128 (each
 * weight block is reused by more tokens while it is in cache); 64 takes about half of
 * that gain while a prefill chunk holds up the running decodes half as long as 128. */
#ifndef FORWARD_BATCH /* -DFORWARD_BATCH=N to measure another size */
#define FORWARD_BATCH 64
#endif

/* One sequence's KV cache: keys and values (L, C, KV) f16 each. */
typedef struct fwd_kv {
    uint16_t *key;
    uint16_t *val;
    int n_ctx;
} fwd_kv_t;

/* Bytes of one sequence's cache of n_ctx positions (keys and values). */
size_t forward_kv_bytes(const model_hparams_t *hp, int n_ctx);

/* One token of a batched step. */
typedef struct fwd_row {
    int32_t token;
    int pos;              /* its position in its sequence: kv holds positions 0..pos-1 */
    const fwd_kv_t *kv;   /* its sequence's cache (row pos is written) */
    int prompt;           /* the reference's prompt numerics (attention, F16 products):
                           * 1 for the tokens of a multi-token prompt, 0 for decode tokens */
    int want_logits;      /* the k-th row with this set gets logits at logits + k * V */
} fwd_row_t;

typedef struct forward_state {
    int n_ctx;           /* C: positions 0..C-1 can be computed (attention scratch; own cache) */
    int n_batch;         /* B: rows a batched step can take */
    int n_logits;        /* rows of logits a step can return */
    struct attn_scratch *attn; /* attention's scratch (attention.h) */
    float *rope;         /* (B, n_rot) cos, sin pairs for each row's position */
    size_t xq_bytes;     /* one activation row quantized to a weight's vec-dot type */
    uint16_t *key_cache; /* (L, C, KV) f16: the state's own cache (forward, forward_prompt); */
    uint16_t *val_cache; /* NULL for a state made for external caches */
    float *logits;       /* (n_logits, V) output of the last step */
    float *bx;           /* (B, D) residual streams */
    float *bxb;          /* (B, D) normed inputs / attention outputs */
    float *bxb2;         /* (B, D) projection outputs */
    float *bqkv;         /* (B, D + 2*KV) q, k, v per token */
    float *bhb;          /* (B, 2*F) gate then up per token */
    void *bxq;           /* (B, xq_bytes) activation rows quantized */
    tpool_t *pool;       /* borrowed, may be NULL: the threads the matrix products are split
                          * across; set by the owner, used only by the thread calling forward */
} forward_state_t;

/* Allocate a state for sequences of up to n_ctx positions with its own cache (all
 * allocation happens here; forward() never allocates). n_ctx <= 0 means the model's
 * training context. 0, or -EINVAL / -ENOMEM. The state is tied to the model's shapes,
 * not to the model object: it can be reused for a new sequence by starting again at pos 0. */
int forward_state_new(const model_t *m, int n_ctx, forward_state_t **out);
/* A state for batched steps of up to n_batch rows (>= 1), n_logits (1..n_batch) of them
 * with logits, over caches of up to n_ctx positions; own_kv: also allocate the state's
 * own cache (for forward / forward_prompt). */
int forward_state_new_batch(const model_t *m, int n_ctx, int n_batch, int n_logits, int own_kv,
                            forward_state_t **out);
void forward_state_free(forward_state_t *s);

/* One step over n (<= n_batch) tokens of any sequences: every weight matrix is applied to
 * all rows at once (matmat: one read of the weights per step), while each row's RoPE, KV
 * write and attention use its own position and cache. Rows with prompt == 0 must come
 * before rows with prompt == 1 (F16 products differ between the two and are run as two
 * groups); rows of one sequence must be in position order. A row's numbers do not depend
 * on the other rows: for the quantized types every row is bit for bit what forward()
 * (prompt 0) or forward_prompt() (prompt 1) computes alone; for F16 too, since each group
 * gets its own kernel order. 0, or -EINVAL (bad token / position / order, too many rows). */
int forward_batch(const model_t *m, forward_state_t *s, const fwd_row_t *rows, int n);

/* Run a prompt of n tokens at positions pos0.. in the state's own cache and return the
 * logits after the last (as forward()), or NULL when out of range. Numerically this
 * follows the reference's prompt (batch) kernels where they differ from its single-token
 * ones (attention): prompt = (n > 1). Tokens go through the weight matrices n_batch at a
 * time; the result is bit for bit that of running the tokens one by one. */
const float *forward_prompt(const model_t *m, forward_state_t *s, const int32_t *tokens, int n,
                            int pos0);

/* Run one token at position pos (the own cache must hold positions 0..pos-1 of the same
 * sequence) and return the logits (V floats, owned by the state, valid until the next
 * call), or NULL when token or pos is out of range. */
const float *forward(const model_t *m, forward_state_t *s, int token, int pos);

#endif
