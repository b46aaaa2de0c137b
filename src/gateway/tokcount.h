/* tokcount.h — prompt token counts before forwarding: exact with a model's GGUF vocabulary and
 * chat template (the engine's own tokenizer code), or a documented estimate without one. */
#ifndef TOLLGATE_GATEWAY_TOKCOUNT_H
#define TOLLGATE_GATEWAY_TOKCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/json.h"
#include "model/chat.h"
#include "model/tokenizer.h"

#define TOKCOUNT_MAX_MSGS 1024 /* more messages than this are estimated, not rendered */

/* The estimate used for models without a tokenizer: one token per 4 bytes of text, rounded
 * up (English averages about 4 bytes per token with 32k vocabularies; code and non-Latin
 * scripts run denser, so limits set on estimates should leave room), plus 4 tokens per chat
 * message for its role markers, plus 3 for the assistant header, plus 1 for BOS. */
#define TOKCOUNT_EST_BYTES_PER_TOKEN 4
#define TOKCOUNT_EST_PER_MESSAGE 4
#define TOKCOUNT_EST_PER_CHAT 3

/* A loaded vocabulary with its chat template. Immutable after tokcount_load: shared by all
 * worker threads without a lock. */
typedef struct tokcount {
    tokenizer_t *tok;
    chat_tmpl_t tmpl;
    char *path;
} tokcount_t;

/* Per-thread scratch: tokenizer work area and the rendered prompt. Grows to the largest
 * request seen and is then reused, so counting does not allocate in the steady state. */
typedef struct tokcount_work {
    tok_work_t *tw;
    buf_t text;   /* unescaped message contents, NUL-separated */
    buf_t prompt; /* rendered chat prompt */
    chat_msg_t msgs[TOKCOUNT_MAX_MSGS];
    size_t offs[TOKCOUNT_MAX_MSGS];
} tokcount_work_t;

/* Load the vocabulary of a GGUF file (a full model or a vocab-only file); template: a name
 * ("mistral", "phi3", "llama2", "chatml") or NULL for the file's own. 0, or a negative errno
 * with a message in err. The file is closed again before returning. */
int tokcount_load(const char *path, const char *template_name, tokcount_t **out, char *err,
                  size_t errlen);
void tokcount_free(tokcount_t *tc);

tokcount_work_t *tokcount_work_new(void);
void tokcount_work_free(tokcount_work_t *w);

/* Exact count of a chat prompt: the template applied with the generation prompt, tokenized
 * with BOS and special tokens parsed, as the engine does. ids (may be NULL) receives at
 * most cap ids. Returns the count, or a negative errno (-EINVAL: a role the template does
 * not know). */
int tokcount_chat(const tokcount_t *tc, tokcount_work_t *w, const chat_msg_t *msgs, size_t n,
                  int32_t *ids, int cap);
/* Exact count of a completion prompt (BOS + text). */
int tokcount_text(const tokcount_t *tc, tokcount_work_t *w, const char *text, size_t len);

/* Prompt tokens of a request body: chat (`messages`, content strings or text parts joined
 * by newlines, roles system/developer/user/assistant) or completion (`prompt`, a string, an
 * array of strings summed, or token ids counted as they are). tc NULL means estimate.
 * Returns the count (>= 0) and *exact (1 counted with the vocabulary, 0 estimated), or
 * -EINVAL when the body has no prompt in a form this understands (the caller forwards it
 * and lets the upstream judge), -ENOMEM. */
int64_t tokcount_request(const tokcount_t *tc, tokcount_work_t *w, const json_doc_t *d, int is_chat,
                         int *exact);

#endif
