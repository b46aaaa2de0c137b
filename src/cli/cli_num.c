/* cli_num.c — strict parsing of the numbers given on command lines (cli_num.h). */
#include "cli/cli_num.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_int(const char *s, int lo, int hi, int *out) {
    int64_t v;
    if (cli_parse_i64(s, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_u32(const char *s, uint32_t max, uint32_t *out) {
    int64_t v;
    if (cli_parse_i64(s, 0, max, &v)) return -1;
    *out = (uint32_t)v;
    return 0;
}

int cli_parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    /* strtoull accepts a sign and wraps "-1" to the maximum: digits only */
    if (*s < '0' || *s > '9') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}
