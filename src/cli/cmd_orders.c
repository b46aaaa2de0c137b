/* cmd_orders.c — `tollgate orders`: command line of the example order service. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_num.h"
#include "core/httpd.h"
#include "orders/service.h"
#include "orders/store.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: tollgate orders [options]\n"
        "\n"
        "The example order service of the use case (a pizza shop's checkout): stores orders\n"
        "in SQLite and asks the gateway's normalize_order task for a display description\n"
        "(\"lgr pep pzza x2\" -> \"2× Large Pepperoni Pizza\") with its own short deadline.\n"
        "Whatever happens to that call — timeout, refused connection, error, malformed\n"
        "answer, the gateway's own fallback — the order is created, with the raw text as its\n"
        "description and the reason recorded. An order is committed (WAL, fsync) before it\n"
        "is acknowledged. Prints 'listening on HOST:PORT' on stdout once it accepts\n"
        "connections; SIGINT/SIGTERM finish in-flight orders (5 s) and exit 0.\n"
        "\n"
        "options:\n"
        "  --host ADDR         numeric address to bind [127.0.0.1]\n"
        "  --port N            port; 0 picks a free one [8090]\n"
        "  --threads N         worker threads, one event loop each [2]\n"
        "  --db PATH           SQLite database file, created if missing [orders.db]\n"
        "  --gateway URL       the gateway, http://HOST:PORT[/PREFIX]; without it every\n"
        "                      order keeps its raw text (reason \"disabled\")\n"
        "  --gateway-key KEY   sent as 'Authorization: Bearer KEY' [env TOLLGATE_ORDERS_KEY]\n"
        "  --task NAME         the gateway task to call [normalize_order]\n"
        "  --deadline-ms MS    the whole normalization call, connect included [300]\n"
        "  --help              this text\n"
        "\n"
        "endpoints:\n"
        "  POST /orders        {\"items\": \"lgr pep pzza x2\", \"customer\": \"Ana\"} -> 201 and\n"
        "                      the order: {\"id\", \"items\", \"customer\", \"description\",\n"
        "                      \"description_source\": \"model\"|\"raw\", \"reason\", \"model\",\n"
        "                      \"variant\", \"normalize_ms\", \"created_ms\"}; bad input -> 400\n"
        "  GET /orders/ID      one order (404 when unknown)\n"
        "  GET /orders?limit=N&before=ID   newest first (limit 1..1000, default 20)\n"
        "  GET /health         200 when the database answers\n"
        "  GET /metrics        tollgate_orders_created_total,\n"
        "                      tollgate_orders_description_total{source,reason}, ...\n"
        "See docs/orders.md.\n"
        "\n"
        "example:\n"
        "  tollgate orders --port 8090 --db /var/lib/orders.db \\\n"
        "      --gateway http://127.0.0.1:8080 --gateway-key \"$ORDERS_KEY\" --deadline-ms 300\n");
}

enum { O_HOST = 1000, O_PORT, O_THREADS, O_DB, O_GW, O_KEY, O_TASK, O_DEADLINE, O_HELP };

int cmd_orders(int argc, char **argv) {
    static const struct option opts[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"threads", required_argument, 0, O_THREADS},
        {"db", required_argument, 0, O_DB},
        {"gateway", required_argument, 0, O_GW},
        {"gateway-key", required_argument, 0, O_KEY},
        {"task", required_argument, 0, O_TASK},
        {"deadline-ms", required_argument, 0, O_DEADLINE},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    const char *host = "127.0.0.1", *db = "orders.db", *gateway = NULL;
    const char *key = getenv("TOLLGATE_ORDERS_KEY"), *task = ORDERS_DEFAULT_TASK;
    uint32_t port = 8090, threads = 2, deadline = ORDERS_DEFAULT_DEADLINE_MS;
    char gw_host[256], gw_prefix[256];
    uint16_t gw_port = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *a = optarg;
        int bad = 0;
        switch (c) {
        case O_HOST:
            host = a;
            break;
        case O_PORT:
            bad = cli_parse_u32(a, 65535, &port);
            break;
        case O_THREADS:
            bad = cli_parse_u32(a, 256, &threads) || threads == 0;
            break;
        case O_DB:
            db = a;
            bad = !*a;
            break;
        case O_GW:
            gateway = a;
            bad = orders_parse_url(a, gw_host, sizeof gw_host, &gw_port, gw_prefix,
                                   sizeof gw_prefix) < 0;
            break;
        case O_KEY:
            key = a;
            bad = !*a || strpbrk(a, "\r\n") != NULL;
            break;
        case O_TASK:
            task = a;
            bad = !*a || strspn(a, "abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(a);
            break;
        case O_DEADLINE:
            bad = cli_parse_u32(a, 600000, &deadline) || deadline == 0;
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            fprintf(stderr,
                    "tollgate orders: unknown option or missing value: %s\n"
                    "run 'tollgate orders --help' for the options\n",
                    argv[optind - 1]);
            return 2;
        }
        if (bad) {
            fprintf(stderr,
                    "tollgate orders: bad value '%s' for --%s; run 'tollgate orders --help'\n", a,
                    opts[c - O_HOST].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate orders: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    /* The workers resolve the gateway's name once, at start; a name that does not resolve
     * now would leave every order with its raw text, so say so and stop instead. */
    if (gateway) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        int gai = getaddrinfo(gw_host, NULL, &hints, &ai);
        if (gai != 0) {
            fprintf(stderr, "tollgate orders: cannot resolve the gateway host '%s': %s\n", gw_host,
                    gai_strerror(gai));
            return 1;
        }
        freeaddrinfo(ai);
    }
    char err[512];
    store_t *store = NULL;
    int rc = store_open(db, &store, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr,
                "tollgate orders: %s: %s (check that the directory exists and is "
                "writable)\n",
                db, err);
        return 1;
    }
    orders_config_t oc = {
        .gateway_host = gateway ? gw_host : NULL,
        .gateway_port = gw_port,
        .gateway_prefix = gateway ? gw_prefix : "",
        .gateway_key = key && *key ? key : NULL,
        .task = task,
        .deadline_ms = deadline,
    };
    orders_t *svc = NULL;
    if ((rc = orders_new(&oc, store, &svc)) < 0) {
        fprintf(stderr, "tollgate orders: cannot set up: %s\n", strerror(-rc));
        store_close(store);
        return 1;
    }
    httpd_config_t cfg = {
        .host = host, .port = (int)port, .threads = (int)threads, .max_body_bytes = 16384};
    orders_httpd_setup(svc, &cfg);
    httpd_t *h = NULL;
    if ((rc = httpd_new(&cfg, &h)) < 0) {
        fprintf(stderr, "tollgate orders: cannot listen on %s:%u: %s\n", host, port, strerror(-rc));
        orders_free(svc);
        store_close(store);
        return 1;
    }
    /* Signals are taken synchronously by this thread; the workers block them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if ((rc = httpd_start(h)) < 0) {
        fprintf(stderr, "tollgate orders: cannot start workers: %s\n", strerror(-rc));
        httpd_free(h);
        orders_free(svc);
        store_close(store);
        return 1;
    }
    const char *fmt = strchr(host, ':') ? "listening on [%s]:%d\n" : "listening on %s:%d\n";
    printf(fmt, host, httpd_port(h));
    fflush(stdout);
    if (!gateway) fprintf(stderr, "tollgate orders: no --gateway: orders keep their raw text\n");
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "tollgate orders: %s, finishing in-flight orders\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    httpd_stop(h, 5000);
    httpd_wait(h);
    httpd_free(h);
    orders_free(svc);
    store_close(store);
    return 0;
}
