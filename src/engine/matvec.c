/* matvec.c — weight-times-activation products in the reference engine's accumulation order (scalar). */
#include "engine/matvec.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "core/ev.h"
#include "engine/profile.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "engine/quant_simd.h"

/* Why the order matters: with activations quantized to 8 bits before every product, a
 * difference of one ulp in a matvec output can move a later activation across a rounding
 * boundary; on the random reference models that shifts log-probabilities by ~0.1 nats.
 * quant_vec_dot sums one float per block; the reference's x86 kernels keep 8 (or 16)
 * float lanes, each fed by a fused multiply-add of its own integer partial sum, and add
 * the lanes at the end in a fixed tree. Integer partial sums are exact in any order, so
 * only the lane assignment and the float steps are reproduced here.
 *
 * Lane of element e within a block, for the 8-lane kernels: (e % 32) / 4 (the int32 lane
 * of a 256-bit multiply-add over 32 consecutive bytes). */

/* The reference's hsum of an 8-lane accumulator: high half + low half, then pairs. */
static float hsum8(const float *a) {
    float t0 = a[4] + a[0], t1 = a[5] + a[1], t2 = a[6] + a[2], t3 = a[7] + a[3];
    return (t0 + t2) + (t1 + t3);
}

/* A 16-lane reduction as _mm512_reduce_add_ps: halves, quarters, then pairs. */
static float hsum16(float *a) {
    for (int i = 0; i < 8; i++) a[i] = a[i + 8] + a[i];
    for (int i = 0; i < 4; i++) a[i] = a[i + 4] + a[i];
    return (a[0] + a[2]) + (a[1] + a[3]);
}

/* F16 x F16, prompt (tiled kernel): 16 lanes, lane = i % 16, FMA per element. */
static float dot_f16_tiled(int64_t n, const uint16_t *w, const uint16_t *x) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] = fmaf(quant_f16_to_f32(w[i + l]), quant_f16_to_f32(x[i + l]), acc[l]);
    float s = hsum16(acc);
    for (; i < n; i++) s += quant_f16_to_f32(w[i]) * quant_f16_to_f32(x[i]);
    return s;
}

/* F16 x F16, single token (vector dot): four 16-lane accumulators over chunks of 64,
 * added pairwise, reduced; the tail is added in double. */
static float dot_f16_vec(int64_t n, const uint16_t *w, const uint16_t *x) {
    float acc[4][16] = {{0}};
    int64_t i = 0, np = n & ~(int64_t)63;
    double sum = 0.0;
    for (; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++) {
                int64_t e = i + 16 * j + l;
                acc[j][l] = fmaf(quant_f16_to_f32(w[e]), quant_f16_to_f32(x[e]), acc[j][l]);
            }
    if (np) {
        for (int l = 0; l < 16; l++) {
            acc[0][l] = acc[0][l] + acc[2][l];
            acc[1][l] = acc[1][l] + acc[3][l];
            acc[0][l] = acc[0][l] + acc[1][l];
        }
        sum = hsum16(acc[0]);
    }
    for (; i < n; i++) sum += (double)(quant_f16_to_f32(w[i]) * quant_f16_to_f32(x[i]));
    return (float)sum;
}

/* Q8_0 x Q8_0: per block, lane l takes the products of elements 4l..4l+3, scaled
 * by d_w * d_x with one FMA. q[32] are the weight's signed values of the block. */
static void lanes_q0(float *acc, const int8_t *q, const block_q8_0 *x, float d) {
    for (int l = 0; l < 8; l++) {
        int32_t s = 0;
        for (int j = 4 * l; j < 4 * l + 4; j++) s += (int32_t)q[j] * x->qs[j];
        acc[l] = fmaf(d, (float)s, acc[l]);
    }
}

static float dot_q8_0(int64_t nb, const block_q8_0 *w, const block_q8_0 *x) {
    float acc[8] = {0};
    for (int64_t b = 0; b < nb; b++)
        lanes_q0(acc, w[b].qs, &x[b], quant_f16_to_f32(w[b].d) * quant_f16_to_f32(x[b].d));
    return hsum8(acc);
}

/* Q4_0 x Q8_0: the reference repacks Q4_0 rows for its x86 kernels, which take one exact
 * integer sum per block and one FMA with d_w * d_x (measured: the 8-lane order above
 * matches the reference worse on Q4_0 files, this one as well as any variant tried). */
static float dot_q4_0(int64_t nb, const block_q4_0 *w, const block_q8_0 *x) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t s = 0;
        for (int j = 0; j < QUANT_QK4_0 / 2; j++)
            s += ((w[b].qs[j] & 15) - 8) * x[b].qs[j] +
                 ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + QUANT_QK4_0 / 2];
        sum = fmaf((float)s, quant_f16_to_f32(w[b].d) * quant_f16_to_f32(x[b].d), sum);
    }
    return sum;
}

/* The 6-bit scales and mins of Q4_K/Q5_K sub-block s (0..7). */
static void k_scale_min(const uint8_t *q, int s, int *sc, int *m) {
    if (s < 4) {
        *sc = q[s] & 63;
        *m = q[s + 4] & 63;
    } else {
        *sc = (q[s + 4] & 15) | ((q[s - 4] >> 6) << 4);
        *m = (q[s + 4] >> 4) | ((q[s] >> 6) << 4);
    }
}

/* Lane sums of sc(e) * q(e) * x(e) over a 256-element super-block; q in natural order. */
static void lanes_k(int32_t *lane, const uint8_t *q, const int *sc_of_e16, const int8_t *x) {
    for (int l = 0; l < 8; l++) lane[l] = 0;
    for (int e = 0; e < QUANT_QK_K; e++)
        lane[(e % 32) / 4] += sc_of_e16[e / 16] * (int32_t)q[e] * x[e];
}

/* Q4_K / Q5_K (q holds 4- or 5-bit codes already unpacked): acc += d * lanes; the mins
 * term per the reference: Q4_K keeps 4 float lanes of pairs of sub-blocks, Q5_K one
 * float of the exact integer total. */
static float dot_k_asym(int64_t nb, int type, const void *wv, const block_q8_K *x) {
    float acc[8] = {0}, acc_m[4] = {0}, summs = 0.0f;
    uint8_t q[QUANT_QK_K];
    int sc16[16];
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *scales, *qs, *qh = NULL;
        uint16_t hd, hdmin;
        if (type == GGML_TYPE_Q4_K) {
            const block_q4_K *w = (const block_q4_K *)wv + b;
            scales = w->scales, qs = w->qs, hd = w->d, hdmin = w->dmin;
        } else {
            const block_q5_K *w = (const block_q5_K *)wv + b;
            scales = w->scales, qs = w->qs, qh = w->qh, hd = w->d, hdmin = w->dmin;
        }
        /* unpack: chunk c of 64 elements = 32 low nibbles then 32 high nibbles */
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                q[64 * c + l] = qs[32 * c + l] & 15;
                q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
                if (qh) {
                    q[64 * c + l] |= ((qh[l] >> (2 * c)) & 1) << 4;
                    q[64 * c + 32 + l] |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                }
            }
        int sc[8], mn[8];
        for (int s = 0; s < 8; s++) {
            k_scale_min(scales, s, &sc[s], &mn[s]);
            sc16[2 * s] = sc16[2 * s + 1] = sc[s];
        }
        float d = x[b].d * quant_f16_to_f32(hd);
        float dmin = -x[b].d * quant_f16_to_f32(hdmin);
        int32_t lane[8], q8s[8];
        lanes_k(lane, q, sc16, x[b].qs);
        for (int s = 0; s < 8; s++) q8s[s] = x[b].bsums[2 * s] + x[b].bsums[2 * s + 1];
        if (type == GGML_TYPE_Q4_K) {
            for (int k = 0; k < 4; k++)
                acc_m[k] = fmaf(dmin, (float)(mn[2 * k] * q8s[2 * k] + mn[2 * k + 1] * q8s[2 * k + 1]),
                                acc_m[k]);
        } else {
            int32_t tot = 0;
            for (int s = 0; s < 8; s++) tot += mn[s] * q8s[s];
            summs += dmin * (float)tot;
        }
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    if (type == GGML_TYPE_Q4_K) summs = (acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]);
    return hsum8(acc) + summs;
}

static float dot_q6_K(int64_t nb, const block_q6_K *w, const block_q8_K *x) {
    float acc[8] = {0};
    int32_t lane[8];
    for (int64_t b = 0; b < nb; b++) {
        for (int l = 0; l < 8; l++) lane[l] = 0;
        for (int h = 0; h < 2; h++) { /* halves of 128 */
            const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                int q[4] = {
                    (ql[l] & 15) | (((qh[l] >> 0) & 3) << 4),
                    (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4),
                    (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                    (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
                };
                for (int k = 0; k < 4; k++) {
                    int e = 128 * h + 32 * k + l;
                    lane[(e % 32) / 4] += w[b].scales[e / 16] * (q[k] - 32) * x[b].qs[e];
                }
            }
        }
        float d = x[b].d * quant_f16_to_f32(w[b].d);
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    return hsum8(acc);
}

float matvec_dot(int type, int64_t n, const void *w, const void *xq, int prompt) {
    switch (type) {
    case GGML_TYPE_F16:
        return prompt ? dot_f16_tiled(n, w, xq) : dot_f16_vec(n, w, xq);
    case GGML_TYPE_Q8_0:
        return dot_q8_0(n / QUANT_QK8_0, w, xq);
    case GGML_TYPE_Q4_0:
        return dot_q4_0(n / QUANT_QK4_0, w, xq);
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
        return dot_k_asym(n / QUANT_QK_K, type, w, xq);
    case GGML_TYPE_Q6_K:
        return dot_q6_K(n / QUANT_QK_K, w, xq);
    default:
        return quant_vec_dot(type, n, w, xq);
    }
}

size_t matvec_xq_bytes(int weight_type, int64_t cols) {
    int vt = quant_vec_dot_type(weight_type);
    if (vt == GGML_TYPE_F32) return 0; /* x is used as it is */
    return ggml_row_bytes(vt, cols);
}

void matvec(const model_tensor_t *W, const float *x, float *y, void *xq, int prompt) {
    int vt = quant_vec_dot_type(W->type);
    const void *xv = x;
    if (vt != GGML_TYPE_F32) {
        /* the reference's activation quantizer (for Q8_0 not the file quantizer: its
         * scale 127/amax and ties-to-even change a code now and then) */
        quant_quantize_row_act(vt, x, xq, W->cols);
        xv = xq;
    }
    const uint8_t *row = W->data;
    for (int64_t r = 0; r < W->rows; r++, row += W->row_bytes)
        y[r] = matvec_dot(W->type, W->cols, row, xv, prompt);
}

/* ---- threaded, dispatched, several activation rows ------------------------------ */

/* The unit of weight rows a claim is rounded to: 16 rows of a 4096-wide Q4_K matrix are
 * 36 KiB. */
#define MM_ROW_BLOCK 16
/* Activation rows up to which a product goes through the row kernels' four streams
 * (decode, and decode batches of up to 3; quant_row_avx512.c): each thread's range of a
 * matrix is four streams, a quarter of it each, and the threads claim passes (one row
 * of each stream) until none is left. A claim is up to MM_STREAM_ROWS rows, fewer near
 * the end of a range (mm_claim). The streams run through the whole range whatever the
 * claims: streams as long as 1024-row chunks (four of 256 rows) decoded TinyLlama at 82
 * tok/s against 55 / 68 / 75 with 64 / 128 / 256 (2 threads, docs/engine.md). */
#define MM_STREAM_ROWS 1024
#define MM_STREAM_T 3
#define MM_STREAM_PASSES (MM_STREAM_ROWS / 4)
/* The shortest claim of passes near the end of a range: passes of about this many
 * weight bytes (~1.5 us of one core's streaming). With a fixed 16 passes, a thread done
 * early waited 4 us on average for the other's last claim on 2048-column matrices and 10
 * on 5632-column ones (TinyLlama decode: 0.53 ms a token). */
#define MM_PASS_MIN_BYTES (32 * 1024)
/* Weight rows per claim with MM_STREAM_T+1 .. MM_DECODE_T activation rows (the AVX-512
 * pair path, whose prefetch runs a few 128-row chunks ahead; 1024 made 4 rows 10%
 * slower). */
#define MM_DECODE_ROWS 128
/* With several activation rows, a tile of up to this many weight-row bytes per claim
 * (it stays in L2 while every token group passes over it), and at most this many rows:
 * the AVX-512 tile gathers its token groups' activations once per call, so bigger tiles
 * pay that once for more rows (16-row tiles spent 15% of a prompt on it). */
#define MM_TILE_BYTES (256 * 1024)
#define MM_TILE_ROWS 128
/* Activation rows up to which a product is planned like decode (one range per thread,
 * long chunks): up to one token group of the AVX-512 pair path (QT_GROUP, 16), no
 * second group rereads a tile, so there is nothing to keep in L2, and each core streams
 * its weights in order. The decode-batch row kernels (T <= 3, quant_row_avx512.c) want
 * long runs of rows for their four streams; 16..128-row tiles claimed in turn by the
 * threads cost those steps much of their gain (TinyLlama, 2 threads: N=2 25 ms against
 * 19; the pair path at N=8 51 against 48; with 16-token groups, N=12 and 16 planned
 * as tiles 57.8 / 73.7 ms, as decode 55.6-56.8 / 71.0-71.7). */
#define MM_DECODE_T 16
/* Row ranges (one per thread) a decode product is split into. */
#define MM_MAX_SEGS 16

/* Matrices one matmat_multi call takes at most. */
#define MM_MAX_W 4

/* One range of a plan: its share of each matrix. Claims count rows, or passes in a
 * stream plan: the range's rows r0 .. r0 + 4q - 1 are four streams of q rows, pass i
 * their rows i, q + i, 2q + i, 3q + i, and pass q (when tail > 0) the last tail rows. */
typedef struct mm_seg {
    struct {
        _Alignas(64) atomic_llong next; /* the next unclaimed row or pass of matrix m */
        int64_t end;                     /* one past the last */
        int64_t r0, q;                   /* stream plans */
        int tail;
    } m[MM_MAX_W];
} mm_seg_t;

typedef struct mm_job {
    const quant_kernels_t *k;
    int nw;                               /* matrices, all with the same columns */
    const model_tensor_t *W[MM_MAX_W];
    float *Y[MM_MAX_W];
    int64_t chunk[MM_MAX_W];              /* weight rows per claim, per matrix */
    const float *X;
    uint8_t *xq;      /* T rows of xq_stride bytes, or NULL: X is used as it is (F32) */
    size_t xq_stride;
    size_t ldx, ldy;  /* floats between rows of X, of each Y */
    int T, prompt, vt;
    atomic_int next;  /* the next activation row to quantize */
    int streams;      /* a stream plan: passes are claimed (T <= MM_STREAM_T) */
    int nseg;         /* ranges; thread ith starts on range ith % nseg */
    mm_seg_t seg[MM_MAX_SEGS];
    eng_profile_t *prof;                          /* or NULL: profile.h */
    double t_beg[EP_THREADS], t_end[EP_THREADS];  /* with prof: each thread in mm_rows (0: not) */
} mm_job_t;

/* Each thread claims activation rows to convert until none is left. */
static void mm_quantize(void *a, int ith) {
    mm_job_t *j = a;
    (void)ith;
    for (int t; (t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->T;)
        j->k->quantize_act(j->vt, j->X + (size_t)t * j->ldx, j->xq + (size_t)t * j->xq_stride, j->W[0]->cols);
}

/* Claim up to `most` units (rows or passes) from *next, below end: the first is returned
 * and one past the last put in *e; -1 when none is left. Guided (least > 0): once less
 * than two claims' worth is left, half of what is left in multiples of least, so that a
 * range ends in short claims and a thread done early takes part of what remains instead
 * of waiting while the other finishes a long one. */
static int64_t mm_claim(atomic_llong *next, int64_t end, int64_t most, int64_t least, int64_t *e) {
    long long b = atomic_load_explicit(next, memory_order_relaxed); /* the atomic's own type */
    for (;;) {
        if (b >= end) return -1;
        int64_t left = end - b, take = most;
        if (least && left < 2 * most) {
            take = (left / 2 + least - 1) / least * least;
            if (take < least) take = least;
        }
        if (take > left) take = left;
        if (atomic_compare_exchange_weak_explicit(next, &b, b + take, memory_order_relaxed, memory_order_relaxed)) {
            *e = b + take;
            return b;
        }
    }
}

/* mm_claim's least for matrix W: decode plans end their ranges in short claims (passes
 * of about MM_PASS_MIN_BYTES, or one row block); a prompt's tiles stay whole (0). */
static int64_t mm_claim_least(const mm_job_t *j, const model_tensor_t *W) {
    if (j->T > MM_DECODE_T) return 0;
    if (!j->streams) return MM_ROW_BLOCK;
    int64_t passes = MM_PASS_MIN_BYTES / (4 * (int64_t)W->row_bytes);
    return passes > 0 ? passes : 1;
}

/* Passes [pb, pe) of matrix m's streams in range g: the set's stream kernel, else one
 * tile per stream; pass q is the range's last rows. */
static void mm_passes(const mm_job_t *j, int m, const mm_seg_t *g, int64_t pb, int64_t pe, const void *xv,
                      size_t xstride) {
    const model_tensor_t *W = j->W[m];
    int64_t r0 = g->m[m].r0, q = g->m[m].q, np = (pe < q ? pe : q) - pb;
    const uint8_t *w0 = (const uint8_t *)W->data + r0 * W->row_bytes;
    float *y0 = j->Y[m] + r0;
    if (np > 0 && (!j->k->dot_streams || j->k->dot_streams(W->type, W->cols, w0, W->row_bytes, q, pb, np, xv,
                                                           xstride, j->T, y0, j->ldy)))
        for (int s = 0; s < 4; s++)
            j->k->dot_tile(W->type, W->cols, w0 + (s * q + pb) * W->row_bytes, W->row_bytes, (int)np, xv, xstride,
                           j->T, y0 + s * q + pb, j->ldy, j->prompt);
    if (pe > q)
        j->k->dot_tile(W->type, W->cols, w0 + 4 * q * W->row_bytes, W->row_bytes, g->m[m].tail, xv, xstride, j->T,
                       y0 + 4 * q, j->ldy, j->prompt);
}

/* Each thread claims weight rows (or passes), first from its own range, then from the
 * others' (a worker that comes late, or not at all, leaves its range to the others:
 * the pool does not promise that every thread runs), and computes them for all T
 * activation rows at once (the kernel reads each weight block once per group of
 * activation rows). With up to MM_DECODE_T activation rows every thread owns one
 * contiguous range of each matrix, so each core streams its weights in order (the
 * hardware prefetcher follows long streams) instead of interleaving 16-row chunks with
 * the other threads; with up to MM_STREAM_T the range is four streams whose passes are
 * claimed, the last claims short. With several matrices (Q, K, V) each thread's range
 * holds its share of every one: with their chunks numbered one after the other, one
 * range was mostly Q's 1024-row chunks and the other K's and V's 128-row ones, and the
 * thread done first took a whole Q chunk from the other (TinyLlama: thread 0 busy 72% of
 * that product, 68 us; per matrix 93%, 61 us). */
static void mm_rows(void *a, int ith) {
    mm_job_t *j = a;
    int timed = j->prof && ith < EP_THREADS;
    if (timed) j->t_beg[ith] = ev_clock_s();
    const void *xv = j->xq ? (const void *)j->xq : (const void *)j->X;
    size_t xstride = j->xq ? j->xq_stride : j->ldx * sizeof(float);
    for (int s = 0; s < j->nseg; s++) {
        mm_seg_t *g = &j->seg[(ith + s) % j->nseg];
        for (int m = 0; m < j->nw; m++) {
            const model_tensor_t *W = j->W[m];
            int64_t most = j->streams ? MM_STREAM_PASSES : j->chunk[m];
            int64_t least = mm_claim_least(j, W);
            for (int64_t b, e; (b = mm_claim(&g->m[m].next, g->m[m].end, most, least, &e)) >= 0;) {
                if (j->streams)
                    mm_passes(j, m, g, b, e, xv, xstride);
                else
                    j->k->dot_tile(W->type, W->cols, (const uint8_t *)W->data + b * W->row_bytes, W->row_bytes,
                                   (int)(e - b), xv, xstride, j->T, j->Y[m] + b, j->ldy, j->prompt);
            }
        }
    }
    if (timed) j->t_end[ith] = ev_clock_s();
}

int64_t matmat_chunk_rows(const model_tensor_t *W, int T, int nth) {
    int64_t chunk;
    if (T > MM_DECODE_T) {
        chunk = (int64_t)(MM_TILE_BYTES / (W->row_bytes ? W->row_bytes : 1));
        int64_t fair = W->rows / (4 * (int64_t)nth); /* several chunks per thread for balance */
        if (chunk > fair) chunk = fair;
        if (chunk > MM_TILE_ROWS) chunk = MM_TILE_ROWS;
    } else if (T <= MM_STREAM_T) {
        chunk = W->rows / nth; /* a thread's range: its four streams (claimed by passes) */
    } else {
        chunk = W->rows / nth < MM_DECODE_ROWS ? W->rows / nth : MM_DECODE_ROWS;
    }
    chunk = chunk / MM_ROW_BLOCK * MM_ROW_BLOCK;
    return chunk < MM_ROW_BLOCK ? MM_ROW_BLOCK : chunk;
}

/* Ranges for nth threads: one shared range of chunks with more than MM_DECODE_T
 * activation rows; one range per thread with up to that many, of chunks, or with up to
 * MM_STREAM_T of four streams (its rows split evenly, in multiples of MM_ROW_BLOCK). */
static void mm_plan(mm_job_t *j, int nth) {
    int64_t nchunk[MM_MAX_W], most = 0;
    for (int m = 0; m < j->nw; m++) {
        j->chunk[m] = matmat_chunk_rows(j->W[m], j->T, nth);
        nchunk[m] = (j->W[m]->rows + j->chunk[m] - 1) / j->chunk[m];
        most = nchunk[m] > most ? nchunk[m] : most;
    }
    j->streams = j->T <= MM_STREAM_T;
    int nseg = j->T > MM_DECODE_T ? 1 : nth < MM_MAX_SEGS ? nth : MM_MAX_SEGS;
    if (nseg > most && !j->streams) nseg = most > 0 ? (int)most : 1;
    j->nseg = nseg;
    for (int s = 0; s < nseg; s++)
        for (int m = 0; m < j->nw; m++) {
            int64_t rows = j->W[m]->rows;
            if (j->streams) {
                int64_t r0 = rows * s / nseg / MM_ROW_BLOCK * MM_ROW_BLOCK;
                int64_t r1 = s + 1 < nseg ? rows * (s + 1) / nseg / MM_ROW_BLOCK * MM_ROW_BLOCK : rows;
                j->seg[s].m[m].r0 = r0;
                j->seg[s].m[m].q = (r1 - r0) / 4;
                j->seg[s].m[m].tail = (int)(r1 - r0 - 4 * j->seg[s].m[m].q);
                atomic_init(&j->seg[s].m[m].next, 0);
                j->seg[s].m[m].end = j->seg[s].m[m].q + (j->seg[s].m[m].tail > 0);
            } else {
                int64_t r1 = nchunk[m] * (s + 1) / nseg * j->chunk[m];
                atomic_init(&j->seg[s].m[m].next, nchunk[m] * s / nseg * j->chunk[m]);
                j->seg[s].m[m].end = r1 < rows ? r1 : rows;
            }
        }
}

/* A profiled product (t0 its entry, tc the workers' start, t1 its end) into j->prof. */
static void mm_profile_add(const mm_job_t *j, int nth, double t0, double tc, double t1) {
    eng_profile_t *p = j->prof;
    double first = 0, last = 0;
    int ran = 0;
    for (int i = 0; i < nth && i < EP_THREADS; i++) {
        if (j->t_beg[i] == 0) continue; /* turned away, or came too late to claim */
        p->busy_s[i] += j->t_end[i] - j->t_beg[i];
        first = ran && first < j->t_end[i] ? first : j->t_end[i];
        last = ran && last > j->t_end[i] ? last : j->t_end[i];
        ran++;
    }
    p->products_s += t1 - t0;
    p->convert_s += tc - t0;
    p->wait_s += last - first;
    for (int m = 0; m < j->nw; m++) p->bytes += (double)j->W[m]->rows * (double)j->W[m]->row_bytes;
    p->products++;
}

/* One quantization of X, one fork-join over the rows of all nw matrices. */
static void mm_run(tpool_t *pool, mm_job_t *j, void *xq) {
    eng_profile_t *prof = eng_profile;
    double t0 = prof ? ev_clock_s() : 0;
    const model_tensor_t *W0 = j->W[0];
    int64_t rows = 0;
    for (int m = 0; m < j->nw; m++) rows += j->W[m]->rows;
    if (j->vt != GGML_TYPE_F32) {
        j->xq = xq;
        j->xq_stride = matvec_xq_bytes(W0->type, W0->cols);
        if (j->T > 1)
            tpool_run(pool, mm_quantize, j);
        else
            mm_quantize(j, 0);
    }
    /* small products are not worth waking the workers for */
    if (rows * (int64_t)j->T < 2 * MM_ROW_BLOCK) {
        mm_plan(j, 1);
        mm_rows(j, 0);
    } else {
        int nth = tpool_size(pool);
        mm_plan(j, nth);
        double tc = 0;
        if (prof) {
            j->prof = prof;
            memset(j->t_beg, 0, sizeof j->t_beg);
            tc = ev_clock_s();
        }
        tpool_run(pool, mm_rows, j);
        if (prof) mm_profile_add(j, nth, t0, tc, ev_clock_s());
    }
}

void matmat(tpool_t *pool, const model_tensor_t *W, const float *X, size_t ldx, int T, float *Y,
            size_t ldy, void *xq, int prompt) {
    mm_job_t j = {.k = quant_kernels(), .nw = 1, .W = {W}, .Y = {Y}, .X = X, .T = T, .prompt = prompt,
                  .ldx = ldx, .ldy = ldy, .vt = quant_vec_dot_type(W->type)};
    mm_run(pool, &j, xq);
}

void matmat_multi(tpool_t *pool, const model_tensor_t *const *Ws, int nw, const float *X, size_t ldx, int T,
                  float *const *Ys, size_t ldy, void *xq, int prompt) {
    mm_job_t j = {.k = quant_kernels(), .nw = nw, .X = X, .T = T, .prompt = prompt, .ldx = ldx, .ldy = ldy,
                  .vt = quant_vec_dot_type(Ws[0]->type)};
    int shared = nw <= MM_MAX_W;
    for (int m = 0; m < nw && shared; m++) {
        shared = Ws[m]->cols == Ws[0]->cols && quant_vec_dot_type(Ws[m]->type) == j.vt &&
                 matvec_xq_bytes(Ws[m]->type, Ws[m]->cols) == matvec_xq_bytes(Ws[0]->type, Ws[0]->cols);
        j.W[m] = Ws[m], j.Y[m] = Ys[m];
    }
    if (!shared) { /* activations converted differently: one product at a time */
        for (int m = 0; m < nw; m++) matmat(pool, Ws[m], X, ldx, T, Ys[m], ldy, xq, prompt);
        return;
    }
    mm_run(pool, &j, xq);
}

void matvec_mt(tpool_t *pool, const model_tensor_t *W, const float *x, float *y, void *xq, int prompt) {
    matmat(pool, W, x, (size_t)W->cols, 1, y, (size_t)W->rows, xq, prompt);
}
