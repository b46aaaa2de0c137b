/* cmd_train.c — `tollgate train` (train the order model) and `tollgate traingen` (write
 * generated pairs as JSON lines). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_num.h"
#include "core/buf.h"
#include "core/json.h"
#include "train/orders_data.h"
#include "train/trainer.h"

static void train_usage(FILE *f) {
    train_opts_t d;
    train_opts_default(&d);
    fprintf(f,
            "usage: tollgate train --menu MENU.yaml --out MODEL.gguf [options]\n"
            "Train the order-normalization model (llama architecture, own vocabulary) on pairs\n"
            "generated from the menu, and write a GGUF file that `tollgate serve` loads.\n"
            "  --steps N          optimizer steps (%d)\n"
            "  --batch N          orders per step (%d)\n"
            "  --lr X             peak learning rate (%g); --min-lr X (%g); --warmup N (%d)\n"
            "  --dim N --layers N --heads N --ff N --ctx N   model shape (%d, %d, %d, %d, %d)\n"
            "  --vocab N          vocabulary pieces to learn (%d)\n"
            "  --threads N        worker threads (%d)\n"
            "  --seed N           data and initialisation seed (%llu)\n"
            "  --checkpoint FILE  checkpoint path (default OUT.ckpt), written every --ckpt-every N "
            "(%d)\n"
            "  --resume           continue from the checkpoint (same data stream, same result)\n"
            "  --stop-at N        checkpoint and stop after step N (continue later with --resume)\n"
            "  --f16              store matrices in F16 (half the size)\n"
            "  --log-every N      progress line every N steps (%d)\n",
            d.steps, d.batch, d.lr, d.min_lr, d.warmup, d.model.dim, d.model.n_layer,
            d.model.n_head, d.model.ff, d.model.ctx, d.vocab_size, d.threads,
            (unsigned long long)d.seed, d.ckpt_every, d.log_every);
}

int cmd_train(int argc, char **argv) {
    train_opts_t o;
    train_opts_default(&o);
    static const struct option lo[] = {{"menu", 1, 0, 'm'},
                                       {"out", 1, 0, 'o'},
                                       {"steps", 1, 0, 's'},
                                       {"batch", 1, 0, 'b'},
                                       {"lr", 1, 0, 'l'},
                                       {"min-lr", 1, 0, 'L'},
                                       {"warmup", 1, 0, 'w'},
                                       {"dim", 1, 0, 'd'},
                                       {"layers", 1, 0, 'y'},
                                       {"heads", 1, 0, 'H'},
                                       {"ff", 1, 0, 'f'},
                                       {"ctx", 1, 0, 'c'},
                                       {"vocab", 1, 0, 'v'},
                                       {"threads", 1, 0, 't'},
                                       {"seed", 1, 0, 'S'},
                                       {"checkpoint", 1, 0, 'k'},
                                       {"resume", 0, 0, 'r'},
                                       {"f16", 0, 0, '6'},
                                       {"log-every", 1, 0, 'g'},
                                       {"ckpt-every", 1, 0, 'K'},
                                       {"stop-at", 1, 0, 'T'},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int ch, idx = -1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, &idx)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'm':
            o.menu = optarg;
            break;
        case 'o':
            o.out = optarg;
            break;
        case 's':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.steps);
            break;
        case 'b':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.batch);
            break;
        case 'l':
            bad = cli_parse_float(optarg, 0.0f, 10.0f, &o.lr);
            break;
        case 'L':
            bad = cli_parse_float(optarg, 0.0f, 10.0f, &o.min_lr);
            break;
        case 'w':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.warmup);
            break;
        case 'd':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.model.dim);
            break;
        case 'y':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.model.n_layer);
            break;
        case 'H':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.model.n_head);
            break;
        case 'f':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.model.ff);
            break;
        case 'c':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.model.ctx);
            break;
        case 'v':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.vocab_size);
            break;
        case 't':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.threads);
            break;
        case 'S':
            bad = cli_parse_u64(optarg, &o.seed);
            break;
        case 'k':
            o.ckpt = optarg;
            break;
        case 'r':
            o.resume = 1;
            break;
        case '6':
            o.f16 = 1;
            break;
        case 'g':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.log_every);
            break;
        case 'T':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.stop_at);
            break;
        case 'K':
            bad = cli_parse_int(optarg, 0, 1 << 30, &o.ckpt_every);
            break;
        case 'h':
            train_usage(stdout);
            return 0;
        default:
            train_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "tollgate train: --%s wants a number, not '%s' (see tollgate train --help)\n",
                    lo[idx].name, optarg);
            return 2;
        }
    }
    if (!o.menu || !o.out || o.steps < 1 || o.log_every < 1 || o.warmup < 1) {
        fprintf(stderr,
                "tollgate train: --menu and --out are required (steps, warmup, log-every >= 1)\n");
        train_usage(stderr);
        return 2;
    }
    return train_run(&o, stderr) ? 1 : 0;
}

int cmd_traingen(int argc, char **argv) {
    const char *menu_path = NULL, *out_path = NULL;
    uint64_t seed = 1;
    int64_t count = 1000;
    int test = 0, ch;
    static const struct option lo[] = {
        {"menu", 1, 0, 'm'}, {"seed", 1, 0, 's'}, {"count", 1, 0, 'n'}, {"out", 1, 0, 'o'},
        {"test", 0, 0, 't'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'm':
            menu_path = optarg;
            break;
        case 's':
            if (cli_parse_u64(optarg, &seed)) {
                fprintf(stderr, "tollgate traingen: --seed wants a non-negative integer, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'n':
            if (cli_parse_i64(optarg, 1, 100000000, &count)) {
                fprintf(stderr, "tollgate traingen: --count wants an integer from 1 to 100000000, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'o':
            out_path = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'h':
            printf(
                "usage: tollgate traingen --menu MENU.yaml [--seed N] [--count N] [--test] [--out "
                "FILE.jsonl]\n"
                "Write generated order pairs as JSON lines {\"input\", \"output\", \"kinds\"}; "
                "--test makes\n"
                "the held-out kind (a third of orders carry a combination training never sees).\n");
            return 0;
        default:
            return 2;
        }
    }
    if (!menu_path) {
        fprintf(stderr, "tollgate traingen: --menu is required\n");
        return 2;
    }
    ord_menu_t m;
    char err[512];
    if (ord_menu_load(menu_path, &m, err, sizeof err)) {
        fprintf(stderr, "tollgate traingen: %s\n", err);
        return 1;
    }
    FILE *f = out_path ? fopen(out_path, "w") : stdout;
    if (!f) {
        perror(out_path);
        ord_menu_free(&m);
        return 1;
    }
    ord_gen_t g;
    buf_t in, out, line;
    buf_init(&in), buf_init(&out), buf_init(&line);
    ord_gen_init(&g, &m, seed, test);
    int rc = 0;
    for (long i = 0; i < count; i++) {
        int k = ord_gen_next(&g, &in, &out, NULL, NULL);
        if (k < 0) {
            rc = 1;
            break;
        }
        json_w_t w;
        buf_reset(&line);
        json_w_init(&w, &line);
        json_w_obj_begin(&w);
        json_w_key(&w, "input"), json_w_str(&w, in.data);
        json_w_key(&w, "output"), json_w_str(&w, out.data);
        json_w_key(&w, "kinds"), json_w_arr_begin(&w);
        for (int b = 0; b < ORD_N_KINDS; b++)
            if (k & (1 << b)) json_w_str(&w, ord_kind_name(b));
        json_w_arr_end(&w);
        json_w_obj_end(&w);
        fprintf(f, "%s\n", line.data);
    }
    buf_free(&in), buf_free(&out), buf_free(&line);
    if (out_path && fclose(f) != 0) rc = 1;
    ord_menu_free(&m);
    return rc;
}
