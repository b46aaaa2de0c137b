/* ops_avx2.c — the element-wise kernels (ops.h) 8 floats at a time with AVX2 + FMA + F16C, bit for bit the scalar definitions in ops.c.
 *
 * Built with -ffp-contract=off: the SiLU's sum, quotient and product stay three roundings
 * as in the definition; the exp is vx_exp8, v_expf's FMAs per lane. Tails (n % 8) go
 * through the same lane code on a padded copy, so no element takes another route. */
#include <immintrin.h>
#include <string.h>

#include "engine/ops.h"
#include "engine/vexp_x86.h"

static inline __m256 silu_mul8(__m256 g, __m256 u) {
    __m256 e = vx_exp8(_mm256_xor_ps(g, _mm256_set1_ps(-0.0f))); /* v_expf(-x) */
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

static void silu_mul_avx2(float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(gate + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) {
        float g[8] = {0}, u[8] = {0};
        memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
        memcpy(u, up + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(g, silu_mul8(_mm256_loadu_ps(g), _mm256_loadu_ps(u)));
        memcpy(gate + i, g, (size_t)(n - i) * sizeof(float));
    }
}

/* F16C's conversion rounds to nearest even, saturates to infinity from 65520 on, makes
 * half subnormals, and turns a NaN into sign | 0x7e00 | its top payload bits: exactly
 * quant_f32_to_f16 (test_ops checks every float bit pattern class). */
static inline __m128i to_f16_8(__m256 x) { return _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

static void to_f16_avx2(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(dst + i), to_f16_8(_mm256_loadu_ps(src + i)));
    if (i < n) {
        float s[8] = {0};
        uint16_t d[8];
        memcpy(s, src + i, (size_t)(n - i) * sizeof(float));
        _mm_storeu_si128((__m128i *)d, to_f16_8(_mm256_loadu_ps(s)));
        memcpy(dst + i, d, (size_t)(n - i) * sizeof(uint16_t));
    }
}

static void add_avx2(float *y, const float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i]; /* one IEEE add either way */
}

const ops_kernels_t ops_avx2_kernels = {"avx2", silu_mul_avx2, to_f16_avx2, add_avx2};
