/* test_sched_batch.c — continuous batching in the engine thread: batched sequences give the same text as alone, a short request finishes while a long one runs, full KV slots queue requests, a cancel frees its slot, the prefix cache is used and counted. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "sched_jobs.h"
#include "core/ev.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/sched.h"
#include "model/tokenizer.h"

#define CTX 96

static void wait_all(sched_t *s, job_t **js, int n, int *max_running) { wait_jobs(s, 1, js, n, max_running); }

static job_t *new_job(const tokenizer_t *t, const char *prompt, int max_tokens) {
    return job_new(t, prompt, max_tokens, 0, CTX);
}

/* Drain until job j has received some text. */
static void wait_text(sched_t *s, job_t *j) {
    for (int tries = 0; tries < 60000 && !j->text.len && !j->done; tries++) {
        sched_drain(s, 0, deliver, NULL);
        sleep_ms(1);
    }
}

typedef struct counters {
    metrics_registry_t *reg;
    sched_metrics_t sm;
} counters_t;

static void counters_init(counters_t *c) {
    c->reg = metrics_registry_new();
    memset(&c->sm, 0, sizeof c->sm);
    c->sm.prefix_queries = metrics_child(metrics_counter(c->reg, "pq_total", "x", NULL), NULL);
    c->sm.prefix_hits = metrics_child(metrics_counter(c->reg, "ph_total", "x", NULL), NULL);
    c->sm.kv_usage = metrics_child(metrics_gauge(c->reg, "kv", "x", NULL), NULL);
    c->sm.running = metrics_child(metrics_gauge(c->reg, "running", "x", NULL), NULL);
    c->sm.prompt_tokens = metrics_child(metrics_counter(c->reg, "pt_total", "x", NULL), NULL);
    c->sm.gen_tokens = metrics_child(metrics_counter(c->reg, "gt_total", "x", NULL), NULL);
    c->sm.queue_time = metrics_child(metrics_histogram(c->reg, "qt", "x", NULL, metrics_latency_buckets,
                                                       metrics_latency_nbuckets), NULL);
}

static sched_t *start(const model_t *m, const tokenizer_t *tok, int max_seqs, size_t kv_bytes,
                      int chunk, counters_t *c) {
    sched_config_t cfg = {.n_workers = 1, .max_queue = 16, .prefill_chunk = chunk,
                          .max_seqs = max_seqs, .kv_bytes = kv_bytes};
    if (c) cfg.metrics = c->sm;
    sched_t *s;
    if (sched_new(&cfg, &s)) return NULL;
    if (sched_start(s, m, tok, CTX)) {
        sched_free(s);
        return NULL;
    }
    return s;
}

static const char *prompts[] = {
    "Once upon a time",
    "The capital of France is",
    "1 2 3 4 5",
    "In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole, filled with the "
    "ends of worms and an oozy smell, nor yet a dry, bare, sandy hole",
    "A",
};
#define N_PROMPTS 5

int main(void) {
    const char *ref = getenv("TOLLGATE_REF");
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/models/llama-tiny-Q8_0.gguf", ref && *ref ? ref : "../shared/ref");
    model_t m;
    tokenizer_t *tok = NULL;
    if (model_load(path, &m, err, sizeof err) || tok_load(&m.file, &tok, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", path, err);
        CHECK(0);
        return check_summary("test_sched_batch");
    }
    size_t slot = forward_kv_bytes(&m.hp, CTX);

    /* 1. each prompt alone (max_seqs 1) ... */
    char *alone[N_PROMPTS];
    sched_t *s = start(&m, tok, 1, 0, 0, NULL);
    CHECK(s != NULL);
    for (int i = 0; i < N_PROMPTS; i++) {
        job_t *j = new_job(tok, prompts[i], 12);
        CHECK_EQ_INT(sched_submit(s, &j->j), 0);
        wait_all(s, &j, 1, NULL);
        CHECK_EQ_INT(j->j.error, 0);
        CHECK_EQ_INT(j->j.n_gen, 12);
        alone[i] = strdup(j->text.data ? j->text.data : "");
        free_job(j);
    }
    sched_free(s);

    /* ... and all together, 8 tokens per step (the long prompt is chunked while the others
     * decode): each gets the text it got alone */
    counters_t c;
    counters_init(&c);
    s = start(&m, tok, 8, 0, 8, &c);
    CHECK(s != NULL);
    job_t *js[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) {
        js[i] = new_job(tok, prompts[i], 12);
        CHECK_EQ_INT(sched_submit(s, &js[i]->j), 0);
    }
    int max_running = 0;
    wait_all(s, js, N_PROMPTS, &max_running);
    for (int i = 0; i < N_PROMPTS; i++) {
        CHECK(js[i]->done);
        CHECK_EQ_INT(js[i]->j.error, 0);
        CHECK_EQ_STR(js[i]->text.data ? js[i]->text.data : "", alone[i]);
        free_job(js[i]);
    }
    CHECK(max_running >= 2); /* they did run together */
    CHECK_EQ_INT(metrics_value(c.sm.gen_tokens), N_PROMPTS * 12);
    CHECK_EQ_INT(sched_running(s), 0);
    CHECK_EQ_INT(metrics_value(c.sm.kv_usage), 0);

    /* 2. a short request submitted while a long one generates finishes first */
    job_t *lng = new_job(tok, prompts[0], 60), *sht = new_job(tok, prompts[1], 3);
    CHECK_EQ_INT(sched_submit(s, &lng->j), 0);
    wait_text(s, lng); /* the long one is generating */
    CHECK_EQ_INT(sched_submit(s, &sht->j), 0);
    job_t *two[] = {lng, sht};
    wait_all(s, two, 2, NULL);
    CHECK(sht->done && lng->done);
    CHECK(sht->order < lng->order);
    CHECK_EQ_INT(lng->j.n_gen, 60);
    CHECK_EQ_INT(sht->j.n_gen, 3);
    free_job(lng);
    free_job(sht);
    sched_free(s);
    metrics_registry_free(c.reg);

    /* 3. KV memory for two slots with max_seqs 4: two run, the others wait, all finish */
    counters_init(&c);
    s = start(&m, tok, 4, 2 * slot + slot / 2, 0, &c);
    CHECK(s != NULL);
    CHECK_EQ_INT(sched_kv_slots(s), 2);
    for (int i = 0; i < 4; i++) {
        js[i] = new_job(tok, prompts[i], 12);
        CHECK_EQ_INT(sched_submit(s, &js[i]->j), 0);
    }
    max_running = 0;
    wait_all(s, js, 4, &max_running);
    CHECK(max_running <= 2);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(js[i]->j.error, 0);
        CHECK_EQ_STR(js[i]->text.data ? js[i]->text.data : "", alone[i]);
        free_job(js[i]);
    }
    CHECK(metrics_hist_count(c.sm.queue_time) == 4);
    sched_free(s);
    metrics_registry_free(c.reg);
    /* no room for a single context: refused at start */
    sched_config_t small = {.n_workers = 1, .max_queue = 4, .kv_bytes = slot - 1};
    CHECK_EQ_INT(sched_new(&small, &s), 0);
    CHECK_EQ_INT(sched_start(s, &m, tok, CTX), -ENOSPC);
    sched_free(s);

    /* 4. one slot: cancelling the running request mid-generation frees it for the next */
    counters_init(&c);
    s = start(&m, tok, 4, slot, 0, &c);
    CHECK(s != NULL);
    job_t *x = new_job(tok, prompts[0], 80), *y = new_job(tok, prompts[2], 12);
    CHECK_EQ_INT(sched_submit(s, &x->j), 0);
    CHECK_EQ_INT(sched_submit(s, &y->j), 0);
    wait_text(s, x);
    CHECK(!y->done && !y->text.len); /* y waits for the only slot */
    atomic_store(&x->j.cancel, 1);
    job_t *xy[] = {x, y};
    wait_all(s, xy, 2, NULL);
    CHECK_EQ_INT(x->j.error, -ECANCELED);
    CHECK(x->j.n_gen < 80);
    CHECK_EQ_INT(y->j.error, 0);
    CHECK_EQ_STR(y->text.data ? y->text.data : "", alone[2]);
    CHECK_EQ_INT(metrics_value(c.sm.kv_usage), 0);
    free_job(x);
    free_job(y);
    sched_free(s);
    metrics_registry_free(c.reg);

    /* 4b. cancelling one of three sequences in a batch: the other two finish with their
     * lone texts, and its slot is taken by the queued fourth */
    counters_init(&c);
    s = start(&m, tok, 3, 0, 0, &c);
    CHECK(s != NULL);
    for (int i = 0; i < 4; i++) {
        js[i] = new_job(tok, prompts[i], i == 1 ? 80 : 12);
        CHECK_EQ_INT(sched_submit(s, &js[i]->j), 0);
    }
    wait_text(s, js[1]);
    CHECK(!js[3]->done && !js[3]->text.len); /* three slots, three running */
    atomic_store(&js[1]->j.cancel, 1);
    wait_all(s, js, 4, NULL);
    CHECK_EQ_INT(js[1]->j.error, -ECANCELED);
    for (int i = 0; i < 4; i++) {
        if (i != 1) {
            CHECK_EQ_INT(js[i]->j.error, 0);
            CHECK_EQ_STR(js[i]->text.data ? js[i]->text.data : "", alone[i]);
        }
        free_job(js[i]);
    }
    CHECK_EQ_INT(metrics_value(c.sm.kv_usage), 0);
    sched_free(s);
    metrics_registry_free(c.reg);

    /* 5. prefix cache: B alone on a fresh engine, then A sharing B's beginning reuses it,
     * then B again reuses all but its last token and generates the same text */
    counters_init(&c);
    s = start(&m, tok, 2, 0, 0, &c);
    CHECK(s != NULL);
    const char *pb = "In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole",
               *pa = "In a hole in the ground there lived a hobbit. It was a comfortable one";
    job_t *b1 = new_job(tok, pb, 10);
    CHECK_EQ_INT(sched_submit(s, &b1->j), 0);
    wait_all(s, &b1, 1, NULL);
    CHECK_EQ_INT(metrics_value(c.sm.prefix_hits), 0);
    CHECK_EQ_INT(metrics_value(c.sm.prefix_queries), b1->j.n_prompt);
    job_t *a1 = new_job(tok, pa, 10);
    int lcp = 0;
    while (lcp < a1->j.n_prompt && lcp < b1->j.n_prompt && a1->j.prompt[lcp] == b1->j.prompt[lcp]) lcp++;
    CHECK(lcp >= 10);
    CHECK_EQ_INT(sched_submit(s, &a1->j), 0);
    wait_all(s, &a1, 1, NULL);
    CHECK_EQ_INT(metrics_value(c.sm.prefix_hits), lcp);
    job_t *b2 = new_job(tok, pb, 10);
    CHECK_EQ_INT(sched_submit(s, &b2->j), 0);
    wait_all(s, &b2, 1, NULL);
    CHECK_EQ_INT(metrics_value(c.sm.prefix_hits), lcp + b2->j.n_prompt - 1);
    CHECK_EQ_INT(metrics_value(c.sm.prefix_queries), b1->j.n_prompt + a1->j.n_prompt + b2->j.n_prompt);
    CHECK_EQ_INT(metrics_value(c.sm.prompt_tokens), b1->j.n_prompt + a1->j.n_prompt + b2->j.n_prompt);
    CHECK(b1->text.len > 0);
    CHECK_EQ_STR(b2->text.data, b1->text.data);
    free_job(a1);
    free_job(b1);
    free_job(b2);
    sched_free(s);
    metrics_registry_free(c.reg);

    for (int i = 0; i < N_PROMPTS; i++) free(alone[i]);
    tok_free(tok);
    model_free(&m);
    return check_summary("test_sched_batch");
}
