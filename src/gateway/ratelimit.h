/* ratelimit.h — per-service rate limits: exact token buckets (requests and tokens per minute,
 * with bursts), a concurrency count, Retry-After and x-ratelimit-* values. Pure functions of
 * (state, now): the caller owns the clock (tests inject it) and the locking. */
#ifndef TOLLGATE_GATEWAY_RATELIMIT_H
#define TOLLGATE_GATEWAY_RATELIMIT_H

#include <stdint.h>

#define RL_PERIOD_NS 60000000000LL /* every rate is per minute */
#define RL_MAX_BURST 100000000ULL  /* keeps burst × RL_PERIOD_NS inside an int64 */

/* Which limit decided. */
typedef enum rl_verdict {
    RL_OK = 0,
    RL_REQUESTS,    /* requests per minute: 429, retry later */
    RL_TOKENS,      /* tokens per minute: 429, retry later */
    RL_CONCURRENCY, /* concurrent requests: 429, retry when one finishes */
    RL_TOO_LARGE,   /* the request alone costs more than the token burst: can never pass */
} rl_verdict_t;

/* A service's limits; 0 means unlimited for each. */
typedef struct rl_limits {
    uint64_t rpm;         /* requests per minute (refill rate) */
    uint64_t rpm_burst;   /* bucket size; 0 = rpm */
    uint64_t tpm;         /* tokens per minute, prompt + completion */
    uint64_t tpm_burst;   /* 0 = tpm */
    uint32_t concurrency; /* requests in flight at once */
} rl_limits_t;

/* A token bucket in exact integer arithmetic: the level counts tokens × RL_PERIOD_NS, so a
 * refill of `rate` per minute adds rate × elapsed_ns with no rounding at all. The level may
 * go below zero after a correction charges more than was reserved (debt, repaid by refill). */
typedef struct rl_bucket {
    int64_t level;    /* tokens × RL_PERIOD_NS */
    uint64_t last_ns; /* monotonic time of the last refill */
} rl_bucket_t;

/* Full bucket at now. */
void rl_bucket_init(rl_bucket_t *b, uint64_t burst, uint64_t now_ns);
/* Add what rate per minute has refilled since the last call, capped at burst. */
void rl_bucket_refill(rl_bucket_t *b, uint64_t rate, uint64_t burst, uint64_t now_ns);
/* Whole tokens available (>= 0). */
uint64_t rl_bucket_remaining(const rl_bucket_t *b);
/* ns until n tokens are available (0 when they are); UINT64_MAX when rate is 0. */
uint64_t rl_bucket_wait_ns(const rl_bucket_t *b, uint64_t rate, uint64_t n);
/* ns until the bucket is full again (OpenAI's x-ratelimit-reset-*). */
uint64_t rl_bucket_reset_ns(const rl_bucket_t *b, uint64_t rate, uint64_t burst);
/* Charge (delta > 0) or refund (delta < 0) tokens; a refund never fills past burst. */
void rl_bucket_adjust(rl_bucket_t *b, uint64_t burst, int64_t delta);

/* A service's local limiter state (the caller serialises access). */
typedef struct rl_state {
    rl_bucket_t req;   /* requests per minute */
    rl_bucket_t tok;   /* tokens per minute */
    uint32_t inflight; /* admitted and not finished */
} rl_state_t;

/* What an admission decided, with everything the response headers need. */
typedef struct rl_result {
    int verdict;                 /* rl_verdict_t */
    uint64_t retry_ns;           /* refused: when the same request would pass */
    uint64_t remaining_requests; /* after this request */
    uint64_t remaining_tokens;
    uint64_t reset_requests_ns;
    uint64_t reset_tokens_ns;
} rl_result_t;

void rl_state_init(rl_state_t *s, const rl_limits_t *l, uint64_t now_ns);
/* Admit one request costing `tokens` (prompt + completion allowance), all limits at once:
 * either everything is charged (one request, the tokens, one in flight) or nothing.
 * Returns the verdict (also in out). */
int rl_admit(rl_state_t *s, const rl_limits_t *l, uint64_t tokens, uint64_t now_ns,
             rl_result_t *out);
/* The admitted request ended: one fewer in flight, and the tokens bucket corrected by
 * actual - charged (refund what was reserved and not used, charge an excess). */
void rl_finish(rl_state_t *s, const rl_limits_t *l, uint64_t charged, uint64_t actual,
               uint64_t now_ns);

/* Retry-After in whole seconds, rounded up, at least 1. */
uint64_t rl_retry_after_s(uint64_t ns);
/* OpenAI's duration form for x-ratelimit-reset-*: "0s", "250ms", "1s", "1.5s", "6m0s",
 * "1h2m3s" (rounded up to the millisecond). Returns the length. */
int rl_fmt_duration(uint64_t ns, char out[32]);
const char *rl_verdict_name(int v); /* "ok", "requests", "tokens", "concurrency", "too_large" */

#endif
