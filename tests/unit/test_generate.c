/* test_generate.c — the decode loop on a reference model: greedy path, stop strings across tokens, max_tokens, context limit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "model/tokenizer.h"

typedef struct fixture {
    model_t m;
    tokenizer_t *tok;
    forward_state_t *fs;
} fixture_t;

typedef struct run {
    buf_t text;    /* concatenation of every piece handed out */
    int ids[256];  /* tokens reported (has_token) */
    int n;
    int steps;     /* gen_step calls that returned a token or finished */
    gen_finish_t finish;
    int n_gen;
} run_t;

static int setup(fixture_t *f, const char *file, int n_ctx) {
    const char *ref = getenv("TOLLGATE_REF");
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/models/%s", ref && *ref ? ref : "../shared/ref", file);
    memset(f, 0, sizeof *f);
    if (model_load(path, &f->m, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    if (tok_load(&f->m.file, &f->tok, err, sizeof err)) {
        fprintf(stderr, "tokenizer: %s\n", err);
        return -1;
    }
    return forward_state_new(&f->m, n_ctx, &f->fs);
}

static void teardown(fixture_t *f) {
    forward_state_free(f->fs);
    tok_free(f->tok);
    model_free(&f->m);
}

static int encode(fixture_t *f, const char *text, int32_t *ids, int cap) {
    return tok_encode(f->tok, text, strlen(text), 1, 0, ids, cap);
}

static gen_params_t greedy(int max_tokens) {
    gen_params_t p;
    memset(&p, 0, sizeof p);
    p.max_tokens = max_tokens;
    p.sp.top_p = 1.0f;
    p.sp.want_logprobs = 1;
    p.sp.n_top = 2;
    return p;
}

/* Run a whole generation, collecting text and tokens. 0 or the error. */
static int run(fixture_t *f, const int32_t *prompt, int n, const gen_params_t *p, run_t *r) {
    gen_t g;
    memset(r, 0, sizeof *r);
    buf_init(&r->text);
    int rc = gen_init(&g, &f->m, f->tok, f->fs, prompt, n, p);
    if (rc) return rc;
    while ((rc = gen_prefill(&g, 3)) == 0) {
    }
    if (rc < 0) goto out;
    gen_out_t o = {.text = &r->text};
    do {
        rc = gen_step(&g, &o);
        if (o.has_token && r->n < 256) r->ids[r->n++] = o.tok.r.id;
        if (o.has_token) CHECK(o.tok.r.logprob <= 0.0f && o.tok.r.n_top == 2);
        r->steps++;
    } while (rc == 1);
    r->finish = g.finish;
    r->n_gen = g.n_gen;
    CHECK_EQ_INT(g.text.len, r->text.len); /* everything kept was handed out */
out:
    gen_free(&g);
    return rc < 0 ? rc : 0;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void test_greedy_path(fixture_t *f) {
    int32_t prompt[64];
    int n = encode(f, "Once upon a time", prompt, 64);
    CHECK(n > 1 && prompt[0] == tok_bos(f->tok));
    /* the forward helper's own greedy path */
    int want[24];
    const float *lg = NULL;
    for (int i = 0; i < n; i++) lg = forward(&f->m, f->fs, prompt[i], i);
    for (int i = 0; i < 24; i++) {
        want[i] = argmax(lg, f->m.hp.n_vocab);
        lg = forward(&f->m, f->fs, want[i], n + i);
    }
    gen_params_t p = greedy(24);
    run_t r;
    CHECK_EQ_INT(run(f, prompt, n, &p, &r), 0);
    int eog_at = 24;
    for (int i = 0; i < 24; i++)
        if (tok_is_eog(f->tok, want[i])) {
            eog_at = i;
            break;
        }
    CHECK_EQ_INT(r.n, eog_at);
    int same = 1;
    for (int i = 0; i < r.n; i++) same &= r.ids[i] == want[i];
    CHECK(same);
    CHECK_EQ_INT(r.finish, eog_at == 24 ? GEN_FINISH_LENGTH : GEN_FINISH_STOP);
    /* the streamed text is the detokenized sequence */
    buf_t whole;
    buf_init(&whole);
    tok_stream_t ds;
    tok_stream_init(&ds);
    for (int i = 0; i < r.n; i++) tok_stream_push(&ds, f->tok, r.ids[i], 0, &whole);
    tok_stream_flush(&ds, &whole);
    CHECK_EQ_STR(r.text.data ? r.text.data : "", whole.data ? whole.data : "");
    printf("  greedy: %d tokens, \"%s\"\n", r.n, r.text.data ? r.text.data : "");

    /* max_tokens cuts with "length" */
    buf_t full;
    full = r.text;
    p = greedy(5);
    CHECK_EQ_INT(run(f, prompt, n, &p, &r), 0);
    CHECK_EQ_INT(r.finish, GEN_FINISH_LENGTH);
    CHECK_EQ_INT(r.n_gen, 5);
    CHECK(r.text.len <= full.len && !memcmp(r.text.data, full.data, r.text.len));
    buf_free(&r.text);

    /* stop strings: cut at the first occurrence, across token boundaries */
    size_t L = full.len;
    CHECK(L > 40);
    const size_t cuts[][2] = {{3, 9}, {10, 25}, {L - 6, L - 1}, {0, 4}};
    for (size_t c = 0; c < 4; c++) {
        size_t a = cuts[c][0], b = cuts[c][1];
        /* keep the stop string on UTF-8 boundaries */
        while (a > 0 && (full.data[a] & 0xC0) == 0x80) a--;
        while (b < L && (full.data[b] & 0xC0) == 0x80) b++;
        char stop[64];
        snprintf(stop, sizeof stop, "%.*s", (int)(b - a), full.data + a);
        const char *first = strstr(full.data, stop);
        p = greedy(24);
        p.stop[0] = "\x01never";
        p.stop[1] = stop;
        p.n_stop = 2;
        CHECK_EQ_INT(run(f, prompt, n, &p, &r), 0);
        CHECK_EQ_INT(r.finish, GEN_FINISH_STOP);
        CHECK_EQ_INT(r.text.len, (size_t)(first - full.data));
        CHECK(!memcmp(r.text.data ? r.text.data : "", full.data, r.text.len));
        CHECK(!r.text.data || !strstr(r.text.data, stop));
        buf_free(&r.text);
    }
    /* a stop string whose start appears but never completes: all text, held back then released */
    char partial[64];
    snprintf(partial, sizeof partial, "%.*s\x02", (int)(L > 8 ? 8 : L), full.data + L - 8);
    p = greedy(24);
    p.stop[0] = partial;
    p.n_stop = 1;
    CHECK_EQ_INT(run(f, prompt, n, &p, &r), 0);
    CHECK_EQ_STR(r.text.data, full.data);
    CHECK_EQ_INT(r.finish, GEN_FINISH_LENGTH);
    buf_free(&r.text);
    buf_free(&whole);
    buf_free(&full);
}

static void test_limits(void) {
    fixture_t f;
    if (setup(&f, "llama-tiny-Q8_0.gguf", 16) != 0) {
        CHECK(0);
        return;
    }
    int32_t prompt[64];
    int n = encode(&f, "The quick brown fox jumps over the lazy dog.", prompt, 64);
    CHECK(n > 12 && n < 16);
    gen_params_t p = greedy(0); /* no max_tokens: until the context is full */
    run_t r;
    CHECK_EQ_INT(run(&f, prompt, n, &p, &r), 0);
    if (r.finish == GEN_FINISH_LENGTH) CHECK_EQ_INT(r.n_gen, 16 - n + 1);
    buf_free(&r.text);
    n = encode(&f, "The quick brown fox jumps over the lazy dog. And again, the quick brown fox.",
               prompt, 64);
    CHECK(n >= 16);
    gen_t g;
    CHECK_EQ_INT(gen_init(&g, &f.m, f.tok, f.fs, prompt, n, &p), -E2BIG);
    CHECK_EQ_INT(gen_init(&g, &f.m, f.tok, f.fs, prompt, 0, &p), -EINVAL);
    p.stop[0] = "";
    p.n_stop = 1;
    CHECK_EQ_INT(gen_init(&g, &f.m, f.tok, f.fs, prompt, 3, &p), -EINVAL);
    teardown(&f);
}

/* Sampling with a seed is reproducible through the whole loop. */
static void test_seeded(fixture_t *f) {
    int32_t prompt[64];
    int n = encode(f, "1 2 3 4 5", prompt, 64);
    gen_params_t p = greedy(16);
    p.sp.temperature = 1.0f;
    p.sp.top_p = 0.95f;
    p.sp.seed = 77;
    run_t a, b;
    CHECK_EQ_INT(run(f, prompt, n, &p, &a), 0);
    CHECK_EQ_INT(run(f, prompt, n, &p, &b), 0);
    CHECK_EQ_INT(a.n, b.n);
    CHECK(!memcmp(a.ids, b.ids, sizeof a.ids));
    CHECK_EQ_STR(a.text.data ? a.text.data : "", b.text.data ? b.text.data : "");
    buf_free(&a.text);
    buf_free(&b.text);
}

int main(void) {
    fixture_t f;
    if (setup(&f, "llama-tiny-Q8_0.gguf", 256) != 0) {
        CHECK(0);
        return check_summary("test_generate");
    }
    test_greedy_path(&f);
    test_seeded(&f);
    teardown(&f);
    test_limits();
    return check_summary("test_generate");
}
