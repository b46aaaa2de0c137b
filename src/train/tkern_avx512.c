/* tkern_avx512.c — AVX-512 matrix products for training (compiled with AVX-512 flags;
 * called only through tkern.c's runtime dispatch; I % 16 == 0). */
#include <immintrin.h>
#include <stddef.h>

#include "train/tkern.h"

/* out (N, O) = in (N, I) · W (O, I)^T: blocks of 4 rows x 2 outputs give eight
 * independent FMA chains, enough to keep both FMA ports busy. */
void tk_matmul_avx512(float *out, const float *in, const float *W, int N, int I, int O) {
    int n = 0;
    for (; n + 4 <= N; n += 4) {
        const float *x0 = in + (size_t)n * I, *x1 = x0 + I, *x2 = x1 + I, *x3 = x2 + I;
        int o = 0;
        for (; o + 2 <= O; o += 2) {
            const float *w0 = W + (size_t)o * I, *w1 = w0 + I;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
                   a30 = a00, a31 = a00;
            for (int i = 0; i < I; i += 16) {
                __m512 v0 = _mm512_loadu_ps(w0 + i), v1 = _mm512_loadu_ps(w1 + i);
                __m512 y = _mm512_loadu_ps(x0 + i);
                a00 = _mm512_fmadd_ps(y, v0, a00), a01 = _mm512_fmadd_ps(y, v1, a01);
                y = _mm512_loadu_ps(x1 + i);
                a10 = _mm512_fmadd_ps(y, v0, a10), a11 = _mm512_fmadd_ps(y, v1, a11);
                y = _mm512_loadu_ps(x2 + i);
                a20 = _mm512_fmadd_ps(y, v0, a20), a21 = _mm512_fmadd_ps(y, v1, a21);
                y = _mm512_loadu_ps(x3 + i);
                a30 = _mm512_fmadd_ps(y, v0, a30), a31 = _mm512_fmadd_ps(y, v1, a31);
            }
            float *r = out + (size_t)n * O + o;
            r[0] = _mm512_reduce_add_ps(a00), r[1] = _mm512_reduce_add_ps(a01);
            r[O] = _mm512_reduce_add_ps(a10), r[O + 1] = _mm512_reduce_add_ps(a11);
            r[2 * O] = _mm512_reduce_add_ps(a20), r[2 * O + 1] = _mm512_reduce_add_ps(a21);
            r[3 * O] = _mm512_reduce_add_ps(a30), r[3 * O + 1] = _mm512_reduce_add_ps(a31);
        }
        for (; o < O; o++) {
            const float *w0 = W + (size_t)o * I;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < I; i += 16) {
                __m512 v0 = _mm512_loadu_ps(w0 + i);
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + i), v0, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + i), v0, a1);
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x2 + i), v0, a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x3 + i), v0, a3);
            }
            float *r = out + (size_t)n * O + o;
            r[0] = _mm512_reduce_add_ps(a0), r[O] = _mm512_reduce_add_ps(a1);
            r[2 * O] = _mm512_reduce_add_ps(a2), r[3 * O] = _mm512_reduce_add_ps(a3);
        }
    }
    for (; n < N; n++) {
        const float *x = in + (size_t)n * I;
        for (int o = 0; o < O; o++) {
            const float *w = W + (size_t)o * I;
            __m512 a = _mm512_setzero_ps();
            for (int i = 0; i < I; i += 16)
                a = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(w + i), a);
            out[(size_t)n * O + o] = _mm512_reduce_add_ps(a);
        }
    }
}

/* y (I) += sum_k a[k * as] * X[k * xs .. + I): the row being accumulated stays in
 * registers (128 floats at a time) while the K rows stream past. */
static void axpy_sum(float *y, int I, const float *a, size_t as, const float *X, size_t xs, int K) {
    int i = 0;
    for (; i + 128 <= I; i += 128) {
        __m512 c[8];
        for (int j = 0; j < 8; j++) c[j] = _mm512_loadu_ps(y + i + 16 * j);
        for (int k = 0; k < K; k++) {
            float s = a[(size_t)k * as];
            if (s == 0.0f) continue; /* masked rows of dlogits are exactly zero */
            __m512 d = _mm512_set1_ps(s);
            const float *x = X + (size_t)k * xs + i;
            for (int j = 0; j < 8; j++)
                c[j] = _mm512_fmadd_ps(d, _mm512_loadu_ps(x + 16 * j), c[j]);
        }
        for (int j = 0; j < 8; j++) _mm512_storeu_ps(y + i + 16 * j, c[j]);
    }
    for (; i < I; i += 16) {
        __m512 c = _mm512_loadu_ps(y + i);
        for (int k = 0; k < K; k++)
            c = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)k * as]),
                                _mm512_loadu_ps(X + (size_t)k * xs + i), c);
        _mm512_storeu_ps(y + i, c);
    }
}

void tk_matmul_bwd_avx512(float *dinp, float *dW, const float *dout, const float *in,
                          const float *W, int N, int I, int O) {
    for (int n = 0; n < N && dinp; n++)
        axpy_sum(dinp + (size_t)n * I, I, dout + (size_t)n * O, 1, W, (size_t)I, O);
    for (int o = 0; o < O && dW; o++)
        axpy_sum(dW + (size_t)o * I, I, dout + o, (size_t)O, in, (size_t)I, N);
}
