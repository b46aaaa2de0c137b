/* model.h — a transformer model loaded from a GGUF file: hyper-parameters and weight views into the mmapped file. */
#ifndef TOLLGATE_ENGINE_MODEL_H
#define TOLLGATE_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model/gguf.h"

/* Legend for the shape comments: V vocabulary, D n_embd, L layers, H query heads,
 * Hkv key/value heads, hd head_dim (= D / H), KV kv_dim (= Hkv * hd), F n_ff.
 * Shapes are written (rows, cols) with cols contiguous, i.e. GGUF (ne[1], ne[0]). */

typedef enum model_arch {
    MODEL_ARCH_LLAMA = 0, /* Llama 2, Mistral, TinyLlama: separate q/k/v, gate/up; adjacent-pair RoPE */
    MODEL_ARCH_PHI3 = 1,  /* Phi-3: fused qkv, fused gate|up, NEOX RoPE, sliding window */
} model_arch_t;

/* A 2-D weight matrix: a view into the mapping, never a copy. */
typedef struct model_tensor {
    const void *data; /* rows * row_bytes bytes, in the file's mapping (read-only) */
    int type;         /* ggml_type_t of the elements */
    int64_t rows;     /* output dimension (GGUF ne[1]) */
    int64_t cols;     /* input dimension, contiguous (GGUF ne[0]) */
    size_t row_bytes; /* bytes of one row */
} model_tensor_t;

typedef struct model_layer {
    const float *attn_norm; /* (D) RMSNorm weight before attention */
    model_tensor_t wq;      /* llama: (D, D)           query projection */
    model_tensor_t wk;      /* llama: (KV, D)          key projection */
    model_tensor_t wv;      /* llama: (KV, D)          value projection */
    model_tensor_t wqkv;    /* phi3:  (D + 2*KV, D)    rows q then k then v */
    model_tensor_t wo;      /* (D, D)                  attention output projection */
    const float *ffn_norm;  /* (D) RMSNorm weight before the feed-forward */
    model_tensor_t w_gate;  /* llama: (F, D)           SwiGLU gate */
    model_tensor_t w_up;    /* llama: (F, D); phi3: (2*F, D), rows gate then up */
    model_tensor_t w_down;  /* (D, F) */
} model_layer_t;

typedef struct model_hparams {
    int n_vocab;        /* V, rows of token_embd */
    int n_embd;         /* D */
    int n_layer;        /* L */
    int n_head;         /* H */
    int n_head_kv;      /* Hkv, divides H (grouped-query attention) */
    int head_dim;       /* hd = D / H */
    int n_ff;           /* F */
    int n_ctx_train;    /* context length the model was trained with */
    int n_rot;          /* RoPE dimensions per head (<= hd, even) */
    int sliding_window; /* attend to the last this many positions; 0 = unlimited */
    int rope_neox;      /* 1: rotate pairs (i, i + n_rot/2); 0: adjacent pairs (2i, 2i+1) */
    float rope_base;    /* RoPE frequency base (theta) */
    float norm_eps;     /* RMSNorm epsilon */
} model_hparams_t;

typedef struct model {
    gguf_file_t file;        /* the mmapped file; owns every weight pointer below */
    model_arch_t arch;
    char arch_name[32];      /* general.architecture, e.g. "llama" */
    char name[128];          /* general.name, or "" */
    model_hparams_t hp;
    model_tensor_t tok_embd; /* (V, D) */
    model_layer_t *layers;   /* (L) heap array */
    const float *output_norm;/* (D) */
    model_tensor_t output;   /* (V, D); the same view as tok_embd when the file ties them */
    int tied_output;         /* 1 when output.weight is absent and tok_embd is reused */
} model_t;

/* Map the GGUF file at path and bind the model to it. Supported: arch llama and phi3,
 * weight types F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K (norms F32). 0, or a negative errno
 * with a message in err naming the problem (unsupported architecture "x", tensor
 * "blk.3.attn_q.weight" missing / has type Q2_K / has shape [a, b] but [c, d] expected,
 * unexpected tensor "y"). On failure *m holds nothing to free. */
int model_load(const char *path, model_t *m, char *err, size_t errlen);

/* Unmap and free. Safe on a zeroed or already-freed model. */
void model_free(model_t *m);

#endif
