/* test_sampler.c — greedy, temperature, top-k/top-p/min-p filtering, seeded RNG and log-probabilities. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/sampler.h"

static sampler_params_t params(float temp) {
    sampler_params_t p;
    memset(&p, 0, sizeof p);
    p.temperature = temp;
    p.top_p = 1.0f;
    p.seed = 42;
    return p;
}

/* Random logits with the spread of a real model (sd ~ 3) from a fixed generator. */
static void random_logits(float *x, int n, uint64_t seed) {
    uint64_t st = sampler_seed_state(seed);
    for (int i = 0; i < n; i++) {
        double u1 = sampler_uniform(&st) + 1e-12, u2 = sampler_uniform(&st);
        x[i] = (float)(3.0 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void test_greedy(void) {
    enum { V = 32000 };
    float *x = malloc(V * sizeof *x);
    sampler_t s;
    sampler_params_t p = params(0.0f);
    CHECK_EQ_INT(sampler_init(&s, V, &p), 0);
    for (int t = 0; t < 20; t++) {
        random_logits(x, V, (uint64_t)t);
        sampler_result_t r;
        sampler_sample(&s, x, &r);
        CHECK_EQ_INT(r.id, argmax(x, V));
    }
    sampler_free(&s);

    /* top_k = 1 at any temperature is greedy */
    p = params(1.5f);
    p.top_k = 1;
    CHECK_EQ_INT(sampler_init(&s, V, &p), 0);
    for (int t = 0; t < 20; t++) {
        random_logits(x, V, 100u + (uint64_t)t);
        sampler_result_t r;
        sampler_sample(&s, x, &r);
        CHECK_EQ_INT(r.id, argmax(x, V));
    }
    sampler_free(&s);

    /* ties go to the lowest id, in both paths */
    float flat[8] = {1, 3, 2, 3, 3, 0, 1, 2};
    p = params(0.0f);
    sampler_init(&s, 8, &p);
    sampler_result_t r;
    sampler_sample(&s, flat, &r);
    CHECK_EQ_INT(r.id, 1);
    sampler_free(&s);
    p = params(1.0f);
    p.top_k = 1;
    sampler_init(&s, 8, &p);
    sampler_sample(&s, flat, &r);
    CHECK_EQ_INT(r.id, 1);
    sampler_free(&s);

    /* greedy is the one-by-one scan's id for every length and placement: ties far
     * apart, NaNs (never taken, but kept in the first place), infinities, signed zeros */
    uint64_t st = sampler_seed_state(7);
    for (int t = 0; t < 400; t++) {
        int n = 1 + (int)(sampler_uniform(&st) * 70);
        for (int i = 0; i < n; i++) x[i] = (float)(int)(sampler_uniform(&st) * 5) - 2.0f; /* many ties */
        int k = (int)(sampler_uniform(&st) * 6);
        for (int j = 0; j < k; j++) {
            int at = (int)(sampler_uniform(&st) * n);
            float special[5] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
            x[at] = special[(int)(sampler_uniform(&st) * 5)];
        }
        if (t % 50 == 0) x[0] = NAN;
        p = params(0.0f);
        CHECK_EQ_INT(sampler_init(&s, n, &p), 0);
        sampler_sample(&s, x, &r);
        CHECK_MSG(r.id == argmax(x, n), "case %d (n %d): %d, the scan %d", t, n, r.id, argmax(x, n));
        sampler_free(&s);
    }
    free(x);
}

/* Draw n tokens with p from logits; counts per id into cnt (V entries). */
static void draw(const sampler_params_t *p, const float *x, int V, int n, int *cnt, int *seq) {
    sampler_t s;
    CHECK_EQ_INT(sampler_init(&s, V, p), 0);
    memset(cnt, 0, (size_t)V * sizeof *cnt);
    for (int i = 0; i < n; i++) {
        sampler_result_t r;
        sampler_sample(&s, x, &r);
        cnt[r.id]++;
        if (seq) seq[i] = r.id;
    }
    sampler_free(&s);
}

static void test_seed(void) {
    enum { V = 1000, N = 200 };
    float x[V];
    int cnt[V], a[N], b[N], c[N];
    random_logits(x, V, 7);
    for (int i = 0; i < V; i++) x[i] *= 0.3f; /* flatter, so draws vary */
    sampler_params_t p = params(1.0f);
    p.seed = 1234;
    draw(&p, x, V, N, cnt, a);
    draw(&p, x, V, N, cnt, b);
    p.seed = 1235;
    draw(&p, x, V, N, cnt, c);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

/* log(p) for p = {0.5, 0.3, 0.15, 0.05}. */
static void four(float *x) {
    const double p[4] = {0.5, 0.3, 0.15, 0.05};
    for (int i = 0; i < 4; i++) x[i] = (float)log(p[i]);
}

static void test_filters(void) {
    float x[4];
    int cnt[4];
    four(x);
    enum { N = 20000 };

    sampler_params_t p = params(1.0f);
    draw(&p, x, 4, N, cnt, NULL); /* plain: frequencies follow the probabilities */
    CHECK_NEAR(cnt[0] / (double)N, 0.5, 0.02);
    CHECK_NEAR(cnt[1] / (double)N, 0.3, 0.02);
    CHECK_NEAR(cnt[2] / (double)N, 0.15, 0.015);
    CHECK_NEAR(cnt[3] / (double)N, 0.05, 0.01);

    p = params(1.0f);
    p.top_k = 2;
    draw(&p, x, 4, N, cnt, NULL);
    CHECK(cnt[0] > 0 && cnt[1] > 0 && cnt[2] == 0 && cnt[3] == 0);
    CHECK_NEAR(cnt[0] / (double)N, 0.5 / 0.8, 0.02); /* renormalised over the two */

    p = params(1.0f);
    p.top_p = 0.75f; /* 0.5 < 0.75 <= 0.8: tokens 0 and 1 */
    draw(&p, x, 4, N, cnt, NULL);
    CHECK(cnt[0] > 0 && cnt[1] > 0 && cnt[2] == 0 && cnt[3] == 0);
    p.top_p = 0.4f; /* the first token alone reaches it */
    draw(&p, x, 4, N, cnt, NULL);
    CHECK_EQ_INT(cnt[0], N);

    p = params(1.0f);
    p.min_p = 0.2f; /* threshold 0.1: drops only 0.05 */
    draw(&p, x, 4, N, cnt, NULL);
    CHECK(cnt[0] > 0 && cnt[1] > 0 && cnt[2] > 0 && cnt[3] == 0);
    p.min_p = 0.7f; /* threshold 0.35: only 0.5 */
    draw(&p, x, 4, N, cnt, NULL);
    CHECK_EQ_INT(cnt[0], N);

    /* temperature sharpens: at 0.25, p ~ {0.5^4, 0.3^4, ...} normalised: token 0 ~ 0.87 */
    p = params(0.25f);
    draw(&p, x, 4, N, cnt, NULL);
    double w[4], z = 0;
    for (int i = 0; i < 4; i++) z += w[i] = pow(exp(x[i]), 4.0);
    CHECK_NEAR(cnt[0] / (double)N, w[0] / z, 0.02);
}

/* top-p over a full-size vocabulary (exercises the partial sort): every chosen token is
 * inside the nucleus computed here by a full sort. */
static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void test_top_p_large(void) {
    enum { V = 32000, N = 3000 };
    float *x = malloc(V * sizeof *x), *sorted = malloc(V * sizeof *x);
    int *cnt = malloc(V * sizeof *cnt);
    random_logits(x, V, 99);
    for (int i = 0; i < V; i++) x[i] *= 0.5f; /* wide nucleus: several hundred tokens */
    memcpy(sorted, x, V * sizeof *x);
    qsort(sorted, V, sizeof *sorted, cmp_desc);
    double z = 0, cum = 0;
    for (int i = 0; i < V; i++) z += exp(sorted[i] - sorted[0]);
    float cut = sorted[V - 1];
    int nucleus = V;
    for (int i = 0; i < V; i++) {
        cum += exp(sorted[i] - sorted[0]) / z;
        if (cum >= 0.9) {
            cut = sorted[i];
            nucleus = i + 1;
            break;
        }
    }
    CHECK(nucleus > 64); /* the test means something only beyond the first partial sort */
    sampler_params_t p = params(1.0f);
    p.top_p = 0.9f;
    draw(&p, x, V, N, cnt, NULL);
    int outside = 0, distinct = 0;
    for (int i = 0; i < V; i++) {
        if (cnt[i] && x[i] < cut) outside++;
        distinct += cnt[i] > 0;
    }
    CHECK_EQ_INT(outside, 0);
    CHECK(distinct > 50);
    free(x);
    free(sorted);
    free(cnt);
}

static void test_logprobs(void) {
    enum { V = 20 };
    float x[V];
    random_logits(x, V, 5);
    sampler_params_t p = params(0.0f);
    p.want_logprobs = 1;
    p.n_top = SAMPLER_MAX_TOP;
    sampler_t s;
    sampler_init(&s, V, &p);
    sampler_result_t r;
    sampler_sample(&s, x, &r);
    CHECK_EQ_INT(r.n_top, V);
    double sum = 0;
    for (int i = 0; i < r.n_top; i++) sum += exp(r.top[i].logprob);
    CHECK_NEAR(sum, 1.0, 1e-5); /* the whole vocabulary: a distribution */
    for (int i = 1; i < r.n_top; i++) CHECK(r.top[i - 1].logprob >= r.top[i].logprob);
    CHECK_EQ_INT(r.top[0].id, r.id);
    CHECK_NEAR(r.top[0].logprob, r.logprob, 0);
    CHECK(r.logprob <= 0.0f);
    /* differences of log-probs are differences of logits */
    CHECK_NEAR(r.top[0].logprob - r.top[1].logprob, x[r.top[0].id] - x[r.top[1].id], 1e-5);
    sampler_free(&s);

    /* sampled token: its logprob is the raw one, whatever the temperature */
    p = params(2.0f);
    p.want_logprobs = 1;
    p.n_top = 3;
    sampler_init(&s, V, &p);
    double lse = 0, mx = x[argmax(x, V)];
    for (int i = 0; i < V; i++) lse += exp(x[i] - mx);
    lse = mx + log(lse);
    for (int t = 0; t < 50; t++) {
        sampler_sample(&s, x, &r);
        CHECK_NEAR(r.logprob, x[r.id] - lse, 1e-5);
        CHECK_EQ_INT(r.n_top, 3);
        CHECK(r.logprob <= r.top[0].logprob);
    }
    sampler_free(&s);

    /* a tiny temperature is greedy in effect, never NaN */
    p = params(1e-6f);
    sampler_init(&s, V, &p);
    for (int t = 0; t < 20; t++) {
        sampler_sample(&s, x, &r);
        CHECK_EQ_INT(r.id, argmax(x, V));
    }
    sampler_free(&s);

    p = params(1.0f);
    p.n_top = 21;
    CHECK_EQ_INT(sampler_init(&s, V, &p), -EINVAL);
}

int main(void) {
    test_greedy();
    test_seed();
    test_filters();
    test_top_p_large();
    test_logprobs();
    return check_summary("test_sampler");
}
