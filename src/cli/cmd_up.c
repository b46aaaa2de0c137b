/* cmd_up.c — `tollgate up`: run the local stack as child processes, check it, stop it on Ctrl-C. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_num.h"
#include "cli/up_config.h"

#define UP_MAX_CHILDREN 5
#define UP_DEFAULT_MODEL "models/orders.gguf"
#define UP_DEFAULT_DB "build/up/orders.db"
#define UP_HEALTH_WAIT_MS 60000   /* a big model file takes a while to map */
#define UP_UPSTREAM_WAIT_MS 10000 /* an external upstream should already be up */

/* One child process of the stack. */
typedef struct up_child {
    const char *name; /* "sim-stable", "gateway" ... */
    pid_t pid;
    int port; /* where its health endpoint answers */
    const char *health_path;
} up_child_t;

typedef struct up_stack {
    up_child_t child[UP_MAX_CHILDREN];
    int n;
} up_stack_t;

static volatile sig_atomic_t up_interrupted;

static void on_signal(int sig) {
    (void)sig;
    up_interrupted = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: tollgate up [options]\n"
            "\n"
            "Run the whole local stack in the foreground and stop it cleanly on Ctrl-C:\n"
            "  - the inference server (tollgate serve) with the shipped order model\n"
            "    models/orders.gguf on 127.0.0.1:9003 -- or, with --upstream, an\n"
            "    OpenAI-compatible server that already runs (vLLM, llama.cpp server, ...);\n"
            "  - two simulated upstreams (tollgate sim) on :9001 (stable) and :9002 (canary)\n"
            "    behind the example route \"tollgate-sim\", to try A/B weights and canaries;\n"
            "  - the gateway (tollgate gateway) with the example config: clients on :8080,\n"
            "    admin on :8081; its task normalize_order runs on the route \"orders\";\n"
            "  - the order service (tollgate orders) on :8090, database %s.\n"
            "It waits until each part answers its health check, prints the addresses, places a\n"
            "few sample orders and prints their normalized descriptions. The gateway runs a\n"
            "copy of the config with the addresses, model name and prompt set as below\n"
            "(a temporary file, removed on exit).\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   gateway config [examples/tollgate.yaml]; it must route to\n"
            "                      127.0.0.1:9001, :9002 and :9003 as the example does (up\n"
            "                      rewrites those addresses)\n"
            "  -m, --model FILE    serve this GGUF model instead of models/orders.gguf (e.g. a\n"
            "                      Mistral 7B Q4_K_M you downloaded; add --prompt instruct)\n"
            "  --upstream URL      start no engine: route \"orders\" goes to this running\n"
            "                      server, http://HOST:PORT[/v1] (plain HTTP). It must answer\n"
            "                      GET /health or GET /v1/models (then the gateway's health\n"
            "                      check uses /v1/models)\n"
            "  --upstream-model NAME\n"
            "                      the model name sent upstream [the first model the\n"
            "                      upstream lists in GET /v1/models]\n"
            "  --prompt MODE       how the task normalize_order asks the model:\n"
            "                        trained   the raw order as the only message (what\n"
            "                                  models/orders.gguf was trained on)\n"
            "                        instruct  plus the config's system prompt spelling out\n"
            "                                  the receipt format (its commented-out\n"
            "                                  \"# system:\" is enabled), for a general\n"
            "                                  instruction model\n"
            "                      [instruct with --upstream, else trained]\n"
            "  --port-base N       ports N (gateway), N+1 (admin), N+2 (orders), N+3, N+4\n"
            "                      (simulators), N+5 (engine); 0 = any free ports (printed)\n"
            "                      [the fixed 8080, 8081, 8090, 9001, 9002, 9003]\n"
            "  --db FILE           the order service's database [%s]\n"
            "  --ttft-ms MS        the simulators' time to first token [40]\n"
            "  --itl-ms MS         the simulators' inter-token latency [10]\n"
            "  -h, --help          this text\n"
            "\n"
            "The task's deadline (500 ms in the example) holds for any model: a model slower\n"
            "than that gives every order its raw text (\"fallback\"). See docs/orders.md.\n"
            "\n"
            "exit status: 0 after Ctrl-C (or SIGTERM) stopped everything, 1 when a part failed\n"
            "to start or died (or the upstream does not answer), 2 on a usage error.\n",
            UP_DEFAULT_DB, UP_DEFAULT_DB);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A blocking HTTP/1.0 exchange with host:port (a name or a numeric address, IPv6
 * without brackets), for health checks and the sample requests only (never on a request
 * path). Writes the response (head and body) into out; returns the status code, or -1 if
 * nothing usable came back within timeout_ms. */
static int http_exchange(const char *host, int port, const char *method, const char *path,
                         const char *body, char *out, size_t cap, int timeout_ms) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    out[0] = '\0';
    if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return -1;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int status = -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        char req[2048];
        int v6 = strchr(host, ':') != NULL; /* Host: [::1] */
        int n = snprintf(req, sizeof req,
                         "%s %s HTTP/1.0\r\nHost: %s%s%s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         method, path, v6 ? "[" : "", host, v6 ? "]" : "", body ? strlen(body) : 0,
                         body ? body : "");
        size_t len = 0;
        if (n > 0 && (size_t)n < sizeof req && write(fd, req, (size_t)n) == n) {
            ssize_t r;
            while (len + 1 < cap && (r = read(fd, out + len, cap - 1 - len)) > 0) len += (size_t)r;
        }
        out[len] = '\0';
        if (sscanf(out, "HTTP/1.%*d %d", &status) != 1) status = -1;
    }
    close(fd);
    freeaddrinfo(ai);
    return status;
}

/* 1 when something accepts connections on 127.0.0.1:port. */
static int port_in_use(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int used = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return used;
}

static int spawn(up_stack_t *st, const char *name, int port, const char *health_path,
                 char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tollgate up: fork failed for %s: %s\n", name, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* The child's stdout is quiet (its "listening" line would interleave with
         * ours); errors and logs still reach the terminal through stderr. */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "tollgate up: cannot run %s: %s\n", name, strerror(errno));
        _exit(127);
    }
    up_child_t *c = &st->child[st->n++];
    c->name = name;
    c->pid = pid;
    c->port = port;
    c->health_path = health_path;
    return 0;
}

/* Wait for a child's health endpoint to answer 200; fail if it exits first. */
static int wait_healthy(up_child_t *c) {
    char resp[4096];
    uint64_t deadline = now_ms() + UP_HEALTH_WAIT_MS;
    while (now_ms() < deadline && !up_interrupted) {
        int wst;
        if (waitpid(c->pid, &wst, WNOHANG) == c->pid) {
            fprintf(stderr, "tollgate up: %s exited before it was healthy (status %d)\n", c->name,
                    WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst));
            c->pid = 0;
            return -1;
        }
        if (http_exchange("127.0.0.1", c->port, "GET", c->health_path, NULL, resp, sizeof resp,
                          500) == 200)
            return 0;
        poll(NULL, 0, 100);
    }
    if (!up_interrupted)
        fprintf(stderr, "tollgate up: %s did not answer %s on port %d within %d s\n", c->name,
                c->health_path, c->port, UP_HEALTH_WAIT_MS / 1000);
    return -1;
}

/* SIGTERM every child, then wait; SIGKILL what is still there after 10 s. */
static void stop_all(up_stack_t *st) {
    for (int i = st->n - 1; i >= 0; i--)
        if (st->child[i].pid > 0) kill(st->child[i].pid, SIGTERM);
    uint64_t deadline = now_ms() + 10000;
    for (int i = st->n - 1; i >= 0; i--) {
        up_child_t *c = &st->child[i];
        while (c->pid > 0) {
            int wst;
            pid_t r = waitpid(c->pid, &wst, WNOHANG);
            if (r == c->pid || (r < 0 && errno == ECHILD)) {
                c->pid = 0;
            } else if (now_ms() > deadline) {
                kill(c->pid, SIGKILL);
                waitpid(c->pid, &wst, 0);
                c->pid = 0;
            } else {
                poll(NULL, 0, 50);
            }
        }
    }
}

/* Copy the JSON string value of "key" from a flat response into out (escapes kept). */
static void json_field(const char *resp, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(resp, pat);
    size_t n = 0;
    if (p) {
        for (p += strlen(pat); *p && *p != '"' && n + 1 < cap; p++) {
            if (*p == '\\' && p[1]) p++;
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

/* Place a few orders through the order service and print what each became. */
static void sample_orders(int orders_port) {
    static const char *const items[] = {"lgr pep pzza x2", "2 marg sml, coke",
                                        "one xl hawaiian + gb"};
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        char body[256], resp[8192], desc[256], source[16], reason[64];
        snprintf(body, sizeof body, "{\"items\":\"%s\",\"customer\":\"sample\"}", items[i]);
        int status = http_exchange("127.0.0.1", orders_port, "POST", "/orders", body, resp,
                                   sizeof resp, 5000);
        json_field(resp, "description", desc, sizeof desc);
        json_field(resp, "description_source", source, sizeof source);
        json_field(resp, "reason", reason, sizeof reason);
        printf("  order %-24s -> %d  %s  (%s%s%s)\n", items[i], status, desc, source,
               reason[0] ? ": " : "", reason);
    }
}

/* The stack's ports, in the order --port-base numbers them. */
typedef struct up_ports {
    int gateway, admin, orders, sim_stable, sim_canary, engine;
} up_ports_t;

/* Any free ports: bind all six to port 0 at once (so they differ), read them, close. A
 * stranger could take one before its child binds it; the health checks then fail clearly. */
static int pick_free_ports(up_ports_t *p) {
    int *slot[] = {&p->gateway, &p->admin, &p->orders, &p->sim_stable, &p->sim_canary, &p->engine};
    int fds[6], rc = 0;
    for (int i = 0; i < 6; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof sa;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0) {
            rc = -1;
            *slot[i] = 0;
        } else {
            *slot[i] = ntohs(sa.sin_port);
        }
    }
    for (int i = 0; i < 6; i++)
        if (fds[i] >= 0) close(fds[i]);
    return rc;
}

/* An upstream given as http://HOST:PORT[/v1][/]: host (brackets kept for IPv6, as the
 * gateway config writes it), bare host for connecting, port. */
typedef struct up_upstream {
    char addr[300]; /* "host:port" for the gateway config */
    char host[260]; /* for connect(): no brackets */
    int port;
    char model[256]; /* the model name sent upstream */
    char health[16]; /* "/health" or "/v1/models": what answered */
} up_upstream_t;

static int parse_upstream(const char *url, up_upstream_t *u) {
    if (!strncmp(url, "https://", 8)) {
        fprintf(stderr,
                "tollgate up: --upstream %s: the gateway speaks plain HTTP to upstreams; "
                "use http:// (a TLS-terminating proxy in front of a remote server)\n",
                url);
        return -1;
    }
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "tollgate up: --upstream %s: expected http://HOST:PORT\n", url);
        return -1;
    }
    const char *h = url + 7, *end = h + strcspn(h, "/");
    const char *path = end;
    if (*path && strcmp(path, "/") && strcmp(path, "/v1") && strcmp(path, "/v1/")) {
        fprintf(stderr,
                "tollgate up: --upstream %s: only http://HOST:PORT or http://HOST:PORT/v1 "
                "(the gateway calls /v1/... on the upstream)\n",
                url);
        return -1;
    }
    const char *colon;
    size_t hl;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) {
            fprintf(stderr, "tollgate up: --upstream %s: unclosed '['\n", url);
            return -1;
        }
        hl = (size_t)(rb - h - 1);
        if (hl >= sizeof u->host) goto bad;
        memcpy(u->host, h + 1, hl);
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        hl = (size_t)((colon ? colon : end) - h);
        if (hl >= sizeof u->host) goto bad;
        memcpy(u->host, h, hl);
    }
    u->host[hl] = '\0';
    u->port = 80;
    if (colon) {
        char *e;
        long port = strtol(colon + 1, &e, 10);
        if (e != end || port < 1 || port > 65535) goto bad;
        u->port = (int)port;
    }
    if (!u->host[0]) goto bad;
    snprintf(u->addr, sizeof u->addr, strchr(u->host, ':') ? "[%s]:%d" : "%s:%d", u->host, u->port);
    return 0;
bad:
    fprintf(stderr, "tollgate up: --upstream %s: expected http://HOST:PORT with a port 1-65535\n",
            url);
    return -1;
}

/* The first "id" of a /v1/models response body into out (no escapes expected in names). */
static int first_model_id(const char *resp, char *out, size_t cap) {
    const char *body = strstr(resp, "\r\n\r\n");
    const char *p = body ? strstr(body, "\"id\"") : NULL;
    if (!p) return -1;
    p += 4;
    while (*p == ' ' || *p == ':') p++;
    if (*p++ != '"') return -1;
    size_t n = 0;
    while (*p && *p != '"' && *p != '\\' && n + 1 < cap) out[n++] = *p++;
    out[n] = '\0';
    return *p == '"' && n ? 0 : -1;
}

/* Is the upstream there? /health (vLLM, llama.cpp server, tollgate), else /v1/models
 * (any OpenAI-compatible server). A /health that answers but not 200 (503 while a model
 * loads) is waited for, up to the engine's wait; no answer at all, up to 10 s. Fills
 * u->health and, when not given, u->model. */
static int check_upstream(up_upstream_t *u, const char *url) {
    char resp[16384];
    int health = -1, models = -1;
    uint64_t t0 = now_ms();
    for (;;) {
        health = http_exchange(u->host, u->port, "GET", "/health", NULL, resp, sizeof resp, 2000);
        models =
            http_exchange(u->host, u->port, "GET", "/v1/models", NULL, resp, sizeof resp, 2000);
        int no_health = health == 404 || health == 405 || health == 501;
        if (health == 200 || (no_health && models == 200)) {
            strcpy(u->health, health == 200 ? "/health" : "/v1/models");
            if (!u->model[0] &&
                (models != 200 || first_model_id(resp, u->model, sizeof u->model))) {
                fprintf(stderr,
                        "tollgate up: %s lists no model in GET /v1/models; name the one to "
                        "use with --upstream-model NAME\n",
                        url);
                return -1;
            }
            return 0;
        }
        uint64_t wait = health > 0 && !no_health ? UP_HEALTH_WAIT_MS : UP_UPSTREAM_WAIT_MS;
        if (up_interrupted || now_ms() - t0 > wait) break;
        poll(NULL, 0, 250);
    }
    if (up_interrupted) return -1;
    if (health > 0)
        fprintf(stderr,
                "tollgate up: the upstream %s answers GET /health with %d and GET /v1/models "
                "with %d, not 200 (still loading its model?)\n",
                url, health, models);
    else
        fprintf(stderr,
                "tollgate up: the upstream %s answers neither GET /health nor GET /v1/models "
                "(is it running, and is that its address?)\n",
                url);
    return -1;
}

int cmd_up(int argc, char **argv) {
    const char *config = "examples/tollgate.yaml", *model = NULL, *db = UP_DEFAULT_DB;
    const char *ttft = "40", *itl = "10", *upstream_url = NULL, *upstream_model = NULL;
    const char *prompt = NULL;
    int port_base = -1;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"model", required_argument, NULL, 'm'},
        {"db", required_argument, NULL, 'd'},
        {"ttft-ms", required_argument, NULL, 't'},
        {"itl-ms", required_argument, NULL, 'i'},
        {"upstream", required_argument, NULL, 'u'},
        {"upstream-model", required_argument, NULL, 'n'},
        {"prompt", required_argument, NULL, 'p'},
        {"port-base", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "c:m:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'm':
            model = optarg;
            break;
        case 'd':
            db = optarg;
            break;
        case 't':
            ttft = optarg;
            break;
        case 'i':
            itl = optarg;
            break;
        case 'u':
            upstream_url = optarg;
            break;
        case 'n':
            upstream_model = optarg;
            break;
        case 'p':
            prompt = optarg;
            break;
        case 'b':
            if (cli_parse_int(optarg, 0, 65535 - 5, &port_base) || (port_base > 0 && port_base < 1024)) {
                fprintf(stderr,
                        "tollgate up: --port-base %s: expected 0 (any free ports) or "
                        "1024-65530\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate up: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (upstream_url && model) {
        fprintf(stderr, "tollgate up: -m and --upstream exclude each other (with --upstream no "
                        "engine is started)\n");
        return 2;
    }
    if (upstream_model && !upstream_url) {
        fprintf(stderr, "tollgate up: --upstream-model needs --upstream (the engine up starts "
                        "serves its model as \"orders\")\n");
        return 2;
    }
    if (prompt && strcmp(prompt, "trained") && strcmp(prompt, "instruct")) {
        fprintf(stderr, "tollgate up: --prompt %s: expected trained or instruct\n", prompt);
        return 2;
    }
    int instruct = prompt ? !strcmp(prompt, "instruct") : upstream_url != NULL;
    if (!model) model = UP_DEFAULT_MODEL;
    up_upstream_t up = {0};
    if (upstream_url && parse_upstream(upstream_url, &up)) return 2;
    if (upstream_model) snprintf(up.model, sizeof up.model, "%s", upstream_model);
    const char *need[] = {config, model};
    for (int i = 0; i < (upstream_url ? 1 : 2); i++) {
        if (access(need[i], R_OK) != 0) {
            fprintf(stderr,
                    "tollgate up: cannot read %s: %s (run from the repository root, or "
                    "pass %s FILE)\n",
                    need[i], strerror(errno), i ? "-m" : "-c");
            return 2;
        }
    }
    if (!strcmp(db, UP_DEFAULT_DB)) mkdir("build", 0755), mkdir("build/up", 0755);

    up_ports_t pt = {8080, 8081, 8090, 9001, 9002, 9003};
    if (port_base == 0) {
        if (pick_free_ports(&pt)) {
            fprintf(stderr, "tollgate up: cannot find free ports on 127.0.0.1: %s\n",
                    strerror(errno));
            return 1;
        }
    } else if (port_base > 0) {
        int b = port_base;
        pt = (up_ports_t){b, b + 1, b + 2, b + 3, b + 4, b + 5};
    }
    /* A port already taken would let a stranger answer our health checks. */
    const int ports[] = {pt.sim_stable, pt.sim_canary, pt.engine, pt.gateway, pt.admin, pt.orders};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        if (upstream_url && ports[i] == pt.engine) continue;
        if (port_in_use(ports[i])) {
            fprintf(stderr,
                    "tollgate up: port %d on 127.0.0.1 is already in use (another "
                    "tollgate up?); stop what listens there first, or use --port-base\n",
                    ports[i]);
            return 1;
        }
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (upstream_url && check_upstream(&up, upstream_url)) return 1;

    /* The config the gateway runs: the template with this run's addresses, model, prompt. */
    char sim1_addr[32], sim2_addr[32], engine_addr[32], gwconf[] = "/tmp/tollgate-up-XXXXXX";
    snprintf(sim1_addr, sizeof sim1_addr, "127.0.0.1:%d", pt.sim_stable);
    snprintf(sim2_addr, sizeof sim2_addr, "127.0.0.1:%d", pt.sim_canary);
    snprintf(engine_addr, sizeof engine_addr, "127.0.0.1:%d", pt.engine);
    up_config_opts_t co = {
        .sim_stable = sim1_addr,
        .sim_canary = sim2_addr,
        .engine = upstream_url ? up.addr : engine_addr,
        .upstream_model = upstream_url ? up.model : NULL,
        .engine_health = upstream_url && strcmp(up.health, "/health") ? up.health : NULL,
        .instruct = instruct,
    };
    int tmpfd = mkstemp(gwconf);
    if (tmpfd < 0) {
        fprintf(stderr, "tollgate up: cannot create a temporary config: %s\n", strerror(errno));
        return 1;
    }
    close(tmpfd);
    char cerr[512];
    if (up_config_write(config, gwconf, &co, cerr, sizeof cerr)) {
        fprintf(stderr, "tollgate up: %s\n", cerr);
        unlink(gwconf);
        return 2;
    }

    char p_gw[8], p_admin[8], p_orders[8], p_sim1[8], p_sim2[8], p_engine[8], gw_url[40];
    snprintf(p_gw, sizeof p_gw, "%d", pt.gateway);
    snprintf(p_admin, sizeof p_admin, "%d", pt.admin);
    snprintf(p_orders, sizeof p_orders, "%d", pt.orders);
    snprintf(p_sim1, sizeof p_sim1, "%d", pt.sim_stable);
    snprintf(p_sim2, sizeof p_sim2, "%d", pt.sim_canary);
    snprintf(p_engine, sizeof p_engine, "%d", pt.engine);
    snprintf(gw_url, sizeof gw_url, "http://127.0.0.1:%d", pt.gateway);

    up_stack_t st = {0};
    char *engine[] = {"tollgate",     "serve",  "-m",          (char *)model, "--port", p_engine,
                      "--model-name", "orders", "--log-level", "warn",        NULL};
    char *sim1[] = {"tollgate",  "sim",        "--port",   p_sim1,      "--model", "tollgate-sim",
                    "--ttft-ms", (char *)ttft, "--itl-ms", (char *)itl, NULL};
    char *sim2[] = {"tollgate",     "sim",       "--port",     p_sim2,     "--model",
                    "tollgate-sim", "--ttft-ms", (char *)ttft, "--itl-ms", (char *)itl,
                    "--seed",       "2",         NULL};
    char *gw[] = {"tollgate",     "gateway", "-c",          gwconf, "--port", p_gw,
                  "--admin-port", p_admin,   "--log-level", "warn", NULL};
    char *orders[] = {"tollgate", "orders", "--port", p_orders, "--db", (char *)db,
                      /* longer than the task's 500 ms deadline, so a slow model shows up as
                       * the gateway's own fallback rather than an order-side timeout */
                      "--gateway", gw_url, "--deadline-ms", "600", NULL};
    int rc = 1;
    /* In dependency order, each healthy before the next starts, so the first sample
     * orders already see the whole path. */
    if (!upstream_url &&
        (spawn(&st, "engine", pt.engine, "/health", engine) || wait_healthy(&st.child[st.n - 1])))
        goto out;
    if (spawn(&st, "sim-stable", pt.sim_stable, "/health", sim1) ||
        wait_healthy(&st.child[st.n - 1]) ||
        spawn(&st, "sim-canary", pt.sim_canary, "/health", sim2) ||
        wait_healthy(&st.child[st.n - 1]) || spawn(&st, "gateway", pt.admin, "/health", gw) ||
        wait_healthy(&st.child[st.n - 1]) || spawn(&st, "orders", pt.orders, "/health", orders) ||
        wait_healthy(&st.child[st.n - 1]))
        goto out;

    printf("tollgate up: the local stack is running\n"
           "  orders      http://127.0.0.1:%d/orders   (POST {\"items\": \"lgr pep pzza x2\"})\n"
           "  gateway     http://127.0.0.1:%d/v1       (OpenAI-compatible; models \"orders\", "
           "\"tollgate-sim\"; POST /v1/tasks/normalize_order)\n"
           "  admin       http://127.0.0.1:%d          (key: see %s)\n",
           pt.orders, pt.gateway, pt.admin, config);
    if (upstream_url)
        printf("  upstream    http://%s/v1   (external; model \"%s\"; health %s)\n", up.addr,
               up.model, up.health);
    else
        printf("  engine      http://127.0.0.1:%d/v1       (tollgate serve -m %s)\n", pt.engine,
               model);
    printf("  simulators  http://127.0.0.1:%d, :%d   (route \"tollgate-sim\", stable/canary)\n"
           "  prompt      %s   (gateway config: %s, from %s)\n"
           "sample orders:\n",
           pt.sim_stable, pt.sim_canary,
           instruct ? "instruct: the config's system prompt, then the order"
                    : "trained: the raw order as the only message",
           gwconf, config);
    sample_orders(pt.orders);
    printf("Ctrl-C stops everything.\n");
    fflush(stdout);

    while (!up_interrupted) {
        int wst;
        pid_t pid = waitpid(-1, &wst, 0);
        if (pid < 0 && errno == EINTR) continue;
        for (int i = 0; i < st.n; i++) {
            if (st.child[i].pid == pid) {
                fprintf(stderr, "tollgate up: %s exited unexpectedly; stopping the stack\n",
                        st.child[i].name);
                st.child[i].pid = 0;
                goto out;
            }
        }
        if (pid < 0) goto out;
    }
    rc = 0;
out:
    stop_all(&st);
    unlink(gwconf);
    printf("tollgate up: stopped\n");
    return rc;
}
