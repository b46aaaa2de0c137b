/* quant.c — tensor element types: F32, F16, Q8_0, Q4_0 and the dispatch over all types. */
#include "engine/quant.h"

#include <math.h>
#include <string.h>

#include "engine/quant_blocks.h"
#include "engine/quant_k.h"

/* ---- IEEE binary16 <-> binary32 ------------------------------------------------ */

float quant_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    float f;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24 is exact in float */
        f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or NaN keeping its payload */
    else
        bits = sign | ((exp + 112) << 23) | (mant << 13); /* rebias 15 -> 127 */
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to nearest, ties to even, as the F16C instruction does (the reference's
 * conversion), so that scales stored in blocks are bit-identical. */
uint16_t quant_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) /* inf or NaN (a NaN stays a NaN: force a mantissa bit) */
        return sign | 0x7c00 | (x > 0x7f800000u ? 0x200 | ((x >> 13) & 0x3ff) : 0);
    if (x >= 0x477ff000u) /* >= 65520 rounds to infinity */
        return sign | 0x7c00;
    if (x < 0x38800000u) { /* below 2^-14: a half subnormal, in units of 2^-24 */
        float a;
        memcpy(&a, &x, sizeof a);
        return sign | (uint16_t)lrintf(a * 0x1p24f); /* exact scaling; lrintf rounds to even */
    }
    /* normal: add just under half an ulp plus the ulp's parity (ties to even); a
     * carry out of the mantissa correctly bumps the exponent */
    x += 0xfffu + ((x >> 13) & 1);
    return sign | (uint16_t)((x - 0x38000000u) >> 13);
}

/* ---- block sizes ---------------------------------------------------------------- */

static int block_elems(int type) {
    switch (type) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
        return 1;
    case GGML_TYPE_Q8_0:
        return QUANT_QK8_0;
    case GGML_TYPE_Q4_0:
        return QUANT_QK4_0;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K:
    case GGML_TYPE_Q8_K:
        return QUANT_QK_K;
    default:
        return 0;
    }
}

int quant_supported(int type) { return block_elems(type) != 0; }

int quant_vec_dot_type(int type) {
    switch (type) {
    case GGML_TYPE_F32:
        return GGML_TYPE_F32;
    case GGML_TYPE_F16:
        return GGML_TYPE_F16;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
        return GGML_TYPE_Q8_0;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K:
        return GGML_TYPE_Q8_K;
    default:
        return -1;
    }
}

/* ---- Q8_0 ----------------------------------------------------------------------- */

/* Clamp-then-convert: the float is rounded already; clamping first keeps the
 * conversion defined for any input (inf, NaN give a bounded, meaningless quant). */
static int clamp_to_int(float v, int lo, int hi) {
    if (!(v >= (float)lo))
        return lo;
    if (v > (float)hi)
        return hi;
    return (int)v;
}

static void quantize_q8_0(const float *x, block_q8_0 *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += QUANT_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QUANT_QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        /* absmax maps to +-127; the scale is the f32 value, rounded only on store */
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = quant_f32_to_f16(d);
        for (int j = 0; j < QUANT_QK8_0; j++)
            y[b].qs[j] = (int8_t)clamp_to_int(roundf(x[j] * id), -127, 127);
    }
}

/* The reference engine's x86 activation path (what produced the reference outputs):
 * the multiplier is 127/amax rather than 1/(amax/127), which can differ by an ulp,
 * and rounding is to nearest-even (a vector round), not half away from zero. */
static void quantize_q8_0_act(const float *x, block_q8_0 *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += QUANT_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QUANT_QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[b].d = quant_f32_to_f16(d);
        for (int j = 0; j < QUANT_QK8_0; j++)
            y[b].qs[j] = (int8_t)clamp_to_int(rintf(x[j] * id), -128, 127);
    }
}

static void dequantize_q8_0(const block_q8_0 *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++) {
        float d = quant_f16_to_f32(x[b].d);
        for (int j = 0; j < QUANT_QK8_0; j++)
            *y++ = d * (float)x[b].qs[j];
    }
}

/* Integer products within a block, one float multiply per block by both scales. */
static float vec_dot_q8_0_q8_0(int64_t nb, const block_q8_0 *w, const block_q8_0 *x) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int j = 0; j < QUANT_QK8_0; j++)
            isum += (int32_t)w[b].qs[j] * (int32_t)x[b].qs[j];
        sum += (float)isum * (quant_f16_to_f32(w[b].d) * quant_f16_to_f32(x[b].d));
    }
    return sum;
}

/* ---- Q4_0 ----------------------------------------------------------------------- */

static void quantize_q4_0(const float *x, block_q4_0 *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += QUANT_QK4_0) {
        /* the signed value of largest magnitude maps to -8, the one code with no
         * positive twin, so the full range -8..7 is used on the side that needs it */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QUANT_QK4_0; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = quant_f32_to_f16(d);
        for (int j = 0; j < QUANT_QK4_0 / 2; j++) {
            /* +8.5 then truncation: round half up into the unsigned code 0..15 */
            int lo = clamp_to_int(x[j] * id + 8.5f, 0, 15);
            int hi = clamp_to_int(x[j + QUANT_QK4_0 / 2] * id + 8.5f, 0, 15);
            y[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void dequantize_q4_0(const block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, y += QUANT_QK4_0) {
        float d = quant_f16_to_f32(x[b].d);
        for (int j = 0; j < QUANT_QK4_0 / 2; j++) {
            y[j] = d * (float)((x[b].qs[j] & 15) - 8);
            y[j + QUANT_QK4_0 / 2] = d * (float)((x[b].qs[j] >> 4) - 8);
        }
    }
}

static float vec_dot_q4_0_q8_0(int64_t nb, const block_q4_0 *w, const block_q8_0 *x) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int j = 0; j < QUANT_QK4_0 / 2; j++) {
            isum += ((w[b].qs[j] & 15) - 8) * (int32_t)x[b].qs[j];
            isum += ((w[b].qs[j] >> 4) - 8) * (int32_t)x[b].qs[j + QUANT_QK4_0 / 2];
        }
        sum += (float)isum * (quant_f16_to_f32(w[b].d) * quant_f16_to_f32(x[b].d));
    }
    return sum;
}

/* ---- F32 / F16 dot products ----------------------------------------------------- */

/* 16 float partial sums, as a 512-bit SIMD kernel keeps them: the reference's F16
 * and F32 dots accumulate in float lanes, and this matches its rounding more closely
 * (and is more accurate) than one serial sum. */
#define DOT_LANES 16

static float reduce_lanes(float *acc) {
    for (int w = DOT_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

static float vec_dot_f32(int64_t n, const float *w, const float *x) {
    float acc[DOT_LANES] = {0};
    for (int64_t i = 0; i < n; i++)
        acc[i % DOT_LANES] += w[i] * x[i];
    return reduce_lanes(acc);
}

static float vec_dot_f16(int64_t n, const uint16_t *w, const uint16_t *x) {
    float acc[DOT_LANES] = {0};
    for (int64_t i = 0; i < n; i++)
        acc[i % DOT_LANES] += quant_f16_to_f32(w[i]) * quant_f16_to_f32(x[i]);
    return reduce_lanes(acc);
}

/* ---- dispatch ------------------------------------------------------------------- */

void quant_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    int be = block_elems(type);
    if (!be || n <= 0 || n % be)
        return;
    int64_t nb = n / be;
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = quant_f16_to_f32(((const uint16_t *)src)[i]);
        break;
    case GGML_TYPE_Q8_0:
        dequantize_q8_0(src, dst, nb);
        break;
    case GGML_TYPE_Q4_0:
        dequantize_q4_0(src, dst, nb);
        break;
    case GGML_TYPE_Q4_K:
        quant_k_dequantize_q4_K(src, dst, nb);
        break;
    case GGML_TYPE_Q5_K:
        quant_k_dequantize_q5_K(src, dst, nb);
        break;
    case GGML_TYPE_Q6_K:
        quant_k_dequantize_q6_K(src, dst, nb);
        break;
    case GGML_TYPE_Q8_K:
        quant_k_dequantize_q8_K(src, dst, nb);
        break;
    }
}

int quant_quantize_row(int type, const float *src, void *dst, int64_t n) {
    int be = block_elems(type);
    if (!be || n < 0 || n % be)
        return -1;
    int64_t nb = n / be;
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = quant_f32_to_f16(src[i]);
        return 0;
    case GGML_TYPE_Q8_0:
        quantize_q8_0(src, dst, nb);
        return 0;
    case GGML_TYPE_Q4_0:
        quantize_q4_0(src, dst, nb);
        return 0;
    case GGML_TYPE_Q4_K:
        quant_k_quantize_q4_K(src, dst, nb);
        return 0;
    case GGML_TYPE_Q5_K:
        quant_k_quantize_q5_K(src, dst, nb);
        return 0;
    case GGML_TYPE_Q6_K:
        quant_k_quantize_q6_K(src, dst, nb);
        return 0;
    case GGML_TYPE_Q8_K:
        quant_k_quantize_q8_K(src, dst, nb);
        return 0;
    }
    return -1;
}

int quant_quantize_row_act(int type, const float *src, void *dst, int64_t n) {
    if (type != GGML_TYPE_Q8_0)
        return quant_quantize_row(type, src, dst, n);
    if (n < 0 || n % QUANT_QK8_0)
        return -1;
    quantize_q8_0_act(src, dst, n / QUANT_QK8_0);
    return 0;
}

float quant_vec_dot(int type, int64_t n, const void *w, const void *x) {
    int be = block_elems(type);
    if (!be || n < 0 || n % be || quant_vec_dot_type(type) < 0)
        return NAN;
    int64_t nb = n / be;
    switch (type) {
    case GGML_TYPE_F32:
        return vec_dot_f32(n, w, x);
    case GGML_TYPE_F16:
        return vec_dot_f16(n, w, x);
    case GGML_TYPE_Q8_0:
        return vec_dot_q8_0_q8_0(nb, w, x);
    case GGML_TYPE_Q4_0:
        return vec_dot_q4_0_q8_0(nb, w, x);
    case GGML_TYPE_Q4_K:
        return quant_k_vec_dot_q4_K(nb, w, x);
    case GGML_TYPE_Q5_K:
        return quant_k_vec_dot_q5_K(nb, w, x);
    case GGML_TYPE_Q6_K:
        return quant_k_vec_dot_q6_K(nb, w, x);
    }
    return NAN;
}
