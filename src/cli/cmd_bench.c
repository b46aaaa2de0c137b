/* cmd_bench.c — `tollgate bench`: command line of the LLM-aware load generator. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "core/json.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tollgate bench --url http://HOST:PORT [options]\n"
            "\n"
            "An LLM-aware HTTP load generator: sends OpenAI-style requests and reports\n"
            "end-to-end latency, time to first token (TTFT), time per output token (TPOT),\n"
            "output tokens and errors by kind, as percentiles (p50/p90/p99/max).\n"
            "\n"
            "target:\n"
            "  --url URL            http://HOST:PORT[/PATH] (IPv4, [IPv6] or a name; no https)\n"
            "  --path PATH          endpoint [the URL's path, else /v1/chat/completions]\n"
            "  --method M           HTTP method [POST]\n"
            "  --header 'K: V'      extra request header, repeatable (e.g. Authorization)\n"
            "\n"
            "request body (default: a small chat request built from the options below):\n"
            "  --model NAME         model field [tollgate-sim]\n"
            "  --prompt TEXT        user message (prompt for /v1/completions) [an order line]\n"
            "  --max-tokens N       max_tokens field [16]\n"
            "  --stream             ask for a streamed (SSE) response, with usage included\n"
            "  --body-file FILE     send FILE's bytes as the body instead (sent as is; the\n"
            "                       response is read as SSE when its Content-Type says so)\n"
            "\n"
            "load (closed loop by default):\n"
            "  --concurrency C      closed loop: C requests always in flight [8]\n"
            "  --rate R             open loop: R requests/s arrive whether or not earlier ones\n"
            "                       finished; latency counts from each scheduled send time, so\n"
            "                       a server falling behind shows in the figures\n"
            "  --arrival KIND       open-loop arrivals: poisson or constant [poisson]\n"
            "  --duration S         send for S seconds [10 unless --requests is given]\n"
            "  --requests N         send N requests in total (with --duration: whichever first)\n"
            "  --threads T          sender threads, one event loop each [2]\n"
            "  --connections N      cap on open connections, all threads; requests beyond it\n"
            "                       wait for one, their latency still counted from their\n"
            "                       scheduled time [open loop: 256; closed loop: C]. Raise it\n"
            "                       for long streamed requests (rate x duration in flight)\n"
            "  --max-inflight N     open loop: cap on requests in flight; later ones wait and\n"
            "                       still count from their scheduled time [4096]\n"
            "  --timeout S          per-request timeout (connect, first byte, total) [30]\n"
            "  --seed N             Poisson RNG seed [fixed]\n"
            "\n"
            "output:\n"
            "  --json FILE          also write the results as JSON to FILE (- for stdout)\n"
            "  --quiet              no progress line (printed every 2 s on stderr for runs\n"
            "                       longer than 5 s)\n"
            "  --help               this text\n"
            "\n"
            "Measures, per successful request: e2e latency; TTFT = first SSE event carrying\n"
            "content (non-streamed: the whole response, so TTFT = e2e); output tokens =\n"
            "usage.completion_tokens, else the number of content events; TPOT =\n"
            "(e2e - TTFT) / (tokens - 1), streamed responses only. Errors: connect,\n"
            "connect_timeout, first_byte_timeout, total_timeout, reset, malformed (incl. bad\n"
            "JSON in a 2xx body), and HTTP >= 400 by status. Requests still in flight when\n"
            "a --duration run ends get --timeout to finish, then count as unfinished.\n"
            "\n"
            "Exit status: 0 when the run took place (errors are in the report), 1 when it\n"
            "could not start, 2 on a usage error.\n"
            "\n"
            "examples:\n"
            "  tollgate bench --url http://127.0.0.1:8080 --concurrency 64 --duration 10\n"
            "  tollgate bench --url http://127.0.0.1:8080 --stream --rate 200 --duration 30 \\\n"
            "      --header 'Authorization: Bearer sk-orders' --json out.json\n");
}

/* Split http://host[:port][/path]. Writes into host (bracketed IPv6 kept as is). */
static int parse_url(const char *url, char *host, size_t hostcap, uint16_t *port, const char **path) {
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7;
    const char *end = h[0] == '[' ? strchr(h, ']') : NULL;
    const char *slash = strchr(end ? end : h, '/');
    const char *colon = end ? (end[1] == ':' ? end + 1 : NULL) : strchr(h, ':');
    if (colon && slash && colon > slash)
        colon = NULL;
    const char *hend = colon ? colon : slash ? slash : h + strlen(h);
    if (end)
        hend = end + 1;
    size_t hl = (size_t)(hend - h);
    if (!hl || hl >= hostcap)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = 80;
    if (colon) {
        char *e;
        long p = strtol(colon + 1, &e, 10);
        if (p <= 0 || p > 65535 || (*e && *e != '/'))
            return -1;
        *port = (uint16_t)p;
    }
    *path = slash && slash[1] ? slash : NULL;
    return 0;
}

static int read_file(const char *path, buf_t *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_append(out, tmp, n) < 0) {
            fclose(f);
            return -ENOMEM;
        }
    int err = ferror(f);
    fclose(f);
    return err ? -EIO : 0;
}

static int num_arg(const char *opt, const char *v, double min, double *out) {
    char *e;
    double d = v ? strtod(v, &e) : 0;
    if (!v || *e || !(d >= min)) {
        fprintf(stderr, "tollgate bench: %s needs a number >= %g\n", opt, min);
        return -1;
    }
    *out = d;
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *url = NULL, *path = NULL, *method = "POST", *model = "tollgate-sim";
    const char *prompt = "Normalise this order line for a receipt: lgr pep pzza x2";
    const char *body_file = NULL, *json_file = NULL, *arrival = "poisson";
    double max_tokens = 16, concurrency = 0, rate = 0, duration = 0, requests = 0, threads = 2;
    double connections = 0, max_inflight = 4096, timeout = 30, seed = 0;
    int stream = 0, quiet = 0, rc = 2;
    buf_t headers, body, json;
    buf_init(&headers);
    buf_init(&body);
    buf_init(&json);
    bench_result_t *res = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1, bad = 0;
#define NUM(name, var, min) else if (!strcmp(a, name)) bad = num_arg(name, v, min, &var)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--stream")) {
            stream = 1;
            used = 0;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
            used = 0;
        } else if (!v) {
            fprintf(stderr, "tollgate bench: %s needs a value (or is unknown); see --help\n", a);
            goto out;
        } else if (!strcmp(a, "--url"))
            url = v;
        else if (!strcmp(a, "--path"))
            path = v;
        else if (!strcmp(a, "--method"))
            method = v;
        else if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--prompt"))
            prompt = v;
        else if (!strcmp(a, "--body-file"))
            body_file = v;
        else if (!strcmp(a, "--json"))
            json_file = v;
        else if (!strcmp(a, "--arrival"))
            arrival = v;
        else if (!strcmp(a, "--header")) {
            const char *colon = strchr(v, ':');
            if (!colon || colon == v || strpbrk(v, "\r\n")) {
                fprintf(stderr, "tollgate bench: --header wants 'Name: value', got '%s'\n", v);
                goto out;
            }
            buf_appendf(&headers, "%s\r\n", v);
        }
        NUM("--max-tokens", max_tokens, 0);
        NUM("--concurrency", concurrency, 1);
        NUM("--rate", rate, 0.001);
        NUM("--duration", duration, 0.001);
        NUM("--requests", requests, 1);
        NUM("--threads", threads, 1);
        NUM("--connections", connections, 1);
        NUM("--max-inflight", max_inflight, 1);
        NUM("--timeout", timeout, 0.001);
        NUM("--seed", seed, 0);
        else {
            fprintf(stderr, "tollgate bench: unknown option '%s'; see --help\n", a);
            goto out;
        }
#undef NUM
        if (bad)
            goto out;
        i += used;
    }
    if (!url) {
        fprintf(stderr, "tollgate bench: --url is required, e.g. --url http://127.0.0.1:8080\n");
        goto out;
    }
    char host[256];
    uint16_t port;
    const char *url_path;
    if (parse_url(url, host, sizeof host, &port, &url_path) < 0) {
        fprintf(stderr, "tollgate bench: cannot use URL '%s': want http://HOST:PORT[/PATH]\n", url);
        goto out;
    }
    if (!path)
        path = url_path ? url_path : "/v1/chat/completions";
    /* the report prints scheme, host and port, then the path: keep the URL's own path out */
    char origin[300];
    size_t olen = url_path ? (size_t)(url_path - url) : strlen(url);
    while (olen > 7 && url[olen - 1] == '/') olen--;
    if (olen >= sizeof origin) olen = sizeof origin - 1;
    memcpy(origin, url, olen);
    origin[olen] = '\0';
    if (rate > 0 && concurrency > 0) {
        fprintf(stderr, "tollgate bench: --rate (open loop) and --concurrency (closed loop) exclude each other\n");
        goto out;
    }
    bench_arrival_t arr = BENCH_CLOSED;
    if (rate > 0) {
        if (!strcmp(arrival, "poisson"))
            arr = BENCH_POISSON;
        else if (!strcmp(arrival, "constant"))
            arr = BENCH_CONSTANT;
        else {
            fprintf(stderr, "tollgate bench: --arrival is poisson or constant, not '%s'\n", arrival);
            goto out;
        }
    } else if (concurrency == 0) {
        concurrency = 8;
    }
    if (duration == 0 && requests == 0)
        duration = 10;
    /* An open loop against a server that falls behind would otherwise open a
     * connection per waiting request, and on loopback hundreds of busy
     * connections cost more than they measure (see docs/bench.md). */
    if (rate > 0 && connections == 0)
        connections = 256;

    rc = 1;
    if (body_file) {
        int e = read_file(body_file, &body);
        if (e < 0) {
            fprintf(stderr, "tollgate bench: cannot read --body-file %s: %s\n", body_file, strerror(-e));
            goto out;
        }
    } else if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        json_w_t w;
        json_w_init(&w, &body);
        json_w_obj_begin(&w);
        json_w_key(&w, "model");
        json_w_str(&w, model);
        if (strstr(path, "/chat/") || !strstr(path, "/completions")) {
            json_w_key(&w, "messages");
            json_w_arr_begin(&w);
            json_w_obj_begin(&w);
            json_w_key(&w, "role");
            json_w_str(&w, "user");
            json_w_key(&w, "content");
            json_w_str(&w, prompt);
            json_w_obj_end(&w);
            json_w_arr_end(&w);
        } else {
            json_w_key(&w, "prompt");
            json_w_str(&w, prompt);
        }
        json_w_key(&w, "max_tokens");
        json_w_i64(&w, (int64_t)max_tokens);
        json_w_key(&w, "stream");
        json_w_bool(&w, stream);
        if (stream) {
            json_w_key(&w, "stream_options");
            json_w_obj_begin(&w);
            json_w_key(&w, "include_usage");
            json_w_bool(&w, 1);
            json_w_obj_end(&w);
        }
        json_w_obj_end(&w);
    }
    if (body.len && !strstr(headers.data ? headers.data : "", "ontent-Type:") &&
        !strstr(headers.data ? headers.data : "", "ontent-type:"))
        buf_appends(&headers, "Content-Type: application/json\r\n");

    bench_cfg_t cfg = {
        .url = origin,
        .stream = stream,
        .host = host,
        .port = port,
        .method = method,
        .path = path,
        .body = body.len ? body.data : NULL,
        .body_len = body.len,
        .raw_headers = headers.data,
        .raw_headers_len = headers.len,
        .arrival = arr,
        .rate = rate,
        .concurrency = (uint32_t)concurrency,
        .duration_s = duration,
        .requests = (uint64_t)requests,
        .threads = (uint32_t)threads,
        .connections = (uint32_t)connections,
        .max_inflight = (uint32_t)max_inflight,
        .timeout_ms = (uint32_t)(timeout * 1000 + 0.5) ? (uint32_t)(timeout * 1000 + 0.5) : 1,
        .quiet = quiet,
        .seed = (uint64_t)seed,
    };
    res = malloc(sizeof *res);
    if (!res) {
        fprintf(stderr, "tollgate bench: out of memory\n");
        goto out;
    }
    int e = bench_run(&cfg, res, stderr);
    if (e < 0) {
        fprintf(stderr, "tollgate bench: cannot run against %s: %s\n", url,
                e == -ENOENT ? "host name does not resolve" : strerror(-e));
        goto out;
    }
    bench_report_text(stdout, &cfg, res);
    if (json_file) {
        if (bench_report_json(&json, &cfg, res) < 0) {
            fprintf(stderr, "tollgate bench: out of memory\n");
            goto out;
        }
        FILE *f = strcmp(json_file, "-") ? fopen(json_file, "w") : stdout;
        if (!f || fwrite(json.data, 1, json.len, f) != json.len || (f != stdout && fclose(f) != 0)) {
            fprintf(stderr, "tollgate bench: cannot write %s: %s\n", json_file, strerror(errno));
            goto out;
        }
    }
    rc = 0;
out:
    free(res);
    buf_free(&headers);
    buf_free(&body);
    buf_free(&json);
    return rc;
}
