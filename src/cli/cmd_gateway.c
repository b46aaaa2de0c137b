/* cmd_gateway.c — `tollgate gateway`: command line, signals (SIGHUP reload, SIGTERM/SIGINT
 * drain and stop) around the gateway library. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_num.h"
#include "core/log.h"
#include "gateway/gateway.h"
#include "gateway/gwconfig.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tollgate gateway -c FILE [options]\n"
            "\n"
            "The LLM gateway: an OpenAI-compatible reverse proxy in front of one or more\n"
            "inference servers (tollgate serve, tollgate sim, vLLM, llama.cpp server, ...).\n"
            "POST /v1/chat/completions and /v1/completions are routed by their \"model\" to a\n"
            "route's weighted variants and each variant's backend pool (least outstanding\n"
            "requests, keep-alive, active health checks, passive ejection); streamed (SSE)\n"
            "responses pass through event by event; GET /v1/models lists the routes.\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   the YAML config (required; see docs/gateway.md and\n"
            "                      examples/tollgate.yaml)\n"
            "  --host ADDR         listen address [the config's listen, else 127.0.0.1]\n"
            "  --port N            listen port, 0 = any free port [the config's, else %d]\n"
            "  --admin-port N      admin listener port, 0 = any free port [the config's]\n"
            "  --threads N         worker threads, one event loop each [the config's, else\n"
            "                      the number of cores]\n"
            "  --drain-ms N        on SIGTERM/SIGINT, let in-flight requests finish for up\n"
            "                      to N ms before closing them [10000]\n"
            "  --check             validate the config, print what it defines, and exit\n"
            "  --log-level L       debug, info, warn, error or off [info]; logs are JSON\n"
            "                      lines on stderr\n"
            "  -h, --help          this text\n"
            "\n"
            "signals:\n"
            "  SIGHUP              reload the config file: a valid one takes over for new\n"
            "                      requests (in-flight ones finish on the old); a broken one\n"
            "                      is refused with its line and field (logged), the old kept\n"
            "  SIGTERM, SIGINT     stop accepting, drain, exit 0\n"
            "\n"
            "admin API (when the config has an admin section; key in Authorization: Bearer):\n"
            "  GET /health, GET /ready (no key), GET /config, POST /reload, GET /routes,\n"
            "  GET|PUT /routes/MODEL/weights, GET /upstreams, GET /stats\n"
            "\n"
            "On start it prints one line to stdout:\n"
            "  tollgate gateway listening on HOST:PORT admin HOST:PORT threads N\n"
            "\n"
            "exit status: 0 after a clean stop, 1 on a runtime failure, 2 on a usage or\n"
            "config error.\n",
            GW_DEF_PORT);
}

int cmd_gateway(int argc, char **argv) {
    enum { O_HOST = 256, O_PORT, O_ADMIN_PORT, O_THREADS, O_DRAIN, O_CHECK, O_LOG };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"admin-port", required_argument, NULL, O_ADMIN_PORT},
        {"threads", required_argument, NULL, O_THREADS},
        {"drain-ms", required_argument, NULL, O_DRAIN},
        {"check", no_argument, NULL, O_CHECK},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    gateway_opts_t o = {.port = -1, .admin_port = -1};
    int drain_ms = 10000, check = 0, c;
    optind = 1;
    int idx = -1;
    while ((c = getopt_long(argc, argv, "c:h", longopts, &idx)) != -1) {
        int bad = 0;
        switch (c) {
        case 'c': o.config_path = optarg; break;
        case O_HOST: o.host = optarg; break;
        case O_PORT: bad = cli_parse_int(optarg, 0, 65535, &o.port); break;
        case O_ADMIN_PORT: bad = cli_parse_int(optarg, 0, 65535, &o.admin_port); break;
        case O_THREADS: bad = cli_parse_int(optarg, 1, 256, &o.threads); break;
        case O_DRAIN: bad = cli_parse_int(optarg, 0, 3600000, &drain_ms); break;
        case O_CHECK: check = 1; break;
        case O_LOG:
            bad = log_level_parse(optarg) < 0;
            if (!bad)
                log_set_level((log_level_t)log_level_parse(optarg));
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "tollgate gateway: bad value '%s' for --%s; run 'tollgate gateway --help'\n",
                    optarg, longopts[idx].name);
            return 2;
        }
    }
    if (!o.config_path || optind < argc) {
        fprintf(stderr, "tollgate gateway: %s; run 'tollgate gateway --help'\n",
                o.config_path ? "unexpected argument" : "-c FILE is required");
        return 2;
    }
    char err[GWCONFIG_ERR_MAX + 256];
    if (check) {
        gw_config_t cfg;
        if (gwconfig_load(o.config_path, &cfg, err, sizeof err) != 0) {
            fprintf(stderr, "tollgate gateway: %s\n", err);
            return 2;
        }
        printf("%s: ok: %zu route%s, %zu backend%s\n", o.config_path, cfg.nroutes,
               cfg.nroutes == 1 ? "" : "s", cfg.nbackends, cfg.nbackends == 1 ? "" : "s");
        gwconfig_free(&cfg);
        return 0;
    }

    /* Signals are taken synchronously by this thread (sigwait); every other thread
     * inherits the blocked mask, so none is interrupted. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    gateway_t *gw;
    int rc = gateway_new(&o, &gw, err, sizeof err);
    if (rc) {
        fprintf(stderr, "tollgate gateway: %s\n", err);
        return rc == -EINVAL ? 2 : 1;
    }
    if ((rc = gateway_start(gw)) != 0) {
        fprintf(stderr, "tollgate gateway: cannot start: %s\n", strerror(-rc));
        gateway_free(gw);
        return 1;
    }
    snapshot_t *s = gateway_acquire(gw);
    const char *host = o.host ? o.host : s->cfg.listen.host;
    if (gateway_admin_port(gw) >= 0)
        printf("tollgate gateway listening on %s:%d admin %s:%d threads %d\n", host,
               gateway_port(gw), s->cfg.admin.listen.host, gateway_admin_port(gw),
               gateway_threads(gw));
    else
        printf("tollgate gateway listening on %s:%d admin off threads %d\n", host,
               gateway_port(gw), gateway_threads(gw));
    fflush(stdout);
    log_info("gateway started", LOG_STR("config", o.config_path), LOG_INT("port", gateway_port(gw)),
             LOG_INT("admin_port", gateway_admin_port(gw)), LOG_INT("threads", gateway_threads(gw)),
             LOG_INT("routes", (int64_t)s->cfg.nroutes));
    snapshot_unref(s);

    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            gateway_reload(gw, err, sizeof err); /* logs the outcome itself */
            continue;
        }
        log_info("stopping", LOG_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"),
                 LOG_INT("drain_ms", drain_ms));
        break;
    }
    gateway_stop(gw, (uint32_t)drain_ms);
    gateway_wait(gw);
    gateway_free(gw);
    return 0;
}
