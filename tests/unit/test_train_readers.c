/* test_train_readers.c — the training data readers on bad input: the menu loader and the
 * held-out JSONL reader refuse with a message naming the place, and free what they had read
 * (the leak check of `make asan` watches these paths; the first was found by fuzz_train_data). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "train/evalset.h"
#include "train/orders_data.h"

static char dir[64];

static const char *put(const char *name, const char *text) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static void menu_refused(const char *text, const char *want) {
    ord_menu_t m;
    char err[256] = "";
    int rc = ord_menu_load(put("menu.yaml", text), &m, err, sizeof err);
    CHECK_MSG(rc < 0, "accepted: %s", text);
    CHECK_MSG(strstr(err, want) != NULL, "got \"%s\", want \"%s\"", err, want);
    if (rc == 0)
        ord_menu_free(&m);
}

static void test_menu(void) {
    /* A size whose aliases are not a list, after its name was read (fuzz_train_data: the
     * name leaked). */
    menu_refused("sizes:\n  - {name: Small, aliases: alia}\nitems:\n  pizzas:\n"
                 "    - {name: Margherita Pizza}\n",
                 "menu.yaml:2: sizes[0].aliases: expected a list of aliases");
    menu_refused("sizes:\n  - {name: Small}\n  - {name: Large, aliases: [7, [x]]}\nitems:\n"
                 "  pizzas:\n    - {name: Margherita Pizza}\n",
                 "alias must be text");
    menu_refused("sizes:\n  - {name: Small}\nitems:\n  pizzas:\n    - {name: Margherita Pizza}\n"
                 "    - {name: Pepperoni Pizza, aliases: pep}\n",
                 "expected a list of aliases");
    menu_refused("sizes:\n  - {name: Small}\nitems:\n  pizzas:\n    - {aliases: [x]}\n",
                 "name missing");
    menu_refused("sizes:\n  - {name: Small}\nitems:\n  pizzas: 5\n", "a category is a list");
    menu_refused("sizes: 5\nitems: {}\n", "a menu needs");
    menu_refused("sizes: []\nitems: {}\n", "no items");
    menu_refused("sizes: [\n", "YAML");
}

static void jsonl_refused(const char *text, const char *want) {
    ev_case_t *cases = NULL;
    int n = 0;
    char err[256] = "";
    int rc = ev_load_jsonl(put("cases.jsonl", text), &cases, &n, err, sizeof err);
    CHECK_MSG(rc < 0, "accepted: %s", text);
    CHECK_MSG(strstr(err, want) != NULL, "got \"%s\", want \"%s\"", err, want);
    if (rc == 0)
        ev_free(cases, n);
}

static void test_jsonl(void) {
    const char *ok = "{\"input\":\"a\",\"output\":\"1\\u00d7 A\"}\n\n"
                     "{\"input\":\"b\",\"output\":\"\"}\n";
    ev_case_t *cases;
    int n;
    char err[256];
    CHECK_EQ_INT(ev_load_jsonl(put("cases.jsonl", ok), &cases, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_STR(cases[0].output, "1\xc3\x97 A");
        CHECK_EQ_STR(cases[1].output, "");
        ev_free(cases, n);
    }
    /* Refusals after good lines free those lines' cases. */
    jsonl_refused("{\"input\":\"a\",\"output\":\"b\"}\n{\"input\":1,\"output\":\"b\"}\n",
                  "cases.jsonl:2: \"input\" and \"output\" strings expected");
    jsonl_refused("{\"input\":\"a\",\"output\":\"b\"}\n[1]\n", "cases.jsonl:2: not a JSON object");
    jsonl_refused("   \n", "cases.jsonl:1: not a JSON object");
    jsonl_refused("{\"input\":\"a\"", "cases.jsonl:1: not a JSON object");
}

int main(void) {
    if (check_tmpdir(dir, sizeof dir, "test_train_readers")) return 1;
    test_menu();
    test_jsonl();
    check_tmpdir_remove(dir);
    return check_summary("test_train_readers");
}
