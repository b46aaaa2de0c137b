/* govshared.c — the shared-limit Lua scripts and their calls. */
#include "gateway/govshared.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

/* Admission, atomic in Redis. Time is Redis's own clock (TIME), so replicas with skewed
 * clocks still share one bucket. Buckets hold tokens x 60e6 (microseconds per minute), as
 * the local limiter holds tokens x ns: refills are exact integers (Lua numbers are doubles,
 * exact below 2^53: a burst of 1e8 tokens is 6e15). Levels are stored with %.0f because
 * Lua's default number format would round them.
 * KEYS: 1 request bucket, 2 token bucket, 3 concurrency leases (zset, score = expiry),
 *       4 today's budget counter.
 * ARGV: 1 rpm, 2 rpm burst, 3 tpm, 4 tpm burst, 5 concurrency, 6 cost, 7 daily budget,
 *       8 lease name, 9 lease ms.
 * Returns {verdict, retry_us, remaining_requests, remaining_tokens, reset_requests_us,
 *          reset_tokens_us, budget_used}; verdict 0 ok, 1 requests, 2 tokens,
 *          3 concurrency, 4 too large, 100 budget. */
static const char ADMIT_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local P = 60000000\n"
    "local rpm, rb, tpm, tb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), "
    "tonumber(ARGV[4])\n"
    "local conc, cost, daily = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "local function level(key, rate, burst)\n"
    "  if rate == 0 then return 0 end\n"
    "  local v = redis.call('HMGET', key, 'l', 't')\n"
    "  local l, last = tonumber(v[1]), tonumber(v[2])\n"
    "  if not l then return burst * P end\n"
    "  if now > last then l = math.min(burst * P, l + rate * (now - last)) end\n"
    "  return l\n"
    "end\n"
    "local function wait(l, rate, n)\n"
    "  local need = n * P - l\n"
    "  if need <= 0 then return 0 end\n"
    "  return math.ceil(need / rate)\n"
    "end\n"
    "local function store(key, l, rate, burst)\n"
    "  redis.call('HSET', key, 'l', string.format('%.0f', l), 't', string.format('%.0f', now))\n"
    "  redis.call('PEXPIRE', key, math.ceil((burst * P - l) / rate / 1000) + 1000)\n"
    "end\n"
    "local lr, lt = level(KEYS[1], rpm, rb), level(KEYS[2], tpm, tb)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)\n"
    "local inflight = redis.call('ZCARD', KEYS[3])\n"
    "local used = tonumber(redis.call('GET', KEYS[4]) or '0')\n"
    "local wr, wt = 0, 0\n"
    "if rpm > 0 then wr = wait(lr, rpm, 1) end\n"
    "if tpm > 0 then wt = wait(lt, tpm, cost) end\n"
    "local v, retry = 0, 0\n"
    "if daily > 0 and used + cost > daily then v = 100\n"
    "elseif tpm > 0 and cost > tb then v = 4\n"
    "elseif conc > 0 and inflight >= conc then v = 3; retry = math.max(wr, wt, 1000000)\n"
    "elseif wr > 0 then v = 1; retry = math.max(wr, wt)\n"
    "elseif wt > 0 then v = 2; retry = math.max(wr, wt) end\n"
    "if v == 0 then\n"
    "  if rpm > 0 then lr = lr - P; store(KEYS[1], lr, rpm, rb) end\n"
    "  if tpm > 0 then lt = lt - cost * P; store(KEYS[2], lt, tpm, tb) end\n"
    "  if conc > 0 then\n"
    "    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[9]) * 1000, ARGV[8])\n"
    "    redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[9]) + 1000)\n"
    "  end\n"
    "  if daily > 0 then\n"
    "    used = redis.call('INCRBY', KEYS[4], cost)\n"
    "    redis.call('EXPIRE', KEYS[4], 172800)\n"
    "  end\n"
    "end\n"
    "local rr, rt = 0, 0\n"
    "if rpm > 0 then rr = wait(lr, rpm, rb) end\n"
    "if tpm > 0 then rt = wait(lt, tpm, tb) end\n"
    "local function whole(l) if l <= 0 then return 0 end return math.floor(l / P) end\n"
    "return {v, retry, whole(lr), whole(lt), rr, rt, used}\n";

/* Correction. KEYS: 1 token bucket, 2 concurrency leases, 3 budget counter.
 * ARGV: 1 tpm, 2 tpm burst, 3 delta tokens (actual - charged), 4 lease name. */
static const char FINISH_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local P = 60000000\n"
    "local tpm, tb, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if tpm > 0 and delta ~= 0 then\n"
    "  local v = redis.call('HMGET', KEYS[1], 'l', 't')\n"
    "  local l, last = tonumber(v[1]), tonumber(v[2])\n"
    "  if l then\n"
    "    if now > last then l = math.min(tb * P, l + tpm * (now - last)) end\n"
    "    l = math.max(-64 * tb * P, math.min(tb * P, l - delta * P))\n"
    "    redis.call('HSET', KEYS[1], 'l', string.format('%.0f', l), 't', string.format('%.0f', "
    "now))\n"
    "    redis.call('PEXPIRE', KEYS[1], math.ceil((tb * P - l) / tpm / 1000) + 1000)\n"
    "  end\n"
    "end\n"
    "redis.call('ZREM', KEYS[2], ARGV[4])\n"
    "if delta ~= 0 and redis.call('EXISTS', KEYS[3]) == 1 then\n"
    "  local u = redis.call('INCRBY', KEYS[3], delta)\n"
    "  if u < 0 then redis.call('SET', KEYS[3], 0, 'KEEPTTL') end\n"
    "end\n"
    "return 1\n";

/* One admission waiting for Redis. */
typedef struct waiter {
    gov_shared_t *s;
    gov_ticket_t *t;
    gov_shared_cb cb;
    void *arg;
    int64_t unix_s;
    int64_t handle;
    struct waiter *next;
} waiter_t;

struct gov_shared {
    ev_loop_t *loop;
    gov_t *g;
    redis_t *r;
    redis_script_t admit, finish;
    char prefix[64];
    int worker;
    uint64_t seq;
    waiter_t *free, *busy; /* waiters are pooled: no allocation per request after warm-up */
};

static void waiter_done(waiter_t *w);

static void on_health(void *arg, int up) {
    gov_shared_t *s = arg;
    atomic_fetch_add_explicit(up ? &s->g->redis_ups : &s->g->redis_downs, 1, memory_order_relaxed);
    if (up)
        log_info("redis reachable: limits are shared again", LOG_INT("worker", s->worker));
    else
        log_warn("redis unreachable: serving on local limits", LOG_INT("worker", s->worker));
}

int gov_shared_new(ev_loop_t *loop, gov_t *g, const gov_cfg_t *cfg, int worker,
                   gov_shared_t **out) {
    *out = NULL;
    if (!cfg || !cfg->redis_host) return -EINVAL;
    gov_shared_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->loop = loop;
    s->g = g;
    s->worker = worker;
    snprintf(s->prefix, sizeof s->prefix, "%s", cfg->redis_prefix ? cfg->redis_prefix : "tollgate");
    redis_script_init(&s->admit, ADMIT_LUA);
    redis_script_init(&s->finish, FINISH_LUA);
    redis_opts_t o = {.timeout_ms = cfg->redis_timeout_ms};
    int rc = redis_new(loop, cfg->redis_host, cfg->redis_port, &o, &s->r);
    if (rc) {
        free(s);
        return rc;
    }
    redis_on_health(s->r, on_health, s);
    *out = s;
    return 0;
}

void gov_shared_free(gov_shared_t *s) {
    if (!s) return;
    /* Nobody waits for these answers any more (the worker is going away). */
    while (s->busy) {
        redis_cancel(s->r, s->busy->handle);
        waiter_done(s->busy);
    }
    redis_free(s->r);
    while (s->free) {
        waiter_t *w = s->free;
        s->free = w->next;
        free(w);
    }
    free(s);
}

int gov_shared_up(const gov_shared_t *s) {
    return s && redis_up(s->r);
}

/* Keys carry the service in a hash tag, so that one service's keys share a cluster slot. */
static int keys_for(gov_shared_t *s, const char *svc, int64_t day, char k[4][160]) {
    snprintf(k[0], 160, "%s:{%s}:rpm", s->prefix, svc);
    snprintf(k[1], 160, "%s:{%s}:tpm", s->prefix, svc);
    snprintf(k[2], 160, "%s:{%s}:conc", s->prefix, svc);
    snprintf(k[3], 160, "%s:{%s}:budget:%lld", s->prefix, svc, (long long)day);
    return 0;
}

static void waiter_done(waiter_t *w) {
    gov_shared_t *s = w->s;
    waiter_t **pp = &s->busy;
    while (*pp && *pp != w) pp = &(*pp)->next;
    if (*pp) *pp = w->next;
    w->next = s->free;
    s->free = w;
}

static void on_admit(void *arg, const redis_reply_t *rep) {
    waiter_t *w = arg;
    gov_shared_t *s = w->s;
    gov_ticket_t *t = w->t;
    gov_shared_cb cb = w->cb;
    void *cbarg = w->arg;
    int64_t unix_s = w->unix_s;
    waiter_done(w);
    gov_decision_t d;
    memset(&d, 0, sizeof d);
    d.set_max_tokens = -1;
    if (rep->type != REDIS_ARRAY || rep->n < 7) {
        /* Redis failed us mid-request: decide on the local limiter, as when it is down. */
        atomic_fetch_add_explicit(&s->g->redis_fallbacks, 1, memory_order_relaxed);
        gov_admit_local(s->g, t, ev_now_ns(s->loop), unix_s, &d);
        cb(cbarg, &d);
        return;
    }
    int64_t v[7];
    for (int i = 0; i < 7; i++) v[i] = rep->elems[i].type == REDIS_INT ? rep->elems[i].integer : 0;
    const gov_service_cfg_t *sc = t->svc;
    d.rl_headers = sc->rl.rpm || sc->rl.tpm;
    d.rl.remaining_requests = (uint64_t)v[2];
    d.rl.remaining_tokens = (uint64_t)v[3];
    d.rl.reset_requests_ns = (uint64_t)v[4] * 1000;
    d.rl.reset_tokens_ns = (uint64_t)v[5] * 1000;
    d.rl.retry_ns = (uint64_t)v[1] * 1000;
    if (v[0] == 0) {
        t->shared = 1;
        t->charged = t->cost;
        t->day = budget_day(unix_s);
        cb(cbarg, &d);
        return;
    }
    gov_refusal(s->g, sc, t, (int)v[0], (uint64_t)v[6], unix_s, &d);
    cb(cbarg, &d);
}

static int fmt_args(char buf[9][48], const char **av, size_t *al, const gov_service_cfg_t *sc,
                    uint64_t cost, const char *lease) {
    uint64_t vals[7] = {sc->rl.rpm,         sc->rl.rpm_burst ? sc->rl.rpm_burst : sc->rl.rpm,
                        sc->rl.tpm,         sc->rl.tpm_burst ? sc->rl.tpm_burst : sc->rl.tpm,
                        sc->rl.concurrency, cost,
                        sc->daily_tokens};
    for (int i = 0; i < 7; i++) {
        snprintf(buf[i], 48, "%llu", (unsigned long long)vals[i]);
        av[4 + i] = buf[i];
        al[4 + i] = strlen(buf[i]);
    }
    av[11] = lease;
    al[11] = strlen(lease);
    snprintf(buf[8], 48, "%d", GOVSHARED_LEASE_MS);
    av[12] = buf[8];
    al[12] = strlen(buf[8]);
    return 13;
}

int64_t gov_shared_admit(gov_shared_t *s, gov_ticket_t *t, int64_t unix_s, gov_shared_cb cb,
                         void *arg) {
    if (!s || !redis_up(s->r) || !t->svc) return -ENOTCONN;
    waiter_t *w = s->free;
    if (w)
        s->free = w->next;
    else if (!(w = calloc(1, sizeof *w)))
        return -ENOMEM;
    *w = (waiter_t){.s = s, .t = t, .cb = cb, .arg = arg, .unix_s = unix_s, .next = s->busy};
    s->busy = w;
    snprintf(t->lease, sizeof t->lease, "%d.%d.%llu", (int)getpid(), s->worker,
             (unsigned long long)++s->seq);
    char k[4][160], a[9][48];
    const char *av[13];
    size_t al[13];
    keys_for(s, t->svc->name, budget_day(unix_s), k);
    for (int i = 0; i < 4; i++) {
        av[i] = k[i];
        al[i] = strlen(k[i]);
    }
    fmt_args(a, av, al, t->svc, t->cost, t->lease);
    int64_t h = redis_eval(s->r, &s->admit, 4, 13, av, al, on_admit, w);
    if (h < 0) {
        waiter_done(w);
        return h;
    }
    w->handle = h;
    return h;
}

void gov_shared_cancel(gov_shared_t *s, int64_t handle) {
    for (waiter_t *w = s->busy; w; w = w->next)
        if (w->handle == handle) {
            redis_cancel(s->r, handle);
            waiter_done(w);
            return;
        }
}

static void on_finish(void *arg, const redis_reply_t *rep) {
    gov_shared_t *s = arg;
    if (rep->type == REDIS_ERR_IO || rep->type == REDIS_ERROR)
        atomic_fetch_add_explicit(&s->g->redis_lost_corrections, 1, memory_order_relaxed);
}

void gov_shared_finish(gov_shared_t *s, gov_ticket_t *t, uint64_t actual, int64_t unix_s) {
    if (!t->shared) return;
    t->shared = 0;
    const gov_service_cfg_t *sc = t->svc;
    char k[4][160], tpm[32], tb[32], delta[32];
    keys_for(s, sc->name, t->day, k);
    snprintf(tpm, sizeof tpm, "%llu", (unsigned long long)sc->rl.tpm);
    snprintf(tb, sizeof tb, "%llu",
             (unsigned long long)(sc->rl.tpm_burst ? sc->rl.tpm_burst : sc->rl.tpm));
    snprintf(delta, sizeof delta, "%lld", (long long)actual - (long long)t->charged);
    const char *av[7] = {k[1], k[2], k[3], tpm, tb, delta, t->lease};
    size_t al[7];
    for (int i = 0; i < 7; i++) al[i] = strlen(av[i]);
    (void)unix_s;
    if (redis_eval(s->r, &s->finish, 3, 7, av, al, on_finish, s) < 0)
        atomic_fetch_add_explicit(&s->g->redis_lost_corrections, 1, memory_order_relaxed);
}
