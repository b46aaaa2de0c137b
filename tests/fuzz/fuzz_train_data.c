/* fuzz_train_data.c — libFuzzer target: the training data readers. The first byte picks the
 * reader: the menu YAML loader (ord_menu_load) followed by a few generated training and test
 * pairs from whatever menu it accepted, or the held-out JSONL reader (ev_load_jsonl). Both
 * read files, so the input goes through a scratch file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "train/evalset.h"
#include "train/orders_data.h"

static char path[64];

static int write_file(const uint8_t *p, size_t n) {
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/fuzz_train_data.%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void menu(void) {
    ord_menu_t m;
    char err[512] = "";
    if (ord_menu_load(path, &m, err, sizeof err) != 0) {
        if (!err[0])
            abort(); /* every refusal explains itself */
        return;
    }
    if (m.n_items <= 0)
        abort();
    buf_t in, out;
    buf_init(&in);
    buf_init(&out);
    for (int test = 0; test <= 1; test++) {
        ord_gen_t g;
        ord_gen_init(&g, &m, 42 + (uint64_t)test, test);
        for (int i = 0; i < 8; i++) {
            ord_line_t lines[ORD_MAX_LINES];
            int nl = 0;
            int kinds = ord_gen_next(&g, &in, &out, lines, &nl);
            if (kinds < 0)
                break;
            if (nl < 1 || nl > ORD_MAX_LINES)
                abort();
            for (int k = 0; k < nl; k++)
                if (lines[k].item < 0 || lines[k].item >= m.n_items || lines[k].size >= m.n_sizes ||
                    lines[k].qty < 1 || lines[k].qty > ORD_MAX_QTY)
                    abort();
        }
    }
    buf_free(&in);
    buf_free(&out);
    ord_menu_free(&m);
}

static void heldout(void) {
    ev_case_t *cases;
    int n;
    char err[512] = "";
    if (ev_load_jsonl(path, &cases, &n, err, sizeof err) != 0) {
        if (!err[0])
            abort();
        return;
    }
    for (int i = 0; i < n; i++)
        if (!cases[i].input || !cases[i].output)
            abort();
    ev_free(cases, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || write_file(data + 1, size - 1) != 0)
        return 0;
    if (data[0] & 1)
        heldout();
    else
        menu();
    unlink(path);
    return 0;
}
