/* vocab.c — SentencePiece-style BPE vocabulary learning and its GGUF metadata. */
#include "train/vocab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB 2048 /* the pair-count table is MAX_VOCAB^2 ints */

static const char SPACE[] = "\xE2\x96\x81"; /* U+2581 */

/* A word type: its symbol sequence and how often it occurs. */
typedef struct word {
    char *text;
    int *sym; /* (n) symbol ids (internal: 0-based over chars then merges) */
    int n;
    long freq;
} word_t;

typedef struct wtab {
    word_t *w; /* (cap) open addressing on text */
    size_t cap, n;
} wtab_t;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int wtab_add(wtab_t *t, const char *s, size_t n) {
    if ((t->n + 1) * 2 > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 4096;
        word_t *nw = calloc(nc, sizeof *nw);
        if (!nw) return -ENOMEM;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->w[i].text) continue;
            size_t j = fnv(t->w[i].text, strlen(t->w[i].text)) & (nc - 1);
            while (nw[j].text) j = (j + 1) & (nc - 1);
            nw[j] = t->w[i];
        }
        free(t->w);
        t->w = nw;
        t->cap = nc;
    }
    size_t j = fnv(s, n) & (t->cap - 1);
    while (t->w[j].text) {
        if (strlen(t->w[j].text) == n && !memcmp(t->w[j].text, s, n)) {
            t->w[j].freq++;
            return 0;
        }
        j = (j + 1) & (t->cap - 1);
    }
    if (!(t->w[j].text = strndup(s, n))) return -ENOMEM;
    t->w[j].freq = 1;
    t->n++;
    return 0;
}

/* Split one text into SentencePiece words (spaces escaped, a leading space added). */
static int add_text(wtab_t *t, const char *text, char *scratch, size_t cap) {
    size_t n = 0, len = strlen(text);
    if (3 * (len + 1) + 1 > cap) return -E2BIG;
    memcpy(scratch, SPACE, 3), n = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ')
            memcpy(scratch + n, SPACE, 3), n += 3;
        else
            scratch[n++] = text[i];
    }
    size_t start = 0;
    for (size_t i = 3; i <= n; i++) {
        if (i == n || !memcmp(scratch + i, SPACE, 3)) {
            int rc = wtab_add(t, scratch + start, i - start);
            if (rc) return rc;
            start = i;
            if (i < n) i += 2;
        }
    }
    return 0;
}

static size_t utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

void vocab_free(vocab_t *v) {
    for (int i = 0; v->pieces && i < v->n; i++) free(v->pieces[i]);
    free(v->pieces);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}

static int push(vocab_t *v, const char *s, size_t n, float score, int type) {
    if (!(v->pieces[v->n] = strndup(s, n))) return -ENOMEM;
    v->scores[v->n] = score;
    v->types[v->n] = type;
    v->n++;
    return 0;
}

int vocab_learn(const char *const *texts, size_t n_texts, int vocab_size, vocab_t *v) {
    wtab_t t = {0};
    size_t scap = 1 << 16;
    char *scratch = malloc(scap);
    int *pairs = NULL, rc = 0;
    char **syms = NULL; /* internal symbol strings */
    int n_sym = 0, max_sym = vocab_size - VOCAB_N_FIXED;
    memset(v, 0, sizeof *v);
    if (vocab_size <= VOCAB_N_FIXED + 8 || vocab_size > MAX_VOCAB) return -EINVAL;
    v->pieces = calloc((size_t)vocab_size, sizeof *v->pieces);
    v->scores = calloc((size_t)vocab_size, sizeof *v->scores);
    v->types = calloc((size_t)vocab_size, sizeof *v->types);
    syms = calloc((size_t)max_sym, sizeof *syms);
    pairs = calloc((size_t)max_sym * max_sym, sizeof *pairs);
    if (!scratch || !v->pieces || !v->scores || !v->types || !syms || !pairs) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n_texts && !rc; i++) rc = add_text(&t, texts[i], scratch, scap);
    if (rc) goto out;
    /* characters, in order of first appearance over the sorted-by-slot table (deterministic) */
    for (size_t i = 0; i < t.cap && !rc; i++) {
        word_t *w = &t.w[i];
        if (!w->text) continue;
        size_t len = strlen(w->text);
        if (!(w->sym = malloc(len * sizeof(int)))) {
            rc = -ENOMEM;
            break;
        }
        for (size_t p = 0; p < len;) {
            size_t cl = utf8_len((unsigned char)w->text[p]);
            if (p + cl > len) cl = len - p;
            int id = -1;
            for (int s = 0; s < n_sym; s++)
                if (strlen(syms[s]) == cl && !memcmp(syms[s], w->text + p, cl)) {
                    id = s;
                    break;
                }
            if (id < 0) {
                if (n_sym >= max_sym) {
                    rc = -E2BIG;
                    break;
                }
                if (!(syms[n_sym] = strndup(w->text + p, cl))) {
                    rc = -ENOMEM;
                    break;
                }
                id = n_sym++;
            }
            w->sym[w->n++] = id;
            p += cl;
        }
    }
    if (rc) goto out;
    int n_chars = n_sym;
    /* merges: the most frequent adjacent pair inside words, until the vocabulary is full */
    while (n_sym < max_sym) {
        memset(pairs, 0, (size_t)max_sym * max_sym * sizeof *pairs);
        for (size_t i = 0; i < t.cap; i++)
            for (int k = 0; t.w[i].text && k + 1 < t.w[i].n; k++)
                pairs[t.w[i].sym[k] * max_sym + t.w[i].sym[k + 1]] += (int)t.w[i].freq;
        int best = -1, bc = 1;
        for (int p = 0; p < n_sym * max_sym; p++)
            if (pairs[p] > bc) bc = pairs[p], best = p;
        if (best < 0) break;
        int a = best / max_sym, b = best % max_sym, ns = n_sym;
        size_t la = strlen(syms[a]), lb = strlen(syms[b]);
        if (!(syms[ns] = malloc(la + lb + 1))) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(syms[ns], syms[a], la);
        memcpy(syms[ns] + la, syms[b], lb + 1);
        n_sym++;
        for (size_t i = 0; i < t.cap; i++) {
            word_t *w = &t.w[i];
            int j = 0;
            for (int k = 0; w->text && k < w->n; k++) {
                if (k + 1 < w->n && w->sym[k] == a && w->sym[k + 1] == b)
                    w->sym[j++] = ns, k++;
                else
                    w->sym[j++] = w->sym[k];
            }
            if (w->text) w->n = j;
        }
    }
    /* the vocabulary: fixed tokens, bytes, characters, merges (score = -merge rank) */
    if ((rc = push(v, "<unk>", 5, 0, TOK_TYPE_UNKNOWN)) ||
        (rc = push(v, "<s>", 3, 0, TOK_TYPE_CONTROL)) ||
        (rc = push(v, "</s>", 4, 0, TOK_TYPE_CONTROL)))
        goto out;
    for (int b = 0; b < 256 && !rc; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        rc = push(v, s, strlen(s), 0, TOK_TYPE_BYTE);
    }
    for (int s = 0; s < n_sym && !rc; s++) {
        float score = s < n_chars ? -(float)(n_sym + s) : -(float)(s - n_chars);
        rc = push(v, syms[s], strlen(syms[s]), score, TOK_TYPE_NORMAL);
    }
out:
    for (size_t i = 0; i < t.cap; i++) free(t.w[i].text), free(t.w[i].sym);
    free(t.w);
    for (int s = 0; syms && s < n_sym; s++) free(syms[s]);
    free(syms);
    free(pairs);
    free(scratch);
    if (rc) vocab_free(v);
    return rc;
}

int vocab_write_gguf(const vocab_t *v, gguf_writer_t *w) {
    int rc;
    if ((rc = gguf_w_str(w, "tokenizer.ggml.model", "llama")) ||
        (rc = gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->pieces,
                             (size_t)v->n)) ||
        (rc = gguf_w_arr_f32(w, "tokenizer.ggml.scores", v->scores, (size_t)v->n)) ||
        (rc = gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v->types, (size_t)v->n)) ||
        (rc = gguf_w_u32(w, "tokenizer.ggml.bos_token_id", VOCAB_BOS)) ||
        (rc = gguf_w_u32(w, "tokenizer.ggml.eos_token_id", VOCAB_EOS)) ||
        (rc = gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", VOCAB_UNK)) ||
        (rc = gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 1)) ||
        (rc = gguf_w_bool(w, "tokenizer.ggml.add_eos_token", 0)))
        return rc;
    return 0;
}

int vocab_tokenizer(const vocab_t *v, tokenizer_t **out) {
    gguf_writer_t *w = gguf_writer_new();
    void *mem = NULL;
    size_t len = 0;
    gguf_file_t f;
    char err[256];
    int rc = w ? vocab_write_gguf(v, w) : -ENOMEM;
    if (!rc) rc = gguf_w_str(w, "general.architecture", "llama");
    if (!rc) rc = gguf_w_to_mem(w, &mem, &len);
    gguf_writer_free(w);
    if (rc) return rc;
    if (gguf_parse(mem, len, &f, err, sizeof err) != 0) {
        free(mem);
        return -EINVAL;
    }
    rc = tok_load(&f, out, err, sizeof err);
    gguf_close(&f);
    free(mem);
    return rc;
}
