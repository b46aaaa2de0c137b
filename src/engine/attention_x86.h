/* attention_x86.h — the heads of one KV group with F16C conversions and FMA, one body compiled twice (attention_avx2.c, attention_avx512.c).
 *
 * Included only by the two ISA files, after they define the output-dimension vector
 * (AX_W floats: axv_t and the ax_* operations, axd_t for its double tail), AX_ACC (the
 * accumulator registers a V-product pass may hold) and AX_NAME(f). Bit-exact with attn_head_scalar (attention.c): every float of the
 * definition is computed by the same operation on the same operands in the same order,
 * only several of them at once:
 * - scores: the 16 lanes of the f16 dot (lane = i % 16) are two 8-float registers; the
 *   reduction tree is the definition's (a[i+8]+a[i], a[i+4]+a[i], (a0+a2)+(a1+a3)); the
 *   heads of one KV group convert each K row once (head_dim 64 or 128);
 * - softmax: the same exp per lane (vx_exp8 of vexp_x86.h, the polynomial of vexp.h), each 16-lane
 *   chunk summed in that tree, the chunk sums added in double in position order;
 * - V product: the definition's dot of column i with the probabilities keeps, per i, one
 *   accumulator per slot s = t % 16 (prompt) or t % 64 (single token); here a register
 *   holds AX_W consecutive i of one slot, positions t of that slot are visited in
 *   increasing order, so each (i, s) sees the same FMAs in the same order, then the
 *   same combination of slots and the same tail.
 * Positions outside the window (and the padding) have probability 0 and a zero V value
 * in the definition: fma(0, 0, acc) = acc (an accumulator is never -0), and so is a
 * tail step r + 0, so those steps are skipped rather than computed.
 * The files are built with -ffp-contract=off, so a product and a sum written apart stay
 * apart. */
#ifndef TOLLGATE_ENGINE_ATTENTION_X86_H
#define TOLLGATE_ENGINE_ATTENTION_X86_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "engine/attention_kern.h"
#include "engine/vexp_x86.h"

/* ---- 16 lanes as two 8-float registers -------------------------------------------- */

typedef struct l16 {
    __m256 lo, hi; /* lanes 0..7, 8..15 */
} l16_t;

static inline __m256 h8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* the definition's reduce16 */
static inline float l16_reduce(__m256 lo, __m256 hi) {
    __m256 t = _mm256_add_ps(hi, lo);                                             /* a[i+8] + a[i] */
    __m128 u = _mm_add_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t)); /* a[i+4] + a[i] */
    __m128 v = _mm_add_ps(u, _mm_movehl_ps(u, u));                                 /* a0+a2, a1+a3 */
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

/* Round to half precision and back, ties to even (= quant_f32_to_f16 on non-NaN). */
static inline __m256 f16_round8(__m256 x) { return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT)); }

/* ---- the three steps --------------------------------------------------------------- */

/* The two f16 dots of one K row with qh (hd a multiple of 16; a constant after inlining,
 * so that the loops unroll and several rows' chains overlap). */
static inline __attribute__((always_inline)) float AX_NAME(dot_tiled)(const uint16_t *kt, const float *qh, int hd) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < hd; i += 16) {
        a0 = _mm256_fmadd_ps(h8(kt + i), _mm256_load_ps(qh + i), a0);
        a1 = _mm256_fmadd_ps(h8(kt + i + 8), _mm256_load_ps(qh + i + 8), a1);
    }
    return l16_reduce(a0, a1);
}

static inline __attribute__((always_inline)) float AX_NAME(dot_vec)(const uint16_t *kt, const float *qh, int hd) {
    int np = hd & ~63, i = 0;
    double sum = 0.0;
    if (np) {
        __m256 a[8]; /* accumulator jj of the definition is a[2jj] (lanes 0..7), a[2jj+1] (8..15) */
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) a[s] = _mm256_setzero_ps();
#pragma GCC unroll 2
        for (; i < np; i += 64)
#pragma GCC unroll 8
            for (int s = 0; s < 8; s++) a[s] = _mm256_fmadd_ps(h8(kt + i + 8 * s), _mm256_load_ps(qh + i + 8 * s), a[s]);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            a[h] = _mm256_add_ps(a[h], a[4 + h]);         /* acc0 + acc2 */
            a[2 + h] = _mm256_add_ps(a[2 + h], a[6 + h]); /* acc1 + acc3 */
            a[h] = _mm256_add_ps(a[h], a[2 + h]);         /* acc0 + acc1 */
        }
        sum = l16_reduce(a[0], a[1]);
    }
    for (; i < hd; i++) sum += (double)(_cvtsh_ss(kt[i]) * qh[i]);
    return (float)sum;
}

/* att[t] = dot(K row t, qh) * scale for t in lo..pos, four rows at a time; returns their
 * maximum as the definition finds it (in position order; NaNs never win). */
static inline __attribute__((always_inline)) float AX_NAME(scores_hd)(const attn_head_job_t *j, const float *qh,
                                                                       const uint16_t *k, float *att, int hd) {
    float max = -INFINITY, scale = j->scale;
    size_t kv_dim = (size_t)j->kv_dim;
    int t = j->lo, pos = j->pos;
    for (; t + 3 <= pos; t += 4) {
        const uint16_t *kt = k + (size_t)t * kv_dim;
        float r[4];
        if (j->prompt) {
            r[0] = AX_NAME(dot_tiled)(kt, qh, hd);
            r[1] = AX_NAME(dot_tiled)(kt + kv_dim, qh, hd);
            r[2] = AX_NAME(dot_tiled)(kt + 2 * kv_dim, qh, hd);
            r[3] = AX_NAME(dot_tiled)(kt + 3 * kv_dim, qh, hd);
        } else {
            r[0] = AX_NAME(dot_vec)(kt, qh, hd);
            r[1] = AX_NAME(dot_vec)(kt + kv_dim, qh, hd);
            r[2] = AX_NAME(dot_vec)(kt + 2 * kv_dim, qh, hd);
            r[3] = AX_NAME(dot_vec)(kt + 3 * kv_dim, qh, hd);
        }
        for (int u = 0; u < 4; u++) {
            att[t + u] = r[u] * scale;
            if (att[t + u] > max) max = att[t + u];
        }
    }
    for (; t <= pos; t++) {
        const uint16_t *kt = k + (size_t)t * kv_dim;
        att[t] = (j->prompt ? AX_NAME(dot_tiled)(kt, qh, hd) : AX_NAME(dot_vec)(kt, qh, hd)) * scale;
        if (att[t] > max) max = att[t];
    }
    return max;
}

static float AX_NAME(scores)(const attn_head_job_t *j, const float *qh, const uint16_t *k, float *att) {
    switch (j->hd) { /* the usual head sizes get their loops unrolled */
    case 64: return AX_NAME(scores_hd)(j, qh, k, att, 64);
    case 128: return AX_NAME(scores_hd)(j, qh, k, att, 128);
    default: return AX_NAME(scores_hd)(j, qh, k, att, j->hd);
    }
}

/* The same dots with the K row already converted (kr: hd / 8 registers), so that the
 * heads of one KV group convert each row once. */
static inline __attribute__((always_inline)) float AX_NAME(dotr_tiled)(const __m256 *kr, const float *qh, int hd) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < hd; i += 16) {
        a0 = _mm256_fmadd_ps(kr[i / 8], _mm256_load_ps(qh + i), a0);
        a1 = _mm256_fmadd_ps(kr[i / 8 + 1], _mm256_load_ps(qh + i + 8), a1);
    }
    return l16_reduce(a0, a1);
}

/* hd a multiple of 64 here (the callers' constants), so there is no double tail */
static inline __attribute__((always_inline)) float AX_NAME(dotr_vec)(const __m256 *kr, const float *qh, int hd) {
    __m256 a[8]; /* accumulator jj of the definition is a[2jj] (lanes 0..7), a[2jj+1] (8..15) */
#pragma GCC unroll 8
    for (int s = 0; s < 8; s++) a[s] = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int i = 0; i < hd; i += 64)
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) a[s] = _mm256_fmadd_ps(kr[i / 8 + s], _mm256_load_ps(qh + i + 8 * s), a[s]);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        a[h] = _mm256_add_ps(a[h], a[4 + h]);         /* acc0 + acc2 */
        a[2 + h] = _mm256_add_ps(a[2 + h], a[6 + h]); /* acc1 + acc3 */
        a[h] = _mm256_add_ps(a[h], a[2 + h]);         /* acc0 + acc1 */
    }
    return (float)(double)l16_reduce(a[0], a[1]);
}

/* Scores of nh heads sharing K (qh: nh x hd; att: head h at h * stride), each K row
 * converted once; max[h] as scores() finds it. hd 64 or 128 (a constant). */
static inline __attribute__((always_inline)) void AX_NAME(scores_group_hd)(const attn_head_job_t *j, int nh,
                                                                            const float *qh, const uint16_t *k,
                                                                            float *att, size_t stride, float *max,
                                                                            int hd) {
    float scale = j->scale;
    for (int h = 0; h < nh; h++) max[h] = -INFINITY;
    for (int t = j->lo; t <= j->pos; t++) {
        const uint16_t *kt = k + (size_t)t * j->kv_dim;
        __m256 kr[128 / 8];
#pragma GCC unroll 16
        for (int i = 0; i < hd / 8; i++) kr[i] = h8(kt + 8 * i);
        for (int h = 0; h < nh; h++) {
            float r = j->prompt ? AX_NAME(dotr_tiled)(kr, qh + (size_t)h * hd, hd)
                                : AX_NAME(dotr_vec)(kr, qh + (size_t)h * hd, hd);
            float *a = att + (size_t)h * stride + t;
            *a = r * scale;
            if (*a > max[h]) max[h] = *a;
        }
    }
}

/* att[0..n_kv) = probabilities rounded to f16 (0 outside lo..pos). */
static void AX_NAME(softmax)(const attn_head_job_t *j, float max, float *att) {
    int lo = j->lo, pos = j->pos, n_kv = j->n_kv;
    __m256 vmax = _mm256_set1_ps(max);
    __m256i vlo = _mm256_set1_epi32(lo - 1), vhi = _mm256_set1_epi32(pos + 1);
    __m256i step = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    double sum = 0.0;
    for (int c0 = 0; c0 < n_kv; c0 += 16) {
        __m256 e[2];
        if (c0 + 15 < lo || c0 > pos) { /* no lane in the window: a chunk of zeros adds +0 */
            _mm256_storeu_ps(att + c0, _mm256_setzero_ps());
            _mm256_storeu_ps(att + c0 + 8, _mm256_setzero_ps());
            continue;
        }
        for (int h = 0; h < 2; h++) {
            __m256i t = _mm256_add_epi32(_mm256_set1_epi32(c0 + 8 * h), step);
            __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(t, vlo), _mm256_cmpgt_epi32(vhi, t));
            __m256 x = _mm256_sub_ps(_mm256_loadu_ps(att + c0 + 8 * h), vmax);
            e[h] = _mm256_and_ps(vx_exp8(x), _mm256_castsi256_ps(in));
            _mm256_storeu_ps(att + c0 + 8 * h, e[h]);
        }
        sum += (double)l16_reduce(e[0], e[1]);
    }
    __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (int t = lo & ~7; t <= pos; t += 8)
        _mm256_storeu_ps(att + t, f16_round8(_mm256_mul_ps(_mm256_loadu_ps(att + t), inv)));
}

/* The blocked part of the V product for dims [d0, d0 + nv * AX_W) and slots g0..g0+g-1
 * (g = AX_ACC / nv): slot s's accumulators gain v[t][d] * p[t] for t = base + g0 + s of
 * every block (period P) of positions that meets lo..hi, in increasing t; then go to
 * slots (P, hd) at s * hd + d. A pass reads g whole consecutive rows (nv * AX_W dims
 * wide) per block, its g * nv accumulators in registers (nv is a constant after
 * inlining, and the loops are unrolled). */
static inline __attribute__((always_inline)) void AX_NAME(vpass)(const uint16_t *v, int kv_dim, const float *p,
                                                                  int lo, int hi, int P, int np, int g0, int d0,
                                                                  int nv, int hd, float *slots) {
    enum { MAXA = AX_ACC };
    const int g = AX_ACC / nv;
    axv_t a[MAXA];
#pragma GCC unroll 16
    for (int i = 0; i < MAXA; i++) a[i] = ax_zero();
    for (int base = lo / P * P; base < np; base += P) {
        int t0 = base + g0;
        if (t0 > hi) break;
        if (t0 + g - 1 < lo) continue;
        const uint16_t *vr = v + (size_t)t0 * kv_dim + d0;
        int full = t0 >= lo && t0 + g - 1 <= hi;
#pragma GCC unroll 16
        for (int s = 0; s < g; s++) {
            int t = t0 + s;
            if (full || (t >= lo && t <= hi)) {
                axv_t ps = ax_set1(p[t]);
#pragma GCC unroll 4
                for (int n = 0; n < nv; n++)
                    a[s * nv + n] = ax_fma(ax_loadh(vr + (size_t)s * kv_dim + n * AX_W), ps, a[s * nv + n]);
            }
        }
    }
#pragma GCC unroll 16
    for (int s = 0; s < g; s++)
#pragma GCC unroll 4
        for (int n = 0; n < nv; n++) ax_store(slots + (size_t)(g0 + s) * hd + d0 + n * AX_W, a[s * nv + n]);
}

/* out (hd) = sum over t of p[t] * V row t, in the definition's order (see the top). */
static void AX_NAME(vprod)(const attn_head_job_t *j, const uint16_t *v, const float *p, float *slots,
                           float *out) {
    int hd = j->hd, kv_dim = j->kv_dim, lo = j->lo, n_kv = j->n_kv;
    int P = j->prompt ? 16 : 64, np = n_kv & ~(P - 1);
    int hi = j->pos < np - 1 ? j->pos : np - 1; /* last position of the blocked part */
    /* the widest block of nv <= 4 registers that divides hd (64 dims with AVX-512, 32
     * with AVX2): fewer passes, each reading more of every row it touches */
    int nv = hd % (4 * AX_W) == 0 ? 4 : hd % (2 * AX_W) == 0 ? 2 : 1;
    for (int d0 = 0; d0 < hd; d0 += nv * AX_W)
        for (int g0 = 0; g0 < P; g0 += AX_ACC / nv) {
            if (nv == 4)
                AX_NAME(vpass)(v, kv_dim, p, lo, hi, P, np, g0, d0, 4, hd, slots);
            else if (nv == 2)
                AX_NAME(vpass)(v, kv_dim, p, lo, hi, P, np, g0, d0, 2, hd, slots);
            else
                AX_NAME(vpass)(v, kv_dim, p, lo, hi, P, np, g0, d0, 1, hd, slots);
        }
    int tail0 = np > lo ? np : lo;
    for (int d0 = 0; d0 < hd; d0 += AX_W) {
        axv_t l[16];
        const float *sd = slots + d0;
        if (j->prompt) {
            for (int s = 0; s < 16; s++) l[s] = ax_load(sd + (size_t)s * hd);
        } else {
            for (int s = 0; s < 16; s++) {
                axv_t a02 = ax_add(ax_load(sd + (size_t)s * hd), ax_load(sd + (size_t)(32 + s) * hd));
                axv_t a13 = ax_add(ax_load(sd + (size_t)(16 + s) * hd), ax_load(sd + (size_t)(48 + s) * hd));
                l[s] = ax_add(a02, a13);
            }
        }
        for (int s = 0; s < 8; s++) l[s] = ax_add(l[s + 8], l[s]);
        for (int s = 0; s < 4; s++) l[s] = ax_add(l[s + 4], l[s]);
        axv_t r = ax_add(ax_add(l[0], l[2]), ax_add(l[1], l[3]));
        if (j->prompt) {
            for (int t = tail0; t <= j->pos && t < n_kv; t++)
                r = ax_add(r, ax_mul(ax_loadh(v + (size_t)t * kv_dim + d0), ax_set1(p[t])));
            ax_store(out + d0, r);
        } else {
            axd_t sum = axd_from(r);
            for (int t = tail0; t <= j->pos && t < n_kv; t++)
                sum = axd_add(sum, axd_from(ax_mul(ax_loadh(v + (size_t)t * kv_dim + d0), ax_set1(p[t]))));
            ax_store(out + d0, axd_to(sum));
        }
    }
}

/* The entry: attn_heads_avx2, or (AX_ENTRY, AX_ENTRY_LINKAGE given) the AVX-512 file's
 * fallback for the head sizes its own paths leave out. */
#ifndef AX_ENTRY
#define AX_ENTRY AX_NAME(attn_heads)
#define AX_ENTRY_LINKAGE
#endif
AX_ENTRY_LINKAGE void AX_ENTRY(const attn_head_job_t *j, int nh, const float *q, const uint16_t *k, const uint16_t *v,
                               float *att, size_t att_stride, float *qh, float *work, float *out) {
    int hd = j->hd;
    float max[ATTN_UNIT_MAX];
    for (int i = 0; i < nh * hd; i += 8) _mm256_store_ps(qh + i, f16_round8(_mm256_loadu_ps(q + i)));
    if (nh > 1 && hd == 64)
        AX_NAME(scores_group_hd)(j, nh, qh, k, att, att_stride, max, 64);
    else if (nh > 1 && hd == 128)
        AX_NAME(scores_group_hd)(j, nh, qh, k, att, att_stride, max, 128);
    else
        for (int h = 0; h < nh; h++) max[h] = AX_NAME(scores)(j, qh + (size_t)h * hd, k, att + (size_t)h * att_stride);
    for (int h = 0; h < nh; h++) {
        float *ah = att + (size_t)h * att_stride;
        AX_NAME(softmax)(j, max[h], ah);
        AX_NAME(vprod)(j, v, ah, work, out + (size_t)h * hd);
    }
}

#endif
