/* test_quant_simd.c — the AVX2 and AVX-512 kernels against the scalar definitions: bit-exact dots and activation codes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#define RND_SEED 0x9e3779b97f4a7c15ull
#include "rnd.h"
#include "engine/matvec.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "engine/quant_simd.h"



static const int types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
                            GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};

/* Random weights quantized by the reference quantizer, random activations converted by
 * the scalar activation quantizer; the kernel set's own conversion must give the same
 * bytes, and its dot the same float as matvec_dot (both F16 orders). */
static void check_random(const quant_kernels_t *k) {
    const int64_t lens[] = {256, 512, 2048, 4096 + 256, 11008};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        int type = types[t], vt = quant_vec_dot_type(type);
        int bad_dot = 0, bad_act = 0, runs = 0;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int64_t n = lens[li];
            float *w = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n);
            void *wq = malloc(ggml_row_bytes(type, n));
            void *x_ref = malloc(ggml_row_bytes(vt, n)), *x_simd = malloc(ggml_row_bytes(vt, n));
            for (int rep = 0; rep < 8; rep++) {
                float scale = rep == 7 ? 1e-3f : 1.0f;
                for (int64_t i = 0; i < n; i++) w[i] = rnd_f() * 0.05f, x[i] = rnd_f() * scale;
                if (rep == 6) /* a zero block and exact ties for the rounding */
                    for (int64_t i = 0; i < 256; i++) x[i] = i < 32 ? 0.0f : (float)((int)(i % 9) - 4) * 0.5f;
                quant_quantize_row(type, w, wq, n);
                quant_quantize_row_act(vt, x, x_ref, n);
                k->quantize_act(vt, x, x_simd, n);
                if (vt != GGML_TYPE_F32 && memcmp(x_ref, x_simd, ggml_row_bytes(vt, n))) bad_act++;
                for (int prompt = 0; prompt < 2; prompt++) {
                    float r = matvec_dot(type, n, wq, x_ref, prompt);
                    float s = k->dot(type, n, wq, x_ref, prompt);
                    if (!same_bits(r, s)) {
                        if (bad_dot++ < 3)
                            fprintf(stderr, "  %s type %d n %lld prompt %d: %.9g vs %.9g\n", k->name, type,
                                    (long long)n, prompt, r, s);
                    }
                    /* and within the float tolerance of the one-sum-per-block reference */
                    float q = quant_vec_dot(type, n, wq, x_ref);
                    CHECK_MSG(fabsf(q - s) <= 1e-4f * (1.0f + fabsf(q)), "type %d: %g vs %g", type, q, s);
                    runs++;
                }
            }
            free(w), free(x), free(wq), free(x_ref), free(x_simd);
        }
        CHECK_MSG(bad_dot == 0, "%s type %d: %d of %d dots differ from matvec_dot", k->name, type, bad_dot, runs);
        CHECK_MSG(bad_act == 0, "%s type %d: %d activation rows differ", k->name, type, bad_act);
    }
}

/* Random raw blocks (every code and scale pattern, not only what the quantizer writes);
 * the weight side of Q8_0 avoids -128 (see quant_x86.h). */
static void check_raw_blocks(const quant_kernels_t *k) {
    const int n = 1024;
    for (size_t t = 2; t < sizeof types / sizeof types[0]; t++) {
        int type = types[t], vt = quant_vec_dot_type(type);
        size_t wb = ggml_row_bytes(type, n);
        uint8_t *wq = malloc(wb);
        void *xq = malloc(ggml_row_bytes(vt, n));
        float *x = malloc(sizeof(float) * n);
        int bad = 0;
        for (int rep = 0; rep < 200; rep++) {
            for (size_t i = 0; i < wb; i++) wq[i] = (uint8_t)rnd();
            /* keep the f16 scales finite and moderate: exponent bits in range */
            if (type == GGML_TYPE_Q8_0 || type == GGML_TYPE_Q4_0) {
                size_t bs = type == GGML_TYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
                for (size_t b = 0; b < wb / bs; b++) {
                    uint16_t h = quant_f32_to_f16(rnd_f() * 0.01f);
                    memcpy(wq + b * bs, &h, 2);
                    if (type == GGML_TYPE_Q8_0)
                        for (int j = 0; j < 32; j++)
                            if (wq[b * bs + 2 + j] == 0x80) wq[b * bs + 2 + j] = 0x81;
                }
            } else if (type == GGML_TYPE_Q6_K) {
                for (size_t b = 0; b < wb / sizeof(block_q6_K); b++) {
                    uint16_t h = quant_f32_to_f16(rnd_f() * 0.001f);
                    memcpy(wq + b * sizeof(block_q6_K) + offsetof(block_q6_K, d), &h, 2);
                }
            } else {
                size_t bs = type == GGML_TYPE_Q4_K ? sizeof(block_q4_K) : sizeof(block_q5_K);
                for (size_t b = 0; b < wb / bs; b++) {
                    uint16_t h[2] = {quant_f32_to_f16(rnd_f() * 0.001f), quant_f32_to_f16(rnd_f() * 0.001f)};
                    memcpy(wq + b * bs, h, 4);
                }
            }
            for (int i = 0; i < n; i++) x[i] = rnd_f();
            quant_quantize_row_act(vt, x, xq, n);
            float r = matvec_dot(type, n, wq, xq, 0), s = k->dot(type, n, wq, xq, 0);
            if (!same_bits(r, s) && bad++ < 3)
                fprintf(stderr, "  %s raw type %d: %.9g vs %.9g\n", k->name, type, r, s);
        }
        CHECK_MSG(bad == 0, "%s raw type %d: %d of 200 differ", k->name, type, bad);
        free(wq), free(xq), free(x);
    }
}

/* Real tensors of the reference models: the first rows of every weight matrix. */
static void check_models(const quant_kernels_t *k) {
    const char *ref = getenv("TOLLGATE_REF");
    if (!ref) ref = "../shared/ref";
    const char *files[] = {"llama-tiny-F16.gguf", "llama-tiny-Q4_0.gguf", "llama-tiny-Q4_K_M.gguf",
                           "llama-tiny-Q6_K.gguf", "llama-tiny-Q8_0.gguf", "phi3-tiny-Q4_K_M.gguf"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[512], err[256];
        snprintf(path, sizeof path, "%s/models/%s", ref, files[f]);
        model_t m;
        if (model_load(path, &m, err, sizeof err)) {
            fprintf(stderr, "  skip %s: %s\n", path, err);
            continue;
        }
        int bad = 0, runs = 0;
        for (int l = 0; l < m.hp.n_layer; l++) {
            const model_layer_t *L = &m.layers[l];
            const model_tensor_t *ts[] = {&L->wq, &L->wk, &L->wv, &L->wqkv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
                const model_tensor_t *W = ts[i];
                if (!W->data) continue;
                int vt = quant_vec_dot_type(W->type);
                float *x = malloc(sizeof(float) * W->cols);
                void *a = malloc(ggml_row_bytes(vt, W->cols) + 1), *b = malloc(ggml_row_bytes(vt, W->cols) + 1);
                for (int64_t c = 0; c < W->cols; c++) x[c] = rnd_f();
                quant_quantize_row_act(vt, x, a, W->cols);
                k->quantize_act(vt, x, b, W->cols);
                CHECK(vt == GGML_TYPE_F32 || !memcmp(a, b, ggml_row_bytes(vt, W->cols)));
                for (int64_t r = 0; r < W->rows && r < 16; r++) {
                    const void *row = (const uint8_t *)W->data + r * W->row_bytes;
                    for (int prompt = 0; prompt < 2; prompt++, runs++)
                        if (!same_bits(matvec_dot(W->type, W->cols, row, a, prompt),
                                       k->dot(W->type, W->cols, row, a, prompt)))
                            bad++;
                }
                free(x), free(a), free(b);
            }
        }
        CHECK_MSG(bad == 0 && runs > 0, "%s %s: %d of %d row dots differ", k->name, files[f], bad, runs);
        model_free(&m);
    }
}

int main(void) {
    const quant_kernels_t *best = quant_kernels();
    CHECK(best != NULL);
    printf("  dispatch chose %s\n", best ? best->name : "?");
    const char *names[] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        const quant_kernels_t *k = quant_kernels_named(names[i]);
        if (!k) {
            printf("  %s: not on this CPU, skipped\n", names[i]);
            continue;
        }
        check_random(k);
        check_raw_blocks(k);
        check_models(k);
    }
    CHECK(quant_kernels_named("nonsense") == NULL);
    return check_summary("test_quant_simd");
}
