/*
 * quant_ref_k.c — scalar reference kernels for the K-quants (Q2_K..Q6_K, 256-element
 * super-blocks) and for Q8_K, the activation format their dot products take.
 *
 * Each type has one unpack function that turns a super-block into its 256 small integer quant
 * values plus its per-sub-block scales (and mins); dequantization and the dot product are both
 * written on top of it, so the two can never disagree about the layout.  Dequantized values are
 * computed in ggml's order ((d * scale) * q - dmin * min), hence bit-identical to ggml.  The dot
 * products sum integer products per sub-block, scale them by the integer sub-block scales, and
 * apply the float super-block scales once per super-block; the min term comes from Q8_K's bsums.
 *
 * The weight quantizers are not ggml's (whose iterative searches are long and weighted by an
 * importance matrix): they fit each sub-block by min/max and refine it by least squares, then
 * quantize the sub-block scales against one fp16 super-block scale.  Q8_K follows ggml's
 * quantize_row_q8_K_ref exactly, because activations must match llama.cpp's.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "half.h"
#include "quant_ref.h"

/* Round half to even in the current (default) rounding mode, as ggml's nearest_int does. */
static inline int ref_nearest_int(float f)
{
    return (int)lrintf(f);
}

static inline int ref_clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

// ---- sub-block fitting (weight quantizers only) ----------------------------------------------

/*
 * Fit x[0..n) ≈ scale * L - min with L in 0..nmax, scale >= 0 and min >= 0 (the K-quant formats
 * can only subtract a min, so a sub-block whose values are all positive gets min = 0).  Starts
 * from the min/max line and refines (scale, min) by least squares over the current L a few
 * times, keeping the best fit.  L is not returned: the caller requantizes against the scale and
 * min it can actually store.
 */
static void ref_fit_asym(const float *x, int n, int nmax, float *scale, float *min)
{
    float lo = 0.0f, hi = x[0];
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    *min = -lo;
    *scale = hi > lo ? (hi - lo) / nmax : 0.0f;
    if (*scale == 0.0f)
        return;
    float best_err = INFINITY;
    float s = *scale, m = *min;
    for (int iter = 0; iter < 4; iter++) {
        double sl = 0, sll = 0, sx = 0, sxl = 0, err = 0;
        for (int i = 0; i < n; i++) {
            const int l = ref_clamp(ref_nearest_int((x[i] + m) / s), 0, nmax);
            const float diff = s * l - m - x[i];
            err += (double)diff * diff;
            sl += l;
            sll += (double)l * l;
            sx += x[i];
            sxl += (double)x[i] * l;
        }
        if (err >= best_err)
            break;
        best_err = (float)err;
        *scale = s;
        *min = m;
        /* Least squares for x ≈ s * l + b, with b = -m constrained to b <= 0. */
        const double det = n * sll - sl * sl;
        if (det <= 0)
            break;
        double ns = (n * sxl - sl * sx) / det;
        double nb = (sx - ns * sl) / n;
        if (nb > 0) {
            nb = 0;
            ns = sxl / sll;
        }
        if (!(ns > 0))
            break;
        s = (float)ns;
        m = (float)-nb;
    }
}

/*
 * Fit x[0..n) ≈ scale * L with L in -nmax..nmax-1: the value with the largest magnitude maps to
 * -nmax (the side with one more level), then least squares over L refines the scale.
 */
static float ref_fit_sym(const float *x, int n, int nmax)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax == 0.0f)
        return 0.0f;
    float s = max / -nmax, best = s;
    double best_err = INFINITY;
    for (int iter = 0; iter < 4; iter++) {
        double sxl = 0, sll = 0, err = 0;
        for (int i = 0; i < n; i++) {
            const int l = ref_clamp(ref_nearest_int(x[i] / s), -nmax, nmax - 1);
            const float diff = s * l - x[i];
            err += (double)diff * diff;
            sxl += (double)x[i] * l;
            sll += (double)l * l;
        }
        if (err >= best_err || sll == 0)
            break;
        best_err = err;
        best = s;
        s = (float)(sxl / sll);
    }
    return best;
}

/*
 * Quantize n non-negative sub-block values v[] to integers 0..qmax against one fp16 super-block
 * scale; returns the fp16 bits.  Rounding the super-block scale to fp16 first and quantizing
 * against the rounded value keeps the stored product d * q closest to v.
 */
static uint16_t ref_quant_scales(const float *v, int n, int qmax, uint8_t *q)
{
    float vmax = 0.0f;
    for (int i = 0; i < n; i++)
        vmax = fmaxf(vmax, v[i]);
    const uint16_t dh = fp32_to_fp16(vmax / qmax);
    const float d = fp16_to_fp32(dh);
    for (int i = 0; i < n; i++)
        q[i] = (uint8_t)(d > 0.0f ? ref_clamp(ref_nearest_int(v[i] / d), 0, qmax) : 0);
    return dh;
}

/* Signed counterpart: the scale with the largest magnitude maps to -qneg; range -qneg..qneg-1. */
static uint16_t ref_quant_scales_signed(const float *v, int n, int qneg, int *q)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(v[i]) > amax) {
            amax = fabsf(v[i]);
            max = v[i];
        }
    }
    const uint16_t dh = fp32_to_fp16(max / -qneg);
    const float d = fp16_to_fp32(dh);
    for (int i = 0; i < n; i++)
        q[i] = d != 0.0f ? ref_clamp(ref_nearest_int(v[i] / d), -qneg, qneg - 1) : 0;
    return dh;
}

/* Quant level of x against an effective (already stored) scale and min, clamped to 0..nmax. */
static inline int ref_level(float x, float scale, float min, int nmax)
{
    return scale > 0.0f ? ref_clamp(ref_nearest_int((x + min) / scale), 0, nmax) : 0;
}

/* Sum over groups of `group` elements of scale[g] * dot(q, a) within the group. */
static int ref_scaled_isum(const int8_t *q, const int8_t *a, const int *scale, int ngroups,
                           int group)
{
    int total = 0;
    for (int g = 0; g < ngroups; g++) {
        int sum = 0;
        for (int i = g * group; i < (g + 1) * group; i++)
            sum += q[i] * a[i];
        total += scale[g] * sum;
    }
    return total;
}

// ---- Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scales and mins packed in 12 bytes -----------

static void ref_unpack_scale_min_k4(const uint8_t s[12], int sc[8], int m[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0F) | (s[j] >> 6) << 4;
        m[j + 4] = (s[j + 8] >> 4) | (s[j + 4] >> 6) << 4;
    }
}

static void ref_pack_scale_min_k4(const uint8_t sc[8], const uint8_t m[8], uint8_t s[12])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0F) | (m[j + 4] & 0x0F) << 4);
    }
}

/*
 * Shared quantizer for Q4_K (nmax 15) and Q5_K (nmax 31): fits the 8 sub-blocks, stores d, dmin
 * and the packed scales, and returns the levels L[256] for the caller to pack.
 */
static void ref_quant_k4(const float *x, int nmax, uint16_t *d, uint16_t *dmin,
                         uint8_t scales[12], uint8_t L[QK_K])
{
    float fs[8], fm[8];
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++)
        ref_fit_asym(x + 32 * j, 32, nmax, &fs[j], &fm[j]);
    *d = ref_quant_scales(fs, 8, 63, sc);
    *dmin = ref_quant_scales(fm, 8, 63, m);
    ref_pack_scale_min_k4(sc, m, scales);
    const float dd = fp16_to_fp32(*d), dm = fp16_to_fp32(*dmin);
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)ref_level(x[32 * j + i], dd * sc[j], dm * m[j], nmax);
}

/* Element 64c + l is the low nibble of qs[32c + l], element 64c + 32 + l its high nibble. */
static void ref_unpack_q4_k(const struct blk_q4_k *b, int8_t q[QK_K], int sc[8], int m[8])
{
    ref_unpack_scale_min_k4(b->scales, sc, m);
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (int8_t)(b->qs[32 * c + l] & 0x0F);
            q[64 * c + 32 + l] = (int8_t)(b->qs[32 * c + l] >> 4);
        }
    }
}

/* As Q4_K, plus bit 2c of qh[l] for element 64c + l and bit 2c+1 for element 64c + 32 + l. */
static void ref_unpack_q5_k(const struct blk_q5_k *b, int8_t q[QK_K], int sc[8], int m[8])
{
    ref_unpack_scale_min_k4(b->scales, sc, m);
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            const int h = b->qh[l];
            q[64 * c + l] = (int8_t)((b->qs[32 * c + l] & 0x0F) | ((h >> (2 * c)) & 1) << 4);
            q[64 * c + 32 + l] = (int8_t)((b->qs[32 * c + l] >> 4) | ((h >> (2 * c + 1)) & 1) << 4);
        }
    }
}

/* y = (d * sc_j) * q - dmin * m_j over 8 sub-blocks of 32 (Q4_K and Q5_K). */
static void ref_dequant_k4(uint16_t dh, uint16_t dminh, const int8_t q[QK_K], const int sc[8],
                           const int m[8], float *y)
{
    const float d = fp16_to_fp32(dh), dmin = fp16_to_fp32(dminh);
    for (int j = 0; j < 8; j++) {
        const float ds = d * sc[j], dm = dmin * m[j];
        for (int i = 0; i < 32; i++)
            y[32 * j + i] = ds * q[32 * j + i] - dm;
    }
}

/* Dot of one Q4_K/Q5_K super-block with one Q8_K block: the min term uses the 16-sums. */
static float ref_dot_k4(uint16_t dh, uint16_t dminh, const int8_t q[QK_K], const int sc[8],
                        const int m[8], const struct blk_q8_k *y)
{
    const int isum = ref_scaled_isum(q, y->qs, sc, 8, 32);
    int msum = 0;
    for (int j = 0; j < 8; j++)
        msum += m[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    const float d = fp16_to_fp32(dh) * y->d;
    const float dmin = fp16_to_fp32(dminh) * y->d;
    return d * isum - dmin * msum;
}

void dequant_q4_k_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_k *b = src;
    int8_t q[QK_K];
    int sc[8], m[8];
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        ref_unpack_q4_k(b, q, sc, m);
        ref_dequant_k4(b->d, b->dmin, q, sc, m, dst + i * QK_K);
    }
}

void quantize_q4_k_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q4_k *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        ref_quant_k4(src + i * QK_K, 15, &b->d, &b->dmin, b->scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

void vec_dot_q4_k_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q4_k *x = w;
    const struct blk_q8_k *y = a;
    int8_t q[QK_K];
    int sc[8], m[8];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        ref_unpack_q4_k(&x[i], q, sc, m);
        sum += ref_dot_k4(x[i].d, x[i].dmin, q, sc, m, &y[i]);
    }
    *s = sum;
}

void dequant_q5_k_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_k *b = src;
    int8_t q[QK_K];
    int sc[8], m[8];
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        ref_unpack_q5_k(b, q, sc, m);
        ref_dequant_k4(b->d, b->dmin, q, sc, m, dst + i * QK_K);
    }
}

void quantize_q5_k_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q5_k *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        ref_quant_k4(src + i * QK_K, 31, &b->d, &b->dmin, b->scales, L);
        memset(b->qh, 0, sizeof(b->qh));
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                b->qs[32 * c + l] = (uint8_t)((lo & 0x0F) | (hi & 0x0F) << 4);
                b->qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
            }
        }
    }
}

void vec_dot_q5_k_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q5_k *x = w;
    const struct blk_q8_k *y = a;
    int8_t q[QK_K];
    int sc[8], m[8];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        ref_unpack_q5_k(&x[i], q, sc, m);
        sum += ref_dot_k4(x[i].d, x[i].dmin, q, sc, m, &y[i]);
    }
    *s = sum;
}

// ---- Q2_K: 16 sub-blocks of 16, 4-bit scale (low nibble) and min (high nibble) ---------------

/* Element 128h + 32j + l is bits 2j..2j+1 of qs[32h + l]. */
static void ref_unpack_q2_k(const struct blk_q2_k *b, int8_t q[QK_K], int sc[16], int m[16])
{
    for (int e = 0; e < QK_K; e++) {
        const int h = e / 128, j = (e % 128) / 32, l = e % 32;
        q[e] = (int8_t)((b->qs[32 * h + l] >> (2 * j)) & 3);
    }
    for (int g = 0; g < 16; g++) {
        sc[g] = b->scales[g] & 0x0F;
        m[g] = b->scales[g] >> 4;
    }
}

void dequant_q2_k_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q2_k *b = src;
    int8_t q[QK_K];
    int sc[16], m[16];
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        ref_unpack_q2_k(b, q, sc, m);
        const float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
        for (int g = 0; g < 16; g++) {
            const float dl = d * sc[g], ml = dmin * m[g];
            for (int k = 0; k < 16; k++)
                dst[i * QK_K + 16 * g + k] = dl * q[16 * g + k] - ml;
        }
    }
}

void quantize_q2_k_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q2_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float *x = src + i * QK_K;
        float fs[16], fm[16];
        uint8_t sc[16], m[16];
        for (int g = 0; g < 16; g++)
            ref_fit_asym(x + 16 * g, 16, 3, &fs[g], &fm[g]);
        b->d = ref_quant_scales(fs, 16, 15, sc);
        b->dmin = ref_quant_scales(fm, 16, 15, m);
        const float d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
        memset(b->qs, 0, sizeof(b->qs));
        for (int g = 0; g < 16; g++)
            b->scales[g] = (uint8_t)(sc[g] | m[g] << 4);
        for (int e = 0; e < QK_K; e++) {
            const int g = e / 16, h = e / 128, j = (e % 128) / 32, l = e % 32;
            const int L = ref_level(x[e], d * sc[g], dmin * m[g], 3);
            b->qs[32 * h + l] |= (uint8_t)(L << (2 * j));
        }
    }
}

void vec_dot_q2_k_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q2_k *x = w;
    const struct blk_q8_k *y = a;
    int8_t q[QK_K];
    int sc[16], m[16];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        ref_unpack_q2_k(&x[i], q, sc, m);
        const int isum = ref_scaled_isum(q, y[i].qs, sc, 16, 16);
        int msum = 0;
        for (int g = 0; g < 16; g++)
            msum += m[g] * y[i].bsums[g];
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        const float dmin = fp16_to_fp32(x[i].dmin) * y[i].d;
        sum += d * isum - dmin * msum;
    }
    *s = sum;
}

// ---- Q3_K: 16 sub-blocks of 16, signed 6-bit scales, q = low2 - (hbit ? 0 : 4) ----------------

/*
 * Element 128h + 32j + l: low 2 bits at qs[32h + l] >> 2j, high bit at hmask[l] bit 4h + j.
 * Scale i: low 4 bits in scales[i % 8] (low nibble for i < 8, high for i >= 8), top 2 bits in
 * scales[8 + i % 4] at bit 2 * (i / 4); the stored 6-bit value is biased by 32.
 */
static void ref_unpack_q3_k(const struct blk_q3_k *b, int8_t q[QK_K], int sc[16])
{
    for (int e = 0; e < QK_K; e++) {
        const int h = e / 128, j = (e % 128) / 32, l = e % 32;
        const int low = (b->qs[32 * h + l] >> (2 * j)) & 3;
        const int hbit = (b->hmask[l] >> (4 * h + j)) & 1;
        q[e] = (int8_t)(low - (hbit ? 0 : 4));
    }
    for (int i = 0; i < 16; i++) {
        const int low4 = i < 8 ? b->scales[i] & 0x0F : b->scales[i - 8] >> 4;
        const int high2 = (b->scales[8 + i % 4] >> (2 * (i / 4))) & 3;
        sc[i] = (low4 | high2 << 4) - 32;
    }
}

void dequant_q3_k_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q3_k *b = src;
    int8_t q[QK_K];
    int sc[16];
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        ref_unpack_q3_k(b, q, sc);
        const float d = fp16_to_fp32(b->d);
        for (int g = 0; g < 16; g++) {
            const float dl = d * sc[g];
            for (int k = 0; k < 16; k++)
                dst[i * QK_K + 16 * g + k] = dl * q[16 * g + k];
        }
    }
}

void quantize_q3_k_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q3_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float *x = src + i * QK_K;
        float fs[16];
        int sc[16];
        for (int g = 0; g < 16; g++)
            fs[g] = ref_fit_sym(x + 16 * g, 16, 4);
        b->d = ref_quant_scales_signed(fs, 16, 32, sc);
        const float d = fp16_to_fp32(b->d);
        memset(b->scales, 0, sizeof(b->scales));
        for (int g = 0; g < 16; g++) {
            const int u = sc[g] + 32;
            b->scales[g % 8] |= (uint8_t)((u & 0x0F) << (g < 8 ? 0 : 4));
            b->scales[8 + g % 4] |= (uint8_t)((u >> 4) << (2 * (g / 4)));
        }
        memset(b->hmask, 0, sizeof(b->hmask));
        memset(b->qs, 0, sizeof(b->qs));
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, j = (e % 128) / 32, l = e % 32;
            const float ds = d * sc[e / 16];
            const int v = ds != 0.0f ? ref_clamp(ref_nearest_int(x[e] / ds), -4, 3) : 0;
            const int u = v + 4; /* 0..7: low 2 bits in qs, bit 2 in hmask */
            b->qs[32 * h + l] |= (uint8_t)((u & 3) << (2 * j));
            b->hmask[l] |= (uint8_t)((u >> 2) << (4 * h + j));
        }
    }
}

void vec_dot_q3_k_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q3_k *x = w;
    const struct blk_q8_k *y = a;
    int8_t q[QK_K];
    int sc[16];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        ref_unpack_q3_k(&x[i], q, sc);
        const int isum = ref_scaled_isum(q, y[i].qs, sc, 16, 16);
        sum += (fp16_to_fp32(x[i].d) * y[i].d) * isum;
    }
    *s = sum;
}

// ---- Q6_K: 16 sub-blocks of 16, int8 scales, q = (low4 | high2 << 4) - 32 -------------------

/*
 * Element 128h + 32t + l: low 4 bits from ql[64h + l] (t = 0, 2) or ql[64h + 32 + l] (t = 1, 3),
 * low nibble for t < 2 and high nibble for t >= 2; high 2 bits at qh[32h + l] >> 2t.
 */
static void ref_unpack_q6_k(const struct blk_q6_k *b, int8_t q[QK_K])
{
    for (int e = 0; e < QK_K; e++) {
        const int h = e / 128, t = (e % 128) / 32, l = e % 32;
        const uint8_t qlb = b->ql[64 * h + 32 * (t & 1) + l];
        const int low = t < 2 ? qlb & 0x0F : qlb >> 4;
        const int high = (b->qh[32 * h + l] >> (2 * t)) & 3;
        q[e] = (int8_t)((low | high << 4) - 32);
    }
}

void dequant_q6_k_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q6_k *b = src;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        ref_unpack_q6_k(b, q);
        const float d = fp16_to_fp32(b->d);
        for (int e = 0; e < QK_K; e++)
            dst[i * QK_K + e] = d * b->scales[e / 16] * q[e];
    }
}

void quantize_q6_k_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q6_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float *x = src + i * QK_K;
        float fs[16];
        int sc[16];
        for (int g = 0; g < 16; g++)
            fs[g] = ref_fit_sym(x + 16 * g, 16, 32);
        /* int8 scales: -128..127 (ggml maps the largest to -128 too). */
        b->d = ref_quant_scales_signed(fs, 16, 128, sc);
        const float d = fp16_to_fp32(b->d);
        for (int g = 0; g < 16; g++)
            b->scales[g] = (int8_t)sc[g];
        memset(b->ql, 0, sizeof(b->ql));
        memset(b->qh, 0, sizeof(b->qh));
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, t = (e % 128) / 32, l = e % 32;
            const float ds = d * sc[e / 16];
            const int v = ds != 0.0f ? ref_clamp(ref_nearest_int(x[e] / ds), -32, 31) : 0;
            const int u = v + 32; /* 0..63 */
            b->ql[64 * h + 32 * (t & 1) + l] |= (uint8_t)((u & 0x0F) << (t < 2 ? 0 : 4));
            b->qh[32 * h + l] |= (uint8_t)((u >> 4) << (2 * t));
        }
    }
}

void vec_dot_q6_k_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q6_k *x = w;
    const struct blk_q8_k *y = a;
    int8_t q[QK_K];
    int sc[16];
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        ref_unpack_q6_k(&x[i], q);
        for (int g = 0; g < 16; g++)
            sc[g] = x[i].scales[g];
        const int isum = ref_scaled_isum(q, y[i].qs, sc, 16, 16);
        sum += (fp16_to_fp32(x[i].d) * y[i].d) * isum;
    }
    *s = sum;
}

// ---- Q8_K: f32 d, 256 int8, bsums of 16 (activation format of the K-quant dots) -----------

void dequant_q8_k_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q8_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++)
        for (int e = 0; e < QK_K; e++)
            dst[i * QK_K + e] = b->d * b->qs[e];
}

/*
 * ggml's reference: the value of largest magnitude (sign kept) maps to -127 via
 * iscale = -127 / max, and d = 1 / iscale (f32, not fp16).  Unlike ggml we also zero bsums
 * for an all-zero block, where ggml leaves them unwritten.
 */
void quantize_q8_k_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q8_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float *x = src + i * QK_K;
        float amax = 0.0f, max = 0.0f;
        for (int e = 0; e < QK_K; e++) {
            if (fabsf(x[e]) > amax) {
                amax = fabsf(x[e]);
                max = x[e];
            }
        }
        if (amax == 0.0f) {
            memset(b, 0, sizeof(*b));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int e = 0; e < QK_K; e++) {
            const int v = ref_nearest_int(iscale * x[e]);
            b->qs[e] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int k = 0; k < 16; k++)
                sum += b->qs[16 * g + k];
            b->bsums[g] = (int16_t)sum;
        }
        b->d = 1 / iscale;
    }
}

/* Q8_K·Q8_K: not in ggml; lets a Q8_K tensor be used as a weight like any other type. */
void vec_dot_q8_k_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q8_k *x = w;
    const struct blk_q8_k *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int e = 0; e < QK_K; e++)
            isum += x[i].qs[e] * y[i].qs[e];
        sum += (x[i].d * y[i].d) * isum;
    }
    *s = sum;
}
