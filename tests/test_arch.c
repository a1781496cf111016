/*
 * test_arch.c — the Keyformer paper's three position schemes (gptj partial rotary, gpt2 learned
 * positions, mpt ALiBi) under the KV policies.  Their logits against Hugging Face transformers
 * are in test_golden (hf-*.golden); this file checks what a comparison cannot:
 *   - the whole prompt in one batch == token by token == small chunks (positions, masks);
 *   - every policy runs at a 50% budget, and `full` equals the unbounded reference;
 *   - kept tokens keep their original positions and new tokens take their true absolute one.
 *     With one layer, a cached key/value depends only on its token and position, so eviction
 *     can be compared with a fresh run on the kept tokens: for relative schemes (rotary, ALiBi)
 *     `window` must equal a fresh run on the last B + 1 tokens (B kept, plus the new one), and ALiBi `sink` (which counts
 *     distances within the cache) a fresh run on the sinks followed by the window;
 *   - bad input: a GPT-J rotary_dim above the head size, an MPT without max_alibi_bias, a
 *     context beyond GPT-2's learned positions give one-line errors naming the key.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "gguf.h"
#include "gguf_write.h"
#include "kv_cache.h"
#include "tap.h"
#include "testutil.h"

static char tmpdir[512];
static char vocab_gpt2[600], vocab_mpt[600];

static int mkmodel(const char *out, const char *vocab, const char *args)
{
    const char *b = getenv("KF_BUILDDIR");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/kfchat-mkmodel --vocab %s %s -o %s >/dev/null", b ? b : ".",
             vocab, args, out);
    return system(cmd);
}

static struct engine *open_kv(const char *path, int n_ctx, int n_batch, const char *policy,
                              const char *budget, char *err, size_t errlen)
{
    struct engine_params p = { .model_path = path, .n_ctx = n_ctx, .n_batch = n_batch,
                               .n_threads = 2 };
    if (policy) {
        p.kv = kv_params_default();
        p.kv.policy = (enum kv_policy)kv_policy_from_name(policy);
        p.kv_budget = budget;
        p.kv_set = 1;
    }
    struct engine *e = NULL;
    if (engine_open(&e, &p, err, errlen) != STATUS_OK)
        return NULL;
    return e;
}

/* n tokens spread over the vocabulary (deterministic) */
static void tokens_make(int32_t *t, int n, int salt)
{
    for (int i = 0; i < n; i++)
        t[i] = 100 + (i * 131 + salt * 17) % 40000;
}

/* Logits after feeding t[0..n) one token at a time (decode steps: the policies evict). */
static int run_steps(struct engine *e, const int32_t *t, int n, int prefill, float *out, int nv)
{
    engine_reset(e);
    if (engine_eval(e, t, prefill, NULL, NULL, NULL))
        return -1;
    for (int i = prefill; i < n; i++)
        if (engine_eval(e, &t[i], 1, NULL, NULL, NULL))
            return -1;
    memcpy(out, engine_logits(e), (size_t)nv * sizeof(float));
    return 0;
}

static void check_consistency(const char *label, const char *path)
{
    enum { N = 48 };
    int32_t t[N];
    char err[512];
    tokens_make(t, N, 1);
    struct engine *e = open_kv(path, 64, 0, NULL, NULL, err, sizeof err);
    struct engine *c = open_kv(path, 64, 5, NULL, NULL, err, sizeof err);
    if (!ok(e && c, "%s: opens", label)) {
        diag("%s", err);
        engine_close(e);
        engine_close(c);
        return;
    }
    int nv = engine_n_vocab(e);
    float *batch = malloc((size_t)N * nv * sizeof(float)), *one = malloc((size_t)nv * 4);
    float *chunk = malloc((size_t)N * nv * sizeof(float));
    int st = engine_eval_all(e, t, N, batch) | engine_eval_all(c, t, N, chunk);
    double d_tok = 0, d_chunk = testutil_max_rel_diff(chunk, batch, (size_t)N * nv);
    engine_reset(e);
    for (int i = 0; i < N && !st; i++) {
        st = engine_eval(e, &t[i], 1, NULL, NULL, NULL);
        memcpy(one, engine_logits(e), (size_t)nv * 4);
        d_tok = fmax(d_tok, testutil_max_rel_diff(one, batch + (size_t)i * nv, (size_t)nv));
    }
    ok(st == 0 && d_tok < 1e-4 && d_chunk < 1e-4,
       "%s: one batch == token by token (%.2g) == chunks of 5 (%.2g)", label, d_tok, d_chunk);
    free(batch);
    free(one);
    free(chunk);
    engine_close(e);
    engine_close(c);
}

/* Every policy runs at a 50% budget; full equals the unbounded cache bit for bit. */
static void check_policies(const char *label, const char *path)
{
    static const char *const pol[] = { "full", "window", "sink", "h2o", "keyformer",
                                       "keyformer-static" };
    enum { N = 60, CTX = 64 };
    int32_t t[N];
    char err[512];
    tokens_make(t, N, 2);
    struct engine *ref = open_kv(path, CTX, 0, NULL, NULL, err, sizeof err);
    if (!ok(ref != NULL, "%s: reference opens", label))
        return;
    int nv = engine_n_vocab(ref);
    float *r = malloc((size_t)nv * 4), *x = malloc((size_t)nv * 4);
    int st = run_steps(ref, t, N, 20, r, nv);
    for (size_t i = 0; i < sizeof pol / sizeof pol[0]; i++) {
        struct engine *e = open_kv(path, CTX, 0, pol[i], "50%", err, sizeof err);
        int okk = e && st == 0 && run_steps(e, t, N, 20, x, nv) == 0;
        size_t used = e ? engine_kv_bytes_used(e) : 0, full = e ? engine_kv_bytes_full(e) : 1;
        if (i == 0)
            ok(okk && memcmp(x, r, (size_t)nv * 4) == 0, "%s: full == unbounded reference",
               label);
        else
            ok(okk && used * 2 <= full + full / 8, "%s: %s at 50%% runs (KV %zu of %zu bytes)",
               label, pol[i], used, full);
        if (!e)
            diag("%s", err);
        engine_close(e);
    }
    free(r);
    free(x);
    engine_close(ref);
}

/*
 * One-layer models: eviction vs a fresh run on the kept tokens.  keep() lists, for the last step
 * of a run of N tokens with budget B, the positions the policy holds, oldest first.
 */
static void check_kept_positions(const char *label, const char *path, const char *policy,
                                 int renumbered_sinks)
{
    enum { N = 40, B = 12, SINKS = 4 };
    int32_t t[N], kept[N];
    char err[512], budget[16];
    tokens_make(t, N, 3);
    snprintf(budget, sizeof budget, "%d", B);
    struct engine *e = open_kv(path, 64, 0, policy, budget, err, sizeof err);
    struct engine *f = open_kv(path, 64, 0, NULL, NULL, err, sizeof err);
    if (!ok(e && f, "%s %s: opens", label, policy)) {
        diag("%s", err);
        engine_close(e);
        engine_close(f);
        return;
    }
    int nv = engine_n_vocab(e), n = 0;
    if (renumbered_sinks)
        for (int i = 0; i < SINKS; i++)
            kept[n++] = t[i];
    /* a decode step attends over the B entries kept so far plus the new token (kv_cache.h) */
    for (int i = N - (B + 1 - n); i < N; i++)
        kept[n++] = t[i];
    float *a = malloc((size_t)nv * 4), *b = malloc((size_t)nv * 4);
    int st = run_steps(e, t, N, 8, a, nv) | run_steps(f, kept, n, n, b, nv);
    double d = testutil_max_rel_diff(a, b, (size_t)nv);
    ok(st == 0 && d < 2e-4, "%s: %s keeps %s (vs a fresh run on the %d kept tokens: %.2g)",
       label, policy,
       renumbered_sinks ? "in-cache ALiBi distances" : "original relative positions", n, d);
    free(a);
    free(b);
    engine_close(e);
    engine_close(f);
}

/* GPT-2: the cache holds the true absolute positions after eviction. */
static void check_absolute(const char *path)
{
    enum { N = 40 };
    int32_t t[N], pos[64];
    char err[512];
    tokens_make(t, N, 4);
    struct engine *e = open_kv(path, 64, 0, "window", "16", err, sizeof err);
    if (!ok(e != NULL, "gpt2 window: opens"))
        return;
    float *x = malloc((size_t)engine_n_vocab(e) * 4);
    int st = run_steps(e, t, N, 8, x, engine_n_vocab(e));
    int n = kv_cache_trace(engine_kv(e), 0, 0, pos, NULL, NULL, 64), good = n == 16;
    for (int i = 0; i < n && good; i++)
        good = pos[i] == N - 16 + i;
    ok(st == 0 && good, "gpt2 window: the cache holds positions %d..%d (their learned positions "
       "were added at the input)", N - 16, N - 1);
    free(x);
    engine_close(e);
}

/* Copy src to dst with key `drop` left out or u32 key `set` set to v (either may be NULL). */
static int clone_edit(const char *src, const char *dst, const char *drop, const char *set,
                      uint32_t v)
{
    struct gguf *g;
    char err[256];
    if (gguf_open(&g, src, err, sizeof err))
        return -1;
    struct gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        size_t len;
        const char *k = gguf_key_at(g, i, &len);
        if (!drop || strlen(drop) != len || memcmp(k, drop, len))
            gguf_writer_copy_kv(w, g, i);
    }
    if (set)
        gguf_writer_set_u32(w, set, v);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        int64_t ne[4] = { t->ne[0], t->ne[1], t->ne[2], t->ne[3] };
        gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, ne, t->data);
    }
    int st = gguf_writer_write(w, dst, err, sizeof err);
    gguf_writer_free(w);
    gguf_close(g);
    return st;
}

static void expect_open_error(const char *label, const char *path, int n_ctx, const char *want)
{
    char err[512] = "";
    struct engine *e = open_kv(path, n_ctx, 0, NULL, NULL, err, sizeof err);
    ok(e == NULL && strstr(err, want) && !strchr(err, '\n'), "%s: '%s'", label, err);
    engine_close(e);
}

int main(void)
{
    const char *td = getenv("KF_TESTDATA"), *b = getenv("KF_BUILDDIR");
    char mk[600], p[600], bad[600];
    snprintf(vocab_gpt2, sizeof vocab_gpt2, "%s/vocab/ggml-vocab-gpt-2.gguf",
             td ? td : "../shared/testdata");
    snprintf(vocab_mpt, sizeof vocab_mpt, "%s/vocab/ggml-vocab-mpt.gguf",
             td ? td : "../shared/testdata");
    snprintf(mk, sizeof mk, "%s/kfchat-mkmodel", b ? b : ".");
    if (access(vocab_gpt2, R_OK) || access(vocab_mpt, R_OK) || access(mk, X_OK))
        return skip_all("kfchat-mkmodel or the gpt-2/mpt vocabularies are missing");
    snprintf(tmpdir, sizeof tmpdir, "%s/kfchat-arch-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir))
        return skip_all("cannot create a temporary directory");
    snprintf(bad, sizeof bad, "%s/bad.gguf", tmpdir);

    static const struct { const char *label, *mpt, *args; } models[] = {
        { "gptj", NULL, "--arch gptj --embd 64 --layers 2 --heads 4 --ff 256 --rope-dim 8" },
        { "gpt2", NULL, "--arch gpt2 --embd 64 --layers 2 --heads 4 --ff 256" },
        { "mpt", "", "--arch mpt --embd 64 --layers 2 --heads 4 --ff 256 --clamp-kqv 2" },
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char args[512];
        snprintf(p, sizeof p, "%s/%s.gguf", tmpdir, models[i].label);
        snprintf(args, sizeof args, "%s --ctx 64 --type f32", models[i].args);
        if (!ok(mkmodel(p, models[i].mpt ? vocab_mpt : vocab_gpt2, args) == 0, "%s: written",
                models[i].label))
            continue;
        check_consistency(models[i].label, p);
        check_policies(models[i].label, p);
        if (i == 0) {
            clone_edit(p, bad, NULL, "gptj.rope.dimension_count", 32);
            expect_open_error("gptj rotary_dim above the head size", bad, 64,
                              "gptj.rope.dimension_count");
        } else if (i == 1) {
            check_absolute(p);
            expect_open_error("gpt2 context beyond the learned positions", p, 128,
                              "gpt2.context_length");
        } else {
            clone_edit(p, bad, "mpt.attention.max_alibi_bias", NULL, 0);
            expect_open_error("mpt without max_alibi_bias", bad, 64,
                              "mpt.attention.max_alibi_bias");
        }
    }

    /* one layer: eviction against fresh runs on the kept tokens */
    snprintf(p, sizeof p, "%s/gptj1.gguf", tmpdir);
    if (ok(mkmodel(p, vocab_gpt2, "--arch gptj --embd 64 --layers 1 --heads 4 --ff 256 "
                                  "--rope-dim 8 --ctx 64 --type f32") == 0, "gptj 1 layer"))
        check_kept_positions("gptj", p, "window", 0);
    snprintf(p, sizeof p, "%s/mpt1.gguf", tmpdir);
    if (ok(mkmodel(p, vocab_mpt, "--arch mpt --embd 64 --layers 1 --heads 4 --ff 256 "
                                 "--ctx 64 --type f32") == 0, "mpt 1 layer")) {
        check_kept_positions("mpt", p, "window", 0);
        check_kept_positions("mpt", p, "sink", 1);
    }

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        diag("could not remove %s", tmpdir);
    return done_testing();
}
