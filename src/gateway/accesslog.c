/* accesslog.c — formats a finished request as one JSON line and appends it with one write. */
#define _GNU_SOURCE /* dup3 */
#include "gateway/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"

struct accesslog {
    int fd;                 /* never changes: reopen swaps the file behind it with dup3 */
    int owned;              /* fd opened here (closed at the end) */
    char *path;             /* the file, for reopen; NULL for stdout/stderr */
    atomic_uint_fast64_t lost;
};

static int open_file(const char *path) {
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int accesslog_open(const char *dest, accesslog_t **out, char *err, size_t errlen) {
    *out = NULL;
    accesslog_t *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    if (!strcmp(dest, "-") || !strcmp(dest, "stdout")) {
        a->fd = STDOUT_FILENO;
    } else if (!strcmp(dest, "stderr")) {
        a->fd = STDERR_FILENO;
    } else {
        a->path = strdup(dest);
        a->fd = a->path ? open_file(dest) : -1;
        if (a->fd < 0) {
            if (!a->path) {
                free(a);
                return -ENOMEM;
            }
            int e = errno;
            snprintf(err, errlen, "access log %s: %s", dest, strerror(e));
            free(a->path);
            free(a);
            return -e;
        }
        a->owned = 1;
    }
    *out = a;
    return 0;
}

void accesslog_close(accesslog_t *a) {
    if (!a)
        return;
    if (a->owned)
        close(a->fd);
    free(a->path);
    free(a);
}

int accesslog_reopen(accesslog_t *a, char *err, size_t errlen) {
    if (!a || !a->path)
        return 0;
    int fd = open_file(a->path);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "access log %s: %s (still writing to the old file)", a->path,
                 strerror(e));
        return -e;
    }
    /* dup3 replaces the open file behind a->fd in one step: a writer in another thread
     * writes its whole line either to the old file or to the new one, and the descriptor
     * number it holds never points at anything else. */
    int rc = dup3(fd, a->fd, O_CLOEXEC) < 0 ? -errno : 0;
    if (rc)
        snprintf(err, errlen, "access log %s: %s (still writing to the old file)", a->path,
                 strerror(-rc));
    close(fd);
    return rc;
}

static void key_count(json_w_t *w, const char *k, int64_t v) {
    json_w_key(w, k);
    if (v >= 0)
        json_w_i64(w, v);
    else
        json_w_null(w);
}

int accesslog_format(const accesslog_rec_t *r, buf_t *out) {
    char ts[40];
    time_t s = (time_t)(r->ts_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(r->ts_ms % 1000));
    json_w_t w;
    json_w_init(&w, out);
    json_w_obj_begin(&w);
    json_w_kv_str(&w, "ts", ts);
    json_w_kv_str(&w, "method", r->method);
    json_w_kv_str(&w, "path", r->path);
    json_w_kv_i64(&w, "status", r->status);
    json_w_kv_str(&w, "service", r->service);
    json_w_kv_str(&w, "model", r->model);
    json_w_kv_str(&w, "variant", r->variant);
    json_w_kv_bool(&w, "stream", r->stream);
    json_w_kv_double(&w, "duration_ms", (double)(int64_t)(r->duration_ms * 1000) / 1000);
    json_w_key(&w, "ttft_ms");
    if (r->ttft_ms >= 0)
        json_w_double(&w, (double)(int64_t)(r->ttft_ms * 1000) / 1000);
    else
        json_w_null(&w);
    key_count(&w, "prompt_tokens", r->prompt_tokens);
    key_count(&w, "completion_tokens", r->completion_tokens);
    json_w_kv_i64(&w, "attempts", r->attempts);
    json_w_kv_str(&w, "reason", r->reason);
    json_w_kv_str(&w, "request_id", r->request_id);
    json_w_obj_end(&w);
    return buf_append(out, "\n", 1) < 0 ? -ENOMEM : 0;
}

int accesslog_write(accesslog_t *a, const accesslog_rec_t *rec, buf_t *scratch) {
    buf_reset(scratch);
    int rc = accesslog_format(rec, scratch);
    if (rc == 0) {
        ssize_t w = write(a->fd, scratch->data, scratch->len);
        rc = w == (ssize_t)scratch->len ? 0 : w < 0 ? -errno : -EIO;
    }
    if (rc)
        atomic_fetch_add_explicit(&a->lost, 1, memory_order_relaxed);
    return rc;
}

uint64_t accesslog_lost(const accesslog_t *a) {
    return atomic_load_explicit(&a->lost, memory_order_relaxed);
}
