/* test_quant_tile.c — tile kernels and matmat against the scalar definition: every (row, activation row) bit for bit, every type, odd sizes, threads. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#define RND_SEED 0x2545f4914f6cdd1dull
#include "rnd.h"
#include "engine/matvec.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "engine/quant_simd.h"
#include "engine/quant_tile.h"
#include "engine/threadpool.h"



static const int types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
                            GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};

/* A weight matrix (rows, cols) of `type`: quantized from random floats, or (raw) random
 * bytes with moderate finite f16 scales, so that every code and scale bit pattern occurs
 * (Q8_0 avoids the code -128, see quant_x86.h). */
static uint8_t *make_weights(int type, int64_t rows, int64_t cols, int raw) {
    size_t rb = ggml_row_bytes(type, cols);
    uint8_t *w = malloc(rb * rows);
    float *f = malloc(sizeof(float) * cols);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = w + r * rb;
        if (!raw || type == GGML_TYPE_F32 || type == GGML_TYPE_F16) {
            for (int64_t c = 0; c < cols; c++) f[c] = rnd_f() * 0.05f;
            quant_quantize_row(type, f, row, cols);
            continue;
        }
        for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)rnd();
        size_t bs = type == GGML_TYPE_Q8_0 ? sizeof(block_q8_0) : type == GGML_TYPE_Q4_0 ? sizeof(block_q4_0)
                  : type == GGML_TYPE_Q4_K ? sizeof(block_q4_K) : type == GGML_TYPE_Q5_K ? sizeof(block_q5_K)
                  : sizeof(block_q6_K);
        for (size_t b = 0; b < rb / bs; b++) {
            uint8_t *blk = row + b * bs;
            uint16_t h[2] = {quant_f32_to_f16(rnd_f() * 0.001f), quant_f32_to_f16(rnd_f() * 0.001f)};
            if (type == GGML_TYPE_Q6_K)
                memcpy(blk + offsetof(block_q6_K, d), h, 2);
            else if (type == GGML_TYPE_Q4_K || type == GGML_TYPE_Q5_K)
                memcpy(blk, h, 4);
            else
                memcpy(blk, h, 2);
            if (type == GGML_TYPE_Q8_0)
                for (int j = 0; j < 32; j++)
                    if (blk[2 + j] == 0x80) blk[2 + j] = 0x81;
        }
    }
    free(f);
    return w;
}

/* dot_tile of every kernel set against matvec_dot for every (row, activation row). */
static void check_tiles(const quant_kernels_t *k) {
    /* 9216 columns: the AVX-512 pair path in several chunks of blocks (with 16 and 17
     * weight rows); 16640: more blocks than it gathers, the row path */
    const int64_t colss[] = {256, 768, 2048, 9216, 16640};
    const int nrs[] = {1, 3, 16, 17};
    /* token counts around the pair path's groups of 16: odd, full, one group and a bit */
    const int nts[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        int type = types[ti], vt = quant_vec_dot_type(type);
        int bad = 0, runs = 0;
        for (size_t ci = 0; ci < sizeof colss / sizeof colss[0]; ci++)
            for (int raw = 0; raw < 2; raw++) {
                int64_t cols = colss[ci];
                int nr = nrs[(2 * ci + raw) % 4], ntmax = 17; /* a spread of row counts */
                uint8_t *w = make_weights(type, nr, cols, raw);
                size_t rb = ggml_row_bytes(type, cols);
                size_t xs = vt == GGML_TYPE_F32 ? sizeof(float) * cols : ggml_row_bytes(vt, cols);
                uint8_t *xq = malloc(xs * ntmax);
                float *x = malloc(sizeof(float) * cols);
                for (int t = 0; t < ntmax; t++) {
                    float scale = t == 2 ? 1e-3f : 1.0f;
                    for (int64_t c = 0; c < cols; c++) x[c] = rnd_f() * scale;
                    if (t == 3) memset(x, 0, sizeof(float) * 256); /* an all-zero activation block */
                    if (vt == GGML_TYPE_F32)
                        memcpy(xq + t * xs, x, xs);
                    else
                        quant_quantize_row_act(vt, x, xq + t * xs, cols);
                }
                for (size_t ni = 0; ni < sizeof nts / sizeof nts[0]; ni++)
                    for (int prompt = 0; prompt < 2; prompt++) {
                        int nt = nts[ni];
                        size_t ldy = (size_t)nr + 3;
                        float *y = malloc(sizeof(float) * ldy * nt);
                        for (size_t i = 0; i < ldy * nt; i++) y[i] = -7.0f; /* padding must stay */
                        k->dot_tile(type, cols, w, rb, nr, xq, xs, nt, y, ldy, prompt);
                        for (int t = 0; t < nt; t++) {
                            for (int r = 0; r < nr; r++, runs++) {
                                float want = matvec_dot(type, cols, w + r * rb, xq + t * xs, prompt);
                                if (!same_bits(want, y[t * ldy + r]) && bad++ < 3)
                                    fprintf(stderr, "  %s tile type %d cols %lld row %d tok %d/%d: %.9g vs %.9g\n",
                                            k->name, type, (long long)cols, r, t, nt, want, y[t * ldy + r]);
                            }
                            for (size_t p = nr; p < ldy; p++) CHECK(y[t * ldy + p] == -7.0f);
                        }
                        free(y);
                    }
                free(w), free(xq), free(x);
            }
        CHECK_MSG(bad == 0 && runs > 0, "%s type %d: %d of %d tile dots differ", k->name, type, bad, runs);
    }
}

/* matmat (threads, dispatched tiles) against the scalar matvec row by row, for activation
 * row counts around the kernels' token groups and row counts not divisible by the row
 * block; both through the strided layout forward.c uses. */
static void check_matmat(int threads) {
    tpool_t *pool = NULL;
    CHECK_EQ_INT(tpool_new(threads, &pool), 0);
    /* 2..7: the decode plan (one range per thread) with several rows, 2..3 the row
     * kernels on AVX-512, 4..7 the pair path (5 and 7 with a lone token); 10 and 32: the
     * tile plan */
    const int Ts[] = {1, 2, 3, 4, 5, 7, 10, 32};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        int type = types[ti];
        int64_t rows = 37 + 16 * (int64_t)ti, cols = 512;
        model_tensor_t W = {.type = type, .rows = rows, .cols = cols, .row_bytes = ggml_row_bytes(type, cols)};
        uint8_t *w = make_weights(type, rows, cols, 0);
        W.data = w;
        int bad = 0;
        for (size_t k = 0; k < sizeof Ts / sizeof Ts[0]; k++) {
            int T = Ts[k];
            size_t ldx = cols + 5, ldy = rows + 2;
            float *X = malloc(sizeof(float) * ldx * T), *Y = malloc(sizeof(float) * ldy * T);
            float *y1 = malloc(sizeof(float) * rows);
            void *xq = malloc(matvec_xq_bytes(type, cols) * T + 1), *xq1 = malloc(matvec_xq_bytes(type, cols) + 1);
            for (size_t i = 0; i < ldx * T; i++) X[i] = rnd_f();
            for (int prompt = 0; prompt < 2; prompt++) {
                matmat(pool, &W, X, ldx, T, Y, ldy, xq, prompt);
                for (int t = 0; t < T; t++) {
                    matvec(&W, X + t * ldx, y1, xq1, prompt);
                    for (int64_t r = 0; r < rows; r++)
                        if (!same_bits(y1[r], Y[t * ldy + r]) && bad++ < 3)
                            fprintf(stderr, "  matmat type %d T %d t %d r %lld: %.9g vs %.9g\n", type, T, t,
                                    (long long)r, y1[r], Y[t * ldy + r]);
                }
            }
            /* and matvec_mt, the decode path */
            matvec_mt(pool, &W, X, Y, xq, 0);
            matvec(&W, X, y1, xq1, 0);
            for (int64_t r = 0; r < rows; r++) bad += !same_bits(y1[r], Y[r]);
            free(X), free(Y), free(y1), free(xq), free(xq1);
        }
        CHECK_MSG(bad == 0, "matmat type %d, %d threads: %d results differ from matvec", type, threads, bad);
        free(w);
    }
    tpool_free(pool);
}

/* Products big enough for several claims per thread (up to 3 rows: one range per
 * thread as four streams, passes claimed, the last claims short, the last range's
 * remainder rows a pass of their own; 5 rows: 128-row chunks; prompt: multi-row tiles):
 * matmat against matvec, 1-3 threads. */
static void check_matmat_big(void) {
    const int ktypes[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    const int Ts[] = {1, 2, 5};
    for (size_t ti = 0; ti < sizeof ktypes / sizeof ktypes[0]; ti++) {
        int type = ktypes[ti], bad = 0;
        int64_t rows = 16 * 40 + 7, cols = 768;
        size_t rb = ggml_row_bytes(type, cols);
        model_tensor_t W = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb};
        uint8_t *w = make_weights(type, rows, cols, 1);
        W.data = w;
        float *X = malloc(sizeof(float) * cols * 5), *Y = malloc(sizeof(float) * rows * 5), *y1 = malloc(sizeof(float) * rows);
        void *xq = malloc(matvec_xq_bytes(type, cols) * 5), *xq1 = malloc(matvec_xq_bytes(type, cols));
        for (int64_t i = 0; i < cols * 5; i++) X[i] = rnd_f();
        for (int threads = 1; threads <= 3; threads++) {
            tpool_t *pool = NULL;
            CHECK_EQ_INT(tpool_new(threads, &pool), 0);
            for (size_t k = 0; k < sizeof Ts / sizeof Ts[0]; k++) {
                int T = Ts[k];
                int64_t chunk = matmat_chunk_rows(&W, T, threads);
                /* up to 3 activation rows: a thread's range (the row kernels' four
                 * streams through it); 4..16: chunks of it */
                CHECK_MSG(chunk % 16 == 0 && chunk >= 16 && (T <= 3 ? chunk == rows / threads / 16 * 16 : chunk <= 128),
                          "T %d chunk %lld", T, (long long)chunk);
                memset(Y, 0xff, sizeof(float) * rows * 5);
                matmat(pool, &W, X, cols, T, Y, rows, xq, 0);
                for (int t = 0; t < T; t++) {
                    matvec(&W, X + t * cols, y1, xq1, 0);
                    for (int64_t r = 0; r < rows; r++) bad += !same_bits(y1[r], Y[t * rows + r]);
                }
            }
            tpool_free(pool);
        }
        /* decode on 2 threads: each thread's range one tile (647 rows: 320, then 327 =
         * four streams of 81 and 3 more); the pair path's batches (4..16 rows) in 128-row
         * chunks */
        CHECK_EQ_INT((int)matmat_chunk_rows(&W, 1, 2), 320);
        CHECK_EQ_INT((int)matmat_chunk_rows(&W, 3, 2), 320);
        CHECK_EQ_INT((int)matmat_chunk_rows(&W, 5, 2), 128);
        CHECK_MSG(bad == 0, "big matmat type %d: %d results differ from matvec", type, bad);
        free(w), free(X), free(Y), free(y1), free(xq), free(xq1);
    }
}

/* matmat_multi: Q4_K, Q6_K and Q4_K matrices of different heights (one conversion, one
 * fork-join) and a Q8_0 with a Q4_K (converted differently: one by one), each output
 * bit for bit as matvec, 1-3 threads, one and several activation rows. */
static void check_matmat_multi(void) {
    const int sets[2][3] = {{GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, GGML_TYPE_Q4_K}, {GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, -1}};
    const int64_t heights[3] = {200, 37, 70}, cols = 512;
    int bad = 0;
    for (int si = 0; si < 2; si++) {
        int nw = sets[si][2] < 0 ? 2 : 3;
        model_tensor_t W[3];
        const model_tensor_t *Ws[3];
        uint8_t *w[3];
        size_t xqb = 0, ldy = 0;
        for (int m = 0; m < nw; m++) {
            int type = sets[si][m];
            w[m] = make_weights(type, heights[m], cols, 1);
            W[m] = (model_tensor_t){.data = w[m], .type = type, .rows = heights[m], .cols = cols,
                                    .row_bytes = ggml_row_bytes(type, cols)};
            Ws[m] = &W[m];
            xqb = matvec_xq_bytes(type, cols) > xqb ? matvec_xq_bytes(type, cols) : xqb;
            ldy += (size_t)heights[m];
        }
        float *X = malloc(sizeof(float) * cols * 6), *Y = malloc(sizeof(float) * ldy * 6), *y1 = malloc(sizeof(float) * 256);
        void *xq = malloc(xqb * 6), *xq1 = malloc(xqb);
        for (int64_t i = 0; i < cols * 6; i++) X[i] = rnd_f();
        for (int threads = 1; threads <= 3; threads++) {
            tpool_t *pool = NULL;
            CHECK_EQ_INT(tpool_new(threads, &pool), 0);
            for (int T = 1; T <= 6; T += 5) {
                float *Ys[3];
                size_t off = 0;
                for (int m = 0; m < nw; m++) Ys[m] = Y + off, off += (size_t)heights[m];
                memset(Y, 0xff, sizeof(float) * ldy * 6);
                matmat_multi(pool, Ws, nw, X, cols, T, Ys, ldy, xq, 0);
                for (int m = 0; m < nw; m++)
                    for (int t = 0; t < T; t++) {
                        matvec(&W[m], X + t * cols, y1, xq1, 0);
                        for (int64_t r = 0; r < heights[m]; r++) bad += !same_bits(y1[r], Ys[m][t * ldy + r]);
                    }
            }
            tpool_free(pool);
        }
        for (int m = 0; m < nw; m++) free(w[m]);
        free(X), free(Y), free(y1), free(xq), free(xq1);
    }
    CHECK_MSG(bad == 0, "matmat_multi: %d results differ from matvec", bad);
}

/* The K-quant tiles at the ends of every range: weight blocks whose bytes are all one
 * pattern (codes and scales 0, maximal, sign bit only, ...), activation codes all -128,
 * all 127 or alternating, for token counts around the pair path's groups. The integer
 * sums of the AVX-512 kernels are narrowed to 16 bits on the way; at these ends a
 * saturation or a wrapped sum would show. */
static void check_extremes(const quant_kernels_t *k) {
    static const int ktypes[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    static const uint8_t patterns[] = {0x00, 0xff, 0x80, 0x7f, 0x55, 0xaa, 0x0f, 0xf0};
    const int nr = (int)sizeof patterns, nts[] = {1, 2, 3, 4, 7, 8, 9, 16};
    const int64_t cols = 768;
    for (size_t ti = 0; ti < sizeof ktypes / sizeof ktypes[0]; ti++) {
        int type = ktypes[ti], bad = 0;
        size_t rb = ggml_row_bytes(type, cols);
        size_t bs = type == GGML_TYPE_Q4_K ? sizeof(block_q4_K) : type == GGML_TYPE_Q5_K ? sizeof(block_q5_K)
                  : sizeof(block_q6_K);
        uint8_t *w = malloc(rb * nr);
        memset(w, 0, rb * nr);
        for (int r = 0; r < nr; r++)
            for (size_t b = 0; b < rb / bs; b++) {
                uint8_t *blk = w + r * rb + b * bs;
                memset(blk, patterns[r], bs);
                uint16_t h[2] = {quant_f32_to_f16(0.01f), quant_f32_to_f16(-0.003f)};
                if (type == GGML_TYPE_Q6_K)
                    memcpy(blk + offsetof(block_q6_K, d), h, 2);
                else
                    memcpy(blk, h, 4);
            }
        const int ntmax = 16;
        block_q8_K *xq = calloc((size_t)ntmax * (cols / QUANT_QK_K), sizeof(block_q8_K));
        for (int t = 0; t < ntmax; t++)
            for (int64_t b = 0; b < cols / QUANT_QK_K; b++) {
                block_q8_K *x = &xq[t * (cols / QUANT_QK_K) + b];
                x->d = 0.02f + 0.001f * (float)t;
                for (int e = 0; e < QUANT_QK_K; e++)
                    x->qs[e] = (int8_t)(t % 3 == 0 ? -128 : t % 3 == 1 ? 127 : (e & 1) ? 127 : -128);
                for (int g = 0; g < QUANT_QK_K / 16; g++) {
                    int sum = 0;
                    for (int e = 0; e < 16; e++) sum += x->qs[16 * g + e];
                    x->bsums[g] = (int16_t)sum;
                }
            }
        size_t xs = sizeof(block_q8_K) * (size_t)(cols / QUANT_QK_K);
        for (size_t ni = 0; ni < sizeof nts / sizeof nts[0]; ni++) {
            int nt = nts[ni];
            float *y = malloc(sizeof(float) * nr * nt);
            k->dot_tile(type, cols, w, rb, nr, xq, xs, nt, y, nr, 1);
            for (int t = 0; t < nt; t++)
                for (int r = 0; r < nr; r++) {
                    float want = matvec_dot(type, cols, w + r * rb, (const uint8_t *)xq + t * xs, 1);
                    if (!same_bits(want, y[t * nr + r]) && bad++ < 3)
                        fprintf(stderr, "  %s extremes type %d pattern %02x tok %d/%d: %.9g vs %.9g\n", k->name,
                                type, patterns[r], t, nt, want, y[t * nr + r]);
                }
            free(y);
        }
        CHECK_MSG(bad == 0, "%s type %d: %d extreme tile dots differ", k->name, type, bad);
        free(w), free(xq);
    }
}

/* The AVX-512 decode-batch row kernels called directly (whatever the tile dispatch
 * picks): 1..4 activation rows, row counts around the four-row passes (the remainder
 * pass repeats rows), and as passes of four streams; each result against matvec_dot,
 * the padding between output rows untouched; 5 rows, and rows of more than 64 blocks,
 * are refused. */
static void check_rows_direct(void) {
    static const int ktypes[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
    const int64_t cols = 1024;
    for (size_t ti = 0; ti < sizeof ktypes / sizeof ktypes[0]; ti++) {
        int type = ktypes[ti], bad = 0, runs = 0, nrmax = 13;
        size_t rb = ggml_row_bytes(type, cols), xs = ggml_row_bytes(GGML_TYPE_Q8_K, cols);
        uint8_t *w = make_weights(type, nrmax, cols, 0);
        uint8_t *xq = malloc(xs * 4);
        float *x = malloc(sizeof(float) * cols);
        for (int t = 0; t < 4; t++) {
            for (int64_t c = 0; c < cols; c++) x[c] = rnd_f() * (t == 1 ? 1e-3f : 1.0f);
            quant_quantize_row_act(GGML_TYPE_Q8_K, x, xq + t * xs, cols);
        }
        for (int nr = 1; nr <= nrmax; nr += 1 + (nr > 6))
            for (int nt = 1; nt <= 4; nt++) {
                size_t ldy = (size_t)nr + 2;
                float *y = malloc(sizeof(float) * ldy * nt);
                for (size_t i = 0; i < ldy * nt; i++) y[i] = -7.0f;
                CHECK_EQ_INT(quant_rows_avx512(type, cols, w, rb, nr, xq, xs, nt, y, ldy), 0);
                for (int t = 0; t < nt; t++) {
                    for (int r = 0; r < nr; r++, runs++) {
                        float want = matvec_dot(type, cols, w + r * rb, xq + t * xs, 0);
                        if (!same_bits(want, y[t * ldy + r]) && bad++ < 3)
                            fprintf(stderr, "  rows type %d nr %d tok %d/%d: %.9g vs %.9g\n", type, nr, t, nt, want,
                                    y[t * ldy + r]);
                    }
                    for (size_t p = nr; p < ldy; p++) CHECK(y[t * ldy + p] == -7.0f);
                }
                free(y);
            }
        /* the same kernels as passes of four streams q rows apart (a decode thread's
         * claims): every pass range of q = 1..3, only those rows written */
        for (int64_t q = 1; q <= 3; q++)
            for (int64_t i0 = 0; i0 < q; i0++)
                for (int64_t np = 1; i0 + np <= q; np++)
                    for (int nt = 1; nt <= 4; nt += 3) {
                        size_t ldy = (size_t)(4 * q) + 1;
                        float *y = malloc(sizeof(float) * ldy * nt);
                        for (size_t i = 0; i < ldy * nt; i++) y[i] = -7.0f;
                        CHECK_EQ_INT(quant_streams_avx512(type, cols, w, rb, q, i0, np, xq, xs, nt, y, ldy), 0);
                        for (int t = 0; t < nt; t++)
                            for (int64_t r = 0; r < (int64_t)ldy; r++, runs++) {
                                int64_t i = r % q;
                                int in = r < 4 * q && i >= i0 && i < i0 + np;
                                float want = in ? matvec_dot(type, cols, w + r * rb, xq + t * xs, 0) : -7.0f;
                                if (!same_bits(want, y[t * ldy + r]) && bad++ < 3)
                                    fprintf(stderr, "  streams type %d q %lld passes %lld+%lld row %lld tok %d: %.9g vs %.9g\n",
                                            type, (long long)q, (long long)i0, (long long)np, (long long)r, t, want,
                                            y[t * ldy + r]);
                            }
                        free(y);
                    }
        float y5[5];
        CHECK_EQ_INT(quant_rows_avx512(type, cols, w, rb, 1, xq, xs, 5, y5, 1), -1);
        CHECK_EQ_INT(quant_streams_avx512(type, cols, w, rb, 1, 0, 1, xq, xs, 5, y5, 1), -1);
        /* rows wider than the prepared activations' room (64 blocks) are refused too, not
         * read past (the tile then takes its other paths) */
        CHECK_EQ_INT(quant_rows_avx512(type, 65 * QUANT_QK_K, w, rb, 1, xq, xs, 1, y5, 1), -1);
        CHECK_MSG(bad == 0 && runs > 0, "rows type %d: %d of %d dots differ", type, bad, runs);
        free(w), free(xq), free(x);
    }
}

/* The AVX-512 pair path called directly: every weight row count 1..40 (its output
 * reduces 8 rows at once: partial groups of 8, of 16 and the tile's last rows), 4..17
 * activation rows (the fewest it takes; an odd token's twin dropped, one and three token groups: the first
 * group of a tile prefetches, the later ones do not), rows of 3 blocks and of 9 (two
 * chunks of blocks: the prefetch crosses from one chunk to the next), each result
 * against matvec_dot, the padding between output rows untouched. */
static void check_pairs_direct(void) {
    static const int ktypes[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
    static const int64_t colss[] = {768, 2304};
    const int nrmax = 40, ntmax = 17;
    for (size_t ti = 0; ti < sizeof ktypes / sizeof ktypes[0]; ti++)
        for (size_t ci = 0; ci < sizeof colss / sizeof colss[0]; ci++) {
            int type = ktypes[ti], bad = 0, runs = 0;
            int64_t cols = colss[ci];
            size_t rb = ggml_row_bytes(type, cols), xs = ggml_row_bytes(GGML_TYPE_Q8_K, cols);
            uint8_t *w = make_weights(type, nrmax, cols, (int)ci);
            uint8_t *xq = malloc(xs * ntmax);
            float *x = malloc(sizeof(float) * cols);
            for (int t = 0; t < ntmax; t++) {
                for (int64_t c = 0; c < cols; c++) x[c] = rnd_f() * (t == 6 ? 1e-3f : 1.0f);
                quant_quantize_row_act(GGML_TYPE_Q8_K, x, xq + t * xs, cols);
            }
            for (int nr = 1; nr <= nrmax; nr++)
                for (int nt = 4; nt <= ntmax; nt += 1 + (nt >= 9) * 7) {
                    size_t ldy = (size_t)nr + 5;
                    float *y = malloc(sizeof(float) * ldy * nt);
                    for (size_t i = 0; i < ldy * nt; i++) y[i] = -7.0f;
                    CHECK_EQ_INT(quant_tile_avx512(type, cols, w, rb, nr, xq, xs, nt, y, ldy), 0);
                    for (int t = 0; t < nt; t++) {
                        for (int r = 0; r < nr; r++, runs++) {
                            float want = matvec_dot(type, cols, w + r * rb, xq + t * xs, 1);
                            if (!same_bits(want, y[t * ldy + r]) && bad++ < 3)
                                fprintf(stderr, "  pairs type %d cols %lld nr %d tok %d/%d: %.9g vs %.9g\n", type,
                                        (long long)cols, nr, t, nt, want, y[t * ldy + r]);
                        }
                        for (size_t p = nr; p < ldy; p++) CHECK(y[t * ldy + p] == -7.0f);
                    }
                    free(y);
                }
            CHECK_MSG(bad == 0 && runs > 0, "pairs type %d cols %lld: %d of %d dots differ", type, (long long)cols,
                      bad, runs);
            free(w), free(xq), free(x);
        }
}

int main(void) {
    const char *names[] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        const quant_kernels_t *k = quant_kernels_named(names[i]);
        if (!k) {
            printf("  %s: not on this CPU, skipped\n", names[i]);
            continue;
        }
        check_tiles(k);
        check_extremes(k);
        if (i == 2) check_rows_direct(), check_pairs_direct();
    }
    printf("  matmat through %s\n", quant_kernels()->name);
    check_matmat(1);
    check_matmat(2);
    check_matmat(3);
    check_matmat_big();
    check_matmat_multi();
    return check_summary("test_quant_tile");
}
