/* experimental variants (throwaway) */
#include <stdint.h>
#include <string.h>
#include <immintrin.h>
#include "quant.h"
#define T __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
void exp_q4k_v256(int n, float *s, const void *w, const void *a);
void exp_q4_0_v256(int n, float *s, const void *w, const void *a);
void exp_q6k_v256(int n, float *s, const void *w, const void *a);
static inline T __m256i ld(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline T float hsum(__m256 v) { __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); s = _mm_add_ps(s, _mm_movehl_ps(s, s)); s = _mm_add_ss(s, _mm_movehdup_ps(s)); return _mm_cvtss_f32(s); }
static inline T __m128i k4_scales(const uint8_t *s)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)s);
    const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i lo = _mm_or_si128(_mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0)),
        _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15)));
    const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    return _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
}
static inline T __m256 lane(__m128 v, int k) { return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(k)); }
/* dword pattern: byte j of v zero-extended, per lane */
static inline T __m256i pick(__m256i v, int j) { return _mm256_shuffle_epi8(v, _mm256_set1_epi32(j | (int)0x80808000)); }
static inline T __m256i chunk(const uint8_t *q4, const int8_t *q8, __m256i sc, int c, __m256i acc)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i bits = ld(q4 + 32 * c);
    const __m256i plo = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_and_si256(bits, m4), ld(q8 + 64 * c));
    const __m256i phi = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), ld(q8 + 64 * c + 32));
    acc = _mm256_dpwssd_epi32(acc, plo, pick(sc, 2 * c));
    return _mm256_dpwssd_epi32(acc, phi, pick(sc, 2 * c + 1));
}
T void exp_q4k_v256(int n, float *s, const void *w, const void *a)
{
    const struct blk_q4_k *x = w; const struct blk_q8_k *y = a;
    __m256 acc = _mm256_setzero_ps(), accm = acc;
    for (int i = 0; i < n / QK_K; i++) {
        const __m128i scm = k4_scales(x[i].scales);
        const __m256i sc = _mm256_broadcastsi128_si256(scm);
        __m256i s0 = chunk(x[i].qs, y[i].qs, sc, 0, _mm256_setzero_si256());
        __m256i s1 = chunk(x[i].qs, y[i].qs, sc, 1, _mm256_setzero_si256());
        s0 = chunk(x[i].qs, y[i].qs, sc, 2, s0);
        s1 = chunk(x[i].qs, y[i].qs, sc, 3, s1);
        const __m128i mdup = _mm_shuffle_epi8(scm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15));
        const __m256i msum = _mm256_madd_epi16(_mm256_cvtepu8_epi16(mdup), ld(y[i].bsums));
        uint32_t u; memcpy(&u, &x[i].d, 4);
        const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)u)), _mm_set1_ps(y[i].d));
        acc = _mm256_fmadd_ps(lane(dd, 0), _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), acc);
        accm = _mm256_fmadd_ps(lane(dd, 1), _mm256_cvtepi32_ps(msum), accm);
    }
    *s = hsum(_mm256_sub_ps(acc, accm));
}
static inline uint64_t g4(const void *p, size_t st) { const uint8_t *b = p; uint16_t h[4]; for (int k = 0; k < 4; k++) memcpy(&h[k], b + k * st, 2); return h[0] | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 32 | (uint64_t)h[3] << 48; }
static inline T __m256 blk40(const struct blk_q4_0 *x, const struct blk_q8_0 *y, __m256 d, __m256 acc)
{
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x->qs));
    const __m256i q = _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
    const __m256i yy = ld(y->qs);
    const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q, yy), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), yy));
    return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
}
T void exp_q4_0_v256(int n, float *s, const void *w, const void *a)
{
    const struct blk_q4_0 *x = w; const struct blk_q8_0 *y = a;
    const int nb = n / QK; __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int i = 0; i + 4 <= nb; i += 4) {
        const __m256 f = _mm256_cvtph_ps(_mm_set_epi64x((long long)g4(&y[i].d, sizeof(*y)), (long long)g4(&x[i].d, sizeof(*x))));
        const __m256 d = _mm256_castps128_ps256(_mm_mul_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1)));
        acc0 = blk40(x + i, y + i, _mm256_permutevar8x32_ps(d, _mm256_set1_epi32(0)), acc0);
        acc1 = blk40(x + i + 1, y + i + 1, _mm256_permutevar8x32_ps(d, _mm256_set1_epi32(1)), acc1);
        acc0 = blk40(x + i + 2, y + i + 2, _mm256_permutevar8x32_ps(d, _mm256_set1_epi32(2)), acc0);
        acc1 = blk40(x + i + 3, y + i + 3, _mm256_permutevar8x32_ps(d, _mm256_set1_epi32(3)), acc1);
    }
    *s = hsum(_mm256_add_ps(acc0, acc1));
}
/* q6_K with ymm VNNI: per quarter dpbusd, then dpwssd with per-128-lane scale pattern */
static inline T __m256i q6q(__m256i q, const int8_t *q8, __m256i scw, int g0, __m256i acc)
{
    const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, ld(q8));
    /* scw: 16 scales as dwords? use permutevar8x32 on 8-dword vector */
    const __m256i pat = _mm256_permutevar8x32_epi32(scw, _mm256_setr_epi32(g0, g0, g0, g0, g0 + 1, g0 + 1, g0 + 1, g0 + 1));
    return _mm256_dpwssd_epi32(acc, p, pat);
}
T void exp_q6k_v256(int n, float *s, const void *w, const void *a)
{
    const struct blk_q6_k *x = w; const struct blk_q8_k *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        const __m128i s8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(s8), ld(y[i].bsums));
        const __m256i sw0 = _mm256_and_si256(_mm256_cvtepi8_epi32(s8), _mm256_set1_epi32(0xFFFF));
        const __m256i sw1 = _mm256_and_si256(_mm256_cvtepi8_epi32(_mm_srli_si128(s8, 8)), _mm256_set1_epi32(0xFFFF));
        __m256i sa = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5)), sb = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h; const uint8_t *qhp = x[i].qh + 32 * h; const int8_t *q8 = y[i].qs + 128 * h;
            const __m256i scw = h ? sw1 : sw0;
            const __m256i ql0 = ld(ql), ql1 = ld(ql + 32), qh = ld(qhp);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            sa = q6q(q0, q8, scw, 0, sa); sb = q6q(q1, q8 + 32, scw, 2, sb);
            sa = q6q(q2, q8 + 64, scw, 4, sa); sb = q6q(q3, q8 + 96, scw, 6, sb);
        }
        uint16_t dh; memcpy(&dh, &x[i].d, 2);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(dh) * y[i].d), _mm256_cvtepi32_ps(_mm256_add_epi32(sa, sb)), acc);
    }
    *s = hsum(acc);
}
void exp_q4k_pack(int n, float *s, const void *w, const void *a);
static inline T __m512i nib(const uint8_t *q4, int c)
{
    const __m512i v = _mm512_broadcast_i64x4(ld(q4 + 32 * c));
    return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)), _mm512_set1_epi8(0x0F));
}
static inline T __m128i wpat(int j0) { const short a = (short)((2 * j0 + 1) << 8 | 2 * j0), b = (short)((2 * j0 + 5) << 8 | (2 * j0 + 4)); return _mm_setr_epi16(a, a, a, a, b, b, b, b); }
static inline T __m512i pat2(int c) { return _mm512_mask_blend_epi64(0xF0, _mm512_broadcast_i32x4(wpat(2 * c)), _mm512_broadcast_i32x4(wpat(2 * c + 1))); }
T void exp_q4k_pack(int n, float *s, const void *w, const void *a)
{
    const struct blk_q4_k *x = w; const struct blk_q8_k *y = a;
    __m512 acc = _mm512_setzero_ps(); __m256 accm = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        const __m128i scm = k4_scales(x[i].scales);
        const __m512i SC = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(scm));
        const int8_t *q8 = y[i].qs;
        const __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nib(x[i].qs, 0), _mm512_loadu_si512(q8));
        const __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nib(x[i].qs, 1), _mm512_loadu_si512(q8 + 64));
        const __m512i p2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nib(x[i].qs, 2), _mm512_loadu_si512(q8 + 128));
        const __m512i p3 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nib(x[i].qs, 3), _mm512_loadu_si512(q8 + 192));
        __m512i sum = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_packs_epi32(p0, p1), _mm512_shuffle_epi8(SC, pat2(0)));
        sum = _mm512_dpwssd_epi32(sum, _mm512_packs_epi32(p2, p3), _mm512_shuffle_epi8(SC, pat2(2)));
        const __m128i mdup = _mm_shuffle_epi8(scm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15));
        const __m256i msum = _mm256_madd_epi16(_mm256_cvtepu8_epi16(mdup), ld(y[i].bsums));
        uint32_t u; memcpy(&u, &x[i].d, 4);
        const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)u)), _mm_set1_ps(y[i].d));
        acc = _mm512_fmadd_ps(_mm512_broadcastss_ps(dd), _mm512_cvtepi32_ps(sum), acc);
        accm = _mm256_fmadd_ps(lane(dd, 1), _mm256_cvtepi32_ps(msum), accm);
    }
    *s = _mm512_reduce_add_ps(acc) - hsum(accm);
}
