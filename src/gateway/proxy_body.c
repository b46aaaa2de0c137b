/* proxy_body.c — the upstream request body: the client's JSON copied member by member with
 * the model replaced and usage asked for in streams. */
#include "gateway/proxy_body.h"

#include <errno.h>

int proxy_rewrite_body(const json_doc_t *d, const char *upstream_model, int add_usage, buf_t *out) {
    if (d->ntoks == 0 || d->toks[0].type != JSON_OBJECT) return -EINVAL;
    const json_tok_t *t = d->toks;
    int rc = buf_append(out, "{", 1), saw_so = 0;
    uint32_t i = 1;
    for (uint32_t k = 0; k < t[0].size; k++) {
        uint32_t key = i, val = i + 1;
        i = t[val].next;
        if (k) rc |= buf_append(out, ",", 1);
        rc |= json_append_src(out, d, (int)key);
        rc |= buf_append(out, ":", 1);
        if (upstream_model && json_str_eq(d, (int)key, "model")) {
            json_w_t jw;
            json_w_init(&jw, out);
            json_w_str(&jw, upstream_model);
        } else if (add_usage && json_str_eq(d, (int)key, "stream_options")) {
            saw_so = 1;
            rc |= buf_append(out, "{", 1);
            if (t[val].type == JSON_OBJECT) {
                uint32_t j = val + 1;
                for (uint32_t m = 0; m < t[val].size; m++) {
                    uint32_t sk = j, sv = j + 1;
                    j = t[sv].next;
                    if (json_str_eq(d, (int)sk, "include_usage")) continue;
                    rc |= json_append_src(out, d, (int)sk);
                    rc |= buf_append(out, ":", 1);
                    rc |= json_append_src(out, d, (int)sv);
                    rc |= buf_append(out, ",", 1);
                }
            }
            rc |= buf_appends(out, "\"include_usage\":true}");
        } else {
            rc |= json_append_src(out, d, (int)val);
        }
    }
    if (add_usage && !saw_so)
        rc |= buf_appends(out, t[0].size ? ",\"stream_options\":{\"include_usage\":true}"
                                         : "\"stream_options\":{\"include_usage\":true}");
    rc |= buf_append(out, "}", 1);
    return rc ? -ENOMEM : 0;
}
