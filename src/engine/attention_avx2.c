/* attention_avx2.c — the heads of one KV group (attention_x86.h) with AVX2 + FMA + F16C: output dims 8 at a time. */
#include <immintrin.h>
#include <stdint.h>

#define AX_NAME(f) f##_avx2
#define AX_W 8 /* output dims per register */
#define AX_ACC 8 /* accumulator registers per pass (of 16) */

typedef __m256 axv_t;
static inline axv_t ax_zero(void) { return _mm256_setzero_ps(); }
static inline axv_t ax_set1(float x) { return _mm256_set1_ps(x); }
static inline axv_t ax_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void ax_store(float *p, axv_t x) { _mm256_storeu_ps(p, x); }
static inline axv_t ax_loadh(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline axv_t ax_fma(axv_t a, axv_t b, axv_t c) { return _mm256_fmadd_ps(a, b, c); }
static inline axv_t ax_add(axv_t a, axv_t b) { return _mm256_add_ps(a, b); }
static inline axv_t ax_mul(axv_t a, axv_t b) { return _mm256_mul_ps(a, b); }

/* AX_W sums in double (the single-token V product's tail) */
typedef struct axd {
    __m256d lo, hi;
} axd_t;
static inline axd_t axd_from(axv_t x) {
    return (axd_t){_mm256_cvtps_pd(_mm256_castps256_ps128(x)), _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))};
}
static inline axd_t axd_add(axd_t a, axd_t b) { return (axd_t){_mm256_add_pd(a.lo, b.lo), _mm256_add_pd(a.hi, b.hi)}; }
static inline axv_t axd_to(axd_t a) { return _mm256_set_m128(_mm256_cvtpd_ps(a.hi), _mm256_cvtpd_ps(a.lo)); }

#include "engine/attention_x86.h"
