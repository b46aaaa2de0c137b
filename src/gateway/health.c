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
};

static int remaining_ms(uint64_t deadline) {
    uint64_t now = ev_clock_ns();
    return now >= deadline ? 0 : (int)((deadline - now) / 1000000 + 1);
}

int health_check_once(const char *host, uint16_t port, const char *path, uint32_t timeout_ms) {
    uint64_t deadline = ev_clock_ns() + (uint64_t)timeout_ms * 1000000;
    char ports[8];
    snprintf(ports, sizeof ports, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    if (getaddrinfo(host, ports, &hints, &ai) != 0 || !ai)
        return 0;
    int up = 0, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
        goto out;
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    if (poll(&pf, 1, remaining_ms(deadline)) != 1)
        goto out;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)
        goto out;
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, host);
    if (n <= 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    char resp[64];
    size_t got = 0;
    while (got < 12) {
        pf.events = POLLIN;
        if (poll(&pf, 1, remaining_ms(deadline)) != 1)
            goto out;
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    resp[got] = '\0';
    /* "HTTP/1.x 2xx": the status line is all a health check needs. */
    up = !strncmp(resp, "HTTP/1.", 7) && resp[9] == '2';
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return up;
}

static void check_round(health_t *h) {
    snapshot_t *s = gateway_acquire(h->gw);
    for (size_t i = 0; i < s->cfg.nbackends; i++) {
        const snap_backend_t *b = &s->backends[i];
        const gw_health_cfg_t *hc = &b->cfg->health;
        if (!hc->path)
            continue;
        for (size_t j = 0; j < b->naddrs; j++) {
            pool_addr_t *a = b->addrs[j];
            if (a->id >= h->ndue) {
                size_t n = a->id + 16;
                uint64_t *nd = realloc(h->due, n * sizeof *nd);
                if (!nd)
                    continue;
                memset(nd + h->ndue, 0, (n - h->ndue) * sizeof *nd);
                h->due = nd;
                h->ndue = n;
            }
            uint64_t now = ev_clock_ns();
            if (h->due[a->id] > now)
                continue;
            h->due[a->id] = now + (uint64_t)hc->interval_ms * 1000000;
            int up = health_check_once(a->host, a->port, hc->path, hc->timeout_ms);
            int was = atomic_load_explicit(&a->health, memory_order_relaxed);
            pool_set_health(a, up);
            if (up != was) {
                if (up)
                    log_info("upstream up", LOG_STR("address", a->name), LOG_STR("backend", b->cfg->name));
                else
                    log_warn("upstream down", LOG_STR("address", a->name), LOG_STR("backend", b->cfg->name),
                             LOG_STR("check", hc->path));
            }
        }
    }
    snapshot_unref(s);
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
    free(h);
}
