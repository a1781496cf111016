/*
 * quant_x86.c — x86 SIMD kernels for the quant traits table, and the run-time choice of them.
 *
 * This file owns the dispatch (quant_x86_install) and the kernels for the float types (F32, F16,
 * BF16 weights against F32 activations), the 32-element legacy quants (Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0) and the activation quantizers (Q8_0, Q8_1, Q8_K); quant_x86_k.c has the K-quant dots and
 * quant_x86_deq.c the dequantizers (to_f32) of both; quant_x86.h the helpers the three share.
 * There are two levels: "avx2" (AVX2 + FMA + F16C) and "avx512vnni" (AVX-512 F/BW/VL + VNNI,
 * 64-byte vectors and vpdpbusd).  Nothing here depends on -march: every kernel carries its own
 * target attribute and the level is picked once at run time with __builtin_cpu_supports, so one
 * binary runs everywhere; a CPU below AVX2 keeps the scalar references of quant_ref.c.
 *
 * Contract (checked by tests/test_quant_simd.c): a dot product equals its vec_dot_*_ref up to the
 * order of float additions (integer block sums are exact), and a quantizer's output is
 * bit-identical to its quantize_*_ref (quant_x86_deq.c states its own).  Activations are assumed to come from those quantizers,
 * so a Q8 activation byte is never -128 (the sign trick below relies on it).
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "half.h"
#include "quant.h"
#include "quant_ref.h"
#include "quant_x86.h"

/* Levels in increasing order (also the index of x86_level_name). */
enum { LEVEL_SCALAR = 0, LEVEL_AVX2 = 1, LEVEL_AVX512 = 2 };

static const char *const x86_level_name[] = { "scalar", "avx2", "avx512vnni" };

/* Test hook: install the kernels of one level; NULL if this CPU cannot run it. */
const char *quant_x86_install_level(int level, struct quant_traits *table, int n);

#if defined(__x86_64__)

#include <cpuid.h>

// ---- helpers ---------------------------------------------------------------------------------

X86_INLINE X86_AVX2 float x86_hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

X86_INLINE X86_AVX2 int x86_hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

/* Sum of 32 products of unsigned bytes (<= 128: no pair of products saturates int16) with
 * signed bytes, as 8 float partial sums. */
X86_INLINE X86_AVX2 __m256 x86_dot_u8_ps(__m256i u, __m256i s)
{
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

/* Sum of (u - off) * s over 32 bytes, u unsigned <= 31: maddubs needs an unsigned operand, so
 * the offset is taken off as off * s in 16 bits, where neither term nor difference overflows. */
X86_INLINE X86_AVX2 __m256 x86_dot_u8_off_ps(__m256i u, __m256i s, int off)
{
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(u, s),
                                       _mm256_maddubs_epi16(_mm256_set1_epi8((char)off), s));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* Sum of 32 products of signed bytes: the sign of x moves onto y (y is never -128). */
X86_INLINE X86_AVX2 __m256 x86_dot_i8_ps(__m256i x, __m256i y)
{
    return x86_dot_u8_ps(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// ---- float weights ---------------------------------------------------------------------------

/*
 * Float dots keep 4 independent accumulators so the FMA latency is hidden.  The references sum
 * in double; float partial sums over 32 or 64 lanes stay well within the tests' tolerance.
 * WT is the weight element type, LOAD widens 8 (16) of them to floats, TO_F32 one of them.
 */
#define X86_DOT_FLOAT_AVX2(name, WT, LOAD, TO_F32)                                              \
    static X86_AVX2 void name(int n, float *s, const void *w, const void *a)                   \
    {                                                                                           \
        const WT *x = w;                                                                        \
        const float *y = a;                                                                     \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;               \
        int i = 0;                                                                              \
        for (; i + 32 <= n; i += 32) {                                                          \
            x86_prefetch(x + i, 32 * (int)sizeof(WT));                                          \
            acc0 = _mm256_fmadd_ps(LOAD(x + i), _mm256_loadu_ps(y + i), acc0);                  \
            acc1 = _mm256_fmadd_ps(LOAD(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);          \
            acc2 = _mm256_fmadd_ps(LOAD(x + i + 16), _mm256_loadu_ps(y + i + 16), acc2);        \
            acc3 = _mm256_fmadd_ps(LOAD(x + i + 24), _mm256_loadu_ps(y + i + 24), acc3);        \
        }                                                                                       \
        for (; i + 8 <= n; i += 8)                                                              \
            acc0 = _mm256_fmadd_ps(LOAD(x + i), _mm256_loadu_ps(y + i), acc0);                  \
        float sum = x86_hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1),                        \
                                              _mm256_add_ps(acc2, acc3)));                      \
        for (; i < n; i++)                                                                      \
            sum += TO_F32(x[i]) * y[i];                                                         \
        *s = sum;                                                                               \
    }

/* AVX-512: 16 lanes, and the tail is one masked step instead of a scalar loop. */
#define X86_DOT_FLOAT_AVX512(name, WT, LOAD, MASKLOAD)                                          \
    static X86_AVX512 void name(int n, float *s, const void *w, const void *a)                 \
    {                                                                                           \
        const WT *x = w;                                                                        \
        const float *y = a;                                                                     \
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;               \
        int i = 0;                                                                              \
        for (; i + 64 <= n; i += 64) {                                                          \
            x86_prefetch(x + i, 64 * (int)sizeof(WT));                                          \
            acc0 = _mm512_fmadd_ps(LOAD(x + i), _mm512_loadu_ps(y + i), acc0);                  \
            acc1 = _mm512_fmadd_ps(LOAD(x + i + 16), _mm512_loadu_ps(y + i + 16), acc1);        \
            acc2 = _mm512_fmadd_ps(LOAD(x + i + 32), _mm512_loadu_ps(y + i + 32), acc2);        \
            acc3 = _mm512_fmadd_ps(LOAD(x + i + 48), _mm512_loadu_ps(y + i + 48), acc3);        \
        }                                                                                       \
        for (; i + 16 <= n; i += 16)                                                            \
            acc0 = _mm512_fmadd_ps(LOAD(x + i), _mm512_loadu_ps(y + i), acc0);                  \
        if (i < n) {                                                                            \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                               \
            acc1 = _mm512_fmadd_ps(MASKLOAD(m, x + i), _mm512_maskz_loadu_ps(m, y + i), acc1);  \
        }                                                                                       \
        *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1),                      \
                                                _mm512_add_ps(acc2, acc3)));                    \
    }

/* f16 converts in hardware; bf16 is the top half of an f32: widen to 32 bits and shift. */
#define X86_F32_TO_F32(v) (v)
#define X86_F16_LOAD8(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define X86_BF16_WIDEN8(v) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16))
#define X86_BF16_LOAD8(p) X86_BF16_WIDEN8(_mm_loadu_si128((const __m128i *)(p)))
#define X86_F16_LOAD16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define X86_F16_MASKLOAD16(m, p) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p))
#define X86_BF16_WIDEN16(v) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16))
#define X86_BF16_LOAD16(p) X86_BF16_WIDEN16(_mm256_loadu_si256((const __m256i *)(p)))
#define X86_BF16_MASKLOAD16(m, p) X86_BF16_WIDEN16(_mm256_maskz_loadu_epi16(m, p))

X86_DOT_FLOAT_AVX2(dot_f32_avx2, float, _mm256_loadu_ps, X86_F32_TO_F32)
X86_DOT_FLOAT_AVX2(dot_f16_avx2, uint16_t, X86_F16_LOAD8, x86_h2f)
X86_DOT_FLOAT_AVX2(dot_bf16_avx2, uint16_t, X86_BF16_LOAD8, bf16_to_fp32)
X86_DOT_FLOAT_AVX512(dot_f32_avx512, float, _mm512_loadu_ps, _mm512_maskz_loadu_ps)
X86_DOT_FLOAT_AVX512(dot_f16_avx512, uint16_t, X86_F16_LOAD16, X86_F16_MASKLOAD16)
X86_DOT_FLOAT_AVX512(dot_bf16_avx512, uint16_t, X86_BF16_LOAD16, X86_BF16_MASKLOAD16)

// ---- legacy quants: block scales, a group at a time ------------------------------------------

/*
 * Converting the two fp16 scales of one block and multiplying them costs more vector work than
 * the block's integer dot; done for 4 or 8 blocks at once (scalar loads packed into one vector,
 * one conversion, one multiply) it costs about one permute per block.
 */
X86_INLINE uint64_t x86_gather_h4(const void *p, size_t stride)
{
    const uint8_t *b = p;
    uint16_t h[4];
    for (int k = 0; k < 4; k++)
        memcpy(&h[k], b + k * stride, 2);
    return h[0] | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 32 | (uint64_t)h[3] << 48;
}

/* The 32-bit fp16 pairs (d, m or d, s) at p and p + stride. */
X86_INLINE uint64_t x86_gather_h2x2(const void *p, size_t stride)
{
    const uint8_t *b = p;
    uint32_t u0, u1;
    memcpy(&u0, b, 4);
    memcpy(&u1, b + stride, 4);
    return u0 | (uint64_t)u1 << 32;
}

/* dx*dy of the 4 blocks whose scales are at xd, yd (+ k * stride) as floats 0..3. */
X86_INLINE X86_AVX2 __m256 x86_scales4(const void *xd, size_t xs, const void *yd, size_t ys)
{
    const __m256 f = _mm256_cvtph_ps(_mm_set_epi64x((long long)x86_gather_h4(yd, ys),
                                                    (long long)x86_gather_h4(xd, xs)));
    const __m128 d = _mm_mul_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
    return _mm256_castps128_ps256(d);
}

/* For Q4_1/Q5_1 against Q8_1: [dx*dy, m*s] of 4 blocks, interleaved. */
X86_INLINE X86_AVX2 __m256 x86_scales4_min(const void *xd, size_t xs, const void *yd, size_t ys)
{
    const uint8_t *xb = xd, *yb = yd;
    const __m256 fx = _mm256_cvtph_ps(_mm_set_epi64x((long long)x86_gather_h2x2(xb + 2 * xs, xs),
                                                     (long long)x86_gather_h2x2(xb, xs)));
    const __m256 fy = _mm256_cvtph_ps(_mm_set_epi64x((long long)x86_gather_h2x2(yb + 2 * ys, ys),
                                                     (long long)x86_gather_h2x2(yb, ys)));
    return _mm256_mul_ps(fx, fy);
}

X86_INLINE X86_AVX2 __m256 x86_lane(__m256 v, int k)
{
    return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(k));
}

/* One block's scale the slow way, for the last blocks of a row. */
X86_INLINE X86_AVX2 __m256 x86_scale1(uint16_t xd, uint16_t yd)
{
    return _mm256_set1_ps(x86_h2f(xd) * x86_h2f(yd));
}

// ---- legacy quants, AVX2: one block of 32 per step ---------------------------------------------

X86_INLINE X86_AVX2 __m256 x86_q4_0_block(const struct blk_q4_0 *x, const struct blk_q8_0 *y,
                                          __m256 d, __m256 acc)
{
    return _mm256_fmadd_ps(d, x86_dot_u8_off_ps(x86_nibbles(x->qs), x86_load(y->qs), 8), acc);
}

X86_INLINE X86_AVX2 __m256 x86_q5_0_block(const struct blk_q5_0 *x, const struct blk_q8_0 *y,
                                          __m256 d, __m256 acc)
{
    const __m256i q = _mm256_or_si256(x86_nibbles(x->qs), x86_bit5(x->qh));
    return _mm256_fmadd_ps(d, x86_dot_u8_off_ps(q, x86_load(y->qs), 16), acc);
}

X86_INLINE X86_AVX2 __m256 x86_q8_0_block(const struct blk_q8_0 *x, const struct blk_q8_0 *y,
                                          __m256 d, __m256 acc)
{
    return _mm256_fmadd_ps(d, x86_dot_i8_ps(x86_load(x->qs), x86_load(y->qs)), acc);
}

/*
 * Q4_1/Q5_1 against Q8_1: sum((q*dx + m) * qy*dy) = dx*dy*sum(q*qy) + m*s, where s = dy*sum(qy)
 * comes with the activation; the m*s terms are summed apart (x86_scales4_min's odd lanes).
 */
X86_INLINE X86_AVX2 __m256 x86_q4_1_block(const struct blk_q4_1 *x, const struct blk_q8_1 *y,
                                          __m256 d, __m256 acc)
{
    return _mm256_fmadd_ps(d, x86_dot_u8_ps(x86_nibbles(x->qs), x86_load(y->qs)), acc);
}

X86_INLINE X86_AVX2 __m256 x86_q5_1_block(const struct blk_q5_1 *x, const struct blk_q8_1 *y,
                                          __m256 d, __m256 acc)
{
    const __m256i q = _mm256_or_si256(x86_nibbles(x->qs), x86_bit5(x->qh));
    return _mm256_fmadd_ps(d, x86_dot_u8_ps(q, x86_load(y->qs)), acc);
}

/* Groups of 4 blocks on two accumulators (one block is shorter than an FMA's latency). */
#define X86_DOT_LEGACY_AVX2(name, WT, AT, BLOCK)                                                \
    static X86_AVX2 void name(int n, float *s, const void *w, const void *a)                   \
    {                                                                                           \
        const WT *x = w;                                                                        \
        const AT *y = a;                                                                        \
        const int nb = n / QK;                                                                  \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;                                         \
        int i = 0;                                                                              \
        for (; i + 4 <= nb; i += 4) {                                                           \
            x86_prefetch(x + i, 4 * (int)sizeof(WT));                                           \
            const __m256 d = x86_scales4(&x[i].d, sizeof(WT), &y[i].d, sizeof(AT));            \
            acc0 = BLOCK(x + i, y + i, x86_lane(d, 0), acc0);                                   \
            acc1 = BLOCK(x + i + 1, y + i + 1, x86_lane(d, 1), acc1);                           \
            acc0 = BLOCK(x + i + 2, y + i + 2, x86_lane(d, 2), acc0);                           \
            acc1 = BLOCK(x + i + 3, y + i + 3, x86_lane(d, 3), acc1);                           \
        }                                                                                       \
        for (; i < nb; i++)                                                                     \
            acc0 = BLOCK(x + i, y + i, x86_scale1(x[i].d, y[i].d), acc0);                       \
        *s = x86_hsum_ps(_mm256_add_ps(acc0, acc1));                                            \
    }

/* The same for Q4_1/Q5_1; accm's odd lanes collect the m*s terms. */
#define X86_DOT_LEGACY_MIN_AVX2(name, WT, BLOCK)                                                \
    static X86_AVX2 void name(int n, float *s, const void *w, const void *a)                   \
    {                                                                                           \
        const WT *x = w;                                                                        \
        const struct blk_q8_1 *y = a;                                                           \
        const int nb = n / QK;                                                                  \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, accm = acc0;                            \
        int i = 0;                                                                              \
        for (; i + 4 <= nb; i += 4) {                                                           \
            x86_prefetch(x + i, 4 * (int)sizeof(WT));                                           \
            const __m256 dm = x86_scales4_min(&x[i].d, sizeof(WT), &y[i].d, sizeof(*y));       \
            accm = _mm256_add_ps(accm, dm);                                                     \
            acc0 = BLOCK(x + i, y + i, x86_lane(dm, 0), acc0);                                  \
            acc1 = BLOCK(x + i + 1, y + i + 1, x86_lane(dm, 2), acc1);                          \
            acc0 = BLOCK(x + i + 2, y + i + 2, x86_lane(dm, 4), acc0);                          \
            acc1 = BLOCK(x + i + 3, y + i + 3, x86_lane(dm, 6), acc1);                          \
        }                                                                                       \
        for (; i < nb; i++) {                                                                   \
            const __m128 dm = _mm_mul_ps(x86_h2f_pair(&x[i].d), x86_h2f_pair(&y[i].d));        \
            accm = _mm256_add_ps(accm, _mm256_insertf128_ps(_mm256_setzero_ps(), dm, 0));      \
            acc0 = BLOCK(x + i, y + i, _mm256_broadcastss_ps(dm), acc0);                        \
        }                                                                                       \
        const __m256 mins = _mm256_blend_ps(_mm256_setzero_ps(), accm, 0xAA);                   \
        *s = x86_hsum_ps(_mm256_add_ps(acc0, acc1)) + x86_hsum_ps(mins);                        \
    }

X86_DOT_LEGACY_AVX2(dot_q4_0_avx2, struct blk_q4_0, struct blk_q8_0, x86_q4_0_block)
X86_DOT_LEGACY_AVX2(dot_q5_0_avx2, struct blk_q5_0, struct blk_q8_0, x86_q5_0_block)
X86_DOT_LEGACY_AVX2(dot_q8_0_avx2, struct blk_q8_0, struct blk_q8_0, x86_q8_0_block)
X86_DOT_LEGACY_MIN_AVX2(dot_q4_1_avx2, struct blk_q4_1, x86_q4_1_block)
X86_DOT_LEGACY_MIN_AVX2(dot_q5_1_avx2, struct blk_q5_1, x86_q5_1_block)

// ---- legacy quants, AVX-512 VNNI: two blocks per 64-byte vector -------------------------------

/* Two 32-byte runs (the quants of two blocks, 34 or more bytes apart) as one vector. */
X86_INLINE X86_AVX512 __m512i x86_load2(const void *p0, const void *p1)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                              _mm256_loadu_si256((const __m256i *)p1), 1);
}

/* x86_nibbles for two blocks: 128-bit lanes are lo0, hi0, lo1, hi1. */
X86_INLINE X86_AVX512 __m512i x86_nibbles2(const uint8_t *qs0, const uint8_t *qs1)
{
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)qs0));
    v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)qs1));
    return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)),
                            _mm512_set1_epi8(0x0F));
}

/* The fifth bits of two Q5 blocks as one mask, one bit per byte lane. */
X86_INLINE X86_AVX512 __mmask64 x86_bit5_mask2(const uint8_t *qh0, const uint8_t *qh1)
{
    uint32_t h0, h1;
    memcpy(&h0, qh0, 4);
    memcpy(&h1, qh1, 4);
    return _cvtu64_mask64((uint64_t)h1 << 32 | h0);
}

/* Sums of 4 products of unsigned by signed bytes in each int32 lane. */
X86_INLINE X86_AVX512 __m512i x86_dpbusd(__m512i u, __m512i s)
{
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
}

/* sum((u - off) * s) = sum(u * s) - sum(off * s), per int32 lane. */
X86_INLINE X86_AVX512 __m512 x86_dot2_u8_off_ps(__m512i u, __m512i s, int off)
{
    const __m512i o = _mm512_set1_epi8((char)off);
    return _mm512_cvtepi32_ps(_mm512_sub_epi32(x86_dpbusd(u, s), x86_dpbusd(o, s)));
}

/* dx*dy of 8 consecutive blocks, as 8 floats. */
X86_INLINE X86_AVX512 __m256 x86_scales8(const void *xd, size_t xs, const void *yd, size_t ys)
{
    const uint8_t *xb = xd, *yb = yd;
    const __m256i h = _mm256_setr_epi64x(
        (long long)x86_gather_h4(xb, xs), (long long)x86_gather_h4(xb + 4 * xs, xs),
        (long long)x86_gather_h4(yb, ys), (long long)x86_gather_h4(yb + 4 * ys, ys));
    const __m512 f = _mm512_cvtph_ps(h);
    return _mm256_mul_ps(_mm512_castps512_ps256(f),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
}

/* [dx*dy, m*s] of 8 consecutive Q4_1/Q5_1 blocks against Q8_1, interleaved (16 floats). */
X86_INLINE X86_AVX512 __m512 x86_scales8_min(const void *xd, size_t xs, const void *yd, size_t ys)
{
    const uint8_t *xb = xd, *yb = yd;
    const __m256i hx = _mm256_setr_epi64x(
        (long long)x86_gather_h2x2(xb, xs), (long long)x86_gather_h2x2(xb + 2 * xs, xs),
        (long long)x86_gather_h2x2(xb + 4 * xs, xs), (long long)x86_gather_h2x2(xb + 6 * xs, xs));
    const __m256i hy = _mm256_setr_epi64x(
        (long long)x86_gather_h2x2(yb, ys), (long long)x86_gather_h2x2(yb + 2 * ys, ys),
        (long long)x86_gather_h2x2(yb + 4 * ys, ys), (long long)x86_gather_h2x2(yb + 6 * ys, ys));
    return _mm512_mul_ps(_mm512_cvtph_ps(hx), _mm512_cvtph_ps(hy));
}

/* Lane k0 of v over the first 8 lanes, lane k1 over the last 8. */
X86_INLINE X86_AVX512 __m512 x86_lane2(__m512 v, int k0, int k1)
{
    return _mm512_permutexvar_ps(
        _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(k0), _mm512_set1_epi32(k1)), v);
}

X86_INLINE X86_AVX512 __m512 x86_q4_0_pair(const struct blk_q4_0 *x, const struct blk_q8_0 *y,
                                           __m512 d, __m512 acc)
{
    const __m512i q = x86_nibbles2(x[0].qs, x[1].qs);
    return _mm512_fmadd_ps(d, x86_dot2_u8_off_ps(q, x86_load2(y[0].qs, y[1].qs), 8), acc);
}

X86_INLINE X86_AVX512 __m512 x86_q5_0_pair(const struct blk_q5_0 *x, const struct blk_q8_0 *y,
                                           __m512 d, __m512 acc)
{
    __m512i q = x86_nibbles2(x[0].qs, x[1].qs);
    q = _mm512_mask_add_epi8(q, x86_bit5_mask2(x[0].qh, x[1].qh), q, _mm512_set1_epi8(16));
    return _mm512_fmadd_ps(d, x86_dot2_u8_off_ps(q, x86_load2(y[0].qs, y[1].qs), 16), acc);
}

/* Signed by signed: |x| times y with x's sign (there is no 512-bit vpsignb). */
X86_INLINE X86_AVX512 __m512 x86_q8_0_pair(const struct blk_q8_0 *x, const struct blk_q8_0 *y,
                                           __m512 d, __m512 acc)
{
    const __m512i xx = x86_load2(x[0].qs, x[1].qs), yy = x86_load2(y[0].qs, y[1].qs);
    const __m512i sy =
        _mm512_mask_sub_epi8(yy, _mm512_movepi8_mask(xx), _mm512_setzero_si512(), yy);
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(x86_dpbusd(_mm512_abs_epi8(xx), sy)), acc);
}

X86_INLINE X86_AVX512 __m512 x86_q4_1_pair(const struct blk_q4_1 *x, const struct blk_q8_1 *y,
                                           __m512 d, __m512 acc)
{
    const __m512i q = x86_nibbles2(x[0].qs, x[1].qs);
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(x86_dpbusd(q, x86_load2(y[0].qs, y[1].qs))), acc);
}

X86_INLINE X86_AVX512 __m512 x86_q5_1_pair(const struct blk_q5_1 *x, const struct blk_q8_1 *y,
                                           __m512 d, __m512 acc)
{
    __m512i q = x86_nibbles2(x[0].qs, x[1].qs);
    q = _mm512_mask_add_epi8(q, x86_bit5_mask2(x[0].qh, x[1].qh), q, _mm512_set1_epi8(16));
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(x86_dpbusd(q, x86_load2(y[0].qs, y[1].qs))), acc);
}

/* Groups of 8 blocks (4 pairs, two accumulators); the last < 8 blocks go through AVX2. */
#define X86_DOT_LEGACY_AVX512(name, WT, AT, PAIR, AVX2DOT)                                      \
    static X86_AVX512 void name(int n, float *s, const void *w, const void *a)                 \
    {                                                                                           \
        const WT *x = w;                                                                        \
        const AT *y = a;                                                                        \
        const int nb = n / QK;                                                                  \
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;                                         \
        int i = 0;                                                                              \
        for (; i + 8 <= nb; i += 8) {                                                           \
            x86_prefetch(x + i, 8 * (int)sizeof(WT));                                           \
            const __m512 d = _mm512_castps256_ps512(                                            \
                x86_scales8(&x[i].d, sizeof(WT), &y[i].d, sizeof(AT)));                         \
            acc0 = PAIR(x + i, y + i, x86_lane2(d, 0, 1), acc0);                                \
            acc1 = PAIR(x + i + 2, y + i + 2, x86_lane2(d, 2, 3), acc1);                        \
            acc0 = PAIR(x + i + 4, y + i + 4, x86_lane2(d, 4, 5), acc0);                        \
            acc1 = PAIR(x + i + 6, y + i + 6, x86_lane2(d, 6, 7), acc1);                        \
        }                                                                                       \
        float tail = 0.0f;                                                                      \
        if (i < nb)                                                                             \
            AVX2DOT((nb - i) * QK, &tail, x + i, y + i);                                        \
        *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;                            \
    }

#define X86_DOT_LEGACY_MIN_AVX512(name, WT, PAIR, AVX2DOT)                                      \
    static X86_AVX512 void name(int n, float *s, const void *w, const void *a)                 \
    {                                                                                           \
        const WT *x = w;                                                                        \
        const struct blk_q8_1 *y = a;                                                           \
        const int nb = n / QK;                                                                  \
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, accm = acc0;                            \
        int i = 0;                                                                              \
        for (; i + 8 <= nb; i += 8) {                                                           \
            x86_prefetch(x + i, 8 * (int)sizeof(WT));                                           \
            const __m512 dm = x86_scales8_min(&x[i].d, sizeof(WT), &y[i].d, sizeof(*y));       \
            accm = _mm512_add_ps(accm, dm);                                                     \
            acc0 = PAIR(x + i, y + i, x86_lane2(dm, 0, 2), acc0);                               \
            acc1 = PAIR(x + i + 2, y + i + 2, x86_lane2(dm, 4, 6), acc1);                       \
            acc0 = PAIR(x + i + 4, y + i + 4, x86_lane2(dm, 8, 10), acc0);                      \
            acc1 = PAIR(x + i + 6, y + i + 6, x86_lane2(dm, 12, 14), acc1);                     \
        }                                                                                       \
        float tail = 0.0f;                                                                      \
        if (i < nb)                                                                             \
            AVX2DOT((nb - i) * QK, &tail, x + i, y + i);                                        \
        const __m512 mins = _mm512_maskz_mov_ps(0xAAAA, accm);                                  \
        *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), mins)) + tail;       \
    }

X86_DOT_LEGACY_AVX512(dot_q4_0_avx512, struct blk_q4_0, struct blk_q8_0, x86_q4_0_pair,
                      dot_q4_0_avx2)
X86_DOT_LEGACY_AVX512(dot_q5_0_avx512, struct blk_q5_0, struct blk_q8_0, x86_q5_0_pair,
                      dot_q5_0_avx2)
X86_DOT_LEGACY_AVX512(dot_q8_0_avx512, struct blk_q8_0, struct blk_q8_0, x86_q8_0_pair,
                      dot_q8_0_avx2)
X86_DOT_LEGACY_MIN_AVX512(dot_q4_1_avx512, struct blk_q4_1, x86_q4_1_pair, dot_q4_1_avx2)
X86_DOT_LEGACY_MIN_AVX512(dot_q5_1_avx512, struct blk_q5_1, x86_q5_1_pair, dot_q5_1_avx2)

// ---- activation quantizers (bit-identical to quantize_q8_{0,1,k}_ref) ------------------------

/* 32 int32 in -128..127 to 32 bytes in order (the packs work per 128-bit lane). */
X86_INLINE X86_AVX2 __m256i x86_pack_i8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i v = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/*
 * One block of ref_q8_block: d = amax/127, q = x * (127/amax) rounded half to even.  max_ps returns its second
 * operand when the first is NaN, so NaNs are skipped as fmaxf skips them.  Returns d; *qsum gets
 * the sum of the quants (Q8_1's s).
 */
X86_INLINE X86_AVX2 float x86_q8_block(const float *x, int8_t *qs, int *qsum)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), amax);
    }
    const float amx = x86_hmax_ps(amax), d = amx / 127;
    const __m256 id = _mm256_set1_ps(amx != 0.0f ? 127.0f / amx : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_storeu_si256((__m256i *)qs, x86_pack_i8(q[0], q[1], q[2], q[3]));
    if (qsum)
        *qsum = x86_hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]),
                                                _mm256_add_epi32(q[2], q[3])));
    return d;
}

static X86_AVX2 void quantize_q8_0_avx2(const float *src, void *dst, int64_t n)
{
    struct blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++)
        b[i].d = fp32_to_fp16(x86_q8_block(src + i * QK, b[i].qs, NULL));
}

static X86_AVX2 void quantize_q8_1_avx2(const float *src, void *dst, int64_t n)
{
    struct blk_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        int qsum;
        const float d = x86_q8_block(src + i * QK, b[i].qs, &qsum);
        b[i].d = fp32_to_fp16(d);
        b[i].s = fp32_to_fp16(qsum * d);
    }
}

/*
 * Q8_K as quantize_q8_k_ref: the first element of largest magnitude (sign kept) maps to -127,
 * q = nearest_int(iscale * x) (cvtps rounds half to even, as lrintf does), d = 1/iscale.
 */
static X86_AVX2 void quantize_q8_k_avx2(const float *src, void *dst, int64_t n)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    struct blk_q8_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float *x = src + i * QK_K;
        __m256 vmax = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8)
            vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), absmask), vmax);
        const float amax = x86_hmax_ps(vmax);
        if (amax == 0.0f) {
            memset(b, 0, sizeof(*b));
            continue;
        }
        int first = 0;
        for (int k = 0; k < QK_K; k += 8) {
            const __m256 ax = _mm256_and_ps(_mm256_loadu_ps(x + k), absmask);
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(ax, _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (m) {
                first = k + __builtin_ctz((unsigned)m);
                break;
            }
        }
        const float iscale = -127.0f / x[first];
        const __m256 vs = _mm256_set1_ps(iscale);
        __m256i sums[8];
        for (int k = 0; k < 8; k++) {
            __m256i q[4];
            for (int j = 0; j < 4; j++)
                q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + 32 * k + 8 * j)));
            /* the packs saturate at 127, which is the reference's clamp */
            const __m256i q8 = x86_pack_i8(q[0], q[1], q[2], q[3]);
            _mm256_storeu_si256((__m256i *)(b->qs + 32 * k), q8);
            /* lanes 0-3 sum to bsums[2k], lanes 4-7 to bsums[2k+1] */
            sums[k] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8),
                                        _mm256_set1_epi16(1));
        }
        /* two rounds of hadd leave groups 0,2,4,6 | 1,3,5,7 and 8,10,12,14 | 9,11,13,15 */
        const __m256i g0 = _mm256_hadd_epi32(_mm256_hadd_epi32(sums[0], sums[1]),
                                             _mm256_hadd_epi32(sums[2], sums[3]));
        const __m256i g1 = _mm256_hadd_epi32(_mm256_hadd_epi32(sums[4], sums[5]),
                                             _mm256_hadd_epi32(sums[6], sums[7]));
        const __m256i g = _mm256_packs_epi32(g0, g1); /* even groups | odd groups */
        const __m128i even = _mm256_castsi256_si128(g), odd = _mm256_extracti128_si256(g, 1);
        _mm_storeu_si128((__m128i *)b->bsums, _mm_unpacklo_epi16(even, odd));
        _mm_storeu_si128((__m128i *)(b->bsums + 8), _mm_unpackhi_epi16(even, odd));
        b->d = 1 / iscale;
    }
}

// ---- dispatch --------------------------------------------------------------------------------

/* The highest level this CPU (and OS: __builtin_cpu_supports checks XCR0) runs. */
static int x86_cpu_level(void)
{
    unsigned eax, ebx, ecx, edx;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return LEVEL_SCALAR;
    /* clang's __builtin_cpu_supports does not know "f16c" */
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_F16C))
        return LEVEL_SCALAR;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        return LEVEL_AVX512;
    return LEVEL_AVX2;
}

static void x86_set(struct quant_traits *t, int n, enum qtype id, quant_vec_dot_fn dot,
                    quant_from_f32_fn quantize)
{
    if ((int)id >= n)
        return;
    if (dot)
        t[id].vec_dot = dot;
    if (quantize)
        t[id].from_f32 = quantize;
}

/*
 * The quantizers stay AVX2 at every level: they run once per activation row, not per weight
 * row, so wider versions would not show.
 */
static void x86_install(struct quant_traits *t, int n, int level)
{
    const int v512 = level >= LEVEL_AVX512;
    x86_set(t, n, QTYPE_F32, v512 ? dot_f32_avx512 : dot_f32_avx2, NULL);
    x86_set(t, n, QTYPE_F16, v512 ? dot_f16_avx512 : dot_f16_avx2, NULL);
    x86_set(t, n, QTYPE_BF16, v512 ? dot_bf16_avx512 : dot_bf16_avx2, NULL);
    x86_set(t, n, QTYPE_Q4_0, v512 ? dot_q4_0_avx512 : dot_q4_0_avx2, NULL);
    x86_set(t, n, QTYPE_Q4_1, v512 ? dot_q4_1_avx512 : dot_q4_1_avx2, NULL);
    x86_set(t, n, QTYPE_Q5_0, v512 ? dot_q5_0_avx512 : dot_q5_0_avx2, NULL);
    x86_set(t, n, QTYPE_Q5_1, v512 ? dot_q5_1_avx512 : dot_q5_1_avx2, NULL);
    x86_set(t, n, QTYPE_Q8_0, v512 ? dot_q8_0_avx512 : dot_q8_0_avx2, quantize_q8_0_avx2);
    x86_set(t, n, QTYPE_Q8_1, NULL, quantize_q8_1_avx2);
    x86_set(t, n, QTYPE_Q8_K, NULL, quantize_q8_k_avx2);
    quant_x86_k_install(t, n, level);
    quant_x86_deq_install(t, n, level);
}

const char *quant_x86_install_level(int level, struct quant_traits *table, int n)
{
    if (level < LEVEL_SCALAR || level > LEVEL_AVX512 || level > x86_cpu_level())
        return NULL;
    if (level > LEVEL_SCALAR)
        x86_install(table, n, level);
    return x86_level_name[level];
}

const char *quant_x86_install(struct quant_traits *table, int n)
{
    return quant_x86_install_level(x86_cpu_level(), table, n);
}

#else /* not x86-64: the references stay */

const char *quant_x86_install_level(int level, struct quant_traits *table, int n)
{
    (void)table;
    (void)n;
    return level == LEVEL_SCALAR ? x86_level_name[LEVEL_SCALAR] : NULL;
}

const char *quant_x86_install(struct quant_traits *table, int n)
{
    return quant_x86_install_level(LEVEL_SCALAR, table, n);
}

#endif
