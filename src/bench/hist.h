/* hist.h — fixed-memory log-linear latency histogram (HdrHistogram-like), mergeable across threads. */
#ifndef TOLLGATE_BENCH_HIST_H
#define TOLLGATE_BENCH_HIST_H

#include <stdint.h>

/* Values below 2^HIST_SUB_BITS are counted exactly; above, each power of two is
 * split into 2^HIST_SUB_BITS equal buckets, so a bucket is at most 1/128 of its
 * value wide and a percentile (reported as the bucket's midpoint) is within
 * 0.4% of the true sample. Covers the whole uint64_t range. */
#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

/* ~58 KiB: allocate once per thread and per metric, never per sample. */
typedef struct hist {
    uint64_t count;          /* samples recorded */
    uint64_t min, max;       /* exact extremes (min is UINT64_MAX when empty) */
    long double sum;         /* for the mean; long double so ns sums never overflow */
    uint64_t buckets[HIST_BUCKETS];
} hist_t;

void hist_init(hist_t *h);
/* Count one sample. O(1), no allocation. */
void hist_record(hist_t *h, uint64_t v);
/* dst += src (same layout by construction). */
void hist_merge(hist_t *dst, const hist_t *src);
/* Value at percentile p in [0, 100]: the smallest recorded bucket whose
 * cumulative count reaches ceil(p% of count), as its midpoint clamped to
 * [min, max]; p = 100 gives max exactly. 0 when empty. */
uint64_t hist_percentile(const hist_t *h, double p);
double hist_mean(const hist_t *h);

/* Bucket index of v and the value range [lo, hi] of a bucket (exposed for tests). */
unsigned hist_index(uint64_t v);
void hist_bucket_range(unsigned idx, uint64_t *lo, uint64_t *hi);

#endif
