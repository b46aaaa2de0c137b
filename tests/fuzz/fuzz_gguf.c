/* fuzz_gguf.c — libFuzzer target: gguf_parse on arbitrary bytes; every accepted file is walked in
 * full. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* exactly sized heap copy so ASan sees any over-read */
    uint8_t *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    gguf_file_t f;
    char err[256];
    if (gguf_parse(p, size, &f, err, sizeof err) == 0) {
        volatile uint64_t sink = 0;
        for (uint64_t i = 0; i < f.n_kv; i++) {
            const gguf_kv_t *kv = &f.kv[i];
            if (kv->key.len) sink += (uint8_t)kv->key.ptr[kv->key.len - 1];
            if (kv->type == GGUF_STRING && kv->str.len)
                sink += (uint8_t)kv->str.ptr[kv->str.len - 1];
            if (kv->type != GGUF_ARRAY) continue;
            const uint8_t *cur = NULL;
            for (uint64_t k = 0; k < kv->arr_count; k++) {
                gguf_str_t s;
                float fl;
                int32_t iv;
                if (gguf_arr_str_next(kv, &cur, &s) == 0 && s.len)
                    sink += (uint8_t)s.ptr[s.len - 1];
                if (gguf_arr_f32(kv, k, &fl) == 0) sink += (uint64_t)(fl == fl);
                if (gguf_arr_i32(kv, k, &iv) == 0) sink += (uint64_t)iv;
            }
            gguf_str_t s;
            if (kv->arr_count) gguf_arr_str(kv, kv->arr_count - 1, &s);
        }
        for (uint64_t i = 0; i < f.n_tensors; i++) {
            const gguf_tensor_t *t = &f.tensors[i];
            const uint8_t *d = t->data;
            if (t->size) sink += d[0] + d[t->size - 1];
            if (ggml_row_bytes((int)t->type, t->ne[0]) == 0) abort(); /* validated */
        }
        uint32_t u;
        gguf_get_u32(&f, "general.alignment", &u);
        /* what we accepted, our writer reproduces and we accept again */
        gguf_writer_t *w = gguf_writer_new();
        int ok = 1;
        for (uint64_t i = 0; i < f.n_kv && ok; i++) ok = gguf_w_copy_kv(w, &f.kv[i]) == 0;
        for (uint64_t i = 0; i < f.n_tensors && ok; i++) {
            const gguf_tensor_t *t = &f.tensors[i];
            char name[256];
            if (t->name.len >= sizeof name || memchr(t->name.ptr, 0, t->name.len)) {
                ok = 0;
                break;
            }
            gguf_str_copy(t->name, name, sizeof name);
            ok = gguf_w_tensor(w, name, (int)t->type, t->n_dims, t->ne, t->data, t->size) == 0;
        }
        void *mem;
        size_t len;
        if (ok && gguf_w_to_mem(w, &mem, &len) == 0) {
            gguf_file_t g;
            if (gguf_parse(mem, len, &g, err, sizeof err) != 0) abort();
            if (g.n_kv != f.n_kv || g.n_tensors != f.n_tensors) abort();
            gguf_close(&g);
            free(mem);
        }
        gguf_writer_free(w);
        (void)sink;
        gguf_close(&f);
    } else if (!err[0]) {
        abort(); /* every rejection says why */
    }
    free(p);
    return 0;
}
