/* quant_tile_avx512.c — K-quant tile kernels for AVX-512 VNNI: one weight block unpacked once, dotted with up to 4 activation rows.
 *
 * Called only through quant_avx512_kernels (quant_simd.h dispatch). A tile is nr weight
 * rows times nt activation rows; every (row, token) result is the same float, bit for
 * bit, as matvec_dot (matvec.c): the integer lane sums are exact in any grouping, so the
 * 512-bit registers (two 32-element sub-blocks each) are folded into the reference's
 * 8-lane partition (lane (e % 32) / 4) before the one FMA per block, and the float steps
 * (d = x.d * w.d, the FMA, the mins term, the final reduction tree) are those of the
 * definition, per token, in block order. What is shared between the tokens of a tile is
 * only integer work: the unpacked codes and the expanded scales. */
#include <immintrin.h>
#include <string.h>

#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "engine/quant_tile.h"

/* Activation rows dotted with one weight block while its codes sit in registers. */
#define QT_TOKENS 4

#define QT_INLINE static inline __attribute__((always_inline))
/* A loop over the tokens of a tile, unrolled so that the per-token accumulators are
 * registers rather than an array in memory. */
#define QT_EACH_TOKEN(t, nt) _Pragma("GCC unroll 4") for (int t = 0; t < (nt); t++)

QT_INLINE float qt_h2f(uint16_t h) { return _cvtsh_ss(h); }

/* (t0+t2) + (t1+t3), as matvec.c's reductions end. */
QT_INLINE float qt_hsum4(__m128 t) {
    __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

/* matvec.c's hsum8: (a4+a0, a5+a1, a6+a2, a7+a3), then (t0+t2) + (t1+t3). */
QT_INLINE float qt_hsum8(__m256 a) {
    return qt_hsum4(_mm_add_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a)));
}

QT_INLINE int32_t qt_hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* 32 bytes at p, then 32 bytes at p + gap, as one register. */
QT_INLINE __m512i qt_load_2x32(const int8_t *p, int gap) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                              _mm256_loadu_si256((const __m256i *)(p + gap)), 1);
}

/* 16 int32 lanes over 64 elements -> the 8-lane partition (lane k and k + 8 cover the
 * same offsets within their 32-element groups). */
QT_INLINE __m256i qt_fold(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* ---- Q4_K / Q5_K ---------------------------------------------------------------- */

/* The 8 six-bit scales and the 8 mins of a Q4_K/Q5_K block, one byte each (sub-block
 * order), from the 12 packed bytes (layout in quant_blocks.h). */
QT_INLINE void qt_k_scales(const uint8_t *s, uint64_t *sc, uint64_t *mn) {
    uint32_t a, b, c;
    memcpy(&a, s, 4), memcpy(&b, s + 4, 4), memcpy(&c, s + 8, 4);
    uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    *sc = (uint64_t)(a & 0x3f3f3f3fu) | (uint64_t)sc_hi << 32;
    *mn = (uint64_t)(b & 0x3f3f3f3fu) | (uint64_t)mn_hi << 32;
}

/* One Q4_K/Q5_K block in registers: code register j holds, in its two 256-bit halves,
 * the sub-blocks sb[j][0] and sb[j][1] (c[0]: 0 and 2, c[1]: 1 and 3, c[2]: 4 and 6,
 * c[3]: 5 and 7, as the low/high nibbles of 64 bytes of qs fall); S[j] the matching
 * scales as 16-bit words for the multiply-add; M16 the mins as word pairs
 * (mn0, mn0, mn1, mn1, ...) against the activation's 16 group sums. */
typedef struct qt_kblock {
    __m512i c[4], S[4];
    __m256i M16;
    float d, dmin;
} qt_kblock_t;

QT_INLINE void qt_k_unpack(int q5, const uint8_t *wb, qt_kblock_t *k) {
    const uint8_t *scales, *qs, *qh = NULL;
    uint16_t hd, hdmin;
    if (!q5) {
        const block_q4_K *w = (const block_q4_K *)wb;
        scales = w->scales, qs = w->qs, hd = w->d, hdmin = w->dmin;
    } else {
        const block_q5_K *w = (const block_q5_K *)wb;
        scales = w->scales, qs = w->qs, qh = w->qh, hd = w->d, hdmin = w->dmin;
    }
    const __m512i lo4 = _mm512_set1_epi8(15);
    __m512i q0 = _mm512_loadu_si512(qs), q1 = _mm512_loadu_si512(qs + 64);
    k->c[0] = _mm512_and_si512(q0, lo4);
    k->c[1] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), lo4);
    k->c[2] = _mm512_and_si512(q1, lo4);
    k->c[3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), lo4);
    if (q5) {
        /* bit 2c of qh[l] tops element 64c + l, bit 2c + 1 element 64c + 32 + l */
        __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
        const __m512i b16 = _mm512_set1_epi8(16);
        static const uint8_t bit[4][2] = {{1, 4}, {2, 8}, {16, 64}, {32, 128}};
        for (int j = 0; j < 4; j++) {
            __m512i m = _mm512_inserti64x4(_mm512_set1_epi8((char)bit[j][0]), _mm256_set1_epi8((char)bit[j][1]), 1);
            k->c[j] = _mm512_mask_add_epi8(k->c[j], _mm512_test_epi8_mask(hb, m), k->c[j], b16);
        }
    }
    uint64_t sc, mn;
    qt_k_scales(scales, &sc, &mn);
    __m512i s16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
    static const uint8_t first[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
    for (int j = 0; j < 4; j++) {
        __m512i idx = _mm512_inserti64x4(_mm512_set1_epi16(first[j][0]), _mm256_set1_epi16(first[j][1]), 1);
        k->S[j] = _mm512_permutexvar_epi16(idx, s16);
    }
    __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn));
    k->M16 = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    k->d = qt_h2f(hd);
    k->dmin = qt_h2f(hdmin);
}

/* The exact integer lanes sum over e of sc(e) * q(e) * x(e), 8-lane partition. */
QT_INLINE __m256i qt_k_lanes(const qt_kblock_t *k, const int8_t *q8) {
    __m512i l = _mm512_setzero_si512();
    l = _mm512_dpwssd_epi32(l, _mm512_maddubs_epi16(k->c[0], qt_load_2x32(q8, 64)), k->S[0]);
    l = _mm512_dpwssd_epi32(l, _mm512_maddubs_epi16(k->c[1], qt_load_2x32(q8 + 32, 64)), k->S[1]);
    l = _mm512_dpwssd_epi32(l, _mm512_maddubs_epi16(k->c[2], qt_load_2x32(q8 + 128, 64)), k->S[2]);
    l = _mm512_dpwssd_epi32(l, _mm512_maddubs_epi16(k->c[3], qt_load_2x32(q8 + 160, 64)), k->S[3]);
    return qt_fold(l);
}

/* One weight row (nb blocks) against nt <= QT_TOKENS activation rows x[t]. */
QT_INLINE void qt_k_asym_row(int q5, int64_t nb, const uint8_t *w, const block_q8_K *const *x, int nt,
                             float *out, size_t ldo) {
    __m256 acc[QT_TOKENS];
    __m128 acc_m[QT_TOKENS];
    float summs[QT_TOKENS];
    QT_EACH_TOKEN(t, nt) acc[t] = _mm256_setzero_ps(), acc_m[t] = _mm_setzero_ps(), summs[t] = 0.0f;
    const size_t bs = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    for (int64_t b = 0; b < nb; b++, w += bs) {
        qt_kblock_t k;
        qt_k_unpack(q5, w, &k);
        QT_EACH_TOKEN(t, nt) {
            const block_q8_K *xb = x[t] + b;
            __m256i lanes = qt_k_lanes(&k, xb->qs);
            float d = xb->d * k.d;
            float dmin = -xb->d * k.dmin;
            __m256i mt = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)xb->bsums), k.M16);
            if (!q5) {
                __m128i pairs = _mm_hadd_epi32(_mm256_castsi256_si128(mt), _mm256_extracti128_si256(mt, 1));
                acc_m[t] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(pairs), acc_m[t]);
            } else {
                summs[t] += dmin * (float)qt_hsum_i32(mt);
            }
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc[t]);
        }
    }
    QT_EACH_TOKEN(t, nt) {
        float s = q5 ? summs[t] : qt_hsum4(acc_m[t]);
        out[(size_t)t * ldo] = qt_hsum8(acc[t]) + s;
    }
}

/* ---- Q6_K ----------------------------------------------------------------------- */

/* One Q6_K block in registers: c[2h] holds elements 128h .. 128h + 63 in order, c[2h+1]
 * the next 64 (the low and high nibbles of 64 bytes of ql); S[j] the sub-block scales of
 * those elements as words (8 words = 16 elements per scale). */
typedef struct qt_q6block {
    __m512i c[4], S[4];
    float d;
} qt_q6block_t;

QT_INLINE void qt_q6_unpack(const block_q6_K *w, qt_q6block_t *k) {
    const __m512i lo4 = _mm512_set1_epi8(15), three = _mm512_set1_epi8(3);
    /* qh[l] bits 0-1 top element l, 2-3 element l + 32, 4-5 l + 64, 6-7 l + 96 */
    const __m512i cnt_lo = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i cnt_hi = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    __m512i s16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales)));
    for (int h = 0; h < 2; h++) {
        __m512i qa = _mm512_loadu_si512(w->ql + 64 * h);
        __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w->qh + 32 * h)));
        __m512i hl = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, cnt_lo), three), 4);
        __m512i hh = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, cnt_hi), three), 4);
        k->c[2 * h] = _mm512_or_si512(_mm512_and_si512(qa, lo4), hl);
        k->c[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(qa, 4), lo4), hh);
        for (int half = 0; half < 2; half++) {
            int s0 = 8 * h + 4 * half; /* first sub-block of this register */
            __m512i idx = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_set_m128i(_mm_set1_epi16((short)(s0 + 1)), _mm_set1_epi16((short)s0))),
                _mm256_set_m128i(_mm_set1_epi16((short)(s0 + 3)), _mm_set1_epi16((short)(s0 + 2))), 1);
            k->S[2 * h + half] = _mm512_permutexvar_epi16(idx, s16);
        }
    }
    k->d = qt_h2f(w->d);
}

QT_INLINE __m256i qt_q6_lanes(const qt_q6block_t *k, const int8_t *q8) {
    const __m512i m32 = _mm512_set1_epi8(32);
    __m512i l = _mm512_setzero_si512();
    for (int j = 0; j < 4; j++) {
        __m512i xv = _mm512_loadu_si512(q8 + 64 * j);
        /* (q - 32) * x as q * x - 32 * x: both products fit the 16-bit pair sums */
        __m512i p = _mm512_sub_epi16(_mm512_maddubs_epi16(k->c[j], xv), _mm512_maddubs_epi16(m32, xv));
        l = _mm512_dpwssd_epi32(l, p, k->S[j]);
    }
    return qt_fold(l);
}

QT_INLINE void qt_q6_row(int64_t nb, const block_q6_K *w, const block_q8_K *const *x, int nt, float *out,
                         size_t ldo) {
    __m256 acc[QT_TOKENS];
    QT_EACH_TOKEN(t, nt) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        qt_q6block_t k;
        qt_q6_unpack(&w[b], &k);
        QT_EACH_TOKEN(t, nt) {
            const block_q8_K *xb = x[t] + b;
            __m256i lanes = qt_q6_lanes(&k, xb->qs);
            float d = xb->d * k.d;
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc[t]);
        }
    }
    QT_EACH_TOKEN(t, nt) out[(size_t)t * ldo] = qt_hsum8(acc[t]);
}

/* ---- tiles ---------------------------------------------------------------------- */

/* Row kernels specialised on the token count, so that the accumulators stay in
 * registers. */
#define QT_ROW_FNS(NT)                                                                                       \
    static void qt_q4k_##NT(int64_t nb, const uint8_t *w, const block_q8_K *const *x, float *o, size_t ldo) { \
        qt_k_asym_row(0, nb, w, x, NT, o, ldo);                                                              \
    }                                                                                                        \
    static void qt_q5k_##NT(int64_t nb, const uint8_t *w, const block_q8_K *const *x, float *o, size_t ldo) { \
        qt_k_asym_row(1, nb, w, x, NT, o, ldo);                                                              \
    }                                                                                                        \
    static void qt_q6k_##NT(int64_t nb, const uint8_t *w, const block_q8_K *const *x, float *o, size_t ldo) { \
        qt_q6_row(nb, (const block_q6_K *)w, x, NT, o, ldo);                                                 \
    }
QT_ROW_FNS(1)
QT_ROW_FNS(2)
QT_ROW_FNS(3)
QT_ROW_FNS(4)

typedef void (*qt_row_fn)(int64_t nb, const uint8_t *w, const block_q8_K *const *x, float *o, size_t ldo);

int quant_tile_avx512(int type, int64_t n, const void *w, size_t row_bytes, int nr, const void *xq,
                      size_t xq_stride, int nt, float *y, size_t ldy) {
    static const qt_row_fn q4[QT_TOKENS] = {qt_q4k_1, qt_q4k_2, qt_q4k_3, qt_q4k_4};
    static const qt_row_fn q5[QT_TOKENS] = {qt_q5k_1, qt_q5k_2, qt_q5k_3, qt_q5k_4};
    static const qt_row_fn q6[QT_TOKENS] = {qt_q6k_1, qt_q6k_2, qt_q6k_3, qt_q6k_4};
    const qt_row_fn *fns;
    switch (type) {
    case GGML_TYPE_Q4_K: fns = q4; break;
    case GGML_TYPE_Q5_K: fns = q5; break;
    case GGML_TYPE_Q6_K: fns = q6; break;
    default: return -1;
    }
    int64_t nb = n / QUANT_QK_K;
    /* tokens in groups of QT_TOKENS; within a group every row of the tile (its blocks
     * still in L1/L2 from the previous group) */
    for (int t0 = 0; t0 < nt; t0 += QT_TOKENS) {
        int g = nt - t0 < QT_TOKENS ? nt - t0 : QT_TOKENS;
        const block_q8_K *x[QT_TOKENS];
        for (int t = 0; t < g; t++) x[t] = (const block_q8_K *)((const uint8_t *)xq + (size_t)(t0 + t) * xq_stride);
        const uint8_t *row = w;
        for (int r = 0; r < nr; r++, row += row_bytes) fns[g - 1](nb, row, x, y + (size_t)t0 * ldy + r, ldy);
    }
    return 0;
}
