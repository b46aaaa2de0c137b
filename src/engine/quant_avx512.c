/* quant_avx512.c — the x86 kernels of quant_x86.h built for AVX-512 (F, BW, VL, DQ) with VNNI (vpdpbusd). */
#define QX_VNNI 1
#define QX_NAME(f) f##_avx512
#include "engine/quant_x86.h"

const quant_kernels_t quant_avx512_kernels = {"avx512", dot_avx512, quantize_act_avx512, dot_tile_avx512,
                                               quant_streams_avx512};
