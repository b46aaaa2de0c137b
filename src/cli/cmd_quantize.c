/* cmd_quantize.c — `tollgate quantize`: rewrite a GGUF model with its weights in another type. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_num.h"
#include "engine/quant.h"
#include "model/gguf.h"

/* llama_ftype values written to general.file_type (numbered as in the reference). */
enum {
    FTYPE_F16 = 1,
    FTYPE_Q4_0 = 2,
    FTYPE_Q8_0 = 7,
    FTYPE_Q4_K_S = 14,
    FTYPE_Q4_K_M = 15,
    FTYPE_Q5_K_S = 16,
    FTYPE_Q5_K_M = 17,
    FTYPE_Q6_K = 18,
};

/* The GGML_QNT_VERSION of the block layouts this project writes. */
#define QUANT_FORMAT_VERSION 2

typedef struct qspec {
    const char *name;
    int base;       /* type of the ordinary 2-D weights */
    int mix_m;      /* the _M mix: more bits for attn_v / ffn_down / attn_qkv */
    uint32_t ftype; /* general.file_type */
} qspec_t;

static const qspec_t qspecs[] = {
    {"F16", GGML_TYPE_F16, 0, FTYPE_F16},
    {"Q8_0", GGML_TYPE_Q8_0, 0, FTYPE_Q8_0},
    {"Q4_0", GGML_TYPE_Q4_0, 0, FTYPE_Q4_0},
    /* plain K types: no file_type of their own in the reference; the _S mixes are the
     * closest ("mostly Q4_K") */
    {"Q4_K", GGML_TYPE_Q4_K, 0, FTYPE_Q4_K_S},
    {"Q5_K", GGML_TYPE_Q5_K, 0, FTYPE_Q5_K_S},
    {"Q6_K", GGML_TYPE_Q6_K, 0, FTYPE_Q6_K},
    {"Q4_K_M", GGML_TYPE_Q4_K, 1, FTYPE_Q4_K_M},
    {"Q5_K_M", GGML_TYPE_Q5_K, 1, FTYPE_Q5_K_M},
};

typedef struct qopts {
    const char *in, *out;
    const qspec_t *spec;
    int pure;              /* no per-tensor rules: every quantizable weight in spec->base */
    int allow_requantize;  /* accept already-quantized sources (quality loss) */
    int threads;
    int quiet;
} qopts_t;

static void usage(FILE *out) {
    fprintf(out,
            "usage: tollgate quantize [options] IN.gguf OUT.gguf TYPE\n"
            "\n"
            "Rewrite the model IN.gguf with its weight matrices in TYPE, copying all\n"
            "metadata and setting general.file_type. Norms, biases and other 1-D tensors\n"
            "stay as they are (normally F32).\n"
            "\n"
            "TYPE (bits per weight):\n"
            "  F16      16    half precision\n"
            "  Q8_0     8.5   8-bit, one f16 scale per 32\n"
            "  Q4_0     4.5   4-bit, one f16 scale per 32\n"
            "  Q4_K     4.5   4-bit super-blocks of 256 with 6-bit scales and mins\n"
            "  Q5_K     5.5   5-bit super-blocks\n"
            "  Q6_K     6.56  6-bit super-blocks with 8-bit scales\n"
            "  Q4_K_M   ~4.9  Q4_K, with the mix below\n"
            "  Q5_K_M   ~5.7  Q5_K, with the mix below\n"
            "\n"
            "Per-tensor rules (as the reference quantizer applies them):\n"
            "  - output.weight (or token_embd.weight when the output is tied to it) is\n"
            "    Q6_K for every quantized TYPE except Q8_0, which keeps Q8_0.\n"
            "  - _M mixes: attn_v.weight and ffn_down.weight are Q6_K in the first and last\n"
            "    eighth of the layers and every third layer in between; a fused\n"
            "    attn_qkv.weight is Q5_K (Q4_K_M) or Q6_K (Q5_K_M).\n"
            "  - a matrix whose rows are not a whole number of blocks of its type falls\n"
            "    back to Q8_0 (rows a multiple of 32) or F16.\n"
            "\n"
            "Sources may be F32, F16 or BF16. Already-quantized sources (Q8_0, Q4_0, Q4_K,\n"
            "Q5_K, Q6_K) need --allow-requantize: quantizing twice loses more than once.\n"
            "\n"
            "options:\n"
            "  --pure               no per-tensor rules: every weight matrix in TYPE\n"
            "  --allow-requantize   accept already-quantized source tensors\n"
            "  -t, --threads N      worker threads (default: the online CPUs)\n"
            "  -q, --quiet          no per-tensor lines, only errors\n"
            "  -h, --help           this text\n"
            "\n"
            "The output is written to OUT.gguf.tmp and renamed into place when complete.\n"
            "Exit status: 0 done, 1 failure (unreadable input, unsupported tensor, write\n"
            "error), 2 usage error.\n"
            "\n"
            "example: tollgate quantize model-F16.gguf model-Q4_K_M.gguf Q4_K_M\n");
}

/* ---- which type each tensor gets ------------------------------------------------ */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Matrices are quantized; vectors (norms, biases), MoE routers and learned
 * position embeddings stay in their source type, as the reference does. */
static int is_quantizable(const gguf_tensor_t *t, const char *name) {
    return t->n_dims >= 2 && ends_with(name, "weight") && !strstr(name, "_norm.weight") &&
           !strstr(name, "ffn_gate_inp.weight") && !strstr(name, "pos_embd") &&
           !strstr(name, "token_types");
}

/* Layer index from "blk.N.*", or -1. */
static int layer_of(const char *name) {
    int i = -1, n = 0;
    if (sscanf(name, "blk.%d.%n", &i, &n) == 1 && n > 0)
        return i;
    return -1;
}

/* The reference's "use more bits" layers: the first and last eighth, and every third
 * layer in between. */
static int use_more_bits(int layer, int n_layers) {
    return layer < n_layers / 8 || layer >= 7 * n_layers / 8 ||
           (layer - n_layers / 8) % 3 == 2;
}

typedef struct model_counts {
    int has_output;   /* an output.weight exists (else token_embd is the output) */
    int n_attn_v;     /* attn_v + attn_qkv matrices, as the reference counts them */
    int n_ffn_down;
} model_counts_t;

/* Target type of one tensor; the source's own type when it is not quantized. */
static int choose_type(const qopts_t *o, const model_counts_t *mc, const gguf_tensor_t *t,
                       const char *name) {
    if (!is_quantizable(t, name))
        return (int)t->type;
    int type = o->spec->base;
    if (!o->pure && type != GGML_TYPE_F16) {
        if (!strcmp(name, "output.weight") ||
            (!mc->has_output && !strcmp(name, "token_embd.weight"))) {
            if (type != GGML_TYPE_Q8_0)
                type = GGML_TYPE_Q6_K;
        } else if (o->spec->mix_m) {
            int layer = layer_of(name);
            if (strstr(name, "attn_v.weight") && layer >= 0 &&
                use_more_bits(layer, mc->n_attn_v))
                type = GGML_TYPE_Q6_K;
            else if (strstr(name, "ffn_down") && layer >= 0 &&
                     use_more_bits(layer, mc->n_ffn_down))
                type = GGML_TYPE_Q6_K;
            else if (strstr(name, "attn_qkv.weight"))
                type = o->spec->base == GGML_TYPE_Q4_K ? GGML_TYPE_Q5_K : GGML_TYPE_Q6_K;
        }
    }
    /* rows must be whole blocks; the reference falls back to Q5_0/Q5_1/Q8_0, of which
     * this engine has Q8_0 */
    if (t->ne[0] % ggml_type_block_elems(type)) {
        type = t->ne[0] % 32 == 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
        if (!o->quiet)
            fprintf(stderr, "quantize: %s: row length %lld is not a multiple of the block; using %s\n",
                    name, (long long)t->ne[0], ggml_type_name(type));
    }
    return type;
}

/* ---- conversion ----------------------------------------------------------------- */

/* Can rows of this source type be read as floats? */
static int source_readable(int type, int allow_requantize, int *is_quantized) {
    *is_quantized = 0;
    if (type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16)
        return 1;
    if (quant_supported(type) && type != GGML_TYPE_Q8_K) {
        *is_quantized = 1;
        return allow_requantize;
    }
    return 0;
}

static void source_row_to_f32(int type, const uint8_t *src, float *dst, int64_t n) {
    if (type == GGML_TYPE_BF16) {
        /* bfloat16 is the top half of a float32 */
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(src[2 * i] | (src[2 * i + 1] << 8)) << 16;
            memcpy(&dst[i], &bits, sizeof bits);
        }
    } else {
        quant_dequantize_row(type, src, dst, n);
    }
}

/* One tensor's rows, split among threads by contiguous row ranges. */
typedef struct qjob {
    const uint8_t *src;
    int src_type, dst_type;
    int64_t ne0, rows;
    size_t src_row, dst_row;
    uint8_t *dst;
    int n_threads;
} qjob_t;

typedef struct qworker {
    const qjob_t *job;
    int index;
    int rc;
} qworker_t;

static void *quantize_rows(void *arg) {
    qworker_t *w = arg;
    const qjob_t *j = w->job;
    int64_t per = (j->rows + j->n_threads - 1) / j->n_threads;
    int64_t r0 = per * w->index, r1 = r0 + per < j->rows ? r0 + per : j->rows;
    float *row = malloc((size_t)j->ne0 * sizeof *row);
    w->rc = row ? 0 : -ENOMEM;
    for (int64_t r = r0; r < r1 && !w->rc; r++) {
        source_row_to_f32(j->src_type, j->src + (size_t)r * j->src_row, row, j->ne0);
        if (quant_quantize_row(j->dst_type, row, j->dst + (size_t)r * j->dst_row, j->ne0))
            w->rc = -EINVAL;
    }
    free(row);
    return NULL;
}

static int run_job(qjob_t *j) {
    enum { MAX_THREADS = 256 };
    qworker_t w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int n = j->n_threads;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    if (j->rows < n)
        n = (int)(j->rows > 0 ? j->rows : 1);
    j->n_threads = n;
    int started = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (qworker_t){j, i, 0};
        if (i == n - 1 || pthread_create(&tid[i], NULL, quantize_rows, &w[i])) {
            /* the last share runs here (or any share whose thread could not start) */
            quantize_rows(&w[i]);
            continue;
        }
        tid[started] = tid[i];
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < n; i++)
        if (w[i].rc)
            rc = w[i].rc;
    return rc;
}

/* ---- the command ---------------------------------------------------------------- */

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static int parse_args(int argc, char **argv, qopts_t *o) {
    const char *pos[3];
    int npos = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = ncpu > 0 ? (int)ncpu : 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--pure")) {
            o->pure = 1;
        } else if (!strcmp(a, "--allow-requantize")) {
            o->allow_requantize = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc || cli_parse_int(argv[i + 1], 1, 256, &o->threads)) {
                fprintf(stderr, "quantize: %s needs a thread count from 1 to 256\n", a);
                return -1;
            }
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "quantize: unknown option '%s'; see 'tollgate quantize --help'\n", a);
            return -1;
        } else if (npos < 3) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "quantize: too many arguments ('%s'); usage: tollgate quantize IN.gguf OUT.gguf TYPE\n", a);
            return -1;
        }
    }
    if (npos != 3) {
        fprintf(stderr, "quantize: need IN.gguf OUT.gguf TYPE; see 'tollgate quantize --help'\n");
        return -1;
    }
    o->in = pos[0];
    o->out = pos[1];
    for (size_t k = 0; k < sizeof qspecs / sizeof qspecs[0]; k++)
        if (!strcasecmp(pos[2], qspecs[k].name))
            o->spec = &qspecs[k];
    if (!o->spec) {
        fprintf(stderr, "quantize: unknown type '%s'; one of:", pos[2]);
        for (size_t k = 0; k < sizeof qspecs / sizeof qspecs[0]; k++)
            fprintf(stderr, " %s", qspecs[k].name);
        fputc('\n', stderr);
        return -1;
    }
    return 0;
}

/* Every tensor's target type, and a check that its source can be read; 0 or -1
 * after printing what is wrong. */
static int plan(const qopts_t *o, const gguf_file_t *f, int *types) {
    model_counts_t mc = {0};
    char name[256];
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_str_copy(f->tensors[i].name, name, sizeof name);
        mc.has_output |= !strcmp(name, "output.weight");
        mc.n_attn_v += strstr(name, "attn_v.weight") || strstr(name, "attn_qkv.weight");
        mc.n_ffn_down += strstr(name, "ffn_down") != NULL;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor_t *t = &f->tensors[i];
        gguf_str_copy(t->name, name, sizeof name);
        types[i] = choose_type(o, &mc, t, name);
        if (types[i] == (int)t->type)
            continue; /* copied verbatim, whatever its type */
        int quantized;
        if (!source_readable((int)t->type, o->allow_requantize, &quantized)) {
            if (quantized)
                fprintf(stderr,
                        "quantize: %s: tensor %s is already %s; quantizing it again to %s loses "
                        "quality. Start from an F16/F32 model, or pass --allow-requantize\n",
                        o->in, name, ggml_type_name((int)t->type), ggml_type_name(types[i]));
            else
                fprintf(stderr,
                        "quantize: %s: tensor %s has type %s (%u), which this tool cannot read; "
                        "sources must be F32, F16 or BF16\n",
                        o->in, name, ggml_type_name((int)t->type), t->type);
            return -1;
        }
    }
    return 0;
}

static int copy_metadata(gguf_writer_t *w, const gguf_file_t *f, const qopts_t *o) {
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv_t *kv = &f->kv[i];
        if (gguf_str_eq(kv->key, "general.file_type") ||
            gguf_str_eq(kv->key, "general.quantization_version"))
            continue; /* rewritten below */
        if (gguf_w_copy_kv(w, kv))
            return -1;
    }
    if (gguf_w_u32(w, "general.quantization_version", QUANT_FORMAT_VERSION) ||
        gguf_w_u32(w, "general.file_type", o->spec->ftype))
        return -1;
    return 0;
}

static int quantize_file(const qopts_t *o) {
    char err[512];
    gguf_file_t f;
    if (gguf_open(o->in, &f, err, sizeof err)) {
        fprintf(stderr, "quantize: cannot read %s: %s\n", o->in, err);
        return 1;
    }
    int rc = 1;
    int *types = calloc(f.n_tensors ? f.n_tensors : 1, sizeof *types);
    gguf_writer_t *w = gguf_writer_new();
    char *tmp = malloc(strlen(o->out) + 5);
    if (!types || !w || !tmp) {
        fprintf(stderr, "quantize: out of memory\n");
        goto done;
    }
    sprintf(tmp, "%s.tmp", o->out);
    if (plan(o, &f, types))
        goto done;
    if (copy_metadata(w, &f, o)) {
        fprintf(stderr, "quantize: %s: cannot copy the metadata\n", o->in);
        goto done;
    }
    size_t bytes_in = 0, bytes_out = 0;
    int64_t weights = 0;
    char name[256];
    for (uint64_t i = 0; i < f.n_tensors; i++) {
        const gguf_tensor_t *t = &f.tensors[i];
        gguf_str_copy(t->name, name, sizeof name);
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        size_t size = ggml_row_bytes(types[i], t->ne[0]) * (size_t)(n / t->ne[0]);
        uint8_t *buf = NULL;
        const void *data = t->data;
        if (types[i] != (int)t->type) {
            buf = malloc(size ? size : 1);
            if (!buf) {
                fprintf(stderr, "quantize: out of memory for %s (%zu bytes)\n", name, size);
                goto done;
            }
            qjob_t job = {(const uint8_t *)t->data, (int)t->type, types[i], t->ne[0],
                          n / t->ne[0], ggml_row_bytes((int)t->type, t->ne[0]),
                          ggml_row_bytes(types[i], t->ne[0]), buf, o->threads};
            if (run_job(&job)) {
                fprintf(stderr, "quantize: %s: quantizing to %s failed\n", name,
                        ggml_type_name(types[i]));
                free(buf);
                goto done;
            }
            data = buf;
        }
        int wr = gguf_w_tensor(w, name, types[i], t->n_dims, t->ne, data, size);
        free(buf);
        if (wr) {
            fprintf(stderr, "quantize: %s: cannot add tensor to the output (%s)\n", name,
                    strerror(-wr));
            goto done;
        }
        if (!o->quiet)
            printf("[%3llu/%3llu] %-32s %-5s -> %-5s %lld x %lld\n",
                   (unsigned long long)i + 1, (unsigned long long)f.n_tensors, name,
                   ggml_type_name((int)t->type), ggml_type_name(types[i]), (long long)t->ne[0],
                   (long long)(n / t->ne[0]));
        bytes_in += t->size;
        bytes_out += size;
        weights += n;
    }
    if (gguf_w_write(w, tmp, err, sizeof err)) {
        fprintf(stderr, "quantize: cannot write %s: %s\n", tmp, err);
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, o->out)) {
        fprintf(stderr, "quantize: cannot rename %s to %s: %s\n", tmp, o->out, strerror(errno));
        unlink(tmp);
        goto done;
    }
    if (!o->quiet)
        printf("wrote %s (%s): %llu tensors, %.1f MiB -> %.1f MiB, %.2f bits per weight\n",
               o->out, o->spec->name, (unsigned long long)f.n_tensors, bytes_in / 1048576.0,
               bytes_out / 1048576.0, weights ? 8.0 * (double)bytes_out / (double)weights : 0.0);
    rc = 0;
done:
    free(tmp);
    free(types);
    gguf_writer_free(w);
    gguf_close(&f);
    return rc;
}

int cmd_quantize(int argc, char **argv) {
    qopts_t o = {0};
    int a = parse_args(argc, argv, &o);
    if (a)
        return a > 0 ? 0 : 2;
    if (same_file(o.in, o.out)) {
        fprintf(stderr, "quantize: OUT is the same file as IN (%s); write to another path\n",
                o.in);
        return 2;
    }
    return quantize_file(&o);
}
