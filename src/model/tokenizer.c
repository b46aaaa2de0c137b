/* tokenizer.c — SentencePiece-BPE encode/decode over a GGUF vocabulary, matching llama.cpp's SPM
 * path. */
#define _GNU_SOURCE /* memmem, qsort_r */
#include "model/tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATTR_LSTRIP 1 /* whitespace before the special token is dropped */
#define ATTR_RSTRIP 2 /* whitespace after it is dropped */
#define ATTR_EOG 4    /* generation ends here */

struct tokenizer {
    int n;       /* vocabulary size */
    char *arena; /* token texts then pieces, each NUL-terminated */
    uint32_t *text_off, *text_len;
    uint32_t *piece_off, *piece_len; /* decoded form (see tok_piece) */
    float *score;
    uint8_t *type;  /* enum tok_type */
    uint8_t *attr;  /* ATTR_* */
    uint64_t *hash; /* open addressing, text -> id: (hash << 32 | id + 1), 0 empty */
    uint32_t hmask;
    int32_t *special; /* control/user-defined/unknown ids, longest text first */
    int n_special;
    uint8_t special_first[32]; /* bitmap: first bytes of special token texts */
    int32_t byte_id[256];      /* byte fallback token for each byte */
    int32_t bos, eos, unk, eot, eom;
    int add_bos, add_eos, add_space_prefix;
    int words_independent; /* no token has U+2581 after another character */
};

typedef struct frag {
    int32_t id; /* special token, or -1 for raw text */
    uint32_t off, len;
} frag_t;

typedef struct sym {
    int32_t prev, next; /* neighbours in the chain, -1 at the ends */
    uint32_t off, n;    /* bytes in the escaped text; n = 0 once merged away */
} sym_t;

typedef struct bigram {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the pair when queued: stale entries no longer match */
} bigram_t;

struct tok_work {
    frag_t *fa, *fb;
    size_t fcap;
    char *text; /* escaped fragment: spaces as U+2581 */
    size_t tcap;
    sym_t *syms;
    size_t scap;
    bigram_t *heap;
    size_t hcap, hn;
};

static const char SPACE_MARK[3] = {(char)0xE2, (char)0x96, (char)0x81}; /* U+2581 */

/* ---- vocabulary hash ---------------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int32_t tok_lookup(const tokenizer_t *t, const char *s, size_t len) {
    uint32_t h = hash_bytes(s, len), i = h & t->hmask;
    for (;;) {
        uint64_t e = t->hash[i];
        if (!e) return -1;
        /* the stored hash skips most string compares */
        int32_t id = (int32_t)(uint32_t)e - 1;
        if ((uint32_t)(e >> 32) == h && t->text_len[id] == len &&
            !memcmp(t->arena + t->text_off[id], s, len))
            return id;
        i = (i + 1) & t->hmask;
    }
}

/* Later ids replace earlier ones with the same text, as the reference's map does. */
static void hash_insert(tokenizer_t *t, int32_t id) {
    const char *s = t->arena + t->text_off[id];
    size_t len = t->text_len[id];
    uint32_t h = hash_bytes(s, len), i = h & t->hmask;
    for (;;) {
        uint64_t e = t->hash[i];
        int32_t cur = (int32_t)(uint32_t)e - 1;
        if (!e || ((uint32_t)(e >> 32) == h && t->text_len[cur] == len &&
                   !memcmp(t->arena + t->text_off[cur], s, len))) {
            t->hash[i] = (uint64_t)h << 32 | (uint32_t)(id + 1);
            return;
        }
        i = (i + 1) & t->hmask;
    }
}

/* ---- loading ------------------------------------------------------------------------ */

static int load_fail(char *err, size_t errlen, int rc, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return rc;
}

static int32_t opt_id(const gguf_file_t *f, const char *key, int32_t def, int n) {
    uint32_t v;
    if (gguf_get_u32(f, key, &v) == 0) return v < (uint32_t)n ? (int32_t)v : -1;
    return def < n ? def : -1;
}

static int opt_bool(const gguf_file_t *f, const char *key, int def) {
    int v;
    return gguf_get_bool(f, key, &v) == 0 ? v : def;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const tokenizer_t *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->text_len[x] != t->text_len[y]) return t->text_len[x] > t->text_len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Strings the reference treats as end of generation / end of turn when found in the
 * vocabulary (its text-based auto-detection), in our order of preference for tok_eot. */
static const char *const EOG_TEXTS[] = {"<|eot_id|>",    "<|im_end|>", "<|end|>",   "<end_of_turn>",
                                        "<|endoftext|>", "<EOT>",      "<|eom_id|>"};

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int tok_load(const gguf_file_t *f, tokenizer_t **out, char *err, size_t errlen) {
    *out = NULL;
    gguf_str_t model;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model))
        return load_fail(err, errlen, -EINVAL, "no tokenizer.ggml.model in the file");
    if (!gguf_str_eq(model, "llama")) {
        char m[64], msg[160];
        snprintf(msg, sizeof msg,
                 "tokenizer model '%s' is not supported (only SentencePiece "
                 "'llama')",
                 gguf_str_copy(model, m, sizeof m));
        return load_fail(err, errlen, -ENOTSUP, msg);
    }
    const gguf_kv_t *toks = gguf_find(f, "tokenizer.ggml.tokens");
    if (!toks || toks->type != GGUF_ARRAY || toks->arr_type != GGUF_STRING || !toks->arr_count ||
        toks->arr_count > (1u << 24))
        return load_fail(err, errlen, -EINVAL,
                         "tokenizer.ggml.tokens missing or not a string array");
    int n = (int)toks->arr_count;
    const gguf_kv_t *scores = gguf_find(f, "tokenizer.ggml.scores");
    const gguf_kv_t *types = gguf_find(f, "tokenizer.ggml.token_type");
    if (scores && (scores->type != GGUF_ARRAY || scores->arr_count != (uint64_t)n ||
                   scores->arr_type != GGUF_F32))
        return load_fail(err, errlen, -EINVAL, "tokenizer.ggml.scores does not match the tokens");
    if (types && (types->type != GGUF_ARRAY || types->arr_count != (uint64_t)n ||
                  types->arr_type != GGUF_I32))
        return load_fail(err, errlen, -EINVAL,
                         "tokenizer.ggml.token_type does not match the tokens");

    tokenizer_t *t = calloc(1, sizeof *t);
    if (!t) return load_fail(err, errlen, -ENOMEM, "out of memory");
    t->n = n;
    /* total text size, to size the arena: texts + pieces (never longer than the text) */
    size_t total = 0;
    const uint8_t *cur = NULL;
    gguf_str_t s;
    for (int i = 0; i < n; i++) {
        gguf_arr_str_next(toks, &cur, &s);
        total += (size_t)s.len + 1;
    }
    if (total > UINT32_MAX / 2) {
        tok_free(t);
        return load_fail(err, errlen, -EINVAL, "vocabulary too large");
    }
    uint32_t hsize = 1;
    while (hsize < (uint32_t)n * 4) hsize <<= 1; /* load <= 1/4: misses stop early */
    t->hmask = hsize - 1;
    t->arena = malloc(total * 2 + 2);
    t->text_off = malloc((size_t)n * sizeof *t->text_off);
    t->text_len = malloc((size_t)n * sizeof *t->text_len);
    t->piece_off = malloc((size_t)n * sizeof *t->piece_off);
    t->piece_len = malloc((size_t)n * sizeof *t->piece_len);
    t->score = malloc((size_t)n * sizeof *t->score);
    t->type = malloc((size_t)n);
    t->attr = calloc((size_t)n, 1);
    t->hash = calloc((size_t)hsize, sizeof *t->hash);
    t->special = malloc((size_t)n * sizeof *t->special);
    if (!t->arena || !t->text_off || !t->text_len || !t->piece_off || !t->piece_len || !t->score ||
        !t->type || !t->attr || !t->hash || !t->special) {
        tok_free(t);
        return load_fail(err, errlen, -ENOMEM, "out of memory");
    }

    size_t pos = 0;
    cur = NULL;
    for (int i = 0; i < n; i++) {
        gguf_arr_str_next(toks, &cur, &s);
        memcpy(t->arena + pos, s.ptr, (size_t)s.len);
        t->arena[pos + s.len] = 0;
        t->text_off[i] = (uint32_t)pos;
        t->text_len[i] = (uint32_t)s.len;
        pos += (size_t)s.len + 1;
        float sc = 0;
        int32_t ty = TOK_TYPE_NORMAL;
        if (scores) gguf_arr_f32(scores, (uint64_t)i, &sc);
        if (types) gguf_arr_i32(types, (uint64_t)i, &ty);
        t->score[i] = sc;
        t->type[i] = (uint8_t)(ty >= 0 && ty <= TOK_TYPE_BYTE ? ty : TOK_TYPE_UNDEFINED);
        hash_insert(t, i);
    }

    t->words_independent = 1;
    for (int i = 0; i < n && t->words_independent; i++) {
        const char *x = t->arena + t->text_off[i];
        uint32_t k = 0, len = t->text_len[i];
        while (k + 3 <= len && !memcmp(x + k, SPACE_MARK, 3)) k += 3; /* leading run */
        for (; k + 3 <= len; k++)
            if (!memcmp(x + k, SPACE_MARK, 3)) t->words_independent = 0;
    }

    t->bos = opt_id(f, "tokenizer.ggml.bos_token_id", 1, n);
    t->eos = opt_id(f, "tokenizer.ggml.eos_token_id", 2, n);
    t->unk = opt_id(f, "tokenizer.ggml.unknown_token_id", 0, n);
    t->eot = opt_id(f, "tokenizer.ggml.eot_token_id", -1, n);
    t->eom = opt_id(f, "tokenizer.ggml.eom_token_id", -1, n);
    t->add_bos = opt_bool(f, "tokenizer.ggml.add_bos_token", 1);
    t->add_eos = opt_bool(f, "tokenizer.ggml.add_eos_token", 0);
    t->add_space_prefix = opt_bool(f, "tokenizer.ggml.add_space_prefix", 1);

    /* End-of-generation strings: the reference also forces them to CONTROL, which
     * decides whether they are matched without parse_special. */
    for (size_t k = 0; k < sizeof EOG_TEXTS / sizeof EOG_TEXTS[0]; k++) {
        int32_t id = tok_lookup(t, EOG_TEXTS[k], strlen(EOG_TEXTS[k]));
        if (id < 0) continue;
        t->attr[id] |= ATTR_EOG;
        t->type[id] = TOK_TYPE_CONTROL;
        if (t->eot < 0 && strcmp(EOG_TEXTS[k], "<|eom_id|>")) t->eot = id;
    }
    if (t->eos >= 0) t->attr[t->eos] |= ATTR_EOG;
    if (t->eot >= 0) t->attr[t->eot] |= ATTR_EOG;
    if (t->eom >= 0) t->attr[t->eom] |= ATTR_EOG;

    /* Special tokens, matched in the text before BPE: longest first. */
    for (int i = 0; i < n; i++) {
        int ty = t->type[i];
        if ((ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNKNOWN) &&
            t->text_len[i] > 0) {
            t->special[t->n_special++] = i;
            uint8_t c = (uint8_t)t->arena[t->text_off[i]];
            t->special_first[c >> 3] |= (uint8_t)(1u << (c & 7));
        }
    }
    qsort_r(t->special, (size_t)t->n_special, sizeof *t->special, cmp_special, t);

    /* Phi-3 vocabularies: the reference strips whitespace after special tokens (all but
     * <unk>, <s>, <|endoftext|>), chosen by the model's general.name. */
    gguf_str_t name;
    char lname[128] = "";
    if (gguf_get_str(f, "general.name", &name) == 0) {
        gguf_str_copy(name, lname, sizeof lname);
        for (char *p = lname; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    }
    if (strstr(lname, "phi-3") || strstr(lname, "phi3")) {
        for (int k = 0; k < t->n_special; k++) t->attr[t->special[k]] |= ATTR_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        int32_t id = tok_lookup(t, "</s>", 4);
        if (id >= 0) t->attr[id] |= ATTR_RSTRIP;
        for (size_t k = 0; k < 3; k++)
            if ((id = tok_lookup(t, keep[k], strlen(keep[k]))) >= 0)
                t->attr[id] &= (uint8_t)~ATTR_RSTRIP;
    }

    /* Decoded pieces. */
    for (int i = 0; i < n; i++) {
        const char *txt = t->arena + t->text_off[i];
        uint32_t tl = t->text_len[i];
        char *dst = t->arena + pos;
        size_t pl = 0;
        switch (t->type[i]) {
        case TOK_TYPE_NORMAL:
            for (uint32_t k = 0; k < tl;) {
                if (k + 3 <= tl && !memcmp(txt + k, SPACE_MARK, 3)) {
                    dst[pl++] = ' ';
                    k += 3;
                } else {
                    dst[pl++] = txt[k++];
                }
            }
            break;
        case TOK_TYPE_BYTE:
            if (tl == 6 && !memcmp(txt, "<0x", 3) && txt[5] == '>' && hexval(txt[3]) >= 0 &&
                hexval(txt[4]) >= 0)
                dst[pl++] = (char)(hexval(txt[3]) * 16 + hexval(txt[4]));
            break;
        case TOK_TYPE_USER_DEFINED:
        case TOK_TYPE_CONTROL:
        case TOK_TYPE_UNKNOWN:
            memcpy(dst, txt, tl); /* control/unknown shown only when asked (tok_piece) */
            pl = tl;
            break;
        default:
            break; /* unused / undefined: nothing */
        }
        dst[pl] = 0;
        t->piece_off[i] = (uint32_t)pos;
        t->piece_len[i] = (uint32_t)pl;
        pos += pl + 1;
    }

    for (int b = 0; b < 256; b++) {
        static const char hex[] = "0123456789ABCDEF";
        char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        char one = (char)b;
        int32_t id = tok_lookup(t, buf, 6);
        if (id < 0) id = tok_lookup(t, &one, 1);
        t->byte_id[b] = id >= 0 ? id : t->unk;
    }
    *out = t;
    return 0;
}

void tok_free(tokenizer_t *t) {
    if (!t) return;
    free(t->arena);
    free(t->text_off);
    free(t->text_len);
    free(t->piece_off);
    free(t->piece_len);
    free(t->score);
    free(t->type);
    free(t->attr);
    free(t->hash);
    free(t->special);
    free(t);
}

/* ---- workspace ---------------------------------------------------------------------- */

tok_work_t *tok_work_new(void) {
    return calloc(1, sizeof(tok_work_t));
}

void tok_work_free(tok_work_t *w) {
    if (!w) return;
    free(w->fa);
    free(w->fb);
    free(w->text);
    free(w->syms);
    free(w->heap);
    free(w);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* ---- encoding ----------------------------------------------------------------------- */

static int heap_before(const bigram_t *a, const bigram_t *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(tok_work_t *w, bigram_t b) {
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_before(&b, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = b;
}

static bigram_t heap_pop(tok_work_t *w) {
    bigram_t top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0, n = w->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!heap_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void try_bigram(const tokenizer_t *t, tok_work_t *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const sym_t *l = &w->syms[left], *r = &w->syms[right];
    uint32_t size = l->n + r->n; /* adjacent symbols are contiguous in the text */
    int32_t id = tok_lookup(t, w->text + l->off, size);
    if (id < 0) return;
    heap_push(w, (bigram_t){t->score[id], left, right, size});
}

/* Bytes in a UTF-8 sequence judged by its first byte only, as the reference does. */
static uint32_t utf8_len_lead(uint8_t c) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

typedef struct emit {
    int32_t *out;
    int cap;
    int n;
} emit_t;

static inline void emit(emit_t *e, int32_t id) {
    if (e->n < e->cap) e->out[e->n] = id;
    e->n++;
}

/* Symbol i is exactly U+2581 (an escaped space). */
static int is_mark(const tok_work_t *w, int32_t i) {
    return w->syms[i].n == 3 && !memcmp(w->text + w->syms[i].off, SPACE_MARK, 3);
}

/* One run of text between special tokens: escape, split into characters, merge. */
static int spm_run(const tokenizer_t *t, tok_work_t *w, const char *s, size_t len, int prefix,
                   emit_t *e) {
    size_t tl = 0;
    if (grow((void **)&w->text, &w->tcap, (len + 1) * 3, 1)) return -ENOMEM;
    if (prefix) {
        memcpy(w->text, SPACE_MARK, 3);
        tl = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            memcpy(w->text + tl, SPACE_MARK, 3);
            tl += 3;
        } else {
            w->text[tl++] = s[i];
        }
    }
    if (!tl) return 0;
    if (grow((void **)&w->syms, &w->scap, tl, sizeof(sym_t)) ||
        grow((void **)&w->heap, &w->hcap, tl * 3 + 1, sizeof(bigram_t)))
        return -ENOMEM;
    int32_t ns = 0;
    for (uint32_t off = 0; off < tl;) {
        uint32_t n = utf8_len_lead((uint8_t)w->text[off]);
        if (n > tl - off) n = (uint32_t)(tl - off);
        w->syms[ns++] = (sym_t){-1, -1, off, n};
        off += n;
    }
    /* Merge word by word when the vocabulary allows it: if no token has U+2581 after
     * another character, no merge can span a boundary "x|U+2581" (x not U+2581), so
     * the words are independent and small heaps give the same result as one big one. */
    for (int32_t s0 = 0; s0 < ns;) {
        int32_t s1 = s0 + 1;
        if (t->words_independent)
            while (s1 < ns && !(is_mark(w, s1) && !is_mark(w, s1 - 1))) s1++;
        else
            s1 = ns;
        for (int32_t i = s0; i < s1; i++) {
            w->syms[i].prev = i > s0 ? i - 1 : -1;
            w->syms[i].next = i + 1 < s1 ? i + 1 : -1;
        }
        w->hn = 0;
        for (int32_t i = s0 + 1; i < s1; i++) try_bigram(t, w, i - 1, i);
        while (w->hn) {
            bigram_t b = heap_pop(w);
            sym_t *l = &w->syms[b.left], *r = &w->syms[b.right];
            if (!l->n || !r->n || l->n + r->n != b.size) continue; /* stale */
            l->n += r->n;
            r->n = 0;
            l->next = r->next;
            if (r->next >= 0) w->syms[r->next].prev = b.left;
            try_bigram(t, w, l->prev, b.left);
            try_bigram(t, w, b.left, l->next);
        }
        for (int32_t i = s0; i != -1; i = w->syms[i].next) {
            const sym_t *y = &w->syms[i];
            int32_t id = tok_lookup(t, w->text + y->off, y->n);
            if (id >= 0) {
                emit(e, id);
            } else {
                for (uint32_t k = 0; k < y->n; k++)
                    emit(e, t->byte_id[(uint8_t)w->text[y->off + k]]);
            }
        }
        s0 = s1;
    }
    return 0;
}

/* Split the text around special tokens, one token at a time, longest first (the
 * reference's order: a longer token wins over a shorter one inside it). */
static int partition(const tokenizer_t *t, tok_work_t *w, const char *text, size_t len,
                     int parse_special, size_t *nfrag) {
    size_t nf = 1;
    w->fa[0] = (frag_t){-1, 0, (uint32_t)len};
    uint8_t present[32] = {0};
    int any = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)text[i];
        present[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    for (int k = 0; k < 32; k++) any |= present[k] & t->special_first[k];
    for (int k = 0; any && k < t->n_special; k++) {
        int32_t id = t->special[k];
        int ty = t->type[id];
        if (!parse_special && (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN)) continue;
        const char *st = t->arena + t->text_off[id];
        size_t sl = t->text_len[id];
        uint8_t c0 = (uint8_t)st[0];
        if (!(present[c0 >> 3] & (1u << (c0 & 7))) || sl > len) continue;
        size_t nb = 0;
        for (size_t fi = 0; fi < nf; fi++) {
            frag_t fr = w->fa[fi];
            if (fr.id >= 0) {
                w->fb[nb++] = fr;
                continue;
            }
            size_t off = fr.off, fl = fr.len;
            for (;;) {
                const char *p = fl >= sl ? memmem(text + off, fl, st, sl) : NULL;
                if (!p) break;
                size_t m = (size_t)(p - text);
                size_t ll = m - off;
                if (t->attr[id] & ATTR_LSTRIP)
                    while (ll > 0 && is_ws(text[off + ll - 1])) ll--;
                if (ll) w->fb[nb++] = (frag_t){-1, (uint32_t)off, (uint32_t)ll};
                w->fb[nb++] = (frag_t){id, 0, 0};
                size_t ro = m + sl, rl = off + fl - ro;
                if (t->attr[id] & ATTR_RSTRIP)
                    while (rl > 0 && is_ws(text[ro])) ro++, rl--;
                off = ro;
                fl = rl;
                if (!fl) break;
            }
            if (fl) w->fb[nb++] = (frag_t){-1, (uint32_t)off, (uint32_t)fl};
        }
        frag_t *tmp = w->fa;
        w->fa = w->fb;
        w->fb = tmp;
        nf = nb;
    }
    *nfrag = nf;
    return 0;
}

int tok_encode_w(const tokenizer_t *t, tok_work_t *w, const char *text, size_t len, int add_special,
                 int parse_special, int32_t *out, int cap) {
    if (len > (size_t)INT_MAX / 8) return -E2BIG;
    emit_t e = {out, out ? cap : 0, 0};
    if (add_special && t->add_bos && t->bos >= 0) emit(&e, t->bos);
    if (len) {
        /* every match adds at most two fragments and consumes at least one byte */
        size_t fcap = w->fcap;
        if (grow((void **)&w->fa, &fcap, 2 * len + 2, sizeof(frag_t))) return -ENOMEM;
        fcap = w->fcap;
        if (grow((void **)&w->fb, &fcap, 2 * len + 2, sizeof(frag_t))) return -ENOMEM;
        w->fcap = fcap;
        size_t nf;
        partition(t, w, text, len, parse_special, &nf);
        int prev_special = 1; /* the first run gets the leading space too */
        for (size_t i = 0; i < nf; i++) {
            const frag_t *fr = &w->fa[i];
            if (fr->id >= 0) {
                emit(&e, fr->id);
                prev_special = 1;
                continue;
            }
            int rc =
                spm_run(t, w, text + fr->off, fr->len, t->add_space_prefix && prev_special, &e);
            if (rc) return rc;
            prev_special = 0;
        }
    }
    if (add_special && t->add_eos && t->eos >= 0) emit(&e, t->eos);
    return e.n;
}

int tok_encode(const tokenizer_t *t, const char *text, size_t len, int add_special,
               int parse_special, int32_t *out, int cap) {
    tok_work_t w;
    memset(&w, 0, sizeof w);
    int rc = tok_encode_w(t, &w, text, len, add_special, parse_special, out, cap);
    free(w.fa);
    free(w.fb);
    free(w.text);
    free(w.syms);
    free(w.heap);
    return rc;
}

/* ---- decoding ----------------------------------------------------------------------- */

const char *tok_piece(const tokenizer_t *t, int32_t id, int special, size_t *len) {
    *len = 0;
    if (id < 0 || id >= t->n) return "";
    int ty = t->type[id];
    if (!special && (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN)) return "";
    *len = t->piece_len[id];
    return t->arena + t->piece_off[id];
}

const char *tok_text(const tokenizer_t *t, int32_t id, size_t *len) {
    *len = 0;
    if (id < 0 || id >= t->n) return "";
    *len = t->text_len[id];
    return t->arena + t->text_off[id];
}

int tok_detokenize(const tokenizer_t *t, const int32_t *ids, int n, int remove_special,
                   int unparse_special, buf_t *out) {
    int remove_space = t->add_space_prefix;
    if (remove_special && t->add_bos && n > 0 && ids[0] == t->bos) {
        remove_space = 0; /* sic: the reference keeps the space when it drops BOS */
        ids++;
        n--;
    }
    if (remove_special && t->add_eos && n > 0 && ids[n - 1] == t->eos) n--;
    for (int i = 0; i < n; i++) {
        size_t pl;
        const char *p = tok_piece(t, ids[i], unparse_special, &pl);
        if (remove_space && pl && p[0] == ' ') {
            p++;
            pl--;
        }
        remove_space = 0;
        if (buf_append(out, p, pl)) return -ENOMEM;
    }
    return 0;
}

void tok_stream_init(tok_stream_t *s) {
    memset(s, 0, sizeof *s);
}

static const char REPL[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

/* Classify the sequence at p[0..n): >0 its length when valid and complete; 0 when it is
 * a valid but incomplete prefix (needs more bytes); <0 minus the length of the maximal
 * invalid subpart to replace with one U+FFFD. */
static int utf8_check(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* <= U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) return 0;
        uint8_t b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -i;
    }
    return need;
}

static int stream_run(tok_stream_t *s, const uint8_t *p, size_t n, buf_t *out) {
    size_t i = 0;
    while (i < n) {
        /* plain ASCII fast path */
        size_t j = i;
        while (j < n && p[j] < 0x80) j++;
        if (j > i && buf_append(out, p + i, j - i)) return -ENOMEM;
        i = j;
        if (i >= n) break;
        int r = utf8_check(p + i, n - i);
        if (r > 0) {
            if (buf_append(out, p + i, (size_t)r)) return -ENOMEM;
            i += (size_t)r;
        } else if (r == 0) {
            s->npend = (int)(n - i);
            memcpy(s->pend, p + i, n - i);
            return 0;
        } else {
            if (buf_append(out, REPL, 3)) return -ENOMEM;
            i += (size_t)-r;
        }
    }
    s->npend = 0;
    return 0;
}

int tok_stream_bytes(tok_stream_t *s, const void *data, size_t n, buf_t *out) {
    const uint8_t *p = data;
    if (!n) return 0;
    if (s->npend) {
        /* complete (or reject) the held-back sequence with the first new bytes */
        uint8_t tmp[8];
        size_t take = n < 4 ? n : 4;
        memcpy(tmp, s->pend, (size_t)s->npend);
        memcpy(tmp + s->npend, p, take);
        size_t tn = (size_t)s->npend + take;
        int r = utf8_check(tmp, tn);
        if (r == 0) { /* still incomplete: all new bytes were consumed into it */
            memcpy(s->pend, tmp, tn);
            s->npend = (int)tn;
            return 0;
        }
        size_t used = r > 0 ? (size_t)r : (size_t)-r; /* bytes of tmp consumed */
        if (buf_append(out, r > 0 ? (const char *)tmp : REPL, r > 0 ? (size_t)r : 3))
            return -ENOMEM;
        size_t from_new = used > (size_t)s->npend ? used - (size_t)s->npend : 0;
        if (used < (size_t)s->npend) {
            /* pending bytes after an invalid subpart: reprocess them with the new ones */
            uint8_t rest[8];
            size_t rn = (size_t)s->npend - used;
            memcpy(rest, s->pend + used, rn);
            s->npend = 0;
            int rc = stream_run(s, rest, rn, out);
            if (rc) return rc;
            return tok_stream_bytes(s, p, n, out);
        }
        s->npend = 0;
        p += from_new;
        n -= from_new;
    }
    return stream_run(s, p, n, out);
}

int tok_stream_push(tok_stream_t *s, const tokenizer_t *t, int32_t id, int special, buf_t *out) {
    size_t len;
    const char *p = tok_piece(t, id, special, &len);
    return tok_stream_bytes(s, p, len, out);
}

int tok_stream_flush(tok_stream_t *s, buf_t *out) {
    if (!s->npend) return 0;
    s->npend = 0;
    return buf_append(out, REPL, 3);
}

/* ---- accessors ---------------------------------------------------------------------- */

int tok_n_vocab(const tokenizer_t *t) {
    return t->n;
}
int32_t tok_bos(const tokenizer_t *t) {
    return t->bos;
}
int32_t tok_eos(const tokenizer_t *t) {
    return t->eos;
}
int32_t tok_eot(const tokenizer_t *t) {
    return t->eot;
}
int32_t tok_unk(const tokenizer_t *t) {
    return t->unk;
}
int tok_add_bos(const tokenizer_t *t) {
    return t->add_bos;
}
int tok_add_eos(const tokenizer_t *t) {
    return t->add_eos;
}
int tok_type(const tokenizer_t *t, int32_t id) {
    return id >= 0 && id < t->n ? t->type[id] : -1;
}
int tok_is_eog(const tokenizer_t *t, int32_t id) {
    return id >= 0 && id < t->n && (t->attr[id] & ATTR_EOG);
}
