/* quant_tile.h — tile kernels: several weight rows times several activation rows per call (the matmat inner kernel). */
#ifndef TOLLGATE_ENGINE_QUANT_TILE_H
#define TOLLGATE_ENGINE_QUANT_TILE_H

#include <stddef.h>
#include <stdint.h>

/* y[t * ldy + r] = dot(row r of w, activation row t) for r < nr, t < nt, each the same
 * float, bit for bit, as matvec_dot: nr weight rows of `type` (n columns) row_bytes
 * apart from w, nt activation rows in quant_vec_dot_type(type) xq_stride bytes apart
 * from xq. The AVX-512 VNNI kernels for Q4_K, Q5_K and Q6_K (quant_tile_avx512.c; call
 * only when the CPU has them): 0, or -1 for any other type (nothing written). */
int quant_tile_avx512(int type, int64_t n, const void *w, size_t row_bytes, int nr, const void *xq,
                      size_t xq_stride, int nt, float *y, size_t ldy);

/* y[t * ldy + r] = dot(row r of w, activation row t) for r < nr, t < nt <= 4 (decode
 * rows), bit for bit as matvec_dot: the AVX-512 VNNI kernels for Q4_K and Q6_K, four
 * weight rows per pass, each row's unpacked block shared by the nt tokens
 * (quant_row_avx512.c). 0, or -1 for any other type or nt (nothing written). */
int quant_rows_avx512(int type, int64_t n, const void *w, size_t row_bytes, int nr, const void *xq, size_t xq_stride,
                      int nt, float *y, size_t ldy);

/* Passes i0 .. i0 + np - 1 of four streams of weight rows q rows apart: y[t * ldy + s * q
 * + i] = dot(row s * q + i of w, activation row t) for s < 4, i0 <= i < i0 + np, t < nt
 * <= 4, bit for bit as matvec_dot; the row kernels of quant_rows_avx512, whose own four
 * streams are the quarters of its tile. A decode product hands each thread its range
 * as four streams and lets it claim passes (matvec.c), so that claims of any size
 * continue the same streams. 0, or -1 for any other type or nt (nothing written). */
int quant_streams_avx512(int type, int64_t n, const void *w, size_t row_bytes, int64_t q, int64_t i0, int64_t np,
                         const void *xq, size_t xq_stride, int nt, float *y, size_t ldy);

#endif
