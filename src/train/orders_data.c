/* orders_data.c — menu loading and the seeded generator of messy orders and their normal
 * form (the rule is the menu's header comment). */
#include "train/orders_data.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

static const char *const KIND_NAMES[ORD_N_KINDS] = {
    "alias", "vowels", "typo", "qtyform", "noqty", "multi", "case", "punct", "nosize", "heldout",
};

const char *ord_kind_name(int bit) {
    return bit >= 0 && bit < ORD_N_KINDS ? KIND_NAMES[bit] : "?";
}

/* ---- menu ---- */

static void entry_free(ord_entry_t *e) {
    free(e->name);
    for (int i = 0; i < e->n_alias; i++) free(e->aliases[i]);
    memset(e, 0, sizeof *e);
}

void ord_menu_free(ord_menu_t *m) {
    for (int i = 0; i < m->n_sizes; i++) entry_free(&m->sizes[i]);
    for (int i = 0; i < m->n_items; i++) entry_free(&m->items[i]);
    free(m->sizes);
    free(m->items);
    memset(m, 0, sizeof *m);
}

/* Read {name, aliases} from node n into e; the lower-cased name is always an alias too
 * (people type the full name), added when the list lacks it. */
static int entry_load(const cfg_node_t *n, ord_entry_t *e, char *err, size_t errlen) {
    const char *name = NULL;
    int rc = cfg_str(n, "name", NULL, &name, err, errlen);
    if (rc) return rc;
    if (!name || !*name) return cfg_err(n, err, errlen, "name missing");
    if (!(e->name = strdup(name))) return -ENOMEM;
    size_t nl = strlen(name);
    e->is_pizza = nl > 6 && !strcmp(name + nl - 6, " Pizza");
    const cfg_node_t *al = cfg_get(n, "aliases");
    if (al && al->type != CFG_SEQ) return cfg_err(al, err, errlen, "expected a list of aliases");
    int have_name = 0;
    for (size_t i = 0; al && i < cfg_len(al); i++) {
        const cfg_node_t *a = cfg_at(al, i);
        if (a->type != CFG_SCALAR || !a->len) return cfg_err(a, err, errlen, "alias must be text");
        if (e->n_alias >= ORD_MAX_ALIASES - 1) return cfg_err(a, err, errlen, "too many aliases");
        if (!(e->aliases[e->n_alias] = strdup(a->value))) return -ENOMEM;
        if (!strcasecmp(a->value, name)) have_name = 1;
        e->n_alias++;
    }
    if (!have_name) {
        char *low = strdup(name);
        if (!low) return -ENOMEM;
        for (char *p = low; *p; p++) *p = (char)tolower((unsigned char)*p);
        e->aliases[e->n_alias++] = low;
    }
    return 0;
}

static int in_list(const cfg_node_t *seq, const char *s) {
    for (size_t i = 0; seq && i < cfg_len(seq); i++) {
        const cfg_node_t *a = cfg_at(seq, i);
        if (a->type == CFG_SCALAR && !strcmp(a->value, s)) return 1;
    }
    return 0;
}

int ord_menu_load(const char *path, ord_menu_t *m, char *err, size_t errlen) {
    cfg_node_t *root = NULL;
    memset(m, 0, sizeof *m);
    int rc = cfg_load_file(path, &root, err, errlen);
    if (rc) return rc;
    const cfg_node_t *sizes = cfg_get(root, "sizes"), *items = cfg_get(root, "items");
    const cfg_node_t *sc = cfg_get(root, "sized_categories");
    if (!sizes || sizes->type != CFG_SEQ || !items || items->type != CFG_MAP) {
        rc = cfg_err(root, err, errlen, "a menu needs `sizes:` (a list) and `items:` (a map)");
        goto out;
    }
    size_t n_items = 0;
    for (size_t c = 0; c < items->n; c++) n_items += cfg_len(items->items[c]);
    m->sizes = calloc(cfg_len(sizes) + 1, sizeof *m->sizes);
    m->items = calloc(n_items + 1, sizeof *m->items);
    if (!m->sizes || !m->items) {
        rc = -ENOMEM;
        goto out;
    }
    /* Counted before loading, as items are: a half-read entry is freed with the rest. */
    for (size_t i = 0; i < cfg_len(sizes); i++)
        if ((rc = entry_load(cfg_at(sizes, i), &m->sizes[m->n_sizes++], err, errlen))) goto out;
    for (size_t c = 0; c < items->n; c++) {
        const cfg_node_t *cat = items->items[c]; /* maps keep their entries in file order */
        int sized = sc ? in_list(sc, cat->key)
                       : (!strcmp(cat->key, "pizzas") || !strcmp(cat->key, "drinks"));
        if (cat->type != CFG_SEQ) {
            rc = cfg_err(cat, err, errlen, "a category is a list of items");
            goto out;
        }
        for (size_t i = 0; i < cfg_len(cat); i++) {
            ord_entry_t *e = &m->items[m->n_items++];
            if ((rc = entry_load(cfg_at(cat, i), e, err, errlen))) goto out;
            int s = sized;
            if ((rc = cfg_bool(cfg_at(cat, i), "sized", sized, &s, err, errlen))) goto out;
            e->sized = s;
        }
    }
    if (!m->n_items) rc = cfg_err(items, err, errlen, "no items");
out:
    cfg_free(root);
    if (rc) ord_menu_free(m);
    return rc;
}

int ord_heldout_size(const ord_menu_t *m, int item, int size) {
    return m->items[item].sized && size >= 0 && (7 * item + 3 * size + 2) % 13 == 0;
}

int ord_heldout_qty(const ord_menu_t *m, int item, int qty) {
    (void)m;
    return qty >= 2 && (5 * item + qty) % 23 == 0;
}

int ord_format(const ord_menu_t *m, const ord_line_t *lines, int n, buf_t *out) {
    for (int i = 0; i < n; i++) {
        const ord_line_t *l = &lines[i];
        int rc = buf_appendf(out, "%s%d\xC3\x97 ", i ? ", " : "", l->qty);
        if (!rc && l->size >= 0 && m->items[l->item].sized)
            rc = buf_appendf(out, "%s ", m->sizes[l->size].name);
        if (!rc) rc = buf_appends(out, m->items[l->item].name);
        if (rc) return rc;
    }
    return 0;
}

/* ---- generator ---- */

/* splitmix64: tiny, seedable, good enough for data generation */
static uint64_t rnd(ord_gen_t *g) {
    uint64_t z = (g->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int rn(ord_gen_t *g, int n) {
    return (int)(rnd(g) % (uint64_t)n);
}
static int chance(ord_gen_t *g, int pct) {
    return rn(g, 100) < pct;
}

void ord_gen_init(ord_gen_t *g, const ord_menu_t *m, uint64_t seed, int test) {
    g->menu = m;
    g->rng = seed * 0xD1B54A32D192ED03ull + 0x1234567ull;
    g->test = test;
}

static const char *const QTY_WORDS[] = {"zero",  "one",   "two",  "three", "four",   "five",  "six",
                                        "seven", "eight", "nine", "ten",   "eleven", "twelve"};

static int is_vowel(char c) {
    return strchr("aeiouAEIOU", c) != NULL && c;
}

/* Drop inner vowels of word w (in place); 1 when something changed. */
static int drop_vowels(char *w) {
    size_t n = strlen(w), j = 1;
    if (n < 4) return 0;
    for (size_t i = 1; i < n; i++)
        if (!(is_vowel(w[i]) && i + 1 < n && isalpha((unsigned char)w[i - 1]))) w[j++] = w[i];
    w[j] = 0;
    return j != n;
}

/* One typo in word w (cap bytes): swap, double or drop a letter past the first. */
static int typo(ord_gen_t *g, char *w, size_t cap) {
    size_t n = strlen(w);
    if (n < 4) return 0;
    size_t i = 1 + (size_t)rn(g, (int)n - 2);
    switch (rn(g, 3)) {
    case 0: {
        char t = w[i];
        if (t == w[i + 1]) return 0;
        w[i] = w[i + 1];
        w[i + 1] = t;
        return 1;
    }
    case 1:
        if (n + 2 > cap) return 0;
        memmove(w + i + 1, w + i, n - i + 1);
        return 1;
    default:
        memmove(w + i, w + i + 1, n - i);
        return 1;
    }
}

/* Copy alias a into dst applying word noise to one word (the longest), setting kind bits. */
static void noisy_copy(ord_gen_t *g, const char *a, char *dst, size_t cap, int *kinds) {
    snprintf(dst, cap, "%s", a);
    int pv = g->test ? 10 : 12, pt = g->test ? 14 : 16;
    int v = chance(g, pv), t = chance(g, pt);
    if (!v && !t) return;
    /* pick the longest word */
    char *best = NULL;
    size_t bl = 0;
    for (char *p = dst; *p;) {
        char *e = p;
        while (*e && *e != ' ') e++;
        if ((size_t)(e - p) > bl) bl = (size_t)(e - p), best = p;
        p = *e ? e + 1 : e;
    }
    if (!best || bl < 4) return;
    char word[64];
    if (bl >= sizeof word - 2) return;
    memcpy(word, best, bl);
    word[bl] = 0;
    if (v && drop_vowels(word)) *kinds |= ORD_K_VOWELS;
    if (t && typo(g, word, sizeof word)) *kinds |= ORD_K_TYPO;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(best - dst), dst, word, best + bl);
    size_t tl = strlen(tmp);
    if (tl >= cap) tl = cap - 1;
    memcpy(dst, tmp, tl);
    dst[tl] = 0;
}

/* Pick a line (item, size, qty) honouring the held-out rules of g. */
static void pick_line(ord_gen_t *g, ord_line_t *l, int force_heldout) {
    const ord_menu_t *m = g->menu;
    for (int tries = 0;; tries++) {
        l->item = rn(g, m->n_items);
        int r = rn(g, 100);
        l->qty = r < 50 ? 1 : r < 85 ? 2 + rn(g, 3) : 5 + rn(g, ORD_MAX_QTY - 4);
        l->size = -1;
        if (m->items[l->item].sized && m->n_sizes && chance(g, 80)) l->size = rn(g, m->n_sizes);
        int held = ord_heldout_size(m, l->item, l->size) || ord_heldout_qty(m, l->item, l->qty);
        if (force_heldout ? held : !held) return;
        if (tries > 100000) return; /* a menu without held-out combinations */
    }
}

static void apply_case(ord_gen_t *g, char *s, int mode) {
    int start = 1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (mode == 1)
            *s = (char)toupper(c);
        else if (mode == 2)
            *s = (char)(start ? toupper(c) : c);
        else if (mode == 3 && chance(g, 35))
            *s = (char)toupper(c);
        start = c == ' ';
    }
}

/* Render one line's text into t (cap bytes). */
static void render_line(ord_gen_t *g, const ord_line_t *l, int nosize_size, char *t, size_t cap,
                        int *kinds) {
    const ord_menu_t *m = g->menu;
    const ord_entry_t *it = &m->items[l->item];
    char item[128], size[64] = "", qty[32] = "";
    const char *a = it->aliases[rn(g, it->n_alias)];
    if (strcasecmp(a, it->name)) *kinds |= ORD_K_ALIAS;
    noisy_copy(g, a, item, sizeof item, kinds);
    if (it->is_pizza && !strstr(a, "pizza") && chance(g, 25)) {
        static const char *const PZ[] = {"pizza", "pizza", "pzza", "piza", "pz", "za", "pie"};
        size_t n = strlen(item);
        snprintf(item + n, sizeof item - n, " %s", PZ[rn(g, 7)]);
    }
    int sz = l->size >= 0 ? l->size : nosize_size;
    if (sz >= 0) {
        const ord_entry_t *se = &m->sizes[sz];
        const char *sa = se->aliases[rn(g, se->n_alias)];
        if (strcasecmp(sa, se->name)) *kinds |= ORD_K_ALIAS;
        noisy_copy(g, sa, size, sizeof size, kinds);
    }
    /* quantity: where and in which form */
    int after = 0;
    if (l->qty == 1 && chance(g, 65)) {
        *kinds |= ORD_K_NOQTY;
    } else {
        int f = rn(g, 100);
        if (f < 40)
            snprintf(qty, sizeof qty, "%d", l->qty);
        else if (f < 55)
            snprintf(qty, sizeof qty, "%dx", l->qty);
        else if (f < 70)
            snprintf(qty, sizeof qty, "x%d", l->qty), after = 1;
        else if (f < 80)
            snprintf(qty, sizeof qty, "%s", QTY_WORDS[l->qty]);
        else if (f < 87)
            snprintf(qty, sizeof qty, "%d \xC3\x97", l->qty);
        else if (f < 93)
            snprintf(qty, sizeof qty, "%d x", l->qty);
        else
            snprintf(qty, sizeof qty, "x %d", l->qty), after = 1;
        if (f >= 70 || after) *kinds |= ORD_K_QTYFORM;
        if (f < 15 && chance(g, 30)) after = 1, *kinds |= ORD_K_QTYFORM;
    }
    char body[200];
    if (*size && chance(g, 10))
        snprintf(body, sizeof body, "%s %s", item, size);
    else
        snprintf(body, sizeof body, "%s%s%s", size, *size ? " " : "", item);
    if (!*qty)
        snprintf(t, cap, "%s", body);
    else if (after)
        snprintf(t, cap, "%s %s", body, qty);
    else
        snprintf(t, cap, "%s %s", qty, body);
}

int ord_gen_next(ord_gen_t *g, buf_t *in, buf_t *out, ord_line_t *lines, int *n_lines) {
    const ord_menu_t *m = g->menu;
    ord_line_t ls[ORD_MAX_LINES];
    int r = rn(g, 100), n = r < 45 ? 1 : r < 75 ? 2 : r < 92 ? 3 : 4, kinds = 0;
    int held = g->test && chance(g, 33) ? rn(g, n) : -1;
    buf_reset(in);
    buf_reset(out);
    if (n > 1) kinds |= ORD_K_MULTI;
    if (held >= 0) kinds |= ORD_K_HELDOUT;
    int cmode = r = rn(g, 100), punct = chance(g, 15);
    cmode = r < 75 ? 0 : r < 83 ? 1 : r < 93 ? 2 : 3;
    if (cmode) kinds |= ORD_K_CASE;
    if (punct) kinds |= ORD_K_PUNCT;
    if (punct && chance(g, 30)) buf_appends(in, chance(g, 50) ? "- " : "* ");
    for (int i = 0; i < n; i++) {
        pick_line(g, &ls[i], i == held);
        int nosize = -1;
        if (!m->items[ls[i].item].sized && m->n_sizes && chance(g, 5)) {
            nosize = rn(g, m->n_sizes);
            kinds |= ORD_K_NOSIZE;
        }
        char t[400];
        render_line(g, &ls[i], nosize, t, sizeof t, &kinds);
        apply_case(g, t, cmode);
        if (i) {
            static const char *const SEP[] = {", ",  ", ", ",",   " and ", " & ",
                                              " + ", "\n", " , ", "; ",    "\n"};
            buf_appends(in, SEP[rn(g, 10)]);
        }
        buf_appends(in, t);
        if (punct && chance(g, 40))
            buf_appends(in, (const char *const[]){".", "!", ",", "!!", "..", "?"}[rn(g, 6)]);
    }
    int rc = ord_format(m, ls, n, out);
    if (rc) return rc;
    if (!in->data || !out->data) return -ENOMEM;
    if (lines) memcpy(lines, ls, sizeof(ord_line_t) * (size_t)n);
    if (n_lines) *n_lines = n;
    return kinds;
}
