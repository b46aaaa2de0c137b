/* ops.c — the scalar definitions of the element-wise kernels (ops.h) and the run-time choice of a set. */
#include "engine/ops.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "engine/quant.h"
#include "engine/quant_simd.h"
#include "engine/vexp.h"

static float silu(float x) { return x / (1.0f + v_expf(-x)); }

static void silu_mul_scalar(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) gate[i] = silu(gate[i]) * up[i];
}

static void to_f16_scalar(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = quant_f32_to_f16(src[i]);
}

static void add_scalar(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += x[i];
}

static const ops_kernels_t scalar_kernels = {"scalar", silu_mul_scalar, to_f16_scalar, add_scalar};

const ops_kernels_t *ops_kernels_named(const char *name) {
    if (!name) return NULL;
    if (!strcmp(name, "scalar")) return &scalar_kernels;
#if defined(__x86_64__) || defined(__i386__)
    /* the avx2 set needs AVX2 + FMA + F16C, which the weight kernels' avx2 set checks */
    if ((!strcmp(name, "avx2") || !strcmp(name, "avx512")) && quant_kernels_named("avx2")) return &ops_avx2_kernels;
#endif
    return NULL;
}

/* Written once under pthread_once, read-only afterwards (cpuid is slow under some
 * hypervisors, so it is not asked per call). */
static const ops_kernels_t *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    chosen = ops_kernels_named(quant_kernels()->name);
    if (!chosen) chosen = &scalar_kernels;
}

const ops_kernels_t *ops_kernels(void) {
    pthread_once(&chosen_once, choose);
    return chosen;
}
