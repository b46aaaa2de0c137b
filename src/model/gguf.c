/* gguf.c — GGUF v2/v3 reader: every read bounds-checked, hostile files rejected with a message. */
#define _GNU_SOURCE /* mremap */
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32u

/* ---- tensor types ---------------------------------------------------------------- */

typedef struct type_info {
    int elems; /* elements per block */
    int bytes; /* bytes per block */
    const char *name;
} type_info_t;

/* Block layouts as in ggml-common.h: e.g. Q4_0 = fp16 d + 16 bytes of nibbles = 18;
 * Q4_K = fp16 d, dmin + 12 scale bytes + 128 nibble bytes = 144; Q8_K = f32 d +
 * 256 int8 + 16 int16 bsums = 292. */
static const type_info_t *type_info(int type) {
    static const type_info_t tab[GGML_TYPE_COUNT] = {
        [GGML_TYPE_F32] = {1, 4, "F32"},       [GGML_TYPE_F16] = {1, 2, "F16"},
        [GGML_TYPE_Q4_0] = {32, 18, "Q4_0"},   [GGML_TYPE_Q4_1] = {32, 20, "Q4_1"},
        [GGML_TYPE_Q5_0] = {32, 22, "Q5_0"},   [GGML_TYPE_Q5_1] = {32, 24, "Q5_1"},
        [GGML_TYPE_Q8_0] = {32, 34, "Q8_0"},   [GGML_TYPE_Q8_1] = {32, 36, "Q8_1"},
        [GGML_TYPE_Q2_K] = {256, 84, "Q2_K"},  [GGML_TYPE_Q3_K] = {256, 110, "Q3_K"},
        [GGML_TYPE_Q4_K] = {256, 144, "Q4_K"}, [GGML_TYPE_Q5_K] = {256, 176, "Q5_K"},
        [GGML_TYPE_Q6_K] = {256, 210, "Q6_K"}, [GGML_TYPE_Q8_K] = {256, 292, "Q8_K"},
        [GGML_TYPE_BF16] = {1, 2, "BF16"},
    };
    if (type < 0 || type >= GGML_TYPE_COUNT || !tab[type].elems) return NULL;
    return &tab[type];
}

int ggml_type_block_elems(int type) {
    const type_info_t *t = type_info(type);
    return t ? t->elems : 0;
}

int ggml_type_block_bytes(int type) {
    const type_info_t *t = type_info(type);
    return t ? t->bytes : 0;
}

const char *ggml_type_name(int type) {
    const type_info_t *t = type_info(type);
    return t ? t->name : "?";
}

size_t ggml_row_bytes(int type, int64_t n) {
    const type_info_t *t = type_info(type);
    if (!t || n < 0 || n % t->elems) return 0;
    return (size_t)(n / t->elems) * (size_t)t->bytes;
}

/* ---- reader ---------------------------------------------------------------------- */

/* A cursor over the file; every read checks the remaining length first. */
typedef struct rd {
    const uint8_t *base;
    size_t size;
    size_t pos;
    char *err;
    size_t errlen;
} rd_t;

static int rd_fail(rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_fail(rd_t *r, const char *fmt, ...) {
    if (r->err && r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, r->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int rd_need(rd_t *r, size_t n, const char *what) {
    if (r->size - r->pos < n)
        return rd_fail(r, "truncated at offset %zu reading %s (need %zu bytes, %zu left)", r->pos,
                       what, n, r->size - r->pos);
    return 0;
}

static int rd_u32(rd_t *r, uint32_t *v, const char *what) {
    if (rd_need(r, 4, what)) return -1;
    memcpy(v, r->base + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd_t *r, uint64_t *v, const char *what) {
    if (rd_need(r, 8, what)) return -1;
    memcpy(v, r->base + r->pos, 8);
    r->pos += 8;
    return 0;
}

static int rd_str(rd_t *r, gguf_str_t *s, const char *what) {
    size_t at = r->pos;
    uint64_t len;
    if (rd_u64(r, &len, what)) return -1;
    if (len > r->size - r->pos)
        return rd_fail(r, "%s at offset %zu: string length %llu runs past the end of the file",
                       what, at, (unsigned long long)len);
    s->ptr = (const char *)r->base + r->pos;
    s->len = len;
    r->pos += (size_t)len;
    return 0;
}

/* Size of a fixed-size value type, 0 for STRING/ARRAY, -1 for unknown. */
static int vtype_size(uint32_t t) {
    switch (t) {
    case GGUF_U8:
    case GGUF_I8:
    case GGUF_BOOL:
        return 1;
    case GGUF_U16:
    case GGUF_I16:
        return 2;
    case GGUF_U32:
    case GGUF_I32:
    case GGUF_F32:
        return 4;
    case GGUF_U64:
    case GGUF_I64:
    case GGUF_F64:
        return 8;
    case GGUF_STRING:
    case GGUF_ARRAY:
        return 0;
    default:
        return -1;
    }
}

/* Widen a scalar at p of type t into kv->num. */
static void widen(gguf_kv_t *kv, uint32_t t, const uint8_t *p) {
    switch (t) {
    case GGUF_U8:
    case GGUF_BOOL:
        kv->num.u = p[0];
        break;
    case GGUF_I8:
        kv->num.i = (int8_t)p[0];
        break;
    case GGUF_U16: {
        uint16_t v;
        memcpy(&v, p, 2);
        kv->num.u = v;
        break;
    }
    case GGUF_I16: {
        int16_t v;
        memcpy(&v, p, 2);
        kv->num.i = v;
        break;
    }
    case GGUF_U32: {
        uint32_t v;
        memcpy(&v, p, 4);
        kv->num.u = v;
        break;
    }
    case GGUF_I32: {
        int32_t v;
        memcpy(&v, p, 4);
        kv->num.i = v;
        break;
    }
    case GGUF_F32: {
        float v;
        memcpy(&v, p, 4);
        kv->num.f = v;
        break;
    }
    case GGUF_U64:
        memcpy(&kv->num.u, p, 8);
        break;
    case GGUF_I64:
        memcpy(&kv->num.i, p, 8);
        break;
    case GGUF_F64:
        memcpy(&kv->num.f, p, 8);
        break;
    }
}

static int read_kv(rd_t *r, gguf_kv_t *kv, uint64_t idx) {
    if (rd_str(r, &kv->key, "metadata key")) return -1;
    size_t at = r->pos;
    if (rd_u32(r, &kv->type, "metadata value type")) return -1;
    int ks = (int)(kv->key.len > 64 ? 64 : kv->key.len);
    int sz = vtype_size(kv->type);
    if (sz < 0)
        return rd_fail(r, "metadata %llu '%.*s' at offset %zu: unknown value type %u",
                       (unsigned long long)idx, ks, kv->key.ptr, at, kv->type);
    kv->raw = r->base + r->pos;
    if (sz > 0) {
        if (rd_need(r, (size_t)sz, "metadata value")) return -1;
        widen(kv, kv->type, kv->raw);
        r->pos += (size_t)sz;
        return 0;
    }
    if (kv->type == GGUF_STRING) return rd_str(r, &kv->str, "metadata string value");
    /* array */
    at = r->pos;
    if (rd_u32(r, &kv->arr_type, "array element type")) return -1;
    if (kv->arr_type == GGUF_ARRAY)
        return rd_fail(r, "metadata '%.*s' at offset %zu: nested arrays are not supported", ks,
                       kv->key.ptr, at);
    int es = vtype_size(kv->arr_type);
    if (es < 0)
        return rd_fail(r, "metadata '%.*s' at offset %zu: unknown array element type %u", ks,
                       kv->key.ptr, at, kv->arr_type);
    if (rd_u64(r, &kv->arr_count, "array count")) return -1;
    kv->arr_data = r->base + r->pos;
    size_t left = r->size - r->pos;
    if (es > 0) {
        if (kv->arr_count > left / (size_t)es)
            return rd_fail(r,
                           "metadata '%.*s' at offset %zu: array of %llu elements runs past the "
                           "end of the file",
                           ks, kv->key.ptr, at, (unsigned long long)kv->arr_count);
        r->pos += (size_t)kv->arr_count * (size_t)es;
        return 0;
    }
    /* strings: each needs at least its 8-byte length */
    if (kv->arr_count > left / 8)
        return rd_fail(r,
                       "metadata '%.*s' at offset %zu: array of %llu strings runs past the end "
                       "of the file",
                       ks, kv->key.ptr, at, (unsigned long long)kv->arr_count);
    for (uint64_t i = 0; i < kv->arr_count; i++) {
        gguf_str_t s;
        if (rd_str(r, &s, "array string")) return -1;
    }
    return 0;
}

static int cmp_str(gguf_str_t a, gguf_str_t b) {
    size_t n = a.len < b.len ? (size_t)a.len : (size_t)b.len;
    int c = memcmp(a.ptr, b.ptr, n);
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_kv_key(const void *a, const void *b) {
    return cmp_str((*(const gguf_kv_t *const *)a)->key, (*(const gguf_kv_t *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return cmp_str((*(const gguf_tensor_t *const *)a)->name,
                   (*(const gguf_tensor_t *const *)b)->name);
}

/* Sort pointers to find duplicates in O(n log n): a hostile file may hold millions. */
static int check_dups(rd_t *r, void *items, size_t n, size_t stride, size_t name_off,
                      int (*cmp)(const void *, const void *), const char *what) {
    if (n < 2) return 0;
    const void **ptrs = malloc(n * sizeof *ptrs);
    if (!ptrs) return rd_fail(r, "out of memory checking %s names", what);
    for (size_t i = 0; i < n; i++) ptrs[i] = (const char *)items + i * stride;
    qsort(ptrs, n, sizeof *ptrs, cmp);
    for (size_t i = 1; i < n; i++) {
        if (!cmp(&ptrs[i - 1], &ptrs[i])) {
            const gguf_str_t *s = (const gguf_str_t *)((const char *)ptrs[i] + name_off);
            int ks = (int)(s->len > 64 ? 64 : s->len);
            free(ptrs);
            return rd_fail(r, "duplicate %s name '%.*s'", what, ks, s->ptr);
        }
    }
    free(ptrs);
    return 0;
}

static int read_tensor(rd_t *r, gguf_tensor_t *t, uint64_t idx) {
    size_t at = r->pos;
    if (rd_str(r, &t->name, "tensor name")) return -1;
    int ns = (int)(t->name.len > 64 ? 64 : t->name.len);
    if (rd_u32(r, &t->n_dims, "tensor n_dims")) return -1;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return rd_fail(r, "tensor %llu '%.*s' at offset %zu: %u dimensions (1..%d allowed)",
                       (unsigned long long)idx, ns, t->name.ptr, at, t->n_dims, GGUF_MAX_DIMS);
    uint64_t total = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if (rd_u64(r, &ne, "tensor dimension")) return -1;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return rd_fail(r, "tensor '%.*s' at offset %zu: dimension %u is %lld", ns, t->name.ptr,
                           at, d, (long long)ne);
        if (total > (uint64_t)INT64_MAX / ne)
            return rd_fail(r, "tensor '%.*s' at offset %zu: element count overflows", ns,
                           t->name.ptr, at);
        total *= ne;
        t->ne[d] = (int64_t)ne;
    }
    if (rd_u32(r, &t->type, "tensor type")) return -1;
    const type_info_t *ti = type_info((int)t->type);
    if (!ti)
        return rd_fail(r, "tensor '%.*s' at offset %zu: unknown tensor type %u", ns, t->name.ptr,
                       at, t->type);
    if (t->ne[0] % ti->elems)
        return rd_fail(r,
                       "tensor '%.*s': row length %lld is not a multiple of the %s block size %d",
                       ns, t->name.ptr, (long long)t->ne[0], ti->name, ti->elems);
    if (rd_u64(r, &t->offset, "tensor offset")) return -1;
    uint64_t blocks = total / (uint64_t)ti->elems;
    if (blocks > (uint64_t)SIZE_MAX / (uint64_t)ti->bytes)
        return rd_fail(r, "tensor '%.*s': byte size overflows", ns, t->name.ptr);
    t->size = (size_t)(blocks * (uint64_t)ti->bytes);
    return 0;
}

int gguf_parse(const void *data, size_t size, gguf_file_t *f, char *err, size_t errlen) {
    rd_t r = {.base = data, .size = size, .err = err, .errlen = errlen};
    memset(f, 0, sizeof *f);
    f->base = data;
    f->size = size;
    if (err && errlen) err[0] = 0;

    uint32_t magic;
    if (!data && size) return rd_fail(&r, "no data");
    if (rd_u32(&r, &magic, "magic")) return -1;
    if (magic != GGUF_MAGIC) return rd_fail(&r, "bad magic at offset 0: not a GGUF file");
    if (rd_u32(&r, &f->version, "version")) goto fail;
    if (f->version == 1) {
        rd_fail(&r, "GGUF version 1 is not supported (re-convert the model to v2 or v3)");
        goto fail;
    }
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0 && f->version)
            rd_fail(&r, "GGUF version 0x%08x at offset 4: big-endian files are not supported",
                    f->version);
        else
            rd_fail(&r, "unsupported GGUF version %u at offset 4 (2 and 3 are supported)",
                    f->version);
        goto fail;
    }
    if (rd_u64(&r, &f->n_tensors, "tensor count") || rd_u64(&r, &f->n_kv, "metadata count"))
        goto fail;
    /* A kv is at least 8+4+1 bytes and a tensor info at least 8+4+8+4+8: reject counts the
     * file cannot hold before allocating for them. */
    size_t left = size - r.pos;
    if (f->n_kv > left / 13) {
        rd_fail(&r, "metadata count %llu at offset 16 is larger than the file can hold",
                (unsigned long long)f->n_kv);
        goto fail;
    }
    if (f->n_tensors > left / 32) {
        rd_fail(&r, "tensor count %llu at offset 8 is larger than the file can hold",
                (unsigned long long)f->n_tensors);
        goto fail;
    }
    f->kv = calloc(f->n_kv ? (size_t)f->n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(f->n_tensors ? (size_t)f->n_tensors : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors) {
        rd_fail(&r, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (read_kv(&r, &f->kv[i], i)) goto fail;
    if (check_dups(&r, f->kv, (size_t)f->n_kv, sizeof *f->kv, offsetof(gguf_kv_t, key), cmp_kv_key,
                   "metadata key"))
        goto fail;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv_t *al = gguf_find(f, "general.alignment");
    if (al) {
        if (al->type != GGUF_U32 || al->num.u == 0 || (al->num.u & (al->num.u - 1))) {
            rd_fail(&r, "general.alignment must be a u32 power of two");
            goto fail;
        }
        f->alignment = (uint32_t)al->num.u;
    }

    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (read_tensor(&r, &f->tensors[i], i)) goto fail;
    if (check_dups(&r, f->tensors, (size_t)f->n_tensors, sizeof *f->tensors,
                   offsetof(gguf_tensor_t, name), cmp_tensor_name, "tensor"))
        goto fail;

    uint64_t data_off = ((uint64_t)r.pos + f->alignment - 1) / f->alignment * f->alignment;
    f->data_offset = data_off;
    if (f->n_tensors && data_off > size) {
        rd_fail(&r, "data section at offset %llu starts past the end of the file (%zu bytes)",
                (unsigned long long)data_off, size);
        goto fail;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor_t *t = &f->tensors[i];
        int ns = (int)(t->name.len > 64 ? 64 : t->name.len);
        if (t->offset % f->alignment) {
            rd_fail(&r, "tensor '%.*s': data offset %llu is not a multiple of the alignment %u", ns,
                    t->name.ptr, (unsigned long long)t->offset, f->alignment);
            goto fail;
        }
        uint64_t avail = size - data_off;
        if (t->offset > avail || t->size > avail - t->offset) {
            rd_fail(&r,
                    "tensor '%.*s': data [%llu, +%zu) lies outside the file (data section "
                    "at %llu, file %zu bytes)",
                    ns, t->name.ptr, (unsigned long long)t->offset, t->size,
                    (unsigned long long)data_off, size);
            goto fail;
        }
        t->data = f->base + data_off + t->offset;
    }
    return 0;
fail:
    free(f->kv);
    free(f->tensors);
    f->kv = NULL;
    f->tensors = NULL;
    f->n_kv = f->n_tensors = 0;
    return -1;
}

int gguf_open(const char *path, gguf_file_t *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 8) {
        snprintf(err, errlen, "%s: not a regular file of at least 8 bytes", path);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return -1;
    }
    char e[256];
    if (gguf_parse(p, size, f, e, sizeof e)) {
        snprintf(err, errlen, "%s: %s", path, e);
        munmap(p, size);
        memset(f, 0, sizeof *f);
        return -1;
    }
    f->mapped = 1;
    return 0;
}

int gguf_copy_to_memory(gguf_file_t *f) {
    if (!f->mapped) return 0;
    size_t n = f->size;
    /* MAP_POPULATE: the pages are backed in one pass inside the kernel instead of one
     * fault each during the copy (Mistral 7B here: 21 s -> 9 s, 1.1 million pages) */
    void *a = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (a == MAP_FAILED) return -errno;
    memcpy(a, f->base, n);
    /* read-only like the file mapping, then moved over it (which unmaps the file) */
    if (mprotect(a, n, PROT_READ) ||
        mremap(a, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)f->base) == MAP_FAILED) {
        int e = errno;
        munmap(a, n);
        return -e;
    }
    return 0;
}

void gguf_close(gguf_file_t *f) {
    if (!f) return;
    free(f->kv);
    free(f->tensors);
    if (f->mapped && f->base) munmap((void *)f->base, f->size);
    memset(f, 0, sizeof *f);
}

int gguf_str_eq(gguf_str_t s, const char *z) {
    size_t n = strlen(z);
    return s.len == n && memcmp(s.ptr, z, n) == 0;
}

char *gguf_str_copy(gguf_str_t s, char *dst, size_t cap) {
    if (!cap) return dst;
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = 0;
    return dst;
}

const gguf_kv_t *gguf_find(const gguf_file_t *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor_t *gguf_find_tensor(const gguf_file_t *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static int is_signed(uint32_t t) {
    return t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64;
}
static int is_unsigned(uint32_t t) {
    return t == GGUF_U8 || t == GGUF_U16 || t == GGUF_U32 || t == GGUF_U64;
}

int gguf_get_u32(const gguf_file_t *f, const char *key, uint32_t *out) {
    const gguf_kv_t *kv = gguf_find(f, key);
    if (!kv) return -1;
    if (is_unsigned(kv->type) && kv->num.u <= UINT32_MAX) {
        *out = (uint32_t)kv->num.u;
        return 0;
    }
    if (is_signed(kv->type) && kv->num.i >= 0 && kv->num.i <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)kv->num.i;
        return 0;
    }
    return -1;
}

int gguf_get_f32(const gguf_file_t *f, const char *key, float *out) {
    const gguf_kv_t *kv = gguf_find(f, key);
    if (!kv || (kv->type != GGUF_F32 && kv->type != GGUF_F64)) return -1;
    *out = (float)kv->num.f;
    return 0;
}

int gguf_get_str(const gguf_file_t *f, const char *key, gguf_str_t *out) {
    const gguf_kv_t *kv = gguf_find(f, key);
    if (!kv || kv->type != GGUF_STRING) return -1;
    *out = kv->str;
    return 0;
}

int gguf_get_bool(const gguf_file_t *f, const char *key, int *out) {
    const gguf_kv_t *kv = gguf_find(f, key);
    if (!kv || kv->type != GGUF_BOOL) return -1;
    *out = kv->num.u != 0;
    return 0;
}

/* String arrays have variable-length elements: this walks from the start, O(i). Loops over
 * all elements should use gguf_arr_str_next. */
int gguf_arr_str(const gguf_kv_t *kv, uint64_t i, gguf_str_t *out) {
    if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING || i >= kv->arr_count)
        return -1;
    const uint8_t *cur = NULL;
    for (uint64_t k = 0; k <= i; k++) gguf_arr_str_next(kv, &cur, out);
    return 0;
}

int gguf_arr_str_next(const gguf_kv_t *kv, const uint8_t **cur, gguf_str_t *out) {
    if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING) return -1;
    const uint8_t *p = *cur ? *cur : kv->arr_data;
    uint64_t len;
    memcpy(&len, p, 8); /* validated by gguf_parse */
    out->ptr = (const char *)p + 8;
    out->len = len;
    *cur = p + 8 + len;
    return 0;
}

int gguf_arr_f32(const gguf_kv_t *kv, uint64_t i, float *out) {
    if (!kv || kv->type != GGUF_ARRAY || i >= kv->arr_count) return -1;
    if (kv->arr_type == GGUF_F32) {
        memcpy(out, kv->arr_data + i * 4, 4);
        return 0;
    }
    if (kv->arr_type == GGUF_F64) {
        double d;
        memcpy(&d, kv->arr_data + i * 8, 8);
        *out = (float)d;
        return 0;
    }
    return -1;
}

int gguf_arr_i32(const gguf_kv_t *kv, uint64_t i, int32_t *out) {
    if (!kv || kv->type != GGUF_ARRAY || i >= kv->arr_count) return -1;
    int es = vtype_size(kv->arr_type);
    if (!(is_signed(kv->arr_type) || is_unsigned(kv->arr_type))) return -1;
    gguf_kv_t tmp;
    widen(&tmp, kv->arr_type, kv->arr_data + i * (uint64_t)es);
    if (is_signed(kv->arr_type)) {
        if (tmp.num.i < INT32_MIN || tmp.num.i > INT32_MAX) return -1;
        *out = (int32_t)tmp.num.i;
    } else {
        if (tmp.num.u > INT32_MAX) return -1;
        *out = (int32_t)tmp.num.u;
    }
    return 0;
}

size_t gguf_kv_value_len(const gguf_kv_t *kv) {
    int sz = vtype_size(kv->type);
    if (sz > 0) return (size_t)sz;
    if (kv->type == GGUF_STRING) return 8 + (size_t)kv->str.len;
    int es = vtype_size(kv->arr_type);
    size_t n = 4 + 8;
    if (es > 0) return n + (size_t)kv->arr_count * (size_t)es;
    const uint8_t *p = kv->arr_data;
    for (uint64_t i = 0; i < kv->arr_count; i++) {
        uint64_t len;
        memcpy(&len, p, 8);
        p += 8 + len;
    }
    return n + (size_t)(p - kv->arr_data);
}
