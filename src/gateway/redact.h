/* redact.h — redaction of personal data in free text (e-mail addresses, phone numbers, card
 * numbers, configurable regular expressions) before the request log stores it. */
#ifndef TOLLGATE_GATEWAY_REDACT_H
#define TOLLGATE_GATEWAY_REDACT_H

#include <stddef.h>

#include "core/buf.h"

#define REDACT_MAX_PATTERNS 32

/* Built-in detectors, as bits of redact_opts_t.builtin. */
enum {
    REDACT_EMAIL = 1 << 0, /* local@domain.tld -> [EMAIL] */
    REDACT_PHONE = 1 << 1, /* +CC digits, or 10-15 digits with separators -> [PHONE] */
    REDACT_CARD = 1 << 2,  /* 13-19 digits (spaces/dashes allowed) passing Luhn -> [CARD] */
    REDACT_ALL = REDACT_EMAIL | REDACT_PHONE | REDACT_CARD,
};

typedef struct redact_pattern {
    const char *regex;   /* POSIX extended regular expression */
    const char *replace; /* replacement text; NULL: "[REDACTED]" */
} redact_pattern_t;

typedef struct redact_opts {
    int builtin;                     /* REDACT_* bits */
    const redact_pattern_t *patterns; /* extra patterns, applied after the built-ins */
    size_t npatterns;
} redact_opts_t;

/* Compiled redaction rules. Immutable after redact_new, so one may be shared by threads. */
typedef struct redact redact_t;

/* Compile opts (strings are copied). 0 and *out, -EINVAL with the bad pattern and regcomp's
 * message in err, or -ENOMEM. */
int redact_new(const redact_opts_t *opts, redact_t **out, char *err, size_t errlen);
void redact_free(redact_t *r);

/* Append s[0..n) to out with every match replaced. Returns the number of replacements, or
 * -ENOMEM. A NULL r copies the text unchanged. */
int redact_apply(const redact_t *r, const char *s, size_t n, buf_t *out);

/* The Luhn checksum over the digits of s[0..n) (other bytes skipped): 1 when valid. */
int redact_luhn_ok(const char *s, size_t n);

#endif
