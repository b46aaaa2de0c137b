/* test_ev.c — event loop: io readiness, timer order/re-arm/stop, cross-thread wakeup, deletes during dispatch. */
#define _GNU_SOURCE
#include "check.h"
#include "core/ev.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void stop_cb(ev_loop_t *loop, void *arg) {
    ev_stop(loop);
}

/* A safety net: every test arms one so a bug hangs for 2 s, not forever. */
static int guard_fired;
static void guard_cb(ev_loop_t *loop, void *arg) {
    guard_fired = 1;
    ev_stop(loop);
}

/* ---- io on a pipe ---- */
struct pipe_ctx {
    int reads;
    char got[16];
    size_t got_len;
    uint32_t last_events;
};

static void pipe_read_cb(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    struct pipe_ctx *c = arg;
    c->reads++;
    c->last_events = events;
    ssize_t n = read(fd, c->got + c->got_len, sizeof c->got - c->got_len);
    if (n > 0)
        c->got_len += (size_t)n;
    if (c->got_len >= 5 || n <= 0)
        ev_stop(loop);
}

static void test_io_pipe(void) {
    ev_loop_t *loop = ev_loop_new();
    CHECK(loop != NULL);
    int p[2];
    CHECK_EQ_INT(pipe2(p, O_NONBLOCK), 0);
    struct pipe_ctx c = {0};
    CHECK_EQ_INT(ev_io_add(loop, p[0], EV_READ, pipe_read_cb, &c), 0);
    CHECK_EQ_INT(ev_io_add(loop, p[0], EV_READ, pipe_read_cb, &c), -EEXIST);
    CHECK_EQ_INT(ev_io_mod(loop, 999, EV_READ), -ENOENT);
    CHECK_EQ_INT(ev_io_del(loop, 999), -ENOENT);
    ev_timer_t g;
    ev_timer_init(&g);
    ev_timer_start(loop, &g, 2000, guard_cb, NULL);
    guard_fired = 0;
    CHECK_EQ_INT(write(p[1], "hello", 5), 5);
    CHECK_EQ_INT(ev_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(c.got_len, 5);
    CHECK(memcmp(c.got, "hello", 5) == 0);
    CHECK(c.last_events & EV_READ);

    /* Writer closes: the reader gets EV_ERROR (HUP) together with EV_READ so it
     * reads the EOF. */
    close(p[1]);
    c.got_len = 0;
    c.reads = 0;
    CHECK_EQ_INT(ev_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(c.reads, 1);
    CHECK((c.last_events & (EV_READ | EV_ERROR)) == (EV_READ | EV_ERROR));

    CHECK_EQ_INT(ev_io_del(loop, p[0]), 0);
    CHECK_EQ_INT(ev_io_del(loop, p[0]), -ENOENT);
    close(p[0]);
    ev_timer_stop(loop, &g);
    ev_loop_free(loop);
}

/* ---- write readiness and interest changes on a socketpair ---- */
struct sp_ctx {
    int writes, reads;
};

static void sp_cb(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    struct sp_ctx *c = arg;
    if (events & EV_WRITE) {
        c->writes++;
        CHECK_EQ_INT(write(fd, "x", 1), 1);
        /* Done writing: switch to reading; without this, level-triggered
         * EV_WRITE would fire on every iteration. */
        CHECK_EQ_INT(ev_io_mod(loop, fd, EV_READ), 0);
    }
    if (events & EV_READ) {
        char b[8];
        if (read(fd, b, sizeof b) > 0)
            c->reads++;
        ev_stop(loop);
    }
}

static void peer_echo_cb(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    char b[8];
    ssize_t n = read(fd, b, sizeof b);
    if (n > 0)
        CHECK_EQ_INT(write(fd, b, (size_t)n), n);
}

static void test_io_write_mod(void) {
    ev_loop_t *loop = ev_loop_new();
    int sv[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct sp_ctx c = {0};
    CHECK_EQ_INT(ev_io_add(loop, sv[0], EV_WRITE, sp_cb, &c), 0);
    CHECK_EQ_INT(ev_io_add(loop, sv[1], EV_READ, peer_echo_cb, NULL), 0);
    ev_timer_t g;
    ev_timer_init(&g);
    guard_fired = 0;
    ev_timer_start(loop, &g, 2000, guard_cb, NULL);
    CHECK_EQ_INT(ev_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(c.writes, 1);
    CHECK_EQ_INT(c.reads, 1);
    ev_timer_stop(loop, &g);
    ev_io_del(loop, sv[0]);
    ev_io_del(loop, sv[1]);
    close(sv[0]);
    close(sv[1]);
    ev_loop_free(loop);
}

/* ---- timers ---- */
struct order_ctx {
    int seq[16];
    int n;
    uint64_t start_ns;
    uint64_t fired_ns[16];
};
struct order_timer {
    ev_timer_t t;
    struct order_ctx *ctx;
    int id;
};

static void order_cb(ev_loop_t *loop, void *arg) {
    struct order_timer *ot = arg;
    CHECK(!ev_timer_active(&ot->t)); /* disarmed before its cb runs */
    ot->ctx->fired_ns[ot->ctx->n] = ev_now_ns(loop);
    ot->ctx->seq[ot->ctx->n++] = ot->id;
}

static void test_timer_order(void) {
    ev_loop_t *loop = ev_loop_new();
    struct order_ctx ctx = {0};
    static const uint64_t delays[] = {40, 10, 30, 5, 20, 1, 35};
    struct order_timer ts[7];
    for (int i = 0; i < 7; i++) {
        ts[i].ctx = &ctx;
        ts[i].id = i;
        memset(&ts[i].t, 0, sizeof ts[i].t); /* zero-initialised is valid */
        CHECK(!ev_timer_active(&ts[i].t));
    }
    ctx.start_ns = ev_clock_ns();
    for (int i = 0; i < 7; i++) {
        CHECK_EQ_INT(ev_timer_start(loop, &ts[i].t, delays[i], order_cb, &ts[i]), 0);
        CHECK(ev_timer_active(&ts[i].t));
    }
    /* Stopping one removes it; stopping twice is harmless. */
    ev_timer_stop(loop, &ts[2].t);
    ev_timer_stop(loop, &ts[2].t);
    CHECK(!ev_timer_active(&ts[2].t));
    /* Re-arming an armed timer moves it: 35 ms -> 3 ms. */
    ev_timer_start(loop, &ts[6].t, 3, order_cb, &ts[6]);
    ev_timer_t end;
    ev_timer_init(&end);
    ev_timer_start(loop, &end, 60, stop_cb, NULL);
    CHECK_EQ_INT(ev_run(loop), 0);
    static const int want[] = {5, 6, 3, 1, 4, 0};
    CHECK_EQ_INT(ctx.n, 6);
    int bad = 0;
    for (int i = 0; i < 6 && i < ctx.n; i++)
        bad += ctx.seq[i] != want[i];
    CHECK_EQ_INT(bad, 0);
    /* Never early: a timer fires no sooner than its delay after arming. */
    CHECK(ctx.fired_ns[5] - ctx.start_ns >= 40 * 1000000ull);
    CHECK(ctx.fired_ns[0] - ctx.start_ns >= 1 * 1000000ull);
    ev_loop_free(loop);
}

/* A timer that re-arms itself from its callback. */
struct rearm_ctx {
    ev_timer_t t;
    int count;
};
static void rearm_cb(ev_loop_t *loop, void *arg) {
    struct rearm_ctx *c = arg;
    if (++c->count < 5)
        ev_timer_start(loop, &c->t, c->count == 2 ? 0 : 2, rearm_cb, c);
    else
        ev_stop(loop);
}

static void test_timer_rearm(void) {
    ev_loop_t *loop = ev_loop_new();
    struct rearm_ctx c = {.count = 0};
    ev_timer_init(&c.t);
    ev_timer_t g;
    ev_timer_init(&g);
    guard_fired = 0;
    ev_timer_start(loop, &g, 2000, guard_cb, NULL);
    ev_timer_start(loop, &c.t, 1, rearm_cb, &c);
    CHECK_EQ_INT(ev_run(loop), 0);
    CHECK(!guard_fired);
    CHECK_EQ_INT(c.count, 5);
    CHECK(!ev_timer_active(&c.t));
    CHECK(ev_timer_active(&g));
    ev_timer_stop(loop, &g);
    CHECK(!ev_timer_active(&g));
    ev_loop_free(loop);
}

/* One callback stops another timer that is due in the same iteration. */
struct kill_ctx {
    ev_timer_t a, b, c;
    int a_fired, b_fired, c_fired;
};
static void kill_a(ev_loop_t *loop, void *arg) {
    struct kill_ctx *k = arg;
    k->a_fired++;
    ev_timer_stop(loop, &k->b);
}
static void kill_b(ev_loop_t *loop, void *arg) {
    ((struct kill_ctx *)arg)->b_fired++;
}
static void kill_c(ev_loop_t *loop, void *arg) {
    ((struct kill_ctx *)arg)->c_fired++;
    ev_stop(loop);
}

static void test_timer_stop_in_cb(void) {
    ev_loop_t *loop = ev_loop_new();
    struct kill_ctx k = {0};
    ev_timer_init(&k.a);
    ev_timer_init(&k.b);
    ev_timer_init(&k.c);
    ev_timer_start(loop, &k.a, 5, kill_a, &k);
    ev_timer_start(loop, &k.b, 6, kill_b, &k);
    ev_timer_start(loop, &k.c, 30, kill_c, &k);
    /* Sleep so a and b are both due when the loop first looks. */
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    CHECK_EQ_INT(ev_run(loop), 0);
    CHECK_EQ_INT(k.a_fired, 1);
    CHECK_EQ_INT(k.b_fired, 0);
    CHECK_EQ_INT(k.c_fired, 1);
    ev_loop_free(loop);
}

/* ev_stop inside a callback returns from ev_run before later timers of the
 * same iteration run, and the loop can be run again afterwards. */
static int late_fired;
static void late_cb(ev_loop_t *loop, void *arg) {
    late_fired++;
}
static void test_stop_in_cb(void) {
    ev_loop_t *loop = ev_loop_new();
    ev_timer_t a, b, g;
    ev_timer_init(&a);
    ev_timer_init(&b);
    ev_timer_init(&g);
    late_fired = 0;
    ev_timer_start(loop, &a, 1, stop_cb, NULL);
    ev_timer_start(loop, &b, 2, late_cb, NULL);
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
    uint64_t t0 = ev_clock_ns();
    CHECK_EQ_INT(ev_run(loop), 0);
    CHECK_EQ_INT(late_fired, 0);
    CHECK(ev_timer_active(&b));
    CHECK(ev_clock_ns() - t0 < 500 * 1000000ull);
    /* Run again: the stop was consumed, b fires, guard ends it. */
    guard_fired = 0;
    ev_timer_start(loop, &g, 20, guard_cb, NULL);
    CHECK_EQ_INT(ev_run(loop), 0);
    CHECK_EQ_INT(late_fired, 1);
    CHECK(guard_fired);
    ev_loop_free(loop);
}

/* Many timers, random deadlines and random stops: the heap must fire exactly
 * the armed ones, in deadline order. */
#define NRAND 2000
struct rt {
    ev_timer_t t;
    uint64_t *last;
    int *order_bad;
    int *fired;
    int stopped;
};
static void rt_cb(ev_loop_t *loop, void *arg) {
    struct rt *r = arg;
    if (r->t.when_ns < *r->last)
        (*r->order_bad)++;
    *r->last = r->t.when_ns;
    (*r->fired)++;
    if (r->stopped)
        (*r->order_bad) += 1000;
}
static void test_timer_heap_random(void) {
    ev_loop_t *loop = ev_loop_new();
    struct rt *rs = calloc(NRAND, sizeof *rs);
    uint64_t last = 0;
    int order_bad = 0, fired = 0, expect = 0;
    srand(12345);
    for (int i = 0; i < NRAND; i++) {
        rs[i].last = &last;
        rs[i].order_bad = &order_bad;
        rs[i].fired = &fired;
        ev_timer_start(loop, &rs[i].t, (uint64_t)(rand() % 40), rt_cb, &rs[i]);
    }
    for (int i = 0; i < NRAND; i++) {
        int r = rand() % 4;
        if (r == 0) {
            ev_timer_stop(loop, &rs[i].t);
            rs[i].stopped = 1;
        } else if (r == 1) {
            ev_timer_start(loop, &rs[i].t, (uint64_t)(rand() % 40), rt_cb, &rs[i]);
        }
    }
    for (int i = 0; i < NRAND; i++)
        expect += !rs[i].stopped;
    ev_timer_t end;
    ev_timer_init(&end);
    ev_timer_start(loop, &end, 80, stop_cb, NULL);
    CHECK_EQ_INT(ev_run(loop), 0);
    CHECK_EQ_INT(order_bad, 0);
    CHECK_EQ_INT(fired, expect);
    free(rs);
    ev_loop_free(loop);
}

/* ---- wakeups from another thread ---- */
struct wake_ctx {
    ev_loop_t *loop;
    int calls;
    atomic_int done;
};
static void wake_cb(ev_loop_t *loop, void *arg) {
    struct wake_ctx *w = arg;
    w->calls++;
    if (atomic_load(&w->done))
        ev_stop(loop);
}
static void *waker(void *arg) {
    struct wake_ctx *w = arg;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    for (int i = 0; i < 100; i++)
        ev_wakeup(w->loop);
    atomic_store(&w->done, 1);
    ev_wakeup(w->loop);
    return NULL;
}
static void *stopper(void *arg) {
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    ev_stop(arg);
    return NULL;
}
static void test_wakeup_thread(void) {
    ev_loop_t *loop = ev_loop_new();
    struct wake_ctx w = {.loop = loop};
    atomic_init(&w.done, 0);
    ev_set_wakeup(loop, wake_cb, &w);
    ev_timer_t g;
    ev_timer_init(&g);
    guard_fired = 0;
    ev_timer_start(loop, &g, 2000, guard_cb, NULL);
    pthread_t th;
    pthread_create(&th, NULL, waker, &w);
    CHECK_EQ_INT(ev_run(loop), 0);
    pthread_join(th, NULL);
    CHECK(!guard_fired);
    CHECK(w.calls >= 1);
    CHECK(w.calls <= 101); /* coalesced, never more than posted */

    /* ev_stop from another thread ends a loop that has nothing else to do. */
    ev_timer_stop(loop, &g);
    ev_timer_start(loop, &g, 2000, guard_cb, NULL);
    uint64_t t0 = ev_clock_ns();
    pthread_create(&th, NULL, stopper, loop);
    CHECK_EQ_INT(ev_run(loop), 0);
    pthread_join(th, NULL);
    CHECK(!guard_fired);
    CHECK(ev_clock_ns() - t0 < 1000 * 1000000ull);
    ev_loop_free(loop);
}

/* ---- an fd deleted by another callback in the same epoll batch ---- */
struct del_ctx {
    int fds[2];     /* read ends, both readable */
    int ran[2];     /* callback counts */
    int replaced_runs; /* the fd number re-registered to a new, idle pipe */
    int spare[2];
};
static void replaced_cb(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    ((struct del_ctx *)arg)->replaced_runs++;
}
static void del_cb(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    struct del_ctx *d = arg;
    int me = fd == d->fds[0] ? 0 : 1, other = 1 - me;
    d->ran[me]++;
    if (d->ran[0] + d->ran[1] > 1)
        return;
    /* Delete the other fd, close it, and put a fresh idle pipe on the same fd
     * number with a different callback: the stale event from this batch must
     * reach neither the old nor the new callback. */
    int ofd = d->fds[other];
    CHECK_EQ_INT(ev_io_del(loop, ofd), 0);
    close(ofd);
    int p[2];
    CHECK_EQ_INT(pipe2(p, O_NONBLOCK), 0);
    if (p[0] != ofd) { /* usually equal: the lowest free number is reused */
        CHECK_EQ_INT(dup2(p[0], ofd), ofd);
        close(p[0]);
    }
    d->spare[0] = ofd;
    d->spare[1] = p[1];
    CHECK_EQ_INT(ev_io_add(loop, ofd, EV_READ, replaced_cb, d), 0);
    /* Also drop ourselves so we don't keep firing. */
    CHECK_EQ_INT(ev_io_del(loop, fd), 0);
}
static void test_delete_during_dispatch(void) {
    ev_loop_t *loop = ev_loop_new();
    struct del_ctx d = {0};
    int a[2], b[2];
    CHECK_EQ_INT(pipe2(a, O_NONBLOCK), 0);
    CHECK_EQ_INT(pipe2(b, O_NONBLOCK), 0);
    d.fds[0] = a[0];
    d.fds[1] = b[0];
    CHECK_EQ_INT(write(a[1], "x", 1), 1);
    CHECK_EQ_INT(write(b[1], "y", 1), 1);
    CHECK_EQ_INT(ev_io_add(loop, a[0], EV_READ, del_cb, &d), 0);
    CHECK_EQ_INT(ev_io_add(loop, b[0], EV_READ, del_cb, &d), 0);
    ev_timer_t end;
    ev_timer_init(&end);
    ev_timer_start(loop, &end, 30, stop_cb, NULL);
    CHECK_EQ_INT(ev_run(loop), 0);
    CHECK_EQ_INT(d.ran[0] + d.ran[1], 1);
    CHECK_EQ_INT(d.replaced_runs, 0);
    ev_io_del(loop, d.spare[0]);
    close(a[0] == d.spare[0] ? b[0] : a[0]);
    close(d.spare[0]);
    close(d.spare[1]);
    close(a[1]);
    close(b[1]);
    ev_loop_free(loop);
}

/* ---- cached time ---- */
static uint64_t now_a, now_b;
static void now_cb(ev_loop_t *loop, void *arg) {
    now_a = ev_now_ns(loop);
    struct timespec ts = {0, 2 * 1000000};
    nanosleep(&ts, NULL);
    now_b = ev_now_ns(loop);
    ev_stop(loop);
}
static void test_now_cached(void) {
    ev_loop_t *loop = ev_loop_new();
    ev_timer_t t;
    ev_timer_init(&t);
    uint64_t before = ev_clock_ns();
    ev_timer_start(loop, &t, 1, now_cb, NULL);
    ev_run(loop);
    CHECK(now_a == now_b); /* cached within an iteration */
    CHECK(now_a >= before);
    CHECK(ev_clock_ns() >= now_a + 2 * 1000000ull);
    ev_loop_free(loop);
}

/* A timer armed outside ev_run counts from the time it is armed, not from
 * the loop's last (possibly old) iteration. */
static void test_arm_outside_run(void) {
    ev_loop_t *loop = ev_loop_new();
    ev_timer_t t;
    ev_timer_init(&t);
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL); /* the loop's cached time is now 30 ms old */
    uint64_t t0 = ev_clock_ns();
    ev_timer_start(loop, &t, 20, stop_cb, NULL);
    ev_run(loop);
    CHECK(ev_clock_ns() - t0 >= 20 * 1000000ull);
    ev_loop_free(loop);
}

/* The fd table grows past its initial size; a high fd still dispatches. */
#define NPIPES 150
static int many_hits, many_fd_seen;
static void many_cb(ev_loop_t *loop, int fd, uint32_t events, void *arg) {
    many_hits++;
    many_fd_seen = fd;
    char b[4];
    CHECK_EQ_INT(read(fd, b, sizeof b), 1);
    ev_stop(loop);
}
static void test_many_fds(void) {
    ev_loop_t *loop = ev_loop_new();
    int p[NPIPES][2];
    int ok = 0;
    for (int i = 0; i < NPIPES; i++) {
        ok += pipe2(p[i], O_NONBLOCK) == 0;
        ok += ev_io_add(loop, p[i][0], EV_READ, many_cb, NULL) == 0;
    }
    CHECK_EQ_INT(ok, 2 * NPIPES);
    CHECK(p[NPIPES - 1][0] > 256);
    CHECK_EQ_INT(write(p[NPIPES - 1][1], "z", 1), 1);
    ev_timer_t g;
    ev_timer_init(&g);
    guard_fired = 0;
    ev_timer_start(loop, &g, 2000, guard_cb, NULL);
    ev_run(loop);
    CHECK(!guard_fired);
    CHECK_EQ_INT(many_hits, 1);
    CHECK_EQ_INT(many_fd_seen, p[NPIPES - 1][0]);
    ev_timer_stop(loop, &g);
    for (int i = 0; i < NPIPES; i++) {
        ev_io_del(loop, p[i][0]);
        close(p[i][0]);
        close(p[i][1]);
    }
    ev_loop_free(loop);
}

int main(void) {
    test_io_pipe();
    test_io_write_mod();
    test_timer_order();
    test_timer_rearm();
    test_timer_stop_in_cb();
    test_stop_in_cb();
    test_timer_heap_random();
    test_wakeup_thread();
    test_delete_during_dispatch();
    test_now_cached();
    test_arm_outside_run();
    test_many_fds();
    return check_summary("test_ev");
}
