/* fuzz_json.c — libFuzzer target: parse, walk every token, unescape and re-encode strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

#define NTOKS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_tok_t toks[NTOKS];
    json_doc_t d;
    size_t err = 0;
    int n = json_parse((const char *)data, size, toks, NTOKS, 64, &d, &err);
    if (n < 0) {
        if (n == JSON_ERR_SYNTAX && err > size)
            abort(); /* err_pos must point into (or just past) the input */
        return 0;
    }
    if (n == 0 || (size_t)n != d.ntoks || toks[0].next != (uint32_t)n)
        abort();
    buf_t b, w;
    buf_init(&b);
    buf_init(&w);
    for (int i = 0; i < n; i++) {
        const json_tok_t *t = &toks[i];
        if (t->next <= (uint32_t)i || t->next > (uint32_t)n || t->end > size ||
            t->start > t->end)
            abort();
        switch (t->type) {
        case JSON_STRING: {
            buf_reset(&b);
            if (json_str_unescape(&d, i, &b))
                abort();
            if (!memchr(b.data, 0, b.len) && !json_str_eq(&d, i, b.data))
                abort();
            /* the unescaped text is valid UTF-8, so re-encoding and re-parsing gives it back */
            json_w_t jw;
            buf_reset(&w);
            json_w_init(&jw, &w);
            json_w_strn(&jw, b.data, b.len);
            json_tok_t t2[1];
            json_doc_t d2;
            buf_t b2;
            buf_init(&b2);
            if (json_parse(w.data, w.len, t2, 1, 0, &d2, NULL) != 1 ||
                json_str_unescape(&d2, 0, &b2) || b2.len != b.len ||
                memcmp(b2.data, b.data, b.len))
                abort();
            buf_free(&b2);
            break;
        }
        case JSON_NUMBER: {
            double v;
            int64_t iv;
            (void)json_get_double(&d, i, &v);
            (void)json_get_i64(&d, i, &iv);
            break;
        }
        case JSON_OBJECT: {
            /* every key is found again by json_obj_get (its first occurrence, if repeated) */
            uint32_t k = (uint32_t)i + 1;
            for (uint32_t m = 0; m < t->size; m++) {
                if (toks[k].type != JSON_STRING)
                    abort();
                buf_reset(&b);
                if (json_str_unescape(&d, (int)k, &b))
                    abort();
                if (!memchr(b.data, 0, b.len)) {
                    int v = json_obj_get(&d, i, b.data);
                    if (v <= i || v > (int)k + 1 || !json_str_eq(&d, v - 1, b.data))
                        abort();
                }
                k = toks[k + 1].next;
            }
            break;
        }
        case JSON_ARRAY:
            if (t->size && json_arr_get(&d, i, t->size - 1) < 0)
                abort();
            if (json_arr_get(&d, i, t->size) != -1)
                abort();
            break;
        default:
            break;
        }
    }
    buf_free(&b);
    buf_free(&w);
    return 0;
}
