/* test_train.c — the trainer's numerics: kernels against their scalar definitions, the
 * backward pass against finite differences, and the written GGUF against the engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "train/tkern.h"
#include "train/tmodel.h"

static uint64_t rs = 88172645463325252ull;
static float frand(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void test_kernels(void) {
    int N = 7, I = 48, O = 37;
    float *in = malloc(sizeof(float) * N * I), *W = malloc(sizeof(float) * O * I);
    float *o1 = malloc(sizeof(float) * N * O), *o2 = malloc(sizeof(float) * N * O);
    float *d = malloc(sizeof(float) * N * O);
    float *di1 = calloc(N * I, 4), *di2 = calloc(N * I, 4), *dw1 = calloc(O * I, 4),
          *dw2 = calloc(O * I, 4);
    for (int i = 0; i < N * I; i++) in[i] = frand();
    for (int i = 0; i < O * I; i++) W[i] = frand();
    for (int i = 0; i < N * O; i++) d[i] = frand();
    tk_matmul_ref(o1, in, W, N, I, O);
    tk_matmul(o2, in, W, N, I, O);
    double md = 0;
    for (int i = 0; i < N * O; i++) md = fmax(md, fabs(o1[i] - o2[i]));
    CHECK_MSG(md < 1e-4, "matmul maxdiff %g", md);
    tk_matmul_bwd_ref(di1, dw1, d, in, W, N, I, O);
    tk_matmul_bwd(di2, dw2, d, in, W, N, I, O);
    md = 0;
    for (int i = 0; i < N * I; i++) md = fmax(md, fabs(di1[i] - di2[i]));
    for (int i = 0; i < O * I; i++) md = fmax(md, fabs(dw1[i] - dw2[i]));
    CHECK_MSG(md < 1e-4, "matmul_bwd maxdiff %g", md);
    free(in), free(W), free(o1), free(o2), free(d), free(di1), free(di2), free(dw1), free(dw2);
}

static const tm_config_t TINY = {.vocab = 19,
                                 .dim = 16,
                                 .n_layer = 2,
                                 .n_head = 2,
                                 .ff = 32,
                                 .ctx = 9,
                                 .rope_base = 10000.0f,
                                 .norm_eps = 1e-5f};

/* Analytic gradients against central differences on a sample of every tensor. */
static void test_gradcheck(void) {
    const tm_config_t *c = &TINY;
    size_t np = tm_param_count(c);
    float *w = malloc(np * 4), *gm = calloc(np, 4);
    tm_params_t p, g;
    tm_acts_t a;
    tm_params_init(c, w, 7);
    /* larger weights than training starts with, so every path carries gradient */
    for (size_t i = 0; i < np; i++) w[i] = w[i] * 4.0f + (i % 5 == 0 ? 0.1f * frand() : 0);
    tm_params_bind(c, w, &p);
    tm_params_bind(c, gm, &g);
    CHECK_EQ_INT(tm_acts_new(c, &a), 0);
    int32_t tok[9] = {3, 7, 1, 18, 4, 4, 9, 0, 12}, tgt[9] = {-1, -1, 1, 18, -1, 4, 9, 2, 5};
    int T = 9, nt = 0;
    double loss = tm_forward(c, &p, &a, tok, tgt, T, &nt);
    CHECK_EQ_INT(nt, 6);
    tm_backward(c, &p, &g, &a, tok, tgt, T, 1.0f);
    int bad = 0, n = 0;
    double worst = 0;
    for (size_t i = 0; i < np; i += 1 + (i % 13)) {
        float keep = w[i], eps = 2e-3f;
        w[i] = keep + eps;
        double lp = tm_forward(c, &p, &a, tok, tgt, T, NULL);
        w[i] = keep - eps;
        double lm = tm_forward(c, &p, &a, tok, tgt, T, NULL);
        w[i] = keep;
        double num = (lp - lm) / (2 * eps), an = gm[i];
        double err = fabs(num - an) / fmax(5e-2, fabs(num) + fabs(an));
        if (err > worst) worst = err;
        if (err > 1e-2) {
            if (bad < 12) fprintf(stderr, "param %zu: numeric %g analytic %g\n", i, num, an);
            bad++;
        }
        n++;
    }
    printf("gradcheck: %d params, loss %.4f, worst relative error %.2e\n", n, loss, worst);
    CHECK_MSG(bad == 0, "%d of %d gradients differ", bad, n);
    tm_acts_free(&a);
    free(w), free(gm);
}

/* The written GGUF loads in the engine and forward() reproduces the trainer's logits. */
static void test_engine_match(void) {
    tm_config_t c = TINY;
    c.dim = 32, c.ff = 64, c.vocab = 40, c.ctx = 16;
    size_t np = tm_param_count(&c);
    float *w = malloc(np * 4);
    tm_params_t p;
    tm_acts_t a;
    tm_params_init(&c, w, 11);
    for (size_t i = 0; i < np; i++) w[i] *= 20.0f;
    tm_params_bind(&c, w, &p);
    CHECK_EQ_INT(tm_acts_new(&c, &a), 0);
    int32_t tok[12] = {1, 5, 9, 33, 2, 17, 17, 30, 8, 39, 0, 3};
    int T = 12;
    tm_forward(&c, &p, &a, tok, NULL, T, NULL);
    gguf_writer_t *gw = gguf_writer_new();
    CHECK_EQ_INT(gguf_w_str(gw, "general.architecture", "llama"), 0);
    CHECK_EQ_INT(tm_write_gguf(&c, &p, 0, gw), 0);
    char path[] = "/tmp/test_train_XXXXXX", err[256] = "";
    int fd = mkstemp(path);
    close(fd);
    CHECK_EQ_INT(gguf_w_write(gw, path, err, sizeof err), 0);
    gguf_writer_free(gw);
    model_t m;
    int rc = model_load(path, &m, err, sizeof err);
    CHECK_MSG(rc == 0, "model_load: %s", err);
    if (rc == 0) {
        forward_state_t *s = NULL;
        CHECK_EQ_INT(forward_state_new(&m, 0, &s), 0);
        double md = 0, mag = 0;
        for (int t = 0; t < T; t++) {
            const float *lg = forward(&m, s, tok[t], t);
            for (int v = 0; v < c.vocab; v++) {
                md = fmax(md, fabs(lg[v] - a.logits[(size_t)t * c.vocab + v]));
                mag = fmax(mag, fabs(lg[v]));
            }
        }
        printf("engine vs trainer logits: maxdiff %.3g (max |logit| %.3g)\n", md, mag);
        CHECK_MSG(md < 2e-2 * fmax(1.0, mag), "maxdiff %g", md);
        forward_state_free(s);
        model_free(&m);
    }
    unlink(path);
    tm_acts_free(&a);
    free(w);
}

int main(void) {
    test_kernels();
    test_gradcheck();
    test_engine_match();
    return check_summary("test_train");
}
