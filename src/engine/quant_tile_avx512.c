/* quant_tile_avx512.c — K-quant tile kernels for AVX-512 VNNI: one weight block unpacked once, dotted with up to 16 activation rows.
 *
 * Called only through quant_avx512_kernels (quant_simd.h dispatch). A tile is nr weight
 * rows times nt activation rows; every (row, token) result is the same float, bit for
 * bit, as matvec_dot (matvec.c): the integer lane sums are exact in any grouping, so the
 * 512-bit registers (two 32-element sub-blocks each) are brought into the reference's
 * 8-lane partition (lane (e % 32) / 4) before the one FMA per block (the row path folds
 * 16 lanes; the pair path narrows interleaved lanes of two tokens into one register),
 * and the float steps (d = x.d * w.d, the FMA, the mins term, the final reduction tree)
 * are those of the definition, per token, in block order. What is shared between the
 * tokens of a tile is only integer work: the unpacked codes and the expanded scales. */
#include <immintrin.h>
#include <string.h>

#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "engine/quant_tile.h"

/* Activation rows dotted with one weight block while its codes sit in registers. */
#define QT_TOKENS 4

/* Activation rows up to which a tile goes through the row kernels (quant_row_avx512.c)
 * rather than the pair path, per type. With the pair path prefetching its weights, 4
 * tokens are cheaper through it once the weights come from DRAM (one thread, 65536 x
 * 2048, CPU time: Q4_K 68 -> 92 GMAC/s, Q6_K 46 -> 67; in cache Q4_K 97 -> 106;
 * TinyLlama N=4 step on one thread 52 -> 43 ms CPU); at 3 tokens the two measured
 * alike, at 2 the row kernels are ahead (docs/engine.md). */
#ifndef QT_ROWS_MAX_Q4K
#define QT_ROWS_MAX_Q4K 3
#endif
#ifndef QT_ROWS_MAX_Q6K
#define QT_ROWS_MAX_Q6K 3
#endif

#define QT_INLINE static inline __attribute__((always_inline))
/* A loop over the tokens of a tile, unrolled so that the per-token accumulators are
 * registers rather than an array in memory. */
#define QT_EACH_TOKEN(t, nt) _Pragma("GCC unroll 8") for (int t = 0; t < (nt); t++)

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
 * two sub-blocks (c[0]: 0 and 2, c[1]: 1 and 3, c[2]: 4 and 6, c[3]: 5 and 7, as the
 * low/high nibbles of 64 bytes of qs fall). S[i] pairs the scales of c[2i] and c[2i+1]
 * as 16-bit words, (sc0, sc1) x 8 | (sc2, sc3) x 8 and (sc4, sc5) x 8 | (sc6, sc7) x 8,
 * for qt_k_lanes16; M16 the mins as word pairs (mn0, mn0, mn1, mn1, ...) against the
 * activation's 16 group sums. */
typedef struct qt_kblock {
    __m512i c[4], S[2];
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
    const __m512i pair = _mm512_set1_epi32(0x00010000); /* word offsets (0, 1) */
    for (int i = 0; i < 2; i++) {
        __m512i base = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * i)), _mm256_set1_epi16((short)(4 * i + 2)), 1);
        k->S[i] = _mm512_permutexvar_epi16(_mm512_add_epi16(base, pair), s16);
    }
    __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn));
    k->M16 = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    k->d = qt_h2f(hd);
    k->dmin = qt_h2f(hdmin);
}

/* Words 2k and 2k + 1 of the result: the low words of int32 lane k of a and of b. */
QT_INLINE __m512i qt_pair_words(__m512i a, __m512i b) {
    static const uint16_t idx[32] = {0,  32, 2,  34, 4,  36, 6,  38, 8,  40, 10, 42, 12, 44, 14, 46,
                                     16, 48, 18, 50, 20, 52, 22, 54, 24, 56, 26, 58, 28, 60, 30, 62};
    return _mm512_permutex2var_epi16(a, _mm512_loadu_si512(idx), b);
}

/* The exact integer sums of sc(e) * q(e) * x(e) in 16 lanes (lane k and k + 8 belong to
 * the reference's lane k: qt_fold). The 4-product sums of each code register (vpdpbusd;
 * each fits 16 bits: 4 * 31 * 128 < 2^15) are paired word by word with those of the
 * register of the neighbouring sub-blocks, so that one word-pair multiply-add applies
 * both scales: 6 multiplies per 256 elements instead of 8. */
QT_INLINE __m512i qt_k_lanes16_x(const qt_kblock_t *k, __m512i x0, __m512i x1, __m512i x2, __m512i x3) {
    const __m512i z = _mm512_setzero_si512();
    __m512i a = _mm512_dpbusd_epi32(z, k->c[0], x0);
    __m512i b = _mm512_dpbusd_epi32(z, k->c[1], x1);
    __m512i c = _mm512_dpbusd_epi32(z, k->c[2], x2);
    __m512i d = _mm512_dpbusd_epi32(z, k->c[3], x3);
    __m512i l = _mm512_madd_epi16(qt_pair_words(a, b), k->S[0]);
    return _mm512_dpwssd_epi32(l, qt_pair_words(c, d), k->S[1]);
}

/* The same from a Q8_K block's codes in element order. */
QT_INLINE __m512i qt_k_lanes16(const qt_kblock_t *k, const int8_t *q8) {
    return qt_k_lanes16_x(k, qt_load_2x32(q8, 64), qt_load_2x32(q8 + 32, 64), qt_load_2x32(q8 + 128, 64),
                          qt_load_2x32(q8 + 160, 64));
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
            __m256i lanes = qt_fold(qt_k_lanes16(&k, xb->qs));
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

/* The 256 six-bit codes of a Q6_K block (0..63) in element order, 64 per register. */
QT_INLINE void qt_q6_codes(const block_q6_K *w, __m512i c[4]) {
    const __m512i lo4 = _mm512_set1_epi8(15), three = _mm512_set1_epi8(3);
    /* qh[l] bits 0-1 top element l, 2-3 element l + 32, 4-5 l + 64, 6-7 l + 96 */
    const __m512i cnt_lo = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i cnt_hi = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    for (int h = 0; h < 2; h++) {
        __m512i qa = _mm512_loadu_si512(w->ql + 64 * h);
        __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w->qh + 32 * h)));
        __m512i hl = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, cnt_lo), three), 4);
        __m512i hh = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, cnt_hi), three), 4);
        c[2 * h] = _mm512_or_si512(_mm512_and_si512(qa, lo4), hl);
        c[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(qa, 4), lo4), hh);
    }
}

QT_INLINE void qt_q6_unpack(const block_q6_K *w, qt_q6block_t *k) {
    qt_q6_codes(w, k->c);
    __m512i s16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales)));
    for (int h = 0; h < 2; h++) {
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

QT_INLINE __m512i qt_q6_lanes16(const qt_q6block_t *k, const int8_t *q8) {
    const __m512i m32 = _mm512_set1_epi8(32);
    __m512i l = _mm512_setzero_si512();
    for (int j = 0; j < 4; j++) {
        __m512i xv = _mm512_loadu_si512(q8 + 64 * j);
        /* (q - 32) * x as q * x - 32 * x: both products fit the 16-bit pair sums */
        __m512i p = _mm512_sub_epi16(_mm512_maddubs_epi16(k->c[j], xv), _mm512_maddubs_epi16(m32, xv));
        l = _mm512_dpwssd_epi32(l, p, k->S[j]);
    }
    return l;
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
            __m256i lanes = qt_fold(qt_q6_lanes16(&k, xb->qs));
            float d = xb->d * k.d;
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc[t]);
        }
    }
    QT_EACH_TOKEN(t, nt) out[(size_t)t * ldo] = qt_hsum8(acc[t]);
}

/* ---- token pairs ---------------------------------------------------------------- */

/* With two or more activation rows, tokens go in pairs through one register. The code
 * registers and both tokens' activations are put in the dword order [0, 8, 1, 9, ..,
 * 7, 15] (qt_interleave), so that dwords 2i and 2i + 1 are the two 4-element groups of
 * the reference's lane i the register holds (one from each of its sub-blocks). The
 * 4-product sums (vpdpbusd; each fits 16 bits) of token t0 and t1 are then narrowed
 * into one register by vpackssdw (exact: nothing saturates), whose 128-bit lane L holds
 * the word pairs (lane 2L, lane 2L + 1) of t0, then of t1; one word-pair multiply-add
 * per code register applies the two sub-block scales. The result, int32 lanes
 * [t0 lane 2L, t0 lane 2L + 1, t1 lane 2L, t1 lane 2L + 1] per 128-bit lane L, is
 * already the reference's 8-lane partition of both tokens: no fold, no word permute.
 * The float steps are those of the definition per lane (d = x.d * w.d; dmin = x.d *
 * -w.dmin, which is -x.d * w.dmin exactly), in block order; the Q4_K mins term is four
 * lanes per token, four tokens in one register. What only depends on the
 * activations is gathered once per tile for all its weight rows (qt_group_t). */
/* Activation rows of a pair-path group: the weight block is unpacked once for all of
 * them (codes, scales, d and dmin). 16 rather than 8 (one thread, CPU time, 14
 * alternations, medians; T = 32: Q4_K 2048 x 2048 154 -> 156 GMAC/s, Q6_K 2048 x 5632
 * 118 -> 133; a TinyLlama 512-token prompt on 2 threads +2-6%; decode steps of 12
 * sequences 70 -> 64 ms) costs 8-token groups 1-2% (perf batch, 8 sequences) for a
 * reason not found: their kernels are the same code. The 8 pair accumulators and 4
 * mins registers leave room for the block's codes and scales (no spills). */
#define QT_GROUP 16
#define QT_PAIRS (QT_GROUP / 2)
/* Registers of Q4_K mins lanes per group (four tokens each). */
#define QT_MINS (QT_GROUP / 4)
/* Blocks per row the pair path gathers on the stack: rows up to 16384 columns. */
#define QT_MAX_NB 64
/* Software prefetch of the weights while the first token group of a tile streams them:
 * each block's lines QT_PF_AHEAD row chunks ahead of the one being computed, in the
 * order the tile reads them. The hardware prefetcher alone left the pair path waiting
 * on memory once the weights came from DRAM (one thread, 65536 x 2048 Q4_K, T = 8:
 * 115 GMAC/s against 163 in cache; with the prefetch 138; 2, 3 and 4 chunks ahead
 * measured alike, T1 instead of T0 no better). The later groups of a prompt tile read
 * it from L2 and do not prefetch (QT_PF_ALL: they did, no faster). */
#ifndef QT_PF_AHEAD
#define QT_PF_AHEAD 3
#endif
#ifndef QT_PF_ALL
#define QT_PF_ALL 0
#endif
#ifndef QT_PF_HINT
#define QT_PF_HINT _MM_HINT_T0
#endif

/* dwords in the order [0, 8, 1, 9, .., 7, 15] */
QT_INLINE __m512i qt_interleave(__m512i v) {
    static const int32_t idx[16] = {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15};
    return _mm512_permutexvar_epi32(_mm512_loadu_si512(idx), v);
}

/* Per block and four tokens 4i .. 4i + 3, what the weight rows share: x.d of pairs 2i
 * and 2i + 1 as [d0, d0, d1, d1] per 128-bit lane; for the Q4_K mins, x.d of token
 * 4i + t x 4 in 128-bit lane t and the token's 8 sub-block sums (bsums[2s] +
 * bsums[2s + 1]) as words in the same lane. */
typedef struct qt_xquad {
    __m512 xd[2], xd4;
    __m512i q8s;
} qt_xquad_t;

/* Quads per block for np token pairs: the gather's block stride and the one qt_pairs
 * reads with (also the Q4_K mins registers per group). */
QT_INLINE int qt_quads(int np) { return (np + 1) / 2; }

/* One weight block in registers for the pair path: its codes in interleaved order, per
 * code register the word pairs of scales its lanes take, and (Q6_K) the correction N
 * the dot starts from. */
typedef struct qt_pblock {
    __m512i c[4], S[4], N[4];
} qt_pblock_t;

/* Q4_K: c[j] as in qt_k_unpack (sub-blocks (0, 2), (1, 3), (4, 6), (5, 7)), and the
 * mins as words mn0 .. mn7 in every 128-bit lane. */
QT_INLINE void qt_q4k_punpack(const block_q4_K *w, qt_pblock_t *k, __m512i *m8) {
    const __m512i lo4 = _mm512_set1_epi8(15);
    /* one permute serves the low and the high nibbles */
    __m512i q0 = qt_interleave(_mm512_loadu_si512(w->qs)), q1 = qt_interleave(_mm512_loadu_si512(w->qs + 64));
    k->c[0] = _mm512_and_si512(q0, lo4);
    k->c[1] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), lo4);
    k->c[2] = _mm512_and_si512(q1, lo4);
    k->c[3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), lo4);
    uint64_t sc, mn;
    qt_k_scales(w->scales, &sc, &mn);
    /* dwords (sc0, sc2), (sc1, sc3), (sc4, sc6), (sc5, sc7) as word pairs */
    __m128i t = _mm_shuffle_epi8(_mm_cvtsi64_si128((long long)sc),
                                 _mm_setr_epi8(0, -1, 2, -1, 1, -1, 3, -1, 4, -1, 6, -1, 5, -1, 7, -1));
    __m512i tb = _mm512_broadcast_i32x4(t);
    k->S[0] = _mm512_shuffle_epi32(tb, _MM_PERM_AAAA);
    k->S[1] = _mm512_shuffle_epi32(tb, _MM_PERM_BBBB);
    k->S[2] = _mm512_shuffle_epi32(tb, _MM_PERM_CCCC);
    k->S[3] = _mm512_shuffle_epi32(tb, _MM_PERM_DDDD);
    *m8 = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn)));
}

/* Q6_K: c[j] elements 64j .. 64j + 63 as signed codes q - 32; the dwords 2L, 8 + 2L
 * (and 2L + 1, 9 + 2L) paired in 128-bit lane L have the scales sc[4j + L/2] and
 * sc[4j + 2 + L/2]. The activations come offset to unsigned (x + 128, gathered once), so
 * the dot of a 4-element group is (q - 32) * (x + 128) less 128 * (q - 32): N[j] holds
 * that term per group, once per block for all the group's tokens (before, each token
 * loaded its own -32 * x sums, and the loads bounded the Q6_K pair path). */
QT_INLINE void qt_q6k_punpack(const block_q6_K *w, qt_pblock_t *k) {
    static const uint16_t idx0[32] = {0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2,
                                      1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3};
    qt_q6_codes(w, k->c);
    __m512i s16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales)));
    __m512i idx = _mm512_loadu_si512(idx0);
    const __m512i m32 = _mm512_set1_epi8(32), m128 = _mm512_set1_epi8(-128), n0 = _mm512_set1_epi32(128 * 128);
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        __m512i q = qt_interleave(k->c[j]);
        /* -128 * (sum of 4 (q - 32)) = 128 * 128 - 128 * (sum of 4 q), q as the unsigned operand */
        k->N[j] = _mm512_dpbusd_epi32(n0, q, m128);
        k->c[j] = _mm512_sub_epi8(q, m32);
        k->S[j] = _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16((short)(4 * j))), s16);
    }
}

/* The pair's lanes (layout above) from its two tokens' gathered registers x0, x1: codes
 * in interleaved order (Q6_K: offset to unsigned; the weight codes are the signed
 * operand). Each 4-product sum fits 16 bits: 4 * 15 * 128 (Q4_K), 4 * 32 * 128 (Q6_K,
 * once N is added: the running sum stays 32-bit inside vpdpbusd). */
QT_INLINE __m512i qt_pair_lanes(int q6, const qt_pblock_t *k, const __m512i *x0, const __m512i *x1) {
    const __m512i z = _mm512_setzero_si512();
    __m512i pk[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        __m512i a = q6 ? _mm512_dpbusd_epi32(k->N[j], x0[j], k->c[j]) : _mm512_dpbusd_epi32(z, k->c[j], x0[j]);
        __m512i b = q6 ? _mm512_dpbusd_epi32(k->N[j], x1[j], k->c[j]) : _mm512_dpbusd_epi32(z, k->c[j], x1[j]);
        pk[j] = _mm512_packs_epi32(a, b);
    }
    __m512i l = _mm512_madd_epi16(pk[0], k->S[0]);
    l = _mm512_dpwssd_epi32(l, pk[1], k->S[1]);
    l = _mm512_dpwssd_epi32(l, pk[2], k->S[2]);
    return _mm512_dpwssd_epi32(l, pk[3], k->S[3]);
}

/* What a token group shares between the weight rows of a tile (gathered by
 * quant_tile_avx512): x the activation blocks (the last token repeated up to
 * QT_GROUP), xq per block its qt_quads(np) quads, xr per block and token (2 np of
 * them) its registers for qt_pair_lanes (QT_XREGS each). Both are packed by the
 * tokens in use: with a block stride sized for 16 tokens, an 8-token group's blocks
 * fell 4 KiB apart on the same L1 sets (5% slower). */
typedef struct qt_group {
    const block_q8_K *x[QT_GROUP];
    const qt_xquad_t *xq;
    const __m512i *xr;
} qt_group_t;

#define QT_XREGS 4

/* A pair-path row's running sums, kept in memory between chunks of blocks: per pair
 * the dot lanes, and (Q4_K) the mins lanes of the group. */
typedef struct qt_pacc {
    __m512 acc[QT_PAIRS], acc_m[QT_MINS];
} qt_pacc_t;

/* Blocks b0 .. b1 - 1 of one weight row (w at block b0) against np pairs of the
 * group's activation rows, added to the row's sums in a. */
QT_INLINE void qt_pairs(int q6, int64_t b0, int64_t b1, const uint8_t *w, const uint8_t *pf, const qt_group_t *g,
                        int np, qt_pacc_t *a) {
    __m512 acc[QT_PAIRS], acc_m[QT_MINS];
    const int nm = qt_quads(np);
    /* the first chunk starts the sums (no memset of the row's sums beforehand) */
    QT_EACH_TOKEN(p, np) acc[p] = b0 ? a->acc[p] : _mm512_setzero_ps();
    QT_EACH_TOKEN(i, nm) acc_m[i] = b0 ? a->acc_m[i] : _mm512_setzero_ps();
    const size_t bs = q6 ? sizeof(block_q6_K) : sizeof(block_q4_K);
    for (int64_t b = b0; b < b1; b++, w += bs, pf = pf ? pf + bs : NULL) {
        if (pf) {
            /* the lines of the block the tile reads QT_PF_AHEAD row chunks later */
            _mm_prefetch((const char *)pf, QT_PF_HINT);
            _mm_prefetch((const char *)pf + 64, QT_PF_HINT);
            _mm_prefetch((const char *)pf + 128, QT_PF_HINT);
            if (q6) _mm_prefetch((const char *)pf + 192, QT_PF_HINT);
        }
        qt_pblock_t k;
        __m512i m8;
        __m512 wd, nwdmin;
        if (q6) {
            qt_q6k_punpack((const block_q6_K *)w, &k);
            wd = _mm512_set1_ps(qt_h2f(((const block_q6_K *)w)->d));
        } else {
            qt_q4k_punpack((const block_q4_K *)w, &k, &m8);
            wd = _mm512_set1_ps(qt_h2f(((const block_q4_K *)w)->d));
            nwdmin = _mm512_set1_ps(-qt_h2f(((const block_q4_K *)w)->dmin));
        }
        const qt_xquad_t *xq = g->xq + (size_t)b * nm;
        const __m512i *xr = g->xr + (size_t)b * 2 * np * QT_XREGS;
        QT_EACH_TOKEN(p, np) {
            __m512i l = qt_pair_lanes(q6, &k, xr + 2 * p * QT_XREGS, xr + (2 * p + 1) * QT_XREGS);
            acc[p] = _mm512_fmadd_ps(_mm512_mul_ps(xq[p / 2].xd[p % 2], wd), _mm512_cvtepi32_ps(l), acc[p]);
        }
        if (!q6) {
            /* mn[2k] * q8s[2k] + mn[2k + 1] * q8s[2k + 1]: the reference's mins lane k */
            QT_EACH_TOKEN(i, nm) {
                __m512i mt = _mm512_madd_epi16(xq[i].q8s, m8);
                acc_m[i] = _mm512_fmadd_ps(_mm512_mul_ps(xq[i].xd4, nwdmin), _mm512_cvtepi32_ps(mt), acc_m[i]);
            }
        }
    }
    QT_EACH_TOKEN(p, np) a->acc[p] = acc[p];
    QT_EACH_TOKEN(i, nm) a->acc_m[i] = acc_m[i];
}

/* The results of 8 finished pair-path rows for tokens 0 .. nt - 1: y[t * ldy + r] for
 * r < rn (all 8 rows' sums are read, those past rn zeroed; only rn are written). Each value goes through
 * the reference's final reduction trees (hsum8 of the pair lanes: (a4 + a0, .., a7 +
 * a3), then (t0 + t2) + (t1 + t3); Q4_K: + hsum4 of the mins lanes, (m0 + m2) + (m1 +
 * m3)), with the same operands in the same order, but for 8 rows at once: each step adds
 * two registers whose lanes come from two or four rows (a transposing tree), so that one
 * register ends with a pair's two tokens for all 8 rows, and each token's 8 results are
 * one contiguous store. Per row one by one (reductions within a register, then one
 * scalar store per token, ldy floats apart) the output was ~7% of an 8-token decode
 * step on 2048-column rows. */
static void qt_pairs_out8(const qt_pacc_t *a, int rn, int mins, int nt, float *y, size_t ldy) {
    /* (row L, token 0), (L, 1), (L + 4, 0), (L + 4, 1) in 128-bit lane L -> token 0's
     * rows 0 .. 7, token 1's rows 0 .. 7 */
    static const int32_t tok_idx[16] = {0, 4, 8, 12, 2, 6, 10, 14, 1, 5, 9, 13, 3, 7, 11, 15};
    /* the mins of rows 0-3 (a) and 4-7 (b), token 4i + t's in 128-bit lane t -> the
     * layout above for tokens (0, 1), and for (2, 3) */
    static const int32_t min_idx[2][16] = {{0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23},
                                           {8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31}};
    const __mmask8 keep = (__mmask8)((1u << (rn < 8 ? rn : 8)) - 1);
    __m512 M[QT_MINS][2];
    for (int i = 0; mins && i < (nt + 3) / 4; i++) {
        for (int q = 0; q < 2; q++) {
            __m512 A[2];
            for (int k = 0; k < 2; k++) {
                /* rows 4q + 2k, 4q + 2k + 1: per token [m0 + m2, m1 + m3] of each */
                __m512 va = a[4 * q + 2 * k].acc_m[i], vb = a[4 * q + 2 * k + 1].acc_m[i];
                A[k] = _mm512_add_ps(_mm512_shuffle_ps(va, vb, 0x44), _mm512_shuffle_ps(va, vb, 0xee));
            }
            /* per token: rows 4q .. 4q + 3, (m0 + m2) + (m1 + m3) */
            M[i][q] = _mm512_add_ps(_mm512_shuffle_ps(A[0], A[1], 0x88), _mm512_shuffle_ps(A[0], A[1], 0xdd));
        }
    }
    for (int p = 0; p < (nt + 1) / 2; p++) {
        __m512 U[4], W[2];
        /* rows 2k, 2k + 1: (a4 + a0, .., a7 + a3) of both tokens of each */
        for (int k = 0; k < 4; k++) {
            __m512 va = a[2 * k].acc[p], vb = a[2 * k + 1].acc[p];
            U[k] = _mm512_add_ps(_mm512_shuffle_f32x4(va, vb, 0xee), _mm512_shuffle_f32x4(va, vb, 0x44));
        }
        /* rows 4k .. 4k + 3, one per 128-bit lane: t0 + t2 and t1 + t3 of both tokens */
        for (int k = 0; k < 2; k++)
            W[k] = _mm512_add_ps(_mm512_shuffle_f32x4(U[2 * k], U[2 * k + 1], 0x88),
                                 _mm512_shuffle_f32x4(U[2 * k], U[2 * k + 1], 0xdd));
        __m512 r = _mm512_add_ps(_mm512_shuffle_ps(W[0], W[1], 0x88), _mm512_shuffle_ps(W[0], W[1], 0xdd));
        r = _mm512_permutexvar_ps(_mm512_loadu_si512(tok_idx), r);
        if (mins) r = _mm512_add_ps(r, _mm512_permutex2var_ps(M[p / 2][0], _mm512_loadu_si512(min_idx[p % 2]), M[p / 2][1]));
        _mm256_mask_storeu_ps(y + (size_t)(2 * p) * ldy, keep, _mm512_castps512_ps256(r));
        if (2 * p + 1 < nt) _mm256_mask_storeu_ps(y + (size_t)(2 * p + 1) * ldy, keep, _mm512_extractf32x8_ps(r, 1));
    }
}

/* The pair path specialised on the number of token pairs, so that the per-pair
 * accumulators stay in registers. */
#define QT_PAIR_FNS(NP)                                                                                     \
    static void qt_q4k_p##NP(int64_t b0, int64_t b1, const uint8_t *w, const uint8_t *pf, const qt_group_t *g, \
                             qt_pacc_t *a) {                                                                  \
        qt_pairs(0, b0, b1, w, pf, g, NP, a);                                                                 \
    }                                                                                                         \
    static void qt_q6k_p##NP(int64_t b0, int64_t b1, const uint8_t *w, const uint8_t *pf, const qt_group_t *g, \
                             qt_pacc_t *a) {                                                                  \
        qt_pairs(1, b0, b1, w, pf, g, NP, a);                                                                 \
    }
QT_PAIR_FNS(1)
QT_PAIR_FNS(2)
QT_PAIR_FNS(3)
QT_PAIR_FNS(4)
QT_PAIR_FNS(5)
QT_PAIR_FNS(6)
QT_PAIR_FNS(7)
QT_PAIR_FNS(8)

typedef void (*qt_pair_fn)(int64_t b0, int64_t b1, const uint8_t *w, const uint8_t *pf, const qt_group_t *g,
                           qt_pacc_t *a);

/* Bytes of gathered activations the pair path keeps hot per chunk of blocks. Every
 * weight row of the tile goes through one chunk before the next, so that the chunk's
 * activations stay in L1 across the rows. Without it each row streamed the whole
 * group's activations from L2 once they outgrew L1 (4 tokens of a 5632-column Q6_K row
 * are 88 KiB here, 2 tokens of a 14336-column Q4_K row 28 KiB). A smaller working set
 * is done in one chunk, so that the weight rows are read in order. */
#ifndef QT_CHUNK_BYTES
#define QT_CHUNK_BYTES (20 * 1024)
#endif
/* Weight rows whose running sums the pair path keeps at once. */
#ifndef QT_ROWS
#define QT_ROWS 16
#endif

/* One token group's pair path over nr weight rows: chunk by chunk of blocks, each row. */
static void qt_pairs_tile(qt_pair_fn fn, int q6, int64_t nb, const uint8_t *w, size_t row_bytes, int nr,
                          const qt_group_t *grp, int g, int prefetch, float *y, size_t ldy) {
    qt_pacc_t acc[QT_ROWS];
    int np = (g + 1) / 2;
    /* the gathered bytes a block's rows read: the pairs' registers and quads (sized
     * for a whole group instead, 8-token groups got chunks too short: 2048-column rows
     * went in two) */
    size_t per_block = (size_t)np * 2 * QT_XREGS * sizeof(__m512i) + (size_t)qt_quads(np) * sizeof(qt_xquad_t);
    int64_t chunk = (int64_t)(QT_CHUNK_BYTES / per_block);
    if (chunk < 1) chunk = 1;
    size_t bs = q6 ? sizeof(block_q6_K) : sizeof(block_q4_K);
    for (int r0 = 0; r0 < nr; r0 += QT_ROWS) {
        int rn = nr - r0 < QT_ROWS ? nr - r0 : QT_ROWS;
        for (int64_t b0 = 0; b0 < nb; b0 += chunk) {
            int64_t b1 = nb - b0 < chunk ? nb : b0 + chunk;
            for (int r = 0; r < rn; r++) {
                /* QT_PF_AHEAD row chunks on in the order of the loops: later in this
                 * chunk of blocks, else the next chunk, else the rows after these (the
                 * next group of rows, or past the tile: matmat's next tile of the
                 * range in the decode plan) */
                int rt = r + QT_PF_AHEAD;
                const uint8_t *pf = !prefetch ? NULL
                                    : rt < rn ? w + (size_t)(r0 + rt) * row_bytes + (size_t)b0 * bs
                                    : b1 < nb ? w + (size_t)(r0 + rt - rn) * row_bytes + (size_t)b1 * bs
                                              : w + (size_t)(r0 + rt) * row_bytes;
                fn(b0, b1, w + (size_t)(r0 + r) * row_bytes + (size_t)b0 * bs, pf, grp, &acc[r]);
            }
        }
        /* a last group of fewer than 8 rows: the missing rows' sums zeroed (not written) */
        for (int r = rn; r % 8; r++) memset(&acc[r], 0, sizeof acc[r]);
        for (int r = 0; r < rn; r += 8) qt_pairs_out8(acc + r, rn - r, !q6, g, y + r0 + r, ldy);
    }
}

/* A Q8_K block's sub-block sums bsums[2s] + bsums[2s + 1] (each fits 16 bits: 32 codes). */
QT_INLINE __m128i qt_q8s(const block_q8_K *x) {
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums), _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
}

/* Gathers the first ntok (even) of group g's activations (tokens x[0 .. QT_GROUP - 1],
 * the last real one repeated) for the pair path, packed as qt_group_t reads them: per
 * block its quads, and the registers per token. */
static void qt_pairs_gather(int q6, int64_t nb, const block_q8_K *const *x, int ntok, qt_xquad_t *xq,
                            __m512i *xr) {
    const int nq = qt_quads(ntok / 2);
    const __m512i u128 = _mm512_set1_epi8(-128);
    for (int64_t b = 0; b < nb; b++) {
        for (int i = 0; i < nq; i++) {
            qt_xquad_t *v = &xq[b * nq + i];
            const block_q8_K *x0 = &x[4 * i][b], *x1 = &x[4 * i + 1][b], *x2 = &x[4 * i + 2][b], *x3 = &x[4 * i + 3][b];
            v->xd[0] = _mm512_broadcast_f32x4(_mm_setr_ps(x0->d, x0->d, x1->d, x1->d));
            v->xd[1] = _mm512_broadcast_f32x4(_mm_setr_ps(x2->d, x2->d, x3->d, x3->d));
            v->xd4 = _mm512_insertf32x8(
                _mm512_castps256_ps512(_mm256_set_m128(_mm_set1_ps(x1->d), _mm_set1_ps(x0->d))),
                _mm256_set_m128(_mm_set1_ps(x3->d), _mm_set1_ps(x2->d)), 1);
            v->q8s = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(qt_q8s(x1), qt_q8s(x0))),
                                        _mm256_set_m128i(qt_q8s(x3), qt_q8s(x2)), 1);
        }
        for (int t = 0; t < ntok; t++) {
            const int8_t *q = x[t][b].qs;
            __m512i *o = xr + ((size_t)b * ntok + t) * QT_XREGS;
            if (!q6) {
                /* the sub-blocks of qt_q4k_punpack's code registers */
                o[0] = qt_interleave(qt_load_2x32(q, 64));
                o[1] = qt_interleave(qt_load_2x32(q + 32, 64));
                o[2] = qt_interleave(qt_load_2x32(q + 128, 64));
                o[3] = qt_interleave(qt_load_2x32(q + 160, 64));
            } else {
                for (int j = 0; j < 4; j++) o[j] = _mm512_xor_si512(qt_interleave(_mm512_loadu_si512(q + 64 * j)), u128);
            }
        }
    }
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
    static const qt_pair_fn p4[QT_PAIRS] = {qt_q4k_p1, qt_q4k_p2, qt_q4k_p3, qt_q4k_p4,
                                            qt_q4k_p5, qt_q4k_p6, qt_q4k_p7, qt_q4k_p8};
    static const qt_pair_fn p6[QT_PAIRS] = {qt_q6k_p1, qt_q6k_p2, qt_q6k_p3, qt_q6k_p4,
                                            qt_q6k_p5, qt_q6k_p6, qt_q6k_p7, qt_q6k_p8};
    const qt_row_fn *fns;
    const qt_pair_fn *pfns = NULL;
    switch (type) {
    case GGML_TYPE_Q4_K: fns = q4, pfns = p4; break;
    case GGML_TYPE_Q5_K: fns = q5; break;
    case GGML_TYPE_Q6_K: fns = q6, pfns = p6; break;
    default: return -1;
    }
    /* a few decode rows: the row kernels, one pass per four weight rows for all the
     * tokens (crossover with the pair path measured: docs/engine.md) */
    int rows_max = type == GGML_TYPE_Q4_K ? QT_ROWS_MAX_Q4K : type == GGML_TYPE_Q6_K ? QT_ROWS_MAX_Q6K : 0;
    if (nt <= rows_max && !quant_rows_avx512(type, n, w, row_bytes, nr, xq, xq_stride, nt, y, ldy))
        return 0;
    int64_t nb = n / QUANT_QK_K;
    /* the pair path's gathered activations, on the stack: 320 KiB */
    qt_xquad_t xq4[QT_MAX_NB * QT_MINS];
    __m512i xr[QT_MAX_NB * QT_GROUP * QT_XREGS];
    int is_q6 = type == GGML_TYPE_Q6_K;
    int pairs = pfns && nb <= QT_MAX_NB;
    /* tokens in groups (QT_GROUP for the pair path, else QT_TOKENS); within a group
     * every row of the tile (its blocks still in L1/L2 from the previous group) */
    int gmax = pairs ? QT_GROUP : QT_TOKENS;
    for (int t0 = 0; t0 < nt; t0 += gmax) {
        int g = nt - t0 < gmax ? nt - t0 : gmax;
        qt_group_t grp = {.xq = xq4, .xr = xr};
        const block_q8_K **x = grp.x;
        for (int t = 0; t < g; t++) x[t] = (const block_q8_K *)((const uint8_t *)xq + (size_t)(t0 + t) * xq_stride);
        const uint8_t *row = w;
        if (g == 1 || !pairs) {
            for (int r = 0; r < nr; r++, row += row_bytes) fns[g - 1](nb, row, x, y + (size_t)t0 * ldy + r, ldy);
            continue;
        }
        /* pairs: an odd last token is paired with itself (its twin's results are
         * dropped); the mins lanes take the whole group, the last token repeated */
        int np = (g + 1) / 2;
        for (int t = g; t < QT_GROUP; t++) x[t] = x[t - 1];
        qt_pairs_gather(is_q6, nb, x, 2 * np, xq4, xr);
        qt_pairs_tile(pfns[np - 1], is_q6, nb, w, row_bytes, nr, &grp, g, QT_PF_ALL || t0 == 0, y + (size_t)t0 * ldy, ldy);
    }
    return 0;
}
