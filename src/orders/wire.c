/* wire.c — the order service's JSON: input validation, the gateway task answer, order output. */
#include "orders/wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WIRE_MAX_TOKENS 256 /* an order body has a handful; more is not an order */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Unescape the STRING token t, trim ASCII whitespace at both ends, and check it: no control
 * characters (that includes an escaped NUL), at most max bytes; empty allowed only if
 * allow_empty. On success *out is a malloc'ed copy. 0, -EINVAL (err says why, naming
 * field), -ENOMEM. */
static int take_string(const json_doc_t *d, int t, const char *field, size_t max, int allow_empty,
                       char **out, char *err, size_t errlen) {
    if (d->toks[t].type != JSON_STRING) return fail(err, errlen, "\"%s\" must be a string", field);
    buf_t b;
    buf_init(&b);
    if (json_str_unescape(d, t, &b) < 0) {
        buf_free(&b);
        return -ENOMEM;
    }
    const char *s = b.data ? b.data : "";
    size_t n = b.len, i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    int rc = 0;
    for (size_t k = i; k < n && !rc; k++)
        if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f)
            rc = fail(err, errlen, "\"%s\" must not contain control characters (one line of text)",
                      field);
    if (!rc && n == i && !allow_empty) rc = fail(err, errlen, "\"%s\" must not be empty", field);
    if (!rc && n - i > max)
        rc = fail(err, errlen, "\"%s\" is %zu bytes long; the limit is %zu", field, n - i, max);
    if (!rc) {
        *out = strndup(s + i, n - i);
        if (!*out) rc = -ENOMEM;
    }
    buf_free(&b);
    return rc;
}

int wire_parse_order(const char *body, size_t len, wire_order_in_t *out, char *err, size_t errlen,
                     const char **param) {
    memset(out, 0, sizeof *out);
    *param = NULL;
    json_tok_t toks[WIRE_MAX_TOKENS];
    json_doc_t d;
    size_t pos = 0;
    int n = json_parse(body, len, toks, WIRE_MAX_TOKENS, 8, &d, &pos);
    if (n == JSON_ERR_NOMEM || n == JSON_ERR_DEPTH)
        return fail(err, errlen, "the body is too large or too deeply nested for an order");
    if (n < 0)
        return fail(err, errlen,
                    "the body is not valid JSON (at byte %zu); expected "
                    "{\"items\": \"...\", \"customer\": \"...\"}",
                    pos);
    if (toks[0].type != JSON_OBJECT)
        return fail(err, errlen,
                    "the body must be a JSON object: "
                    "{\"items\": \"...\", \"customer\": \"...\"}");
    /* Unknown fields are refused so that a typo ("item") is not silently an empty order. */
    for (uint32_t k = 1; k < d.ntoks; k = toks[toks[k].next].next) {
        if (!json_str_eq(&d, (int)k, "items") && !json_str_eq(&d, (int)k, "customer")) {
            buf_t name;
            buf_init(&name);
            json_str_unescape(&d, (int)k, &name);
            int rc = fail(err, errlen,
                          "unknown field \"%.64s\"; an order has \"items\" and "
                          "\"customer\"",
                          name.data ? name.data : "");
            buf_free(&name);
            return rc;
        }
    }
    static const struct {
        const char *name;
        size_t max;
    } fields[] = {{"items", WIRE_MAX_ITEMS}, {"customer", WIRE_MAX_CUSTOMER}};
    char **dst[] = {&out->items, &out->customer};
    for (size_t f = 0; f < 2; f++) {
        int t = json_obj_get(&d, 0, fields[f].name);
        int rc;
        if (t < 0)
            rc = fail(err, errlen, "missing field \"%s\"", fields[f].name);
        else
            rc = take_string(&d, t, fields[f].name, fields[f].max, 0, dst[f], err, errlen);
        if (rc < 0) {
            *param = fields[f].name;
            wire_order_in_clear(out);
            return rc;
        }
    }
    return 0;
}

void wire_order_in_clear(wire_order_in_t *in) {
    free(in->items);
    free(in->customer);
    memset(in, 0, sizeof *in);
}

/* Optional string field: absent or null -> "". */
static int opt_string(const json_doc_t *d, const char *key, size_t max, char **out, char *err,
                      size_t errlen) {
    int t = json_obj_get(d, 0, key);
    if (t < 0 || d->toks[t].type == JSON_NULL) {
        *out = strdup("");
        return *out ? 0 : -ENOMEM;
    }
    return take_string(d, t, key, max, 1, out, err, errlen);
}

int wire_parse_task_answer(const char *body, size_t len, wire_task_out_t *out, char *err,
                           size_t errlen) {
    memset(out, 0, sizeof *out);
    json_tok_t toks[WIRE_MAX_TOKENS];
    json_doc_t d;
    size_t pos = 0;
    int n = json_parse(body, len, toks, WIRE_MAX_TOKENS, 16, &d, &pos);
    if (n < 0) return fail(err, errlen, "not JSON (at byte %zu)", pos);
    if (toks[0].type != JSON_OBJECT) return fail(err, errlen, "not a JSON object");
    int t = json_obj_get(&d, 0, "output");
    if (t < 0) return fail(err, errlen, "no \"output\"");
    int rc = take_string(&d, t, "output", WIRE_MAX_DESCRIPTION, 0, &out->output, err, errlen);
    if (!rc) {
        int f = json_obj_get(&d, 0, "fallback");
        out->fallback = f < 0 ? -1 : json_get_bool(&d, f);
        if (out->fallback < 0) rc = fail(err, errlen, "\"fallback\" missing or not a boolean");
    }
    if (!rc) rc = opt_string(&d, "reason", 200, &out->reason, err, errlen);
    if (!rc) rc = opt_string(&d, "model", 200, &out->model, err, errlen);
    if (!rc) rc = opt_string(&d, "variant", 200, &out->variant, err, errlen);
    if (rc < 0) wire_task_out_clear(out);
    return rc;
}

void wire_task_out_clear(wire_task_out_t *t) {
    free(t->output);
    free(t->reason);
    free(t->model);
    free(t->variant);
    memset(t, 0, sizeof *t);
}

int wire_parse_id(const char *s, int64_t *out) {
    if (!*s || strlen(s) > 19) return -EINVAL;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -EINVAL;
        if (v > (INT64_MAX - (*p - '0')) / 10) return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v < 1) return -EINVAL;
    *out = v;
    return 0;
}

int wire_parse_list_query(const char *query, int *limit, int64_t *before, char *err,
                          size_t errlen) {
    *limit = WIRE_DEFAULT_LIMIT;
    *before = 0;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        char part[64];
        if (n >= sizeof part)
            return fail(err, errlen, "query parameter too long; use limit=N and before=ID");
        memcpy(part, p, n);
        part[n] = '\0';
        char *eq = strchr(part, '=');
        if (n == 0) {
            /* "a&&b": tolerate empty parts */
        } else if (!eq) {
            return fail(err, errlen, "query parameter \"%s\" has no value", part);
        } else {
            *eq = '\0';
            int64_t v;
            if (!strcmp(part, "limit")) {
                if (wire_parse_id(eq + 1, &v) < 0 || v > WIRE_MAX_LIMIT)
                    return fail(err, errlen, "limit must be a whole number from 1 to %d",
                                WIRE_MAX_LIMIT);
                *limit = (int)v;
            } else if (!strcmp(part, "before")) {
                if (wire_parse_id(eq + 1, &v) < 0)
                    return fail(err, errlen, "before must be an order id (a whole number >= 1)");
                *before = v;
            } else {
                return fail(err, errlen, "unknown query parameter \"%s\"; use limit and before",
                            part);
            }
        }
        p = amp ? amp + 1 : p + n;
    }
    return 0;
}

void wire_write_order(json_w_t *w, const store_order_t *o) {
    json_w_obj_begin(w);
    json_w_kv_i64(w, "id", o->id);
    json_w_kv_str(w, "items", o->items);
    json_w_kv_str(w, "customer", o->customer);
    json_w_kv_str(w, "description", o->description);
    json_w_kv_str(w, "description_source", o->description_source);
    /* An empty reason, model or variant is written as null. */
    json_w_kv_str(w, "reason", o->reason && *o->reason ? o->reason : NULL);
    json_w_kv_str(w, "model", o->model && *o->model ? o->model : NULL);
    json_w_kv_str(w, "variant", o->variant && *o->variant ? o->variant : NULL);
    json_w_kv_i64(w, "normalize_ms", o->normalize_ms);
    json_w_kv_i64(w, "created_ms", o->created_ms);
    json_w_obj_end(w);
}
