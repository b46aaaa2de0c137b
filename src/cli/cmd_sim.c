/* cmd_sim.c — `tollgate sim`: command line of the simulated OpenAI/vLLM upstream. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_num.h"
#include "core/httpd.h"
#include "sim/sim.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tollgate sim [options]\n"
            "\n"
            "A simulated OpenAI- and vLLM-compatible upstream for tests, benchmarks and demos:\n"
            "answers /v1/chat/completions and /v1/completions (streamed or not) with made-up\n"
            "words after a configurable time to first token and inter-token latency, and\n"
            "injects failures on demand. Prints one line 'listening on HOST:PORT' on stdout\n"
            "once it accepts connections; SIGINT/SIGTERM drain in-flight requests (5 s) and exit.\n"
            "\n"
            "server:\n"
            "  --host ADDR          numeric address to bind [127.0.0.1]\n"
            "  --port N             port; 0 picks a free one [8000]\n"
            "  --threads N          worker threads, one event loop each [2]\n"
            "  --model NAME         served model name (/v1/models, metrics' model_name)\n"
            "                       [tollgate-sim]; requests may name any model, it is echoed\n"
            "  --max-body BYTES     largest request body [1048576]\n"
            "\n"
            "timing:\n"
            "  --ttft-ms MS         time to first token [0]\n"
            "  --ttft-jitter-ms MS  +- uniform jitter on it [0]\n"
            "  --itl-ms MS          inter-token latency [0]\n"
            "  --itl-jitter-ms MS   +- uniform jitter on it [0]\n"
            "\n"
            "output:\n"
            "  --output KIND        fixed[:N]  N tokens, cut at max_tokens [fixed:16]\n"
            "                       random     uniform in 1..max_tokens (or 1..N)\n"
            "                       echo       the words of the last user message / prompt\n"
            "  --output-tokens N    N for fixed/random [16]\n"
            "\n"
            "capacity:\n"
            "  --max-seqs N         requests generating at once, 0 = unlimited [0]; the rest\n"
            "                       wait in a queue (vllm:num_requests_waiting)\n"
            "  --max-queue N        waiting requests beyond which the answer is 503 [1024]\n"
            "\n"
            "faults (each request rolls once, in this order):\n"
            "  --fail-rate P        share answered 429, 500 or 503 (equal mix) [0]\n"
            "  --reset-rate P       share whose connection is reset mid-response [0]\n"
            "  --stall-rate P       share that stops after the head / first chunk [0]\n"
            "  --seed N             seed of fault rolls, jitter and words [1]\n"
            "\n"
            "  --help               this text\n"
            "\n"
            "Per request, header 'x-sim-fail: 429|500|503|reset|stall|slow:<ms>' forces a\n"
            "behaviour (slow:<ms> sets the time to first token). A request's \"seed\" makes its\n"
            "words deterministic. Knobs change at run time: GET/POST /sim/config with JSON\n"
            "such as {\"ttft_ms\":50,\"output\":\"fixed:8\",\"fail_rate\":0.1}.\n"
            "\n"
            "endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,\n"
            "POST /tokenize, GET /health, GET /metrics (vLLM names), GET|POST /sim/config.\n"
            "Prompt tokens are estimated as ceil(bytes/4), at least 1. See docs/sim.md.\n"
            "\n"
            "example:\n"
            "  tollgate sim --port 8000 --ttft-ms 80 --itl-ms 20 --max-seqs 8 --fail-rate 0.01\n");
}

static int parse_rate(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || !(v >= 0 && v <= 1))
        return -1;
    *out = v;
    return 0;
}

enum {
    O_HOST = 1000, O_PORT, O_THREADS, O_MODEL, O_MAXBODY, O_TTFT, O_TTFTJ, O_ITL, O_ITLJ, O_OUTPUT,
    O_OUTTOK, O_MAXSEQS, O_MAXQ, O_FAIL, O_RESET, O_STALL, O_SEED, O_HELP
};

int cmd_sim(int argc, char **argv) {
    static const struct option opts[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"threads", required_argument, 0, O_THREADS},
        {"model", required_argument, 0, O_MODEL},
        {"max-body", required_argument, 0, O_MAXBODY},
        {"ttft-ms", required_argument, 0, O_TTFT},
        {"ttft-jitter-ms", required_argument, 0, O_TTFTJ},
        {"itl-ms", required_argument, 0, O_ITL},
        {"itl-jitter-ms", required_argument, 0, O_ITLJ},
        {"output", required_argument, 0, O_OUTPUT},
        {"output-tokens", required_argument, 0, O_OUTTOK},
        {"max-seqs", required_argument, 0, O_MAXSEQS},
        {"max-queue", required_argument, 0, O_MAXQ},
        {"fail-rate", required_argument, 0, O_FAIL},
        {"reset-rate", required_argument, 0, O_RESET},
        {"stall-rate", required_argument, 0, O_STALL},
        {"seed", required_argument, 0, O_SEED},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    sim_knobs_t k;
    sim_knobs_default(&k);
    const char *host = "127.0.0.1", *model = "tollgate-sim";
    uint32_t port = 8000, threads = 2, max_body = 1u << 20;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *a = optarg;
        int bad = 0;
        switch (c) {
        case O_HOST: host = a; break;
        case O_PORT: bad = cli_parse_u32(a, 65535, &port); break;
        case O_THREADS: bad = cli_parse_u32(a, 256, &threads) || threads == 0; break;
        case O_MODEL: bad = !*a || strlen(a) >= 256; model = a; break;
        case O_MAXBODY: bad = cli_parse_u32(a, 1u << 30, &max_body) || max_body == 0; break;
        case O_TTFT: bad = cli_parse_u32(a, 3600000, &k.ttft_ms); break;
        case O_TTFTJ: bad = cli_parse_u32(a, 3600000, &k.ttft_jitter_ms); break;
        case O_ITL: bad = cli_parse_u32(a, 3600000, &k.itl_ms); break;
        case O_ITLJ: bad = cli_parse_u32(a, 3600000, &k.itl_jitter_ms); break;
        case O_OUTPUT: bad = sim_knobs_parse_output(a, &k) < 0; break;
        case O_OUTTOK: bad = cli_parse_u32(a, 1000000, &k.output_tokens); break;
        case O_MAXSEQS: bad = cli_parse_u32(a, 1000000, &k.max_seqs); break;
        case O_MAXQ: bad = cli_parse_u32(a, 1000000, &k.max_queue); break;
        case O_FAIL: bad = parse_rate(a, &k.fail_rate); break;
        case O_RESET: bad = parse_rate(a, &k.reset_rate); break;
        case O_STALL: bad = parse_rate(a, &k.stall_rate); break;
        case O_SEED: {
            char *end;
            k.seed = strtoull(a, &end, 10);
            bad = *end || end == a;
            break;
        }
        case O_HELP: usage(stdout); return 0;
        default:
            fprintf(stderr, "tollgate sim: unknown option or missing value: %s\n"
                            "run 'tollgate sim --help' for the options\n", argv[optind - 1]);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "tollgate sim: bad value '%s' for --%s; run 'tollgate sim --help'\n",
                    a, opts[c - O_HOST].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate sim: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    sim_t *sim = NULL;
    int rc = sim_new(&k, model, &sim);
    if (rc < 0) {
        fprintf(stderr, "tollgate sim: cannot set up: %s\n", strerror(-rc));
        return 1;
    }
    httpd_config_t cfg = {
        .host = host,
        .port = (int)port,
        .threads = (int)threads,
        .max_body_bytes = max_body,
    };
    sim_httpd_setup(sim, &cfg);
    httpd_t *h = NULL;
    rc = httpd_new(&cfg, &h);
    if (rc < 0) {
        fprintf(stderr, "tollgate sim: cannot listen on %s:%u: %s\n", host, port, strerror(-rc));
        sim_free(sim);
        return 1;
    }
    sim_attach(sim, h);

    /* Signals are taken synchronously by this thread; the workers block them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    rc = httpd_start(h);
    if (rc < 0) {
        fprintf(stderr, "tollgate sim: cannot start workers: %s\n", strerror(-rc));
        httpd_free(h);
        sim_free(sim);
        return 1;
    }
    const char *fmt = strchr(host, ':') ? "listening on [%s]:%d\n" : "listening on %s:%d\n";
    printf(fmt, host, httpd_port(h));
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "tollgate sim: %s, draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    httpd_stop(h, 5000);
    httpd_wait(h);
    httpd_free(h);
    sim_free(sim);
    return 0;
}
