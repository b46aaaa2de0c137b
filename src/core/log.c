/* log.c — structured logging: JSON lines with a UTC millisecond timestamp, one write() each. */
#define _GNU_SOURCE /* strerror_r returning char * */
#include "core/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/json.h"

/* The one logger of the process: where lines go, what is dropped below, and a drop count.
 * Atomics, because any thread may log while another changes the settings. */
typedef struct log_state {
    _Atomic int fd;
    _Atomic int min_level;
    _Atomic uint64_t dropped;
} log_state_t;

static log_state_t log_global = {2, LOG_INFO, 0};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_set_fd(int fd) {
    atomic_store(&log_global.fd, fd);
}

void log_set_level(log_level_t min) {
    atomic_store(&log_global.min_level, (int)min);
}

log_level_t log_get_level(void) {
    return (log_level_t)atomic_load_explicit(&log_global.min_level, memory_order_relaxed);
}

int log_enabled(log_level_t lvl) {
    return (int)lvl >= atomic_load_explicit(&log_global.min_level, memory_order_relaxed) &&
           lvl < LOG_OFF;
}

int log_level_parse(const char *s) {
    if (!s)
        return -1;
    for (int i = 0; i <= LOG_OFF; i++)
        if (!strcasecmp(s, level_names[i]))
            return i;
    if (!strcasecmp(s, "warning"))
        return LOG_WARN;
    return -1;
}

const char *log_level_name(log_level_t lvl) {
    return (unsigned)lvl <= LOG_OFF ? level_names[lvl] : "unknown";
}

uint64_t log_dropped(void) {
    return atomic_load(&log_global.dropped);
}

/* "2026-11-27T21:30:03.123Z" */
static void fmt_ts(char out[32]) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    int ms = (int)(ts.tv_nsec / 1000000);
    out[n++] = '.';
    out[n++] = (char)('0' + ms / 100);
    out[n++] = (char)('0' + ms / 10 % 10);
    out[n++] = (char)('0' + ms % 10);
    out[n++] = 'Z';
    out[n] = '\0';
}

static void put_field(json_w_t *w, const log_field_t *f) {
    json_w_key(w, f->key ? f->key : "");
    switch (f->type) {
    case LOG_T_STR:
        json_w_str(w, f->s);
        break;
    case LOG_T_STRN:
        if (f->s)
            json_w_strn(w, f->s, f->n);
        else
            json_w_null(w);
        break;
    case LOG_T_INT:
        json_w_i64(w, f->i);
        break;
    case LOG_T_DBL:
        json_w_double(w, f->d);
        break;
    case LOG_T_BOOL:
        json_w_bool(w, f->i != 0);
        break;
    case LOG_T_ERRNO: {
        char tmp[128];
        int e = (int)(f->i < 0 ? -f->i : f->i);
        json_w_str(w, strerror_r(e, tmp, sizeof tmp));
        break;
    }
    case LOG_T_JSON: {
        /* Embedded verbatim only if it is one valid JSON value: a bad fragment must not
         * break the line for every log reader downstream. */
        json_tok_t t[256];
        if (f->s && json_parse(f->s, f->n, t, 256, 0, NULL, NULL) > 0)
            json_w_raw(w, f->s, f->n);
        else if (f->s)
            json_w_strn(w, f->s, f->n);
        else
            json_w_null(w);
        break;
    }
    default:
        json_w_null(w);
    }
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int log_write_fd(int fd, log_level_t lvl, const char *msg, const log_field_t *fields,
                 size_t nfields) {
    char ts[32];
    fmt_ts(ts);
    buf_t b;
    buf_init(&b);
    if (buf_reserve(&b, 256)) {
        atomic_fetch_add(&log_global.dropped, 1);
        return -ENOMEM;
    }
    json_w_t w;
    json_w_init(&w, &b);
    json_w_obj_begin(&w);
    json_w_key(&w, "ts");
    json_w_str(&w, ts);
    json_w_key(&w, "level");
    json_w_str(&w, log_level_name(lvl));
    json_w_key(&w, "msg");
    json_w_str(&w, msg ? msg : "");
    for (size_t i = 0; i < nfields; i++) put_field(&w, &fields[i]);
    json_w_obj_end(&w);
    int rc = buf_append(&b, "\n", 1);
    if (!rc)
        rc = write_all(fd, b.data, b.len);
    if (rc)
        atomic_fetch_add(&log_global.dropped, 1);
    buf_free(&b);
    return rc;
}

void log_write(log_level_t lvl, const char *msg, const log_field_t *fields, size_t nfields) {
    if (!log_enabled(lvl))
        return;
    (void)log_write_fd(atomic_load_explicit(&log_global.fd, memory_order_relaxed), lvl, msg,
                       fields, nfields);
}
