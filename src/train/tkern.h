/* tkern.h — the matrix products of training (forward and both backward products), with
 * a scalar definition and an AVX-512 version behind runtime dispatch. */
#ifndef TOLLGATE_TRAIN_TKERN_H
#define TOLLGATE_TRAIN_TKERN_H

/* out (N, O) = in (N, I) · W (O, I)^T. */
void tk_matmul(float *out, const float *in, const float *W, int N, int I, int O);
/* Backward of tk_matmul given dout (N, O): dinp (N, I) += dout · W, dW (O, I) += dout^T · in.
 * Either of dinp, dW may be NULL (not needed). */
void tk_matmul_bwd(float *dinp, float *dW, const float *dout, const float *in, const float *W,
                   int N, int I, int O);

/* The scalar definitions (tests compare the dispatched versions against these). */
void tk_matmul_ref(float *out, const float *in, const float *W, int N, int I, int O);
void tk_matmul_bwd_ref(float *dinp, float *dW, const float *dout, const float *in, const float *W,
                       int N, int I, int O);

/* AVX-512 versions (tkern_avx512.c); only for I % 16 == 0, only on CPUs that have it. */
void tk_matmul_avx512(float *out, const float *in, const float *W, int N, int I, int O);
void tk_matmul_bwd_avx512(float *dinp, float *dW, const float *dout, const float *in,
                          const float *W, int N, int I, int O);

#endif
