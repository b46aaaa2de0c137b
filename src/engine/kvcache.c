/* kvcache.c — KV cache slots and the prefix cache over them. */
#include "engine/kvcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int kv_pool_slots_for(const model_hparams_t *hp, int n_ctx, size_t limit_bytes, int max_slots) {
    size_t per = forward_kv_bytes(hp, n_ctx);
    if (!limit_bytes || !per) return max_slots;
    size_t n = limit_bytes / per;
    return n < (size_t)max_slots ? (int)n : max_slots;
}

int kv_pool_init(kv_pool_t *p, const model_hparams_t *hp, int n_ctx, int n_slots) {
    memset(p, 0, sizeof *p);
    if (n_ctx <= 0 || n_slots <= 0) return -EINVAL;
    p->hp = hp;
    p->n_ctx = n_ctx;
    p->slot_bytes = forward_kv_bytes(hp, n_ctx);
    p->slots = calloc((size_t)n_slots, sizeof *p->slots);
    if (!p->slots) return -ENOMEM;
    p->n_slots = n_slots;
    for (int i = 0; i < n_slots; i++) {
        kv_slot_t *s = &p->slots[i];
        /* calloc: the kernel backs the pages only once positions are written */
        s->kv.key = calloc(p->slot_bytes / 2, 1);
        s->kv.val = calloc(p->slot_bytes / 2, 1);
        s->kv.n_ctx = n_ctx;
        s->tokens = calloc((size_t)n_ctx, sizeof(int32_t));
        if (!s->kv.key || !s->kv.val || !s->tokens) {
            kv_pool_free(p);
            return -ENOMEM;
        }
    }
    return 0;
}

void kv_pool_free(kv_pool_t *p) {
    if (!p->slots) return;
    for (int i = 0; i < p->n_slots; i++) {
        free(p->slots[i].kv.key);
        free(p->slots[i].kv.val);
        free(p->slots[i].tokens);
    }
    free(p->slots);
    memset(p, 0, sizeof *p);
}

/* Reusable positions of slot s for this prompt. */
static int common_prefix(const kv_slot_t *s, const int32_t *prompt, int max) {
    int n = s->n_shared < max ? s->n_shared : max, i = 0;
    while (i < n && s->tokens[i] == prompt[i]) i++;
    return i;
}

/* Copy positions 0..n-1 of every layer from slot a to slot b. */
static void copy_rows(const kv_pool_t *p, const kv_slot_t *a, kv_slot_t *b, int n) {
    size_t kv_dim = (size_t)p->hp->n_head_kv * p->hp->head_dim;
    size_t layer = (size_t)p->n_ctx * kv_dim, bytes = (size_t)n * kv_dim * sizeof(uint16_t);
    for (int l = 0; l < p->hp->n_layer; l++) {
        memcpy(b->kv.key + l * layer, a->kv.key + l * layer, bytes);
        memcpy(b->kv.val + l * layer, a->kv.val + l * layer, bytes);
    }
    memcpy(b->tokens, a->tokens, (size_t)n * sizeof(int32_t));
}

int kv_pool_acquire(kv_pool_t *p, const int32_t *prompt, int n_prompt, int *reused) {
    int max = n_prompt > 1 ? n_prompt - 1 : 0;
    /* the slot to take: a free one whose reusable rows are all a prefix of this prompt
     * (taking it loses nothing; the longest such), else the least recently used free
     * one. The longest prefix anywhere is copied in when it beats the slot's own. */
    int take = -1, take_len = 0, take_keeps = 0, src = -1, src_len = 0;
    for (int i = 0; i < p->n_slots; i++) {
        kv_slot_t *s = &p->slots[i];
        int len = common_prefix(s, prompt, max);
        if (len > src_len) {
            src = i;
            src_len = len;
        }
        if (s->in_use) continue;
        int keeps = len >= s->n_shared;
        int better = take < 0 || keeps > take_keeps ||
                     (keeps == take_keeps && (keeps ? len > take_len ||
                                                          (len == take_len && s->last_use < p->slots[take].last_use)
                                                    : s->last_use < p->slots[take].last_use));
        if (better) {
            take = i;
            take_len = len;
            take_keeps = keeps;
        }
    }
    *reused = 0;
    if (take < 0) return -1;
    kv_slot_t *t = &p->slots[take];
    if (src_len > take_len) {
        copy_rows(p, &p->slots[src], t, src_len);
        take_len = src_len;
    }
    t->n_shared = take_len; /* rows after it will be overwritten */
    t->in_use = 1;
    t->last_use = ++p->clock;
    p->n_used++;
    *reused = take_len;
    return take;
}

void kv_pool_release(kv_pool_t *p, int i) {
    if (i < 0 || i >= p->n_slots || !p->slots[i].in_use) return;
    p->slots[i].in_use = 0;
    p->slots[i].last_use = ++p->clock;
    p->n_used--;
}

void kv_pool_note_prompt_row(kv_pool_t *p, int i, int pos, int32_t token) {
    kv_slot_t *s = &p->slots[i];
    if (pos != s->n_shared || pos >= p->n_ctx) return; /* only an unbroken run from 0 */
    s->tokens[pos] = token;
    s->n_shared = pos + 1;
}
