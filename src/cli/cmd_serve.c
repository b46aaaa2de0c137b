/* cmd_serve.c — `tollgate serve`: command line and signals around the inference server (src/engine/server.h). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_num.h"
#include "core/log.h"
#include "engine/server.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tollgate serve -m MODEL.gguf [options]\n"
            "\n"
            "OpenAI-compatible inference server for GGUF models on CPU (architectures llama\n"
            "and phi3; F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K weights). The listener comes up\n"
            "first and the model loads in the background: GET /health answers 503\n"
            "{\"status\":\"loading\"} until it is ready, then 200 {\"status\":\"ok\"}.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE        the GGUF model (required)\n"
            "  --host ADDR             listen address [127.0.0.1]\n"
            "  --port N                listen port, 0 = any free port [8080]\n"
            "  --threads N             compute threads for the forward pass [cores]\n"

            "  --http-threads N        HTTP worker threads, one event loop each [2]\n"
            "  -c, --ctx N             context length in tokens (prompt + completion)\n"
            "                          [the model's, at most %d]\n"
            "  --chat-template NAME    llama2, mistral, phi3 or chatml [from the file's\n"
            "                          tokenizer.chat_template, else by architecture]\n"
            "  --model-name NAME       the name served in \"model\" and /v1/models\n"
            "                          [the file's base name without .gguf]\n"
            "  --max-queue N           requests waiting for the engine before new ones get\n"
            "                          503 [%d]\n"
            "  --max-seqs N            sequences generated together, one batched forward\n"
            "                          pass per step (continuous batching) [%d]\n"
            "  --kv-cache-mib N        KV cache memory for all sequences; each holds a whole\n"
            "                          context, so this bounds the running sequences\n"
            "                          [max-seqs full contexts]\n"
            "  --tokenizer FILE        take the tokenizer from another GGUF with the same\n"
            "                          vocabulary (for weights without one) [the model's]\n"
            "  --weights mmap|anon     mmap: read the weights in place from the file's\n"
            "                          mapping (instant load, shared page cache); anon: copy\n"
            "                          them into the process's own memory at load (slower\n"
            "                          start, the file's size again while copying; on VMs\n"
            "                          where reading the page cache is slow, decode is several\n"
            "                          times faster, docs/engine.md) [mmap]\n"
            "  --drain-ms N            on SIGTERM/SIGINT, let in-flight requests finish for\n"
            "                          up to N ms [10000]\n"
            "  --log-level LEVEL       debug, info, warn, error or off [info]; logs are JSON\n"
            "                          lines on stderr, one per finished request at info\n"
            "  -h, --help              this text\n"
            "\n"
            "endpoints:\n"
            "  POST /v1/chat/completions   chat (template applied), streaming or not\n"
            "  POST /v1/completions        raw prompt, streaming or not\n"
            "  GET  /v1/models             the served model\n"
            "  POST /tokenize              {\"content\", \"add_special\", \"parse_special\"} -> {\"tokens\"}\n"
            "  POST /detokenize            {\"tokens\"} -> {\"content\"}\n"
            "  GET  /health                503 while loading, 200 when ready\n"
            "  GET  /metrics               Prometheus text, vLLM's metric names\n"
            "\n"
            "Sampling fields: temperature, top_p, top_k, min_p, seed, stop, max_tokens\n"
            "(max_completion_tokens), logprobs/top_logprobs, stream_options.include_usage;\n"
            "n must be 1. See docs/serve.md.\n"
            "\n"
            "On start it prints one line to stdout: listening on HOST:PORT\n"
            "\n"
            "exit status: 0 after a clean stop, 1 when the model cannot be loaded or the\n"
            "port cannot be bound, 2 on a usage error.\n",
            SERVER_DEFAULT_CTX_CAP, SERVER_DEFAULT_MAX_QUEUE, SERVER_DEFAULT_MAX_SEQS);
}

enum { O_HOST = 256, O_PORT, O_THREADS, O_HTTP_THREADS, O_TMPL, O_NAME, O_QUEUE, O_DRAIN, O_LOG, O_SEQS, O_KV, O_TOKENIZER,
       O_WEIGHTS };

int cmd_serve(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"threads", required_argument, NULL, O_THREADS},
        {"http-threads", required_argument, NULL, O_HTTP_THREADS},
        {"ctx", required_argument, NULL, 'c'},
        {"chat-template", required_argument, NULL, O_TMPL},
        {"model-name", required_argument, NULL, O_NAME},
        {"max-queue", required_argument, NULL, O_QUEUE},
        {"drain-ms", required_argument, NULL, O_DRAIN},
        {"max-seqs", required_argument, NULL, O_SEQS},
        {"kv-cache-mib", required_argument, NULL, O_KV},
        {"tokenizer", required_argument, NULL, O_TOKENIZER},
        {"weights", required_argument, NULL, O_WEIGHTS},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    server_opts_t o = {.port = 8080};
    int drain_ms = 10000, c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model_path = optarg; break;
        case O_HOST: o.host = optarg; break;
        case O_PORT: bad |= cli_parse_int(optarg, 0, 65535, &o.port) ? 1 : 0; break;
        case O_THREADS: bad |= cli_parse_int(optarg, 1, 1024, &o.threads) ? 2 : 0; break;
        case O_HTTP_THREADS: bad |= cli_parse_int(optarg, 1, 256, &o.http_threads) ? 4 : 0; break;
        case 'c': bad |= cli_parse_int(optarg, 16, 1 << 20, &o.ctx) ? 8 : 0; break;
        case O_TMPL: o.chat_template = optarg; break;
        case O_NAME: o.model_name = optarg; break;
        case O_QUEUE: bad |= cli_parse_int(optarg, 1, 1 << 20, &o.max_queue) ? 16 : 0; break;
        case O_DRAIN: bad |= cli_parse_int(optarg, 0, 3600000, &drain_ms) ? 32 : 0; break;
        case O_SEQS: bad |= cli_parse_int(optarg, 1, 256, &o.max_seqs) ? 64 : 0; break;
        case O_TOKENIZER: o.tokenizer_path = optarg; break;
        case O_WEIGHTS:
            if (strcmp(optarg, "mmap") && strcmp(optarg, "anon")) {
                fprintf(stderr, "tollgate serve: --weights: mmap or anon, not '%s'\n", optarg);
                return 2;
            }
            o.weights_anon = !strcmp(optarg, "anon");
            break;
        case O_KV: bad |= cli_parse_int(optarg, 1, 1 << 24, &o.kv_cache_mib) ? 128 : 0; break;
        case O_LOG:
            if (log_level_parse(optarg) < 0) {
                fprintf(stderr, "tollgate serve: --log-level: debug, info, warn, error or off\n");
                return 2;
            }
            log_set_level((log_level_t)log_level_parse(optarg));
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bad) {
        fprintf(stderr, "tollgate serve: invalid number for %s; see tollgate serve --help\n",
                bad & 1 ? "--port (0-65535)" : bad & 2 ? "--threads" : bad & 4 ? "--http-threads"
                : bad & 8 ? "--ctx (>= 16)" : bad & 16 ? "--max-queue" : bad & 32 ? "--drain-ms"
                : bad & 64 ? "--max-seqs (1-256)" : "--kv-cache-mib");
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o.model_path) {
        fprintf(stderr, "tollgate serve: a model is required: tollgate serve -m MODEL.gguf\n");
        return 2;
    }

    /* Signals go to this thread only: block them before any thread exists. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    server_t *s = NULL;
    int rc = server_new(&o, &s, err, sizeof err);
    if (rc) {
        fprintf(stderr, "tollgate serve: %s\n", err);
        return rc == -EINVAL ? 2 : 1;
    }
    if ((rc = server_start(s)) != 0) {
        fprintf(stderr, "tollgate serve: cannot start: %s\n", strerror(-rc));
        server_free(s);
        return 1;
    }
    printf("listening on %s:%d\n", o.host ? o.host : "127.0.0.1", server_port(s));
    fflush(stdout);

    int status = 0;
    const struct timespec tick = {0, 100 * 1000 * 1000};
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) break;
        if (server_state(s) == SERVER_FAILED) { /* a server without its model is useless */
            fprintf(stderr, "tollgate serve: %s\n", server_error(s));
            status = 1;
            break;
        }
    }
    server_stop(s, status ? 0 : (uint32_t)drain_ms);
    server_free(s);
    return status;
}
