/* test_batch.c — batched forward steps and the prefix cache: each sequence gets bit for bit the logits it gets alone, whatever it is batched with and on 1 or 2 threads, and a reused prefix gives the logits of computing it again. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "engine/threadpool.h"

#define N_SEQ 3
#define N_GEN 6
#define CTX 128

static const int prompt_len[N_SEQ] = {1, 5, 40};

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* Deterministic prompt ids below n_vocab (ids 3.. to skip the special ones). */
static void make_prompt(int32_t *ids, int n, int seed, int n_vocab) {
    uint32_t x = 2654435761u * (uint32_t)(seed + 1);
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = 3 + (int32_t)((x >> 8) % (uint32_t)(n_vocab - 3));
    }
}

typedef struct alone {
    int32_t prompt[64];
    int32_t toks[N_GEN + 1];
    float *logits; /* (N_GEN + 1, V): after the prompt, then after each fed token */
} alone_t;

/* Greedy generation of one sequence alone: forward_prompt, then forward per token. */
static int run_alone(const model_t *m, alone_t *a, int n_prompt) {
    size_t V = (size_t)m->hp.n_vocab;
    forward_state_t *s;
    if (forward_state_new(m, CTX, &s)) return -1;
    const float *lg = forward_prompt(m, s, a->prompt, n_prompt, 0);
    for (int k = 0; lg && k <= N_GEN; k++) {
        memcpy(a->logits + k * V, lg, V * sizeof(float));
        a->toks[k] = argmax(lg, (int)V);
        if (k < N_GEN) lg = forward(m, s, a->toks[k], n_prompt + k);
    }
    forward_state_free(s);
    return lg ? 0 : -1;
}

/* The sequences joined one step apart, 16 rows per step: the long prompt is chunked
 * while the others decode; each row's logits are compared with the lone run's. */
/* run_batched's steps on this pool (NULL: the caller alone): the per-row phases and
 * attention are then shared out over threads, with the same bits */
static tpool_t *step_pool;

static void run_batched(const model_t *m, alone_t *a, const char *name) {
    size_t V = (size_t)m->hp.n_vocab;
    forward_state_t *s;
    kv_pool_t pool;
    CHECK_EQ_INT(forward_state_new_batch(m, CTX, 16, N_SEQ, 0, &s), 0);
    if (s) s->pool = step_pool;
    CHECK_EQ_INT(kv_pool_init(&pool, &m->hp, CTX, N_SEQ), 0);
    int slot[N_SEQ], past[N_SEQ] = {0}, got[N_SEQ] = {0}, next[N_SEQ] = {0}, reused;
    for (int j = 0; j < N_SEQ; j++) slot[j] = -1;
    int mismatches = 0, compared = 0;
    for (int stepno = 0; stepno < 64; stepno++) {
        fwd_row_t rows[16];
        int nr = 0, owner[16], k_of[N_SEQ];
        for (int j = 0; j < N_SEQ && stepno >= j; j++)
            if (slot[j] < 0) {
                slot[j] = kv_pool_acquire(&pool, a[j].prompt, prompt_len[j], &reused);
                CHECK_EQ_INT(reused, 0);
            }
        int nl = 0;
        /* decode-numerics rows first: generating sequences and one-token prompts */
        for (int j = 0; j < N_SEQ; j++) {
            k_of[j] = -1;
            if (slot[j] < 0 || got[j] > N_GEN) continue;
            int dec = past[j] >= prompt_len[j];
            if (!dec && prompt_len[j] > 1) continue;
            rows[nr] = (fwd_row_t){dec ? next[j] : a[j].prompt[0], past[j], &pool.slots[slot[j]].kv, 0, 1};
            owner[nr++] = j;
            k_of[j] = nl++;
        }
        for (int j = 0; j < N_SEQ; j++) {
            if (slot[j] < 0 || past[j] >= prompt_len[j] || prompt_len[j] == 1) continue;
            for (int pos = past[j]; nr < 16 && pos < prompt_len[j]; pos++) {
                int last = pos == prompt_len[j] - 1;
                rows[nr] = (fwd_row_t){a[j].prompt[pos], pos, &pool.slots[slot[j]].kv, 1, last};
                owner[nr++] = j;
                if (last) k_of[j] = nl++;
            }
        }
        if (!nr) break;
        CHECK_EQ_INT(forward_batch(m, s, rows, nr), 0);
        for (int t = 0; t < nr; t++) {
            int j = owner[t];
            if (rows[t].prompt) kv_pool_note_prompt_row(&pool, slot[j], rows[t].pos, rows[t].token);
            past[j]++;
        }
        for (int j = 0; j < N_SEQ; j++) {
            if (k_of[j] < 0) continue;
            const float *lg = s->logits + (size_t)k_of[j] * V;
            compared++;
            mismatches += memcmp(lg, a[j].logits + (size_t)got[j] * V, V * sizeof(float)) != 0;
            next[j] = argmax(lg, (int)V);
            CHECK_EQ_INT(next[j], a[j].toks[got[j]]);
            got[j]++;
        }
    }
    CHECK_MSG(mismatches == 0, "%s: %d of %d logit rows differ from the lone runs", name, mismatches, compared);
    CHECK_EQ_INT(compared, N_SEQ * (N_GEN + 1));
    /* rows out of order are refused: a decode row after a prompt row */
    fwd_row_t bad[2] = {{a[2].prompt[0], 0, &pool.slots[0].kv, 1, 0}, {a[2].prompt[1], 1, &pool.slots[0].kv, 0, 1}};
    CHECK_EQ_INT(forward_batch(m, s, bad, 2), -EINVAL);
    bad[0] = (fwd_row_t){(int32_t)m->hp.n_vocab, 0, &pool.slots[0].kv, 0, 1};
    CHECK_EQ_INT(forward_batch(m, s, bad, 1), -EINVAL);

    /* prefix cache. The slots still hold the three sequences (all in use). A prompt that
     * shares the long prompt's first 30 tokens copies them from the running slot... */
    int32_t p2[40];
    memcpy(p2, a[2].prompt, 30 * sizeof(int32_t));
    make_prompt(p2 + 30, 10, 99, m->hp.n_vocab);
    p2[30] = a[2].prompt[30] == 3 ? 4 : 3;
    kv_pool_release(&pool, slot[0]);
    int sl = kv_pool_acquire(&pool, p2, 40, &reused);
    CHECK(sl == slot[0]);
    CHECK_EQ_INT(reused, 30);
    /* ... and computing only the other 10 gives the logits of the whole prompt alone */
    fwd_row_t r[16];
    for (int t = 0; t < 10; t++) r[t] = (fwd_row_t){p2[30 + t], 30 + t, &pool.slots[sl].kv, 1, t == 9};
    CHECK_EQ_INT(forward_batch(m, s, r, 10), 0);
    forward_state_t *lone;
    CHECK_EQ_INT(forward_state_new(m, CTX, &lone), 0);
    const float *want = forward_prompt(m, lone, p2, 40, 0);
    CHECK_MSG(want && !memcmp(s->logits, want, V * sizeof(float)), "%s: prefix reuse changed the logits", name);
    /* the same prompt again once every slot is free: the whole prompt but its last token
     * is reused in place, and that token (prompt numerics) gives the same logits */
    for (int t = 0; t < 10; t++) kv_pool_note_prompt_row(&pool, sl, 30 + t, p2[30 + t]);
    for (int j = 0; j < N_SEQ; j++) kv_pool_release(&pool, j);
    int sl2 = kv_pool_acquire(&pool, p2, 40, &reused);
    CHECK_EQ_INT(sl2, sl);
    CHECK_EQ_INT(reused, 39);
    r[0] = (fwd_row_t){p2[39], 39, &pool.slots[sl2].kv, 1, 1};
    CHECK_EQ_INT(forward_batch(m, s, r, 1), 0);
    CHECK_MSG(!memcmp(s->logits, want, V * sizeof(float)), "%s: 39-token prefix changed the logits", name);
    /* a prompt with nothing in common takes the least recently used other slot */
    int32_t p3[8];
    make_prompt(p3, 8, 7, m->hp.n_vocab);
    p3[0] = a[2].prompt[0] == 3 ? 4 : 3;
    CHECK(kv_pool_acquire(&pool, p3, 8, &reused) != sl2);
    CHECK_EQ_INT(reused, 0);
    CHECK_EQ_INT(pool.n_used, 2);
    forward_state_free(lone);
    kv_pool_free(&pool);
    forward_state_free(s);
}

static void run_model(const char *path, const char *name) {
    model_t m;
    char err[256];
    int rc = model_load(path, &m, err, sizeof err);
    CHECK_MSG(rc == 0, "%s: %s", path, err);
    if (rc) return;
    size_t V = (size_t)m.hp.n_vocab;
    alone_t a[N_SEQ];
    for (int j = 0; j < N_SEQ; j++) {
        make_prompt(a[j].prompt, prompt_len[j], j, m.hp.n_vocab);
        a[j].logits = malloc((N_GEN + 1) * V * sizeof(float));
        CHECK_MSG(run_alone(&m, &a[j], prompt_len[j]) == 0, "%s: lone run %d", name, j);
    }
    run_batched(&m, a, name);
    CHECK_EQ_INT(tpool_new(2, &step_pool), 0);
    run_batched(&m, a, name);
    tpool_free(step_pool);
    step_pool = NULL;
    printf("  %-24s %d sequences batched (alone and on 2 threads): same logits as alone\n", name, N_SEQ);
    for (int j = 0; j < N_SEQ; j++) free(a[j].logits);
    model_free(&m);
}

int main(void) {
    const char *ref = getenv("TOLLGATE_REF");
    char dir[1024], path[1400];
    snprintf(dir, sizeof dir, "%s/models", ref && *ref ? ref : "../shared/ref");
    DIR *dp = opendir(dir);
    CHECK_MSG(dp != NULL, "cannot open %s", dir);
    int n = 0;
    if (dp) {
        struct dirent *e;
        while ((e = readdir(dp))) {
            size_t l = strlen(e->d_name);
            if (l <= 5 || strcmp(e->d_name + l - 5, ".gguf")) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            run_model(path, e->d_name);
            n++;
        }
        closedir(dp);
    }
    CHECK(n >= 7);
    run_model("models/orders.gguf", "orders.gguf");
    /* the memory limit: slots that fit */
    model_hparams_t hp = {.n_layer = 2, .n_head_kv = 2, .head_dim = 4};
    size_t one = forward_kv_bytes(&hp, 100);
    CHECK_EQ_INT(one, 2 * 2 * 100 * 8 * 2);
    CHECK_EQ_INT(kv_pool_slots_for(&hp, 100, 3 * one + 1, 8), 3);
    CHECK_EQ_INT(kv_pool_slots_for(&hp, 100, one - 1, 8), 0);
    CHECK_EQ_INT(kv_pool_slots_for(&hp, 100, 0, 8), 8);
    return check_summary("test_batch");
}
