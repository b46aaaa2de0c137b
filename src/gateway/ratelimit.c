/* ratelimit.c — exact token buckets, all-or-nothing admission, header values. */
#include "gateway/ratelimit.h"

#include <stdio.h>

static uint64_t burst_of(uint64_t rate, uint64_t burst) {
    return burst ? burst : rate;
}

void rl_bucket_init(rl_bucket_t *b, uint64_t burst, uint64_t now_ns) {
    b->level = (int64_t)burst * RL_PERIOD_NS;
    b->last_ns = now_ns;
}

void rl_bucket_refill(rl_bucket_t *b, uint64_t rate, uint64_t burst, uint64_t now_ns) {
    if (now_ns <= b->last_ns) return; /* a clock that stands still or steps back refills nothing */
    int64_t cap = (int64_t)burst * RL_PERIOD_NS;
    __int128 lv = (__int128)b->level + (__int128)rate * (now_ns - b->last_ns);
    b->level = lv > cap ? cap : (int64_t)lv;
    b->last_ns = now_ns;
}

uint64_t rl_bucket_remaining(const rl_bucket_t *b) {
    return b->level > 0 ? (uint64_t)(b->level / RL_PERIOD_NS) : 0;
}

uint64_t rl_bucket_wait_ns(const rl_bucket_t *b, uint64_t rate, uint64_t n) {
    __int128 need = (__int128)n * RL_PERIOD_NS - b->level;
    if (need <= 0) return 0;
    if (!rate) return UINT64_MAX;
    __int128 w = (need + rate - 1) / rate; /* ceil: at now + w the level is enough */
    return w > (__int128)UINT64_MAX ? UINT64_MAX : (uint64_t)w;
}

uint64_t rl_bucket_reset_ns(const rl_bucket_t *b, uint64_t rate, uint64_t burst) {
    return rl_bucket_wait_ns(b, rate, burst);
}

void rl_bucket_adjust(rl_bucket_t *b, uint64_t burst, int64_t delta) {
    int64_t cap = (int64_t)burst * RL_PERIOD_NS;
    __int128 lv = (__int128)b->level - (__int128)delta * RL_PERIOD_NS;
    if (lv > cap) lv = cap;
    if (lv < -(__int128)cap * 64)
        lv = -(__int128)cap * 64; /* bounded debt: keeps the level inside an int64 */
    b->level = (int64_t)lv;
}

void rl_state_init(rl_state_t *s, const rl_limits_t *l, uint64_t now_ns) {
    rl_bucket_init(&s->req, burst_of(l->rpm, l->rpm_burst), now_ns);
    rl_bucket_init(&s->tok, burst_of(l->tpm, l->tpm_burst), now_ns);
    s->inflight = 0;
}

static uint64_t max64(uint64_t a, uint64_t b) {
    return a > b ? a : b;
}

int rl_admit(rl_state_t *s, const rl_limits_t *l, uint64_t tokens, uint64_t now_ns,
             rl_result_t *out) {
    uint64_t rb = burst_of(l->rpm, l->rpm_burst), tb = burst_of(l->tpm, l->tpm_burst);
    if (l->rpm) rl_bucket_refill(&s->req, l->rpm, rb, now_ns);
    if (l->tpm) rl_bucket_refill(&s->tok, l->tpm, tb, now_ns);
    *out = (rl_result_t){0};
    uint64_t wr = l->rpm ? rl_bucket_wait_ns(&s->req, l->rpm, 1) : 0;
    uint64_t wt = l->tpm ? rl_bucket_wait_ns(&s->tok, l->tpm, tokens) : 0;
    if (l->tpm && tokens > tb)
        out->verdict = RL_TOO_LARGE;
    else if (l->concurrency && s->inflight >= l->concurrency)
        out->verdict = RL_CONCURRENCY;
    else if (wr)
        out->verdict = RL_REQUESTS;
    else if (wt)
        out->verdict = RL_TOKENS;
    if (out->verdict == RL_OK) {
        if (l->rpm) rl_bucket_adjust(&s->req, rb, 1);
        if (l->tpm) rl_bucket_adjust(&s->tok, tb, (int64_t)tokens);
        s->inflight++;
    } else if (out->verdict != RL_CONCURRENCY) {
        /* Both buckets must have room for the request to pass: wait for the later one. */
        out->retry_ns = max64(wr, wt);
    } else {
        /* Unknown in general (depends on when a request ends); a second is a fair hint. */
        out->retry_ns = max64(max64(wr, wt), 1000000000ull);
    }
    if (l->rpm) {
        out->remaining_requests = rl_bucket_remaining(&s->req);
        out->reset_requests_ns = rl_bucket_reset_ns(&s->req, l->rpm, rb);
    }
    if (l->tpm) {
        out->remaining_tokens = rl_bucket_remaining(&s->tok);
        out->reset_tokens_ns = rl_bucket_reset_ns(&s->tok, l->tpm, tb);
    }
    return out->verdict;
}

void rl_finish(rl_state_t *s, const rl_limits_t *l, uint64_t charged, uint64_t actual,
               uint64_t now_ns) {
    if (s->inflight) s->inflight--;
    if (!l->tpm || charged == actual) return;
    uint64_t tb = burst_of(l->tpm, l->tpm_burst);
    rl_bucket_refill(&s->tok, l->tpm, tb, now_ns);
    rl_bucket_adjust(&s->tok, tb, (int64_t)actual - (int64_t)charged);
}

uint64_t rl_retry_after_s(uint64_t ns) {
    uint64_t s = ns / 1000000000ull + (ns % 1000000000ull != 0);
    return s ? s : 1;
}

int rl_fmt_duration(uint64_t ns, char out[32]) {
    uint64_t ms = ns / 1000000 + (ns % 1000000 != 0);
    if (ms == 0) return snprintf(out, 32, "0s");
    if (ms < 1000) return snprintf(out, 32, "%llums", (unsigned long long)ms);
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
    int n = 0;
    if (h) n += snprintf(out + n, 32 - (size_t)n, "%lluh", (unsigned long long)h);
    if (h || m) n += snprintf(out + n, 32 - (size_t)n, "%llum", (unsigned long long)m);
    if (frac) {
        /* Trailing zeros dropped: 1.5s, 1.25s, 1.125s. */
        int digits = 3;
        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        n += snprintf(out + n, 32 - (size_t)n, "%llu.%0*llus", (unsigned long long)s, digits,
                      (unsigned long long)frac);
    } else {
        n += snprintf(out + n, 32 - (size_t)n, "%llus", (unsigned long long)s);
    }
    return n;
}

const char *rl_verdict_name(int v) {
    switch (v) {
    case RL_OK:
        return "ok";
    case RL_REQUESTS:
        return "requests";
    case RL_TOKENS:
        return "tokens";
    case RL_CONCURRENCY:
        return "concurrency";
    case RL_TOO_LARGE:
        return "too_large";
    }
    return "unknown";
}
