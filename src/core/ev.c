/* ev.c — the event loop: level-triggered epoll, a binary min-heap of embedded timers, eventfd wakeups. */
#include "core/ev.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define EV_BATCH 128 /* epoll events taken per wait */

/* epoll_event.data.u64 of the wakeup eventfd; an fd registration's token
 * (generation << 32 | fd) never equals it because fd is a non-negative int. */
#define EV_WAKE_TOKEN UINT64_MAX

/* One slot per fd number. `gen` changes on every add, and is carried in the
 * epoll token, so an event fetched before a del (or a del + re-add of the same
 * fd number) in the same batch is recognised as stale and dropped. */
struct ev_reg {
    ev_io_cb cb;
    void *arg;
    uint32_t events; /* EV_READ | EV_WRITE interest */
    uint32_t gen;    /* generation of the live registration */
    int active;
};

struct ev_loop {
    int epfd;
    int wakefd;
    struct ev_reg *regs; /* indexed by fd, grown on demand */
    size_t nregs;
    uint32_t next_gen;

    ev_timer_t **heap; /* min-heap on when_ns; heap[i]->heap_idx == i */
    size_t heap_len, heap_cap;

    uint64_t now_ns; /* cached monotonic time of this iteration */
    int running;     /* inside ev_run (now_ns is then kept fresh per iteration) */

    atomic_int stop;         /* set by ev_stop from any thread */
    atomic_int wake_pending; /* set by ev_wakeup from any thread */
    ev_wakeup_cb wake_cb;
    void *wake_arg;

    struct epoll_event evbuf[EV_BATCH];
};

uint64_t ev_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double ev_clock_s(void) { return (double)ev_clock_ns() * 1e-9; }

uint64_t ev_now_ns(ev_loop_t *loop) {
    return loop->now_ns;
}

ev_loop_t *ev_loop_new(void) {
    ev_loop_t *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    loop->epfd = -1;
    loop->wakefd = -1;
    loop->next_gen = 1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        goto err;
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wakefd < 0)
        goto err;
    struct epoll_event ee = {.events = EPOLLIN, .data.u64 = EV_WAKE_TOKEN};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ee) < 0)
        goto err;
    atomic_init(&loop->stop, 0);
    atomic_init(&loop->wake_pending, 0);
    loop->now_ns = ev_clock_ns();
    return loop;
err:
    ev_loop_free(loop);
    return NULL;
}

void ev_loop_free(ev_loop_t *loop) {
    if (!loop)
        return;
    /* Timers still armed belong to their owners; mark them disarmed so a later
     * ev_timer_active on them is truthful. */
    for (size_t i = 0; i < loop->heap_len; i++)
        loop->heap[i]->heap_idx = SIZE_MAX;
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->wakefd >= 0)
        close(loop->wakefd);
    free(loop->regs);
    free(loop->heap);
    free(loop);
}

/* ---- io ---------------------------------------------------------------- */

static uint32_t to_epoll(uint32_t events) {
    uint32_t e = 0;
    if (events & EV_READ)
        e |= EPOLLIN;
    if (events & EV_WRITE)
        e |= EPOLLOUT;
    return e;
}

static int regs_grow(ev_loop_t *loop, int fd) {
    if ((size_t)fd < loop->nregs)
        return 0;
    size_t n = loop->nregs ? loop->nregs : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct ev_reg *r = realloc(loop->regs, n * sizeof *r);
    if (!r)
        return -ENOMEM;
    memset(r + loop->nregs, 0, (n - loop->nregs) * sizeof *r);
    loop->regs = r;
    loop->nregs = n;
    return 0;
}

static struct ev_reg *reg_get(ev_loop_t *loop, int fd) {
    if (fd < 0 || (size_t)fd >= loop->nregs || !loop->regs[fd].active)
        return NULL;
    return &loop->regs[fd];
}

int ev_io_add(ev_loop_t *loop, int fd, uint32_t events, ev_io_cb cb, void *arg) {
    if (fd < 0 || !cb)
        return -EINVAL;
    int rc = regs_grow(loop, fd);
    if (rc)
        return rc;
    struct ev_reg *r = &loop->regs[fd];
    if (r->active)
        return -EEXIST;
    uint32_t gen = loop->next_gen++;
    if (loop->next_gen == 0)
        loop->next_gen = 1; /* wrapped: 0 is never a live generation */
    struct epoll_event ee = {.events = to_epoll(events),
                             .data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ee) < 0)
        return -errno;
    r->cb = cb;
    r->arg = arg;
    r->events = events & (EV_READ | EV_WRITE);
    r->gen = gen;
    r->active = 1;
    return 0;
}

int ev_io_mod(ev_loop_t *loop, int fd, uint32_t events) {
    struct ev_reg *r = reg_get(loop, fd);
    if (!r)
        return -ENOENT;
    events &= EV_READ | EV_WRITE;
    if (events == r->events)
        return 0; /* common on every write-drain; spare the syscall */
    struct epoll_event ee = {.events = to_epoll(events),
                             .data.u64 = ((uint64_t)r->gen << 32) | (uint32_t)fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ee) < 0)
        return -errno;
    r->events = events;
    return 0;
}

int ev_io_del(ev_loop_t *loop, int fd) {
    struct ev_reg *r = reg_get(loop, fd);
    if (!r)
        return -ENOENT;
    r->active = 0;
    r->cb = NULL;
    r->arg = NULL;
    /* EBADF/ENOENT: the caller closed the fd first, which already removed it
     * from the epoll set; the registration is gone either way. */
    if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
        return -errno;
    return 0;
}

/* ---- timers ------------------------------------------------------------ */

static void heap_set(ev_loop_t *loop, size_t i, ev_timer_t *t) {
    loop->heap[i] = t;
    t->heap_idx = i;
}

static void heap_up(ev_loop_t *loop, size_t i) {
    ev_timer_t *t = loop->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (loop->heap[p]->when_ns <= t->when_ns)
            break;
        heap_set(loop, i, loop->heap[p]);
        i = p;
    }
    heap_set(loop, i, t);
}

static void heap_down(ev_loop_t *loop, size_t i) {
    ev_timer_t *t = loop->heap[i];
    size_t n = loop->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && loop->heap[c + 1]->when_ns < loop->heap[c]->when_ns)
            c++;
        if (t->when_ns <= loop->heap[c]->when_ns)
            break;
        heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    heap_set(loop, i, t);
}

/* A zero-initialised timer has heap_idx 0, so "armed" is decided by the heap
 * itself, not by heap_idx alone. */
static int timer_in_heap(const ev_loop_t *loop, const ev_timer_t *t) {
    return t->heap_idx < loop->heap_len && loop->heap[t->heap_idx] == t;
}

static void heap_remove(ev_loop_t *loop, ev_timer_t *t) {
    size_t i = t->heap_idx;
    ev_timer_t *last = loop->heap[--loop->heap_len];
    t->heap_idx = SIZE_MAX;
    if (last == t)
        return;
    heap_set(loop, i, last);
    if (i > 0 && loop->heap[(i - 1) / 2]->when_ns > last->when_ns)
        heap_up(loop, i);
    else
        heap_down(loop, i);
}

void ev_timer_init(ev_timer_t *t) {
    memset(t, 0, sizeof *t);
    t->heap_idx = SIZE_MAX;
}

int ev_timer_active(const ev_timer_t *t) {
    /* cb is NULL in a zero-initialised, never-started timer. */
    return t->heap_idx != SIZE_MAX && t->cb != NULL;
}

int ev_timer_start(ev_loop_t *loop, ev_timer_t *t, uint64_t delay_ms, ev_timer_cb cb, void *arg) {
    if (!cb)
        return -EINVAL;
    /* Deadline from the cached iteration time; at least 1 ns ahead so a timer
     * re-armed with 0 delay from its own callback fires on the next iteration
     * instead of looping forever in this one. */
    uint64_t d = delay_ms > UINT64_MAX / 2000000u ? UINT64_MAX / 2 : delay_ms * 1000000u;
    if (!loop->running)
        loop->now_ns = ev_clock_ns(); /* armed during set-up: don't count from a stale time */
    uint64_t when = loop->now_ns + (d ? d : 1);
    if (timer_in_heap(loop, t)) {
        uint64_t old = t->when_ns;
        t->when_ns = when;
        t->cb = cb;
        t->arg = arg;
        if (when < old)
            heap_up(loop, t->heap_idx);
        else
            heap_down(loop, t->heap_idx);
        return 0;
    }
    if (loop->heap_len == loop->heap_cap) {
        size_t n = loop->heap_cap ? loop->heap_cap * 2 : 64;
        ev_timer_t **h = realloc(loop->heap, n * sizeof *h);
        if (!h) {
            t->heap_idx = SIZE_MAX;
            return -ENOMEM;
        }
        loop->heap = h;
        loop->heap_cap = n;
    }
    t->when_ns = when;
    t->cb = cb;
    t->arg = arg;
    loop->heap[loop->heap_len] = t;
    t->heap_idx = loop->heap_len++;
    heap_up(loop, t->heap_idx);
    return 0;
}

void ev_timer_stop(ev_loop_t *loop, ev_timer_t *t) {
    if (timer_in_heap(loop, t))
        heap_remove(loop, t);
    else
        t->heap_idx = SIZE_MAX;
}

/* Fire every timer due at the cached time. Each is removed before its cb runs,
 * so the cb may re-arm it or stop/free any other timer. */
static void run_timers(ev_loop_t *loop) {
    while (loop->heap_len && loop->heap[0]->when_ns <= loop->now_ns) {
        ev_timer_t *t = loop->heap[0];
        heap_remove(loop, t);
        t->cb(loop, t->arg);
        if (atomic_load_explicit(&loop->stop, memory_order_relaxed))
            return;
    }
}

/* ms to wait in epoll: until the earliest deadline, rounded up so we never
 * wake just before it and spin. */
static int next_timeout_ms(const ev_loop_t *loop) {
    if (!loop->heap_len)
        return -1;
    uint64_t when = loop->heap[0]->when_ns;
    if (when <= loop->now_ns)
        return 0;
    uint64_t ms = (when - loop->now_ns + 999999u) / 1000000u;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ---- wakeups and the loop ---------------------------------------------- */

void ev_set_wakeup(ev_loop_t *loop, ev_wakeup_cb cb, void *arg) {
    loop->wake_cb = cb;
    loop->wake_arg = arg;
}

static void kick(ev_loop_t *loop) {
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the loop will wake anyway. */
    ssize_t r = write(loop->wakefd, &one, sizeof one);
    (void)r;
}

void ev_wakeup(ev_loop_t *loop) {
    /* Only the first wakeup since the loop last drained pays for a syscall. */
    if (atomic_exchange_explicit(&loop->wake_pending, 1, memory_order_acq_rel) == 0)
        kick(loop);
}

void ev_stop(ev_loop_t *loop) {
    atomic_store_explicit(&loop->stop, 1, memory_order_release);
    kick(loop);
}

static void drain_wakeups(ev_loop_t *loop) {
    uint64_t v;
    ssize_t r = read(loop->wakefd, &v, sizeof v);
    (void)r;
    /* Clear the flag before the callback so a wakeup posted while it runs is
     * not lost: it re-kicks the eventfd. */
    if (atomic_exchange_explicit(&loop->wake_pending, 0, memory_order_acq_rel) && loop->wake_cb)
        loop->wake_cb(loop, loop->wake_arg);
}

static void dispatch(ev_loop_t *loop, const struct epoll_event *e) {
    if (e->data.u64 == EV_WAKE_TOKEN) {
        drain_wakeups(loop);
        return;
    }
    int fd = (int)(uint32_t)e->data.u64;
    uint32_t gen = (uint32_t)(e->data.u64 >> 32);
    struct ev_reg *r = reg_get(loop, fd);
    if (!r || r->gen != gen)
        return; /* deleted (or replaced) earlier in this batch */
    uint32_t ev = 0;
    if (e->events & EPOLLIN)
        ev |= EV_READ;
    if (e->events & EPOLLOUT)
        ev |= EV_WRITE;
    if (e->events & (EPOLLERR | EPOLLHUP))
        /* Also report the interest bits, so a callback that only handles
         * EV_READ/EV_WRITE still does the read/write that surfaces the error. */
        ev |= EV_ERROR | r->events;
    r->cb(loop, fd, ev, r->arg);
}

int ev_run(ev_loop_t *loop) {
    int rc = 0;
    loop->running = 1;
    for (;;) {
        loop->now_ns = ev_clock_ns();
        run_timers(loop);
        if (atomic_load_explicit(&loop->stop, memory_order_acquire))
            break;
        int n = epoll_wait(loop->epfd, loop->evbuf, EV_BATCH, next_timeout_ms(loop));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        loop->now_ns = ev_clock_ns();
        for (int i = 0; i < n; i++) {
            dispatch(loop, &loop->evbuf[i]);
            /* Undispatched events are level-triggered: they come back. */
            if (atomic_load_explicit(&loop->stop, memory_order_acquire))
                break;
        }
        if (atomic_load_explicit(&loop->stop, memory_order_acquire))
            break;
    }
    /* Consume the stop request so the loop can be run again. */
    atomic_store_explicit(&loop->stop, 0, memory_order_relaxed);
    loop->running = 0;
    return rc;
}
