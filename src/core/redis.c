/* redis.c — RESP2 over a non-blocking socket on an ev_loop; pending commands in a ring. */
#include "core/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"

/* One command waiting for its reply. The ring's buffers are reused: no allocation per
 * command once they have grown. */
typedef struct pending {
    int64_t id;
    redis_cb cb; /* NULL when cancelled */
    void *arg;
    uint64_t sent_ns;
    int retried; /* already re-sent as EVAL */
    buf_t eval;  /* EVALSHA commands: the same call as EVAL, for a NOSCRIPT fallback */
} pending_t;

struct redis {
    ev_loop_t *loop;
    struct sockaddr_in addr;
    redis_opts_t o;
    int fd; /* -1 when not connected */
    int connecting;
    int up;
    buf_t out, in;
    pending_t *ring; /* REDIS_MAX_PENDING */
    size_t head, count;
    int64_t next_id;
    uint32_t backoff_ms;
    ev_timer_t timer; /* timeout checks while connected, reconnect delay while down */
    redis_health_cb health_cb;
    void *health_arg;
    redis_reply_t elems[REDIS_MAX_ELEMS];
    redis_stats_t st;
    int in_read; /* replies are being dispatched: defer teardown */
};

static void connect_start(redis_t *r);
static void on_io(ev_loop_t *loop, int fd, uint32_t ev, void *arg);

/* ---------- SHA-1 (FIPS 180-4 §6.1), for EVALSHA ---------- */

static uint32_t rol(uint32_t x, int n) {
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *b) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)b[4 * t] << 24 | (uint32_t)b[4 * t + 1] << 16 |
               (uint32_t)b[4 * t + 2] << 8 | b[4 * t + 3];
    for (int t = 16; t < 80; t++) w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20)
            f = (bb & c) | (~bb & d), k = 0x5a827999;
        else if (t < 40)
            f = bb ^ c ^ d, k = 0x6ed9eba1;
        else if (t < 60)
            f = (bb & c) | (bb & d) | (c & d), k = 0x8f1bbcdc;
        else
            f = bb ^ c ^ d, k = 0xca62c1d6;
        uint32_t tmp = rol(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol(bb, 30);
        bb = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void redis_script_init(redis_script_t *s, const char *text) {
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    size_t n = strlen(text), i = 0;
    for (; i + 64 <= n; i += 64) sha1_block(h, (const uint8_t *)text + i);
    uint8_t last[128] = {0};
    size_t rem = n - i;
    memcpy(last, text + i, rem);
    last[rem] = 0x80;
    size_t tot = rem + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++) last[tot - 1 - k] = (uint8_t)(bits >> (8 * k));
    for (size_t k = 0; k < tot; k += 64) sha1_block(h, last + k);
    static const char hx[] = "0123456789abcdef";
    for (int k = 0; k < 20; k++) {
        uint8_t byte = (uint8_t)(h[k / 4] >> (24 - 8 * (k % 4)));
        s->sha[2 * k] = hx[byte >> 4];
        s->sha[2 * k + 1] = hx[byte & 15];
    }
    s->sha[40] = '\0';
    s->text = text;
}

/* ---------- connection ---------- */

static void set_health(redis_t *r, int up) {
    if (r->up == up) return;
    r->up = up;
    if (r->health_cb) r->health_cb(r->health_arg, up);
}

static pending_t *ring_at(redis_t *r, size_t i) {
    return &r->ring[(r->head + i) % REDIS_MAX_PENDING];
}

static void fail_all(redis_t *r) {
    redis_reply_t io = {.type = REDIS_ERR_IO};
    while (r->count) {
        pending_t *p = ring_at(r, 0);
        redis_cb cb = p->cb;
        void *arg = p->arg;
        p->cb = NULL;
        r->head = (r->head + 1) % REDIS_MAX_PENDING;
        r->count--;
        if (cb) cb(arg, &io);
    }
}

static void reconnect_cb(ev_loop_t *loop, void *arg) {
    (void)loop;
    connect_start(arg);
}

/* Drop the connection, fail what waits, and try again after the backoff. */
static void drop(redis_t *r) {
    if (r->fd >= 0) {
        ev_io_del(r->loop, r->fd);
        close(r->fd);
        r->fd = -1;
        if (!r->connecting) r->st.disconnects++;
    }
    r->connecting = 0;
    buf_reset(&r->out);
    buf_reset(&r->in);
    set_health(r, 0);
    fail_all(r);
    uint32_t d = r->backoff_ms;
    r->backoff_ms = d * 2 > r->o.backoff_max_ms ? r->o.backoff_max_ms : d * 2;
    ev_timer_start(r->loop, &r->timer, d, reconnect_cb, r);
}

static void timeout_cb(ev_loop_t *loop, void *arg) {
    redis_t *r = arg;
    if (!r->count || r->fd < 0 || r->connecting) return;
    uint64_t now = ev_now_ns(loop), lim = (uint64_t)r->o.timeout_ms * 1000000;
    pending_t *p = ring_at(r, 0);
    if (now - p->sent_ns >= lim) {
        r->st.timeouts++;
        drop(r);
        return;
    }
    ev_timer_start(loop, &r->timer, (lim - (now - p->sent_ns)) / 1000000 + 1, timeout_cb, r);
}

static void connect_timeout_cb(ev_loop_t *loop, void *arg) {
    (void)loop;
    drop(arg);
}

static void connect_start(redis_t *r) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        drop(r);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r->fd = fd;
    r->connecting = 1;
    int rc = connect(fd, (struct sockaddr *)&r->addr, sizeof r->addr);
    if (rc < 0 && errno != EINPROGRESS) {
        drop(r);
        return;
    }
    if (ev_io_add(r->loop, fd, EV_WRITE, on_io, r) < 0) {
        close(fd);
        r->fd = -1;
        drop(r);
        return;
    }
    /* A connect that hangs counts against the same timeout as a command. */
    ev_timer_start(r->loop, &r->timer, r->o.timeout_ms * 4, connect_timeout_cb, r);
}

static int flush_out(redis_t *r) {
    while (r->out.len) {
        ssize_t n = send(r->fd, r->out.data, r->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return -1;
        }
        buf_consume(&r->out, (size_t)n);
    }
    ev_io_mod(r->loop, r->fd, EV_READ | (r->out.len ? EV_WRITE : 0));
    return 0;
}

/* ---------- replies ---------- */

/* A decimal integer exactly filling p[0..n) ("-1", "42"); -1 when malformed. The client's
 * own parser: strtoll would skip whitespace past the line end. */
static int parse_int(const char *p, size_t n, long long *out) {
    size_t i = 0;
    int neg = 0;
    if (n && p[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == n || n - i > 18) return -1;
    long long v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

static long parse_at(const char *p, size_t n, redis_reply_t *out, redis_reply_t *elems,
                     size_t nelems, int depth) {
    const char *eol = memchr(p, '\r', n);
    if (!eol || (size_t)(eol - p) + 1 >= n)
        return n > 64 * 1024 && !eol ? -1 : 0; /* a header line never gets this long */
    if (eol[1] != '\n' || depth > 4 || eol == p) return -1;
    size_t hl = (size_t)(eol - p) + 2, ll = (size_t)(eol - p) - 1;
    memset(out, 0, sizeof *out);
    long long v;
    switch (p[0]) {
    case '+':
    case '-':
        out->type = p[0] == '+' ? REDIS_STATUS : REDIS_ERROR;
        out->str = p + 1;
        out->len = ll;
        return (long)hl;
    case ':':
        out->type = REDIS_INT;
        if (parse_int(p + 1, ll, &v)) return -1;
        out->integer = v;
        return (long)hl;
    case '$':
        if (parse_int(p + 1, ll, &v) || v < -1 || v > 512 * 1024 * 1024) return -1;
        out->type = REDIS_BULK;
        if (v < 0) {
            out->is_nil = 1;
            return (long)hl;
        }
        if (hl + (size_t)v + 2 > n) return 0;
        if (p[hl + (size_t)v] != '\r' || p[hl + (size_t)v + 1] != '\n') return -1;
        out->str = p + hl;
        out->len = (size_t)v;
        return (long)(hl + (size_t)v + 2);
    case '*': {
        if (parse_int(p + 1, ll, &v) || v < -1 || v > 1024 * 1024) return -1;
        out->type = REDIS_ARRAY;
        if (v < 0) {
            out->is_nil = 1;
            return (long)hl;
        }
        size_t off = hl;
        out->elems = depth == 0 ? elems : NULL;
        for (long long i = 0; i < v; i++) {
            redis_reply_t tmp;
            redis_reply_t *dst = depth == 0 && (size_t)i < nelems ? &elems[i] : &tmp;
            long u = parse_at(p + off, n - off, dst, elems, nelems, depth + 1);
            if (u <= 0) return u;
            off += (size_t)u;
        }
        out->n = depth == 0 && (size_t)v > nelems ? nelems : depth == 0 ? (size_t)v : 0;
        return (long)off;
    }
    }
    return -1;
}

long redis_parse(const char *p, size_t n, redis_reply_t *out, redis_reply_t *elems, size_t nelems) {
    if (n == 0) return 0;
    return parse_at(p, n, out, elems, nelems, 0);
}

static int append_cmd(buf_t *b, int argc, const char *const *argv, const size_t *lens) {
    int rc = buf_appendf(b, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        rc |= buf_appendf(b, "$%zu\r\n", lens[i]);
        rc |= buf_append(b, argv[i], lens[i]);
        rc |= buf_append(b, "\r\n", 2);
    }
    return rc ? -ENOMEM : 0;
}

static void dispatch(redis_t *r) {
    size_t off = 0;
    r->in_read = 1;
    while (r->count && off < r->in.len) {
        redis_reply_t rep;
        long u = redis_parse(r->in.data + off, r->in.len - off, &rep, r->elems, REDIS_MAX_ELEMS);
        if (u == 0) break;
        if (u < 0) {
            r->in_read = 0;
            drop(r);
            return;
        }
        off += (size_t)u;
        pending_t *p = ring_at(r, 0);
        /* NOSCRIPT: the server lost the script (restart, SCRIPT FLUSH): send it as EVAL,
         * which also loads it for the next EVALSHA. The entry moves to the tail. */
        if (rep.type == REDIS_ERROR && rep.len >= 8 && !memcmp(rep.str, "NOSCRIPT", 8) &&
            p->eval.len && !p->retried && r->count < REDIS_MAX_PENDING) {
            pending_t *t = ring_at(r, r->count);
            buf_t tb = t->eval;
            t->eval = p->eval;
            p->eval = tb;
            t->id = p->id;
            t->cb = p->cb;
            t->arg = p->arg;
            t->retried = 1;
            t->sent_ns = ev_now_ns(r->loop);
            p->cb = NULL;
            r->st.noscript_fallbacks++;
            buf_append(&r->out, t->eval.data, t->eval.len);
            r->count++;
            r->head = (r->head + 1) % REDIS_MAX_PENDING;
            r->count--;
            continue;
        }
        redis_cb cb = p->cb;
        void *arg = p->arg;
        p->cb = NULL;
        buf_reset(&p->eval);
        r->head = (r->head + 1) % REDIS_MAX_PENDING;
        r->count--;
        if (cb) cb(arg, &rep);
        if (r->fd < 0) { /* a callback's command failed hard: the connection is gone */
            r->in_read = 0;
            return;
        }
    }
    r->in_read = 0;
    buf_consume(&r->in, off);
    if (r->out.len && flush_out(r) < 0) {
        drop(r);
        return;
    }
    if (r->count)
        ev_timer_start(r->loop, &r->timer, r->o.timeout_ms, timeout_cb, r);
    else
        ev_timer_stop(r->loop, &r->timer);
}

static void on_io(ev_loop_t *loop, int fd, uint32_t ev, void *arg) {
    (void)loop;
    redis_t *r = arg;
    if (r->connecting) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (ev & EV_ERROR)) {
            drop(r);
            return;
        }
        r->connecting = 0;
        r->backoff_ms = r->o.backoff_min_ms;
        r->st.connects++;
        ev_timer_stop(r->loop, &r->timer);
        ev_io_mod(r->loop, fd, EV_READ);
        set_health(r, 1);
        return;
    }
    if (ev & EV_WRITE) {
        if (flush_out(r) < 0) {
            drop(r);
            return;
        }
    }
    if (ev & (EV_READ | EV_ERROR)) {
        for (;;) {
            if (buf_reserve(&r->in, 16384) < 0) {
                drop(r);
                return;
            }
            ssize_t n = recv(fd, r->in.data + r->in.len, r->in.cap - r->in.len, 0);
            if (n > 0) {
                r->in.len += (size_t)n;
                r->in.data[r->in.len] = '\0';
                if ((size_t)n < 16384) break;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) break;
            drop(r); /* EOF or error */
            return;
        }
        dispatch(r);
    }
}

/* ---------- API ---------- */

int redis_new(ev_loop_t *loop, const char *host, uint16_t port, const redis_opts_t *opts,
              redis_t **out) {
    redis_t *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->ring = calloc(REDIS_MAX_PENDING, sizeof *r->ring);
    if (!r->ring) {
        free(r);
        return -ENOMEM;
    }
    r->addr.sin_family = AF_INET;
    r->addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &r->addr.sin_addr) != 1) {
        free(r->ring);
        free(r);
        return -EINVAL;
    }
    r->loop = loop;
    r->o.timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : 100;
    r->o.backoff_min_ms = opts && opts->backoff_min_ms ? opts->backoff_min_ms : 50;
    r->o.backoff_max_ms = opts && opts->backoff_max_ms ? opts->backoff_max_ms : 2000;
    r->backoff_ms = r->o.backoff_min_ms;
    r->fd = -1;
    r->next_id = 1;
    buf_init(&r->out);
    buf_init(&r->in);
    for (size_t i = 0; i < REDIS_MAX_PENDING; i++) buf_init(&r->ring[i].eval);
    ev_timer_init(&r->timer);
    connect_start(r);
    *out = r;
    return 0;
}

void redis_free(redis_t *r) {
    if (!r) return;
    ev_timer_stop(r->loop, &r->timer);
    if (r->fd >= 0) {
        ev_io_del(r->loop, r->fd);
        close(r->fd);
        r->fd = -1;
    }
    r->health_cb = NULL;
    fail_all(r);
    for (size_t i = 0; i < REDIS_MAX_PENDING; i++) buf_free(&r->ring[i].eval);
    free(r->ring);
    buf_free(&r->out);
    buf_free(&r->in);
    free(r);
}

void redis_on_health(redis_t *r, redis_health_cb cb, void *arg) {
    r->health_cb = cb;
    r->health_arg = arg;
}

int redis_up(const redis_t *r) {
    return r->up;
}

static int64_t submit(redis_t *r, redis_cb cb, void *arg, pending_t **pp) {
    if (r->fd < 0 || r->connecting) return -ENOTCONN;
    if (r->count >= REDIS_MAX_PENDING) return -EAGAIN;
    pending_t *p = ring_at(r, r->count);
    p->id = r->next_id++;
    p->cb = cb;
    p->arg = arg;
    p->retried = 0;
    p->sent_ns = ev_now_ns(r->loop);
    buf_reset(&p->eval);
    *pp = p;
    return p->id;
}

static int64_t commit(redis_t *r, int64_t id) {
    r->count++;
    r->st.commands++;
    if (!r->in_read) {
        if (flush_out(r) < 0) {
            drop(r); /* fails this command too, through its callback */
            return id;
        }
        if (!ev_timer_active(&r->timer))
            ev_timer_start(r->loop, &r->timer, r->o.timeout_ms, timeout_cb, r);
    }
    return id;
}

int64_t redis_command(redis_t *r, int argc, const char *const *argv, const size_t *lens,
                      redis_cb cb, void *arg) {
    pending_t *p;
    int64_t id = submit(r, cb, arg, &p);
    if (id < 0) return id;
    if (append_cmd(&r->out, argc, argv, lens) < 0) return -ENOMEM;
    return commit(r, id);
}

int64_t redis_eval(redis_t *r, const redis_script_t *s, int nkeys, int argc,
                   const char *const *argv, const size_t *lens, redis_cb cb, void *arg) {
    if (argc + 3 > REDIS_MAX_ARGS) return -E2BIG;
    pending_t *p;
    int64_t id = submit(r, cb, arg, &p);
    if (id < 0) return id;
    const char *av[REDIS_MAX_ARGS];
    size_t al[REDIS_MAX_ARGS];
    char nk[16];
    int nkl = snprintf(nk, sizeof nk, "%d", nkeys);
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = s->sha;
    al[1] = 40;
    av[2] = nk;
    al[2] = (size_t)nkl;
    for (int i = 0; i < argc; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = lens[i];
    }
    if (append_cmd(&r->out, argc + 3, av, al) < 0) return -ENOMEM;
    av[0] = "EVAL";
    al[0] = 4;
    av[1] = s->text;
    al[1] = strlen(s->text);
    if (append_cmd(&p->eval, argc + 3, av, al) < 0) return -ENOMEM;
    return commit(r, id);
}

void redis_cancel(redis_t *r, int64_t handle) {
    for (size_t i = 0; i < r->count; i++) {
        pending_t *p = ring_at(r, i);
        if (p->id == handle) {
            p->cb = NULL;
            return;
        }
    }
}

void redis_get_stats(const redis_t *r, redis_stats_t *out) {
    *out = r->st;
}
