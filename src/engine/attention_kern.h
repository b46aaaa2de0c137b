/* attention_kern.h — the heads of one KV group as a kernel: the contract the scalar definition (attention.c) and the x86 versions (attention_avx2.c, attention_avx512.c) share. */
#ifndef TOLLGATE_ENGINE_ATTENTION_KERN_H
#define TOLLGATE_ENGINE_ATTENTION_KERN_H

#include <stddef.h>
#include <stdint.h>

/* What every head of one attention() call shares. */
typedef struct attn_head_job {
    int hd;      /* head_dim */
    int kv_dim;  /* halves between two positions' rows of the cache */
    int lo, pos; /* the window: positions lo..pos take part */
    int n_kv;    /* the reference's padded view: pos+1 rounded up to 32, at most n_ctx */
    int prompt;  /* 1: tiled f16 products (16 lanes); 0: single-token vec dot (4x16 + double tail) */
    float scale; /* applied to each score */
} attn_head_job_t;

/* The most heads one call of an attn_heads_fn takes (heads of one KV group share its
 * K/V rows). */
#define ATTN_UNIT_MAX 8

/* out (nh * hd) = nh <= ATTN_UNIT_MAX heads of one KV group: q (nh * hd) their roped
 * queries (not yet rounded to f16); k, v the group's cache at position 0 (row t at
 * + t * kv_dim). Scratch, all the caller's: att (nh x att_stride, att_stride >= n_kv
 * rounded up to 64, plus 64) scores then probabilities; qh (nh * hd, 32-byte aligned)
 * the rounded queries; work (max(ATTN_UNIT_MAX * 64 * hd, n_kv + 64)) accumulators (the
 * AVX-512 V product keeps every head's slots at once). Every version
 * returns the same floats, bit for bit, as attn_heads_scalar, which is attn_head_scalar
 * (the definition of one head: att, qh, out of that head) once per head. */
typedef void (*attn_heads_fn)(const attn_head_job_t *j, int nh, const float *q, const uint16_t *k,
                              const uint16_t *v, float *att, size_t att_stride, float *qh, float *work, float *out);

void attn_head_scalar(const attn_head_job_t *j, const float *q, const uint16_t *k, const uint16_t *v,
                      float *att, float *qh, float *work, float *out);
void attn_heads_scalar(const attn_head_job_t *j, int nh, const float *q, const uint16_t *k, const uint16_t *v,
                       float *att, size_t att_stride, float *qh, float *work, float *out);
/* The x86 versions need head_dim % 16 == 0 and the CPU's instructions (the dispatch in
 * attention.c checks both). */
void attn_heads_avx2(const attn_head_job_t *j, int nh, const float *q, const uint16_t *k, const uint16_t *v,
                     float *att, size_t att_stride, float *qh, float *work, float *out);
void attn_heads_avx512(const attn_head_job_t *j, int nh, const float *q, const uint16_t *k, const uint16_t *v,
                       float *att, size_t att_stride, float *qh, float *work, float *out);

#endif
