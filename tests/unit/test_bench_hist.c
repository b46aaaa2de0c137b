/* test_bench_hist.c — the load generator's histogram: bucket layout and percentiles of known distributions. */
#include <stdint.h>
#include <stdlib.h>

#include "bench/hist.h"
#include "check.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Exact percentile by the same rank rule (ceil(p% * n), 1-based) over sorted samples. */
static uint64_t exact(const uint64_t *sorted, size_t n, double p) {
    double want = p / 100.0 * (double)n;
    size_t rank = (size_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double worst_rel_err(hist_t *h, uint64_t *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_u64);
    static const double ps[] = {1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99};
    double worst = 0;
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        double want = (double)exact(v, n, ps[i]);
        double got = (double)hist_percentile(h, ps[i]);
        double err = want ? (got > want ? got - want : want - got) / want : got;
        if (err > worst)
            worst = err;
    }
    return worst;
}

int main(void) {
    static hist_t h, h2;

    /* Layout: every value maps to a bucket that contains it; indexes are monotonic
     * and in range, including the extremes. */
    uint64_t probes[] = {0, 1, 127, 128, 129, 255, 256, 1000, 123456789, UINT64_MAX / 3, UINT64_MAX};
    unsigned prev = 0;
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        unsigned idx = hist_index(probes[i]);
        uint64_t lo, hi;
        hist_bucket_range(idx, &lo, &hi);
        CHECK(idx < HIST_BUCKETS);
        CHECK(lo <= probes[i] && probes[i] <= hi);
        CHECK((double)(hi - lo) <= (double)lo / 128.0 + 1);
        CHECK(idx >= prev);
        prev = idx;
    }
    CHECK_EQ_INT(hist_index(UINT64_MAX), HIST_BUCKETS - 1);

    /* Empty histogram. */
    hist_init(&h);
    CHECK_EQ_INT(hist_percentile(&h, 50), 0);
    CHECK_EQ_INT(h.count, 0);

    /* Small integers are exact: 1..100, p50 = 50, p90 = 90, p99 = 99, max 100. */
    for (uint64_t v = 1; v <= 100; v++)
        hist_record(&h, v);
    CHECK_EQ_INT(hist_percentile(&h, 50), 50);
    CHECK_EQ_INT(hist_percentile(&h, 90), 90);
    CHECK_EQ_INT(hist_percentile(&h, 99), 99);
    CHECK_EQ_INT(hist_percentile(&h, 100), 100);
    CHECK_EQ_INT(hist_percentile(&h, 0), 1);
    CHECK_NEAR(hist_mean(&h), 50.5, 1e-9);

    /* A constant: every percentile is that value (clamped to min/max). */
    hist_init(&h);
    for (int i = 0; i < 1000; i++)
        hist_record(&h, 250000000); /* 250 ms in ns */
    CHECK_EQ_INT(hist_percentile(&h, 1), 250000000);
    CHECK_EQ_INT(hist_percentile(&h, 99.9), 250000000);

    /* Uniform over [1 ms, 1 s] in ns, 200k samples: < 1% error at every percentile. */
    enum { N = 200000 };
    static uint64_t v[N];
    hist_init(&h);
    for (size_t i = 0; i < N; i++) {
        v[i] = 1000000 + rng() % 999000000;
        hist_record(&h, v[i]);
    }
    double e = worst_rel_err(&h, v, N);
    CHECK_MSG(e < 0.01, "uniform worst relative error %g", e);

    /* Exponential (mean 20 ms) — the shape of latency tails — plus merging of two halves. */
    hist_init(&h);
    hist_init(&h2);
    for (size_t i = 0; i < N; i++) {
        double u = ((double)(rng() >> 11) + 0.5) / 9007199254740992.0;
        v[i] = (uint64_t)(-log(u) * 20e6) + 1;
        hist_record(i % 2 ? &h : &h2, v[i]);
    }
    hist_merge(&h, &h2);
    CHECK_EQ_INT(h.count, N);
    e = worst_rel_err(&h, v, N);
    CHECK_MSG(e < 0.01, "exponential worst relative error %g", e);
    CHECK_EQ_INT(hist_percentile(&h, 100), v[N - 1]); /* v sorted now: max exact */
    CHECK_EQ_INT(h.min, v[0]);

    /* Bimodal: 90% fast (~1 ms), 10% slow (~500 ms): p50 fast, p95 slow. */
    hist_init(&h);
    for (size_t i = 0; i < 10000; i++)
        hist_record(&h, i % 10 == 0 ? 500000000 + i : 1000000 + i);
    CHECK(hist_percentile(&h, 50) < 2000000);
    CHECK(hist_percentile(&h, 95) >= 495000000);
    CHECK(hist_percentile(&h, 89) < 2000000);

    return check_summary("test_bench_hist");
}
