/* store.h — the orders table in SQLite (WAL); an order is committed before it is acknowledged. */
#ifndef TOLLGATE_ORDERS_STORE_H
#define TOLLGATE_ORDERS_STORE_H

#include <stddef.h>
#include <stdint.h>

/* Longest texts the store accepts (the HTTP layer validates first; these are the backstop). */
#define STORE_MAX_TEXT 4096

typedef struct store store_t;

/* One order as stored. Strings are owned by the record (store_order_clear frees them). */
typedef struct store_order {
    int64_t id;  /* assigned by the store, 1, 2, ... */
    char *items; /* the customer's text as typed */
    char *customer;
    char *description;        /* what a receipt shows: the model's text or the raw items */
    char *description_source; /* "model" or "raw" */
    char *reason;             /* why raw ("timeout", "gateway_fallback: ...", ...); "" for model */
    char *model;              /* model and variant that answered; "" when unknown */
    char *variant;
    int64_t normalize_ms; /* how long the normalization call took */
    int64_t created_ms;   /* Unix time in ms */
} store_order_t;

/* Open (creating if needed) the database at path, in WAL mode with synchronous=FULL
 * so that a committed order survives a crash of the process or the machine. The
 * handle is shared by threads (its calls take a mutex). 0 or negative errno; err gets
 * SQLite's message. */
int store_open(const char *path, store_t **out, char *err, size_t errlen);
void store_close(store_t *s);

/* Insert o (id and created_ms are set by the store when 0) and commit. On return 0,
 * o->id is the new id and the row is durable. Negative errno otherwise (-EIO). */
int store_insert(store_t *s, store_order_t *o);
/* The order with this id into *o (caller clears it). 0, -ENOENT, or -EIO. */
int store_get(store_t *s, int64_t id, store_order_t *o);
/* Up to limit orders with id < before (before <= 0: from the newest), newest first,
 * into a malloc'ed array (*out, *n; free with store_orders_free). 0 or negative errno. */
int store_list(store_t *s, int64_t before, int limit, store_order_t **out, size_t *n);
/* Number of orders stored. 0 or negative errno. */
int store_count(store_t *s, int64_t *out);
/* 0 when the database answers a trivial query (for /health). */
int store_ping(store_t *s);

void store_order_clear(store_order_t *o);
void store_orders_free(store_order_t *v, size_t n);

#endif
