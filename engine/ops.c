/*
 * ops.c — norms, softmax, RoPE, activations, element-wise arithmetic and attention kernels
 * (see ops.h).
 *
 * Each SIMD kernel exists twice: a plain scalar version (ops_ref_*, the test oracle and the
 * fallback) and an AVX-512 version compiled with __attribute__((target)) so that the rest of the
 * engine keeps building for the baseline ISA.  The choice is made per call from a CPU-feature
 * flag computed once.  Everything else is plain C: it is tiny (element-wise arithmetic).
 * RoPE lives in ops_rope.c.
 */
#include "config.h"
#include "ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ops_avx2.h"
#include "ops_simd.h"
#include "status.h"

/* building with -DKF_NO_SIMD exercises the portable fallbacks on x86 too */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(KF_NO_SIMD)
#define OPS_X86 1
#include <immintrin.h>
#else
#define OPS_X86 0
#endif


/* ---- CPU features (the only mutable static: computed once, idempotent) ------------------- */

/* 2 AVX-512, 1 AVX2 + FMA, 0 scalar; KF_OPS_SIMD=scalar|avx2 caps it (tests, comparisons). */
static int simd_level(void)
{
#if OPS_X86
    static atomic_int level = -1;
    int l = atomic_load_explicit(&level, memory_order_relaxed);
    if (l < 0) {
        __builtin_cpu_init();
        l = __builtin_cpu_supports("avx512f")                                      ? 2
            : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1
                                                                                : 0;
        const char *e = getenv("KF_OPS_SIMD");
        int cap = !e ? 2 : !strcmp(e, "scalar") ? 0 : !strcmp(e, "avx2") ? 1 : 2;
        l = l < cap ? l : cap;
        atomic_store_explicit(&level, l, memory_order_relaxed);
    }
    return l;
#else
    return 0;
#endif
}

static int have_avx512(void)
{
    return simd_level() == 2;
}

/* AVX2 + FMA (also on AVX-512 CPUs): the kernels of ops_avx2.c */
static int have_avx2(void)
{
    return simd_level() >= 1;
}

/* Run the AVX-512 kernel, else the AVX2 one, where the CPU (and KF_OPS_SIMD) allows. */
#define SIMD_DISPATCH(avx512_call, avx2_call)                                                    \
    do {                                                                                         \
        if (have_avx512()) {                                                                     \
            avx512_call;                                                                         \
            return;                                                                              \
        }                                                                                        \
        if (have_avx2()) {                                                                       \
            avx2_call;                                                                           \
            return;                                                                              \
        }                                                                                        \
    } while (0)

const char *ops_simd_name(void)
{
    return have_avx512() ? "avx512" : have_avx2() ? "avx2" : "scalar";
}

/* ---- scalar references -------------------------------------------------------------------- */

void ops_ref_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    /* two roundings, as ggml's rms_norm followed by a separate mul */
    for (int64_t i = 0; i < n; i++)
        out[i] = w ? (x[i] * scale) * w[i] : x[i] * scale;
}

void ops_ref_softmax(float *x, int64_t n)
{
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}

void ops_ref_silu(const float *x, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] / (1.0f + expf(-x[i]));
}

static inline float gelu_tanh1(float x)
{
    return 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * x * (1.0f + GELU_COEF_A * x * x)));
}

void ops_ref_gelu_tanh(const float *x, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = gelu_tanh1(x[i]);
}

void ops_ref_swiglu(const float *gate, const float *up, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

float ops_ref_dot(const float *a, const float *b, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void ops_ref_axpy(float a, const float *x, int64_t n, float *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

void ops_ref_dot_rows(const float *q, const float *k, int64_t n_rows, int64_t stride, int64_t n,
                      float *out)
{
    for (int64_t j = 0; j < n_rows; j++)
        out[j] = ops_ref_dot(q, k + j * stride, n);
}

void ops_ref_wsum_rows(const float *a, const float *v, int64_t n_rows, int64_t stride, int64_t n,
                       float *out)
{
    memset(out, 0, (size_t)n * sizeof(float));
    for (int64_t j = 0; j < n_rows; j++)
        ops_ref_axpy(a[j], v + j * stride, n, out);
}

void ops_ref_mask_scale(float *att, const int32_t *pos, int64_t n, int32_t qpos, int32_t win,
                        float scale)
{
    for (int64_t j = 0; j < n; j++) {
        int vis = pos[j] <= qpos && (win <= 0 || qpos - pos[j] < win);
        att[j] = vis ? scale * att[j] : -INFINITY;
    }
}

void ops_ref_add_scale(const float *x, float *y, int64_t n, float s)
{
    for (int64_t j = 0; j < n; j++)
        y[j] = (x[j] + y[j]) * s;
}

void ops_ref_noisy_softmax_add(const float *x, float *y, int64_t n, float s, float *acc)
{
    ops_ref_add_scale(x, y, n, s);
    ops_ref_softmax(y, n);
    for (int64_t j = 0; j < n; j++)
        acc[j] += y[j];
}

/* ---- AVX-512 kernels --------------------------------------------------------------------- */
#if OPS_X86
#define AVX512 __attribute__((target("avx512f")))

/*
 * e^x for 16 lanes: x = n·ln2 + r with |r| <= ln2/2, e^r by its degree-7 Taylor polynomial
 * (truncation error < 6e-9, below f32 resolution), then scalef by 2^n, which also produces
 * correct subnormals, 0 and +inf at the ends of the clamped range.  Max error ~2 ulp.
 */
static inline AVX512 __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(EXP_LO));
    x = _mm512_min_ps(x, _mm512_set1_ps(EXP_HI));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(exp_poly[0]);
    for (int i = 1; i < 8; i++)
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_poly[i]));
    return _mm512_scalef_ps(p, n);
}

static inline AVX512 __mmask16 tail_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* x / (1 + e^-x) */
static inline AVX512 __m512 silu16(__m512 x)
{
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* 0.5x(1 + tanh z) == x · sigmoid(2z) == x / (1 + e^-2z): no cancellation near 0 */
static inline AVX512 __m512 gelu16(__m512 x)
{
    const __m512 x2 = _mm512_mul_ps(x, x);
    const __m512 inner = _mm512_fmadd_ps(x2, _mm512_set1_ps(GELU_COEF_A), _mm512_set1_ps(1.0f));
    const __m512 z2 =
        _mm512_mul_ps(_mm512_mul_ps(x, inner), _mm512_set1_ps(-2.0f * SQRT_2_OVER_PI));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(z2)));
}

static AVX512 void act_avx512(int kind, const float *x, const float *up, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 y = kind == 0 ? silu16(v) : gelu16(v);
        if (up)
            y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, up + i));
        _mm512_mask_storeu_ps(out + i, m, y);
    }
}

/* Sum of 16 lanes in double, so the result matches a double accumulation closely. */
static inline AVX512 __m512d widen_lo(__m512 v)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}

static inline AVX512 __m512d widen_hi(__m512 v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* x[i] = e^(x[i] − max) for i < n; returns 1/Σ broadcast (summed in double, as ggml). */
static inline AVX512 __m512 exp_pass_avx512(float *x, int64_t n, float max_s)
{
    const __m512 max = _mm512_set1_ps(max_s);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), max));
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(x + i, m, e);
        s0 = _mm512_add_pd(s0, widen_lo(e));
        s1 = _mm512_add_pd(s1, widen_hi(e));
    }
    return _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))));
}

static AVX512 void softmax_avx512(float *x, int64_t n)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
    }
    const __m512 inv = exp_pass_avx512(x, n, _mm512_reduce_max_ps(vmax));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

static AVX512 void rmsnorm_avx512(const float *x, const float *w, int64_t n, float eps, float *out)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        const __m512 sq = _mm512_mul_ps(v, v); /* squared in f32, summed in double, as ggml */
        s0 = _mm512_add_pd(s0, widen_lo(sq));
        s1 = _mm512_add_pd(s1, widen_hi(sq));
    }
    const float mean = (float)(_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / (double)n);
    const __m512 scale = _mm512_set1_ps(1.0f / sqrtf(mean + eps));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), scale);
        if (w)
            y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(out + i, m, y);
    }
}

/* LayerNorm as ops_ref_layernorm: sums in double, the centred values through out (in place:
 * out may be x), then scale, weight, bias. */
static AVX512 void layernorm_avx512(const float *x, const float *w, const float *b, int64_t n,
                                    float eps, float *out)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        s0 = _mm512_add_pd(s0, widen_lo(v));
        s1 = _mm512_add_pd(s1, widen_hi(v));
    }
    const __m512 mean = _mm512_set1_ps((float)(_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / (double)n));
    s0 = s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), mean);
        const __m512 sq = _mm512_mul_ps(d, d);
        s0 = _mm512_add_pd(s0, widen_lo(sq));
        s1 = _mm512_add_pd(s1, widen_hi(sq));
        _mm512_mask_storeu_ps(out + i, m, d);
    }
    const __m512 scale = _mm512_set1_ps(
        1.0f / sqrtf((float)(_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / (double)n) + eps));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, out + i), scale);
        if (w)
            y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, w + i));
        if (b)
            y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(out + i, m, y);
    }
}

static AVX512 float dot_avx512(const float *a, const float *b, int64_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static AVX512 void axpy_avx512(float a, const float *x, int64_t n, float *y)
{
    const __m512 va = _mm512_set1_ps(a);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 r = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i),
                                         _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

/* Lane i of the result is the sum of the lanes of v_i: a transpose network with additions. */
#define HSUM_PAIR(x, y) _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y))
#define HSUM_QUAD(x, y) \
    _mm512_add_ps(_mm512_shuffle_ps(x, y, 0x44), _mm512_shuffle_ps(x, y, 0xee))
#define HSUM_LANES(x, y) \
    _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xdd))

static inline __attribute__((always_inline)) AVX512 __m512
hsum16x16(__m512 v0, __m512 v1, __m512 v2, __m512 v3, __m512 v4, __m512 v5, __m512 v6, __m512 v7,
          __m512 v8, __m512 v9, __m512 v10, __m512 v11, __m512 v12, __m512 v13, __m512 v14,
          __m512 v15)
{
    /* per 128-bit lane, after PAIR: [x0+x2, y0+y2, x1+x3, y1+y3]; after QUAD: the lane's sum
     * for 4 vectors; LANES then adds 128-bit lanes pairwise, twice */
    const __m512 b0 = HSUM_QUAD(HSUM_PAIR(v0, v1), HSUM_PAIR(v2, v3));
    const __m512 b1 = HSUM_QUAD(HSUM_PAIR(v4, v5), HSUM_PAIR(v6, v7));
    const __m512 b2 = HSUM_QUAD(HSUM_PAIR(v8, v9), HSUM_PAIR(v10, v11));
    const __m512 b3 = HSUM_QUAD(HSUM_PAIR(v12, v13), HSUM_PAIR(v14, v15));
    return HSUM_LANES(HSUM_LANES(b0, b1), HSUM_LANES(b2, b3));
}

#define FOR16(X) \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define SC_DECL(i) __m512 s##i = _mm512_setzero_ps();
#define SC_FMA(i) \
    s##i = _mm512_fmadd_ps(qc, _mm512_maskz_loadu_ps(m, kb + (i) * stride + c * 16), s##i);

/*
 * out[j] = q · k_j, 16 rows at a time: one product vector per row, reduced together by
 * hsum16x16; the rows left over get one reduction each.
 */
static AVX512 void dot_rows_avx512(const float *q, const float *k, int64_t n_rows, int64_t stride,
                                   int64_t n, float *out)
{
    const int64_t nch = (n + 15) / 16;
    int64_t j0 = 0;

    for (; j0 + 16 <= n_rows; j0 += 16) {
        const float *kb = k + j0 * stride;
        FOR16(SC_DECL)
        for (int64_t c = 0; c < nch; c++) {
            const __mmask16 m = tail_mask(n - c * 16);
            const __m512 qc = _mm512_maskz_loadu_ps(m, q + c * 16);
            FOR16(SC_FMA)
        }
        _mm512_storeu_ps(out + j0, hsum16x16(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11,
                                             s12, s13, s14, s15));
    }
    for (; j0 < n_rows; j0++) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t c = 0; c < nch; c++) {
            const __mmask16 m = tail_mask(n - c * 16);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + c * 16),
                                  _mm512_maskz_loadu_ps(m, k + j0 * stride + c * 16), acc);
        }
        out[j0] = _mm512_reduce_add_ps(acc);
    }
}

/*
 * out = Σ_j a_j · v_j over 64-float column groups, two rows in flight so that eight independent
 * FMA chains keep both FMA ports busy.  The eight partial sums of column group c0/4 live in
 * st[c0/4 · 128 ...] between calls (wsum_step_avx512); wsum_rows_avx512 is one step between a
 * zeroed state and the final o[i] + o[4 + i].
 */
static AVX512 void wsum_step_avx512(const float *a, const float *v, int64_t n_rows,
                                    int64_t stride, int64_t n, float *st)
{
    const int64_t nch = (n + 15) / 16;
    for (int64_t c0 = 0; c0 < nch; c0 += 4) {
        __mmask16 m[4];
        __m512 o[8];
        float *sp = st + c0 / 4 * 128;
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            o[i] = _mm512_loadu_ps(sp + 16 * i);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            m[i] = c0 + i < nch ? tail_mask(n - (c0 + i) * 16) : 0;
        const float *vp = v + c0 * 16;
        int64_t j = 0;
        for (; j + 2 <= n_rows; j += 2, vp += 2 * stride) {
            const __m512 p0 = _mm512_set1_ps(a[j]), p1 = _mm512_set1_ps(a[j + 1]);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                o[i] = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m[i], vp + 16 * i), o[i]);
                const __m512 v1 = _mm512_maskz_loadu_ps(m[i], vp + stride + 16 * i);
                o[4 + i] = _mm512_fmadd_ps(p1, v1, o[4 + i]);
            }
        }
        if (j < n_rows) {
            const __m512 p0 = _mm512_set1_ps(a[j]);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                o[i] = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(m[i], vp + 16 * i), o[i]);
        }
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            _mm512_storeu_ps(sp + 16 * i, o[i]);
    }
}

static AVX512 void wsum_end_avx512(const float *st, int64_t n, float *out)
{
    const int64_t nch = (n + 15) / 16;
    for (int64_t c = 0; c < nch; c++) {
        const float *sp = st + c / 4 * 128 + (c % 4) * 16;
        _mm512_mask_storeu_ps(out + c * 16, tail_mask(n - c * 16),
                              _mm512_add_ps(_mm512_loadu_ps(sp), _mm512_loadu_ps(sp + 64)));
    }
}

static AVX512 void wsum_rows_avx512(const float *a, const float *v, int64_t n_rows,
                                    int64_t stride, int64_t n, float *out)
{
    float st[8 * 128]; /* up to 512 columns in one piece, else in slices of 512 */
    for (int64_t c = 0; c < n; c += 512) {
        int64_t w = n - c < 512 ? n - c : 512;
        memset(st, 0, sizeof st);
        wsum_step_avx512(a, v + c, n_rows, stride, w, st);
        wsum_end_avx512(st, w, out + c);
    }
}
static AVX512 void mask_scale_avx512(float *att, const int32_t *pos, int64_t n, int32_t qpos,
                                     int32_t win, float scale)
{
    const __m512i qp = _mm512_set1_epi32(qpos), wv = _mm512_set1_epi32(win);
    const __m512 sc = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const __m512i p = _mm512_maskz_loadu_epi32(m, pos + j);
        __mmask16 vis = _mm512_mask_cmple_epi32_mask(m, p, qp);
        if (win > 0)
            vis &= _mm512_cmplt_epi32_mask(_mm512_sub_epi32(qp, p), wv);
        const __m512 a = _mm512_maskz_loadu_ps(m, att + j);
        _mm512_mask_storeu_ps(att + j, m, _mm512_mask_mul_ps(ninf, vis, sc, a));
    }
}

/* softmax_avx512 with the (x + y)·s step folded into its max pass and the sum into acc folded
 * into its scaling pass: the same operations, no FMA contraction (bit for bit). */
static AVX512 void noisy_softmax_add_avx512(const float *x, float *y, int64_t n, float s,
                                            float *acc)
{
    const __m512 sv = _mm512_set1_ps(s);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_mul_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i),
                                                     _mm512_maskz_loadu_ps(m, y + i)),
                                       sv);
        _mm512_mask_storeu_ps(y + i, m, v);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, v);
    }
    const __m512 inv = exp_pass_avx512(y, n, _mm512_reduce_max_ps(vmax));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i), inv);
        __asm__("" : "+v"(p)); /* p rounded, as stored by softmax: no contraction into an FMA */
        _mm512_mask_storeu_ps(acc + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, acc + i), p));
    }
}

static AVX512 void add_scale_avx512(const float *x, float *y, int64_t n, float s)
{
    const __m512 sv = _mm512_set1_ps(s);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + j),
                                       _mm512_maskz_loadu_ps(m, y + j));
        _mm512_mask_storeu_ps(y + j, m, _mm512_mul_ps(v, sv));
    }
}
#endif /* OPS_X86 */

/* ---- dispatching entry points --------------------------------------------------------------- */

void ops_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out)
{
#if OPS_X86
    SIMD_DISPATCH(rmsnorm_avx512(x, w, n, eps, out), ops_avx2_rmsnorm(x, w, n, eps, out));
#endif
    ops_ref_rmsnorm(x, w, n, eps, out);
}

void ops_softmax(float *x, int64_t n)
{
#if OPS_X86
    SIMD_DISPATCH(softmax_avx512(x, n), ops_avx2_softmax(x, n));
#endif
    ops_ref_softmax(x, n);
}

void ops_silu(const float *x, int64_t n, float *out)
{
#if OPS_X86
    SIMD_DISPATCH(act_avx512(0, x, NULL, n, out), ops_avx2_act(0, x, NULL, n, out));
#endif
    ops_ref_silu(x, n, out);
}

void ops_gelu_tanh(const float *x, int64_t n, float *out)
{
#if OPS_X86
    SIMD_DISPATCH(act_avx512(1, x, NULL, n, out), ops_avx2_act(1, x, NULL, n, out));
#endif
    ops_ref_gelu_tanh(x, n, out);
}

/* Exact GELU, 0.5x(1 + erf(x/√2)): what PyTorch's nn.GELU() computes (HF MPT). */
void ops_gelu_erf(const float *x, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void ops_swiglu(const float *gate, const float *up, int64_t n, float *out)
{
#if OPS_X86
    SIMD_DISPATCH(act_avx512(0, gate, up, n, out), ops_avx2_act(0, gate, up, n, out));
#endif
    ops_ref_swiglu(gate, up, n, out);
}

void ops_geglu(const float *gate, const float *up, int64_t n, float *out)
{
#if OPS_X86
    SIMD_DISPATCH(act_avx512(1, gate, up, n, out), ops_avx2_act(1, gate, up, n, out));
#endif
    for (int64_t i = 0; i < n; i++)
        out[i] = gelu_tanh1(gate[i]) * up[i];
}

float ops_dot(const float *a, const float *b, int64_t n)
{
#if OPS_X86
    if (have_avx512())
        return dot_avx512(a, b, n);
#endif
    return ops_ref_dot(a, b, n);
}

void ops_axpy(float a, const float *x, int64_t n, float *y)
{
#if OPS_X86
    if (have_avx512()) {
        axpy_avx512(a, x, n, y);
        return;
    }
#endif
    ops_ref_axpy(a, x, n, y);
}

/* ---- plain kernels ---------------------------------------------------------------------- */

void ops_ref_layernorm(const float *x, const float *w, const float *b, int64_t n, float eps,
                       float *out)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i];
    const float mean = (float)(sum / (double)n);
    double sum2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i] - mean;
        out[i] = v;
        sum2 += (double)(v * v);
    }
    const float scale = 1.0f / sqrtf((float)(sum2 / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) {
        float y = out[i] * scale;
        if (w)
            y *= w[i];
        if (b)
            y += b[i];
        out[i] = y;
    }
}

void ops_layernorm(const float *x, const float *w, const float *b, int64_t n, float eps,
                   float *out)
{
#if OPS_X86
    SIMD_DISPATCH(layernorm_avx512(x, w, b, n, eps, out), ops_avx2_layernorm(x, w, b, n, eps, out));
#endif
    ops_ref_layernorm(x, w, b, n, eps, out);
}

void ops_mul(const float *a, const float *b, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

void ops_add(const float *a, const float *b, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void ops_scale(const float *x, float s, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = s * x[i];
}

/* ---- attention -------------------------------------------------------------------------- */

void ops_dot_rows(const float *q, const float *k, int64_t n_rows, int64_t stride, int64_t n,
                  float *out)
{
#if OPS_X86
    SIMD_DISPATCH(dot_rows_avx512(q, k, n_rows, stride, n, out),
                  ops_avx2_dot_rows(q, k, n_rows, stride, n, out));
#endif
    ops_ref_dot_rows(q, k, n_rows, stride, n, out);
}

void ops_wsum_rows(const float *a, const float *v, int64_t n_rows, int64_t stride, int64_t n,
                   float *out)
{
#if OPS_X86
    SIMD_DISPATCH(wsum_rows_avx512(a, v, n_rows, stride, n, out),
                  ops_avx2_wsum_rows(a, v, n_rows, stride, n, out));
#endif
    ops_ref_wsum_rows(a, v, n_rows, stride, n, out);
}

void ops_mask_scale(float *att, const int32_t *pos, int64_t n, int32_t qpos, int32_t win,
                    float scale)
{
#if OPS_X86
    SIMD_DISPATCH(mask_scale_avx512(att, pos, n, qpos, win, scale),
                  ops_avx2_mask_scale(att, pos, n, qpos, win, scale));
#endif
    ops_ref_mask_scale(att, pos, n, qpos, win, scale);
}

void ops_add_scale(const float *x, float *y, int64_t n, float s)
{
#if OPS_X86
    SIMD_DISPATCH(add_scale_avx512(x, y, n, s), ops_avx2_add_scale(x, y, n, s));
#endif
    ops_ref_add_scale(x, y, n, s);
}

void ops_noisy_softmax_add(const float *x, float *y, int64_t n, float s, float *acc)
{
#if OPS_X86
    SIMD_DISPATCH(noisy_softmax_add_avx512(x, y, n, s, acc),
                  ops_avx2_noisy_softmax_add(x, y, n, s, acc));
#endif
    ops_ref_noisy_softmax_add(x, y, n, s, acc);
}

size_t ops_wsum_state_floats(int64_t n)
{
    return (size_t)(n + 63) / 64 * 128; /* SIMD: even and odd rows' sums per 64 columns */
}

void ops_wsum_begin(float *st, int64_t n)
{
    memset(st, 0, ops_wsum_state_floats(n) * sizeof(float));
}

void ops_wsum_step(const float *a, const float *v, int64_t n_rows, int64_t stride, int64_t n,
                   float *st)
{
#if OPS_X86
    SIMD_DISPATCH(wsum_step_avx512(a, v, n_rows, stride, n, st),
                  ops_avx2_wsum_step(a, v, n_rows, stride, n, st));
#endif
    for (int64_t j = 0; j < n_rows; j++) /* ops_ref_wsum_rows's order: the state is out */
        ops_ref_axpy(a[j], v + j * stride, n, st);
}

void ops_wsum_end(const float *st, int64_t n, float *out)
{
#if OPS_X86
    SIMD_DISPATCH(wsum_end_avx512(st, n, out), ops_avx2_wsum_end(st, n, out));
#endif
    memcpy(out, st, (size_t)n * sizeof(float));
}

void ops_attention(const float *q, const float *k, const float *v, int64_t n_kv, int head_dim,
                   int64_t kv_stride, float scale, float alibi_slope, int64_t q_pos,
                   int64_t kv_pos0, float *att, float *out)
{
    ops_dot_rows(q, k, n_kv, kv_stride, head_dim, att);
    for (int64_t j = 0; j < n_kv; j++) {
        float s = scale * att[j];
        if (alibi_slope != 0.0f) {
            const int64_t d = q_pos - (kv_pos0 + j);
            s -= alibi_slope * (float)(d < 0 ? -d : d);
        }
        att[j] = s;
    }
    ops_softmax(att, n_kv);
    ops_wsum_rows(att, v, n_kv, kv_stride, head_dim, out);
}
