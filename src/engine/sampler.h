/* sampler.h — choose the next token from logits (greedy, temperature, top-k, top-p, min-p, seeded RNG) and report log-probabilities. */
#ifndef TOLLGATE_ENGINE_SAMPLER_H
#define TOLLGATE_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/* Most alternatives reported per step (OpenAI's top_logprobs limit). */
#define SAMPLER_MAX_TOP 20

typedef struct sampler_params {
    float temperature;  /* <= 0: greedy (argmax, ties to the lowest id) */
    int top_k;          /* keep the k most likely; <= 0: off */
    float top_p;        /* keep the smallest set with mass >= top_p; >= 1: off */
    float min_p;        /* drop tokens with p < min_p * p_max; <= 0: off */
    uint64_t seed;      /* RNG seed: the same seed and logits give the same tokens */
    int n_top;          /* alternatives to report, 0..SAMPLER_MAX_TOP */
    int want_logprobs;  /* compute the chosen token's log-probability (and n_top) */
} sampler_params_t;

/* One token and its log-probability under the model's raw distribution. */
typedef struct sampler_logprob {
    int32_t id;
    float logprob;
} sampler_logprob_t;

/* What sampler_sample chose. Log-probabilities are log_softmax(logits) over the whole
 * vocabulary at temperature 1, before any filtering (vLLM's "raw" logprobs; what the
 * reference data holds), so they describe the model, not the sampling settings. */
typedef struct sampler_result {
    int32_t id;                           /* the chosen token */
    float logprob;                        /* its log-probability (when want_logprobs) */
    int n_top;                            /* entries in top (when want_logprobs) */
    sampler_logprob_t top[SAMPLER_MAX_TOP]; /* most likely first; ties by lower id */
} sampler_result_t;

/* Per-sequence sampler: parameters, RNG state and scratch sized to the vocabulary, all
 * allocated in sampler_new so that sampling never allocates. Owned by one thread. */
typedef struct sampler {
    sampler_params_t p;
    uint64_t rng;       /* xorshift64* state, never 0 */
    int n_vocab;
    struct sampler_cand *cand; /* (V) candidates: id and scaled logit, then probability */
} sampler_t;

/* 0, -EINVAL (n_vocab <= 0 or a parameter out of range), -ENOMEM. */
int sampler_init(sampler_t *s, int n_vocab, const sampler_params_t *p);
void sampler_free(sampler_t *s);

/* Choose a token from logits (V floats). Order of operations, applied to the logits:
 *   1. temperature <= 0 or top_k == 1: argmax, no randomness;
 *   2. divide by temperature, softmax over the vocabulary;
 *   3. top-k, then top-p over the renormalised top-k set, then min-p (relative to the
 *      most likely token, so unaffected by renormalisation) -- vLLM's order;
 *   4. draw from what is left, renormalised, with the sequence's RNG.
 * The most likely token always survives, so a choice always exists. */
void sampler_sample(sampler_t *s, const float *logits, sampler_result_t *out);

/* Uniform double in [0, 1) from the state (xorshift64*). Exposed for tests. */
double sampler_uniform(uint64_t *state);
/* Seed a state: splitmix64 of seed, never 0. */
uint64_t sampler_seed_state(uint64_t seed);

#endif
