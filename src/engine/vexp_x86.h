/* vexp_x86.h — v_expf (vexp.h) on 8 float lanes with AVX2 + FMA, bit-exact per lane; shared by attention's softmax and the element-wise ops' SiLU. */
#ifndef TOLLGATE_ENGINE_VEXP_X86_H
#define TOLLGATE_ENGINE_VEXP_X86_H

/* Include only from files built with the AVX2 flags (*_avx2.c, *_avx512.c). */
#include <immintrin.h>
#include <math.h>

/* v_expf (vexp.h) on 8 lanes: the same FMAs and products per lane; ldexpf(j, n) is the
 * correctly rounded j * 2^n, which one float product with 2^n gives while 2^n is a normal
 * float, and a product in double rounded once to float gives in any case. */
static inline __m256 vx_exp8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f), sign = _mm256_set1_ps(-0.0f);
    __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    __m256 n = _mm256_sub_ps(z, r);
    __m256 nn = _mm256_xor_ps(n, sign);
    __m256 b = _mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.7f7d1cp-20f),
                               _mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.62e4p-1f), x));
    __m256 u = _mm256_mul_ps(b, b);
    __m256 p5 = _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f));
    __m256 p3 = _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f));
    __m256 p1 = _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f));
    __m256 j = _mm256_fmadd_ps(_mm256_fmadd_ps(p5, u, p3), u, p1);
    __m256 an = _mm256_andnot_ps(sign, n);
    __m256i ni = _mm256_cvttps_epi32(n);
    __m256 res;
    if (!_mm256_movemask_ps(_mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ))) {
        __m256i e = _mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23);
        res = _mm256_mul_ps(j, _mm256_castsi256_ps(e));
    } else {
        const __m256i bias = _mm256_set1_epi64x(1023);
        __m256d e0 = _mm256_castsi256_pd(
            _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(ni)), bias), 52));
        __m256d e1 = _mm256_castsi256_pd(
            _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(ni, 1)), bias), 52));
        __m128 r0 = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(j)), e0));
        __m128 r1 = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(j, 1)), e1));
        res = _mm256_set_m128(r1, r0);
    }
    /* |n| > 192: 0 below, infinity above */
    __m256 big = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    __m256 sat = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(),
                                  _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
    return _mm256_blendv_ps(res, sat, big);
}

#endif
