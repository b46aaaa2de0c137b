/* proxy_validate.c — refuse what no upstream should see: negative or absurd numbers and
 * malformed shapes in the OpenAI fields the gateway knows, with OpenAI-style messages. */
#include "gateway/proxy_validate.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static int invalid(proxy_invalid_t *why, const char *param, const char *code, const char *fmt,
                   ...) {
    why->param = param;
    why->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->message, sizeof why->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* The value of key, or -1 when absent or null (OpenAI treats null as "not given"). */
static int field(const json_doc_t *d, const char *key) {
    int t = json_obj_get(d, 0, key);
    return t >= 0 && d->toks[t].type != JSON_NULL ? t : -1;
}

/* An integer field within [lo, hi]. */
static int check_int(const json_doc_t *d, const char *key, int64_t lo, int64_t hi,
                     proxy_invalid_t *why) {
    int t = field(d, key);
    if (t < 0) return 0;
    int64_t v;
    if (d->toks[t].type != JSON_NUMBER)
        return invalid(why, key, "invalid_type", "Invalid type for '%s': expected an integer.",
                       key);
    if (json_get_i64(d, t, &v) < 0)
        return invalid(why, key, "invalid_value",
                       "Invalid '%s': expected an integer between %lld and %lld.", key,
                       (long long)lo, (long long)hi);
    if (v < lo || v > hi)
        return invalid(why, key, "invalid_value",
                       "Invalid '%s': %lld is out of range; expected a value between %lld and "
                       "%lld.",
                       key, (long long)v, (long long)lo, (long long)hi);
    return 0;
}

/* A number field within [lo, hi], or (lo, hi] when lo_open. */
static int check_num(const json_doc_t *d, const char *key, double lo, double hi, int lo_open,
                     proxy_invalid_t *why) {
    int t = field(d, key);
    if (t < 0) return 0;
    double v;
    if (d->toks[t].type != JSON_NUMBER)
        return invalid(why, key, "invalid_type", "Invalid type for '%s': expected a number.", key);
    if (json_get_double(d, t, &v) < 0 || !isfinite(v) || v > hi || v < lo || (lo_open && v == lo))
        return invalid(
            why, key, "invalid_value",
            "Invalid '%s': %.*s is out of range; expected a number %s %g and <= %g.", key,
            (int)(d->toks[t].end - d->toks[t].start > 40 ? 40 : d->toks[t].end - d->toks[t].start),
            d->src + d->toks[t].start, lo_open ? ">" : ">=", lo, hi);
    return 0;
}

static int check_bool(const json_doc_t *d, const char *key, proxy_invalid_t *why) {
    int t = field(d, key);
    if (t >= 0 && json_get_bool(d, t) < 0)
        return invalid(why, key, "invalid_type", "Invalid type for '%s': expected a boolean.", key);
    return 0;
}

static int check_stop(const json_doc_t *d, proxy_invalid_t *why) {
    int t = field(d, "stop");
    if (t < 0 || d->toks[t].type == JSON_STRING) return 0;
    if (d->toks[t].type != JSON_ARRAY)
        return invalid(why, "stop", "invalid_type",
                       "Invalid type for 'stop': expected a string or an array of strings.");
    if (d->toks[t].size > PROXY_MAX_STOP)
        return invalid(why, "stop", "invalid_value",
                       "Invalid 'stop': at most %d sequences, got %u.", PROXY_MAX_STOP,
                       (unsigned)d->toks[t].size);
    uint32_t e = (uint32_t)t + 1;
    for (uint32_t i = 0; i < d->toks[t].size; i++, e = d->toks[e].next)
        if (d->toks[e].type != JSON_STRING)
            return invalid(why, "stop", "invalid_type",
                           "Invalid type for 'stop[%u]': expected a string.", (unsigned)i);
    return 0;
}

static int check_stream_options(const json_doc_t *d, proxy_invalid_t *why) {
    int t = field(d, "stream_options");
    if (t < 0) return 0;
    if (d->toks[t].type != JSON_OBJECT)
        return invalid(why, "stream_options", "invalid_type",
                       "Invalid type for 'stream_options': expected an object.");
    int iu = json_obj_get(d, t, "include_usage");
    if (iu >= 0 && d->toks[iu].type != JSON_NULL && json_get_bool(d, iu) < 0)
        return invalid(why, "stream_options.include_usage", "invalid_type",
                       "Invalid type for 'stream_options.include_usage': expected a boolean.");
    return 0;
}

/* messages: a non-empty array of objects, each with a string role and a content that is a
 * string, an array of parts or null (an assistant turn with tool calls). Walked by the
 * tokens' `next` links: linear in the body, however many messages it holds. */
static int check_messages(const json_doc_t *d, proxy_invalid_t *why) {
    int t = json_obj_get(d, 0, "messages");
    if (t < 0)
        return invalid(why, "messages", "missing_required_parameter",
                       "Missing required parameter: 'messages'.");
    if (d->toks[t].type != JSON_ARRAY)
        return invalid(why, "messages", "invalid_type",
                       "Invalid type for 'messages': expected an array of message objects.");
    if (d->toks[t].size == 0)
        return invalid(why, "messages", "invalid_value",
                       "Invalid 'messages': empty array. Expected an array with at least 1 "
                       "element.");
    int m = t + 1;
    for (uint32_t i = 0; i < d->toks[t].size; i++, m = (int)d->toks[m].next) {
        if (d->toks[m].type != JSON_OBJECT)
            return invalid(why, "messages", "invalid_type",
                           "Invalid type for 'messages[%u]': expected an object.", (unsigned)i);
        int role = json_obj_get(d, m, "role");
        if (role < 0 || d->toks[role].type != JSON_STRING)
            return invalid(why, "messages", "invalid_value",
                           "Invalid 'messages[%u]': 'role' is required and must be a string.",
                           (unsigned)i);
        int c = json_obj_get(d, m, "content");
        if (c >= 0 && d->toks[c].type != JSON_STRING && d->toks[c].type != JSON_ARRAY &&
            d->toks[c].type != JSON_NULL)
            return invalid(why, "messages", "invalid_type",
                           "Invalid type for 'messages[%u].content': expected a string or an "
                           "array of content parts.",
                           (unsigned)i);
    }
    return 0;
}

/* prompt: a string or an array (of strings, or of token ids). */
static int check_prompt(const json_doc_t *d, proxy_invalid_t *why) {
    int t = json_obj_get(d, 0, "prompt");
    if (t < 0)
        return invalid(why, "prompt", "missing_required_parameter",
                       "Missing required parameter: 'prompt'.");
    if (d->toks[t].type != JSON_STRING && d->toks[t].type != JSON_ARRAY)
        return invalid(why, "prompt", "invalid_type",
                       "Invalid type for 'prompt': expected a string or an array.");
    return 0;
}

int proxy_validate(const json_doc_t *d, int is_chat, proxy_invalid_t *why) {
    if (check_int(d, "max_tokens", 1, PROXY_MAX_TOKENS_LIMIT, why) ||
        check_int(d, "max_completion_tokens", 1, PROXY_MAX_TOKENS_LIMIT, why) ||
        check_num(d, "temperature", 0, 2, 0, why) || check_num(d, "top_p", 0, 1, 1, why) ||
        check_int(d, "n", 1, PROXY_MAX_N, why) || check_num(d, "presence_penalty", -2, 2, 0, why) ||
        check_num(d, "frequency_penalty", -2, 2, 0, why) ||
        check_int(d, "top_logprobs", 0, PROXY_MAX_LOGPROBS, why) ||
        check_int(d, "seed", INT64_MIN, INT64_MAX, why) || check_bool(d, "stream", why) ||
        check_stream_options(d, why) || check_stop(d, why))
        return -1;
    /* logprobs: a boolean in chat, a count in completions; either form within bounds. */
    int lp = field(d, "logprobs");
    if (lp >= 0 && json_get_bool(d, lp) < 0 && check_int(d, "logprobs", 0, PROXY_MAX_LOGPROBS, why))
        return -1;
    return is_chat ? check_messages(d, why) : check_prompt(d, why);
}
