/* quant_simd.h — the runtime CPU dispatch of the vec-dot and activation kernels (scalar, AVX2, AVX-512 VNNI). */
#ifndef TOLLGATE_ENGINE_QUANT_SIMD_H
#define TOLLGATE_ENGINE_QUANT_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* One set of kernels. Every entry gives the same float, bit for bit, as the scalar
 * definitions: dot = matvec_dot (matvec.c), quantize_act = quant_quantize_row_act. */
typedef struct quant_kernels {
    const char *name; /* "scalar", "avx2", "avx512" */
    /* dot of one weight row of `type` (n columns) with xq in quant_vec_dot_type(type);
     * prompt selects the F16 order, as in matvec_dot */
    float (*dot)(int type, int64_t n, const void *w, const void *xq, int prompt);
    /* as quant_quantize_row_act: 0, or -1 */
    int (*quantize_act)(int type, const float *x, void *xq, int64_t n);
    /* a tile of dots: y[t * ldy + r] = dot(type, n, w + r * row_bytes, xq + t * xq_stride,
     * prompt) for r < nr, t < nt, each bit for bit as dot; the kernel may read a weight
     * block once for several activation rows (quant_tile.h) */
    void (*dot_tile)(int type, int64_t n, const void *w, size_t row_bytes, int nr, const void *xq,
                     size_t xq_stride, int nt, float *y, size_t ldy, int prompt);
    /* passes i0 .. i0 + np - 1 of four streams of weight rows q rows apart (decode rows,
     * prompt 0): y[t * ldy + s * q + i] = dot(type, n, w + (s * q + i) * row_bytes,
     * xq + t * xq_stride, 0) for s < 4, i0 <= i < i0 + np, t < nt, each bit for bit as
     * dot (quant_tile.h: quant_streams_avx512). 0, or -1 when the set has no such kernel
     * for type and nt (nothing written); NULL in a set that has none. */
    int (*dot_streams)(int type, int64_t n, const void *w, size_t row_bytes, int64_t q, int64_t i0, int64_t np,
                       const void *xq, size_t xq_stride, int nt, float *y, size_t ldy);
} quant_kernels_t;

/* The best set this CPU runs, chosen on the first call from cpuid (thread-safe; the
 * choice is written once and never changes). TOLLGATE_KERNELS=scalar|avx2|avx512 in
 * the environment caps the choice (for comparisons). */
const quant_kernels_t *quant_kernels(void);

/* A named set ("scalar", "avx2", "avx512"), or NULL when unknown or when this CPU
 * lacks the instructions. For tests and benchmarks. */
const quant_kernels_t *quant_kernels_named(const char *name);

/* The ISA files' tables (call only when the CPU supports them). */
extern const quant_kernels_t quant_avx2_kernels;
extern const quant_kernels_t quant_avx512_kernels;

#endif
