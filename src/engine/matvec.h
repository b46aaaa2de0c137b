/* matvec.h — y = W x for one activation row: the one place every weight product of the forward pass goes through. */
#ifndef TOLLGATE_ENGINE_MATVEC_H
#define TOLLGATE_ENGINE_MATVEC_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/threadpool.h"

/* Bytes of scratch matvec() needs to hold x quantized for weights of `weight_type` with
 * `cols` columns (0 for F32 weights, which use x as it is). */
size_t matvec_xq_bytes(int weight_type, int64_t cols);

/* y (W->rows) = W (rows, cols) . x (cols).
 *
 * As the reference engine does, x is first converted to quant_vec_dot_type(W->type)
 * (8-bit blocks for quantized weights, f16 for F16) into xq (matvec_xq_bytes bytes), and
 * each row is an integer/float dot product with it. The float accumulation follows the
 * reference's x86 kernels lane by lane (8 float lanes with an FMA per block for Q8_0 and
 * the K-quants, one FMA per block for Q4_0, 16 lanes for F16), so that results agree to
 * the last bit in most cases: on the random test models a one-ulp difference before an
 * 8-bit activation quantization can flip a rounding and move a log-probability by 0.1
 * nats. prompt: 1 when x is one row of a multi-token prompt. The reference runs prompts
 * through a tiled matrix kernel and single tokens through per-row dot products; they
 * agree bit for bit on the quantized types but not on F16, whose two orders are both
 * reproduced here. */
void matvec(const model_tensor_t *W, const float *x, float *y, void *xq, int prompt);

/* matvec with the rows split across the threads of pool (NULL: the caller alone), the
 * dots through the dispatched SIMD kernels (quant_simd.h: the same floats as the
 * scalar matvec). xq as for matvec. */
void matvec_mt(tpool_t *pool, const model_tensor_t *W, const float *x, float *y, void *xq, int prompt);

/* Y (T, W->rows) = X (T, W->cols) . W^T for T activation rows at once (a prompt's
 * tokens); row t of X starts at X + t * ldx, row t of Y at Y + t * ldy (floats). Each
 * row of X is converted once into xq (T * matvec_xq_bytes bytes), then each block of
 * weight rows (matmat_chunk_rows) goes to the kernel set's dot_tile with all T rows
 * (quant_simd.h: the K-quant tiles unpack a weight block once for several activation
 * rows), the blocks claimed by the pool's threads. Every Y[t] equals matvec(W, X[t])
 * bit for bit. */
void matmat(tpool_t *pool, const model_tensor_t *W, const float *X, size_t ldx, int T, float *Y,
            size_t ldy, void *xq, int prompt);

/* matmat of nw matrices with the same columns and the same input at once: Ys[m] (T,
 * Ws[m]->rows, rows ldy floats apart) = X . Ws[m]^T, each bit for bit as matmat. X is
 * converted once, and one fork-join of the pool covers the rows of all the matrices
 * (Q, K and V; gate and up): a decode step wakes the workers fewer times. Matrices
 * whose activations are converted differently go one by one. */
void matmat_multi(tpool_t *pool, const model_tensor_t *const *Ws, int nw, const float *X, size_t ldx, int T,
                  float *const *Ys, size_t ldy, void *xq, int prompt);

/* The tile of weight rows matmat hands its kernels with T activation rows on nth
 * threads (a multiple of 16): with up to 3 activation rows, one thread's range of W
 * (four streams, a quarter of it each, whose passes the threads claim: a thread goes
 * through its own range, then helps with the others'); with 4..16, chunks of up to
 * 128 rows of a thread's range; with more, tiles of up to 256 KiB of weights and 128
 * rows, at least 4 per thread, claimed in turn. */
int64_t matmat_chunk_rows(const model_tensor_t *W, int T, int nth);

/* The dot product of one row of W (type, n columns) with x already converted to the
 * vec-dot type, in the same order as matvec. */
float matvec_dot(int type, int64_t n, const void *w, const void *xq, int prompt);

#endif
