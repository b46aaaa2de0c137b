/* oai.h — the OpenAI API as the inference server speaks it: request parsing and validation, response and stream-chunk encoding. */
#ifndef TOLLGATE_ENGINE_OAI_H
#define TOLLGATE_ENGINE_OAI_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/json.h"
#include "engine/generate.h"
#include "model/chat.h"
#include "model/tokenizer.h"

typedef enum oai_kind {
    OAI_CHAT = 0,   /* POST /v1/chat/completions */
    OAI_COMPLETION, /* POST /v1/completions */
} oai_kind_t;

/* A parsed, validated request. Owns its strings (oai_request_free). */
typedef struct oai_request {
    oai_kind_t kind;
    int stream;           /* SSE */
    int include_usage;    /* stream_options.include_usage */
    int logprobs;         /* return log-probabilities */
    int top_logprobs;     /* alternatives per token, 0..SAMPLER_MAX_TOP */
    int max_tokens;       /* -1 when not given */
    float temperature;    /* default 1 */
    float top_p;          /* default 1 */
    int top_k;            /* default 0 (off) */
    float min_p;          /* default 0 */
    int has_seed;
    uint64_t seed;
    const char *stop[GEN_MAX_STOP]; /* into `store` */
    int n_stop;
    chat_msg_t *msgs;     /* chat: messages (role constants, content into `store`) */
    size_t n_msgs;
    const char *prompt;   /* completion: prompt text (into `store`), or NULL with ids */
    int32_t *prompt_ids;  /* completion: prompt given as token ids */
    int n_prompt_ids;
    buf_t store;          /* NUL-separated strings referenced above */
} oai_request_t;

void oai_request_init(oai_request_t *r);
void oai_request_free(oai_request_t *r);

/* Parse and validate a request body (doc already parsed by the caller, root token 0).
 * 0, or -EINVAL with a human message in err (naming the field as OpenAI does) and *param
 * the field's name for the error's "param", or -ENOMEM. */
int oai_parse(oai_kind_t kind, const json_doc_t *d, oai_request_t *r, char *err, size_t errlen,
              const char **param);

/* What the encoders need about the response being written. */
typedef struct oai_resp {
    oai_kind_t kind;
    const char *id;       /* "chatcmpl-..." / "cmpl-..." */
    int64_t created;      /* unix seconds */
    const char *model;    /* served model name */
    const tokenizer_t *tok; /* for token strings in logprobs */
    int logprobs, top_logprobs, include_usage;
} oai_resp_t;

/* One SSE event "data: {chunk}\n\n" carrying text and/or token log-probabilities; with
 * role (chat only) the delta opens with "role": "assistant". finish NULL while running. */
int oai_chunk(const oai_resp_t *o, buf_t *out, int role, const char *text, size_t len,
              const gen_token_t *toks, int n_toks, const char *finish);
/* The usage chunk (choices: []) of stream_options.include_usage. */
int oai_usage_chunk(const oai_resp_t *o, buf_t *out, int prompt_tokens, int completion_tokens);
/* The whole non-streamed response. */
int oai_response(const oai_resp_t *o, buf_t *out, const char *text, size_t len,
                 const gen_token_t *toks, int n_toks, const char *finish, int prompt_tokens,
                 int completion_tokens);
/* An error as an SSE event (after the stream began): data: {"error": {...}}. */
int oai_error_event(buf_t *out, const char *type, const char *message);

#endif
