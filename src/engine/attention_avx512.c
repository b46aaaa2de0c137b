/* attention_avx512.c — the heads of one KV group (attention_x86.h) with AVX-512: output dims 16 at a time, 16 accumulators per pass. */
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

#include "engine/attention_x86.h"
