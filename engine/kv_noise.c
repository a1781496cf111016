/*
 * kv_noise.c — the Gumbel noise of Keyformer's score: G(seed, layer, query head, query position,
 * key position) = −log(−log u), u from a counter-based hash, so that the noise needs no state,
 * can be generated in any order (two-pass prefill, GPU) and reproduces exactly.
 *
 * The logarithm is our own polynomial (a Cephes-style minimax on [√½, √2) after splitting off
 * the exponent) written with fused multiply-adds in one fixed order, so that the AVX-512, AVX2
 * and scalar row generators give the same bits: a run's kept tokens do not depend on the CPU's
 * vector width.  Its error (< 2 ulp) is irrelevant for noise.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kv_cache.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KV_X86 1
#else
#define KV_X86 0
#endif

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* The row-invariant part of the counter: layer (8 bits) | query head (8) | query pos (24). */
static inline uint64_t row_key(int layer, int qhead, int qpos)
{
    return ((uint64_t)(layer & 0xff) << 56) | ((uint64_t)(qhead & 0xff) << 48) |
           ((uint64_t)(qpos & 0xffffff) << 24);
}

static inline uint64_t seed_key(uint64_t seed)
{
    return mix64(seed + 0x9e3779b97f4a7c15ULL);
}

/* log coefficients, highest degree first; log(1+f) = f − f²/2 + f³·P(f) */
static const float LOG_P[9] = { 7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f,
                                -1.2420140846e-1f, 1.4249322787e-1f, -1.6668057665e-1f,
                                2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f };
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f

/* Natural log of a positive normal float. */
static inline float log_pos(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    float e = (float)((int)(b >> 23) - 127);
    b = (b & 0x007fffffu) | 0x3f800000u;
    float m;
    memcpy(&m, &b, 4);
    if (m > 1.41421356f) {
        m *= 0.5f;
        e += 1.0f;
    }
    float f = m - 1.0f, z = f * f, p = LOG_P[0];
    for (int i = 1; i < 9; i++)
        p = fmaf(p, f, LOG_P[i]);
    float y = fmaf(e, LN2_LO, f * z * p);
    y = fmaf(-0.5f, z, y);
    return fmaf(e, LN2_HI, f + y);
}

static inline float gumbel_of(uint64_t h)
{
    /* 23 bits: (2^23 − 1) + ½ is exact in a float, so u < 1 strictly (24 bits could round to 1) */
    float u = ((float)(h >> 41) + 0.5f) * (1.0f / 8388608.0f);
    return -log_pos(-log_pos(u));
}

float kv_noise_gumbel(uint64_t seed, int layer, int qhead, int qpos, int kpos)
{
    uint64_t c = row_key(layer, qhead, qpos) | (uint64_t)(kpos & 0xffffff);
    return gumbel_of(mix64(c ^ seed_key(seed)));
}

static void row_scalar(uint64_t seed, int layer, int qhead, int qpos, const int32_t *kpos, int n,
                       float *out)
{
    uint64_t rk = row_key(layer, qhead, qpos), sk = seed_key(seed);
    for (int s = 0; s < n; s++)
        out[s] = gumbel_of(mix64((rk | (uint64_t)(kpos[s] & 0xffffff)) ^ sk));
}

#if KV_X86
#define AVX512DQ __attribute__((target("avx512f,avx512dq")))

static inline AVX512DQ __m512i mix64_x8(__m512i x)
{
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 30));
    x = _mm512_mullo_epi64(x, _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ULL));
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 27));
    x = _mm512_mullo_epi64(x, _mm512_set1_epi64((long long)0x94d049bb133111ebULL));
    return _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
}

/* log_pos for 16 lanes: the same operations in the same order as the scalar version. */
static inline AVX512DQ __m512 log_pos_x16(__m512 x)
{
    __m512i b = _mm512_castps_si512(x);
    __m512 e = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(b, 23), _mm512_set1_epi32(127)));
    b = _mm512_or_si512(_mm512_and_si512(b, _mm512_set1_epi32(0x007fffff)),
                        _mm512_set1_epi32(0x3f800000));
    __m512 m = _mm512_castsi512_ps(b);
    __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
    e = _mm512_mask_add_ps(e, big, e, _mm512_set1_ps(1.0f));
    __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f)), z = _mm512_mul_ps(f, f);
    __m512 p = _mm512_set1_ps(LOG_P[0]);
    for (int i = 1; i < 9; i++)
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(LOG_P[i]));
    __m512 y = _mm512_fmadd_ps(e, _mm512_set1_ps(LN2_LO), _mm512_mul_ps(_mm512_mul_ps(f, z), p));
    y = _mm512_fmadd_ps(_mm512_set1_ps(-0.5f), z, y);
    return _mm512_fmadd_ps(e, _mm512_set1_ps(LN2_HI), _mm512_add_ps(f, y));
}

/* u of 16 keys (gumbel_of's): the hash's top 23 bits, + ½, / 2^23. */
static inline AVX512DQ __m512 uniform_x16(__m512i rk, __m512i sk, const int32_t *kpos)
{
    __m512i kp = _mm512_and_si512(_mm512_loadu_si512(kpos), _mm512_set1_epi32(0xffffff));
    __m512i lo = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(kp));
    __m512i hi = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(kp, 1));
    lo = _mm512_srli_epi64(mix64_x8(_mm512_xor_si512(_mm512_or_si512(rk, lo), sk)), 41);
    hi = _mm512_srli_epi64(mix64_x8(_mm512_xor_si512(_mm512_or_si512(rk, hi), sk)), 41);
    /* the top 23 bits fit an int32: pack both halves and convert exactly */
    __m512i packed = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(lo)),
                                        _mm512_cvtepi64_epi32(hi), 1);
    return _mm512_mul_ps(_mm512_add_ps(_mm512_cvtepi32_ps(packed), _mm512_set1_ps(0.5f)),
                         _mm512_set1_ps(1.0f / 8388608.0f));
}

static AVX512DQ void row_avx512(uint64_t seed, int layer, int qhead, int qpos,
                                const int32_t *kpos, int n, float *out)
{
    __m512i rk = _mm512_set1_epi64((long long)row_key(layer, qhead, qpos));
    __m512i sk = _mm512_set1_epi64((long long)seed_key(seed));
    int s = 0;
    /* four vectors per round: each logarithm is a chain of dependent FMAs, and four independent
     * chains keep the FMA units busy (1.6× faster per key here than one vector per round) */
    for (; s + 64 <= n; s += 64) {
        __m512 l[4];
        for (int v = 0; v < 4; v++)
            l[v] = uniform_x16(rk, sk, kpos + s + 16 * v);
        for (int v = 0; v < 4; v++)
            l[v] = log_pos_x16(l[v]);
        for (int v = 0; v < 4; v++)
            l[v] = log_pos_x16(_mm512_sub_ps(_mm512_setzero_ps(), l[v]));
        for (int v = 0; v < 4; v++)
            _mm512_storeu_ps(out + s + 16 * v, _mm512_sub_ps(_mm512_setzero_ps(), l[v]));
    }
    for (; s + 16 <= n; s += 16) {
        __m512 l1 = log_pos_x16(uniform_x16(rk, sk, kpos + s));
        __m512 g = log_pos_x16(_mm512_sub_ps(_mm512_setzero_ps(), l1));
        _mm512_storeu_ps(out + s, _mm512_sub_ps(_mm512_setzero_ps(), g));
    }
    if (s < n)
        row_scalar(seed, layer, qhead, qpos, kpos + s, n - s, out + s);
}

/*
 * AVX2 + FMA, for CPUs without AVX-512 (where the scalar row's fmaf may be a libm call, ~80 ns
 * per key).  AVX2 has no 64-bit multiply: x·c mod 2^64 = lo·lo + ((hi·lo' + lo·hi') << 32)
 * from three 32 × 32 → 64-bit products, exact as the scalar one.
 */
#define AVX2FMA __attribute__((target("avx2,fma")))

static inline AVX2FMA __m256i mul64_x4(__m256i x, uint64_t c)
{
    __m256i cl = _mm256_set1_epi64x((long long)(c & 0xffffffffu));
    __m256i ch = _mm256_set1_epi64x((long long)(c >> 32));
    __m256i lo = _mm256_mul_epu32(x, cl);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), cl),
                                     _mm256_mul_epu32(x, ch));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

static inline AVX2FMA __m256i mix64_x4(__m256i x)
{
    x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 30));
    x = mul64_x4(x, 0xbf58476d1ce4e5b9ULL);
    x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 27));
    x = mul64_x4(x, 0x94d049bb133111ebULL);
    return _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
}

/* log_pos for 8 lanes: the same operations in the same order as the scalar version. */
static inline AVX2FMA __m256 log_pos_x8(__m256 x)
{
    __m256i b = _mm256_castps_si256(x);
    __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(b, 23), _mm256_set1_epi32(127)));
    b = _mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi32(0x007fffff)),
                        _mm256_set1_epi32(0x3f800000));
    __m256 m = _mm256_castsi256_ps(b);
    __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
    e = _mm256_blendv_ps(e, _mm256_add_ps(e, _mm256_set1_ps(1.0f)), big);
    __m256 f = _mm256_sub_ps(m, _mm256_set1_ps(1.0f)), z = _mm256_mul_ps(f, f);
    __m256 p = _mm256_set1_ps(LOG_P[0]);
    for (int i = 1; i < 9; i++)
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(LOG_P[i]));
    __m256 y = _mm256_fmadd_ps(e, _mm256_set1_ps(LN2_LO), _mm256_mul_ps(_mm256_mul_ps(f, z), p));
    y = _mm256_fmadd_ps(_mm256_set1_ps(-0.5f), z, y);
    return _mm256_fmadd_ps(e, _mm256_set1_ps(LN2_HI), _mm256_add_ps(f, y));
}

/* u of 8 keys (gumbel_of's). */
static inline AVX2FMA __m256 uniform_x8(__m256i rk, __m256i sk, const int32_t *kpos)
{
    __m256i kp = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)kpos),
                                  _mm256_set1_epi32(0xffffff));
    __m256i lo = _mm256_cvtepu32_epi64(_mm256_castsi256_si128(kp));
    __m256i hi = _mm256_cvtepu32_epi64(_mm256_extracti128_si256(kp, 1));
    lo = _mm256_srli_epi64(mix64_x4(_mm256_xor_si256(_mm256_or_si256(rk, lo), sk)), 41);
    hi = _mm256_srli_epi64(mix64_x4(_mm256_xor_si256(_mm256_or_si256(rk, hi), sk)), 41);
    /* the top 23 bits fit an int32: the low words of the eight lanes, in order */
    __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m128i l4 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(lo, idx));
    __m128i h4 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(hi, idx));
    __m256i packed = _mm256_inserti128_si256(_mm256_castsi128_si256(l4), h4, 1);
    return _mm256_mul_ps(_mm256_add_ps(_mm256_cvtepi32_ps(packed), _mm256_set1_ps(0.5f)),
                         _mm256_set1_ps(1.0f / 8388608.0f));
}

static AVX2FMA void row_avx2(uint64_t seed, int layer, int qhead, int qpos, const int32_t *kpos,
                             int n, float *out)
{
    __m256i rk = _mm256_set1_epi64x((long long)row_key(layer, qhead, qpos));
    __m256i sk = _mm256_set1_epi64x((long long)seed_key(seed));
    int s = 0;
    for (; s + 32 <= n; s += 32) { /* four independent vectors per round, as row_avx512 */
        __m256 l[4];
        for (int v = 0; v < 4; v++)
            l[v] = uniform_x8(rk, sk, kpos + s + 8 * v);
        for (int v = 0; v < 4; v++)
            l[v] = log_pos_x8(l[v]);
        for (int v = 0; v < 4; v++)
            l[v] = log_pos_x8(_mm256_sub_ps(_mm256_setzero_ps(), l[v]));
        for (int v = 0; v < 4; v++)
            _mm256_storeu_ps(out + s + 8 * v, _mm256_sub_ps(_mm256_setzero_ps(), l[v]));
    }
    for (; s + 8 <= n; s += 8) {
        __m256 l1 = log_pos_x8(uniform_x8(rk, sk, kpos + s));
        __m256 g = log_pos_x8(_mm256_sub_ps(_mm256_setzero_ps(), l1));
        _mm256_storeu_ps(out + s, _mm256_sub_ps(_mm256_setzero_ps(), g));
    }
    if (s < n)
        row_scalar(seed, layer, qhead, qpos, kpos + s, n - s, out + s);
}
#endif

/* What this CPU can run: 2 AVX-512, 1 AVX2 + FMA, 0 neither. */
static int noise_isa(void)
{
#if KV_X86
    static int isa = -1; /* benign race: every thread computes the same value */
    if (isa < 0)
        isa = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") ? 2
              : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")       ? 1
                                                                                      : 0;
    return isa;
#else
    return 0;
#endif
}

int kv_noise_gumbel_row_isa(int isa, uint64_t seed, int layer, int qhead, int qpos,
                            const int32_t *kpos, int n, float *out)
{
    if (isa < 0 || isa > noise_isa())
        return -1;
#if KV_X86
    if (isa == 2) {
        row_avx512(seed, layer, qhead, qpos, kpos, n, out);
        return 0;
    }
    if (isa == 1) {
        row_avx2(seed, layer, qhead, qpos, kpos, n, out);
        return 0;
    }
#endif
    row_scalar(seed, layer, qhead, qpos, kpos, n, out);
    return 0;
}

void kv_noise_gumbel_row(uint64_t seed, int layer, int qhead, int qpos, const int32_t *kpos, int n,
                         float *out)
{
    kv_noise_gumbel_row_isa(noise_isa(), seed, layer, qhead, qpos, kpos, n, out);
}

void kv_noise_gumbel_row_scalar(uint64_t seed, int layer, int qhead, int qpos,
                                const int32_t *kpos, int n, float *out)
{
    row_scalar(seed, layer, qhead, qpos, kpos, n, out);
}
