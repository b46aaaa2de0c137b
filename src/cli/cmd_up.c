/* cmd_up.c — `tollgate up`: run the local stack as child processes, check it, stop it on Ctrl-C. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

#define UP_MAX_CHILDREN 5
#define UP_DEFAULT_MODEL "models/orders.gguf"
#define UP_DEFAULT_DB "build/up/orders.db"
#define UP_HEALTH_WAIT_MS 60000 /* a big model file takes a while to map */

/* One child process of the stack. */
typedef struct up_child {
    const char *name; /* "sim-stable", "gateway" ... */
    pid_t pid;
    int port;         /* where its health endpoint answers */
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
            "    models/orders.gguf on 127.0.0.1:9003;\n"
            "  - two simulated upstreams (tollgate sim) on :9001 (stable) and :9002 (canary)\n"
            "    behind the example route \"tollgate-sim\", to try A/B weights and canaries;\n"
            "  - the gateway (tollgate gateway) with the example config: clients on :8080,\n"
            "    admin on :8081; its task normalize_order runs on the order model;\n"
            "  - the order service (tollgate orders) on :8090, database %s.\n"
            "It waits until each part answers its health check, prints the addresses, places a\n"
            "few sample orders and prints their normalized descriptions.\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   gateway config [examples/tollgate.yaml]; it must route to\n"
            "                      127.0.0.1:9001, :9002 and :9003 as the example does\n"
            "  -m, --model FILE    serve this GGUF model instead of models/orders.gguf (e.g. a\n"
            "                      Mistral 7B Q4_K_M you downloaded); the task normalize_order\n"
            "                      then uses it with the config's prompt\n"
            "  --db FILE           the order service's database [%s]\n"
            "  --ttft-ms MS        the simulators' time to first token [40]\n"
            "  --itl-ms MS         the simulators' inter-token latency [10]\n"
            "  -h, --help          this text\n"
            "\n"
            "exit status: 0 after Ctrl-C (or SIGTERM) stopped everything, 1 when a part failed\n"
            "to start or died, 2 on a usage error.\n",
            UP_DEFAULT_DB, UP_DEFAULT_DB);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A blocking HTTP/1.0 exchange with 127.0.0.1:port, for health checks and the sample
 * request only (never on a request path). Writes the response (head and body) into
 * out; returns the status code, or -1 if nothing usable came back within timeout_ms. */
static int http_exchange(int port, const char *method, const char *path, const char *body,
                         char *out, size_t cap, int timeout_ms) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int status = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        char req[2048];
        int n = snprintf(req, sizeof req,
                         "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         method, path, body ? strlen(body) : 0, body ? body : "");
        size_t len = 0;
        if (n > 0 && (size_t)n < sizeof req && write(fd, req, (size_t)n) == n) {
            ssize_t r;
            while (len + 1 < cap && (r = read(fd, out + len, cap - 1 - len)) > 0)
                len += (size_t)r;
        }
        out[len] = '\0';
        if (sscanf(out, "HTTP/1.%*d %d", &status) != 1)
            status = -1;
    }
    close(fd);
    return status;
}

/* 1 when something accepts connections on 127.0.0.1:port. */
static int port_in_use(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
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
        if (devnull >= 0)
            dup2(devnull, STDOUT_FILENO);
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
            fprintf(stderr, "tollgate up: %s exited before it was healthy (status %d)\n",
                    c->name, WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst));
            c->pid = 0;
            return -1;
        }
        if (http_exchange(c->port, "GET", c->health_path, NULL, resp, sizeof resp, 500) == 200)
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
        if (st->child[i].pid > 0)
            kill(st->child[i].pid, SIGTERM);
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
    static const char *const items[] = {"lgr pep pzza x2", "2 marg sml, coke", "one xl hawaiian + gb"};
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        char body[256], resp[8192], desc[256], source[16], reason[64];
        snprintf(body, sizeof body, "{\"items\":\"%s\",\"customer\":\"sample\"}", items[i]);
        int status = http_exchange(orders_port, "POST", "/orders", body, resp, sizeof resp, 5000);
        json_field(resp, "description", desc, sizeof desc);
        json_field(resp, "description_source", source, sizeof source);
        json_field(resp, "reason", reason, sizeof reason);
        printf("  order %-24s -> %d  %s  (%s%s%s)\n", items[i], status, desc, source,
               reason[0] ? ": " : "", reason);
    }
}

int cmd_up(int argc, char **argv) {
    const char *config = "examples/tollgate.yaml", *model = UP_DEFAULT_MODEL, *db = UP_DEFAULT_DB;
    const char *ttft = "40", *itl = "10";
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"model", required_argument, NULL, 'm'},
        {"db", required_argument, NULL, 'd'},     {"ttft-ms", required_argument, NULL, 't'},
        {"itl-ms", required_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "c:m:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'm': model = optarg; break;
        case 'd': db = optarg; break;
        case 't': ttft = optarg; break;
        case 'i': itl = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate up: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    const char *need[] = {config, model};
    for (int i = 0; i < 2; i++) {
        if (access(need[i], R_OK) != 0) {
            fprintf(stderr, "tollgate up: cannot read %s: %s (run from the repository root, or "
                            "pass %s FILE)\n",
                    need[i], strerror(errno), i ? "-m" : "-c");
            return 2;
        }
    }
    if (!strcmp(db, UP_DEFAULT_DB))
        mkdir("build", 0755), mkdir("build/up", 0755);

    /* A port already taken would let a stranger answer our health checks. */
    static const int ports[] = {9001, 9002, 9003, 8080, 8081, 8090};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        if (port_in_use(ports[i])) {
            fprintf(stderr, "tollgate up: port %d on 127.0.0.1 is already in use (another "
                            "tollgate up?); stop what listens there first\n",
                    ports[i]);
            return 1;
        }
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    up_stack_t st = {0};
    char *engine[] = {"tollgate", "serve", "-m", (char *)model, "--port", "9003",
                      "--model-name", "orders", "--log-level", "warn", NULL};
    char *sim1[] = {"tollgate", "sim", "--port", "9001", "--model", "tollgate-sim",
                    "--ttft-ms", (char *)ttft, "--itl-ms", (char *)itl, NULL};
    char *sim2[] = {"tollgate", "sim", "--port", "9002", "--model", "tollgate-sim",
                    "--ttft-ms", (char *)ttft, "--itl-ms", (char *)itl, "--seed", "2", NULL};
    char *gw[] = {"tollgate", "gateway", "-c", (char *)config, "--log-level", "warn", NULL};
    char *orders[] = {"tollgate", "orders", "--port", "8090", "--db", (char *)db,
                      /* longer than the task's 500 ms deadline, so a slow model shows up as
                       * the gateway's own fallback rather than an order-side timeout */
                      "--gateway", "http://127.0.0.1:8080", "--deadline-ms", "600", NULL};
    int rc = 1;
    /* In dependency order, each healthy before the next starts, so the first sample
     * orders already see the whole path. */
    if (spawn(&st, "engine", 9003, "/health", engine) || wait_healthy(&st.child[0]) ||
        spawn(&st, "sim-stable", 9001, "/health", sim1) || wait_healthy(&st.child[1]) ||
        spawn(&st, "sim-canary", 9002, "/health", sim2) || wait_healthy(&st.child[2]) ||
        spawn(&st, "gateway", 8081, "/health", gw) || wait_healthy(&st.child[3]) ||
        spawn(&st, "orders", 8090, "/health", orders) || wait_healthy(&st.child[4]))
        goto out;

    printf("tollgate up: the local stack is running\n"
           "  orders      http://127.0.0.1:8090/orders   (POST {\"items\": \"lgr pep pzza x2\"})\n"
           "  gateway     http://127.0.0.1:8080/v1       (OpenAI-compatible; models \"orders\", "
           "\"tollgate-sim\"; POST /v1/tasks/normalize_order)\n"
           "  admin       http://127.0.0.1:8081          (key: see %s)\n"
           "  engine      http://127.0.0.1:9003/v1       (tollgate serve -m %s)\n"
           "  simulators  http://127.0.0.1:9001, :9002   (route \"tollgate-sim\", stable/canary)\n"
           "sample orders:\n",
           config, model);
    sample_orders(8090);
    printf("Ctrl-C stops everything.\n");
    fflush(stdout);

    while (!up_interrupted) {
        int wst;
        pid_t pid = waitpid(-1, &wst, 0);
        if (pid < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < st.n; i++) {
            if (st.child[i].pid == pid) {
                fprintf(stderr, "tollgate up: %s exited unexpectedly; stopping the stack\n",
                        st.child[i].name);
                st.child[i].pid = 0;
                goto out;
            }
        }
        if (pid < 0)
            goto out;
    }
    rc = 0;
out:
    stop_all(&st);
    printf("tollgate up: stopped\n");
    return rc;
}
