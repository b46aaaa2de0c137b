/* gguf.h — GGUF v2/v3 model files: a bounds-checked reader over mmap, and a writer. */
#ifndef TOLLGATE_MODEL_GGUF_H
#define TOLLGATE_MODEL_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Tensor element types, numbered as in the GGUF format. */
typedef enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_COUNT = 40,
} ggml_type_t;

/* Elements per block and bytes per block of a type; 0 for types the project
 * does not know. Name like "Q4_K"; "?" when unknown. */
int ggml_type_block_elems(int type);
int ggml_type_block_bytes(int type);
const char *ggml_type_name(int type);
/* Bytes of a row of n elements (n a multiple of the block size), 0 if unknown. */
size_t ggml_row_bytes(int type, int64_t n);

/* Metadata value types, numbered as in the format. */
typedef enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
    GGUF_I64 = 11, GGUF_F64 = 12,
} gguf_vtype_t;

typedef struct gguf_str {
    const char *ptr; /* into the file; NOT NUL-terminated */
    uint64_t len;
} gguf_str_t;

typedef struct gguf_kv {
    gguf_str_t key;
    uint32_t type;      /* gguf_vtype_t */
    const uint8_t *raw; /* the value's bytes in the file (after the type) */
    /* for scalars, the value widened: */
    union { uint64_t u; int64_t i; double f; } num;
    gguf_str_t str;       /* GGUF_STRING */
    uint32_t arr_type;    /* GGUF_ARRAY: element type */
    uint64_t arr_count;   /* GGUF_ARRAY: element count */
    const uint8_t *arr_data; /* GGUF_ARRAY: first element; strings are (u64 len, bytes) each */
} gguf_kv_t;

#define GGUF_MAX_DIMS 4
typedef struct gguf_tensor {
    gguf_str_t name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length (contiguous); unused dims are 1 */
    uint32_t type;             /* ggml_type_t */
    uint64_t offset;           /* from the start of the data section */
    const void *data;          /* into the mapping, bounds-checked */
    size_t size;               /* bytes */
} gguf_tensor_t;

typedef struct gguf_file {
    const uint8_t *base; /* whole file (mmap or caller's memory) */
    size_t size;
    int mapped;          /* base is our mmap: gguf_close unmaps */
    uint32_t version;
    uint64_t n_kv;
    gguf_kv_t *kv;
    uint64_t n_tensors;
    gguf_tensor_t *tensors;
    uint32_t alignment;
    uint64_t data_offset;
} gguf_file_t;

/* Open and validate a file (mmap, read-only). 0, or -1 with a message in err
 * naming the problem (truncated at offset N, bad magic, unsupported version,
 * tensor X out of bounds, unknown tensor type T...). */
int gguf_open(const char *path, gguf_file_t *f, char *err, size_t errlen);
/* Same over memory the caller keeps alive (tests, fuzzing). */
int gguf_parse(const void *data, size_t size, gguf_file_t *f, char *err, size_t errlen);
void gguf_close(gguf_file_t *f);
/* Replace an opened file's mapping with a private anonymous copy at the same address, so
 * every pointer into it stays valid: the bytes then live in the process's own memory
 * rather than in the page cache (on some VMs reading the page cache through the mapping
 * is several times slower; docs/engine.md "Decode and the page cache"). Costs the copy and,
 * while it runs, the file's size twice. 0 (also for a file not mapped by gguf_open), or a
 * negative errno with the mapping unchanged. */
int gguf_copy_to_memory(gguf_file_t *f);

const gguf_kv_t *gguf_find(const gguf_file_t *f, const char *key);
/* Typed getters: 0 on success, -1 absent or wrong type (integers of any width convert
 * when the value fits). */
int gguf_get_u32(const gguf_file_t *f, const char *key, uint32_t *out);
int gguf_get_f32(const gguf_file_t *f, const char *key, float *out);
int gguf_get_str(const gguf_file_t *f, const char *key, gguf_str_t *out);
int gguf_get_bool(const gguf_file_t *f, const char *key, int *out);
/* Array access: element count and typed element reads, bounds-checked. */
int gguf_arr_str(const gguf_kv_t *kv, uint64_t i, gguf_str_t *out);
int gguf_arr_f32(const gguf_kv_t *kv, uint64_t i, float *out);
int gguf_arr_i32(const gguf_kv_t *kv, uint64_t i, int32_t *out);
/* Sequential walk of a string array in O(1) per element (gguf_arr_str is O(i)): set *cur to
 * NULL, then call once per element, at most arr_count times. 0, or -1 when not a string array. */
int gguf_arr_str_next(const gguf_kv_t *kv, const uint8_t **cur, gguf_str_t *out);
const gguf_tensor_t *gguf_find_tensor(const gguf_file_t *f, const char *name);
/* NUL-terminated copy of a gguf_str into dst (truncating); returns dst. */
char *gguf_str_copy(gguf_str_t s, char *dst, size_t cap);
int gguf_str_eq(gguf_str_t s, const char *z);

/* Bytes of a parsed kv's value after its type field (what gguf_w_copy_kv copies). */
size_t gguf_kv_value_len(const gguf_kv_t *kv);

/* Writer (gguf_write.c): collect metadata and tensors, then write a v3 file. */
typedef struct gguf_writer gguf_writer_t;
gguf_writer_t *gguf_writer_new(void);
void gguf_writer_free(gguf_writer_t *w);
int gguf_w_u32(gguf_writer_t *w, const char *key, uint32_t v);
int gguf_w_i32(gguf_writer_t *w, const char *key, int32_t v);
int gguf_w_f32(gguf_writer_t *w, const char *key, float v);
int gguf_w_bool(gguf_writer_t *w, const char *key, int v);
int gguf_w_str(gguf_writer_t *w, const char *key, const char *v);
int gguf_w_arr_str(gguf_writer_t *w, const char *key, const char *const *v, size_t n);
int gguf_w_arr_f32(gguf_writer_t *w, const char *key, const float *v, size_t n);
int gguf_w_arr_i32(gguf_writer_t *w, const char *key, const int32_t *v, size_t n);
/* Copy a kv verbatim from another file (quantizer). */
int gguf_w_copy_kv(gguf_writer_t *w, const gguf_kv_t *kv);
/* The data is copied. ne as in gguf_tensor_t. */
int gguf_w_tensor(gguf_writer_t *w, const char *name, int type, uint32_t n_dims,
                  const int64_t *ne, const void *data, size_t size);
int gguf_w_write(gguf_writer_t *w, const char *path, char *err, size_t errlen);
/* The same file in memory: *out is malloc'd (caller frees). 0 or -ENOMEM. */
int gguf_w_to_mem(gguf_writer_t *w, void **out, size_t *len);

#endif
