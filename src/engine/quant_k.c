/* quant_k.c — the K-quant formats: reference quantizers, dequantizers and dot products. */
#include "engine/quant_k.h"

#include <math.h>
#include <string.h>

#include "engine/quant.h"

/* Below this a group's magnitude counts as zero: the group is stored as all zeros
 * rather than dividing by a vanishing scale. */
#define GROUP_EPS 1e-15f

/* Round to nearest, ties to even (lrintf in the default rounding mode), as the
 * reference's quantizers round; inputs are bounded by the callers' scaling. */
static int nearest(float v) { return (int)lrintf(v); }

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- scale searches ------------------------------------------------------------- */

/* Asymmetric fit for Q4_K/Q5_K: find scale s >= 0 and offset m <= 0 minimising
 * sum w_i (s * L_i + m - x_i)^2 with L_i in 0..nmax. Start from the min/max grid,
 * then try nstep other grid spacings (nmax + rmin + rdelta*k over the range); for
 * each, solve the 2x2 weighted least-squares problem for (s, m) given the rounded
 * L, and keep the best. Returns s, stores -m (>= 0) in *neg_min and codes in L. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *neg_min, uint8_t *Laux, float rmin, float rdelta,
                           int nstep) {
    float lo = x[0], hi = x[0];
    float sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) /* the offset only ever shifts down: a positive group keeps m = 0 */
        lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *neg_min = -lo;
        return 0.0f;
    }
    float iscale = nmax / (hi - lo);
    float scale = 1.0f / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest(iscale * (x[i] - lo)), 0, nmax);
        float diff = scale * L[i] + lo - x[i];
        best += w[i] * diff * diff;
    }
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * k + nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * (x[i] - lo)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det <= 0)
            continue;
        float s = (sum_w * sum_xl - sum_x * sum_l) / det;
        float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (m > 0) { /* constrained optimum: m = 0, scale alone */
            m = 0;
            s = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = s * Laux[i] + m - x[i];
            err += w[i] * diff * diff;
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = s;
            lo = m;
        }
    }
    *neg_min = -lo;
    return scale;
}

/* Symmetric fit for Q6_K: codes L_i = l_i + nmax with l_i in -nmax..nmax-1, weights
 * x_i^2. The value of largest magnitude maps to -nmax (using the extra negative
 * code); then 18 nearby grid spacings are tried and the least-squares scale of the
 * best kept. Returns the (signed) scale. */
static float fit_scale_sym(int n, int nmax, const float *x, uint8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sum_lx = 0, sum_l2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (uint8_t)(l + nmax);
        float w = x[i] * x[i];
        sum_lx += w * x[i] * l;
        sum_l2 += w * l * l;
    }
    float scale = sum_l2 > 0 ? sum_lx / sum_l2 : 0.0f;
    float best = scale * sum_lx; /* = explained energy; larger is a better fit */
    for (int k = -9; k <= 9; k++) {
        if (k == 0)
            continue;
        iscale = -(nmax + 0.1f * k) / max;
        sum_lx = sum_l2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sum_lx += w * x[i] * l;
            sum_l2 += w * l * l;
        }
        if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
            for (int i = 0; i < n; i++)
                L[i] = (uint8_t)(nmax + clampi(nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sum_lx / sum_l2;
            best = scale * sum_lx;
        }
    }
    return scale;
}

/* ---- the 6-bit scale/min packing shared by Q4_K and Q5_K ------------------------- */

static void pack_scale_min(uint8_t *q, int s, int sc, int m) {
    if (s < 4) {
        q[s] = (uint8_t)sc;
        q[s + 4] = (uint8_t)m;
    } else {
        q[s + 4] = (uint8_t)((sc & 15) | ((m & 15) << 4));
        q[s - 4] |= (uint8_t)((sc >> 4) << 6);
        q[s] |= (uint8_t)((m >> 4) << 6);
    }
}

static void unpack_scale_min(const uint8_t *q, int s, int *sc, int *m) {
    if (s < 4) {
        *sc = q[s] & 63;
        *m = q[s + 4] & 63;
    } else {
        *sc = (q[s + 4] & 15) | ((q[s - 4] >> 6) << 4);
        *m = (q[s + 4] >> 4) | ((q[s] >> 6) << 4);
    }
}

/* Shared body of the Q4_K and Q5_K quantizers: fit eight 32-element sub-blocks
 * (weights: the group's RMS plus each |x|, favouring large values), quantize their
 * scales and mins to 6 bits against two f16 super-scales, then recompute the codes
 * against the scales actually stored. Fills scales[], d, dmin and L[256]. */
static void quantize_k_scales(const float *x, int nmax, float rmin, int nstep,
                              uint8_t scales[QUANT_K_SCALE_SIZE], uint16_t *d_out,
                              uint16_t *dmin_out, uint8_t L[QUANT_QK_K]) {
    float w[32], sc[8], mn[8];
    uint8_t Laux[32];
    float max_sc = 0, max_mn = 0;
    for (int s = 0; s < 8; s++) {
        const float *xs = x + 32 * s;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float rms = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = rms + fabsf(xs[l]);
        sc[s] = fit_scale_min(32, nmax, xs, w, L + 32 * s, &mn[s], Laux, rmin, 0.1f, nstep);
        max_sc = fmaxf(max_sc, sc[s]);
        max_mn = fmaxf(max_mn, mn[s]);
    }
    float inv_sc = max_sc > 0 ? 63.0f / max_sc : 0.0f;
    float inv_mn = max_mn > 0 ? 63.0f / max_mn : 0.0f;
    memset(scales, 0, QUANT_K_SCALE_SIZE);
    for (int s = 0; s < 8; s++)
        pack_scale_min(scales, s, clampi(nearest(inv_sc * sc[s]), 0, 63),
                       clampi(nearest(inv_mn * mn[s]), 0, 63));
    *d_out = quant_f32_to_f16(max_sc / 63.0f);
    *dmin_out = quant_f32_to_f16(max_mn / 63.0f);
    float d = quant_f16_to_f32(*d_out), dmin = quant_f16_to_f32(*dmin_out);
    for (int s = 0; s < 8; s++) {
        int isc, im;
        unpack_scale_min(scales, s, &isc, &im);
        float ds = d * isc;
        if (ds == 0.0f) /* scale rounded to zero: the codes do not matter, keep the fit's */
            continue;
        float dm = dmin * im;
        for (int l = 0; l < 32; l++)
            L[32 * s + l] = (uint8_t)clampi(nearest((x[32 * s + l] + dm) / ds), 0, nmax);
    }
}

/* ---- Q4_K ----------------------------------------------------------------------- */

/* Codes in element order, and the sub-block scales and mins. */
static void unpack_q4_K(const block_q4_K *b, uint8_t q[QUANT_QK_K], int sc[8], int m[8]) {
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = b->qs[32 * c + l] & 15;
            q[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
        }
    }
    for (int s = 0; s < 8; s++)
        unpack_scale_min(b->scales, s, &sc[s], &m[s]);
}

void quant_k_quantize_q4_K(const float *x, block_q4_K *y, int64_t nb) {
    uint8_t L[QUANT_QK_K];
    for (int64_t i = 0; i < nb; i++, x += QUANT_QK_K) {
        quantize_k_scales(x, 15, -1.0f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void quant_k_dequantize_q4_K(const block_q4_K *x, float *y, int64_t nb) {
    uint8_t q[QUANT_QK_K];
    int sc[8], m[8];
    for (int64_t i = 0; i < nb; i++, y += QUANT_QK_K) {
        unpack_q4_K(&x[i], q, sc, m);
        float d = quant_f16_to_f32(x[i].d), dmin = quant_f16_to_f32(x[i].dmin);
        for (int s = 0; s < 8; s++) {
            float ds = d * sc[s], dm = dmin * m[s];
            for (int l = 0; l < 32; l++)
                y[32 * s + l] = ds * q[32 * s + l] - dm;
        }
    }
}

/* sum_s d*sc_s * (q . y)_s - dmin * sum_s m_s * (sum of y over s): both integer
 * inside the block; the activations' group sums (bsums) give the second term
 * without touching the quants. */
static float dot_k_asym(const uint8_t *q, const int *sc, const int *m, const block_q8_K *a,
                        float d, float dmin) {
    int32_t isum = 0, msum = 0;
    for (int s = 0; s < 8; s++) {
        int32_t dot = 0;
        for (int l = 0; l < 32; l++)
            dot += (int32_t)q[32 * s + l] * a->qs[32 * s + l];
        isum += sc[s] * dot;
        msum += m[s] * (a->bsums[2 * s] + a->bsums[2 * s + 1]);
    }
    return d * a->d * (float)isum - dmin * a->d * (float)msum;
}

float quant_k_vec_dot_q4_K(int64_t nb, const block_q4_K *w, const block_q8_K *x) {
    uint8_t q[QUANT_QK_K];
    int sc[8], m[8];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        unpack_q4_K(&w[i], q, sc, m);
        sum += dot_k_asym(q, sc, m, &x[i], quant_f16_to_f32(w[i].d),
                          quant_f16_to_f32(w[i].dmin));
    }
    return sum;
}

/* ---- Q5_K ----------------------------------------------------------------------- */

static void unpack_q5_K(const block_q5_K *b, uint8_t q[QUANT_QK_K], int sc[8], int m[8]) {
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (uint8_t)((b->qs[32 * c + l] & 15) |
                                      (((b->qh[l] >> (2 * c)) & 1) << 4));
            q[64 * c + 32 + l] = (uint8_t)((b->qs[32 * c + l] >> 4) |
                                           (((b->qh[l] >> (2 * c + 1)) & 1) << 4));
        }
    }
    for (int s = 0; s < 8; s++)
        unpack_scale_min(b->scales, s, &sc[s], &m[s]);
}

void quant_k_quantize_q5_K(const float *x, block_q5_K *y, int64_t nb) {
    uint8_t L[QUANT_QK_K];
    for (int64_t i = 0; i < nb; i++, x += QUANT_QK_K) {
        quantize_k_scales(x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                y[i].qs[32 * c + l] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
                y[i].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
        }
    }
}

void quant_k_dequantize_q5_K(const block_q5_K *x, float *y, int64_t nb) {
    uint8_t q[QUANT_QK_K];
    int sc[8], m[8];
    for (int64_t i = 0; i < nb; i++, y += QUANT_QK_K) {
        unpack_q5_K(&x[i], q, sc, m);
        float d = quant_f16_to_f32(x[i].d), dmin = quant_f16_to_f32(x[i].dmin);
        for (int s = 0; s < 8; s++) {
            float ds = d * sc[s], dm = dmin * m[s];
            for (int l = 0; l < 32; l++)
                y[32 * s + l] = ds * q[32 * s + l] - dm;
        }
    }
}

float quant_k_vec_dot_q5_K(int64_t nb, const block_q5_K *w, const block_q8_K *x) {
    uint8_t q[QUANT_QK_K];
    int sc[8], m[8];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        unpack_q5_K(&w[i], q, sc, m);
        sum += dot_k_asym(q, sc, m, &x[i], quant_f16_to_f32(w[i].d),
                          quant_f16_to_f32(w[i].dmin));
    }
    return sum;
}

/* ---- Q6_K ----------------------------------------------------------------------- */

/* Signed codes (q - 32, in -32..31) in element order. */
static void unpack_q6_K(const block_q6_K *b, int8_t q[QUANT_QK_K]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (int8_t)(((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32);
            o[l + 32] = (int8_t)(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
            o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

void quant_k_quantize_q6_K(const float *x, block_q6_K *y, int64_t nb) {
    uint8_t L[QUANT_QK_K];
    float sc[16];
    for (int64_t i = 0; i < nb; i++, x += QUANT_QK_K) {
        float max_sc = 0, amax_sc = 0;
        for (int g = 0; g < 16; g++) {
            sc[g] = fit_scale_sym(16, 32, x + 16 * g, L + 16 * g);
            if (fabsf(sc[g]) > amax_sc) {
                amax_sc = fabsf(sc[g]);
                max_sc = sc[g];
            }
        }
        if (amax_sc < GROUP_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the largest group scale maps to -128, as in the symmetric fit: the int8
         * scales then span -128..127 */
        float iscale = -128.0f / max_sc;
        y[i].d = quant_f32_to_f16(1.0f / iscale);
        for (int g = 0; g < 16; g++)
            y[i].scales[g] = (int8_t)clampi(nearest(iscale * sc[g]), -128, 127);
        float d = quant_f16_to_f32(y[i].d);
        for (int g = 0; g < 16; g++) {
            float dg = d * y[i].scales[g];
            if (dg == 0.0f)
                continue;
            for (int l = 0; l < 16; l++)
                L[16 * g + l] = (uint8_t)(clampi(nearest(x[16 * g + l] / dg), -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++) {
            const uint8_t *Lh = L + 128 * h;
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 15) | ((Lh[l + 64] & 15) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 15) | ((Lh[l + 96] & 15) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                  ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

void quant_k_dequantize_q6_K(const block_q6_K *x, float *y, int64_t nb) {
    int8_t q[QUANT_QK_K];
    for (int64_t i = 0; i < nb; i++, y += QUANT_QK_K) {
        unpack_q6_K(&x[i], q);
        float d = quant_f16_to_f32(x[i].d);
        for (int g = 0; g < 16; g++) {
            float dg = d * x[i].scales[g];
            for (int l = 0; l < 16; l++)
                y[16 * g + l] = dg * q[16 * g + l];
        }
    }
}

float quant_k_vec_dot_q6_K(int64_t nb, const block_q6_K *w, const block_q8_K *x) {
    int8_t q[QUANT_QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        unpack_q6_K(&w[i], q);
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int32_t dot = 0;
            for (int l = 0; l < 16; l++)
                dot += (int32_t)q[16 * g + l] * x[i].qs[16 * g + l];
            isum += w[i].scales[g] * dot;
        }
        sum += quant_f16_to_f32(w[i].d) * x[i].d * (float)isum;
    }
    return sum;
}

/* ---- Q8_K (activations) --------------------------------------------------------- */

void quant_k_quantize_q8_K(const float *x, block_q8_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QUANT_QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QUANT_QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* signed max maps to -127 exactly; the scale stays a full float */
        float iscale = -127.0f / max;
        for (int j = 0; j < QUANT_QK_K; j++)
            y[i].qs[j] = (int8_t)clampi(nearest(iscale * x[j]), -127, 127);
        for (int g = 0; g < QUANT_QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

void quant_k_dequantize_q8_K(const block_q8_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < QUANT_QK_K; j++)
            *y++ = x[i].d * x[i].qs[j];
}
