/*
 * test_kv.c — the KV cache (engine/kv_cache.h) against the independent reference in
 * tests/ref/kv_ref.c, driven exactly as engine/model.c drives it (begin; per layer: store every
 * token's k/v, attend every (token, query head) with per-head accumulators, commit; end), with
 * random q/k/v vectors.  After every call: the kept positions per (layer, KV head), their scores,
 * the trace flags and order, the attention outputs (against naive double-precision attention over
 * the reference's kept set), the budget bounds, the byte counters, and that an evicted position
 * never comes back.  Every policy runs on MHA, GQA (group 4, with sliding-window layers) and
 * MQA shapes, over a long decode, a chat of turns and replies, and a prompt several budgets long.
 * Also: the keyformer-static off-by-one of keyformer.md §1.6 checked against a from-scratch
 * prefill score, truncate, reset, refused calls, sizes.  (Noise law, parsing, checks and the
 * memory bound are in test_kv_memory.c.)
 *
 * Near-ties: the engine ranks with float scores, the reference with doubles; when their choices
 * differ and the reference's scores of the two sides are within 1e-6 + 1e-5 x score (the float
 * rounding of the engine's sums), it is a legitimate tie: reported with diag, the reference
 * adopts the engine's choice, and the run goes on.  Continuous random data makes them rare.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"
#include "kv_sync.h"
#include "ref/kv_ref.h"
#include "status.h"
#include "tap.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_DIAG 6 /* detailed diagnostics per run and kind; the rest are only counted */

/* ---- random numbers (splitmix64: small, seedable, good enough for test data) -------------- */

static uint64_t rng_state;

static uint64_t rng_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unif(void) /* (0, 1) */
{
    return ((double)(rng_u64() >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(void)
{
    return sqrt(-2.0 * log(rng_unif())) * cos(6.283185307179586 * rng_unif());
}

/* ---- the side-by-side driver ---------------------------------------------------------------- */

struct spec {
    char name[96];
    enum kv_policy policy;
    int n_layer, n_head, n_head_kv, head_dim, n_ctx, n_batch, budget;
    const int *swa;
    float recent;
    const int *sched; /* token counts of the calls */
    int n_calls;
};

struct run {
    const struct spec *s;
    struct kv_cache *kv;
    struct kv_ref *ref;
    int cap, B, bounded;
    float *Q, *K, *V;  /* [layer][pos][head][hd] */
    double *x;         /* logits of one layer of one call: [h][row][pos] */
    float **acc, *att, *out;
    int *vis;
    uint8_t *present, *gone; /* engine side, [layer][g][pos] */
    int32_t *epos, *rpos;
    float *escore;
    double *rscore;
    uint8_t *eflags, *rflags;
    size_t alloc0;
    int calls, ties;
    int during_max;    /* most entries of a global layer's KV head during the last call */
    /* failures by kind */
    int f_status, f_set, f_score, f_flags, f_out, f_bound, f_back, f_order, f_bytes, f_group;
    int group_calls;
    double out_err, score_err;
};

static float *qv(struct run *R, int l, int p, int h)
{
    return R->Q + (((size_t)l * R->s->n_ctx + p) * R->s->n_head + h) * R->s->head_dim;
}

static float *kvec(struct run *R, float *base, int l, int p, int g)
{
    return base + (((size_t)l * R->s->n_ctx + p) * R->s->n_head_kv + g) * R->s->head_dim;
}

/* Fresh random vectors for positions >= p0.  Keys get a random per-token amplitude so that
 * some tokens draw much more attention than others (heavy hitters to find). */
static void gen_vectors(struct run *R, int p0)
{
    const struct spec *s = R->s;
    for (int l = 0; l < s->n_layer; l++)
        for (int p = p0; p < s->n_ctx; p++) {
            for (int h = 0; h < s->n_head; h++)
                for (int d = 0; d < s->head_dim; d++)
                    qv(R, l, p, h)[d] = (float)rng_normal();
            for (int g = 0; g < s->n_head_kv; g++) {
                double amp = 0.3 + 2.0 * pow(rng_unif(), 2);
                for (int d = 0; d < s->head_dim; d++) {
                    kvec(R, R->K, l, p, g)[d] = (float)(amp * rng_normal());
                    kvec(R, R->V, l, p, g)[d] = (float)(2 * rng_unif() - 1);
                }
            }
        }
}

static int is_swa(const struct spec *s, int l)
{
    return s->swa && s->swa[l] > 0;
}

static struct kv_params spec_params(const struct spec *s, uint64_t seed)
{
    struct kv_params p = kv_params_default();
    p.policy = s->policy;
    p.budget = s->budget;
    p.recent = s->recent;
    p.tau_steps = 64; /* short, so that 200 decode steps also run at the clamped τ_end */
    p.seed = seed;
    return p;
}

static int run_open(struct run *R, const struct spec *s, uint64_t seed)
{
    memset(R, 0, sizeof(*R));
    R->s = s;
    struct kv_shape sh = { .n_layer = s->n_layer, .n_head = s->n_head, .n_head_kv = s->n_head_kv,
                           .head_dim = s->head_dim, .n_ctx = s->n_ctx, .n_batch = s->n_batch,
                           .swa = s->swa, .scale = 1.0f / sqrtf((float)s->head_dim) };
    struct kv_params p = spec_params(s, seed);
    char err[256];
    if (kv_cache_new(&R->kv, &sh, &p, err, sizeof err) != STATUS_OK) {
        diag("%s: kv_cache_new: %s", s->name, err);
        return -1;
    }
    struct kv_ref_shape rs = { s->n_layer, s->n_head, s->n_head_kv, s->n_ctx, s->swa };
    R->ref = kv_ref_new(&rs, &p);
    R->cap = kv_cache_cap(R->kv);
    R->B = s->budget;
    R->bounded = kv_ref_bounded(R->ref);
    size_t nv = (size_t)s->n_layer * s->n_ctx * s->head_dim;
    size_t lgp = (size_t)s->n_layer * s->n_head_kv * s->n_ctx;
    R->Q = malloc(nv * s->n_head * sizeof(float));
    R->K = malloc(nv * s->n_head_kv * sizeof(float));
    R->V = malloc(nv * s->n_head_kv * sizeof(float));
    R->x = malloc((size_t)s->n_head * s->n_batch * s->n_ctx * sizeof(double));
    R->acc = calloc((size_t)s->n_head, sizeof(float *));
    R->att = malloc(kv_cache_attend_scratch(R->kv, s->n_head / s->n_head_kv) * sizeof(float));
    R->out = malloc((size_t)s->head_dim * sizeof(float));
    R->vis = malloc((size_t)s->n_ctx * sizeof(int));
    R->present = calloc(lgp, 1);
    R->gone = calloc(lgp, 1);
    R->epos = malloc((size_t)s->n_ctx * sizeof(int32_t));
    R->rpos = malloc((size_t)s->n_ctx * sizeof(int32_t));
    R->escore = malloc((size_t)s->n_ctx * sizeof(float));
    R->rscore = malloc((size_t)s->n_ctx * sizeof(double));
    R->eflags = malloc((size_t)s->n_ctx);
    R->rflags = malloc((size_t)s->n_ctx);
    if (!R->ref || !R->Q || !R->K || !R->V || !R->x || !R->acc || !R->att || !R->out || !R->vis ||
        !R->present || !R->gone || !R->epos || !R->rpos || !R->escore || !R->rscore ||
        !R->eflags || !R->rflags) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
    for (int h = 0; h < s->n_head; h++)
        if (!(R->acc[h] = malloc((size_t)R->cap * sizeof(float))))
            exit(1);
    R->alloc0 = kv_cache_bytes_alloc(R->kv);
    gen_vectors(R, 0);
    return 0;
}

static void run_close(struct run *R)
{
    kv_cache_free(R->kv);
    kv_ref_free(R->ref);
    for (int h = 0; h < R->s->n_head; h++)
        free(R->acc[h]);
    free(R->acc);
    free(R->Q), free(R->K), free(R->V), free(R->x), free(R->att), free(R->out), free(R->vis);
    free(R->present), free(R->gone), free(R->epos), free(R->rpos), free(R->escore);
    free(R->rscore), free(R->eflags), free(R->rflags);
}

#define FAIL(R, kind, ...)                                                                      \
    do {                                                                                        \
        if (++(R)->kind <= MAX_DIAG)                                                            \
            diag(__VA_ARGS__);                                                                  \
    } while (0)

/*
 * kv_cache_attend_heads over all query heads of each KV head against kv_cache_attend head by
 * head: the same outputs and score rows, bit for bit (own accumulators: R->acc is untouched).
 */
static void check_group(struct run *R, int l, int pos0, int n, int scoring)
{
    const struct spec *s = R->s;
    int group = s->n_head / s->n_head_kv, hd = s->head_dim;
    float *o1 = malloc((size_t)group * hd * sizeof(float));
    float *og = malloc((size_t)group * hd * sizeof(float));
    float *a1[64], *ag[64];
    for (int j = 0; j < group; j++) {
        a1[j] = calloc((size_t)R->cap, sizeof(float));
        ag[j] = calloc((size_t)R->cap, sizeof(float));
    }
    for (int g = 0; g < s->n_head_kv; g++) {
        for (int j = 0; j < group; j++) {
            memset(a1[j], 0, (size_t)R->cap * sizeof(float));
            memset(ag[j], 0, (size_t)R->cap * sizeof(float));
        }
        for (int i = 0; i < n; i++) {
            int qpos = pos0 + i, h0 = g * group;
            for (int j = 0; j < group; j++)
                kv_cache_attend(R->kv, l, h0 + j, qv(R, l, qpos, h0 + j), qpos, o1 + j * hd,
                                R->att, scoring ? a1[j] : NULL);
            kv_cache_attend_heads(R->kv, l, h0, group, qv(R, l, qpos, h0), (size_t)hd, qpos, og,
                                  (size_t)hd, R->att, scoring ? ag : NULL);
            R->group_calls++;
            if (memcmp(o1, og, (size_t)group * hd * sizeof(float)))
                FAIL(R, f_group, "%s: call %d layer %d g %d pos %d: grouped outputs differ",
                     s->name, R->calls, l, g, qpos);
        }
        int nu = kv_cache_n_used(R->kv, l, g);
        for (int j = 0; j < group; j++)
            if (memcmp(a1[j], ag[j], (size_t)nu * sizeof(float)))
                FAIL(R, f_group, "%s: call %d layer %d head %d: grouped scores differ", s->name,
                     R->calls, l, g * group + j);
    }
    for (int j = 0; j < group; j++)
        free(a1[j]), free(ag[j]);
    free(o1), free(og);
}

/* Attention outputs of one layer checked against naive double attention over the reference. */
static void attend_layer(struct run *R, int l, int pos0, int n, int scoring)
{
    const struct spec *s = R->s;
    int P = pos0 + n, group = s->n_head / s->n_head_kv, hd = s->head_dim;
    double scale = 1.0 / sqrt((double)hd);
    for (int h = 0; h < s->n_head; h++) { /* the logits, for the reference and the check */
        int g = h / group;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < P; p++) {
                const float *q = qv(R, l, pos0 + i, h), *k = kvec(R, R->K, l, p, g);
                double d = 0;
                for (int c = 0; c < hd; c++)
                    d += (double)q[c] * k[c];
                R->x[((size_t)h * n + i) * P + p] = scale * d;
            }
    }
    for (int h = 0; h < s->n_head; h++) {
        int g = h / group;
        if (scoring)
            memset(R->acc[h], 0, (size_t)R->cap * sizeof(float));
        for (int i = 0; i < n; i++) {
            int qpos = pos0 + i;
            kv_cache_attend(R->kv, l, h, qv(R, l, qpos, h), qpos, R->out, R->att,
                            scoring ? R->acc[h] : NULL);
            const double *row = R->x + ((size_t)h * n + i) * P;
            int nv = kv_ref_visible(R->ref, l, g, qpos, R->vis);
            double mx = -INFINITY, sum = 0, err = 0;
            for (int k = 0; k < nv; k++)
                mx = fmax(mx, row[R->vis[k]]);
            for (int k = 0; k < nv; k++)
                sum += exp(row[R->vis[k]] - mx);
            for (int c = 0; c < hd; c++) {
                double o = 0;
                for (int k = 0; k < nv; k++)
                    o += exp(row[R->vis[k]] - mx) / sum * kvec(R, R->V, l, R->vis[k], g)[c];
                err = fmax(err, fabs(o - R->out[c]));
            }
            R->out_err = fmax(R->out_err, err);
            if (!(err <= 1e-5))
                FAIL(R, f_out, "%s: call %d layer %d head %d pos %d: output off by %.3g over %d "
                     "reference keys", s->name, R->calls, l, h, qpos, err, nv);
        }
    }
}

/*
 * After a call, compare (l, g) with the reference.  A set mismatch is accepted as a tie when
 * the engine kept exactly as many positions the reference evicted in this call as it dropped
 * positions the reference kept, and the reference's scores of the two sides are within a gap
 * far below the float rounding of the engine's own sums.
 */
static void compare_head(struct run *R, int l, int g)
{
    const struct spec *s = R->s;
    int n_past = kv_ref_n_past(R->ref);
    int ne = kv_cache_trace(R->kv, l, g, R->epos, R->escore, R->eflags, s->n_ctx);
    if (ne != kv_cache_n_used(R->kv, l, g))
        FAIL(R, f_order, "%s: call %d layer %d g %d: trace gave %d of %d entries", s->name,
             R->calls, l, g, ne, kv_cache_n_used(R->kv, l, g));
    for (int i = 0; i < ne; i++)
        if (R->epos[i] < 0 || R->epos[i] >= n_past || (i && R->epos[i] <= R->epos[i - 1])) {
            FAIL(R, f_order, "%s: call %d layer %d g %d: trace not sorted/unique/in range at %d",
                 s->name, R->calls, l, g, i);
            return;
        }
    /* bounds between calls */
    int lim = is_swa(s, l) ? s->swa[l] - 1 : R->bounded ? R->B : n_past;
    if (ne > lim)
        FAIL(R, f_bound, "%s: call %d layer %d g %d: %d entries held, limit %d", s->name,
             R->calls, l, g, ne, lim);
    /* an evicted position never comes back */
    size_t base = ((size_t)l * s->n_head_kv + g) * s->n_ctx;
    for (int i = 0; i < ne; i++)
        if (R->gone[base + R->epos[i]])
            FAIL(R, f_back, "%s: call %d layer %d g %d: evicted position %d is back", s->name,
                 R->calls, l, g, R->epos[i]);
    for (int p = 0; p < s->n_ctx; p++)
        if (R->present[base + p]) {
            int still = 0;
            for (int i = 0; i < ne && !still; i++)
                still = R->epos[i] == p;
            if (!still)
                R->gone[base + p] = 1;
        }
    memset(R->present + base, 0, (unsigned)s->n_ctx);
    for (int i = 0; i < ne; i++)
        R->present[base + R->epos[i]] = 1;

    for (int i = 0; i < ne; i++)
        if (!isfinite(R->escore[i])) {
            FAIL(R, f_score, "%s: call %d layer %d g %d pos %d: non-finite score %g", s->name,
                 R->calls, l, g, R->epos[i], R->escore[i]);
            break;
        }
    int nr = kv_ref_kept(R->ref, l, g, R->rpos, R->rscore, R->rflags);
    int same = ne == nr && memcmp(R->epos, R->rpos, (size_t)ne * sizeof(int32_t)) == 0;
    if (!same) {
        /* engine-only E and reference-only Rk (the first 64 of each; counts exact) */
        int E[64], Rk[64], nE = 0, nR = 0, tie;
        for (int i = 0; i < ne; i++)
            if (kv_ref_state(R->ref, l, g, R->epos[i]) != KV_REF_KEPT && nE++ < 64)
                E[nE - 1] = R->epos[i];
        for (int i = 0; i < nr; i++) {
            int found = 0;
            for (int j = 0; j < ne && !found; j++)
                found = R->epos[j] == R->rpos[i];
            if (!found && nR++ < 64)
                Rk[nR - 1] = R->rpos[i];
        }
        /* a tie: the same number on both sides, the engine's extra ones evicted by the
         * reference in this very call, the reference's extra ones outside the recent window
         * (kept for their score, not their age), and all their scores within one tiny band */
        double hi = -INFINITY, lo = INFINITY, mag = 0;
        tie = nE == nR && nE > 0 && nE <= 64;
        nE = nE < 64 ? nE : 64;
        nR = nR < 64 ? nR : 64;
        for (int i = 0; i < nE + nR && tie; i++) {
            int p = i < nE ? E[i] : Rk[i - nE];
            double sc = kv_ref_score(R->ref, l, g, p);
            if (i < nE)
                tie = kv_ref_state(R->ref, l, g, p) == KV_REF_EVICTED &&
                      kv_ref_evicted_call(R->ref, l, g, p) == R->calls - 1;
            else
                tie = p <= n_past - 1 - kv_ref_window(R->ref);
            tie = tie && isfinite(sc);
            hi = fmax(hi, sc);
            lo = fmin(lo, sc);
            mag = fmax(mag, fabs(sc));
        }
        int scored = s->policy == KV_POLICY_H2O || s->policy == KV_POLICY_KEYFORMER ||
                     s->policy == KV_POLICY_KEYFORMER_STATIC;
        if (tie && scored && hi - lo <= 1e-6 + 1e-5 * mag) {
            for (int i = 0; i < nE; i++)
                kv_ref_swap(R->ref, l, g, E[i], Rk[i]);
            R->ties++;
            diag("%s: call %d layer %d g %d: near-tie (gap %.3g): engine kept %d, reference %d",
                 s->name, R->calls, l, g, hi - lo, E[0], Rk[0]);
            nr = kv_ref_kept(R->ref, l, g, R->rpos, R->rscore, R->rflags);
        } else {
            char a[512] = "", b[512] = "";
            for (int i = 0; i < nE && strlen(a) < 440; i++)
                snprintf(a + strlen(a), sizeof a - strlen(a), " %d(%.6g)", E[i],
                         kv_ref_score(R->ref, l, g, E[i]));
            for (int i = 0; i < nR && strlen(b) < 440; i++)
                snprintf(b + strlen(b), sizeof b - strlen(b), " %d(%.6g)", Rk[i],
                         kv_ref_score(R->ref, l, g, Rk[i]));
            FAIL(R, f_set, "%s: call %d (n_past %d) layer %d g %d: engine keeps %d, reference %d;"
                 " engine-only [ref score]:%s; reference-only:%s", s->name, R->calls, n_past, l,
                 g, ne, nr, a, b);
            return;
        }
    }
    for (int i = 0; i < nr; i++) {
        double d = fabs(R->escore[i] - R->rscore[i]), tol = 1e-4 * fabs(R->rscore[i]) + 1e-6;
        R->score_err = fmax(R->score_err, d / (fabs(R->rscore[i]) + 1e-6));
        if (!(d <= tol)) {
            FAIL(R, f_score, "%s: call %d layer %d g %d pos %d: score %.7g, reference %.7g",
                 s->name, R->calls, l, g, R->rpos[i], R->escore[i], R->rscore[i]);
            break;
        }
    }
    for (int i = 0; i < nr; i++) {
        uint8_t want = R->rflags[i], got = R->eflags[i];
        int good = R->bounded ? got == want : !(got & (KV_TRACE_KEY | KV_TRACE_SINK));
        if (!good) {
            FAIL(R, f_flags, "%s: call %d layer %d g %d pos %d: flags %d, expected %d", s->name,
                 R->calls, l, g, R->rpos[i], got, want);
            break;
        }
    }
}

/* One forward call of n tokens, as engine/model.c makes it. */
static void run_call(struct run *R, int n)
{
    const struct spec *s = R->s;
    int pos0 = kv_cache_n_past(R->kv);
    int st = kv_cache_begin(R->kv, pos0, n), rst = kv_ref_begin(R->ref, n);
    if (st != rst || pos0 != kv_ref_n_past(R->ref)) {
        FAIL(R, f_status, "%s: call %d: begin(%d, %d) = %d, reference %d", s->name, R->calls,
             pos0, n, st, rst);
        return;
    }
    if (st != STATUS_OK)
        return;
    for (int l = 0; l < s->n_layer; l++) {
        for (int t = 0; t < n; t++)
            for (int g = 0; g < s->n_head_kv; g++)
                kv_cache_store(R->kv, l, g, pos0 + t, kvec(R, R->K, l, pos0 + t, g),
                               kvec(R, R->V, l, pos0 + t, g));
        /* during a call: at most the budget plus the call's tokens */
        if (l == 0)
            R->during_max = 0;
        for (int g = 0; g < s->n_head_kv; g++) {
            int nu = kv_cache_n_used(R->kv, l, g);
            if (!is_swa(s, l) && nu > R->during_max)
                R->during_max = nu;
            int lim = is_swa(s, l) ? s->swa[l] - 1 + n : R->bounded ? R->B + n : pos0 + n;
            if (nu > lim)
                FAIL(R, f_bound, "%s: call %d layer %d g %d: %d entries during the call, limit %d",
                     s->name, R->calls, l, g, nu, lim);
        }
        int scoring = kv_cache_scoring(R->kv, l);
        attend_layer(R, l, pos0, n, scoring);
        check_group(R, l, pos0, n, scoring);
        kv_ref_layer(R->ref, l, R->x);
        kv_cache_commit_layer(R->kv, l, scoring ? R->acc : NULL);
    }
    kv_cache_end(R->kv);
    kv_ref_end(R->ref);
    R->calls++;
    if (kv_cache_n_past(R->kv) != kv_ref_n_past(R->ref))
        FAIL(R, f_status, "%s: call %d: n_past %d, reference %d", s->name, R->calls,
             kv_cache_n_past(R->kv), kv_ref_n_past(R->ref));
    size_t entry = 2 * (size_t)s->head_dim * sizeof(float), used = 0;
    for (int l = 0; l < s->n_layer; l++)
        for (int g = 0; g < s->n_head_kv; g++) {
            compare_head(R, l, g);
            used += (size_t)kv_cache_n_used(R->kv, l, g) * entry;
        }
    size_t full = (size_t)kv_ref_n_past(R->ref) * s->n_layer * s->n_head_kv * entry;
    if (kv_cache_bytes_used(R->kv) != used || kv_cache_bytes_full(R->kv) != full ||
        kv_cache_bytes_alloc(R->kv) != R->alloc0)
        FAIL(R, f_bytes, "%s: call %d: bytes used %zu (want %zu), full %zu (want %zu), alloc %zu "
             "(was %zu)", s->name, R->calls, kv_cache_bytes_used(R->kv), used,
             kv_cache_bytes_full(R->kv), full, kv_cache_bytes_alloc(R->kv), R->alloc0);
}

/* Split a call of n tokens into chunks of at most n_batch, as model_forward does. */
static void run_tokens(struct run *R, int n)
{
    while (n > 0) {
        int c = n < R->s->n_batch ? n : R->s->n_batch;
        run_call(R, c);
        n -= c;
    }
}

static void report(struct run *R)
{
    const struct spec *s = R->s;
    const char *nm = s->name;
    ok(R->f_status == 0 && R->calls > 0, "%s: %d calls, statuses and n_past agree", nm, R->calls);
    ok(R->f_set == 0, "%s: kept positions match the reference after every call (%d near-ties)",
       nm, R->ties);
    ok(R->f_score == 0, "%s: scores within 1e-4 relative (worst %.2g)", nm, R->score_err);
    ok(R->f_out == 0, "%s: attention outputs within 1e-5 of naive attention (worst %.2g)", nm,
       R->out_err);
    ok(R->f_group == 0 && R->group_calls > 0,
       "%s: all query heads of a KV head at once == one by one, bit for bit (%d calls)", nm,
       R->group_calls);
    ok(R->f_bound == 0, "%s: <= budget between calls, <= budget + n during a call", nm);
    ok(R->f_order == 0 && R->f_flags == 0, "%s: trace sorted, complete, flags right", nm);
    ok(R->f_back == 0, "%s: no evicted position ever comes back", nm);
    ok(R->f_bytes == 0, "%s: bytes used/full/alloc arithmetic", nm);
    ok(R->ties <= 3, "%s: near-ties are rare (%d)", nm, R->ties);
    ok(!R->bounded || kv_cache_recent_window(R->kv) == kv_ref_window(R->ref),
       "%s: recent window %d (reference %d)", nm, kv_cache_recent_window(R->kv),
       kv_ref_window(R->ref));
}

/* One whole run of a spec's schedule, then its report. */
static void run_spec(const struct spec *s, uint64_t seed)
{
    struct run R;
    rng_state = seed * 7919 + 1;
    if (run_open(&R, s, seed)) {
        ok(0, "%s: opens", s->name);
        return;
    }
    for (int c = 0; c < s->n_calls; c++)
        run_tokens(&R, s->sched[c]);
    report(&R);
    run_close(&R);
}

/* ---- schedules ------------------------------------------------------------------------------ */

static int sched_decode[1 + 220], sched_chat[512], sched_long[1 + 200];
static int n_decode, n_chat, n_long;

static void make_schedules(void)
{
    /* a 40-token prompt, then 220 decode steps */
    sched_decode[n_decode++] = 40;
    for (int i = 0; i < 220; i++)
        sched_decode[n_decode++] = 1;
    /* chat turns of several tokens (two longer than a batch) each followed by a reply of
     * single-token decode steps */
    const int turns[] = { 30, 12, 45, 7, 2, 60, 19 };
    const int replies[] = { 25, 40, 31, 18, 33, 27, 44 };
    for (size_t t = 0; t < ARRAY_LEN(turns); t++) {
        sched_chat[n_chat++] = turns[t];
        for (int i = 0; i < replies[t]; i++)
            sched_chat[n_chat++] = 1;
    }
    /* a prompt five times the small budget, processed in n_batch chunks, then decoding */
    sched_long[n_long++] = 120;
    for (int i = 0; i < 200; i++)
        sched_long[n_long++] = 1;
}

static void test_policies(void)
{
    static const int swa3[3] = { 8, 0, 8 };
    struct shape {
        const char *nm;
        int L, H, G;
        const int *swa;
    } shapes[] = {
        { "MHA", 2, 4, 4, NULL },
        { "GQA4+swa", 3, 8, 2, swa3 },
        { "MQA", 2, 4, 1, NULL },
    };
    struct sched {
        const char *nm;
        const int *s;
        int n, budget, n_batch;
    } scheds[] = {
        { "prefill+220 decode B12", sched_decode, n_decode, 12, 16 },
        { "chat B80", sched_chat, n_chat, 80, 32 },
        { "long prompt B24", sched_long, n_long, 24, 16 },
    };
    uint64_t seed = 1;
    for (size_t a = 0; a < ARRAY_LEN(shapes); a++)
        for (int pol = 0; pol < KV_POLICY_COUNT; pol++)
            for (size_t b = 0; b < ARRAY_LEN(scheds); b++) {
                struct spec s = {
                    .policy = (enum kv_policy)pol, .n_layer = shapes[a].L,
                    .n_head = shapes[a].H, .n_head_kv = shapes[a].G, .head_dim = 16,
                    .n_ctx = 512, .n_batch = scheds[b].n_batch, .budget = scheds[b].budget,
                    .swa = shapes[a].swa, .recent = 0.3f, .sched = scheds[b].s,
                    .n_calls = scheds[b].n,
                };
                if (pol == KV_POLICY_FULL)
                    s.budget = 0;
                snprintf(s.name, sizeof s.name, "%s %s %s", kv_policy_name(s.policy),
                         shapes[a].nm, scheds[b].nm);
                run_spec(&s, seed++);
            }
    /* other window shares: small (w = 2 of 20) and half; none is refused (kv_params_check) */
    const float recents[] = { 0.1f, 0.5f };
    for (size_t i = 0; i < ARRAY_LEN(recents); i++)
        for (int pol = KV_POLICY_H2O; pol <= KV_POLICY_KEYFORMER_STATIC; pol++) {
            struct spec s = { .policy = (enum kv_policy)pol, .n_layer = 2, .n_head = 8,
                              .n_head_kv = 2, .head_dim = 16, .n_ctx = 512, .n_batch = 32,
                              .budget = 20, .recent = recents[i], .sched = sched_chat,
                              .n_calls = n_chat };
            snprintf(s.name, sizeof s.name, "%s recent %.1f chat B20", kv_policy_name(s.policy),
                     recents[i]);
            run_spec(&s, seed++);
        }
    /* unbounded budgets (0, = n_ctx) of a scored policy behave as full; budget 1 short */
    const int budgets[] = { 0, 512, 511 };
    for (size_t i = 0; i < ARRAY_LEN(budgets); i++) {
        struct spec s = { .policy = KV_POLICY_KEYFORMER, .n_layer = 2, .n_head = 4,
                          .n_head_kv = 2, .head_dim = 16, .n_ctx = 512, .n_batch = 32,
                          .budget = budgets[i], .recent = 0.3f, .sched = sched_chat,
                          .n_calls = n_chat };
        snprintf(s.name, sizeof s.name, "keyformer budget %d of n_ctx 512", budgets[i]);
        run_spec(&s, seed++);
    }
}

/* ---- keyformer-static: the authors' off-by-one (keyformer.md §1.5-1.6) ---------------------- */

static void test_static_off_by_one(void)
{
    /* n = 20 prompt tokens, B = 12, recent 30%: w = 3, 9 key tokens */
    static const int sched[] = { 20 };
    struct spec s = { .policy = KV_POLICY_KEYFORMER_STATIC, .n_layer = 2, .n_head = 4,
                      .n_head_kv = 2, .head_dim = 16, .n_ctx = 128, .n_batch = 32, .budget = 12,
                      .recent = 0.3f, .sched = sched, .n_calls = 1 };
    snprintf(s.name, sizeof s.name, "static off-by-one");
    struct run R;
    rng_state = 4242;
    if (run_open(&R, &s, 5)) {
        ok(0, "static off-by-one: opens");
        return;
    }
    int G = s.n_head_kv, group = s.n_head / G;
    run_call(&R, 20);
    ok(kv_cache_recent_window(R.kv) == 3, "static: w = floor(0.3 * 12) = 3");
    int ops_ok = kv_cache_static_op(R.kv) == 0; /* what a GPU backend repeats (kv_sync.h) */
    /* the prefill Gumbel score (τ = 1) of each prompt position, computed here from scratch */
    double S[2][2][20] = { { { 0 } } };
    double scale = 1.0 / sqrt(16.0);
    for (int l = 0; l < 2; l++)
        for (int h = 0; h < s.n_head; h++)
            for (int i = 0; i < 20; i++) {
                double y[20], mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    double d = 0;
                    for (int c = 0; c < 16; c++)
                        d += (double)qv(&R, l, i, h)[c] * kvec(&R, R.K, l, j, h / group)[c];
                    y[j] = d * scale + kv_noise_gumbel(5, l, h, i, j);
                    mx = fmax(mx, y[j]);
                }
                for (int j = 0; j <= i; j++)
                    sum += (y[j] = exp(y[j] - mx));
                for (int j = 0; j <= i; j++)
                    S[l][h / group][j] += y[j] / sum;
            }
    /* the expected key tokens: top 9 of positions 0..16 by that score, per (layer, KV head) */
    int key[2][2][20] = { { { 0 } } };
    for (int l = 0; l < 2; l++)
        for (int g = 0; g < G; g++)
            for (int k = 0; k < 9; k++) {
                int best = -1;
                for (int j = 0; j < 17; j++)
                    if (!key[l][g][j] && (best < 0 || S[l][g][j] > S[l][g][best]))
                        best = j;
                key[l][g][best] = 1;
            }
    int first_max = 0, slide_ok = 1, never17 = 1, later_max = 0;
    for (int step = 0; step < 40; step++) {
        int p = 20 + step;
        run_call(&R, 1);
        ops_ok &= kv_cache_static_op(R.kv) == (step == 0 ? 1 : 2);
        if (step == 0)
            first_max = R.during_max;
        else if (R.during_max > later_max)
            later_max = R.during_max;
        for (int l = 0; l < 2; l++)
            for (int g = 0; g < G; g++) {
                int32_t pos[64];
                int n = kv_cache_trace(R.kv, l, g, pos, NULL, NULL, 64), good = n == 12;
                for (int i = 0; i < n; i++) {
                    int want = pos[i] < 17 ? key[l][g][pos[i]] : pos[i] >= p - 2 && pos[i] <= p;
                    good &= want;
                    never17 &= pos[i] != 17;
                }
                if (!good && slide_ok) {
                    char b[256] = "";
                    for (int i = 0; i < n; i++)
                        snprintf(b + strlen(b), sizeof b - strlen(b), " %d", pos[i]);
                    diag("static: step %d layer %d g %d kept:%s", step + 1, l, g, b);
                }
                slide_ok &= good;
            }
    }
    ok(first_max == 12, "static: the first decode step attends over exactly B = 12 entries (got %d)",
       first_max);
    ok(slide_ok, "static: after each decode step at position p: the top-9 of positions 0..16 by "
       "the prefill Gumbel score plus {p-2, p-1, p}; key tokens never change");
    ok(never17, "static: position n - w = 17 is never kept after the first decode step");
    ok(ops_ok, "static: kv_cache_static_op says 0 after the prompt, 1 (froze) after the first "
       "decode step, 2 (slid) after the others");
    ok(later_max == 12, "static: later decode steps also attend over exactly B = 12 entries, as "
       "the authors' code (keyformer.md 1.6; got %d)", later_max);
    report(&R);
    run_close(&R);
}

/* ---- truncate, reset, refused calls, trace limit, sizes ------------------------------------- */

/* Forget the engine-side presence history of positions >= n (they will be new tokens). */
static void forget_from(struct run *R, int n)
{
    const struct spec *s = R->s;
    for (int l = 0; l < s->n_layer; l++)
        for (int g = 0; g < s->n_head_kv; g++) {
            size_t base = ((size_t)l * s->n_head_kv + g) * s->n_ctx;
            for (int p = n; p < s->n_ctx; p++)
                R->present[base + p] = R->gone[base + p] = 0;
        }
}

static int all_below(struct run *R, int n)
{
    int32_t pos[256];
    for (int l = 0; l < R->s->n_layer; l++)
        for (int g = 0; g < R->s->n_head_kv; g++) {
            int k = kv_cache_trace(R->kv, l, g, pos, NULL, NULL, 256);
            if (k != kv_cache_n_used(R->kv, l, g))
                return 0;
            for (int i = 0; i < k; i++)
                if (pos[i] >= n)
                    return 0;
        }
    return 1;
}

static void test_truncate_reset(enum kv_policy pol)
{
    static const int none[1];
    struct spec s = { .policy = pol, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .head_dim = 16,
                      .n_ctx = 256, .n_batch = 16, .budget = 16, .recent = 0.3f,
                      .sched = none, .n_calls = 0 };
    snprintf(s.name, sizeof s.name, "%s truncate", kv_policy_name(pol));
    struct run R;
    rng_state = 77 + pol;
    if (run_open(&R, &s, 9)) {
        ok(0, "%s: opens", s.name);
        return;
    }
    run_tokens(&R, 30);
    for (int i = 0; i < 10; i++)
        run_call(&R, 1);
    /* cut the last 5 positions (recent ones, never evicted: the cut is exact) and go on with
     * different tokens there */
    int n = kv_cache_n_past(R.kv) - 5;
    kv_cache_truncate(R.kv, n);
    kv_ref_truncate(R.ref, n);
    forget_from(&R, n);
    gen_vectors(&R, n);
    ok(kv_cache_n_past(R.kv) == n && all_below(&R, n), "%s: truncate to %d drops the positions "
       "at and after it", s.name, n);
    size_t used = kv_cache_bytes_used(R.kv);
    kv_cache_truncate(R.kv, n + 3);
    kv_cache_truncate(R.kv, n);
    ok(kv_cache_n_past(R.kv) == n && kv_cache_bytes_used(R.kv) == used,
       "%s: truncate at or beyond n_past changes nothing", s.name);
    run_tokens(&R, 8);
    for (int i = 0; i < 20; i++)
        run_call(&R, 1);
    report(&R);

    /* truncate(0) is a reset; then the same tokens twice (reset in between) give bit-identical
     * traces */
    kv_cache_truncate(R.kv, 0);
    kv_ref_truncate(R.ref, 0);
    forget_from(&R, 0);
    ok(kv_cache_n_past(R.kv) == 0 && kv_cache_bytes_used(R.kv) == 0 &&
           kv_cache_bytes_full(R.kv) == 0,
       "%s: truncate(0) empties the cache", s.name);
    int32_t pos1[2][2][32], pos2[32];
    float sc1[2][2][32], sc2[32];
    int n1[2][2], same = 1;
    for (int pass = 0; pass < 2; pass++) {
        run_tokens(&R, 40);
        for (int i = 0; i < 15; i++)
            run_call(&R, 1);
        for (int l = 0; l < 2; l++)
            for (int g = 0; g < 2; g++) {
                if (pass == 0) {
                    n1[l][g] = kv_cache_trace(R.kv, l, g, pos1[l][g], sc1[l][g], NULL, 32);
                    continue;
                }
                int k = kv_cache_trace(R.kv, l, g, pos2, sc2, NULL, 32);
                same &= k == n1[l][g] && !memcmp(pos2, pos1[l][g], (size_t)k * sizeof(int32_t)) &&
                        !memcmp(sc2, sc1[l][g], (size_t)k * sizeof(float));
            }
        if (pass == 0) {
            kv_cache_reset(R.kv);
            kv_ref_reset(R.ref);
            forget_from(&R, 0);
            ok(kv_cache_n_past(R.kv) == 0 && kv_cache_bytes_used(R.kv) == 0,
               "%s: reset empties the cache", s.name);
        }
    }
    ok(same, "%s: after reset the same tokens give bit-identical kept sets and scores", s.name);
    snprintf(s.name, sizeof s.name, "%s after truncate(0) and reset", kv_policy_name(pol));
    report(&R);
    run_close(&R);
}

/*
 * The sink cache holds the sinks and the newest other entries, contiguous, between any two calls
 * (prompt chunks, decode steps, truncations — one that leaves only the sinks included).  The GPU
 * relies on it for ALiBi under sink: it takes the oldest other entry as pos0 − (entries − sinks)
 * instead of searching the cache (engine/cuda/cuda_attn.cuh, att_logit).
 */
static int sink_contiguous(struct run *R)
{
    int32_t pos[256];
    int n_sink = kv_params_default().n_sink, p0 = kv_cache_n_past(R->kv), good = 1;
    for (int l = 0; l < R->s->n_layer; l++)
        for (int g = 0; g < R->s->n_head_kv; g++) {
            int k = kv_cache_trace(R->kv, l, g, pos, NULL, NULL, 256);
            int ns = p0 < n_sink ? p0 : n_sink, lo = p0 - (k - ns); /* sorted by position */
            for (int i = 0; i < k; i++)
                good &= i < ns ? pos[i] == i : pos[i] == lo + (i - ns);
        }
    return good;
}

static void test_sink_contiguous(void)
{
    static const int none[1];
    struct spec s = { .policy = KV_POLICY_SINK, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                      .head_dim = 16, .n_ctx = 256, .n_batch = 16, .budget = 16, .recent = 0.3f,
                      .sched = none, .n_calls = 0 };
    snprintf(s.name, sizeof s.name, "sink contiguity");
    struct run R;
    rng_state = 99;
    if (run_open(&R, &s, 3)) {
        ok(0, "%s: opens", s.name);
        return;
    }
    int good = sink_contiguous(&R), checks = 1;
    /* a prompt of 30 in chunks and 10 decode steps (kept: 0-3 and 28-39), a cut inside the
     * window (at 36), 5 more (0-3, 29-40), a cut that leaves only the sinks (at 20), then more
     * chunks and steps */
    static const int plan[][2] = { { 30, 0 }, { 1, 10 }, { -36, 0 }, { 5, 0 }, { -20, 0 },
                                   { 13, 0 }, { 1, 25 }, { 16, 0 }, { 1, 3 } };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        int reps = plan[i][1] ? plan[i][1] : 1;
        for (int r = 0; r < reps; r++) {
            if (plan[i][0] < 0) {
                int n = -plan[i][0];
                kv_cache_truncate(R.kv, n);
                kv_ref_truncate(R.ref, n);
                forget_from(&R, n);
                gen_vectors(&R, n);
            } else {
                run_tokens(&R, plan[i][0]);
            }
            good &= sink_contiguous(&R);
            checks++;
            if (plan[i][0] == -20) /* only the sinks are left */
                good &= kv_cache_n_used(R.kv, 0, 0) == 4 && kv_cache_n_past(R.kv) == 20;
        }
    }
    ok(good, "%s: sinks plus the newest entries, contiguous, at all %d points", s.name, checks);
    report(&R);
    run_close(&R);
}

static void test_refusals_and_sizes(void)
{
    static const int none[1];
    /* full: the context ends at n_ctx */
    struct spec s = { .policy = KV_POLICY_FULL, .n_layer = 2, .n_head = 2, .n_head_kv = 1,
                      .head_dim = 8, .n_ctx = 32, .n_batch = 16, .budget = 0, .recent = 0.3f,
                      .sched = none, .n_calls = 0 };
    snprintf(s.name, sizeof s.name, "full n_ctx 32");
    struct run R;
    rng_state = 5;
    if (run_open(&R, &s, 1))
        return;
    size_t entry = 2 * 8 * sizeof(float);
    ok(kv_cache_cap(R.kv) == 32 && kv_cache_bytes_alloc(R.kv) == 2 * 1 * 32 * entry,
       "full: cap = n_ctx, bytes alloc = layers x KV heads x n_ctx x entry (%zu)",
       kv_cache_bytes_alloc(R.kv));
    run_tokens(&R, 32);
    ok(kv_cache_begin(R.kv, 32, 1) == STATUS_CONTEXT_FULL && kv_cache_n_past(R.kv) == 32,
       "full: a call past n_ctx is STATUS_CONTEXT_FULL and changes nothing");
    ok(kv_cache_bytes_used(R.kv) == kv_cache_bytes_full(R.kv) &&
           kv_cache_bytes_full(R.kv) == 32 * 2 * entry,
       "full: bytes used = bytes full = n_past x layers x KV heads x entry");
    report(&R);
    run_close(&R);

    /* h2o with a budget: the same end of context; n = 0 and n > n_batch are refused */
    s.policy = KV_POLICY_H2O;
    s.budget = 8;
    snprintf(s.name, sizeof s.name, "h2o B8 n_ctx 32");
    if (run_open(&R, &s, 2))
        return;
    ok(kv_cache_cap(R.kv) == 8 + 16 && kv_cache_bytes_alloc(R.kv) == 2 * 1 * 24 * entry,
       "h2o: cap = budget + n_batch, alloc = layers x KV heads x cap x entry (%d slots)",
       kv_cache_cap(R.kv));
    run_tokens(&R, 30);
    ok(kv_cache_begin(R.kv, 30, 17) != STATUS_OK && kv_cache_begin(R.kv, 30, 0) != STATUS_OK &&
           kv_cache_n_past(R.kv) == 30,
       "h2o: begin refuses n = 0 and n > n_batch");
    run_call(&R, 3); /* 30 + 3 > 32: refused by both */
    ok(kv_cache_n_past(R.kv) == 30, "h2o: a call past n_ctx is refused with a budget too");
    run_call(&R, 2);
    ok(kv_cache_n_past(R.kv) == 32 && kv_cache_bytes_used(R.kv) == 2 * 8 * entry &&
           kv_cache_bytes_full(R.kv) == 32 * 2 * entry,
       "h2o: bytes used = budget x layers x KV heads x entry, full counts every position");
    int32_t all[32], few[3];
    int na = kv_cache_trace(R.kv, 1, 0, all, NULL, NULL, 32);
    int nf = kv_cache_trace(R.kv, 1, 0, few, NULL, NULL, 3);
    ok(na == 8 && nf == 3 && !memcmp(all, few, sizeof few),
       "trace with a smaller max returns the first max entries by position");
    report(&R);
    run_close(&R);
}

/*
 * τ is a function of the query position (kv_cache.h "τ"): τ_init until the budget is full, one
 * step per token that arrives at a full cache, τ_end after tau_steps of them; the same for
 * every call split and across chat turns, and τ_init for keyformer-static.
 */
static void test_tau_schedule(void)
{
    struct kv_shape sh = { .n_layer = 1, .n_head = 2, .n_head_kv = 1, .head_dim = 8,
                           .n_ctx = 512, .n_batch = 16, .scale = 1.0f };
    struct kv_params p = kv_params_default();
    p.budget = 24;
    p.tau_steps = 64;
    char err[256];
    struct kv_cache *kv, *st;
    p.policy = KV_POLICY_KEYFORMER;
    int r1 = kv_cache_new(&kv, &sh, &p, err, sizeof err);
    p.policy = KV_POLICY_KEYFORMER_STATIC;
    int r2 = kv_cache_new(&st, &sh, &p, err, sizeof err);
    if (!ok(r1 == STATUS_OK && r2 == STATUS_OK, "tau: caches open"))
        return;
    struct kv_ref_shape rs = { 1, 2, 1, 512, NULL };
    p.policy = KV_POLICY_KEYFORMER;
    struct kv_ref *ref = kv_ref_new(&rs, &p);
    int agree = 1, stat = 1;
    for (int q = 0; q < 512; q++) {
        agree &= fabs(kv_cache_tau(kv, q) - kv_ref_tau(ref, q)) < 1e-6;
        stat &= kv_cache_tau(st, q) == 1.0f;
    }
    ok(agree, "tau: the engine's tau(qpos) is the reference's at every position");
    ok(stat, "tau: keyformer-static scores at tau_init everywhere");
    ok(kv_cache_tau(kv, 0) == 1.0f && kv_cache_tau(kv, 23) == 1.0f &&
           fabsf(kv_cache_tau(kv, 24) - (1.0f + 1.0f / 64)) < 1e-6f &&
           fabsf(kv_cache_tau(kv, 24 + 31) - 1.5f) < 1e-6f && kv_cache_tau(kv, 87) == 2.0f &&
           kv_cache_tau(kv, 511) == 2.0f,
       "tau: 1 below the budget (B = 24), 1 + 1/64 at position B, 1.5 after 32 steps, 2 from "
       "B + 63 on");
    /* calls of any size and a new turn leave it alone: it has no state */
    float k[8] = { 0 }, v[8] = { 0 };
    int same = 1;
    for (int p0 = 0, n = 1; p0 + n <= 200; p0 += n, n = n % 16 + 1) {
        if (kv_cache_begin(kv, p0, n) != STATUS_OK) {
            same = 0;
            break;
        }
        for (int t = 0; t < n; t++)
            kv_cache_store(kv, 0, 0, p0 + t, k, v);
        kv_cache_commit_layer(kv, 0, NULL);
        kv_cache_end(kv);
        for (int t = 0; t < n; t++)
            same &= kv_cache_tau(kv, p0 + t) == (float)kv_ref_tau(ref, p0 + t) ||
                    fabs(kv_cache_tau(kv, p0 + t) - kv_ref_tau(ref, p0 + t)) < 1e-6;
    }
    ok(same, "tau: unchanged by calls of 1..16 tokens (prompt chunks and decode steps alike)");
    kv_ref_free(ref);
    kv_cache_free(kv);
    kv_cache_free(st);
}

int main(void)
{
    make_schedules();
    test_tau_schedule();
    test_policies();
    test_static_off_by_one();
    test_truncate_reset(KV_POLICY_H2O);
    test_truncate_reset(KV_POLICY_KEYFORMER);
    test_truncate_reset(KV_POLICY_SINK);
    test_sink_contiguous();
    test_refusals_and_sizes();
    return done_testing();
}
