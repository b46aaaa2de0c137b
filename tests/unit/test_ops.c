/* test_ops.c — every element-wise kernel set (ops.h) equals the scalar set bit for bit: SiLU gating over random and edge inputs (exp's overflow, underflow and scaling boundaries), the f16 store over float bit patterns of every class (ties, subnormals, overflow, infinities, NaNs), adds; odd lengths. `--all`: the f16 store over all 2^32 patterns. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#define RND_SEED 0x853c49e6748fea9bull
#include "rnd.h"
#include "engine/ops.h"
#include "engine/quant.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* An input of the kind the SiLU must get right: activations, wide magnitudes, and the
 * arguments around exp's branch points (|n| = 126 and 192, i.e. |x| near 87.3 and 133). */
static float silu_input(void) {
    static const float edges[] = {0.0f,     -0.0f,   1e-45f,  -1e-45f, 1e-38f,  -88.0f,  -87.4f,
                                  -87.3f,   -87.0f,  87.0f,   87.3f,   87.4f,   88.0f,   88.8f,
                                  -88.8f,   89.0f,   -89.0f,  103.0f,  -103.0f, 104.0f,  -104.0f,
                                  133.0f,   -133.0f, 133.2f,  -133.2f, 134.0f,  -134.0f, 200.0f,
                                  -200.0f,  1e30f,   -1e30f,  3e38f,   -3e38f,  INFINITY, -INFINITY};
    switch (rnd() % 4) {
    case 0: return rnd_f();
    case 1: return edges[rnd() % (sizeof edges / sizeof edges[0])] * (1.0f + (float)(rnd() % 3 - 1) * 0x1p-23f);
    case 2: return rnd_u() * 140.0f;
    default: { /* any finite magnitude */
        float m = ldexpf(1.0f + (float)(rnd() % 1000) / 1000.0f, (int)(rnd() % 250) - 125);
        return rnd() & 1 ? -m : m;
    }
    }
}

static int same_floats(const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        if (!same_bits(a[i], b[i])) {
            fprintf(stderr, "  element %d: %a vs %a\n", i, (double)a[i], (double)b[i]);
            return 0;
        }
    return 1;
}

static void check_silu(const ops_kernels_t *ref, const ops_kernels_t *k) {
    enum { N = 5632 + 7 };
    float *g = malloc(N * sizeof *g), *u = malloc(N * sizeof *u);
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    int bad = 0, runs = 0;
    for (int rep = 0; rep < 40; rep++) {
        for (int i = 0; i < N; i++) g[i] = silu_input(), u[i] = rep % 2 ? rnd_f() : silu_input();
        /* every length 0..40, then the full one (also from odd offsets) */
        for (int n = 0; n <= 41; n++) {
            int len = n == 41 ? N - rep % 3 : n, off = n == 41 ? rep % 3 : rep % 5;
            if (off + len > N) len = N - off;
            memcpy(a, g, N * sizeof *g);
            memcpy(b, g, N * sizeof *g);
            ref->silu_mul(a + off, u + off, len);
            k->silu_mul(b + off, u + off, len);
            bad += !same_floats(a, b, N); /* also: nothing outside the range written */
            runs++;
        }
    }
    CHECK_MSG(bad == 0, "%s silu_mul: %d of %d runs differ", k->name, bad, runs);
    free(g), free(u), free(a), free(b);
}

static int same_halves(const uint16_t *a, const uint16_t *b, const float *src, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) {
            uint32_t bits;
            memcpy(&bits, &src[i], sizeof bits);
            fprintf(stderr, "  %a (0x%08x): 0x%04x vs 0x%04x\n", (double)src[i], bits, a[i], b[i]);
            return 0;
        }
    return 1;
}

/* The f16 store on the floats with bit patterns hi << 13 | lo for every hi (all signs,
 * exponents and the 10 mantissa bits a half keeps) and each lo: exact, just under and
 * over the half-ulp tie, the tie itself, and random low bits; NaN patterns included. */
static void check_f16_classes(const ops_kernels_t *ref, const ops_kernels_t *k) {
    enum { CH = 4096 };
    static const uint32_t los[] = {0, 1, 0xfff, 0x1000, 0x1001, 0x1fff};
    float src[CH];
    uint16_t a[CH], b[CH];
    int bad = 0, n = 0;
    for (uint32_t hi = 0; hi < (1u << 19); hi += CH / 8) {
        int m = 0;
        for (uint32_t h = hi; h < hi + CH / 8; h++)
            for (int l = 0; l < 8; l++) {
                uint32_t lo = l < 6 ? los[l] : rnd() & 0x1fff;
                src[m++] = from_bits(h << 13 | lo);
            }
        ref->to_f16(a, src, m);
        k->to_f16(b, src, m);
        bad += !same_halves(a, b, src, m);
        n += m;
    }
    /* float subnormal range and half subnormal range densely: ties fall on other bits */
    for (uint32_t base = 0; base < 0x39000000u; base += 0x00800000u)
        for (int r = 0; r < 64; r++) {
            for (int i = 0; i < CH; i++) src[i] = from_bits(base + (uint32_t)r * CH + (uint32_t)i);
            ref->to_f16(a, src, CH);
            k->to_f16(b, src, CH);
            bad += !same_halves(a, b, src, CH);
            n += CH;
        }
    CHECK_MSG(bad == 0, "%s to_f16: %d chunks differ (of %d values)", k->name, bad, n);
    /* odd lengths leave the rest alone */
    for (int len = 0; len <= 19; len++) {
        for (int i = 0; i < 24; i++) src[i] = silu_input();
        memset(a, 0xab, 24 * sizeof *a);
        memset(b, 0xab, 24 * sizeof *b);
        ref->to_f16(a, src, len);
        k->to_f16(b, src, len);
        CHECK(memcmp(a, b, 24 * sizeof *a) == 0);
    }
}

/* all 2^32 patterns (a few seconds; run by hand) */
static void check_f16_all(const ops_kernels_t *ref, const ops_kernels_t *k) {
    enum { CH = 1 << 16 };
    static float src[CH];
    static uint16_t a[CH], b[CH];
    long bad = 0;
    for (uint64_t base = 0; base < (1ull << 32); base += CH) {
        for (int i = 0; i < CH; i++) src[i] = from_bits((uint32_t)(base + (uint64_t)i));
        ref->to_f16(a, src, CH);
        k->to_f16(b, src, CH);
        if (memcmp(a, b, sizeof a)) bad++;
    }
    CHECK_MSG(bad == 0, "%s to_f16: %ld chunks of 65536 patterns differ", k->name, bad);
    printf("  %s to_f16: all 2^32 float patterns checked\n", k->name);
}

static void check_add(const ops_kernels_t *ref, const ops_kernels_t *k) {
    enum { N = 2048 + 5 };
    float x[N], a[N], b[N];
    for (int n = 0; n <= N; n += n < 40 ? 1 : 1001) {
        for (int i = 0; i < N; i++) x[i] = silu_input(), a[i] = b[i] = silu_input();
        ref->add(a, x, n);
        k->add(b, x, n);
        CHECK_MSG(same_floats(a, b, N), "%s add, n = %d", k->name, n);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --bench: each set's time per call on a TinyLlama / Mistral-sized row, the fastest of
 * many calls (the minimum is what a shared machine disturbs least). Figures only. */
static void bench(void) {
    enum { F = 14336, KV = 1024, D = 4096, REPS = 2000 };
    static float g[F], u[F], g0[F], x[D], y[D];
    static uint16_t h[KV];
    for (int i = 0; i < F; i++) g0[i] = rnd_f(), u[i] = rnd_f();
    for (int i = 0; i < D; i++) x[i] = rnd_f(), y[i] = rnd_f();
    static const char *sets[] = {"scalar", "avx2"};
    for (size_t s = 0; s < 2; s++) {
        const ops_kernels_t *k = ops_kernels_named(sets[s]);
        if (!k) continue;
        double best[3] = {1e9, 1e9, 1e9};
        for (int r = 0; r < REPS; r++) {
            memcpy(g, g0, sizeof g);
            double t0 = now();
            k->silu_mul(g, u, 5632);
            double t1 = now();
            k->to_f16(h, g0, 256);
            double t2 = now();
            k->add(y, x, 2048);
            double t3 = now();
            if (t1 - t0 < best[0]) best[0] = t1 - t0;
            if (t2 - t1 < best[1]) best[1] = t2 - t1;
            if (t3 - t2 < best[2]) best[2] = t3 - t2;
        }
        printf("%-6s silu_mul(5632) %7.2f us   to_f16(256) %6.3f us   add(2048) %6.3f us\n", k->name,
               best[0] * 1e6, best[1] * 1e6, best[2] * 1e6);
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench();
        return 0;
    }
    int all = argc > 1 && !strcmp(argv[1], "--all");
    const ops_kernels_t *ref = ops_kernels_named("scalar");
    CHECK(ref != NULL);
    CHECK(ops_kernels() != NULL);
    CHECK(ops_kernels_named("no-such-set") == NULL);
    /* the scalar set is the definition the forward pass had: spot-check it against the
     * formula and quant_f32_to_f16 directly */
    float g[3] = {1.5f, -2.0f, 0.0f}, u[3] = {2.0f, 1.0f, 3.0f};
    ref->silu_mul(g, u, 3);
    CHECK(fabsf(g[0] - 1.5f / (1.0f + expf(-1.5f)) * 2.0f) < 1e-6f);
    CHECK(fabsf(g[1] - -2.0f / (1.0f + expf(2.0f))) < 1e-6f);
    CHECK(g[2] == 0.0f);
    uint16_t h;
    float one = 1.0f;
    ref->to_f16(&h, &one, 1);
    CHECK_EQ_INT(h, 0x3c00);
    int tested = 0;
    static const char *sets[] = {"avx2", "avx512"};
    const ops_kernels_t *done = NULL;
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        const ops_kernels_t *k = ops_kernels_named(sets[s]);
        if (!k) {
            printf("  %s: not on this CPU, skipped\n", sets[s]);
            continue;
        }
        if (k == done) continue; /* "avx512" names the avx2 set */
        done = k;
        tested++;
        check_silu(ref, k);
        check_f16_classes(ref, k);
        check_add(ref, k);
        if (all) check_f16_all(ref, k);
    }
    printf("  vector sets compared with scalar: %d\n", tested);
    return check_summary("test_ops");
}
