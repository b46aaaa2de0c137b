/* attention_avx512.c — the heads of one KV group with AVX-512 (head_dim 64 and 128): scores 16 positions per register (a transposed reduction), softmax on 16 lanes, the group's V product at once; attention_x86.h's body for other head sizes. */
#include <immintrin.h>
#include <stdint.h>

#define AX_NAME(f) f##_avx512
#define AX_W 16 /* output dims per register */
#define AX_ACC 16 /* accumulator registers per pass (of 32) */

typedef __m512 axv_t;
static inline axv_t ax_zero(void) { return _mm512_setzero_ps(); }
static inline axv_t ax_set1(float x) { return _mm512_set1_ps(x); }
static inline axv_t ax_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void ax_store(float *p, axv_t x) { _mm512_storeu_ps(p, x); }
static inline axv_t ax_loadh(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline axv_t ax_fma(axv_t a, axv_t b, axv_t c) { return _mm512_fmadd_ps(a, b, c); }
static inline axv_t ax_add(axv_t a, axv_t b) { return _mm512_add_ps(a, b); }
static inline axv_t ax_mul(axv_t a, axv_t b) { return _mm512_mul_ps(a, b); }

/* AX_W sums in double (the single-token V product's tail) */
typedef struct axd {
    __m512d lo, hi;
} axd_t;
static inline axd_t axd_from(axv_t x) {
    return (axd_t){_mm512_cvtps_pd(_mm512_castps512_ps256(x)), _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1))};
}
static inline axd_t axd_add(axd_t a, axd_t b) { return (axd_t){_mm512_add_pd(a.lo, b.lo), _mm512_add_pd(a.hi, b.hi)}; }
static inline axv_t axd_to(axd_t a) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(a.lo)), _mm512_cvtpd_ps(a.hi), 1);
}

/* attention_x86.h's whole-head body is this file's fallback (head sizes other than 64
 * and 128); its helpers (l16_reduce, the axd_t double sums) serve both. */
#define AX_ENTRY attn_heads_avx512_generic
#define AX_ENTRY_LINKAGE static
#include "engine/attention_x86.h"

/* ---- scores: 16 positions per register --------------------------------------------- */

/* Sixteen positions' 16-lane sums r[0..15] reduced at once, each in the definition's
 * reduce16 tree (a[i+8]+a[i], a[i+4]+a[i], (a0+a2)+(a1+a3)), by pairing registers
 * instead of lanes: step 1 adds the upper 256 bits of two rows to their lower 256 bits
 * (both rows' 8 sums in one register), step 2 the upper 128 bits of each half to the
 * lower, steps 3 and 4 the pairs inside each 128-bit lane. The result's lane L is the sum
 * of r[RED_SLOT(L)]; RED_SLOT is its own inverse, so a caller that puts position t0 + u
 * into r[RED_SLOT(u)] gets position t0 + L in lane L. */
#define RED_SLOT(L) ((L) / 4 + 4 * ((L) % 4))
static inline __m512 red16x16(const __m512 *r) {
    __m512 s[8], t[4], u[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) /* a[i+8] + a[i], two rows per register */
        s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(r[2 * i], r[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)),
                             _mm512_shuffle_f32x4(r[2 * i], r[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* a[i+4] + a[i], four rows per register */
        t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)),
                             _mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* a0 + a2, a1 + a3 */
        u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)), /* (a0+a2) + (a1+a3) */
                         _mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* The f16 dots of 16 converted K rows (kf: row r at r * HD, in RED_SLOT order) with one
 * head's rounded query (qv: HD / 16 registers), reduced: 16 scores before the scale.
 * prompt: one 16-lane accumulator over the chunks of 16 in order (the tiled dot);
 * else the single-token dot's four accumulators (chunk c into c % 4), combined
 * (acc0+acc2)+(acc1+acc3) per lane (HD a multiple of 64: no double tail, and its cast
 * through double changes nothing). fma(k, q, 0) stands for the first FMA into a zero
 * accumulator, as in the definition. */
static inline __attribute__((always_inline)) __m512 dots16(const float *kf, const __m512 *qv, int HD, int prompt) {
    const __m512 z = _mm512_setzero_ps();
    __m512 r[16];
    if (prompt) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) r[i] = _mm512_fmadd_ps(_mm512_loadu_ps(kf + i * HD), qv[0], z);
#pragma GCC unroll 8
        for (int c = 1; c < HD / 16; c++)
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) r[i] = _mm512_fmadd_ps(_mm512_loadu_ps(kf + i * HD + 16 * c), qv[c], r[i]);
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m512 a[4];
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) a[c] = _mm512_fmadd_ps(_mm512_loadu_ps(kf + i * HD + 16 * c), qv[c], z);
#pragma GCC unroll 4
            for (int c = 4; c < HD / 16; c++)
                a[c % 4] = _mm512_fmadd_ps(_mm512_loadu_ps(kf + i * HD + 16 * c), qv[c], a[c % 4]);
            r[i] = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
        }
    }
    return red16x16(r);
}

/* att[h][t] = score of head h at t, for t in lo..pos, and max[h] over them as the
 * definition finds it (scores NaN never win: max_ps keeps its second operand then; which
 * of +0 and -0 wins does not change any exp(att - max)). nh heads share each block of
 * 16 K rows, converted once into kf (16 * HD floats of scratch). The last block repeats
 * row pos for the positions past it and stores only its own lanes. */
static inline __attribute__((always_inline)) void scores_blocks(const attn_head_job_t *j, int nh, const float *qh,
                                                               const uint16_t *k, const uint16_t *v, float *att, size_t stride,
                                                               float *kf, float *max, int HD, int prompt) {
    const __m512 scale = _mm512_set1_ps(j->scale);
    __m512 vmax[ATTN_UNIT_MAX];
    for (int h = 0; h < nh; h++) vmax[h] = _mm512_set1_ps(-INFINITY);
    size_t kv_dim = (size_t)j->kv_dim;
    for (int t0 = j->lo; t0 <= j->pos; t0 += 16) {
        int n = j->pos - t0 + 1 < 16 ? j->pos - t0 + 1 : 16;
        __mmask16 m = (__mmask16)(n == 16 ? 0xffff : (1u << n) - 1);
#pragma GCC unroll 16
        for (int u = 0; u < 16; u++) { /* rows in address order, into slot RED_SLOT(u) */
            int t = t0 + u < j->pos ? t0 + u : j->pos;
            const uint16_t *kt = k + (size_t)t * kv_dim;
#pragma GCC unroll 8
            for (int c = 0; c < HD / 16; c++)
                _mm512_storeu_ps(kf + RED_SLOT(u) * HD + 16 * c,
                                 _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kt + 16 * c))));
        }
        /* The cache is in memory when a token comes back to this layer: ask for the K
         * rows two blocks ahead, and for this block's V rows, which the V product reads
         * after the scores (into L2: the group's window of V rows fits there). */
        for (int u = 0; u < 16; u++) {
            int tk = t0 + 32 + u, tv = t0 + u;
            for (int c = 0; c < HD; c += 32) { /* 64-byte lines */
                if (tk <= j->pos) _mm_prefetch((const char *)(k + (size_t)tk * kv_dim + c), _MM_HINT_T0);
                if (tv <= j->pos) _mm_prefetch((const char *)(v + (size_t)tv * kv_dim + c), _MM_HINT_T1);
            }
        }
        for (int h = 0; h < nh; h++) {
            __m512 qv[HD / 16];
#pragma GCC unroll 8
            for (int c = 0; c < HD / 16; c++) qv[c] = _mm512_loadu_ps(qh + (size_t)h * HD + 16 * c);
            __m512 sc = _mm512_mul_ps(dots16(kf, qv, HD, prompt), scale);
            _mm512_mask_storeu_ps(att + (size_t)h * stride + t0, m, sc);
            vmax[h] = _mm512_mask_max_ps(vmax[h], m, sc, vmax[h]);
        }
    }
    for (int h = 0; h < nh; h++) max[h] = _mm512_reduce_max_ps(vmax[h]);
}

/* ---- softmax on 16 lanes ----------------------------------------------------------- */

/* v_expf (vexp.h) on 16 lanes: vx_exp8's operations (vexp_x86.h) in 512-bit registers;
 * lanes with |n| > 126 take the product in double, which gives the same float as the
 * single product wherever both apply, so the choice per 16 lanes instead of 8 changes
 * nothing. */
static inline __m512 vx_exp16(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f), sign = _mm512_set1_ps(-0.0f);
    __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    __m512 n = _mm512_sub_ps(z, r);
    __m512 nn = _mm512_xor_ps(n, sign);
    __m512 b = _mm512_fmadd_ps(nn, _mm512_set1_ps(0x1.7f7d1cp-20f),
                               _mm512_fmadd_ps(nn, _mm512_set1_ps(0x1.62e4p-1f), x));
    __m512 u = _mm512_mul_ps(b, b);
    __m512 p5 = _mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f));
    __m512 p3 = _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f));
    __m512 p1 = _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f));
    __m512 jj = _mm512_fmadd_ps(_mm512_fmadd_ps(p5, u, p3), u, p1);
    __m512 an = _mm512_andnot_ps(sign, n);
    __m512i ni = _mm512_cvttps_epi32(n);
    __m512 res;
    if (!_mm512_cmp_ps_mask(an, _mm512_set1_ps(126.0f), _CMP_GT_OQ)) {
        __m512i e = _mm512_slli_epi32(_mm512_add_epi32(ni, _mm512_set1_epi32(127)), 23);
        res = _mm512_mul_ps(jj, _mm512_castsi512_ps(e));
    } else {
        const __m512i bias = _mm512_set1_epi64(1023);
        __m512d e0 = _mm512_castsi512_pd(
            _mm512_slli_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(ni)), bias), 52));
        __m512d e1 = _mm512_castsi512_pd(
            _mm512_slli_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(ni, 1)), bias), 52));
        __m256 r0 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(jj)), e0));
        __m256 r1 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(jj, 1)), e1));
        res = _mm512_insertf32x8(_mm512_castps256_ps512(r0), r1, 1);
    }
    /* |n| > 192: 0 below, infinity above */
    __mmask16 big = _mm512_cmp_ps_mask(an, _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    __mmask16 neg = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ);
    __m512 sat = _mm512_mask_blend_ps(neg, _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(big, res, sat);
}

/* the definition's reduce16 of one register */
static inline float reduce16_512(__m512 x) {
    return l16_reduce(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
}

/* att[0..n_kv) = probabilities rounded to f16 (0 outside lo..pos): the softmax of
 * attention_x86.h with a chunk of 16 per register. */
static void softmax16(const attn_head_job_t *j, float max, float *att) {
    int lo = j->lo, pos = j->pos, n_kv = j->n_kv;
    __m512 vmax = _mm512_set1_ps(max);
    const __m512i step = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(pos);
    double sum = 0.0;
    for (int c0 = 0; c0 < n_kv; c0 += 16) {
        if (c0 + 15 < lo || c0 > pos) { /* no lane in the window: a chunk of zeros adds +0 */
            _mm512_storeu_ps(att + c0, _mm512_setzero_ps());
            continue;
        }
        __m512i t = _mm512_add_epi32(_mm512_set1_epi32(c0), step);
        __mmask16 in = _mm512_cmp_epi32_mask(t, vlo, _MM_CMPINT_NLT) & _mm512_cmp_epi32_mask(t, vhi, _MM_CMPINT_LE);
        __m512 e = _mm512_maskz_mov_ps(in, vx_exp16(_mm512_sub_ps(_mm512_loadu_ps(att + c0), vmax)));
        _mm512_storeu_ps(att + c0, e);
        sum += (double)reduce16_512(e);
    }
    __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (int t = lo & ~15; t <= pos; t += 16)
        _mm512_storeu_ps(att + t, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_mul_ps(_mm512_loadu_ps(att + t), inv),
                                                                   _MM_FROUND_TO_NEAREST_INT)));
}

/* ---- V product: the heads of the group at once ------------------------------------ */

/* Dims per round of the V product: every slot of every head for these dims, then their
 * combination, so that the slots (nh x P x VDIMS floats, 64 KiB at most) stay in the
 * core's caches from one round to the next. */
#define VDIMS 32

/* The blocked part of the V product (attention_x86.h's vpass, see its top comment for
 * the order) for NH heads h0.. at once: slots g0..g0+G-1 (G = 8 / NH) of dims [d0, d0 +
 * VDIMS), 16 accumulators in registers. Each V row is converted once for the NH heads
 * instead of once per head. slots: head h's slot s at (h * P + s) * VDIMS. */
static inline __attribute__((always_inline)) void vpass_heads(const uint16_t *v, size_t kv_dim, const float *att,
                                                              size_t stride, int lo, int hi, int P, int np, int g0,
                                                              int d0, int h0, int NH, float *slots) {
    enum { NV = VDIMS / 16 };
    const int G = 8 / NH;
    __m512 a[16];
#pragma GCC unroll 16
    for (int i = 0; i < NH * G * NV; i++) a[i] = _mm512_setzero_ps();
    for (int base = lo / P * P; base < np; base += P) {
        int t0 = base + g0;
        if (t0 > hi) break;
        if (t0 + G - 1 < lo) continue;
        int full = t0 >= lo && t0 + G - 1 <= hi;
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) {
            int t = t0 + g;
            if (!full && (t < lo || t > hi)) continue;
            const uint16_t *vr = v + (size_t)t * kv_dim + d0;
            __m512 x[NV];
#pragma GCC unroll 4
            for (int n = 0; n < NV; n++) x[n] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vr + 16 * n)));
#pragma GCC unroll 8
            for (int h = 0; h < NH; h++) {
                __m512 p = _mm512_set1_ps(att[(size_t)(h0 + h) * stride + t]);
#pragma GCC unroll 4
                for (int n = 0; n < NV; n++) a[(h * G + g) * NV + n] = _mm512_fmadd_ps(x[n], p, a[(h * G + g) * NV + n]);
            }
        }
    }
#pragma GCC unroll 8
    for (int h = 0; h < NH; h++)
#pragma GCC unroll 8
        for (int g = 0; g < G; g++)
#pragma GCC unroll 4
            for (int n = 0; n < NV; n++)
                _mm512_storeu_ps(slots + ((size_t)(h0 + h) * P + g0 + g) * VDIMS + 16 * n, a[(h * G + g) * NV + n]);
}

/* Every pass over NH heads from h0 (8, 4, 2 or 1: a constant after inlining) for the
 * dims [d0, d0 + VDIMS): 8 heads x 1 slot, 4 x 2, 2 x 4 or 1 x 8 per pass. */
static inline __attribute__((always_inline)) void vpasses(const uint16_t *v, size_t kv_dim, const float *att,
                                                          size_t stride, int lo, int hi, int P, int np, int d0,
                                                          int h0, int NH, float *slots) {
    for (int g0 = 0; g0 < P; g0 += 8 / NH) vpass_heads(v, kv_dim, att, stride, lo, hi, P, np, g0, d0, h0, NH, slots);
}

/* One head's 16 dims [dn, dn + 16) of the V product: r (the blocked part's sums) plus
 * the tail positions tail0..pos, in double for a single token, stored at o. */
static inline __attribute__((always_inline)) void vprod_tail(const attn_head_job_t *j, const uint16_t *v,
                                                             const float *p, int dn, int tail0, __m512 r, float *o) {
    size_t kv_dim = (size_t)j->kv_dim;
    axd_t sum = axd_from(r); /* single token */
    for (int t = tail0; t <= j->pos && t < j->n_kv; t++) {
        const __m256i *vt = (const __m256i *)(v + (size_t)t * kv_dim + dn);
        __m512 x = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256(vt)), _mm512_set1_ps(p[t]));
        if (j->prompt)
            r = _mm512_add_ps(r, x);
        else
            sum = axd_add(sum, axd_from(x));
    }
    _mm512_storeu_ps(o, j->prompt ? r : axd_to(sum));
}

/* out (nh x HD) = each head's probabilities times V, in the definition's order: per
 * VDIMS dims, the blocked part by vpasses into slots, then per head the definition's
 * combination of slots and its tail (attention_x86.h's vprod). */
static inline __attribute__((always_inline)) void vprod_heads(const attn_head_job_t *j, int nh, const uint16_t *v,
                                                              const float *att, size_t stride, float *slots,
                                                              float *out, int HD) {
    size_t kv_dim = (size_t)j->kv_dim;
    int lo = j->lo, n_kv = j->n_kv, P = j->prompt ? 16 : 64, np = n_kv & ~(P - 1);
    int hi = j->pos < np - 1 ? j->pos : np - 1; /* last position of the blocked part */
    int tail0 = np > lo ? np : lo;
    if (hi < lo) {
        /* no position in the blocked part (a single token before position 32): every
         * slot would hold +0 and their combination be +0, so each sum is its tail alone
         * (skipping the slots' 64 KiB of stores and loads per round) */
        for (int h = 0; h < nh; h++)
            for (int dn = 0; dn < HD; dn += 16)
                vprod_tail(j, v, att + (size_t)h * stride, dn, tail0, _mm512_setzero_ps(), out + (size_t)h * HD + dn);
        return;
    }
    for (int d0 = 0; d0 < HD; d0 += VDIMS) {
        int h0 = 0;
        for (; h0 + 8 <= nh; h0 += 8) vpasses(v, kv_dim, att, stride, lo, hi, P, np, d0, h0, 8, slots);
        if (h0 + 4 <= nh) vpasses(v, kv_dim, att, stride, lo, hi, P, np, d0, h0, 4, slots), h0 += 4;
        if (h0 + 2 <= nh) vpasses(v, kv_dim, att, stride, lo, hi, P, np, d0, h0, 2, slots), h0 += 2;
        if (h0 < nh) vpasses(v, kv_dim, att, stride, lo, hi, P, np, d0, h0, 1, slots);
        for (int h = 0; h < nh; h++) {
            const float *p = att + (size_t)h * stride, *sh = slots + (size_t)h * P * VDIMS;
#pragma GCC unroll 2
            for (int dd = 0; dd < VDIMS; dd += 16) {
                __m512 l[16];
                const float *sd = sh + dd;
                if (j->prompt) {
#pragma GCC unroll 16
                    for (int s = 0; s < 16; s++) l[s] = _mm512_loadu_ps(sd + (size_t)s * VDIMS);
                } else {
#pragma GCC unroll 16
                    for (int s = 0; s < 16; s++) {
                        __m512 a02 = _mm512_add_ps(_mm512_loadu_ps(sd + (size_t)s * VDIMS),
                                                   _mm512_loadu_ps(sd + (size_t)(32 + s) * VDIMS));
                        __m512 a13 = _mm512_add_ps(_mm512_loadu_ps(sd + (size_t)(16 + s) * VDIMS),
                                                   _mm512_loadu_ps(sd + (size_t)(48 + s) * VDIMS));
                        l[s] = _mm512_add_ps(a02, a13);
                    }
                }
#pragma GCC unroll 8
                for (int s = 0; s < 8; s++) l[s] = _mm512_add_ps(l[s + 8], l[s]);
#pragma GCC unroll 4
                for (int s = 0; s < 4; s++) l[s] = _mm512_add_ps(l[s + 4], l[s]);
                __m512 r = _mm512_add_ps(_mm512_add_ps(l[0], l[2]), _mm512_add_ps(l[1], l[3]));
                vprod_tail(j, v, p, d0 + dd, tail0, r, out + (size_t)h * HD + d0 + dd);
            }
        }
    }
}

/* ---- the heads --------------------------------------------------------------------- */

static inline __attribute__((always_inline)) void heads_hd(const attn_head_job_t *j, int nh, const float *q,
                                                           const uint16_t *k, const uint16_t *v, float *att,
                                                           size_t att_stride, float *qh, float *work, float *out,
                                                           int HD) {
    float max[ATTN_UNIT_MAX];
    for (int i = 0; i < nh * HD; i += 16)
        _mm512_storeu_ps(qh + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(q + i), _MM_FROUND_TO_NEAREST_INT)));
    /* work holds 64 * hd floats: the converted K block (16 * HD) fits, and is free
     * again before the V product uses work for its slots */
    if (j->prompt)
        scores_blocks(j, nh, qh, k, v, att, att_stride, work, max, HD, 1);
    else
        scores_blocks(j, nh, qh, k, v, att, att_stride, work, max, HD, 0);
    for (int h = 0; h < nh; h++) softmax16(j, max[h], att + (size_t)h * att_stride);
    vprod_heads(j, nh, v, att, att_stride, work, out, HD);
}

void attn_heads_avx512(const attn_head_job_t *j, int nh, const float *q, const uint16_t *k, const uint16_t *v,
                       float *att, size_t att_stride, float *qh, float *work, float *out) {
    switch (j->hd) {
    case 64: heads_hd(j, nh, q, k, v, att, att_stride, qh, work, out, 64); break;
    case 128: heads_hd(j, nh, q, k, v, att, att_stride, qh, work, out, 128); break;
    default: attn_heads_avx512_generic(j, nh, q, k, v, att, att_stride, qh, work, out);
    }
}
