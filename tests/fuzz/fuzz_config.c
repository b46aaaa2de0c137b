/* fuzz_config.c — libFuzzer target: load YAML, then read every node with every getter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

static void walk(const cfg_node_t *n, int depth) {
    char err[256], path[256];
    const char *s;
    int64_t i;
    double d;
    int b;
    uint64_t u;
    static const char *const allowed[] = {"model", "weight", "name", NULL};
    if (depth > CFG_MAX_DEPTH + 1)
        abort(); /* the loader must have refused this */
    cfg_path(n, path, sizeof path);
    /* every getter either succeeds or explains itself */
    if (cfg_str(n, NULL, NULL, &s, err, sizeof err) < 0 && !err[0])
        abort();
    err[0] = '\0';
    if (cfg_int(n, NULL, 0, -100, 100, &i, err, sizeof err) < 0 && !err[0])
        abort();
    (void)cfg_double(n, NULL, 0, 0, 1, &d, err, sizeof err);
    (void)cfg_bool(n, NULL, 0, &b, err, sizeof err);
    (void)cfg_duration_ms(n, NULL, 0, 0, 3600000, &i, err, sizeof err);
    (void)cfg_size(n, NULL, 0, 0, UINT64_MAX, &u, err, sizeof err);
    (void)cfg_check_keys(n, allowed, err, sizeof err);
    if (n->type == CFG_MAP) {
        for (size_t k = 0; k < n->n; k++) {
            const cfg_node_t *c = n->items[k];
            if (!c->key || c->parent != n || cfg_get(n, c->key) != c)
                abort(); /* keys are unique, so lookup finds this very entry */
            walk(c, depth + 1);
        }
    } else if (n->type == CFG_SEQ) {
        for (size_t k = 0; k < n->n; k++) {
            if (cfg_at(n, k) != n->items[k] || n->items[k]->index != k)
                abort();
            walk(n->items[k], depth + 1);
        }
    } else if (!n->value || strlen(n->value) > n->len) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cfg_node_t *root = NULL;
    char err[512] = "";
    int rc = cfg_load_string((const char *)data, size, "fuzz.yaml", &root, err, sizeof err);
    if (rc) {
        if (root || (rc == -22 && strncmp(err, "fuzz.yaml", 9)))
            abort(); /* failures leave no tree and always name the file */
        return 0;
    }
    walk(root, 1);
    cfg_free(root);
    return 0;
}
