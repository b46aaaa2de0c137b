/* trainer.c — the training loop: vocabulary, batches from the generator, worker threads,
 * AdamW with warmup + cosine decay and clipping, checkpoints, the final GGUF. */
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ev.h"
#include "model/chat.h"
#include "train/orders_data.h"
#include "train/tmodel.h"
#include "train/vocab.h"

#define MAX_THREADS 16
#define VOCAB_EXAMPLES 20000 /* generated pairs the vocabulary is learned from */

void train_opts_default(train_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->model = (tm_config_t){.dim = 128,
                             .n_layer = 4,
                             .n_head = 4,
                             .ff = 384,
                             .ctx = 96,
                             .rope_base = 10000.0f,
                             .norm_eps = 1e-5f};
    o->vocab_size = 640;
    o->steps = 3000, o->batch = 32, o->warmup = 200; /* the shipped models/orders.gguf */
    o->lr = 2e-3f, o->min_lr = 1e-4f, o->weight_decay = 0.1f, o->clip = 1.0f;
    o->seed = 1, o->threads = 2, o->log_every = 50, o->ckpt_every = 500;
}

int train_encode_prompt(const tokenizer_t *t, const char *input, int32_t *out, int cap) {
    chat_msg_t msg = {"user", input};
    buf_t b;
    buf_init(&b);
    int rc = chat_apply(CHAT_TMPL_MISTRAL, &msg, 1, 1, &b);
    if (!rc) rc = tok_encode(t, b.data, b.len, 1, 1, out, cap);
    buf_free(&b);
    return rc;
}

int train_encode_completion(const tokenizer_t *t, const char *output, int32_t *out, int cap) {
    int32_t tmp[512];
    int n = tok_encode(t, output, strlen(output), 0, 0, tmp, 512);
    if (n < 0) return n;
    if (n < 1 || n > 500) return -E2BIG;
    /* the encoder puts a space in front; the answer follows "[/INST]" directly */
    size_t len;
    const char *s = tok_text(t, tmp[0], &len);
    int k = 0, m = 0;
    int32_t first[8];
    if (len >= 3 && !memcmp(s, "\xE2\x96\x81", 3)) {
        int32_t id = tok_lookup(t, s + 3, len - 3);
        if (id >= 0)
            first[k++] = id;
        else
            for (size_t i = 3; i < len && k < 8; i++) { /* bytes of the rest (digits) */
                int32_t c = tok_lookup(t, s + i, 1);
                first[k++] = c >= 0 ? c : VOCAB_BYTE0 + (unsigned char)s[i];
            }
    } else {
        first[k++] = tmp[0];
    }
    for (int i = 0; i < k; i++, m++)
        if (m < cap) out[m] = first[i];
    for (int i = 1; i < n; i++, m++)
        if (m < cap) out[m] = tmp[i];
    if (m < cap) out[m] = tok_eos(t);
    return m + 1;
}

/* One training sequence: inputs and next-token targets (-1 where no loss). */
typedef struct seq {
    int32_t *tok; /* (ctx) */
    int32_t *tgt; /* (ctx) */
    int T;
} seq_t;

typedef struct trainer trainer_t;

typedef struct worker {
    trainer_t *tr;
    int id;
    tm_acts_t acts;
    float *grad; /* (np) this worker's gradient sum; worker 0's is the step's */
    tm_params_t g;
    double loss;
    long targets;
} worker_t;

struct trainer {
    const train_opts_t *o;
    tm_config_t c;
    size_t np;
    float *w, *m, *v; /* (np) params, Adam moments */
    tm_params_t p;
    seq_t *batch; /* (B) */
    float lscale; /* 1 / targets in the batch */
    worker_t wk[MAX_THREADS];
    int nw;
};

static void *work(void *arg) {
    worker_t *w = arg;
    trainer_t *tr = w->tr;
    memset(w->grad, 0, tr->np * sizeof(float));
    w->loss = 0, w->targets = 0;
    for (int i = w->id; i < tr->o->batch; i += tr->nw) {
        seq_t *s = &tr->batch[i];
        int nt = 0;
        w->loss += tm_forward(&tr->c, &tr->p, &w->acts, s->tok, s->tgt, s->T, &nt);
        w->targets += nt;
        tm_backward(&tr->c, &tr->p, &w->g, &w->acts, s->tok, s->tgt, s->T, tr->lscale);
    }
    return NULL;
}

/* Fill the batch of step `step` (its own generator seed: resuming replays the same data). */
static int make_batch(trainer_t *tr, const ord_menu_t *menu, const tokenizer_t *tok, long step,
                      long *n_tok, long *n_tgt) {
    ord_gen_t g;
    buf_t in, out;
    int32_t pr[512], co[512], rc = 0;
    ord_gen_init(&g, menu, tr->o->seed * 1000003ull + (uint64_t)step, 0);
    buf_init(&in);
    buf_init(&out);
    *n_tok = *n_tgt = 0;
    for (int b = 0; b < tr->o->batch;) {
        if ((rc = ord_gen_next(&g, &in, &out, NULL, NULL)) < 0) break;
        rc = 0;
        int np = train_encode_prompt(tok, in.data, pr, 512);
        int nc = train_encode_completion(tok, out.data, co, 512);
        if (np < 0 || nc < 0) {
            rc = np < 0 ? np : nc;
            break;
        }
        if (np > 512 || nc > 512 || np + nc - 1 > tr->c.ctx) continue; /* too long: skip */
        seq_t *s = &tr->batch[b++];
        s->T = np + nc - 1;
        for (int t = 0; t < s->T; t++) {
            s->tok[t] = t < np ? pr[t] : co[t - np];
            int nx = t + 1 < np ? pr[t + 1] : co[t + 1 - np];
            s->tgt[t] = t >= np - 1 ? nx : -1;
        }
        *n_tok += s->T;
        *n_tgt += nc;
    }
    buf_free(&in);
    buf_free(&out);
    return rc;
}

/* Learning rate at step: linear warmup, then cosine from lr to min_lr. */
static float lr_at(const train_opts_t *o, long step) {
    if (step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
    double f =
        (double)(step - o->warmup) / (double)(o->steps > o->warmup ? o->steps - o->warmup : 1);
    if (f > 1) f = 1;
    return (float)(o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(3.141592653589793 * f)));
}

/* AdamW step on all parameters; norm weights are not decayed. Returns the gradient norm
 * before clipping. */
static float adamw(trainer_t *tr, const float *grad, long step, float lr) {
    const train_opts_t *o = tr->o;
    double ss = 0;
    for (size_t i = 0; i < tr->np; i++) ss += (double)grad[i] * grad[i];
    float norm = (float)sqrt(ss), gs = norm > o->clip ? o->clip / norm : 1.0f;
    const float b1 = 0.9f, b2 = 0.95f, eps = 1e-8f;
    float c1 = 1.0f - powf(b1, (float)(step + 1)), c2 = 1.0f - powf(b2, (float)(step + 1));
    size_t D = tr->c.dim, L = tr->c.n_layer;
    size_t an0 = (size_t)(tr->p.attn_norm - tr->w), fn0 = (size_t)(tr->p.ffn_norm - tr->w);
    size_t on0 = (size_t)(tr->p.out_norm - tr->w);
    for (size_t i = 0; i < tr->np; i++) {
        int is_norm = (i >= an0 && i < an0 + L * D) || (i >= fn0 && i < fn0 + L * D) || i >= on0;
        float gi = grad[i] * gs;
        tr->m[i] = b1 * tr->m[i] + (1 - b1) * gi;
        tr->v[i] = b2 * tr->v[i] + (1 - b2) * gi * gi;
        float upd = (tr->m[i] / c1) / (sqrtf(tr->v[i] / c2) + eps);
        tr->w[i] -= lr * (upd + (is_norm ? 0.0f : o->weight_decay * tr->w[i]));
    }
    return norm;
}

/* ---- checkpoints: a GGUF of the flat parameter and moment arrays ---- */

static int save_ckpt(const trainer_t *tr, const vocab_t *voc, const char *path, long step,
                     char *err, size_t el) {
    gguf_writer_t *w = gguf_writer_new();
    int64_t ne[1] = {(int64_t)tr->np};
    char tmp[1100];
    int rc = w ? 0 : -ENOMEM;
    if (!rc) rc = gguf_w_str(w, "general.architecture", "tollgate-train-checkpoint");
    if (!rc) rc = vocab_write_gguf(voc, w);
    const int vals[] = {tr->c.dim, tr->c.n_layer, tr->c.n_head, tr->c.ff, tr->c.ctx, (int)step};
    const char *keys[] = {"train.dim", "train.n_layer", "train.n_head",
                          "train.ff",  "train.ctx",     "train.step"};
    for (int i = 0; i < 6 && !rc; i++) rc = gguf_w_u32(w, keys[i], (uint32_t)vals[i]);
    if (!rc) rc = gguf_w_tensor(w, "train.params", GGML_TYPE_F32, 1, ne, tr->w, tr->np * 4);
    if (!rc) rc = gguf_w_tensor(w, "train.adam_m", GGML_TYPE_F32, 1, ne, tr->m, tr->np * 4);
    if (!rc) rc = gguf_w_tensor(w, "train.adam_v", GGML_TYPE_F32, 1, ne, tr->v, tr->np * 4);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!rc) rc = gguf_w_write(w, tmp, err, el);
    if (!rc && rename(tmp, path) != 0) rc = -errno; /* never leave a half-written checkpoint */
    gguf_writer_free(w);
    return rc;
}

/* Read a checkpoint's config and vocabulary (params are copied by load_ckpt_data). */
static int load_ckpt(const char *path, gguf_file_t *f, tm_config_t *c, vocab_t *voc, long *step,
                     char *err, size_t el) {
    if (gguf_open(path, f, err, el) != 0) return -EINVAL;
    uint32_t v[6];
    const char *keys[] = {"train.dim", "train.n_layer", "train.n_head",
                          "train.ff",  "train.ctx",     "train.step"};
    for (int i = 0; i < 6; i++)
        if (gguf_get_u32(f, keys[i], &v[i])) {
            snprintf(err, el, "%.400s: not a tollgate training checkpoint (%s missing)", path,
                     keys[i]);
            return -EINVAL;
        }
    c->dim = (int)v[0], c->n_layer = (int)v[1], c->n_head = (int)v[2], c->ff = (int)v[3];
    c->ctx = (int)v[4], *step = v[5];
    const gguf_kv_t *tk = gguf_find(f, "tokenizer.ggml.tokens"),
                    *sc = gguf_find(f, "tokenizer.ggml.scores");
    const gguf_kv_t *ty = gguf_find(f, "tokenizer.ggml.token_type");
    if (!tk || !sc || !ty || tk->arr_count != sc->arr_count || tk->arr_count != ty->arr_count) {
        snprintf(err, el, "%.400s: vocabulary missing", path);
        return -EINVAL;
    }
    int n = (int)tk->arr_count;
    voc->pieces = calloc((size_t)n, sizeof *voc->pieces);
    voc->scores = calloc((size_t)n, sizeof(float));
    voc->types = calloc((size_t)n, sizeof(int32_t));
    if (!voc->pieces || !voc->scores || !voc->types) return -ENOMEM;
    const uint8_t *cur = NULL;
    for (int i = 0; i < n; i++, voc->n++) {
        gguf_str_t s;
        if (gguf_arr_str_next(tk, &cur, &s) || gguf_arr_f32(sc, (uint64_t)i, &voc->scores[i]) ||
            gguf_arr_i32(ty, (uint64_t)i, &voc->types[i]) ||
            !(voc->pieces[i] = strndup(s.ptr, s.len)))
            return -EINVAL;
    }
    c->vocab = n;
    return 0;
}

static int write_model(const trainer_t *tr, const vocab_t *voc, const char *path, char *err,
                       size_t el) {
    gguf_writer_t *w = gguf_writer_new();
    int rc = w ? 0 : -ENOMEM;
    if (!rc) rc = gguf_w_str(w, "general.architecture", "llama");
    if (!rc) rc = gguf_w_str(w, "general.name", "tollgate-orders");
    if (!rc) rc = gguf_w_u32(w, "general.alignment", 32);
    if (!rc) rc = vocab_write_gguf(voc, w);
    if (!rc) rc = gguf_w_str(w, "tokenizer.chat_template", TRAIN_CHAT_TEMPLATE);
    if (!rc) rc = tm_write_gguf(&tr->c, &tr->p, tr->o->f16, w);
    if (!rc) rc = gguf_w_write(w, path, err, el);
    gguf_writer_free(w);
    return rc;
}

int train_run(const train_opts_t *o, FILE *log) {
    ord_menu_t menu;
    vocab_t voc = {0};
    tokenizer_t *tok = NULL;
    trainer_t tr = {.o = o, .c = o->model};
    gguf_file_t ck = {0};
    char err[512] = "", ckpath[1024];
    long step0 = 0;
    int rc;
    snprintf(ckpath, sizeof ckpath, "%s", o->ckpt ? o->ckpt : "");
    if (!o->ckpt) snprintf(ckpath, sizeof ckpath, "%s.ckpt", o->out);
    if ((rc = ord_menu_load(o->menu, &menu, err, sizeof err))) {
        fprintf(log, "train: %s\n", err);
        return rc;
    }
    if (o->threads < 1 || o->threads > MAX_THREADS || o->batch < 1 || tr.c.ctx > 512 ||
        tr.c.ctx < 8 || tr.c.n_head < 1 || tr.c.dim % tr.c.n_head || (tr.c.dim / tr.c.n_head) % 2) {
        fprintf(log,
                "train: invalid options (threads 1..%d, ctx 8..512, dim a multiple of 2*heads)\n",
                MAX_THREADS);
        ord_menu_free(&menu);
        return -EINVAL;
    }
    if (o->resume) {
        if ((rc = load_ckpt(ckpath, &ck, &tr.c, &voc, &step0, err, sizeof err))) {
            fprintf(log, "train: resume: %s\n", err[0] ? err : strerror(-rc));
            goto out;
        }
        fprintf(log, "resuming from %s at step %ld\n", ckpath, step0);
    } else {
        /* the vocabulary: learned from prompts and answers of generated training pairs */
        ord_gen_t g;
        buf_t in, ob, pr;
        size_t nt = 2 * VOCAB_EXAMPLES;
        char **texts = calloc(nt, sizeof *texts);
        buf_init(&in), buf_init(&ob), buf_init(&pr);
        ord_gen_init(&g, &menu, o->seed ^ 0xA5A5A5ull, 0);
        rc = texts ? 0 : -ENOMEM;
        for (size_t i = 0; i < VOCAB_EXAMPLES && !rc; i++) {
            if ((rc = ord_gen_next(&g, &in, &ob, NULL, NULL)) < 0) break;
            chat_msg_t msg = {"user", in.data};
            buf_reset(&pr);
            rc = chat_apply(CHAT_TMPL_MISTRAL, &msg, 1, 1, &pr);
            if (!rc && (!(texts[2 * i] = strdup(pr.data)) || !(texts[2 * i + 1] = strdup(ob.data))))
                rc = -ENOMEM;
        }
        if (!rc) rc = vocab_learn((const char *const *)texts, nt, o->vocab_size, &voc);
        for (size_t i = 0; texts && i < nt; i++) free(texts[i]);
        free(texts);
        buf_free(&in), buf_free(&ob), buf_free(&pr);
        if (rc) {
            fprintf(log, "train: vocabulary: %s\n", strerror(-rc));
            goto out;
        }
        tr.c.vocab = voc.n;
    }
    if ((rc = vocab_tokenizer(&voc, &tok))) {
        fprintf(log, "train: tokenizer: %s\n", strerror(-rc));
        goto out;
    }
    tr.np = tm_param_count(&tr.c);
    tr.w = calloc(tr.np, 4), tr.m = calloc(tr.np, 4), tr.v = calloc(tr.np, 4);
    tr.batch = calloc((size_t)o->batch, sizeof *tr.batch);
    rc = tr.w && tr.m && tr.v && tr.batch ? 0 : -ENOMEM;
    for (int b = 0; b < o->batch && !rc; b++) {
        tr.batch[b].tok = calloc((size_t)tr.c.ctx, 4),
        tr.batch[b].tgt = calloc((size_t)tr.c.ctx, 4);
        if (!tr.batch[b].tok || !tr.batch[b].tgt) rc = -ENOMEM;
    }
    tr.nw = o->threads;
    for (int i = 0; i < tr.nw && !rc; i++) {
        worker_t *w = &tr.wk[i];
        w->tr = &tr, w->id = i;
        if (!(w->grad = calloc(tr.np, 4)) || tm_acts_new(&tr.c, &w->acts))
            rc = -ENOMEM;
        else
            tm_params_bind(&tr.c, w->grad, &w->g);
    }
    if (rc) goto out;
    tm_params_bind(&tr.c, tr.w, &tr.p);
    if (o->resume) {
        const char *names[] = {"train.params", "train.adam_m", "train.adam_v"};
        float *dst[] = {tr.w, tr.m, tr.v};
        for (int i = 0; i < 3; i++) {
            const gguf_tensor_t *t = gguf_find_tensor(&ck, names[i]);
            if (!t || t->type != GGML_TYPE_F32 || t->size != tr.np * 4) {
                fprintf(log, "train: resume: %s missing or of the wrong size\n", names[i]);
                rc = -EINVAL;
                goto out;
            }
            memcpy(dst[i], t->data, tr.np * 4);
        }
    } else {
        tm_params_init(&tr.c, tr.w, o->seed);
    }
    fprintf(log,
            "model: llama dim %d, %d layers, %d heads, ff %d, ctx %d, vocab %d: %.2fM parameters\n",
            tr.c.dim, tr.c.n_layer, tr.c.n_head, tr.c.ff, tr.c.ctx, tr.c.vocab, tr.np / 1e6);
    fprintf(log, "training: %d steps of %d orders, lr %g -> %g (warmup %d), %d threads\n", o->steps,
            o->batch, o->lr, o->min_lr, o->warmup, tr.nw);
    double t0 = ev_clock_s(), tlast = t0, lsum = 0;
    long tok_since = 0, tgt_since = 0, steps_since = 0;
    long end = o->stop_at > 0 && o->stop_at < o->steps ? o->stop_at : o->steps;
    for (long step = step0; step < end; step++) {
        long n_tok, n_tgt;
        if ((rc = make_batch(&tr, &menu, tok, step, &n_tok, &n_tgt))) {
            fprintf(log, "train: data: %s\n", strerror(-rc));
            goto out;
        }
        tr.lscale = 1.0f / (float)n_tgt;
        pthread_t th[MAX_THREADS];
        for (int i = 1; i < tr.nw; i++)
            if (pthread_create(&th[i], NULL, work, &tr.wk[i]) != 0) {
                rc = -EAGAIN;
                goto out;
            }
        work(&tr.wk[0]);
        double loss = tr.wk[0].loss;
        for (int i = 1; i < tr.nw; i++) {
            pthread_join(th[i], NULL);
            loss += tr.wk[i].loss;
            float *g0 = tr.wk[0].grad, *gi = tr.wk[i].grad;
            for (size_t j = 0; j < tr.np; j++) g0[j] += gi[j];
        }
        float lr = lr_at(o, step), gn = adamw(&tr, tr.wk[0].grad, step, lr);
        lsum += loss / (double)n_tgt;
        tok_since += n_tok, tgt_since += n_tgt, steps_since++;
        int last = step + 1 == end;
        if ((step + 1) % o->log_every == 0 || last) {
            double t = ev_clock_s(), tps = tok_since / (t - tlast);
            double eta = (o->steps - step - 1) * (t - tlast) / steps_since;
            fprintf(log,
                    "step %5ld/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | elapsed "
                    "%.0fs | ETA %.0fm%02.0fs\n",
                    step + 1, o->steps, lsum / steps_since, lr, gn, tps, t - t0, floor(eta / 60),
                    fmod(eta, 60));
            fflush(log);
            tlast = t, lsum = 0, tok_since = tgt_since = steps_since = 0;
        }
        if ((o->ckpt_every > 0 && ((step + 1) % o->ckpt_every == 0 || last)) ||
            (last && end < o->steps)) {
            if ((rc = save_ckpt(&tr, &voc, ckpath, step + 1, err, sizeof err))) {
                fprintf(log, "train: checkpoint %s: %s\n", ckpath, err[0] ? err : strerror(-rc));
                goto out;
            }
        }
    }
    if (end < o->steps) { /* stopped early on purpose: the checkpoint is the result */
        fprintf(log, "stopped at step %ld of %d; continue with --resume\n", end, o->steps);
        goto out;
    }
    if ((rc = write_model(&tr, &voc, o->out, err, sizeof err))) {
        fprintf(log, "train: write %s: %s\n", o->out, err[0] ? err : strerror(-rc));
        goto out;
    }
    fprintf(log, "wrote %s (%.1fs of training)\n", o->out, ev_clock_s() - t0);
out:
    for (int i = 0; i < tr.nw; i++) free(tr.wk[i].grad), tm_acts_free(&tr.wk[i].acts);
    for (int b = 0; tr.batch && b < o->batch; b++) free(tr.batch[b].tok), free(tr.batch[b].tgt);
    free(tr.batch), free(tr.w), free(tr.m), free(tr.v);
    if (ck.base) gguf_close(&ck);
    tok_free(tok);
    vocab_free(&voc);
    ord_menu_free(&menu);
    return rc;
}
