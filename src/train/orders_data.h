/* orders_data.h — the order-normalization data: a menu loaded from YAML, and a seeded
 * generator of (messy order text, normalized description) pairs with the kinds of noise
 * each pair carries, plus the combinations held out of training. */
#ifndef TOLLGATE_TRAIN_ORDERS_DATA_H
#define TOLLGATE_TRAIN_ORDERS_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define ORD_MAX_ALIASES 16
#define ORD_MAX_LINES 4 /* items in one generated order */
#define ORD_MAX_QTY 12  /* largest quantity generated */

/* Noise kinds of a pair (bit mask), for per-kind accuracy. */
enum ord_kind {
    ORD_K_ALIAS = 1 << 0,   /* an item or size written as a shorthand, not its display name */
    ORD_K_VOWELS = 1 << 1,  /* a word with its inner vowels dropped */
    ORD_K_TYPO = 1 << 2,    /* swapped, doubled or missing letters */
    ORD_K_QTYFORM = 1 << 3, /* quantity as a word, "2 ×", "x2" after the item... */
    ORD_K_NOQTY = 1 << 4,   /* quantity missing (means 1) */
    ORD_K_MULTI = 1 << 5,   /* several items in one order */
    ORD_K_CASE = 1 << 6,    /* upper / title / mixed case */
    ORD_K_PUNCT = 1 << 7,   /* stray punctuation */
    ORD_K_NOSIZE = 1 << 8,  /* a size given for an item without sizes (dropped) */
    ORD_K_HELDOUT = 1 << 9, /* contains a combination never generated for training */
};
#define ORD_N_KINDS 10
/* Name of kind bit i ("alias", "vowels", ...). */
const char *ord_kind_name(int bit);

typedef struct ord_entry {
    char *name;                     /* display name, e.g. "Pepperoni Pizza" */
    char *aliases[ORD_MAX_ALIASES]; /* shorthands as customers type them */
    int n_alias;
    int sized;    /* items: takes a size (pizzas, drinks) */
    int is_pizza; /* display name ends in " Pizza": "pizza" may follow */
} ord_entry_t;

typedef struct ord_menu {
    ord_entry_t *sizes; /* (n_sizes) */
    int n_sizes;
    ord_entry_t *items; /* (n_items) in file order */
    int n_items;
} ord_menu_t;

/* Load a menu of the form of examples/orders/menu.yaml: `sizes:` and `items:` (a map of
 * categories, each a list of {name, aliases}). An item takes sizes when it says
 * `sized: true`, or when its category is in the optional top-level `sized_categories`
 * list, which defaults to [pizzas, drinks] (the header comments of the shipped menu).
 * 0 or a negative errno with a message in err. */
int ord_menu_load(const char *path, ord_menu_t *m, char *err, size_t errlen);
void ord_menu_free(ord_menu_t *m);

/* Deterministic held-out combinations (the same for a given menu, whatever the seed):
 * (item, size) when (7*item + 3*size + 2) % 13 == 0, and (item, quantity) for quantities
 * 2..ORD_MAX_QTY when (5*item + quantity) % 23 == 0. Training data never contains them;
 * the test set puts one in about a third of its orders. */
int ord_heldout_size(const ord_menu_t *m, int item, int size);
int ord_heldout_qty(const ord_menu_t *m, int item, int qty);

/* One parsed line of a normalized description (for tests). */
typedef struct ord_line {
    int item, size, qty; /* size -1 when absent */
} ord_line_t;

/* The generator: a seeded stream of pairs. test = 0: training pairs (held-out
 * combinations never appear); test = 1: test pairs (a third contain one). */
typedef struct ord_gen {
    const ord_menu_t *menu;
    uint64_t rng;
    int test;
} ord_gen_t;

void ord_gen_init(ord_gen_t *g, const ord_menu_t *m, uint64_t seed, int test);
/* Generate the next pair: input text into in, normal form into out (both reset first);
 * lines (may be NULL) receives the order's lines, *n_lines their count; returns the kind
 * mask, or a negative errno. */
int ord_gen_next(ord_gen_t *g, buf_t *in, buf_t *out, ord_line_t *lines, int *n_lines);

/* Normal form of lines[0..n): "2× Large Pepperoni Pizza, 1× Coke". Appends. */
int ord_format(const ord_menu_t *m, const ord_line_t *lines, int n, buf_t *out);

#endif
