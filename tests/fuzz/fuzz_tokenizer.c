/* fuzz_tokenizer.c — libFuzzer target: encode arbitrary bytes with a synthetic SPM vocabulary,
 * decode back. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

/* No normal token is a prefix of a control token, so BPE merges cannot produce one (the
 * reference would merge into it, and it decodes to ""), which keeps the round trip exact.
 * Two self-contained vocabularies built with our writer at start-up: "plain" (control
 * tokens only, so text without parse_special round-trips) and "phi3" (general.name
 * turns on whitespace stripping after specials, and </s> is user-defined). */
static tokenizer_t *build(int phi3) {
    static const char *const extra[] = {"\xe2\x96\x81",
                                        "\xe2\x96\x81"
                                        "a",
                                        "\xe2\x96\x81"
                                        "ab",
                                        "ab",
                                        "bc",
                                        "abc",
                                        "a",
                                        "b",
                                        "c",
                                        "\xc3\xa9",
                                        "\xe2\x96\x81\xe2\x96\x81",
                                        "<",
                                        "s",
                                        ">",
                                        "|",
                                        "\xe6\x95\xb0"};
    static const char *const specials[] = {"<|user|>", "<|end|>", "<|assistant|>", "[INST]"};
    const char *toks[512];
    float scores[512];
    int32_t types[512];
    char bytes[256][8];
    int n = 0;
    toks[n] = "<unk>", types[n] = 2, scores[n++] = 0;
    toks[n] = "<s>", types[n] = 3, scores[n++] = 0;
    toks[n] = "</s>", types[n] = phi3 ? 4 : 3, scores[n++] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[n] = bytes[b], types[n] = 6, scores[n++] = 0;
    }
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        toks[n] = extra[i], types[n] = 1, scores[n++] = -(float)(i % 5);
    if (phi3) /* a token with U+2581 after a character: merges may span words */
        toks[n] = "c\xe2\x96\x81", types[n] = 1, scores[n++] = 1;
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        toks[n] = specials[i], types[n] = 3, scores[n++] = 0;
    gguf_writer_t *w = gguf_writer_new();
    gguf_w_str(w, "general.name", phi3 ? "fuzz-phi3" : "fuzz-plain");
    gguf_w_str(w, "tokenizer.ggml.model", "llama");
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, (size_t)n);
    gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)n);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n);
    void *mem;
    size_t len;
    if (gguf_w_to_mem(w, &mem, &len)) abort();
    gguf_writer_free(w);
    gguf_file_t f;
    char err[256];
    tokenizer_t *t = NULL;
    if (gguf_parse(mem, len, &f, err, sizeof err) || tok_load(&f, &t, err, sizeof err)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err);
        abort();
    }
    gguf_close(&f);
    free(mem); /* the tokenizer keeps its own copies */
    return t;
}

static int valid_utf8(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = p[i], need = c < 0x80                 ? 1
                                  : c >= 0xC2 && c <= 0xDF ? 2
                                  : c >= 0xE0 && c <= 0xEF ? 3
                                  : c >= 0xF0 && c <= 0xF4 ? 4
                                                           : 0;
        if (!need || i + need > n) return 0;
        for (unsigned k = 1; k < need; k++)
            if ((p[i + k] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F) ||
            (c == 0xF0 && p[i + 1] < 0x90) || (c == 0xF4 && p[i + 1] > 0x8F))
            return 0;
        i += need;
    }
    return 1;
}

static tokenizer_t *g_tok[2]; /* built once, read-only afterwards */
static tok_work_t *g_work;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok[0]) {
        g_tok[0] = build(0);
        g_tok[1] = build(1);
        g_work = tok_work_new();
    }
    if (size < 1) return 0;
    int flags = data[0];
    const tokenizer_t *t = g_tok[flags & 1];
    int add_special = (flags >> 1) & 1, parse_special = (flags >> 2) & 1;
    char *text = malloc(size - 1 ? size - 1 : 1);
    size_t len = size - 1;
    memcpy(text, data + 1, len);

    int need = tok_encode_w(t, g_work, text, len, add_special, parse_special, NULL, 0);
    if (need < 0) abort();
    int32_t *ids = malloc((size_t)(need ? need : 1) * sizeof *ids);
    int n = tok_encode_w(t, g_work, text, len, add_special, parse_special, ids, need);
    if (n != need) abort();
    if (tok_encode(t, text, len, add_special, parse_special, NULL, 0) != n) abort();
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok_n_vocab(t)) abort();

    buf_t dec, str;
    buf_init(&dec);
    buf_init(&str);
    if (tok_detokenize(t, ids, n, add_special, 0, &dec)) abort();
    /* plain vocabulary, no specials parsed, valid UTF-8 (the reference splits characters by
     * their lead byte alone, so a bad lead swallows the next bytes, even an escaped space):
     * decoding gives the input back exactly, unless the text holds U+2581 itself (it
     * decodes to a space, as in SentencePiece) */
    if (!(flags & 1) && !parse_special && !add_special &&
        valid_utf8((const unsigned char *)text, len) && !memmem(text, len, "\xe2\x96\x81", 3) &&
        (dec.len != len || (len && memcmp(dec.data, text, len))))
        abort();
    tok_stream_t s;
    tok_stream_init(&s);
    for (int i = 0; i < n; i++)
        if (tok_stream_push(&s, t, ids[i], flags & 8, &str)) abort();
    tok_stream_flush(&s, &str);
    if (!valid_utf8((const unsigned char *)str.data, str.len)) abort();
    buf_free(&dec);
    buf_free(&str);
    free(ids);
    free(text);
    return 0;
}
