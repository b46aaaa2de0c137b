/* quant_k.h — the K-quant formats (Q4_K, Q5_K, Q6_K, Q8_K): scalar reference routines.
 * Internal to src/engine: callers go through quant.h, which checks types and lengths. */
#ifndef TOLLGATE_ENGINE_QUANT_K_H
#define TOLLGATE_ENGINE_QUANT_K_H

#include <stdint.h>

#include "engine/quant_blocks.h"

/* nb super-blocks of 256 elements each. x and y never alias. */
void quant_k_quantize_q4_K(const float *x, block_q4_K *y, int64_t nb);
void quant_k_quantize_q5_K(const float *x, block_q5_K *y, int64_t nb);
void quant_k_quantize_q6_K(const float *x, block_q6_K *y, int64_t nb);
void quant_k_quantize_q8_K(const float *x, block_q8_K *y, int64_t nb);

void quant_k_dequantize_q4_K(const block_q4_K *x, float *y, int64_t nb);
void quant_k_dequantize_q5_K(const block_q5_K *x, float *y, int64_t nb);
void quant_k_dequantize_q6_K(const block_q6_K *x, float *y, int64_t nb);
void quant_k_dequantize_q8_K(const block_q8_K *x, float *y, int64_t nb);

/* dot(w, x) over nb super-blocks; x is the Q8_K quantization of the activations. */
float quant_k_vec_dot_q4_K(int64_t nb, const block_q4_K *w, const block_q8_K *x);
float quant_k_vec_dot_q5_K(int64_t nb, const block_q5_K *w, const block_q8_K *x);
float quant_k_vec_dot_q6_K(int64_t nb, const block_q6_K *w, const block_q8_K *x);

#endif
