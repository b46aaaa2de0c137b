/* test_quantize.c — `tollgate quantize`: type mixes against the reference file, metadata, errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cli/cli.h"
#include "engine/quant.h"
#include "model/gguf.h"

static char tmpdir[256];

static const char *ref_file(const char *name, char *buf, size_t cap) {
    const char *root = getenv("TOLLGATE_REF");
    snprintf(buf, cap, "%s/models/%s", root && *root ? root : "../shared/ref", name);
    return buf;
}

static const char *tmp_file(const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
    return buf;
}

/* Run the subcommand with stdout silenced by -q (errors still reach stderr). */
static int run(int argc, const char **argv) {
    char *copy[16];
    for (int i = 0; i < argc; i++)
        copy[i] = (char *)argv[i];
    copy[argc] = NULL;
    return cmd_quantize(argc, copy);
}

static double rel_rmse(const float *a, const float *b, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)a[i] * a[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

static float *tensor_floats(const gguf_tensor_t *t, int64_t *n_out) {
    int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *x = malloc((size_t)n * sizeof *x);
    quant_dequantize_row((int)t->type, t->data, x, n);
    *n_out = n;
    return x;
}

/* The F16 reference model quantized to Q4_K_M by this tool has exactly the tensor
 * names, order, shapes and types of the reference quantizer's Q4_K_M file, values
 * within 4-bit error of it, and the same metadata with file_type 15. */
static void test_q4_k_m_matches_reference(void) {
    char in[1024], out[1024], refp[1024], err[256], name[128];
    const char *argv[] = {"quantize", "-q", ref_file("llama-tiny-F16.gguf", in, sizeof in),
                          tmp_file("q4km.gguf", out, sizeof out), "Q4_K_M"};
    CHECK_EQ_INT(run(5, argv), 0);
    gguf_file_t ours, ref;
    if (gguf_open(out, &ours, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    if (gguf_open(ref_file("llama-tiny-Q4_K_M.gguf", refp, sizeof refp), &ref, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        gguf_close(&ours);
        return;
    }
    CHECK_EQ_INT(ours.n_tensors, ref.n_tensors);
    int mismatched = 0;
    for (uint64_t i = 0; i < ref.n_tensors && i < ours.n_tensors; i++) {
        const gguf_tensor_t *a = &ours.tensors[i], *b = &ref.tensors[i];
        gguf_str_copy(b->name, name, sizeof name);
        CHECK_MSG(gguf_str_eq(a->name, name), "tensor %llu: name differs from %s",
                  (unsigned long long)i, name);
        CHECK_MSG(a->type == b->type, "%s: ours %s, reference %s", name,
                  ggml_type_name((int)a->type), ggml_type_name((int)b->type));
        mismatched += a->type != b->type;
        CHECK_EQ_INT(a->n_dims, b->n_dims);
        CHECK(memcmp(a->ne, b->ne, sizeof a->ne) == 0);
        CHECK_EQ_INT(a->size, b->size);
        if (a->type != b->type || a->size != b->size)
            continue;
        int64_t n, m;
        float *x = tensor_floats(a, &n), *y = tensor_floats(b, &m);
        double e = rel_rmse(y, x, n);
        /* two independent 4-bit roundings of (nearly) the same weights: about sqrt(2)
         * times one's error (0.072 for Q4_K, 0.018 for Q6_K); F32 norms identical */
        double bound = a->type == GGML_TYPE_Q4_K ? 0.11 : a->type == GGML_TYPE_Q6_K ? 0.028 : 0;
        CHECK_MSG(e <= bound, "%s (%s): relative RMSE %g vs the reference", name,
                  ggml_type_name((int)a->type), e);
        free(x);
        free(y);
    }
    CHECK_EQ_INT(mismatched, 0);

    /* metadata: every key of the reference, same type and bytes (file_type 15 and
     * quantization_version 2 included) */
    CHECK_EQ_INT(ours.n_kv, ref.n_kv);
    for (uint64_t i = 0; i < ref.n_kv; i++) {
        char key[128];
        gguf_str_copy(ref.kv[i].key, key, sizeof key);
        const gguf_kv_t *kv = gguf_find(&ours, key);
        CHECK_MSG(kv != NULL, "key %s missing", key);
        if (!kv)
            continue;
        CHECK_MSG(kv->type == ref.kv[i].type, "key %s type", key);
        if (kv->type != GGUF_ARRAY && kv->type != GGUF_STRING)
            CHECK_MSG(kv->num.u == ref.kv[i].num.u, "key %s value", key);
        if (kv->type == GGUF_STRING)
            CHECK_MSG(kv->str.len == ref.kv[i].str.len &&
                          !memcmp(kv->str.ptr, ref.kv[i].str.ptr, kv->str.len),
                      "key %s value", key);
        if (kv->type == GGUF_ARRAY)
            CHECK_MSG(kv->arr_type == ref.kv[i].arr_type && kv->arr_count == ref.kv[i].arr_count,
                      "key %s array", key);
    }
    uint32_t ft = 0, qv = 0;
    CHECK_EQ_INT(gguf_get_u32(&ours, "general.file_type", &ft), 0);
    CHECK_EQ_INT(ft, 15);
    CHECK_EQ_INT(gguf_get_u32(&ours, "general.quantization_version", &qv), 0);
    CHECK_EQ_INT(qv, 2);
    gguf_close(&ours);
    gguf_close(&ref);
}

/* The other types against the reference files that exist (Q8_0; Q4_0 with its
 * output in Q6_K; Q6_K), by tensor name, type and file_type. */
static void test_other_types(void) {
    static const struct {
        const char *type, *ref;
        uint32_t ftype;
    } cases[] = {
        {"Q8_0", "llama-tiny-Q8_0.gguf", 7},
        {"Q4_0", "llama-tiny-Q4_0.gguf", 2},
        {"Q6_K", "llama-tiny-Q6_K.gguf", 18},
    };
    char in[1024], out[1024], refp[1024], err[256];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *argv[] = {"quantize", "--quiet", ref_file("llama-tiny-F16.gguf", in, sizeof in),
                              tmp_file("other.gguf", out, sizeof out), cases[c].type};
        CHECK_EQ_INT(run(5, argv), 0);
        gguf_file_t ours, ref;
        if (gguf_open(out, &ours, err, sizeof err) ||
            gguf_open(ref_file(cases[c].ref, refp, sizeof refp), &ref, err, sizeof err)) {
            CHECK_MSG(0, "%s: %s", cases[c].type, err);
            continue;
        }
        int bad = 0;
        for (uint64_t i = 0; i < ref.n_tensors && i < ours.n_tensors; i++)
            bad += ours.tensors[i].type != ref.tensors[i].type ||
                   ours.tensors[i].name.len != ref.tensors[i].name.len ||
                   memcmp(ours.tensors[i].name.ptr, ref.tensors[i].name.ptr,
                          ref.tensors[i].name.len) != 0;
        CHECK_MSG(bad == 0 && ours.n_tensors == ref.n_tensors, "%s: %d tensor types differ",
                  cases[c].type, bad);
        uint32_t ft = 0;
        gguf_get_u32(&ours, "general.file_type", &ft);
        CHECK_EQ_INT(ft, cases[c].ftype);
        gguf_close(&ours);
        gguf_close(&ref);
    }
}

/* A synthetic 8-layer model with a tied output (no output.weight), attn_v or (fused)
 * attn_qkv: the _M rule's layers are 0, 3, 6, 7 (first eighth, last eighth, every
 * third in between). */
static int write_synthetic(const char *path, int src_type, int fused, int with_odd_row) {
    gguf_writer_t *w = gguf_writer_new();
    enum { NE0 = 256, NE1 = 4 };
    float f32[NE0 * NE1];
    uint16_t f16[NE0 * NE1];
    for (int i = 0; i < NE0 * NE1; i++) {
        f32[i] = (float)((i * 7919) % 1000 - 500) / 1000.0f;
        f16[i] = quant_f32_to_f16(f32[i]);
    }
    const void *data = src_type == GGML_TYPE_F32 ? (const void *)f32 : (const void *)f16;
    size_t size = src_type == GGML_TYPE_F32 ? sizeof f32 : sizeof f16;
    int64_t ne[4] = {NE0, NE1, 1, 1}, ne_norm[4] = {NE0, 1, 1, 1};
    int rc = gguf_w_str(w, "general.architecture", "llama");
    rc |= gguf_w_u32(w, "llama.block_count", 8);
    rc |= gguf_w_tensor(w, "token_embd.weight", src_type, 2, ne, data, size);
    rc |= gguf_w_tensor(w, "output_norm.weight", GGML_TYPE_F32, 1, ne_norm, f32, NE0 * 4);
    char name[64];
    for (int l = 0; l < 8; l++) {
        snprintf(name, sizeof name, fused ? "blk.%d.attn_qkv.weight" : "blk.%d.attn_v.weight", l);
        rc |= gguf_w_tensor(w, name, src_type, 2, ne, data, size);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        rc |= gguf_w_tensor(w, name, src_type, 2, ne, data, size);
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        rc |= gguf_w_tensor(w, name, GGML_TYPE_F32, 1, ne_norm, f32, NE0 * 4);
    }
    if (with_odd_row) { /* rows of 96: not whole 256-blocks, whole 32-blocks */
        int64_t ne_odd[4] = {96, 4, 1, 1};
        rc |= gguf_w_tensor(w, "blk.0.ffn_up.weight", src_type, 2, ne_odd, data,
                            (size_t)96 * 4 * (src_type == GGML_TYPE_F32 ? 4 : 2));
    }
    char err[256];
    rc |= gguf_w_write(w, path, err, sizeof err);
    gguf_writer_free(w);
    return rc;
}

static int type_of(const gguf_file_t *f, const char *name) {
    const gguf_tensor_t *t = gguf_find_tensor(f, name);
    return t ? (int)t->type : -1;
}

static void test_mix_rules(void) {
    char in[1024], out[1024], err[256], name[64];
    char fused[1024];
    CHECK_EQ_INT(write_synthetic(tmp_file("syn.gguf", in, sizeof in), GGML_TYPE_F32, 0, 1), 0);
    CHECK_EQ_INT(write_synthetic(tmp_file("syn-qkv.gguf", fused, sizeof fused), GGML_TYPE_F16, 1, 0), 0);
    static const struct {
        const char *type;
        int base, more, qkv;
    } cases[] = {
        {"Q4_K_M", GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, GGML_TYPE_Q5_K},
        {"Q5_K_M", GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q6_K},
    };
    for (size_t c = 0; c < 2; c++) {
        const char *argv[] = {"quantize", "-q", in, tmp_file("syn-out.gguf", out, sizeof out),
                              cases[c].type};
        CHECK_EQ_INT(run(5, argv), 0);
        gguf_file_t f;
        if (gguf_open(out, &f, err, sizeof err)) {
            CHECK_MSG(0, "%s", err);
            continue;
        }
        /* tied output: token_embd is the output matrix, so Q6_K */
        CHECK_EQ_INT(type_of(&f, "token_embd.weight"), GGML_TYPE_Q6_K);
        CHECK_EQ_INT(type_of(&f, "output_norm.weight"), GGML_TYPE_F32);
        for (int l = 0; l < 8; l++) {
            int more = l == 0 || l == 3 || l == 6 || l == 7;
            snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
            CHECK_MSG(type_of(&f, name) == (more ? cases[c].more : cases[c].base), "%s %s",
                      cases[c].type, name);
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
            CHECK_MSG(type_of(&f, name) == (more ? cases[c].more : cases[c].base), "%s %s",
                      cases[c].type, name);
            snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
            CHECK_EQ_INT(type_of(&f, name), GGML_TYPE_F32);
        }
        /* rows of 96 cannot hold 256-blocks: Q8_0 instead */
        CHECK_EQ_INT(type_of(&f, "blk.0.ffn_up.weight"), GGML_TYPE_Q8_0);
        gguf_close(&f);

        /* fused qkv (phi3): one type for all layers; from an F16 source */
        const char *argq[] = {"quantize", "-q", fused, out, cases[c].type};
        CHECK_EQ_INT(run(5, argq), 0);
        if (gguf_open(out, &f, err, sizeof err)) {
            CHECK_MSG(0, "%s", err);
            continue;
        }
        for (int l = 0; l < 8; l++) {
            snprintf(name, sizeof name, "blk.%d.attn_qkv.weight", l);
            CHECK_EQ_INT(type_of(&f, name), cases[c].qkv);
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
            CHECK_EQ_INT(type_of(&f, name),
                         l == 0 || l == 3 || l == 6 || l == 7 ? cases[c].more : cases[c].base);
        }
        gguf_close(&f);
    }

    /* --pure: every matrix in the type (rows of 96 still fall back) */
    const char *argv[] = {"quantize", "-q", "--pure", in, out, "Q4_K"};
    CHECK_EQ_INT(run(6, argv), 0);
    gguf_file_t f;
    if (!gguf_open(out, &f, err, sizeof err)) {
        CHECK_EQ_INT(type_of(&f, "token_embd.weight"), GGML_TYPE_Q4_K);
        CHECK_EQ_INT(type_of(&f, "blk.7.attn_v.weight"), GGML_TYPE_Q4_K);
        CHECK_EQ_INT(type_of(&f, "blk.3.ffn_down.weight"), GGML_TYPE_Q4_K);
        CHECK_EQ_INT(type_of(&f, "blk.0.attn_norm.weight"), GGML_TYPE_F32);
        uint32_t ft = 0;
        gguf_get_u32(&f, "general.file_type", &ft);
        CHECK_EQ_INT(ft, 14);
        gguf_close(&f);
    } else {
        CHECK_MSG(0, "%s", err);
    }

    /* F16: matrices F16 (values rounded once), norms F32 */
    const char *argv16[] = {"quantize", "-q", in, out, "f16"}; /* type names ignore case */
    CHECK_EQ_INT(run(5, argv16), 0);
    if (!gguf_open(out, &f, err, sizeof err)) {
        CHECK_EQ_INT(type_of(&f, "token_embd.weight"), GGML_TYPE_F16);
        CHECK_EQ_INT(type_of(&f, "blk.3.ffn_down.weight"), GGML_TYPE_F16);
        CHECK_EQ_INT(type_of(&f, "blk.3.attn_norm.weight"), GGML_TYPE_F32);
        const gguf_tensor_t *t = gguf_find_tensor(&f, "token_embd.weight");
        CHECK(t && ((const uint16_t *)t->data)[1] == quant_f32_to_f16((float)(7919 % 1000 - 500) / 1000.0f));
        gguf_close(&f);
    } else {
        CHECK_MSG(0, "%s", err);
    }
}

static void test_errors(void) {
    char in[1024], out[1024], q[1024], bad[1024];
    ref_file("llama-tiny-F16.gguf", in, sizeof in);
    tmp_file("err.gguf", out, sizeof out);

    /* --help: exit 0, usage on stdout (silenced here; it is long) */
    const char *help[] = {"quantize", "--help"};
    fflush(stdout);
    int saved = dup(1);
    FILE *null = fopen("/dev/null", "w");
    dup2(fileno(null), 1);
    CHECK_EQ_INT(run(2, help), 0);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    fclose(null);
    const char *badtype[] = {"quantize", in, out, "Q3_K"};
    CHECK_EQ_INT(run(4, badtype), 2);
    CHECK(access(out, F_OK) != 0);
    const char *missing[] = {"quantize", in, out};
    CHECK_EQ_INT(run(3, missing), 2);
    const char *badopt[] = {"quantize", "--frobnicate", in, out, "Q8_0"};
    CHECK_EQ_INT(run(5, badopt), 2);
    const char *badthreads[] = {"quantize", "-t", "0", in, out, "Q8_0"};
    CHECK_EQ_INT(run(6, badthreads), 2);
    const char *same[] = {"quantize", in, in, "Q8_0"};
    CHECK_EQ_INT(run(4, same), 2);

    const char *noin[] = {"quantize", "-q", tmp_file("does-not-exist.gguf", bad, sizeof bad), out, "Q8_0"};
    CHECK_EQ_INT(run(5, noin), 1);
    CHECK(access(out, F_OK) != 0);
    /* not a GGUF file */
    FILE *fp = fopen(tmp_file("garbage.gguf", bad, sizeof bad), "wb");
    fputs("this is not a model\n", fp);
    fclose(fp);
    const char *garbage[] = {"quantize", "-q", bad, out, "Q8_0"};
    CHECK_EQ_INT(run(5, garbage), 1);

    /* requantizing needs the flag */
    const char *fromq[] = {"quantize", "-q", ref_file("llama-tiny-Q8_0.gguf", q, sizeof q), out, "Q4_K_M"};
    CHECK_EQ_INT(run(5, fromq), 1);
    CHECK(access(out, F_OK) != 0);
    const char *fromq_ok[] = {"quantize", "-q", "--allow-requantize", q, out, "Q4_K_M"};
    CHECK_EQ_INT(run(6, fromq_ok), 0);
    CHECK(access(out, F_OK) == 0);
    unlink(out);

    /* a source type the tool cannot read (Q4_1) */
    gguf_writer_t *w = gguf_writer_new();
    uint8_t blocks[20 * 8 * 2] = {0};
    int64_t ne[4] = {256, 2, 1, 1};
    gguf_w_str(w, "general.architecture", "llama");
    CHECK_EQ_INT(gguf_w_tensor(w, "blk.0.attn_q.weight", GGML_TYPE_Q4_1, 2, ne, blocks, sizeof blocks), 0);
    char err[256];
    CHECK_EQ_INT(gguf_w_write(w, tmp_file("q41.gguf", bad, sizeof bad), err, sizeof err), 0);
    gguf_writer_free(w);
    const char *q41[] = {"quantize", "-q", "--allow-requantize", bad, out, "Q8_0"};
    CHECK_EQ_INT(run(6, q41), 1);
    CHECK(access(out, F_OK) != 0);
    CHECK(access(tmp_file("err.gguf.tmp", bad, sizeof bad), F_OK) != 0);

    /* thread count does not change the result */
    char o1[1024], o2[1024];
    const char *t1[] = {"quantize", "-q", "-t", "1", in, tmp_file("t1.gguf", o1, sizeof o1), "Q5_K_M"};
    const char *t3[] = {"quantize", "-q", "--threads", "3", in, tmp_file("t3.gguf", o2, sizeof o2), "Q5_K_M"};
    CHECK_EQ_INT(run(7, t1), 0);
    CHECK_EQ_INT(run(7, t3), 0);
    gguf_file_t a, b;
    if (!gguf_open(o1, &a, err, sizeof err) && !gguf_open(o2, &b, err, sizeof err)) {
        CHECK(a.size == b.size && !memcmp(a.base, b.base, a.size));
        CHECK_EQ_INT(type_of(&a, "blk.0.attn_q.weight"), GGML_TYPE_Q5_K);
        CHECK_EQ_INT(type_of(&a, "blk.1.ffn_down.weight"), GGML_TYPE_Q6_K);
        gguf_close(&a);
        gguf_close(&b);
    } else {
        CHECK_MSG(0, "%s", err);
    }
    unlink(o1);
    unlink(o2);
}

/* BF16 sources (common in converted checkpoints) read as the top half of a float. */
static void test_bf16_source(void) {
    char in[1024], out[1024], err[256];
    uint16_t bf[256 * 2];
    float want[256 * 2];
    for (int i = 0; i < 512; i++) {
        want[i] = (float)(i - 256) / 64.0f; /* exact in bfloat16: 8 significant bits */
        uint32_t bits;
        memcpy(&bits, &want[i], sizeof bits);
        bf[i] = (uint16_t)(bits >> 16);
    }
    gguf_writer_t *w = gguf_writer_new();
    int64_t ne[4] = {256, 2, 1, 1};
    gguf_w_str(w, "general.architecture", "llama");
    CHECK_EQ_INT(gguf_w_tensor(w, "blk.0.attn_q.weight", GGML_TYPE_BF16, 2, ne, bf, sizeof bf), 0);
    CHECK_EQ_INT(gguf_w_write(w, tmp_file("bf16.gguf", in, sizeof in), err, sizeof err), 0);
    gguf_writer_free(w);
    const char *argv[] = {"quantize", "-q", in, tmp_file("bf16-out.gguf", out, sizeof out), "F16"};
    CHECK_EQ_INT(run(5, argv), 0);
    gguf_file_t f;
    if (gguf_open(out, &f, err, sizeof err)) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    const gguf_tensor_t *t = gguf_find_tensor(&f, "blk.0.attn_q.weight");
    CHECK(t && t->type == GGML_TYPE_F16);
    if (t && t->type == GGML_TYPE_F16) {
        float got[512];
        quant_dequantize_row(GGML_TYPE_F16, t->data, got, 512);
        CHECK(memcmp(got, want, sizeof want) == 0);
    }
    gguf_close(&f);
}

int main(void) {
    if (check_tmpdir(tmpdir, sizeof tmpdir, "test_quantize")) return 1;
    test_q4_k_m_matches_reference();
    test_other_types();
    test_mix_rules();
    test_errors();
    test_bf16_source();
    check_tmpdir_remove(tmpdir);
    return check_summary("test_quantize");
}
