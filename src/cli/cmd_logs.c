/* cmd_logs.c — `tollgate logs`: list and filter the gateway's request log, show one entry. */
#define _GNU_SOURCE /* timegm, strptime */
#include <errno.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_num.h"
#include "core/config.h"
#include "core/json.h"
#include "gateway/gwconfig.h"
#include "gateway/obscfg.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tollgate logs (-c CONFIG | -d DB) [filters] [--limit N] [--json]\n"
            "       tollgate logs (-c CONFIG | -d DB) show ID\n"
            "\n"
            "Reads the gateway's request log (SQLite, written by `tollgate gateway` when the\n"
            "config has a request_log section): sampled requests with service, model,\n"
            "variant, status, outcome, tokens, latency, time to first token, and the prompt\n"
            "and response after redaction. Newest first.\n"
            "\n"
            "  -c, --config FILE   gateway config: the database is its request_log.path\n"
            "  -d, --db FILE       the database itself\n"
            "      --service NAME  only this service\n"
            "      --outcome WORD  ok, fallback, rejected, timeout, cancelled or error\n"
            "      --model NAME    only this model (route name)\n"
            "      --since T       from T: a duration ago (90s, 15m, 2h, 3d), a UTC time\n"
            "                      (2026-01-31T12:00:00 or 2026-01-31) or unix seconds\n"
            "      --until T       up to T (same forms)\n"
            "      --grep TEXT     prompt or response contains TEXT (case-sensitive)\n"
            "      --limit N       at most N entries [50]\n"
            "      --json          one JSON object per entry and line, all fields\n"
            "      --help          this text\n"
            "\n"
            "show ID prints one entry in full.\n");
}

/* Parse a --since/--until value into unix milliseconds. 0 or -EINVAL. */
static int parse_time(const char *s, int64_t *out) {
    int64_t d;
    if (cfg_parse_duration_ms(s, &d) == 0 && strspn(s, "0123456789") != strlen(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *out = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - d;
        return 0;
    }
    if (*s && strspn(s, "0123456789") == strlen(s)) {
        *out = strtoll(s, NULL, 10) * 1000;
        return 0;
    }
    static const char *const fmts[] = {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S",
                                       "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", NULL};
    for (const char *const *f = fmts; *f; f++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, *f, &tm);
        if (end && !*end) {
            *out = (int64_t)timegm(&tm) * 1000;
            return 0;
        }
    }
    return -EINVAL;
}

static void fmt_time(int64_t ms, char out[32]) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static const char *col(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

#define COLS                                                                                   \
    "id, ts_ms, service, model, variant, endpoint, status, outcome, reason, prompt_tokens, "  \
    "completion_tokens, latency_ms, ttft_ms, stream, request_id, prompt, response, redactions"

static const char *const NAMES[] = {"id",          "ts_ms",      "service",           "model",
                                    "variant",     "endpoint",   "status",            "outcome",
                                    "reason",      "prompt_tokens", "completion_tokens",
                                    "latency_ms",  "ttft_ms",    "stream",            "request_id",
                                    "prompt",      "response",   "redactions"};

static void print_json(sqlite3_stmt *st) {
    buf_t b;
    buf_init(&b);
    json_w_t w;
    json_w_init(&w, &b);
    json_w_obj_begin(&w);
    for (int i = 0; i < 18; i++) {
        json_w_key(&w, NAMES[i]);
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_NULL: json_w_null(&w); break;
        case SQLITE_INTEGER: json_w_i64(&w, sqlite3_column_int64(st, i)); break;
        case SQLITE_FLOAT: json_w_double(&w, sqlite3_column_double(st, i)); break;
        default: json_w_str(&w, col(st, i));
        }
        if (i == 1) {
            char t[32];
            fmt_time(sqlite3_column_int64(st, 1), t);
            json_w_key(&w, "time");
            json_w_str(&w, t);
        }
    }
    json_w_obj_end(&w);
    printf("%s\n", b.data ? b.data : "{}");
    buf_free(&b);
}

/* One line per entry: the prompt's first characters, line breaks shown as spaces. */
static void print_line(sqlite3_stmt *st) {
    char t[32], prompt[61];
    fmt_time(sqlite3_column_int64(st, 1), t);
    snprintf(prompt, sizeof prompt, "%s", col(st, 15));
    for (char *c = prompt; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    char tok[48];
    snprintf(tok, sizeof tok, "%s/%s", sqlite3_column_type(st, 9) == SQLITE_NULL ? "-" : col(st, 9),
             sqlite3_column_type(st, 10) == SQLITE_NULL ? "-" : col(st, 10));
    printf("%-6lld %s  %-10s %-12s %-8s %3d %-9s %8.1f %-9s %s\n",
           (long long)sqlite3_column_int64(st, 0), t, col(st, 2), col(st, 3), col(st, 4),
           sqlite3_column_int(st, 6), col(st, 7), sqlite3_column_double(st, 11), tok, prompt);
}

static void print_full(sqlite3_stmt *st) {
    char t[32];
    fmt_time(sqlite3_column_int64(st, 1), t);
    printf("id:          %lld\ntime:        %s\n", (long long)sqlite3_column_int64(st, 0), t);
    printf("service:     %s\nmodel:       %s\nvariant:     %s\nendpoint:    %s\n", col(st, 2),
           col(st, 3), col(st, 4), col(st, 5));
    printf("status:      %d\noutcome:     %s\n", sqlite3_column_int(st, 6), col(st, 7));
    if (sqlite3_column_type(st, 8) != SQLITE_NULL)
        printf("reason:      %s\n", col(st, 8));
    printf("tokens:      prompt %s, completion %s\n",
           sqlite3_column_type(st, 9) == SQLITE_NULL ? "unknown" : col(st, 9),
           sqlite3_column_type(st, 10) == SQLITE_NULL ? "unknown" : col(st, 10));
    printf("latency:     %.1f ms\n", sqlite3_column_double(st, 11));
    if (sqlite3_column_type(st, 12) != SQLITE_NULL)
        printf("ttft:        %.1f ms\n", sqlite3_column_double(st, 12));
    printf("stream:      %s\n", sqlite3_column_int(st, 13) ? "yes" : "no");
    if (sqlite3_column_type(st, 14) != SQLITE_NULL)
        printf("request_id:  %s\n", col(st, 14));
    printf("redactions:  %d\n\n--- prompt ---\n%s\n\n--- response ---\n%s\n",
           sqlite3_column_int(st, 17), col(st, 15), col(st, 16));
}

/* The database path from a gateway config's request_log section. */
static int db_from_config(const char *path, char **db) {
    gw_config_t cfg;
    char err[GWCONFIG_ERR_MAX];
    if (gwconfig_load(path, &cfg, err, sizeof err)) {
        fprintf(stderr, "tollgate logs: %s\n", err);
        return -1;
    }
    int rc = 0;
    if (!cfg.obs || !cfg.obs->log_path) {
        fprintf(stderr, "tollgate logs: %s has no request_log section (nothing is logged)\n",
                path);
        rc = -1;
    } else if (!(*db = strdup(cfg.obs->log_path))) {
        rc = -1;
    }
    gwconfig_free(&cfg);
    return rc;
}

int cmd_logs(int argc, char **argv) {
    enum { O_SERVICE = 256, O_OUTCOME, O_MODEL, O_SINCE, O_UNTIL, O_GREP, O_LIMIT, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"db", required_argument, 0, 'd'},
        {"service", required_argument, 0, O_SERVICE}, {"outcome", required_argument, 0, O_OUTCOME},
        {"model", required_argument, 0, O_MODEL}, {"since", required_argument, 0, O_SINCE},
        {"until", required_argument, 0, O_UNTIL}, {"grep", required_argument, 0, O_GREP},
        {"limit", required_argument, 0, O_LIMIT}, {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    const char *config = NULL, *dbarg = NULL, *service = NULL, *outcome = NULL, *model = NULL,
               *grep = NULL;
    int64_t since = -1, until = -1, limit = 50;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:d:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'd': dbarg = optarg; break;
        case O_SERVICE: service = optarg; break;
        case O_OUTCOME: outcome = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_GREP: grep = optarg; break;
        case O_JSON: json = 1; break;
        case O_HELP: usage(stdout); return 0;
        case O_SINCE:
        case O_UNTIL:
            if (parse_time(optarg, c == O_SINCE ? &since : &until)) {
                fprintf(stderr, "tollgate logs: --%s %s: expected a duration (2h), a UTC time "
                                "(2026-01-31T12:00:00) or unix seconds\n",
                        c == O_SINCE ? "since" : "until", optarg);
                return 2;
            }
            break;
        case O_LIMIT:
            if (cli_parse_i64(optarg, 1, INT64_MAX, &limit)) {
                fprintf(stderr, "tollgate logs: --limit wants a positive integer, not '%s'\n", optarg);
                return 2;
            }
            break;
        default: usage(stderr); return 2;
        }
    }
    int show = optind < argc && !strcmp(argv[optind], "show");
    if ((show && optind + 2 != argc) || (!show && optind != argc) || (!config == !dbarg)) {
        fprintf(stderr, "tollgate logs: %s\n",
                !config == !dbarg ? "give the database with -d DB or the gateway config with -c FILE"
                                  : "unexpected arguments (see --help)");
        return 2;
    }
    int64_t show_id = 0;
    if (show && cli_parse_i64(argv[optind + 1], 1, INT64_MAX, &show_id)) {
        fprintf(stderr, "tollgate logs: show wants a request id (a positive integer), not '%s'\n",
                argv[optind + 1]);
        return 2;
    }
    char *db = NULL;
    if (config && db_from_config(config, &db))
        return 1;
    const char *path = db ? db : dbarg;
    sqlite3 *h = NULL;
    /* No CREATE: a mistyped path is an error, not a new empty log. */
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(stderr, "tollgate logs: cannot open %s: %s\n", path,
                h ? sqlite3_errmsg(h) : "no memory");
        sqlite3_close(h);
        free(db);
        return 1;
    }
    sqlite3_busy_timeout(h, 5000);
    char sql[768];
    if (show) {
        snprintf(sql, sizeof sql, "SELECT " COLS " FROM requests WHERE id = ?1");
    } else {
        snprintf(sql, sizeof sql,
                 "SELECT " COLS " FROM requests WHERE (?1 IS NULL OR service = ?1)"
                 " AND (?2 IS NULL OR outcome = ?2) AND (?3 IS NULL OR model = ?3)"
                 " AND (?4 < 0 OR ts_ms >= ?4) AND (?5 < 0 OR ts_ms <= ?5)"
                 " AND (?6 IS NULL OR instr(prompt, ?6) > 0 OR instr(response, ?6) > 0)"
                 " ORDER BY ts_ms DESC, id DESC LIMIT ?7");
    }
    sqlite3_stmt *st = NULL;
    int rc = 1;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "tollgate logs: %s is not a tollgate request log: %s\n", path,
                sqlite3_errmsg(h));
        goto out;
    }
    if (show) {
        sqlite3_bind_int64(st, 1, show_id);
    } else {
        const char *txt[] = {service, outcome, model};
        for (int i = 0; i < 3; i++)
            if (txt[i])
                sqlite3_bind_text(st, i + 1, txt[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, since);
        sqlite3_bind_int64(st, 5, until);
        if (grep)
            sqlite3_bind_text(st, 6, grep, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, limit);
    }
    int n = 0, s;
    if (!show && !json)
        printf("%-6s %-24s  %-10s %-12s %-8s %3s %-9s %8s %-9s %s\n", "ID", "TIME (UTC)",
               "SERVICE", "MODEL", "VARIANT", "ST", "OUTCOME", "MS", "TOKENS", "PROMPT");
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        if (json)
            print_json(st);
        else if (show)
            print_full(st);
        else
            print_line(st);
    }
    if (s != SQLITE_DONE) {
        fprintf(stderr, "tollgate logs: %s\n", sqlite3_errmsg(h));
    } else if (show && n == 0) {
        fprintf(stderr, "tollgate logs: no entry %s (deleted by retention, or never logged)\n",
                argv[optind + 1]);
    } else {
        rc = 0;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(h);
    free(db);
    return rc;
}
