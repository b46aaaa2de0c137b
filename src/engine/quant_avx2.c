/* quant_avx2.c — the x86 kernels of quant_x86.h built for AVX2 + FMA + F16C (byte products with vpmaddubsw). */
#define QX_VNNI 0
#define QX_NAME(f) f##_avx2
#include "engine/quant_x86.h"

const quant_kernels_t quant_avx2_kernels = {"avx2", dot_avx2, quantize_act_avx2, dot_tile_avx2, NULL};
