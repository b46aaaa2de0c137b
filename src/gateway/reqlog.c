/* reqlog.c — the request log's queue (request path side) and its writer thread (extracts,
 * redacts, inserts in batches, deletes rows past the retention window). */
#include "gateway/reqlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"

/* A queued request: one allocation, the strings stored after the struct. */
typedef struct entry {
    reqlog_rec_t r;
    char data[];
} entry_t;

struct reqlog {
    /* Set at open, read-only after. */
    sqlite3 *db;
    sqlite3_stmt *ins, *del;
    int64_t retention_ms;
    uint32_t prune_ms, cap, max_text;
    double rate;
    reqlog_rate_t *rates;
    size_t nrates;
    const redact_t *redact;
    reqlog_clock_fn clock;
    void *clock_arg;
    pthread_t thread;
    int started;

    /* Shared between submitters and the writer: guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* writer: work, stop, pause change, sync */
    pthread_cond_t done; /* sync waiters */
    entry_t **ring;
    size_t head, count;
    int stop, paused;
    uint64_t sync_req, sync_done;

    /* Counters: atomics, read by any thread. */
    atomic_uint_fast64_t accepted, dropped, written, failed, deleted;

    /* Writer-thread scratch. */
    buf_t text, red;
};

static int64_t real_clock(void *arg) {
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void add(atomic_uint_fast64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---------- text extraction (writer thread) ---------- */

/* Parse with a token array sized for the text (tokens <= bytes / 2 + 1 for valid JSON). */
static int parse(const char *s, size_t len, json_doc_t *d) {
    size_t need = len / 2 + 8;
    json_tok_t *t = malloc(need * sizeof *t);
    if (!t)
        return -1;
    if (json_parse(s, len, t, need, 64, d, NULL) <= 0) {
        free(t);
        return -1;
    }
    return 0;
}

/* Append a string value, or the text parts of a content array. */
static int append_content(const json_doc_t *d, int tok, buf_t *out) {
    if (tok < 0)
        return 0;
    if (d->toks[tok].type == JSON_STRING)
        return json_str_unescape(d, tok, out);
    if (d->toks[tok].type != JSON_ARRAY)
        return 0;
    int rc = 0;
    for (size_t i = 0; i < d->toks[tok].size; i++) {
        int part = json_arr_get(d, tok, i);
        int txt = json_obj_get(d, part, "text");
        if (part >= 0 && d->toks[part].type == JSON_STRING)
            txt = part;
        if (txt >= 0 && d->toks[txt].type == JSON_STRING) {
            if (i)
                rc |= buf_append(out, " ", 1);
            rc |= json_str_unescape(d, txt, out);
        }
    }
    return rc;
}

int reqlog_prompt_text(const char *body, size_t len, buf_t *out) {
    json_doc_t d;
    if (!len)
        return 0;
    if (parse(body, len, &d) < 0)
        return buf_append(out, body, len) < 0 ? -ENOMEM : 0;
    if (d.toks[0].type != JSON_OBJECT) {
        free(d.toks);
        return buf_append(out, body, len) < 0 ? -ENOMEM : 0;
    }
    int rc = 0, msgs = json_obj_get(&d, 0, "messages");
    if (msgs >= 0 && d.toks[msgs].type == JSON_ARRAY) {
        for (size_t i = 0; i < d.toks[msgs].size; i++) {
            int m = json_arr_get(&d, msgs, i);
            int role = json_obj_get(&d, m, "role");
            if (i)
                rc |= buf_append(out, "\n", 1);
            if (role >= 0 && d.toks[role].type == JSON_STRING) {
                rc |= json_str_unescape(&d, role, out);
                rc |= buf_append(out, ": ", 2);
            }
            rc |= append_content(&d, json_obj_get(&d, m, "content"), out);
        }
    } else {
        rc |= append_content(&d, json_obj_get(&d, 0, "prompt"), out);
    }
    free(d.toks);
    return rc ? -ENOMEM : 0;
}

/* The generated text of one response object: choices[0].message.content, .delta.content
 * or .text; an error object's message. */
static int append_choice(const json_doc_t *d, buf_t *out) {
    int ch = json_obj_get(d, 0, "choices");
    int c0 = ch >= 0 && d->toks[ch].type == JSON_ARRAY ? json_arr_get(d, ch, 0) : -1;
    if (c0 >= 0) {
        int m = json_obj_get(d, c0, "message");
        if (m < 0)
            m = json_obj_get(d, c0, "delta");
        if (m >= 0)
            return append_content(d, json_obj_get(d, m, "content"), out);
        return append_content(d, json_obj_get(d, c0, "text"), out);
    }
    int e = json_obj_get(d, 0, "error");
    if (e >= 0) {
        int rc = buf_appends(out, "[error] ");
        return rc | append_content(d, json_obj_get(d, e, "message"), out);
    }
    return 0;
}

int reqlog_response_text(const char *body, size_t len, int sse, buf_t *out) {
    json_doc_t d;
    int rc = 0;
    if (!len)
        return 0;
    if (!sse) {
        if (parse(body, len, &d) < 0)
            return buf_append(out, body, len) < 0 ? -ENOMEM : 0;
        rc = d.toks[0].type == JSON_OBJECT ? append_choice(&d, out)
                                           : buf_append(out, body, len);
        free(d.toks);
        return rc ? -ENOMEM : 0;
    }
    /* SSE: every "data:" line holding a JSON object contributes its delta. */
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *e = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (e - p > 5 && !memcmp(p, "data:", 5)) {
            const char *s = p + 5 + (p[5] == ' ');
            if (s < e && *s == '{' && parse(s, (size_t)(e - s), &d) == 0) {
                rc |= append_choice(&d, out);
                free(d.toks);
            }
        }
        p = eol + 1;
    }
    return rc ? -ENOMEM : 0;
}

/* ---------- writer ---------- */

static const char *SCHEMA =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INTEGER PRIMARY KEY,"
    " ts_ms INTEGER NOT NULL,"     /* arrival, unix ms */
    " service TEXT, model TEXT, variant TEXT, endpoint TEXT,"
    " status INTEGER, outcome TEXT, reason TEXT,"
    " prompt_tokens INTEGER, completion_tokens INTEGER,"
    " latency_ms REAL, ttft_ms REAL, stream INTEGER, request_id TEXT,"
    " prompt TEXT, response TEXT, redactions INTEGER);"
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts_ms);";

static const char *INSERT =
    "INSERT INTO requests (ts_ms, service, model, variant, endpoint, status, outcome, reason,"
    " prompt_tokens, completion_tokens, latency_ms, ttft_ms, stream, request_id, prompt,"
    " response, redactions) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_count(sqlite3_stmt *st, int i, int64_t v) {
    if (v >= 0)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Cut a text to at most max bytes without splitting a UTF-8 sequence. */
static size_t cut_utf8(const char *s, size_t len, size_t max) {
    if (len <= max)
        return len;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    return max;
}

/* Extract, redact and bind one text column. Returns the redaction count (>= 0). */
static int bind_redacted(reqlog_t *rl, int col, const char *raw, size_t len, int is_prompt,
                         int sse, buf_t *keep) {
    buf_reset(&rl->text);
    buf_reset(keep);
    if (!raw || !len) {
        sqlite3_bind_null(rl->ins, col);
        return 0;
    }
    if (is_prompt)
        reqlog_prompt_text(raw, len, &rl->text);
    else
        reqlog_response_text(raw, len, sse, &rl->text);
    size_t n = cut_utf8(rl->text.data ? rl->text.data : "", rl->text.len, rl->max_text);
    int c = redact_apply(rl->redact, rl->text.data ? rl->text.data : "", n, keep);
    if (c < 0) { /* no memory: store nothing rather than unredacted text */
        sqlite3_bind_null(rl->ins, col);
        return 0;
    }
    sqlite3_bind_text(rl->ins, col, keep->data ? keep->data : "", (int)keep->len,
                      SQLITE_STATIC);
    return c;
}

static int write_one(reqlog_t *rl, const entry_t *e) {
    const reqlog_rec_t *r = &e->r;
    sqlite3_stmt *st = rl->ins;
    buf_t resp;
    buf_init(&resp);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_int64(st, 1, r->ts_ms);
    bind_text(st, 2, r->service);
    bind_text(st, 3, r->model);
    bind_text(st, 4, r->variant);
    bind_text(st, 5, r->endpoint);
    sqlite3_bind_int(st, 6, r->status);
    bind_text(st, 7, r->outcome);
    bind_text(st, 8, r->reason);
    bind_count(st, 9, r->prompt_tokens);
    bind_count(st, 10, r->completion_tokens);
    sqlite3_bind_double(st, 11, r->latency_ms);
    if (r->ttft_ms >= 0)
        sqlite3_bind_double(st, 12, r->ttft_ms);
    sqlite3_bind_int(st, 13, r->stream);
    bind_text(st, 14, r->request_id);
    int c = bind_redacted(rl, 15, r->prompt, r->prompt_len, 1, 0, &rl->red);
    c += bind_redacted(rl, 16, r->response, r->response_len, 0, r->stream, &resp);
    sqlite3_bind_int(st, 17, c);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    buf_free(&resp);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static void write_batch(reqlog_t *rl, entry_t **batch, size_t n) {
    int tx = sqlite3_exec(rl->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += write_one(rl, batch[i]) == 0;
    if (tx && sqlite3_exec(rl->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(rl->db, "ROLLBACK", NULL, NULL, NULL);
        ok = 0;
    }
    if (ok < n)
        log_error("request log: rows not written", LOG_INT("rows", n - ok),
                  LOG_STR("error", sqlite3_errmsg(rl->db)));
    add(&rl->written, ok);
    add(&rl->failed, n - ok);
    for (size_t i = 0; i < n; i++) free(batch[i]);
}

static void prune(reqlog_t *rl) {
    if (rl->retention_ms <= 0)
        return;
    sqlite3_reset(rl->del);
    sqlite3_bind_int64(rl->del, 1, rl->clock(rl->clock_arg) - rl->retention_ms);
    if (sqlite3_step(rl->del) == SQLITE_DONE)
        add(&rl->deleted, (uint64_t)sqlite3_changes(rl->db));
    else
        log_warn("request log: retention delete failed", LOG_STR("error", sqlite3_errmsg(rl->db)));
    sqlite3_reset(rl->del);
}

static void deadline_in(struct timespec *ts, uint32_t ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* The writer: batches from the queue into transactions, a retention pass every prune_ms
 * and on sync requests; on stop it drains the queue (even when paused) and returns. */
static void *writer_main(void *arg) {
    reqlog_t *rl = arg;
    entry_t *batch[REQLOG_BATCH];
    struct timespec next;
    deadline_in(&next, 0);
    pthread_mutex_lock(&rl->mu);
    for (;;) {
        int can_take = rl->count > 0 && (!rl->paused || rl->stop);
        if (!can_take) {
            if (rl->stop)
                break;
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            int due = now.tv_sec > next.tv_sec ||
                      (now.tv_sec == next.tv_sec && now.tv_nsec >= next.tv_nsec);
            if (rl->sync_req > rl->sync_done && !rl->paused) {
                uint64_t want = rl->sync_req;
                pthread_mutex_unlock(&rl->mu);
                prune(rl);
                pthread_mutex_lock(&rl->mu);
                rl->sync_done = want;
                pthread_cond_broadcast(&rl->done);
                continue;
            }
            if (due) {
                pthread_mutex_unlock(&rl->mu);
                prune(rl);
                pthread_mutex_lock(&rl->mu);
                deadline_in(&next, rl->prune_ms);
                continue;
            }
            pthread_cond_timedwait(&rl->wake, &rl->mu, &next);
            continue;
        }
        size_t n = 0;
        while (rl->count && n < REQLOG_BATCH) {
            batch[n++] = rl->ring[rl->head];
            rl->head = (rl->head + 1) % rl->cap;
            rl->count--;
        }
        pthread_mutex_unlock(&rl->mu);
        write_batch(rl, batch, n);
        pthread_mutex_lock(&rl->mu);
    }
    pthread_mutex_unlock(&rl->mu);
    return NULL;
}

/* ---------- file permissions ---------- */

/* The database holds (redacted) prompts: it and its -wal/-shm files are the gateway user's
 * alone, whatever the umask. A missing database is created 0600 here (fchmod, so the umask
 * cannot widen it); SQLite creates -wal and -shm with the database's mode. An existing file
 * open to group or others (made by an older version, or by hand) is narrowed to 0600 with a
 * warning; when that is not allowed (another owner) the log is refused. 0 or a negative errno
 * with a message in err. */
static int owner_only(const char *path, int create, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT && !create)
            return 0;
        snprintf(err, errlen, "request log %s: %s (is the directory writable?)", path,
                 strerror(e));
        return -e;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "request log %s: %s", path, strerror(-rc));
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        snprintf(err, errlen, "request log %s: not a regular file", path);
    } else if (st.st_mode & 077) {
        if (fchmod(fd, st.st_mode & 0700) != 0) {
            rc = -errno;
            snprintf(err, errlen,
                     "request log %s: readable by group or others (mode %04o) and cannot be "
                     "narrowed: %s; chmod 600 it or choose another path",
                     path, (unsigned)(st.st_mode & 07777), strerror(-rc));
        } else if (st.st_size > 0) {
            log_warn("request log file was open to group or others; narrowed to owner-only",
                     LOG_STR("path", path), LOG_INT("old_mode", st.st_mode & 07777));
        }
    }
    close(fd);
    return rc;
}

static int secure_files(const char *path, char *err, size_t errlen) {
    int rc = owner_only(path, 1, err, errlen);
    static const char *const side[] = {"-wal", "-shm", "-journal"};
    char p[4096];
    for (size_t i = 0; rc == 0 && i < sizeof side / sizeof *side; i++) {
        if ((size_t)snprintf(p, sizeof p, "%s%s", path, side[i]) >= sizeof p)
            break;
        rc = owner_only(p, 0, err, errlen);
    }
    return rc;
}

/* ---------- public ---------- */

int reqlog_open(const reqlog_opts_t *o, reqlog_t **out, char *err, size_t errlen) {
    *out = NULL;
    reqlog_t *rl = calloc(1, sizeof *rl);
    if (!rl)
        return -ENOMEM;
    rl->retention_ms = o->retention_ms;
    rl->prune_ms = o->prune_interval_ms;
    if (!rl->prune_ms) {
        int64_t p = o->retention_ms / 100;
        rl->prune_ms = (uint32_t)(p < 1000 ? 1000 : p > 60000 ? 60000 : p);
    }
    rl->cap = o->queue_cap ? o->queue_cap : REQLOG_DEF_QUEUE;
    rl->max_text = o->max_text ? o->max_text : REQLOG_DEF_MAX_TEXT;
    rl->rate = o->sample_rate;
    rl->redact = o->redact;
    rl->clock = o->clock ? o->clock : real_clock;
    rl->clock_arg = o->clock_arg;
    buf_init(&rl->text);
    buf_init(&rl->red);
    pthread_mutex_init(&rl->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rl->wake, &ca);
    pthread_cond_init(&rl->done, NULL);
    pthread_condattr_destroy(&ca);
    int rc = -ENOMEM;
    if (!(rl->ring = calloc(rl->cap, sizeof *rl->ring)))
        goto err;
    if (o->nrates && !(rl->rates = calloc(o->nrates, sizeof *rl->rates)))
        goto err;
    for (size_t i = 0; i < o->nrates; i++) {
        rl->nrates = i + 1;
        rl->rates[i].rate = o->rates[i].rate;
        if (!(rl->rates[i].service = strdup(o->rates[i].service)))
            goto err;
    }
    if ((rc = secure_files(o->path, err, errlen)) != 0)
        goto err;
    rc = -EIO;
    if (sqlite3_open_v2(o->path, &rl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(rl->db, 5000) != SQLITE_OK ||
        sqlite3_exec(rl->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(rl->db, INSERT, -1, &rl->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(rl->db, "DELETE FROM requests WHERE ts_ms < ?", -1, &rl->del,
                           NULL) != SQLITE_OK) {
        snprintf(err, errlen, "request log %s: %s (is the directory writable?)", o->path,
                 rl->db ? sqlite3_errmsg(rl->db) : "cannot open");
        goto err;
    }
    if ((rc = -pthread_create(&rl->thread, NULL, writer_main, rl))) {
        snprintf(err, errlen, "request log: cannot start the writer thread");
        goto err;
    }
    rl->started = 1;
    *out = rl;
    return 0;
err:
    reqlog_close(rl);
    return rc;
}

void reqlog_close(reqlog_t *rl) {
    if (!rl)
        return;
    if (rl->started) {
        pthread_mutex_lock(&rl->mu);
        rl->stop = 1;
        pthread_cond_signal(&rl->wake);
        pthread_mutex_unlock(&rl->mu);
        pthread_join(rl->thread, NULL);
    }
    /* Entries left only when the writer never ran. */
    for (size_t i = 0; i < rl->count; i++) free(rl->ring[(rl->head + i) % rl->cap]);
    sqlite3_finalize(rl->ins);
    sqlite3_finalize(rl->del);
    sqlite3_close(rl->db);
    for (size_t i = 0; i < rl->nrates; i++) free((char *)rl->rates[i].service);
    free(rl->rates);
    free(rl->ring);
    buf_free(&rl->text);
    buf_free(&rl->red);
    pthread_mutex_destroy(&rl->mu);
    pthread_cond_destroy(&rl->wake);
    pthread_cond_destroy(&rl->done);
    free(rl);
}

double reqlog_rate(const reqlog_t *rl, const char *service) {
    if (service)
        for (size_t i = 0; i < rl->nrates; i++)
            if (!strcmp(rl->rates[i].service, service))
                return rl->rates[i].rate;
    return rl->rate;
}

int reqlog_sampled(const reqlog_t *rl, const char *service, double u) {
    return rl && u < reqlog_rate(rl, service);
}

/* Copy a string into the entry's tail; NULL stays NULL. */
static const char *put(char **p, const char *s, size_t n) {
    if (!s)
        return NULL;
    char *d = *p;
    memcpy(d, s, n);
    d[n] = '\0';
    *p += n + 1;
    return d;
}

int reqlog_submit(reqlog_t *rl, const reqlog_rec_t *rec) {
    /* The raw texts are bounded so that one request cannot pin much memory in the queue;
     * 4x the stored size leaves room for JSON framing around the kept text. */
    size_t cap = (size_t)rl->max_text * 4;
    size_t pl = rec->prompt ? (rec->prompt_len < cap ? rec->prompt_len : cap) : 0;
    size_t rsl = rec->response ? (rec->response_len < cap ? rec->response_len : cap) : 0;
    const char *strs[] = {rec->service, rec->model, rec->variant, rec->endpoint,
                          rec->outcome, rec->reason, rec->request_id};
    size_t lens[7], total = sizeof(entry_t) + pl + rsl + 2;
    for (int i = 0; i < 7; i++) total += (lens[i] = strs[i] ? strlen(strs[i]) : 0) + 1;
    entry_t *e = malloc(total);
    if (!e) {
        add(&rl->dropped, 1);
        return -ENOMEM;
    }
    e->r = *rec;
    if (!e->r.ts_ms)
        e->r.ts_ms = rl->clock(rl->clock_arg);
    char *p = e->data;
    e->r.service = put(&p, strs[0], lens[0]);
    e->r.model = put(&p, strs[1], lens[1]);
    e->r.variant = put(&p, strs[2], lens[2]);
    e->r.endpoint = put(&p, strs[3], lens[3]);
    e->r.outcome = put(&p, strs[4], lens[4]);
    e->r.reason = put(&p, strs[5], lens[5]);
    e->r.request_id = put(&p, strs[6], lens[6]);
    e->r.prompt = put(&p, rec->prompt, pl);
    e->r.prompt_len = pl;
    e->r.response = put(&p, rec->response, rsl);
    e->r.response_len = rsl;

    pthread_mutex_lock(&rl->mu);
    int rc = rl->stop ? -ESHUTDOWN : rl->count == rl->cap ? -EAGAIN : 0;
    if (!rc) {
        rl->ring[(rl->head + rl->count) % rl->cap] = e;
        rl->count++;
        pthread_cond_signal(&rl->wake);
    }
    pthread_mutex_unlock(&rl->mu);
    if (rc) {
        free(e);
        add(&rl->dropped, 1);
    } else {
        add(&rl->accepted, 1);
    }
    return rc;
}

void reqlog_stats(reqlog_t *rl, reqlog_stats_t *o) {
    o->accepted = atomic_load_explicit(&rl->accepted, memory_order_relaxed);
    o->dropped = atomic_load_explicit(&rl->dropped, memory_order_relaxed);
    o->written = atomic_load_explicit(&rl->written, memory_order_relaxed);
    o->failed = atomic_load_explicit(&rl->failed, memory_order_relaxed);
    o->deleted = atomic_load_explicit(&rl->deleted, memory_order_relaxed);
    pthread_mutex_lock(&rl->mu);
    o->queued = rl->count;
    pthread_mutex_unlock(&rl->mu);
}

int reqlog_sync(reqlog_t *rl, uint32_t timeout_ms) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&rl->mu);
    uint64_t ticket = ++rl->sync_req;
    pthread_cond_signal(&rl->wake);
    int rc = 0;
    while (rl->sync_done < ticket && rc == 0)
        rc = pthread_cond_timedwait(&rl->done, &rl->mu, &dl);
    rc = rl->sync_done >= ticket ? 0 : -ETIMEDOUT;
    pthread_mutex_unlock(&rl->mu);
    return rc;
}

void reqlog_pause(reqlog_t *rl, int paused) {
    pthread_mutex_lock(&rl->mu);
    rl->paused = paused;
    pthread_cond_signal(&rl->wake);
    pthread_mutex_unlock(&rl->mu);
}
