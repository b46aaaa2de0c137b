/* store.c — the orders table in SQLite: WAL, synchronous=FULL, one connection behind a mutex. */
#include "orders/store.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store {
    sqlite3 *db;
    pthread_mutex_t mu; /* serialises every use of db and the statements below */
    sqlite3_stmt *ins;  /* prepared once: the request path does not re-parse SQL */
    sqlite3_stmt *get;
    sqlite3_stmt *list;
    sqlite3_stmt *count;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS orders ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " items TEXT NOT NULL,"
    " customer TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " description_source TEXT NOT NULL CHECK (description_source IN ('model','raw')),"
    " reason TEXT NOT NULL DEFAULT '',"
    " model TEXT NOT NULL DEFAULT '',"
    " variant TEXT NOT NULL DEFAULT '',"
    " normalize_ms INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL)";

#define COLS                                                                                       \
    "id, items, customer, description, description_source, reason, model, variant, "               \
    "normalize_ms, created_ms"

static int64_t now_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(char *err, size_t errlen, const char *what, sqlite3 *db) {
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

int store_open(const char *path, store_t **out, char *err, size_t errlen) {
    *out = NULL;
    store_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    /* NOMUTEX: our own mutex already serialises the connection. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        set_err(err, errlen, "cannot open the database", s->db);
        goto err;
    }
    sqlite3_busy_timeout(s->db, 5000); /* another process (e.g. sqlite3 CLI) may hold a lock */
    /* WAL: readers never wait for the writer; FULL: the WAL is fsynced at every commit,
     * so an acknowledged order survives power loss too, not only a crash. */
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "cannot set up the orders table", s->db);
        goto err;
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO orders (items, customer, description, description_source,"
                           " reason, model, variant, normalize_ms, created_ms)"
                           " VALUES (?,?,?,?,?,?,?,?,?)",
                           -1, &s->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT " COLS " FROM orders WHERE id = ?", -1, &s->get, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "SELECT " COLS " FROM orders WHERE id < ? ORDER BY id DESC LIMIT ?", -1,
                           &s->list, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT count(*) FROM orders", -1, &s->count, NULL) !=
            SQLITE_OK) {
        set_err(err, errlen, "cannot prepare statements", s->db);
        goto err;
    }
    *out = s;
    return 0;
err:
    store_close(s);
    return -EIO;
}

void store_close(store_t *s) {
    if (!s) return;
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->get);
    sqlite3_finalize(s->list);
    sqlite3_finalize(s->count);
    sqlite3_close(s->db); /* checkpoints the WAL when this is the last connection */
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int bind_text(sqlite3_stmt *st, int i, const char *v) {
    const char *t = v ? v : "";
    size_t n = strlen(t);
    if (n > STORE_MAX_TEXT) return -EINVAL;
    return sqlite3_bind_text(st, i, t, (int)n, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -EIO;
}

int store_insert(store_t *s, store_order_t *o) {
    if (!o->items || !o->customer || !o->description || !o->description_source) return -EINVAL;
    if (!o->created_ms) o->created_ms = now_unix_ms();
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = s->ins;
    int rc = bind_text(st, 1, o->items);
    if (!rc) rc = bind_text(st, 2, o->customer);
    if (!rc) rc = bind_text(st, 3, o->description);
    if (!rc) rc = bind_text(st, 4, o->description_source);
    if (!rc) rc = bind_text(st, 5, o->reason);
    if (!rc) rc = bind_text(st, 6, o->model);
    if (!rc) rc = bind_text(st, 7, o->variant);
    if (!rc && sqlite3_bind_int64(st, 8, o->normalize_ms) != SQLITE_OK) rc = -EIO;
    if (!rc && sqlite3_bind_int64(st, 9, o->created_ms) != SQLITE_OK) rc = -EIO;
    /* Autocommit: sqlite3_step returns DONE only after the commit (and its fsync). */
    if (!rc && sqlite3_step(st) != SQLITE_DONE) rc = -EIO;
    if (!rc) o->id = sqlite3_last_insert_rowid(s->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

/* Copy the current row of st into o. 0 or -ENOMEM. */
static int read_row(sqlite3_stmt *st, store_order_t *o) {
    memset(o, 0, sizeof *o);
    o->id = sqlite3_column_int64(st, 0);
    o->items = col_dup(st, 1);
    o->customer = col_dup(st, 2);
    o->description = col_dup(st, 3);
    o->description_source = col_dup(st, 4);
    o->reason = col_dup(st, 5);
    o->model = col_dup(st, 6);
    o->variant = col_dup(st, 7);
    o->normalize_ms = sqlite3_column_int64(st, 8);
    o->created_ms = sqlite3_column_int64(st, 9);
    if (!o->items || !o->customer || !o->description || !o->description_source || !o->reason ||
        !o->model || !o->variant) {
        store_order_clear(o);
        return -ENOMEM;
    }
    return 0;
}

int store_get(store_t *s, int64_t id, store_order_t *o) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = s->get;
    sqlite3_bind_int64(st, 1, id);
    int r = sqlite3_step(st), rc;
    if (r == SQLITE_ROW)
        rc = read_row(st, o);
    else
        rc = r == SQLITE_DONE ? -ENOENT : -EIO;
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_list(store_t *s, int64_t before, int limit, store_order_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (limit <= 0) return 0;
    store_order_t *v = calloc((size_t)limit, sizeof *v);
    if (!v) return -ENOMEM;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = s->list;
    sqlite3_bind_int64(st, 1, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(st, 2, limit);
    size_t k = 0;
    int r = SQLITE_DONE, rc = 0;
    while (k < (size_t)limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = read_row(st, &v[k])) < 0) break;
        k++;
    }
    if (!rc && k < (size_t)limit && r != SQLITE_DONE) rc = -EIO;
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        store_orders_free(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

int store_count(store_t *s, int64_t *out) {
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_step(s->count) == SQLITE_ROW ? 0 : -EIO;
    if (!rc) *out = sqlite3_column_int64(s->count, 0);
    sqlite3_reset(s->count);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_ping(store_t *s) {
    int64_t n;
    return store_count(s, &n);
}

void store_order_clear(store_order_t *o) {
    free(o->items);
    free(o->customer);
    free(o->description);
    free(o->description_source);
    free(o->reason);
    free(o->model);
    free(o->variant);
    memset(o, 0, sizeof *o);
}

void store_orders_free(store_order_t *v, size_t n) {
    for (size_t i = 0; i < n; i++) store_order_clear(&v[i]);
    free(v);
}
