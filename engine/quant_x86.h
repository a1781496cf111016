/*
 * quant_x86.h — private to quant_x86.c, quant_x86_k.c and quant_x86_deq.c: the target
 * attributes, the small helpers the three share, and the install functions of the two others,
 * which quant_x86.c calls once it has picked the level.  Not part of the engine's interface
 * (quant_ref.h declares quant_x86_install).
 */
#ifndef KF_QUANT_X86_H
#define KF_QUANT_X86_H

#include "quant.h"

/* level: 1 = AVX2, 2 = AVX-512 VNNI; quant_x86.c has checked that the CPU runs it. */
void quant_x86_k_install(struct quant_traits *table, int n, int level);   /* K-quant dots */
void quant_x86_deq_install(struct quant_traits *table, int n, int level); /* to_f32 */

#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define X86_AVX2 __attribute__((target("avx2,fma,f16c")))
#define X86_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
/* Helpers must inline into the kernels (gcc gives up on the bigger ones otherwise). */
#define X86_INLINE static inline __attribute__((always_inline))


/*
 * Streaming weights from DRAM, the hardware prefetchers alone leave these kernels waiting on
 * memory: measured over 64 MiB, Q4_K ran at about half its in-cache speed.  Asking for the bytes
 * 4 KB ahead of the ones being read (about one DRAM latency times the bandwidth) brings it up to
 * the in-cache speed.  Prefetches never fault, so running past the end of a row (usually into
 * the next row of the matrix) is harmless; the address is formed as an integer.
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

/* fp16 -> f32 (F16C converts every input exactly, subnormals included). */
X86_INLINE X86_AVX2 float x86_h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}

/* Two adjacent fp16 (d and m of a weight block, or d and s of a Q8_1 block) as floats 0 and 1. */
X86_INLINE X86_AVX2 __m128 x86_h2f_pair(const void *p)
{
    uint32_t u;
    memcpy(&u, p, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
}

X86_INLINE X86_AVX2 __m256i x86_load(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/*
 * The 32 quants of a 4-bit legacy block as bytes 0..15: byte j holds element j in its low nibble
 * and element j + 16 in its high nibble, so one 128-bit broadcast and a per-half shift of 0 or 4
 * put every element in its own byte, in element order.
 */
X86_INLINE X86_AVX2 __m256i x86_nibbles(const uint8_t *qs)
{
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)),
                            _mm256_set1_epi8(0x0F));
}

/* 0x10 in byte e where bit e of qh is set: the fifth bit of a Q5 block's elements. */
X86_INLINE X86_AVX2 __m256i x86_bit5(const uint8_t *qh)
{
    uint32_t bits;
    memcpy(&bits, qh, 4);
    const __m256i rep = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
        _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(rep, sel), sel);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
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

/*
 * An empty asm the compiler cannot see through: a product passed through it is rounded on its
 * own, never fused with the add or subtract after it (quant_x86_deq.c says why).
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

#endif

#endif
