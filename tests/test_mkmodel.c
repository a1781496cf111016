/*
 * test_mkmodel.c — kfchat-mkmodel's output read back by the GGUF reader (engine/gguf.c): for
 * every architecture and tensor type the keys, the tensors' names, shapes and types (including
 * the mixed types of the _M presets and the fallbacks for rows that do not split into 256-blocks),
 * the vocabulary copied from the donor file, determinism, and one-line errors for bad options.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "status.h"
#include "tap.h"
#include "testutil.h"

static const char *tmpdir;
static char err[1024];

static const char *tmp_file(const char *name)
{
    return testutil_tmp_file(tmpdir, name);
}

static char mk_prog[4096];
static const char *mk_vocab;

#define MK_VOCAB_N 320

/* A small SPM-style vocab, plus keys that must NOT be copied (general.*). */
static const char *mk_make_vocab(void)
{
    static char toks[MK_VOCAB_N][16];
    const char *tp[MK_VOCAB_N];
    float scores[MK_VOCAB_N];
    int32_t types[MK_VOCAB_N];
    for (int i = 0; i < MK_VOCAB_N; i++) {
        if (i < 3)
            snprintf(toks[i], sizeof(toks[i]), "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(toks[i], sizeof(toks[i]), "<0x%02X>", i - 3);
        else
            snprintf(toks[i], sizeof(toks[i]), "\xe2\x96\x81w%d", i);
        tp[i] = toks[i];
        scores[i] = -(float)i;
        types[i] = i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", "vocab");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tp, MK_VOCAB_N);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, MK_VOCAB_N);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, MK_VOCAB_N);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_str(w, "tokenizer.chat_template", "{{ messages }}");
    const char *path = tmp_file("vocab.gguf");
    if (gguf_writer_write(w, path, err, sizeof(err)) != STATUS_OK)
        path = NULL;
    gguf_writer_free(w);
    return path;
}

/* Run kfchat-mkmodel with args (NULL-terminated); output (both streams) into *log. */
static int mk_run(const char *const *args, char **log)
{
    char *argv[48];
    int n = 0;
    argv[n++] = mk_prog;
    for (; *args && n < 47; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    const char *lp = tmp_file("mk.log");
    unlink(lp);
    int st = testutil_run(argv, lp);
    *log = testutil_read_file(lp, NULL);
    if (!*log)
        *log = strdup("");
    return st;
}

static int one_line(const char *s, const char *prefix)
{
    size_t n = strlen(s);
    return n > 1 && s[n - 1] == '\n' && !memchr(s, '\n', n - 1) &&
           strncmp(s, prefix, strlen(prefix)) == 0;
}

struct mk_case {
    const char *arch, *type;
    int64_t embd, layers, heads, kv, ff, head_dim; /* head_dim 0: embd/heads, not given */
    int tied;                                      /* -1: the arch's default */
    int swa_pattern;                               /* 0: not given */
};

static const struct { const char *name; uint32_t base, ftype; } mk_types[] = {
    { "f32", QTYPE_F32, 0 },    { "f16", QTYPE_F16, 1 },    { "bf16", QTYPE_BF16, 32 },
    { "q4_0", QTYPE_Q4_0, 2 },  { "q4_1", QTYPE_Q4_1, 3 },  { "q5_0", QTYPE_Q5_0, 8 },
    { "q5_1", QTYPE_Q5_1, 9 },  { "q8_0", QTYPE_Q8_0, 7 },  { "q2_k", QTYPE_Q2_K, 10 },
    { "q3_k", QTYPE_Q3_K, 11 }, { "q4_k", QTYPE_Q4_K, 14 }, { "q5_k", QTYPE_Q5_K, 16 },
    { "q6_k", QTYPE_Q6_K, 18 }, { "q4_k_m", QTYPE_Q4_K, 15 },
};
enum { MK_NTYPES = sizeof(mk_types) / sizeof(mk_types[0]) };

enum mk_kind { MK_VEC, MK_MAT, MK_EMBD, MK_OUT, MK_V, MK_DOWN };

/* Expected type per engine-reference 2.8 (restated here, independently of mkmodel.c). */
static uint32_t mk_expect_type(const struct mk_case *c, int ti, enum mk_kind k, int64_t layer,
                               int64_t ne0, int tied)
{
    if (k == MK_VEC)
        return QTYPE_F32;
    uint32_t t = mk_types[ti].base;
    int64_t n = c->layers;
    int more = layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
    if (strcmp(c->type, "q4_k_m") == 0 &&
        (k == MK_OUT || (k == MK_EMBD && tied) || ((k == MK_V || k == MK_DOWN) && more)))
        t = QTYPE_Q6_K;
    if (ne0 % quant_traits_get(t)->blck == 0)
        return t;
    t = t == QTYPE_Q4_K ? QTYPE_Q5_0 : t == QTYPE_Q5_K ? QTYPE_Q5_1 : t == QTYPE_Q6_K ? QTYPE_Q8_0
        : (t == QTYPE_Q2_K || t == QTYPE_Q3_K) ? QTYPE_Q4_0 : t;
    return ne0 % quant_traits_get(t)->blck == 0 ? t : QTYPE_F16;
}

struct mk_expect {
    char name[64];
    int64_t ne0, ne1; /* ne1 0: 1-D */
    uint32_t type;
};

/* The tensor list llama.cpp expects for c, in file order. */
static int mk_expect_tensors(const struct mk_case *c, int ti, int tied, struct mk_expect *x)
{
    int64_t E = c->embd, hd = c->head_dim ? c->head_dim : c->embd / c->heads;
    int64_t Q = c->heads * hd, KV = c->kv * hd, F = c->ff, V = MK_VOCAB_N;
    int is_qwen = strcmp(c->arch, "qwen2") == 0, is_gemma = strcmp(c->arch, "gemma3") == 0;
    struct { const char *n; int64_t ne0, ne1; enum mk_kind k; int when; } L[] = {
        /* when: 0 all, 1 qwen2 only, 2 gemma3 only */
        { "attn_norm.weight", E, 0, MK_VEC, 0 },     { "attn_q.weight", E, Q, MK_MAT, 0 },
        { "attn_q.bias", Q, 0, MK_VEC, 1 },          { "attn_k.weight", E, KV, MK_MAT, 0 },
        { "attn_k.bias", KV, 0, MK_VEC, 1 },         { "attn_v.weight", E, KV, MK_V, 0 },
        { "attn_v.bias", KV, 0, MK_VEC, 1 },         { "attn_q_norm.weight", hd, 0, MK_VEC, 2 },
        { "attn_k_norm.weight", hd, 0, MK_VEC, 2 },  { "attn_output.weight", Q, E, MK_MAT, 0 },
        { "post_attention_norm.weight", E, 0, MK_VEC, 2 },
        { "ffn_norm.weight", E, 0, MK_VEC, 0 },      { "ffn_gate.weight", E, F, MK_MAT, 0 },
        { "ffn_up.weight", E, F, MK_MAT, 0 },        { "ffn_down.weight", F, E, MK_DOWN, 0 },
        { "post_ffw_norm.weight", E, 0, MK_VEC, 2 },
    };
    int n = 0;
    snprintf(x[n].name, 64, "token_embd.weight");
    x[n].ne0 = E, x[n].ne1 = V, x[n].type = mk_expect_type(c, ti, MK_EMBD, 0, E, tied), n++;
    for (int64_t l = 0; l < c->layers; l++)
        for (size_t i = 0; i < sizeof(L) / sizeof(L[0]); i++) {
            if ((L[i].when == 1 && !is_qwen) || (L[i].when == 2 && !is_gemma))
                continue;
            snprintf(x[n].name, 64, "blk.%lld.%s", (long long)l, L[i].n);
            x[n].ne0 = L[i].ne0, x[n].ne1 = L[i].ne1;
            x[n].type = mk_expect_type(c, ti, L[i].k, l, L[i].ne0, tied), n++;
        }
    snprintf(x[n].name, 64, "output_norm.weight");
    x[n].ne0 = E, x[n].ne1 = 0, x[n].type = QTYPE_F32, n++;
    if (!tied) {
        snprintf(x[n].name, 64, "output.weight");
        x[n].ne0 = E, x[n].ne1 = V, x[n].type = mk_expect_type(c, ti, MK_OUT, 0, E, tied), n++;
    }
    return n;
}

/* Key present with exactly this type (llama.cpp checks types strictly) and value. */
static int mk_key_u32(struct gguf *g, const char *arch, const char *suffix, uint32_t v)
{
    char k[128];
    uint32_t got;
    snprintf(k, sizeof(k), "%s%s%s", arch ? arch : "", arch ? "." : "", suffix);
    int64_t i = gguf_find_key(g, k);
    int good = i >= 0 && gguf_kv_type(g, i) == GGUF_TYPE_UINT32 &&
               gguf_get_u32(g, k, &got) == STATUS_OK && got == v;
    if (!good)
        diag("key %s: expected u32 %u", k, v);
    return good;
}

static int mk_key_f32(struct gguf *g, const char *arch, const char *suffix, float v)
{
    char k[128];
    float got;
    snprintf(k, sizeof(k), "%s.%s", arch, suffix);
    int64_t i = gguf_find_key(g, k);
    int good = i >= 0 && gguf_kv_type(g, i) == GGUF_TYPE_FLOAT32 &&
               gguf_get_f32(g, k, &got) == STATUS_OK && got == v;
    if (!good)
        diag("key %s: expected f32 %g", k, v);
    return good;
}

static int mk_key_absent(struct gguf *g, const char *arch, const char *suffix)
{
    char k[128];
    snprintf(k, sizeof(k), "%s.%s", arch, suffix);
    if (gguf_find_key(g, k) >= 0)
        diag("key %s should be absent", k);
    return gguf_find_key(g, k) < 0;
}

static int mk_check_keys(struct gguf *g, const struct mk_case *c, int ti)
{
    const char *a = c->arch, *s;
    size_t len;
    int is_llama = strcmp(a, "llama") == 0, is_gemma = strcmp(a, "gemma3") == 0;
    int64_t hd = c->head_dim ? c->head_dim : c->embd / c->heads;
    uint64_t n;
    enum gguf_type et;
    const void *d;
    int good = gguf_get_str(g, "general.architecture", &s, &len) == STATUS_OK &&
               len == strlen(a) && memcmp(s, a, len) == 0;
    good &= gguf_get_str(g, "general.name", &s, &len) == STATUS_OK && len == 14 + strlen(a);
    good &= mk_key_u32(g, NULL, "general.file_type", mk_types[ti].ftype);
    good &= mk_key_u32(g, NULL, "general.quantization_version", 2);
    good &= mk_key_u32(g, a, "context_length", 2048);
    good &= mk_key_u32(g, a, "embedding_length", c->embd);
    good &= mk_key_u32(g, a, "block_count", c->layers);
    good &= mk_key_u32(g, a, "feed_forward_length", c->ff);
    good &= mk_key_u32(g, a, "attention.head_count", c->heads);
    good &= mk_key_u32(g, a, "attention.head_count_kv", c->kv);
    good &= mk_key_f32(g, a, "rope.freq_base", is_llama ? 10000.0f : 1000000.0f);
    good &= mk_key_f32(g, a, "attention.layer_norm_rms_epsilon", is_llama ? 1e-5f : 1e-6f);
    if (is_llama) {
        good &= mk_key_u32(g, a, "rope.dimension_count", hd);
        good &= mk_key_u32(g, a, "vocab_size", MK_VOCAB_N);
    } else {
        good &= mk_key_absent(g, a, "rope.dimension_count") && mk_key_absent(g, a, "vocab_size");
    }
    if (is_gemma || c->head_dim) {
        good &= mk_key_u32(g, a, "attention.key_length", hd);
        good &= mk_key_u32(g, a, "attention.value_length", hd);
    } else {
        good &= mk_key_absent(g, a, "attention.key_length");
    }
    if (is_gemma) {
        good &= mk_key_u32(g, a, "attention.sliding_window", 512);
        const char *pat = "attention.sliding_window_pattern";
        good &= c->swa_pattern ? mk_key_u32(g, a, pat, c->swa_pattern) : mk_key_absent(g, a, pat);
    }
    /* the tokenizer, verbatim */
    good &= gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &d) == STATUS_OK &&
            et == GGUF_TYPE_STRING && n == MK_VOCAB_N;
    good &= gguf_arr_str(g, "tokenizer.ggml.tokens", 300, &s, &len) == STATUS_OK && len == 7 &&
            memcmp(s, "\xe2\x96\x81w300", 7) == 0;
    good &= gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n, &d) == STATUS_OK &&
            et == GGUF_TYPE_FLOAT32 && n == MK_VOCAB_N && gguf_arr_f64(et, d, 5) == -5.0;
    good &= mk_key_u32(g, NULL, "tokenizer.ggml.eos_token_id", 2);
    good &= gguf_get_str(g, "tokenizer.chat_template", &s, &len) == STATUS_OK && len == 14;
    good &= gguf_get_str(g, "tokenizer.ggml.model", &s, &len) == STATUS_OK && len == 5;
    return good;
}

/* Names, shapes, types and contents of every tensor. */
static int mk_check_tensors(struct gguf *g, const struct mk_case *c, int ti, int tied)
{
    static struct mk_expect x[1024];
    int n = mk_expect_tensors(c, ti, tied, x);
    int good = gguf_n_tensors(g) == n;
    if (!good)
        diag("%lld tensors, expected %d", (long long)gguf_n_tensors(g), n);
    for (int i = 0; good && i < n; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        if (strcmp(t->name, x[i].name) || t->n_dims != (x[i].ne1 ? 2 : 1) || t->ne[0] != x[i].ne0 ||
            t->ne[1] != (x[i].ne1 ? x[i].ne1 : 1) || t->type != x[i].type) {
            diag("tensor %d: %s [%lld, %lld] %s; expected %s [%lld, %lld] %s", i, t->name,
                 (long long)t->ne[0], (long long)t->ne[1], quant_traits_get(t->type)->name,
                 x[i].name, (long long)x[i].ne0, (long long)x[i].ne1,
                 quant_traits_get(x[i].type)->name);
            good = 0;
            break;
        }
        /* every element finite, not all zero; norm weights positive (gemma's include +1) */
        const struct quant_traits *tr = quant_traits_get(t->type);
        int64_t rows = t->ne[1], nz = 0, bad = 0;
        float *row = malloc((size_t)t->ne[0] * sizeof(float));
        int is_norm = strstr(t->name, "norm.weight") != NULL;
        for (int64_t r = 0; r < rows; r++) {
            tr->to_f32((const uint8_t *)t->data + (size_t)r * (t->nbytes / (size_t)rows), row,
                       t->ne[0]);
            for (int64_t e = 0; e < t->ne[0]; e++) {
                nz += row[e] != 0.0f;
                bad += !isfinite(row[e]) || (is_norm && row[e] <= 0.0f);
            }
        }
        free(row);
        if (bad || nz < t->ne[0] * rows / 2) {
            diag("%s: %lld bad values, %lld nonzero of %lld", t->name, (long long)bad,
                 (long long)nz, (long long)(t->ne[0] * rows));
            good = 0;
        }
    }
    return good;
}

static void mk_case_run(const struct mk_case *c, int ti)
{
    char emb[24], lay[24], hds[24], kvs[24], ffs[24], hdd[24], swp[24];
    const char *out = tmp_file("model.gguf");
    snprintf(emb, sizeof(emb), "%lld", (long long)c->embd);
    snprintf(lay, sizeof(lay), "%lld", (long long)c->layers);
    snprintf(hds, sizeof(hds), "%lld", (long long)c->heads);
    snprintf(kvs, sizeof(kvs), "%lld", (long long)c->kv);
    snprintf(ffs, sizeof(ffs), "%lld", (long long)c->ff);
    snprintf(hdd, sizeof(hdd), "%lld", (long long)c->head_dim);
    snprintf(swp, sizeof(swp), "%d", c->swa_pattern);
    const char *args[40] = { "--arch", c->arch, "--vocab", mk_vocab, "--embd", emb, "--layers",
                             lay, "--heads", hds, "--kv-heads", kvs, "--ff", ffs, "--type",
                             mk_types[ti].name, "-o", out };
    int na = 18;
    if (c->head_dim)
        args[na++] = "--head-dim", args[na++] = hdd;
    if (c->swa_pattern)
        args[na++] = "--swa-pattern", args[na++] = swp;
    if (c->tied >= 0)
        args[na++] = c->tied ? "--tied" : "--untied";
    args[na] = NULL;
    int tied = c->tied >= 0 ? c->tied : strcmp(c->arch, "llama") != 0;
    char *log;
    unlink(out);
    int st = mk_run(args, &log);
    struct gguf *g = NULL;
    int opened = st == 0 && gguf_open(&g, out, err, sizeof(err)) == STATUS_OK;
    ok(st == 0 && one_line(log, "wrote ") && opened, "mkmodel %s %s embd %lld: runs, re-opens",
       c->arch, mk_types[ti].name, (long long)c->embd);
    if (st != 0 || !opened)
        diag("exit %d: %s %s", st, log, opened ? "" : err);
    if (opened) {
        ok(mk_check_keys(g, c, ti), "  keys of %s %s", c->arch, mk_types[ti].name);
        ok(mk_check_tensors(g, c, ti, tied), "  tensors of %s %s", c->arch, mk_types[ti].name);
        gguf_close(g);
    }
    free(log);
}

/* Bytes of a file, for comparing two runs. */
static int mk_same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *pa = testutil_read_file(a, &na), *pb = testutil_read_file(b, &nb);
    int same = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return same;
}

static void mk_determinism(void)
{
    const char *a = tmp_file("det_a.gguf"), *b = tmp_file("det_b.gguf");
    const char *c = tmp_file("det_c.gguf");
    const char *base[] = { "--arch", "llama", "--vocab", mk_vocab, "--embd", "256", "--layers",
                           "2", "--heads", "4", "--ff", "512", "--type", "q4_k", NULL, NULL,
                           NULL, NULL, NULL };
    char *log;
    base[14] = "-o", base[15] = a, base[16] = "-t", base[17] = "1";
    int st = mk_run(base, &log);
    free(log);
    base[15] = b, base[17] = "2";
    st |= mk_run(base, &log);
    free(log);
    ok(st == 0 && mk_same_file(a, b), "same seed, 1 or 2 threads: identical files");
    base[15] = c, base[16] = "--seed", base[17] = "7";
    st = mk_run(base, &log);
    free(log);
    ok(st == 0 && !mk_same_file(a, c), "another seed: a different file");
}

static void mk_errors(void)
{
    const char *nov = tmp_file("novocab.gguf");
    struct gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_write(w, nov, err, sizeof(err));
    gguf_writer_free(w);
    const char *out = tmp_file("never.gguf");
#define MK_SHAPE "--embd", "256", "--layers", "2", "--heads", "4", "--ff", "512"
    const char *const cases[][24] = {
        { "--arch", "falcon", "--vocab", mk_vocab, MK_SHAPE, "--type", "f16", "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--type", "q7_k", "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, "--embd", "250", "--layers", "2", "--heads", "4",
          "--ff", "512", "--type", "f16", "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--kv-heads", "3", "--type", "f16",
          "-o", out, NULL },
        { "--arch", "llama", "--vocab", nov, MK_SHAPE, "--type", "f16", "-o", out, NULL },
        { "--arch", "llama", "--vocab", tmp_file("missing.gguf"), MK_SHAPE, "--type", "f16", "-o",
          out, NULL },
        { "--arch", "qwen2", "--vocab", mk_vocab, MK_SHAPE, "--head-dim", "32", "--type", "f16",
          "-o", out, NULL },
        { "--arch", "gemma3", "--vocab", mk_vocab, MK_SHAPE, "--untied", "--type", "f16", "-o",
          out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--swa", "128", "--type", "f16", "-o",
          out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--type", "f16", NULL },
        { "--arch", "llama", "--vocab", mk_vocab, "--embd", "abc", "--layers", "2", "--heads", "4",
          "--ff", "512", "--type", "f16", "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--head-dim", "33", "--type", "f16",
          "-o", out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--frobnicate", "--type", "f16", "-o",
          out, NULL },
        { "--arch", "llama", "--vocab", mk_vocab, MK_SHAPE, "--type", NULL },
    };
#undef MK_SHAPE
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *log;
        int st = mk_run(cases[i], &log);
        ok(st == 1 && one_line(log, "kfchat-mkmodel: ") && !testutil_is_file(out),
           "mkmodel error case %zu: exit %d, %.*s", i, st, (int)strcspn(log, "\n"), log);
        free(log);
    }
    char *log;
    const char *help[] = { "--help", NULL }, *ver[] = { "--version", NULL };
    int st = mk_run(help, &log);
    ok(st == 0 && strstr(log, "Usage: kfchat-mkmodel"), "--help");
    free(log);
    st = mk_run(ver, &log);
    ok(st == 0 && one_line(log, "kfchat-mkmodel "), "--version: %.*s", (int)strcspn(log, "\n"),
       log);
    free(log);
}

static void test_mkmodel(void)
{
    testutil_path(mk_prog, sizeof(mk_prog), testutil_builddir(), "kfchat-mkmodel");
    if (!testutil_is_executable(mk_prog)) {
        skip("kfchat-mkmodel is not built");
        return;
    }
    mk_vocab = mk_make_vocab();
    if (!ok(mk_vocab != NULL, "write a small vocab for mkmodel"))
        return;
    static const char *archs[] = { "llama", "qwen2", "gemma3" };
    for (int a = 0; a < 3; a++)
        for (int ti = 0; ti < MK_NTYPES; ti++) {
            struct mk_case c = { archs[a], mk_types[ti].name, 256, 2, 4, 2, 512, 0, -1, 0 };
            mk_case_run(&c, ti);
        }
    /* rows that do not split into 256-blocks fall back; custom head sizes; tie overrides */
    static const struct mk_case more[] = {
        { "llama", "q4_k_m", 96, 3, 4, 2, 512, 0, -1, 0 },
        { "llama", "q2_k", 96, 1, 4, 4, 96, 0, 1, 0 },
        { "qwen2", "q4_k_m", 96, 9, 4, 1, 288, 0, 0, 0 },
        { "gemma3", "q4_k_m", 96, 3, 2, 1, 256, 32, -1, 3 },
        { "llama", "f16", 256, 2, 4, 2, 512, 48, -1, 0 },
        { "llama", "q8_0", 80, 1, 2, 1, 200, 0, -1, 0 },
    };
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
        int ti = 0;
        while (strcmp(mk_types[ti].name, more[i].type) != 0)
            ti++;
        mk_case_run(&more[i], ti);
    }
    mk_determinism();
    mk_errors();
}

int main(void)
{
    quant_init();
    tmpdir = testutil_tmpdir();
    test_mkmodel();
    testutil_tmpdir_remove(tmpdir);
    return done_testing();
}
