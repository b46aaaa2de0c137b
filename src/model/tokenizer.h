/* tokenizer.h — SentencePiece-BPE tokenizer from a GGUF vocabulary (encode, pieces, streaming
 * decode). */
#ifndef TOLLGATE_MODEL_TOKENIZER_H
#define TOLLGATE_MODEL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "model/gguf.h"

/* Token types as stored in tokenizer.ggml.token_type. */
enum tok_type {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
};

/* The loaded vocabulary. Immutable after tok_load, so one tokenizer may be shared by
 * any number of threads; per-call state lives in a tok_work_t. */
typedef struct tokenizer tokenizer_t;

/* Per-thread scratch for tok_encode_w: grows to the largest input seen, so repeated calls
 * do not allocate. Never share one between threads running concurrently. */
typedef struct tok_work tok_work_t;

/* Build from tokenizer.ggml.* metadata ("llama" = SentencePiece BPE only). The tokenizer
 * copies what it needs: the file may be closed afterwards. 0, or a negative errno with a
 * message in err (-ENOTSUP for other tokenizer models, -EINVAL for a malformed vocab). */
int tok_load(const gguf_file_t *f, tokenizer_t **out, char *err, size_t errlen);
void tok_free(tokenizer_t *t);

tok_work_t *tok_work_new(void);
void tok_work_free(tok_work_t *w);

/* Tokenize text[0..len) as the reference (llama.cpp) does for SPM vocabularies:
 *  - add_special: prepend BOS (and append EOS) when the vocabulary asks for it;
 *  - parse_special: control/unknown token strings in the text (e.g. "<s>", "<|user|>")
 *    become their ids; user-defined tokens are always matched;
 *  - each run of text is prefixed with a space when it starts the input or follows a
 *    special token; spaces become U+2581; merges by highest score, ties leftmost;
 *    characters without a token fall back to <0xXX> byte tokens.
 * Writes at most cap ids to out (out may be NULL when cap is 0) and returns the total
 * count, which may exceed cap: call again with a larger array. Negative errno on
 * allocation failure. */
int tok_encode_w(const tokenizer_t *t, tok_work_t *w, const char *text, size_t len, int add_special,
                 int parse_special, int32_t *out, int cap);
/* The same with a temporary workspace (allocates; reentrant). */
int tok_encode(const tokenizer_t *t, const char *text, size_t len, int add_special,
               int parse_special, int32_t *out, int cap);

/* The text of a token as generation emits it: U+2581 -> space, <0xXX> -> that byte,
 * user-defined tokens verbatim; control/unknown tokens verbatim only when `special`,
 * otherwise "" (as are unused ids and ids out of range). Never NULL; *len gets the
 * length (pieces may contain NUL bytes or partial UTF-8). */
const char *tok_piece(const tokenizer_t *t, int32_t id, int special, size_t *len);
/* The token's vocabulary string (with U+2581), "" when out of range. */
const char *tok_text(const tokenizer_t *t, int32_t id, size_t *len);
/* Token id of an exact vocabulary string, -1 when absent. */
int32_t tok_lookup(const tokenizer_t *t, const char *s, size_t len);

/* Whole-sequence detokenize as the reference's llama_detokenize: the space the encoder
 * added in front of the first token is removed, except when remove_special drops a
 * leading BOS (the reference keeps it then); remove_special also drops a trailing EOS
 * when the vocabulary adds one; unparse_special renders control tokens. Appends raw
 * bytes (may be invalid UTF-8). 0 or -ENOMEM. */
int tok_detokenize(const tokenizer_t *t, const int32_t *ids, int n, int remove_special,
                   int unparse_special, buf_t *out);

/* Streaming decode for generation: appends only complete, valid UTF-8; a partial
 * sequence split across tokens is held back until completed; invalid bytes become
 * U+FFFD (one per maximal invalid subpart). */
typedef struct tok_stream {
    uint8_t pend[4]; /* bytes of an incomplete UTF-8 sequence */
    int npend;
} tok_stream_t;

void tok_stream_init(tok_stream_t *s);
/* Append the piece of token id (special as in tok_piece). 0 or -ENOMEM. */
int tok_stream_push(tok_stream_t *s, const tokenizer_t *t, int32_t id, int special, buf_t *out);
/* The same for raw bytes. */
int tok_stream_bytes(tok_stream_t *s, const void *p, size_t n, buf_t *out);
/* End of stream: a held-back partial sequence becomes U+FFFD. */
int tok_stream_flush(tok_stream_t *s, buf_t *out);

int tok_n_vocab(const tokenizer_t *t);
int32_t tok_bos(const tokenizer_t *t); /* -1 when the vocabulary has none */
int32_t tok_eos(const tokenizer_t *t);
int32_t tok_eot(const tokenizer_t *t); /* end of turn (e.g. <|end|>), -1 if none */
int32_t tok_unk(const tokenizer_t *t);
int tok_add_bos(const tokenizer_t *t);
int tok_add_eos(const tokenizer_t *t);
int tok_type(const tokenizer_t *t, int32_t id); /* enum tok_type, -1 out of range */
/* Whether generation stops at this token: EOS, EOT, EOM and the reference's known
 * end-of-generation strings (<|end|>, <|endoftext|>, <|eot_id|>, <|im_end|>...). */
int tok_is_eog(const tokenizer_t *t, int32_t id);

#endif
