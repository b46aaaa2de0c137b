/* quant_row_avx512.c — the decode kernels (one to four activation rows) for Q4_K and Q6_K on AVX-512 VNNI: four weight rows per pass.
 *
 * Called through quant_tile_avx512 (quant_tile.h) when a tile has at most four
 * activation rows, and through quant_streams_avx512 (the AVX-512 set's dot_streams:
 * decode products, whose threads claim passes of four long streams). Each result is
 * the same float, bit for bit, as matvec_dot (matvec.c): the integer lane sums are exact
 * in any grouping, and the float steps per row and token (d = x.d * w.d, one FMA per
 * block into the reference's 8 lanes, the Q4_K mins in 4 lanes, the final reduction
 * tree) are those of the definition, lane by lane. With several tokens, what depends
 * only on the weights (the four rows' scales, mins and d per block, each row's codes
 * and scale words) is unpacked once for all of them; what depends only on the
 * activations is arranged once per call for all the weight rows (qr_prep_q4k,
 * qr_prep_q6k, on the stack: rows of up to 64 blocks, wider ones are refused).
 *
 * Why four rows: with one activation row the kernel is compute-bound, and much of a
 * one-row pass was activation work (loading the 256 codes, the group sums) and float
 * bookkeeping per block. Four rows share the activation work, two rows share
 * each fold / conversion / FMA (row A's 8 lanes in the low half of a 512-bit register,
 * row B's in the high half), and the mins of all four rows are one multiply-add and one
 * FMA. The four rows are four independent dependency chains, so the out-of-order core
 * overlaps them. The four rows of a pass are a quarter of the tile apart, so that each
 * of the four streams of weights runs through consecutive rows: four adjacent rows per
 * pass made four streams of one row each (2.3 KiB for a 4096-wide Q4_K row), started
 * anew every pass, which the hardware prefetcher does not follow (out of cache: 13 GB/s
 * on one core, against 22 for the one-row kernel; software prefetch of the next group
 * got back to 18 only). The last nr % 4 rows of a tile go through one more pass, the
 * missing rows repeated (their results dropped). */
#include <immintrin.h>
#include <string.h>

#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "engine/quant_tile.h"

#define QR_INLINE static inline __attribute__((always_inline))
#define QR_ROWS 4
#define QR_UNROLL _Pragma("GCC unroll 4")
/* Activation rows one pass takes at most (quant_rows_avx512's nt). */
#define QR_MAX_TOKENS 4
/* A loop over the tokens of a pass, unrolled so that the per-token sums are registers. */
#define QR_EACH_TOKEN(t, nt) _Pragma("GCC unroll 4") for (int t = 0; t < (nt); t++)

/* (t0+t2) + (t1+t3), as matvec.c's reductions end. */
QR_INLINE float qr_hsum4(__m128 t) {
    __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

/* matvec.c's hsum8: (a4+a0, a5+a1, a6+a2, a7+a3), then (t0+t2) + (t1+t3). */
QR_INLINE float qr_hsum8(__m256 a) {
    return qr_hsum4(_mm_add_ps(_mm256_extractf128_ps(a, 1), _mm256_castps256_ps128(a)));
}

/* 32 bytes at p, then 32 bytes at p + gap, as one register. */
QR_INLINE __m512i qr_load_2x32(const int8_t *p, int gap) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                              _mm256_loadu_si256((const __m256i *)(p + gap)), 1);
}

/* Words 2k and 2k + 1: the low words of int32 lane k of a and of b (both sums fit 16
 * bits). A shift and a word blend: cheaper than a two-source word permute. */
QR_INLINE __m512i qr_pair_words(__m512i a, __m512i b) {
    return _mm512_mask_blend_epi16(0xAAAAAAAAu, a, _mm512_slli_epi32(b, 16));
}

/* qr_pair_words(a, b / 16) for b a multiple of 16 (the sums of high nibbles left in
 * place, 16 times their value): b / 16 << 16 is b << 12, its low 16 bits zero. */
QR_INLINE __m512i qr_pair_hi16(__m512i a, __m512i b) {
    return _mm512_mask_blend_epi16(0xAAAAAAAAu, a, _mm512_slli_epi32(b, 12));
}

/* [a's low 256 | b's low 256] + [a's high 256 | b's high 256]: two rows' 16 lanes
 * folded into the reference's 8-lane partition (lane k and k + 8 cover the same
 * offsets within their 32-element groups), side by side. */
QR_INLINE __m512i qr_fold_pair(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_shuffle_i64x2(a, b, 0x44), _mm512_shuffle_i64x2(a, b, 0xee));
}

/* 128-bit lane r of v in every lane. The immediate must be a constant where the
 * compiler does not unroll the row loop (-O1, the sanitizer build): one literal per r. */
QR_INLINE __m512i qr_lane_bcast(__m512i v, int r) {
    switch (r) {
    case 0: return _mm512_shuffle_i32x4(v, v, 0x00);
    case 1: return _mm512_shuffle_i32x4(v, v, 0x55);
    case 2: return _mm512_shuffle_i32x4(v, v, 0xaa);
    default: return _mm512_shuffle_i32x4(v, v, 0xff);
    }
}

/* The row pairs' results: row 2p + h's dot lanes in half h of acc[p]. */
QR_INLINE __m256 qr_half(__m512 v, int h) {
    return h ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v);
}

/* ---- Q4_K ----------------------------------------------------------------------- */

/* The 8 six-bit scales and the 8 mins of four Q4_K blocks, one byte each (sub-block
 * order): per 128-bit lane, from the block's first 16 bytes (d, dmin, then the 12 packed
 * bytes s[0..11], layout in quant_blocks.h), bytes 0-7 the scales, 8-15 the mins:
 *   sc[i] = s[i] & 63,      sc[4+i] = (s[8+i] & 15) | (s[i] >> 6) << 4,
 *   mn[i] = s[4+i] & 63,    mn[4+i] = (s[8+i] >> 4) | (s[4+i] >> 6) << 4   (i < 4).
 * Two byte shuffles gather the sources of every byte, shifts and masks do the rest: the
 * four rows' scales in a few vector instructions instead of scalar work per row. */
QR_INLINE __m512i qr_k_scales4(__m512i hd) {
    const __m512i ia = _mm512_broadcast_i32x4(_mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m512i ib = _mm512_broadcast_i32x4(
        _mm_setr_epi8(-128, -128, -128, -128, 4, 5, 6, 7, -128, -128, -128, -128, 8, 9, 10, 11));
    const __m512i m1 = _mm512_broadcast_i32x4(_mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
    const __m512i m2 = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30));
    __m512i a = _mm512_shuffle_epi8(hd, ia); /* s[0..3], s[8..11], s[4..7], s[8..11] */
    /* the high mins take the high nibble of s[8+i]: bytes 12-15 of every lane */
    a = _mm512_mask_blend_epi8(0xf000f000f000f000ull, a, _mm512_srli_epi16(a, 4));
    __m512i t = _mm512_and_si512(_mm512_srli_epi16(_mm512_shuffle_epi8(hd, ib), 2), m2);
    return _mm512_ternarylogic_epi32(a, m1, t, 0xEA); /* (a & m1) | t */
}

/* The 16-byte heads (d, dmin, 12 packed scale bytes) of the four blocks wb, one per
 * 128-bit lane. */
QR_INLINE __m512i qr_k_heads4(const uint8_t *const *wb) {
    __m512i hd = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)wb[0]));
    hd = _mm512_inserti32x4(hd, _mm_loadu_si128((const __m128i *)wb[1]), 1);
    hd = _mm512_inserti32x4(hd, _mm_loadu_si128((const __m128i *)wb[2]), 2);
    return _mm512_inserti32x4(hd, _mm_loadu_si128((const __m128i *)wb[3]), 3);
}

/* One activation block as the Q4_K row kernel reads it, prepared once per call for all
 * the weight rows (qr_prep_q4k): the codes in the order of the weight's code registers
 * (register j holds two sub-blocks in its 256-bit halves: 0|2, 1|3, 4|6, 5|7, as the low
 * and high nibbles of 64 bytes of qs fall), the sums per sub-block for the mins (8 words,
 * in every 128-bit lane), x.d and -x.d. Every activation operand of the loop is then a
 * plain load: arranging them per block and pass cost a tenth of the kernel's time. */
typedef struct {
    int8_t v[4][64];
    int16_t q8s[32];
    float d, nd;
} __attribute__((aligned(64))) qr_x4k_t;

/* Activation blocks one call prepares at most (per activation row): 16384 columns. */
#define QR_MAX_NB 64

static void qr_prep_q4k(int64_t nb, const block_q8_K *x, qr_x4k_t *p) {
    for (int64_t b = 0; b < nb; b++, p++) {
        const int8_t *q8 = x[b].qs;
        static const int off[4] = {0, 32, 128, 160};
        for (int j = 0; j < 4; j++)
            _mm512_store_si512(p->v[j], qr_load_2x32(q8 + off[j], 64));
        /* q8s[s] = bsums[2s] + bsums[2s+1] (|q8s| <= 32 * 128) */
        __m256i s32 = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x[b].bsums), _mm256_set1_epi16(1));
        __m128i s16 = _mm_packs_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
        _mm512_store_si512(p->q8s, _mm512_broadcast_i32x4(s16));
        p->d = x[b].d, p->nd = -x[b].d;
    }
}

/* Four Q4_K rows (nb blocks each, w[r]) against nt prepared activation rows x[t]
 * (qr_prep_q4k; nt a constant where inlined: 1 to QR_MAX_TOKENS), out[t * QR_ROWS + r].
 *
 * Per row, the 4-product sums of each code register (vpdpbusd; each fits 16 bits: 4 * 15
 * * 128 < 2^15) are paired word by word with those of the neighbouring sub-blocks'
 * register, and one word-pair multiply-add applies both scales (scale words picked from
 * the 8 scale bytes by a byte shuffle): 6 multiplies per row, token and block. The high
 * nibbles are multiplied where they lie (code * 16, masked, not shifted): their sums
 * are 16 times too large, which the pairing's shift absorbs (qr_pair_hi16). Mins: per
 * row and pair k of sub-blocks, mn[2k] * q8s[2k] + mn[2k+1] * q8s[2k+1] is one word
 * multiply-add, four rows in one register. With several tokens, each row's unpacked
 * codes and scale words are shared by all of them: only the multiplies and the float
 * steps are per token. */
QR_INLINE void qr_q4k_rows(int nt, int64_t nb, const uint8_t *const *w, const qr_x4k_t *const *x, float *out) {
    const __m512i lo4 = _mm512_set1_epi8(15), z = _mm512_setzero_si512();
    /* byte shuffles of the 8 scale bytes into word pairs (sc0, sc1) | (sc2, sc3) and
     * (sc4, sc5) | (sc6, sc7) over the register halves (0x80: a zero high byte) */
    const __m512i sidx0 = _mm512_inserti64x4(_mm512_set1_epi32((int)0x80018000u),
                                             _mm256_set1_epi32((int)0x80038002u), 1);
    const __m512i sidx1 = _mm512_inserti64x4(_mm512_set1_epi32((int)0x80058004u),
                                             _mm256_set1_epi32((int)0x80078006u), 1);
    /* from (d, dmin) of the four rows as floats: [d0 x 8 | d1 x 8], [d2 x 8 | d3 x 8],
     * [dmin0 x 4 | dmin1 x 4 | dmin2 x 4 | dmin3 x 4] */
    const __m512i didx01 = _mm512_inserti64x4(_mm512_set1_epi32(0), _mm256_set1_epi32(2), 1);
    const __m512i didx23 = _mm512_inserti64x4(_mm512_set1_epi32(4), _mm256_set1_epi32(6), 1);
    const __m512i midx = _mm512_set_epi32(7, 7, 7, 7, 5, 5, 5, 5, 3, 3, 3, 3, 1, 1, 1, 1);
    /* the first dword (d, dmin) of each 128-bit lane */
    const __m512i didx = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    /* bytes 8..15 of each lane (the mins) as zero-extended words */
    const __m512i mnidx = _mm512_broadcast_i32x4(_mm_setr_epi8(8, -128, 9, -128, 10, -128, 11, -128, 12, -128, 13,
                                                               -128, 14, -128, 15, -128));
    __m512 acc01[QR_MAX_TOKENS], acc23[QR_MAX_TOKENS], accm[QR_MAX_TOKENS];
    QR_EACH_TOKEN(t, nt) acc01[t] = acc23[t] = accm[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *wb[QR_ROWS];
        QR_UNROLL for (int r = 0; r < QR_ROWS; r++) wb[r] = w[r] + (size_t)b * sizeof(block_q4_K);
        /* R: per 128-bit lane (row) the 8 scales then the 8 mins, one byte each */
        __m512i hd = qr_k_heads4(wb), R = qr_k_scales4(hd);
        __m512 h = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi32(didx, hd))));
        const __m512 wd01 = _mm512_permutexvar_ps(didx01, h), wd23 = _mm512_permutexvar_ps(didx23, h);
        const __m512 wdm = _mm512_permutexvar_ps(midx, h);
        __m512i L[QR_MAX_TOKENS][QR_ROWS];
        QR_UNROLL for (int r = 0; r < QR_ROWS; r++) {
            const block_q4_K *blk = (const block_q4_K *)wb[r];
            __m512i scb = qr_lane_bcast(R, r); /* row r's lane everywhere */
            __m512i s0 = _mm512_shuffle_epi8(scb, sidx0), s1 = _mm512_shuffle_epi8(scb, sidx1);
            __m512i q0 = _mm512_loadu_si512(blk->qs), q1 = _mm512_loadu_si512(blk->qs + 64);
            __m512i c0 = _mm512_and_si512(q0, lo4), c1 = _mm512_andnot_si512(lo4, q0);
            __m512i c2 = _mm512_and_si512(q1, lo4), c3 = _mm512_andnot_si512(lo4, q1);
            QR_EACH_TOKEN(t, nt) {
                const qr_x4k_t *xb = &x[t][b];
                __m512i a = _mm512_dpbusd_epi32(z, c0, _mm512_load_si512(xb->v[0]));
                __m512i c = _mm512_dpbusd_epi32(z, c1, _mm512_load_si512(xb->v[1]));
                __m512i e = _mm512_dpbusd_epi32(z, c2, _mm512_load_si512(xb->v[2]));
                __m512i f = _mm512_dpbusd_epi32(z, c3, _mm512_load_si512(xb->v[3]));
                __m512i l = _mm512_madd_epi16(qr_pair_hi16(a, c), s0);
                L[t][r] = _mm512_dpwssd_epi32(l, qr_pair_hi16(e, f), s1);
            }
        }
        /* the mins as words, row r's in lane r */
        __m512i mw = _mm512_shuffle_epi8(R, mnidx);
        QR_EACH_TOKEN(t, nt) {
            const qr_x4k_t *xb = &x[t][b];
            const __m512 xd = _mm512_set1_ps(xb->d);
            /* d = x.d * w.d and dmin = -x.d * w.dmin, as the definition */
            acc01[t] = _mm512_fmadd_ps(_mm512_mul_ps(xd, wd01), _mm512_cvtepi32_ps(qr_fold_pair(L[t][0], L[t][1])), acc01[t]);
            acc23[t] = _mm512_fmadd_ps(_mm512_mul_ps(xd, wd23), _mm512_cvtepi32_ps(qr_fold_pair(L[t][2], L[t][3])), acc23[t]);
            __m512 dm = _mm512_mul_ps(_mm512_set1_ps(xb->nd), wdm);
            accm[t] = _mm512_fmadd_ps(dm, _mm512_cvtepi32_ps(_mm512_madd_epi16(mw, _mm512_load_si512(xb->q8s))), accm[t]);
        }
    }
    QR_EACH_TOKEN(t, nt) {
        float *o = out + t * QR_ROWS;
        o[0] = qr_hsum8(qr_half(acc01[t], 0)) + qr_hsum4(_mm512_extractf32x4_ps(accm[t], 0));
        o[1] = qr_hsum8(qr_half(acc01[t], 1)) + qr_hsum4(_mm512_extractf32x4_ps(accm[t], 1));
        o[2] = qr_hsum8(qr_half(acc23[t], 0)) + qr_hsum4(_mm512_extractf32x4_ps(accm[t], 2));
        o[3] = qr_hsum8(qr_half(acc23[t], 1)) + qr_hsum4(_mm512_extractf32x4_ps(accm[t], 3));
    }
}

/* ---- Q6_K ----------------------------------------------------------------------- */

/* One activation block as the Q6_K row kernel reads it (qr_prep_q6k): the codes, and
 * per half the paired 4-element sums of 32 * x as the code sums are paired (the offset
 * of the 6-bit codes, shared by the rows). */
typedef struct {
    int8_t qs[QUANT_QK_K];
    int16_t x32[2][32];
    float d;
} __attribute__((aligned(64))) qr_x6k_t;

static void qr_prep_q6k(int64_t nb, const block_q8_K *x, qr_x6k_t *p) {
    const __m512i z = _mm512_setzero_si512(), m32 = _mm512_set1_epi8(32);
    for (int64_t b = 0; b < nb; b++, p++) {
        const int8_t *q8 = x[b].qs;
        memcpy(p->qs, q8, sizeof p->qs);
        for (int hh = 0; hh < 2; hh++)
            _mm512_store_si512(p->x32[hh],
                               qr_pair_words(_mm512_dpbusd_epi32(z, m32, _mm512_loadu_si512(q8 + 128 * hh)),
                                             _mm512_dpbusd_epi32(z, m32, _mm512_loadu_si512(q8 + 128 * hh + 64))));
        p->d = x[b].d;
    }
}

/* Four Q6_K rows against nt prepared activation rows (qr_prep_q6k; as qr_q4k_rows).
 *
 * Code register j holds elements 64j .. 64j + 63 in order (the low or high nibbles of 64
 * bytes of ql, topped by two bits of qh: a variable word shift puts them at bits 4-5,
 * one per register half, and a bit select merges). The 4-product sums of the registers
 * of elements 128h.. and 128h + 64.. (each fits 16 bits: 4 * 63 * 127 < 2^15) are paired
 * word by word, less the activation's paired 4-element sums of 32 * x (shared by the
 * rows), and one word-pair multiply-add per half applies the scales: lane k of half h
 * pairs sub-blocks 8h + k/4 and 8h + 4 + k/4, so the scale words are a byte shuffle of
 * the sign-extended scales within each 128-bit lane. The codes and scale words of a row
 * are unpacked once for all the tokens. */
QR_INLINE void qr_q6k_rows(int nt, int64_t nb, const uint8_t *const *w, const qr_x6k_t *const *x, float *out) {
    const __m512i lo4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    /* qh bits 2s, 2s+1 of byte l top element 32s + l of the half: to bits 4-5 by a left
     * shift of 4 (s = 0), 2 (s = 1), none (s = 2), a right shift of 2 (s = 3) */
    const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    /* per 128-bit lane i: words (sc[i], sc[4 + i]) of the lane's 8 scale words */
    const __m512i sidx = _mm512_set_epi32(0x0f0e0706, 0x0f0e0706, 0x0f0e0706, 0x0f0e0706, 0x0d0c0504, 0x0d0c0504,
                                          0x0d0c0504, 0x0d0c0504, 0x0b0a0302, 0x0b0a0302, 0x0b0a0302, 0x0b0a0302,
                                          0x09080100, 0x09080100, 0x09080100, 0x09080100);
    const __m512i didx01 = _mm512_inserti64x4(_mm512_set1_epi32(0), _mm256_set1_epi32(1), 1);
    const __m512i didx23 = _mm512_inserti64x4(_mm512_set1_epi32(2), _mm256_set1_epi32(3), 1);
    const __m512i z = _mm512_setzero_si512();
    __m512 acc01[QR_MAX_TOKENS], acc23[QR_MAX_TOKENS];
    QR_EACH_TOKEN(t, nt) acc01[t] = acc23[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const block_q6_K *blk[QR_ROWS];
        QR_UNROLL for (int r = 0; r < QR_ROWS; r++) blk[r] = (const block_q6_K *)w[r] + b;
        __m512 h = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_setr_epi16((short)blk[0]->d, (short)blk[1]->d,
                                                                       (short)blk[2]->d, (short)blk[3]->d, 0, 0, 0, 0)));
        const __m512 wd01 = _mm512_permutexvar_ps(didx01, h), wd23 = _mm512_permutexvar_ps(didx23, h);
        __m512i L[QR_MAX_TOKENS][QR_ROWS];
        QR_UNROLL for (int r = 0; r < QR_ROWS; r++) {
            const block_q6_K *k = blk[r];
            __m256i sw = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)k->scales));
            QR_EACH_TOKEN(t, nt) L[t][r] = z;
            _Pragma("GCC unroll 2") for (int hh = 0; hh < 2; hh++) {
                __m512i qa = _mm512_loadu_si512(k->ql + 64 * hh);
                __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(k->qh + 32 * hh)));
                /* (A & lo4) | B: ternary-logic table 0xEC */
                __m512i c0 = _mm512_ternarylogic_epi32(qa, _mm512_and_si512(_mm512_sllv_epi16(hb, shl), m30), lo4, 0xEC);
                __m512i c1 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(qa, 4),
                                                       _mm512_and_si512(_mm512_srlv_epi16(hb, shr), m30), lo4, 0xEC);
                __m512i s = _mm512_shuffle_epi8(
                    _mm512_broadcast_i32x4(hh ? _mm256_extracti128_si256(sw, 1) : _mm256_castsi256_si128(sw)), sidx);
                QR_EACH_TOKEN(t, nt) {
                    const qr_x6k_t *xb = &x[t][b];
                    __m512i p = qr_pair_words(_mm512_dpbusd_epi32(z, c0, _mm512_load_si512(xb->qs + 128 * hh)),
                                              _mm512_dpbusd_epi32(z, c1, _mm512_load_si512(xb->qs + 128 * hh + 64)));
                    L[t][r] = _mm512_dpwssd_epi32(L[t][r], _mm512_sub_epi16(p, _mm512_load_si512(xb->x32[hh])), s);
                }
            }
        }
        QR_EACH_TOKEN(t, nt) {
            const __m512 xd = _mm512_set1_ps(x[t][b].d);
            acc01[t] = _mm512_fmadd_ps(_mm512_mul_ps(xd, wd01), _mm512_cvtepi32_ps(qr_fold_pair(L[t][0], L[t][1])), acc01[t]);
            acc23[t] = _mm512_fmadd_ps(_mm512_mul_ps(xd, wd23), _mm512_cvtepi32_ps(qr_fold_pair(L[t][2], L[t][3])), acc23[t]);
        }
    }
    QR_EACH_TOKEN(t, nt) {
        float *o = out + t * QR_ROWS;
        o[0] = qr_hsum8(qr_half(acc01[t], 0));
        o[1] = qr_hsum8(qr_half(acc01[t], 1));
        o[2] = qr_hsum8(qr_half(acc23[t], 0));
        o[3] = qr_hsum8(qr_half(acc23[t], 1));
    }
}

/* ---- entry ---------------------------------------------------------------------- */

/* x: the prepared activation rows (qr_x4k_t, qr_x6k_t). */
typedef void (*qr_fn)(int64_t nb, const uint8_t *const *w, const void *const *x, float *out);

/* The kernels specialised on the token count, so that the per-token accumulators and
 * lane sums stay in registers. */
#define QR_FNS(NT)                                                                                      \
    static void qr_q4k_##NT(int64_t nb, const uint8_t *const *w, const void *const *x, float *out) {   \
        qr_q4k_rows(NT, nb, w, (const qr_x4k_t *const *)x, out);                                        \
    }                                                                                                   \
    static void qr_q6k_##NT(int64_t nb, const uint8_t *const *w, const void *const *x, float *out) {   \
        qr_q6k_rows(NT, nb, w, (const qr_x6k_t *const *)x, out);                                      \
    }
QR_FNS(1)
QR_FNS(2)
QR_FNS(3)
QR_FNS(4)

/* Passes i0 .. i0 + np - 1 of four streams q rows apart (pass i: rows i, q + i, 2q + i,
 * 3q + i of w), then, with tail > 0, rows 4q .. 4q + tail - 1 in one more pass (the
 * missing rows repeated, their results dropped). */
static int qr_passes(int type, int64_t n, const void *w, size_t row_bytes, int64_t q, int64_t i0, int64_t np, int tail,
                     const void *xq, size_t xq_stride, int nt, float *y, size_t ldy) {
    static const qr_fn q4[QR_MAX_TOKENS] = {qr_q4k_1, qr_q4k_2, qr_q4k_3, qr_q4k_4};
    static const qr_fn q6[QR_MAX_TOKENS] = {qr_q6k_1, qr_q6k_2, qr_q6k_3, qr_q6k_4};
    int64_t nb = n / QUANT_QK_K;
    const qr_fn *fns;
    switch (type) {
    case GGML_TYPE_Q4_K: fns = q4; break;
    case GGML_TYPE_Q6_K: fns = q6; break;
    default: return -1;
    }
    if (nt < 1 || nt > QR_MAX_TOKENS || nb > QR_MAX_NB) return -1;
    qr_fn fn = fns[nt - 1];
    const void *x[QR_MAX_TOKENS];
    /* the prepared activations, on the stack: 112 KiB */
    union {
        qr_x4k_t q4[QR_MAX_TOKENS * QR_MAX_NB];
        qr_x6k_t q6[QR_MAX_TOKENS * QR_MAX_NB];
    } prep;
    for (int t = 0; t < nt; t++) {
        const block_q8_K *xt = (const block_q8_K *)((const uint8_t *)xq + (size_t)t * xq_stride);
        if (type == GGML_TYPE_Q4_K)
            qr_prep_q4k(nb, xt, prep.q4 + t * QR_MAX_NB), x[t] = prep.q4 + t * QR_MAX_NB;
        else
            qr_prep_q6k(nb, xt, prep.q6 + t * QR_MAX_NB), x[t] = prep.q6 + t * QR_MAX_NB;
    }
    float out[QR_MAX_TOKENS * QR_ROWS];
    const uint8_t *rows[QR_ROWS];
    for (int64_t i = i0; i < i0 + np; i++) {
        for (int r = 0; r < QR_ROWS; r++) rows[r] = (const uint8_t *)w + (size_t)(r * q + i) * row_bytes;
        fn(nb, rows, x, out);
        for (int t = 0; t < nt; t++)
            for (int r = 0; r < QR_ROWS; r++) y[(size_t)t * ldy + r * q + i] = out[t * QR_ROWS + r];
    }
    if (tail > 0) {
        int64_t r0 = QR_ROWS * q;
        for (int r = 0; r < QR_ROWS; r++) rows[r] = (const uint8_t *)w + (size_t)(r0 + (r < tail ? r : tail - 1)) * row_bytes;
        fn(nb, rows, x, out);
        for (int t = 0; t < nt; t++) memcpy(y + (size_t)t * ldy + r0, out + t * QR_ROWS, sizeof(float) * (size_t)tail);
    }
    return 0;
}

int quant_rows_avx512(int type, int64_t n, const void *w, size_t row_bytes, int nr, const void *xq, size_t xq_stride,
                      int nt, float *y, size_t ldy) {
    /* four streams, each through a quarter of the rows in order; the rest in one pass */
    int q = nr / QR_ROWS;
    return qr_passes(type, n, w, row_bytes, q, 0, q, nr - QR_ROWS * q, xq, xq_stride, nt, y, ldy);
}

int quant_streams_avx512(int type, int64_t n, const void *w, size_t row_bytes, int64_t q, int64_t i0, int64_t np,
                         const void *xq, size_t xq_stride, int nt, float *y, size_t ldy) {
    return qr_passes(type, n, w, row_bytes, q, i0, np, 0, xq, xq_stride, nt, y, ldy);
}
