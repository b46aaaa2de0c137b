/* check.h — the unit-test harness: CHECK macros, a summary line, an exit code. */
#ifndef TOLLGATE_TESTS_CHECK_H
#define TOLLGATE_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (cond) {                                                                \
            check_passed++;                                                        \
        } else {                                                                   \
            check_failed++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
        }                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                       \
    do {                                                                           \
        if (cond) {                                                                \
            check_passed++;                                                        \
        } else {                                                                   \
            check_failed++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
        }                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                         \
    do {                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);            \
        CHECK_MSG(check_a_ == check_b_, "%lld != %lld", check_a_, check_b_);       \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                         \
    do {                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                               \
        CHECK_MSG(check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0,         \
                  "\"%s\" != \"%s\"", check_a_ ? check_a_ : "(null)",              \
                  check_b_ ? check_b_ : "(null)");                                 \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                      \
    do {                                                                           \
        double check_a_ = (a), check_b_ = (b);                                     \
        CHECK_MSG(fabs(check_a_ - check_b_) <= (tol), "%g vs %g (tol %g)",         \
                  check_a_, check_b_, (double)(tol));                              \
    } while (0)

/* A fresh directory /tmp/NAME.XXXXXX for a test's files, written into dir; 0, or -1
 * (with the reason on stderr). */
static inline int check_tmpdir(char *dir, size_t size, const char *name) {
    snprintf(dir, size, "/tmp/%s.XXXXXX", name);
    if (mkdtemp(dir)) return 0;
    perror("mkdtemp");
    return -1;
}

/* Remove that directory and everything in it; a failure is reported, not fatal. */
static inline void check_tmpdir_remove(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Print "NAME: N passed, M failed" (tests/run.sh sums these) and return the exit code. */
static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
