/* redact.c — finds personal data in text (hand-written scanners for e-mail, phone and card
 * numbers, POSIX regexes for the rest) and writes the text with each match replaced. */
#include "gateway/redact.h"

#include <errno.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct redact {
    int builtin;
    regex_t re[REDACT_MAX_PATTERNS];
    char *replace[REDACT_MAX_PATTERNS];
    size_t npatterns;
};

/* One region to replace: [start, end) of the input, and the text that stands for it. */
typedef struct span {
    size_t start, end;
    const char *label;
} span_t;

typedef struct spans {
    span_t *v;
    size_t n, cap;
    int nomem;
} spans_t;

static void spans_add(spans_t *s, size_t start, size_t end, const char *label) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        span_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->nomem = 1;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (span_t){start, end, label};
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_alnum(char c) { return is_digit(c) || is_alpha(c); }
static int is_local(char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
static int is_dom(char c) { return is_alnum(c) || c == '.' || c == '-'; }

int redact_luhn_ok(const char *s, size_t n) {
    int sum = 0, dbl = 0, digits = 0;
    for (size_t i = n; i-- > 0;) {
        if (!is_digit(s[i]))
            continue;
        int d = s[i] - '0';
        if (dbl && (d *= 2) > 9)
            d -= 9;
        sum += d;
        dbl = !dbl;
        digits++;
    }
    return digits > 0 && sum % 10 == 0;
}

/* local@domain.tld: the local part is what e-mail allows in practice (RFC 5322's dot-atom
 * minus the rare symbols); the domain needs a dot and a top-level label of 2+ letters. */
static void scan_email(const char *s, size_t n, spans_t *out) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '@')
            continue;
        size_t l = i;
        while (l > 0 && is_local(s[l - 1])) l--;
        while (l < i && s[l] == '.') l++;
        if (l == i)
            continue;
        size_t r = i + 1;
        while (r < n && is_dom(s[r])) r++;
        while (r > i + 1 && (s[r - 1] == '.' || s[r - 1] == '-')) r--;
        size_t dot = r;
        for (size_t k = r; k-- > i + 1;)
            if (s[k] == '.') {
                dot = k;
                break;
            }
        if (dot == r || dot == i + 1 || r - dot - 1 < 2)
            continue;
        int tld_alpha = 1;
        for (size_t k = dot + 1; k < r; k++) tld_alpha &= is_alpha(s[k]);
        if (!tld_alpha)
            continue;
        spans_add(out, l, r, "[EMAIL]");
        i = r - 1;
    }
}

/* Card numbers: 13-19 digits, single spaces or dashes allowed between digits, not glued
 * to other letters or digits, whose Luhn checksum holds (so that order numbers and
 * quantities of the same length are left alone). Every group start is a candidate start and
 * every group end a candidate end; the longest valid one wins. */
static void scan_card(const char *s, size_t n, spans_t *out) {
    size_t i = 0;
    while (i < n) {
        if (!is_digit(s[i]) || (i > 0 && is_alnum(s[i - 1]))) {
            i++;
            continue;
        }
        size_t j = i, best = 0;
        int digits = 0;
        while (j < n && digits <= 19) {
            if (is_digit(s[j])) {
                digits++;
                j++;
                if ((j == n || !is_alnum(s[j])) && digits >= 13 && digits <= 19 &&
                    redact_luhn_ok(s + i, j - i))
                    best = j;
            } else if ((s[j] == ' ' || s[j] == '-') && j + 1 < n && is_digit(s[j + 1])) {
                j++;
            } else {
                break;
            }
        }
        if (best) {
            spans_add(out, i, best, "[CARD]");
            i = best;
        } else {
            while (i < n && is_digit(s[i])) i++; /* next candidate: the next group */
        }
    }
}

/* Phone numbers: "+" and 8-15 digits, or 10-15 digits whose last group has 3 or more (so
 * that dates, times and short numbers stay), with spaces, dashes, dots and parentheses
 * between the digit groups. The longest valid candidate from each group start wins. */
static void scan_phone(const char *s, size_t n, spans_t *out) {
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        int starts = (is_digit(c) || ((c == '+' || c == '(') && i + 1 < n && is_digit(s[i + 1])));
        if (!starts || (i > 0 && (is_alnum(s[i - 1]) || s[i - 1] == '+'))) {
            i++;
            continue;
        }
        int plus = c == '+', digits = 0, run = 0, group = 0;
        size_t j = i + (c == '+' || c == '('), best = 0;
        while (j < n && digits <= 15) {
            char d = s[j];
            if (is_digit(d)) {
                digits++;
                group++;
                run = 0;
                j++;
                if ((j == n || !is_alnum(s[j])) && digits <= 15 &&
                    digits >= (plus ? 8 : 10) && (plus || group >= 3))
                    best = j;
            } else if ((d == ' ' || d == '-' || d == '.' || d == '(' || d == ')') && ++run <= 2) {
                group = 0;
                j++;
            } else {
                break;
            }
        }
        if (best) {
            spans_add(out, i, best, "[PHONE]");
            i = best;
        } else {
            i += 1 + (c == '+' || c == '(');
            while (i < n && is_digit(s[i])) i++;
        }
    }
}

static int span_cmp(const void *a, const void *b) {
    const span_t *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end > y->end ? -1 : x->end < y->end;
}

int redact_new(const redact_opts_t *opts, redact_t **out, char *err, size_t errlen) {
    *out = NULL;
    if (opts->npatterns > REDACT_MAX_PATTERNS) {
        snprintf(err, errlen, "at most %d redaction patterns", REDACT_MAX_PATTERNS);
        return -EINVAL;
    }
    redact_t *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->builtin = opts->builtin;
    for (size_t i = 0; i < opts->npatterns; i++) {
        const redact_pattern_t *p = &opts->patterns[i];
        int rc = regcomp(&r->re[i], p->regex ? p->regex : "", REG_EXTENDED);
        if (rc) {
            char m[128];
            regerror(rc, &r->re[i], m, sizeof m);
            snprintf(err, errlen, "redaction pattern \"%s\": %s", p->regex ? p->regex : "", m);
            redact_free(r);
            return -EINVAL;
        }
        r->npatterns = i + 1;
        if (!(r->replace[i] = strdup(p->replace ? p->replace : "[REDACTED]"))) {
            redact_free(r);
            return -ENOMEM;
        }
    }
    *out = r;
    return 0;
}

void redact_free(redact_t *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->npatterns; i++) {
        regfree(&r->re[i]);
        free(r->replace[i]);
    }
    free(r);
}

/* Every match of one regex, left to right, without overlaps. regexec needs a NUL-terminated
 * string: z is the text copied with its NUL; a NUL inside the text ends the search there. */
static void scan_regex(const regex_t *re, const char *label, const char *z, size_t n,
                       spans_t *out) {
    size_t off = 0;
    while (off <= n) {
        regmatch_t m;
        if (regexec(re, z + off, 1, &m, off ? REG_NOTBOL : 0) != 0)
            break;
        size_t a = off + (size_t)m.rm_so, b = off + (size_t)m.rm_eo;
        if (b > a)
            spans_add(out, a, b, label);
        off = b > off ? b : off + 1; /* an empty match moves on by one */
    }
}

static int redact_pass(const redact_t *r, int patterns, const char *s, size_t n, buf_t *out) {
    if (!r || !n)
        return buf_append(out, s, n) < 0 ? -ENOMEM : 0;
    spans_t sp = {0};
    if (r->builtin & REDACT_EMAIL)
        scan_email(s, n, &sp);
    if (r->builtin & REDACT_CARD)
        scan_card(s, n, &sp);
    if (r->builtin & REDACT_PHONE)
        scan_phone(s, n, &sp);
    if (patterns && r->npatterns) {
        char *z = malloc(n + 1);
        if (!z) {
            free(sp.v);
            return -ENOMEM;
        }
        memcpy(z, s, n);
        z[n] = '\0';
        for (size_t i = 0; i < r->npatterns; i++) scan_regex(&r->re[i], r->replace[i], z, n, &sp);
        free(z);
    }
    if (sp.nomem) {
        free(sp.v);
        return -ENOMEM;
    }
    /* Overlapping matches (a failed-Luhn card read as a phone, a pattern inside an e-mail)
     * become one replacement: the earliest-starting, longest one names it. */
    if (sp.n > 1) /* qsort wants a non-NULL array even for none */
        qsort(sp.v, sp.n, sizeof *sp.v, span_cmp);
    size_t pos = 0;
    int count = 0, rc = 0;
    for (size_t i = 0; i < sp.n; i++) {
        const span_t *x = &sp.v[i];
        if (x->start < pos) { /* overlaps the replacement just written: widen it */
            if (x->end > pos)
                pos = x->end;
            continue;
        }
        rc |= buf_append(out, s + pos, x->start - pos);
        rc |= buf_appends(out, x->label);
        count++;
        pos = x->end;
    }
    rc |= buf_append(out, s + pos, n - pos);
    free(sp.v);
    return rc ? -ENOMEM : count;
}

int redact_apply(const redact_t *r, const char *s, size_t n, buf_t *out) {
    if (!r || !r->npatterns || !r->builtin)
        return redact_pass(r, 1, s, n, out);
    /* A custom pattern's replacement can expose what the built-in scanners skipped in the
     * original (a letter glued to a card number, replaced by a label, leaves the number
     * standing alone), so the built-ins run once more over the result. */
    buf_t first;
    buf_init(&first);
    int n1 = redact_pass(r, 1, s, n, &first);
    int n2 = n1 < 0 ? n1 : redact_pass(r, 0, first.data ? first.data : "", first.len, out);
    buf_free(&first);
    if (n1 < 0 || n2 < 0)
        return -ENOMEM;
    return n1 + n2;
}
