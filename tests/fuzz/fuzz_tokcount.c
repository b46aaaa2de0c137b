/* fuzz_tokcount.c — libFuzzer target: the gateway's prompt count on any client JSON body
 * (chat and completion forms, every chat template, estimate and exact), which runs on
 * untrusted input before anything is forwarded. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/json.h"
#include "gateway/tokcount.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

#define NTOKS 8192

/* A small SentencePiece vocabulary (byte fallback, a few pieces, the turn markers of the
 * templates as control tokens), written and parsed in memory once. */
static tokenizer_t *build(void) {
    static const char *const pieces[] = {"\xe2\x96\x81", "\xe2\x96\x81p", "pe", "zz", "a",
                                         "[INST]", "[/INST]", "<|user|>", "<|end|>",
                                         "<|assistant|>", "<|im_start|>", "<|im_end|>"};
    const char *toks[300];
    float scores[300];
    int32_t types[300];
    char bytes[256][8];
    int n = 0;
    toks[n] = "<unk>", types[n] = 2, scores[n++] = 0;
    toks[n] = "<s>", types[n] = 3, scores[n++] = 0;
    toks[n] = "</s>", types[n] = 3, scores[n++] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[n] = bytes[b], types[n] = 6, scores[n++] = 0;
    }
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        toks[n] = pieces[i], types[n] = i >= 5 ? 3 : 1, scores[n++] = -(float)i;
    gguf_writer_t *w = gguf_writer_new();
    gguf_w_str(w, "general.name", "fuzz-tokcount");
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
        fprintf(stderr, "fuzz_tokcount: %s\n", err);
        abort();
    }
    gguf_close(&f);
    free(mem);
    return t;
}

static tokenizer_t *g_tok; /* built once, read-only afterwards */
static tokcount_work_t *g_work;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_tok_t toks[NTOKS];
    if (!g_tok) {
        g_tok = build();
        g_work = tokcount_work_new();
        if (!g_work) abort();
    }
    json_doc_t d;
    if (json_parse((const char *)data, size, toks, NTOKS, 64, &d, NULL) < 0) return 0;
    for (int is_chat = 0; is_chat <= 1; is_chat++) {
        int exact = -1;
        int64_t est = tokcount_request(NULL, g_work, &d, is_chat, &exact);
        if (est < 0 && est != -EINVAL && est != -ENOMEM) abort();
        if (exact != 0 && exact != 1) abort();
        for (int tm = CHAT_TMPL_LLAMA2; tm <= CHAT_TMPL_CHATML; tm++) {
            tokcount_t tc = {.tok = g_tok, .tmpl = (chat_tmpl_t)tm, .path = NULL};
            int ex = -1;
            int64_t c = tokcount_request(&tc, g_work, &d, is_chat, &ex);
            if (c < 0 && c != -EINVAL && c != -ENOMEM) abort();
            if (ex != 0 && ex != 1) abort();
            /* the shape of the body decides whether it can be counted, not the vocabulary */
            if ((c == -EINVAL) != (est == -EINVAL)) abort();
        }
    }
    return 0;
}
