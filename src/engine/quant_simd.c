/* quant_simd.c — chooses the kernel set once from cpuid; the scalar set wraps the reference routines. */
#include "engine/quant_simd.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "engine/matvec.h"
#include "engine/quant.h"

/* The scalar tile: one definition dot per (row, activation row). */
static void scalar_dot_tile(int type, int64_t n, const void *w, size_t row_bytes, int nr, const void *xq,
                            size_t xq_stride, int nt, float *y, size_t ldy, int prompt) {
    for (int t = 0; t < nt; t++) {
        const void *x = (const uint8_t *)xq + (size_t)t * xq_stride;
        for (int r = 0; r < nr; r++)
            y[(size_t)t * ldy + r] = matvec_dot(type, n, (const uint8_t *)w + (size_t)r * row_bytes, x, prompt);
    }
}

static const quant_kernels_t scalar_kernels = {"scalar", matvec_dot, quant_quantize_row_act, scalar_dot_tile, NULL};

static int cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    /* F16C from cpuid leaf 1 directly: clang 14 (Debian's, used by `make fuzz`) does not
     * know "f16c" as a __builtin_cpu_supports feature. */
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
    return 0;
#endif
}

static int cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

const quant_kernels_t *quant_kernels_named(const char *name) {
    if (!name) return NULL;
    if (!strcmp(name, "scalar")) return &scalar_kernels;
#if defined(__x86_64__) || defined(__i386__)
    if (!strcmp(name, "avx2")) return cpu_has_avx2() ? &quant_avx2_kernels : NULL;
    if (!strcmp(name, "avx512")) return cpu_has_avx512() ? &quant_avx512_kernels : NULL;
#endif
    return NULL;
}

/* The dispatch table: written once under pthread_once, read-only afterwards. */
static const quant_kernels_t *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    const char *cap = getenv("TOLLGATE_KERNELS");
    const char *order[] = {"avx512", "avx2", "scalar"};
    int start = 0;
    if (cap && !strcmp(cap, "avx2")) start = 1;
    if (cap && !strcmp(cap, "scalar")) start = 2;
    for (int i = start; i < 3 && !chosen; i++) chosen = quant_kernels_named(order[i]);
}

const quant_kernels_t *quant_kernels(void) {
    pthread_once(&chosen_once, choose);
    return chosen;
}
