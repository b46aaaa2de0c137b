/* test_redact.c — redaction: each built-in detector (matches and near misses), Luhn, custom
 * patterns, overlaps, invalid patterns. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gateway/redact.h"

static char out_s[4096];

/* Redact s with r; returns the text (static buffer) and the count in *n. */
static const char *red(const redact_t *r, const char *s, int *n) {
    buf_t b;
    buf_init(&b);
    int c = redact_apply(r, s, strlen(s), &b);
    if (n)
        *n = c;
    snprintf(out_s, sizeof out_s, "%s", b.data ? b.data : "");
    buf_free(&b);
    return out_s;
}

static void test_luhn(void) {
    CHECK(redact_luhn_ok("4111111111111111", 16));
    CHECK(redact_luhn_ok("4111 1111 1111 1111", 19));
    CHECK(redact_luhn_ok("378282246310005", 15)); /* Amex test number */
    CHECK(!redact_luhn_ok("4111111111111112", 16));
    CHECK(!redact_luhn_ok("", 0));
}

static void test_email(void) {
    redact_t *r;
    char err[256];
    CHECK_EQ_INT(redact_new(&(redact_opts_t){.builtin = REDACT_EMAIL}, &r, err, sizeof err), 0);
    int n;
    CHECK_EQ_STR(red(r, "mail jane.doe+pizza@example.co.uk now", &n), "mail [EMAIL] now");
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(red(r, "a@b.io, c_d@x-y.org.", &n), "[EMAIL], [EMAIL].");
    CHECK_EQ_INT(n, 2);
    /* Near misses: no domain dot, numeric TLD, bare @, handles. */
    CHECK_EQ_STR(red(r, "user@localhost @home x@1.2 @ a@.com", &n),
                 "user@localhost @home x@1.2 @ a@.com");
    CHECK_EQ_INT(n, 0);
    redact_free(r);
}

static void test_phone(void) {
    redact_t *r;
    char err[256];
    CHECK_EQ_INT(redact_new(&(redact_opts_t){.builtin = REDACT_PHONE}, &r, err, sizeof err), 0);
    int n;
    CHECK_EQ_STR(red(r, "call +1 (555) 123-4567 today", &n), "call [PHONE] today");
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(red(r, "+44 20 7946 0958", &n), "[PHONE]");
    CHECK_EQ_STR(red(r, "555.123.4567 or 5551234567", &n), "[PHONE] or [PHONE]");
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(red(r, "(555) 123-4567", &n), "[PHONE]");
    /* Left alone: dates, times, quantities, short numbers, ids glued to letters. */
    const char *keep = "lgr pep pzza x2 on 2024-01-15 10:30, order 123456, ORD1234567890";
    CHECK_EQ_STR(red(r, keep, &n), keep);
    CHECK_EQ_INT(n, 0);
    redact_free(r);
}

static void test_card(void) {
    redact_t *r;
    char err[256];
    CHECK_EQ_INT(redact_new(&(redact_opts_t){.builtin = REDACT_CARD}, &r, err, sizeof err), 0);
    int n;
    CHECK_EQ_STR(red(r, "card 4111 1111 1111 1111 exp 12/29", &n), "card [CARD] exp 12/29");
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(red(r, "4111-1111-1111-1111", &n), "[CARD]");
    CHECK_EQ_STR(red(r, "amex 378282246310005.", &n), "amex [CARD].");
    /* Luhn fails: kept (an order number of card length is not a card). */
    CHECK_EQ_STR(red(r, "order 4111111111111112", &n), "order 4111111111111112");
    CHECK_EQ_INT(n, 0);
    /* Too short, too long, glued to letters. */
    CHECK_EQ_STR(red(r, "411111111111 41111111111111111111111 x4111111111111111", &n),
                 "411111111111 41111111111111111111111 x4111111111111111");
    redact_free(r);
}

static void test_all_and_overlap(void) {
    redact_t *r;
    char err[256];
    CHECK_EQ_INT(redact_new(&(redact_opts_t){.builtin = REDACT_ALL}, &r, err, sizeof err), 0);
    int n;
    /* A Luhn-valid 15-digit number is both card and phone: one replacement, the card's. */
    CHECK_EQ_STR(red(r, "378282246310005", &n), "[CARD]");
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(red(r, "bob@pizza.com +1 555 123 4567 4111111111111111", &n),
                 "[EMAIL] [PHONE] [CARD]");
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_STR(red(r, "", &n), "");
    CHECK_EQ_INT(n, 0);
    /* UTF-8 around matches passes through. */
    CHECK_EQ_STR(red(r, "2× Pizza für a@b.de", &n), "2× Pizza für [EMAIL]");
    redact_free(r);
    /* NULL rules: a copy. */
    CHECK_EQ_STR(red(NULL, "a@b.de", &n), "a@b.de");
}

static void test_patterns(void) {
    redact_pattern_t pats[] = {
        {"ORD-[0-9]+", "[ORDER]"},
        {"secret[a-z]*", NULL},
        {"x*", "[EMPTY]"}, /* matches empty strings: must not loop or insert labels */
    };
    redact_t *r;
    char err[256];
    CHECK_EQ_INT(redact_new(&(redact_opts_t){.builtin = REDACT_EMAIL, .patterns = pats,
                                             .npatterns = 2},
                            &r, err, sizeof err),
                 0);
    int n;
    CHECK_EQ_STR(red(r, "ORD-17 and ORD-99: secretsauce, c@d.io", &n),
                 "[ORDER] and [ORDER]: [REDACTED], [EMAIL]");
    CHECK_EQ_INT(n, 4);
    redact_free(r);
    CHECK_EQ_INT(redact_new(&(redact_opts_t){.patterns = pats + 2, .npatterns = 1}, &r, err,
                            sizeof err),
                 0);
    CHECK_EQ_STR(red(r, "abxxc", &n), "ab[EMPTY]c");
    CHECK_EQ_INT(n, 1);
    redact_free(r);

    redact_pattern_t bad = {"([a-z", NULL};
    CHECK_EQ_INT(redact_new(&(redact_opts_t){.patterns = &bad, .npatterns = 1}, &r, err,
                            sizeof err),
                 -EINVAL);
    CHECK(strstr(err, "([a-z") != NULL);
}

/* Regression (fuzz_redact): a custom pattern replaced the letter glued to a card number,
 * leaving the number standing alone in the output; the built-ins now run over the result. */
static void test_pattern_exposes_card(void) {
    static const redact_pattern_t pats[] = {{"x", NULL}};
    redact_t *r = NULL;
    char err[256];
    CHECK_EQ_INT(redact_new(&(redact_opts_t){.builtin = REDACT_ALL, .patterns = pats, .npatterns = 1},
                            &r, err, sizeof err),
                 0);
    int n = 0;
    const char *o = red(r, "id x4111111111111111 end", &n);
    CHECK_MSG(!strstr(o, "4111111111111111"), "card survived: %s", o);
    CHECK_EQ_INT(n, 2);
    redact_free(r);
}

int main(void) {
    test_luhn();
    test_email();
    test_phone();
    test_card();
    test_all_and_overlap();
    test_patterns();
    test_pattern_exposes_card();
    return check_summary("test_redact");
}
