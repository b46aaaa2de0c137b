/* sim_gen.h — the simulator's OpenAI request validation, made-up tokens and response/chunk JSON. */
#ifndef TOLLGATE_SIM_SIM_GEN_H
#define TOLLGATE_SIM_SIM_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/json.h"

#define SIM_GEN_MODEL_MAX 256 /* longest model name echoed back */

/* What the simulator needs from a /v1/chat/completions or /v1/completions body. */
typedef struct sim_gen_req {
    int chat;                  /* 1: chat.completion, 0: text_completion */
    int stream;                /* "stream": true */
    int include_usage;         /* "stream_options": {"include_usage": true} */
    int64_t max_tokens;        /* max_tokens / max_completion_tokens; -1 when absent */
    int has_seed;              /* "seed" given: the words are a function of it */
    uint64_t seed;
    size_t prompt_bytes;       /* text bytes of all messages / the prompt */
    size_t prompt_ids;         /* completions given token ids: their count */
    char model[SIM_GEN_MODEL_MAX];
} sim_gen_req_t;

/* Validate and read a request body. toks/ntoks: caller's token array. echo (may
 * be NULL) receives the last user message (chat) or the first prompt string
 * (completions), unescaped. 0, or -1 with a message and the offending param
 * (param may be set to "" when none) for a 400 answer. */
int sim_gen_parse(const char *body, size_t len, int chat, json_tok_t *toks, size_t ntoks,
                  sim_gen_req_t *out, buf_t *echo, char *err, size_t errcap, char *param,
                  size_t paramcap);

/* The prompt-token estimate used everywhere in the simulator: ceil(bytes / 4),
 * at least 1 (token ids given directly count as themselves). */
uint32_t sim_gen_prompt_tokens(const sim_gen_req_t *r);
uint32_t sim_gen_estimate_tokens(size_t bytes);

/* Deterministic PRNG step (splitmix64). */
uint64_t sim_gen_rand(uint64_t *state);
/* A word of the built-in list, chosen by rng. */
const char *sim_gen_word(uint64_t *rng);
/* Next whitespace-separated word of text starting at *pos (echo mode); its
 * bytes are text[*start .. *start + len). 0 when none is left. */
size_t sim_gen_next_word(const char *text, size_t n, size_t *pos, size_t *start);

/* What one response/chunk says; id and created are shared by a whole stream. */
typedef struct sim_gen_out {
    const sim_gen_req_t *req;
    const char *id;
    int64_t created;
} sim_gen_out_t;

typedef enum sim_chunk_kind {
    SIM_CHUNK_ROLE,    /* chat only, first: delta {"role":"assistant","content":""} */
    SIM_CHUNK_TEXT,    /* a content piece (completions: the text) */
    SIM_CHUNK_FINISH,  /* empty delta with finish_reason */
    SIM_CHUNK_USAGE,   /* choices [] with usage */
} sim_chunk_kind_t;

/* Append one SSE event "data: {chunk}\n\n" (compact JSON has no newline, so one
 * data line is exact). finish: "stop"/"length" for SIM_CHUNK_FINISH. */
void sim_gen_chunk(buf_t *out, const sim_gen_out_t *o, sim_chunk_kind_t kind, const char *text,
                   size_t len, const char *finish, uint32_t prompt_tokens,
                   uint32_t completion_tokens);
/* Append the whole non-streaming response body. */
void sim_gen_full(buf_t *out, const sim_gen_out_t *o, const char *text, size_t len,
                  const char *finish, uint32_t prompt_tokens, uint32_t completion_tokens);

#endif
