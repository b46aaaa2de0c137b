/* tmodel.h — the trainable llama model: parameters in one array, forward and backward of
 * one sequence with every activation kept, and the GGUF tensors it becomes. */
#ifndef TOLLGATE_TRAIN_TMODEL_H
#define TOLLGATE_TRAIN_TMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model/gguf.h"

/* Legend: V vocabulary, D dim, L layers, H heads, hd = D / H, F feed-forward, T tokens of
 * the sequence (T <= ctx), M positions with a loss. Matrices are (rows = out, cols = in),
 * cols contiguous, as the engine reads them. The output projection is tied to the
 * embedding. RoPE rotates adjacent pairs (2i, 2i+1) of q and k, which is what the engine
 * computes for llama files, so the weights are written without any permutation. */
typedef struct tm_config {
    int vocab;   /* V */
    int dim;     /* D */
    int n_layer; /* L */
    int n_head;  /* H */
    int ff;      /* F */
    int ctx;     /* longest sequence (positions) */
    float rope_base;
    float norm_eps;
} tm_config_t;

/* Views into one float array of tm_param_count() elements (parameters, gradients and the
 * optimizer's moments all use this layout). */
typedef struct tm_params {
    float *tok_embd;  /* (V, D) also the output projection */
    float *attn_norm; /* (L, D) */
    float *wq;        /* (L, D, D) */
    float *wk;        /* (L, D, D) */
    float *wv;        /* (L, D, D) */
    float *wo;        /* (L, D, D) */
    float *ffn_norm;  /* (L, D) */
    float *w_gate;    /* (L, F, D) */
    float *w_up;      /* (L, F, D) */
    float *w_down;    /* (L, D, F) */
    float *out_norm;  /* (D) */
} tm_params_t;

/* Activations and backward scratch of one sequence, allocated once for T = ctx. */
typedef struct tm_acts {
    float *res;    /* (L+1, T, D) residual stream entering each layer; [L] leaves the last */
    float *xn1;    /* (L, T, D) attention input after RMSNorm */
    float *rstd1;  /* (L, T) */
    float *q;      /* (L, T, D) after RoPE */
    float *k;      /* (L, T, D) after RoPE */
    float *v;      /* (L, T, D) */
    float *att;    /* (L, H, T, T) attention probabilities (row t: positions 0..t) */
    float *ao;     /* (L, T, D) attention output before wo */
    float *mid;    /* (L, T, D) residual after the attention block */
    float *xn2;    /* (L, T, D) feed-forward input after RMSNorm */
    float *rstd2;  /* (L, T) */
    float *gate;   /* (L, T, F) */
    float *up;     /* (L, T, F) */
    float *hsw;    /* (L, T, F) silu(gate) * up */
    float *rstdf;  /* (T) */
    float *xf;     /* (M, D) final-normed rows that have a loss */
    float *logits; /* (M, V) logits, then d(loss)/d(logits) in backward */
    int *rows;     /* (M) positions of those rows */
    int M;
    /* backward scratch */
    float *dres;               /* (T, D) gradient of the residual stream */
    float *dx;                 /* (T, D) gradient of a normed input */
    float *dq, *dk, *dv, *dao; /* (T, D) */
    float *dh;                 /* (T, F) gradient of hsw */
    float *dg;                 /* (T, F) gradient of gate */
    float *du;                 /* (T, F) gradient of up */
    float *dxf;                /* (M, D) */
    float *rope;               /* (ctx, hd) cos, sin of each position and pair */
} tm_acts_t;

size_t tm_param_count(const tm_config_t *c);
void tm_params_bind(const tm_config_t *c, float *mem, tm_params_t *p);
/* Random initialisation (scaled normal, GPT-2 style; norms 1). */
void tm_params_init(const tm_config_t *c, float *mem, uint64_t seed);

int tm_acts_new(const tm_config_t *c, tm_acts_t *a);
void tm_acts_free(tm_acts_t *a);

/* Forward of tokens[0..T): targets[t] is the next token to predict at t, or -1 for no
 * loss there; targets NULL computes logits at every position (a->logits (T, V)). Returns
 * the summed cross-entropy (nats) over the targets and sets *n_targets, or -1 when T is
 * out of range. */
double tm_forward(const tm_config_t *c, const tm_params_t *p, tm_acts_t *a, const int32_t *tokens,
                  const int32_t *targets, int T, int *n_targets);
/* Backward of the last tm_forward (with targets), loss scaled by `scale` (1 / targets in
 * the batch), accumulating into the gradient views g. */
void tm_backward(const tm_config_t *c, const tm_params_t *p, const tm_params_t *g, tm_acts_t *a,
                 const int32_t *tokens, const int32_t *targets, int T, float scale);

/* Add the llama hyper-parameters and the tensors (F32, or F16 for matrices when f16) of
 * the model to w (the data is copied). 0 or a negative errno. */
int tm_write_gguf(const tm_config_t *c, const tm_params_t *p, int f16, gguf_writer_t *w);

#endif
