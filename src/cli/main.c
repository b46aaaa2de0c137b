/* main.c — the tollgate binary: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define TOLLGATE_VERSION "0.1.0"

/* Add a line here when a subcommand lands (and its prototype to cli.h). */
static const cli_cmd_t commands[] = {
    {"quantize", cmd_quantize, "rewrite a GGUF model with its weights in another type (Q4_K_M, Q8_0, ...)"},
    {"bench", cmd_bench, "LLM-aware load generator: TTFT / TPOT / e2e percentiles, open or closed loop"},
    {"gateway", cmd_gateway, "the LLM gateway: OpenAI-compatible proxy with routing, pools, deadlines, live reload"},
    {"sim", cmd_sim, "simulated OpenAI/vLLM upstream: configurable TTFT, inter-token latency, failures"},
    {"serve", cmd_serve, "OpenAI-compatible inference server for GGUF models on CPU"},
    {"up", cmd_up, "run the local stack (upstream, gateway) in the foreground until Ctrl-C"},
    {"keygen", cmd_keygen, "make a new API key for a service and print the hash the config wants"},
    {"orders", cmd_orders, "the example order service: SQLite orders, normalized by the gateway, never failed by it"},
    {"train", cmd_train, "train the small order-normalization model (llama GGUF) from a menu"},
    {"traingen", cmd_traingen, "write generated order-normalization pairs (JSON lines) from a menu"},
    {"logs", cmd_logs, "list and filter the gateway's request log (sampled, redacted prompts and responses)"},
    {"eval", cmd_eval, "exact-match accuracy and latency of the order model on a held-out set (model file or server)"},
    {"canary", cmd_canary, "start, pause, promote, abort or watch a route's canary through the gateway's admin API"},
    {"perf", cmd_perf, "engine speed: random models of real shapes, memory bandwidth, prompt and decode tokens/s"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out) {
    fprintf(out, "tollgate %s — run a language model as a production service on CPU\n\n"
                 "usage: tollgate COMMAND [options]   (tollgate COMMAND --help for details)\n\n"
                 "commands:\n",
            TOLLGATE_VERSION);
    for (const cli_cmd_t *c = commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "  %-10s %s\n", "version", "print the version");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "version") || !strcmp(name, "--version")) {
        printf("tollgate %s\n", TOLLGATE_VERSION);
        return 0;
    }
    for (const cli_cmd_t *c = commands; c->name; c++)
        if (!strcmp(c->name, name))
            return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "tollgate: unknown command '%s'; run 'tollgate --help' for the list\n", name);
    return 2;
}
