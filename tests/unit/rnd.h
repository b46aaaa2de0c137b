/* rnd.h — the unit tests' random numbers: xorshift64 from the seed a test defines (RND_SEED), and the value shapes the kernel tests draw. */
#ifndef TOLLGATE_TESTS_RND_H
#define TOLLGATE_TESTS_RND_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef RND_SEED
#define RND_SEED 0x9e3779b97f4a7c15ull
#endif

static uint64_t rng = RND_SEED;

static inline uint32_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* roughly normal, with an occasional outlier as real activations have */
static inline float rnd_f(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) s += (float)(rnd() % 20001) / 10000.0f - 1.0f;
    if (rnd() % 97 == 0) s *= 20.0f;
    return s;
}

/* uniform in [-1, 1] */
static inline float rnd_u(void) { return (float)(rnd() % 200001) / 100000.0f - 1.0f; }

/* the same float to the bit (any NaN equals any NaN) */
static inline int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)); }

#endif
