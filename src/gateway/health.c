/* health.c — the active health checker thread: blocking probes with a deadline, off the
 * request path (the workers only read the result, an atomic in pool_addr_t). */
#include "gateway/health.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/ev.h"
#include "core/log.h"

#define TICK_MS 50 /* how often the thread looks for due checks */

struct health {
    gateway_t *gw;
    pthread_t thread;
    int running;
    pthread_mutex_t mu; /* guards stop, with cv for a prompt wake-up */
    pthread_cond_t cv;
    int stop;
    uint64_t *due;      /* next check per pool_addr id (monotonic ns); thread-private */
    size_t ndue;
    struct probe *probes; /* MAX_PROBES slots for a round; thread-private */
};

/* One probe in flight. Probes of a round run concurrently (one poll() over all of
 * them), so an address that swallows packets costs its own timeout, not everyone's. */
typedef struct probe {
    pool_addr_t *a;     /* NULL for health_check_once */
    const char *backend;
    const char *path;
    const char *host;
    uint16_t port;
    int fd;
    int sent;           /* request written, reading the status line */
    int done;
    int up;
    uint64_t deadline;  /* monotonic ns */
    char buf[64];
    size_t got;
} probe_t;

#define MAX_PROBES 256 /* per round; more due addresses wait for the next tick */

static void probe_finish(probe_t *p, int up) {
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->done = 1;
    p->up = up;
}

/* Resolve and start a non-blocking connect. */
static void probe_start(probe_t *p, uint32_t timeout_ms) {
    char ports[8];
    p->fd = -1;
    p->done = p->sent = p->up = 0;
    p->got = 0;
    p->deadline = ev_clock_ns() + (uint64_t)timeout_ms * 1000000;
    snprintf(ports, sizeof ports, "%u", (unsigned)p->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    if (getaddrinfo(p->host, ports, &hints, &ai) != 0 || !ai) {
        probe_finish(p, 0);
        return;
    }
    p->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0 || (connect(p->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS))
        probe_finish(p, 0);
    freeaddrinfo(ai);
}

/* The socket is writable (connected) or readable (answer): advance. */
static void probe_step(probe_t *p, short revents) {
    if (!p->sent) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            probe_finish(p, 0);
            return;
        }
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", p->path,
                         p->host);
        /* A fresh socket's send buffer takes a few hundred bytes whole. */
        if (n <= 0 || (size_t)n >= sizeof req || send(p->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
            probe_finish(p, 0);
            return;
        }
        p->sent = 1;
        return;
    }
    ssize_t r = recv(p->fd, p->buf + p->got, sizeof p->buf - 1 - p->got, 0);
    if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) {
        probe_finish(p, 0);
        return;
    }
    if (r > 0)
        p->got += (size_t)r;
    if (p->got >= 12) {
        p->buf[p->got] = '\0';
        /* "HTTP/1.x 2xx": the status line is all a health check needs. */
        probe_finish(p, !strncmp(p->buf, "HTTP/1.", 7) && p->buf[9] == '2');
    }
    (void)revents;
}

/* Run probes[0..n) to completion (each by its own deadline). */
static void probe_run(probe_t *probes, size_t n) {
    struct pollfd pf[MAX_PROBES];
    size_t idx[MAX_PROBES];
    for (;;) {
        size_t k = 0;
        uint64_t now = ev_clock_ns(), next = UINT64_MAX;
        for (size_t i = 0; i < n; i++) {
            probe_t *p = &probes[i];
            if (p->done)
                continue;
            if (now >= p->deadline) {
                probe_finish(p, 0);
                continue;
            }
            if (p->deadline < next)
                next = p->deadline;
            pf[k] = (struct pollfd){.fd = p->fd, .events = p->sent ? POLLIN : POLLOUT};
            idx[k++] = i;
        }
        if (k == 0)
            return;
        int wait = (int)((next - now) / 1000000 + 1);
        if (poll(pf, k, wait) < 0 && errno != EINTR)
            return;
        for (size_t j = 0; j < k; j++)
            if (pf[j].revents)
                probe_step(&probes[idx[j]], pf[j].revents);
    }
}

int health_check_once(const char *host, uint16_t port, const char *path, uint32_t timeout_ms) {
    probe_t p = {.host = host, .port = port, .path = path};
    probe_start(&p, timeout_ms);
    probe_run(&p, 1);
    return p.up;
}

static void check_round(health_t *h) {
    probe_t *probes = h->probes;
    size_t n = 0;
    snapshot_t *s = gateway_acquire(h->gw);
    uint64_t now = ev_clock_ns();
    for (size_t i = 0; i < s->cfg.nbackends && n < MAX_PROBES; i++) {
        const snap_backend_t *b = &s->backends[i];
        const gw_health_cfg_t *hc = &b->cfg->health;
        if (!hc->path)
            continue;
        for (size_t j = 0; j < b->naddrs && n < MAX_PROBES; j++) {
            pool_addr_t *a = b->addrs[j];
            if (a->id >= h->ndue) {
                size_t nd_n = a->id + 16;
                uint64_t *nd = realloc(h->due, nd_n * sizeof *nd);
                if (!nd)
                    continue;
                memset(nd + h->ndue, 0, (nd_n - h->ndue) * sizeof *nd);
                h->due = nd;
                h->ndue = nd_n;
            }
            if (h->due[a->id] > now)
                continue;
            h->due[a->id] = now + (uint64_t)hc->interval_ms * 1000000;
            probes[n] = (probe_t){.a = a, .backend = b->cfg->name, .path = hc->path,
                                  .host = a->host, .port = a->port};
            probe_start(&probes[n], hc->timeout_ms);
            n++;
        }
    }
    probe_run(probes, n);
    for (size_t i = 0; i < n; i++) {
        pool_addr_t *a = probes[i].a;
        int up = probes[i].up, was = atomic_load_explicit(&a->health, memory_order_relaxed);
        pool_set_health(a, up);
        if (up != was) {
            if (up)
                log_info("upstream up", LOG_STR("address", a->name),
                         LOG_STR("backend", probes[i].backend));
            else
                log_warn("upstream down", LOG_STR("address", a->name),
                         LOG_STR("backend", probes[i].backend), LOG_STR("check", probes[i].path));
        }
    }
    snapshot_unref(s); /* after the probes: they point into this generation's config */
}

static void *health_main(void *arg) {
    health_t *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        pthread_mutex_unlock(&h->mu);
        check_round(h);
        pthread_mutex_lock(&h->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!h->stop)
            pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int health_start(gateway_t *gw, health_t **out) {
    health_t *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->gw = gw;
    if (!(h->probes = calloc(MAX_PROBES, sizeof *h->probes))) {
        free(h);
        return -ENOMEM;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    int rc = pthread_create(&h->thread, NULL, health_main, h);
    if (rc) {
        health_free(h);
        return -rc;
    }
    h->running = 1;
    *out = h;
    return 0;
}

void health_stop(health_t *h) {
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void health_wait(health_t *h) {
    if (h && h->running) {
        pthread_join(h->thread, NULL);
        h->running = 0;
    }
}

void health_free(health_t *h) {
    if (!h)
        return;
    health_stop(h);
    health_wait(h);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->due);
    free(h->probes);
    free(h);
}
