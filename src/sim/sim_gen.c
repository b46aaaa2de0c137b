/* sim_gen.c — the simulator's OpenAI request validation, made-up tokens and response/chunk JSON. */
#include "sim/sim_gen.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Words the simulator "generates": short, plain, a few from the order use case. */
static const char *const words[] = {
    "the",    "a",      "large",  "small",   "pepperoni", "pizza",   "with",   "extra",
    "cheese", "and",    "two",    "three",   "order",     "for",     "table",  "medium",
    "salad",  "fresh",  "garlic", "bread",   "cola",      "water",   "please", "thanks",
    "is",     "ready",  "of",     "to",      "in",        "on",      "soup",   "hot",
    "cold",   "sweet",  "spicy",  "chicken", "beef",      "veggie",  "burger", "fries",
    "no",     "onions", "side",   "sauce",   "lemon",     "tea",     "coffee", "cake",
    "one",    "four",   "five",   "box",     "to-go",     "here",    "now",    "later",
    "quick",  "model",  "token",  "stream",  "reply",     "simple",  "test",   "done",
};
#define NWORDS (sizeof words / sizeof words[0])

uint64_t sim_gen_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const char *sim_gen_word(uint64_t *rng) {
    return words[sim_gen_rand(rng) % NWORDS];
}

size_t sim_gen_next_word(const char *text, size_t n, size_t *pos, size_t *start) {
    size_t p = *pos;
    while (p < n && (text[p] == ' ' || text[p] == '\t' || text[p] == '\n' || text[p] == '\r'))
        p++;
    size_t s = p;
    while (p < n && !(text[p] == ' ' || text[p] == '\t' || text[p] == '\n' || text[p] == '\r'))
        p++;
    *pos = p;
    *start = s;
    return p - s;
}

uint32_t sim_gen_estimate_tokens(size_t bytes) {
    size_t t = (bytes + 3) / 4;
    if (t < 1)
        t = 1;
    return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

uint32_t sim_gen_prompt_tokens(const sim_gen_req_t *r) {
    if (r->prompt_ids && !r->prompt_bytes)
        return (uint32_t)r->prompt_ids;
    return sim_gen_estimate_tokens(r->prompt_bytes) + (uint32_t)r->prompt_ids;
}

/* ---- parsing ---- */

typedef struct perr {
    char *msg;
    size_t msgcap;
    char *param;
    size_t paramcap;
} perr_t;

static int fail(perr_t *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(perr_t *e, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, e->msgcap, fmt, ap);
    va_end(ap);
    snprintf(e->param, e->paramcap, "%s", param);
    return -1;
}

static int tok_type(const json_doc_t *d, int t) {
    return t < 0 ? 0 : d->toks[t].type;
}

/* Bytes of a string token's text (escapes counted as written: an estimate anyway). */
static size_t str_bytes(const json_doc_t *d, int t) {
    return d->toks[t].end - d->toks[t].start;
}

/* content: a string, null, or an array of parts {"type":"text","text":...}. */
static int parse_content(const json_doc_t *d, int c, size_t i, size_t *bytes, int *text_tok,
                         perr_t *e) {
    char param[64];
    snprintf(param, sizeof param, "messages.[%zu].content", i);
    *text_tok = -1;
    int ty = tok_type(d, c);
    if (ty == JSON_STRING) {
        *bytes += str_bytes(d, c);
        *text_tok = c;
        return 0;
    }
    if (ty == JSON_NULL || ty == 0)
        return 0;
    if (ty != JSON_ARRAY)
        return fail(e, param, "Invalid type for '%s': expected a string or an array of parts", param);
    for (size_t k = 0; k < d->toks[c].size; k++) {
        int part = json_arr_get(d, c, k);
        if (tok_type(d, part) != JSON_OBJECT)
            return fail(e, param, "Invalid content part %zu in '%s': expected an object", k, param);
        int pt = json_obj_get(d, part, "type");
        if (tok_type(d, pt) != JSON_STRING)
            return fail(e, param, "Missing 'type' in content part %zu of '%s'", k, param);
        if (json_str_eq(d, pt, "text")) {
            int tx = json_obj_get(d, part, "text");
            if (tok_type(d, tx) != JSON_STRING)
                return fail(e, param, "Missing 'text' in content part %zu of '%s'", k, param);
            *bytes += str_bytes(d, tx);
            *text_tok = tx;
        }
    }
    return 0;
}

static int parse_messages(const json_doc_t *d, int msgs, size_t *bytes, int *echo_tok, perr_t *e) {
    if (msgs < 0)
        return fail(e, "messages", "Missing required parameter: 'messages'.");
    if (tok_type(d, msgs) != JSON_ARRAY)
        return fail(e, "messages", "Invalid type for 'messages': expected an array.");
    if (d->toks[msgs].size == 0)
        return fail(e, "messages", "Invalid 'messages': empty array. Expected at least one message.");
    static const char *const roles[] = {"system", "user", "assistant", "tool", "developer",
                                        "function"};
    for (size_t i = 0; i < d->toks[msgs].size; i++) {
        int m = json_arr_get(d, msgs, i);
        char param[48];
        snprintf(param, sizeof param, "messages.[%zu]", i);
        if (tok_type(d, m) != JSON_OBJECT)
            return fail(e, param, "Invalid type for '%s': expected an object.", param);
        int role = json_obj_get(d, m, "role");
        snprintf(param, sizeof param, "messages.[%zu].role", i);
        if (role < 0)
            return fail(e, param, "Missing required parameter: '%s'.", param);
        int known = 0;
        for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++)
            known |= json_str_eq(d, role, roles[r]);
        if (tok_type(d, role) != JSON_STRING || !known)
            return fail(e, param, "Invalid value for '%s': expected one of system, user, "
                                  "assistant, tool, developer.", param);
        int text_tok;
        if (parse_content(d, json_obj_get(d, m, "content"), i, bytes, &text_tok, e) < 0)
            return -1;
        if (text_tok >= 0 && json_str_eq(d, role, "user"))
            *echo_tok = text_tok;
    }
    return 0;
}

/* prompt: a string, an array of strings, an array of token ids, or an array of those. */
static int parse_prompt(const json_doc_t *d, int p, sim_gen_req_t *out, int *echo_tok, perr_t *e) {
    if (p < 0)
        return fail(e, "prompt", "Missing required parameter: 'prompt'.");
    int ty = tok_type(d, p);
    if (ty == JSON_STRING) {
        out->prompt_bytes += str_bytes(d, p);
        *echo_tok = p;
        return 0;
    }
    if (ty != JSON_ARRAY || d->toks[p].size == 0)
        return fail(e, "prompt", "Invalid type for 'prompt': expected a string or an array.");
    for (size_t i = 0; i < d->toks[p].size; i++) {
        int el = json_arr_get(d, p, i);
        int et = tok_type(d, el);
        if (et == JSON_STRING) {
            out->prompt_bytes += str_bytes(d, el);
            if (*echo_tok < 0)
                *echo_tok = el;
        } else if (et == JSON_NUMBER) {
            out->prompt_ids++;
        } else if (et == JSON_ARRAY) {
            out->prompt_ids += d->toks[el].size;
        } else {
            return fail(e, "prompt", "Invalid type for 'prompt.[%zu]'.", i);
        }
    }
    return 0;
}

int sim_gen_parse(const char *body, size_t len, int chat, json_tok_t *toks, size_t ntoks,
                  sim_gen_req_t *out, buf_t *echo, char *err, size_t errcap, char *param,
                  size_t paramcap) {
    perr_t e = {err, errcap, param, paramcap};
    memset(out, 0, sizeof *out);
    out->chat = chat;
    out->max_tokens = -1;
    json_doc_t d;
    size_t pos = 0;
    int n = json_parse(body, len, toks, ntoks, 64, &d, &pos);
    if (n == JSON_ERR_NOMEM)
        return fail(&e, "", "Request body has too many JSON values for the simulator.");
    if (n < 0)
        return fail(&e, "", "We could not parse the JSON body of your request (error at byte %zu). "
                            "(HINT: This likely means you aren't using your HTTP library "
                            "correctly.)", pos);
    if (toks[0].type != JSON_OBJECT)
        return fail(&e, "", "The request body must be a JSON object.");

    int model = json_obj_get(&d, 0, "model");
    if (model < 0)
        return fail(&e, "model", "You must provide a model parameter.");
    if (tok_type(&d, model) != JSON_STRING)
        return fail(&e, "model", "Invalid type for 'model': expected a string.");
    if (str_bytes(&d, model) >= SIM_GEN_MODEL_MAX)
        return fail(&e, "model", "Invalid 'model': string too long.");
    if (!d.toks[model].has_escape) { /* the common case: no allocation */
        memcpy(out->model, body + d.toks[model].start, str_bytes(&d, model));
        out->model[str_bytes(&d, model)] = '\0';
    } else {
        buf_t mb;
        buf_init(&mb);
        json_str_unescape(&d, model, &mb);
        snprintf(out->model, sizeof out->model, "%s", mb.data ? mb.data : "");
        buf_free(&mb);
    }

    int echo_tok = -1;
    if (chat) {
        if (parse_messages(&d, json_obj_get(&d, 0, "messages"), &out->prompt_bytes, &echo_tok,
                           &e) < 0)
            return -1;
    } else if (parse_prompt(&d, json_obj_get(&d, 0, "prompt"), out, &echo_tok, &e) < 0) {
        return -1;
    }

    static const char *const max_keys[] = {"max_tokens", "max_completion_tokens"};
    for (int k = 0; k < 2; k++) {
        int t = json_obj_get(&d, 0, max_keys[k]);
        if (t < 0 || tok_type(&d, t) == JSON_NULL)
            continue;
        int64_t v;
        if (json_get_i64(&d, t, &v) < 0)
            return fail(&e, max_keys[k], "Invalid type for '%s': expected an integer.", max_keys[k]);
        if (v < 1)
            return fail(&e, max_keys[k], "Invalid '%s': integer below minimum value. Expected a "
                                         "value >= 1, but got %lld instead.", max_keys[k],
                        (long long)v);
        out->max_tokens = v;
    }
    int st = json_obj_get(&d, 0, "stream");
    if (st >= 0 && tok_type(&d, st) != JSON_NULL) {
        int b = json_get_bool(&d, st);
        if (b < 0)
            return fail(&e, "stream", "Invalid type for 'stream': expected a boolean.");
        out->stream = b;
    }
    int so = json_obj_get(&d, 0, "stream_options");
    if (so >= 0 && tok_type(&d, so) != JSON_NULL) {
        if (tok_type(&d, so) != JSON_OBJECT)
            return fail(&e, "stream_options", "Invalid type for 'stream_options': expected an object.");
        int iu = json_obj_get(&d, so, "include_usage");
        if (iu >= 0) {
            int b = json_get_bool(&d, iu);
            if (b < 0)
                return fail(&e, "stream_options.include_usage",
                            "Invalid type for 'stream_options.include_usage': expected a boolean.");
            out->include_usage = b;
        }
    }
    static const char *const num_keys[] = {"temperature", "top_p", "presence_penalty",
                                           "frequency_penalty"};
    for (size_t k = 0; k < sizeof num_keys / sizeof num_keys[0]; k++) {
        int t = json_obj_get(&d, 0, num_keys[k]);
        double v;
        if (t >= 0 && tok_type(&d, t) != JSON_NULL && json_get_double(&d, t, &v) < 0)
            return fail(&e, num_keys[k], "Invalid type for '%s': expected a number.", num_keys[k]);
    }
    int nn = json_obj_get(&d, 0, "n");
    if (nn >= 0 && tok_type(&d, nn) != JSON_NULL) {
        int64_t v;
        if (json_get_i64(&d, nn, &v) < 0 || v != 1)
            return fail(&e, "n", "Invalid 'n': the simulator generates exactly one choice (n=1).");
    }
    int sd = json_obj_get(&d, 0, "seed");
    if (sd >= 0 && tok_type(&d, sd) != JSON_NULL) {
        int64_t v;
        if (json_get_i64(&d, sd, &v) < 0)
            return fail(&e, "seed", "Invalid type for 'seed': expected an integer.");
        out->has_seed = 1;
        out->seed = (uint64_t)v;
    }
    if (echo) {
        buf_reset(echo);
        if (echo_tok >= 0)
            json_str_unescape(&d, echo_tok, echo);
    }
    return 0;
}

/* ---- output ---- */

static void w_usage(json_w_t *w, uint32_t p, uint32_t c) {
    json_w_key(w, "usage");
    json_w_obj_begin(w);
    json_w_key(w, "prompt_tokens");
    json_w_i64(w, p);
    json_w_key(w, "completion_tokens");
    json_w_i64(w, c);
    json_w_key(w, "total_tokens");
    json_w_i64(w, (int64_t)p + c);
    json_w_obj_end(w);
}

static void w_head(json_w_t *w, const sim_gen_out_t *o, const char *object) {
    json_w_obj_begin(w);
    json_w_key(w, "id");
    json_w_str(w, o->id);
    json_w_key(w, "object");
    json_w_str(w, object);
    json_w_key(w, "created");
    json_w_i64(w, o->created);
    json_w_key(w, "model");
    json_w_str(w, o->req->model);
    json_w_key(w, "system_fingerprint");
    json_w_null(w);
}

void sim_gen_chunk(buf_t *out, const sim_gen_out_t *o, sim_chunk_kind_t kind, const char *text,
                   size_t len, const char *finish, uint32_t prompt_tokens,
                   uint32_t completion_tokens) {
    const sim_gen_req_t *r = o->req;
    buf_appends(out, "data: ");
    json_w_t w;
    json_w_init(&w, out);
    w_head(&w, o, r->chat ? "chat.completion.chunk" : "text_completion");
    json_w_key(&w, "choices");
    json_w_arr_begin(&w);
    if (kind != SIM_CHUNK_USAGE) {
        json_w_obj_begin(&w);
        json_w_key(&w, "index");
        json_w_i64(&w, 0);
        if (r->chat) {
            json_w_key(&w, "delta");
            json_w_obj_begin(&w);
            if (kind == SIM_CHUNK_ROLE) {
                json_w_key(&w, "role");
                json_w_str(&w, "assistant");
                json_w_key(&w, "content");
                json_w_str(&w, "");
            } else if (kind == SIM_CHUNK_TEXT) {
                json_w_key(&w, "content");
                json_w_strn(&w, text, len);
            }
            json_w_obj_end(&w);
        } else {
            json_w_key(&w, "text");
            json_w_strn(&w, kind == SIM_CHUNK_TEXT ? text : "", kind == SIM_CHUNK_TEXT ? len : 0);
        }
        json_w_key(&w, "logprobs");
        json_w_null(&w);
        json_w_key(&w, "finish_reason");
        if (kind == SIM_CHUNK_FINISH)
            json_w_str(&w, finish);
        else
            json_w_null(&w);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    /* OpenAI sends "usage": null on every chunk but the last when usage is asked for. */
    if (kind == SIM_CHUNK_USAGE) {
        w_usage(&w, prompt_tokens, completion_tokens);
    } else if (r->include_usage) {
        json_w_key(&w, "usage");
        json_w_null(&w);
    }
    json_w_obj_end(&w);
    buf_appends(out, "\n\n");
}

void sim_gen_full(buf_t *out, const sim_gen_out_t *o, const char *text, size_t len,
                  const char *finish, uint32_t prompt_tokens, uint32_t completion_tokens) {
    const sim_gen_req_t *r = o->req;
    json_w_t w;
    json_w_init(&w, out);
    w_head(&w, o, r->chat ? "chat.completion" : "text_completion");
    json_w_key(&w, "choices");
    json_w_arr_begin(&w);
    json_w_obj_begin(&w);
    json_w_key(&w, "index");
    json_w_i64(&w, 0);
    if (r->chat) {
        json_w_key(&w, "message");
        json_w_obj_begin(&w);
        json_w_key(&w, "role");
        json_w_str(&w, "assistant");
        json_w_key(&w, "content");
        json_w_strn(&w, text, len);
        json_w_key(&w, "refusal");
        json_w_null(&w);
        json_w_obj_end(&w);
    } else {
        json_w_key(&w, "text");
        json_w_strn(&w, text, len);
    }
    json_w_key(&w, "logprobs");
    json_w_null(&w);
    json_w_key(&w, "finish_reason");
    json_w_str(&w, finish);
    json_w_obj_end(&w);
    json_w_arr_end(&w);
    w_usage(&w, prompt_tokens, completion_tokens);
    json_w_obj_end(&w);
}
