/* test_accesslog.c — the access log file: lines appended whole, reopened by its path after a
 * rename (log rotation) while other threads write, stdout/stderr left alone by reopen. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "gateway/accesslog.h"

static char dir[64];

/* Lines of a file, and how many of them are whole JSON-looking lines ({...}). */
static void count_lines(const char *path, int *lines, int *whole) {
    *lines = *whole = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[4096];
    while (fgets(buf, sizeof buf, f)) {
        size_t n = strlen(buf);
        (*lines)++;
        if (n > 2 && buf[0] == '{' && buf[n - 2] == '}' && buf[n - 1] == '\n')
            (*whole)++;
    }
    fclose(f);
}

static accesslog_rec_t rec(const char *id) {
    return (accesslog_rec_t){.ts_ms = 1764290000123, .method = "POST",
                             .path = "/v1/chat/completions", .model = "m", .request_id = id,
                             .status = 200, .attempts = 1, .duration_ms = 1.5, .ttft_ms = -1,
                             .prompt_tokens = -1, .completion_tokens = -1};
}

static void test_rotate(void) {
    char path[128], old[140];
    snprintf(path, sizeof path, "%s/access.log", dir);
    snprintf(old, sizeof old, "%s.1", path);
    accesslog_t *a;
    char err[256];
    CHECK_EQ_INT(accesslog_open(path, &a, err, sizeof err), 0);
    buf_t scratch;
    buf_init(&scratch);
    accesslog_rec_t r = rec("first");
    CHECK_EQ_INT(accesslog_write(a, &r, &scratch), 0);
    CHECK_EQ_INT(rename(path, old), 0);
    CHECK_EQ_INT(accesslog_reopen(a, err, sizeof err), 0);
    r = rec("second");
    CHECK_EQ_INT(accesslog_write(a, &r, &scratch), 0);
    int lines, whole;
    count_lines(old, &lines, &whole);
    CHECK_EQ_INT(lines, 1);
    count_lines(path, &lines, &whole);
    CHECK_EQ_INT(lines, 1);
    CHECK_EQ_INT(accesslog_lost(a), 0);

    /* The directory gone: reopen fails with the path named, and the old file stays in use. */
    char gone[128];
    snprintf(gone, sizeof gone, "%s/sub", dir);
    CHECK_EQ_INT(mkdir(gone, 0700), 0);
    char sub[160];
    snprintf(sub, sizeof sub, "%s/access.log", gone);
    accesslog_t *b;
    CHECK_EQ_INT(accesslog_open(sub, &b, err, sizeof err), 0);
    CHECK_EQ_INT(unlink(sub), 0);
    CHECK_EQ_INT(rmdir(gone), 0);
    err[0] = '\0';
    CHECK(accesslog_reopen(b, err, sizeof err) < 0);
    CHECK(strstr(err, "sub/access.log") != NULL);
    r = rec("still");
    CHECK_EQ_INT(accesslog_write(b, &r, &scratch), 0);
    accesslog_close(b);

    /* stdout: nothing to reopen. */
    accesslog_t *o;
    CHECK_EQ_INT(accesslog_open("-", &o, err, sizeof err), 0);
    CHECK_EQ_INT(accesslog_reopen(o, err, sizeof err), 0);
    accesslog_close(o);
    CHECK_EQ_INT(accesslog_reopen(NULL, err, sizeof err), 0);
    buf_free(&scratch);
    accesslog_close(a);
}

/* Writers on four threads while the file is renamed and reopened again and again: every line
 * lands whole in one of the files, none is lost. */
#define WRITERS 4
#define PER_WRITER 2000
static accesslog_t *shared;

static void *writer(void *arg) {
    buf_t scratch;
    buf_init(&scratch);
    char id[32];
    for (int i = 0; i < PER_WRITER; i++) {
        snprintf(id, sizeof id, "w%ld-%d", (long)(intptr_t)arg, i);
        accesslog_rec_t r = rec(id);
        accesslog_write(shared, &r, &scratch);
    }
    buf_free(&scratch);
    return NULL;
}

static void test_rotate_under_load(void) {
    char path[128], rot[160];
    snprintf(path, sizeof path, "%s/busy.log", dir);
    char err[256];
    CHECK_EQ_INT(accesslog_open(path, &shared, err, sizeof err), 0);
    pthread_t t[WRITERS];
    for (long i = 0; i < WRITERS; i++)
        pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
    int rotations = 0;
    for (int k = 0; k < 20; k++) {
        snprintf(rot, sizeof rot, "%s.%d", path, k);
        if (rename(path, rot) == 0 && accesslog_reopen(shared, err, sizeof err) == 0)
            rotations++;
        usleep(500);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    int total = 0, bad = 0, lines, whole;
    for (int k = 0; k < 20; k++) {
        snprintf(rot, sizeof rot, "%s.%d", path, k);
        count_lines(rot, &lines, &whole);
        total += lines;
        bad += lines - whole;
    }
    count_lines(path, &lines, &whole);
    total += lines;
    bad += lines - whole;
    CHECK_EQ_INT(rotations, 20);
    CHECK_EQ_INT(total, WRITERS * PER_WRITER);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(accesslog_lost(shared), 0);
    accesslog_close(shared);
}

int main(void) {
    if (check_tmpdir(dir, sizeof dir, "test_accesslog")) return 1;
    test_rotate();
    test_rotate_under_load();
    check_tmpdir_remove(dir);
    return check_summary("test_accesslog");
}
