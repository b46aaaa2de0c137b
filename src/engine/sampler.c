/* sampler.c — token choice from logits and the log-probabilities reported with it. */
#include "engine/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sampler_cand {
    float v;    /* scaled logit, then unnormalised probability exp(v - max) */
    int32_t id;
};
typedef struct sampler_cand cand_t;

uint64_t sampler_seed_state(uint64_t seed) {
    /* splitmix64: spreads small seeds (0, 1, 2...) over the whole state space */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z ? z : 0x2545F4914F6CDD1Dull;
}

double sampler_uniform(uint64_t *state) {
    uint64_t x = *state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

int sampler_init(sampler_t *s, int n_vocab, const sampler_params_t *p) {
    memset(s, 0, sizeof *s);
    if (n_vocab <= 0 || !p || p->n_top < 0 || p->n_top > SAMPLER_MAX_TOP ||
        !(p->top_p >= 0.0f) || !(p->min_p <= 1.0f) || isnan(p->temperature))
        return -EINVAL;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (!s->cand) return -ENOMEM;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = sampler_seed_state(p->seed);
    return 0;
}

void sampler_free(sampler_t *s) {
    free(s->cand);
    s->cand = NULL;
}

/* a ranks before b: larger value, then lower id (a total order, so every selection
 * and sort below is deterministic). */
static inline int better(float va, int32_t ia, float vb, int32_t ib) {
    return va > vb || (va == vb && ia < ib);
}

/* The id a one-by-one scan `if (x[i] > x[best]) best = i` ends on: the first of the
 * largest values (ties keep the lower id), NaNs never taken, a NaN in x[0] kept. Two
 * passes: the largest value with eight running maxima, then its first position. The
 * scan itself waited on its own load of x[best] for every element (147 us for 32000
 * logits here, once per sampled token; 14-30 us now). */
static int argmax(const float *x, int n) {
    float m8[8], m = x[0];
    for (int l = 0; l < 8; l++) m8[l] = x[0];
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) m8[l] = x[i + l] > m8[l] ? x[i + l] : m8[l];
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int l = 0; l < 8; l++) m = m8[l] > m ? m8[l] : m;
    if (m != m) return 0; /* x[0] is NaN: nothing is greater than it */
    for (i = 0; i < n; i++)
        if (x[i] == m) return i; /* +0 and -0 tie, as in the scan */
    return 0;
}

static inline void swap(cand_t *a, cand_t *b) {
    cand_t t = *a;
    *a = *b;
    *b = t;
}

/* Partition c[0..n) so that its k best (in `better` order) come first, in no order. */
static void select_top(cand_t *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        cand_t piv = c[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (better(c[i].v, c[i].id, piv.v, piv.id)) i++;
            while (better(piv.v, piv.id, c[j].v, c[j].id)) j--;
            if (i <= j) swap(&c[i++], &c[j--]);
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

static int cmp_cand(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    if (better(x->v, x->id, y->v, y->id)) return -1;
    if (better(y->v, y->id, x->v, x->id)) return 1;
    return 0;
}

/* Keep the smallest best-first prefix of c[0..n) whose mass reaches top_p of the total;
 * returns its length. Sorts only as much as it needs: most of the mass of a real
 * distribution sits in a few dozen tokens, so sorting 32000 would be waste. */
static int apply_top_p(cand_t *c, int n, float top_p) {
    double total = 0.0;
    for (int i = 0; i < n; i++) total += c[i].v;
    double target = (double)top_p * total, cum = 0.0;
    int done = 0; /* c[0..done) is sorted, its mass in cum */
    for (int m = 64;; m *= 4) {
        if (m >= n) m = n;
        else select_top(c + done, n - done, m - done);
        qsort(c + done, (size_t)(m - done), sizeof *c, cmp_cand);
        for (int i = done; i < m; i++) {
            cum += c[i].v;
            if (cum >= target) return i + 1;
        }
        if (m == n) return n;
        done = m;
    }
}

static void top_logprobs(const float *logits, int n, double lse, int k, sampler_result_t *out) {
    int cnt = 0;
    sampler_logprob_t *t = out->top;
    for (int i = 0; i < n && k > 0; i++) {
        float v = logits[i];
        if (cnt == k && !better(v, i, t[cnt - 1].logprob, t[cnt - 1].id)) continue;
        int j = cnt < k ? cnt++ : k - 1;
        while (j > 0 && better(v, i, t[j - 1].logprob, t[j - 1].id)) {
            t[j] = t[j - 1];
            j--;
        }
        t[j].id = i;
        t[j].logprob = v; /* raw logit for now: same order, converted below */
    }
    for (int j = 0; j < cnt; j++) t[j].logprob = (float)((double)t[j].logprob - lse);
    out->n_top = cnt;
}

void sampler_sample(sampler_t *s, const float *logits, sampler_result_t *out) {
    const sampler_params_t *p = &s->p;
    int n = s->n_vocab;
    int32_t chosen;
    if (p->temperature <= 0.0f || p->top_k == 1) {
        chosen = argmax(logits, n);
    } else {
        cand_t *c = s->cand;
        float inv_t = 1.0f / p->temperature, max = logits[argmax(logits, n)];
        /* (l - max) / T <= 0: no overflow even for a tiny temperature; the best gets 1.0 */
        for (int i = 0; i < n; i++) {
            c[i].v = expf((logits[i] - max) * inv_t);
            c[i].id = i;
        }
        if (p->top_k > 0 && p->top_k < n) {
            select_top(c, n, p->top_k);
            n = p->top_k;
        }
        if (p->top_p < 1.0f) n = apply_top_p(c, n, p->top_p);
        if (p->min_p > 0.0f) {
            /* p_i / p_max, and p_max is exactly 1 here; the best always stays */
            int k = 0;
            for (int i = 0; i < n; i++)
                if (c[i].v >= p->min_p) c[k++] = c[i];
            n = k;
        }
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += c[i].v;
        double r = sampler_uniform(&s->rng) * sum, acc = 0.0;
        chosen = c[n - 1].id; /* rounding: r may exceed the running sum by an ulp */
        for (int i = 0; i < n; i++) {
            acc += c[i].v;
            if (r < acc) {
                chosen = c[i].id;
                break;
            }
        }
    }
    out->id = chosen;
    out->logprob = 0.0f;
    out->n_top = 0;
    if (!p->want_logprobs) return;
    /* log_softmax over the raw logits, in double: 32000 terms in float would lose the
     * small ones, and the reference's numbers are compared to a few hundredths */
    int nv = s->n_vocab;
    float mx = logits[argmax(logits, nv)];
    double sum = 0.0;
    for (int i = 0; i < nv; i++) sum += exp((double)logits[i] - mx);
    double lse = (double)mx + log(sum);
    out->logprob = (float)((double)logits[chosen] - lse);
    top_logprobs(logits, nv, lse, p->n_top, out);
}
