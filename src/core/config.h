/* config.h — YAML configuration files: an owned tree with line numbers, and typed accessors
 * whose errors name the file, the line and the field path. */
#ifndef TOLLGATE_CORE_CONFIG_H
#define TOLLGATE_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Deepest nesting a configuration file may have. */
#define CFG_MAX_DEPTH 64

typedef enum cfg_type {
    CFG_MAP = 1,
    CFG_SEQ,
    CFG_SCALAR,
} cfg_type_t;

/* One node of the tree. The whole tree is owned by its root: cfg_free(root). */
typedef struct cfg_node cfg_node_t;
struct cfg_node {
    int type;               /* cfg_type_t */
    int line, col;          /* 1-based position of the value in the file */
    int key_line;           /* map entries: line of the key (same as line for most values) */
    char *key;              /* map entries: the key; NULL for roots and sequence items */
    size_t index;           /* sequence items: position in the sequence */
    char *value;            /* scalars: the text, NUL-terminated */
    size_t len;             /* scalars: length of value */
    uint8_t quoted;         /* scalars: written quoted or as a block (so never null/bool) */
    uint8_t is_null;        /* scalars: plain "", "~" or "null" */
    cfg_node_t *parent;     /* NULL for the root */
    cfg_node_t **items;     /* maps: values in file order (each carries its key); seqs: items */
    size_t n;               /* number of items */
    char *file;             /* root only: the name used in messages */
};

/* Load a YAML file (one document) into a tree. Anchors and aliases are rejected (a config
 * reads the same top to bottom, and aliases allow exponential expansion); duplicate keys,
 * non-scalar keys, several documents and nesting deeper than CFG_MAX_DEPTH are rejected.
 * An empty file gives an empty map. 0, or a negative errno with a message in err
 * ("FILE:LINE: what"). */
int cfg_load_file(const char *path, cfg_node_t **root, char *err, size_t errlen);
/* Same from memory; name is used in messages (e.g. "tollgate.yaml"). */
int cfg_load_string(const char *text, size_t len, const char *name, cfg_node_t **root,
                    char *err, size_t errlen);
void cfg_free(cfg_node_t *root);

/* Navigation. cfg_get: value for key in a map (NULL when absent or not a map);
 * cfg_at: i-th item of a sequence; cfg_len: items of a map or sequence, 0 for scalars. */
const cfg_node_t *cfg_get(const cfg_node_t *map, const char *key);
const cfg_node_t *cfg_at(const cfg_node_t *seq, size_t i);
size_t cfg_len(const cfg_node_t *n);
const char *cfg_type_name(const cfg_node_t *n); /* "mapping", "sequence", "scalar", "nothing" */

/* The field path of a node, e.g. "routes[0].variants[1].weight" ("" for the root). */
void cfg_path(const cfg_node_t *n, char *out, size_t outlen);
/* Write "FILE:LINE: PATH: message" into err, for a node (NULL: no line) and return
 * -EINVAL, so that callers' own checks read like the loader's. */
int cfg_err(const cfg_node_t *n, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Typed getters. Each reads map[key], or the node itself when key is NULL. A missing key
 * or a null value gives the default and returns 0; a value of the wrong type or outside
 * [min, max] returns -EINVAL with a message such as
 *   tollgate.yaml:12: routes[0].variants[1].weight: expected a number between 0 and 100, got "abc"
 */
int cfg_str(const cfg_node_t *map, const char *key, const char *def, const char **out,
            char *err, size_t errlen);
int cfg_int(const cfg_node_t *map, const char *key, int64_t def, int64_t min, int64_t max,
            int64_t *out, char *err, size_t errlen);
int cfg_double(const cfg_node_t *map, const char *key, double def, double min, double max,
               double *out, char *err, size_t errlen);
/* true/false, yes/no, on/off (any case). */
int cfg_bool(const cfg_node_t *map, const char *key, int def, int *out, char *err,
             size_t errlen);
/* Durations: "500ms", "2s", "1.5s", "1m", "72h", "1d", "1h30m"; a bare 0 is allowed. */
int cfg_duration_ms(const cfg_node_t *map, const char *key, int64_t def, int64_t min,
                    int64_t max, int64_t *out, char *err, size_t errlen);
/* Sizes in bytes: "512", "64KB", "10MB", "1.5GB", "2GiB" (K/M/G/T with or without B or iB
 * are all powers of 1024, as in nginx and most server configs). */
int cfg_size(const cfg_node_t *map, const char *key, uint64_t def, uint64_t min,
             uint64_t max, uint64_t *out, char *err, size_t errlen);
/* Error unless map[key] is present and not null. */
int cfg_require(const cfg_node_t *map, const char *key, char *err, size_t errlen);
/* Error naming the first key of map not in allowed (NULL-terminated), with its line.
 * Also an error when map is present but not a mapping. NULL map: 0. */
int cfg_check_keys(const cfg_node_t *map, const char *const *allowed, char *err,
                   size_t errlen);

/* Parsers behind the getters, for text from elsewhere (flags, env). 0 or -EINVAL. */
int cfg_parse_duration_ms(const char *s, int64_t *out);
int cfg_parse_size(const char *s, uint64_t *out);

#endif
