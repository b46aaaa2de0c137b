/* quant.h — tensor element types: scalar reference (de)quantization and dot products.
 * The *_ref routines here are the definition; SIMD versions (issue 8) are tested against them. */
#ifndef TOLLGATE_ENGINE_QUANT_H
#define TOLLGATE_ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "model/gguf.h"

/* Types this engine computes with: F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K
 * (+ Q8_K as an activation type). 1 if supported. */
int quant_supported(int type);

/* n must be a multiple of the type's block size. */
void quant_dequantize_row(int type, const void *src, float *dst, int64_t n);
/* Reference quantizer (round-to-nearest with the format's scale search). 0, or -1
 * if the type cannot be written. */
int quant_quantize_row(int type, const float *src, void *dst, int64_t n);
/* Activation quantizer, for the row converted before quant_vec_dot: as the reference
 * engine's x86 path converts activations. Differs from quant_quantize_row only for
 * Q8_0 (scale 127/absmax and ties to even there, 1/d and ties away in the file
 * quantizer: about 4 quants in a million come out different). 0, or -1. */
int quant_quantize_row_act(int type, const float *src, void *dst, int64_t n);

/* The type activations are converted to before a dot product with weights of
 * `type`, as the reference engine does (Q8_0 for Q4_0/Q8_0, Q8_K for K-quants,
 * F16 for F16, F32 for F32). */
int quant_vec_dot_type(int type);
/* dot(w, x) over n elements: w a row of `type`, x a row of quant_vec_dot_type(type). */
float quant_vec_dot(int type, int64_t n, const void *w, const void *x);

/* IEEE half <-> float. */
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);

#endif
