/* redis.h — a Redis RESP2 client on a caller's ev_loop: non-blocking connect, pipelined
 * commands answered in order, Lua scripts by EVALSHA (EVAL when the server says NOSCRIPT),
 * per-command timeout, reconnect with backoff, and a health flag. One per loop thread. */
#ifndef TOLLGATE_CORE_REDIS_H
#define TOLLGATE_CORE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "core/ev.h"

#define REDIS_MAX_ARGS 24      /* arguments of one command */
#define REDIS_MAX_ELEMS 32     /* elements of one (flat) array reply */
#define REDIS_MAX_PENDING 1024 /* commands in flight on one connection */

typedef enum redis_type {
    REDIS_ERR_IO = 0, /* no reply: not connected, timed out, connection lost, cancelled */
    REDIS_STATUS,     /* +OK */
    REDIS_ERROR,      /* -ERR ... (str) */
    REDIS_INT,        /* :n */
    REDIS_BULK,       /* $n (str, len); nil has is_nil */
    REDIS_ARRAY,      /* *n (elems, n); one level of nesting */
} redis_type_t;

/* A reply, valid only during the callback. */
typedef struct redis_reply {
    int type;   /* redis_type_t */
    int is_nil; /* $-1 or *-1 */
    int64_t integer;
    const char *str; /* status, error, bulk: points into the client's input buffer */
    size_t len;
    struct redis_reply
        *elems; /* arrays: n elements (nested arrays are flattened as ARRAY with n) */
    size_t n;
} redis_reply_t;

typedef void (*redis_cb)(void *arg, const redis_reply_t *reply);

/* A Lua script: its text and SHA-1 (filled by redis_script_init). */
typedef struct redis_script {
    const char *text;
    char sha[41];
} redis_script_t;

typedef struct redis redis_t;

typedef struct redis_opts {
    uint32_t timeout_ms; /* a command without a reply this long: connection declared down [100] */
    uint32_t backoff_min_ms; /* first reconnect delay, doubling per failure [50] */
    uint32_t backoff_max_ms; /* cap [2000] */
} redis_opts_t;

/* Callback when the health flag changes (up = 1 connected and answering). */
typedef void (*redis_health_cb)(void *arg, int up);

/* Create and start connecting. host: numeric IPv4. 0 and *out, or negative errno. */
int redis_new(ev_loop_t *loop, const char *host, uint16_t port, const redis_opts_t *opts,
              redis_t **out);
/* Fails every pending command (REDIS_ERR_IO) and frees. Safe from outside callbacks only. */
void redis_free(redis_t *r);
void redis_on_health(redis_t *r, redis_health_cb cb, void *arg);
/* 1 when connected and the last command did not time out. */
int redis_up(const redis_t *r);

/* Send a command (argv[i] of lens[i] bytes). cb runs once with the reply, or REDIS_ERR_IO
 * when down/timed out. Returns a handle (> 0) for redis_cancel, or a negative errno
 * (-ENOTCONN when down: cb is NOT called then; -EAGAIN when REDIS_MAX_PENDING are waiting). */
int64_t redis_command(redis_t *r, int argc, const char *const *argv, const size_t *lens,
                      redis_cb cb, void *arg);
/* EVALSHA script with nkeys keys then args; falls back to EVAL once on NOSCRIPT. */
int64_t redis_eval(redis_t *r, const redis_script_t *s, int nkeys, int argc,
                   const char *const *argv, const size_t *lens, redis_cb cb, void *arg);
/* The callback of a pending command will not run (its reply is read and dropped). */
void redis_cancel(redis_t *r, int64_t handle);

/* Parse one RESP2 reply at p[0..n) (the client's parser, exposed for tests and fuzzing).
 * Returns the bytes it takes, 0 when more are needed, -1 when malformed. Top-level array
 * elements go to elems[0..nelems) (further ones are parsed and dropped; nested arrays are
 * checked but not stored). Strings point into p. Never allocates, never reads past n. */
long redis_parse(const char *p, size_t n, redis_reply_t *out, redis_reply_t *elems, size_t nelems);

/* Fill s->sha from s->text (SHA-1, FIPS 180-4). */
void redis_script_init(redis_script_t *s, const char *text);

/* Counters for tests and metrics. */
typedef struct redis_stats {
    uint64_t connects, disconnects, timeouts, noscript_fallbacks, commands;
} redis_stats_t;
void redis_get_stats(const redis_t *r, redis_stats_t *out);

#endif
