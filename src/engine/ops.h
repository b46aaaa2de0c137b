/* ops.h — the forward pass's element-wise work (SiLU gating, the f16 KV store, residual adds) as kernel sets chosen at run time, each bit for bit the scalar definition. */
#ifndef TOLLGATE_ENGINE_OPS_H
#define TOLLGATE_ENGINE_OPS_H

#include <stdint.h>

/* One set of element-wise kernels. Every set returns the same bits as the scalar set on
 * every input (NaNs included: the f16 store keeps a NaN's sign and top payload bits as
 * quant_f32_to_f16 does). n >= 0 elements; the arrays of one call do not overlap. */
typedef struct ops_kernels {
    const char *name; /* "scalar", "avx2" */
    /* gate[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + v_expf(-x)) (vexp.h) */
    void (*silu_mul)(float *gate, const float *up, int n);
    /* dst[i] = quant_f32_to_f16(src[i]) (round to nearest even) */
    void (*to_f16)(uint16_t *dst, const float *src, int n);
    /* y[i] += x[i] */
    void (*add)(float *y, const float *x, int n);
} ops_kernels_t;

/* The set the engine uses, chosen once: the vector set when the weight kernels run one
 * (quant_kernels(), so TOLLGATE_KERNELS=scalar caps it too), else the scalar set. */
const ops_kernels_t *ops_kernels(void);
/* The set named "scalar" or "avx2" if this CPU runs it ("avx512" names the avx2 set:
 * these loops gain nothing from wider registers), else NULL. For tests. */
const ops_kernels_t *ops_kernels_named(const char *name);

/* The vector set (ops_avx2.c); call only where quant_kernels_named("avx2") is non-NULL. */
extern const ops_kernels_t ops_avx2_kernels;

#endif
