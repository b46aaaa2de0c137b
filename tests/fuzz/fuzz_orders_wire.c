/* fuzz_orders_wire.c — libFuzzer target: order bodies, task answers, list queries (orders). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orders/wire.h"

/* Accepted text must meet the documented rules, whatever the input was. */
static void check_text(const char *s, size_t max, int allow_empty) {
    size_t n = strlen(s);
    if (n > max || (!allow_empty && n == 0)) abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) abort();
    if (n && (s[0] == ' ' || s[n - 1] == ' ')) abort(); /* trimmed */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    char err[256];
    const char *param;
    wire_order_in_t in;
    int rc = wire_parse_order(body, size, &in, err, sizeof err, &param);
    if (rc == 0) {
        check_text(in.items, WIRE_MAX_ITEMS, 0);
        check_text(in.customer, WIRE_MAX_CUSTOMER, 0);
        wire_order_in_clear(&in);
    } else if (rc != -EINVAL && rc != -ENOMEM) {
        abort();
    }
    wire_task_out_t t;
    rc = wire_parse_task_answer(body, size, &t, err, sizeof err);
    if (rc == 0) {
        check_text(t.output, WIRE_MAX_DESCRIPTION, 0);
        if (t.fallback != 0 && t.fallback != 1) abort();
        wire_task_out_clear(&t);
    }
    /* The query parser takes a NUL-terminated string. */
    char *q = malloc(size + 1);
    if (!q) return 0;
    memcpy(q, data, size);
    q[size] = '\0';
    int limit;
    int64_t before;
    if (wire_parse_list_query(q, &limit, &before, err, sizeof err) == 0 &&
        (limit < 1 || limit > WIRE_MAX_LIMIT || before < 0))
        abort();
    free(q);
    return 0;
}
