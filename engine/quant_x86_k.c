/*
 * quant_x86_k.c — x86 SIMD dot products of the K-quants (Q2_K, Q3_K, Q4_K, Q5_K and Q6_K weights
 * against Q8_K activations), at the levels of quant_x86.c, which picks the level and calls
 * quant_x86_k_install, and their dequantizers (to_f32, bit-identical to dequant_*_ref).
 *
 * A super-block is 256 elements with small integer sub-block scales.  Products of quants are
 * summed per sub-block in integer (maddubs, or vpdpbusd at the AVX-512 level), multiplied by the
 * integer sub-block scales (madd / vpdpwssd), and the float super-block scales are applied once
 * per super-block.  Offsets (Q3_K's -4, Q6_K's -32) and mins (Q2_K, Q4_K, Q5_K) come from the
 * Q8_K bsums (sums of 16 activations), so the inner loops only multiply unsigned quants.  Every
 * immediate operand is a literal (clang and gcc -O0 reject any other); helpers are always
 * inlined, so the sub-block indices they take fold into constant shifts and shuffle masks.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "quant.h"

void quant_x86_k_install(struct quant_traits *table, int n, int level);

#if defined(__x86_64__)

#include <immintrin.h>

#define X86_AVX2 __attribute__((target("avx2,fma,f16c")))
#define X86_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
/* Helpers must inline into the kernels (gcc gives up on the bigger ones otherwise). */
#define X86_INLINE static inline __attribute__((always_inline))

// ---- helpers ---------------------------------------------------------------------------------

/*
 * Streaming weights from DRAM, the hardware prefetchers alone leave these kernels waiting on
 * memory (see quant_x86.c, which has the same helper).
 */
#define X86_PREFETCH_AHEAD 4096

X86_INLINE void x86_prefetch(const void *p, int bytes)
{
    const uintptr_t a = (uintptr_t)p + X86_PREFETCH_AHEAD;
    for (int o = 0; o < bytes; o += 64)
        _mm_prefetch((const char *)(a + (uintptr_t)o), _MM_HINT_T0);
}

X86_INLINE X86_AVX2 float x86_hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

X86_INLINE X86_AVX2 float x86_h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}

X86_INLINE X86_AVX2 __m256i x86_load(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/*
 * [d, dmin] of a super-block (adjacent fp16) times the activation scale, as floats 0 and 1:
 * one conversion and one multiply for both.
 */
X86_INLINE X86_AVX2 __m128 x86_k_scales(const uint16_t *dpair, float yd)
{
    uint32_t u;
    memcpy(&u, dpair, 4);
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)u)), _mm_set1_ps(yd));
}

X86_INLINE X86_AVX2 __m256 x86_lane(__m128 v, int k)
{
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(k));
}

/* int16 element j of each 128-bit lane, broadcast over that lane. */
X86_INLINE X86_AVX2 __m256i x86_bcast16(__m256i v, int j)
{
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j)));
}

/* int16 element j0 broadcast over the low 128-bit lane and j1 over the high one. */
X86_INLINE X86_AVX2 __m256i x86_bcast16x2(__m256i v, int j0, int j1)
{
    const __m128i i0 = _mm_set1_epi16((short)((2 * j0 + 1) << 8 | 2 * j0));
    const __m128i i1 = _mm_set1_epi16((short)((2 * j1 + 1) << 8 | 2 * j1));
    return _mm256_shuffle_epi8(v, _mm256_setr_m128i(i0, i1));
}

/* Bit b of every byte moved to bit `to` (others cleared); 16-bit shifts do not leak into it. */
X86_INLINE X86_AVX2 __m256i x86_bit_to(__m256i v, int b, int to)
{
    const __m256i m = _mm256_set1_epi8((char)(1 << to));
    if (b < to)
        return _mm256_and_si256(_mm256_slli_epi16(v, to - b), m);
    if (b > to)
        return _mm256_and_si256(_mm256_srli_epi16(v, b - to), m);
    return _mm256_and_si256(v, m);
}

/*
 * The 12 packed scale bytes of Q4_K/Q5_K as sc0..sc7 then m0..m7, one byte each.  Bytes 0-3
 * hold sc0-3 and the top bits of sc4-7, bytes 4-7 m0-3 and the top bits of m4-7, bytes 8-11 the
 * low nibbles of sc4-7 (low) and m4-7 (high).  The 16-byte load stays inside the block.
 */
X86_INLINE X86_AVX2 __m128i x86_k4_scales(const uint8_t *s)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)s);
    const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7,
                                                        8, 9, 10, 11));
    const __m128i lo = _mm_or_si128(
        _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63,
                                       0, 0, 0, 0)),
        _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                          15, 15, 15, 15)));
    const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1,
                                                        4, 5, 6, 7));
    return _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
}

/* sum_j m_j * (bsums[2j] + bsums[2j+1]): the min term of Q4_K/Q5_K, as 8 int32. */
X86_INLINE X86_AVX2 __m256i x86_k4_minsum(__m128i scm, const int16_t *bsums)
{
    const __m128i mdup = _mm_shuffle_epi8(scm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
                                                             13, 13, 14, 14, 15, 15));
    return _mm256_madd_epi16(_mm256_cvtepu8_epi16(mdup), x86_load(bsums));
}

// ---- Q4_K / Q5_K, AVX2 -----------------------------------------------------------------------

/* Chunk c (64 elements): sub-block 2c in the low nibbles, 2c+1 in the high ones. */
X86_INLINE X86_AVX2 __m256i x86_q4k_chunk(const uint8_t *q4, const int8_t *q8, __m256i sc,
                                          int c)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i bits = x86_load(q4 + 32 * c);
    const __m256i lo = _mm256_and_si256(bits, m4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
    const __m256i plo = _mm256_maddubs_epi16(lo, x86_load(q8 + 64 * c));
    const __m256i phi = _mm256_maddubs_epi16(hi, x86_load(q8 + 64 * c + 32));
    return _mm256_add_epi32(_mm256_madd_epi16(plo, x86_bcast16(sc, 2 * c)),
                            _mm256_madd_epi16(phi, x86_bcast16(sc, 2 * c + 1)));
}

/* As x86_q4k_chunk, with the fifth bits from qh (bit 2c for the low nibbles, 2c+1 high). */
X86_INLINE X86_AVX2 __m256i x86_q5k_chunk(const uint8_t *q4, const int8_t *q8, __m256i qh,
                                          __m256i sc, int c)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i bits = x86_load(q4 + 32 * c);
    const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), x86_bit_to(qh, 2 * c, 4));
    const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                       x86_bit_to(qh, 2 * c + 1, 4));
    const __m256i plo = _mm256_maddubs_epi16(lo, x86_load(q8 + 64 * c));
    const __m256i phi = _mm256_maddubs_epi16(hi, x86_load(q8 + 64 * c + 32));
    return _mm256_add_epi32(_mm256_madd_epi16(plo, x86_bcast16(sc, 2 * c)),
                            _mm256_madd_epi16(phi, x86_bcast16(sc, 2 * c + 1)));
}

static X86_AVX2 void dot_q4_k_avx2(int n, float *s, const void *w, const void *a)
{
    const struct blk_q4_k *x = w;
    const struct blk_q8_k *y = a;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        x86_prefetch(x + i, (int)sizeof(*x));
        const __m128i scm = x86_k4_scales(x[i].scales);
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scm));
        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        const __m256i sumi = _mm256_add_epi32(
            _mm256_add_epi32(x86_q4k_chunk(q4, q8, sc, 0), x86_q4k_chunk(q4, q8, sc, 1)),
            _mm256_add_epi32(x86_q4k_chunk(q4, q8, sc, 2), x86_q4k_chunk(q4, q8, sc, 3)));
        const __m256i msum = x86_k4_minsum(scm, y[i].bsums);
        const __m128 dd = x86_k_scales(&x[i].d, y[i].d);
        acc = _mm256_fmadd_ps(x86_lane(dd, 0), _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(x86_lane(dd, 1), _mm256_cvtepi32_ps(msum), accm);
    }
    *s = x86_hsum_ps(_mm256_sub_ps(acc, accm));
}

static X86_AVX2 void dot_q5_k_avx2(int n, float *s, const void *w, const void *a)
{
    const struct blk_q5_k *x = w;
    const struct blk_q8_k *y = a;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        x86_prefetch(x + i, (int)sizeof(*x));
        const __m128i scm = x86_k4_scales(x[i].scales);
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scm));
        const __m256i qh = x86_load(x[i].qh);
        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        const __m256i sumi = _mm256_add_epi32(
            _mm256_add_epi32(x86_q5k_chunk(q4, q8, qh, sc, 0), x86_q5k_chunk(q4, q8, qh, sc, 1)),
            _mm256_add_epi32(x86_q5k_chunk(q4, q8, qh, sc, 2), x86_q5k_chunk(q4, q8, qh, sc, 3)));
        const __m256i msum = x86_k4_minsum(scm, y[i].bsums);
        const __m128 dd = x86_k_scales(&x[i].d, y[i].d);
        acc = _mm256_fmadd_ps(x86_lane(dd, 0), _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(x86_lane(dd, 1), _mm256_cvtepi32_ps(msum), accm);
    }
    *s = x86_hsum_ps(_mm256_sub_ps(acc, accm));
}

// ---- Q6_K, AVX2 ------------------------------------------------------------------------------

/*
 * Half h (128 elements) of a Q6_K super-block: quarter t is ql[64h + 32(t&1) + l] (low nibble
 * for t < 2, high for t >= 2) with bits 2t..2t+1 of qh[32h + l] on top, as unsigned 0..63; its
 * two 16-element groups (one per 128-bit lane) have scales 8h + 2t and 8h + 2t + 1, which sch
 * (the 8 scales of the half in both lanes) supplies.
 */
X86_INLINE X86_AVX2 __m256i x86_q6k_half(const uint8_t *ql, const uint8_t *qhp, const int8_t *q8,
                                         __m256i sch)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const __m256i ql0 = x86_load(ql), ql1 = x86_load(ql + 32), qh = x86_load(qhp);
    const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                       _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
    const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                       _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
    const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                       _mm256_and_si256(qh, m30));
    const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
    const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, x86_load(q8)),
                                         x86_bcast16x2(sch, 0, 1));
    const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, x86_load(q8 + 32)),
                                         x86_bcast16x2(sch, 2, 3));
    const __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(q2, x86_load(q8 + 64)),
                                         x86_bcast16x2(sch, 4, 5));
    const __m256i p3 = _mm256_madd_epi16(_mm256_maddubs_epi16(q3, x86_load(q8 + 96)),
                                         x86_bcast16x2(sch, 6, 7));
    return _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3));
}

static X86_AVX2 void dot_q6_k_avx2(int n, float *s, const void *w, const void *a)
{
    const struct blk_q6_k *x = w;
    const struct blk_q8_k *y = a;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        x86_prefetch(x + i, (int)sizeof(*x));
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        /* the -32 of every quant: 32 * sum_g sc_g * bsums[g] */
        const __m256i off = _mm256_madd_epi16(sc, x86_load(y[i].bsums));
        __m256i sumi = _mm256_add_epi32(
            x86_q6k_half(x[i].ql, x[i].qh, y[i].qs, _mm256_permute2x128_si256(sc, sc, 0x00)),
            x86_q6k_half(x[i].ql + 64, x[i].qh + 32, y[i].qs + 128,
                         _mm256_permute2x128_si256(sc, sc, 0x11)));
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(off, 5));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[i].d) * y[i].d), _mm256_cvtepi32_ps(sumi),
                              acc);
    }
    *s = x86_hsum_ps(acc);
}

// ---- Q2_K / Q3_K, AVX2 (also used at the AVX-512 level) --------------------------------------

/* Quarter j of a Q2_K half: 2-bit quants (already shifted down), groups 2j and 2j + 1 of sch. */
X86_INLINE X86_AVX2 __m256i x86_q2k_quarter(__m256i bits, const int8_t *q8, __m256i sch, int j)
{
    const __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(bits, _mm256_set1_epi8(3)),
                                           x86_load(q8 + 32 * j));
    return _mm256_madd_epi16(p, x86_bcast16x2(sch, 2 * j, 2 * j + 1));
}

/* Half h of Q2_K: quarter j is bits 2j..2j+1 of qs[32h + l], groups 8h + 2j and 8h + 2j + 1. */
X86_INLINE X86_AVX2 __m256i x86_q2k_half(const uint8_t *q2, const int8_t *q8, __m256i sch)
{
    const __m256i bits = x86_load(q2);
    const __m256i s01 = _mm256_add_epi32(x86_q2k_quarter(bits, q8, sch, 0),
                                         x86_q2k_quarter(_mm256_srli_epi16(bits, 2), q8, sch, 1));
    const __m256i s23 = _mm256_add_epi32(x86_q2k_quarter(_mm256_srli_epi16(bits, 4), q8, sch, 2),
                                         x86_q2k_quarter(_mm256_srli_epi16(bits, 6), q8, sch, 3));
    return _mm256_add_epi32(s01, s23);
}

static X86_AVX2 void dot_q2_k_avx2(int n, float *s, const void *w, const void *a)
{
    const struct blk_q2_k *x = w;
    const struct blk_q8_k *y = a;
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        x86_prefetch(x + i, (int)sizeof(*x));
        const __m128i sv = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i sc = _mm256_cvtepu8_epi16(_mm_and_si128(sv, m4));
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sv, 4), m4));
        const __m256i msum = _mm256_madd_epi16(mn, x86_load(y[i].bsums));
        const __m256i sumi = _mm256_add_epi32(
            x86_q2k_half(x[i].qs, y[i].qs, _mm256_permute2x128_si256(sc, sc, 0x00)),
            x86_q2k_half(x[i].qs + 32, y[i].qs + 128, _mm256_permute2x128_si256(sc, sc, 0x11)));
        const __m128 dd = x86_k_scales(&x[i].d, y[i].d);
        acc = _mm256_fmadd_ps(x86_lane(dd, 0), _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(x86_lane(dd, 1), _mm256_cvtepi32_ps(msum), accm);
    }
    *s = x86_hsum_ps(_mm256_sub_ps(acc, accm));
}

/* Quarter j of Q3_K half h: low2 | hbit << 2 = q + 4, hbit being bit 4h + j of hmask[l]. */
X86_INLINE X86_AVX2 __m256i x86_q3k_quarter(__m256i bits, __m256i hm, const int8_t *q8,
                                            __m256i sch, int h, int j)
{
    const __m256i q = _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi8(3)),
                                      x86_bit_to(hm, 4 * h + j, 2));
    const __m256i p = _mm256_maddubs_epi16(q, x86_load(q8 + 32 * j));
    return _mm256_madd_epi16(p, x86_bcast16x2(sch, 2 * j, 2 * j + 1));
}

X86_INLINE X86_AVX2 __m256i x86_q3k_half(const uint8_t *q3, __m256i hm, const int8_t *q8,
                                         __m256i sch, int h)
{
    const __m256i bits = x86_load(q3);
    const __m256i s01 =
        _mm256_add_epi32(x86_q3k_quarter(bits, hm, q8, sch, h, 0),
                         x86_q3k_quarter(_mm256_srli_epi16(bits, 2), hm, q8, sch, h, 1));
    const __m256i s23 =
        _mm256_add_epi32(x86_q3k_quarter(_mm256_srli_epi16(bits, 4), hm, q8, sch, h, 2),
                         x86_q3k_quarter(_mm256_srli_epi16(bits, 6), hm, q8, sch, h, 3));
    return _mm256_add_epi32(s01, s23);
}

static X86_AVX2 void dot_q3_k_avx2(int n, float *s, const void *w, const void *a)
{
    const struct blk_q3_k *x = w;
    const struct blk_q8_k *y = a;
    const uint32_t m2 = 0x03030303, m4 = 0x0f0f0f0f;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        x86_prefetch(x + i, (int)sizeof(*x));
        /* 16 six-bit scales: low nibbles in bytes 0-7, top two bits in bytes 8-11 */
        uint32_t u[3];
        memcpy(u, x[i].scales, 12);
        const __m128i s8 = _mm_setr_epi32((int)((u[0] & m4) | (u[2] & m2) << 4),
                                          (int)((u[1] & m4) | (u[2] >> 2 & m2) << 4),
                                          (int)((u[0] >> 4 & m4) | (u[2] >> 4 & m2) << 4),
                                          (int)((u[1] >> 4 & m4) | (u[2] >> 6 & m2) << 4));
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_sub_epi8(s8, _mm_set1_epi8(32)));
        /* the -4 of every quant: 4 * sum_g sc_g * bsums[g] */
        const __m256i off = _mm256_madd_epi16(sc, x86_load(y[i].bsums));
        const __m256i hm = x86_load(x[i].hmask);
        const __m256i sc0 = _mm256_permute2x128_si256(sc, sc, 0x00);
        const __m256i sc1 = _mm256_permute2x128_si256(sc, sc, 0x11);
        __m256i sumi = _mm256_add_epi32(x86_q3k_half(x[i].qs, hm, y[i].qs, sc0, 0),
                                        x86_q3k_half(x[i].qs + 32, hm, y[i].qs + 128, sc1, 1));
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(off, 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(x[i].d) * y[i].d), _mm256_cvtepi32_ps(sumi),
                              acc);
    }
    *s = x86_hsum_ps(acc);
}

// ---- Q4_K / Q5_K / Q6_K, AVX-512 VNNI: 64 elements per vector ---------------------------------

/*
 * vpdpbusd sums 4 products per int32 lane; those sums fit in 16 bits (|q| <= 63, |a| <= 127),
 * so vpdpwssd against a pattern of sub-block scales multiplies and accumulates them in one
 * instruction.  Port 0 is the bottleneck at this width (shifts, vpdpbusd, vpdpwssd), so Q4_K and
 * Q5_K first pack the sums of two chunks into one vector of int16 (vpackssdw, port 5) and scale
 * both with a single vpdpwssd.
 */
X86_INLINE X86_AVX512 __m512i x86_dpbusd(__m512i u, __m512i s)
{
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
}

/* Chunk c of Q4_K/Q5_K: the 32 quant bytes in both halves, low nibbles | high nibbles. */
X86_INLINE X86_AVX512 __m512i x86_k4_nibbles(const uint8_t *q4, int c)
{
    const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(q4 + 32 * c)));
    return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)),
                            _mm512_set1_epi8(0x0F));
}

/* For Q5_K: add 16 where bit 2c (first half) or 2c+1 (second half) of qh[l] is set. */
X86_INLINE X86_AVX512 __m512i x86_k5_bit5(__m512i q, __m512i qh, int c)
{
    const __m512i sel = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi8((char)(1 << 2 * c)),
                                                _mm512_set1_epi8((char)(1 << (2 * c + 1))));
    return _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(qh, sel), q, _mm512_set1_epi8(16));
}

/* pshufb indices of int16 j (4 words) then j + 2 (4 words), for one 128-bit lane. */
X86_INLINE X86_AVX2 __m128i x86_k4_wordpair(int j)
{
    const short a = (short)((2 * j + 1) << 8 | 2 * j), b = (short)((2 * j + 5) << 8 | (2 * j + 4));
    return _mm_setr_epi16(a, a, a, a, b, b, b, b);
}

/*
 * Scales for vpackssdw(P_c, P_c+1) of chunks c (even) and c + 1: per 128-bit lane the packed
 * words are 4 sums of P_c then 4 of P_c+1; lanes 0-1 belong to sub-blocks 2c and 2c+2, lanes
 * 2-3 to 2c+1 and 2c+3.  sc16 holds the 8 scales as int16 in every lane.
 */
X86_INLINE X86_AVX512 __m512i x86_k4_scale_pairs(__m512i sc16, int c)
{
    const __m512i lo = _mm512_broadcast_i32x4(x86_k4_wordpair(2 * c));
    const __m512i idx = _mm512_mask_blend_epi64(0xF0, lo,
                                                _mm512_broadcast_i32x4(x86_k4_wordpair(2 * c + 1)));
    return _mm512_shuffle_epi8(sc16, idx);
}

/*
 * One Q4_K or Q5_K super-block (qhp NULL for Q4_K; dpair points at d, dmin): d*isum goes to
 * *acc, dmin*msum to *accm.
 */
X86_INLINE X86_AVX512 void x86_k45_block(const uint16_t *dpair, const uint8_t *scales,
                                         const uint8_t *qhp, const uint8_t *q4,
                                         const struct blk_q8_k *y, __m512 *acc, __m256 *accm)
{
    const __m128i scm = x86_k4_scales(scales);
    const __m512i sc16 = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(scm));
    const __m512i qh = qhp ? _mm512_broadcast_i64x4(x86_load(qhp)) : _mm512_setzero_si512();
    __m512i sum = _mm512_setzero_si512();
    for (int c = 0; c < 4; c += 2) {
        __m512i u0 = x86_k4_nibbles(q4, c), u1 = x86_k4_nibbles(q4, c + 1);
        if (qhp) {
            u0 = x86_k5_bit5(u0, qh, c);
            u1 = x86_k5_bit5(u1, qh, c + 1);
        }
        const __m512i p0 = x86_dpbusd(u0, _mm512_loadu_si512(y->qs + 64 * c));
        const __m512i p1 = x86_dpbusd(u1, _mm512_loadu_si512(y->qs + 64 * c + 64));
        sum = _mm512_dpwssd_epi32(sum, _mm512_packs_epi32(p0, p1), x86_k4_scale_pairs(sc16, c));
    }
    const __m256i msum = x86_k4_minsum(scm, y->bsums);
    const __m128 dd = x86_k_scales(dpair, y->d);
    *acc = _mm512_fmadd_ps(_mm512_broadcastss_ps(dd), _mm512_cvtepi32_ps(sum), *acc);
    *accm = _mm256_fmadd_ps(x86_lane(dd, 1), _mm256_cvtepi32_ps(msum), *accm);
}

static X86_AVX512 void dot_q4_k_avx512(int n, float *s, const void *w, const void *a)
{
    const struct blk_q4_k *x = w;
    const struct blk_q8_k *y = a;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        x86_prefetch(x + i, (int)sizeof(*x));
        x86_k45_block(&x[i].d, x[i].scales, NULL, x[i].qs, &y[i], &acc, &accm);
    }
    *s = _mm512_reduce_add_ps(acc) - x86_hsum_ps(accm);
}

static X86_AVX512 void dot_q5_k_avx512(int n, float *s, const void *w, const void *a)
{
    const struct blk_q5_k *x = w;
    const struct blk_q8_k *y = a;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        x86_prefetch(x + i, (int)sizeof(*x));
        x86_k45_block(&x[i].d, x[i].scales, x[i].qh, x[i].qs, &y[i], &acc, &accm);
    }
    *s = _mm512_reduce_add_ps(acc) - x86_hsum_ps(accm);
}

/*
 * Q6_K half h: 64 bytes of ql give quarters 0 and 1 (low nibbles) and 2 and 3 (high nibbles),
 * each matching 64 contiguous activations; each 128-bit lane of the products is one group of
 * 16 (groups 8h + L and 8h + 4 + L in lane L).  The 4-product sums (<= 63 * 127 * 4) are packed
 * to int16 and scaled by one vpdpwssd; sch holds the half's 8 scales as int16 in every lane.
 */
X86_INLINE X86_AVX512 __m512i x86_q6k_half512(const uint8_t *ql, const uint8_t *qhp,
                                              const int8_t *q8, __m512i sch, __m512i sum)
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i l = _mm512_loadu_si512(ql);
    const __m512i qh = _mm512_broadcast_i64x4(x86_load(qhp));
    const __m512i h01 = _mm512_sllv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2));
    const __m512i h23 = _mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2));
    const __m512i q01 = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(h01, m30));
    const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                        _mm512_and_si512(h23, m30));
    const __m512i p01 = x86_dpbusd(q01, _mm512_loadu_si512(q8));
    const __m512i p23 = x86_dpbusd(q23, _mm512_loadu_si512(q8 + 64));
    /* lane L: int16 L four times, then L + 4 four times */
    const __m512i idx = _mm512_setr_epi32(
        0x01000100, 0x01000100, 0x09080908, 0x09080908, 0x03020302, 0x03020302, 0x0B0A0B0A,
        0x0B0A0B0A, 0x05040504, 0x05040504, 0x0D0C0D0C, 0x0D0C0D0C, 0x07060706, 0x07060706,
        0x0F0E0F0E, 0x0F0E0F0E);
    return _mm512_dpwssd_epi32(sum, _mm512_packs_epi32(p01, p23), _mm512_shuffle_epi8(sch, idx));
}

static X86_AVX512 void dot_q6_k_avx512(int n, float *s, const void *w, const void *a)
{
    const struct blk_q6_k *x = w;
    const struct blk_q8_k *y = a;
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        x86_prefetch(x + i, (int)sizeof(*x));
        const __m128i s8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m512i sc0 = _mm512_broadcast_i32x4(_mm_cvtepi8_epi16(s8));
        const __m512i sc1 = _mm512_broadcast_i32x4(_mm_cvtepi8_epi16(_mm_srli_si128(s8, 8)));
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(s8), x86_load(y[i].bsums));
        /* start from -32 * sum_g sc_g * bsums[g] (see dot_q6_k_avx2) */
        __m512i sum = _mm512_inserti64x4(_mm512_setzero_si512(),
                                         _mm256_sub_epi32(_mm256_setzero_si256(),
                                                          _mm256_slli_epi32(off, 5)), 0);
        sum = x86_q6k_half512(x[i].ql, x[i].qh, y[i].qs, sc0, sum);
        sum = x86_q6k_half512(x[i].ql + 64, x[i].qh + 32, y[i].qs + 128, sc1, sum);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(x86_h2f(x[i].d) * y[i].d), _mm512_cvtepi32_ps(sum),
                              acc);
    }
    *s = _mm512_reduce_add_ps(acc);
}

// ---- dequantization (to_f32), bit-identical to dequant_*_ref ---------------------------------

/*
 * The references compute (d * sc) * q - dmin * m (Q2_K, Q4_K, Q5_K), (d * sc) * q (Q3_K) and
 * d * sc * q, i.e. (d * sc) * q (Q6_K): the float sub-block scales d * sc and dmin * m are formed
 * first, one vector multiply for all of them, then every value takes one multiply and, with a
 * min, one subtract.  gcc's default -ffp-contract=fast would fuse the multiply and subtract into
 * one FMA in these fma-enabled functions, so the product goes through an empty asm the compiler
 * cannot see through (x86_rounded*, no instruction).  (The products a min is subtracted from
 * are exact with today's formats, at most 11 + 6 + 5 significant bits, so fusing would not
 * change a bit and the tests could not tell; the barrier keeps the kernels right without relying
 * on that.)  Quants are built as int32 lanes straight
 * from zero-extended byte loads; shift counts that vary with a loop index are passed in a
 * register (vpsrld xmm), never as an immediate.
 */
X86_INLINE X86_AVX2 __m256 x86_rounded(__m256 v)
{
    __asm__("" : "+x"(v));
    return v;
}

X86_INLINE X86_AVX512 __m512 x86_rounded512(__m512 v)
{
    __asm__("" : "+v"(v));
    return v;
}

X86_INLINE X86_AVX2 __m256i x86_u8x8(const uint8_t *p)
{
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

X86_INLINE X86_AVX512 __m512i x86_u8x16(const uint8_t *p)
{
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

X86_INLINE X86_AVX2 __m128i x86_count(int c)
{
    return _mm_cvtsi32_si128(c);
}

/* y[0..8) = ds * q (- dm): one sub-block scale (and min) for all 8. */
X86_INLINE X86_AVX2 void x86_put8(float *y, __m256i q, float ds, float dm, int min)
{
    __m256 v = _mm256_mul_ps(_mm256_set1_ps(ds), _mm256_cvtepi32_ps(q));
    if (min)
        v = _mm256_sub_ps(x86_rounded(v), _mm256_set1_ps(dm));
    _mm256_storeu_ps(y, v);
}

X86_INLINE X86_AVX512 void x86_put16(float *y, __m512i q, float ds, float dm, int min)
{
    __m512 v = _mm512_mul_ps(_mm512_set1_ps(ds), _mm512_cvtepi32_ps(q));
    if (min)
        v = _mm512_sub_ps(x86_rounded512(v), _mm512_set1_ps(dm));
    _mm512_storeu_ps(y, v);
}

/* The 8 (16) small integers of bytes b[0..8) (or 16) times a float, as floats into out. */
X86_INLINE X86_AVX2 void x86_scale_bytes8(float *out, __m128i b, float f, int is_signed)
{
    const __m256i v = is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_set1_ps(f), _mm256_cvtepi32_ps(v)));
}

/* Q4_K/Q5_K: ds[j] = d * sc_j, dm[j] = dmin * m_j. */
X86_INLINE X86_AVX2 void x86_k4_fscales(const uint16_t *dpair, const uint8_t *scales, float ds[8],
                                        float dm[8])
{
    uint32_t u;
    memcpy(&u, dpair, 4);
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
    const __m128i scm = x86_k4_scales(scales);
    x86_scale_bytes8(ds, scm, _mm_cvtss_f32(f), 0);
    x86_scale_bytes8(dm, _mm_srli_si128(scm, 8), _mm_cvtss_f32(_mm_movehdup_ps(f)), 0);
}

/* Q3_K's 16 scales (6 bits, biased by 32) as signed bytes, as in dot_q3_k_avx2. */
X86_INLINE X86_AVX2 __m128i x86_q3k_scales(const uint8_t *scales)
{
    const uint32_t m2 = 0x03030303, m4 = 0x0f0f0f0f;
    uint32_t u[3];
    memcpy(u, scales, 12);
    const __m128i s8 = _mm_setr_epi32((int)((u[0] & m4) | (u[2] & m2) << 4),
                                      (int)((u[1] & m4) | (u[2] >> 2 & m2) << 4),
                                      (int)((u[0] >> 4 & m4) | (u[2] >> 4 & m2) << 4),
                                      (int)((u[1] >> 4 & m4) | (u[2] >> 6 & m2) << 4));
    return _mm_sub_epi8(s8, _mm_set1_epi8(32));
}

/*
 * Q4_K / Q5_K: chunk c (32 bytes of qs at 32c) holds sub-block 2c in its low nibbles and 2c+1
 * in its high nibbles; Q5_K's fifth bit of element 64c + l (+ 32) is bit 2c (2c + 1) of qh[l].
 */
X86_INLINE X86_AVX2 void x86_deq_k45_avx2(const uint16_t *dpair, const uint8_t *scales,
                                          const uint8_t *qh, const uint8_t *qs, float *y)
{
    float ds[8], dm[8];
    x86_k4_fscales(dpair, scales, ds, dm);
    const __m256i m4 = _mm256_set1_epi32(0x0F), b4 = _mm256_set1_epi32(0x10);
    for (int c = 0; c < 4; c++) {
        for (int k = 0; k < 4; k++) {
            const __m256i v = x86_u8x8(qs + 32 * c + 8 * k);
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_srli_epi32(v, 4);
            if (qh) {
                const __m256i h4 = _mm256_slli_epi32(x86_u8x8(qh + 8 * k), 4);
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_srl_epi32(h4, x86_count(2 * c)),
                                                          b4));
                hi = _mm256_or_si256(hi, _mm256_and_si256(
                                             _mm256_srl_epi32(h4, x86_count(2 * c + 1)), b4));
            }
            x86_put8(y + 64 * c + 8 * k, lo, ds[2 * c], dm[2 * c], 1);
            x86_put8(y + 64 * c + 32 + 8 * k, hi, ds[2 * c + 1], dm[2 * c + 1], 1);
        }
    }
}

static X86_AVX2 void deq_q4_k_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++)
        x86_deq_k45_avx2(&b->d, b->scales, NULL, b->qs, dst + i * QK_K);
}

static X86_AVX2 void deq_q5_k_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++)
        x86_deq_k45_avx2(&b->d, b->scales, b->qh, b->qs, dst + i * QK_K);
}

/*
 * Q6_K: element 128h + 32t + l is (low4 | high2 << 4) - 32, low4 the low (t < 2) or high nibble
 * of ql[64h + 32(t & 1) + l], high2 bits 2t..2t+1 of qh[32h + l]; group (e / 16) scales it.
 */
static X86_AVX2 void deq_q6_k_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q6_k *b = src;
    const __m256i m4 = _mm256_set1_epi32(0x0F), m30 = _mm256_set1_epi32(0x30);
    const __m256i off = _mm256_set1_epi32(32);
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float ds[16];
        const float d = x86_h2f(b->d);
        const __m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
        x86_scale_bytes8(ds, s8, d, 1);
        x86_scale_bytes8(ds + 8, _mm_srli_si128(s8, 8), d, 1);
        float *y = dst + i * QK_K;
        for (int h = 0; h < 2; h++) {
            for (int l = 0; l < 32; l += 8) {
                const __m256i qh = x86_u8x8(b->qh + 32 * h + l);
                const __m256i l0 = x86_u8x8(b->ql + 64 * h + l);
                const __m256i l1 = x86_u8x8(b->ql + 64 * h + 32 + l);
                const __m256i q[4] = {
                    _mm256_or_si256(_mm256_and_si256(l0, m4),
                                    _mm256_and_si256(_mm256_slli_epi32(qh, 4), m30)),
                    _mm256_or_si256(_mm256_and_si256(l1, m4),
                                    _mm256_and_si256(_mm256_slli_epi32(qh, 2), m30)),
                    _mm256_or_si256(_mm256_srli_epi32(l0, 4), _mm256_and_si256(qh, m30)),
                    _mm256_or_si256(_mm256_srli_epi32(l1, 4),
                                    _mm256_and_si256(_mm256_srli_epi32(qh, 2), m30)),
                };
                for (int t = 0; t < 4; t++)
                    x86_put8(y + 128 * h + 32 * t + l, _mm256_sub_epi32(q[t], off),
                             ds[8 * h + 2 * t + l / 16], 0.0f, 0);
            }
        }
    }
}

/* Q2_K: element 128h + 32j + l is bits 2j..2j+1 of qs[32h + l]; 16 groups of 16. */
static X86_AVX2 void deq_q2_k_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q2_k *b = src;
    const __m256i m3 = _mm256_set1_epi32(3);
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float dl[16], ml[16];
        uint32_t u;
        memcpy(&u, &b->d, 4);
        const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
        const float d = _mm_cvtss_f32(f), dmin = _mm_cvtss_f32(_mm_movehdup_ps(f));
        const __m128i sv = _mm_loadu_si128((const __m128i *)b->scales);
        const __m128i sc = _mm_and_si128(sv, _mm_set1_epi8(0x0F));
        const __m128i mn = _mm_and_si128(_mm_srli_epi16(sv, 4), _mm_set1_epi8(0x0F));
        x86_scale_bytes8(dl, sc, d, 0);
        x86_scale_bytes8(dl + 8, _mm_srli_si128(sc, 8), d, 0);
        x86_scale_bytes8(ml, mn, dmin, 0);
        x86_scale_bytes8(ml + 8, _mm_srli_si128(mn, 8), dmin, 0);
        float *y = dst + i * QK_K;
        for (int h = 0; h < 2; h++) {
            for (int l = 0; l < 32; l += 8) {
                const __m256i v = x86_u8x8(b->qs + 32 * h + l);
                for (int j = 0; j < 4; j++) {
                    const int g = 8 * h + 2 * j + l / 16;
                    x86_put8(y + 128 * h + 32 * j + l,
                             _mm256_and_si256(_mm256_srl_epi32(v, x86_count(2 * j)), m3), dl[g],
                             ml[g], 1);
                }
            }
        }
    }
}

/* Q3_K: element 128h + 32j + l is (bits 2j..2j+1 of qs[32h + l] | bit 4h + j of hmask[l] << 2)
 * - 4; 16 groups of 16 with signed scales. */
static X86_AVX2 void deq_q3_k_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q3_k *b = src;
    const __m256i m3 = _mm256_set1_epi32(3), b2 = _mm256_set1_epi32(4);
    const __m256i off = _mm256_set1_epi32(4);
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float dl[16];
        const float d = x86_h2f(b->d);
        const __m128i s8 = x86_q3k_scales(b->scales);
        x86_scale_bytes8(dl, s8, d, 1);
        x86_scale_bytes8(dl + 8, _mm_srli_si128(s8, 8), d, 1);
        float *y = dst + i * QK_K;
        for (int l = 0; l < 32; l += 8) {
            const __m256i hm = _mm256_slli_epi32(x86_u8x8(b->hmask + l), 2);
            for (int h = 0; h < 2; h++) {
                const __m256i v = x86_u8x8(b->qs + 32 * h + l);
                for (int j = 0; j < 4; j++) {
                    const __m256i lo = _mm256_and_si256(_mm256_srl_epi32(v, x86_count(2 * j)), m3);
                    const __m256i hb =
                        _mm256_and_si256(_mm256_srl_epi32(hm, x86_count(4 * h + j)), b2);
                    x86_put8(y + 128 * h + 32 * j + l,
                             _mm256_sub_epi32(_mm256_or_si256(lo, hb), off),
                             dl[8 * h + 2 * j + l / 16], 0.0f, 0);
                }
            }
        }
    }
}

/* AVX-512: the same with 16 lanes; a Q6_K/Q2_K/Q3_K vector is exactly one group of 16. */
static X86_AVX512 void deq_k45_avx512(const uint16_t *dpair, const uint8_t *scales,
                                      const uint8_t *qh, const uint8_t *qs, float *y)
{
    float ds[8], dm[8];
    x86_k4_fscales(dpair, scales, ds, dm);
    const __m512i m4 = _mm512_set1_epi32(0x0F), b4 = _mm512_set1_epi32(0x10);
    __m512i h4[2] = { _mm512_setzero_si512(), _mm512_setzero_si512() };
    if (qh) {
        h4[0] = _mm512_slli_epi32(x86_u8x16(qh), 4);
        h4[1] = _mm512_slli_epi32(x86_u8x16(qh + 16), 4);
    }
    for (int c = 0; c < 4; c++) {
        for (int k = 0; k < 2; k++) {
            const __m512i v = x86_u8x16(qs + 32 * c + 16 * k);
            __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_srli_epi32(v, 4);
            if (qh) {
                lo = _mm512_or_si512(lo, _mm512_and_si512(
                                             _mm512_srl_epi32(h4[k], x86_count(2 * c)), b4));
                hi = _mm512_or_si512(hi, _mm512_and_si512(
                                             _mm512_srl_epi32(h4[k], x86_count(2 * c + 1)), b4));
            }
            x86_put16(y + 64 * c + 16 * k, lo, ds[2 * c], dm[2 * c], 1);
            x86_put16(y + 64 * c + 32 + 16 * k, hi, ds[2 * c + 1], dm[2 * c + 1], 1);
        }
    }
}

static X86_AVX512 void deq_q4_k_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++)
        deq_k45_avx512(&b->d, b->scales, NULL, b->qs, dst + i * QK_K);
}

static X86_AVX512 void deq_q5_k_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++)
        deq_k45_avx512(&b->d, b->scales, b->qh, b->qs, dst + i * QK_K);
}

static X86_AVX512 void deq_q6_k_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q6_k *b = src;
    const __m512i m4 = _mm512_set1_epi32(0x0F), m30 = _mm512_set1_epi32(0x30);
    const __m512i off = _mm512_set1_epi32(32);
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float ds[16];
        const float d = x86_h2f(b->d);
        const __m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
        x86_scale_bytes8(ds, s8, d, 1);
        x86_scale_bytes8(ds + 8, _mm_srli_si128(s8, 8), d, 1);
        float *y = dst + i * QK_K;
        for (int h = 0; h < 2; h++) {
            for (int l = 0; l < 32; l += 16) {
                const __m512i qh = x86_u8x16(b->qh + 32 * h + l);
                const __m512i l0 = x86_u8x16(b->ql + 64 * h + l);
                const __m512i l1 = x86_u8x16(b->ql + 64 * h + 32 + l);
                const __m512i q[4] = {
                    _mm512_or_si512(_mm512_and_si512(l0, m4),
                                    _mm512_and_si512(_mm512_slli_epi32(qh, 4), m30)),
                    _mm512_or_si512(_mm512_and_si512(l1, m4),
                                    _mm512_and_si512(_mm512_slli_epi32(qh, 2), m30)),
                    _mm512_or_si512(_mm512_srli_epi32(l0, 4), _mm512_and_si512(qh, m30)),
                    _mm512_or_si512(_mm512_srli_epi32(l1, 4),
                                    _mm512_and_si512(_mm512_srli_epi32(qh, 2), m30)),
                };
                for (int t = 0; t < 4; t++)
                    x86_put16(y + 128 * h + 32 * t + l, _mm512_sub_epi32(q[t], off),
                              ds[8 * h + 2 * t + l / 16], 0.0f, 0);
            }
        }
    }
}

static X86_AVX512 void deq_q2_k_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q2_k *b = src;
    const __m512i m3 = _mm512_set1_epi32(3);
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float dl[16], ml[16];
        uint32_t u;
        memcpy(&u, &b->d, 4);
        const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
        const float d = _mm_cvtss_f32(f), dmin = _mm_cvtss_f32(_mm_movehdup_ps(f));
        const __m128i sv = _mm_loadu_si128((const __m128i *)b->scales);
        const __m128i sc = _mm_and_si128(sv, _mm_set1_epi8(0x0F));
        const __m128i mn = _mm_and_si128(_mm_srli_epi16(sv, 4), _mm_set1_epi8(0x0F));
        x86_scale_bytes8(dl, sc, d, 0);
        x86_scale_bytes8(dl + 8, _mm_srli_si128(sc, 8), d, 0);
        x86_scale_bytes8(ml, mn, dmin, 0);
        x86_scale_bytes8(ml + 8, _mm_srli_si128(mn, 8), dmin, 0);
        float *y = dst + i * QK_K;
        for (int h = 0; h < 2; h++) {
            for (int l = 0; l < 32; l += 16) {
                const __m512i v = x86_u8x16(b->qs + 32 * h + l);
                for (int j = 0; j < 4; j++) {
                    const int g = 8 * h + 2 * j + l / 16;
                    x86_put16(y + 128 * h + 32 * j + l,
                              _mm512_and_si512(_mm512_srl_epi32(v, x86_count(2 * j)), m3), dl[g],
                              ml[g], 1);
                }
            }
        }
    }
}

static X86_AVX512 void deq_q3_k_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q3_k *b = src;
    const __m512i m3 = _mm512_set1_epi32(3), b2 = _mm512_set1_epi32(4);
    const __m512i off = _mm512_set1_epi32(4);
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float dl[16];
        const float d = x86_h2f(b->d);
        const __m128i s8 = x86_q3k_scales(b->scales);
        x86_scale_bytes8(dl, s8, d, 1);
        x86_scale_bytes8(dl + 8, _mm_srli_si128(s8, 8), d, 1);
        float *y = dst + i * QK_K;
        for (int l = 0; l < 32; l += 16) {
            const __m512i hm = _mm512_slli_epi32(x86_u8x16(b->hmask + l), 2);
            for (int h = 0; h < 2; h++) {
                const __m512i v = x86_u8x16(b->qs + 32 * h + l);
                for (int j = 0; j < 4; j++) {
                    const __m512i lo = _mm512_and_si512(_mm512_srl_epi32(v, x86_count(2 * j)), m3);
                    const __m512i hb =
                        _mm512_and_si512(_mm512_srl_epi32(hm, x86_count(4 * h + j)), b2);
                    x86_put16(y + 128 * h + 32 * j + l,
                              _mm512_sub_epi32(_mm512_or_si512(lo, hb), off),
                              dl[8 * h + 2 * j + l / 16], 0.0f, 0);
                }
            }
        }
    }
}

// ---- install ---------------------------------------------------------------------------------

static void x86_k_set(struct quant_traits *t, int n, enum qtype id, quant_vec_dot_fn dot,
                      quant_to_f32_fn deq)
{
    if ((int)id < n) {
        t[id].vec_dot = dot;
        t[id].to_f32 = deq;
    }
}

/* level: 1 = AVX2, 2 = AVX-512 VNNI (quant_x86.c has checked that the CPU runs it). */
void quant_x86_k_install(struct quant_traits *table, int n, int level)
{
    const int v512 = level >= 2;
    x86_k_set(table, n, QTYPE_Q2_K, dot_q2_k_avx2, v512 ? deq_q2_k_avx512 : deq_q2_k_avx2);
    x86_k_set(table, n, QTYPE_Q3_K, dot_q3_k_avx2, v512 ? deq_q3_k_avx512 : deq_q3_k_avx2);
    x86_k_set(table, n, QTYPE_Q4_K, v512 ? dot_q4_k_avx512 : dot_q4_k_avx2,
              v512 ? deq_q4_k_avx512 : deq_q4_k_avx2);
    x86_k_set(table, n, QTYPE_Q5_K, v512 ? dot_q5_k_avx512 : dot_q5_k_avx2,
              v512 ? deq_q5_k_avx512 : deq_q5_k_avx2);
    x86_k_set(table, n, QTYPE_Q6_K, v512 ? dot_q6_k_avx512 : dot_q6_k_avx2,
              v512 ? deq_q6_k_avx512 : deq_q6_k_avx2);
}

#else

void quant_x86_k_install(struct quant_traits *table, int n, int level)
{
    (void)table;
    (void)n;
    (void)level;
}

#endif
