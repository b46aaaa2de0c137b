/* test_model.c — model loading errors and forward-pass behaviour on small synthetic GGUF files. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "model/gguf.h"

/* V vocabulary, D n_embd, H heads, HKV kv heads, F n_ff: small, GQA (2 heads per kv). */
enum { V = 16, D = 32, H = 2, HKV = 1, HD = D / H, KV = HKV * HD, F = 64 };

typedef struct spec {
    const char *arch;       /* "llama" or "phi3" or anything (error test) */
    int n_layer;
    int sliding_window;     /* phi3 only; 0 = key absent */
    const char *skip;       /* tensor left out */
    const char *bad_shape;  /* tensor written with one row too many */
    const char *extra;      /* extra tensor written */
    const char *skip_key;   /* metadata key left out (suffix after "arch.") */
    int with_output;        /* write output.weight (else tied) */
    int wtype;              /* GGML_TYPE_F32 or F16 for the matrices */
} spec_t;

static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static void add(gguf_writer_t *w, const spec_t *sp, const char *name, int64_t rows, int64_t cols,
                float scale) {
    if (sp->skip && !strcmp(sp->skip, name)) return;
    if (sp->bad_shape && !strcmp(sp->bad_shape, name)) rows += 1;
    int type = rows > 1 ? sp->wtype : GGML_TYPE_F32;
    size_t n = (size_t)(rows * cols);
    float *f = malloc(n * sizeof *f);
    uint16_t *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) f[i] = rows > 1 ? scale * frand() : 1.0f + 0.1f * frand();
    for (size_t i = 0; i < n; i++) h[i] = quant_f32_to_f16(f[i]);
    int64_t ne[2] = {cols, rows};
    int rc = gguf_w_tensor(w, name, type, rows > 1 ? 2 : 1, ne, type == GGML_TYPE_F16 ? (void *)h : (void *)f,
                           n * (type == GGML_TYPE_F16 ? 2 : 4));
    CHECK_EQ_INT(rc, 0);
    free(f);
    free(h);
}

static void key_u32(gguf_writer_t *w, const spec_t *sp, const char *key, uint32_t v) {
    char full[128];
    if (sp->skip_key && !strcmp(sp->skip_key, key)) return;
    snprintf(full, sizeof full, "%s.%s", sp->arch, key);
    gguf_w_u32(w, full, v);
}

/* Write a model per spec to path. */
static void write_model(const char *path, const spec_t *sp) {
    char name[96], err[256];
    int phi3 = !strcmp(sp->arch, "phi3");
    gguf_writer_t *w = gguf_writer_new();
    gguf_w_str(w, "general.architecture", sp->arch);
    gguf_w_str(w, "general.name", "synthetic");
    key_u32(w, sp, "embedding_length", D);
    key_u32(w, sp, "block_count", (uint32_t)sp->n_layer);
    key_u32(w, sp, "attention.head_count", H);
    key_u32(w, sp, "attention.head_count_kv", phi3 ? H : HKV);
    key_u32(w, sp, "feed_forward_length", F);
    key_u32(w, sp, "context_length", 64);
    if (sp->sliding_window) key_u32(w, sp, "attention.sliding_window", (uint32_t)sp->sliding_window);
    snprintf(name, sizeof name, "%s.attention.layer_norm_rms_epsilon", sp->arch);
    gguf_w_f32(w, name, 1e-5f);
    snprintf(name, sizeof name, "%s.rope.freq_base", sp->arch);
    gguf_w_f32(w, name, 10000.0f);
    int kv = phi3 ? D : KV;
    add(w, sp, "token_embd.weight", V, D, 1.0f);
    add(w, sp, "output_norm.weight", 1, D, 0);
    if (sp->with_output) add(w, sp, "output.weight", V, D, 0.3f);
    for (int l = 0; l < sp->n_layer; l++) {
#define N(s) (snprintf(name, sizeof name, "blk.%d." s, l), name)
        add(w, sp, N("attn_norm.weight"), 1, D, 0);
        add(w, sp, N("ffn_norm.weight"), 1, D, 0);
        add(w, sp, N("attn_output.weight"), D, D, 0.2f);
        add(w, sp, N("ffn_down.weight"), D, F, 0.15f);
        if (phi3) {
            add(w, sp, N("attn_qkv.weight"), D + 2 * kv, D, 0.3f);
            add(w, sp, N("ffn_up.weight"), 2 * F, D, 0.2f);
        } else {
            add(w, sp, N("attn_q.weight"), D, D, 0.3f);
            add(w, sp, N("attn_k.weight"), KV, D, 0.3f);
            add(w, sp, N("attn_v.weight"), KV, D, 0.3f);
            add(w, sp, N("ffn_gate.weight"), F, D, 0.2f);
            add(w, sp, N("ffn_up.weight"), F, D, 0.2f);
        }
#undef N
    }
    if (sp->extra) add(w, sp, sp->extra, D, D, 0.1f);
    CHECK_MSG(gguf_w_write(w, path, err, sizeof err) == 0, "write %s: %s", path, err);
    gguf_writer_free(w);
}

static char tmp_path[256];

/* Write spec, load it; returns model_load's code, err gets the message. */
static int try_load(const spec_t *sp, model_t *m, char *err, size_t errlen) {
    write_model(tmp_path, sp);
    return model_load(tmp_path, m, err, errlen);
}

static void test_errors(void) {
    model_t m;
    char err[256];
    spec_t base = {.arch = "llama", .n_layer = 2, .wtype = GGML_TYPE_F32, .with_output = 1};
    spec_t sp;

    sp = base, sp.arch = "gpt2";
    CHECK_EQ_INT(try_load(&sp, &m, err, sizeof err), -ENOTSUP);
    CHECK_MSG(strstr(err, "\"gpt2\"") != NULL, "err: %s", err);

    sp = base, sp.skip = "blk.1.ffn_up.weight";
    CHECK(try_load(&sp, &m, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "blk.1.ffn_up.weight") && strstr(err, "missing"), "err: %s", err);

    sp = base, sp.bad_shape = "blk.0.attn_k.weight";
    CHECK(try_load(&sp, &m, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "blk.0.attn_k.weight") && strstr(err, "shape"), "err: %s", err);

    sp = base, sp.extra = "blk.0.attn_q.bias";
    CHECK_EQ_INT(try_load(&sp, &m, err, sizeof err), -ENOTSUP);
    CHECK_MSG(strstr(err, "unexpected tensor blk.0.attn_q.bias"), "err: %s", err);

    sp = base, sp.skip_key = "block_count";
    CHECK(try_load(&sp, &m, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "llama.block_count"), "err: %s", err);

    sp = base, sp.skip = "output_norm.weight";
    CHECK(try_load(&sp, &m, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "output_norm.weight"), "err: %s", err);

    CHECK(model_load("/nonexistent/model.gguf", &m, err, sizeof err) < 0);
    CHECK(err[0] != 0);
    model_free(&m); /* zeroed on failure: freeing is a no-op */
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d;
}

static void test_llama(int wtype) {
    model_t m;
    char err[256];
    spec_t sp = {.arch = "llama", .n_layer = 2, .wtype = wtype};
    int rc = try_load(&sp, &m, err, sizeof err);
    CHECK_MSG(rc == 0, "load: %s", err);
    if (rc) return;
    CHECK_EQ_INT(m.arch, MODEL_ARCH_LLAMA);
    CHECK_EQ_INT(m.hp.n_vocab, V);
    CHECK_EQ_INT(m.hp.head_dim, HD);
    CHECK_EQ_INT(m.hp.n_head_kv, HKV);
    CHECK_EQ_INT(m.hp.n_rot, HD); /* rope.dimension_count absent: the whole head */
    CHECK_EQ_INT(m.hp.n_ctx_train, 64);
    CHECK_EQ_INT(m.hp.rope_neox, 0);
    CHECK(m.tied_output && m.output.data == m.tok_embd.data);
    CHECK_EQ_STR(m.name, "synthetic");

    forward_state_t *s = NULL;
    CHECK_EQ_INT(forward_state_new(&m, 0, &s), 0); /* 0: the training context */
    if (!s) return;
    CHECK_EQ_INT(s->n_ctx, 64);
    CHECK(forward(&m, s, V, 0) == NULL);  /* token out of range */
    CHECK(forward(&m, s, -1, 0) == NULL);
    CHECK(forward(&m, s, 1, 64) == NULL); /* past the context */

    int32_t toks[6] = {1, 5, 9, 2, 14, 7};
    float seq[6][V], again[V];
    for (int i = 0; i < 6; i++) {
        const float *l = forward(&m, s, toks[i], i);
        CHECK(l != NULL);
        if (!l) return;
        memcpy(seq[i], l, sizeof seq[i]);
        for (int v = 0; v < V; v++) CHECK(isfinite(seq[i][v]));
    }
    /* the same sequence again from pos 0 gives the same numbers: the state is reusable */
    const float *l = NULL;
    for (int i = 0; i < 6; i++) l = forward(&m, s, toks[i], i);
    CHECK(l && max_abs_diff(l, seq[5], V) == 0.0);
    /* a prompt in one call agrees (its kernels sum in another order: last bits only) */
    l = forward_prompt(&m, s, toks, 6, 0);
    CHECK(l && max_abs_diff(l, seq[5], V) < 1e-3);
    CHECK(forward_prompt(&m, s, toks, 6, 60) == NULL); /* would run past the context */
    /* causality: changing a later token does not change earlier logits */
    for (int i = 0; i < 3; i++) l = forward(&m, s, toks[i], i);
    CHECK(l && max_abs_diff(l, seq[2], V) == 0.0);
    /* ...and changing an earlier token changes later ones */
    forward(&m, s, 3, 0);
    for (int i = 1; i < 6; i++) l = forward(&m, s, toks[i], i);
    memcpy(again, l, sizeof again);
    CHECK(max_abs_diff(again, seq[5], V) > 1e-3);
    forward_state_free(s);
    model_free(&m);
    model_free(&m); /* idempotent */
}

/* phi3 layout and the sliding window: with one layer and a window of 2, the logits at
 * position 3 depend on tokens 2 and 3 only. */
static void test_phi3_window(int window) {
    model_t m;
    char err[256];
    spec_t sp = {.arch = "phi3", .n_layer = 1, .sliding_window = window, .wtype = GGML_TYPE_F32,
                 .with_output = 1};
    int rc = try_load(&sp, &m, err, sizeof err);
    CHECK_MSG(rc == 0, "load: %s", err);
    if (rc) return;
    CHECK_EQ_INT(m.arch, MODEL_ARCH_PHI3);
    CHECK_EQ_INT(m.hp.sliding_window, window);
    CHECK_EQ_INT(m.hp.rope_neox, 1);
    CHECK(!m.tied_output && m.output.data != m.tok_embd.data);
    CHECK_EQ_INT(m.layers[0].wqkv.rows, D + 2 * D);
    CHECK_EQ_INT(m.layers[0].w_up.rows, 2 * F);
    forward_state_t *s = NULL;
    CHECK_EQ_INT(forward_state_new(&m, 16, &s), 0);
    if (!s) return;
    int32_t a[4] = {1, 2, 3, 4}, b[4] = {9, 10, 3, 4}, c[4] = {1, 2, 11, 4};
    float la[V];
    const float *l = forward_prompt(&m, s, a, 4, 0);
    CHECK(l != NULL);
    if (!l) return;
    memcpy(la, l, sizeof la);
    l = forward_prompt(&m, s, b, 4, 0);
    if (window == 2)
        CHECK(l && max_abs_diff(l, la, V) == 0.0); /* tokens 0, 1 are outside the window */
    else
        CHECK(l && max_abs_diff(l, la, V) > 1e-3); /* no window: they count */
    l = forward_prompt(&m, s, c, 4, 0);
    CHECK(l && max_abs_diff(l, la, V) > 1e-3); /* token 2 is inside */
    forward_state_free(s);
    model_free(&m);
}

int main(void) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/tollgate-test-model-%d.gguf", (int)getpid());
    test_errors();
    test_llama(GGML_TYPE_F32);
    test_llama(GGML_TYPE_F16);
    test_phi3_window(2);
    test_phi3_window(0);
    unlink(tmp_path);
    return check_summary("test_model");
}
