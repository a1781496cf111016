/*
 * test_kv_memory.c — the KV cache outside the side-by-side comparison of test_kv.c:
 *   - the standalone functions of kv_cache.h: the Gumbel noise's law (it is the specification
 *     the reference and the CUDA backend share), budget parsing, parameter checks, names;
 *   - the memory bound: a 20,000-token synthetic chat (user turns and decode steps) through the
 *     real engine on a tiny model with a keyformer budget of 256 entries: after every call the
 *     bytes in use stay within budget x entry x layers x KV heads, the allocation never changes,
 *     and the peak RSS does not grow with the chat (an unbounded cache of the same shape, filled
 *     in a child as a control, does grow past the same limit, so the check can fail).
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "kv_cache.h"
#include "status.h"
#include "tap.h"
#include "testutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rng_state;

static uint64_t rng_u64(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int rng_range(int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(rng_u64() % (uint64_t)(hi - lo + 1));
}

/* ---- the Gumbel noise ----------------------------------------------------------------------- */

static void test_noise(void)
{
    /* 10^6 draws over a (query, key) grid: the law of a standard Gumbel */
    const int N = 1000;
    double s = 0, s2 = 0, corr = 0;
    const double xs[] = { -1.0, 0.0, 1.0, 2.0, 4.0 };
    long below[ARRAY_LEN(xs)] = { 0 };
    for (int i = 0; i < N; i++) {
        double prev = kv_noise_gumbel(7, 1, 2, i, 0);
        for (int j = 0; j < N; j++) {
            double g = kv_noise_gumbel(7, 1, 2, i, j);
            s += g;
            s2 += g * g;
            if (j > 0)
                corr += (prev - 0.5772156649) * (g - 0.5772156649);
            prev = g;
            for (size_t k = 0; k < ARRAY_LEN(xs); k++)
                below[k] += g <= xs[k];
        }
    }
    double n = (double)N * N, mean = s / n, var = s2 / n - mean * mean;
    /* standard errors: mean 0.0013, variance 0.0034 (excess kurtosis 2.4) */
    ok(fabs(mean - 0.5772156649) < 0.0065, "noise: mean %.5f ~ Euler gamma 0.57722", mean);
    ok(fabs(var - M_PI * M_PI / 6) < 0.02, "noise: variance %.5f ~ pi^2/6 = 1.64493", var);
    int cdf_ok = 1;
    for (size_t k = 0; k < ARRAY_LEN(xs); k++) {
        double want = exp(-exp(-xs[k])), got = below[k] / n;
        if (fabs(got - want) > 0.003) {
            cdf_ok = 0;
            diag("P(G <= %g) = %.5f, want %.5f", xs[k], got, want);
        }
    }
    ok(cdf_ok, "noise: CDF exp(-exp(-x)) at -1, 0, 1, 2, 4 within 0.003");
    corr /= (n - N) * (M_PI * M_PI / 6);
    ok(fabs(corr) < 0.006, "noise: neighbouring keys uncorrelated (r = %.5f)", corr);

    /* deterministic, and every argument matters (a changed argument changes the value) */
    rng_state = 99;
    int same = 1, changed[6] = { 0 };
    const int M = 20000;
    for (int t = 0; t < M; t++) {
        uint64_t seed = rng_u64();
        int l = (int)(rng_u64() % 64), h = (int)(rng_u64() % 64);
        int qp = (int)(rng_u64() % 100000), kp = (int)(rng_u64() % 100000);
        float g = kv_noise_gumbel(seed, l, h, qp, kp);
        same &= g == kv_noise_gumbel(seed, l, h, qp, kp);
        changed[0] += g != kv_noise_gumbel(seed + 1, l, h, qp, kp);
        changed[1] += g != kv_noise_gumbel(seed, l + 1, h, qp, kp);
        changed[2] += g != kv_noise_gumbel(seed, l, h + 1, qp, kp);
        changed[3] += g != kv_noise_gumbel(seed, l, h, qp + 1, kp);
        changed[4] += g != kv_noise_gumbel(seed, l, h, qp, kp + 1);
        changed[5] += qp == kp || g != kv_noise_gumbel(seed, l, h, kp, qp);
    }
    ok(same, "noise: the same arguments give the same value");
    const char *what[6] = { "seed", "layer", "query head", "query pos", "key pos",
                            "query/key swap" };
    for (int a = 0; a < 6; a++)
        ok(changed[a] >= M - M / 1000, "noise: sensitive to the %s (%d of %d changed)", what[a],
           changed[a], M);
    ok(isfinite(kv_noise_gumbel(0, 0, 0, 0, 0)) && isfinite(kv_noise_gumbel(~0ULL, 255, 255,
                                                                                16777215, 0)),
       "noise: finite at the corners");
    /*
     * Every draw must be a Gumbel value a 24-bit uniform u in (0, 1) can give: between
     * -log(-log(2^-25)) = -2.85 and -log(-log(1 - 2^-25)) = 17.33.  An infinite draw turns a
     * whole Gumbel-softmax row into NaN (inf - inf) and then every score of the KV head; a huge
     * finite one hands the row's whole mass to one key (or none).  The listed arguments hash to
     * the top 24-bit value, the one where (float)(2^24 - 1) + 0.5f rounds to 2^24, i.e. u = 1.
     */
    static const int hits[][5] = {
        { 50, 0, 0, 85, 41 }, { 0, 0, 0, 1264, 3684 }, { 0, 0, 0, 2382, 2844 },
    };
    const float g_lo = -2.86f, g_hi = 17.34f;
    int in = 1;
    for (size_t i = 0; i < ARRAY_LEN(hits); i++) {
        float g = kv_noise_gumbel((uint64_t)hits[i][0], hits[i][1], hits[i][2], hits[i][3],
                                  hits[i][4]);
        if (!(g >= g_lo && g <= g_hi)) {
            in = 0;
            diag("G(%d, %d, %d, %d, %d) = %g", hits[i][0], hits[i][1], hits[i][2], hits[i][3],
                 hits[i][4], g);
        }
    }
    /* 2^24 draws, one (query) row of 4096 keys at a time: the row generator (SIMD where the
     * CPU has it) and the scalar row must give the same bits as one value at a time */
    long out = 0, differ = 0;
    float mn = INFINITY, mx = -INFINITY;
    static int32_t kpos[4096];
    static float row[4096], row_s[4096], row_2[4096];
    /* the AVX2 + FMA row too, where this CPU has it (the dispatcher prefers AVX-512) */
    int avx2 = kv_noise_gumbel_row_isa(1, 0, 0, 0, 0, kpos, 1, row_2) == 0;
    for (int j = 0; j < 4096; j++)
        kpos[j] = j;
    for (int i = 0; i < 4096; i++) {
        kv_noise_gumbel_row(0, 0, 0, i, kpos, 4096, row);
        kv_noise_gumbel_row_scalar(0, 0, 0, i, kpos, 4096, row_s);
        if (avx2)
            kv_noise_gumbel_row_isa(1, 0, 0, 0, i, kpos, 4096, row_2);
        for (int j = 0; j < 4096; j++) {
            float g = kv_noise_gumbel(0, 0, 0, i, j);
            out += !(g >= g_lo && g <= g_hi);
            mn = fminf(mn, g);
            mx = fmaxf(mx, g);
            if (memcmp(&g, &row[j], 4) || memcmp(&g, &row_s[j], 4) ||
                (avx2 && memcmp(&g, &row_2[j], 4))) {
                if (differ++ < 3)
                    diag("G(0, 0, 0, %d, %d) = %g, row %g, scalar row %g, AVX2 row %g", i, j, g,
                         row[j], row_s[j], avx2 ? row_2[j] : NAN);
            }
        }
    }
    ok(in && out == 0, "noise: every draw within [%g, %g] (2^24 draws: %ld outside, min %g, max "
       "%g; known u = 1 cases %s)", g_lo, g_hi, out, mn, mx, in ? "in range" : "out of range");
    ok(differ == 0, "noise: row generator, scalar row%s bit-identical to kv_noise_gumbel over "
       "2^24 draws (%ld differ)", avx2 ? " and AVX2 row" : "", differ);
    /* odd lengths and scattered positions exercise the vector loops (64 and 16 keys per
     * round) and the scalar tail */
    int tails = 1;
    rng_state = 3;
    for (int len = 1; len <= 200; len += 3) {
        int l = (int)(rng_u64() % 40), h = (int)(rng_u64() % 40), q = (int)(rng_u64() % 30000);
        for (int j = 0; j < len; j++)
            kpos[j] = (int32_t)(rng_u64() % 30000);
        for (int isa = 0; isa <= 2; isa++) {
            if (kv_noise_gumbel_row_isa(isa, 11, l, h, q, kpos, len, row) != 0)
                continue; /* this CPU lacks it */
            for (int j = 0; j < len; j++) {
                float g = kv_noise_gumbel(11, l, h, q, kpos[j]);
                tails &= !memcmp(&g, &row[j], 4);
            }
        }
    }
    ok(tails, "noise: rows of 1..199 scattered keys match one value at a time (scalar%s%s)",
       kv_noise_gumbel_row_isa(1, 0, 0, 0, 0, kpos, 1, row) == 0 ? ", AVX2" : "",
       kv_noise_gumbel_row_isa(2, 0, 0, 0, 0, kpos, 1, row) == 0 ? ", AVX-512" : "");
}

/* ---- names, defaults, parsing, checks ------------------------------------------------------- */

static int one_line(const char *s)
{
    return s[0] && !strchr(s, '\n');
}

static void test_names_and_parsing(void)
{
    int rt = 1;
    for (int p = 0; p < KV_POLICY_COUNT; p++) {
        const char *nm = kv_policy_name((enum kv_policy)p);
        rt &= nm && kv_policy_from_name(nm) == p && strstr(kv_policy_names(), nm) != NULL;
    }
    ok(rt, "policy names round-trip and all appear in kv_policy_names()");
    ok(kv_policy_from_name("bogus") == -1 && kv_policy_from_name("") == -1 &&
           kv_policy_from_name("H2O") == -1,
       "unknown policy names give -1");
    ok(kv_policy_name(KV_POLICY_COUNT) != NULL, "an out-of-range policy still has a printable name");
    struct kv_params d = kv_params_default();
    ok(d.policy == KV_POLICY_KEYFORMER && d.budget == 0 && fabsf(d.recent - 0.3f) < 1e-6f &&
           d.n_sink == 4 && d.tau_init == 1.0f && d.tau_end == 2.0f && d.tau_steps == 128 &&
           d.seed == 0,
       "kv_params_default: keyformer, budget 0, recent 0.3, 4 sinks, tau 1 -> 2 over 128");

    /* kv_budget_parse: n_ctx 4096, 64 KiB per token */
    struct { const char *s; size_t bpt; int want; } good[] = {
        { "2048", 65536, 2048 }, { "50%", 65536, 2048 }, { "100%", 65536, 4096 },
        { "12.5%", 65536, 512 }, { "256MiB", 65536, 4096 }, { "128MiB", 65536, 2048 },
        { "1GiB", 524288, 2048 }, { "512KiB", 65536, 8 }, { "1", 65536, 1 },
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        char err[256] = "";
        int out = -7;
        int st = kv_budget_parse(good[i].s, 4096, good[i].bpt, &out, err, sizeof err);
        ok(st == STATUS_OK && out == good[i].want, "kv_budget_parse(\"%s\") = %d (got %d, %s)",
           good[i].s, good[i].want, out, err);
    }
    const char *bad[] = { "0", "-3", "150%", "abc", "12.5", "5000", "1GiB", "", "10 MiB",
                          "7parsecs", "0%" };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char err[256] = "";
        int out = -7;
        int st = kv_budget_parse(bad[i], 4096, 65536, &out, err, sizeof err);
        ok(st == STATUS_INVALID && out == -7 && one_line(err),
           "kv_budget_parse(\"%s\") is STATUS_INVALID with one line: %s", bad[i], err);
    }
    /* the header promises the valid range in the message; for out-of-range values it is there */
    const char *range_bad[] = { "5000", "150%", "1GiB", "0", "-3", "-50%", "abc", "", "12.5",
                                "1e30", "nan", "inf" };
    for (size_t i = 0; i < ARRAY_LEN(range_bad); i++) {
        char err[256] = "";
        int out;
        kv_budget_parse(range_bad[i], 4096, 65536, &out, err, sizeof err);
        ok(strstr(err, "4096") || strstr(err, "100%"), "kv_budget_parse(\"%s\") names the range",
           range_bad[i]);
    }

    /* kv_params_check */
    struct kv_params p = kv_params_default();
    char err[256] = "";
    p.policy = KV_POLICY_H2O;
    p.recent = 1.0f;
    p.budget = 100;
    int st = kv_params_check(&p, 4096, err, sizeof err);
    ok(st == STATUS_INVALID && one_line(err) && strstr(err, "(0, 100%)") && strstr(err, "4096"),
       "kv_params_check: window = budget leaves no key token: invalid, window range named: %s",
       err);
    p.policy = KV_POLICY_KEYFORMER;
    p.recent = 0.3f;
    p.budget = 1;
    err[0] = 0;
    st = kv_params_check(&p, 4096, err, sizeof err);
    ok(st == STATUS_INVALID && one_line(err) && strstr(err, "4..4096"),
       "kv_params_check: keyformer budget 1 < window + 2: invalid, range 4..4096 named: %s", err);
    p.budget = 3; /* w = floor(0.3 * 3) = 0: no room for the current token */
    err[0] = 0;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_INVALID && strstr(err, "4..4096"),
       "kv_params_check: keyformer budget 3 (window 0) is refused: %s", err);
    p.budget = 100;
    p.recent = 1.0f; /* w = B at every B: no budget leaves a key slot */
    err[0] = 0;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_INVALID && one_line(err) &&
           strstr(err, "--kv-recent") && strstr(err, "(0, 100%)") && !strstr(err, "4097"),
       "kv_params_check: keyformer with a 100%% window names the valid window range: %s", err);
    p.recent = 0.3f;
    p.budget = 100;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_OK, "kv_params_check: keyformer 100");
    p.budget = 4096;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_OK, "kv_params_check: budget = n_ctx");
    p.budget = 5000;
    err[0] = 0;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_OK,
       "kv_params_check: a budget beyond n_ctx means no eviction (kv_cache.h)");
    p.budget = 100;
    p.recent = 0.0f;
    err[0] = 0;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_INVALID && one_line(err),
       "kv_params_check: keyformer with a 0%% window is refused: %s", err);
    p.recent = 0.3f;
    p.policy = KV_POLICY_SINK;
    p.budget = 4;
    err[0] = 0;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_INVALID && one_line(err) &&
           strstr(err, "5..4096") && strstr(err, "sinks"),
       "kv_params_check: sink budget 4 = n_sink leaves no recent slot: %s", err);
    p.budget = 5;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_OK, "kv_params_check: sink budget 5");
    p.policy = (enum kv_policy)77;
    err[0] = 0;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_INVALID && one_line(err) &&
           strstr(err, "keyformer"),
       "kv_params_check: unknown policy, valid ones listed: %s", err);
    p = kv_params_default();
    p.budget = 100;
    p.recent = 1.5f;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_INVALID, "kv_params_check: recent 1.5");
    p.recent = 0.3f;
    p.tau_init = 0.0f;
    ok(kv_params_check(&p, 4096, err, sizeof err) == STATUS_INVALID, "kv_params_check: tau 0");

    struct kv_shape sh = { .n_layer = 1, .n_head = 2, .n_head_kv = 1, .head_dim = 8,
                           .n_ctx = 64, .n_batch = 8, .scale = 0.35f };
    struct kv_cache *kv = (struct kv_cache *)&sh; /* must be reset to NULL on failure */
    p = kv_params_default();
    p.budget = 1;
    st = kv_cache_new(&kv, &sh, &p, err, sizeof err);
    ok(st == STATUS_INVALID && kv == NULL, "kv_cache_new refuses bad params and returns NULL");
}

/* ---- the memory bound of a long chat ------------------------------------------------------ */

enum { N_POS = 20000, N_CTX = 20480, BUDGET = 256 };

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* KiB on Linux */
}

/* What the chat saw. */
struct chat {
    int calls, bad_status, over_budget, alloc_changed, n_past;
    size_t bound, worst_used, alloc0;
    long rss0, rss1;
    char err[256];
};

/* User turns of 100-300 tokens, each followed by 50-200 single-token decode steps, until
 * N_POS positions; the baseline RSS is taken after a first turn and step (buffers touched). */
static int run_chat(const char *model, struct chat *c)
{
    /* one thread: the chat's time is the tiny model's per-call overhead, not parallel work */
    struct engine_params ep = { .model_path = model, .n_ctx = N_CTX, .n_threads = 1,
                                .kv_set = 1, .kv = kv_params_default(), .kv_budget = "256" };
    ep.kv.policy = KV_POLICY_KEYFORMER;
    memset(c, 0, sizeof(*c));
    struct engine *e = NULL;
    if (engine_open(&e, &ep, c->err, sizeof c->err) != STATUS_OK)
        return -1;
    struct engine_info info;
    engine_get_info(e, &info);
    size_t entry = 2 * (size_t)(info.n_embd / info.n_head) * sizeof(float);
    c->bound = (size_t)BUDGET * entry * info.n_layer * info.n_head_kv;
    c->alloc0 = kv_cache_bytes_alloc(engine_kv(e));
    int n_vocab = engine_n_vocab(e);
    int32_t toks[300];
    rng_state = 2024;
    for (int turn = 0; engine_n_past(e) < N_POS; turn++) {
        int n = rng_range(100, 300), steps = turn == 0 ? 1 : rng_range(50, 200);
        if (n > N_POS - engine_n_past(e))
            n = N_POS - engine_n_past(e);
        for (int call = -1; call < steps && engine_n_past(e) < N_POS; call++) {
            int k = call < 0 ? n : 1; /* the turn, then its decode steps */
            for (int i = 0; i < k; i++)
                toks[i] = rng_range(3, n_vocab - 1);
            int st = engine_eval(e, toks, k, NULL, NULL, NULL);
            c->calls++;
            if (st != STATUS_OK && c->bad_status++ == 0)
                snprintf(c->err, sizeof c->err, "call %d: %s", c->calls, engine_errmsg(e));
            size_t used = engine_kv_bytes_used(e);
            if (used > c->worst_used)
                c->worst_used = used;
            c->over_budget += used > c->bound;
            c->alloc_changed += kv_cache_bytes_alloc(engine_kv(e)) != c->alloc0;
        }
        if (turn == 0)
            c->rss0 = maxrss_kib();
    }
    c->rss1 = maxrss_kib();
    c->n_past = engine_n_past(e);
    engine_close(e);
    return 0;
}

/*
 * Peak RSS growth of filling an unbounded (full) cache of the tiny model's shape with N_POS
 * positions, through store/commit only (no attention: it is the storage that must show).
 */
static long full_cache_growth(void)
{
    struct kv_shape sh = { .n_layer = 2, .n_head = 4, .n_head_kv = 2, .head_dim = 16,
                           .n_ctx = N_CTX, .n_batch = 512, .scale = 0.25f };
    struct kv_params p = kv_params_default();
    p.policy = KV_POLICY_FULL;
    struct kv_cache *kv;
    if (kv_cache_new(&kv, &sh, &p, NULL, 0) != STATUS_OK)
        return -1;
    float k[16], v[16];
    for (int d = 0; d < 16; d++)
        k[d] = v[d] = (float)d;
    long rss0 = maxrss_kib();
    for (int pos = 0; pos < N_POS; pos += 500) {
        if (kv_cache_begin(kv, pos, 500) != STATUS_OK)
            return -1;
        for (int l = 0; l < 2; l++) {
            for (int t = 0; t < 500; t++)
                for (int g = 0; g < 2; g++)
                    kv_cache_store(kv, l, g, pos + t, k, v);
            kv_cache_commit_layer(kv, l, NULL);
        }
        kv_cache_end(kv);
    }
    long grow = maxrss_kib() - rss0;
    kv_cache_free(kv);
    return grow;
}

static void test_memory_bound(void)
{
    char vocab[4096], mk[4096], model[4096], cmd[16384];
    testutil_path(vocab, sizeof vocab, testutil_testdata(), "vocab/ggml-vocab-llama-spm.gguf");
    testutil_path(mk, sizeof mk, testutil_builddir(), "kfchat-mkmodel");
    if (!testutil_is_file(vocab) || !testutil_is_executable(mk)) {
        skip("memory bound: kfchat-mkmodel or the llama-spm vocab is missing");
        return;
    }
    const char *dir = testutil_tmpdir();
    testutil_path(model, sizeof model, dir, "tiny.gguf");
    snprintf(cmd, sizeof cmd, "'%s' --arch llama --vocab '%s' --embd 64 --layers 2 --heads 4 "
             "--kv-heads 2 --ff 128 --type q8_0 --ctx %d -o '%s' >/dev/null", mk, vocab, N_CTX,
             model);
    if (!ok(system(cmd) == 0, "memory bound: tiny model written")) {
        testutil_tmpdir_remove(dir);
        return;
    }
    /* the instrument's control, in a child (peak RSS is per process): the same cache shape
     * without a budget, filled to N_POS positions, must show up in the RSS */
    int pfd[2];
    long control = -1;
    if (pipe(pfd) == 0) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            long grow = full_cache_growth();
            _exit(write(pfd[1], &grow, sizeof grow) == sizeof grow ? 0 : 1);
        }
        close(pfd[1]);
        if (pid > 0 && read(pfd[0], &control, sizeof control) != sizeof control)
            control = -1;
        close(pfd[0]);
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    struct chat c;
    if (!ok(run_chat(model, &c) == 0, "memory bound: engine opens with keyformer, budget 256")) {
        diag("%s", c.err);
        testutil_tmpdir_remove(dir);
        return;
    }
    ok(c.bad_status == 0 && c.n_past == N_POS, "memory bound: %d calls, %d positions, all OK%s%s",
       c.calls, c.n_past, c.bad_status ? ": " : "", c.bad_status ? c.err : "");
    ok(c.over_budget == 0, "memory bound: bytes used <= %zu (budget x entry x layers x KV heads) "
       "after every call (worst %zu, %d over)", c.bound, c.worst_used, c.over_budget);
    ok(c.alloc_changed == 0 && c.alloc0 > 0, "memory bound: bytes allocated constant (%zu)",
       c.alloc0);
    long grow = c.rss1 - c.rss0, limit = 4096; /* KiB; the full cache needs ~10 MiB here */
    ok(grow < limit, "memory bound: peak RSS grew %ld KiB over the chat (limit %ld)", grow, limit);
    ok(control > limit, "memory bound: control: an unbounded cache of the same shape filled to "
       "%d positions grows the peak RSS by %ld KiB (> %ld), so the check can fail", N_POS,
       control, limit);
    testutil_tmpdir_remove(dir);
}

int main(void)
{
    test_noise();
    test_names_and_parsing();
    test_memory_bound();
    return done_testing();
}
