/* hist.c — log-linear histogram: bucket arithmetic, recording, merging, percentiles. */
#include "bench/hist.h"

#include <string.h>

void hist_init(hist_t *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

unsigned hist_index(uint64_t v) {
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* HIST_SUB_BITS..63 */
    unsigned shift = e - HIST_SUB_BITS;
    return ((e - HIST_SUB_BITS + 1) << HIST_SUB_BITS) + (unsigned)((v >> shift) & (HIST_SUB - 1));
}

void hist_bucket_range(unsigned idx, uint64_t *lo, uint64_t *hi) {
    if (idx < HIST_SUB) {
        *lo = *hi = idx;
        return;
    }
    unsigned e = (idx >> HIST_SUB_BITS) + HIST_SUB_BITS - 1;
    unsigned shift = e - HIST_SUB_BITS;
    uint64_t sub = idx & (HIST_SUB - 1);
    *lo = (HIST_SUB + sub) << shift;
    *hi = *lo + ((uint64_t)1 << shift) - 1;
}

void hist_record(hist_t *h, uint64_t v) {
    h->buckets[hist_index(v)]++;
    h->count++;
    h->sum += (long double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(hist_t *dst, const hist_t *src) {
    if (!src->count)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_percentile(const hist_t *h, double p) {
    if (!h->count)
        return 0;
    if (p >= 100.0)
        return h->max;
    if (p <= 0.0)
        return h->min;
    /* rank = ceil(p/100 * count), at least 1 */
    long double want = (long double)p / 100.0L * (long double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((long double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            hist_bucket_range(i, &lo, &hi);
            uint64_t mid = lo + (hi - lo) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

double hist_mean(const hist_t *h) {
    return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}
