/* log.h — structured logging: one JSON object per line, written with one write() call. */
#ifndef TOLLGATE_CORE_LOG_H
#define TOLLGATE_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
    LOG_OFF, /* as a minimum level: log nothing */
} log_level_t;

typedef enum log_ftype {
    LOG_T_STR = 1, /* s (NULL prints null) */
    LOG_T_STRN,    /* s, n bytes (need not be NUL-terminated) */
    LOG_T_INT,     /* i */
    LOG_T_DBL,     /* d (NaN/inf print null) */
    LOG_T_BOOL,    /* i != 0 */
    LOG_T_ERRNO,   /* i: an errno, negative or not, printed as its message */
    LOG_T_JSON,    /* s, n bytes of encoded JSON: copied when it is one valid value of at
                      most 256 tokens, written as a string otherwise */
} log_ftype_t;

/* One key/value pair of a log line. Build them with the LOG_* macros below. */
typedef struct log_field {
    const char *key;
    int type; /* log_ftype_t */
    const char *s;
    size_t n;
    int64_t i;
    double d;
} log_field_t;

#define LOG_STR(k, v) ((log_field_t){.key = (k), .type = LOG_T_STR, .s = (v)})
#define LOG_STRN(k, v, len) ((log_field_t){.key = (k), .type = LOG_T_STRN, .s = (v), .n = (len)})
#define LOG_INT(k, v) ((log_field_t){.key = (k), .type = LOG_T_INT, .i = (int64_t)(v)})
#define LOG_DBL(k, v) ((log_field_t){.key = (k), .type = LOG_T_DBL, .d = (double)(v)})
#define LOG_BOOL(k, v) ((log_field_t){.key = (k), .type = LOG_T_BOOL, .i = !!(v)})
#define LOG_ERRNO(k, e) ((log_field_t){.key = (k), .type = LOG_T_ERRNO, .i = (int64_t)(e)})
#define LOG_JSON(k, v, len) ((log_field_t){.key = (k), .type = LOG_T_JSON, .s = (v), .n = (len)})

/* The process-wide logger settings. There is one (the logger is shared by every thread);
 * its fields are atomics, so setters may run while other threads log. Defaults: stderr,
 * minimum level info. */
void log_set_fd(int fd);
void log_set_level(log_level_t min);
log_level_t log_get_level(void);
int log_enabled(log_level_t lvl);
/* "debug", "info", "warn"/"warning", "error", "off" -> level; -1 when unknown. */
int log_level_parse(const char *s);
const char *log_level_name(log_level_t lvl);
/* Lines that could not be written (e.g. a full pipe, no memory) since start. */
uint64_t log_dropped(void);

/* Write {"ts":"...Z","level":"...","msg":"...",fields...}\n when lvl is enabled. Strings
 * are JSON-escaped (invalid UTF-8 becomes U+FFFD), so a line is always one line of valid
 * JSON. Thread-safe: a line goes out in a single write(). Allocates one buffer per line. */
void log_write(log_level_t lvl, const char *msg, const log_field_t *fields, size_t nfields);
/* Same, into an explicit fd regardless of the minimum level (used by the tests and for
 * one-off reports). Returns 0 or negative errno. */
int log_write_fd(int fd, log_level_t lvl, const char *msg, const log_field_t *fields,
                 size_t nfields);

/* log_info("listening", LOG_STR("addr", a), LOG_INT("port", p)); fields are optional.
 * The field array is a compound literal whose first element is a placeholder, so that an
 * empty field list is still a valid array. */
#define LOG_AT(lvl, msg, ...)                                                                  \
    do {                                                                                       \
        if (log_enabled(lvl)) {                                                                \
            const log_field_t log_f_[] = {{0}, ##__VA_ARGS__};                                 \
            log_write((lvl), (msg), log_f_ + 1, sizeof log_f_ / sizeof log_f_[0] - 1);         \
        }                                                                                      \
    } while (0)
#define log_debug(msg, ...) LOG_AT(LOG_DEBUG, msg, ##__VA_ARGS__)
#define log_info(msg, ...) LOG_AT(LOG_INFO, msg, ##__VA_ARGS__)
#define log_warn(msg, ...) LOG_AT(LOG_WARN, msg, ##__VA_ARGS__)
#define log_error(msg, ...) LOG_AT(LOG_ERROR, msg, ##__VA_ARGS__)

#endif
