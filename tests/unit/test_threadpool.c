/* test_threadpool.c — the worker pool (every thread runs once per call, many calls), threaded matmat and forward (rows and heads shared out) equal the single-threaded ones bit for bit; `--bench` prints the pool's round trip and idle CPU. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "engine/forward.h"
#include "engine/matvec.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/threadpool.h"

/* 64 work items per call, claimed dynamically; each must be done exactly once per call,
 * and nothing may touch the job after tpool_run returned (the job is reused). */
typedef struct {
    atomic_int next;
    atomic_int done[64];
    atomic_int bad_ith, by_caller, by_worker;
    int n;
} count_t;

static void count_fn(void *a, int ith) {
    count_t *c = a;
    if (ith < 0 || ith >= c->n) atomic_fetch_add(&c->bad_ith, 1);
    for (int k; (k = atomic_fetch_add(&c->next, 1)) < 64;) {
        atomic_fetch_add(&c->done[k], 1);
        atomic_fetch_add(ith ? &c->by_worker : &c->by_caller, 1);
    }
}

static void check_pool(int n) {
    tpool_t *p = NULL;
    CHECK_EQ_INT(tpool_new(n, &p), 0);
    int want = n < 1 ? 1 : n;
    CHECK_EQ_INT(tpool_size(p), want);
    count_t c = {.n = want};
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        atomic_store(&c.next, 0);
        for (int k = 0; k < 64; k++) atomic_store(&c.done[k], 0);
        tpool_run(p, count_fn, &c);
        for (int k = 0; k < 64; k++) bad += atomic_load(&c.done[k]) != 1;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(atomic_load(&c.bad_ith), 0);
    CHECK_EQ_INT(atomic_load(&c.by_caller) + atomic_load(&c.by_worker), 64 * 20000);
    if (want == 1) CHECK_EQ_INT(atomic_load(&c.by_worker), 0);
    printf("  pool of %d: %d of %d items done by workers\n", want, atomic_load(&c.by_worker), 64 * 20000);
    tpool_free(p);
}

static int same(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof(float)); }

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void check_model(const char *path, tpool_t *pool) {
    model_t m;
    char err[256];
    if (model_load(path, &m, err, sizeof err)) {
        fprintf(stderr, "  skip %s: %s\n", path, err);
        return;
    }
    /* matmat with strides vs scalar matvec, on every matrix of layer 0 and the output */
    const model_layer_t *L = &m.layers[0];
    const model_tensor_t *ts[] = {&L->wq, &L->wk, &L->wqkv, &L->wo, &L->w_up, &L->w_down, &m.output};
    unsigned seed = 7;
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        const model_tensor_t *W = ts[i];
        if (!W->data) continue;
        const int T = 5;
        size_t ldx = (size_t)W->cols + 3, ldy = (size_t)W->rows + 5, xqb = matvec_xq_bytes(W->type, W->cols);
        float *X = calloc(T * ldx, sizeof(float)), *Y = calloc(T * ldy, sizeof(float));
        float *y1 = calloc((size_t)W->rows, sizeof(float));
        void *xq = malloc(T * xqb + 64);
        for (size_t k = 0; k < T * ldx; k++) X[k] = frand(&seed);
        for (int prompt = 0; prompt < 2; prompt++) {
            matmat(pool, W, X, ldx, T, Y, ldy, xq, prompt);
            int ok = 1;
            for (int t = 0; t < T; t++) {
                matvec(W, X + t * ldx, y1, xq, prompt);
                ok &= same(y1, Y + t * ldy, (size_t)W->rows);
            }
            CHECK_MSG(ok, "%s tensor %zu prompt %d: matmat differs from matvec", path, i, prompt);
        }
        free(X), free(Y), free(y1), free(xq);
    }
    /* a prompt and a few decoded tokens: threaded forward == single-threaded forward */
    forward_state_t *a = NULL, *b = NULL;
    CHECK_EQ_INT(forward_state_new(&m, 64, &a), 0);
    CHECK_EQ_INT(forward_state_new(&m, 64, &b), 0);
    if (a && b) {
        b->pool = pool;
        int32_t toks[12];
        for (int i = 0; i < 12; i++) toks[i] = (int32_t)(1 + (i * 37) % (m.hp.n_vocab - 1));
        const float *la = forward_prompt(&m, a, toks, 9, 0), *lb = forward_prompt(&m, b, toks, 9, 0);
        CHECK(la && lb && same(la, lb, (size_t)m.hp.n_vocab));
        for (int i = 9; i < 12; i++) {
            la = forward(&m, a, toks[i], i);
            lb = forward(&m, b, toks[i], i);
            CHECK_MSG(la && lb && same(la, lb, (size_t)m.hp.n_vocab), "%s token %d", path, i);
        }
    }
    /* a prompt of 4 rows on 3 threads: the per-row phases are shared out, but attention
     * shares each row's heads (fewer than two rows per thread) */
    if (a && b) {
        int32_t toks[4] = {3, 1, 4, 1};
        const float *la = forward_prompt(&m, a, toks, 4, 0), *lb = forward_prompt(&m, b, toks, 4, 0);
        CHECK_MSG(la && lb && same(la, lb, (size_t)m.hp.n_vocab), "%s 4-token prompt", path);
    }
    forward_state_free(a);
    forward_state_free(b);
    model_free(&m);
}

static void empty_fn(void *a, int ith) { (void)a, (void)ith; }

/* 64 items of ~50 ns each, claimed as the engine's jobs claim theirs */
static void small_fn(void *a, int ith) {
    count_t *c = a;
    for (int k; (k = atomic_fetch_add(&c->next, 1)) < 64;) {
        volatile int x = 0;
        for (int i = 0; i < 100; i++) x += i;
        atomic_fetch_add(ith ? &c->by_worker : &c->by_caller, 1);
    }
}

static double secs(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --bench: the round trip of an empty tpool_run on n threads (wall and process CPU per
 * call; CPU counts the workers' spinning), and the idle CPU afterwards (the workers must
 * go to sleep). Figures only: timings are never asserted. */
static void bench(int n) {
    tpool_t *p = NULL;
    if (tpool_new(n, &p)) return;
    enum { CALLS = 200000 };
    for (int i = 0; i < 1000; i++) tpool_run(p, empty_fn, NULL);
    double w0 = secs(CLOCK_MONOTONIC), c0 = secs(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < CALLS; i++) tpool_run(p, empty_fn, NULL);
    double w1 = secs(CLOCK_MONOTONIC), c1 = secs(CLOCK_PROCESS_CPUTIME_ID);
    struct timespec nap = {0, 200 * 1000 * 1000};
    nanosleep(&nap, NULL);
    double c2 = secs(CLOCK_PROCESS_CPUTIME_ID);
    nanosleep(&nap, NULL);
    double c3 = secs(CLOCK_PROCESS_CPUTIME_ID);
    printf("pool of %d: empty tpool_run %.2f us wall, %.2f us CPU per call; idle 200 ms after: %.1f ms CPU\n", n,
           (w1 - w0) / CALLS * 1e6, (c1 - c0) / CALLS * 1e6, (c3 - c2) * 1e3);
    count_t c = {.n = n};
    enum { SMALL = 50000 };
    double s0 = secs(CLOCK_MONOTONIC), d0 = secs(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < SMALL; i++) {
        atomic_store(&c.next, 0);
        tpool_run(p, small_fn, &c);
    }
    double s1 = secs(CLOCK_MONOTONIC), d1 = secs(CLOCK_PROCESS_CPUTIME_ID);
    double one = 0;
    for (int i = 0; i < SMALL / 10; i++) {
        atomic_store(&c.next, 0);
        double t0 = secs(CLOCK_MONOTONIC);
        small_fn(&c, 0);
        one += secs(CLOCK_MONOTONIC) - t0;
    }
    printf("pool of %d: 64 x 50 ns items: %.2f us wall, %.2f us CPU per call (one thread alone: %.2f us); "
           "%.0f%% done by workers\n",
           n, (s1 - s0) / SMALL * 1e6, (d1 - d0) / SMALL * 1e6, one / (SMALL / 10) * 1e6,
           100.0 * atomic_load(&c.by_worker) / (64.0 * SMALL));
    tpool_free(p);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench(2);
        bench(3);
        return 0;
    }
    check_pool(0);
    check_pool(1);
    check_pool(2);
    check_pool(4);
    tpool_run(NULL, count_fn, &(count_t){.n = 1});
    const char *ref = getenv("TOLLGATE_REF");
    if (!ref) ref = "../shared/ref";
    const char *files[] = {"llama-tiny-F16.gguf", "llama-tiny-Q4_0.gguf", "llama-tiny-Q4_K_M.gguf",
                           "llama-tiny-Q8_0.gguf", "phi3-tiny-Q4_K_M.gguf"};
    tpool_t *pool = NULL;
    CHECK_EQ_INT(tpool_new(3, &pool), 0);
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/models/%s", ref, files[f]);
        check_model(path, pool);
    }
    tpool_free(pool);
    return check_summary("test_threadpool");
}
