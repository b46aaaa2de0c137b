/* model.c — binds a GGUF file's hyper-parameters and weight tensors to a model_t (no copies). */
#include "engine/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"

/* Per-layer tensor names each architecture needs (suffix after "blk.N."). */
static const char *const llama_layer_names[] = {
    "attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
    "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", NULL,
};
static const char *const phi3_layer_names[] = {
    "attn_norm.weight", "attn_qkv.weight", "attn_output.weight",
    "ffn_norm.weight",  "ffn_up.weight",   "ffn_down.weight", NULL,
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, const char *a, const char *b) {
    if (err && errlen) snprintf(err, errlen, fmt, a, b);
    return rc;
}

/* Read "{arch}.{key}" as u32 into *out. Required keys fail with a message; optional keys
 * leave *out untouched when absent. */
static int get_hp_u32(const gguf_file_t *f, const char *arch, const char *key, int required,
                      int *out, char *err, size_t errlen) {
    char full[160];
    uint32_t v;
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (gguf_get_u32(f, full, &v) != 0) {
        if (!required && !gguf_find(f, full)) return 0;
        return fail(err, errlen, -EINVAL, "metadata %s%s", full,
                    gguf_find(f, full) ? " has a wrong type" : " missing");
    }
    if (v > (1u << 30)) return fail(err, errlen, -EINVAL, "metadata %s out of range%s", full, "");
    *out = (int)v;
    return 0;
}

static int get_hp_f32(const gguf_file_t *f, const char *arch, const char *key, int required,
                      float *out, char *err, size_t errlen) {
    char full[160];
    float v;
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (gguf_get_f32(f, full, &v) != 0) {
        if (!required && !gguf_find(f, full)) return 0;
        return fail(err, errlen, -EINVAL, "metadata %s%s", full,
                    gguf_find(f, full) ? " has a wrong type" : " missing");
    }
    *out = v;
    return 0;
}

/* Find a tensor, check its type is computable and its shape is (rows, cols); rows == 0
 * means a 1-D tensor of cols elements that must be F32 (norm weights). */
static int bind(const gguf_file_t *f, const char *name, int64_t rows, int64_t cols,
                model_tensor_t *t, char *err, size_t errlen) {
    const gguf_tensor_t *g = gguf_find_tensor(f, name);
    char want[64], got[96];
    if (!g) return fail(err, errlen, -EINVAL, "tensor %s missing%s", name, "");
    if (rows == 0) {
        if (g->type != GGML_TYPE_F32)
            return fail(err, errlen, -ENOTSUP, "tensor %s has type %s, F32 expected", name,
                        ggml_type_name((int)g->type));
    } else if (!quant_supported((int)g->type) || g->type == GGML_TYPE_Q8_K) {
        return fail(err, errlen, -ENOTSUP, "tensor %s has unsupported type %s", name,
                    ggml_type_name((int)g->type));
    }
    int64_t r = rows ? rows : 1;
    int ok = g->ne[0] == cols && g->ne[1] == r && g->ne[2] == 1 && g->ne[3] == 1 &&
             g->n_dims == (rows ? 2u : 1u);
    if (!ok) {
        if (rows)
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)cols, (long long)rows);
        else
            snprintf(want, sizeof want, "[%lld]", (long long)cols);
        snprintf(got, sizeof got, "[%lld, %lld, %lld, %lld] (%u dims)", (long long)g->ne[0],
                 (long long)g->ne[1], (long long)g->ne[2], (long long)g->ne[3], g->n_dims);
        if (err && errlen)
            snprintf(err, errlen, "tensor %s has shape %s but %s expected (ne order)", name, got,
                     want);
        return -EINVAL;
    }
    int be = ggml_type_block_elems((int)g->type);
    if (be <= 0 || cols % be != 0)
        return fail(err, errlen, -EINVAL, "tensor %s: row length not a multiple of the %s block",
                    name, ggml_type_name((int)g->type));
    t->data = g->data;
    t->type = (int)g->type;
    t->rows = r;
    t->cols = cols;
    t->row_bytes = ggml_row_bytes(t->type, cols);
    if (t->row_bytes * (size_t)r != g->size)
        return fail(err, errlen, -EINVAL, "tensor %s: size does not match its shape%s", name, "");
    return 0;
}

static int bind_norm(const gguf_file_t *f, const char *name, int64_t n, const float **out,
                     char *err, size_t errlen) {
    model_tensor_t t;
    int rc = bind(f, name, 0, n, &t, err, errlen);
    if (rc == 0) *out = (const float *)t.data;
    return rc;
}

/* 1 when name is a tensor this architecture uses (so every other tensor is reported). */
static int known_tensor(const model_t *m, const char *name) {
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "output_norm.weight") ||
        !strcmp(name, "output.weight"))
        return 1;
    int il, n = 0;
    if (sscanf(name, "blk.%d.%n", &il, &n) != 1 || n == 0 || il < 0 || il >= m->hp.n_layer)
        return 0;
    const char *const *names = m->arch == MODEL_ARCH_PHI3 ? phi3_layer_names : llama_layer_names;
    for (; *names; names++)
        if (!strcmp(name + n, *names)) return 1;
    return 0;
}

static int load_hparams(model_t *m, char *err, size_t errlen) {
    const gguf_file_t *f = &m->file;
    const char *a = m->arch_name;
    model_hparams_t *hp = &m->hp;
    int rc, key_len = 0, val_len = 0;
    if ((rc = get_hp_u32(f, a, "embedding_length", 1, &hp->n_embd, err, errlen)) ||
        (rc = get_hp_u32(f, a, "block_count", 1, &hp->n_layer, err, errlen)) ||
        (rc = get_hp_u32(f, a, "attention.head_count", 1, &hp->n_head, err, errlen)) ||
        (rc = get_hp_u32(f, a, "feed_forward_length", 1, &hp->n_ff, err, errlen)) ||
        (rc = get_hp_u32(f, a, "context_length", 1, &hp->n_ctx_train, err, errlen)))
        return rc;
    hp->n_head_kv = hp->n_head;
    hp->rope_base = 10000.0f;
    hp->norm_eps = 1e-5f;
    if ((rc = get_hp_u32(f, a, "attention.head_count_kv", 0, &hp->n_head_kv, err, errlen)) ||
        (rc = get_hp_u32(f, a, "attention.key_length", 0, &key_len, err, errlen)) ||
        (rc = get_hp_u32(f, a, "attention.value_length", 0, &val_len, err, errlen)) ||
        (rc = get_hp_f32(f, a, "rope.freq_base", 0, &hp->rope_base, err, errlen)) ||
        (rc = get_hp_f32(f, a, "attention.layer_norm_rms_epsilon", 1, &hp->norm_eps, err, errlen)))
        return rc;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_ff <= 0 ||
        hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv != 0 || hp->n_embd % hp->n_head != 0)
        return fail(err, errlen, -EINVAL, "%s: inconsistent hyper-parameters%s", a,
                    " (embedding_length, head_count, head_count_kv)");
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((key_len && key_len != hp->head_dim) || (val_len && val_len != hp->head_dim))
        return fail(err, errlen, -ENOTSUP, "%s: attention.key_length/value_length other than %s",
                    a, "embedding_length / head_count are not supported");
    hp->n_rot = hp->head_dim;
    if ((rc = get_hp_u32(f, a, "rope.dimension_count", 0, &hp->n_rot, err, errlen))) return rc;
    if (hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return fail(err, errlen, -EINVAL, "%s.rope.dimension_count invalid%s", a, "");
    hp->sliding_window = 0;
    hp->rope_neox = m->arch == MODEL_ARCH_PHI3;
    if (m->arch == MODEL_ARCH_PHI3 &&
        (rc = get_hp_u32(f, a, "attention.sliding_window", 0, &hp->sliding_window, err, errlen)))
        return rc;
    return 0;
}

static int load_tensors(model_t *m, char *err, size_t errlen) {
    const gguf_file_t *f = &m->file;
    const model_hparams_t *hp = &m->hp;
    int64_t D = hp->n_embd, F = hp->n_ff, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    const gguf_tensor_t *emb = gguf_find_tensor(f, "token_embd.weight");
    char name[96];
    int rc;
    if (!emb) return fail(err, errlen, -EINVAL, "tensor %s missing%s", "token_embd.weight", "");
    if (emb->ne[1] <= 0 || emb->ne[1] > (1 << 24))
        return fail(err, errlen, -EINVAL, "tensor %s: bad vocabulary size%s", "token_embd.weight",
                    "");
    m->hp.n_vocab = (int)emb->ne[1];
    int64_t V = m->hp.n_vocab;
    if ((rc = bind(f, "token_embd.weight", V, D, &m->tok_embd, err, errlen)) ||
        (rc = bind_norm(f, "output_norm.weight", D, &m->output_norm, err, errlen)))
        return rc;
    if (gguf_find_tensor(f, "output.weight")) {
        if ((rc = bind(f, "output.weight", V, D, &m->output, err, errlen))) return rc;
    } else {
        m->output = m->tok_embd;
        m->tied_output = 1;
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return fail(err, errlen, -ENOMEM, "out of memory%s%s", "", "");
    size_t n_used = 2 + !m->tied_output;
    for (int il = 0; il < hp->n_layer; il++) {
        model_layer_t *l = &m->layers[il];
#define T(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, il), name)
        if ((rc = bind_norm(f, T("attn_norm.weight"), D, &l->attn_norm, err, errlen)) ||
            (rc = bind(f, T("attn_output.weight"), D, D, &l->wo, err, errlen)) ||
            (rc = bind_norm(f, T("ffn_norm.weight"), D, &l->ffn_norm, err, errlen)) ||
            (rc = bind(f, T("ffn_down.weight"), D, F, &l->w_down, err, errlen)))
            return rc;
        if (m->arch == MODEL_ARCH_LLAMA) {
            if ((rc = bind(f, T("attn_q.weight"), D, D, &l->wq, err, errlen)) ||
                (rc = bind(f, T("attn_k.weight"), KV, D, &l->wk, err, errlen)) ||
                (rc = bind(f, T("attn_v.weight"), KV, D, &l->wv, err, errlen)) ||
                (rc = bind(f, T("ffn_gate.weight"), F, D, &l->w_gate, err, errlen)) ||
                (rc = bind(f, T("ffn_up.weight"), F, D, &l->w_up, err, errlen)))
                return rc;
            n_used += 9;
        } else {
            if ((rc = bind(f, T("attn_qkv.weight"), D + 2 * KV, D, &l->wqkv, err, errlen)) ||
                (rc = bind(f, T("ffn_up.weight"), 2 * F, D, &l->w_up, err, errlen)))
                return rc;
            n_used += 6;
        }
#undef T
    }
    /* Every tensor must be understood: an ignored bias or rope-factor tensor would
     * silently give wrong outputs. */
    if (f->n_tensors != n_used) {
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            gguf_str_copy(f->tensors[i].name, name, sizeof name);
            if (!known_tensor(m, name))
                return fail(err, errlen, -ENOTSUP, "unexpected tensor %s (not supported for %s)",
                            name, m->arch_name);
        }
        return fail(err, errlen, -EINVAL, "duplicate tensors in %s%s", m->arch_name, "");
    }
    return 0;
}

int model_load(const char *path, model_t *m, char *err, size_t errlen) {
    gguf_str_t s;
    int rc;
    memset(m, 0, sizeof *m);
    if (err && errlen) err[0] = 0;
    if (gguf_open(path, &m->file, err, errlen) != 0) {
        memset(m, 0, sizeof *m);
        return -EINVAL;
    }
    if (gguf_get_str(&m->file, "general.architecture", &s) != 0) {
        rc = fail(err, errlen, -EINVAL, "%s: metadata general.architecture missing%s", path, "");
        goto err;
    }
    gguf_str_copy(s, m->arch_name, sizeof m->arch_name);
    if (gguf_str_eq(s, "llama")) {
        m->arch = MODEL_ARCH_LLAMA;
    } else if (gguf_str_eq(s, "phi3")) {
        m->arch = MODEL_ARCH_PHI3;
    } else {
        rc = fail(err, errlen, -ENOTSUP, "unsupported architecture \"%s\" (supported: %s)",
                  m->arch_name, "llama, phi3");
        goto err;
    }
    if (gguf_get_str(&m->file, "general.name", &s) == 0) gguf_str_copy(s, m->name, sizeof m->name);
    if ((rc = load_hparams(m, err, errlen)) || (rc = load_tensors(m, err, errlen))) goto err;
    return 0;
err:
    model_free(m);
    return rc;
}

void model_free(model_t *m) {
    if (!m) return;
    free(m->layers);
    m->layers = NULL;
    if (m->file.base) gguf_close(&m->file);
    memset(m, 0, sizeof *m);
}
