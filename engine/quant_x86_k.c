/*
 * quant_x86_k.c — x86 SIMD dot products of the K-quants (Q2_K, Q3_K, Q4_K, Q5_K and Q6_K weights
 * against Q8_K activations), at the levels of quant_x86.c, which picks the level and calls
 * quant_x86_k_install.  Their dequantizers are in quant_x86_deq.c.
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
#include "quant_x86.h"

#if defined(__x86_64__)

// ---- helpers ---------------------------------------------------------------------------------

/*
 * [d, dmin] of a super-block (adjacent fp16) times the activation scale, as floats 0 and 1:
 * one conversion and one multiply for both.
 */
X86_INLINE X86_AVX2 __m128 x86_k_scales(const uint16_t *dpair, float yd)
{
    return _mm_mul_ps(x86_h2f_pair(dpair), _mm_set1_ps(yd));
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

// ---- install ---------------------------------------------------------------------------------

static void x86_k_set(struct quant_traits *t, int n, enum qtype id, quant_vec_dot_fn dot)
{
    if ((int)id < n)
        t[id].vec_dot = dot;
}

void quant_x86_k_install(struct quant_traits *table, int n, int level)
{
    const int v512 = level >= 2;
    x86_k_set(table, n, QTYPE_Q2_K, dot_q2_k_avx2);
    x86_k_set(table, n, QTYPE_Q3_K, dot_q3_k_avx2);
    x86_k_set(table, n, QTYPE_Q4_K, v512 ? dot_q4_k_avx512 : dot_q4_k_avx2);
    x86_k_set(table, n, QTYPE_Q5_K, v512 ? dot_q5_k_avx512 : dot_q5_k_avx2);
    x86_k_set(table, n, QTYPE_Q6_K, v512 ? dot_q6_k_avx512 : dot_q6_k_avx2);
}

#else

void quant_x86_k_install(struct quant_traits *table, int n, int level)
{
    (void)table;
    (void)n;
    (void)level;
}

#endif
