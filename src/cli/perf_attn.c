/* perf_attn.c — `tollgate perf attn`: one thread's CPU time for the attention of one layer of a given shape, every kernel set side by side. */
#define _GNU_SOURCE
#include "cli/perf_attn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_num.h"
#include "engine/attention.h"
#include "engine/quant.h"
#include "engine/quant_simd.h"

#define PERF_ATTN_MAX_CTX 16 /* context lengths in one --ctx list */

void perf_attn_usage(FILE *o) {
    fprintf(o,
            "  attn  one thread's CPU time for the attention of one layer (every head of one\n"
            "        token at the last position of a context of N), single token (decode) and\n"
            "        prompt row, for every kernel set the CPU has (or only the one named):\n"
            "        --heads H [32] --kv-heads K [4] --head-dim D [64] --ctx N,N,.. [64,512,2048]\n"
            "        --window W [0: none] --kernels scalar|avx2|avx512; random f16 cache;\n"
            "        us_per_call and ns_per_position (per position of the window, all heads);\n"
            "        --evict M [0]: before each call touch M MiB (64 or more flushes the CPU caches,\n"
            "        as decoding does between two uses of a layer's KV cache), time calls alone\n");
}

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* xorshift64: a fixed random cache, so that runs compare */
static uint64_t rnd_state = 0x2545f4914f6cdd1dull;
static float rnd_unit(void) {
    rnd_state ^= rnd_state << 13, rnd_state ^= rnd_state >> 7, rnd_state ^= rnd_state << 17;
    return (float)((rnd_state >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

/* "64,512" -> up to PERF_ATTN_MAX_CTX lengths in 1..1<<20; -1 on anything else. */
static int ctx_list(const char *a, int *ctx, int *n) {
    *n = 0;
    while (*a) {
        char *end;
        long v = strtol(a, &end, 10);
        if (end == a || v < 1 || v > (1 << 20) || *n == PERF_ATTN_MAX_CTX) return -1;
        ctx[(*n)++] = (int)v;
        if (*end == ',' && end[1]) end++;
        else if (*end) return -1;
        a = end;
    }
    return *n ? 0 : -1;
}

/* Read every cache line of `evict` (n bytes) so that the next call finds the KV cache
 * in memory rather than in the CPU caches, as a decoded token does (a token streams the
 * weights of every layer between two uses of one layer's cache). Reads, as the weights
 * are: the lines they leave behind are clean and cost nothing to evict again. */
static volatile unsigned char evict_sink;
static void evict_caches(const unsigned char *evict, size_t n) {
    unsigned char s = 0;
    for (size_t i = 0; i < n; i += 64) s += evict[i];
    evict_sink = s;
}

/* CPU seconds per call of one set at one position, the best of 3 rounds of at least
 * 0.1 CPU-second of calls each (the machine is shared: the best round is the least
 * disturbed); with evict, each call is timed alone after the caches were flushed. */
static double time_set(const char *set, const model_hparams_t *hp, const attn_cache_t *c, int pos, const float *q,
                       float scale, int prompt, attn_scratch_t *s, float *out, unsigned char *evict, size_t n_evict) {
    double best = 1e30;
    attention_with(set, hp, c, pos, q, scale, prompt, s, NULL, out); /* warm the code and the scratch */
    for (int round = 0; round < 3; round++) {
        int reps = 0;
        double t = 0;
        do {
            if (evict) evict_caches(evict, n_evict);
            double t0 = thread_cpu_s();
            attention_with(set, hp, c, pos, q, scale, prompt, s, NULL, out);
            t += thread_cpu_s() - t0;
            reps++;
        } while (t < 0.1 && reps < 2000);
        if (t / reps < best) best = t / reps;
    }
    return best;
}

int perf_attn(int argc, char **argv) {
    static const char *const names[] = {"scalar", "avx2", "avx512"};
    int heads = 32, kv_heads = 4, hd = 64, window = 0, evict_mib = 0, ctx[PERF_ATTN_MAX_CTX] = {64, 512, 2048}, n_ctx_list = 3;
    const char *only = NULL;
    for (int i = 0; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!v) {
            bad = 1;
        } else if (!strcmp(a, "--heads")) {
            bad = cli_parse_int(v, 1, 1024, &heads);
        } else if (!strcmp(a, "--kv-heads")) {
            bad = cli_parse_int(v, 1, 1024, &kv_heads);
        } else if (!strcmp(a, "--head-dim")) {
            bad = cli_parse_int(v, 1, 1024, &hd);
        } else if (!strcmp(a, "--window")) {
            bad = cli_parse_int(v, 0, 1 << 20, &window);
        } else if (!strcmp(a, "--evict")) {
            bad = cli_parse_int(v, 0, 4096, &evict_mib);
        } else if (!strcmp(a, "--ctx")) {
            bad = ctx_list(v, ctx, &n_ctx_list);
        } else if (!strcmp(a, "--kernels")) {
            only = v;
            bad = strcmp(v, "scalar") && strcmp(v, "avx2") && strcmp(v, "avx512");
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "tollgate perf attn: bad argument %s (see tollgate perf --help)\n", a);
            return 2;
        }
    }
    if (heads % kv_heads) {
        fprintf(stderr, "tollgate perf attn: --heads must be a multiple of --kv-heads\n");
        return 2;
    }
    if (only && !quant_kernels_named(only)) {
        fprintf(stderr, "tollgate perf attn: this CPU lacks the %s kernel set\n", only);
        return 2;
    }
    int max_ctx = 0;
    for (int i = 0; i < n_ctx_list; i++)
        if (ctx[i] > max_ctx) max_ctx = ctx[i];
    model_hparams_t hp;
    memset(&hp, 0, sizeof hp);
    hp.n_head = heads, hp.n_head_kv = kv_heads, hp.head_dim = hd, hp.n_embd = heads * hd;
    hp.sliding_window = window;
    size_t kvn = (size_t)max_ctx * kv_heads * hd, qn = (size_t)heads * hd;
    uint16_t *kc = malloc(kvn * sizeof *kc), *vc = malloc(kvn * sizeof *vc);
    float *q = malloc(qn * sizeof *q), *out = malloc(qn * sizeof *out);
    size_t n_evict = (size_t)evict_mib << 20;
    unsigned char *evict = n_evict ? malloc(n_evict) : NULL;
    attn_scratch_t *s = attn_scratch_new(&hp, max_ctx, 1);
    int rc = 1;
    if (!kc || !vc || !q || !out || !s || (n_evict && !evict)) {
        fprintf(stderr, "tollgate perf attn: out of memory for a cache of %d positions\n", max_ctx);
        goto out;
    }
    for (size_t i = 0; i < kvn; i++) kc[i] = quant_f32_to_f16(rnd_unit() * 2.0f), vc[i] = quant_f32_to_f16(rnd_unit());
    for (size_t i = 0; i < qn; i++) q[i] = rnd_unit();
    if (evict) memset(evict, 1, n_evict); /* its own pages: untouched ones all read one zero page */
    attn_cache_t c = {kc, vc, max_ctx};
    float scale = 1.0f / sqrtf((float)hd);
    for (int ci = 0; ci < n_ctx_list; ci++) {
        int pos = ctx[ci] - 1, n_win = window > 0 && window < ctx[ci] ? window : ctx[ci];
        for (int prompt = 0; prompt < 2; prompt++) {
            double scalar_s = 0;
            for (size_t ki = 0; ki < sizeof names / sizeof names[0]; ki++) {
                if (!quant_kernels_named(names[ki]) || (only && strcmp(only, names[ki]))) continue;
                double t = time_set(names[ki], &hp, &c, pos, q, scale, prompt, s, out, evict, n_evict);
                if (ki == 0) scalar_s = t;
                printf("perf: attn kernels=%s heads=%d kv_heads=%d head_dim=%d ctx=%d window=%d order=%s "
                       "evict_mib=%d us_per_call=%.1f ns_per_position=%.1f",
                       names[ki], heads, kv_heads, hd, ctx[ci], n_win, prompt ? "prompt" : "single", evict_mib,
                       t * 1e6, t * 1e9 / n_win);
                if (scalar_s > 0) printf(" vs_scalar=%.1f", scalar_s / t); /* the scalar set ran first */
                printf("\n");
                fflush(stdout);
            }
        }
    }
    rc = 0;
out:
    attn_scratch_free(s);
    free(kc), free(vc), free(q), free(out), free(evict);
    return rc;
}
