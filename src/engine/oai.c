/* oai.c — OpenAI request validation and response shapes for /v1/chat/completions and /v1/completions. */
#include "engine/oai.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void oai_request_init(oai_request_t *r) {
    memset(r, 0, sizeof *r);
    buf_init(&r->store);
    r->max_tokens = -1;
    r->temperature = 1.0f;
    r->top_p = 1.0f;
}

void oai_request_free(oai_request_t *r) {
    free(r->msgs);
    free(r->prompt_ids);
    buf_free(&r->store);
    r->msgs = NULL;
    r->prompt_ids = NULL;
}

#define FAIL(p, ...)                                                                      \
    do {                                                                                  \
        *param = (p);                                                                     \
        snprintf(err, errlen, __VA_ARGS__);                                               \
        return -EINVAL;                                                                   \
    } while (0)

static int type_of(const json_doc_t *d, int t) {
    return t < 0 ? 0 : d->toks[t].type;
}

/* Absent or null: the default applies. */
static int absent(const json_doc_t *d, int t) {
    return t < 0 || d->toks[t].type == JSON_NULL;
}

/* Store a string token (unescaped) in r->store; its offset in *off. */
static int store_str(oai_request_t *r, const json_doc_t *d, int t, size_t *off) {
    *off = r->store.len;
    if (json_str_unescape(d, t, &r->store)) return -ENOMEM;
    return buf_append(&r->store, "", 1) ? -ENOMEM : 0; /* keep the NUL: the next starts after */
}

static int get_bool(const json_doc_t *d, int root, const char *key, int *out, const char **param,
                    char *err, size_t errlen) {
    int t = json_obj_get(d, root, key);
    if (absent(d, t)) return 0;
    int b = json_get_bool(d, t);
    if (b < 0) FAIL(key, "'%s' must be a boolean", key);
    *out = b;
    return 0;
}

static int get_float(const json_doc_t *d, int root, const char *key, double lo, double hi,
                     float *out, const char **param, char *err, size_t errlen) {
    int t = json_obj_get(d, root, key);
    if (absent(d, t)) return 0;
    double v;
    if (type_of(d, t) != JSON_NUMBER || json_get_double(d, t, &v)) FAIL(key, "'%s' must be a number", key);
    if (v < lo || v > hi) FAIL(key, "'%s' must be between %g and %g, got %g", key, lo, hi, v);
    *out = (float)v;
    return 0;
}

static int get_int(const json_doc_t *d, int root, const char *key, int64_t lo, int64_t hi,
                   int64_t *out, int *given, const char **param, char *err, size_t errlen) {
    int t = json_obj_get(d, root, key);
    if (absent(d, t)) return 0;
    int64_t v;
    if (type_of(d, t) != JSON_NUMBER || json_get_i64(d, t, &v))
        FAIL(key, "'%s' must be an integer", key);
    if (v < lo || v > hi)
        FAIL(key, "'%s' must be between %lld and %lld, got %lld", key, (long long)lo,
             (long long)hi, (long long)v);
    *out = v;
    if (given) *given = 1;
    return 0;
}

static int parse_stop(const json_doc_t *d, int root, oai_request_t *r, size_t *offs,
                      const char **param, char *err, size_t errlen) {
    int t = json_obj_get(d, root, "stop");
    if (absent(d, t)) return 0;
    int one = type_of(d, t) == JSON_STRING;
    if (!one && type_of(d, t) != JSON_ARRAY) FAIL("stop", "'stop' must be a string or an array of strings");
    size_t n = one ? 1 : d->toks[t].size;
    for (size_t i = 0; i < n; i++) {
        int e = one ? t : json_arr_get(d, t, i);
        if (type_of(d, e) != JSON_STRING) FAIL("stop", "'stop' must be a string or an array of strings");
        if (d->toks[e].end == d->toks[e].start) continue; /* "" can never be found: ignore */
        if (r->n_stop == GEN_MAX_STOP) FAIL("stop", "at most %d stop strings are supported", GEN_MAX_STOP);
        if (store_str(r, d, e, &offs[r->n_stop])) return -ENOMEM;
        r->n_stop++;
    }
    return 0;
}

static const char *norm_role(const json_doc_t *d, int t) {
    if (json_str_eq(d, t, "system") || json_str_eq(d, t, "developer")) return "system";
    if (json_str_eq(d, t, "user")) return "user";
    if (json_str_eq(d, t, "assistant")) return "assistant";
    return NULL;
}

static int parse_messages(const json_doc_t *d, int root, oai_request_t *r, size_t **offs,
                          const char **param, char *err, size_t errlen) {
    int t = json_obj_get(d, root, "messages");
    if (t < 0) FAIL("messages", "'messages' is required");
    if (type_of(d, t) != JSON_ARRAY) FAIL("messages", "'messages' must be an array");
    size_t n = d->toks[t].size;
    if (n == 0) FAIL("messages", "'messages' must contain at least one message");
    r->msgs = calloc(n, sizeof *r->msgs);
    *offs = calloc(n, sizeof **offs);
    if (!r->msgs || !*offs) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int m = json_arr_get(d, t, i);
        if (type_of(d, m) != JSON_OBJECT) FAIL("messages", "messages[%zu] must be an object", i);
        int role = json_obj_get(d, m, "role");
        if (type_of(d, role) != JSON_STRING) FAIL("messages", "messages[%zu].role must be a string", i);
        const char *rn = norm_role(d, role);
        if (!rn) {
            buf_t tmp;
            buf_init(&tmp);
            json_str_unescape(d, role, &tmp);
            snprintf(err, errlen, "messages[%zu].role '%.40s' is not supported (system, user, assistant)",
                     i, tmp.data ? tmp.data : "");
            buf_free(&tmp);
            *param = "messages";
            return -EINVAL;
        }
        r->msgs[i].role = rn;
        int c = json_obj_get(d, m, "content");
        (*offs)[i] = r->store.len;
        if (type_of(d, c) == JSON_STRING) {
            if (json_str_unescape(d, c, &r->store)) return -ENOMEM;
        } else if (type_of(d, c) == JSON_ARRAY) {
            for (size_t k = 0; k < d->toks[c].size; k++) {
                int part = json_arr_get(d, c, k);
                int pt = json_obj_get(d, part, "type"), tx = json_obj_get(d, part, "text");
                if (type_of(d, part) != JSON_OBJECT || !json_str_eq(d, pt, "text") ||
                    type_of(d, tx) != JSON_STRING)
                    FAIL("messages", "messages[%zu].content[%zu]: only text parts are supported", i, k);
                if (k && buf_append(&r->store, "\n", 1)) return -ENOMEM;
                if (json_str_unescape(d, tx, &r->store)) return -ENOMEM;
            }
        } else if (!(absent(d, c) && rn[0] == 'a')) {
            FAIL("messages", "messages[%zu].content must be a string or an array of text parts", i);
        }
        if (buf_append(&r->store, "", 1)) return -ENOMEM;
    }
    r->n_msgs = n;
    return 0;
}

static int parse_prompt(const json_doc_t *d, int root, oai_request_t *r, size_t *off,
                        const char **param, char *err, size_t errlen) {
    int t = json_obj_get(d, root, "prompt");
    if (t < 0) FAIL("prompt", "'prompt' is required");
    if (type_of(d, t) == JSON_STRING) return store_str(r, d, t, off);
    if (type_of(d, t) != JSON_ARRAY || d->toks[t].size == 0)
        FAIL("prompt", "'prompt' must be a string, an array of one string, or an array of token ids");
    int e0 = json_arr_get(d, t, 0);
    if (d->toks[t].size == 1 && type_of(d, e0) == JSON_STRING) return store_str(r, d, e0, off);
    if (d->toks[t].size == 1 && type_of(d, e0) == JSON_ARRAY) t = e0; /* [[ids]] */
    else if (type_of(d, e0) != JSON_NUMBER)
        FAIL("prompt", "only one prompt per request is supported");
    size_t n = d->toks[t].size;
    if (n == 0) FAIL("prompt", "'prompt' must not be empty");
    r->prompt_ids = malloc(n * sizeof *r->prompt_ids);
    if (!r->prompt_ids) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        int e = json_arr_get(d, t, i);
        if (type_of(d, e) != JSON_NUMBER || json_get_i64(d, e, &v) || v < 0 || v > INT32_MAX)
            FAIL("prompt", "prompt[%zu] must be a token id", i);
        r->prompt_ids[i] = (int32_t)v;
    }
    r->n_prompt_ids = (int)n;
    *off = (size_t)-1;
    return 0;
}

int oai_parse(oai_kind_t kind, const json_doc_t *d, oai_request_t *r, char *err, size_t errlen,
              const char **param) {
    *param = NULL;
    r->kind = kind;
    if (type_of(d, 0) != JSON_OBJECT) FAIL(NULL, "the request body must be a JSON object");
    int rc;
    size_t stop_offs[GEN_MAX_STOP], prompt_off = (size_t)-1, *msg_offs = NULL;
#define TRY(x)                                                                            \
    do {                                                                                  \
        if ((rc = (x)) != 0) goto out;                                                    \
    } while (0)
    int t = json_obj_get(d, 0, "model");
    if (!absent(d, t) && type_of(d, t) != JSON_STRING) {
        *param = "model";
        snprintf(err, errlen, "'model' must be a string");
        rc = -EINVAL;
        goto out;
    }
    TRY(get_bool(d, 0, "stream", &r->stream, param, err, errlen));
    t = json_obj_get(d, 0, "stream_options");
    if (!absent(d, t)) {
        if (type_of(d, t) != JSON_OBJECT) {
            *param = "stream_options";
            snprintf(err, errlen, "'stream_options' must be an object");
            rc = -EINVAL;
            goto out;
        }
        TRY(get_bool(d, t, "include_usage", &r->include_usage, param, err, errlen));
    }
    int64_t v = 1;
    int given = 0;
    TRY(get_int(d, 0, "n", 1, 1 << 20, &v, NULL, param, err, errlen));
    if (v != 1) {
        *param = "n";
        snprintf(err, errlen, "only n = 1 is supported");
        rc = -EINVAL;
        goto out;
    }
    v = -1;
    TRY(get_int(d, 0, "max_tokens", 1, INT32_MAX, &v, &given, param, err, errlen));
    if (kind == OAI_CHAT)
        TRY(get_int(d, 0, "max_completion_tokens", 1, INT32_MAX, &v, &given, param, err, errlen));
    r->max_tokens = given ? (int)v : -1;
    TRY(get_float(d, 0, "temperature", 0.0, 2.0, &r->temperature, param, err, errlen));
    TRY(get_float(d, 0, "top_p", 0.0, 1.0, &r->top_p, param, err, errlen));
    TRY(get_float(d, 0, "min_p", 0.0, 1.0, &r->min_p, param, err, errlen));
    float ignored = 0;
    TRY(get_float(d, 0, "presence_penalty", -2.0, 2.0, &ignored, param, err, errlen));
    TRY(get_float(d, 0, "frequency_penalty", -2.0, 2.0, &ignored, param, err, errlen));
    v = 0;
    TRY(get_int(d, 0, "top_k", -1, INT32_MAX, &v, NULL, param, err, errlen));
    r->top_k = v < 0 ? 0 : (int)v;
    v = 0;
    TRY(get_int(d, 0, "seed", INT64_MIN, INT64_MAX, &v, &r->has_seed, param, err, errlen));
    r->seed = (uint64_t)v;
    TRY(parse_stop(d, 0, r, stop_offs, param, err, errlen));

    if (kind == OAI_CHAT) {
        TRY(get_bool(d, 0, "logprobs", &r->logprobs, param, err, errlen));
        v = 0;
        given = 0;
        TRY(get_int(d, 0, "top_logprobs", 0, SAMPLER_MAX_TOP, &v, &given, param, err, errlen));
        if (given && !r->logprobs) {
            *param = "top_logprobs";
            snprintf(err, errlen, "'top_logprobs' requires 'logprobs' to be true");
            rc = -EINVAL;
            goto out;
        }
        r->top_logprobs = (int)v;
        TRY(parse_messages(d, 0, r, &msg_offs, param, err, errlen));
    } else {
        v = 0;
        TRY(get_int(d, 0, "logprobs", 0, SAMPLER_MAX_TOP, &v, &r->logprobs, param, err, errlen));
        r->top_logprobs = (int)v;
        int echo = 0;
        TRY(get_bool(d, 0, "echo", &echo, param, err, errlen));
        if (echo) {
            *param = "echo";
            snprintf(err, errlen, "'echo' is not supported");
            rc = -EINVAL;
            goto out;
        }
        t = json_obj_get(d, 0, "suffix");
        if (!absent(d, t)) {
            *param = "suffix";
            snprintf(err, errlen, "'suffix' is not supported");
            rc = -EINVAL;
            goto out;
        }
        TRY(parse_prompt(d, 0, r, &prompt_off, param, err, errlen));
    }
    /* the store is complete: turn offsets into pointers */
    for (int i = 0; i < r->n_stop; i++) r->stop[i] = r->store.data + stop_offs[i];
    for (size_t i = 0; i < r->n_msgs; i++) r->msgs[i].content = r->store.data + msg_offs[i];
    if (prompt_off != (size_t)-1) r->prompt = r->store.data + prompt_off;
    rc = 0;
out:
    free(msg_offs);
#undef TRY
    return rc;
}

/* --- encoding --- */

static void w_piece(json_w_t *w, const tokenizer_t *tok, int32_t id) {
    size_t n;
    const char *p = tok_piece(tok, id, 0, &n);
    json_w_strn(w, p, n);
}

static void w_bytes(json_w_t *w, const tokenizer_t *tok, int32_t id) {
    size_t n;
    const unsigned char *p = (const unsigned char *)tok_piece(tok, id, 0, &n);
    json_w_arr_begin(w);
    for (size_t i = 0; i < n; i++) json_w_i64(w, p[i]);
    json_w_arr_end(w);
}

/* chat: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]} */
static void w_chat_logprobs(const oai_resp_t *o, json_w_t *w, const gen_token_t *toks, int n) {
    json_w_obj_begin(w);
    json_w_key(w, "content");
    json_w_arr_begin(w);
    for (int i = 0; i < n; i++) {
        const sampler_result_t *r = &toks[i].r;
        json_w_obj_begin(w);
        json_w_key(w, "token");
        w_piece(w, o->tok, r->id);
        json_w_key(w, "logprob");
        json_w_double(w, r->logprob);
        json_w_key(w, "bytes");
        w_bytes(w, o->tok, r->id);
        json_w_key(w, "top_logprobs");
        json_w_arr_begin(w);
        for (int k = 0; k < r->n_top && k < o->top_logprobs; k++) {
            json_w_obj_begin(w);
            json_w_key(w, "token");
            w_piece(w, o->tok, r->top[k].id);
            json_w_key(w, "logprob");
            json_w_double(w, r->top[k].logprob);
            json_w_key(w, "bytes");
            w_bytes(w, o->tok, r->top[k].id);
            json_w_obj_end(w);
        }
        json_w_arr_end(w);
        json_w_obj_end(w);
    }
    json_w_arr_end(w);
    json_w_obj_end(w);
}

/* completions: {tokens, token_logprobs, top_logprobs: [{piece: lp}], text_offset}. Each
 * top_logprobs entry holds the N most likely plus the chosen token (as vLLM does). */
static void w_completion_logprobs(const oai_resp_t *o, json_w_t *w, const gen_token_t *toks,
                                  int n) {
    json_w_obj_begin(w);
    json_w_key(w, "tokens");
    json_w_arr_begin(w);
    for (int i = 0; i < n; i++) w_piece(w, o->tok, toks[i].r.id);
    json_w_arr_end(w);
    json_w_key(w, "token_logprobs");
    json_w_arr_begin(w);
    for (int i = 0; i < n; i++) json_w_double(w, toks[i].r.logprob);
    json_w_arr_end(w);
    json_w_key(w, "top_logprobs");
    json_w_arr_begin(w);
    for (int i = 0; i < n; i++) {
        const sampler_result_t *r = &toks[i].r;
        buf_t key;
        buf_init(&key);
        json_w_obj_begin(w);
        int chosen_in = 0;
        for (int k = 0; k < r->n_top && k < o->top_logprobs; k++) {
            size_t len;
            const char *p = tok_piece(o->tok, r->top[k].id, 0, &len);
            buf_reset(&key);
            buf_append(&key, p, len); /* keys are NUL-terminated for json_w_key */
            json_w_key(w, key.data ? key.data : "");
            json_w_double(w, r->top[k].logprob);
            chosen_in |= r->top[k].id == r->id;
        }
        if (!chosen_in) {
            size_t len;
            const char *p = tok_piece(o->tok, r->id, 0, &len);
            buf_reset(&key);
            buf_append(&key, p, len);
            json_w_key(w, key.data ? key.data : "");
            json_w_double(w, r->logprob);
        }
        json_w_obj_end(w);
        buf_free(&key);
    }
    json_w_arr_end(w);
    json_w_key(w, "text_offset");
    json_w_arr_begin(w);
    for (int i = 0; i < n; i++) json_w_i64(w, toks[i].text_offset);
    json_w_arr_end(w);
    json_w_obj_end(w);
}

static void w_head(const oai_resp_t *o, json_w_t *w, const char *object) {
    json_w_obj_begin(w);
    json_w_key(w, "id");
    json_w_str(w, o->id);
    json_w_key(w, "object");
    json_w_str(w, object);
    json_w_key(w, "created");
    json_w_i64(w, o->created);
    json_w_key(w, "model");
    json_w_str(w, o->model);
}

static void w_usage(json_w_t *w, int prompt_tokens, int completion_tokens) {
    json_w_key(w, "usage");
    json_w_obj_begin(w);
    json_w_key(w, "prompt_tokens");
    json_w_i64(w, prompt_tokens);
    json_w_key(w, "completion_tokens");
    json_w_i64(w, completion_tokens);
    json_w_key(w, "total_tokens");
    json_w_i64(w, (int64_t)prompt_tokens + completion_tokens);
    json_w_obj_end(w);
}

static void w_logprobs(const oai_resp_t *o, json_w_t *w, const gen_token_t *toks, int n) {
    json_w_key(w, "logprobs");
    if (!o->logprobs || n == 0) json_w_null(w);
    else if (o->kind == OAI_CHAT) w_chat_logprobs(o, w, toks, n);
    else w_completion_logprobs(o, w, toks, n);
}

static void w_finish(json_w_t *w, const char *finish) {
    json_w_key(w, "finish_reason");
    if (finish) json_w_str(w, finish);
    else json_w_null(w);
}

int oai_chunk(const oai_resp_t *o, buf_t *out, int role, const char *text, size_t len,
              const gen_token_t *toks, int n_toks, const char *finish) {
    json_w_t w;
    buf_appends(out, "data: ");
    json_w_init(&w, out);
    w_head(o, &w, o->kind == OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    json_w_key(&w, "choices");
    json_w_arr_begin(&w);
    json_w_obj_begin(&w);
    json_w_key(&w, "index");
    json_w_i64(&w, 0);
    if (o->kind == OAI_CHAT) {
        json_w_key(&w, "delta");
        json_w_obj_begin(&w);
        if (role) {
            json_w_key(&w, "role");
            json_w_str(&w, "assistant");
        }
        if (role || len) {
            json_w_key(&w, "content");
            json_w_strn(&w, text ? text : "", len);
        }
        json_w_obj_end(&w);
    } else {
        json_w_key(&w, "text");
        json_w_strn(&w, text ? text : "", len);
    }
    w_logprobs(o, &w, toks, n_toks);
    w_finish(&w, finish);
    json_w_obj_end(&w);
    json_w_arr_end(&w);
    if (o->include_usage) {
        json_w_key(&w, "usage");
        json_w_null(&w);
    }
    json_w_obj_end(&w);
    return buf_appends(out, "\n\n") ? -ENOMEM : 0;
}

int oai_usage_chunk(const oai_resp_t *o, buf_t *out, int prompt_tokens, int completion_tokens) {
    json_w_t w;
    buf_appends(out, "data: ");
    json_w_init(&w, out);
    w_head(o, &w, o->kind == OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    json_w_key(&w, "choices");
    json_w_arr_begin(&w);
    json_w_arr_end(&w);
    w_usage(&w, prompt_tokens, completion_tokens);
    json_w_obj_end(&w);
    return buf_appends(out, "\n\n") ? -ENOMEM : 0;
}

int oai_response(const oai_resp_t *o, buf_t *out, const char *text, size_t len,
                 const gen_token_t *toks, int n_toks, const char *finish, int prompt_tokens,
                 int completion_tokens) {
    json_w_t w;
    json_w_init(&w, out);
    w_head(o, &w, o->kind == OAI_CHAT ? "chat.completion" : "text_completion");
    json_w_key(&w, "choices");
    json_w_arr_begin(&w);
    json_w_obj_begin(&w);
    json_w_key(&w, "index");
    json_w_i64(&w, 0);
    if (o->kind == OAI_CHAT) {
        json_w_key(&w, "message");
        json_w_obj_begin(&w);
        json_w_key(&w, "role");
        json_w_str(&w, "assistant");
        json_w_key(&w, "content");
        json_w_strn(&w, text ? text : "", len);
        json_w_obj_end(&w);
    } else {
        json_w_key(&w, "text");
        json_w_strn(&w, text ? text : "", len);
    }
    w_logprobs(o, &w, toks, n_toks);
    w_finish(&w, finish);
    json_w_obj_end(&w);
    json_w_arr_end(&w);
    w_usage(&w, prompt_tokens, completion_tokens);
    json_w_obj_end(&w);
    return out->data ? 0 : -ENOMEM;
}

int oai_error_event(buf_t *out, const char *type, const char *message) {
    json_w_t w;
    buf_appends(out, "data: ");
    json_w_init(&w, out);
    json_w_obj_begin(&w);
    json_w_key(&w, "error");
    json_w_obj_begin(&w);
    json_w_key(&w, "message");
    json_w_str(&w, message);
    json_w_key(&w, "type");
    json_w_str(&w, type);
    json_w_key(&w, "param");
    json_w_null(&w);
    json_w_key(&w, "code");
    json_w_null(&w);
    json_w_obj_end(&w);
    json_w_obj_end(&w);
    return buf_appends(out, "\n\n") ? -ENOMEM : 0;
}
