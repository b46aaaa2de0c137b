/* membw_avx512.c — read kernels for membw: four 512-bit (or 256-bit) load streams a quarter of the buffer apart, xor-folded, no stores. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "bench/membw.h"

/* The xor of n 64-bit words of a register (unsigned: a signed sum of arbitrary words
 * can overflow). */
static unsigned long long fold64(const void *reg, int n) {
    uint64_t w[8], x = 0;
    memcpy(w, reg, sizeof(uint64_t) * (size_t)n);
    for (int i = 0; i < n; i++) x ^= w[i];
    return x;
}

/* Four streams per thread, each through its own quarter of the buffer: on the 2-core
 * EPYC VM one stream per thread reads 33 GB/s with 2 threads, four 59-61, eight 54
 * (2026-11-28, alternated), and the decode kernels, which read four streams per
 * thread, reach 52-61. One stream under-read the machine by nearly half. */
unsigned long long membw_sum_avx512(const void *p, size_t bytes) {
    const __m512i *v = p;
    size_t q = bytes / 64 / 4;
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i < q; i++) {
        a = _mm512_xor_si512(a, _mm512_load_si512(v + i));
        b = _mm512_xor_si512(b, _mm512_load_si512(v + q + i));
        c = _mm512_xor_si512(c, _mm512_load_si512(v + 2 * q + i));
        d = _mm512_xor_si512(d, _mm512_load_si512(v + 3 * q + i));
    }
    a = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d));
    return fold64(&a, 8);
}

unsigned long long membw_sum_avx2(const void *p, size_t bytes) {
    const __m256i *v = p;
    size_t q = bytes / 32 / 4;
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i < q; i++) {
        a = _mm256_xor_si256(a, _mm256_load_si256(v + i));
        b = _mm256_xor_si256(b, _mm256_load_si256(v + q + i));
        c = _mm256_xor_si256(c, _mm256_load_si256(v + 2 * q + i));
        d = _mm256_xor_si256(d, _mm256_load_si256(v + 3 * q + i));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return fold64(&a, 4);
}
