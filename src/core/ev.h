/* ev.h — single-threaded event loop: epoll readiness, a timer heap, cross-thread wakeups. */
#ifndef TOLLGATE_CORE_EV_H
#define TOLLGATE_CORE_EV_H

#include <stddef.h>
#include <stdint.h>

#define EV_READ  0x1u
#define EV_WRITE 0x2u
#define EV_ERROR 0x4u /* reported only: EPOLLERR or EPOLLHUP */

typedef struct ev_loop ev_loop_t;

/* fd became ready; `events` is a mask of EV_READ | EV_WRITE | EV_ERROR. */
typedef void (*ev_io_cb)(ev_loop_t *loop, int fd, uint32_t events, void *arg);
typedef void (*ev_timer_cb)(ev_loop_t *loop, void *arg);
typedef void (*ev_wakeup_cb)(ev_loop_t *loop, void *arg);

/* A timer embedded in the caller's struct (no allocation per timer).
 * Zero-initialise it (or ev_timer_init) before first use. The owner must stop
 * it before freeing the struct that holds it. */
typedef struct ev_timer {
    uint64_t when_ns; /* monotonic deadline */
    size_t heap_idx;  /* position in the loop's heap, SIZE_MAX when not armed */
    ev_timer_cb cb;
    void *arg;
} ev_timer_t;

ev_loop_t *ev_loop_new(void);
void ev_loop_free(ev_loop_t *loop);

/* Run until ev_stop; returns 0, or a negative errno if epoll fails. */
int ev_run(ev_loop_t *loop);
/* Ask the loop to return from ev_run; thread-safe. */
void ev_stop(ev_loop_t *loop);

/* Watch fd (edge-triggered is NOT used: level-triggered, so a callback may read
 * part of what is there). One registration per fd. 0 or negative errno. */
int ev_io_add(ev_loop_t *loop, int fd, uint32_t events, ev_io_cb cb, void *arg);
int ev_io_mod(ev_loop_t *loop, int fd, uint32_t events);
int ev_io_del(ev_loop_t *loop, int fd);

void ev_timer_init(ev_timer_t *t);
/* (Re)arm t to fire once after delay_ms (counted from ev_now_ns inside ev_run,
 * from the current time outside it). Re-arming an
 * armed timer moves it. A timer is disarmed before its cb runs, so the cb may
 * re-arm it. 0, -EINVAL (cb NULL) or -ENOMEM (heap growth; t stays disarmed). */
int ev_timer_start(ev_loop_t *loop, ev_timer_t *t, uint64_t delay_ms, ev_timer_cb cb, void *arg);
void ev_timer_stop(ev_loop_t *loop, ev_timer_t *t);
int ev_timer_active(const ev_timer_t *t);

/* Monotonic time in ns, cached at each loop iteration (cheap). */
uint64_t ev_now_ns(ev_loop_t *loop);
/* Fresh monotonic time in ns (clock_gettime). */
uint64_t ev_clock_ns(void);
/* The same in seconds, for measuring durations. */
double ev_clock_s(void);

/* Wakeups: another thread calls ev_wakeup(loop); the loop thread then calls cb.
 * Several wakeups before the loop runs may coalesce into one call. */
void ev_set_wakeup(ev_loop_t *loop, ev_wakeup_cb cb, void *arg);
void ev_wakeup(ev_loop_t *loop);

#endif
