/* keys.h — API keys: SHA-256 (FIPS 180-4), hashed key table with constant-time lookup, key
 * generation for `tollgate keygen`. */
#ifndef TOLLGATE_GATEWAY_KEYS_H
#define TOLLGATE_GATEWAY_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define KEYS_HASH_LEN 32            /* bytes of a SHA-256 digest */
#define KEYS_HASH_TEXT (7 + 64 + 1) /* "sha256:" + 64 hex digits + NUL */
#define KEYS_KEY_TEXT (3 + 43 + 1)  /* "tg-" + 43 base64url characters + NUL */
#define KEYS_MAX_KEY 512            /* longer bearer values are refused unhashed */

/* Streaming SHA-256. Init, update any number of times, final. */
typedef struct keys_sha256 {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t block[64];
    size_t fill;
} keys_sha256_t;

void keys_sha256_init(keys_sha256_t *c);
void keys_sha256_update(keys_sha256_t *c, const void *p, size_t n);
void keys_sha256_final(keys_sha256_t *c, uint8_t out[KEYS_HASH_LEN]);
void keys_sha256(const void *p, size_t n, uint8_t out[KEYS_HASH_LEN]);

/* "sha256:<64 lowercase or uppercase hex>" -> digest. 0 or -EINVAL. */
int keys_parse_hash(const char *s, uint8_t out[KEYS_HASH_LEN]);
/* digest -> "sha256:<64 lowercase hex>". */
void keys_format_hash(const uint8_t h[KEYS_HASH_LEN], char out[KEYS_HASH_TEXT]);

/* 1 when a[0..n) == b[0..n); the time taken depends on n only, never on the contents. */
int keys_ct_equal(const void *a, const void *b, size_t n);

/* A new random key ("tg-" + 32 bytes from getrandom() in base64url) and its hash text.
 * 0 or a negative errno (no entropy). */
int keys_generate(char key[KEYS_KEY_TEXT], char hash[KEYS_HASH_TEXT]);

/* The key table: digests with the index of the service each belongs to. Built once per
 * config generation, then read-only (shared by the worker threads without a lock). */
typedef struct keys_entry {
    uint8_t hash[KEYS_HASH_LEN];
    int service; /* index into the config's services */
} keys_entry_t;

typedef struct keys_table {
    keys_entry_t *e; /* owned */
    size_t n, cap;
} keys_table_t;

void keys_table_init(keys_table_t *t);
void keys_table_free(keys_table_t *t);
/* Add an entry. 0, -EEXIST (the same hash is already there) or -ENOMEM. */
int keys_table_add(keys_table_t *t, const uint8_t hash[KEYS_HASH_LEN], int service);
/* Add every hash of a config list (sha256:... scalars, as tollgate keygen prints them) for
 * `service`. 0, or a config error naming the offending item (dup_what: what a hash already
 * listed clashes with, for the message), or -ENOMEM. */
int keys_table_add_list(keys_table_t *t, const cfg_node_t *list, int service, const char *dup_what,
                        char *err, size_t errlen);
/* The service index of a presented key, -1 when unknown. Hashes the key and compares its
 * digest with every entry in constant time (no early exit), so neither the position of a
 * match nor a near miss shows in the timing. */
int keys_table_lookup(const keys_table_t *t, const char *key, size_t len);

/* The key in an Authorization header value ("Bearer KEY", scheme case-insensitive, spaces
 * trimmed): pointer into v and *len; NULL when absent or not a bearer credential. */
const char *keys_bearer(const char *v, size_t *len);

#endif
