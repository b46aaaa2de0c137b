/* gguf_write.c — GGUF v3 writer: collect metadata and tensors, lay them out as llama.cpp does. */
#include "model/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32u

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
} wbuf_t;

static int wb_put(wbuf_t *b, const void *p, size_t n) {
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) return -ENOMEM;
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q) return -ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int wb_u32(wbuf_t *b, uint32_t v) {
    return wb_put(b, &v, 4);
}
static int wb_u64(wbuf_t *b, uint64_t v) {
    return wb_put(b, &v, 8);
}
static int wb_str(wbuf_t *b, const char *s, size_t n) {
    return wb_u64(b, n) ? -ENOMEM : wb_put(b, s, n);
}

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    void *data;
    size_t size;
} wtensor_t;

struct gguf_writer {
    wbuf_t kvs; /* serialized metadata: key, type, value, in insertion order */
    uint64_t n_kv;
    char **keys; /* to reject duplicates */
    wtensor_t *t;
    size_t n_t, cap_t;
    uint32_t alignment;
};

gguf_writer_t *gguf_writer_new(void) {
    gguf_writer_t *w = calloc(1, sizeof *w);
    if (w) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(gguf_writer_t *w) {
    if (!w) return;
    free(w->kvs.p);
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w);
}

/* Start a kv: check the key is new, append key and type. */
static int w_begin(gguf_writer_t *w, const char *key, size_t klen, uint32_t type) {
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strlen(w->keys[i]) == klen && !memcmp(w->keys[i], key, klen)) return -EEXIST;
    char **k = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *k);
    if (!k) return -ENOMEM;
    w->keys = k;
    if (!(k[w->n_kv] = strndup(key, klen))) return -ENOMEM;
    w->n_kv++;
    if (wb_str(&w->kvs, key, klen) || wb_u32(&w->kvs, type)) return -ENOMEM;
    return 0;
}

static int w_scalar(gguf_writer_t *w, const char *key, uint32_t type, const void *v, size_t n) {
    int rc = w_begin(w, key, strlen(key), type);
    return rc ? rc : wb_put(&w->kvs, v, n);
}

int gguf_w_u32(gguf_writer_t *w, const char *key, uint32_t v) {
    if (!strcmp(key, "general.alignment")) {
        if (!v || (v & (v - 1))) return -EINVAL;
        w->alignment = v;
    }
    return w_scalar(w, key, GGUF_U32, &v, 4);
}
int gguf_w_i32(gguf_writer_t *w, const char *key, int32_t v) {
    return w_scalar(w, key, GGUF_I32, &v, 4);
}
int gguf_w_f32(gguf_writer_t *w, const char *key, float v) {
    return w_scalar(w, key, GGUF_F32, &v, 4);
}
int gguf_w_bool(gguf_writer_t *w, const char *key, int v) {
    uint8_t b = v != 0;
    return w_scalar(w, key, GGUF_BOOL, &b, 1);
}
int gguf_w_str(gguf_writer_t *w, const char *key, const char *v) {
    int rc = w_begin(w, key, strlen(key), GGUF_STRING);
    return rc ? rc : wb_str(&w->kvs, v, strlen(v));
}

static int w_arr_begin(gguf_writer_t *w, const char *key, uint32_t etype, size_t n) {
    int rc = w_begin(w, key, strlen(key), GGUF_ARRAY);
    if (rc) return rc;
    return wb_u32(&w->kvs, etype) || wb_u64(&w->kvs, n) ? -ENOMEM : 0;
}

int gguf_w_arr_str(gguf_writer_t *w, const char *key, const char *const *v, size_t n) {
    int rc = w_arr_begin(w, key, GGUF_STRING, n);
    for (size_t i = 0; !rc && i < n; i++) rc = wb_str(&w->kvs, v[i], strlen(v[i]));
    return rc;
}
int gguf_w_arr_f32(gguf_writer_t *w, const char *key, const float *v, size_t n) {
    int rc = w_arr_begin(w, key, GGUF_F32, n);
    return rc ? rc : wb_put(&w->kvs, v, n * 4);
}
int gguf_w_arr_i32(gguf_writer_t *w, const char *key, const int32_t *v, size_t n) {
    int rc = w_arr_begin(w, key, GGUF_I32, n);
    return rc ? rc : wb_put(&w->kvs, v, n * 4);
}

int gguf_w_copy_kv(gguf_writer_t *w, const gguf_kv_t *kv) {
    if (gguf_str_eq(kv->key, "general.alignment")) {
        if (kv->type != GGUF_U32 || !kv->num.u || (kv->num.u & (kv->num.u - 1))) return -EINVAL;
        w->alignment = (uint32_t)kv->num.u;
    }
    int rc = w_begin(w, kv->key.ptr, (size_t)kv->key.len, kv->type);
    return rc ? rc : wb_put(&w->kvs, kv->raw, gguf_kv_value_len(kv));
}

int gguf_w_tensor(gguf_writer_t *w, const char *name, int type, uint32_t n_dims, const int64_t *ne,
                  const void *data, size_t size) {
    if (!ggml_type_block_elems(type) || n_dims < 1 || n_dims > GGUF_MAX_DIMS) return -EINVAL;
    int64_t total = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || total > INT64_MAX / ne[d]) return -EINVAL;
        total *= ne[d];
    }
    if (ggml_row_bytes(type, ne[0]) == 0 ||
        ggml_row_bytes(type, ne[0]) * (size_t)(total / ne[0]) != size)
        return -EINVAL;
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return -EEXIST;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        wtensor_t *t = realloc(w->t, cap * sizeof *t);
        if (!t) return -ENOMEM;
        w->t = t;
        w->cap_t = cap;
    }
    wtensor_t *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(size ? size : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return -ENOMEM;
    }
    memcpy(t->data, data, size);
    t->type = (uint32_t)type;
    t->n_dims = n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < (int)n_dims ? ne[d] : 1;
    t->size = size;
    w->n_t++;
    return 0;
}

static size_t align_up(size_t x, size_t a) {
    return (x + a - 1) / a * a;
}

/* Layout: header, metadata, tensor infos, padding to the alignment, then each tensor's
 * data padded to the alignment (the order llama.cpp's writer uses). */
int gguf_w_to_mem(gguf_writer_t *w, void **out, size_t *len) {
    wbuf_t b = {0};
    static const uint8_t zeros[64];
    int rc = 0;
    rc |= wb_u32(&b, GGUF_MAGIC);
    rc |= wb_u32(&b, 3);
    rc |= wb_u64(&b, w->n_t);
    rc |= wb_u64(&b, w->n_kv);
    rc |= wb_put(&b, w->kvs.p, w->kvs.len);
    size_t off = 0;
    for (size_t i = 0; i < w->n_t && !rc; i++) {
        const wtensor_t *t = &w->t[i];
        rc |= wb_str(&b, t->name, strlen(t->name));
        rc |= wb_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) rc |= wb_u64(&b, (uint64_t)t->ne[d]);
        rc |= wb_u32(&b, t->type);
        rc |= wb_u64(&b, off);
        off = align_up(off + t->size, w->alignment);
    }
    /* a file without tensors ends after its metadata, as the reference's vocab files do */
    for (size_t i = 0; i <= w->n_t && w->n_t && !rc; i++) {
        /* pad to the alignment before the data section and after each tensor */
        while (!rc && b.len % w->alignment) {
            size_t pad = w->alignment - b.len % w->alignment;
            rc |= wb_put(&b, zeros, pad < sizeof zeros ? pad : sizeof zeros);
        }
        if (i < w->n_t) rc |= wb_put(&b, w->t[i].data, w->t[i].size);
    }
    if (rc) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

int gguf_w_write(gguf_writer_t *w, const char *path, char *err, size_t errlen) {
    void *mem;
    size_t len;
    if (gguf_w_to_mem(w, &mem, &len)) {
        snprintf(err, errlen, "out of memory serializing GGUF");
        return -ENOMEM;
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        free(mem);
        return -e;
    }
    size_t n = fwrite(mem, 1, len, fp);
    int e = ferror(fp) ? errno : 0;
    if (fclose(fp) && !e) e = errno;
    free(mem);
    if (n != len || e) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(e ? e : EIO));
        return -(e ? e : EIO);
    }
    return 0;
}
