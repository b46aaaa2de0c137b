/* test_orders_data.c — the order generator (normal forms, aliases, held-out combinations),
 * the learned vocabulary through the standard tokenizer, and the training pipeline on a
 * tiny configuration (the loss falls, resume works, the GGUF loads and generates). */
#define _GNU_SOURCE /* strcasestr */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/buf.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "model/chat.h"
#include "train/evalset.h"
#include "train/orders_data.h"
#include "train/trainer.h"
#include "train/vocab.h"

#define MENU "examples/orders/menu.yaml"

static void test_format(const ord_menu_t *m) {
    buf_t b;
    buf_init(&b);
    /* items: 0 Pepperoni Pizza ... 15 Garlic Bread (first side); sizes: 2 Large */
    ord_line_t l[2] = {{0, 2, 2}, {15, -1, 1}};
    CHECK_EQ_INT(ord_format(m, l, 2, &b), 0);
    CHECK_EQ_STR(b.data, "2\xC3\x97 Large Pepperoni Pizza, 1\xC3\x97 Garlic Bread");
    buf_reset(&b);
    ord_line_t s = {15, 2, 3}; /* a size on an unsized item is not written */
    CHECK_EQ_INT(ord_format(m, &s, 1, &b), 0);
    CHECK_EQ_STR(b.data, "3\xC3\x97 Garlic Bread");
    buf_free(&b);
    CHECK_EQ_INT(m->n_sizes, 4);
    CHECK_EQ_INT(m->n_items, 26);
    CHECK(m->items[0].sized && m->items[10].sized && !m->items[15].sized && !m->items[25].sized);
    CHECK_EQ_STR(m->items[10].name, "Coke");
}

/* Every generated pair's output is the format of its lines; every alias of the menu is
 * used; training never contains a held-out combination; the test set does. */
static void test_generator(const ord_menu_t *m) {
    ord_gen_t g;
    buf_t in, out, chk;
    ord_line_t lines[ORD_MAX_LINES];
    int n, used_item[64][ORD_MAX_ALIASES] = {{0}}, bad_format = 0, held_train = 0, kinds_seen = 0;
    buf_init(&in), buf_init(&out), buf_init(&chk);
    ord_gen_init(&g, m, 42, 0);
    for (int i = 0; i < 20000; i++) {
        int k = ord_gen_next(&g, &in, &out, lines, &n);
        kinds_seen |= k;
        buf_reset(&chk);
        ord_format(m, lines, n, &chk);
        if (strcmp(chk.data, out.data)) bad_format++;
        for (int j = 0; j < n; j++) {
            if (ord_heldout_size(m, lines[j].item, lines[j].size) ||
                ord_heldout_qty(m, lines[j].item, lines[j].qty))
                held_train++;
            const ord_entry_t *e = &m->items[lines[j].item];
            for (int a = 0; a < e->n_alias;
                 a++) /* alias used verbatim somewhere (case-insensitive) */
                if (strcasestr(in.data, e->aliases[a])) used_item[lines[j].item][a] = 1;
        }
    }
    int unused = 0;
    for (int i = 0; i < m->n_items; i++)
        for (int a = 0; a < m->items[i].n_alias; a++)
            if (!used_item[i][a]) {
                unused++;
                fprintf(stderr, "alias never used: %s\n", m->items[i].aliases[a]);
            }
    CHECK_EQ_INT(bad_format, 0);
    CHECK_EQ_INT(held_train, 0);
    CHECK_EQ_INT(unused, 0);
    CHECK_EQ_INT(kinds_seen & ~ORD_K_HELDOUT, (1 << ORD_N_KINDS) - 1 - ORD_K_HELDOUT);
    /* the held-out rules pick something, and the test stream uses it */
    int n_held = 0, test_held = 0;
    for (int i = 0; i < m->n_items; i++)
        for (int s = 0; s < m->n_sizes; s++) n_held += ord_heldout_size(m, i, s);
    CHECK(n_held >= 3);
    ord_gen_init(&g, m, 7, 1);
    for (int i = 0; i < 3000; i++) {
        int k = ord_gen_next(&g, &in, &out, lines, &n);
        int has = 0;
        for (int j = 0; j < n; j++)
            has |= ord_heldout_size(m, lines[j].item, lines[j].size) ||
                   ord_heldout_qty(m, lines[j].item, lines[j].qty);
        if (has != !!(k & ORD_K_HELDOUT)) test_held = -1000000;
        test_held += has;
    }
    CHECK_MSG(test_held > 800 && test_held < 1200, "held-out test orders: %d of 3000", test_held);
    /* the same seed gives the same stream */
    buf_t a1;
    buf_init(&a1);
    ord_gen_init(&g, m, 99, 0);
    ord_gen_next(&g, &in, &out, NULL, NULL);
    buf_appends(&a1, in.data);
    ord_gen_init(&g, m, 99, 0);
    ord_gen_next(&g, &in, &out, NULL, NULL);
    CHECK_EQ_STR(a1.data, in.data);
    buf_free(&a1), buf_free(&in), buf_free(&out), buf_free(&chk);
}

/* A learned vocabulary loads in the standard tokenizer and round-trips generated text;
 * completions decode to the normal form with no leading space. */
static void test_vocab(const ord_menu_t *m) {
    ord_gen_t g;
    buf_t in, out, dec;
    char *texts[4000];
    vocab_t v;
    tokenizer_t *t = NULL;
    buf_init(&in), buf_init(&out), buf_init(&dec);
    ord_gen_init(&g, m, 5, 0);
    for (int i = 0; i < 2000; i++) {
        ord_gen_next(&g, &in, &out, NULL, NULL);
        texts[2 * i] = strdup(in.data), texts[2 * i + 1] = strdup(out.data);
    }
    CHECK_EQ_INT(vocab_learn((const char *const *)texts, 4000, 400, &v), 0);
    CHECK_EQ_INT(v.n, 400);
    CHECK_EQ_STR(v.pieces[VOCAB_BOS], "<s>");
    CHECK_EQ_STR(v.pieces[VOCAB_BYTE0 + 0x41], "<0x41>");
    CHECK_EQ_INT(vocab_tokenizer(&v, &t), 0);
    int bad = 0, total = 0, ntok = 0;
    for (int i = 0; i < 4000 && t; i++) {
        int32_t ids[512];
        int n = tok_encode(t, texts[i], strlen(texts[i]), 0, 0, ids, 512);
        buf_reset(&dec);
        tok_detokenize(t, ids, n, 0, 0, &dec);
        if (!dec.data || strcmp(dec.data, texts[i])) bad++;
        total++, ntok += n;
    }
    printf("vocab: %d pieces, %d texts round-trip with %.1f tokens each\n", v.n, total - bad,
           (double)ntok / total);
    CHECK_EQ_INT(bad, 0);
    int32_t ids[64];
    int n = train_encode_completion(t, "12\xC3\x97 Large Pepperoni Pizza", ids, 64);
    CHECK(n > 2 && ids[n - 1] == VOCAB_EOS);
    buf_reset(&dec);
    for (int i = 0; i + 1 < n; i++) {
        size_t pl;
        const char *p = tok_piece(t, ids[i], 0, &pl);
        buf_append(&dec, p, pl);
    }
    CHECK_EQ_STR(dec.data, "12\xC3\x97 Large Pepperoni Pizza");
    /* the chat template written into models is recognised as the family we render with */
    CHECK_EQ_INT(chat_template_detect(TRAIN_CHAT_TEMPLATE, strlen(TRAIN_CHAT_TEMPLATE)),
                 CHAT_TMPL_MISTRAL);
    for (int i = 0; i < 4000; i++) free(texts[i]);
    tok_free(t);
    vocab_free(&v);
    buf_free(&in), buf_free(&out), buf_free(&dec);
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb, ca, cb;
    while (same && ((ca = fgetc(fa)) != EOF) | ((cb = fgetc(fb)) != EOF)) same = ca == cb;
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static double loss_of_line(const char *line) {
    const char *p = strstr(line, "| loss ");
    return p ? atof(p + 7) : -1;
}

/* Tiny end-to-end run: the loss falls, the checkpoint resumes, the GGUF loads and answers. */
static void test_pipeline(void) {
    char dir[] = "/tmp/test_orders_XXXXXX", out[128], ck[128];
    if (!mkdtemp(dir)) return;
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    snprintf(ck, sizeof ck, "%s/m.ckpt", dir);
    train_opts_t o;
    train_opts_default(&o);
    o.menu = MENU, o.out = out, o.ckpt = ck;
    o.model.dim = 32, o.model.n_layer = 1, o.model.n_head = 2, o.model.ff = 64, o.model.ctx = 96;
    o.vocab_size = 400, o.steps = 40, o.batch = 8, o.warmup = 5, o.lr = 3e-3f, o.log_every = 10;
    o.ckpt_every = 20, o.threads = 2;
    FILE *log = tmpfile();
    /* stopped at step 20 and resumed: byte-identical to the straight run below */
    o.stop_at = 20;
    CHECK_EQ_INT(train_run(&o, log), 0);
    o.stop_at = 0, o.resume = 1;
    CHECK_EQ_INT(train_run(&o, log), 0);
    char straight[160];
    snprintf(straight, sizeof straight, "%s/straight.gguf", dir);
    train_opts_t o2 = o;
    o2.resume = 0, o2.out = straight, o2.ckpt_every = 0;
    FILE *log2 = tmpfile();
    CHECK_EQ_INT(train_run(&o2, log2), 0);
    fclose(log2);
    CHECK_MSG(same_file(out, straight), "a resumed run differs from a straight one");
    unlink(straight);
    rewind(log);
    char line[512];
    double first = -1, last = -1;
    int resumed = 0, steps_logged = 0;
    while (fgets(line, sizeof line, log)) {
        double l = loss_of_line(line);
        if (l >= 0) {
            if (first < 0) first = l;
            last = l, steps_logged++;
        }
        if (strstr(line, "resuming from") && strstr(line, "at step 20")) resumed = 1;
    }
    fclose(log);
    printf("pipeline: loss %.3f -> %.3f over 40 steps (%d progress lines)\n", first, last,
           steps_logged);
    CHECK(first > 0 && last > 0 && last < first * 0.8);
    CHECK(resumed);
    CHECK_EQ_INT(steps_logged, 4);
    model_t m;
    char err[256];
    int rc = model_load(out, &m, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        tokenizer_t *t = NULL;
        forward_state_t *s = NULL;
        buf_t ans;
        buf_init(&ans);
        CHECK_EQ_INT(tok_load(&m.file, &t, err, sizeof err), 0);
        CHECK_EQ_INT(forward_state_new(&m, 0, &s), 0);
        CHECK_EQ_INT(chat_template_for_gguf(&m.file), CHAT_TMPL_MISTRAL);
        CHECK_EQ_INT(ev_greedy(&m, s, t, "lg pep x2", 24, &ans), 0);
        CHECK(ans.data != NULL);
        printf("tiny model answers \"lg pep x2\" with \"%s\"\n", ans.data ? ans.data : "");
        buf_free(&ans);
        forward_state_free(s);
        tok_free(t);
        model_free(&m);
    }
    unlink(out), unlink(ck), rmdir(dir);
}

int main(void) {
    ord_menu_t m;
    char err[256];
    int rc = ord_menu_load(MENU, &m, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) return check_summary("test_orders_data");
    test_format(&m);
    test_generator(&m);
    test_vocab(&m);
    ord_menu_free(&m);
    test_pipeline();
    return check_summary("test_orders_data");
}
