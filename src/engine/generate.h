/* generate.h — one generation: prompt tokens -> prefill -> decode loop with stop conditions, streaming UTF-8 text. */
#ifndef TOLLGATE_ENGINE_GENERATE_H
#define TOLLGATE_ENGINE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "model/tokenizer.h"

#define GEN_MAX_STOP 8 /* stop strings per request (OpenAI allows 4) */

typedef enum gen_finish {
    GEN_RUNNING = 0,
    GEN_FINISH_STOP,   /* end-of-generation token or a stop string */
    GEN_FINISH_LENGTH, /* max_tokens reached or the context is full */
} gen_finish_t;

typedef struct gen_params {
    int max_tokens;                 /* tokens to generate at most; <= 0: until the context is full */
    sampler_params_t sp;            /* sampling and log-probability settings */
    const char *stop[GEN_MAX_STOP]; /* stop strings (NUL-terminated, non-empty; not copied:
                                     * they must outlive the generation) */
    int n_stop;
} gen_params_t;

/* One generated token as the client sees it (logprobs). */
typedef struct gen_token {
    sampler_result_t r;   /* id, log-probability, alternatives */
    int32_t text_offset;  /* characters (code points) of completion text before this token */
} gen_token_t;

/* What one gen_step produced. */
typedef struct gen_out {
    buf_t *text;     /* caller's buffer: final text (never a stop string or part of one) is appended */
    int has_token;   /* a token was sampled and belongs in logprobs (EOS/EOT do not) */
    gen_token_t tok;
} gen_out_t;

/* The state of one generation. Borrowed: model, tokenizer, forward state (one sequence
 * at a time; NULL when a scheduler runs the forward passes, see gen_sample); owned: sampler scratch and text buffers, all allocated in gen_init so the
 * decode loop only allocates when the text outgrows its buffer. */
typedef struct gen {
    const model_t *m;
    const tokenizer_t *tok;
    forward_state_t *fs;
    int n_ctx;             /* positions the sequence's cache holds */
    gen_params_t p;
    sampler_t smp;
    const int32_t *prompt; /* borrowed, n_prompt ids (BOS included when wanted) */
    int n_prompt;
    int n_past;            /* positions in the KV cache */
    int n_gen;             /* tokens sampled (EOS included: it cost a step) */
    int32_t next;          /* the token to feed at n_past next, -1 before the first sample */
    const float *logits;   /* of the last forward */
    tok_stream_t ds;       /* UTF-8 assembly across tokens */
    buf_t text;            /* decoded completion text, all of it */
    size_t emitted;        /* bytes of text already handed out */
    int32_t n_chars;       /* code points in text */
    gen_finish_t finish;
} gen_t;

/* Check and set up; nothing runs yet. -EINVAL for an empty prompt or bad parameters,
 * -E2BIG when the prompt does not leave room for one generated token (n_prompt >= n_ctx),
 * -ENOMEM. On error g holds nothing to free. */
int gen_init(gen_t *g, const model_t *m, const tokenizer_t *tok, forward_state_t *fs,
             const int32_t *prompt, int n_prompt, const gen_params_t *p);
/* The same for a sequence whose forward passes someone else runs (a batching scheduler):
 * no forward state, a cache of n_ctx positions. Use gen_sample / gen_fed instead of
 * gen_prefill / gen_step. */
int gen_init_seq(gen_t *g, const model_t *m, const tokenizer_t *tok, int n_ctx,
                 const int32_t *prompt, int n_prompt, const gen_params_t *p);
void gen_free(gen_t *g);

/* Feed prompt tokens from where the last call stopped, at most `budget` of them (<= 0:
 * all). Returns 1 when the whole prompt is in, 0 when more remains, -EINVAL when a
 * token is out of range. Splitting lets a scheduler check for cancellation. */
int gen_prefill(gen_t *g, int budget);

/* Sample one token (the prompt must be in), append its text to out->text minus whatever
 * could still turn out to be a stop string, and run the forward pass for it when the
 * generation goes on. Returns 1 while running, 0 when finished (g->finish says why; the
 * held-back text has been released or cut at the stop string), negative errno. */
int gen_step(gen_t *g, gen_out_t *out);

/* gen_step without the forward pass: sample from g->logits, hand out text as gen_step.
 * Returns 1 when the generation goes on: the caller runs token g->next at position
 * g->n_past and reports the logits with gen_fed; 0 when finished; negative errno. */
int gen_sample(gen_t *g, gen_out_t *out);
/* n tokens (prompt tokens, or the token g->next) went through the forward pass at
 * n_past..; logits (borrowed until the next gen_sample) are those after the last of them,
 * NULL while prompt tokens remain. Also for positions taken from a prefix cache (n
 * prompt tokens, logits NULL). */
void gen_fed(gen_t *g, int n, const float *logits);

const char *gen_finish_reason(gen_finish_t f); /* "stop", "length", or NULL while running */

#endif
