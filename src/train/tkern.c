/* tkern.c — scalar matrix products for training and the runtime dispatch to AVX-512. */
#include "train/tkern.h"

#include <stddef.h>

static int have_avx512(void) {
    /* cached by the compiler runtime; cheap to ask every call */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

void tk_matmul_ref(float *out, const float *in, const float *W, int N, int I, int O) {
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * I;
        for (int o = 0; o < O; o++) {
            const float *w = W + (size_t)o * I;
            /* eight partial sums: independent chains, so the loop is not latency bound */
            float acc[8] = {0};
            int i = 0;
            for (; i + 8 <= I; i += 8)
                for (int l = 0; l < 8; l++) acc[l] += x[i + l] * w[i + l];
            float s =
                ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            for (; i < I; i++) s += x[i] * w[i];
            out[(size_t)n * O + o] = s;
        }
    }
}

void tk_matmul_bwd_ref(float *dinp, float *dW, const float *dout, const float *in, const float *W,
                       int N, int I, int O) {
    for (int n = 0; n < N && dinp; n++) {
        float *dx = dinp + (size_t)n * I;
        for (int o = 0; o < O; o++) {
            float d = dout[(size_t)n * O + o];
            const float *w = W + (size_t)o * I;
            for (int i = 0; i < I; i++) dx[i] += d * w[i];
        }
    }
    for (int o = 0; o < O && dW; o++) {
        float *dw = dW + (size_t)o * I;
        for (int n = 0; n < N; n++) {
            float d = dout[(size_t)n * O + o];
            const float *x = in + (size_t)n * I;
            for (int i = 0; i < I; i++) dw[i] += d * x[i];
        }
    }
}

void tk_matmul(float *out, const float *in, const float *W, int N, int I, int O) {
    if (I % 16 == 0 && have_avx512())
        tk_matmul_avx512(out, in, W, N, I, O);
    else
        tk_matmul_ref(out, in, W, N, I, O);
}

void tk_matmul_bwd(float *dinp, float *dW, const float *dout, const float *in, const float *W,
                   int N, int I, int O) {
    if (I % 16 == 0 && have_avx512())
        tk_matmul_bwd_avx512(dinp, dW, dout, in, W, N, I, O);
    else
        tk_matmul_bwd_ref(dinp, dW, dout, in, W, N, I, O);
}
