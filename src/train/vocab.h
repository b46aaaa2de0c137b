/* vocab.h — learn a small SentencePiece-BPE vocabulary from text and write it as GGUF
 * tokenizer metadata, so that the standard tokenizer (model/tokenizer.h) serves it. */
#ifndef TOLLGATE_TRAIN_VOCAB_H
#define TOLLGATE_TRAIN_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "model/gguf.h"
#include "model/tokenizer.h"

/* Fixed ids at the start of every learned vocabulary (the llama convention). */
#define VOCAB_UNK 0
#define VOCAB_BOS 1
#define VOCAB_EOS 2
#define VOCAB_BYTE0 3 /* <0x00>..<0xFF> are ids 3..258 */
#define VOCAB_N_FIXED 259

typedef struct vocab {
    char **pieces;  /* (n) token strings, spaces as U+2581 */
    float *scores;  /* (n) merge order: an earlier merge scores higher */
    int32_t *types; /* (n) enum tok_type */
    int n;
} vocab_t;

/* Learn a vocabulary of at most vocab_size pieces from texts[0..n): the fixed tokens,
 * every character seen, then BPE merges within words (a word is U+2581 followed by
 * non-spaces, as SentencePiece splits) by frequency, ties to the lowest pair ids.
 * Deterministic. 0 or a negative errno. */
int vocab_learn(const char *const *texts, size_t n, int vocab_size, vocab_t *out);
void vocab_free(vocab_t *v);

/* Write tokenizer.ggml.* (model "llama", tokens, scores, token_type, bos/eos/unk ids,
 * add_bos_token) to w. 0 or a negative errno. */
int vocab_write_gguf(const vocab_t *v, gguf_writer_t *w);

/* A tokenizer for v, built through an in-memory GGUF so that it is exactly what the
 * engine will load. 0 or a negative errno. */
int vocab_tokenizer(const vocab_t *v, tokenizer_t **out);

#endif
