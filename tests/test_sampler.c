/*
 * test_sampler.c — the sampler chain on hand-made distributions: each truncation step, the
 * penalty math, temperature, the draw's frequencies, seeding and exact save/restore.
 * Candidate sets are read through sampler_candidates; naive full-sort references check the
 * fast paths at a 262144-token vocabulary.
 */
#include "config.h"
#include "sampler.h"
#include "status.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A chain with every step off except what the test turns on. */
static struct sampler_params plain(void)
{
    struct sampler_params p = sampler_params_default();
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 1234;
    return p;
}

static struct sampler *make(const struct sampler_params *p, int n_vocab)
{
    struct sampler *s = NULL;
    if (sampler_new(&s, p, n_vocab) != STATUS_OK) {
        printf("Bail out! sampler_new failed\n");
        exit(1);
    }
    return s;
}

/* Logits whose softmax is exactly probs (up to rounding). */
static void logits_from_probs(float *logits, const double *probs, int n)
{
    for (int i = 0; i < n; i++)
        logits[i] = (float)log(probs[i]);
}

/* The surviving ids as a bit set (n <= 32) for compact comparisons. */
static unsigned survivors(struct sampler *s, const float *logits, int n)
{
    int ids[32];
    int got = sampler_candidates(s, logits, n, ids, NULL, 32);
    unsigned set = 0;
    for (int i = 0; i < got && i < 32; i++)
        set |= 1u << ids[i];
    return set;
}

static void test_defaults(void)
{
    struct sampler_params p = sampler_params_default();
    ok(p.temp == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f,
       "defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05");
    ok(p.repeat_penalty == 1.0f && p.penalty_last_n == 64 && p.freq_penalty == 0.0f &&
           p.presence_penalty == 0.0f,
       "defaults: penalties off, last_n 64");
    ok(p.seed == SAMPLER_SEED_RANDOM, "defaults: random seed");

    struct sampler *a = make(&p, 10), *b = make(&p, 10);
    ok(sampler_seed(a) != SAMPLER_SEED_RANDOM && sampler_seed(a) != sampler_seed(b),
       "random seeds are drawn and differ");
    sampler_free(a);
    sampler_free(b);

    struct sampler *s = (struct sampler *)1;
    ok(sampler_new(&s, &p, 0) == STATUS_INVALID && s == NULL, "n_vocab 0 is invalid");
    p.penalty_last_n = -1;
    ok(sampler_new(&s, &p, 10) == STATUS_INVALID, "penalty_last_n -1 is invalid");
}

static void test_greedy(void)
{
    struct sampler_params p = plain();
    p.temp = 0.0f;
    struct sampler *s = make(&p, 8);
    float l[8] = {0.1f, 2.0f, -1.0f, 3.5f, 3.5f, 0.0f, -7.0f, 1.0f};
    ok(sampler_sample(s, l, 8) == 3, "greedy: argmax, lowest id on ties");
    float l2[8] = {-3, -2, -9, -1, -5, -4, -8, -1.5f};
    ok(sampler_sample(s, l2, 8) == 3, "greedy: argmax of all-negative logits");
    p.temp = -1.0f;
    p.top_k = 0;
    sampler_free(s);
    s = make(&p, 8);
    ok(sampler_sample(s, l, 8) == 3, "greedy with temp < 0 and top-k off");
    ok(sampler_candidates(s, l, 8, NULL, NULL, 0) == 1, "greedy leaves one candidate");
    sampler_free(s);
}

static const double probs4[] = {0.5, 0.3, 0.15, 0.05};

static void test_top_k(void)
{
    float l[4];
    logits_from_probs(l, probs4, 4);
    struct sampler_params p = plain();
    p.top_k = 2;
    struct sampler *s = make(&p, 4);
    int ids[4];
    float pr[4];
    int n = sampler_candidates(s, l, 4, ids, pr, 4);
    ok(n == 2 && ids[0] == 0 && ids[1] == 1, "top-k 2 keeps the two best");
    ok(n == 2 && fabsf(pr[0] - 0.625f) < 1e-6f && fabsf(pr[1] - 0.375f) < 1e-6f,
       "top-k survivors are renormalised (0.625, 0.375)");
    sampler_free(s);

    p.top_k = 4;
    s = make(&p, 4);
    ok(survivors(s, l, 4) == 0xf, "top-k = n keeps all");
    sampler_free(s);
    p.top_k = 100;
    s = make(&p, 4);
    ok(survivors(s, l, 4) == 0xf, "top-k > n keeps all");
    sampler_free(s);

    float tie[6] = {1, 2, 2, 2, 0, 2};
    p.top_k = 2;
    s = make(&p, 6);
    ok(survivors(s, tie, 6) == ((1u << 1) | (1u << 2)), "top-k ties break toward lower ids");
    sampler_free(s);
}

static void test_top_p(void)
{
    float l[4];
    logits_from_probs(l, probs4, 4);
    static const struct {
        float top_p;
        unsigned want;
    } cases[] = {
        {0.40f, 0x1}, {0.75f, 0x3}, {0.85f, 0x7}, {0.97f, 0xf}, {1.0f, 0xf},
    };
    for (int sorted = 0; sorted <= 1; sorted++) {
        for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
            struct sampler_params p = plain();
            p.top_p = cases[i].top_p;
            p.top_k = sorted ? 40 : 0; /* sorted (top-k) and unsorted (full) paths */
            struct sampler *s = make(&p, 4);
            unsigned got = survivors(s, l, 4);
            ok(got == cases[i].want, "top-p %.2f keeps set 0x%x (got 0x%x, %s path)",
               cases[i].top_p, cases[i].want, got, sorted ? "top-k" : "full");
            sampler_free(s);
        }
    }
    /* Truncation comes before temperature: a hot temperature does not widen top-p. */
    struct sampler_params p = plain();
    p.top_p = 0.75f;
    p.temp = 10.0f;
    struct sampler *s = make(&p, 4);
    ok(survivors(s, l, 4) == 0x3, "top-p sees the untempered distribution");
    sampler_free(s);
}

static void test_min_p(void)
{
    float l[4];
    logits_from_probs(l, probs4, 4);
    static const struct {
        float min_p;
        unsigned want;
    } cases[] = {
        {0.05f, 0xf}, {0.2f, 0x7}, {0.5f, 0x3}, {0.7f, 0x1}, {1.0f, 0x1},
    };
    for (int sorted = 0; sorted <= 1; sorted++) {
        for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
            struct sampler_params p = plain();
            p.min_p = cases[i].min_p;
            p.top_k = sorted ? 40 : 0;
            struct sampler *s = make(&p, 4);
            unsigned got = survivors(s, l, 4);
            ok(got == cases[i].want, "min-p %.2f keeps set 0x%x (got 0x%x, %s path)",
               cases[i].min_p, cases[i].want, got, sorted ? "top-k" : "full");
            sampler_free(s);
        }
    }
    /* Combined: top-p measures against the mass before min-p (0.84 of 1.0 needs three
     * tokens; 0.84 of what min-p 0.2 leaves, 0.95, would need only two). */
    static const struct {
        float top_p, min_p;
        unsigned want;
    } both[] = {{0.85f, 0.5f, 0x3}, {0.84f, 0.2f, 0x7}, {0.4f, 0.05f, 0x1}, {0.97f, 0.2f, 0x7}};
    for (int sorted = 0; sorted <= 1; sorted++) {
        for (size_t i = 0; i < ARRAY_LEN(both); i++) {
            struct sampler_params p = plain();
            p.top_p = both[i].top_p;
            p.min_p = both[i].min_p;
            p.top_k = sorted ? 40 : 0;
            struct sampler *s = make(&p, 4);
            unsigned got = survivors(s, l, 4);
            ok(got == both[i].want, "top-p %.2f then min-p %.2f keeps 0x%x (got 0x%x, %s path)",
               both[i].top_p, both[i].min_p, both[i].want, got, sorted ? "top-k" : "full");
            sampler_free(s);
        }
    }
}

static void test_temperature(void)
{
    const float l[3] = {1.0f, 0.0f, -1.0f};
    const float temps[] = {0.5f, 1.0f, 2.0f};
    for (size_t t = 0; t < ARRAY_LEN(temps); t++) {
        struct sampler_params p = plain();
        p.temp = temps[t];
        struct sampler *s = make(&p, 3);
        int ids[3];
        float pr[3];
        int n = sampler_candidates(s, l, 3, ids, pr, 3);
        double z = 0, want[3];
        for (int i = 0; i < 3; i++)
            z += want[i] = exp(l[i] / temps[t]);
        int good = n == 3;
        for (int i = 0; good && i < 3; i++)
            good = fabs(pr[i] - want[ids[i]] / z) < 1e-6;
        ok(good, "temperature %.1f: probs are softmax(logit / T)", temps[t]);
        if (t == 0)
            ok(good && pr[0] > 0.86f, "T 0.5 sharpens (p_max %.3f)", pr[0]);
        if (t == 2)
            ok(good && pr[0] < 0.51f, "T 2 flattens (p_max %.3f)", pr[0]);
        sampler_free(s);
    }
}

static float get_prob(struct sampler *s, const float *l, int n, int id)
{
    int ids[16];
    float pr[16];
    int got = sampler_candidates(s, l, n, ids, pr, 16);
    for (int i = 0; i < got && i < 16; i++)
        if (ids[i] == id)
            return pr[i];
    return 0.0f;
}

/* The penalised logit of each token, recovered as log(p_i / p_ref) + logit_ref of a token
 * that is not in the ring. */
static void check_penalised(struct sampler *s, const float *l, int n, int ref, const float *want,
                            const char *what)
{
    int good = 1;
    float pref = get_prob(s, l, n, ref);
    for (int i = 0; i < n; i++) {
        float got = logf(get_prob(s, l, n, i) / pref) + l[ref];
        if (fabsf(got - want[i]) > 1e-4f) {
            diag("%s: token %d logit %g, want %g", what, i, got, want[i]);
            good = 0;
        }
    }
    ok(good, "%s", what);
}

static void test_penalties(void)
{
    const float l[5] = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f};
    struct sampler_params p = plain();
    p.repeat_penalty = 2.0f;
    p.penalty_last_n = 8;
    struct sampler *s = make(&p, 5);
    sampler_accept(s, 0);
    sampler_accept(s, 1);
    sampler_accept(s, 1);
    sampler_accept(s, 4);
    /* > 0 divided, <= 0 multiplied (0 stays 0), once per token whatever the count */
    const float want[5] = {1.0f, -2.0f, 0.5f, 3.0f, 0.0f};
    check_penalised(s, l, 5, 3, want, "repeat penalty: 2/2, -1*2, 0*2");
    sampler_free(s);

    p.repeat_penalty = 1.0f;
    p.freq_penalty = 0.25f;
    p.presence_penalty = 0.5f;
    s = make(&p, 5);
    sampler_accept(s, 0);
    sampler_accept(s, 1);
    sampler_accept(s, 1);
    sampler_accept(s, 1);
    const float want2[5] = {2.0f - 0.25f - 0.5f, -1.0f - 0.75f - 0.5f, 0.5f, 3.0f, 0.0f};
    check_penalised(s, l, 5, 3, want2, "frequency 0.25 per count + presence 0.5");
    sampler_free(s);

    /* The ring forgets: with last_n 2, the first of three tokens is no longer penalised. */
    p = plain();
    p.repeat_penalty = 2.0f;
    p.penalty_last_n = 2;
    s = make(&p, 5);
    sampler_accept(s, 0);
    sampler_accept(s, 2);
    sampler_accept(s, 1);
    const float want3[5] = {2.0f, -2.0f, 0.25f, 3.0f, 0.0f};
    check_penalised(s, l, 5, 3, want3, "penalty window is the last 2 tokens");
    sampler_accept(s, 99); /* out of vocabulary: ignored */
    sampler_accept(s, -1);
    check_penalised(s, l, 5, 3, want3, "out-of-range tokens are not accepted");
    sampler_reset(s);
    check_penalised(s, l, 5, 3, l, "reset clears the ring");
    sampler_free(s);

    /* Penalties come before greedy/top-k: a repeated best token loses the argmax. */
    p = plain();
    p.temp = 0.0f;
    p.repeat_penalty = 4.0f;
    s = make(&p, 5);
    sampler_accept(s, 3);
    ok(sampler_sample(s, l, 5) == 0, "greedy takes the penalised argmax");
    sampler_free(s);
}

static void test_dist_frequencies(void)
{
    const double pr[3] = {0.5, 0.3, 0.2};
    float l[3];
    logits_from_probs(l, pr, 3);
    struct sampler_params p = plain();
    struct sampler *s = make(&p, 3);
    enum { N = 100000 };
    int hist[3] = {0};
    for (int i = 0; i < N; i++) {
        int t = sampler_sample(s, l, 3);
        if (t >= 0 && t < 3)
            hist[t]++;
    }
    for (int i = 0; i < 3; i++) {
        double f = (double)hist[i] / N;
        double sigma = sqrt(pr[i] * (1 - pr[i]) / N);
        ok(fabs(f - pr[i]) < 5 * sigma, "dist: token %d frequency %.4f ~ %.2f (5 sigma %.4f)", i, f,
           pr[i], 5 * sigma);
    }
    sampler_free(s);

    /* Temperature reshapes the draw: T = 2 on the same logits gives sqrt-proportional odds. */
    p.temp = 2.0f;
    s = make(&p, 3);
    memset(hist, 0, sizeof(hist));
    for (int i = 0; i < N; i++)
        hist[sampler_sample(s, l, 3)]++;
    double z = sqrt(0.5) + sqrt(0.3) + sqrt(0.2);
    int good = 1;
    for (int i = 0; i < 3; i++) {
        double want = sqrt(pr[i]) / z, f = (double)hist[i] / N;
        good &= fabs(f - want) < 5 * sqrt(want * (1 - want) / N);
    }
    ok(good, "dist at T 2 follows softmax(logit / 2)");
    sampler_free(s);
}

static void random_logits(float *l, int n, uint32_t seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        l[i] = (float)(seed >> 8) / (float)(1u << 24) * 20.0f - 10.0f;
    }
}

static void draw_seq(struct sampler *s, const float *l, int n, int *out, int count)
{
    for (int i = 0; i < count; i++) {
        out[i] = sampler_sample(s, l, n);
        sampler_accept(s, out[i]);
    }
}

static void test_seeds_and_state(void)
{
    enum { NV = 1000, K = 200 };
    static float l[NV];
    random_logits(l, NV, 7);
    struct sampler_params p = sampler_params_default();
    p.temp = 1.5f; /* wide enough that the draws vary */
    p.repeat_penalty = 1.3f;
    p.seed = 42;
    static int a[K], b[K], c[K];

    struct sampler *s1 = make(&p, NV), *s2 = make(&p, NV);
    draw_seq(s1, l, NV, a, K);
    draw_seq(s2, l, NV, b, K);
    ok(memcmp(a, b, sizeof(a)) == 0, "same seed, same sequence");
    ok(sampler_seed(s1) == 42, "sampler_seed reports the given seed");
    sampler_free(s2);
    p.seed = 43;
    s2 = make(&p, NV);
    draw_seq(s2, l, NV, b, K);
    ok(memcmp(a, b, sizeof(a)) != 0, "different seed, different sequence");
    sampler_free(s2);
    sampler_free(s1);

    /* Save mid-sequence (ring full and wrapped), continue, then restore and replay. */
    p.seed = 42;
    s1 = make(&p, NV);
    draw_seq(s1, l, NV, a, K);
    size_t sz = sampler_state_size(s1);
    ok(sz == 52 + 4 * 64, "state size covers the full ring (%zu)", sz);
    unsigned char *buf = malloc(sz);
    sampler_state_save(s1, buf);
    draw_seq(s1, l, NV, b, K);

    ok(sampler_state_load(s1, buf, sz) == STATUS_OK, "load into the same sampler");
    draw_seq(s1, l, NV, c, K);
    ok(memcmp(b, c, sizeof(b)) == 0, "restored sampler continues identically");

    p.seed = 999; /* the state carries the RNG; the new sampler's own seed is irrelevant */
    s2 = make(&p, NV);
    ok(sampler_state_load(s2, buf, sz) == STATUS_OK, "load into a fresh sampler");
    draw_seq(s2, l, NV, c, K);
    ok(memcmp(b, c, sizeof(b)) == 0, "fresh sampler continues identically");
    ok(sampler_seed(s2) == 42, "loaded state restores the seed");

    ok(sampler_state_load(s2, buf, sz - 1) == STATUS_FORMAT, "truncated state is rejected");
    buf[0] ^= 1;
    ok(sampler_state_load(s2, buf, sz) == STATUS_FORMAT, "bad magic is rejected");
    buf[0] ^= 1;
    struct sampler *small = make(&p, 10);
    ok(sampler_state_load(small, buf, sz) == STATUS_FORMAT, "out-of-vocabulary ring is rejected");
    sampler_free(small);
    free(buf);

    /* A partially filled ring round-trips too. */
    sampler_reset(s2);
    sampler_accept(s2, 5);
    sampler_accept(s2, 6);
    sz = sampler_state_size(s2);
    buf = malloc(sz);
    sampler_state_save(s2, buf);
    draw_seq(s2, l, NV, a, 20);
    ok(sampler_state_load(s2, buf, sz) == STATUS_OK && sz == 52 + 8, "partial ring round-trips");
    draw_seq(s2, l, NV, b, 20);
    ok(memcmp(a, b, 20 * sizeof(int)) == 0, "partial ring: identical continuation");
    free(buf);
    sampler_free(s2);
    sampler_free(s1);
}

/* Naive reference order for ids: sort_vals descending, then lower id (qsort has no context
 * argument, hence the file-scope pointer). */
static const float *sort_vals;

static int cmp_ref(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb;
    if (sort_vals[a] != sort_vals[b])
        return sort_vals[a] > sort_vals[b] ? -1 : 1;
    return a - b;
}

/* Reference penalties (each distinct ring token once) and full-sort order of all ids. */
static void ref_order(const float *l, int n, const int *ring, int nring,
                      const struct sampler_params *p, float *pen, int *order)
{
    memcpy(pen, l, (size_t)n * sizeof(float));
    for (int i = 0; i < nring; i++) {
        int t = ring[i], c = 0, first = 1;
        for (int j = 0; j < nring; j++) {
            c += ring[j] == t;
            if (j < i && ring[j] == t)
                first = 0;
        }
        if (!first)
            continue;
        float x = l[t];
        x = x <= 0 ? x * p->repeat_penalty : x / p->repeat_penalty;
        pen[t] = x - (float)c * p->freq_penalty - p->presence_penalty;
    }
    for (int i = 0; i < n; i++)
        order[i] = i;
    sort_vals = pen;
    qsort(order, (size_t)n, sizeof(int), cmp_ref);
}

/* Reference truncation on the sorted order: top-k, then top-p over the top-k survivors'
 * softmax, then min-p; returns the survivor count (a prefix of order). */
static int ref_truncate(const float *pen, const int *order, int n, const struct sampler_params *p)
{
    int keep = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    float mx = pen[order[0]];
    if (p->top_p < 1.0f) {
        double z = 0, cum = 0;
        for (int i = 0; i < keep; i++)
            z += exp((double)pen[order[i]] - mx);
        for (int i = 0; i < keep; i++) {
            cum += exp((double)pen[order[i]] - mx);
            if (cum >= p->top_p * z) {
                keep = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        int m = 0;
        while (m < keep && pen[order[m]] >= mx + logf(p->min_p))
            m++;
        keep = m > 0 ? m : 1;
    }
    return keep;
}

/* Small random cases through every path (heap top-k, full fill + partial sort, unsorted
 * output of sampler_candidates, top-p and min-p on both) against the reference. */
static void test_random_small(void)
{
    uint32_t r = 12345;
    int bad = 0, runs = 0;
    for (int iter = 0; iter < 400; iter++) {
        float l[64], pen[64];
        int order[64], ring[16], ids[64];
        r = r * 1664525u + 1013904223u;
        int n = 1 + (int)(r >> 16) % 64;
        random_logits(l, n, r);
        if (iter % 3 == 0) /* coarse values: many exact ties */
            for (int i = 0; i < n; i++)
                l[i] = floorf(l[i] / 4);
        struct sampler_params p = plain();
        p.top_k = (int)(r >> 8) % (n + 3) - 1; /* -1 .. n+1 */
        p.penalty_last_n = 16;
        p.repeat_penalty = (iter & 1) ? 1.7f : 0.6f;
        p.presence_penalty = (iter & 2) ? 0.4f : -0.4f;
        if (iter % 4 == 1)
            p.top_p = 0.3f + (float)((r >> 3) % 70) / 100.0f;
        if (iter % 5 == 2)
            p.min_p = (float)((r >> 5) % 60) / 100.0f;
        struct sampler *s = make(&p, 64);
        int nring = (int)(r >> 4) % 17;
        for (int i = 0; i < nring; i++) {
            r = r * 1664525u + 1013904223u;
            ring[i] = (int)(r >> 16) % n;
            sampler_accept(s, ring[i]);
        }
        ref_order(l, n, ring, nring, &p, pen, order);
        int want = ref_truncate(pen, order, n, &p);
        int got = sampler_candidates(s, l, n, ids, NULL, 64);
        runs++;
        if (got != want || memcmp(ids, order, (size_t)want * sizeof(int)) != 0) {
            if (!bad)
                diag("mismatch: n %d top_k %d ring %d: got %d want %d", n, p.top_k, nring, got,
                     want);
            bad++;
        }
        sampler_free(s);
    }
    ok(bad == 0, "%d random small cases match the reference (%d bad)", runs, bad);
}

static void test_large_vocab(void)
{
    enum { NV = 262144, RING = 64, K = 40 };
    float *l = malloc(NV * sizeof(float)), *pen = malloc(NV * sizeof(float));
    int *order = malloc(NV * sizeof(int));
    random_logits(l, NV, 99);
    /* Plant a few of the best raw logits in the ring so penalties reshuffle the top-k. */
    int ring[RING];
    for (int i = 0; i < NV; i++)
        order[i] = i;
    sort_vals = l;
    qsort(order, NV, sizeof(int), cmp_ref);
    for (int i = 0; i < RING; i++)
        ring[i] = i < 24 ? order[i * 2] : order[1000 + i * 37];

    for (int variant = 0; variant < 2; variant++) {
        struct sampler_params p = plain();
        p.top_k = K;
        p.penalty_last_n = RING;
        /* variant 0 pushes repeated tokens down, variant 1 pulls them up */
        p.repeat_penalty = variant ? 0.5f : 1.5f;
        p.freq_penalty = variant ? -0.5f : 0.2f;
        p.presence_penalty = variant ? -1.0f : 0.3f;
        struct sampler *s = make(&p, NV);
        for (int i = 0; i < RING; i++)
            sampler_accept(s, ring[i]);
        ref_order(l, NV, ring, RING, &p, pen, order);

        int ids[K];
        int n = sampler_candidates(s, l, NV, ids, NULL, K);
        ok(n == K && memcmp(ids, order, sizeof(ids)) == 0,
           "262144 vocab: top-%d with penalties (%s) matches a full sort", K,
           variant ? "boosting" : "damping");

        float *copy = malloc(NV * sizeof(float));
        memcpy(copy, l, NV * sizeof(float));
        int t = sampler_sample(s, l, NV);
        int in_top = 0;
        for (int i = 0; i < K; i++)
            in_top |= order[i] == t;
        ok(in_top && memcmp(copy, l, NV * sizeof(float)) == 0,
           "sample draws from the top-k and leaves logits untouched");
        free(copy);
        sampler_free(s);
    }

    /* top-k off, top-p on: the progressive partial sort against a full-sort prefix. */
    struct sampler_params p = plain();
    p.top_p = 0.9f;
    struct sampler *s = make(&p, NV);
    for (int i = 0; i < NV; i++)
        order[i] = i;
    sort_vals = l;
    qsort(order, NV, sizeof(int), cmp_ref);
    double z = 0, cum = 0;
    for (int i = 0; i < NV; i++)
        z += exp((double)l[i] - l[order[0]]);
    int want = NV;
    for (int i = 0; i < NV; i++) {
        cum += exp((double)l[order[i]] - l[order[0]]);
        if (cum >= 0.9 * z) {
            want = i + 1;
            break;
        }
    }
    int *ids = malloc(NV * sizeof(int));
    int n = sampler_candidates(s, l, NV, ids, NULL, NV);
    for (int i = 0; i < want; i++)
        if (ids[i] != order[i]) {
            diag("first mismatch at %d: %d (%g) vs %d (%g)", i, ids[i], l[ids[i]], order[i],
                 l[order[i]]);
            break;
        }
    ok(n == want && memcmp(ids, order, (size_t)want * sizeof(int)) == 0,
       "262144 vocab, top-k off: top-p 0.9 keeps the %d-token prefix (got %d)", want, n);
    sampler_free(s);

    /* Greedy over the whole vocabulary. */
    p = plain();
    p.temp = 0.0f;
    s = make(&p, NV);
    ok(sampler_sample(s, l, NV) == order[0], "262144 vocab: greedy is the argmax");
    ok(sampler_sample(s, l, 1000) >= 0 && sampler_sample(s, l, NV + 1) == STATUS_INVALID &&
           sampler_sample(s, NULL, NV) == STATUS_INVALID,
       "smaller n_vocab accepted, larger or NULL logits rejected");
    sampler_free(s);
    free(ids);
    free(order);
    free(pen);
    free(l);
}

int main(void)
{
    test_defaults();
    test_greedy();
    test_top_k();
    test_top_p();
    test_min_p();
    test_temperature();
    test_penalties();
    test_dist_frequencies();
    test_seeds_and_state();
    test_random_small();
    test_large_vocab();
    return done_testing();
}
