/* test_buf.c — buf_t: appends, growth, formatting, consume, reset. */
#include "check.h"
#include "core/buf.h"

#include <stdlib.h>

int main(void) {
    buf_t b;
    buf_init(&b);
    CHECK(b.data == NULL);
    CHECK_EQ_INT(b.len, 0);

    CHECK_EQ_INT(buf_appends(&b, "hello"), 0);
    CHECK_EQ_INT(b.len, 5);
    CHECK_EQ_STR(b.data, "hello");
    CHECK(b.cap >= 5);

    CHECK_EQ_INT(buf_append(&b, ", world", 7), 0);
    CHECK_EQ_STR(b.data, "hello, world");

    /* Zero-length append on an empty buffer still yields a valid string. */
    buf_t e;
    buf_init(&e);
    CHECK_EQ_INT(buf_append(&e, "", 0), 0);
    CHECK(e.data != NULL);
    CHECK_EQ_STR(e.data, "");
    buf_free(&e);

    CHECK_EQ_INT(buf_appendf(&b, " %d-%s", 42, "x"), 0);
    CHECK_EQ_STR(b.data, "hello, world 42-x");

    /* A formatted append much larger than the free tail forces the retry path. */
    buf_reset(&b);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_STR(b.data, "");
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ_INT(buf_appendf(&b, "<%s>", big), 0);
    CHECK_EQ_INT(b.len, 5001);
    CHECK(b.data[0] == '<' && b.data[5000] == '>' && b.data[5001] == '\0');
    size_t bad = 0;
    for (size_t i = 1; i < 5000; i++)
        bad += b.data[i] != 'a';
    CHECK_EQ_INT(bad, 0);

    /* Many small appends: content stays exact across reallocations. */
    buf_reset(&b);
    for (int i = 0; i < 10000; i++)
        buf_appendf(&b, "%04d", i % 10000);
    CHECK_EQ_INT(b.len, 40000);
    bad = 0;
    for (int i = 0; i < 10000; i++) {
        char t[16];
        snprintf(t, sizeof t, "%04d", i);
        bad += memcmp(b.data + 4 * i, t, 4) != 0;
    }
    CHECK_EQ_INT(bad, 0);

    /* consume */
    buf_reset(&b);
    buf_appends(&b, "abcdef");
    buf_consume(&b, 2);
    CHECK_EQ_STR(b.data, "cdef");
    CHECK_EQ_INT(b.len, 4);
    buf_consume(&b, 0);
    CHECK_EQ_STR(b.data, "cdef");
    buf_consume(&b, 100);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_STR(b.data, "");

    /* reserve keeps content and gives at least the asked room */
    buf_appends(&b, "xy");
    CHECK_EQ_INT(buf_reserve(&b, 1000), 0);
    CHECK(b.cap >= 1002);
    CHECK_EQ_STR(b.data, "xy");
    char *before = b.data;
    buf_append(&b, big, 1000);
    CHECK(b.data == before); /* no move: room was reserved */
    CHECK_EQ_INT(b.len, 1002);

    /* absurd reservation fails cleanly without touching the buffer */
    CHECK_EQ_INT(buf_reserve(&b, (size_t)-1), -12);
    CHECK_EQ_INT(b.len, 1002);

    /* binary data with NULs */
    buf_reset(&b);
    buf_append(&b, "a\0b", 3);
    CHECK_EQ_INT(b.len, 3);
    CHECK(memcmp(b.data, "a\0b", 3) == 0);

    buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    buf_free(&b); /* double free of an emptied buffer is harmless */

    return check_summary("test_buf");
}
