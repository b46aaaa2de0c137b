/* tokcount.c — exact prompt counts with the shared tokenizer and chat templates; estimates. */
#include "gateway/tokcount.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tokcount_load(const char *path, const char *template_name, tokcount_t **out, char *err,
                  size_t errlen) {
    *out = NULL;
    tokcount_t *tc = calloc(1, sizeof *tc);
    if (!tc || !(tc->path = strdup(path))) {
        free(tc);
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    gguf_file_t f;
    char e[256];
    int rc = gguf_open(path, &f, e, sizeof e);
    if (rc) {
        snprintf(err, errlen, "tokenizer %s: %s", path, e);
        goto err;
    }
    rc = tok_load(&f, &tc->tok, e, sizeof e);
    if (rc == 0) {
        tc->tmpl =
            template_name ? chat_template_by_name(template_name) : chat_template_for_gguf(&f);
        if (tc->tmpl == CHAT_TMPL_UNKNOWN) {
            snprintf(err, errlen,
                     template_name ? "tokenizer %s: unknown chat template \"%s\" "
                                     "(llama2, mistral, phi3, chatml)"
                                   : "tokenizer %s: the file names no chat template "
                                     "we know%s; set chat_template",
                     path, template_name ? template_name : "");
            rc = -EINVAL;
        }
    } else {
        snprintf(err, errlen, "tokenizer %s: %s", path, e);
    }
    gguf_close(&f);
    if (rc) goto err;
    *out = tc;
    return 0;
err:
    tokcount_free(tc);
    return rc;
}

void tokcount_free(tokcount_t *tc) {
    if (!tc) return;
    tok_free(tc->tok);
    free(tc->path);
    free(tc);
}

tokcount_work_t *tokcount_work_new(void) {
    tokcount_work_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    if (!(w->tw = tok_work_new())) {
        free(w);
        return NULL;
    }
    buf_init(&w->text);
    buf_init(&w->prompt);
    return w;
}

void tokcount_work_free(tokcount_work_t *w) {
    if (!w) return;
    tok_work_free(w->tw);
    buf_free(&w->text);
    buf_free(&w->prompt);
    free(w);
}

int tokcount_chat(const tokcount_t *tc, tokcount_work_t *w, const chat_msg_t *msgs, size_t n,
                  int32_t *ids, int cap) {
    buf_reset(&w->prompt);
    int rc = chat_apply(tc->tmpl, msgs, n, 1, &w->prompt);
    if (rc) return rc;
    return tok_encode_w(tc->tok, w->tw, w->prompt.data ? w->prompt.data : "", w->prompt.len, 1, 1,
                        ids, ids ? cap : 0);
}

int tokcount_text(const tokcount_t *tc, tokcount_work_t *w, const char *text, size_t len) {
    return tok_encode_w(tc->tok, w->tw, text, len, 1, 1, NULL, 0);
}

static int64_t est_text(size_t bytes) {
    return (int64_t)((bytes + TOKCOUNT_EST_BYTES_PER_TOKEN - 1) / TOKCOUNT_EST_BYTES_PER_TOKEN);
}

static const char *norm_role(const json_doc_t *d, int t) {
    if (json_str_eq(d, t, "system") || json_str_eq(d, t, "developer")) return "system";
    if (json_str_eq(d, t, "user")) return "user";
    if (json_str_eq(d, t, "assistant")) return "assistant";
    return NULL;
}

/* Gather the messages' roles and contents into w (contents unescaped, NUL-terminated). */
static int gather(const json_doc_t *d, int arr, tokcount_work_t *w, size_t *n_out) {
    size_t n = d->toks[arr].size;
    if (n == 0 || n > TOKCOUNT_MAX_MSGS) return -EINVAL;
    buf_reset(&w->text);
    for (size_t i = 0; i < n; i++) {
        int m = json_arr_get(d, arr, i);
        if (d->toks[m].type != JSON_OBJECT) return -EINVAL;
        int role = json_obj_get(d, m, "role"), c = json_obj_get(d, m, "content");
        const char *rn = role >= 0 ? norm_role(d, role) : NULL;
        if (!rn) return -EINVAL;
        w->msgs[i].role = rn;
        w->offs[i] = w->text.len;
        if (c >= 0 && d->toks[c].type == JSON_STRING) {
            if (json_str_unescape(d, c, &w->text)) return -ENOMEM;
        } else if (c >= 0 && d->toks[c].type == JSON_ARRAY) {
            for (size_t k = 0; k < d->toks[c].size; k++) {
                int part = json_arr_get(d, c, k);
                int tx = d->toks[part].type == JSON_OBJECT ? json_obj_get(d, part, "text") : -1;
                if (tx < 0 || d->toks[tx].type != JSON_STRING) return -EINVAL;
                if ((k && buf_append(&w->text, "\n", 1)) || json_str_unescape(d, tx, &w->text))
                    return -ENOMEM;
            }
        } else if (!(c < 0 || d->toks[c].type == JSON_NULL)) {
            return -EINVAL;
        }
        if (buf_append(&w->text, "", 1)) return -ENOMEM;
    }
    /* The buffer may have moved while growing: point at it only now. */
    for (size_t i = 0; i < n; i++) w->msgs[i].content = w->text.data + w->offs[i];
    *n_out = n;
    return 0;
}

int64_t tokcount_request(const tokcount_t *tc, tokcount_work_t *w, const json_doc_t *d, int is_chat,
                         int *exact) {
    *exact = 0;
    if (is_chat) {
        int arr = json_obj_get(d, 0, "messages");
        if (arr < 0 || d->toks[arr].type != JSON_ARRAY) return -EINVAL;
        size_t n;
        int rc = gather(d, arr, w, &n);
        if (rc) return rc;
        if (tc) {
            int c = tokcount_chat(tc, w, w->msgs, n, NULL, 0);
            if (c >= 0) {
                *exact = 1;
                return c;
            }
            if (c == -ENOMEM) return c;
        }
        int64_t e = 1 + TOKCOUNT_EST_PER_CHAT;
        for (size_t i = 0; i < n; i++)
            e += TOKCOUNT_EST_PER_MESSAGE + est_text(strlen(w->msgs[i].content));
        return e;
    }
    int p = json_obj_get(d, 0, "prompt");
    if (p < 0) return -EINVAL;
    int64_t total = 0;
    /* A string, an array of strings (one prompt each), or an array of token ids. */
    size_t np = d->toks[p].type == JSON_ARRAY ? d->toks[p].size : 1;
    int ids_only = d->toks[p].type == JSON_ARRAY && np > 0;
    for (size_t i = 0; ids_only && i < np; i++)
        ids_only = d->toks[json_arr_get(d, p, i)].type == JSON_NUMBER;
    if (ids_only) {
        *exact = 1;
        return (int64_t)np;
    }
    int all_exact = tc != NULL;
    for (size_t i = 0; i < np; i++) {
        int s = d->toks[p].type == JSON_ARRAY ? json_arr_get(d, p, i) : p;
        if (d->toks[s].type != JSON_STRING) return -EINVAL;
        buf_reset(&w->text);
        if (json_str_unescape(d, s, &w->text)) return -ENOMEM;
        const char *t = w->text.data ? w->text.data : "";
        if (tc) {
            int c = tokcount_text(tc, w, t, w->text.len);
            if (c < 0) return c;
            total += c;
        } else {
            total += 1 + est_text(w->text.len);
        }
    }
    *exact = all_exact;
    return total;
}
