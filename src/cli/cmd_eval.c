/* cmd_eval.c — `tollgate eval`: run the held-out order set through a model file (engine,
 * in process) or a running server (`tollgate serve` chat endpoint or a gateway task) and
 * report exact match, per-kind accuracy and latency. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_num.h"
#include "core/buf.h"
#include "core/json.h"
#include "train/evalset.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One blocking HTTP/1.1 POST on a fresh connection (Connection: close), body read to EOF.
 * The latency measured includes the loopback connect (tens of microseconds). 0 with the
 * status in *status and the body in resp, or -1. */
static int http_post(const char *host, const char *port, const char *path, const char *auth,
                     const char *body, int *status, buf_t *resp) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0), one = 1;
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    buf_t req;
    buf_init(&req);
    buf_appendf(&req,
                "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\nConnection: "
                "close\r\n",
                path, host, port);
    if (auth) buf_appendf(&req, "Authorization: Bearer %s\r\n", auth);
    buf_appendf(&req, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    size_t off = 0;
    while (req.data && off < req.len) {
        ssize_t w = write(fd, req.data + off, req.len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    buf_free(&req);
    buf_reset(resp);
    char tmp[8192];
    ssize_t r;
    while ((r = read(fd, tmp, sizeof tmp)) > 0) buf_append(resp, tmp, (size_t)r);
    close(fd);
    if (!resp->data || sscanf(resp->data, "HTTP/1.%*d %d", status) != 1) return -1;
    char *hdr_end = strstr(resp->data, "\r\n\r\n");
    if (!hdr_end) return -1;
    size_t hl = (size_t)(hdr_end + 4 - resp->data);
    /* chunked bodies: join the chunks */
    if (strcasestr(resp->data, "transfer-encoding: chunked") &&
        strcasestr(resp->data, "chunked") < hdr_end) {
        buf_t b;
        buf_init(&b);
        const char *p = resp->data + hl, *end = resp->data + resp->len;
        while (p < end) {
            char *e;
            unsigned long n = strtoul(p, &e, 16);
            const char *q = strstr(e, "\r\n");
            if (!q || n == 0) break;
            q += 2;
            if (q + n > end) break;
            buf_append(&b, q, n);
            p = q + n + 2;
        }
        buf_reset(resp);
        if (b.data) buf_append(resp, b.data, b.len);
        buf_free(&b);
        if (!resp->data) buf_appends(resp, "");
    } else {
        buf_consume(resp, hl);
    }
    return 0;
}

/* Pull a string at a path of object keys / array indexes from JSON text into out. */
static int json_path_str(const char *text, size_t len, const char *const *path, int n, buf_t *out) {
    json_tok_t toks[512];
    json_doc_t d;
    if (json_parse(text, len, toks, 512, 32, &d, NULL) < 0) return -1;
    int t = 0;
    for (int i = 0; i < n && t >= 0; i++)
        t = path[i][0] == '#' ? json_arr_get(&d, t, (size_t)atoi(path[i] + 1))
                              : json_obj_get(&d, t, path[i]);
    if (t < 0 || toks[t].type != JSON_STRING) return -1;
    buf_reset(out);
    return json_str_unescape(&d, t, out);
}

static void usage(FILE *f) {
    fprintf(
        f, "usage: tollgate eval --data HELDOUT.jsonl (--model MODEL.gguf | --url "
           "http://HOST:PORT) [options]\n"
           "Exact-match accuracy of the order model on a held-out set (tollgate traingen --test),\n"
           "per noise kind, with latency percentiles.\n"
           "  --model FILE      decode greedily in process with the engine (no server)\n"
           "  --url URL         a running server: POST /v1/chat/completions (tollgate serve), or "
           "with\n"
           "  --task NAME       POST /v1/tasks/NAME {\"input\"} on a gateway (fallbacks count as "
           "misses)\n"
           "  --key KEY         bearer key for the gateway\n"
           "  --limit N         only the first N cases\n"
           "  --show N          print the first N mismatches (default 10)\n");
}

int cmd_eval(int argc, char **argv) {
    const char *data = NULL, *model_path = NULL, *url = NULL, *task = NULL, *key = NULL;
    int limit = -1;
    int show = 10, ch;
    static const struct option lo[] = {
        {"data", 1, 0, 'd'}, {"model", 1, 0, 'm'}, {"url", 1, 0, 'u'},
        {"task", 1, 0, 't'}, {"key", 1, 0, 'k'},   {"limit", 1, 0, 'n'},
        {"show", 1, 0, 's'}, {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'd':
            data = optarg;
            break;
        case 'm':
            model_path = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 't':
            task = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'n':
            if (cli_parse_int(optarg, 0, 1 << 30, &limit)) {
                fprintf(stderr, "tollgate eval: --limit wants a non-negative integer, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 's':
            if (cli_parse_int(optarg, 0, 1 << 30, &show)) {
                fprintf(stderr, "tollgate eval: --show wants a non-negative integer, not '%s'\n", optarg);
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
    if (!data || !!model_path == !!url) {
        fprintf(stderr, "tollgate eval: --data and exactly one of --model, --url are required\n");
        usage(stderr);
        return 2;
    }
    ev_case_t *cs;
    int n;
    char err[512];
    if (ev_load_jsonl(data, &cs, &n, err, sizeof err)) {
        fprintf(stderr, "tollgate eval: %s\n", err);
        return 1;
    }
    int n_all = n;
    if (limit >= 0 && limit < n) n = limit;
    ev_report_t r = {.cap = n};
    r.lat_ms = calloc((size_t)n + 1, sizeof(double));
    model_t m = {0};
    forward_state_t *st = NULL;
    tokenizer_t *tok = NULL;
    char host[256] = "", port[16] = "80";
    int rc = r.lat_ms ? 0 : 1;
    if (!rc && model_path) {
        if (model_load(model_path, &m, err, sizeof err) ||
            tok_load(&m.file, &tok, err, sizeof err) || forward_state_new(&m, 0, &st)) {
            fprintf(stderr, "tollgate eval: %s: %s\n", model_path, err);
            rc = 1;
        }
    } else if (!rc) {
        if (sscanf(url, "http://%255[^:/]:%15[0-9]", host, port) < 1) {
            fprintf(stderr, "tollgate eval: --url must look like http://127.0.0.1:8080\n");
            rc = 2;
        }
    }
    buf_t got, body, resp;
    buf_init(&got), buf_init(&body), buf_init(&resp);
    char path[300];
    snprintf(path, sizeof path, task ? "/v1/tasks/%s" : "/v1/chat/completions", task ? task : "");
    int shown = 0;
    for (int i = 0; i < n && !rc; i++) {
        const char *answer = NULL;
        double t0 = now_ms();
        if (model_path) {
            if (ev_greedy(&m, st, tok, cs[i].input, 64, &got) == 0) answer = got.data;
        } else {
            json_w_t w;
            int status = 0;
            buf_reset(&body);
            json_w_init(&w, &body);
            json_w_obj_begin(&w);
            if (task) {
                json_w_key(&w, "input"), json_w_str(&w, cs[i].input);
            } else {
                json_w_key(&w, "model"), json_w_str(&w, "orders");
                /* no max_tokens: the server stops at </s> or its context, whichever first */
                json_w_key(&w, "temperature"), json_w_i64(&w, 0);
                json_w_key(&w, "messages"), json_w_arr_begin(&w), json_w_obj_begin(&w);
                json_w_key(&w, "role"), json_w_str(&w, "user");
                json_w_key(&w, "content"), json_w_str(&w, cs[i].input);
                json_w_obj_end(&w), json_w_arr_end(&w);
            }
            json_w_obj_end(&w);
            if (http_post(host, port, path, key, body.data, &status, &resp) == 0 && status == 200) {
                static const char *const chat_path[] = {"choices", "#0", "message", "content"};
                static const char *const task_path[] = {"output"};
                if (json_path_str(resp.data, resp.len, task ? task_path : chat_path, task ? 1 : 4,
                                  &got) == 0)
                    answer = got.data ? got.data : "";
                if (task && answer && strstr(resp.data, "\"fallback\":true"))
                    r.fallbacks++, answer = "";
            } else if (!r.errors) { /* the first failure says why */
                fprintf(stderr, "tollgate eval: %s%s: HTTP %d %.200s\n", url, path, status,
                        resp.data ? resp.data : "");
            }
        }
        double ms = now_ms() - t0;
        ev_add(&r, &cs[i], answer, ms);
        if (answer && strcmp(answer, cs[i].output) && shown < show) {
            shown++;
            printf("miss: %-40s -> %s (expected %s)\n", cs[i].input, answer, cs[i].output);
        }
    }
    if (!rc) ev_print(&r, stdout);
    buf_free(&got), buf_free(&body), buf_free(&resp);
    free(r.lat_ms);
    forward_state_free(st);
    tok_free(tok);
    model_free(&m);
    ev_free(cs, n_all);
    return rc;
}
