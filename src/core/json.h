/* json.h — strict RFC 8259 JSON: a non-allocating parser into a token array, and a writer. */
#ifndef TOLLGATE_CORE_JSON_H
#define TOLLGATE_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef enum json_type {
    JSON_NULL = 1,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING, /* start/end exclude the quotes; escapes are left in place */
    JSON_ARRAY,
    JSON_OBJECT, /* children alternate key (STRING), value */
} json_type_t;

/* One token per value (and per object key). Tokens are in document order, so a
 * container's children follow it; `next` skips the whole subtree. */
typedef struct json_tok {
    uint8_t type;      /* json_type_t */
    uint8_t has_escape;/* STRING contains a backslash escape */
    uint32_t start;    /* byte offset of the value's first byte */
    uint32_t end;      /* one past the last byte */
    uint32_t size;     /* ARRAY: elements; OBJECT: key/value pairs; else 0 */
    uint32_t next;     /* index of the token after this subtree */
} json_tok_t;

#define JSON_ERR_SYNTAX  (-1) /* malformed; *err_pos says where */
#define JSON_ERR_NOMEM   (-2) /* more tokens than the caller's array */
#define JSON_ERR_DEPTH   (-3) /* nested deeper than max_depth */

typedef struct json_doc {
    const char *src;   /* the text parsed (not copied) */
    size_t len;
    json_tok_t *toks;  /* caller's array */
    size_t ntoks;      /* tokens used */
} json_doc_t;

/* Parse src[0..len) (one value, surrounding whitespace allowed) into toks[0..cap).
 * Validates UTF-8 and escapes. Returns the token count, or a JSON_ERR_*; on
 * error *err_pos (if not NULL) is the byte offset of the problem (len when the
 * text ends too early). max_depth <= 0 means 128. doc (may be NULL) is filled
 * on success only. Never allocates; src need not be NUL-terminated. */
int json_parse(const char *src, size_t len, json_tok_t *toks, size_t cap, int max_depth,
               json_doc_t *doc, size_t *err_pos);

/* Value for key in the object at token index obj; -1 when absent or obj not an object. */
int json_obj_get(const json_doc_t *d, int obj, const char *key);
/* i-th element of the array at token index arr; -1 when out of range. */
int json_arr_get(const json_doc_t *d, int arr, size_t i);
/* Compare a STRING token (unescaped) with s. */
int json_str_eq(const json_doc_t *d, int tok, const char *s);
/* Unescape a STRING token into out (appended, NUL-terminated). 0 or negative errno. */
int json_str_unescape(const json_doc_t *d, int tok, buf_t *out);
/* Append token tok's text exactly as in the source (a string with its quotes, a
 * container whole), for copying members of a document without re-encoding them.
 * 0 or -ENOMEM. */
int json_append_src(buf_t *out, const json_doc_t *d, int tok);
/* Numbers: 0 on success, -1 when not a number, not an integer, or out of range. */
int json_get_i64(const json_doc_t *d, int tok, int64_t *out);
int json_get_double(const json_doc_t *d, int tok, double *out);
/* TRUE/FALSE -> 1/0, -1 otherwise. */
int json_get_bool(const json_doc_t *d, int tok);

/* Writer: appends compact JSON to a buf, inserting commas itself. */
#define JSON_W_MAX_DEPTH 64
typedef struct json_w {
    buf_t *out;
    int depth;
    uint8_t need_comma[JSON_W_MAX_DEPTH];
    uint8_t after_key;
} json_w_t;

void json_w_init(json_w_t *w, buf_t *out);
void json_w_obj_begin(json_w_t *w);
void json_w_obj_end(json_w_t *w);
void json_w_arr_begin(json_w_t *w);
void json_w_arr_end(json_w_t *w);
void json_w_key(json_w_t *w, const char *key);
void json_w_str(json_w_t *w, const char *s);
void json_w_strn(json_w_t *w, const char *s, size_t n); /* escapes; invalid UTF-8 -> U+FFFD */
void json_w_i64(json_w_t *w, int64_t v);
void json_w_double(json_w_t *w, double v);               /* shortest round-trip form; NaN/inf -> null */
void json_w_bool(json_w_t *w, int v);
void json_w_null(json_w_t *w);
void json_w_raw(json_w_t *w, const char *json, size_t n); /* an already-encoded value */

/* A key and its value in one call, for objects written field by field. A NULL string is
 * written as null. _obj/_arr write the key and open the container (close it as usual). */
static inline void json_w_kv_str(json_w_t *w, const char *key, const char *v) {
    json_w_key(w, key);
    if (v)
        json_w_str(w, v);
    else
        json_w_null(w);
}
static inline void json_w_kv_i64(json_w_t *w, const char *key, int64_t v) {
    json_w_key(w, key);
    json_w_i64(w, v);
}
static inline void json_w_kv_double(json_w_t *w, const char *key, double v) {
    json_w_key(w, key);
    json_w_double(w, v);
}
static inline void json_w_kv_bool(json_w_t *w, const char *key, int v) {
    json_w_key(w, key);
    json_w_bool(w, v);
}
static inline void json_w_kv_null(json_w_t *w, const char *key) {
    json_w_key(w, key);
    json_w_null(w);
}
static inline void json_w_kv_obj(json_w_t *w, const char *key) {
    json_w_key(w, key);
    json_w_obj_begin(w);
}
static inline void json_w_kv_arr(json_w_t *w, const char *key) {
    json_w_key(w, key);
    json_w_arr_begin(w);
}

/* Format a double as json_w_double does (shortest of %.15g/%.16g/%.17g that reads back
 * exactly; "null" for NaN/inf) into out; returns the length. */
int json_fmt_double(double v, char out[32]);

#endif
