/* accesslog.h — the gateway's access log: one JSON object per line and request (never the
 * prompt or response text), for log shippers. */
#ifndef TOLLGATE_GATEWAY_ACCESSLOG_H
#define TOLLGATE_GATEWAY_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct accesslog accesslog_t;

/* One request. Strings may be NULL (written as null). */
typedef struct accesslog_rec {
    int64_t ts_ms;           /* arrival, unix ms */
    const char *method, *path, *service, *model, *variant, *request_id, *reason;
    int status;
    int stream;
    int attempts;            /* upstream attempts (0: answered by the gateway) */
    double duration_ms;
    double ttft_ms;          /* < 0: none */
    int64_t prompt_tokens, completion_tokens; /* < 0: unknown */
} accesslog_rec_t;

/* dest: "-" or "stdout", "stderr", or a file path (created, appended to). 0 and *out, or a
 * negative errno with a message in err. */
int accesslog_open(const char *dest, accesslog_t **out, char *err, size_t errlen);
void accesslog_close(accesslog_t *a);
/* Log rotation: open the file by its path again (created if it was moved away) and write
 * there from now on; lines being written meanwhile go whole to the old or the new file.
 * Safe while other threads write. stdout/stderr and NULL: nothing to do. 0, or a negative
 * errno with a message in err (the old file stays in use). */
int accesslog_reopen(accesslog_t *a, char *err, size_t errlen);

/* Format rec into scratch (the caller's, reused: no allocation once it has grown) and write
 * the line with one write() (O_APPEND: lines from several threads never interleave). 0, or
 * a negative errno (the line is counted as lost). */
int accesslog_write(accesslog_t *a, const accesslog_rec_t *rec, buf_t *scratch);
/* Format only (for tests). */
int accesslog_format(const accesslog_rec_t *rec, buf_t *out);
/* Lines that could not be written. */
uint64_t accesslog_lost(const accesslog_t *a);

#endif
