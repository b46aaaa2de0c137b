/* test_cli_num.c — the command-line number parsers accept whole in-range numbers only. */
#include <stdint.h>

#include "check.h"
#include "cli/cli_num.h"

static void test_int(void) {
    int v = 7;
    CHECK_EQ_INT(cli_parse_int("42", 0, 100, &v), 0);
    CHECK_EQ_INT(v, 42);
    CHECK_EQ_INT(cli_parse_int("-5", -10, 10, &v), 0);
    CHECK_EQ_INT(v, -5);
    v = 7;
    const char *bad[] = {"", "12x", "x12", "1.5", "101", "-1", " ", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_EQ_INT(cli_parse_int(bad[i], 0, 100, &v), -1);
    CHECK_EQ_INT(v, 7); /* nothing stored on failure */
    CHECK_EQ_INT(cli_parse_int("2147483647", 0, 2147483647, &v), 0);
    CHECK_EQ_INT(v, 2147483647);
}

static void test_u32_i64_u64(void) {
    uint32_t u = 0;
    CHECK_EQ_INT(cli_parse_u32("65535", 65535, &u), 0);
    CHECK_EQ_INT(u, 65535);
    CHECK_EQ_INT(cli_parse_u32("65536", 65535, &u), -1);
    CHECK_EQ_INT(cli_parse_u32("-1", 65535, &u), -1);
    int64_t l = 0;
    CHECK_EQ_INT(cli_parse_i64("9223372036854775807", 1, INT64_MAX, &l), 0);
    CHECK(l == INT64_MAX);
    CHECK_EQ_INT(cli_parse_i64("0", 1, INT64_MAX, &l), -1);
    uint64_t q = 0;
    CHECK_EQ_INT(cli_parse_u64("18446744073709551615", &q), 0);
    CHECK(q == UINT64_MAX);
    CHECK_EQ_INT(cli_parse_u64("18446744073709551616", &q), -1); /* overflow */
    CHECK_EQ_INT(cli_parse_u64("-1", &q), -1);                   /* strtoull would wrap it */
    CHECK_EQ_INT(cli_parse_u64("+1", &q), -1);
    CHECK_EQ_INT(cli_parse_u64("7up", &q), -1);
}

static void test_float(void) {
    float f = 0;
    CHECK_EQ_INT(cli_parse_float("3e-4", 0, 10, &f), 0);
    CHECK(f > 2.9e-4f && f < 3.1e-4f);
    const char *bad[] = {"", "1e999", "nan", "inf", "0.1x", "-0.5", "11"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_EQ_INT(cli_parse_float(bad[i], 0, 10, &f), -1);
}

int main(void) {
    test_int();
    test_u32_i64_u64();
    test_float();
    return check_summary("test_cli_num");
}
