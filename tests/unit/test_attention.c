/* test_attention.c — the AVX2 / AVX-512 attention equals the scalar definition bit for bit (random caches, both product orders, GQA, sliding windows, 1-2 threads); `--bench` times them side by side. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#define RND_SEED 0x2545f4914f6cdd1dull
#include "rnd.h"
#include "engine/attention.h"
#include "engine/attention_kern.h"
#include "engine/quant.h"
#include "engine/quant_simd.h"
#include "engine/threadpool.h"


/* A cache filled with f16 values; spiky: some K entries large, so that scores spread
 * over hundreds (exp of arguments below -87 and below -192 inside the window). */
static void fill_cache(uint16_t *kc, uint16_t *vc, size_t n, int spiky) {
    for (size_t i = 0; i < n; i++) {
        float k = rnd_u() * 2.0f, v = rnd_u();
        if (spiky && rnd() % 7 == 0) k *= 300.0f;
        kc[i] = quant_f32_to_f16(k);
        vc[i] = quant_f32_to_f16(v);
    }
}

typedef struct shape {
    int n_head, n_head_kv, hd;
} shape_t;

static const shape_t shapes[] = {
    {4, 4, 64},  /* MHA, one 64-chunk per score */
    {8, 2, 64},  /* GQA groups of 4 */
    {4, 1, 128}, /* MQA, two 64-chunks */
    {6, 2, 80},  /* a 16-element double tail in the single-token scores */
    {2, 1, 32},  /* no 64-chunk at all */
    {2, 2, 24},  /* head_dim % 16 != 0: the scalar path for every set */
    {32, 4, 64}, /* TinyLlama: enough work from position 64 on to split heads over threads */
    {16, 16, 64}, /* as many groups as heads: whole groups shared out */
};

static model_hparams_t hparams(const shape_t *sh, int window) {
    model_hparams_t hp;
    memset(&hp, 0, sizeof hp);
    hp.n_head = sh->n_head;
    hp.n_head_kv = sh->n_head_kv;
    hp.head_dim = sh->hd;
    hp.n_embd = sh->n_head * sh->hd;
    hp.sliding_window = window;
    return hp;
}

static const char *simd_sets[] = {"avx2", "avx512"};

/* Every position of interest, both orders, 1 and 2 threads: the named set's output is
 * byte-identical to the scalar set's. Returns the comparisons made. */
static int check_shape(const shape_t *sh, int n_ctx, int window, int spiky, tpool_t *pool2) {
    model_hparams_t hp = hparams(sh, window);
    size_t kvn = (size_t)n_ctx * sh->n_head_kv * sh->hd, qn = (size_t)sh->n_head * sh->hd;
    uint16_t *kc = malloc(kvn * sizeof *kc), *vc = malloc(kvn * sizeof *vc);
    float *q = malloc(qn * sizeof *q), *ref = malloc(qn * sizeof *ref), *got = malloc(qn * sizeof *got);
    attn_scratch_t *s = attn_scratch_new(&hp, n_ctx, 2);
    CHECK(kc && vc && q && ref && got && s);
    fill_cache(kc, vc, kvn, spiky);
    attn_cache_t c = {kc, vc, n_ctx};
    const int poss[] = {0, 1, 15, 16, 31, 32, 33, 63, 64, 65, 127, 200, 255, 300, 511, n_ctx - 2, n_ctx - 1};
    float scale = 1.0f / sqrtf((float)sh->hd);
    int compared = 0;
    for (size_t pi = 0; pi < sizeof poss / sizeof poss[0]; pi++) {
        int pos = poss[pi];
        if (pos < 0 || pos >= n_ctx) continue;
        for (size_t i = 0; i < qn; i++) q[i] = rnd_u() * (spiky ? 4.0f : 1.0f);
        for (int prompt = 0; prompt < 2; prompt++) {
            CHECK(attention_with("scalar", &hp, &c, pos, q, scale, prompt, s, NULL, ref) == 0);
            int finite = 1;
            for (size_t i = 0; i < qn; i++) finite &= isfinite(ref[i]);
            CHECK_MSG(finite, "scalar output not finite at pos %d", pos);
            for (size_t k = 0; k < sizeof simd_sets / sizeof simd_sets[0]; k++) {
                if (!quant_kernels_named(simd_sets[k])) continue;
                for (int th = 0; th < 2; th++) {
                    memset(got, 0xff, qn * sizeof *got);
                    CHECK(attention_with(simd_sets[k], &hp, &c, pos, q, scale, prompt, s, th ? pool2 : NULL,
                                         got) == 0);
                    CHECK_MSG(!memcmp(ref, got, qn * sizeof *got),
                              "%s heads %d/%d hd %d n_ctx %d window %d spiky %d pos %d prompt %d threads %d",
                              simd_sets[k], sh->n_head, sh->n_head_kv, sh->hd, n_ctx, window, spiky, pos, prompt,
                              th ? 2 : 1);
                    compared++;
                }
            }
            /* the scalar set split over two threads gives the same bytes too */
            memset(got, 0xff, qn * sizeof *got);
            CHECK(attention_with("scalar", &hp, &c, pos, q, scale, prompt, s, pool2, got) == 0);
            CHECK(!memcmp(ref, got, qn * sizeof *got));
            /* and so does each thread's own slot (the forward pass's rows over threads) */
            for (int slot = 0; slot < 2; slot++) {
                memset(got, 0xff, qn * sizeof *got);
                CHECK(attention_slot(&hp, &c, pos, q, scale, prompt, s, slot, got) == 0);
                CHECK_MSG(!memcmp(ref, got, qn * sizeof *got), "attention_slot %d pos %d prompt %d", slot, pos,
                          prompt);
            }
            CHECK(attention_slot(&hp, &c, pos, q, scale, prompt, s, 2, got) == -1); /* no such slot */
            CHECK(attention_slot(&hp, &c, pos, q, scale, prompt, s, -1, got) == -1);
        }
    }
    attn_scratch_free(s);
    free(kc), free(vc), free(q), free(ref), free(got);
    return compared;
}

/* The kernels themselves, called directly (not through the dispatch, which could hide a
 * set that silently falls back to scalar): 1..ATTN_UNIT_MAX heads of one group against
 * the definition, head by head. */
static void check_heads_direct(void) {
    attn_heads_fn fns[] = {attn_heads_avx2, attn_heads_avx512};
    const int hds[] = {64, 128, 80};
    int n_ctx = 600, bad = 0, runs = 0;
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
        int hd = hds[hi], kv_dim = 2 * hd;
        size_t kvn = (size_t)n_ctx * kv_dim, stride = (n_ctx + 63) / 64 * 64 + 64;
        size_t wn = ATTN_UNIT_MAX * 64 * (size_t)hd > stride ? ATTN_UNIT_MAX * 64 * (size_t)hd : stride;
        uint16_t *kc = malloc(kvn * 2), *vc = malloc(kvn * 2);
        float *att = aligned_alloc(64, ATTN_UNIT_MAX * stride * 4), *qh = aligned_alloc(64, ATTN_UNIT_MAX * hd * 4);
        float *work = aligned_alloc(64, wn * 4), *q = malloc(ATTN_UNIT_MAX * hd * 4);
        float *ref = malloc(ATTN_UNIT_MAX * hd * 4), *got = malloc(ATTN_UNIT_MAX * hd * 4);
        fill_cache(kc, vc, kvn, 1);
        for (int f = 0; f < 2; f++) {
            if (!quant_kernels_named(simd_sets[f])) continue;
            for (int pos = 0; pos < n_ctx; pos += 37)
                for (int prompt = 0; prompt < 2; prompt++) {
                    int nh = 1 + (pos / 37) % ATTN_UNIT_MAX;
                    attn_head_job_t j = {.hd = hd, .kv_dim = kv_dim, .lo = pos > 100 ? pos - 90 : 0, .pos = pos,
                                         .n_kv = (pos + 32) / 32 * 32, .prompt = prompt, .scale = 0.125f};
                    if (j.n_kv > n_ctx) j.n_kv = n_ctx;
                    for (int i = 0; i < nh * hd; i++) q[i] = rnd_u();
                    attn_heads_scalar(&j, nh, q, kc + hd, vc + hd, att, stride, qh, work, ref);
                    fns[f](&j, nh, q, kc + hd, vc + hd, att, stride, qh, work, got);
                    bad += memcmp(ref, got, (size_t)nh * hd * 4) != 0;
                    runs++;
                }
        }
        free(kc), free(vc), free(att), free(qh), free(work), free(q), free(ref), free(got);
    }
    CHECK_MSG(bad == 0, "%d of %d direct calls differ", bad, runs);
    if (quant_kernels_named("avx2")) CHECK(runs >= 3 * 17 * 2);
}

/* The AVX-512 paths for head_dim 64 and 128 (scores 16 positions per register, the last
 * block partial; the V product of up to 8 heads at once) at every window edge: each
 * position 0..80 and 500..560 (blocks of 16 and 64 cut anywhere), windows starting at 0
 * or 1, 5, 15, 16, 17, 63, 64 positions back (lo not a multiple of 16), 1..8 heads, both
 * orders, scores spread over hundreds; memcmp against the definition. Also the AVX2 set. */
static void check_heads_windows(void) {
    attn_heads_fn fns[] = {attn_heads_avx2, attn_heads_avx512};
    const int hds[] = {64, 128}, backs[] = {-1, 0, 4, 15, 16, 17, 63, 64};
    int n_ctx = 600, bad = 0, runs = 0;
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
        int hd = hds[hi], kv_dim = 3 * hd; /* the group's rows inside wider cache rows */
        size_t kvn = (size_t)n_ctx * kv_dim, stride = (n_ctx + 63) / 64 * 64 + 64;
        size_t wn = ATTN_UNIT_MAX * 64 * (size_t)hd;
        uint16_t *kc = malloc(kvn * 2), *vc = malloc(kvn * 2);
        float *att = aligned_alloc(64, ATTN_UNIT_MAX * stride * 4), *qh = aligned_alloc(64, ATTN_UNIT_MAX * hd * 4);
        float *work = aligned_alloc(64, wn * 4), *q = malloc(ATTN_UNIT_MAX * hd * 4);
        float *ref = malloc(ATTN_UNIT_MAX * hd * 4), *got = malloc(ATTN_UNIT_MAX * hd * 4);
        CHECK(kc && vc && att && qh && work && q && ref && got);
        fill_cache(kc, vc, kvn, 1);
        for (int f = 0; f < 2; f++) {
            if (!quant_kernels_named(simd_sets[f])) continue;
            for (int pos = 0; pos < 560; pos = pos == 80 ? 500 : pos + 1)
                for (size_t bi = 0; bi < sizeof backs / sizeof backs[0]; bi++) {
                    int lo = backs[bi] < 0 ? 0 : pos - backs[bi];
                    if (lo < 0 || (bi > 0 && lo == 0)) continue;
                    int prompt = (pos + (int)bi) % 2, nh = 1 + (pos * 3 + (int)bi) % ATTN_UNIT_MAX;
                    attn_head_job_t j = {.hd = hd, .kv_dim = kv_dim, .lo = lo, .pos = pos,
                                         .n_kv = (pos + 32) / 32 * 32, .prompt = prompt, .scale = 0.125f};
                    if (j.n_kv > n_ctx) j.n_kv = n_ctx;
                    for (int i = 0; i < nh * hd; i++) q[i] = rnd_u() * 3.0f;
                    attn_heads_scalar(&j, nh, q, kc + hd, vc + hd, att, stride, qh, work, ref);
                    memset(got, 0xff, (size_t)nh * hd * 4);
                    fns[f](&j, nh, q, kc + hd, vc + hd, att, stride, qh, work, got);
                    if (memcmp(ref, got, (size_t)nh * hd * 4) && bad++ < 5)
                        fprintf(stderr, "%s hd %d heads %d pos %d lo %d prompt %d differs\n", simd_sets[f], hd, nh,
                                pos, lo, prompt);
                    runs++;
                }
        }
        free(kc), free(vc), free(att), free(qh), free(work), free(q), free(ref), free(got);
    }
    CHECK_MSG(bad == 0, "%d of %d windowed calls differ", bad, runs);
    if (quant_kernels_named("avx512")) CHECK(runs > 2 * 2 * 141 * 6);
}

static void check_dispatch(void) {
    const char *name = attention_kernels();
    CHECK(!strcmp(name, "scalar") || !strcmp(name, "avx2") || !strcmp(name, "avx512"));
    /* follows the weight kernels (one TOLLGATE_KERNELS switch for both) */
    CHECK_EQ_STR(name, quant_kernels()->name);
    shape_t sh = {2, 1, 64};
    model_hparams_t hp = hparams(&sh, 0);
    uint16_t kc[4 * 64] = {0}, vc[4 * 64] = {0};
    float q[128] = {0}, out[128];
    attn_cache_t c = {kc, vc, 4};
    attn_scratch_t *s = attn_scratch_new(&hp, 4, 1);
    CHECK(s != NULL);
    CHECK(attention_with("bogus", &hp, &c, 0, q, 1.0f, 0, s, NULL, out) == -1);
    CHECK(attention_with("scalar", &hp, &c, 4, q, 1.0f, 0, s, NULL, out) == -1);  /* pos >= n_ctx */
    CHECK(attention_with("scalar", &hp, &c, -1, q, 1.0f, 0, s, NULL, out) == -1); /* pos < 0 */
    attn_cache_t big = {kc, vc, 8};
    CHECK(attention_with("scalar", &hp, &big, 5, q, 1.0f, 0, s, NULL, out) == -1); /* cache > scratch */
    /* all-equal scores: uniform probabilities over pos+1 = 3 positions of equal V rows */
    for (int i = 0; i < 4 * 64; i++) vc[i] = quant_f32_to_f16(0.5f);
    CHECK(attention_with(NULL, &hp, &c, 2, q, 1.0f, 0, s, NULL, out) == 0);
    CHECK_NEAR(out[0], 0.5, 1e-3);
    CHECK_NEAR(out[127], 0.5, 1e-3);
    attn_scratch_free(s);
    CHECK(attn_scratch_new(&hp, 0, 1) == NULL);
}

/* ---- --bench: scalar and SIMD side by side ----------------------------------------- */

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Seconds per call, best of a few rounds (the machine is shared): CPU time of this
 * thread when single-threaded (robust to waiting for a core), wall time with a pool. */
static double time_calls(const char *set, const model_hparams_t *hp, const attn_cache_t *c, int pos, const float *q,
                         int prompt, attn_scratch_t *s, tpool_t *pool, float *out) {
    clockid_t id = pool ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID;
    double best = 1e9;
    int reps = pos < 600 ? 20 : 5;
    if (!strcmp(set, "scalar")) reps = reps / 4 + 1;
    for (int round = 0; round < 5; round++) {
        double t0 = clock_s(id);
        for (int r = 0; r < reps; r++) attention_with(set, hp, c, pos, q, 0.125f, prompt, s, pool, out);
        double dt = (clock_s(id) - t0) / reps;
        if (dt < best) best = dt;
    }
    return best;
}

static void bench(void) {
    shape_t sh = {32, 4, 64}; /* TinyLlama 1.1B */
    model_hparams_t hp = hparams(&sh, 0);
    int n_ctx = 4096;
    size_t kvn = (size_t)n_ctx * sh.n_head_kv * sh.hd;
    uint16_t *kc = malloc(kvn * 2), *vc = malloc(kvn * 2);
    float q[32 * 64], out[32 * 64];
    fill_cache(kc, vc, kvn, 0);
    for (int i = 0; i < 32 * 64; i++) q[i] = rnd_u();
    attn_cache_t c = {kc, vc, n_ctx};
    attn_scratch_t *s = attn_scratch_new(&hp, n_ctx, 2);
    tpool_t *pool = NULL;
    tpool_new(2, &pool);
    double la[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1;
        fclose(f);
    }
    printf("attention, one layer of TinyLlama (32 heads, 4 KV heads, head_dim 64), load %.2f %.2f %.2f\n", la[0],
           la[1], la[2]);
    printf("microseconds per call: CPU time of one thread; x2: wall time with a pool of 2\n");
    printf("%-7s %-6s %12s %12s %12s %12s %8s %8s\n", "context", "order", "scalar_us", "avx2_us", "avx512_us",
           "avx512x2_us", "avx2/sc", "512/sc");
    const int ctxs[] = {128, 512, 2048, 4096};
    for (size_t i = 0; i < sizeof ctxs / sizeof ctxs[0]; i++)
        for (int prompt = 0; prompt < 2; prompt++) {
            int pos = ctxs[i] - 1;
            double sc = time_calls("scalar", &hp, &c, pos, q, prompt, s, NULL, out);
            double a2 = quant_kernels_named("avx2") ? time_calls("avx2", &hp, &c, pos, q, prompt, s, NULL, out) : 0;
            double a5 = quant_kernels_named("avx512") ? time_calls("avx512", &hp, &c, pos, q, prompt, s, NULL, out) : 0;
            double a5t = quant_kernels_named("avx512") ? time_calls("avx512", &hp, &c, pos, q, prompt, s, pool, out) : 0;
            printf("%-7d %-6s %12.1f %12.1f %12.1f %12.1f %8.1f %8.1f\n", ctxs[i], prompt ? "tiled" : "vec",
                   sc * 1e6, a2 * 1e6, a5 * 1e6, a5t * 1e6, a2 > 0 ? sc / a2 : 0, a5 > 0 ? sc / a5 : 0);
        }
    tpool_free(pool);
    attn_scratch_free(s);
    free(kc), free(vc);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench();
        return 0;
    }
    tpool_t *pool2 = NULL;
    CHECK(tpool_new(2, &pool2) == 0);
    check_dispatch();
    check_heads_direct();
    check_heads_windows();
    int compared = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        compared += check_shape(&shapes[i], 530, 0, 0, pool2);   /* n_ctx not a multiple of 32 */
        compared += check_shape(&shapes[i], 530, 0, 1, pool2);   /* scores spread over hundreds */
        compared += check_shape(&shapes[i], 512, 45, 0, pool2);  /* sliding window */
        compared += check_shape(&shapes[i], 96, 0, 0, pool2);    /* short cache, n_kv = n_ctx */
    }
    /* on an x86 CPU with AVX2 at least the avx2 set was compared */
    if (quant_kernels_named("avx2")) CHECK(compared > 1000);
    tpool_free(pool2);
    return check_summary("test_attention");
}
