/* cli_num.h — strict parsing of the numbers given on command lines: the whole string, base 10, within a range. */
#ifndef TOLLGATE_CLI_CLI_NUM_H
#define TOLLGATE_CLI_CLI_NUM_H

#include <stdint.h>

/* Each returns 0 and stores the value, or -1 (nothing stored) when s is empty, has
 * anything after the number ("12x", "1.5" for an integer), or lies outside the range.
 * The callers print which option was wrong: a bad number is a usage error (exit 2),
 * never silently 0 as atoi would make it. */
int cli_parse_int(const char *s, int lo, int hi, int *out);
int cli_parse_u32(const char *s, uint32_t max, uint32_t *out);
int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
int cli_parse_u64(const char *s, uint64_t *out);
/* A finite decimal or exponent float within lo..hi. */
int cli_parse_float(const char *s, float lo, float hi, float *out);

#endif
