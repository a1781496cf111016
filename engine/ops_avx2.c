/*
 * ops_avx2.c — engine/ops.c's kernels for x86 CPUs with AVX2 and FMA but no AVX-512 (most
 * desktop and laptop CPUs, which otherwise ran them scalar): attention's rows (q·k over rows,
 * Σ p·v), its softmax and the steps around it (mask and scale, Keyformer's fused score row),
 * RMSNorm and the gated activations.  Same structure and order of operations as the AVX-512
 * versions: eight rows' dot products reduced together; the weighted sum's partial sums kept for
 * even and odd rows apart in the same state layout (128 floats per 64 columns), so that a sum
 * taken in pieces of even length equals the sum in one call, bit for bit; sums of exponentials
 * and squares in double.  4,096 rows of 64 (one KV head at depth 4096, TinyLlama's head size),
 * this machine: dot_rows 119–149 µs scalar, 26–27 AVX2, 18–19 AVX-512; wsum_rows 132, 22–23,
 * 17–19.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops_avx2.h"
#include "ops_simd.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(KF_NO_SIMD)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* Lanes < left of a masked load or store (left may exceed 8 or be <= 0). */
static inline AVX2 __m256i mask8(int64_t left)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int l = left > 8 ? 8 : left < 0 ? 0 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), iota);
}

/* Lane i of the result is the sum of the lanes of s_i. */
static inline AVX2 __m256 hsum8x8(__m256 s0, __m256 s1, __m256 s2, __m256 s3, __m256 s4,
                                  __m256 s5, __m256 s6, __m256 s7)
{
    const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
    const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(s4, s5), _mm256_hadd_ps(s6, s7));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                         _mm256_permute2f128_ps(u0, u1, 0x31));
}

static inline AVX2 float hsum8(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* Lanes < left of x + i, the others −inf (for maxima). */
static inline AVX2 __m256 load_or_ninf(const float *x, int64_t left)
{
    if (left >= 8)
        return _mm256_loadu_ps(x);
    const __m256i m = mask8(left);
    return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(x, m),
                            _mm256_castsi256_ps(m));
}

static inline AVX2 void store_n(float *x, int64_t left, __m256 v)
{
    if (left >= 8)
        _mm256_storeu_ps(x, v);
    else
        _mm256_maskstore_ps(x, mask8(left), v);
}

static inline AVX2 float hmax8(__m256 v)
{
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* Σ of the four doubles of s0 + s1 */
static inline AVX2 double hsum_pd(__m256d s0, __m256d s1)
{
    const __m256d s = _mm256_add_pd(s0, s1);
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    t = _mm_add_sd(t, _mm_unpackhi_pd(t, t));
    return _mm_cvtsd_f64(t);
}

AVX2 void ops_avx2_dot_rows(const float *q, const float *k, int64_t n_rows, int64_t stride,
                            int64_t n, float *out)
{
    const int64_t nfull = n / 8 * 8;
    const __m256i mt = mask8(n - nfull);
    int64_t j0 = 0;
    for (; j0 + 8 <= n_rows; j0 += 8) {
        const float *kb = k + j0 * stride;
        __m256 s[8];
        for (int i = 0; i < 8; i++)
            s[i] = _mm256_setzero_ps();
        for (int64_t c = 0; c < nfull; c += 8) {
            const __m256 qc = _mm256_loadu_ps(q + c);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                s[i] = _mm256_fmadd_ps(qc, _mm256_loadu_ps(kb + i * stride + c), s[i]);
        }
        if (nfull < n) {
            const __m256 qc = _mm256_maskload_ps(q + nfull, mt);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                s[i] = _mm256_fmadd_ps(qc, _mm256_maskload_ps(kb + i * stride + nfull, mt), s[i]);
        }
        _mm256_storeu_ps(out + j0, hsum8x8(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]));
    }
    for (; j0 < n_rows; j0++) {
        const float *kr = k + j0 * stride;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t c = 0; c < nfull; c += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_loadu_ps(kr + c), acc);
        if (nfull < n)
            acc = _mm256_fmadd_ps(_mm256_maskload_ps(q + nfull, mt),
                                  _mm256_maskload_ps(kr + nfull, mt), acc);
        out[j0] = hsum8(acc);
    }
}

/*
 * 32 columns at a time (half of a 64-column group of the state): the even rows' sums in
 * st[g·128 + h·32 ...], the odd rows' 64 floats after them; two rows in flight, eight FMA
 * chains.
 */
AVX2 void ops_avx2_wsum_step(const float *a, const float *v, int64_t n_rows, int64_t stride,
                             int64_t n, float *st)
{
    for (int64_t c0 = 0; c0 < n; c0 += 32) {
        float *se = st + c0 / 64 * 128 + c0 % 64, *so = se + 64;
        __m256 e[4], o[4];
        __m256i m[4];
        const int full = c0 + 32 <= n;
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            e[i] = _mm256_loadu_ps(se + 8 * i);
            o[i] = _mm256_loadu_ps(so + 8 * i);
            m[i] = mask8(n - c0 - 8 * i);
        }
        const float *vp = v + c0;
        int64_t j = 0;
        if (full) {
            for (; j + 2 <= n_rows; j += 2, vp += 2 * stride) {
                const __m256 p0 = _mm256_set1_ps(a[j]), p1 = _mm256_set1_ps(a[j + 1]);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    e[i] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(vp + 8 * i), e[i]);
                    o[i] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(vp + stride + 8 * i), o[i]);
                }
            }
            if (j < n_rows) {
                const __m256 p0 = _mm256_set1_ps(a[j]);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++)
                    e[i] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(vp + 8 * i), e[i]);
            }
        } else {
            for (; j + 2 <= n_rows; j += 2, vp += 2 * stride) {
                const __m256 p0 = _mm256_set1_ps(a[j]), p1 = _mm256_set1_ps(a[j + 1]);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    e[i] = _mm256_fmadd_ps(p0, _mm256_maskload_ps(vp + 8 * i, m[i]), e[i]);
                    o[i] = _mm256_fmadd_ps(p1, _mm256_maskload_ps(vp + stride + 8 * i, m[i]),
                                           o[i]);
                }
            }
            if (j < n_rows) {
                const __m256 p0 = _mm256_set1_ps(a[j]);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++)
                    e[i] = _mm256_fmadd_ps(p0, _mm256_maskload_ps(vp + 8 * i, m[i]), e[i]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            _mm256_storeu_ps(se + 8 * i, e[i]);
            _mm256_storeu_ps(so + 8 * i, o[i]);
        }
    }
}

AVX2 void ops_avx2_wsum_end(const float *st, int64_t n, float *out)
{
    for (int64_t c = 0; c < n; c += 8) {
        const float *sp = st + c / 64 * 128 + c % 64;
        store_n(out + c, n - c, _mm256_add_ps(_mm256_loadu_ps(sp), _mm256_loadu_ps(sp + 64)));
    }
}

AVX2 void ops_avx2_wsum_rows(const float *a, const float *v, int64_t n_rows, int64_t stride,
                             int64_t n, float *out)
{
    float st[8 * 128]; /* up to 512 columns in one piece, else in slices of 512 */
    for (int64_t c = 0; c < n; c += 512) {
        int64_t w = n - c < 512 ? n - c : 512;
        memset(st, 0, sizeof st);
        ops_avx2_wsum_step(a, v + c, n_rows, stride, w, st);
        ops_avx2_wsum_end(st, w, out + c);
    }
}

/*
 * e^x for 8 lanes, as ops.c's exp16: x = n·ln2 + r, e^r by its degree-7 Taylor polynomial, then
 * 2^n as two powers of two (no scalef in AVX2) so that the subnormal end stays right.
 */
static inline AVX2 __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(EXP_LO));
    x = _mm256_min_ps(x, _mm256_set1_ps(EXP_HI));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(exp_poly[0]);
    for (int i = 1; i < 8; i++)
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly[i]));
    const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1);
    const __m256i n2 = _mm256_sub_epi32(ni, n1), bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* x / (1 + e^-x) and 0.5x(1 + tanh z) == x / (1 + e^-2z), as ops.c's silu16 / gelu16 */
static inline AVX2 __m256 silu8(__m256 x)
{
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline AVX2 __m256 gelu8(__m256 x)
{
    const __m256 x2 = _mm256_mul_ps(x, x);
    const __m256 inner = _mm256_fmadd_ps(x2, _mm256_set1_ps(GELU_COEF_A), _mm256_set1_ps(1.0f));
    const __m256 z2 = _mm256_mul_ps(_mm256_mul_ps(x, inner), _mm256_set1_ps(-2.0f * SQRT_2_OVER_PI));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(z2)));
}

/* kind 0 SiLU, 1 tanh GELU; times up[i] where up is given (SwiGLU, GeGLU) */
AVX2 void ops_avx2_act(int kind, const float *x, const float *up, int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i m = mask8(n - i);
        const __m256 v = _mm256_maskload_ps(x + i, m);
        __m256 y = kind == 0 ? silu8(v) : gelu8(v);
        store_n(out + i, n - i, up ? _mm256_mul_ps(y, _mm256_maskload_ps(up + i, m)) : y);
    }
}

/* squared in f32, summed in double (as ggml and ops.c's AVX-512 version) */
AVX2 void ops_avx2_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 v = _mm256_maskload_ps(x + i, mask8(n - i));
        const __m256 sq = _mm256_mul_ps(v, v);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
    }
    const __m256 scale = _mm256_set1_ps(1.0f / sqrtf((float)(hsum_pd(s0, s1) / (double)n) + eps));
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i m = mask8(n - i);
        const __m256 y = _mm256_mul_ps(_mm256_maskload_ps(x + i, m), scale);
        store_n(out + i, n - i, w ? _mm256_mul_ps(y, _mm256_maskload_ps(w + i, m)) : y);
    }
}

/* LayerNorm as ops_ref_layernorm (out may be x). */
AVX2 void ops_avx2_layernorm(const float *x, const float *w, const float *b, int64_t n, float eps,
                             float *out)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 v = _mm256_maskload_ps(x + i, mask8(n - i));
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    const __m256 mean = _mm256_set1_ps((float)(hsum_pd(s0, s1) / (double)n));
    s0 = s1 = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i m = mask8(n - i);
        const __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), mean),
                                       _mm256_castsi256_ps(m));
        const __m256 sq = _mm256_mul_ps(d, d);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
        store_n(out + i, n - i, d);
    }
    const __m256 scale = _mm256_set1_ps(1.0f / sqrtf((float)(hsum_pd(s0, s1) / (double)n) + eps));
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i m = mask8(n - i);
        __m256 y = _mm256_mul_ps(_mm256_maskload_ps(out + i, m), scale);
        if (w)
            y = _mm256_mul_ps(y, _mm256_maskload_ps(w + i, m));
        if (b)
            y = _mm256_add_ps(y, _mm256_maskload_ps(b + i, m));
        store_n(out + i, n - i, y);
    }
}

/* x[i] = e^(x[i] − max) for i < n; returns 1/Σ broadcast (summed in double, as ggml). */
static inline AVX2 __m256 exp_pass(float *x, int64_t n, float max_s)
{
    const __m256 max = _mm256_set1_ps(max_s);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(load_or_ninf(x + i, n - i), max));
        if (n - i < 8) /* the lanes past n add nothing */
            e = _mm256_and_ps(e, _mm256_castsi256_ps(mask8(n - i)));
        store_n(x + i, n - i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    return _mm256_set1_ps((float)(1.0 / hsum_pd(s0, s1)));
}

AVX2 void ops_avx2_softmax(float *x, int64_t n)
{
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 8)
        vmax = _mm256_max_ps(vmax, load_or_ninf(x + i, n - i));
    const __m256 inv = exp_pass(x, n, hmax8(vmax));
    for (int64_t i = 0; i < n; i += 8)
        store_n(x + i, n - i, _mm256_mul_ps(load_or_ninf(x + i, n - i), inv));
}

AVX2 void ops_avx2_mask_scale(float *att, const int32_t *pos, int64_t n, int32_t qpos,
                              int32_t win, float scale)
{
    const __m256i qp = _mm256_set1_epi32(qpos), wv = _mm256_set1_epi32(win);
    const __m256 sc = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 8) {
        const __m256i m = mask8(n - j);
        const __m256i p = _mm256_maskload_epi32((const int *)(pos + j), m);
        __m256i vis = _mm256_andnot_si256(_mm256_cmpgt_epi32(p, qp), m); /* p <= qpos */
        if (win > 0)
            vis = _mm256_and_si256(vis, _mm256_cmpgt_epi32(wv, _mm256_sub_epi32(qp, p)));
        const __m256 a = _mm256_mul_ps(sc, _mm256_maskload_ps(att + j, m));
        store_n(att + j, n - j, _mm256_blendv_ps(ninf, a, _mm256_castsi256_ps(vis)));
    }
}

AVX2 void ops_avx2_add_scale(const float *x, float *y, int64_t n, float s)
{
    const __m256 sv = _mm256_set1_ps(s);
    for (int64_t j = 0; j < n; j += 8) {
        const __m256i m = mask8(n - j);
        const __m256 v = _mm256_add_ps(_mm256_maskload_ps(x + j, m), _mm256_maskload_ps(y + j, m));
        store_n(y + j, n - j, _mm256_mul_ps(v, sv));
    }
}

/* ops_avx2_add_scale, ops_avx2_softmax and acc += p fused as ops.c's AVX-512 version: the same
 * operations, no FMA contraction (bit for bit). */
AVX2 void ops_avx2_noisy_softmax_add(const float *x, float *y, int64_t n, float s, float *acc)
{
    const __m256 sv = _mm256_set1_ps(s);
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i m = mask8(n - i);
        const __m256 v = _mm256_mul_ps(
            _mm256_add_ps(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)), sv);
        store_n(y + i, n - i, v);
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), v,
                                                     _mm256_castsi256_ps(m)));
    }
    const __m256 inv = exp_pass(y, n, hmax8(vmax));
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i m = mask8(n - i);
        __m256 p = _mm256_mul_ps(_mm256_maskload_ps(y + i, m), inv);
        __asm__("" : "+x"(p)); /* p rounded, as stored by softmax: no contraction into an FMA */
        store_n(acc + i, n - i, _mm256_add_ps(_mm256_maskload_ps(acc + i, m), p));
    }
}

#endif
