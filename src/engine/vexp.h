/* vexp.h — the reference's vectorised exp, one float at a time (softmax and SiLU share it). */
#ifndef TOLLGATE_ENGINE_VEXP_H
#define TOLLGATE_ENGINE_VEXP_H

#include <math.h>

/* exp as the reference's vectorised kernels compute it (ggml_v_expf: a degree-5 polynomial
 * on a Cody-Waite reduced argument, with FMAs); softmax and SiLU use it, and matching its
 * last bit matters for the same reason as the matvec order (see matvec.h). */
static inline float v_expf(float x) {
    const float r = 0x1.8p23f;
    float z = fmaf(x, 0x1.715476p+0f, r);
    float n = z - r;
    float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    float u = b * b;
    float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                   u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    return ldexpf(j, (int)n);
}

#endif
