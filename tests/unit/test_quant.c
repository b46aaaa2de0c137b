/* test_quant.c — tensor types: f16 conversion, hand-built blocks, round trips, dot products. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"

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
    test_roundtrip();
    test_vec_dot();
    test_api_errors();
    return check_summary("test_quant");
}
