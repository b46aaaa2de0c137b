/* quant_x86.h — the x86 vec-dot and activation kernels, one body compiled twice (quant_avx2.c, quant_avx512.c).
 *
 * Included only by the two ISA files, after they define QX_VNNI (0: AVX2 byte products,
 * 1: AVX-512 VNNI vpdpbusd where it replaces them) and QX_NAME(f) (a name suffix).
 * Every routine gives the same float, bit for bit, as its scalar definition in matvec.c
 * (matvec_dot: the lane order of the reference's kernels) or quant.c / quant_k.c (the
 * activation quantizers): integer partial sums are exact in any order, and each float
 * step (FMA per block into 8 lanes, the fixed reduction tree) is the same operation on
 * the same operands. The files are built with -ffp-contract=off so that no plain
 * multiply and add is fused behind our back. */
#ifndef TOLLGATE_ENGINE_QUANT_X86_H
#define TOLLGATE_ENGINE_QUANT_X86_H

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "engine/quant_simd.h"
#include "engine/quant_tile.h"

static inline float qx_h2f(uint16_t h) { return _cvtsh_ss(h); }

/* (t0+t2) + (t1+t3) */
static inline float qx_hsum4(__m128 t) {
    __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

/* matvec.c's hsum8: (a4+a0, a5+a1, a6+a2, a7+a3), then (t0+t2) + (t1+t3). */
static inline float qx_hsum8(__m256 a) {
    __m128 t = _mm_add_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a));
    return qx_hsum4(t);
}

static inline int32_t qx_hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* Lanes of sum over each group of 4 consecutive bytes of w * x (signed x signed; no
 * -128 in w together with -128 in x: the activation quantizers reach +-127 only). */
static inline __m256i qx_dot4_s8(__m256i w, __m256i x) {
    __m256i aw = _mm256_sign_epi8(w, w), sx = _mm256_sign_epi8(x, w);
#if QX_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
#endif
}

/* sc * (sum over each group of 4 bytes of u * x): u unsigned codes small enough that a
 * pair of products fits an int16 (u <= 63 with |x| <= 127), sc 16-bit per lane pair. */
static inline __m256i qx_dot4_scaled(__m256i u, __m256i x, __m256i sc16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), sc16);
}

/* ---- Q8_0 / Q4_0 ------------------------------------------------------------------ */

static float QX_NAME(dot_q8_0)(int64_t nb, const block_q8_0 *w, const block_q8_0 *x) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s = qx_dot4_s8(_mm256_loadu_si256((const __m256i *)w[b].qs),
                               _mm256_loadu_si256((const __m256i *)x[b].qs));
        float d = qx_h2f(w[b].d) * qx_h2f(x[b].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s), acc);
    }
    return qx_hsum8(acc);
}

/* The 32 codes of a Q4_0 block, minus 8, in element order. */
static inline __m256i qx_q4_0_codes(const block_q4_0 *w) {
    __m128i q = _mm_loadu_si128((const __m128i *)w->qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(15)), _mm256_set1_epi8(8));
}

/* One exact integer sum per block, one FMA per block into a single float. */
static float QX_NAME(dot_q4_0)(int64_t nb, const block_q4_0 *w, const block_q8_0 *x) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        __m256i s = qx_dot4_s8(qx_q4_0_codes(&w[b]), _mm256_loadu_si256((const __m256i *)x[b].qs));
        float d = qx_h2f(w[b].d) * qx_h2f(x[b].d);
        sum = fmaf((float)qx_hsum_i32(s), d, sum);
    }
    return sum;
}

/* ---- K-quants ------------------------------------------------------------------- */

static inline void qx_k_scale_min(const uint8_t *q, int s, int *sc, int *m) {
    if (s < 4) {
        *sc = q[s] & 63;
        *m = q[s + 4] & 63;
    } else {
        *sc = (q[s + 4] & 15) | ((q[s - 4] >> 6) << 4);
        *m = (q[s + 4] >> 4) | ((q[s] >> 6) << 4);
    }
}

/* Chunk c (0..3) of a Q4_K / Q5_K block's codes: elements 64c..64c+31 (lo) and
 * 64c+32..64c+63 (hi) as bytes, with Q5_K's fifth bit from hbits (NULL for Q4_K). */
static inline void qx_k_codes(const uint8_t *qs, const __m256i *hbits, int c, __m256i *lo, __m256i *hi) {
    const __m256i lo4 = _mm256_set1_epi8(15);
    __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
    *lo = _mm256_and_si256(q, lo4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4);
    if (hbits) {
        __m256i ml = _mm256_set1_epi8((char)(1 << (2 * c)));
        __m256i mh = _mm256_set1_epi8((char)(2 << (2 * c)));
        __m256i b16 = _mm256_set1_epi8(16);
        *lo = _mm256_or_si256(*lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(*hbits, ml), ml), b16));
        *hi = _mm256_or_si256(*hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(*hbits, mh), mh), b16));
    }
}

/* mn[s] * (bsums[2s] + bsums[2s+1]) for s = 0..7, as 8 int32 lanes. */
static inline __m256i qx_min_terms(const int *mn, const int16_t *bsums) {
    __m256i m16 = _mm256_setr_epi16((short)mn[0], (short)mn[0], (short)mn[1], (short)mn[1],
                                    (short)mn[2], (short)mn[2], (short)mn[3], (short)mn[3],
                                    (short)mn[4], (short)mn[4], (short)mn[5], (short)mn[5],
                                    (short)mn[6], (short)mn[6], (short)mn[7], (short)mn[7]);
    return _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)bsums), m16);
}

/* Q4_K and Q5_K (qh != NULL): lanes of sc * q * x, then matvec.c's float steps. */
static float QX_NAME(dot_k_asym)(int64_t nb, int q5, const void *wv, const block_q8_K *x) {
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    float summs = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *scales, *qs, *qh = NULL;
        uint16_t hd, hdmin;
        if (!q5) {
            const block_q4_K *w = (const block_q4_K *)wv + b;
            scales = w->scales, qs = w->qs, hd = w->d, hdmin = w->dmin;
        } else {
            const block_q5_K *w = (const block_q5_K *)wv + b;
            scales = w->scales, qs = w->qs, qh = w->qh, hd = w->d, hdmin = w->dmin;
        }
        int sc[8], mn[8];
        for (int s = 0; s < 8; s++) qx_k_scale_min(scales, s, &sc[s], &mn[s]);
        const int8_t *q8 = x[b].qs;
        __m256i lanes = _mm256_setzero_si256();
        __m256i hbits = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i lo, hi;
            qx_k_codes(qs, qh ? &hbits : NULL, c, &lo, &hi);
            __m256i xl = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c));
            __m256i xh = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32));
            lanes = _mm256_add_epi32(lanes, qx_dot4_scaled(lo, xl, _mm256_set1_epi16((short)sc[2 * c])));
            lanes = _mm256_add_epi32(lanes, qx_dot4_scaled(hi, xh, _mm256_set1_epi16((short)sc[2 * c + 1])));
        }
        float d = x[b].d * qx_h2f(hd);
        float dmin = -x[b].d * qx_h2f(hdmin);
        __m256i mt = qx_min_terms(mn, x[b].bsums);
        if (!q5) {
            __m128i pairs = _mm_hadd_epi32(_mm256_castsi256_si128(mt), _mm256_extracti128_si256(mt, 1));
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(pairs), acc_m);
        } else {
            summs += dmin * (float)qx_hsum_i32(mt);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
    }
    if (!q5) summs = qx_hsum4(acc_m);
    return qx_hsum8(acc) + summs;
}

static float QX_NAME(dot_q6_K)(int64_t nb, const block_q6_K *w, const block_q8_K *x) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(15), three = _mm256_set1_epi8(3);
    const __m256i m32 = _mm256_set1_epi8(32);
    for (int64_t b = 0; b < nb; b++) {
        __m256i lanes = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[b].ql + 64 * h;
            __m256i qa = _mm256_loadu_si256((const __m256i *)ql);
            __m256i qb = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(qa, lo4),
                                   _mm256_slli_epi16(_mm256_and_si256(hb, three), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(qb, lo4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), three), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), lo4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), three), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), lo4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), three), 4));
            for (int k = 0; k < 4; k++) {
                const int8_t *sc = w[b].scales + 8 * h + 2 * k;
                __m256i xk = _mm256_loadu_si256((const __m256i *)(x[b].qs + 128 * h + 32 * k));
                __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], xk), _mm256_maddubs_epi16(m32, xk));
                __m256i s16 = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
                lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p, s16));
            }
        }
        float d = x[b].d * qx_h2f(w[b].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
    }
    return qx_hsum8(acc);
}

/* ---- F16 / F32 ------------------------------------------------------------------ */

static inline __m256 qx_load_h8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* Prompt order: 16 lanes (two registers), FMA per element, hsum16, float tail. */
static float QX_NAME(dot_f16_tiled)(int64_t n, const uint16_t *w, const uint16_t *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(qx_load_h8(w + i), qx_load_h8(x + i), a0);
        a1 = _mm256_fmadd_ps(qx_load_h8(w + i + 8), qx_load_h8(x + i + 8), a1);
    }
    float s = qx_hsum8(_mm256_add_ps(a1, a0));
    for (; i < n; i++) s += qx_h2f(w[i]) * qx_h2f(x[i]);
    return s;
}

/* Single-token order: four 16-lane accumulators over chunks of 64, tail in double. */
static float QX_NAME(dot_f16_vec)(int64_t n, const uint16_t *w, const uint16_t *x) {
    __m256 a[8];
    for (int j = 0; j < 8; j++) a[j] = _mm256_setzero_ps();
    int64_t i = 0, np = n & ~(int64_t)63;
    double sum = 0.0;
    for (; i < np; i += 64)
        for (int j = 0; j < 8; j++)
            a[j] = _mm256_fmadd_ps(qx_load_h8(w + i + 8 * j), qx_load_h8(x + i + 8 * j), a[j]);
    if (np) {
        /* a[2j], a[2j+1]: lanes 0..7 and 8..15 of accumulator j */
        __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
        __m256 hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
        sum = qx_hsum8(_mm256_add_ps(hi, lo));
    }
    for (; i < n; i++) sum += (double)(qx_h2f(w[i]) * qx_h2f(x[i]));
    return (float)sum;
}

/* quant.c's F32 dot: 16 lanes of separately rounded products, halving reduction. */
static float QX_NAME(dot_f32)(int64_t n, const float *w, const float *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i)));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8)));
    }
    float acc[16];
    _mm256_storeu_ps(acc, a0);
    _mm256_storeu_ps(acc + 8, a1);
    for (int l = 0; i < n; i++, l++) acc[l] += w[i] * x[i];
    for (int h = 8; h > 0; h /= 2)
        for (int l = 0; l < h; l++) acc[l] += acc[l + h];
    return acc[0];
}

/* ---- activation quantizers ------------------------------------------------------ */

/* 32 floats (already scaled) -> 32 int8, rounded to nearest even, saturated to
 * -128..127 (a NaN gives -128, as the scalar clamp does). */
static inline __m256i qx_round_pack32(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    __m256i i0 = _mm256_cvtps_epi32(v0), i1 = _mm256_cvtps_epi32(v1);
    __m256i i2 = _mm256_cvtps_epi32(v2), i3 = _mm256_cvtps_epi32(v3);
    __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
    __m256i p = _mm256_packs_epi16(p01, p23);
    /* packs interleave the 128-bit halves: restore element order */
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float qx_hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* As quant.c's quantize_q8_0_act: id = 127/amax, codes rint(x * id). */
static void QX_NAME(quantize_q8_0_act)(const float *x, block_q8_0 *y, int64_t nb) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < nb; b++, x += QUANT_QK8_0) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            m = _mm256_max_ps(m, _mm256_and_ps(v[k], absmask));
        }
        float amax = qx_hmax8(m);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[b].d = quant_f32_to_f16(d);
        __m256 s = _mm256_set1_ps(id);
        __m256i q = qx_round_pack32(_mm256_mul_ps(v[0], s), _mm256_mul_ps(v[1], s),
                                    _mm256_mul_ps(v[2], s), _mm256_mul_ps(v[3], s));
        _mm256_storeu_si256((__m256i *)y[b].qs, q);
    }
}

/* As quant_k.c's quant_k_quantize_q8_K: the first element of largest magnitude maps to
 * -127, codes clamped to +-127, group sums of 16. */
static void QX_NAME(quantize_q8_K)(const float *x, block_q8_K *y, int64_t nb) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < nb; b++, x += QUANT_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < QUANT_QK_K; k += 8)
            m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + k), absmask));
        float amax = qx_hmax8(m);
        if (!(amax > 0.0f)) { /* zero (or NaN: the scalar scan never moves off 0 either) */
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the first element of that magnitude, eight at a time (a scalar scan was about
         * half of the conversion's time) */
        const __m256 am = _mm256_set1_ps(amax);
        int j = 0;
        for (int k = 0; k < QUANT_QK_K; k += 8) {
            __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + k), absmask);
            unsigned eq = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, am, _CMP_EQ_OQ));
            if (eq) {
                j = k + __builtin_ctz(eq);
                break;
            }
        }
        float iscale = -127.0f / x[j];
        __m256 s = _mm256_set1_ps(iscale);
        const __m256i lo = _mm256_set1_epi8(-127), ones8 = _mm256_set1_epi8(1);
        const __m256i ones16 = _mm256_set1_epi16(1);
        for (int k = 0; k < QUANT_QK_K; k += 32) {
            __m256i q = qx_round_pack32(_mm256_mul_ps(_mm256_loadu_ps(x + k), s),
                                        _mm256_mul_ps(_mm256_loadu_ps(x + k + 8), s),
                                        _mm256_mul_ps(_mm256_loadu_ps(x + k + 16), s),
                                        _mm256_mul_ps(_mm256_loadu_ps(x + k + 24), s));
            q = _mm256_max_epi8(q, lo);
            _mm256_storeu_si256((__m256i *)(y[b].qs + k), q);
            /* the two group sums of these 32 codes */
            __m256i g = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
            __m128i lo128 = _mm256_castsi256_si128(g), hi128 = _mm256_extracti128_si256(g, 1);
            __m128i h = _mm_hadd_epi32(lo128, hi128); /* l0+l1, l2+l3, h0+h1, h2+h3 */
            h = _mm_hadd_epi32(h, h);                 /* group k/16, group k/16 + 1 */
            y[b].bsums[k / 16] = (int16_t)_mm_cvtsi128_si32(h);
            y[b].bsums[k / 16 + 1] = (int16_t)_mm_extract_epi32(h, 1);
        }
        y[b].d = 1.0f / iscale;
    }
}

/* ---- entry points --------------------------------------------------------------- */

static float QX_NAME(dot)(int type, int64_t n, const void *w, const void *xq, int prompt) {
    switch (type) {
    case GGML_TYPE_F32:
        return QX_NAME(dot_f32)(n, w, xq);
    case GGML_TYPE_F16:
        return prompt ? QX_NAME(dot_f16_tiled)(n, w, xq) : QX_NAME(dot_f16_vec)(n, w, xq);
    case GGML_TYPE_Q8_0:
        return QX_NAME(dot_q8_0)(n / QUANT_QK8_0, w, xq);
    case GGML_TYPE_Q4_0:
        return QX_NAME(dot_q4_0)(n / QUANT_QK4_0, w, xq);
    case GGML_TYPE_Q4_K:
        return QX_NAME(dot_k_asym)(n / QUANT_QK_K, 0, w, xq);
    case GGML_TYPE_Q5_K:
        return QX_NAME(dot_k_asym)(n / QUANT_QK_K, 1, w, xq);
    case GGML_TYPE_Q6_K:
        return QX_NAME(dot_q6_K)(n / QUANT_QK_K, w, xq);
    default:
        return NAN;
    }
}

/* ---- multi-token K-quant rows (the AVX2 tiles) ------------------------------------ */
#if !QX_VNNI /* the AVX-512 set has its own (quant_tile_avx512.c) */

/* Activation rows dotted with one weight block while its codes are unpacked. */
#define QX_TOKENS 4

/* One Q4_K/Q5_K row against nt <= QX_TOKENS activation rows: per 64-element chunk the
 * codes and scales are unpacked once for all tokens; per token the same integer lanes
 * and float steps as QX_NAME(dot_k_asym), so every result is bit for bit the same. */
static inline __attribute__((always_inline)) void QX_NAME(k_asym_tokens)(int q5, int64_t nb, const uint8_t *wv,
                                                                          const block_q8_K *const *x, int nt,
                                                                          float *out, size_t ldo) {
    __m256 acc[QX_TOKENS];
    __m128 acc_m[QX_TOKENS];
    float summs[QX_TOKENS];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps(), acc_m[t] = _mm_setzero_ps(), summs[t] = 0.0f;
    const size_t bs = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    for (int64_t b = 0; b < nb; b++, wv += bs) {
        const uint8_t *scales, *qs, *qh = NULL;
        uint16_t hd, hdmin;
        if (!q5) {
            const block_q4_K *w = (const block_q4_K *)wv;
            scales = w->scales, qs = w->qs, hd = w->d, hdmin = w->dmin;
        } else {
            const block_q5_K *w = (const block_q5_K *)wv;
            scales = w->scales, qs = w->qs, qh = w->qh, hd = w->d, hdmin = w->dmin;
        }
        int sc[8], mn[8];
        for (int s = 0; s < 8; s++) qx_k_scale_min(scales, s, &sc[s], &mn[s]);
        __m256i lanes[QX_TOKENS];
        for (int t = 0; t < nt; t++) lanes[t] = _mm256_setzero_si256();
        __m256i hbits = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i lo, hi;
            qx_k_codes(qs, qh ? &hbits : NULL, c, &lo, &hi);
            __m256i sl = _mm256_set1_epi16((short)sc[2 * c]), sh = _mm256_set1_epi16((short)sc[2 * c + 1]);
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = x[t][b].qs + 64 * c;
                lanes[t] = _mm256_add_epi32(lanes[t], qx_dot4_scaled(lo, _mm256_loadu_si256((const __m256i *)q8), sl));
                lanes[t] = _mm256_add_epi32(lanes[t],
                                            qx_dot4_scaled(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)), sh));
            }
        }
        float wd = qx_h2f(hd), wdmin = qx_h2f(hdmin);
        __m256i m16 = _mm256_setr_epi16((short)mn[0], (short)mn[0], (short)mn[1], (short)mn[1], (short)mn[2],
                                        (short)mn[2], (short)mn[3], (short)mn[3], (short)mn[4], (short)mn[4],
                                        (short)mn[5], (short)mn[5], (short)mn[6], (short)mn[6], (short)mn[7],
                                        (short)mn[7]);
        for (int t = 0; t < nt; t++) {
            const block_q8_K *xb = x[t] + b;
            float d = xb->d * wd;
            float dmin = -xb->d * wdmin;
            __m256i mt = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)xb->bsums), m16);
            if (!q5) {
                __m128i pairs = _mm_hadd_epi32(_mm256_castsi256_si128(mt), _mm256_extracti128_si256(mt, 1));
                acc_m[t] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(pairs), acc_m[t]);
            } else {
                summs[t] += dmin * (float)qx_hsum_i32(mt);
            }
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes[t]), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        float s = q5 ? summs[t] : qx_hsum4(acc_m[t]);
        out[(size_t)t * ldo] = qx_hsum8(acc[t]) + s;
    }
}

/* One Q6_K row against nt <= QX_TOKENS activation rows, as QX_NAME(dot_q6_K) per token. */
static inline __attribute__((always_inline)) void QX_NAME(q6_tokens)(int64_t nb, const block_q6_K *w,
                                                                      const block_q8_K *const *x, int nt, float *out,
                                                                      size_t ldo) {
    __m256 acc[QX_TOKENS];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    const __m256i lo4 = _mm256_set1_epi8(15), three = _mm256_set1_epi8(3), m32 = _mm256_set1_epi8(32);
    for (int64_t b = 0; b < nb; b++) {
        __m256i lanes[QX_TOKENS];
        for (int t = 0; t < nt; t++) lanes[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[b].ql + 64 * h;
            __m256i qa = _mm256_loadu_si256((const __m256i *)ql);
            __m256i qb = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
            for (int k = 0; k < 4; k++) {
                __m256i src = k & 1 ? qb : qa;
                __m256i q = _mm256_and_si256(k < 2 ? src : _mm256_srli_epi16(src, 4), lo4);
                q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * k), three), 4));
                const int8_t *sc = w[b].scales + 8 * h + 2 * k;
                __m256i s16 = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
                for (int t = 0; t < nt; t++) {
                    __m256i xk = _mm256_loadu_si256((const __m256i *)(x[t][b].qs + 128 * h + 32 * k));
                    __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, xk), _mm256_maddubs_epi16(m32, xk));
                    lanes[t] = _mm256_add_epi32(lanes[t], _mm256_madd_epi16(p, s16));
                }
            }
        }
        float wd = qx_h2f(w[b].d);
        for (int t = 0; t < nt; t++) {
            float d = x[t][b].d * wd;
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes[t]), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[(size_t)t * ldo] = qx_hsum8(acc[t]);
}

#define QX_TOKEN_FNS(NT)                                                                                   \
    static void QX_NAME(q4k_t##NT)(int64_t nb, const void *w, const block_q8_K *const *x, float *o, size_t l) { \
        QX_NAME(k_asym_tokens)(0, nb, w, x, NT, o, l);                                                     \
    }                                                                                                      \
    static void QX_NAME(q5k_t##NT)(int64_t nb, const void *w, const block_q8_K *const *x, float *o, size_t l) { \
        QX_NAME(k_asym_tokens)(1, nb, w, x, NT, o, l);                                                     \
    }                                                                                                      \
    static void QX_NAME(q6k_t##NT)(int64_t nb, const void *w, const block_q8_K *const *x, float *o, size_t l) { \
        QX_NAME(q6_tokens)(nb, w, x, NT, o, l);                                                            \
    }
QX_TOKEN_FNS(1)
QX_TOKEN_FNS(2)
QX_TOKEN_FNS(3)
QX_TOKEN_FNS(4)

typedef void (*QX_NAME(tokens_fn))(int64_t nb, const void *w, const block_q8_K *const *x, float *o, size_t l);

/* A K-quant tile through the multi-token rows: tokens in groups of QX_TOKENS, every row
 * of the tile per group. 0, or -1 for other types. */
static int QX_NAME(k_tile)(int type, int64_t n, const void *w, size_t row_bytes, int nr, const void *xq,
                           size_t xq_stride, int nt, float *y, size_t ldy) {
    static const QX_NAME(tokens_fn) q4[QX_TOKENS] = {QX_NAME(q4k_t1), QX_NAME(q4k_t2), QX_NAME(q4k_t3),
                                                     QX_NAME(q4k_t4)};
    static const QX_NAME(tokens_fn) q5[QX_TOKENS] = {QX_NAME(q5k_t1), QX_NAME(q5k_t2), QX_NAME(q5k_t3),
                                                     QX_NAME(q5k_t4)};
    static const QX_NAME(tokens_fn) q6[QX_TOKENS] = {QX_NAME(q6k_t1), QX_NAME(q6k_t2), QX_NAME(q6k_t3),
                                                     QX_NAME(q6k_t4)};
    const QX_NAME(tokens_fn) *fns = type == GGML_TYPE_Q4_K ? q4 : type == GGML_TYPE_Q5_K ? q5
                                  : type == GGML_TYPE_Q6_K ? q6 : NULL;
    if (!fns) return -1;
    for (int t0 = 0; t0 < nt; t0 += QX_TOKENS) {
        int g = nt - t0 < QX_TOKENS ? nt - t0 : QX_TOKENS;
        const block_q8_K *x[QX_TOKENS];
        for (int t = 0; t < g; t++) x[t] = (const block_q8_K *)((const uint8_t *)xq + (size_t)(t0 + t) * xq_stride);
        const uint8_t *row = w;
        for (int r = 0; r < nr; r++, row += row_bytes) fns[g - 1](n / QUANT_QK_K, row, x, y + (size_t)t0 * ldy + r, ldy);
    }
    return 0;
}
#endif

/* A tile of dots: K-quants through the multi-token rows (AVX2) or the 512-bit tile
 * kernels (AVX-512, quant_tile_avx512.c), the other types row by row within each
 * activation row (the weight rows stay in cache between activation rows). */
static void QX_NAME(dot_tile)(int type, int64_t n, const void *w, size_t row_bytes, int nr, const void *xq,
                              size_t xq_stride, int nt, float *y, size_t ldy, int prompt) {
#if QX_VNNI
    if (!quant_tile_avx512(type, n, w, row_bytes, nr, xq, xq_stride, nt, y, ldy)) return;
#else
    if (!QX_NAME(k_tile)(type, n, w, row_bytes, nr, xq, xq_stride, nt, y, ldy)) return;
#endif
    for (int t = 0; t < nt; t++) {
        const void *x = (const uint8_t *)xq + (size_t)t * xq_stride;
        for (int r = 0; r < nr; r++)
            y[(size_t)t * ldy + r] = QX_NAME(dot)(type, n, (const uint8_t *)w + (size_t)r * row_bytes, x, prompt);
    }
}

static int QX_NAME(quantize_act)(int type, const float *x, void *xq, int64_t n) {
    switch (type) {
    case GGML_TYPE_Q8_0:
        if (n < 0 || n % QUANT_QK8_0) return -1;
        QX_NAME(quantize_q8_0_act)(x, xq, n / QUANT_QK8_0);
        return 0;
    case GGML_TYPE_Q8_K:
        if (n < 0 || n % QUANT_QK_K) return -1;
        QX_NAME(quantize_q8_K)(x, xq, n / QUANT_QK_K);
        return 0;
    default:
        return quant_quantize_row_act(type, x, xq, n);
    }
}

#endif
