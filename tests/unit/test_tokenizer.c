/* test_tokenizer.c — SPM tokenizer against the reference vectors (vocab tests and ref JSON),
 * decoding. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "core/buf.h"
#include "core/json.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

static char g_ref[1024];

static char *read_all(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, fp) != (size_t)n) {
        free(p);
        p = NULL;
    }
    if (p) p[n] = 0;
    fclose(fp);
    *len = (size_t)n;
    return p;
}

static tokenizer_t *load(const char *rel, gguf_file_t *f) {
    char path[1200], err[256];
    snprintf(path, sizeof path, "%s/%s", g_ref, rel);
    if (gguf_open(path, f, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return NULL;
    }
    tokenizer_t *t = NULL;
    int rc = tok_load(f, &t, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    return t;
}

static void fmt_ids(const int32_t *ids, int n, char *out, size_t cap) {
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < n && o + 16 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, " %d", ids[i]);
}

/* The vocab test files: inputs separated by "\n__ggml_vocab_test__\n" (the newline before
 * the separator belongs to it), one output line per input. Returns vectors checked. */
static int run_vocab_vectors(const char *vocab) {
    gguf_file_t f;
    tokenizer_t *t = load(vocab, &f);
    if (!t) return 0;
    char path[1200];
    size_t il, ol;
    snprintf(path, sizeof path, "%s/%s.inp", g_ref, vocab);
    char *inp = read_all(path, &il);
    snprintf(path, sizeof path, "%s/%s.out", g_ref, vocab);
    char *outp = read_all(path, &ol);
    CHECK(inp && outp);
    if (!inp || !outp) return 0;
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    const char *p = inp, *o = outp;
    int count = 0, bad = 0;
    tok_work_t *w = tok_work_new();
    buf_t dec;
    buf_init(&dec);
    for (;;) {
        const char *s = strstr(p, SEP);
        if (!s) break;
        const char *nl = strchr(o, '\n');
        if (!nl) break;
        size_t len = (size_t)(s - p);
        int32_t ids[4096];
        int n = tok_encode_w(t, w, p, len, 0, 0, ids, 4096);
        char got[16384], want[16384];
        fmt_ids(ids, n, got, sizeof got);
        snprintf(want, sizeof want, "%.*s", (int)(nl - o), o);
        if (strcmp(got, want)) {
            bad++;
            fprintf(stderr, "%s: input %d \"%.*s\"\n  got %s\n want %s\n", vocab, count, (int)len,
                    p, got, want);
        }
        /* parse_special does not matter for these inputs, nor does the count-only call */
        int32_t ids2[4096];
        CHECK_EQ_INT(tok_encode_w(t, w, p, len, 0, 1, ids2, 4096), n);
        CHECK(n <= 0 || memcmp(ids, ids2, (size_t)n * 4) == 0);
        CHECK_EQ_INT(tok_encode(t, p, len, 0, 0, NULL, 0), n);
        /* decode: the pieces, minus the leading space the encoder added, give the text back */
        buf_reset(&dec);
        CHECK_EQ_INT(tok_detokenize(t, ids, n, 0, 0, &dec), 0);
        CHECK_MSG(dec.len == len && (len == 0 || !memcmp(dec.data, p, len)),
                  "%s: detokenize of input %d gives \"%s\"", vocab, count,
                  dec.data ? dec.data : "");
        count++;
        p = s + sizeof SEP - 1;
        o = nl + 1;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(*p, 0); /* consumed the whole input file */
    CHECK(count >= 40);
    buf_free(&dec);
    tok_work_free(w);
    free(inp);
    free(outp);
    tok_free(t);
    gguf_close(&f);
    return count;
}

/* Every tokenize entry in expected/<model>.ref.json. */
static int run_ref_json(const char *model) {
    char path[1200];
    snprintf(path, sizeof path, "models/%s.gguf", model);
    gguf_file_t f;
    tokenizer_t *t = load(path, &f);
    if (!t) return 0;
    snprintf(path, sizeof path, "%s/expected/%s.ref.json", g_ref, model);
    size_t len;
    char *js = read_all(path, &len);
    CHECK(js != NULL);
    if (!js) return 0;
    size_t cap = 200000;
    json_tok_t *toks = malloc(cap * sizeof *toks);
    json_doc_t d;
    int rc = json_parse(js, len, toks, cap, 64, &d, NULL);
    CHECK(rc > 0);
    int arr = rc > 0 ? json_obj_get(&d, 0, "tokenize") : -1;
    CHECK(arr >= 0);
    int count = 0;
    buf_t text;
    buf_init(&text);
    for (size_t i = 0; arr >= 0; i++) {
        int e = json_arr_get(&d, arr, i);
        if (e < 0) break;
        buf_reset(&text);
        json_str_unescape(&d, json_obj_get(&d, e, "text"), &text);
        int as = json_get_bool(&d, json_obj_get(&d, e, "add_special"));
        int ps = json_get_bool(&d, json_obj_get(&d, e, "parse_special"));
        int ta = json_obj_get(&d, e, "tokens");
        int32_t want[1024], got[1024];
        int nw = 0;
        for (size_t k = 0;; k++) {
            int x = json_arr_get(&d, ta, k);
            if (x < 0) break;
            int64_t v;
            json_get_i64(&d, x, &v);
            want[nw++] = (int32_t)v;
        }
        int ng = tok_encode(t, text.data ? text.data : "", text.len, as, ps, got, 1024);
        char gs[8192], ws[8192];
        fmt_ids(got, ng, gs, sizeof gs);
        fmt_ids(want, nw, ws, sizeof ws);
        CHECK_MSG(!strcmp(gs, ws),
                  "%s: \"%s\" (add_special %d parse_special %d)\n  got %s\n want %s", model,
                  text.data ? text.data : "", as, ps, gs, ws);
        count++;
    }
    CHECK(count >= 10);

    /* Every generated step: our piece of the reference's token id, sanitized on its own
     * (a lone byte of a multi-byte character becomes U+FFFD, as the reference shows it),
     * equals the reference's step text. */
    int comps = rc > 0 ? json_obj_get(&d, 0, "completions") : -1;
    int steps_ok = 0, steps = 0, odd = 0;
    buf_t want, got;
    buf_init(&want);
    buf_init(&got);
    for (size_t i = 0; comps >= 0; i++) {
        int c = json_arr_get(&d, comps, i);
        if (c < 0) break;
        int st = json_obj_get(&d, c, "steps");
        for (size_t k = 0;; k++) {
            int e = json_arr_get(&d, st, k);
            if (e < 0) break;
            int64_t id;
            json_get_i64(&d, json_obj_get(&d, e, "id"), &id);
            buf_reset(&want);
            buf_reset(&got);
            json_str_unescape(&d, json_obj_get(&d, e, "text"), &want);
            tok_stream_t ts;
            tok_stream_init(&ts);
            tok_stream_push(&ts, t, (int32_t)id, 0, &got);
            tok_stream_flush(&ts, &got);
            steps++;
            if (got.len == want.len && (!got.len || !memcmp(got.data, want.data, got.len)))
                steps_ok++;
            else if (want.len == got.len + 3 && !memcmp(want.data, "\xef\xbf\xbd", 3) &&
                     !memcmp(want.data + 3, got.data, got.len))
                odd++; /* phi3 Q8_0 token 6126 "▁aber" shows as "\ufffd aber" in the
                        * reference's step text although the token is plain ASCII and the
                        * step before ends on a complete character: an artifact of how
                        * the reference printed steps, not of the piece */
            else
                fprintf(stderr, "%s: token %lld piece \"%s\" vs reference \"%s\"\n", model,
                        (long long)id, got.data ? got.data : "", want.data ? want.data : "");
        }
    }
    CHECK(steps >= 50);
    CHECK(odd <= 1);
    CHECK_EQ_INT(steps_ok + odd, steps);
    buf_free(&want);
    buf_free(&got);
    buf_free(&text);
    free(toks);
    free(js);
    tok_free(t);
    gguf_close(&f);
    return count;
}

static void test_specials(void) {
    gguf_file_t f;
    tokenizer_t *t = load("models/phi3-tiny-Q8_0.gguf", &f);
    if (!t) return;
    int32_t ids[64];
    CHECK_EQ_INT(tok_n_vocab(t), 32064);
    CHECK_EQ_INT(tok_bos(t), 1);
    CHECK_EQ_INT(tok_eos(t), 32000);
    CHECK_EQ_INT(tok_eot(t), 32007); /* <|end|> */
    CHECK(tok_is_eog(t, 32007) && tok_is_eog(t, 32000) && !tok_is_eog(t, 1));
    CHECK_EQ_INT(tok_lookup(t, "<|user|>", 8), 32010);
    CHECK_EQ_INT(tok_lookup(t, "<|nope|>", 8), -1);
    /* without parse_special, control strings are plain text */
    int n = tok_encode(t, "<|user|>", 8, 0, 0, ids, 64);
    CHECK(n > 1 && ids[0] != 32010);
    n = tok_encode(t, "<|user|>", 8, 0, 1, ids, 64);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ids[0], 32010);
    /* "</s>" is user-defined in this vocabulary: always matched */
    n = tok_encode(t, "a</s>", 5, 0, 0, ids, 64);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ids[1], 2);
    /* cap smaller than the count: the count is still returned, only cap ids written */
    ids[1] = -5;
    n = tok_encode(t, "Hello world", 11, 1, 0, ids, 1);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], -5);
    size_t pl;
    const char *p = tok_piece(t, 32007, 0, &pl);
    CHECK_EQ_INT(pl, 0);
    p = tok_piece(t, 32007, 1, &pl);
    CHECK(pl == 7 && !memcmp(p, "<|end|>", 7));
    p = tok_piece(t, 15043, 0, &pl); /* "▁Hello" */
    CHECK(pl == 6 && !memcmp(p, " Hello", 6));
    p = tok_piece(t, 3 + 0x41, 0, &pl); /* <0x41> */
    CHECK(pl == 1 && p[0] == 'A');
    p = tok_piece(t, 32011, 1, &pl); /* [PAD32011] is "unknown" type: shown when special */
    CHECK(pl == 10);
    p = tok_piece(t, 99999, 1, &pl);
    CHECK(pl == 0 && p[0] == 0);
    p = tok_text(t, 15043, &pl);
    CHECK(pl == 8 && !memcmp(p, "\xe2\x96\x81Hello", 8));

    /* detokenize: BOS dropped keeps the space, BOS kept eats it */
    buf_t b;
    buf_init(&b);
    int32_t seq[] = {1, 15043, 3186};
    tok_detokenize(t, seq, 3, 1, 0, &b);
    CHECK_EQ_STR(b.data, " Hello world");
    buf_reset(&b);
    tok_detokenize(t, seq, 3, 0, 0, &b);
    CHECK_EQ_STR(b.data, " Hello world");
    buf_reset(&b);
    tok_detokenize(t, seq + 1, 2, 0, 0, &b);
    CHECK_EQ_STR(b.data, "Hello world");
    buf_reset(&b);
    tok_detokenize(t, seq, 3, 0, 1, &b);
    CHECK_EQ_STR(b.data, "<s> Hello world");
    buf_free(&b);
    tok_free(t);
    gguf_close(&f);
}

static void test_stream(void) {
    tok_stream_t s;
    buf_t b;
    buf_init(&b);
    tok_stream_init(&s);
    /* "é" split over two pushes, then "😀" one byte at a time */
    tok_stream_bytes(&s, "a\xc3", 2, &b);
    CHECK_EQ_STR(b.data, "a");
    tok_stream_bytes(&s, "\xa9", 1, &b);
    CHECK_EQ_STR(b.data, "a\xc3\xa9");
    const char *emo = "\xf0\x9f\x98\x80";
    for (int i = 0; i < 4; i++) {
        size_t before = b.len;
        tok_stream_bytes(&s, emo + i, 1, &b);
        CHECK_EQ_INT(b.len - before, i == 3 ? 4 : 0);
    }
    CHECK_EQ_STR(b.data, "a\xc3\xa9\xf0\x9f\x98\x80");
    /* invalid: lone continuation, interrupted sequence, overlong, surrogate */
    buf_reset(&b);
    tok_stream_bytes(&s, "\x80x", 2, &b);
    CHECK_EQ_STR(b.data, "\xef\xbf\xbdx");
    buf_reset(&b);
    tok_stream_bytes(&s, "\xe2\x82", 2, &b);
    CHECK_EQ_INT(b.len, 0);
    tok_stream_bytes(&s, "y", 1, &b);
    CHECK_EQ_STR(b.data, "\xef\xbf\xbdy");
    buf_reset(&b);
    tok_stream_bytes(&s, "\xc0\xaf\xed\xa0\x80", 5, &b);
    CHECK_EQ_STR(b.data, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    /* flush turns a dangling partial into U+FFFD */
    buf_reset(&b);
    tok_stream_bytes(&s, "z\xf0\x9f", 3, &b);
    CHECK_EQ_STR(b.data, "z");
    tok_stream_flush(&s, &b);
    CHECK_EQ_STR(b.data, "z\xef\xbf\xbd");
    tok_stream_flush(&s, &b);
    CHECK_EQ_STR(b.data, "z\xef\xbf\xbd");
    buf_free(&b);
}

/* The llama emoji is byte-fallback tokens: streaming them yields the emoji once complete. */
static void test_stream_tokens(void) {
    gguf_file_t f;
    tokenizer_t *t = load("tokenizer/ggml-vocab-llama-spm.gguf", &f);
    if (!t) return;
    const char *txt = "\xf0\x9f\xa6\x99 llama";
    int32_t ids[32];
    int n = tok_encode(t, txt, strlen(txt), 1, 0, ids, 32);
    tok_stream_t s;
    tok_stream_init(&s);
    buf_t b;
    buf_init(&b);
    int partial_seen = 0;
    for (int i = 0; i < n; i++) {
        size_t before = b.len;
        tok_stream_push(&s, t, ids[i], 0, &b);
        if (b.len == before && i > 1) partial_seen++;
    }
    tok_stream_flush(&s, &b);
    CHECK_EQ_STR(b.data, " \xf0\x9f\xa6\x99 llama");
    CHECK_EQ_INT(partial_seen, 3); /* three bytes held back */
    buf_free(&b);

    /* steady-state speed: counting tokens of a ~1 KB prompt in microseconds */
    char prompt[1100];
    size_t pl = 0;
    while (pl < 1000)
        pl += (size_t)snprintf(prompt + pl, sizeof prompt - pl, "%s",
                               "Normalize the order: lgr pep pzza x2, 1 coke. ");
    tok_work_t *w = tok_work_new();
    int32_t out[2048];
    int n0 = tok_encode_w(t, w, prompt, pl, 1, 1, out, 2048);
    struct timespec a, z;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int iters = 2000;
    for (int i = 0; i < iters; i++) CHECK_EQ_INT(tok_encode_w(t, w, prompt, pl, 1, 1, NULL, 0), n0);
    clock_gettime(CLOCK_MONOTONIC, &z);
    double us = ((z.tv_sec - a.tv_sec) * 1e9 + (z.tv_nsec - a.tv_nsec)) / 1e3 / iters;
    printf("tokenize %zu bytes -> %d tokens: %.1f us\n", pl, n0, us);
    CHECK(us < 2000); /* generous: sanitizer builds are slow */
    tok_work_free(w);
    tok_free(t);
    gguf_close(&f);
}

static void test_reject(void) {
    gguf_writer_t *w = gguf_writer_new();
    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    void *mem;
    size_t len;
    gguf_w_to_mem(w, &mem, &len);
    gguf_writer_free(w);
    gguf_file_t f;
    char err[256];
    CHECK_EQ_INT(gguf_parse(mem, len, &f, err, sizeof err), 0);
    tokenizer_t *t = NULL;
    CHECK(tok_load(&f, &t, err, sizeof err) < 0);
    CHECK(t == NULL && strstr(err, "gpt2") != NULL);
    gguf_close(&f);
    free(mem);
}

/* A vocabulary where a token spans a word boundary ("a▁"): the word-by-word shortcut
 * must switch off and the merge happen as in one whole-text pass. */
static void test_cross_word_merge(void) {
    const char *toks[] = {"<unk>",
                          "<s>",
                          "</s>",
                          "\xe2\x96\x81",
                          "a",
                          "b",
                          "\xe2\x96\x81"
                          "a",
                          "a\xe2\x96\x81",
                          "\xe2\x96\x81"
                          "b"};
    float sc[] = {0, 0, 0, -1, -1, -1, -3, -2, -3};
    int32_t ty[] = {2, 3, 3, 1, 1, 1, 1, 1, 1};
    for (int with_span = 0; with_span < 2; with_span++) {
        gguf_writer_t *w = gguf_writer_new();
        gguf_w_str(w, "tokenizer.ggml.model", "llama");
        gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, with_span ? 9 : 7);
        gguf_w_arr_f32(w, "tokenizer.ggml.scores", sc, with_span ? 9 : 7);
        gguf_w_arr_i32(w, "tokenizer.ggml.token_type", ty, with_span ? 9 : 7);
        void *mem;
        size_t len;
        gguf_w_to_mem(w, &mem, &len);
        gguf_writer_free(w);
        gguf_file_t f;
        char err[256];
        tokenizer_t *t = NULL;
        CHECK_EQ_INT(gguf_parse(mem, len, &f, err, sizeof err), 0);
        CHECK_EQ_INT(tok_load(&f, &t, err, sizeof err), 0);
        int32_t ids[16];
        /* "a b" -> ▁ a ▁ b. With "a▁" (score -2, best) it merges first: ▁ | a▁ | b.
         * Without it: ▁a, ▁ then b (no "▁b" token in the 7-token vocab). */
        int n = tok_encode(t, "a b", 3, 0, 0, ids, 16);
        if (with_span) {
            int32_t want[] = {3, 7, 5};
            CHECK(n == 3 && !memcmp(ids, want, sizeof want));
        } else {
            int32_t want[] = {6, 3, 5};
            CHECK(n == 3 && !memcmp(ids, want, sizeof want));
        }
        tok_free(t);
        gguf_close(&f);
        free(mem);
    }
}

int main(void) {
    const char *r = getenv("TOLLGATE_REF");
    snprintf(g_ref, sizeof g_ref, "%s", r && *r ? r : "../shared/ref");
    int nv = run_vocab_vectors("tokenizer/ggml-vocab-llama-spm.gguf");
    nv += run_vocab_vectors("tokenizer/ggml-vocab-phi-3.gguf");
    static const char *const models[] = {"llama-tiny-F16",    "llama-tiny-Q8_0", "llama-tiny-Q4_0",
                                         "llama-tiny-Q4_K_M", "llama-tiny-Q6_K", "phi3-tiny-Q4_K_M",
                                         "phi3-tiny-Q8_0"};
    int nj = 0;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) nj += run_ref_json(models[i]);
    printf("reference vectors: %d vocab-test inputs, %d ref.json tokenize entries\n", nv, nj);
    test_specials();
    test_stream();
    test_stream_tokens();
    test_reject();
    test_cross_word_merge();
    return check_summary("test_tokenizer");
}
