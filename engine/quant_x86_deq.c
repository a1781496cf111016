/*
 * quant_x86_deq.c — x86 SIMD dequantizers (to_f32) of the legacy quants (Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0) and the K-quants (Q2_K to Q6_K), at the two levels of quant_x86.c, which picks the level
 * and calls quant_x86_deq_install.  matmul.c's batch path uses them to turn weight rows into
 * floats for OpenBLAS.
 *
 * Contract (checked by tests/test_quant_simd.c): the output is bit-identical to dequant_*_ref,
 * for every row length the references take.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_x86.h"

#if defined(__x86_64__)

// ---- dequantization (to_f32) of the legacy quants, bit-identical to dequant_*_ref -----------

/*
 * Bit-identical means the same float operations in the same order as the references: the quant
 * (a small integer, converted exactly) times the block's scale and then, for Q4_1/Q5_1, plus the
 * min, rounded separately.  gcc's default -ffp-contract=fast would fuse that multiply and add
 * into one FMA (a single rounding) in these fma-enabled functions, so the product goes through
 * an empty asm the compiler cannot see through (x86_rounded*); it costs no instruction.  (With
 * today's formats the product is exact anyway, an 11-bit fp16 scale times a quant of at most
 * 5 bits, so a fused version would give the same bits and the tests could not tell; the barrier
 * keeps the kernels right without relying on that.)
 */
/* y[0..32) = q * d (+ m with min), q the block's 32 quants as signed bytes in element order. */
X86_INLINE X86_AVX2 void x86_deq32(float *y, __m256i q, __m256 d, __m256 m, int min)
{
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i part[4] = { lo, _mm_unpackhi_epi64(lo, lo), hi, _mm_unpackhi_epi64(hi, hi) };
    for (int k = 0; k < 4; k++) {
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part[k])), d);
        if (min)
            v = _mm256_add_ps(x86_rounded(v), m);
        _mm256_storeu_ps(y + 8 * k, v);
    }
}

static X86_AVX2 void deq_q4_0_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK) {
        const __m256i q = _mm256_sub_epi8(x86_nibbles(b->qs), _mm256_set1_epi8(8));
        x86_deq32(dst, q, _mm256_set1_ps(x86_h2f(b->d)), _mm256_setzero_ps(), 0);
    }
}

static X86_AVX2 void deq_q4_1_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK) {
        const __m128 dm = x86_h2f_pair(&b->d);
        x86_deq32(dst, x86_nibbles(b->qs), _mm256_broadcastss_ps(dm),
                  _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dm), _mm256_set1_epi32(1)), 1);
    }
}

static X86_AVX2 void deq_q5_0_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK) {
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(x86_nibbles(b->qs), x86_bit5(b->qh)),
                                          _mm256_set1_epi8(16));
        x86_deq32(dst, q, _mm256_set1_ps(x86_h2f(b->d)), _mm256_setzero_ps(), 0);
    }
}

static X86_AVX2 void deq_q5_1_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK) {
        const __m128 dm = x86_h2f_pair(&b->d);
        x86_deq32(dst, _mm256_or_si256(x86_nibbles(b->qs), x86_bit5(b->qh)),
                  _mm256_broadcastss_ps(dm),
                  _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dm), _mm256_set1_epi32(1)), 1);
    }
}

static X86_AVX2 void deq_q8_0_avx2(const void *src, float *dst, int64_t n)
{
    const struct blk_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK)
        x86_deq32(dst, x86_load(b->qs), _mm256_set1_ps(x86_h2f(b->d)), _mm256_setzero_ps(), 0);
}

/*
 * AVX-512: 16 quants per vector, zero-extended to int32 lanes; vpermps then looks the value up
 * in a 16-float table (it reads only the low 4 bits of each index, so a low nibble needs no
 * masking), and Q5's fifth bit, one bit of qh per element, is the write mask that picks the
 * upper table.  Table entries are the exact floats (q - 8, q - 16 or q) the reference converts.
 */

/* Elements 0-15 of a 4/5-bit block (low nibbles) and 16-31 (high nibbles), looked up in t0
 * or, where bit e of h5 is set, in t1. */
X86_INLINE X86_AVX512 void x86_lookup32(const uint8_t *qs, uint32_t h5, __m512 t0, __m512 t1,
                                        __m512 *lo, __m512 *hi)
{
    const __m512i v = x86_u8x16(qs), vh = _mm512_srli_epi32(v, 4);
    *lo = _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(v, t0), (__mmask16)h5, v, t1);
    *hi = _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(vh, t0), (__mmask16)(h5 >> 16), vh,
                                     t1);
}

X86_INLINE X86_AVX512 __m512 x86_table16(float first)
{
    return _mm512_add_ps(_mm512_set1_ps(first),
                         _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

/* One block: q * d, or q * d + m. */
X86_INLINE X86_AVX512 void x86_deq_store2(float *y, __m512 lo, __m512 hi, __m512 d, __m512 m,
                                          int min)
{
    lo = _mm512_mul_ps(lo, d);
    hi = _mm512_mul_ps(hi, d);
    if (min) {
        lo = _mm512_add_ps(x86_rounded512(lo), m);
        hi = _mm512_add_ps(x86_rounded512(hi), m);
    }
    _mm512_storeu_ps(y, lo);
    _mm512_storeu_ps(y + 16, hi);
}

static X86_AVX512 void deq_q4_0_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_0 *b = src;
    const __m512 t = x86_table16(-8.0f);
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK) {
        __m512 lo, hi;
        x86_lookup32(b->qs, 0, t, t, &lo, &hi);
        x86_deq_store2(dst, lo, hi, _mm512_set1_ps(x86_h2f(b->d)), lo, 0);
    }
}

static X86_AVX512 void deq_q4_1_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_1 *b = src;
    const __m512 t = x86_table16(0.0f);
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK) {
        __m512 lo, hi;
        x86_lookup32(b->qs, 0, t, t, &lo, &hi);
        x86_deq_store2(dst, lo, hi, _mm512_set1_ps(x86_h2f(b->d)), _mm512_set1_ps(x86_h2f(b->m)),
                       1);
    }
}

static X86_AVX512 void deq_q5_0_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_0 *b = src;
    const __m512 t0 = x86_table16(-16.0f), t1 = x86_table16(0.0f);
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK) {
        uint32_t h5;
        memcpy(&h5, b->qh, 4);
        __m512 lo, hi;
        x86_lookup32(b->qs, h5, t0, t1, &lo, &hi);
        x86_deq_store2(dst, lo, hi, _mm512_set1_ps(x86_h2f(b->d)), lo, 0);
    }
}

static X86_AVX512 void deq_q5_1_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_1 *b = src;
    const __m512 t0 = x86_table16(0.0f), t1 = x86_table16(16.0f);
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK) {
        uint32_t h5;
        memcpy(&h5, b->qh, 4);
        __m512 lo, hi;
        x86_lookup32(b->qs, h5, t0, t1, &lo, &hi);
        x86_deq_store2(dst, lo, hi, _mm512_set1_ps(x86_h2f(b->d)), _mm512_set1_ps(x86_h2f(b->m)),
                       1);
    }
}

static X86_AVX512 void deq_q8_0_avx512(const void *src, float *dst, int64_t n)
{
    const struct blk_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++, dst += QK) {
        const __m512 d = _mm512_set1_ps(x86_h2f(b->d));
        const __m512 lo = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->qs)));
        const __m512 hi = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + 16))));
        x86_deq_store2(dst, lo, hi, d, d, 0);
    }
}

// ---- the K-quants ---------------------------------------------------------------------------

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

/* out[0..16) = f * the 16 small integers of bytes b (Q6_K, Q3_K and Q2_K's group scales). */
X86_INLINE X86_AVX2 void x86_scale_bytes16(float *out, __m128i b, float f, int is_signed)
{
    x86_scale_bytes8(out, b, f, is_signed);
    x86_scale_bytes8(out + 8, _mm_srli_si128(b, 8), f, is_signed);
}

/* Q2_K: dl[g] = d * sc_g, ml[g] = dmin * m_g (low and high nibbles of the 16 scale bytes). */
X86_INLINE X86_AVX2 void x86_q2k_fscales(const struct blk_q2_k *b, float dl[16], float ml[16])
{
    const __m128 f = x86_h2f_pair(&b->d);
    const __m128i sv = _mm_loadu_si128((const __m128i *)b->scales);
    x86_scale_bytes16(dl, _mm_and_si128(sv, _mm_set1_epi8(0x0F)), _mm_cvtss_f32(f), 0);
    x86_scale_bytes16(ml, _mm_and_si128(_mm_srli_epi16(sv, 4), _mm_set1_epi8(0x0F)),
                      _mm_cvtss_f32(_mm_movehdup_ps(f)), 0);
}

/* Q4_K/Q5_K: ds[j] = d * sc_j, dm[j] = dmin * m_j. */
X86_INLINE X86_AVX2 void x86_k4_fscales(const uint16_t *dpair, const uint8_t *scales, float ds[8],
                                        float dm[8])
{
    const __m128 f = x86_h2f_pair(dpair);
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
        x86_scale_bytes16(ds, s8, d, 1);
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
        x86_q2k_fscales(b, dl, ml);
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
        x86_scale_bytes16(dl, s8, d, 1);
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
        x86_scale_bytes16(ds, s8, d, 1);
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
        x86_q2k_fscales(b, dl, ml);
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
        x86_scale_bytes16(dl, s8, d, 1);
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

static void x86_deq_set(struct quant_traits *t, int n, enum qtype id, quant_to_f32_fn deq)
{
    if ((int)id < n)
        t[id].to_f32 = deq;
}

void quant_x86_deq_install(struct quant_traits *t, int n, int level)
{
    const int v512 = level >= 2;
    x86_deq_set(t, n, QTYPE_Q4_0, v512 ? deq_q4_0_avx512 : deq_q4_0_avx2);
    x86_deq_set(t, n, QTYPE_Q4_1, v512 ? deq_q4_1_avx512 : deq_q4_1_avx2);
    x86_deq_set(t, n, QTYPE_Q5_0, v512 ? deq_q5_0_avx512 : deq_q5_0_avx2);
    x86_deq_set(t, n, QTYPE_Q5_1, v512 ? deq_q5_1_avx512 : deq_q5_1_avx2);
    x86_deq_set(t, n, QTYPE_Q8_0, v512 ? deq_q8_0_avx512 : deq_q8_0_avx2);
    x86_deq_set(t, n, QTYPE_Q2_K, v512 ? deq_q2_k_avx512 : deq_q2_k_avx2);
    x86_deq_set(t, n, QTYPE_Q3_K, v512 ? deq_q3_k_avx512 : deq_q3_k_avx2);
    x86_deq_set(t, n, QTYPE_Q4_K, v512 ? deq_q4_k_avx512 : deq_q4_k_avx2);
    x86_deq_set(t, n, QTYPE_Q5_K, v512 ? deq_q5_k_avx512 : deq_q5_k_avx2);
    x86_deq_set(t, n, QTYPE_Q6_K, v512 ? deq_q6_k_avx512 : deq_q6_k_avx2);
}

#else

void quant_x86_deq_install(struct quant_traits *table, int n, int level)
{
    (void)table;
    (void)n;
    (void)level;
}

#endif
