/* test_quant.c — tensor types: f16 conversion, hand-built blocks, round trips, dot products. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "model/gguf.h"

/* ---- deterministic test data ---------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng_t;

static uint32_t rng_u32(rng_t *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 32);
}

static float rng_uniform(rng_t *r) { return (float)(rng_u32(r) >> 8) * 0x1p-24f; }

/* Roughly normal (sum of 4 uniforms), with an occasional outlier as real weights have. */
static float rng_weight(rng_t *r) {
    float v = rng_uniform(r) + rng_uniform(r) + rng_uniform(r) + rng_uniform(r) - 2.0f;
    if (rng_u32(r) % 97 == 0)
        v *= 4.0f;
    return v;
}

static void fill(rng_t *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_weight(r) * scale;
}

static const char *type_name(int type) {
    switch (type) {
    case GGML_TYPE_F32: return "F32";
    case GGML_TYPE_F16: return "F16";
    case GGML_TYPE_Q8_0: return "Q8_0";
    case GGML_TYPE_Q4_0: return "Q4_0";
    case GGML_TYPE_Q4_K: return "Q4_K";
    case GGML_TYPE_Q5_K: return "Q5_K";
    case GGML_TYPE_Q6_K: return "Q6_K";
    case GGML_TYPE_Q8_K: return "Q8_K";
    }
    return "?";
}

/* sqrt(mean (a-b)^2) / sqrt(mean a^2) */
static double rel_rmse(const float *a, const float *b, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)a[i] * a[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* ---- f16 ------------------------------------------------------------------------ */

static uint16_t h_of(float f) { return quant_f32_to_f16(f); }

static void test_f16(void) {
    /* every half survives half -> float -> half */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            bad += (h & 0x7c00) != 0x7c00 || (h & 0x3ff) == 0;
            continue;
        }
        bad += quant_f32_to_f16(f) != h;
    }
    CHECK_EQ_INT(bad, 0);

    CHECK_EQ_INT(h_of(1.0f), 0x3c00);
    CHECK_EQ_INT(h_of(-2.0f), 0xc000);
    CHECK_EQ_INT(h_of(0.5f), 0x3800);
    CHECK_EQ_INT(h_of(-0.0f), 0x8000);
    CHECK_EQ_INT(h_of(65504.0f), 0x7bff);
    CHECK_EQ_INT(h_of(65519.0f), 0x7bff);   /* below the midpoint to 65536 */
    CHECK_EQ_INT(h_of(65520.0f), 0x7c00);   /* midpoint: ties to even = infinity */
    CHECK_EQ_INT(h_of(1e6f), 0x7c00);
    CHECK_EQ_INT(h_of(-INFINITY), 0xfc00);
    CHECK(isnan(quant_f16_to_f32(h_of(NAN))));
    CHECK_EQ_INT(h_of(0x1p-24f), 0x0001);   /* smallest subnormal */
    CHECK_EQ_INT(h_of(0x1p-25f), 0x0000);   /* half of it: tie to even (0) */
    CHECK_EQ_INT(h_of(0x1.8p-24f), 0x0002); /* 1.5 ulp: tie to even (2) */
    CHECK_EQ_INT(h_of(0x1p-14f), 0x0400);   /* smallest normal */
    CHECK_EQ_INT(h_of(0x1.ffcp-15f), 0x0400); /* largest subnormal + half ulp rounds up */
    CHECK_EQ_INT(h_of(1.0f + 0x1p-11f), 0x3c00);       /* tie, even stays */
    CHECK_EQ_INT(h_of(1.0f + 3 * 0x1p-11f), 0x3c02);   /* tie, odd goes up */
    CHECK_EQ_INT(h_of(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01); /* just above the tie */
    CHECK_EQ_INT(h_of(0x1.ffep0f), 0x4000); /* mantissa carry bumps the exponent */
    CHECK(quant_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(quant_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(quant_f16_to_f32(0x3555) == 0x1.554p-2f);
    CHECK(isinf(quant_f16_to_f32(0x7c00)));

#ifdef __FLT16_MAX__
    /* against the compiler's own conversion over random float bit patterns */
    rng_t r = {0x9e3779b97f4a7c15ull};
    bad = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = rng_u32(&r);
        float f;
        memcpy(&f, &u, sizeof f);
        if (isnan(f))
            continue;
        _Float16 v = (_Float16)f;
        uint16_t hb;
        memcpy(&hb, &v, sizeof hb);
        bad += hb != quant_f32_to_f16(f);
    }
    CHECK_EQ_INT(bad, 0);
#endif
}

/* ---- hand-built blocks ---------------------------------------------------------- */

static void test_hand_q4_0(void) {
    block_q4_0 b;
    b.d = 0x3800; /* 0.5 */
    for (int j = 0; j < 16; j++)
        b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    quant_dequantize_row(GGML_TYPE_Q4_0, &b, y, 32);
    int bad = 0;
    for (int j = 0; j < 16; j++) {
        bad += y[j] != (j - 8) * 0.5f;
        bad += y[j + 16] != ((15 - j) - 8) * 0.5f;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(y[0] == -4.0f && y[15] == 3.5f && y[16] == 3.5f && y[31] == -4.0f);

    /* dot with a Q8_0 block of ones (d = 2): 2 * 0.5 * sum(q - 8) */
    block_q8_0 a;
    a.d = 0x4000;
    for (int j = 0; j < 32; j++)
        a.qs[j] = 1;
    /* sum(q - 8) is -8 for each half (0..15 and 15..0): 2 * 0.5 * -16 */
    CHECK(quant_vec_dot(GGML_TYPE_Q4_0, 32, &b, &a) == -16.0f);

    /* the absmax scheme: the value of largest magnitude maps to code 0 (-8) */
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16) / 4.0f; /* -4 .. 3.75 */
    block_q4_0 q;
    CHECK_EQ_INT(quant_quantize_row(GGML_TYPE_Q4_0, x, &q, 32), 0);
    CHECK_EQ_INT(q.d, 0x3800);       /* -4 / -8 = 0.5 */
    CHECK_EQ_INT(q.qs[0] & 15, 0);   /* x = -4 -> -8 */
    CHECK_EQ_INT(q.qs[0] >> 4, 8);   /* x[16] = 0 -> 0 */
    CHECK_EQ_INT(q.qs[15] >> 4, 15); /* x[31] = 3.75 -> 7.5 rounds up, clamps to 7 */
}

static void test_hand_q8_0(void) {
    block_q8_0 b;
    b.d = 0x3400; /* 0.25 */
    for (int j = 0; j < 32; j++)
        b.qs[j] = (int8_t)(j * 8 - 128);
    float y[32];
    quant_dequantize_row(GGML_TYPE_Q8_0, &b, y, 32);
    int bad = 0;
    for (int j = 0; j < 32; j++)
        bad += y[j] != (j * 8 - 128) * 0.25f;
    CHECK_EQ_INT(bad, 0);

    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16) * 0.125f; /* absmax 2 -> d = 2/127 */
    CHECK_EQ_INT(quant_quantize_row(GGML_TYPE_Q8_0, x, &b, 32), 0);
    CHECK_EQ_INT(b.d, quant_f32_to_f16(2.0f / 127.0f));
    CHECK_EQ_INT(b.qs[0], -127);
    CHECK_EQ_INT(b.qs[16], 0);
    CHECK_EQ_INT(b.qs[24], 64); /* 1.0 * 63.5 rounds half away from zero */

    /* Q8_0 x Q8_0: integer sum times both scales */
    block_q8_0 a;
    a.d = 0x4000; /* 2 */
    for (int j = 0; j < 32; j++)
        a.qs[j] = (int8_t)(j % 3 - 1);
    int32_t isum = 0;
    for (int j = 0; j < 32; j++)
        isum += b.qs[j] * a.qs[j];
    float want = (float)isum * (quant_f16_to_f32(b.d) * 2.0f);
    CHECK(quant_vec_dot(GGML_TYPE_Q8_0, 32, &b, &a) == want);
}


/* Sub-block scales and mins used by the hand-built Q4_K/Q5_K blocks, and their
 * packing worked out by hand from the layout (quant_blocks.h): scales[0..3] hold
 * sc[0..3] plus the top 2 bits of sc[4..7] in bits 6-7; scales[4..7] the same for
 * the mins; scales[8..11] the low nibbles of sc[4..7] | m[4..7] << 4. */
static const int hand_sc[8] = {1, 2, 3, 4, 17, 33, 63, 5};
static const int hand_m[8] = {0, 1, 2, 3, 16, 40, 47, 6};
static const uint8_t hand_scales[12] = {
    1 | 1 << 6, 2 | 2 << 6, 3 | 3 << 6, 4 | 0 << 6, /* sc0..3, sc4..7 >> 4 = 1,2,3,0 */
    0 | 1 << 6, 1 | 2 << 6, 2 | 2 << 6, 3 | 0 << 6, /* m0..3,  m4..7 >> 4 = 1,2,2,0 */
    0x01, 0x81, 0xff, 0x65,                         /* (17,16) (33,40) (63,47) (5,6) */
};

static void test_hand_q4_K(void) {
    block_q4_K b;
    b.d = 0x3c00;    /* 1.0 */
    b.dmin = 0x3800; /* 0.5 */
    memcpy(b.scales, hand_scales, 12);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b.qs[32 * c + l] = (uint8_t)((l % 16) | ((15 - l % 16) << 4));
    float y[256];
    quant_dequantize_row(GGML_TYPE_Q4_K, &b, y, 256);
    int bad = 0;
    for (int e = 0; e < 256; e++) {
        int r = e % 64, s = e / 32;
        int q = r < 32 ? r % 16 : 15 - (r - 32) % 16;
        bad += y[e] != (float)(hand_sc[s] * q) - 0.5f * (float)hand_m[s];
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(y[0] == 0.0f);                      /* sc 1, q 0, m 0 */
    CHECK(y[224] == 5.0f * 15 - 3.0f);        /* sub-block 7 (sc 5, m 6): high nibble of qs[96] */
    CHECK(y[255] == 5.0f * 0 - 3.0f);         /* high nibble of qs[127]: 15 - 15 */
    CHECK(y[240] == 5.0f * 15 - 3.0f);        /* high nibble of qs[112]: 15 - 0 */
    CHECK(y[6 * 32 + 5] == 63.0f * 5 - 23.5f); /* sub-block 6: sc 63, m 47 */

    /* dot with Q8_K activations of ones (d = 0.25): sum over elements of y * 0.25,
     * computed by the kernel through the bsums for the mins */
    block_q8_K a;
    a.d = 0.25f;
    for (int j = 0; j < 256; j++)
        a.qs[j] = 1;
    for (int g = 0; g < 16; g++)
        a.bsums[g] = 16;
    double want = 0;
    for (int e = 0; e < 256; e++)
        want += y[e] * 0.25;
    CHECK_NEAR(quant_vec_dot(GGML_TYPE_Q4_K, 256, &b, &a), want, 1e-3);
    /* the mins really come from bsums: a kernel that recomputed them would not see this */
    a.bsums[0] = 0;
    a.bsums[1] = 0;
    CHECK_NEAR(quant_vec_dot(GGML_TYPE_Q4_K, 256, &b, &a), want, 1e-3); /* m[0] = 0 */
    a.bsums[2] = 0;
    CHECK_NEAR(quant_vec_dot(GGML_TYPE_Q4_K, 256, &b, &a), want + 0.25 * 0.5 * 1 * 16, 1e-3);
}

static void test_hand_q5_K(void) {
    block_q5_K b;
    b.d = 0x3800;    /* 0.5 */
    b.dmin = 0x3c00; /* 1.0 */
    memcpy(b.scales, hand_scales, 12);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b.qs[32 * c + l] = (uint8_t)((l % 16) | ((15 - l % 16) << 4));
    for (int l = 0; l < 32; l++)
        b.qh[l] = (uint8_t)(l * 37 + 11);
    float y[256];
    quant_dequantize_row(GGML_TYPE_Q5_K, &b, y, 256);
    int bad = 0;
    for (int e = 0; e < 256; e++) {
        int c = e / 64, r = e % 64, s = e / 32;
        int lo = r < 32 ? r % 16 : 15 - (r - 32) % 16;
        int hi = (b.qh[r % 32] >> (2 * c + (r >= 32))) & 1; /* bit 2c: low half, 2c+1: high */
        bad += y[e] != 0.5f * (float)(hand_sc[s] * (lo + 16 * hi)) - (float)hand_m[s];
    }
    CHECK_EQ_INT(bad, 0);
    /* element 32 + 1: chunk 0, high nibble 14, qh[1] = 48 = 0b00110000 -> bit 1 = 0 */
    CHECK(y[33] == 0.5f * 2 * 14 - 1.0f);
    /* element 192 + 40: chunk 3, high half, qh[8] = 51 = 0b00110011: bit 7 = 0 */
    CHECK(y[232] == 0.5f * 5 * (15 - 8) - 6.0f);
    /* element 128 + 0: chunk 2 low half, qh[0] = 11 = 0b00001011: bit 4 = 0; element
     * 64 + 1: chunk 1 low half, qh[1] = 48: bit 2 = 0; element 128 + 1: bit 4 = 1 */
    CHECK(y[129] == 0.5f * 17 * (1 + 16) - 16.0f);
}

static void test_hand_q6_K(void) {
    block_q6_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3400; /* 0.25 */
    for (int g = 0; g < 16; g++)
        b.scales[g] = (int8_t)(g - 8);
    /* all codes 0 -> every element is -32 * d * scale of its group of 16 */
    float y[256];
    quant_dequantize_row(GGML_TYPE_Q6_K, &b, y, 256);
    int bad = 0;
    for (int e = 0; e < 256; e++)
        bad += y[e] != -32 * 0.25f * (float)(e / 16 - 8);
    CHECK_EQ_INT(bad, 0);
    /* one byte of ql and one of qh, decoded by hand: ql[0] = 0x21 gives element 0 low
     * bits 1 and element 64 low bits 2; qh[0] = 0b11100100 gives the top 2 bits of
     * elements 0, 32, 64, 96 as 0, 1, 2, 3 */
    b.ql[0] = 0x21;
    b.qh[0] = 0xe4;
    quant_dequantize_row(GGML_TYPE_Q6_K, &b, y, 256);
    CHECK(y[0] == 0.25f * -8 * (1 - 32));
    CHECK(y[32] == 0.25f * -6 * (16 - 32));
    CHECK(y[64] == 0.25f * -4 * (34 - 32));
    CHECK(y[96] == 0.25f * -2 * (48 - 32));
    /* second half: ql[64 + 32 + 5] high nibble is element 128 + 96 + 5, top bits in
     * qh[32 + 5] bits 6-7 */
    b.ql[64 + 32 + 5] = 0xf0;
    b.qh[32 + 5] = 0xc0;
    quant_dequantize_row(GGML_TYPE_Q6_K, &b, y, 256);
    CHECK(y[229] == 0.25f * (229 / 16 - 8) * (63 - 32));
    CHECK(y[128 + 32 + 5] == 0.25f * ((128 + 32 + 5) / 16 - 8) * -32); /* low nibble 0 */

    /* dot against Q8_K: the -32 offset must be applied per element */
    block_q8_K a;
    a.d = 0.5f;
    for (int j = 0; j < 256; j++)
        a.qs[j] = (int8_t)(j % 7 - 3);
    for (int g = 0; g < 16; g++) {
        int sum = 0;
        for (int l = 0; l < 16; l++)
            sum += a.qs[16 * g + l];
        a.bsums[g] = (int16_t)sum;
    }
    double want = 0;
    for (int e = 0; e < 256; e++)
        want += (double)y[e] * 0.5 * a.qs[e];
    CHECK_NEAR(quant_vec_dot(GGML_TYPE_Q6_K, 256, &b, &a), want, 1e-4);
}

static void test_hand_q8_K(void) {
    float x[512];
    for (int j = 0; j < 256; j++)
        x[j] = (float)(j % 255 - 127); /* x[0] = -127 is the signed max: scale 1 exactly */
    for (int j = 256; j < 512; j++)
        x[j] = (float)((j * 29) % 101 - 50) * 0.01f;
    x[300] = 2.54f; /* positive max: maps to -127 through a negative scale */
    block_q8_K q[2];
    CHECK_EQ_INT(quant_quantize_row(GGML_TYPE_Q8_K, x, q, 512), 0);
    CHECK(q[0].d == 1.0f);
    int bad = 0;
    for (int j = 0; j < 256; j++)
        bad += q[0].qs[j] != (int)x[j];
    CHECK_EQ_INT(bad, 0);
    CHECK_NEAR(q[1].d, -2.54f / 127, 1e-9);
    CHECK_EQ_INT(q[1].qs[300 - 256], -127);
    bad = 0;
    for (int b = 0; b < 2; b++)
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += q[b].qs[16 * g + l];
            bad += q[b].bsums[g] != sum;
        }
    CHECK_EQ_INT(bad, 0);
    float y[512];
    quant_dequantize_row(GGML_TYPE_Q8_K, q, y, 512);
    bad = 0;
    for (int j = 0; j < 512; j++)
        bad += fabsf(y[j] - x[j]) > fabsf(j < 256 ? 0.0f : q[1].d) * 0.5001f;
    CHECK_EQ_INT(bad, 0);
}

/* ---- random round trips and dot products ---------------------------------------- */

/* Relative RMSE after quantize + dequantize of weight-like data, per type. The
 * bounds sit ~20% above the measured values (printed), so a regression in a
 * scale search or a packing bug fails. */
static const struct {
    int type;
    double bound;
} roundtrip_bounds[] = {
    {GGML_TYPE_F16, 0.0003},  {GGML_TYPE_Q8_0, 0.0078}, {GGML_TYPE_Q8_K, 0.0145},
    {GGML_TYPE_Q6_K, 0.025},  {GGML_TYPE_Q5_K, 0.047},  {GGML_TYPE_Q4_K, 0.092},
    {GGML_TYPE_Q4_0, 0.124},
};

static void test_roundtrip(void) {
    enum { N = 256 * 64 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    void *q = malloc(N * 4);
    rng_t r = {12345};
    fill(&r, x, N, 0.02f);
    for (size_t t = 0; t < sizeof roundtrip_bounds / sizeof roundtrip_bounds[0]; t++) {
        int type = roundtrip_bounds[t].type;
        CHECK(quant_supported(type));
        memset(y, 0, N * sizeof *y);
        CHECK_EQ_INT(quant_quantize_row(type, x, q, N), 0);
        quant_dequantize_row(type, q, y, N);
        double e = rel_rmse(x, y, N);
        printf("roundtrip %-5s relative RMSE %.5f (bound %.4f)\n", type_name(type), e,
               roundtrip_bounds[t].bound);
        CHECK_MSG(e <= roundtrip_bounds[t].bound, "%s rmse %g", type_name(type), e);
        /* the fit must not be worse than a trivial one: far below the signal itself */
        CHECK(e > 0 || type == GGML_TYPE_F32);
    }

    /* per-element bounds of the absmax types: Q8_0 within half a step (plus the f16
     * rounding of d), Q4_0 within one step (the positive end clamps at 7) */
    quant_quantize_row(GGML_TYPE_Q8_0, x, q, N);
    quant_dequantize_row(GGML_TYPE_Q8_0, q, y, N);
    int bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float d = quant_f16_to_f32(((block_q8_0 *)q)[b].d);
        for (int j = 0; j < 32; j++)
            bad += fabsf(x[32 * b + j] - y[32 * b + j]) > d * (0.5f + 127 * 0x1p-11f) + 1e-12f;
    }
    CHECK_EQ_INT(bad, 0);
    quant_quantize_row(GGML_TYPE_Q4_0, x, q, N);
    quant_dequantize_row(GGML_TYPE_Q4_0, q, y, N);
    bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float d = fabsf(quant_f16_to_f32(((block_q4_0 *)q)[b].d));
        for (int j = 0; j < 32; j++)
            bad += fabsf(x[32 * b + j] - y[32 * b + j]) > d * (1.0f + 8 * 0x1p-10f) + 1e-12f;
    }
    CHECK_EQ_INT(bad, 0);

    /* all-zero input: zero blocks, no NaN from a 0/0 scale */
    memset(x, 0, N * sizeof *x);
    for (size_t t = 0; t < sizeof roundtrip_bounds / sizeof roundtrip_bounds[0]; t++) {
        int type = roundtrip_bounds[t].type;
        quant_quantize_row(type, x, q, 512);
        for (int i = 0; i < 512; i++)
            y[i] = 1.0f;
        quant_dequantize_row(type, q, y, 512);
        int nz = 0;
        for (int i = 0; i < 512; i++)
            nz += y[i] != 0.0f;
        CHECK_MSG(nz == 0, "%s: %d nonzero", type_name(type), nz);
    }
    /* a group with one value and the rest zero, and a constant positive group */
    for (int i = 0; i < 256; i++)
        x[i] = i == 77 ? -3.0f : 0.0f;
    for (int i = 256; i < 512; i++)
        x[i] = 0.75f;
    int ktypes[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q8_K};
    for (int t = 0; t < 4; t++) {
        quant_quantize_row(ktypes[t], x, q, 512);
        quant_dequantize_row(ktypes[t], q, y, 512);
        CHECK_MSG(rel_rmse(x, y, 512) < 0.01, "%s sparse/constant: %g", type_name(ktypes[t]),
                  rel_rmse(x, y, 512));
    }
    free(x);
    free(y);
    free(q);
}

/* quant_vec_dot equals the float dot of the dequantized operands: the integer
 * inner products and per-block float scaling lose nothing beyond float rounding. */
static void test_vec_dot(void) {
    enum { N = 256 * 8 };
    int types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
                   GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    float *w = malloc(N * sizeof *w), *x = malloc(N * sizeof *x);
    float *wd = malloc(N * sizeof *wd), *xd = malloc(N * sizeof *xd);
    void *wq = malloc(N * 4), *xq = malloc(N * 4);
    rng_t r = {777};
    for (int round = 0; round < 20; round++) {
        fill(&r, w, N, 0.05f);
        fill(&r, x, N, 3.0f);
        if (round % 5 == 4) /* activations with a few huge channels, as real ones have */
            for (int i = 0; i < N; i += 97)
                x[i] *= 30.0f;
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            int wt = types[t], xt = quant_vec_dot_type(wt);
            quant_quantize_row(wt, w, wq, N);
            quant_quantize_row(xt, x, xq, N);
            quant_dequantize_row(wt, wq, wd, N);
            quant_dequantize_row(xt, xq, xd, N);
            double want = 0, mag = 0, exact = 0, emag = 0;
            for (int i = 0; i < N; i++) {
                want += (double)wd[i] * xd[i];
                mag += fabs((double)wd[i] * xd[i]);
                exact += (double)w[i] * x[i];
                emag += fabs((double)w[i] * x[i]);
            }
            double got = quant_vec_dot(wt, N, wq, xq);
            CHECK_MSG(fabs(got - want) <= 2e-6 * mag, "%s round %d: %.9g vs %.9g (mag %g)",
                      type_name(wt), round, got, want, mag);
            /* and it approximates the unquantized dot (loosely: 4-bit weights) */
            CHECK_MSG(fabs(got - exact) <= 0.05 * emag, "%s round %d: %.6g vs exact %.6g",
                      type_name(wt), round, got, exact);
        }
    }
    free(w);
    free(x);
    free(wd);
    free(xd);
    free(wq);
    free(xq);
}

/* ---- real tensors from the reference model files -------------------------------- */

static const char *ref_file(const char *name, char *buf, size_t cap) {
    const char *root = getenv("TOLLGATE_REF");
    snprintf(buf, cap, "%s/models/%s", root && *root ? root : "../shared/ref", name);
    return buf;
}

/* The whole tensor as floats (caller frees), or NULL. */
static float *tensor_floats(const gguf_tensor_t *t, int64_t *n_out) {
    int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *x = malloc((size_t)n * sizeof *x);
    if (!x || !quant_supported((int)t->type)) {
        free(x);
        return NULL;
    }
    quant_dequantize_row((int)t->type, t->data, x, n);
    *n_out = n;
    return x;
}

/* Relative RMSE bounds of a tensor quantized by the reference, against the F16
 * file's same tensor (both come from the same original weights). Measured, the
 * largest over tensors: Q8_0 0.0054, Q6_K 0.0178, Q4_K 0.0716, Q4_0 0.0864 — the
 * same as for Gaussian data, which these random weights are. */
static double file_bound(int type) {
    switch (type) {
    case GGML_TYPE_Q8_0: return 0.0060;
    case GGML_TYPE_Q6_K: return 0.0200;
    case GGML_TYPE_Q5_K: return 0.042; /* phi3's fused attn_qkv: 0.0366 vs its Q8_0 */
    case GGML_TYPE_Q4_K: return 0.080;
    case GGML_TYPE_Q4_0: return 0.096;
    }
    return 0;
}

/* Every quantized tensor of the llama reference files dequantizes to the F16 file's
 * values within its type's bound (a layout error would give errors near 1); our
 * quantizer applied to the F16 values does about as well as the reference's. */
static void test_ref_files(void) {
    char path[1024], err[256], name[128];
    gguf_file_t f16;
    if (gguf_open(ref_file("llama-tiny-F16.gguf", path, sizeof path), &f16, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    const char *files[] = {"llama-tiny-Q8_0.gguf", "llama-tiny-Q4_0.gguf",
                           "llama-tiny-Q4_K_M.gguf", "llama-tiny-Q6_K.gguf"};
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        gguf_file_t q;
        if (gguf_open(ref_file(files[fi], path, sizeof path), &q, err, sizeof err)) {
            CHECK_MSG(0, "%s", err);
            continue;
        }
        int n_checked = 0;
        double worst[GGML_TYPE_COUNT] = {0}, worst_ours[GGML_TYPE_COUNT] = {0};
        for (uint64_t i = 0; i < q.n_tensors; i++) {
            const gguf_tensor_t *t = &q.tensors[i];
            gguf_str_copy(t->name, name, sizeof name);
            const gguf_tensor_t *s = gguf_find_tensor(&f16, name);
            CHECK_MSG(s != NULL, "%s missing from the F16 file", name);
            CHECK_MSG(quant_supported((int)t->type), "%s: type %u", name, t->type);
            if (!s || !quant_supported((int)t->type))
                continue;
            int64_t n = 0, ns = 0;
            float *x = tensor_floats(s, &ns), *y = tensor_floats(t, &n);
            CHECK(x && y && n == ns);
            if (!x || !y || n != ns) {
                free(x);
                free(y);
                continue;
            }
            double e = rel_rmse(x, y, n);
            if (t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16) {
                CHECK_MSG(e == 0, "%s %s: %g", files[fi], name, e); /* copied, not re-rounded */
            } else {
                CHECK_MSG(e <= file_bound((int)t->type), "%s %s: rmse %g", files[fi], name, e);
                if (e > worst[t->type])
                    worst[t->type] = e;
                /* ours, row by row as the quantizer writes them, on up to 4096 rows
                 * (the 32000-row embeddings take seconds otherwise) */
                int64_t rows = n / t->ne[0] < 4096 ? n / t->ne[0] : 4096, m = rows * t->ne[0];
                size_t rb = t->size / (size_t)(n / t->ne[0]);
                uint8_t *buf = malloc(rb * (size_t)rows);
                float *z = malloc((size_t)m * sizeof *z);
                for (int64_t r = 0; r < rows; r++)
                    quant_quantize_row((int)t->type, x + r * t->ne[0], buf + r * rb, t->ne[0]);
                quant_dequantize_row((int)t->type, buf, z, m);
                double eo = rel_rmse(x, z, m), er = rel_rmse(x, y, m);
                CHECK_MSG(eo <= er * 1.01, "%s %s: ours %g vs reference %g", files[fi], name, eo, er);
                if (eo > worst_ours[t->type])
                    worst_ours[t->type] = eo;
                free(buf);
                free(z);
            }
            n_checked++;
            free(x);
            free(y);
        }
        CHECK_EQ_INT(n_checked, (int)q.n_tensors);
        for (int ty = 0; ty < GGML_TYPE_COUNT; ty++)
            if (worst[ty] > 0)
                printf("%s: %-5s worst relative RMSE vs F16: reference %.5f, ours %.5f\n",
                       files[fi], type_name(ty), worst[ty], worst_ours[ty]);
        gguf_close(&q);
    }
    gguf_close(&f16);

    /* phi3: no F16 file; its Q4_K_M and Q8_0 files hold the same weights */
    gguf_file_t a, b;
    if (gguf_open(ref_file("phi3-tiny-Q4_K_M.gguf", path, sizeof path), &a, err, sizeof err) ||
        gguf_open(ref_file("phi3-tiny-Q8_0.gguf", path, sizeof path), &b, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    int n_checked = 0, n_q5 = 0;
    for (uint64_t i = 0; i < a.n_tensors; i++) {
        const gguf_tensor_t *t = &a.tensors[i];
        gguf_str_copy(t->name, name, sizeof name);
        const gguf_tensor_t *s = gguf_find_tensor(&b, name);
        int64_t n = 0, ns = 0;
        float *x = s ? tensor_floats(s, &ns) : NULL, *y = tensor_floats(t, &n);
        if (x && y && n == ns) {
            double e = rel_rmse(x, y, n);
            /* 4/6-bit error plus the 8-bit file's own */
            CHECK_MSG(e <= file_bound((int)t->type) + file_bound((int)s->type),
                      "phi3 %s: %g", name, e);
            if (t->type == GGML_TYPE_Q5_K) {
                /* the only Q5_K the reference wrote: ours, from the Q8_0 values, is no
                 * further from them than the reference's (which also carries the 8-bit
                 * file's own error) */
                uint8_t *buf = malloc(t->size);
                float *z = malloc((size_t)n * sizeof *z);
                size_t rb = t->size / (size_t)(n / t->ne[0]);
                for (int64_t r = 0; r < n / t->ne[0]; r++)
                    quant_quantize_row(GGML_TYPE_Q5_K, x + r * t->ne[0], buf + r * rb, t->ne[0]);
                quant_dequantize_row(GGML_TYPE_Q5_K, buf, z, n);
                double eo = rel_rmse(x, z, n);
                printf("phi3 %s Q5_K relative RMSE vs Q8_0: reference %.5f, ours %.5f\n", name,
                       e, eo);
                CHECK_MSG(eo <= e, "phi3 %s: ours %g vs reference %g", name, eo, e);
                n_q5++;
                free(buf);
                free(z);
            }
            n_checked++;
        }
        free(x);
        free(y);
    }
    CHECK_EQ_INT(n_checked, (int)a.n_tensors);
    CHECK_EQ_INT(n_q5, 2); /* one fused attn_qkv per layer */
    gguf_close(&a);
    gguf_close(&b);
}

/* The activation quantizer: Q8_0 as the reference engine's x86 path (127/amax, ties to
 * even); every other type exactly as quant_quantize_row. */
static void test_act_quantizer(void) {
    float x[64];
    for (int j = 0; j < 64; j++)
        x[j] = 0.0f;
    x[0] = 127.0f; /* amax 127: multiplier exactly 1, so the ties below are exact */
    x[1] = 0.5f;
    x[2] = 1.5f;
    x[3] = -2.5f;
    x[4] = 3.49f;
    block_q8_0 act[2], file[2];
    CHECK_EQ_INT(quant_quantize_row_act(GGML_TYPE_Q8_0, x, act, 64), 0);
    CHECK_EQ_INT(quant_quantize_row(GGML_TYPE_Q8_0, x, file, 64), 0);
    CHECK_EQ_INT(act[0].qs[0], 127);
    CHECK_EQ_INT(act[0].qs[1], 0);  /* ties to even */
    CHECK_EQ_INT(act[0].qs[2], 2);
    CHECK_EQ_INT(act[0].qs[3], -2);
    CHECK_EQ_INT(act[0].qs[4], 3);
    CHECK_EQ_INT(file[0].qs[1], 1); /* ties away from zero */
    CHECK_EQ_INT(file[0].qs[3], -3);
    CHECK_EQ_INT(act[0].d, file[0].d);
    CHECK_EQ_INT(act[1].d, 0); /* all-zero block */
    CHECK_EQ_INT(quant_quantize_row_act(GGML_TYPE_Q8_0, x, act, 33), -1);

    /* random rows: every quant is round-to-even of x * (127 / amax), the formula the
     * reference's vector code evaluates */
    enum { N = 32 * 512 };
    float *r = malloc(N * sizeof *r);
    block_q8_0 *q = malloc(N / 32 * sizeof *q);
    rng_t g = {99};
    fill(&g, r, N, 1.0f);
    quant_quantize_row_act(GGML_TYPE_Q8_0, r, q, N);
    int bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(r[32 * b + j]));
        float id = 127.0f / amax;
        for (int j = 0; j < 32; j++)
            bad += q[b].qs[j] != (int)nearbyintf(r[32 * b + j] * id);
        bad += q[b].d != quant_f32_to_f16(amax / 127.0f);
    }
    CHECK_EQ_INT(bad, 0);

    /* the multiplier is 127/amax, not 1/(amax/127): find a block where the two round
     * a value differently and check which one was used */
    int found = 0;
    for (int k = 1; k < 20000 && !found; k++) {
        float amax = 1.0f + (float)k * 1e-4f, id1 = 127.0f / amax, id2 = 1.0f / (amax / 127.0f);
        if (id1 == id2)
            continue;
        for (int m = 0; m < 126 && !found; m++) {
            float x0 = ((float)m + 0.5f) / id1;
            float cand[3] = {nextafterf(x0, 0.0f), x0, nextafterf(x0, 200.0f)};
            for (int c = 0; c < 3 && !found; c++) {
                if (rintf(cand[c] * id1) == rintf(cand[c] * id2))
                    continue;
                float blk[32] = {amax, cand[c]};
                block_q8_0 one;
                quant_quantize_row_act(GGML_TYPE_Q8_0, blk, &one, 32);
                CHECK_EQ_INT(one.qs[1], (int)rintf(cand[c] * id1));
                found = 1;
            }
        }
    }
    CHECK(found);

    /* other types: byte-identical to quant_quantize_row */
    int types[] = {GGML_TYPE_F16, GGML_TYPE_F32, GGML_TYPE_Q8_K};
    uint8_t *a = malloc(N * 4), *b = malloc(N * 4);
    for (int t = 0; t < 3; t++) {
        size_t bytes = types[t] == GGML_TYPE_F32 ? N * 4 : types[t] == GGML_TYPE_F16 ? N * 2
                                                                                    : N / 256 * sizeof(block_q8_K);
        CHECK_EQ_INT(quant_quantize_row_act(types[t], r, a, N), 0);
        CHECK_EQ_INT(quant_quantize_row(types[t], r, b, N), 0);
        CHECK(memcmp(a, b, bytes) == 0);
    }
    free(a);
    free(b);
    free(r);
    free(q);
}

static void test_api_errors(void) {
    float x[64] = {0}, y[64];
    unsigned char q[512];
    CHECK_EQ_INT(quant_quantize_row(GGML_TYPE_Q8_0, x, q, 31), -1);   /* not whole blocks */
    CHECK_EQ_INT(quant_quantize_row(GGML_TYPE_Q4_K, x, q, 64), -1);
    CHECK_EQ_INT(quant_quantize_row(GGML_TYPE_Q4_1, x, q, 32), -1);   /* unsupported */
    CHECK_EQ_INT(quant_quantize_row(GGML_TYPE_F16, x, q, 3), 0);      /* any length */
    CHECK(!quant_supported(GGML_TYPE_Q4_1));
    CHECK(!quant_supported(GGML_TYPE_BF16));
    CHECK(!quant_supported(-1));
    CHECK(quant_supported(GGML_TYPE_Q6_K));
    CHECK_EQ_INT(quant_vec_dot_type(GGML_TYPE_Q4_0), GGML_TYPE_Q8_0);
    CHECK_EQ_INT(quant_vec_dot_type(GGML_TYPE_Q8_0), GGML_TYPE_Q8_0);
    CHECK_EQ_INT(quant_vec_dot_type(GGML_TYPE_Q4_K), GGML_TYPE_Q8_K);
    CHECK_EQ_INT(quant_vec_dot_type(GGML_TYPE_Q5_K), GGML_TYPE_Q8_K);
    CHECK_EQ_INT(quant_vec_dot_type(GGML_TYPE_Q6_K), GGML_TYPE_Q8_K);
    CHECK_EQ_INT(quant_vec_dot_type(GGML_TYPE_F16), GGML_TYPE_F16);
    CHECK_EQ_INT(quant_vec_dot_type(GGML_TYPE_F32), GGML_TYPE_F32);
    CHECK(quant_vec_dot_type(GGML_TYPE_Q8_K) < 0); /* an activation type, not a weight */
    CHECK(isnan(quant_vec_dot(GGML_TYPE_Q8_0, 33, q, q)));
    CHECK(isnan(quant_vec_dot(GGML_TYPE_Q4_1, 32, q, q)));
    /* dequantize of a bad length leaves the output alone */
    y[0] = 42.0f;
    quant_dequantize_row(GGML_TYPE_Q4_0, q, y, 31);
    CHECK(y[0] == 42.0f);
}

int main(void) {
    test_f16();
    test_hand_q4_0();
    test_hand_q8_0();
    test_hand_q4_K();
    test_hand_q5_K();
    test_hand_q6_K();
    test_hand_q8_K();
    test_roundtrip();
    test_vec_dot();
    test_api_errors();
    test_act_quantizer();
    test_ref_files();
    return check_summary("test_quant");
}
