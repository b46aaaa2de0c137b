/* config.c — YAML configuration loader (libyaml events -> owned tree) and typed accessors. */
#include "core/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* ---- messages ---- */

static const cfg_node_t *root_of(const cfg_node_t *n) {
    while (n && n->parent) n = n->parent;
    return n;
}

void cfg_path(const cfg_node_t *n, char *out, size_t outlen) {
    const cfg_node_t *chain[CFG_MAX_DEPTH + 2];
    size_t depth = 0, k = 0;
    if (!outlen)
        return;
    out[0] = '\0';
    for (; n && n->parent && depth < sizeof chain / sizeof *chain; n = n->parent) chain[depth++] = n;
    while (depth--) {
        const cfg_node_t *c = chain[depth];
        int w = c->key ? snprintf(out + k, outlen - k, "%s%s", k ? "." : "", c->key)
                       : snprintf(out + k, outlen - k, "[%zu]", c->index);
        if (w < 0 || (size_t)w >= outlen - k)
            return; /* truncated: out stays NUL-terminated */
        k += (size_t)w;
    }
}

/* "FILE:LINE: PATH: message"; line <= 0 leaves the line out. */
static int verr_at(const cfg_node_t *path_node, int line, char *err, size_t errlen,
                   const char *fmt, va_list ap) {
    if (!err || !errlen)
        return -EINVAL;
    const cfg_node_t *root = root_of(path_node);
    const char *file = root && root->file ? root->file : "config";
    char path[256];
    cfg_path(path_node, path, sizeof path);
    int k = line > 0 ? snprintf(err, errlen, "%s:%d: %s%s", file, line, path, *path ? ": " : "")
                     : snprintf(err, errlen, "%s: %s%s", file, path, *path ? ": " : "");
    if (k >= 0 && (size_t)k < errlen)
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    return -EINVAL;
}

static int err_at(const cfg_node_t *n, int line, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int err_at(const cfg_node_t *n, int line, char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = verr_at(n, line, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

int cfg_err(const cfg_node_t *n, char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    /* A map entry is reported at its key: for a block value that is the line a reader looks
     * for ("routes:"), not the line where the value happens to start. */
    int rc = verr_at(n, n ? (n->key ? n->key_line : n->line) : 0, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* What a value is, for "got ..." in messages: a short quoted excerpt of a scalar. */
static const char *got(const cfg_node_t *n, char buf[64]) {
    if (n->type == CFG_MAP)
        return "a mapping";
    if (n->type == CFG_SEQ)
        return "a sequence";
    size_t k = 0;
    buf[k++] = '"';
    for (size_t i = 0; i < n->len && k < 52; i++) {
        unsigned char c = (unsigned char)n->value[i];
        buf[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (n->len > 50) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k++] = '"';
    buf[k] = '\0';
    return buf;
}

/* ---- loading ---- */

typedef struct loader {
    yaml_parser_t parser;
    cfg_node_t *root; /* for messages while building (holds the file name) */
    char *err;
    size_t errlen;
} loader_t;

static void node_free(cfg_node_t *n) {
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) node_free(n->items[i]);
    free(n->items);
    free(n->key);
    free(n->value);
    free(n->file);
    free(n);
}

void cfg_free(cfg_node_t *root) {
    node_free(root);
}

static int load_err(loader_t *l, size_t line0, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int load_err(loader_t *l, size_t line0, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verr_at(l->root, (int)line0 + 1, l->err, l->errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int next_event(loader_t *l, yaml_event_t *ev) {
    if (yaml_parser_parse(&l->parser, ev))
        return 0;
    const char *what = l->parser.problem ? l->parser.problem : "unreadable YAML";
    if (l->parser.error == YAML_MEMORY_ERROR) {
        load_err(l, 0, "out of memory");
        return -ENOMEM;
    }
    if (l->parser.context)
        return load_err(l, l->parser.problem_mark.line, "YAML syntax error: %s %s",
                        l->parser.context, what);
    return load_err(l, l->parser.problem_mark.line, "YAML syntax error: %s", what);
}

static int add_item(cfg_node_t *parent, cfg_node_t *child) {
    if ((parent->n & (parent->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = parent->n ? parent->n * 2 : 4;
        cfg_node_t **p = realloc(parent->items, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        parent->items = p;
    }
    parent->items[parent->n++] = child;
    child->parent = parent;
    return 0;
}

static const char *TAG_STR = "tag:yaml.org,2002:str";

/* Build the node that starts with *ev (consumed). *out is owned by the caller on success. */
static int build(loader_t *l, yaml_event_t *ev, int depth, cfg_node_t **out) {
    int rc = 0;
    size_t line0 = ev->start_mark.line;
    cfg_node_t *n = NULL;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        rc = load_err(l, line0, "aliases (*%s) are not supported; write the value out",
                      (const char *)ev->data.alias.anchor);
        goto out;
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    default:
        rc = load_err(l, line0, "unexpected YAML event");
        goto out;
    }
    if (anchor) {
        rc = load_err(l, line0, "anchors (&%s) are not supported; write the value out",
                      (const char *)anchor);
        goto out;
    }
    if (tag && !(ev->type == YAML_SCALAR_EVENT && !strcmp((const char *)tag, TAG_STR)) &&
        strcmp((const char *)tag, "!")) {
        rc = load_err(l, line0, "YAML tags (%s) are not supported", (const char *)tag);
        goto out;
    }
    if (depth > CFG_MAX_DEPTH) {
        rc = load_err(l, line0, "nested deeper than %d levels", CFG_MAX_DEPTH);
        goto out;
    }
    if (!(n = calloc(1, sizeof *n))) {
        rc = -ENOMEM;
        goto out;
    }
    n->line = n->key_line = (int)line0 + 1;
    n->col = (int)ev->start_mark.column + 1;

    if (ev->type == YAML_SCALAR_EVENT) {
        n->type = CFG_SCALAR;
        n->len = ev->data.scalar.length;
        if (!(n->value = malloc(n->len + 1))) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(n->value, ev->data.scalar.value, n->len);
        n->value[n->len] = '\0';
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || tag != NULL;
        n->is_null = !n->quoted && (n->len == 0 || !strcmp(n->value, "~") ||
                                    !strcmp(n->value, "null") || !strcmp(n->value, "Null") ||
                                    !strcmp(n->value, "NULL"));
        goto out;
    }

    int is_map = ev->type == YAML_MAPPING_START_EVENT;
    n->type = is_map ? CFG_MAP : CFG_SEQ;
    yaml_event_t e;
    for (;;) {
        if ((rc = next_event(l, &e)))
            goto out;
        if (e.type == (is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
            yaml_event_delete(&e);
            break;
        }
        char *key = NULL;
        int key_line = (int)e.start_mark.line + 1;
        if (is_map) {
            if (e.type != YAML_SCALAR_EVENT) {
                rc = load_err(l, e.start_mark.line, "mapping keys must be plain text");
                yaml_event_delete(&e);
                goto out;
            }
            if (e.data.scalar.anchor) {
                rc = load_err(l, e.start_mark.line, "anchors (&%s) are not supported",
                              (const char *)e.data.scalar.anchor);
                yaml_event_delete(&e);
                goto out;
            }
            if (memchr(e.data.scalar.value, '\0', e.data.scalar.length)) {
                rc = load_err(l, e.start_mark.line, "a key contains a NUL byte");
                yaml_event_delete(&e);
                goto out;
            }
            key = strdup((const char *)e.data.scalar.value);
            yaml_event_delete(&e);
            if (!key) {
                rc = -ENOMEM;
                goto out;
            }
            for (size_t i = 0; i < n->n; i++) {
                if (!strcmp(n->items[i]->key, key)) {
                    rc = load_err(l, (size_t)key_line - 1,
                                  "duplicate key \"%s\" (first at line %d)", key,
                                  n->items[i]->key_line);
                    free(key);
                    goto out;
                }
            }
            if ((rc = next_event(l, &e))) {
                free(key);
                goto out;
            }
        }
        cfg_node_t *child = NULL;
        rc = build(l, &e, depth + 1, &child);
        if (rc) {
            free(key);
            goto out;
        }
        child->key = key;
        if (is_map)
            child->key_line = key_line;
        else
            child->index = n->n;
        if ((rc = add_item(n, child))) {
            node_free(child);
            goto out;
        }
    }
out:
    yaml_event_delete(ev);
    if (rc) {
        node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

static int load(loader_t *l, cfg_node_t **out) {
    yaml_event_t ev;
    int rc;
    if ((rc = next_event(l, &ev)))
        return rc;
    yaml_event_delete(&ev); /* STREAM-START */
    if ((rc = next_event(l, &ev)))
        return rc;
    if (ev.type == YAML_STREAM_END_EVENT) { /* empty file: an empty map */
        yaml_event_delete(&ev);
        cfg_node_t *n = calloc(1, sizeof *n);
        if (!n)
            return -ENOMEM;
        n->type = CFG_MAP;
        n->line = n->key_line = 1;
        n->col = 1;
        *out = n;
        return 0;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    if ((rc = next_event(l, &ev)))
        return rc;
    cfg_node_t *root = NULL;
    if ((rc = build(l, &ev, 1, &root)))
        return rc;
    if ((rc = next_event(l, &ev))) /* DOCUMENT-END */
        goto err;
    yaml_event_delete(&ev);
    if ((rc = next_event(l, &ev)))
        goto err;
    if (ev.type != YAML_STREAM_END_EVENT) {
        rc = load_err(l, ev.start_mark.line, "only one YAML document is allowed");
        yaml_event_delete(&ev);
        goto err;
    }
    yaml_event_delete(&ev);
    *out = root;
    return 0;
err:
    node_free(root);
    return rc;
}

int cfg_load_string(const char *text, size_t len, const char *name, cfg_node_t **root,
                    char *err, size_t errlen) {
    if (err && errlen)
        err[0] = '\0';
    *root = NULL;
    /* A stand-in root carries the file name for messages raised while building. */
    cfg_node_t named = {0};
    named.file = (char *)(name ? name : "config");
    loader_t l = {.root = &named, .err = err, .errlen = errlen};
    if (!yaml_parser_initialize(&l.parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&l.parser, (const unsigned char *)text, len);
    cfg_node_t *n = NULL;
    int rc = load(&l, &n);
    yaml_parser_delete(&l.parser);
    if (rc)
        return rc;
    if (!(n->file = strdup(named.file))) {
        node_free(n);
        return -ENOMEM;
    }
    *root = n;
    return 0;
}

int cfg_load_file(const char *path, cfg_node_t **root, char *err, size_t errlen) {
    *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *p = realloc(text, cap);
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            text = p;
        }
        size_t k = fread(text + len, 1, cap - len, f);
        len += k;
        if (k == 0) {
            if (ferror(f)) {
                rc = -EIO;
                if (err && errlen)
                    snprintf(err, errlen, "%s: read error", path);
            }
            break;
        }
    }
    fclose(f);
    if (!rc)
        rc = cfg_load_string(text ? text : "", len, path, root, err, errlen);
    free(text);
    return rc;
}

/* ---- navigation ---- */

const cfg_node_t *cfg_get(const cfg_node_t *map, const char *key) {
    if (!map || map->type != CFG_MAP || !key)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (!strcmp(map->items[i]->key, key))
            return map->items[i];
    return NULL;
}

const cfg_node_t *cfg_at(const cfg_node_t *seq, size_t i) {
    if (!seq || seq->type != CFG_SEQ || i >= seq->n)
        return NULL;
    return seq->items[i];
}

size_t cfg_len(const cfg_node_t *n) {
    return n && n->type != CFG_SCALAR ? n->n : 0;
}

const char *cfg_type_name(const cfg_node_t *n) {
    if (!n)
        return "nothing";
    return n->type == CFG_MAP ? "mapping" : n->type == CFG_SEQ ? "sequence" : "scalar";
}

/* ---- typed getters ---- */

/* The value node a getter reads, or NULL when it should use its default. */
static const cfg_node_t *pick(const cfg_node_t *map, const char *key) {
    const cfg_node_t *n = key ? cfg_get(map, key) : map;
    if (!n || (n->type == CFG_SCALAR && n->is_null))
        return NULL;
    return n;
}

int cfg_require(const cfg_node_t *map, const char *key, char *err, size_t errlen) {
    if (pick(map, key))
        return 0;
    if (map && key && cfg_get(map, key))
        return cfg_err(cfg_get(map, key), err, errlen, "a value is required");
    return cfg_err(map, err, errlen, "missing required field \"%s\"", key ? key : "");
}

int cfg_str(const cfg_node_t *map, const char *key, const char *def, const char **out,
            char *err, size_t errlen) {
    const cfg_node_t *n = pick(map, key);
    char g[64];
    if (!n) {
        *out = def;
        return 0;
    }
    if (n->type != CFG_SCALAR)
        return cfg_err(n, err, errlen, "expected a string, got %s", got(n, g));
    if (strlen(n->value) != n->len)
        return cfg_err(n, err, errlen, "a string may not contain a NUL byte");
    *out = n->value;
    return 0;
}

static int parse_i64(const char *s, int64_t *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (*p < '0' || *p > '9')
        return -EINVAL;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (*p)
        return -EINVAL;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int cfg_int(const cfg_node_t *map, const char *key, int64_t def, int64_t min, int64_t max,
            int64_t *out, char *err, size_t errlen) {
    const cfg_node_t *n = pick(map, key);
    char g[64];
    int64_t v;
    if (!n) {
        *out = def;
        return 0;
    }
    if (n->type != CFG_SCALAR || parse_i64(n->value, &v) || v < min || v > max) {
        if (min == INT64_MIN && max == INT64_MAX)
            return cfg_err(n, err, errlen, "expected an integer, got %s", got(n, g));
        return cfg_err(n, err, errlen, "expected an integer between %lld and %lld, got %s",
                       (long long)min, (long long)max, got(n, g));
    }
    *out = v;
    return 0;
}

/* Decimal number text: [+-]digits[.digits][e[+-]digits] (no hex, inf or nan). */
static int parse_dbl(const char *s, double *out) {
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    int digits = 0;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++) digits++;
    if (!digits)
        return -EINVAL;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p)
        return -EINVAL;
    double v = strtod(s, NULL);
    if (!isfinite(v))
        return -ERANGE;
    *out = v;
    return 0;
}

int cfg_double(const cfg_node_t *map, const char *key, double def, double min, double max,
               double *out, char *err, size_t errlen) {
    const cfg_node_t *n = pick(map, key);
    char g[64];
    double v;
    if (!n) {
        *out = def;
        return 0;
    }
    if (n->type != CFG_SCALAR || parse_dbl(n->value, &v) || v < min || v > max) {
        if (isinf(min) && isinf(max))
            return cfg_err(n, err, errlen, "expected a number, got %s", got(n, g));
        return cfg_err(n, err, errlen, "expected a number between %g and %g, got %s", min, max,
                       got(n, g));
    }
    *out = v;
    return 0;
}

int cfg_bool(const cfg_node_t *map, const char *key, int def, int *out, char *err,
             size_t errlen) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    const cfg_node_t *n = pick(map, key);
    char g[64];
    if (!n) {
        *out = def;
        return 0;
    }
    if (n->type == CFG_SCALAR) {
        for (int i = 0; i < 3; i++) {
            if (!strcasecmp(n->value, yes[i])) {
                *out = 1;
                return 0;
            }
            if (!strcasecmp(n->value, no[i])) {
                *out = 0;
                return 0;
            }
        }
    }
    return cfg_err(n, err, errlen, "expected true or false, got %s", got(n, g));
}

int cfg_parse_duration_ms(const char *s, int64_t *out) {
    static const struct {
        const char *u;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}};
    const char *p = s;
    double total = 0;
    if (!s || !*s)
        return -EINVAL;
    if (!strcmp(s, "0")) {
        *out = 0;
        return 0;
    }
    while (*p) {
        char *end;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        double v = strtod(p, &end);
        if (end == p || (end[-1] < '0' || end[-1] > '9'))
            return -EINVAL; /* "1." or "1e5" style: not a duration */
        for (const char *q = p; q < end; q++)
            if (*q != '.' && (*q < '0' || *q > '9'))
                return -EINVAL;
        p = end;
        size_t k = 0;
        for (; k < sizeof units / sizeof *units; k++) {
            size_t ul = strlen(units[k].u);
            /* "m" must not swallow the "m" of "ms" */
            if (!strncmp(p, units[k].u, ul) && !(ul == 1 && p[0] == 'm' && p[1] == 's'))
                break;
        }
        if (k == sizeof units / sizeof *units)
            return -EINVAL;
        total += v * units[k].ms;
        p += strlen(units[k].u);
    }
    if (!(total <= 9.2e18))
        return -ERANGE;
    *out = (int64_t)llround(total);
    return 0;
}

int cfg_parse_size(const char *s, uint64_t *out) {
    static const struct {
        const char *u;
        double mult;
    } units[] = {{"", 1},           {"b", 1},
                 {"k", 1024.0},     {"kb", 1024.0},     {"kib", 1024.0},
                 {"m", 1048576.0},  {"mb", 1048576.0},  {"mib", 1048576.0},
                 {"g", 1073741824.0}, {"gb", 1073741824.0}, {"gib", 1073741824.0},
                 {"t", 1099511627776.0}, {"tb", 1099511627776.0}, {"tib", 1099511627776.0}};
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    const char *p = s;
    while ((*p >= '0' && *p <= '9') || *p == '.') p++;
    if (p[-1] == '.')
        return -EINVAL;
    char num[64];
    if ((size_t)(p - s) >= sizeof num)
        return -ERANGE;
    memcpy(num, s, (size_t)(p - s));
    num[p - s] = '\0';
    double v;
    if (parse_dbl(num, &v))
        return -EINVAL;
    for (size_t k = 0; k < sizeof units / sizeof *units; k++) {
        if (strcasecmp(p, units[k].u))
            continue;
        double total = v * units[k].mult;
        if (!(total < 1.8e19))
            return -ERANGE;
        *out = (uint64_t)llround(total);
        return 0;
    }
    return -EINVAL;
}

/* "90000" ms -> "90s", "3600000" -> "1h": the range in an error reads like the input. */
static void fmt_duration(int64_t ms, char out[32]) {
    static const struct {
        const char *u;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (ms && ms % units[i].ms == 0) {
            snprintf(out, 32, "%lld%s", (long long)(ms / units[i].ms), units[i].u);
            return;
        }
    }
    snprintf(out, 32, "%lldms", (long long)ms);
}

static void fmt_size(uint64_t b, char out[32]) {
    static const char *const u[] = {"TB", "GB", "MB", "KB"};
    for (int i = 0; i < 4; i++) {
        uint64_t m = 1ull << (10 * (4 - i));
        if (b && b % m == 0) {
            snprintf(out, 32, "%llu%s", (unsigned long long)(b / m), u[i]);
            return;
        }
    }
    snprintf(out, 32, "%llu", (unsigned long long)b);
}

int cfg_duration_ms(const cfg_node_t *map, const char *key, int64_t def, int64_t min,
                    int64_t max, int64_t *out, char *err, size_t errlen) {
    const cfg_node_t *n = pick(map, key);
    char g[64], a[32], b[32];
    int64_t v;
    if (!n) {
        *out = def;
        return 0;
    }
    if (n->type != CFG_SCALAR || cfg_parse_duration_ms(n->value, &v) || v < min || v > max) {
        fmt_duration(min, a);
        fmt_duration(max, b);
        return cfg_err(n, err, errlen,
                       "expected a duration such as 500ms, 2s, 1m or 72h, between %s and %s, "
                       "got %s",
                       a, b, got(n, g));
    }
    *out = v;
    return 0;
}

int cfg_size(const cfg_node_t *map, const char *key, uint64_t def, uint64_t min, uint64_t max,
             uint64_t *out, char *err, size_t errlen) {
    const cfg_node_t *n = pick(map, key);
    char g[64], a[32], b[32];
    uint64_t v;
    if (!n) {
        *out = def;
        return 0;
    }
    if (n->type != CFG_SCALAR || cfg_parse_size(n->value, &v) || v < min || v > max) {
        fmt_size(min, a);
        fmt_size(max, b);
        return cfg_err(n, err, errlen,
                       "expected a size such as 512KB or 10MB, between %s and %s, got %s", a,
                       b, got(n, g));
    }
    *out = v;
    return 0;
}

int cfg_check_keys(const cfg_node_t *map, const char *const *allowed, char *err,
                   size_t errlen) {
    if (!map || (map->type == CFG_SCALAR && map->is_null))
        return 0;
    char g[64];
    if (map->type != CFG_MAP)
        return cfg_err(map, err, errlen, "expected a mapping, got %s", got(map, g));
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->items[i]->key;
        size_t j = 0;
        while (allowed && allowed[j] && strcmp(allowed[j], k)) j++;
        if (allowed && allowed[j])
            continue;
        char list[512];
        size_t w = 0;
        list[0] = '\0';
        for (j = 0; allowed && allowed[j] && w < sizeof list; j++) {
            int m = snprintf(list + w, sizeof list - w, "%s%s", j ? ", " : "", allowed[j]);
            if (m < 0)
                break;
            w += (size_t)m;
        }
        return err_at(map, map->items[i]->key_line, err, errlen,
                      "unknown field \"%s\" (expected one of: %s)", k, list);
    }
    return 0;
}
