/* quant_blocks.h — the on-disk block layouts of the GGUF tensor types (types only). */
#ifndef TOLLGATE_ENGINE_QUANT_BLOCKS_H
#define TOLLGATE_ENGINE_QUANT_BLOCKS_H

#include <stdint.h>

/* Elements per block: 32 for the "legacy" types, 256 for the K-quant super-blocks. */
#define QUANT_QK8_0 32
#define QUANT_QK4_0 32
#define QUANT_QK_K 256
/* Bytes holding the eight 6-bit (scale, min) pairs of a Q4_K/Q5_K super-block. */
#define QUANT_K_SCALE_SIZE 12

/* All fields are bytes or 16-bit halves, so the structs have no padding and the
 * layouts below are exactly the file's; the asserts guard that. Halves are stored
 * as raw IEEE binary16 bits (uint16_t), converted with quant_f16_to_f32. */

/* Q8_0: x[i] = d * qs[i]. */
typedef struct block_q8_0 {
    uint16_t d;                /* scale, f16 */
    int8_t qs[QUANT_QK8_0];    /* quants */
} block_q8_0;

/* Q4_0: x[j] = d * ((qs[j] & 15) - 8), x[j + 16] = d * ((qs[j] >> 4) - 8), j < 16. */
typedef struct block_q4_0 {
    uint16_t d;                   /* scale, f16 */
    uint8_t qs[QUANT_QK4_0 / 2];  /* nibbles: low half = elements 0..15, high = 16..31 */
} block_q4_0;

/* Q4_K: 8 sub-blocks of 32; x = d * sc[s] * q - dmin * m[s], q in 0..15. Within each
 * 64-element chunk c, qs[32c + l] holds element 64c + l (low nibble) and 64c + 32 + l
 * (high nibble). scales[12] packs the 6-bit sc[8] and m[8]: for s < 4, sc in
 * scales[s] & 63 and m in scales[s + 4] & 63; for s >= 4, the low 4 bits sit in the
 * nibbles of scales[s + 4] (sc low, m high) and the top 2 bits in bits 6..7 of
 * scales[s - 4] (sc) and scales[s] (m). */
typedef struct block_q4_K {
    uint16_t d;                            /* scale of the sub-block scales, f16 */
    uint16_t dmin;                         /* scale of the sub-block mins, f16 */
    uint8_t scales[QUANT_K_SCALE_SIZE];    /* 6-bit scales and mins, packed */
    uint8_t qs[QUANT_QK_K / 2];            /* 4-bit quants */
} block_q4_K;

/* Q5_K: as Q4_K with a fifth bit per quant (q in 0..31): for chunk c, bit 2c of
 * qh[l] is the high bit of element 64c + l and bit 2c + 1 that of 64c + 32 + l. */
typedef struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[QUANT_K_SCALE_SIZE];
    uint8_t qh[QUANT_QK_K / 8];            /* high bits */
    uint8_t qs[QUANT_QK_K / 2];            /* low 4 bits */
} block_q5_K;

/* Q6_K: 16 sub-blocks of 16; x = d * scales[s] * (q - 32), q in 0..63. Per half h
 * (128 elements): ql[64h + l] holds elements l (low nibble) and l + 64 (high) and
 * ql[64h + 32 + l] elements l + 32 and l + 96; qh[32h + l] bits 0-1, 2-3, 4-5, 6-7
 * are the top 2 bits of elements l, l + 32, l + 64, l + 96 (l < 32, offsets in the half). */
typedef struct block_q6_K {
    uint8_t ql[QUANT_QK_K / 2];            /* low 4 bits */
    uint8_t qh[QUANT_QK_K / 4];            /* high 2 bits */
    int8_t scales[QUANT_QK_K / 16];        /* 8-bit sub-block scales */
    uint16_t d;                            /* super-block scale, f16 */
} block_q6_K;

/* Q8_K: the activation type of the K-quant dot products (never stored in files).
 * x = d * qs; bsums[g] = sum of qs[16g .. 16g + 15], used for the mins. */
typedef struct block_q8_K {
    float d;
    int8_t qs[QUANT_QK_K];
    int16_t bsums[QUANT_QK_K / 16];
} block_q8_K;

_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 is 34 bytes");
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 is 18 bytes");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K is 144 bytes");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K is 176 bytes");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K is 210 bytes");
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K is 292 bytes");

#endif
