/* generate.c — the decode loop of one sequence: sampling, stop conditions, stop strings across token boundaries. */
#define _GNU_SOURCE /* memmem */
#include "engine/generate.h"

#include <errno.h>
#include <string.h>

int gen_init(gen_t *g, const model_t *m, const tokenizer_t *tok, forward_state_t *fs,
             const int32_t *prompt, int n_prompt, const gen_params_t *p) {
    memset(g, 0, sizeof *g);
    if (!fs) return -EINVAL;
    int rc = gen_init_seq(g, m, tok, fs->n_ctx, prompt, n_prompt, p);
    g->fs = fs;
    return rc;
}

int gen_init_seq(gen_t *g, const model_t *m, const tokenizer_t *tok, int n_ctx,
                 const int32_t *prompt, int n_prompt, const gen_params_t *p) {
    memset(g, 0, sizeof *g);
    if (!prompt || n_prompt <= 0 || !p || p->n_stop < 0 || p->n_stop > GEN_MAX_STOP)
        return -EINVAL;
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0]) return -EINVAL;
    if (n_prompt >= n_ctx) return -E2BIG;
    int rc = sampler_init(&g->smp, m->hp.n_vocab, &p->sp);
    if (rc) return rc;
    g->m = m;
    g->tok = tok;
    g->n_ctx = n_ctx;
    g->p = *p;
    g->prompt = prompt;
    g->n_prompt = n_prompt;
    g->next = -1;
    tok_stream_init(&g->ds);
    buf_init(&g->text);
    if (buf_reserve(&g->text, 256)) {
        sampler_free(&g->smp);
        return -ENOMEM;
    }
    return 0;
}

void gen_free(gen_t *g) {
    sampler_free(&g->smp);
    buf_free(&g->text);
}

const char *gen_finish_reason(gen_finish_t f) {
    return f == GEN_FINISH_STOP ? "stop" : f == GEN_FINISH_LENGTH ? "length" : NULL;
}

int gen_prefill(gen_t *g, int budget) {
    if (!g->fs) return -EINVAL;
    int end = g->n_prompt;
    if (budget > 0 && g->n_past + budget < end) end = g->n_past + budget;
    if (end > g->n_past) {
        /* The prompt path, not token by token: it follows the reference's batch kernels,
         * so served log-probs match the reference's (see forward_prompt). */
        g->logits = forward_prompt(g->m, g->fs, g->prompt + g->n_past, end - g->n_past, g->n_past);
        if (!g->logits) return -EINVAL;
        g->n_past = end;
    }
    return g->n_past == g->n_prompt;
}

static int32_t count_chars(const char *p, size_t n) {
    int32_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}

/* Earliest full occurrence of a stop string in text[from..len); -1 when none. A match can
 * only start at or after `emitted`, since emitted text never held the start of one. */
static long find_stop(const gen_t *g, size_t from) {
    long best = -1;
    const char *t = g->text.data;
    size_t len = g->text.len;
    for (int k = 0; k < g->p.n_stop; k++) {
        size_t sl = strlen(g->p.stop[k]);
        if (sl > len - from) continue;
        const char *hit = memmem(t + from, len - from, g->p.stop[k], sl);
        if (hit && (best < 0 || hit - t < best)) best = hit - t;
    }
    return best;
}

/* Where emission must pause: the first position from which the rest of the text is a
 * proper prefix of some stop string (it may complete with the next token). */
static size_t hold_point(const gen_t *g) {
    const char *t = g->text.data;
    size_t len = g->text.len;
    for (size_t i = g->emitted; i < len; i++) {
        for (int k = 0; k < g->p.n_stop; k++) {
            size_t sl = strlen(g->p.stop[k]);
            if (sl > len - i && !memcmp(t + i, g->p.stop[k], len - i)) return i;
        }
    }
    return len;
}

static int emit_to(gen_t *g, size_t upto, buf_t *out) {
    if (upto <= g->emitted) return 0;
    int rc = buf_append(out, g->text.data + g->emitted, upto - g->emitted);
    g->emitted = upto;
    return rc;
}

/* End the generation: flush the UTF-8 assembler, cut at a stop string if the flushed
 * text completed one, hand out the rest. */
static int finish(gen_t *g, gen_finish_t why, buf_t *out) {
    size_t before = g->text.len;
    if (tok_stream_flush(&g->ds, &g->text)) return -ENOMEM;
    g->n_chars += count_chars(g->text.data + before, g->text.len - before);
    long s = find_stop(g, g->emitted);
    if (s >= 0) {
        g->text.len = (size_t)s;
        g->text.data[s] = 0;
        why = GEN_FINISH_STOP;
    }
    g->finish = why;
    return emit_to(g, g->text.len, out) ? -ENOMEM : 0;
}

int gen_sample(gen_t *g, gen_out_t *out) {
    out->has_token = 0;
    if (g->finish != GEN_RUNNING) return 0;
    if (g->n_past < g->n_prompt || !g->logits) return -EINVAL;

    sampler_sample(&g->smp, g->logits, &out->tok.r);
    int32_t id = out->tok.r.id;
    g->n_gen++;
    if (tok_is_eog(g->tok, id)) return finish(g, GEN_FINISH_STOP, out->text);

    out->has_token = 1;
    out->tok.text_offset = g->n_chars;
    size_t before = g->text.len;
    if (tok_stream_push(&g->ds, g->tok, id, 0, &g->text)) return -ENOMEM;
    g->n_chars += count_chars(g->text.data + before, g->text.len - before);

    if (g->p.n_stop) {
        /* everything before `emitted` was checked to start no match, so the search
         * covers only the held-back text plus the new piece */
        long s = find_stop(g, g->emitted);
        if (s >= 0) {
            g->text.len = (size_t)s;
            g->text.data[s] = 0;
            g->finish = GEN_FINISH_STOP;
            return emit_to(g, (size_t)s, out->text) ? -ENOMEM : 0;
        }
    }
    if ((g->p.max_tokens > 0 && g->n_gen >= g->p.max_tokens) || g->n_past >= g->n_ctx)
        return finish(g, GEN_FINISH_LENGTH, out->text);

    if (emit_to(g, g->p.n_stop ? hold_point(g) : g->text.len, out->text)) return -ENOMEM;
    g->next = id;
    g->logits = NULL; /* until the forward pass of `next` */
    return 1;
}

void gen_fed(gen_t *g, int n, const float *logits) {
    g->n_past += n;
    g->logits = logits;
}

int gen_step(gen_t *g, gen_out_t *out) {
    int rc = gen_sample(g, out);
    if (rc != 1) return rc;
    if (!g->fs) return -EINVAL;
    const float *logits = forward(g->m, g->fs, g->next, g->n_past);
    if (!logits) return -EINVAL;
    gen_fed(g, 1, logits);
    return 1;
}
