/* kvcache.h — a pool of per-sequence KV cache slots under a memory limit, with the prefix cache: finished sequences' prompt rows stay until their slot is needed (LRU) and new prompts that start with them reuse them. */
#ifndef TOLLGATE_ENGINE_KVCACHE_H
#define TOLLGATE_ENGINE_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/forward.h"
#include "engine/model.h"

/* A slot holds one sequence's whole context (n_ctx positions): a sequence that was
 * admitted can always run to the end of its context, so nothing is ever evicted from a
 * running sequence. Only rows computed as prompt rows (prompt numerics) are offered for
 * reuse, so a reused prefix gives bit for bit the logits of computing it again. */
typedef struct kv_slot {
    fwd_kv_t kv;
    int32_t *tokens;    /* (n_ctx) the token at each reusable position */
    int n_shared;       /* positions 0..n_shared-1 hold reusable prompt rows */
    int in_use;         /* held by a running sequence */
    uint64_t last_use;  /* pool clock when it was last acquired or released (LRU) */
} kv_slot_t;

typedef struct kv_pool {
    const model_hparams_t *hp;
    kv_slot_t *slots;
    int n_slots, n_used;
    int n_ctx;
    size_t slot_bytes;  /* keys and values of one slot */
    uint64_t clock;
} kv_pool_t;

/* Slots that fit in limit_bytes (0: no limit), at most max_slots. */
int kv_pool_slots_for(const model_hparams_t *hp, int n_ctx, size_t limit_bytes, int max_slots);
/* n_slots slots of n_ctx positions. 0, -EINVAL, -ENOMEM. The memory is reserved, not
 * touched: pages are backed as positions are written. */
int kv_pool_init(kv_pool_t *p, const model_hparams_t *hp, int n_ctx, int n_slots);
void kv_pool_free(kv_pool_t *p);

/* Take a free slot for a sequence with this prompt (the caller checked one is free):
 * a free slot whose rows are all a prefix of this prompt (nothing cached is lost; the
 * longest), else the least recently used free slot. When another slot (running or free)
 * holds a longer prefix, its rows are copied in.
 * At most n_prompt - 1 positions are reused (the last prompt token must be computed
 * for its logits), none for a one-token prompt. Returns the slot index (-1 when none is
 * free) and the positions reused in *reused. */
int kv_pool_acquire(kv_pool_t *p, const int32_t *prompt, int n_prompt, int *reused);
/* The sequence in slot i is gone; its reusable rows stay until the slot is taken again. */
void kv_pool_release(kv_pool_t *p, int i);
/* Prompt token `token` was written at position pos (positions are written in order)
 * with prompt numerics: it becomes reusable. */
void kv_pool_note_prompt_row(kv_pool_t *p, int i, int pos, int32_t token);

#endif
