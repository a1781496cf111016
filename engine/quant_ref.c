/*
 * quant_ref.c — scalar reference kernels for the float types (F32, F16, BF16) and the 32-element
 * legacy quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).  The K-quants live in quant_ref_k.c.
 *
 * These functions are the oracle that the SIMD kernels and the CUDA backend are tested against,
 * so they favour plain loops whose arithmetic order follows ggml's reference code: a dequantized
 * value is computed as ggml computes it (bit-identical), and a dot product sums integer products
 * per block before scaling, as ggml's CPU kernels do.  Quantizers follow ggml's simple reference
 * algorithms (quantize_row_*_ref), so activations quantized here equal llama.cpp's byte for byte.
 *
 * Invariants: n is a multiple of the type's block size (checked by the callers' row shapes, not
 * here); blocks are read and written through their structs, which match ggml-common.h.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "half.h"
#include "quant_ref.h"

// ---- float types ---------------------------------------------------------------------------

void dequant_f32_ref(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void quantize_f32_ref(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

/* Float dots accumulate in double, as ggml's scalar ggml_vec_dot_f32 does (ggml_float). */
void vec_dot_f32_ref(int n, float *s, const void *w, const void *a)
{
    const float *x = w;
    const float *y = a;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)x[i] * (double)y[i];
    *s = (float)sum;
}

void dequant_f16_ref(const void *src, float *dst, int64_t n)
{
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = fp16_to_fp32(x[i]);
}

void quantize_f16_ref(const float *src, void *dst, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = fp32_to_fp16(src[i]);
}

void vec_dot_f16_ref(int n, float *s, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)fp16_to_fp32(x[i]) * (double)y[i];
    *s = (float)sum;
}

void dequant_bf16_ref(const void *src, float *dst, int64_t n)
{
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = bf16_to_fp32(x[i]);
}

void quantize_bf16_ref(const float *src, void *dst, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = fp32_to_bf16(src[i]);
}

void vec_dot_bf16_ref(int n, float *s, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)bf16_to_fp32(x[i]) * (double)y[i];
    *s = (float)sum;
}

// ---- shared helpers for the legacy quants ----------------------------------------------------

/*
 * The value with the largest magnitude, sign kept.  Symmetric quantizers map it to the most
 * negative level (-8 for 4 bits), which has one more step than the positive side.
 */
static float ref_signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

static void ref_minmax(const float *x, int n, float *lo, float *hi)
{
    float mn = x[0], mx = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn)
            mn = x[i];
        if (x[i] > mx)
            mx = x[i];
    }
    *lo = mn;
    *hi = mx;
}

/* Quant value of element e (0..31) of a 4-bit block: low nibbles first, then high nibbles. */
static inline int ref_nibble(const uint8_t *qs, int e)
{
    return e < QK / 2 ? qs[e] & 0x0F : qs[e - QK / 2] >> 4;
}

/* Fifth bit of element e of a Q5 block: qh, as a little-endian u32, has bit e for element e. */
static inline int ref_bit5(const uint8_t qh[4], int e)
{
    return (qh[e >> 3] >> (e & 7)) & 1;
}

static void ref_pack_nibbles(const uint8_t q[QK], uint8_t qs[QK / 2])
{
    for (int j = 0; j < QK / 2; j++)
        qs[j] = (uint8_t)((q[j] & 0x0F) | (q[j + QK / 2] & 0x0F) << 4);
}

static void ref_pack_bit5(const uint8_t q[QK], uint8_t qh[4])
{
    memset(qh, 0, 4);
    for (int e = 0; e < QK; e++)
        qh[e >> 3] |= (uint8_t)(((q[e] >> 4) & 1) << (e & 7));
}

/* Integer dot of one block of 32 unsigned quant values (0..31) with 32 int8 activations. */
static inline int ref_block_isum(const uint8_t q[QK], const int8_t *a)
{
    int sum = 0;
    for (int e = 0; e < QK; e++)
        sum += q[e] * a[e];
    return sum;
}

// ---- Q4_0: y = (q - 8) * d ------------------------------------------------------------------

void dequant_q4_0_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = fp16_to_fp32(b->d);
        for (int e = 0; e < QK; e++)
            dst[i * QK + e] = (ref_nibble(b->qs, e) - 8) * d;
    }
}

void quantize_q4_0_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float *x = src + i * QK;
        const float d = ref_signed_absmax(x, QK) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        /* +8.5 then truncation rounds to nearest; the extreme maps to 0 (-8), and the
         * opposite extreme to 16, which is clamped to 15 (as ggml does). */
        for (int e = 0; e < QK; e++) {
            int v = (int)(x[e] * id + 8.5f);
            q[e] = (uint8_t)(v > 15 ? 15 : v);
        }
        b->d = fp32_to_fp16(d);
        ref_pack_nibbles(q, b->qs);
    }
}

void vec_dot_q4_0_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q4_0 *x = w;
    const struct blk_q8_0 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK; i++) {
        /* Unpack first: GCC 12 with -mavx512vnni miscompiles the fused (nibble - 8) * a loop. */
        int8_t q[QK];
        for (int e = 0; e < QK; e++)
            q[e] = (int8_t)(ref_nibble(x[i].qs, e) - 8);
        int isum = 0;
        for (int e = 0; e < QK; e++)
            isum += q[e] * y[i].qs[e];
        sum += isum * fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
    }
    *s = sum;
}

// ---- Q4_1: y = q * d + m --------------------------------------------------------------------

void dequant_q4_1_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = fp16_to_fp32(b->d);
        const float m = fp16_to_fp32(b->m);
        for (int e = 0; e < QK; e++)
            dst[i * QK + e] = ref_nibble(b->qs, e) * d + m;
    }
}

void quantize_q4_1_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q4_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float *x = src + i * QK;
        float lo, hi;
        ref_minmax(x, QK, &lo, &hi);
        const float d = (hi - lo) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        for (int e = 0; e < QK; e++) {
            int v = (int)((x[e] - lo) * id + 0.5f);
            q[e] = (uint8_t)(v > 15 ? 15 : v);
        }
        b->d = fp32_to_fp16(d);
        b->m = fp32_to_fp16(lo);
        ref_pack_nibbles(q, b->qs);
    }
}

/* The activation's s = d_a * sum(q_a) carries the whole min term: sum(m * d_a * q_a) = m * s. */
void vec_dot_q4_1_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q4_1 *x = w;
    const struct blk_q8_1 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int e = 0; e < QK; e++)
            isum += ref_nibble(x[i].qs, e) * y[i].qs[e];
        sum += (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)) * isum +
               fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    *s = sum;
}

// ---- Q5_0: y = (q - 16) * d -----------------------------------------------------------------

static void ref_q5_values(const uint8_t qs[QK / 2], const uint8_t qh[4], uint8_t q[QK])
{
    for (int e = 0; e < QK; e++)
        q[e] = (uint8_t)(ref_nibble(qs, e) | ref_bit5(qh, e) << 4);
}

void dequant_q5_0_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = fp16_to_fp32(b->d);
        uint8_t q[QK];
        ref_q5_values(b->qs, b->qh, q);
        for (int e = 0; e < QK; e++)
            dst[i * QK + e] = (q[e] - 16) * d;
    }
}

void quantize_q5_0_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q5_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float *x = src + i * QK;
        const float d = ref_signed_absmax(x, QK) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        for (int e = 0; e < QK; e++) {
            int v = (int)(x[e] * id + 16.5f);
            q[e] = (uint8_t)(v > 31 ? 31 : v);
        }
        b->d = fp32_to_fp16(d);
        ref_pack_bit5(q, b->qh);
        ref_pack_nibbles(q, b->qs);
    }
}

void vec_dot_q5_0_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q5_0 *x = w;
    const struct blk_q8_0 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK; i++) {
        uint8_t q[QK];
        ref_q5_values(x[i].qs, x[i].qh, q);
        int isum = 0;
        for (int e = 0; e < QK; e++)
            isum += (q[e] - 16) * y[i].qs[e];
        sum += (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)) * isum;
    }
    *s = sum;
}

// ---- Q5_1: y = q * d + m --------------------------------------------------------------------

void dequant_q5_1_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = fp16_to_fp32(b->d);
        const float m = fp16_to_fp32(b->m);
        uint8_t q[QK];
        ref_q5_values(b->qs, b->qh, q);
        for (int e = 0; e < QK; e++)
            dst[i * QK + e] = q[e] * d + m;
    }
}

void quantize_q5_1_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q5_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float *x = src + i * QK;
        float lo, hi;
        ref_minmax(x, QK, &lo, &hi);
        const float d = (hi - lo) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK];
        /* ggml does not clamp here; we do, so a rounding overshoot cannot spill into bit 5. */
        for (int e = 0; e < QK; e++) {
            int v = (int)((x[e] - lo) * id + 0.5f);
            q[e] = (uint8_t)(v > 31 ? 31 : v);
        }
        b->d = fp32_to_fp16(d);
        b->m = fp32_to_fp16(lo);
        ref_pack_bit5(q, b->qh);
        ref_pack_nibbles(q, b->qs);
    }
}

void vec_dot_q5_1_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q5_1 *x = w;
    const struct blk_q8_1 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK; i++) {
        uint8_t q[QK];
        ref_q5_values(x[i].qs, x[i].qh, q);
        const int isum = ref_block_isum(q, y[i].qs);
        sum += (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)) * isum +
               fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    *s = sum;
}

// ---- Q8_0 / Q8_1: y = q * d (activation formats; Q8_0 is also a weight type) ----------------

/*
 * amax/127 scale and roundf (half away from zero), multiplying by the reciprocal as ggml does:
 * x * (1/d) and x / d can differ in the last bit, which would flip a rounding now and then.
 * Returns the float (not fp16-rounded) scale, which Q8_1's s is computed from.
 */
static float ref_q8_block(const float *x, int8_t q[QK], int act)
{
    float amax = 0.0f;
    for (int e = 0; e < QK; e++)
        amax = fmaxf(amax, fabsf(x[e]));
    const float d = amax / 127;
    if (act) {
        /*
         * Activations: as ggml's x86 quantizer (what llama.cpp runs on this CPU), not its
         * portable reference: id = 127/amax and round half to even.  The activation format is
         * ours to choose; matching keeps our logits within llama.cpp's own rounding noise.
         */
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int e = 0; e < QK; e++)
            q[e] = (int8_t)rintf(x[e] * id);
    } else { /* weights: ggml's reference quantizer, so model files match llama-quantize's */
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int e = 0; e < QK; e++)
            q[e] = (int8_t)roundf(x[e] * id);
    }
    return d;
}

void dequant_q8_0_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = fp16_to_fp32(b->d);
        for (int e = 0; e < QK; e++)
            dst[i * QK + e] = b->qs[e] * d;
    }
}

void quantize_q8_0_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b++)
        b->d = fp32_to_fp16(ref_q8_block(src + i * QK, b->qs, 0));
}

void quantize_q8_0_act_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b++)
        b->d = fp32_to_fp16(ref_q8_block(src + i * QK, b->qs, 1));
}

void vec_dot_q8_0_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q8_0 *x = w;
    const struct blk_q8_0 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int e = 0; e < QK; e++)
            isum += x[i].qs[e] * y[i].qs[e];
        sum += isum * (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
    }
    *s = sum;
}

void dequant_q8_1_ref(const void *src, float *dst, int64_t n)
{
    const struct blk_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = fp16_to_fp32(b->d);
        for (int e = 0; e < QK; e++)
            dst[i * QK + e] = b->qs[e] * d;
    }
}

void quantize_q8_1_ref(const float *src, void *dst, int64_t n)
{
    struct blk_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b++) {
        const float d = ref_q8_block(src + i * QK, b->qs, 1);
        int qsum = 0;
        for (int e = 0; e < QK; e++)
            qsum += b->qs[e];
        b->d = fp32_to_fp16(d);
        b->s = fp32_to_fp16(qsum * d);
    }
}

/* Q8_1 is not a weight type in ggml (no dot there); this Q8_1·Q8_1 exists for completeness. */
void vec_dot_q8_1_ref(int n, float *s, const void *w, const void *a)
{
    const struct blk_q8_1 *x = w;
    const struct blk_q8_1 *y = a;
    float sum = 0.0f;
    for (int i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int e = 0; e < QK; e++)
            isum += x[i].qs[e] * y[i].qs[e];
        sum += isum * (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
    }
    *s = sum;
}
