/* attention.c — causal multi-head attention of one token over one layer's f16 KV cache, in the reference's arithmetic: the scalar definition, the kernel dispatch and the split of heads over threads. */
#include "engine/attention.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/attention_kern.h"
#include "engine/quant.h"
#include "engine/quant_simd.h"
#include "engine/vexp.h"

/* Round to half precision and back (the reference converts the f32 operand of a product
 * with an f16 tensor to f16 first). */
static float f16_round(float x) { return quant_f16_to_f32(quant_f32_to_f16(x)); }

/* The reference's f16 dot products inside attention take two routes: a prompt (several
 * tokens) goes through a tiled kernel keeping 16 float lanes with FMA (lane = i % 16);
 * a single token goes through its vector dot, which keeps four 16-lane accumulators over
 * chunks of 64 and adds the rest in double. Both are reproduced. a, b (n) floats that
 * are exactly representable in f16. */
static float reduce16(float *acc) {
    for (int i = 0; i < 8; i++) acc[i] = acc[i + 8] + acc[i];
    for (int i = 0; i < 4; i++) acc[i] = acc[i + 4] + acc[i];
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

static float dot_f16_tiled(int n, const float *a, const float *b) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] = fmaf(a[i + l], b[i + l], acc[l]);
    float r = reduce16(acc);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static float dot_f16_vec(int n, const float *a, const float *b) {
    double sum = 0.0;
    int i = 0, np = n & ~63;
    if (np) {
        float acc[4][16] = {{0}};
        for (; i < np; i += 64)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 16; l++) acc[j][l] = fmaf(a[i + 16 * j + l], b[i + 16 * j + l], acc[j][l]);
        for (int l = 0; l < 16; l++) {
            acc[0][l] = acc[0][l] + acc[2][l];
            acc[1][l] = acc[1][l] + acc[3][l];
            acc[0][l] = acc[0][l] + acc[1][l];
        }
        sum = reduce16(acc[0]);
    }
    for (; i < n; i++) sum += (double)(a[i] * b[i]);
    return (float)sum;
}

/* The definition of one head, one element at a time. Positions are padded to n_kv as
 * the reference's cache view; padding and positions outside the window weigh exactly 0. */
void attn_head_scalar(const attn_head_job_t *j, const float *q, const uint16_t *k, const uint16_t *v,
                      float *att, float *qh, float *work, float *out) {
    int hd = j->hd, lo = j->lo, pos = j->pos, n_kv = j->n_kv;
    float (*dot)(int, const float *, const float *) = j->prompt ? dot_f16_tiled : dot_f16_vec;
    float *kv = work; /* (max(hd, n_kv)) one K row or one V column, as floats */
    for (int i = 0; i < hd; i++) qh[i] = f16_round(q[i]);
    float max = -INFINITY;
    for (int t = lo; t <= pos; t++) {
        const uint16_t *kt = k + (size_t)t * j->kv_dim;
        for (int i = 0; i < hd; i++) kv[i] = quant_f16_to_f32(kt[i]);
        att[t] = dot(hd, kv, qh) * j->scale;
        if (att[t] > max) max = att[t];
    }
    /* softmax: exp per element, float sums of 16 lanes added in double */
    double sum = 0.0;
    for (int c0 = 0; c0 < n_kv; c0 += 16) {
        float acc[16];
        for (int l = 0; l < 16; l++) {
            int t = c0 + l;
            acc[l] = (t >= lo && t <= pos) ? v_expf(att[t] - max) : 0.0f;
            if (t < n_kv) att[t] = acc[l];
        }
        sum += (double)reduce16(acc);
    }
    float inv = (float)(1.0 / sum);
    for (int t = 0; t < n_kv; t++) att[t] = f16_round(att[t] * inv); /* f16 operand */
    /* out[i] = sum_t p_t v[t][i], over the padded view (zeros weigh nothing) */
    for (int i = 0; i < hd; i++) {
        for (int t = 0; t < n_kv; t++)
            kv[t] = (t >= lo && t <= pos) ? quant_f16_to_f32(v[(size_t)t * j->kv_dim + i]) : 0.0f;
        out[i] = dot(n_kv, kv, att);
    }
}

void attn_heads_scalar(const attn_head_job_t *j, int nh, const float *q, const uint16_t *k, const uint16_t *v,
                       float *att, size_t att_stride, float *qh, float *work, float *out) {
    (void)att_stride; /* one head at a time: its buffers are reused */
    for (int h = 0; h < nh; h++)
        attn_head_scalar(j, q + (size_t)h * j->hd, k, v, att, qh, work, out + (size_t)h * j->hd);
}

/* ---- kernel choice ----------------------------------------------------------------- */

typedef struct attn_kernel {
    const char *name;
    attn_heads_fn heads;
} attn_kernel_t;

static const attn_kernel_t kernels[] = {
    {"scalar", attn_heads_scalar},
    {"avx2", attn_heads_avx2},
    {"avx512", attn_heads_avx512},
};

/* Which sets this CPU runs, found once: quant_kernels_named asks cpuid, which is far too
 * slow (a trap under some hypervisors) for every call. Written under pthread_once,
 * read-only afterwards. */
static int runnable[sizeof kernels / sizeof kernels[0]];
static const attn_kernel_t *chosen;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe(void) {
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        runnable[i] = quant_kernels_named(kernels[i].name) != NULL;
    /* follow the weight kernels' choice, so TOLLGATE_KERNELS=scalar|avx2 caps both */
    const char *want = quant_kernels()->name;
    chosen = &kernels[0];
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (runnable[i] && !strcmp(kernels[i].name, want)) chosen = &kernels[i];
}

/* The set named `name` if this CPU runs it, else NULL; NULL name: the chosen set. */
static const attn_kernel_t *kernel_named(const char *name) {
    pthread_once(&probe_once, probe);
    if (!name) return chosen;
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (runnable[i] && !strcmp(kernels[i].name, name)) return &kernels[i];
    return NULL;
}

const char *attention_kernels(void) { return kernel_named(NULL)->name; }

/* ---- scratch ----------------------------------------------------------------------- */

/* One thread's buffers (sizes as attn_heads_fn asks for them, for ATTN_UNIT_MAX heads). */
typedef struct attn_slot {
    float *att;  /* (ATTN_UNIT_MAX, C64 + 64) scores, then probabilities */
    float *qh;   /* (ATTN_UNIT_MAX, hd) the heads' queries rounded to f16 */
    float *work; /* (max(ATTN_UNIT_MAX * 64 * hd, C64 + 64)) accumulators, or K rows / a V column */
} attn_slot_t;

struct attn_scratch {
    int n_ctx, n_threads;
    size_t att_stride; /* floats between two heads' rows of slot[i].att */
    attn_slot_t *slot; /* (n_threads) */
};

static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

attn_scratch_t *attn_scratch_new(const model_hparams_t *hp, int n_ctx, int n_threads) {
    if (n_ctx <= 0 || hp->head_dim <= 0) return NULL;
    if (n_threads < 1) n_threads = 1;
    attn_scratch_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->n_ctx = n_ctx;
    s->n_threads = n_threads;
    s->slot = calloc((size_t)n_threads, sizeof *s->slot);
    if (!s->slot) goto err;
    size_t c64 = ((size_t)n_ctx + 63) / 64 * 64 + 64, hd = (size_t)hp->head_dim;
    s->att_stride = c64;
    for (int i = 0; i < n_threads; i++) {
        attn_slot_t *t = &s->slot[i];
        t->att = alloc_floats(ATTN_UNIT_MAX * c64);
        t->qh = alloc_floats(ATTN_UNIT_MAX * hd);
        t->work = alloc_floats(ATTN_UNIT_MAX * 64 * hd > c64 ? ATTN_UNIT_MAX * 64 * hd : c64);
        if (!t->att || !t->qh || !t->work) goto err;
    }
    return s;
err:
    attn_scratch_free(s);
    return NULL;
}

void attn_scratch_free(attn_scratch_t *s) {
    if (!s) return;
    for (int i = 0; s->slot && i < s->n_threads; i++) {
        free(s->slot[i].att);
        free(s->slot[i].qh);
        free(s->slot[i].work);
    }
    free(s->slot);
    free(s);
}

/* ---- heads over threads ------------------------------------------------------------ */

/* One call's shared state: heads are claimed in units of `per_unit` consecutive heads
 * of one KV group (which convert each K row once and reuse the group's rows from the
 * thread's cache); `next` is the only field written while the threads run. */
typedef struct attn_run {
    const attn_head_job_t *job;
    attn_heads_fn heads;
    const attn_cache_t *c;
    const float *q;
    float *out;
    attn_scratch_t *s;
    int group, per_unit, n_units, n_threads;
    atomic_int next;
} attn_run_t;

static void run_units(void *arg, int ith) {
    attn_run_t *r = arg;
    if (ith >= r->n_threads) return; /* no scratch for it */
    attn_slot_t *sl = &r->s->slot[ith];
    int hd = r->job->hd;
    for (;;) {
        int u = atomic_fetch_add(&r->next, 1);
        if (u >= r->n_units) break;
        int h = u * r->per_unit; /* units never straddle two groups: per_unit divides group */
        size_t kvoff = (size_t)(h / r->group) * hd;
        r->heads(r->job, r->per_unit, r->q + (size_t)h * hd, r->c->key + kvoff, r->c->val + kvoff, sl->att,
                 r->s->att_stride, sl->qh, sl->work, r->out + (size_t)h * hd);
    }
}

/* Below this many multiply-adds (window x heads x head_dim, scores alone) one thread
 * does the heads: waking the pool costs a few microseconds. */
#define ATTN_MT_MIN_WORK (1 << 17)

/* Set up one call's job and run (units not yet chosen); -1 when the set or the range is bad. */
static int prepare(const char *kernels_name, const model_hparams_t *hp, const attn_cache_t *c, int pos,
                   const float *q, float scale, int prompt, attn_scratch_t *s, float *out, attn_head_job_t *job,
                   attn_run_t *r) {
    const attn_kernel_t *k = kernel_named(kernels_name);
    if (!k) return -1;
    if (pos < 0 || pos >= c->n_ctx || c->n_ctx > s->n_ctx) return -1;
    int hd = hp->head_dim;
    *job = (attn_head_job_t){.hd = hd, .kv_dim = hp->n_head_kv * hd, .pos = pos, .prompt = prompt, .scale = scale};
    job->n_kv = (pos + 1 + 31) / 32 * 32;
    if (job->n_kv > c->n_ctx) job->n_kv = c->n_ctx;
    if (hp->sliding_window > 0 && pos - hp->sliding_window + 1 > 0) job->lo = pos - hp->sliding_window + 1;
    *r = (attn_run_t){.job = job, .heads = hd % 16 ? attn_heads_scalar : k->heads, .c = c, .q = q, .out = out,
                      .s = s, .group = hp->n_head / hp->n_head_kv};
    atomic_init(&r->next, 0);
    return 0;
}

/* Units for nth threads: the largest divisor of the group (at most ATTN_UNIT_MAX) that
 * still leaves two units per thread to share out (any number when alone). */
static void set_units(attn_run_t *r, const model_hparams_t *hp, int nth) {
    r->per_unit = 1;
    for (int d = 1; d <= r->group && d <= ATTN_UNIT_MAX; d++)
        if (r->group % d == 0 && (nth == 1 || hp->n_head / d >= 2 * nth)) r->per_unit = d;
    r->n_units = hp->n_head / r->per_unit;
    r->n_threads = nth;
}

int attention_with(const char *kernels_name, const model_hparams_t *hp, const attn_cache_t *c, int pos,
                   const float *q, float scale, int prompt, attn_scratch_t *s, tpool_t *pool, float *out) {
    attn_head_job_t job;
    attn_run_t r;
    if (prepare(kernels_name, hp, c, pos, q, scale, prompt, s, out, &job, &r)) return -1;
    int nth = tpool_size(pool) < s->n_threads ? tpool_size(pool) : s->n_threads;
    if ((double)(pos - job.lo + 1) * hp->n_head * hp->head_dim < ATTN_MT_MIN_WORK) nth = 1;
    set_units(&r, hp, nth);
    if (nth <= 1)
        run_units(&r, 0);
    else
        tpool_run(pool, run_units, &r);
    return 0;
}

int attention_slot(const model_hparams_t *hp, const attn_cache_t *c, int pos, const float *q, float scale,
                   int prompt, attn_scratch_t *s, int slot, float *out) {
    attn_head_job_t job;
    attn_run_t r;
    if (slot < 0 || slot >= s->n_threads || prepare(NULL, hp, c, pos, q, scale, prompt, s, out, &job, &r))
        return -1;
    set_units(&r, hp, 1);
    r.n_threads = slot + 1; /* run_units turns away threads without a slot */
    run_units(&r, slot);
    return 0;
}

void attention(const model_hparams_t *hp, const attn_cache_t *c, int pos, const float *q, float scale,
               int prompt, attn_scratch_t *s, tpool_t *pool, float *out) {
    attention_with(NULL, hp, c, pos, q, scale, prompt, s, pool, out);
}
