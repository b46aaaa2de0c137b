/* proxy_validate.h — checks of the OpenAI request fields the gateway understands, before a
 * request is admitted or forwarded. */
#ifndef TOLLGATE_GATEWAY_PROXY_VALIDATE_H
#define TOLLGATE_GATEWAY_PROXY_VALIDATE_H

#include "core/json.h"

#define PROXY_MAX_TOKENS_LIMIT (1 << 20) /* max_tokens above this is refused (no model has it) */
#define PROXY_MAX_N 128                  /* choices per request (OpenAI's bound) */
#define PROXY_MAX_LOGPROBS 20            /* logprobs / top_logprobs (OpenAI's bound) */
#define PROXY_MAX_STOP 4                 /* stop sequences (OpenAI's bound) */

/* Why a body was refused: the parameter to name in the error and a message saying what
 * was expected and what came. */
typedef struct proxy_invalid {
    const char *param; /* the field, e.g. "max_tokens" or "messages" (a literal) */
    const char *code;  /* "invalid_type", "invalid_value" or "missing_required_parameter" */
    char message[256];
} proxy_invalid_t;

/* Check a parsed client body (an object) for /v1/chat/completions (is_chat) or
 * /v1/completions: max_tokens / max_completion_tokens, temperature, top_p, n,
 * presence_penalty / frequency_penalty, logprobs / top_logprobs, seed, stream,
 * stream_options, stop, and the shape of messages (chat) or prompt. A null value counts as
 * absent; fields it does not know pass untouched. 0 when fine, -1 with *why filled. */
int proxy_validate(const json_doc_t *d, int is_chat, proxy_invalid_t *why);

#endif
