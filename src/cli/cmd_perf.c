/* cmd_perf.c — `tollgate perf`: engine speed measurements (random models of real shapes, memory bandwidth, prompt and decode rates). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/membw.h"
#include "cli/cli.h"
#include "cli/perf_batch.h"
#include "cli/perf_attn.h"
#include "core/ev.h"
#include "engine/forward.h"
#include "engine/matvec.h"
#include "engine/model.h"
#include "engine/profile.h"
#include "engine/quant.h"
#include "engine/quant_blocks.h"
#include "engine/quant_simd.h"
#include "engine/threadpool.h"
#include "model/gguf.h"

static void usage(FILE *o) {
    fprintf(o,
            "usage: tollgate perf gen --shape tinyllama|mistral7b -o FILE.gguf [--seed N]\n"
            "       tollgate perf bw [--threads N] [--mib M]\n"
            "       tollgate perf run -m FILE.gguf [--threads N] [--prompt P] [--gen G]\n"
            "                         [--weights mmap|anon] [--bw-every N] [--breakdown]\n"
            "       tollgate perf decode [--threads N] [--mib M] [--type Q4_K|Q6_K] [--cols C]\n"
            "       tollgate perf kernels [--rows R] [--cols C] [--type T] [--tokens N,N,..]\n"
            "                             [--kernels scalar|avx2|avx512]\n"
            "       tollgate perf batch -m FILE.gguf [--threads N] [--seqs N,N,..] [--steps S]\n"
            "                           [--pos P] [--breakdown]\n"
            "       tollgate perf attn [--heads H] [--kv-heads K] [--head-dim D] [--ctx N,N,..]\n"
            "                          [--window W] [--evict M] [--kernels scalar|avx2|avx512]\n"
            "\n"
            "  gen   write a llama model of that shape with random Q4_K_M weights (Q4_K, with\n"
            "        Q6_K for output, and for attn_v/ffn_down in the layers llama.cpp gives\n"
            "        more bits); the vocabulary has no tokenizer: for speed only\n"
            "  bw    memory read bandwidth: vectorised streaming reads on N threads [2], four\n"
            "        streams per thread through its M MiB [512] (as the decode kernels read)\n"
            "  run   time a P-token prompt [512] and G decoded tokens [128] on N threads [2];\n"
            "        prints one line of key=value figures; --weights anon copies the weights\n"
            "        from the file mapping into anonymous memory first [mmap: read in place]\n"
            "        bytes_per_token counts the weights one token reads, kv_bytes_per_token the\n"
            "        K/V cache it reads (mean over the decoded tokens); gen_read_gbps both;\n"
            "        gen_first_ms, gen_min_ms, gen_median_ms: the first, the fastest and the\n"
            "        median decoded token (a median well under the mean: a few tokens stalled)\n"
            "        --bw-every N: decode in segments of N tokens with the read bandwidth (as\n"
            "        bw, 256 MiB per thread) measured before the first and after each, and\n"
            "        print bw_around_gbps (its mean over the decode) and gen_of_limit (the\n"
            "        decode's read rate over it); the probe's time is not decode time\n"
            "        --breakdown: two more lines, where the prompt's time went (ms for the\n"
            "        whole prompt) and where a decoded token's went (ms per token): the weight\n"
            "        products (convert: the activations before the workers start; busyN:\n"
            "        thread N inside the product; wait: the first thread done waiting for the\n"
            "        last), the phases between them, the rest (other)\n"
            "  decode  one activation row times a random M MiB [512] matrix of T [Q4_K], C [4096]\n"
            "        columns, through matvec_mt on N threads [2] (the decode product, out of\n"
            "        cache): weight GB/s of wall time, to compare with bw at the same N\n"
            "  kernels  one thread's CPU time per weight product, every kernel set side by side:\n"
            "        an R x C matrix [2048 x 2048] of Q4_K, Q5_K, Q6_K, Q8_0, Q4_0 (or only type T)\n"
            "        times each count of activation rows in the list [1,32] (at most 32), for\n"
            "        every kernel set the CPU has (or only the one named); us_per_token is the\n"
            "        product's time over its activation rows (CPU time of the thread, so other\n"
            "        load matters little)\n"
            "  batch  engine steps with several sequences decoding together (continuous\n"
            "        batching without HTTP): for each count in the list [1,2,4,8] (at most\n"
            "        64), S [12] timed steps (after 2 untimed) of that many sequences from\n"
            "        position P [0] on N threads [2]; step time (best, mean), aggregate\n"
            "        tokens/s and its ratio to the list's first count; --breakdown: after\n"
            "        each, where a step's time went (as perf run --breakdown, ms per step)\n");
    perf_attn_usage(o);
}

/* ---- random Q4_K_M model ---------------------------------------------------------- */

typedef struct shape {
    const char *name;
    int V, D, L, H, Hkv, F;
} shape_t;

static const shape_t shapes[] = {
    {"tinyllama", 32000, 2048, 22, 32, 4, 5632},
    {"mistral7b", 32000, 4096, 32, 32, 8, 14336},
};

static uint64_t rng_state;
static uint64_t rnd64(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}
static void rnd_fill(void *p, size_t n) {
    uint8_t *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t r = rnd64();
        memcpy(b + i, &r, 8);
    }
    for (; i < n; i++) b[i] = (uint8_t)rnd64();
}

/* rows x cols of `type` random blocks with moderate scales (weights of std ~0.02). */
static void *random_matrix(int type, int64_t rows, int64_t cols, size_t *size) {
    size_t rb = ggml_row_bytes(type, cols), n = rb * (size_t)rows;
    uint8_t *p = malloc(n);
    if (!p) return NULL;
    rnd_fill(p, n);
    size_t nb = n / (type == GGML_TYPE_Q4_K ? sizeof(block_q4_K) : sizeof(block_q6_K));
    for (size_t b = 0; b < nb; b++) {
        if (type == GGML_TYPE_Q4_K) {
            block_q4_K *k = (block_q4_K *)p + b;
            k->d = quant_f32_to_f16(1e-4f);
            k->dmin = quant_f32_to_f16(1e-4f);
        } else {
            block_q6_K *k = (block_q6_K *)p + b;
            k->d = quant_f32_to_f16(2e-5f);
        }
    }
    *size = n;
    return p;
}

/* llama.cpp's Q4_K_M rule for attn_v / ffn_down: more bits in the first and last
 * eighth of the layers and every third layer between. */
static int more_bits(int l, int L) { return l < L / 8 || l >= 7 * L / 8 || (l - L / 8) % 3 == 2; }

static int add_matrix(gguf_writer_t *w, const char *name, int type, int64_t rows, int64_t cols) {
    size_t size;
    void *p = random_matrix(type, rows, cols, &size);
    if (!p) return -ENOMEM;
    int64_t ne[2] = {cols, rows};
    int rc = gguf_w_tensor(w, name, type, 2, ne, p, size);
    free(p);
    return rc;
}

static int add_norm(gguf_writer_t *w, const char *name, int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p) return -ENOMEM;
    for (int64_t i = 0; i < n; i++) p[i] = 1.0f;
    int64_t ne[1] = {n};
    int rc = gguf_w_tensor(w, name, GGML_TYPE_F32, 1, ne, p, sizeof(float) * (size_t)n);
    free(p);
    return rc;
}

static int perf_gen(const shape_t *s, const char *out, uint64_t seed) {
    rng_state = seed ? seed : 0x2545f4914f6cdd1dull;
    gguf_writer_t *w = gguf_writer_new();
    if (!w) return 1;
    int KV = s->D / s->H * s->Hkv, rc = 0;
    char name[96], err[256];
    rc |= gguf_w_str(w, "general.architecture", "llama");
    rc |= gguf_w_str(w, "general.name", s->name);
    rc |= gguf_w_u32(w, "llama.embedding_length", (uint32_t)s->D);
    rc |= gguf_w_u32(w, "llama.block_count", (uint32_t)s->L);
    rc |= gguf_w_u32(w, "llama.attention.head_count", (uint32_t)s->H);
    rc |= gguf_w_u32(w, "llama.attention.head_count_kv", (uint32_t)s->Hkv);
    rc |= gguf_w_u32(w, "llama.feed_forward_length", (uint32_t)s->F);
    rc |= gguf_w_u32(w, "llama.context_length", 2048);
    rc |= gguf_w_u32(w, "llama.rope.dimension_count", (uint32_t)(s->D / s->H));
    rc |= gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    rc |= add_matrix(w, "token_embd.weight", GGML_TYPE_Q4_K, s->V, s->D);
    for (int l = 0; l < s->L && !rc; l++) {
        int vt = more_bits(l, s->L) ? GGML_TYPE_Q6_K : GGML_TYPE_Q4_K;
#define N(x) (snprintf(name, sizeof name, "blk.%d." x, l), name)
        rc |= add_norm(w, N("attn_norm.weight"), s->D);
        rc |= add_matrix(w, N("attn_q.weight"), GGML_TYPE_Q4_K, s->D, s->D);
        rc |= add_matrix(w, N("attn_k.weight"), GGML_TYPE_Q4_K, KV, s->D);
        rc |= add_matrix(w, N("attn_v.weight"), vt, KV, s->D);
        rc |= add_matrix(w, N("attn_output.weight"), GGML_TYPE_Q4_K, s->D, s->D);
        rc |= add_norm(w, N("ffn_norm.weight"), s->D);
        rc |= add_matrix(w, N("ffn_gate.weight"), GGML_TYPE_Q4_K, s->F, s->D);
        rc |= add_matrix(w, N("ffn_up.weight"), GGML_TYPE_Q4_K, s->F, s->D);
        rc |= add_matrix(w, N("ffn_down.weight"), vt, s->D, s->F);
#undef N
    }
    rc |= add_norm(w, "output_norm.weight", s->D);
    rc |= add_matrix(w, "output.weight", GGML_TYPE_Q6_K, s->V, s->D);
    if (rc) {
        fprintf(stderr, "tollgate perf gen: out of memory building the model\n");
        gguf_writer_free(w);
        return 1;
    }
    rc = gguf_w_write(w, out, err, sizeof err);
    gguf_writer_free(w);
    if (rc) {
        fprintf(stderr, "tollgate perf gen: %s\n", err);
        return 1;
    }
    return 0;
}

/* ---- timing ------------------------------------------------------------------------ */

/* User + system CPU seconds of the process (all threads). */
static double cpu_s(const struct rusage *r) {
    return (double)r->ru_utime.tv_sec + r->ru_utime.tv_usec * 1e-6 + (double)r->ru_stime.tv_sec +
           r->ru_stime.tv_usec * 1e-6;
}

static size_t tensor_bytes(const model_tensor_t *t) { return t->data ? (size_t)t->rows * t->row_bytes : 0; }

/* Bytes of weights one decoded token reads: every matrix once, one embedding row. */
static size_t bytes_per_token(const model_t *m) {
    size_t n = tensor_bytes(&m->output) + m->tok_embd.row_bytes + sizeof(float) * m->hp.n_embd;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const model_layer_t *w = &m->layers[l];
        n += tensor_bytes(&w->wq) + tensor_bytes(&w->wk) + tensor_bytes(&w->wv) + tensor_bytes(&w->wqkv) +
             tensor_bytes(&w->wo) + tensor_bytes(&w->w_gate) + tensor_bytes(&w->w_up) +
             tensor_bytes(&w->w_down) + 2 * sizeof(float) * m->hp.n_embd;
    }
    return n;
}

/* Mean bytes of K/V cache the n_gen decoded tokens after an n_prompt-token prompt read:
 * each layer's f16 keys and values of every earlier position and its own (the sliding
 * window, where the model has one, caps the positions). */
static double kv_bytes_per_token(const model_hparams_t *hp, int n_prompt, int n_gen) {
    if (n_gen <= 0) return 0;
    double pos_sum = 0;
    for (int i = 0; i < n_gen; i++) {
        int seen = n_prompt + i + 1;
        if (hp->sliding_window > 0 && seen > hp->sliding_window) seen = hp->sliding_window;
        pos_sum += seen;
    }
    return pos_sum / n_gen * 2.0 * hp->n_layer * hp->n_head_kv * hp->head_dim * sizeof(uint16_t);
}

/* Touch every weight page so that the first timed pass does not pay the page faults. */
static unsigned touch(const model_t *m) {
    const uint8_t *p = m->file.base;
    unsigned s = 0;
    for (size_t i = 0; i < m->file.size; i += 4096) s += p[i];
    return s;
}

/* The probe perf run --bw-every takes between decode segments: 256 MiB per thread (far
 * beyond the caches), the best of 5 passes (~40 ms at this machine's rate). */
#define PERF_PROBE_MIB 256
#define PERF_PROBE_ROUNDS 5

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n > 0 values (sorts them). */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int perf_run(const char *path, int threads, int n_prompt, int n_gen, int anon, int bw_every, int breakdown) {
    model_t m;
    char err[256];
    if (model_load(path, &m, err, sizeof err)) {
        fprintf(stderr, "tollgate perf run: %s\n", err);
        return 1;
    }
    double ta = ev_clock_s();
    int arc = anon ? gguf_copy_to_memory(&m.file) : 0;
    ta = ev_clock_s() - ta;
    if (arc) {
        fprintf(stderr, "tollgate perf run: weights to anonymous memory: %s\n", strerror(-arc));
        model_free(&m);
        return 1;
    }
    tpool_t *pool = NULL;
    forward_state_t *s = NULL;
    membw_t *probe = NULL;
    double *tok_s = malloc(sizeof(double) * (size_t)(n_gen > 0 ? n_gen : 1)); /* each decoded token's time */
    int rc = 1;
    if (!tok_s || tpool_new(threads, &pool) || forward_state_new(&m, n_prompt + n_gen + 1, &s)) {
        fprintf(stderr, "tollgate perf run: out of memory\n");
        goto out;
    }
    s->pool = pool;
    volatile unsigned sink = touch(&m);
    (void)sink;
    /* the K/V cache's pages backed before timing, as a server's slots are once used:
     * first touches inside the decode were ~1.5% of its time (8 us a layer on TinyLlama) */
    size_t kv_half = forward_kv_bytes(&m.hp, s->n_ctx) / 2;
    memset(s->key_cache, 0, kv_half);
    memset(s->val_cache, 0, kv_half);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(n_prompt > 0 ? n_prompt : 1));
    if (!toks) goto out;
    for (int i = 0; i < n_prompt; i++) toks[i] = 1 + (int32_t)((i * 7919u) % (unsigned)(m.hp.n_vocab - 1));
    struct rusage r0, r1, r2;
    getrusage(RUSAGE_SELF, &r0);
    eng_profile_t pprof = {0};
    if (breakdown) eng_profile = &pprof; /* the prompt's products and phases */
    double t0 = ev_clock_s();
    const float *lg = n_prompt > 0 ? forward_prompt(&m, s, toks, n_prompt, 0) : NULL;
    double t1 = ev_clock_s();
    eng_profile = NULL;
    getrusage(RUSAGE_SELF, &r1);
    /* the probe's buffers (touched whole) are not the engine's memory: the peak reported
     * is the larger of the peak before them and the peak since, less them */
    size_t probe_bytes = (size_t)PERF_PROBE_MIB << 20;
    if (bw_every > 0 && membw_open(tpool_size(pool), probe_bytes, &probe)) {
        fprintf(stderr, "tollgate perf run: out of memory for the bandwidth probe\n");
        free(toks);
        goto out;
    }
    /* each decoded token's time in tok_s: the first pays for memory the run has not read
     * yet, the fastest and the median show what the steady state can reach. With a
     * probe, the decode runs in segments of bw_every tokens with the read bandwidth
     * measured before the first and after each (bw_s: the probes' rate over the two ends
     * of a segment, times its length, summed), so that its limit is this machine's
     * bandwidth at the moments it decoded, not minutes before; only the segments count
     * as decode time. */
    double gen_s = 0, gen_cpu = 0, bw_s = 0;
    double bw_prev = probe ? membw_measure(probe, 1, PERF_PROBE_ROUNDS) : 0;
    eng_profile_t prof = {0};
    if (breakdown) eng_profile = &prof; /* the decode only: its products and phases */
    int seg = bw_every > 0 ? bw_every : (n_gen > 0 ? n_gen : 1);
    for (int i0 = 0; i0 < n_gen && bw_prev >= 0; i0 += seg) {
        struct rusage ra, rb;
        getrusage(RUSAGE_SELF, &ra);
        double ts = ev_clock_s();
        for (int i = i0; i < n_gen && i < i0 + seg; i++) {
            double ti = ev_clock_s();
            lg = forward(&m, s, 1 + (int)((i * 104729u) % (unsigned)(m.hp.n_vocab - 1)), n_prompt + i);
            ti = ev_clock_s() - ti;
            tok_s[i] = ti;
        }
        ts = ev_clock_s() - ts;
        getrusage(RUSAGE_SELF, &rb);
        gen_s += ts, gen_cpu += cpu_s(&rb) - cpu_s(&ra);
        if (probe) {
            double bw = membw_measure(probe, 1, PERF_PROBE_ROUNDS);
            bw_s += (bw_prev + bw) / 2 * ts;
            bw_prev = bw;
        }
    }
    eng_profile = NULL;
    getrusage(RUSAGE_SELF, &r2);
    if (bw_prev < 0) {
        fprintf(stderr, "tollgate perf run: bandwidth probe: %s\n", strerror((int)-bw_prev));
        free(toks);
        goto out;
    }
    free(toks);
    if (!lg) {
        fprintf(stderr, "tollgate perf run: forward failed\n");
        goto out;
    }
    /* FNV-1a over the last logits' bytes: the same weights give the same bits whichever
     * memory they are read from (the engine is bit-identical across thread counts) */
    uint64_t lh = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof(float) * (size_t)m.hp.n_vocab; i++) lh = (lh ^ ((const uint8_t *)lg)[i]) * 0x100000001b3ull;
    double peak_mib = r1.ru_maxrss / 1024.0;
    if (probe) {
        double since = (r2.ru_maxrss - (double)(probe_bytes >> 10) * tpool_size(pool)) / 1024.0;
        if (since > peak_mib) peak_mib = since;
    }
    size_t bpt = bytes_per_token(&m);
    double kvb = kv_bytes_per_token(&m.hp, n_prompt, n_gen);
    double dtps = gen_s > 0 ? n_gen / gen_s : 0; /* --gen 0: no decode, no rate */
    double first_s = n_gen > 0 ? tok_s[0] : 0;
    double med_s = n_gen > 0 ? median(tok_s, n_gen) : 0; /* sorts tok_s: the fastest comes first */
    double min_s = n_gen > 0 ? tok_s[0] : 0;
    printf("perf: model=%s kernels=%s threads=%d prompt_tokens=%d prompt_s=%.3f prompt_tps=%.2f "
           "gen_tokens=%d gen_s=%.3f gen_tps=%.3f bytes_per_token=%zu kv_bytes_per_token=%.0f gen_read_gbps=%.2f "
           "peak_rss_mib=%.0f prompt_cpu_s=%.3f gen_cpu_s=%.3f weights=%s anon_copy_s=%.3f gen_first_ms=%.1f "
           "gen_min_ms=%.1f gen_median_ms=%.1f logits_fnv=%016llx",
           m.name[0] ? m.name : path, quant_kernels()->name, tpool_size(pool), n_prompt, t1 - t0,
           n_prompt / (t1 - t0), n_gen, gen_s, dtps, bpt, kvb, dtps * (bpt + kvb) / 1e9, peak_mib,
           cpu_s(&r1) - cpu_s(&r0), gen_cpu, anon ? "anon" : "mmap", ta, first_s * 1e3, min_s * 1e3,
           med_s * 1e3, (unsigned long long)lh);
    /* the decode's read rate over the bandwidth measured around it (time-weighted) */
    if (probe) {
        double around = gen_s > 0 ? bw_s / gen_s : 0;
        printf(" bw_around_gbps=%.2f gen_of_limit=%.3f", around / 1e9, around > 0 ? dtps * (bpt + kvb) / around : 0);
    }
    printf("\n");
    if (breakdown && n_prompt > 0) eng_profile_print(stdout, &pprof, "prompt", tpool_size(pool), t1 - t0, 1);
    if (breakdown && n_gen > 0) eng_profile_print(stdout, &prof, "token", tpool_size(pool), gen_s, n_gen);
    rc = 0;
out:
    free(tok_s);
    membw_close(probe);
    forward_state_free(s);
    tpool_free(pool);
    model_free(&m);
    return rc;
}

/* ---- decode product out of cache ------------------------------------------------ */

static int perf_decode(int threads, int mib, const char *type_name, int64_t cols) {
    int type = type_name && !strcasecmp(type_name, "Q6_K") ? GGML_TYPE_Q6_K : GGML_TYPE_Q4_K;
    if ((type_name && strcasecmp(type_name, "Q6_K") && strcasecmp(type_name, "Q4_K")) || cols % QUANT_QK_K) {
        fprintf(stderr, "tollgate perf decode: --type Q4_K or Q6_K, --cols a multiple of %d\n", QUANT_QK_K);
        return 2;
    }
    size_t rb = ggml_row_bytes(type, cols), size;
    int64_t rows = (int64_t)(((size_t)mib << 20) / rb);
    rng_state = 0x9e3779b97f4a7c15ull;
    void *data = random_matrix(type, rows, cols, &size);
    model_tensor_t W = {.data = data, .type = type, .rows = rows, .cols = cols, .row_bytes = rb};
    float *x = malloc(sizeof(float) * (size_t)cols), *y = malloc(sizeof(float) * (size_t)rows);
    void *xq = malloc(matvec_xq_bytes(type, cols));
    tpool_t *pool = NULL;
    int rc = 1;
    if (!W.data || !x || !y || !xq || tpool_new(threads, &pool)) {
        fprintf(stderr, "tollgate perf decode: out of memory\n");
        goto out;
    }
    for (int64_t c = 0; c < cols; c++) x[c] = (float)((int64_t)(rnd64() % 2001) - 1000) * 1e-3f;
    matvec_mt(pool, &W, x, y, xq, 0); /* warm: page faults, worker wake-up */
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = ev_clock_s(), t;
    int reps = 0;
    do {
        matvec_mt(pool, &W, x, y, xq, 0);
        reps++;
    } while ((t = ev_clock_s() - t0) < 2.0);
    getrusage(RUSAGE_SELF, &r1);
    printf("perf: decode type=%s rows=%lld cols=%lld mib=%.0f threads=%d kernels=%s ms_per_product=%.2f "
           "weight_gbps=%.2f cpu_s_per_product=%.4f\n",
           ggml_type_name(type), (long long)rows, (long long)cols, (double)size / (1 << 20), tpool_size(pool),
           quant_kernels()->name, t / reps * 1e3, (double)size * reps / t / 1e9, (cpu_s(&r1) - cpu_s(&r0)) / reps);
    rc = 0;
out:
    tpool_free(pool);
    free(data), free(x), free(y), free(xq);
    return rc;
}

/* ---- kernels side by side ------------------------------------------------------- */

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One kernel set on one matrix: the tiles of matmat (its chunks of weight rows for two
 * threads, times all T activation rows) on this thread, repeated for at least 0.3
 * CPU-seconds. */
static double time_tiles(const quant_kernels_t *k, int type, int64_t rows, int64_t cols, const void *w,
                         const void *xq, size_t xs, int T, float *y) {
    size_t rb = ggml_row_bytes(type, cols);
    model_tensor_t W = {.data = w, .type = type, .rows = rows, .cols = cols, .row_bytes = rb};
    int64_t chunk = matmat_chunk_rows(&W, T, 2);
    int reps = 0;
    double t0 = thread_cpu_s(), t;
    do {
        for (int64_t r = 0; r < rows; r += chunk)
            k->dot_tile(type, cols, (const uint8_t *)w + r * rb, rb, rows - r < chunk ? (int)(rows - r) : (int)chunk,
                        xq, xs, T, y + r, (size_t)rows, 0);
        reps++;
    } while ((t = thread_cpu_s() - t0) < 0.3);
    return t / reps;
}

#define PERF_MAX_TOKENS 32
/* Sequences `perf batch` runs together at most. */
#define PERF_MAX_SEQS 64

/* What `perf kernels` times: the types, kernel sets and activation-row counts. */
typedef struct kernels_opts {
    const char *type;    /* one type name (any case), or NULL for all */
    const char *kernels; /* one kernel set, or NULL for every one the CPU has */
    int tokens[PERF_MAX_TOKENS], n_tokens;
} kernels_opts_t;

/* "1,2,4,8" -> at most max counts in lo..hi; -1 on anything else. */
static int int_list_arg(const char *a, int lo, int hi, int *out, int max, int *n) {
    *n = 0;
    while (*a) {
        char *end;
        long v = strtol(a, &end, 10);
        if (end == a || v < lo || v > hi || *n == max) return -1;
        out[(*n)++] = (int)v;
        if (*end == ',' && end[1]) end++;
        else if (*end) return -1;
        a = end;
    }
    return *n ? 0 : -1;
}

static int perf_kernels(int64_t rows, int64_t cols, const kernels_opts_t *o) {
    static const int types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};
    static const char *const names[] = {"scalar", "avx2", "avx512"};
    const int Tmax = PERF_MAX_TOKENS;
    int type_known = !o->type, kernels_known = !o->kernels;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        type_known |= o->type && !strcasecmp(o->type, ggml_type_name(types[ti]));
    for (size_t ki = 0; ki < sizeof names / sizeof names[0]; ki++)
        kernels_known |= o->kernels && !strcmp(o->kernels, names[ki]);
    if (!type_known || !kernels_known) {
        fprintf(stderr, "tollgate perf kernels: unknown %s %s\n", type_known ? "kernel set" : "type",
                type_known ? o->kernels : o->type);
        return 2;
    }
    if (o->kernels && !quant_kernels_named(o->kernels)) {
        fprintf(stderr, "tollgate perf kernels: this CPU lacks the %s kernel set\n", o->kernels);
        return 2;
    }
    if (cols % QUANT_QK_K) {
        fprintf(stderr, "tollgate perf kernels: --cols must be a multiple of %d\n", QUANT_QK_K);
        return 2;
    }
    float *x = malloc(sizeof(float) * cols), *y = malloc(sizeof(float) * rows * Tmax);
    size_t wbytes = ggml_row_bytes(GGML_TYPE_Q8_0, cols) * rows + ggml_row_bytes(GGML_TYPE_Q6_K, cols) * rows;
    void *w = malloc(wbytes), *xq = malloc(ggml_row_bytes(GGML_TYPE_Q8_K, cols) * Tmax);
    int rc = 1;
    if (!x || !y || !w || !xq) {
        fprintf(stderr, "tollgate perf kernels: out of memory for a %lld x %lld matrix\n", (long long)rows,
                (long long)cols);
        goto out;
    }
    rng_state = 0x853c49e6748fea9bull;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        int type = types[ti], vt = quant_vec_dot_type(type);
        if (o->type && strcasecmp(o->type, ggml_type_name(type))) continue;
        size_t rb = ggml_row_bytes(type, cols), xs = ggml_row_bytes(vt, cols);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t c = 0; c < cols; c++) x[c] = (float)((int64_t)(rnd64() % 2001) - 1000) * 1e-5f;
            quant_quantize_row(type, x, (uint8_t *)w + r * rb, cols);
        }
        for (int t = 0; t < Tmax; t++) {
            for (int64_t c = 0; c < cols; c++) x[c] = (float)((int64_t)(rnd64() % 2001) - 1000) * 1e-3f;
            quant_quantize_row_act(vt, x, (uint8_t *)xq + t * xs, cols);
        }
        for (size_t ki = 0; ki < sizeof names / sizeof names[0]; ki++) {
            const quant_kernels_t *k = quant_kernels_named(names[ki]);
            if (!k || (o->kernels && strcmp(o->kernels, names[ki]))) continue;
            for (int i = 0; i < o->n_tokens; i++) {
                int T = o->tokens[i];
                double s = time_tiles(k, type, rows, cols, w, xq, xs, T, y);
                printf("perf: kernels=%s type=%s rows=%lld cols=%lld T=%d us_per_product=%.1f us_per_token=%.1f "
                       "gmac_per_s=%.2f weight_gb_per_cpu_s=%.2f\n",
                       k->name, ggml_type_name(type), (long long)rows, (long long)cols, T, s * 1e6, s * 1e6 / T,
                       (double)rows * cols * T / s / 1e9, (double)rows * rb / s / 1e9);
                fflush(stdout);
            }
        }
    }
    rc = 0;
out:
    free(x), free(y), free(w), free(xq);
    return rc;
}

/* ---- arguments --------------------------------------------------------------------- */

static int int_arg(const char *a, int lo, int hi, int *out) {
    char *end;
    long v = strtol(a, &end, 10);
    if (!*a || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int cmd_perf(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "attn")) return perf_attn(argc - 2, argv + 2);
    const char *what = argv[1], *model = NULL, *out = NULL, *shape = NULL;
    int anon = 0, threads = 2, n_prompt = 512, n_gen = 128, mib = 512, seed = 0, rows = 2048;
    int cols = 0; /* unset: 2048 for kernels, 4096 for decode */
    int bw_every = 0, breakdown = 0;
    kernels_opts_t kopts = {.tokens = {1, 32}, .n_tokens = 2};
    int seqs[PERF_MAX_SEQS] = {1, 2, 4, 8}, n_seqs = 4, steps = 12, pos = 0;
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--breakdown")) { /* the one option without a value */
            breakdown = 1;
            i--;
        } else if (!v) {
            bad = 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model = v;
        } else if (!strcmp(a, "-o")) {
            out = v;
        } else if (!strcmp(a, "--shape")) {
            shape = v;
        } else if (!strcmp(a, "--threads")) {
            bad = int_arg(v, 1, 256, &threads);
        } else if (!strcmp(a, "--prompt")) {
            bad = int_arg(v, 0, 1 << 20, &n_prompt);
        } else if (!strcmp(a, "--gen")) {
            bad = int_arg(v, 0, 1 << 20, &n_gen);
        } else if (!strcmp(a, "--mib")) {
            bad = int_arg(v, 1, 1 << 16, &mib);
        } else if (!strcmp(a, "--rows")) {
            bad = int_arg(v, 1, 1 << 20, &rows);
        } else if (!strcmp(a, "--cols")) {
            bad = int_arg(v, 256, 1 << 20, &cols);
        } else if (!strcmp(a, "--bw-every")) {
            bad = int_arg(v, 1, 1 << 20, &bw_every);
        } else if (!strcmp(a, "--weights")) {
            anon = !strcmp(v, "anon");
            bad = !anon && strcmp(v, "mmap");
        } else if (!strcmp(a, "--type")) {
            kopts.type = v;
        } else if (!strcmp(a, "--kernels")) {
            kopts.kernels = v;
        } else if (!strcmp(a, "--tokens")) {
            bad = int_list_arg(v, 1, PERF_MAX_TOKENS, kopts.tokens, PERF_MAX_TOKENS, &kopts.n_tokens);
        } else if (!strcmp(a, "--seqs")) {
            bad = int_list_arg(v, 1, PERF_MAX_SEQS, seqs, PERF_MAX_SEQS, &n_seqs);
        } else if (!strcmp(a, "--steps")) {
            bad = int_arg(v, 1, 1 << 16, &steps);
        } else if (!strcmp(a, "--pos")) {
            bad = int_arg(v, 0, 1 << 20, &pos);
        } else if (!strcmp(a, "--seed")) {
            bad = int_arg(v, 0, 1 << 30, &seed);
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "tollgate perf: bad argument %s (see tollgate perf --help)\n", a);
            return 2;
        }
    }
    if (!strcmp(what, "gen")) {
        for (size_t i = 0; shape && i < sizeof shapes / sizeof shapes[0]; i++)
            if (!strcmp(shape, shapes[i].name) && out) return perf_gen(&shapes[i], out, (uint64_t)seed);
        fprintf(stderr, "tollgate perf gen: needs --shape tinyllama|mistral7b and -o FILE\n");
        return 2;
    }
    if (!strcmp(what, "bw")) {
        double bw = membw_read(threads, (size_t)mib << 20, 4, 5);
        if (bw < 0) {
            fprintf(stderr, "tollgate perf bw: %s\n", strerror((int)-bw));
            return 1;
        }
        printf("perf: read_bandwidth_gbps=%.2f threads=%d mib_per_thread=%d\n", bw / 1e9, threads, mib);
        return 0;
    }
    if (!strcmp(what, "run")) {
        if (!model) {
            fprintf(stderr, "tollgate perf run: needs -m FILE.gguf\n");
            return 2;
        }
        return perf_run(model, threads, n_prompt, n_gen, anon, bw_every, breakdown);
    }
    if (!strcmp(what, "kernels")) return perf_kernels(rows, cols ? cols : 2048, &kopts);
    if (!strcmp(what, "batch")) {
        if (!model) {
            fprintf(stderr, "tollgate perf batch: needs -m FILE.gguf\n");
            return 2;
        }
        return perf_batch(model, threads, seqs, n_seqs, steps, pos, breakdown);
    }
    if (!strcmp(what, "decode")) return perf_decode(threads, mib, kopts.type, cols ? cols : 4096);
    fprintf(stderr, "tollgate perf: unknown action %s (gen, bw, run, decode, kernels, batch, attn)\n", what);
    return 2;
}
