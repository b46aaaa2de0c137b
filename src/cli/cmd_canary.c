/* cmd_canary.c — `tollgate canary`: start, pause, resume, promote, abort and watch a route's
 * canary through the gateway's admin API. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/json.h"

static void usage(FILE *f) {
    fputs("usage: tollgate canary [options] status [MODEL]\n"
          "       tollgate canary [options] start MODEL [--stable V] [--canary V] [--steps 10,25,50,100]\n"
          "                                 [--pause-ms MS] [--window-ms MS] [--min-requests N]\n"
          "                                 [--max-p99-ms MS] [--max-error-pct P] [--max-fallback-pct P]\n"
          "       tollgate canary [options] pause|resume|promote MODEL\n"
          "       tollgate canary [options] abort MODEL [--reason TEXT]\n"
          "\n"
          "Talks to the gateway's admin API. Settings not given come from the route's\n"
          "`canary:` section of the gateway config (docs/gateway.md, \"Canary\").\n"
          "\n"
          "options:\n"
          "  --admin HOST:PORT   the admin listener [127.0.0.1:8081]\n"
          "  --key KEY           the admin key [env TOLLGATE_ADMIN_KEY]\n"
          "  -h, --help          this text\n"
          "\n"
          "Prints the canary's status as JSON. Exit 0 on success, 1 when the gateway refuses\n"
          "or cannot be reached, 2 on a usage error.\n",
          f);
}

/* One blocking request on a fresh connection (Connection: close), body read to EOF. The
 * admin API answers with Content-Length, so no chunked decoding is needed. 0 or -1. */
static int request(const char *hostport, const char *method, const char *path, const char *key,
                   const char *body, int *status, buf_t *resp) {
    char host[256], port[16];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host || strlen(colon + 1) >= sizeof port)
        return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    buf_t q;
    buf_init(&q);
    buf_appendf(&q, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, hostport);
    if (key)
        buf_appendf(&q, "Authorization: Bearer %s\r\n", key);
    buf_appendf(&q, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                body ? strlen(body) : 0, body ? body : "");
    size_t off = 0;
    while (q.data && off < q.len) {
        ssize_t w = write(fd, q.data + off, q.len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    buf_free(&q);
    char tmp[8192];
    ssize_t r;
    buf_reset(resp);
    while ((r = read(fd, tmp, sizeof tmp)) > 0) buf_append(resp, tmp, (size_t)r);
    close(fd);
    char *end = resp->data ? strstr(resp->data, "\r\n\r\n") : NULL;
    if (!end || sscanf(resp->data, "HTTP/1.%*d %d", status) != 1)
        return -1;
    buf_consume(resp, (size_t)(end + 4 - resp->data));
    return 0;
}

/* "10,25,50,100" -> a JSON array into w. 0 or -1. */
static int write_steps(json_w_t *w, const char *s) {
    json_w_arr_begin(w);
    while (*s) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s || v < 1 || v > 100 || (*e && *e != ','))
            return -1;
        json_w_i64(w, v);
        s = *e ? e + 1 : e;
    }
    json_w_arr_end(w);
    return 0;
}

int cmd_canary(int argc, char **argv) {
    enum { O_ADMIN = 256, O_KEY, O_STABLE, O_CANARY, O_STEPS, O_PAUSE, O_WINDOW, O_MINREQ,
           O_P99, O_ERR, O_FB, O_REASON };
    static const struct option opts[] = {
        {"admin", required_argument, 0, O_ADMIN},   {"key", required_argument, 0, O_KEY},
        {"stable", required_argument, 0, O_STABLE}, {"canary", required_argument, 0, O_CANARY},
        {"steps", required_argument, 0, O_STEPS},   {"pause-ms", required_argument, 0, O_PAUSE},
        {"window-ms", required_argument, 0, O_WINDOW},
        {"min-requests", required_argument, 0, O_MINREQ},
        {"max-p99-ms", required_argument, 0, O_P99},
        {"max-error-pct", required_argument, 0, O_ERR},
        {"max-fallback-pct", required_argument, 0, O_FB},
        {"reason", required_argument, 0, O_REASON}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *adm = "127.0.0.1:8081", *key = getenv("TOLLGATE_ADMIN_KEY");
    buf_t body;
    buf_init(&body);
    json_w_t jw;
    json_w_init(&jw, &body);
    json_w_obj_begin(&jw);
    int c, rc = 2, nbody = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *k = NULL;
        int num = 0;
        switch (c) {
        case 'h': usage(stdout); buf_free(&body); return 0;
        case O_ADMIN: adm = optarg; continue;
        case O_KEY: key = optarg; continue;
        case O_STABLE: k = "stable"; break;
        case O_CANARY: k = "canary"; break;
        case O_REASON: k = "reason"; break;
        case O_STEPS:
            json_w_key(&jw, "steps");
            if (write_steps(&jw, optarg) < 0) {
                fprintf(stderr, "tollgate canary: --steps wants percentages such as 10,25,50,100\n");
                goto out;
            }
            nbody++;
            continue;
        case O_PAUSE: k = "pause_ms"; num = 1; break;
        case O_WINDOW: k = "window_ms"; num = 1; break;
        case O_MINREQ: k = "min_requests"; num = 1; break;
        case O_P99: k = "max_p99_ms"; num = 1; break;
        case O_ERR: k = "max_error_pct"; num = 1; break;
        case O_FB: k = "max_fallback_pct"; num = 1; break;
        default: usage(stderr); goto out;
        }
        json_w_key(&jw, k);
        if (num) {
            char *e;
            double v = strtod(optarg, &e);
            if (*e || e == optarg) {
                fprintf(stderr, "tollgate canary: --%s wants a number, got \"%s\"\n",
                        opts[c - O_ADMIN].name, optarg);
                goto out;
            }
            json_w_double(&jw, v);
        } else {
            json_w_str(&jw, optarg);
        }
        nbody++;
    }
    json_w_obj_end(&jw);
    const char *cmd = optind < argc ? argv[optind] : NULL;
    const char *model = optind + 1 < argc ? argv[optind + 1] : NULL;
    static const char *const cmds[] = {"status", "start", "pause", "resume", "promote", "abort", NULL};
    int known = 0;
    for (size_t i = 0; cmd && cmds[i]; i++) known |= !strcmp(cmd, cmds[i]);
    if (!known || (strcmp(cmd, "status") && !model) || optind + 2 < argc) {
        fprintf(stderr, "tollgate canary: expected status [MODEL] | start|pause|resume|promote|abort MODEL\n");
        usage(stderr);
        goto out;
    }
    if (!key) {
        fprintf(stderr, "tollgate canary: no admin key: pass --key or set TOLLGATE_ADMIN_KEY\n");
        goto out;
    }
    char path[512];
    int get = !strcmp(cmd, "status");
    if (get)
        snprintf(path, sizeof path, "/canary%s%s", model ? "/" : "", model ? model : "");
    else
        snprintf(path, sizeof path, "/canary/%s/%s", model, cmd);
    buf_t resp;
    buf_init(&resp);
    int status = 0;
    rc = 1;
    if (request(adm, get ? "GET" : "POST", path, key, get || !nbody ? NULL : body.data, &status,
                &resp) < 0) {
        fprintf(stderr, "tollgate canary: cannot reach the admin API at %s: %s\n", adm,
                strerror(errno ? errno : ECONNREFUSED));
    } else if (status != 200) {
        fprintf(stderr, "tollgate canary: the gateway answered %d: %.*s\n", status,
                (int)resp.len, resp.data ? resp.data : "");
    } else {
        printf("%.*s\n", (int)resp.len, resp.data ? resp.data : "");
        rc = 0;
    }
    buf_free(&resp);
out:
    buf_free(&body);
    return rc;
}
