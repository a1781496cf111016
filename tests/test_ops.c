/*
 * test_ops.c — ops (norms, softmax, activations, RoPE, attention) against double-precision
 * references, the threadpool's run-every-index-exactly-once guarantee, and matmul against
 * matmul_f32_ref for each weight type, path and thread count (bit-identical across counts).
 */
#include "config.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matmul.h"
#include "ops.h"
#include "quant.h"
#include "status.h"
#include "tap.h"
#include "threadpool.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(float lo, float hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 11) * (1.0 / 9007199254740992.0));
}

static float *rand_vec(int64_t n, float lo, float hi)
{
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        v[i] = frand(lo, hi);
    return v;
}

/* max |got − want| / max(1, max |want|): relative to the scale of the result */
static double max_err(const float *got, const double *want, int64_t n)
{
    double e = 0.0, scale = 1.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        e = d > e || isnan(d) ? d : e;
        scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
    }
    return e / scale;
}

static double max_err_f(const float *got, const float *want, int64_t n)
{
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - (double)want[i]) / (1.0 + fabs((double)want[i]));
        e = d > e || isnan(d) ? d : e;
    }
    return e;
}

static const int64_t sizes[] = { 1, 7, 16, 64, 100, 576, 2051 };
#define N_SIZES (int)(sizeof(sizes) / sizeof(sizes[0]))

/* ---- norms, softmax, activations ------------------------------------------------------------ */

static void test_rmsnorm(void)
{
    for (int si = 0; si < N_SIZES; si++) {
        const int64_t n = sizes[si];
        float *x = rand_vec(n, -3, 3), *w = rand_vec(n, 0.5f, 1.5f);
        float *y = malloc((size_t)n * sizeof(float)), *yr = malloc((size_t)n * sizeof(float));
        double *ref = malloc((size_t)n * sizeof(double));
        for (int use_w = 0; use_w < 2; use_w++) {
            double ss = 0;
            for (int64_t i = 0; i < n; i++)
                ss += (double)x[i] * x[i];
            const double sc = 1.0 / sqrt(ss / (double)n + 1e-5);
            for (int64_t i = 0; i < n; i++)
                ref[i] = x[i] * sc * (use_w ? w[i] : 1.0);
            ops_rmsnorm(x, use_w ? w : NULL, n, 1e-5f, y);
            ops_ref_rmsnorm(x, use_w ? w : NULL, n, 1e-5f, yr);
            ok(max_err(y, ref, n) < 2e-6 && max_err_f(y, yr, n) < 1e-6,
               "rmsnorm n=%lld w=%d (err %.2g)", (long long)n, use_w, max_err(y, ref, n));
        }
        memcpy(y, x, (size_t)n * sizeof(float));
        ops_rmsnorm(y, w, n, 1e-5f, y);
        ops_rmsnorm(x, w, n, 1e-5f, yr);
        ok(memcmp(y, yr, (size_t)n * sizeof(float)) == 0, "rmsnorm in place n=%lld", (long long)n);
        free(x), free(w), free(y), free(yr), free(ref);
    }
}

static void test_layernorm(void)
{
    for (int si = 0; si < N_SIZES; si++) {
        const int64_t n = sizes[si];
        float *x = rand_vec(n, -2, 4), *w = rand_vec(n, 0.5f, 1.5f), *b = rand_vec(n, -1, 1);
        float *y = malloc((size_t)n * sizeof(float)), *yr = malloc((size_t)n * sizeof(float));
        double *ref = malloc((size_t)n * sizeof(double));
        for (int mode = 0; mode < 3; mode++) { /* 0: none, 1: weight, 2: weight + bias */
            double mu = 0, var = 0;
            for (int64_t i = 0; i < n; i++)
                mu += x[i];
            mu /= (double)n;
            for (int64_t i = 0; i < n; i++)
                var += (x[i] - mu) * (x[i] - mu);
            const double sc = 1.0 / sqrt(var / (double)n + 1e-5);
            for (int64_t i = 0; i < n; i++)
                ref[i] = (x[i] - mu) * sc * (mode ? w[i] : 1.0) + (mode == 2 ? b[i] : 0.0);
            ops_layernorm(x, mode ? w : NULL, mode == 2 ? b : NULL, n, 1e-5f, y);
            ops_ref_layernorm(x, mode ? w : NULL, mode == 2 ? b : NULL, n, 1e-5f, yr);
            ok(max_err(y, ref, n) < 5e-6 && max_err_f(y, yr, n) < 1e-6,
               "layernorm n=%lld mode=%d (err %.2g, against the scalar kernel %.2g)", (long long)n,
               mode, max_err(y, ref, n), max_err_f(y, yr, n));
        }
        memcpy(y, x, (size_t)n * sizeof(float)); /* in place, as the models call it */
        ops_layernorm(y, w, b, n, 1e-5f, y);
        ops_layernorm(x, w, b, n, 1e-5f, yr);
        ok(memcmp(y, yr, (size_t)n * sizeof(float)) == 0, "layernorm in place n=%lld", (long long)n);
        free(x), free(w), free(b), free(y), free(yr), free(ref);
    }
}

static void test_softmax(void)
{
    for (int si = 0; si < N_SIZES; si++) {
        const int64_t n = sizes[si];
        float *x = rand_vec(n, -30, 30), *xr = malloc((size_t)n * sizeof(float));
        double *ref = malloc((size_t)n * sizeof(double));
        if (n > 3)
            x[1] = x[n - 2] = -INFINITY; /* masked entries */
        double max = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++)
            max = x[i] > max ? x[i] : max;
        for (int64_t i = 0; i < n; i++)
            sum += ref[i] = exp(x[i] - max);
        for (int64_t i = 0; i < n; i++)
            ref[i] /= sum;
        memcpy(xr, x, (size_t)n * sizeof(float));
        ops_softmax(x, n);
        ops_ref_softmax(xr, n);
        double total = 0;
        for (int64_t i = 0; i < n; i++)
            total += x[i];
        ok(max_err(x, ref, n) < 1e-6 && fabs(total - 1) < 1e-5 && max_err_f(x, xr, n) < 1e-6 &&
               (n <= 3 || (x[1] == 0 && x[n - 2] == 0)),
           "softmax n=%lld (err %.2g)", (long long)n, max_err(x, ref, n));
        free(x), free(xr), free(ref);
    }
}

static double gelu_d(double x)
{
    return 0.5 * x * (1.0 + tanh(0.7978845608 * (x + 0.044715 * x * x * x)));
}

static void test_activations(void)
{
    const int64_t n = 4099;
    float *x = rand_vec(n, -12, 12), *u = rand_vec(n, -2, 2);
    float *y = malloc((size_t)n * sizeof(float)), *yr = malloc((size_t)n * sizeof(float));
    double *ref = malloc((size_t)n * sizeof(double));
    x[0] = 0, x[1] = -100, x[2] = 100, x[3] = -1e-8f, x[4] = 88.5f, x[5] = -88.5f;

    for (int64_t i = 0; i < n; i++)
        ref[i] = x[i] / (1.0 + exp(-(double)x[i]));
    ops_silu(x, n, y);
    ops_ref_silu(x, n, yr);
    ok(max_err(y, ref, n) < 1e-6 && max_err_f(y, yr, n) < 1e-6, "silu (err %.2g)",
       max_err(y, ref, n));
    for (int64_t i = 0; i < n; i++)
        ref[i] = gelu_d(x[i]);
    ops_gelu_tanh(x, n, y);
    ops_ref_gelu_tanh(x, n, yr);
    ok(max_err(y, ref, n) < 1e-6 && max_err_f(y, yr, n) < 1e-6, "gelu_tanh (err %.2g)",
       max_err(y, ref, n));
    for (int64_t i = 0; i < n; i++)
        ref[i] = x[i] / (1.0 + exp(-(double)x[i])) * u[i];
    ops_swiglu(x, u, n, y);
    ops_ref_swiglu(x, u, n, yr);
    ok(max_err(y, ref, n) < 1e-6 && max_err_f(y, yr, n) < 1e-6, "swiglu (err %.2g)",
       max_err(y, ref, n));
    for (int64_t i = 0; i < n; i++)
        ref[i] = gelu_d(x[i]) * u[i];
    ops_geglu(x, u, n, y);
    ok(max_err(y, ref, n) < 1e-6, "geglu (err %.2g)", max_err(y, ref, n));
    /* small-magnitude inputs: relative accuracy where silu/gelu are ~x/2 */
    for (int64_t i = 0; i < n; i++)
        x[i] = frand(-1e-3f, 1e-3f);
    ops_gelu_tanh(x, n, y);
    double e = 0;
    for (int64_t i = 0; i < n; i++)
        e = fmax(e, fabs(y[i] - gelu_d(x[i])) / fabs(gelu_d(x[i]) + 1e-30));
    ok(e < 1e-5, "gelu_tanh relative accuracy near 0 (%.2g)", e);

    float *a = rand_vec(n, -1, 1), *c = rand_vec(n, -1, 1);
    int good = 1;
    ops_mul(a, c, n, y);
    for (int64_t i = 0; i < n; i++)
        good &= y[i] == a[i] * c[i];
    ops_add(a, c, n, y);
    for (int64_t i = 0; i < n; i++)
        good &= y[i] == a[i] + c[i];
    ops_scale(a, 0.37f, n, y);
    for (int64_t i = 0; i < n; i++)
        good &= y[i] == 0.37f * a[i];
    ok(good, "mul / add / scale");
    for (int si = 0; si < N_SIZES; si++) {
        const int64_t m = sizes[si];
        double d = 0;
        for (int64_t i = 0; i < m; i++)
            d += (double)a[i] * c[i];
        memcpy(y, c, (size_t)m * sizeof(float));
        ops_axpy(0.25f, a, m, y);
        double ea = 0;
        for (int64_t i = 0; i < m; i++)
            ea = fmax(ea, fabs(y[i] - (c[i] + 0.25 * a[i])));
        ok(fabs(ops_dot(a, c, m) - d) < 1e-5 * (1 + sqrt((double)m)) &&
               fabs(ops_ref_dot(a, c, m) - d) < 1e-5 * (1 + sqrt((double)m)) && ea < 1e-6,
           "dot / axpy n=%lld", (long long)m);
    }
    free(x), free(u), free(y), free(yr), free(ref), free(a), free(c);
}

/* ---- RoPE --------------------------------------------------------------------------------- */

/* Reference: θ accumulated in f32 exactly as ggml does, everything after it in double. */
static void rope_ref(const float *x, double *out, int64_t n_tok, int n_heads, int hd,
                     int64_t stride, const int32_t *pos, const struct ops_rope_params *rp,
                     int f32_theta)
{
    const int half = rp->n_rot / 2;
    const float ts = powf(rp->base, -2.0f / (float)rp->n_rot);
    for (int64_t t = 0; t < n_tok; t++)
        for (int h = 0; h < n_heads; h++) {
            const float *src = x + t * stride + (int64_t)h * hd;
            double *dst = out + t * stride + (int64_t)h * hd;
            float theta = (float)pos[t];
            for (int i = 0; i < half; i++) {
                const double ff = rp->freq_factors ? rp->freq_factors[i] : 1.0;
                double th = f32_theta ? (double)(rp->freq_scale * (theta / (float)ff))
                                      : rp->freq_scale * pos[t] *
                                            pow(rp->base, -2.0 * i / rp->n_rot) / ff;
                theta *= ts;
                const int i0 = rp->mode == OPS_ROPE_NORM ? 2 * i : i;
                const int i1 = rp->mode == OPS_ROPE_NORM ? 2 * i + 1 : i + half;
                dst[i0] = src[i0] * cos(th) - src[i1] * sin(th);
                dst[i1] = src[i0] * sin(th) + src[i1] * cos(th);
            }
            for (int i = rp->n_rot; i < hd; i++)
                dst[i] = src[i];
        }
}

static void test_rope(void)
{
    static const struct {
        int mode, n_rot, hd, n_heads;
        float base, scale;
        int use_ff;
    } cases[] = {
        { OPS_ROPE_NORM, 64, 64, 4, 10000.0f, 1.0f, 0 },
        { OPS_ROPE_NEOX, 64, 64, 4, 1000000.0f, 1.0f, 0 },
        { OPS_ROPE_NORM, 32, 80, 3, 10000.0f, 0.25f, 0 },  /* partial rotary, linear scaling */
        { OPS_ROPE_NEOX, 32, 80, 3, 10000.0f, 1.0f, 0 },   /* partial rotary (phi2-like) */
        { OPS_ROPE_NEOX, 128, 128, 2, 500000.0f, 1.0f, 1 }, /* llama3-style freq factors */
        { OPS_ROPE_NORM, 64, 256, 2, 10000.0f, 1.0f, 1 },
    };
    const int64_t n_tok = 5;
    const int32_t pos[5] = { 0, 1, 17, 511, 4000 };

    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const int hd = cases[ci].hd, nh = cases[ci].n_heads;
        const int64_t stride = (int64_t)nh * hd + 24; /* rows of a fused QKV-like buffer */
        const int64_t total = n_tok * stride;
        float *ff = rand_vec(cases[ci].n_rot / 2, 1.0f, 8.0f);
        struct ops_rope_params rp = { cases[ci].mode, cases[ci].n_rot, cases[ci].base,
                                      cases[ci].scale, cases[ci].use_ff ? ff : NULL };
        float *x = rand_vec(total, -1, 1), *y = rand_vec(total, 5, 6);
        float *yi = malloc((size_t)total * sizeof(float));
        double *ref = calloc((size_t)total, sizeof(double));
        double *refd = calloc((size_t)total, sizeof(double));
        int rc = ops_rope(x, y, n_tok, nh, hd, stride, pos, &rp);
        rope_ref(x, ref, n_tok, nh, hd, stride, pos, &rp, 1);
        rope_ref(x, refd, n_tok, nh, hd, stride, pos, &rp, 0);
        double e = 0, ed = 0;
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t i = 0; i < (int64_t)nh * hd; i++) {
                const int64_t o = t * stride + i;
                e = fmax(e, fabs(y[o] - ref[o]));
                if (pos[t] < 600)
                    ed = fmax(ed, fabs(y[o] - refd[o]));
            }
        ok(rc == STATUS_OK && e < 2e-6 && ed < 1e-4, "rope %s n_rot=%d hd=%d ff=%d (err %.2g, vs "
           "exact θ %.2g)", rp.mode == OPS_ROPE_NORM ? "norm" : "neox", rp.n_rot, hd,
           cases[ci].use_ff, e, ed);
        int same = 1;
        memcpy(yi, x, (size_t)total * sizeof(float));
        ops_rope(yi, yi, n_tok, nh, hd, stride, pos, &rp);
        for (int64_t t = 0; t < n_tok; t++)
            same &= memcmp(yi + t * stride, y + t * stride, (size_t)nh * hd * sizeof(float)) == 0;
        same &= y[stride - 1] >= 5.0f; /* the gap between token rows is not written */
        ok(same, "rope in place == out of place, gap untouched");
        free(ff), free(x), free(y), free(yi), free(ref), free(refd);
    }
    struct ops_rope_params bad = { OPS_ROPE_NORM, 7, 10000, 1, NULL };
    float v[8] = { 0 };
    int32_t p0 = 0;
    ok(ops_rope(v, v, 1, 1, 8, 8, &p0, &bad) == STATUS_INVALID, "rope rejects odd n_rot");
}

/* ---- attention -------------------------------------------------------------------------- */

static void test_attention(void)
{
    static const int hds[] = { 64, 80, 128 }; /* 80: a partial 16-float chunk (phi2) */
    const int n_kv_head = 3, h_kv = 1;
    const int64_t lens[] = { 1, 5, 37, 300 };
    for (int hi = 0; hi < 3; hi++)
        for (int li = 0; li < 4; li++)
            for (int alibi = 0; alibi < 2; alibi++) {
                const int hd = hds[hi];
                const int64_t stride = (int64_t)n_kv_head * hd;
                const int64_t n_kv = lens[li], kv_pos0 = 10, q_pos = kv_pos0 + n_kv - 1;
                const float slope = alibi ? 0.0625f : 0.0f, scale = 1.0f / sqrtf((float)hd);
                float *q = rand_vec(hd, -2, 2), *k = rand_vec(n_kv * stride, -2, 2);
                float *v = rand_vec(n_kv * stride, -1, 1);
                float *att = malloc((size_t)n_kv * sizeof(float));
                float out[128];
                double ref[128] = { 0 }, *s = malloc((size_t)n_kv * sizeof(double));
                double max = -INFINITY, sum = 0;
                const float *kh = k + h_kv * hd, *vh = v + h_kv * hd;
                for (int64_t j = 0; j < n_kv; j++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += (double)q[i] * kh[j * stride + i];
                    s[j] = scale * d - slope * (double)llabs(q_pos - (kv_pos0 + j));
                    max = fmax(max, s[j]);
                }
                for (int64_t j = 0; j < n_kv; j++)
                    sum += s[j] = exp(s[j] - max);
                for (int64_t j = 0; j < n_kv; j++)
                    for (int i = 0; i < hd; i++)
                        ref[i] += s[j] / sum * vh[j * stride + i];
                ops_attention(q, kh, vh, n_kv, hd, stride, scale, slope, q_pos, kv_pos0, att, out);
                ok(max_err(out, ref, hd) < 2e-6, "attention hd=%d n_kv=%lld alibi=%d (err %.2g)",
                   hd, (long long)n_kv, alibi, max_err(out, ref, hd));
                free(q), free(k), free(v), free(att), free(s);
            }
}

static void test_rows(void)
{
    static const int64_t ns[] = { 16, 64, 80, 100, 600 };
    static const int64_t rows[] = { 1, 15, 16, 33, 200 };
    for (int ni = 0; ni < 5; ni++)
        for (int ri = 0; ri < 5; ri++) {
            const int64_t n = ns[ni], nr = rows[ri], stride = n + 13;
            float *q = rand_vec(n, -1, 1), *k = rand_vec(nr * stride, -1, 1);
            float *a = rand_vec(nr, 0, 1);
            float *d = malloc((size_t)nr * sizeof(float)), *dr = malloc((size_t)nr * sizeof(float));
            float *o = rand_vec(n, 5, 6), *orf = malloc((size_t)n * sizeof(float));
            double *ref = malloc((size_t)(nr > n ? nr : n) * sizeof(double));
            for (int64_t j = 0; j < nr; j++) {
                ref[j] = 0;
                for (int64_t i = 0; i < n; i++)
                    ref[j] += (double)q[i] * k[j * stride + i];
            }
            ops_dot_rows(q, k, nr, stride, n, d);
            ops_ref_dot_rows(q, k, nr, stride, n, dr);
            const double ed = max_err(d, ref, nr), edr = max_err(dr, ref, nr);
            for (int64_t i = 0; i < n; i++) {
                ref[i] = 0;
                for (int64_t j = 0; j < nr; j++)
                    ref[i] += (double)a[j] * k[j * stride + i];
            }
            ops_wsum_rows(a, k, nr, stride, n, o);
            ops_ref_wsum_rows(a, k, nr, stride, n, orf);
            const double ew = max_err(o, ref, n), ewr = max_err(orf, ref, n);
            ok(ed < 1e-6 && edr < 1e-6 && ew < 1e-6 && ewr < 1e-6,
               "dot_rows / wsum_rows n=%lld rows=%lld (err %.2g, %.2g)", (long long)n,
               (long long)nr, ed, ew);
            /* in pieces of even length (6 rows, then 64, 64, ...), the last one what is left */
            float *st = malloc(ops_wsum_state_floats(n) * sizeof(float));
            float *op = rand_vec(n, 5, 6);
            ops_wsum_begin(st, n);
            for (int64_t j0 = 0, t = 6; j0 < nr; j0 += t, t = 64)
                ops_wsum_step(a + j0, k + j0 * stride, nr - j0 < t ? nr - j0 : t, stride, n, st);
            ops_wsum_end(st, n, op);
            ok(memcmp(op, o, (size_t)n * sizeof(float)) == 0,
               "wsum in pieces == wsum_rows bit for bit, n=%lld rows=%lld", (long long)n,
               (long long)nr);
            free(st), free(op);
            free(q), free(k), free(a), free(d), free(dr), free(o), free(orf), free(ref);
        }
}

/* The elementwise steps of attention against their scalar references, bit for bit. */
static void test_mask_scale(void)
{
    static const int64_t ns[] = { 1, 15, 16, 17, 100 };
    for (int ni = 0; ni < 5; ni++)
        for (int win = 0; win <= 8; win += 8) {
            int64_t n = ns[ni];
            float *a = rand_vec(n, -3, 3), *b = malloc((size_t)n * sizeof(float));
            float *x = rand_vec(n, -3, 3), *y = rand_vec(n, -3, 3);
            float *y2 = malloc((size_t)n * sizeof(float));
            int32_t *pos = malloc((size_t)n * sizeof(int32_t));
            for (int64_t j = 0; j < n; j++)
                pos[j] = (int32_t)((j * 7919) % 40);
            x[0] = -INFINITY;
            memcpy(b, a, (size_t)n * sizeof(float));
            memcpy(y2, y, (size_t)n * sizeof(float));
            ops_mask_scale(a, pos, n, 20, win, 0.125f);
            ops_ref_mask_scale(b, pos, n, 20, win, 0.125f);
            int masked = 0;
            for (int64_t j = 0; j < n; j++)
                masked += isinf(a[j]) != 0;
            ops_add_scale(x, y, n, 0.7f);
            ops_ref_add_scale(x, y2, n, 0.7f);
            ok(memcmp(a, b, (size_t)n * sizeof(float)) == 0 &&
                   memcmp(y, y2, (size_t)n * sizeof(float)) == 0 && isinf(y[0]) != 0,
               "mask_scale (%d masked) / add_scale == reference, n=%lld win=%d", masked,
               (long long)n, win);
            free(a), free(b), free(x), free(y), free(y2), free(pos);
        }
}

/* Keyformer's fused score row: the three steps it replaces, bit for bit, and the reference. */
static void test_noisy_softmax_add(void)
{
    static const int64_t ns[] = { 1, 15, 16, 17, 100, 2048 };
    for (int ni = 0; ni < 6; ni++) {
        int64_t n = ns[ni];
        float *x = rand_vec(n, -8, 8), *g = rand_vec(n, -2, 6), *acc = rand_vec(n, 0, 3);
        float *y1 = malloc((size_t)n * sizeof(float)), *y2 = malloc((size_t)n * sizeof(float));
        float *y3 = malloc((size_t)n * sizeof(float)), *a1 = malloc((size_t)n * sizeof(float));
        float *a2 = malloc((size_t)n * sizeof(float)), *a3 = malloc((size_t)n * sizeof(float));
        if (n > 3)
            x[3] = -INFINITY; /* a masked slot */
        memcpy(y1, g, (size_t)n * sizeof(float)), memcpy(y2, g, (size_t)n * sizeof(float));
        memcpy(y3, g, (size_t)n * sizeof(float));
        memcpy(a1, acc, (size_t)n * sizeof(float)), memcpy(a2, acc, (size_t)n * sizeof(float));
        memcpy(a3, acc, (size_t)n * sizeof(float));
        ops_noisy_softmax_add(x, y1, n, 0.6f, a1);
        ops_add_scale(x, y2, n, 0.6f);
        ops_softmax(y2, n);
        ops_add(a2, y2, n, a2);
        ops_ref_noisy_softmax_add(x, y3, n, 0.6f, a3);
        float worst = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            float d = fabsf(a1[j] - a3[j]);
            worst = d > worst ? d : worst;
        }
        ok(memcmp(a1, a2, (size_t)n * sizeof(float)) == 0 && worst <= 1e-6f &&
               (n <= 3 || a1[3] == acc[3]),
           "noisy_softmax_add == add_scale + softmax + add bit for bit, reference within %.1e, "
           "n=%lld",
           (double)worst, (long long)n);
        free(x), free(g), free(acc), free(y1), free(y2), free(y3), free(a1), free(a2), free(a3);
    }
}

/* ---- threadpool ------------------------------------------------------------------------- */

#define TP_ITEMS 1000

struct tp_job {
    atomic_int hits[TP_ITEMS];
    atomic_int per_thread[8];
    atomic_int bad_nth;
    int expect_nth;
};

static void tp_fn(void *arg, int ith, int nth)
{
    struct tp_job *j = arg;
    if (nth != j->expect_nth || ith < 0 || ith >= nth)
        atomic_fetch_add(&j->bad_nth, 1);
    atomic_fetch_add(&j->per_thread[ith & 7], 1);
    for (int i = TP_ITEMS * ith / nth; i < TP_ITEMS * (ith + 1) / nth; i++)
        atomic_fetch_add(&j->hits[i], 1);
}

static void test_threadpool(void)
{
    static const int counts[] = { 1, 2, 4 };
    static struct tp_job job;
    for (int ci = 0; ci < 3; ci++) {
        const int nth = counts[ci], runs = 3000;
        struct threadpool *p = threadpool_new(nth);
        int good = p != NULL && threadpool_n_threads(p) == nth;
        memset(&job, 0, sizeof(job));
        job.expect_nth = nth;
        for (int r = 0; r < runs && good; r++) {
            if (r % 500 == 499) {
                /* longer than the spin budget: the next dispatch must wake sleeping workers */
                struct timespec ts = { 0, 5 * 1000 * 1000 };
                nanosleep(&ts, NULL);
            }
            threadpool_run(p, tp_fn, &job);
            for (int i = 0; i < TP_ITEMS; i++)
                good &= atomic_exchange(&job.hits[i], 0) == 1;
        }
        for (int t = 0; t < nth; t++)
            good &= atomic_load(&job.per_thread[t]) == runs;
        good &= atomic_load(&job.bad_nth) == 0;
        ok(good, "threadpool n=%d: every index exactly once over %d dispatches", nth, runs);
        threadpool_free(p);
    }
    memset(&job, 0, sizeof(job));
    job.expect_nth = 1;
    threadpool_run(NULL, tp_fn, &job);
    ok(atomic_load(&job.hits[0]) == 1 && atomic_load(&job.hits[TP_ITEMS - 1]) == 1 &&
           threadpool_n_threads(NULL) == 1,
       "threadpool_run(NULL) runs on the caller");
}

/* ---- matmul ----------------------------------------------------------------------------- */

/* Normalized mean squared error, as test-backend-ops. */
static double nmse(const float *got, const float *want, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        den += (double)want[i] * want[i];
    }
    return den > 0 ? num / den : num;
}

/* A random weight of type t: f32 values quantized by the type's own quantizer. */
static void *make_weight(uint32_t t, int64_t k, int64_t n, float *deq)
{
    const struct quant_traits *tr = quant_traits_get(t);
    const size_t rb = quant_row_size(t, k);
    char *data = malloc(rb * (size_t)n);
    float *src = rand_vec(k, -1, 1);
    for (int64_t j = 0; j < n; j++) {
        for (int64_t l = 0; l < k; l++)
            src[l] = frand(-1, 1);
        tr->from_f32(src, data + rb * (size_t)j, k);
        tr->to_f32(data + rb * (size_t)j, deq + j * k, k);
    }
    free(src);
    return data;
}

/* x rounded through the weight's activation type (what vec_dot actually sees). */
static void round_activations(uint32_t t, const float *x, int64_t k, int64_t b, float *out)
{
    const uint32_t vdt = quant_traits_get(t)->vec_dot_type;
    const struct quant_traits *vt = quant_traits_get(vdt);
    if (vdt == QTYPE_F32) {
        memcpy(out, x, (size_t)(b * k) * sizeof(float));
        return;
    }
    void *tmp = malloc(quant_row_size(vdt, k));
    for (int64_t i = 0; i < b; i++) {
        vt->from_f32(x + i * k, tmp, k);
        vt->to_f32(tmp, out + i * k, k);
    }
    free(tmp);
}

static void test_matmul_type(uint32_t t, int64_t k, struct threadpool **pools, struct mm_ctx *ctx)
{
    /* 130 > every batch threshold: the dequantize + GEMM path, with an MR-row tail */
    static const int64_t bs[] = { 1, 7, 64, 130 };
    const int64_t n = 83; /* 2 full 32-row tiles + a 19-row tail */
    const char *name = quant_traits_get(t)->name;
    float *wd = malloc((size_t)(k * n) * sizeof(float));
    void *wq = make_weight(t, k, n, wd);
    const struct mm_weight w = { t, wq, k, n };

    for (int bi = 0; bi < 4; bi++) {
        const int64_t b = bs[bi];
        float *x = rand_vec(b * k, -1, 1), *xr = malloc((size_t)(b * k) * sizeof(float));
        float *ref_f = malloc((size_t)(b * n) * sizeof(float));
        float *ref_q = malloc((size_t)(b * n) * sizeof(float));
        float *y[3];
        round_activations(t, x, k, b, xr);
        matmul_f32_ref(wd, x, k, n, b, ref_f);
        matmul_f32_ref(wd, xr, k, n, b, ref_q);
        int rc = 0;
        for (int pi = 0; pi < 3; pi++) {
            y[pi] = malloc((size_t)(b * n) * sizeof(float));
            rc |= matmul(pools[pi], ctx, &w, x, b, y[pi]);
        }
        /* close to the computation it performed (f32 or quantized activations), and within the
         * activation-rounding error of the other one */
        const double ef = nmse(y[0], ref_f, b * n), eq = nmse(y[0], ref_q, b * n);
        const double tight = 1e-9, loose = t == QTYPE_F32 || t == QTYPE_F16 ? 1e-9 : 1e-4;
        ok(rc == STATUS_OK && (ef < tight || eq < tight) && ef < loose && eq < loose,
           "matmul %s k=%lld n=%lld b=%lld (nmse vs f32 x %.2g, vs rounded x %.2g)", name,
           (long long)k, (long long)n, (long long)b, ef, eq);
        if (matmul_uses_blas(ctx, t, b)) /* OpenBLAS blocks by its thread count (matmul.h) */
            ok(nmse(y[1], y[0], b * n) < 1e-12 && nmse(y[2], y[0], b * n) < 1e-12,
               "matmul %s b=%lld (OpenBLAS) equal within rounding with 1, 2, 4 threads", name,
               (long long)b);
        else
            ok(memcmp(y[0], y[1], (size_t)(b * n) * sizeof(float)) == 0 &&
                   memcmp(y[0], y[2], (size_t)(b * n) * sizeof(float)) == 0,
               "matmul %s b=%lld bit-identical with 1, 2, 4 threads", name, (long long)b);
        free(x), free(xr), free(ref_f), free(ref_q), free(y[0]), free(y[1]), free(y[2]);
    }
    free(wd), free(wq);
}

static void test_matmul_multi(struct threadpool *p, struct mm_ctx *ctx)
{
    static const uint32_t types[3] = { QTYPE_Q4_K, QTYPE_Q6_K, QTYPE_Q8_0 };
    static const int64_t ns[3] = { 96, 40, 33 };
    static const int64_t bs[3] = { 3, 64, 130 }; /* decode, mixed, batch */
    const int64_t k = 512;
    struct mm_weight w[3];
    const struct mm_weight *wp[3] = { &w[0], &w[1], &w[2] };
    float *deq = malloc((size_t)(k * 96) * sizeof(float));
    for (int i = 0; i < 3; i++)
        w[i] = (struct mm_weight){ types[i], make_weight(types[i], k, ns[i], deq), k, ns[i] };
    for (int bi = 0; bi < 3; bi++) {
        const int64_t b = bs[bi];
        float *x = rand_vec(b * k, -1, 1), *ym[3], *ys[3];
        int good = 1;
        for (int i = 0; i < 3; i++) {
            ym[i] = malloc((size_t)(b * ns[i]) * sizeof(float));
            ys[i] = malloc((size_t)(b * ns[i]) * sizeof(float));
            good &= matmul(p, ctx, &w[i], x, b, ys[i]) == STATUS_OK;
        }
        good &= matmul_multi(p, ctx, 3, wp, x, b, ym) == STATUS_OK;
        for (int i = 0; i < 3; i++) {
            good &= memcmp(ym[i], ys[i], (size_t)(b * ns[i]) * sizeof(float)) == 0;
            free(ym[i]), free(ys[i]);
        }
        ok(good, "matmul_multi (q4_K, q6_K, q8_0) b=%lld == separate matmuls", (long long)b);
        free(x);
    }
    /* embedding lookup */
    const int32_t ids[3] = { 39, 0, 17 };
    float *rows = malloc((size_t)(3 * k) * sizeof(float));
    float *deq1 = malloc((size_t)(k * 40) * sizeof(float));
    const struct quant_traits *tr = quant_traits_get(QTYPE_Q6_K);
    int good = matmul_get_rows(&w[1], ids, 3, rows) == STATUS_OK;
    for (int i = 0; i < 3; i++) {
        const size_t rb = quant_row_size(QTYPE_Q6_K, k);
        tr->to_f32((const char *)w[1].data + rb * (size_t)ids[i], deq1, k);
        good &= memcmp(deq1, rows + i * k, (size_t)k * sizeof(float)) == 0;
    }
    const int32_t bad_id = 40;
    ok(good && matmul_get_rows(&w[1], &bad_id, 1, rows) == STATUS_INVALID, "matmul_get_rows");
    /* argument checks */
    float yb[96];
    const struct mm_weight big = { QTYPE_F32, deq, 4096, 1 }, odd = { QTYPE_Q4_K, deq, 500, 1 },
                           gone = { 4, deq, 512, 1 };
    ok(matmul(p, ctx, &big, deq, 1, yb) == STATUS_INVALID &&
           matmul(p, ctx, &odd, deq, 1, yb) == STATUS_INVALID &&
           matmul(p, ctx, &gone, deq, 1, yb) == STATUS_UNSUPPORTED,
       "matmul rejects k > max_k, partial blocks and unknown types");
    for (int i = 0; i < 3; i++)
        free((void *)w[i].data);
    free(deq), free(rows), free(deq1);
}

static void test_matmul(void)
{
    struct threadpool *pools[3] = { NULL, threadpool_new(2), threadpool_new(4) };
    struct mm_ctx *ctx = mm_ctx_new(1024, 64, 4);
    if (!ctx || !pools[1] || !pools[2]) {
        ok(0, "matmul setup");
        return;
    }
    /* k values exercise a partial last k-block (KC = 256) and, for F32/F16, k % 16 != 0 */
    test_matmul_type(QTYPE_F32, 333, pools, ctx);
    test_matmul_type(QTYPE_F16, 333, pools, ctx);
    test_matmul_type(QTYPE_Q8_0, 416, pools, ctx);
    test_matmul_type(QTYPE_Q4_0, 416, pools, ctx);
    test_matmul_type(QTYPE_Q4_K, 768, pools, ctx);
    test_matmul_type(QTYPE_Q6_K, 512, pools, ctx);
    test_matmul_multi(pools[1], ctx);
    mm_ctx_free(ctx);
    threadpool_free(pools[1]);
    threadpool_free(pools[2]);
}

int main(void)
{
    quant_init();
    diag("ops SIMD level: %s", ops_simd_name());
    test_rmsnorm();
    test_layernorm();
    test_softmax();
    test_activations();
    test_rope();
    test_rows();
    test_mask_scale();
    test_noisy_softmax_add();
    test_attention();
    test_threadpool();
    test_matmul();
    return done_testing();
}
