/*
 * test_quant.c — the scalar reference kernels and the traits table (engine/quant*.c).
 *
 * Hand-built blocks, whose bytes are written at the offsets of engine-reference §2 rather than
 * through the structs, pin every layout to ggml's; fp16/bf16 edge cases pin the conversions;
 * random rows bound the quantizers' round-trip error and check every reference dot product
 * against the dot of the dequantized operands; the traits table is checked id by id against
 * engine-reference §1.5.  The SIMD kernels are compared with these references in
 * test_quant_simd.c.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "half.h"
#include "quant.h"
#include "quant_ref.h"
#include "tap.h"

// ---- helpers -------------------------------------------------------------------------------

struct ref_kernels {
    uint32_t id;
    quant_to_f32_fn dequant;
    quant_from_f32_fn quantize;
    quant_vec_dot_fn dot;
    uint32_t act; /* vec_dot_type */
};

#define REF(t, id, act) { id, dequant_##t##_ref, quantize_##t##_ref, vec_dot_##t##_ref, act }
static const struct ref_kernels refs[] = {
    REF(f32, QTYPE_F32, QTYPE_F32),     REF(f16, QTYPE_F16, QTYPE_F32),
    REF(bf16, QTYPE_BF16, QTYPE_F32),   REF(q4_0, QTYPE_Q4_0, QTYPE_Q8_0),
    REF(q4_1, QTYPE_Q4_1, QTYPE_Q8_1),  REF(q5_0, QTYPE_Q5_0, QTYPE_Q8_0),
    REF(q5_1, QTYPE_Q5_1, QTYPE_Q8_1),  REF(q8_0, QTYPE_Q8_0, QTYPE_Q8_0),
    REF(q8_1, QTYPE_Q8_1, QTYPE_Q8_1),  REF(q2_k, QTYPE_Q2_K, QTYPE_Q8_K),
    REF(q3_k, QTYPE_Q3_K, QTYPE_Q8_K),  REF(q4_k, QTYPE_Q4_K, QTYPE_Q8_K),
    REF(q5_k, QTYPE_Q5_K, QTYPE_Q8_K),  REF(q6_k, QTYPE_Q6_K, QTYPE_Q8_K),
    REF(q8_k, QTYPE_Q8_K, QTYPE_Q8_K),
};
#define N_REFS (int)(sizeof(refs) / sizeof(refs[0]))

static const struct ref_kernels *ref_find(uint32_t id)
{
    for (int i = 0; i < N_REFS; i++)
        if (refs[i].id == id)
            return &refs[i];
    return NULL;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_uniform(void) /* [0, 1) */
{
    return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

static float rng_gauss(void)
{
    double u = rng_uniform() + 1e-12, v = rng_uniform();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static void put16(uint8_t *b, int off, uint16_t v)
{
    b[off] = (uint8_t)(v & 0xff);
    b[off + 1] = (uint8_t)(v >> 8);
}

/*
 * Dequantize one hand-built block with the reference and compare chosen elements exactly;
 * pairs[] holds (element index, expected value) pairs.
 */
static void check_block(uint32_t id, const void *blk, const float *pairs, int n)
{
    const struct quant_traits *t = quant_traits_get(id);
    float out[QK_K];
    ref_find(id)->dequant(blk, out, t->blck);
    for (int i = 0; i < n; i++) {
        const int e = (int)pairs[2 * i];
        ok(out[e] == pairs[2 * i + 1], "%s hand block: element %d = %g (want %g)", t->name, e,
           out[e], pairs[2 * i + 1]);
    }
}

#define CHECK_BLOCK(id, blk, ...)                                                             \
    do {                                                                                      \
        const float cb_pairs_[] = { __VA_ARGS__ };                                            \
        check_block(id, blk, cb_pairs_, (int)(sizeof(cb_pairs_) / sizeof(cb_pairs_[0])) / 2); \
    } while (0)

// ---- fp16 / bf16 ---------------------------------------------------------------------------

static void test_fp16(void)
{
    ok(fp16_to_fp32(0x0001) == ldexpf(1.0f, -24), "fp16 smallest subnormal = 2^-24");
    ok(fp16_to_fp32(0x03ff) == 1023 * ldexpf(1.0f, -24), "fp16 largest subnormal");
    ok(fp16_to_fp32(0x0400) == ldexpf(1.0f, -14), "fp16 smallest normal = 2^-14");
    ok(fp16_to_fp32(0x7bff) == 65504.0f, "fp16 max = 65504");
    ok(fp16_to_fp32(0xc000) == -2.0f && fp16_to_fp32(0x3c00) == 1.0f, "fp16 -2 and 1");
    ok(isinf(fp16_to_fp32(0x7c00)) && fp16_to_fp32(0xfc00) < 0, "fp16 +inf / -inf");
    ok(isnan(fp16_to_fp32(0x7e00)) && isnan(fp16_to_fp32(0x7c01)), "fp16 NaNs stay NaN");
    ok(fp16_to_fp32(0x8000) == 0.0f && signbit(fp16_to_fp32(0x8000)), "fp16 -0 keeps its sign");

    ok(fp32_to_fp16(1.0f) == 0x3c00 && fp32_to_fp16(-2.0f) == 0xc000, "fp32->fp16 exact values");
    ok(fp32_to_fp16(65504.0f) == 0x7bff, "fp32->fp16 65504 is max finite");
    ok(fp32_to_fp16(65519.0f) == 0x7bff, "fp32->fp16 65519 rounds down to max");
    ok(fp32_to_fp16(65520.0f) == 0x7c00, "fp32->fp16 65520 overflows to inf");
    ok(fp32_to_fp16(1e30f) == 0x7c00 && fp32_to_fp16(-INFINITY) == 0xfc00, "fp32->fp16 +-inf");
    {
        uint16_t h = fp32_to_fp16(NAN);
        ok((h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0, "fp32->fp16 NaN stays NaN (0x%04x)", h);
    }
    ok(fp32_to_fp16(ldexpf(1.0f, -24)) == 0x0001, "fp32->fp16 2^-24 -> smallest subnormal");
    ok(fp32_to_fp16(ldexpf(1.0f, -25)) == 0x0000, "fp32->fp16 2^-25 ties to even (0)");
    ok(fp32_to_fp16(ldexpf(3.0f, -25)) == 0x0002, "fp32->fp16 3*2^-25 ties to even (2)");
    ok(fp32_to_fp16(ldexpf(1.5f, -25)) == 0x0001, "fp32->fp16 1.5*2^-25 rounds up to 1");
    ok(fp32_to_fp16(-ldexpf(1.0f, -26)) == 0x8000, "fp32->fp16 tiny negative -> -0");
    ok(fp32_to_fp16(1.0f + ldexpf(1.0f, -11)) == 0x3c00, "fp32->fp16 normal tie to even (down)");
    ok(fp32_to_fp16(1.0f + ldexpf(3.0f, -11)) == 0x3c02, "fp32->fp16 normal tie to even (up)");
    ok(fp32_to_fp16(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)) == 0x3c01,
       "fp32->fp16 just above a tie rounds up");
    ok(fp32_to_fp16(ldexpf(1023.5f, -24)) == 0x0400, "fp32->fp16 subnormal rounds into normal");
    {
        int bad = 0;
        for (uint32_t h = 0; h < 0x10000; h++) {
            if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
                continue; /* NaN payloads need not survive */
            if (fp32_to_fp16(fp16_to_fp32((uint16_t)h)) != h)
                bad++;
        }
        ok(bad == 0, "fp16 -> fp32 -> fp16 is the identity on all non-NaN values (%d bad)", bad);
    }
}

static void test_bf16(void)
{
    ok(bf16_to_fp32(0x3f80) == 1.0f && bf16_to_fp32(0x4049) == 3.140625f, "bf16 -> fp32");
    ok(fp32_to_bf16(1.0f) == 0x3f80 && fp32_to_bf16(-2.0f) == 0xc000, "fp32 -> bf16 exact");
    ok(fp32_to_bf16(fp32_from_bits(0x3f808000u)) == 0x3f80, "fp32 -> bf16 tie to even (down)");
    ok(fp32_to_bf16(fp32_from_bits(0x3f818000u)) == 0x3f82, "fp32 -> bf16 tie to even (up)");
    ok(fp32_to_bf16(fp32_from_bits(0x3f808001u)) == 0x3f81, "fp32 -> bf16 above tie rounds up");
    ok(fp32_to_bf16(INFINITY) == 0x7f80 && fp32_to_bf16(-INFINITY) == 0xff80, "fp32 -> bf16 inf");
    ok(fp32_to_bf16(fp32_from_bits(0x7f7fffffu)) == 0x7f80, "fp32 -> bf16 FLT_MAX rounds to inf");
    {
        uint16_t h = fp32_to_bf16(fp32_from_bits(0x7f800001u));
        ok((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0, "fp32 -> bf16 signalling NaN stays NaN");
    }
    ok(fp32_to_bf16(fp32_from_bits(0x00010000u)) == 0x0001, "fp32 -> bf16 subnormal kept");
}

// ---- hand-built blocks (byte offsets from engine-reference §2) -----------------------------

static void test_hand_float(void)
{
    uint8_t b[4];
    float f = 1.5f;
    memcpy(b, &f, 4);
    CHECK_BLOCK(QTYPE_F32, b, 0, 1.5f);
    put16(b, 0, 0x3e00);
    CHECK_BLOCK(QTYPE_F16, b, 0, 1.5f);
    put16(b, 0, 0x3fc0);
    CHECK_BLOCK(QTYPE_BF16, b, 0, 1.5f);
}

static void test_hand_legacy(void)
{
    uint8_t b[36];

    /* Q4_0: d@0, qs@2; element j low nibble of qs[j], element j+16 its high nibble. */
    memset(b, 0x88, sizeof(b));
    put16(b, 0, 0x3800); /* 0.5 */
    b[2 + 3] = 0xA2;
    CHECK_BLOCK(QTYPE_Q4_0, b, 3, -3.0f, 19, 1.0f, 0, 0, 16, 0);

    /* Q4_1: d@0, m@2, qs@4. */
    memset(b, 0, sizeof(b));
    put16(b, 0, 0x3800); /* d 0.5 */
    put16(b, 2, 0xbc00); /* m -1 */
    b[4 + 5] = 0x3F;
    CHECK_BLOCK(QTYPE_Q4_1, b, 5, 6.5f, 21, 0.5f, 0, -1.0f);

    /* Q5_0: d@0, qh@2 (u32 LE, bit e = element e), qs@6. */
    memset(b, 0, sizeof(b));
    put16(b, 0, 0x3800);
    b[2 + 0] = 0x80;     /* qh bit 7 */
    b[2 + 2] = 0x10;     /* qh bit 20 */
    b[6 + 7] = 0x01;     /* element 7 low nibble 1, element 23 high nibble 0 */
    b[6 + 4] = 0x50;     /* element 4 low 0, element 20 high 5 */
    CHECK_BLOCK(QTYPE_Q5_0, b, 7, 0.5f, 23, -8.0f, 20, 2.5f, 4, -8.0f);

    /* Q5_1: d@0, m@2, qh@4, qs@8. */
    memset(b, 0, sizeof(b));
    put16(b, 0, 0x3400); /* d 0.25 */
    put16(b, 2, 0x3c00); /* m 1 */
    b[4 + 3] = 0x80;     /* qh bit 31 */
    b[4 + 0] = 0x01;     /* qh bit 0 */
    b[8 + 15] = 0xF0;
    b[8 + 0] = 0x02;
    CHECK_BLOCK(QTYPE_Q5_1, b, 31, 8.75f, 15, 1.0f, 0, 5.5f, 16, 1.0f);

    /* Q8_0: d@0, qs@2. */
    memset(b, 0, sizeof(b));
    put16(b, 0, 0x3800);
    b[2 + 0] = (uint8_t)-3;
    b[2 + 31] = 127;
    CHECK_BLOCK(QTYPE_Q8_0, b, 0, -1.5f, 31, 63.5f, 1, 0.0f);

    /* Q8_1: d@0, s@2 (must not be read as a quant), qs@4. */
    memset(b, 0, sizeof(b));
    put16(b, 0, 0x4000); /* 2 */
    put16(b, 2, 0x7c00);
    b[4 + 0] = 1;
    b[4 + 1] = (uint8_t)-5;
    b[4 + 31] = 7;
    CHECK_BLOCK(QTYPE_Q8_1, b, 0, 2.0f, 1, -10.0f, 31, 14.0f);
}

static void test_hand_q2_q3(void)
{
    uint8_t b[292];

    /* Q2_K: scales@0, qs@16, d@80, dmin@82; element 128h+32j+l = bits 2j of qs[32h+l]. */
    memset(b, 0, sizeof(b));
    put16(b, 80, 0x3800); /* d 0.5 */
    put16(b, 82, 0x3400); /* dmin 0.25 */
    b[5] = 0x32;          /* group 5: scale 2, min 3 */
    b[14] = 0x1F;         /* group 14: scale 15, min 1 */
    b[16 + 21] = 3 << 4;  /* element 85 (h0 j2 l21) = 3 */
    b[16 + 32 + 7] = 2 << 6; /* element 231 (h1 j3 l7) = 2 */
    CHECK_BLOCK(QTYPE_Q2_K, b, 85, 2.25f, 80, -0.75f, 231, 14.75f, 0, 0.0f);

    /* Q3_K: hmask@0, qs@32, scales@96, d@108; scale 5 = 3 and scale 13 = -5, the rest 0. */
    memset(b, 0, sizeof(b));
    put16(b, 108, 0x3800);
    memset(b + 96 + 8, 0xAA, 4); /* high 2 bits = 2 -> biased 32 -> scale 0 */
    b[96 + 5] = 0xB3;            /* scale 5 low4 = 3, scale 13 low4 = 11 */
    b[96 + 9] = 0x6A;            /* scale 5 high2 = 2 (35 -> 3), scale 13 high2 = 1 (27 -> -5) */
    b[32 + 19] = 1 << 4;         /* element 83 (h0 j2 l19): low2 = 1 */
    b[19] = 1 << 2;              /* hmask[19] bit 4h+j = 2 set -> q = 1 */
    b[32 + 20] = 3 << 4;         /* element 84: low2 = 3, no hbit -> q = -1 */
    b[32 + 32 + 18] = 2 << 4;    /* element 210 (h1 j2 l18): low2 = 2 */
    b[18] = 1 << 6;              /* hmask[18] bit 6 -> q = 2 */
    CHECK_BLOCK(QTYPE_Q3_K, b, 83, 1.5f, 84, -1.5f, 210, -5.0f, 211, 10.0f, 0, 0.0f);
}

static void test_hand_q4_to_q8(void)
{
    uint8_t b[292];

    /* Q4_K: d@0, dmin@2, scales@4, qs@16; sub-block 0: sc 1, 1: sc 3 m 2, 6: sc 37 m 50. */
    memset(b, 0, sizeof(b));
    put16(b, 0, 0x3800);
    put16(b, 2, 0x3400);
    b[4 + 0] = 1;
    b[4 + 1] = 3;
    b[4 + 5] = 2;
    b[4 + 2] = 0x80;  /* top 2 bits of sc6 (37 >> 4 = 2) */
    b[4 + 6] = 0xC0;  /* top 2 bits of m6 (50 >> 4 = 3) */
    b[4 + 10] = 0x25; /* low 4 bits: sc6 5, m6 2 */
    b[16 + 8] = 0x79; /* element 8 low = 9, element 40 high = 7 */
    b[16 + 104] = 4;  /* element 200 (chunk 3, low) = 4 */
    CHECK_BLOCK(QTYPE_Q4_K, b, 8, 4.5f, 40, 10.0f, 200, 61.5f, 232, 0.0f);

    /* Q5_K: same scales, qh@16, qs@48; fifth bit of element 64c+32hi+l is qh[l] bit 2c+hi. */
    memmove(b + 48, b + 16, 128);
    memset(b + 16, 0, 32);
    b[16 + 8] = 0x42; /* qh[8]: bit 1 (element 40), bit 6 (element 200) */
    CHECK_BLOCK(QTYPE_Q5_K, b, 8, 4.5f, 40, 34.0f, 200, 357.5f);

    /* Q6_K: ql@0, qh@128, scales@192 (int8), d@208. */
    memset(b, 0, sizeof(b));
    put16(b, 208, 0x3800);
    b[192 + 2] = (uint8_t)-3;
    b[192 + 9] = 5;
    b[192 + 15] = 2;
    b[40] = 0x05;           /* element 40 (h0 t1 l8): low 5 */
    b[128 + 8] = 2 << 2;    /* ... high 2 -> q = 37 - 32 = 5 */
    b[88] = 0x0F;           /* element 152 (h1 t0 l24): low 15 */
    b[128 + 56] = 3;        /* ... high 3 -> q = 31 */
    b[122] = 0x0A;          /* element 250 (h1 t3 l26): high nibble 0, q = -32 */
    b[128 + 58] = 1 << 4;   /* element 218 (h1 t2 l26): high 1; low = ql[90] >> 4 = 0 */
    b[192 + 13] = 1;        /* ... in group 13: q = -16 */
    CHECK_BLOCK(QTYPE_Q6_K, b, 40, -7.5f, 152, 77.5f, 250, -32.0f, 218, -8.0f);

    /* Q8_K: d f32@0, qs@4, bsums@260 (ignored by dequantization). */
    memset(b, 0, sizeof(b));
    float d = 0.25f;
    memcpy(b, &d, 4);
    b[4] = (uint8_t)-8;
    b[4 + 255] = 100;
    put16(b, 260, 0x7fff);
    CHECK_BLOCK(QTYPE_Q8_K, b, 0, -2.0f, 255, 25.0f, 1, 0.0f);
}

/* Activation quantizers must match ggml's exactly: known inputs, known bytes. */
static void test_q8_semantics(void)
{
    float x[QK];
    struct blk_q8_0 q8;
    struct blk_q8_1 q81;

    memset(x, 0, sizeof(x));
    x[0] = 127.0f; /* amax 127 -> d 1 */
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = 0.49f;
    quantize_q8_0_ref(x, &q8, QK);
    ok(q8.d == 0x3c00 && q8.qs[0] == 127 && q8.qs[1] == 3 && q8.qs[2] == -3 && q8.qs[3] == 0,
       "q8_0 weights: d = amax/127, ties round away from zero (%d %d %d)", q8.qs[1], q8.qs[2],
       q8.qs[3]);
    quantize_q8_0_act_ref(x, &q8, QK);
    ok(q8.d == 0x3c00 && q8.qs[0] == 127 && q8.qs[1] == 2 && q8.qs[2] == -2 && q8.qs[3] == 0,
       "q8_0 activations: ties round to even as ggml's x86 quantizer (%d %d %d)", q8.qs[1],
       q8.qs[2], q8.qs[3]);
    ok(quant_traits_get(QTYPE_Q8_0)->from_f32 != quantize_q8_0_ref,
       "q8_0 traits quantize activations with the activation quantizer");
    quantize_q8_1_ref(x, &q81, QK);
    ok(q81.d == 0x3c00 && q81.s == fp32_to_fp16(127.0f) && q81.qs[1] == 2,
       "q8_1: s = d * sum(q) = 127");

    /* Q8_1's s comes from the float d, not the stored fp16 one (checked over random blocks). */
    int bad = 0, differ = 0;
    for (int r = 0; r < 2000; r++) {
        for (int e = 0; e < QK; e++)
            x[e] = rng_gauss() * 3.0f + 0.7f;
        quantize_q8_1_ref(x, &q81, QK);
        float amax = 0;
        int sum = 0;
        for (int e = 0; e < QK; e++) {
            amax = fmaxf(amax, fabsf(x[e]));
            sum += q81.qs[e];
        }
        const float d = amax / 127;
        if (q81.s != fp32_to_fp16(sum * d) || q81.d != fp32_to_fp16(d))
            bad++;
        if (fp32_to_fp16(sum * d) != fp32_to_fp16(sum * fp16_to_fp32(q81.d)))
            differ++;
    }
    ok(bad == 0, "q8_1: s == fp16(sum * float d) on 2000 random blocks (%d bad; %d where the "
                 "fp16 d would differ)", bad, differ);

}

static void test_q4_0_q8_k_semantics(void)
{
    float x[QK_K];
    struct blk_q4_0 q4;

    /* Q4_0: the largest magnitude (here -4) maps to q 0 with d = max / -8 = 0.5. */
    memset(x, 0, sizeof(x));
    x[0] = -4.0f;
    x[1] = 4.0f;   /* 8 + 8.5 -> 16, clamped to 15 */
    x[2] = 0.26f;  /* 0.52 + 8.5 -> 9 */
    x[17] = -0.3f; /* -0.6 + 8.5 -> 7 */
    quantize_q4_0_ref(x, &q4, QK);
    ok(q4.d == 0x3800 && q4.qs[0] == 0x80 && q4.qs[1] == 0x7F && q4.qs[2] == 0x89 &&
           q4.qs[3] == 0x88,
       "q4_0: d = max/-8, q = min(15, x/d + 8.5), low/high nibble order (%02x %02x %02x)",
       q4.qs[0], q4.qs[1], q4.qs[2]);
    ok(q4.qs[1] >> 4 == 7, "q4_0: element 17 goes to the high nibble of qs[1]");

    /* Q8_K: the signed max maps to -127, d = 1/iscale in f32, bsums are 16-sums. */
    struct blk_q8_k k8;
    for (int e = 0; e < QK_K; e++)
        x[e] = rng_gauss();
    x[77] = 9.0f;
    quantize_q8_k_ref(x, &k8, QK_K);
    ok(k8.qs[77] == -127 && k8.d == 1.0f / (-127.0f / 9.0f), "q8_K: max 9 -> q -127, d = -9/127");
    int bsum_bad = 0;
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int k = 0; k < 16; k++)
            s += k8.qs[16 * g + k];
        bsum_bad += s != k8.bsums[g];
    }
    ok(bsum_bad == 0, "q8_K: bsums[g] = sum of qs[16g..16g+15] (%d bad)", bsum_bad);
    memset(&k8, 0x5a, sizeof(k8));
    memset(x, 0, sizeof(x));
    quantize_q8_k_ref(x, &k8, QK_K);
    int nz = k8.d != 0.0f;
    for (int e = 0; e < QK_K; e++)
        nz += k8.qs[e] != 0;
    for (int g = 0; g < 16; g++)
        nz += k8.bsums[g] != 0;
    ok(nz == 0, "q8_K: an all-zero block gives d 0, zero quants and zero bsums");
}

// ---- round trips on random data ------------------------------------------------------------

/*
 * rms: bound on RMS(error) / RMS(x) over the row; maxe: bound on max|error| of a block relative
 * to the block's span max(max|x|, max - min).  Both are about 10% above what the quantizers
 * reach on this seed; the legacy bounds are close to the analytic ones (half a step, plus the
 * fp16 rounding of d, which is coarser when d is subnormal).
 */
struct rt_bound {
    uint32_t id;
    double rms, maxe;
};

static const struct rt_bound rt_bounds[] = {
    { QTYPE_F32, 0.0, 0.0 },       { QTYPE_F16, 5e-4, 1e-3 },     { QTYPE_BF16, 3e-3, 4e-3 },
    { QTYPE_Q4_0, 0.11, 0.126 },   { QTYPE_Q4_1, 0.085, 0.036 },  { QTYPE_Q5_0, 0.055, 0.063 },
    { QTYPE_Q5_1, 0.043, 0.018 },  { QTYPE_Q8_0, 0.0075, 0.0055 }, { QTYPE_Q8_1, 0.0075, 0.0055 },
    { QTYPE_Q2_K, 0.40, 0.34 },    { QTYPE_Q3_K, 0.22, 0.17 },    { QTYPE_Q4_K, 0.095, 0.09 },
    { QTYPE_Q5_K, 0.047, 0.045 },  { QTYPE_Q6_K, 0.024, 0.03 },   { QTYPE_Q8_K, 0.0098, 0.0045 },
};

/* Gaussian rows, with an offset and a per-32 magnitude that varies, so mins and scales work. */
static void fill_weights(float *x, int n)
{
    for (int i = 0; i < n; i++) {
        const float scale = 0.02f * (1.0f + (float)((i / 32) % 5));
        x[i] = rng_gauss() * scale + ((i / 256) % 3 == 1 ? 0.03f : 0.0f);
    }
}

static void round_trip(const struct ref_kernels *r, const struct rt_bound *bd, const float *x,
                       int n, const char *what)
{
    const struct quant_traits *t = quant_traits_get(r->id);
    static uint8_t q[4096 * 4];
    static float y[4096];
    r->quantize(x, q, n);
    r->dequant(q, y, n);
    const int blk = t->blck == 1 ? 32 : t->blck;
    double se = 0, sx = 0, worst = 0;
    int finite = 1;
    for (int b = 0; b < n / blk; b++) {
        float amax = 0, emax = 0, lo = x[b * blk], hi = x[b * blk];
        for (int i = b * blk; i < (b + 1) * blk; i++) {
            amax = fmaxf(amax, fabsf(x[i]));
            lo = fminf(lo, x[i]);
            hi = fmaxf(hi, x[i]);
            emax = fmaxf(emax, fabsf(y[i] - x[i]));
            se += (double)(y[i] - x[i]) * (y[i] - x[i]);
            sx += (double)x[i] * x[i];
            finite &= isfinite(y[i]);
        }
        const float span = fmaxf(amax, hi - lo);
        const double rel = span > 0 ? emax / span : emax;
        if (rel > worst)
            worst = rel;
    }
    const double rms = sx > 0 ? sqrt(se / sx) : sqrt(se);
    ok(finite && rms <= bd->rms && worst <= bd->maxe,
       "%s round trip (%s): rms rel err %.4g <= %.4g, block max err %.4g <= %.4g", t->name,
       what, rms, bd->rms, worst, bd->maxe);
}

static void test_round_trip(void)
{
    static float x[4096];
    fill_weights(x, 4096);
    for (int i = 0; i < N_REFS; i++)
        round_trip(&refs[i], &rt_bounds[i], x, 4096, "gaussian");

    /* Awkward blocks: zeros, constants, all-negative, one outlier, tiny magnitudes. */
    for (int i = 0; i < 1024; i++) {
        const int blk = i / 256;
        const float g = rng_gauss();
        x[i] = blk == 0 ? (i < 128 ? 0.0f : 0.5f)
             : blk == 1 ? -1.0f - fabsf(g)
             : blk == 2 ? (i % 256 == 100 ? 50.0f : g)
                        : g * 1e-3f;
    }
    for (int i = 0; i < N_REFS; i++) {
        struct rt_bound loose = rt_bounds[i];
        loose.rms *= 4; /* the outlier block spends most levels on one value */
        round_trip(&refs[i], &loose, x, 1024, "edge blocks");
    }

    /* A zero row must come back as exact zeros (no NaN from 0/0). */
    for (int i = 0; i < 1024; i++)
        x[i] = 0.0f;
    for (int i = 0; i < N_REFS; i++) {
        static uint8_t q[4096];
        static float y[1024];
        memset(y, 0x7f, sizeof(y));
        refs[i].quantize(x, q, 1024);
        refs[i].dequant(q, y, 1024);
        int bad = 0;
        for (int e = 0; e < 1024; e++)
            bad += y[e] != 0.0f;
        ok(bad == 0, "%s: zero row round-trips to zeros", quant_traits_get(refs[i].id)->name);
    }
}

// ---- reference dot products vs dequantized operands ----------------------------------------

static void test_vec_dot(void)
{
    enum { N = 1024 };
    static float w[N], a[N], wd[N], ad[N];
    static uint8_t wq[N * 4], aq[N * 4];
    for (int i = 0; i < N_REFS; i++) {
        const struct ref_kernels *r = &refs[i];
        const struct ref_kernels *act = ref_find(r->act);
        const struct quant_traits *t = quant_traits_get(r->id);
        double worst = 0;
        int pass = 1;
        for (int rep = 0; rep < 8; rep++) {
            fill_weights(w, N);
            for (int e = 0; e < N; e++)
                a[e] = rng_gauss() + (rep & 1 ? 0.5f : 0.0f); /* offset: min terms matter */
            r->quantize(w, wq, N);
            r->dequant(wq, wd, N);
            act->quantize(a, aq, N);
            act->dequant(aq, ad, N);
            double want = 0, mag = 0;
            for (int e = 0; e < N; e++) {
                want += (double)wd[e] * ad[e];
                mag += fabs((double)wd[e] * ad[e]);
            }
            /* Q8_1's s = fp16(d * sum q) is rounded on its own: allow for it per block. */
            double s_slack = 0;
            if (r->id == QTYPE_Q4_1 || r->id == QTYPE_Q5_1) {
                for (int b = 0; b < N / QK; b++) {
                    const uint16_t *wb = (const uint16_t *)(wq + (size_t)b * t->size);
                    const struct blk_q8_1 *ab = (const struct blk_q8_1 *)aq + b;
                    s_slack += fabs(fp16_to_fp32(wb[1]) * fp16_to_fp32(ab->s)) * 1e-3;
                }
            }
            float got = 0;
            r->dot(N, &got, wq, aq);
            const double err = fabs(got - want);
            const double tol = 2e-6 * mag + s_slack + 1e-30;
            if (err / tol > worst)
                worst = err / tol;
            pass &= err <= tol;
        }
        ok(pass, "%s vec_dot_ref matches dequant·dequant (worst err/tol %.3g)", t->name, worst);
    }
}

/* Linear in the activation: a dot with an all-zero activation row is exactly 0. */
static void test_vec_dot_zero(void)
{
    enum { N = 1024 };
    static float w[N], a[N];
    static uint8_t wq[N * 4], aq[N * 4];
    for (int i = 0; i < N_REFS; i++) {
        memset(a, 0, sizeof(a));
        fill_weights(w, N);
        refs[i].quantize(w, wq, N);
        ref_find(refs[i].act)->quantize(a, aq, N);
        float got = 1;
        refs[i].dot(N, &got, wq, aq);
        ok(got == 0.0f, "%s vec_dot_ref with zero activations = 0",
           quant_traits_get(refs[i].id)->name);
    }
}

// ---- traits table --------------------------------------------------------------------------

struct expect_type {
    uint32_t id;
    const char *name;
    int blck, size, is_quant, supported;
};

static const struct expect_type expected[] = {
    { 0, "f32", 1, 4, 0, 1 },          { 1, "f16", 1, 2, 0, 1 },
    { 2, "q4_0", 32, 18, 1, 1 },       { 3, "q4_1", 32, 20, 1, 1 },
    { 6, "q5_0", 32, 22, 1, 1 },       { 7, "q5_1", 32, 24, 1, 1 },
    { 8, "q8_0", 32, 34, 1, 1 },       { 9, "q8_1", 32, 36, 1, 1 },
    { 10, "q2_K", 256, 84, 1, 1 },     { 11, "q3_K", 256, 110, 1, 1 },
    { 12, "q4_K", 256, 144, 1, 1 },    { 13, "q5_K", 256, 176, 1, 1 },
    { 14, "q6_K", 256, 210, 1, 1 },    { 15, "q8_K", 256, 292, 1, 1 },
    { 16, "iq2_xxs", 256, 66, 1, 0 },  { 17, "iq2_xs", 256, 74, 1, 0 },
    { 18, "iq3_xxs", 256, 98, 1, 0 },  { 19, "iq1_s", 256, 50, 1, 0 },
    { 20, "iq4_nl", 32, 18, 1, 0 },    { 21, "iq3_s", 256, 110, 1, 0 },
    { 22, "iq2_s", 256, 82, 1, 0 },    { 23, "iq4_xs", 256, 136, 1, 0 },
    { 24, "i8", 1, 1, 0, 0 },          { 25, "i16", 1, 2, 0, 0 },
    { 26, "i32", 1, 4, 0, 0 },         { 27, "i64", 1, 8, 0, 0 },
    { 28, "f64", 1, 8, 0, 0 },         { 29, "iq1_m", 256, 56, 1, 0 },
    { 30, "bf16", 1, 2, 0, 1 },        { 34, "tq1_0", 256, 54, 1, 0 },
    { 35, "tq2_0", 256, 66, 1, 0 },    { 39, "mxfp4", 32, 17, 1, 0 },
    { 40, "nvfp4", 64, 36, 1, 0 },     { 41, "q1_0", 128, 18, 1, 0 },
    { 42, "q2_0", 64, 18, 1, 0 },
};

static void test_traits(void)
{
    const int n_exp = (int)(sizeof(expected) / sizeof(expected[0]));
    for (int i = 0; i < n_exp; i++) {
        const struct expect_type *x = &expected[i];
        const struct quant_traits *t = quant_traits_get(x->id);
        ok(t && strcmp(t->name, x->name) == 0 && t->blck == x->blck && t->size == x->size &&
               t->is_quant == x->is_quant && t->supported == x->supported,
           "traits %u: %s, %d elements in %d bytes, quant %d, supported %d", x->id, x->name,
           x->blck, x->size, x->is_quant, x->supported);
    }
    static const uint32_t gone[] = { 4, 5, 31, 32, 33, 36, 37, 38, 43, 44, 255, 0xffffffffu };
    for (int i = 0; i < (int)(sizeof(gone) / sizeof(gone[0])); i++)
        ok(quant_traits_get(gone[i]) == NULL, "traits %u: removed or unknown -> NULL", gone[i]);

    for (int i = 0; i < N_REFS; i++) {
        const struct quant_traits *t = quant_traits_get(refs[i].id);
        ok(t && t->to_f32 && t->from_f32 && t->vec_dot && t->vec_dot_type == refs[i].act,
           "traits %s: kernels set, vec_dot_type %s", t ? t->name : "?",
           quant_traits_get(refs[i].act)->name);
    }
    ok(quant_row_size(QTYPE_Q4_K, 4096) == 2304, "row size q4_K x 4096 = 2304");
    ok(quant_row_size(QTYPE_Q8_0, 4096) == 4352, "row size q8_0 x 4096 = 4352");
    ok(quant_row_size(QTYPE_F32, 10) == 40 && quant_row_size(QTYPE_BF16, 3) == 6,
       "row size f32 x 10 = 40, bf16 x 3 = 6");
    ok(quant_row_size(23, 512) == 272 && quant_row_size(41, 128) == 18,
       "row size of recognised-only types (iq4_xs, q1_0)");
    ok(quant_row_size(QTYPE_Q8_0, 33) == 0 && quant_row_size(QTYPE_Q6_K, 128) == 0,
       "row size 0 when n is not a multiple of the block");
    ok(quant_row_size(4, 32) == 0 && quant_row_size(99, 32) == 0, "row size 0 for unknown ids");
    ok(quant_row_size(QTYPE_Q8_K, 0) == 0, "row size of an empty row is 0");

    const char *simd = quant_simd_name();
    ok(simd && *simd, "quant_simd_name: %s", simd ? simd : "(null)");
    quant_init(); /* idempotent */
    ok(quant_simd_name() == simd, "quant_init is idempotent");
}

int main(void)
{
    quant_init();
    test_fp16();
    test_bf16();
    test_hand_float();
    test_hand_legacy();
    test_hand_q2_q3();
    test_hand_q4_to_q8();
    test_q8_semantics();
    test_q4_0_q8_k_semantics();
    test_round_trip();
    test_vec_dot();
    test_vec_dot_zero();
    test_traits();
    return done_testing();
}
