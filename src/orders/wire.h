/* wire.h — the order service's JSON: input validation, the gateway task answer, order output. */
#ifndef TOLLGATE_ORDERS_WIRE_H
#define TOLLGATE_ORDERS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/json.h"
#include "orders/store.h"

#define WIRE_MAX_ITEMS 500 /* bytes of items text: an order line, not an essay */
#define WIRE_MAX_CUSTOMER 200
#define WIRE_MAX_DESCRIPTION                                                                       \
    1000 /* a longer "normalization" is not one, it is treated as malformed */
#define WIRE_DEFAULT_LIMIT 20
#define WIRE_MAX_LIMIT 1000

/* A validated POST /orders body; the strings are malloc'ed, trimmed and NUL-terminated. */
typedef struct wire_order_in {
    char *items;
    char *customer;
} wire_order_in_t;

/* The gateway's answer to POST /v1/tasks/NAME, validated; strings malloc'ed ("" when absent). */
typedef struct wire_task_out {
    char *output;
    int fallback; /* 1 when the gateway used its own fallback */
    char *reason;
    char *model;
    char *variant;
} wire_task_out_t;

/* Validate a POST /orders body: a JSON object with exactly the string fields "items" and
 * "customer", each non-empty after trimming, within its length limit and free of control
 * characters. 0, or -EINVAL with a message for the client in err and the offending field
 * name in *param (NULL when the body as a whole is wrong). */
int wire_parse_order(const char *body, size_t len, wire_order_in_t *out, char *err, size_t errlen,
                     const char **param);
void wire_order_in_clear(wire_order_in_t *in);

/* Validate the task answer: an object with "output" (string, non-empty after trimming, at most
 * WIRE_MAX_DESCRIPTION bytes, no control characters) and "fallback" (boolean); "reason",
 * "model", "variant" optional strings or null. Unknown fields are ignored (the contract may
 * grow). 0, or -EINVAL with what was wrong in err. */
int wire_parse_task_answer(const char *body, size_t len, wire_task_out_t *out, char *err,
                           size_t errlen);
void wire_task_out_clear(wire_task_out_t *t);

/* The query of GET /orders: "limit=N" (1..WIRE_MAX_LIMIT, default WIRE_DEFAULT_LIMIT) and
 * "before=ID" (ID >= 1: only older orders, for paging). 0, or -EINVAL with a message. */
int wire_parse_list_query(const char *query, int *limit, int64_t *before, char *err, size_t errlen);
/* An order id from a path segment: decimal, 1..2^63-1, nothing else. 0 or -EINVAL. */
int wire_parse_id(const char *s, int64_t *out);

/* Write one order as a JSON object. */
void wire_write_order(json_w_t *w, const store_order_t *o);

#endif
