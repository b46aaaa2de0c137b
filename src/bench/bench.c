/* bench.c — the load generator's runner: worker threads, arrival schedules, per-request measurement. */
#define _GNU_SOURCE /* pthread_tryjoin_np */
#include "bench/bench.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/json.h"

#define BENCH_BODY_MAX  (4u << 20) /* non-streamed bodies kept for token counting */
#define BENCH_TOKS      1024       /* JSON tokens per parsed event or body */

typedef struct worker worker_t;

/* The start line, shared by the main thread and the workers. */
struct bench_sync {
    atomic_uint ready; /* workers done with setup */
    atomic_int go;     /* 1: start_ns/end_ns are set (release); -1: abort */
};

/* One request in flight. Slots are allocated once per worker and recycled, so
 * the steady state allocates nothing: the body buffer keeps its capacity. */
typedef struct slot {
    worker_t *w;
    uint64_t t0;          /* latency origin: scheduled send time (open loop) or send time */
    int status;
    int is_sse;           /* Content-Type: text/event-stream */
    buf_t body;           /* non-streamed 2xx body, for usage.completion_tokens */
    bench_stream_t st;
    struct slot *next_free;
} slot_t;

struct worker {
    const bench_cfg_t *cfg;
    int id;
    pthread_t th;
    ev_loop_t *loop;
    httpc_pool_t *pool;
    slot_t *slots;
    slot_t *free;
    uint32_t nslots;
    uint32_t inflight;
    uint32_t concurrency; /* closed loop: this worker's share */
    uint64_t quota;       /* requests this worker may send (UINT64_MAX: no limit) */
    uint64_t issued;
    uint64_t start_ns;    /* common to all workers */
    uint64_t end_ns;      /* no sends scheduled at or after this (UINT64_MAX: none) */
    double gap_ns;        /* open loop: mean inter-arrival time of this worker */
    uint64_t next_ns;     /* open loop: the next scheduled send */
    uint64_t rng;
    int tfd;              /* open loop: timerfd firing at next_ns (ns precision, unlike ev_timer) */
    uint64_t armed_ns;    /* what tfd is armed for (0: fired or never armed): spares re-arming */
    int stopping;         /* sending is over; in-flight requests are being drained */
    ev_timer_t drain;     /* cancels stragglers timeout_ms after sending ended */
    uint64_t last_done_ns;
    bench_result_t *res;  /* this worker's own; merged after join */
    json_tok_t toks[BENCH_TOKS];
    atomic_uint_fast64_t p_done, p_err, p_sent; /* read by the progress printer */
    struct bench_sync *sync;  /* shared: all set up before the common start is fixed */
    int rc;
};

static void pump(worker_t *w);

static uint64_t rng_next(uint64_t *s) {
    /* xorshift64*: plenty for arrival jitter, and per-thread so no locking. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static uint64_t next_gap(worker_t *w) {
    if (w->cfg->arrival == BENCH_POISSON) {
        double u = ((double)(rng_next(&w->rng) >> 11) + 0.5) / 9007199254740992.0;
        return (uint64_t)(-log(u) * w->gap_ns);
    }
    return (uint64_t)w->gap_ns;
}

static int can_send(const worker_t *w, uint64_t t) {
    return !w->stopping && w->issued < w->quota && t < w->end_ns;
}

/* ---- per-request callbacks ---------------------------------------------------- */

static int ct_is_sse(const http1_response_t *res) {
    const http1_header_t *h = http1_find_header(res->headers, res->num_headers, "content-type");
    return h && h->value_len >= 17 && !strncasecmp(h->value, "text/event-stream", 17);
}

static void on_head(void *arg, const http1_response_t *res) {
    slot_t *s = arg;
    s->status = res->status;
    s->is_sse = ct_is_sse(res);
}

static void on_body(void *arg, const char *data, size_t len) {
    slot_t *s = arg;
    if (s->status >= 400)
        return;
    if (s->is_sse) {
        bench_stream_feed(&s->st, data, len, s->w->toks, BENCH_TOKS);
    } else if (s->body.len + len <= BENCH_BODY_MAX) {
        buf_append(&s->body, data, len);
    }
}

static void record_ok(worker_t *w, slot_t *s, uint64_t now) {
    bench_result_t *r = w->res;
    int64_t tokens;
    uint64_t e2e = now > s->t0 ? now - s->t0 : 0;
    uint64_t ttft = e2e;
    if (s->is_sse) {
        if (s->st.bad) {
            r->by_kind[HTTPC_ERR_MALFORMED]++;
            r->errors++;
            return;
        }
        tokens = s->st.usage_tokens >= 0 ? s->st.usage_tokens : (int64_t)s->st.content_events;
        if (s->st.first_content_ns)
            ttft = s->st.first_content_ns > s->t0 ? s->st.first_content_ns - s->t0 : 0;
    } else {
        tokens = s->body.len ? bench_body_tokens(s->body.data, s->body.len, w->toks, BENCH_TOKS) : 0;
        if (tokens < 0) {
            r->by_kind[HTTPC_ERR_MALFORMED]++;
            r->errors++;
            return;
        }
    }
    r->ok++;
    hist_record(&r->e2e, e2e);
    hist_record(&r->ttft, ttft);
    hist_record(&r->tokens, (uint64_t)tokens);
    r->tokens_total += (uint64_t)tokens;
    /* Time per output token needs a stream: without one every token arrives at once. */
    if (s->is_sse && s->st.first_content_ns && tokens > 1)
        hist_record(&r->tpot, (e2e - ttft) / (uint64_t)(tokens - 1));
}

static void on_done(void *arg, const httpc_done_t *d) {
    slot_t *s = arg;
    worker_t *w = s->w;
    bench_result_t *r = w->res;
    uint64_t now = ev_clock_ns();
    if (d->retried)
        r->retries++;
    if (d->result == HTTPC_ERR_CANCELLED && w->stopping) {
        r->unfinished++;
    } else {
        if (d->result != HTTPC_OK) {
            r->by_kind[d->result]++;
            r->errors++;
        } else if (d->status >= 400) {
            r->by_status[d->status < BENCH_MAX_STATUS ? d->status : BENCH_MAX_STATUS - 1]++;
            r->errors++;
        } else {
            record_ok(w, s, now);
        }
        w->last_done_ns = now;
        atomic_fetch_add_explicit(&w->p_done, 1, memory_order_relaxed);
        if (d->result != HTTPC_OK || d->status >= 400)
            atomic_fetch_add_explicit(&w->p_err, 1, memory_order_relaxed);
    }
    s->next_free = w->free;
    w->free = s;
    w->inflight--;
    pump(w);
}

static const httpc_callbacks_t CALLBACKS = {on_head, on_body, on_done};

/* ---- scheduling ------------------------------------------------------------------ */

static int send_one(worker_t *w, uint64_t t0) {
    slot_t *s = w->free;
    const bench_cfg_t *c = w->cfg;
    w->free = s->next_free;
    s->t0 = t0;
    s->status = 0;
    s->is_sse = 0;
    buf_reset(&s->body);
    bench_stream_reset(&s->st);
    httpc_request_t q = {
        .method = c->method,
        .path = c->path,
        .raw_headers = c->raw_headers,
        .raw_headers_len = c->raw_headers_len,
        .body = c->body,
        .body_len = c->body_len,
        .total_timeout_ms = c->timeout_ms,
        .first_byte_timeout_ms = c->timeout_ms,
        /* The server may close an idle keep-alive connection as we reuse it;
         * that is not the server failing, so resend once. */
        .flags = HTTPC_F_RETRY_STALE,
    };
    w->issued++;
    w->res->sent++;
    atomic_fetch_add_explicit(&w->p_sent, 1, memory_order_relaxed);
    if (httpc_request(w->pool, &q, &CALLBACKS, s, NULL) < 0) {
        w->res->submit_errors++;
        w->res->errors++;
        atomic_fetch_add_explicit(&w->p_done, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->p_err, 1, memory_order_relaxed);
        s->next_free = w->free;
        w->free = s;
        return -1;
    }
    w->inflight++;
    return 0;
}

/* Keep the pool's counters, then free it: its outstanding requests are
 * cancelled, and each on_done returns its slot. */
static void pool_close(worker_t *w) {
    if (!w->pool)
        return;
    httpc_pool_stats_t st;
    httpc_pool_stats(w->pool, &st);
    w->res->connects = st.connects;
    w->res->reuses = st.reuses;
    w->res->queued = st.queued;
    w->res->peak_conns = st.peak_conns;
    httpc_pool_t *p = w->pool;
    w->pool = NULL;
    w->stopping = 1;
    httpc_pool_free(p);
}

static void drain_expired(ev_loop_t *loop, void *arg) {
    worker_t *w = arg;
    pool_close(w);
    ev_stop(loop);
}

/* Sending is over: stop when the last request finishes, or cancel what is
 * left after one request timeout. */
static void begin_stop(worker_t *w) {
    if (!w->stopping) {
        w->stopping = 1;
        if (w->tfd >= 0) {
            struct itimerspec off = {{0, 0}, {0, 0}};
            timerfd_settime(w->tfd, 0, &off, NULL);
        }
        ev_timer_start(w->loop, &w->drain, w->cfg->timeout_ms, drain_expired, w);
    }
    if (!w->inflight) {
        ev_timer_stop(w->loop, &w->drain);
        ev_stop(w->loop);
    }
}

static void arm_tfd(worker_t *w, uint64_t when) {
    if (w->armed_ns == when)
        return;
    w->armed_ns = when;
    struct itimerspec its = {{0, 0}, {(time_t)(when / 1000000000u), (long)(when % 1000000000u)}};
    if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
        its.it_value.tv_nsec = 1; /* 0 would disarm */
    timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Send whatever is due. Called at start, from the arrival timer, and after
 * every completion (which frees a slot). */
static void pump(worker_t *w) {
    if (w->stopping) {
        if (!w->inflight)
            begin_stop(w);
        return;
    }
    if (w->cfg->arrival == BENCH_CLOSED) {
        uint64_t now = ev_clock_ns();
        while (w->inflight < w->concurrency && w->free && can_send(w, now))
            send_one(w, now);
        if (!can_send(w, now))
            begin_stop(w);
        return;
    }
    uint64_t now = ev_clock_ns();
    /* Late sends keep their scheduled time as latency origin: a slow server
     * cannot hide its queueing (coordinated omission). */
    while (w->next_ns <= now && w->free && can_send(w, w->next_ns)) {
        send_one(w, w->next_ns);
        w->next_ns += next_gap(w);
    }
    if (!can_send(w, w->next_ns))
        begin_stop(w);
    else if (w->next_ns > now)
        arm_tfd(w, w->next_ns);
    /* else: due but no free slot; the next completion pumps again. */
}

static void on_tick(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    worker_t *w = arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof n);
    (void)r;
    w->armed_ns = 0;
    pump(w);
}

static void on_deadline(ev_loop_t *loop, void *arg) {
    worker_t *w = arg;
    if (!w->stopping)
        begin_stop(w);
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    const bench_cfg_t *c = w->cfg;
    ev_timer_t deadline;
    ev_timer_init(&deadline);
    ev_timer_init(&w->drain);
    w->tfd = -1;
    w->loop = ev_loop_new();
    if (!w->loop) {
        w->rc = -ENOMEM;
        atomic_fetch_add(&w->sync->ready, 1);
        return NULL;
    }
    httpc_pool_opts_t po = {
        .max_conns = c->connections ? (c->connections + c->threads - 1) / c->threads : 0,
        .max_idle = w->nslots,
        .connect_timeout_ms = c->timeout_ms,
    };
    w->rc = httpc_pool_new(w->loop, c->host, c->port, &po, &w->pool);
    if (c->arrival != BENCH_CLOSED) {
        w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (w->tfd < 0 || ev_io_add(w->loop, w->tfd, EV_READ, on_tick, w) < 0)
            w->rc = -errno;
    }
    /* Setup (name resolution included) is done everywhere before the start is
     * fixed, so no thread begins its schedule late. Then wait for that start. */
    atomic_fetch_add(&w->sync->ready, 1);
    int go;
    while (!(go = atomic_load_explicit(&w->sync->go, memory_order_acquire))) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    if (w->rc < 0 || go < 0)
        goto out;
    while (ev_clock_ns() < w->start_ns) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    if (w->end_ns != UINT64_MAX) {
        uint64_t now = ev_now_ns(w->loop); /* timers count from the loop's cached time */
        uint64_t ms = w->end_ns > now ? (w->end_ns - now + 999999u) / 1000000u : 0;
        ev_timer_start(w->loop, &deadline, ms, on_deadline, w);
    }
    if (w->quota == 0 || (c->arrival == BENCH_CLOSED && w->concurrency == 0)) {
        w->rc = 0;
        goto out;
    }
    /* The loop caches time per iteration; refresh it by running once through pump. */
    pump(w);
    if (w->stopping && !w->inflight)
        goto out;
    w->rc = ev_run(w->loop);
out:
    ev_timer_stop(w->loop, &deadline);
    ev_timer_stop(w->loop, &w->drain);
    pool_close(w);
    if (w->tfd >= 0) {
        ev_io_del(w->loop, w->tfd);
        close(w->tfd);
    }
    ev_loop_free(w->loop);
    w->loop = NULL;
    return NULL;
}

/* ---- the run ----------------------------------------------------------------------- */

static void result_init(bench_result_t *r) {
    memset(r, 0, offsetof(bench_result_t, e2e));
    hist_init(&r->e2e);
    hist_init(&r->ttft);
    hist_init(&r->tpot);
    hist_init(&r->tokens);
}

static void result_merge(bench_result_t *d, const bench_result_t *s) {
    d->sent += s->sent;
    d->ok += s->ok;
    d->errors += s->errors;
    d->unfinished += s->unfinished;
    for (int i = 0; i < HTTPC_RESULT_COUNT; i++)
        d->by_kind[i] += s->by_kind[i];
    for (int i = 0; i < BENCH_MAX_STATUS; i++)
        d->by_status[i] += s->by_status[i];
    d->submit_errors += s->submit_errors;
    d->tokens_total += s->tokens_total;
    d->connects += s->connects;
    d->reuses += s->reuses;
    d->retries += s->retries;
    d->queued += s->queued;
    d->peak_conns += s->peak_conns;
    hist_merge(&d->e2e, &s->e2e);
    hist_merge(&d->ttft, &s->ttft);
    hist_merge(&d->tpot, &s->tpot);
    hist_merge(&d->tokens, &s->tokens);
}

static void progress_line(FILE *out, worker_t *ws, uint32_t n, double t, uint64_t *prev_done, double *prev_t) {
    uint64_t done = 0, err = 0, sent = 0;
    for (uint32_t i = 0; i < n; i++) {
        done += atomic_load_explicit(&ws[i].p_done, memory_order_relaxed);
        err += atomic_load_explicit(&ws[i].p_err, memory_order_relaxed);
        sent += atomic_load_explicit(&ws[i].p_sent, memory_order_relaxed);
    }
    double rps = t > *prev_t ? (double)(done - *prev_done) / (t - *prev_t) : 0;
    fprintf(out, "[%6.1fs] sent %llu  done %llu  errors %llu  in flight %llu  %.0f req/s\n", t,
            (unsigned long long)sent, (unsigned long long)done, (unsigned long long)err,
            (unsigned long long)(sent - done), rps);
    fflush(out);
    *prev_done = done;
    *prev_t = t;
}

int bench_run(const bench_cfg_t *cfg, bench_result_t *res, FILE *progress) {
    uint32_t n = cfg->threads ? cfg->threads : 1;
    if (cfg->arrival == BENCH_CLOSED && cfg->concurrency < n)
        n = cfg->concurrency ? cfg->concurrency : 1;
    if (cfg->arrival == BENCH_CLOSED ? !cfg->concurrency : !(cfg->rate > 0))
        return -EINVAL;
    worker_t *ws = calloc(n, sizeof *ws);
    if (!ws)
        return -ENOMEM;
    result_init(res);
    int rc = 0;
    uint32_t started = 0;
    struct bench_sync sync;
    atomic_init(&sync.ready, 0);
    atomic_init(&sync.go, 0);
    uint32_t inflight_cap = cfg->max_inflight ? cfg->max_inflight : 4096;
    for (uint32_t i = 0; i < n; i++) {
        worker_t *w = &ws[i];
        w->cfg = cfg;
        w->id = (int)i;
        w->sync = &sync;
        w->quota = cfg->requests ? cfg->requests / n + (i < cfg->requests % n) : UINT64_MAX;
        w->rng = (cfg->seed ? cfg->seed : 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull * (i + 1);
        if (cfg->arrival == BENCH_CLOSED) {
            w->concurrency = cfg->concurrency / n + (i < cfg->concurrency % n);
            w->nslots = w->concurrency;
        } else {
            /* Each thread sends 1/n of the rate; constant schedules are offset
             * so the sum is evenly spaced, Poisson sums stay Poisson. */
            w->gap_ns = 1e9 * n / cfg->rate;
            w->nslots = inflight_cap / n + 1;
        }
        w->res = malloc(sizeof *w->res);
        w->slots = calloc(w->nslots ? w->nslots : 1, sizeof *w->slots);
        if (!w->res || !w->slots) {
            rc = -ENOMEM;
            break;
        }
        result_init(w->res);
        for (uint32_t k = 0; k < w->nslots; k++) {
            w->slots[k].w = w;
            buf_init(&w->slots[k].body);
            w->slots[k].next_free = w->free;
            w->free = &w->slots[k];
        }
        atomic_init(&w->p_done, 0);
        atomic_init(&w->p_err, 0);
        atomic_init(&w->p_sent, 0);
    }
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
            rc = -EAGAIN;
            break;
        }
        started++;
    }
    while (atomic_load(&sync.ready) < started) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    uint64_t start = ev_clock_ns();
    if (started < n) {
        atomic_store(&sync.go, -1); /* cannot run: the started ones exit */
    } else {
        start = ev_clock_ns() + 2000000u; /* 2 ms: every thread is past the barrier */
        uint64_t end = cfg->duration_s > 0 ? start + (uint64_t)(cfg->duration_s * 1e9) : UINT64_MAX;
        for (uint32_t i = 0; i < n; i++) {
            worker_t *w = &ws[i];
            w->start_ns = start;
            w->end_ns = end;
            if (cfg->arrival != BENCH_CLOSED)
                /* Constant schedules are offset so the sum is evenly spaced. */
                w->next_ns = start + (cfg->arrival == BENCH_CONSTANT ? (uint64_t)(1e9 * i / cfg->rate)
                                                                     : next_gap(w));
        }
        atomic_store_explicit(&sync.go, 1, memory_order_release);
    }
    /* Progress: every 2 s, for runs that last (or are planned to last) over 5 s. */
    int show = progress && !cfg->quiet;
    uint64_t prev_done = 0;
    double prev_t = 0, next_print = 2.0;
    uint8_t *joined = calloc(n, 1);
    for (;;) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        int running = 0;
        for (uint32_t i = 0; i < started; i++) {
            if (joined && joined[i])
                continue;
            if (joined ? pthread_tryjoin_np(ws[i].th, NULL) == 0 : pthread_join(ws[i].th, NULL) == 0) {
                if (joined)
                    joined[i] = 1;
            } else {
                running = 1;
            }
        }
        if (!running)
            break;
        double t = (double)(int64_t)(ev_clock_ns() - start) / 1e9;
        if (t >= next_print) {
            if (show && (cfg->duration_s > 5 || t > 5))
                progress_line(progress, ws, started, t, &prev_done, &prev_t);
            next_print += 2.0;
        }
    }
    free(joined);
    uint64_t last = start;
    for (uint32_t i = 0; i < n; i++) {
        worker_t *w = &ws[i];
        if (i < started && w->rc < 0 && rc == 0)
            rc = w->rc;
        if (w->res) {
            result_merge(res, w->res);
            free(w->res);
        }
        if (w->last_done_ns > last)
            last = w->last_done_ns;
        for (uint32_t k = 0; w->slots && k < w->nslots; k++)
            buf_free(&w->slots[k].body);
        free(w->slots);
    }
    res->elapsed_s = (double)(last - start) / 1e9;
    free(ws);
    return rc;
}
