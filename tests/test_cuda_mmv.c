/*
 * test_cuda_mmv.c — the CUDA weight kernels (engine/cuda/cuda_mmv.cu) against the CPU scalar
 * references: matrix-vector products for every GPU type and several shapes, the bias/residual
 * epilogue, the gated (SILU/GELU) pair, dequantization to f16, the several-token kernel of short
 * prompts and the tensor-core products of long ones (cuda_mmq).
 *
 * Weights are random floats quantized by the CPU quantizer, so every block is valid and none is
 * zero.  Each product is compared with a double-precision dot of the CPU-dequantized weights
 * (a) with the exact f32 x (bounds the activation quantization, 1e-2) and, for types that read
 * q8_1 activations, (b) with x dequantized from the CPU's own q8_1 quantization, which the GPU
 * reproduces bit for bit: there only f32 rounding separates the two (1e-4), so a wrong index
 * shows.  Outputs are NaN-poisoned first; every case prints its errors as a TAP diagnostic.
 *
 * `test_cuda_mmv --bench` instead times the decode shapes of a 7B model (median of graph
 * replays over weight copies that do not fit in L2) and prints a table.
 * Without a CUDA device the test skips.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_mmv.h"
#include "half.h"
#include "quant.h"
#include "tap.h"

/* enum mmv_act is visible to CUDA code only */
#define MMV_ACT_SILU_ID 1
#define MMV_ACT_GELU_ID 2

static const uint32_t types[] = {
    QTYPE_F32,  QTYPE_F16,  QTYPE_BF16, QTYPE_Q4_0, QTYPE_Q4_1, QTYPE_Q5_0, QTYPE_Q5_1,
    QTYPE_Q8_0, QTYPE_Q2_K, QTYPE_Q3_K, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K,
};
#define N_TYPES (int)(sizeof(types) / sizeof(types[0]))

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_gauss(void)
{
    double u = ((rng_next() >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double v = (rng_next() >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Zeroed, so that the compiler (and a reader) sees every buffer initialized. */
static void *xmalloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        printf("Bail out! out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static int is_float_type(uint32_t t)
{
    return t == QTYPE_F32 || t == QTYPE_F16 || t == QTYPE_BF16;
}

/* A quantized n × k weight of random values, and its CPU dequantization (wd, n × k floats). */
static void *make_weight(uint32_t type, int64_t k, int64_t n, float **wd)
{
    const struct quant_traits *t = quant_traits_get(type);
    const size_t cnt = (size_t)k * (size_t)n;
    float *f = xmalloc(cnt * sizeof(float));
    for (size_t i = 0; i < cnt; i++)
        f[i] = rng_gauss() * 0.5f + 0.05f; /* an offset, so mins and sums matter */
    void *w = xmalloc(quant_row_size(type, k) * (size_t)n);
    t->from_f32(f, w, (int64_t)cnt);
    t->to_f32(w, f, (int64_t)cnt);
    *wd = f;
    return w;
}

/* ref[r] = Σ wd[r][i] · x[i] in double. */
static void ref_mv(const float *wd, const float *x, int64_t k, int64_t n, double *ref)
{
    for (int64_t r = 0; r < n; r++) {
        const float *row = wd + r * k;
        double s = 0.0;
        for (int64_t i = 0; i < k; i++)
            s += (double)row[i] * x[i];
        ref[r] = s;
    }
}

/*
 * The scale of each output's rounding noise: sqrt(Σ_c (w_rc·x_c)²) per row.  Errors of the
 * activation rounding are measured against it, not against |y|, which cancellation can make
 * arbitrarily small (one random row of a type with offsets, say).
 */
static void ref_scale(const float *wd, const float *x, int64_t k, int64_t n, double *sc)
{
    for (int64_t r = 0; r < n; r++) {
        const float *row = wd + r * k;
        double s = 0.0;
        for (int64_t i = 0; i < k; i++)
            s += ((double)row[i] * x[i]) * ((double)row[i] * x[i]);
        sc[r] = sqrt(s);
    }
}

/*
 * x as the GPU sees it: through q8_1 (legacy types), or for k-quants through the CPU's Q8_K
 * rounding (per 256: iscale = −127/max, q = min(rint(iscale·x), 127), x = q/iscale), which the
 * model uses so that both backends round activations alike.
 */
static int is_kquant(uint32_t type)
{
    return type == QTYPE_Q2_K || type == QTYPE_Q3_K || type == QTYPE_Q4_K || type == QTYPE_Q5_K ||
           type == QTYPE_Q6_K;
}

static void q8_1_roundtrip_t(uint32_t type, const float *x, int64_t k, float *xd)
{
    if (is_kquant(type)) {
        for (int64_t b = 0; b < k; b += 256) {
            float amax = 0.0f, max = 0.0f;
            for (int e = 0; e < 256; e++)
                if (fabsf(x[b + e]) > amax) {
                    amax = fabsf(x[b + e]);
                    max = x[b + e];
                }
            float iscale = amax != 0.0f ? -127.0f / max : 0.0f;
            for (int e = 0; e < 256; e++) {
                long q = lrintf(iscale * x[b + e]);
                xd[b + e] = amax != 0.0f ? (float)(q > 127 ? 127 : q) * (1.0f / iscale) : 0.0f;
            }
        }
        return;
    }
    const struct quant_traits *t = quant_traits_get(QTYPE_Q8_1);
    void *q = xmalloc(quant_row_size(QTYPE_Q8_1, k));
    t->from_f32(x, q, k);
    t->to_f32(q, xd, k);
    free(q);
}

static double q8_tol(uint32_t type)
{
    (void)type;
    return 1e-4;
}

/*
 * The reference products with x as the GPU rounds it.  Q4_1/Q5_1 take their min term from the
 * block's f16 s = d·Σq, as ggml does, so there the CPU's own vec_dot on q8_1 activations is the
 * reference (exact dequantized sums would differ by up to ~5e-4).
 */
static void ref_q(uint32_t type, const void *w, const float *wd, const float *x, const float *xd,
                  int64_t k, int64_t n, double *ref)
{
    if (type != QTYPE_Q4_1 && type != QTYPE_Q5_1) {
        ref_mv(wd, xd, k, n, ref);
        return;
    }
    const struct quant_traits *t = quant_traits_get(type), *a = quant_traits_get(QTYPE_Q8_1);
    void *xq = xmalloc(quant_row_size(QTYPE_Q8_1, k));
    a->from_f32(x, xq, k);
    size_t rb = quant_row_size(type, k);
    for (int64_t r = 0; r < n; r++) {
        float v;
        t->vec_dot((int)k, &v, (const char *)w + r * rb, xq);
        ref[r] = v;
    }
    free(xq);
}

struct err_stats {
    double rel, max_abs;
    int64_t bad; /* non-finite outputs */
    int64_t worst;
};

static struct err_stats compare(const float *y, const double *ref, int64_t n)
{
    struct err_stats e = { 0, 0, 0, -1 };
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            e.bad++;
            if (e.worst < 0)
                e.worst = i;
            continue;
        }
        const double d = fabs(y[i] - ref[i]);
        num += d * d;
        den += ref[i] * ref[i];
        if (d > e.max_abs) {
            e.max_abs = d;
            if (!e.bad)
                e.worst = i;
        }
    }
    e.rel = den > 0 ? sqrt(num / den) : sqrt(num);
    return e;
}

/* ||y − ref|| / ||scale|| (the noise scale of ref_scale) must stay within tol. */
static int check_scaled(const char *what, const float *y, const double *ref, const double *sc,
                        int64_t n, double tol)
{
    double num = 0, den = 0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            bad++;
            continue;
        }
        num += (y[i] - ref[i]) * (y[i] - ref[i]);
        den += sc[i] * sc[i];
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    return ok(bad == 0 && rel <= tol, "%s: rel to the noise scale %.3g (tol %.0e), %lld non-finite",
              what, rel, tol, (long long)bad);
}

static int check(const char *what, const float *y, const double *ref, int64_t n, double tol)
{
    const struct err_stats e = compare(y, ref, n);
    const int pass = e.bad == 0 && e.rel <= tol;
    ok(pass, "%s: rel %.3g (tol %.0e)", what, e.rel, tol);
    if (!pass || e.rel > tol / 4) {
        const int64_t w = e.worst >= 0 ? e.worst : 0;
        diag("  %s: %lld non-finite, max |err| %.4g at row %lld (y %.6g, ref %.6g)", what,
             (long long)e.bad, e.max_abs, (long long)w, (double)y[w], ref[w]);
    }
    return pass;
}

// ---- cases --------------------------------------------------------------------------------

static void test_mmv(uint32_t type, int64_t k, int64_t n)
{
    const char *name = quant_traits_get(type)->name;
    char what[96], err[256];
    float *wd;
    void *w = make_weight(type, k, n, &wd);
    float *x = xmalloc((size_t)k * sizeof(float)), *xd = xmalloc((size_t)k * sizeof(float));
    float *y = xmalloc((size_t)n * sizeof(float));
    double *ref = xmalloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < k; i++)
        x[i] = rng_gauss();
    for (int64_t i = 0; i < n; i++)
        y[i] = NAN;
    snprintf(what, sizeof(what), "%s mmv n=%lld k=%lld", name, (long long)n, (long long)k);
    if (cuda_test_mmv(type, w, NULL, k, n, x, -1, y, err, sizeof(err)) != 0) {
        ok(0, "%s: %s", what, err);
        goto out;
    }
    ref_mv(wd, x, k, n, ref);
    if (is_float_type(type)) {
        check(what, y, ref, n, 1e-5);
    } else {
        char w2[112];
        double *sc = xmalloc((size_t)n * sizeof(double));
        ref_scale(wd, x, k, n, sc);
        snprintf(w2, sizeof(w2), "%s vs f32 x", what);
        check_scaled(w2, y, ref, sc, n, 2e-2); /* q8 rounding: ~6e-3 rms */
        q8_1_roundtrip_t(type, x, k, xd);
        ref_q(type, w, wd, x, xd, k, n, ref);
        snprintf(w2, sizeof(w2), "%s vs q8_1 x", what);
        if (type == QTYPE_Q4_1 || type == QTYPE_Q5_1) /* f32 sums of a min term: scale-relative */
            check_scaled(w2, y, ref, sc, n, q8_tol(type));
        else
            check(w2, y, ref, n, q8_tol(type));
        free(sc);
    }
out:
    free(w);
    free(wd);
    free(x);
    free(xd);
    free(y);
    free(ref);
}

/* q|k and v of two k-quant types in one launch: every row bit for bit what cuda_mmv gives. */
static void test_pair(uint32_t t1, int64_t n1, uint32_t t2, int64_t n2, int64_t k)
{
    char what[128], err[256];
    float *wd1, *wd2;
    void *w1 = make_weight(t1, k, n1, &wd1), *w2 = make_weight(t2, k, n2, &wd2);
    float *x = xmalloc((size_t)k * sizeof(float));
    float *y = xmalloc((size_t)(n1 + n2) * sizeof(float));
    float *y1 = xmalloc((size_t)n1 * sizeof(float)), *y2 = xmalloc((size_t)n2 * sizeof(float));
    for (int64_t i = 0; i < k; i++)
        x[i] = rng_gauss();
    snprintf(what, sizeof(what), "pair %s n=%lld + %s n=%lld, k=%lld",
             quant_traits_get(t1)->name, (long long)n1, quant_traits_get(t2)->name,
             (long long)n2, (long long)k);
    if (cuda_test_mmv_pair(t1, w1, n1, t2, w2, n2, k, x, y, err, sizeof(err)) != 0 ||
        cuda_test_mmv(t1, w1, NULL, k, n1, x, -1, y1, err, sizeof(err)) != 0 ||
        cuda_test_mmv(t2, w2, NULL, k, n2, x, -1, y2, err, sizeof(err)) != 0) {
        ok(0, "%s: %s", what, err);
    } else {
        int64_t bad = -1;
        for (int64_t i = 0; i < n1 + n2 && bad < 0; i++) {
            float want = i < n1 ? y1[i] : y2[i - n1];
            if (memcmp(&y[i], &want, sizeof want) != 0)
                bad = i;
        }
        ok(bad < 0, "%s: the separate products' values, bit for bit%s", what,
           bad < 0 ? "" : " (a row differs)");
        if (bad >= 0)
            diag("row %lld: %.9g against %.9g", (long long)bad, y[bad],
                 bad < n1 ? y1[bad] : y2[bad - n1]);
    }
    free(w1);
    free(w2);
    free(wd1);
    free(wd2);
    free(x);
    free(y);
    free(y1);
    free(y2);
}

/* y = W x + bias + residual, the residual already in y (aliasing, as the model uses it). */
static void test_epilogue(uint32_t type, int64_t k, int64_t n)
{
    const char *name = quant_traits_get(type)->name;
    char what[96], err[256];
    float *wd;
    void *w = make_weight(type, k, n, &wd);
    float *x = xmalloc((size_t)k * sizeof(float)), *xd = xmalloc((size_t)k * sizeof(float));
    float *y = xmalloc((size_t)n * sizeof(float)), *bias = xmalloc((size_t)n * sizeof(float));
    float *res = xmalloc((size_t)n * sizeof(float));
    double *ref = xmalloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < k; i++)
        x[i] = rng_gauss();
    for (int64_t i = 0; i < n; i++) {
        bias[i] = rng_gauss() * 4;
        res[i] = rng_gauss() * 4;
        y[i] = NAN;
    }
    if (is_float_type(type))
        memcpy(xd, x, (size_t)k * sizeof(float));
    else
        q8_1_roundtrip_t(type, x, k, xd);
    if (is_float_type(type))
        ref_mv(wd, xd, k, n, ref);
    else
        ref_q(type, w, wd, x, xd, k, n, ref);
    for (int mode = 1; mode <= 3; mode++) { /* 1 bias, 2 residual, 3 both */
        const float *b = mode & 1 ? bias : NULL, *r = mode & 2 ? res : NULL;
        double *want = xmalloc((size_t)n * sizeof(double));
        for (int64_t i = 0; i < n; i++)
            want[i] = ref[i] + (b ? b[i] : 0) + (r ? r[i] : 0);
        snprintf(what, sizeof(what), "%s epilogue%s%s n=%lld k=%lld", name, b ? " +bias" : "",
                 r ? " +residual" : "", (long long)n, (long long)k);
        if (cuda_test_mmv_ep(type, w, NULL, k, n, x, -1, b, r, y, err, sizeof(err)) != 0)
            ok(0, "%s: %s", what, err);
        else
            check(what, y, want, n, q8_tol(type));
        free(want);
    }
    free(w);
    free(wd);
    free(x);
    free(xd);
    free(y);
    free(bias);
    free(res);
    free(ref);
}

static double act_ref(double g, int act)
{
    if (act == MMV_ACT_SILU_ID)
        return g / (1.0 + exp(-g));
    return 0.5 * g * (1.0 + tanh(0.7978845608 * g * (1.0 + 0.044715 * g * g)));
}

static void test_glu(uint32_t type, int64_t k, int64_t n, int act)
{
    const char *name = quant_traits_get(type)->name;
    char what[96], err[256];
    float *wgd, *wud;
    void *wg = make_weight(type, k, n, &wgd), *wu = make_weight(type, k, n, &wud);
    float *x = xmalloc((size_t)k * sizeof(float)), *xd = xmalloc((size_t)k * sizeof(float));
    float *y = xmalloc((size_t)n * sizeof(float));
    double *g = xmalloc((size_t)n * sizeof(double)), *u = xmalloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < k; i++)
        x[i] = rng_gauss() * 0.1f; /* keeps the gate in the activation's curved range */
    for (int64_t i = 0; i < n; i++)
        y[i] = NAN;
    if (is_float_type(type))
        memcpy(xd, x, (size_t)k * sizeof(float));
    else
        q8_1_roundtrip_t(type, x, k, xd);
    if (is_float_type(type)) {
        ref_mv(wgd, xd, k, n, g);
        ref_mv(wud, xd, k, n, u);
    } else {
        ref_q(type, wg, wgd, x, xd, k, n, g);
        ref_q(type, wu, wud, x, xd, k, n, u);
    }
    for (int64_t i = 0; i < n; i++)
        g[i] = act_ref(g[i], act) * u[i];
    snprintf(what, sizeof(what), "%s glu %s n=%lld k=%lld", name, act == MMV_ACT_SILU_ID ? "silu" : "gelu",
             (long long)n, (long long)k);
    if (cuda_test_mmv(type, wg, wu, k, n, x, act, y, err, sizeof(err)) != 0)
        ok(0, "%s: %s", what, err);
    else
        check(what, y, g, n, q8_tol(type));
    free(wg);
    free(wu);
    free(wgd);
    free(wud);
    free(x);
    free(xd);
    free(y);
    free(g);
    free(u);
}

/*
 * Several tokens per launch (cuda_mmv_rows, short prompts): bit for bit the decode kernel's
 * numbers token by token (each thread sums the same units in the same order), which test_mmv
 * checks against the CPU reference.  rows 11 = a launch of 8 and one of 3; 9 = 8 and a lone
 * token (the decode kernel); with bias and residual, and the GLU form.
 */
static void test_rows(uint32_t type, int64_t k, int64_t n, int rows, int act)
{
    const char *name = quant_traits_get(type)->name;
    char what[96], err[256];
    float *wgd, *wud = NULL;
    void *wg = make_weight(type, k, n, &wgd), *wu = act >= 0 ? make_weight(type, k, n, &wud) : NULL;
    size_t ny = (size_t)rows * n;
    float *x = xmalloc((size_t)rows * k * sizeof(float)), *bias = xmalloc((size_t)n * sizeof(float));
    float *res = xmalloc(ny * sizeof(float)), *yr = xmalloc(ny * sizeof(float));
    float *y1 = xmalloc(ny * sizeof(float));
    for (size_t i = 0; i < (size_t)rows * k; i++)
        x[i] = rng_gauss() * 0.1f;
    for (int64_t i = 0; i < n; i++)
        bias[i] = rng_gauss();
    for (size_t i = 0; i < ny; i++)
        res[i] = rng_gauss();
    snprintf(what, sizeof(what), "%s%s rows=%d n=%lld k=%lld", name, act >= 0 ? " glu" : "", rows,
             (long long)n, (long long)k);
    if (cuda_test_mmv_rows(type, wg, wu, k, n, rows, x, act, act >= 0 ? NULL : bias,
                           act >= 0 ? NULL : res, 0, yr, y1, err, sizeof(err)) != 0) {
        ok(0, "%s: %s", what, err);
    } else {
        size_t differ = 0, bad = 0;
        for (size_t i = 0; i < ny; i++) {
            differ += memcmp(&yr[i], &y1[i], sizeof(float)) != 0;
            bad += !isfinite(yr[i]);
        }
        ok(differ == 0 && bad == 0, "%s: as the decode kernel token by token (%zu of %zu differ, "
           "%zu non-finite)", what, differ, ny, bad);
    }
    free(wg);
    free(wgd);
    if (wu) {
        free(wu);
        free(wud);
    }
    free(x);
    free(bias);
    free(res);
    free(yr);
    free(y1);
}

/*
 * Prompt batches on the tensor cores.  kernel 1, cuda_mmq (int8): against the double-precision
 * products of the CPU-dequantized weights with the activations as the CPU's decode path rounds
 * them (exact sums of the activations in every min term), plus bias and residual.  Only f32
 * summation order separates the two (measured ~1e-7), so 1e-5 catches a wrong index, scale or
 * offset.  kernel 2, cuda_mmf (f16 operands, dequantized in shared memory, k split over blocks
 * when tokens are few): the dequantized weights and the unrounded activations (the prompt
 * path's operands, cuda_round.cuh), both rounded to f16 first, as the kernel (and cuBLAS on
 * cuda_dequant_f16's output) takes them; 5e-5, the tensor cores' f32 sums being less exact than
 * IEEE ones (measured 1.3e-5 at k = 11008).  Shapes leave partial tiles of rows (128) and tokens
 * (64), and k a partial chunk for the legacy types.
 */
static void test_mmq(uint32_t type, int64_t k, int64_t n, int rows, int with_res, int kernel)
{
    const char *name = quant_traits_get(type)->name;
    char what[96], err[256];
    float *wd;
    void *w = make_weight(type, k, n, &wd);
    const size_t ny = (size_t)rows * n;
    float *x = xmalloc((size_t)rows * k * sizeof(float)), *xd = xmalloc((size_t)k * sizeof(float));
    float *bias = xmalloc((size_t)n * sizeof(float)), *res = xmalloc(ny * sizeof(float));
    float *yq = xmalloc(ny * sizeof(float)), *y1 = xmalloc(ny * sizeof(float));
    double *ref = xmalloc(ny * sizeof(double));
    for (size_t i = 0; i < (size_t)rows * k; i++)
        x[i] = rng_gauss() * 0.1f;
    for (int64_t i = 0; i < n; i++)
        bias[i] = rng_gauss();
    for (size_t i = 0; i < ny; i++)
        res[i] = with_res ? rng_gauss() : 0.0f;
    snprintf(what, sizeof(what), "%s %s tokens=%d n=%lld k=%lld%s", name,
             kernel == 2 ? "mmf" : "mmq", rows, (long long)n, (long long)k,
             with_res ? " +res" : "");
    if (kernel == 2) /* the f16 operand of the weights */
        for (size_t i = 0; i < (size_t)n * k; i++)
            wd[i] = fp16_to_fp32(fp32_to_fp16(wd[i]));
    if (cuda_test_mmv_rows(type, w, NULL, k, n, rows, x, -1, bias, with_res ? res : NULL, kernel,
                           yq, y1, err, sizeof(err)) != 0) {
        ok(0, "%s: %s", what, err);
    } else {
        for (int t = 0; t < rows; t++) {
            if (kernel == 2) /* f16 of the activations themselves (cuda_round.cuh) */
                for (int64_t i = 0; i < k; i++)
                    xd[i] = fp16_to_fp32(fp32_to_fp16(x[(size_t)t * k + i]));
            else
                q8_1_roundtrip_t(type, x + (size_t)t * k, k, xd);
            ref_mv(wd, xd, k, n, ref + (size_t)t * n);
            for (int64_t r = 0; r < n; r++)
                ref[(size_t)t * n + r] += (double)bias[r] + res[(size_t)t * n + r];
        }
        check(what, yq, ref, (int64_t)ny, kernel == 2 ? 5e-5 : 1e-5);
    }
    free(w);
    free(wd);
    free(x);
    free(xd);
    free(bias);
    free(res);
    free(yq);
    free(y1);
    free(ref);
}

static void test_dequant(uint32_t type, int64_t k, int64_t n)
{
    const char *name = quant_traits_get(type)->name;
    char what[96], err[256];
    float *wd;
    void *w = make_weight(type, k, n, &wd);
    const size_t cnt = (size_t)k * (size_t)n;
    float *out = xmalloc(cnt * sizeof(float));
    double *ref = xmalloc(cnt * sizeof(double));
    for (size_t i = 0; i < cnt; i++) {
        out[i] = NAN;
        ref[i] = wd[i];
    }
    snprintf(what, sizeof(what), "%s dequant_f16 n=%lld k=%lld", name, (long long)n,
             (long long)k);
    if (cuda_test_dequant(type, w, k, n, out, err, sizeof(err)) != 0)
        ok(0, "%s: %s", what, err);
    else
        check(what, out, ref, (int64_t)cnt, 1e-3);
    free(w);
    free(wd);
    free(out);
    free(ref);
}

// ---- benchmark ------------------------------------------------------------------------------

static int bench(void)
{
    static const uint32_t bt[] = { QTYPE_Q4_0, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K, QTYPE_Q8_0,
                                   QTYPE_F16 };
    static const int64_t shapes[][2] = { { 4096, 4096 }, { 11008, 4096 }, { 4096, 11008 },
                                         { 32000, 4096 } }; /* n rows × k */
    printf("%-6s %14s %10s %10s %9s\n", "type", "n x k", "us", "GB/s", "MB");
    for (size_t t = 0; t < sizeof(bt) / sizeof(bt[0]); t++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            const int64_t n = shapes[s][0], k = shapes[s][1], tile = 64;
            const size_t rb = quant_row_size(bt[t], k);
            float *wd = NULL;
            /* quantize 64 rows of random values and repeat them: realistic bytes, quick setup */
            void *w0 = make_weight(bt[t], k, tile, &wd);
            uint8_t *w = xmalloc(rb * (size_t)n);
            for (int64_t r = 0; r < n; r++)
                memcpy(w + rb * (size_t)r, (uint8_t *)w0 + rb * (size_t)(r % tile), rb);
            char err[256];
            double us = 0;
            char shape[32];
            snprintf(shape, sizeof(shape), "%lldx%lld", (long long)n, (long long)k);
            if (cuda_bench_mmv(bt[t], w, k, n, &us, err, sizeof(err)) != 0)
                printf("%-6s %14s  failed: %s\n", quant_traits_get(bt[t])->name, shape, err);
            else
                printf("%-6s %14s %10.2f %10.1f %9.2f\n", quant_traits_get(bt[t])->name, shape,
                       us, rb * (double)n / us / 1e3, rb * (double)n / 1e6);
            fflush(stdout);
            free(w0);
            free(wd);
            free(w);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    char info[256];
    if (cuda_probe(info, sizeof(info)) == 0)
        return skip_all("no CUDA device");
    quant_init();
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        printf("# %s\n", info);
        return bench();
    }
    diag("%s", info);

    for (int t = 0; t < N_TYPES; t++) {
        const uint32_t type = types[t];
        const int kq = type >= QTYPE_Q2_K && type <= QTYPE_Q6_K;
        const int64_t k0 = kq ? 256 : 32;
        const int64_t ns_small[] = { 1, 3, 64 };
        for (int i = 0; i < 3; i++) {
            test_mmv(type, k0, ns_small[i]);
            if (!kq)
                test_mmv(type, 64, ns_small[i]); /* legacy row of 2 blocks (tiny test models) */
            test_mmv(type, 512 + k0, ns_small[i]);
        }
        const int64_t ns[] = { 1, 3, 515, 4096 };
        for (int i = 0; i < 4; i++)
            test_mmv(type, 4096, ns[i]);
        test_mmv(type, 11008, 3);
        test_mmv(type, 11008, 515);
        test_mmv(type, 14336, 3); /* Q6_K in runs over several units a thread (Llama-3's down) */
        test_dequant(type, k0, 3);
        test_dequant(type, 4096, 64);
    }
    const uint32_t ep_types[] = { QTYPE_F16, QTYPE_Q4_0, QTYPE_Q8_0, QTYPE_Q4_K, QTYPE_Q6_K };
    for (int i = 0; i < 5; i++) {
        test_epilogue(ep_types[i], 4096, 515);
        test_epilogue(ep_types[i], 256, 3);
    }
    for (int t = 0; t < N_TYPES; t++) {
        test_glu(types[t], 4096, 515, MMV_ACT_SILU_ID);
        test_glu(types[t], 4096, 3, MMV_ACT_GELU_ID);
    }
    test_glu(QTYPE_Q4_K, 11008, 64, MMV_ACT_GELU_ID);
    test_pair(QTYPE_Q4_K, 8192, QTYPE_Q6_K, 4096, 4096); /* Llama-2's q|k, v: runs of 8 */
    test_pair(QTYPE_Q4_K, 4608, QTYPE_Q6_K, 1024, 4096); /* Llama-3's (GQA 8) */
    test_pair(QTYPE_Q5_K, 515, QTYPE_Q6_K, 515, 11008);  /* GGUF's Q6_K layout */
    test_pair(QTYPE_Q4_K, 3, QTYPE_Q6_K, 64, 256);       /* a row a block (tiny models) */
    {
        char err[256];
        float x[256] = { 0 }, y[2];
        static uint8_t w[210];
        ok(cuda_test_mmv_pair(QTYPE_Q4_K, w, 1, QTYPE_Q4_K, w, 1, 256, x, y, err,
                              sizeof(err)) == 1,
           "pair: types without a combined kernel are left to the caller (%s)", err);
    }
    for (int t = 0; t < N_TYPES; t++) {
        if (is_float_type(types[t]))
            continue;
        test_rows(types[t], 4096, 515, 11, -1);
        test_rows(types[t], 256, 3, 9, -1);
        test_rows(types[t], 4096, 515, 11, MMV_ACT_SILU_ID);
    }
    for (int t = 0; t < N_TYPES; t++) {
        if (is_float_type(types[t]))
            continue;
        const int kq = is_kquant(types[t]);
        for (int kernel = 1; kernel <= 2; kernel++) {
            test_mmq(types[t], 4096, 515, 100, 1, kernel);
            test_mmq(types[t], kq ? 256 : 160, 3, 17, 0, kernel);
            test_mmq(types[t], kq ? 11008 : 11008 + 96, 130, 65, 0, kernel);
        }
        test_mmq(types[t], 4096, 300, 24, 1, 2); /* k split over 8 blocks, residual in place */
    }
    return done_testing();
}
