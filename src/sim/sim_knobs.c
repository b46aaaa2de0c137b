/* sim_knobs.c — the simulator's behaviour knobs: defaults, parsing, JSON in and out. */
#include "sim/sim_knobs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

void sim_knobs_default(sim_knobs_t *k) {
    memset(k, 0, sizeof *k);
    k->output = SIM_OUT_FIXED;
    k->output_tokens = 16;
    k->max_queue = 1024;
    k->seed = 1;
}

int sim_knobs_parse_output(const char *s, sim_knobs_t *k) {
    if (!strcmp(s, "random")) {
        k->output = SIM_OUT_RANDOM;
        return 0;
    }
    if (!strcmp(s, "echo")) {
        k->output = SIM_OUT_ECHO;
        return 0;
    }
    if (!strcmp(s, "fixed")) {
        k->output = SIM_OUT_FIXED;
        return 0;
    }
    if (!strncmp(s, "fixed:", 6)) {
        char *end;
        long n = strtol(s + 6, &end, 10);
        if (*end || end == s + 6 || n < 0 || n > 1000000)
            return -EINVAL;
        k->output = SIM_OUT_FIXED;
        k->output_tokens = (uint32_t)n;
        return 0;
    }
    return -EINVAL;
}

static const char *output_name(int o) {
    return o == SIM_OUT_RANDOM ? "random" : o == SIM_OUT_ECHO ? "echo" : "fixed";
}

void sim_knobs_json(const sim_knobs_t *k, buf_t *out) {
    json_w_t w;
    json_w_init(&w, out);
    json_w_obj_begin(&w);
    json_w_key(&w, "ttft_ms");
    json_w_i64(&w, k->ttft_ms);
    json_w_key(&w, "ttft_jitter_ms");
    json_w_i64(&w, k->ttft_jitter_ms);
    json_w_key(&w, "itl_ms");
    json_w_i64(&w, k->itl_ms);
    json_w_key(&w, "itl_jitter_ms");
    json_w_i64(&w, k->itl_jitter_ms);
    json_w_key(&w, "output");
    json_w_str(&w, output_name(k->output));
    json_w_key(&w, "output_tokens");
    json_w_i64(&w, k->output_tokens);
    json_w_key(&w, "max_seqs");
    json_w_i64(&w, k->max_seqs);
    json_w_key(&w, "max_queue");
    json_w_i64(&w, k->max_queue);
    json_w_key(&w, "fail_rate");
    json_w_double(&w, k->fail_rate);
    json_w_key(&w, "reset_rate");
    json_w_double(&w, k->reset_rate);
    json_w_key(&w, "stall_rate");
    json_w_double(&w, k->stall_rate);
    json_w_key(&w, "seed");
    json_w_i64(&w, (int64_t)k->seed);
    json_w_obj_end(&w);
}

/* The integer knobs, by name, with their upper bounds. */
typedef struct int_knob {
    const char *name;
    size_t off;
    int64_t max;
} int_knob_t;

static const int_knob_t int_knobs[] = {
    {"ttft_ms", offsetof(sim_knobs_t, ttft_ms), 3600000},
    {"ttft_jitter_ms", offsetof(sim_knobs_t, ttft_jitter_ms), 3600000},
    {"itl_ms", offsetof(sim_knobs_t, itl_ms), 3600000},
    {"itl_jitter_ms", offsetof(sim_knobs_t, itl_jitter_ms), 3600000},
    {"output_tokens", offsetof(sim_knobs_t, output_tokens), 1000000},
    {"max_seqs", offsetof(sim_knobs_t, max_seqs), 1000000},
    {"max_queue", offsetof(sim_knobs_t, max_queue), 1000000},
};

static const struct {
    const char *name;
    size_t off;
} rate_knobs[] = {
    {"fail_rate", offsetof(sim_knobs_t, fail_rate)},
    {"reset_rate", offsetof(sim_knobs_t, reset_rate)},
    {"stall_rate", offsetof(sim_knobs_t, stall_rate)},
};

int sim_knobs_update(sim_knobs_t *k, const char *json, size_t len, char *err, size_t errcap) {
    json_tok_t toks[128];
    json_doc_t d;
    if (json_parse(json, len, toks, 128, 8, &d, NULL) < 0 || toks[0].type != JSON_OBJECT) {
        snprintf(err, errcap, "expected a JSON object of knobs");
        return -1;
    }
    sim_knobs_t n = *k; /* applied only if every key is valid */
    for (uint32_t i = 0, t = 1; i < toks[0].size; i++) {
        int key = (int)t, val = (int)t + 1;
        t = toks[val].next;
        int done = 0;
        for (size_t j = 0; j < sizeof int_knobs / sizeof int_knobs[0] && !done; j++) {
            if (!json_str_eq(&d, key, int_knobs[j].name))
                continue;
            int64_t v;
            if (json_get_i64(&d, val, &v) < 0 || v < 0 || v > int_knobs[j].max) {
                snprintf(err, errcap, "'%s' must be an integer in 0..%lld", int_knobs[j].name,
                         (long long)int_knobs[j].max);
                return -1;
            }
            *(uint32_t *)((char *)&n + int_knobs[j].off) = (uint32_t)v;
            done = 1;
        }
        for (size_t j = 0; j < sizeof rate_knobs / sizeof rate_knobs[0] && !done; j++) {
            if (!json_str_eq(&d, key, rate_knobs[j].name))
                continue;
            double v;
            if (json_get_double(&d, val, &v) < 0 || !(v >= 0 && v <= 1)) {
                snprintf(err, errcap, "'%s' must be a number in 0..1", rate_knobs[j].name);
                return -1;
            }
            *(double *)((char *)&n + rate_knobs[j].off) = v;
            done = 1;
        }
        if (done)
            continue;
        if (json_str_eq(&d, key, "output")) {
            char s[32];
            size_t sl = toks[val].end - toks[val].start;
            if (toks[val].type != JSON_STRING || sl >= sizeof s) {
                snprintf(err, errcap, "'output' must be \"fixed\", \"fixed:N\", \"random\" or \"echo\"");
                return -1;
            }
            memcpy(s, json + toks[val].start, sl);
            s[sl] = '\0';
            if (sim_knobs_parse_output(s, &n) < 0) {
                snprintf(err, errcap, "'output' must be \"fixed\", \"fixed:N\", \"random\" or \"echo\"");
                return -1;
            }
        } else if (json_str_eq(&d, key, "seed")) {
            int64_t v;
            if (json_get_i64(&d, val, &v) < 0) {
                snprintf(err, errcap, "'seed' must be an integer");
                return -1;
            }
            n.seed = (uint64_t)v;
        } else {
            snprintf(err, errcap, "unknown knob '%.*s'", (int)(toks[key].end - toks[key].start),
                     json + toks[key].start);
            return -1;
        }
    }
    *k = n;
    return 0;
}
