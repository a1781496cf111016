/*
 * test_quant_simd.c — the SIMD kernels of quant_x86.c, quant_x86_k.c and quant_x86_deq.c
 * against the scalar references of quant_ref.c / quant_ref_k.c, at every SIMD level this CPU
 * runs (the others are skipped, not failed).
 *
 * Dot products must equal the reference up to float summation order: the allowed error is a
 * few ulps times sqrt(n/32) times the sum of |products| (computed in double from the dequantized
 * operands, with scale and min terms counted apart since each is rounded on its own), and on
 * data whose every intermediate is exactly representable they must be bit-identical.  Each
 * kernel runs on one block, odd and even block counts and long rows, with random data, extreme
 * and subnormal fp16 scales, zero blocks among random ones, and zero activations.  The
 * activation quantizers must match their references byte for byte, including the rounding of
 * halfway cases (half-to-even for Q8_0/Q8_1/Q8_K, as ggml's x86 quantizers) and which element sets Q8_K's sign.
 *
 * The dequantizers (to_f32) must equal their references bit for bit on random blocks.
 *
 * Built with -DQUANT_SIMD_BENCH, main() instead measures weight-streaming throughput (GB/s) of
 * the dots over a 64 MiB weight buffer, single thread, for every level and the reference.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "quant.h"
#include "quant_ref.h"
#include "tap.h"

/* quant_x86.c's test hook: install one level's kernels into table, NULL if the CPU lacks it. */
const char *quant_x86_install_level(int level, struct quant_traits *table, int n);

#define NLEVELS 3
static const char *const level_names[NLEVELS] = { "scalar", "avx2", "avx512vnni" };

// ---- random data -----------------------------------------------------------------------------

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [-1, 1). */
static float rng_float(uint64_t *s)
{
    return (float)((rng_next(s) >> 40) * (1.0 / 8388608.0) - 1.0);
}

static int rng_int(uint64_t *s, int lo, int hi)
{
    return lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

// ---- the kernels under test ------------------------------------------------------------------

enum mode { MODE_RANDOM, MODE_ZERO_BLOCKS, MODE_EXTREME, MODE_ZERO_ACT, MODE_EXACT, NMODES };
static const char *const mode_names[NMODES] = { "random", "zero blocks", "extreme scales",
                                                "zero activations", "exact" };

typedef void (*dot_fn)(int, float *, const void *, const void *);
typedef void (*conv_fn)(const void *, float *, int64_t);
typedef void (*quant_fn)(const float *, void *, int64_t);

struct kernel {
    enum qtype id;
    const char *name;
    int blck, wsize;    /* weight block */
    int ablck, asize;   /* activation block (F32 activations: 1, 4) */
    dot_fn dot_ref;
    conv_fn wdeq, adeq; /* adeq NULL: F32 activations */
    quant_fn aquant;
    int doff, moff;     /* byte offsets of the fp16 scale and min in a weight block, -1: none */
};

static const struct kernel kernels[] = {
    { QTYPE_F32, "f32", 1, 4, 1, 4, vec_dot_f32_ref, dequant_f32_ref, NULL, NULL, -1, -1 },
    { QTYPE_F16, "f16", 1, 2, 1, 4, vec_dot_f16_ref, dequant_f16_ref, NULL, NULL, -1, -1 },
    { QTYPE_BF16, "bf16", 1, 2, 1, 4, vec_dot_bf16_ref, dequant_bf16_ref, NULL, NULL, -1, -1 },
    { QTYPE_Q4_0, "q4_0", QK, 18, QK, 34, vec_dot_q4_0_ref, dequant_q4_0_ref, dequant_q8_0_ref,
      quantize_q8_0_act_ref, 0, -1 },
    { QTYPE_Q4_1, "q4_1", QK, 20, QK, 36, vec_dot_q4_1_ref, dequant_q4_1_ref, dequant_q8_1_ref,
      quantize_q8_1_ref, 0, 2 },
    { QTYPE_Q5_0, "q5_0", QK, 22, QK, 34, vec_dot_q5_0_ref, dequant_q5_0_ref, dequant_q8_0_ref,
      quantize_q8_0_act_ref, 0, -1 },
    { QTYPE_Q5_1, "q5_1", QK, 24, QK, 36, vec_dot_q5_1_ref, dequant_q5_1_ref, dequant_q8_1_ref,
      quantize_q8_1_ref, 0, 2 },
    { QTYPE_Q8_0, "q8_0", QK, 34, QK, 34, vec_dot_q8_0_ref, dequant_q8_0_ref, dequant_q8_0_ref,
      quantize_q8_0_act_ref, 0, -1 },
    { QTYPE_Q2_K, "q2_K", QK_K, 84, QK_K, 292, vec_dot_q2_k_ref, dequant_q2_k_ref,
      dequant_q8_k_ref, quantize_q8_k_ref, 80, 82 },
    { QTYPE_Q3_K, "q3_K", QK_K, 110, QK_K, 292, vec_dot_q3_k_ref, dequant_q3_k_ref,
      dequant_q8_k_ref, quantize_q8_k_ref, 108, -1 },
    { QTYPE_Q4_K, "q4_K", QK_K, 144, QK_K, 292, vec_dot_q4_k_ref, dequant_q4_k_ref,
      dequant_q8_k_ref, quantize_q8_k_ref, 0, 2 },
    { QTYPE_Q5_K, "q5_K", QK_K, 176, QK_K, 292, vec_dot_q5_k_ref, dequant_q5_k_ref,
      dequant_q8_k_ref, quantize_q8_k_ref, 0, 2 },
    { QTYPE_Q6_K, "q6_K", QK_K, 210, QK_K, 292, vec_dot_q6_k_ref, dequant_q6_k_ref,
      dequant_q8_k_ref, quantize_q8_k_ref, 208, -1 },
};
#define NKERNELS ((int)(sizeof(kernels) / sizeof(kernels[0])))

/* A float weight value for the float types in a given mode. */
static float float_weight(enum mode mode, uint64_t *rng, int i)
{
    switch (mode) {
    case MODE_EXACT:
        return (float)rng_int(rng, -8, 8);
    case MODE_ZERO_BLOCKS:
        return i % 3 == 1 ? 0.0f : rng_float(rng);
    case MODE_EXTREME:
        /* fp16's largest finite values and its subnormals, side by side */
        return i % 2 ? 60000.0f * rng_float(rng) : 5.9604645e-8f * (float)rng_int(rng, -1023, 1023);
    default:
        return rng_float(rng);
    }
}

/* An fp16 block scale: random, exactly representable, or extreme (max / subnormal). */
static uint16_t scale16(enum mode mode, uint64_t *rng, int blk)
{
    switch (mode) {
    case MODE_EXACT:
        return fp32_to_fp16(blk % 2 ? 0.5f : 1.0f);
    case MODE_EXTREME:
        switch (blk % 4) {
        case 0: return 0x7bff;                    /* 65504 */
        case 1: return 0x0001;                    /* 2^-24, subnormal */
        case 2: return 0xfbff;                    /* -65504 */
        default: return (uint16_t)rng_int(rng, 1, 0x3ff); /* subnormal */
        }
    default:
        return fp32_to_fp16(rng_float(rng) * 0.01f);
    }
}

/* Weights of a row of nblk blocks (float types: nblk elements). */
static void gen_weights(const struct kernel *k, uint8_t *w, int nblk, enum mode mode,
                        uint64_t *rng)
{
    if (k->blck == 1) {
        for (int i = 0; i < nblk; i++) {
            const float v = float_weight(mode, rng, i);
            if (k->id == QTYPE_F32)
                memcpy(w + 4 * i, &v, 4);
            else
                put16(w + 2 * i, k->id == QTYPE_F16 ? fp32_to_fp16(v) : fp32_to_bf16(v));
        }
        return;
    }
    for (int b = 0; b < nblk; b++) {
        uint8_t *blk = w + (size_t)b * k->wsize;
        if (mode == MODE_ZERO_BLOCKS && b % 3 == 1) {
            memset(blk, 0, k->wsize);
            continue;
        }
        for (int j = 0; j < k->wsize; j++)
            blk[j] = (uint8_t)rng_next(rng);
        if (k->id == QTYPE_Q6_K && mode == MODE_EXACT) /* keep integer sums below 2^24 */
            for (int g = 0; g < 16; g++)
                blk[192 + g] = (uint8_t)rng_int(rng, -64, 63);
        put16(blk + k->doff, scale16(mode, rng, b));
        /* a legacy min is a value (about -8 d), a K-quant dmin scales 6-bit mins like d */
        if (k->moff >= 0) {
            const int legacy_random = mode == MODE_RANDOM && k->blck == QK;
            put16(blk + k->moff, legacy_random ? fp32_to_fp16(rng_float(rng) * 0.08f)
                                               : scale16(mode, rng, b + 1));
        }
    }
}

/*
 * Activations for a row of n elements in the kernel's activation format.  Exact mode builds
 * quantized blocks directly (unit scales, quants in -4..4); the others quantize floats with the
 * reference quantizer, as the engine does.
 */
static void gen_acts(const struct kernel *k, uint8_t *a, int n, enum mode mode, uint64_t *rng,
                     float *tmp)
{
    for (int i = 0; i < n; i++)
        tmp[i] = mode == MODE_ZERO_ACT ? 0.0f :
                 mode == MODE_EXACT && !k->aquant ? (float)rng_int(rng, -8, 8) :
                 rng_float(rng) * (i % 7 == 0 ? 3.0f : 1.0f);
    if (!k->aquant) {
        memcpy(a, tmp, (size_t)n * 4);
        return;
    }
    if (mode != MODE_EXACT) {
        k->aquant(tmp, a, n);
        return;
    }
    for (int b = 0; b < n / k->ablck; b++) {
        uint8_t *blk = a + (size_t)b * k->asize;
        if (k->ablck == QK_K) {
            struct blk_q8_k *q = (struct blk_q8_k *)(void *)blk;
            q->d = b % 2 ? 0.25f : 1.0f;
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int e = 0; e < 16; e++)
                    sum += q->qs[16 * g + e] = (int8_t)rng_int(rng, -4, 4);
                q->bsums[g] = (int16_t)sum;
            }
        } else {
            /* Q8_0: d, qs[32]; Q8_1: d, s, qs[32] */
            const int qoff = k->asize - QK;
            int sum = 0;
            for (int e = 0; e < QK; e++) {
                const int8_t v = (int8_t)rng_int(rng, -4, 4);
                blk[qoff + e] = (uint8_t)v;
                sum += v;
            }
            put16(blk, fp32_to_fp16(1.0f));
            if (qoff == 4)
                put16(blk + 2, fp32_to_fp16((float)sum));
        }
    }
}

/*
 * Sum of |w_i * a_i| over the row in double: the scale of the rounding errors.  For types with a
 * min the scale and min terms are rounded separately by both sides, so each counts on its own.
 */
static double abs_dot_scale(const struct kernel *k, const uint8_t *w, const uint8_t *a, int n,
                            float *wf, float *af, uint8_t *wtmp)
{
    const size_t wbytes = (size_t)(n / k->blck) * k->wsize;
    if (k->adeq)
        k->adeq(a, af, n);
    else
        memcpy(af, a, (size_t)n * 4);
    double total = 0.0;
    for (int part = 0; part < (k->moff >= 0 ? 2 : 1); part++) {
        memcpy(wtmp, w, wbytes);
        if (k->moff >= 0)
            for (int b = 0; b < n / k->blck; b++)
                put16(wtmp + (size_t)b * k->wsize + (part ? k->doff : k->moff), 0);
        k->wdeq(wtmp, wf, n);
        for (int i = 0; i < n; i++)
            total += fabs((double)wf[i] * af[i]);
    }
    return total;
}

// ---- dot product checks ----------------------------------------------------------------------

#define MAXN (131 * QK_K)

struct buffers {
    uint8_t *w, *a, *wtmp;
    float *wf, *af, *tmp;
};

/* One check: returns 1 if the SIMD result is within tolerance (bit-exact in exact mode). */
static int check_dot(const struct kernel *k, dot_fn simd, int n, enum mode mode, uint64_t *rng,
                     struct buffers *bf, char *why, size_t whylen)
{
    gen_weights(k, bf->w, n / k->blck, mode, rng);
    gen_acts(k, bf->a, n, mode, rng, bf->tmp);
    float ref = NAN, got = NAN;
    k->dot_ref(n, &ref, bf->w, bf->a);
    /* exact-size copies, so that a sanitizer build sees any read past the end of a row */
    const size_t wbytes = (size_t)(n / k->blck) * k->wsize;
    const size_t abytes = (size_t)(n / k->ablck) * k->asize;
    uint8_t *w = malloc(wbytes), *a = malloc(abytes);
    if (!w || !a) {
        free(w);
        free(a);
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    memcpy(w, bf->w, wbytes);
    memcpy(a, bf->a, abytes);
    simd(n, &got, w, a);
    free(w);
    free(a);
    if (mode == MODE_EXACT) {
        if (got == ref)
            return 1;
        snprintf(why, whylen, "n=%d: got %.9g, ref %.9g (must be identical)", n, got, ref);
        return 0;
    }
    const double scale = abs_dot_scale(k, bf->w, bf->a, n, bf->wf, bf->af, bf->wtmp);
    /*
     * Rounding errors of the two summation orders grow like a random walk over the ~n/32 float
     * additions; the observed worst case is below 1 ulp of the scale, this allows 17 or more.
     */
    const double tol = 8.0 * FLT_EPSILON * sqrt(n / 32.0 + 4.0) * scale;
    if (isfinite(got) && fabs((double)got - ref) <= tol)
        return 1;
    snprintf(why, whylen, "n=%d: got %.9g, ref %.9g, |diff| %.3g > tol %.3g", n, got, ref,
             fabs((double)got - ref), tol);
    return 0;
}

static void test_dots(int level, const struct quant_traits *tab, struct buffers *bf)
{
    static const int nblocks[] = { 1, 2, 3, 5, 16, 131 };
    static const int nfloat[] = { 1, 7, 8, 15, 16, 17, 31, 33, 64, 100, 1000, 4099 };
    for (int ki = 0; ki < NKERNELS; ki++) {
        const struct kernel *k = &kernels[ki];
        const dot_fn simd = tab[k->id].vec_dot;
        if (!simd) {
            skip("no kernel installed");
            continue;
        }
        for (int mode = 0; mode < NMODES; mode++) {
            uint64_t rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(ki * 131 + mode * 7 + level);
            char why[200] = "";
            int pass = 1;
            const int nn = k->blck == 1 ? (int)(sizeof(nfloat) / sizeof(nfloat[0])) :
                                          (int)(sizeof(nblocks) / sizeof(nblocks[0]));
            for (int t = 0; t < nn && pass; t++) {
                const int n = k->blck == 1 ? nfloat[t] : nblocks[t] * k->blck;
                if (mode == MODE_EXACT && n > 1024 && k->blck > 1)
                    continue; /* keeps every integer sum below 2^24 */
                for (int rep = 0; rep < 3 && pass; rep++)
                    pass = check_dot(k, simd, n, (enum mode)mode, &rng, bf, why, sizeof(why));
            }
            if (!ok(pass, "%s %s: %s", level_names[level], k->name, mode_names[mode]))
                diag("%s", why);
        }
    }
}

// ---- quantizer checks ------------------------------------------------------------------------

enum qcase { QC_RANDOM, QC_TIES, QC_SIGN, QC_SPARSE, QC_MAGNITUDE, NQCASES };
static const char *const qcase_names[NQCASES] = { "random", "halfway ties", "sign of the max",
                                                  "zero and one-hot blocks", "tiny and huge" };

/*
 * Inputs that exercise the rounding and max rules.  Ties: the block's max is 127 (Q8_0 scale 1)
 * or -127 (Q8_K iscale 1), so the other values k + 0.5 land exactly halfway.  Sign: +m and -m
 * both present, in either order, so the first of them decides the sign of Q8_K's scale.
 */
static void gen_floats(float *x, int n, int blck, enum qcase qc, uint64_t *rng)
{
    for (int i = 0; i < n; i++)
        x[i] = rng_float(rng);
    for (int b = 0; b < n / blck; b++) {
        float *v = x + (size_t)b * blck;
        switch (qc) {
        case QC_TIES:
            for (int e = 0; e < blck; e++)
                v[e] = (float)rng_int(rng, -126, 125) + 0.5f;
            v[rng_int(rng, 0, blck - 1)] = b % 2 ? 127.0f : -127.0f;
            break;
        case QC_SIGN: {
            const int i0 = rng_int(rng, 0, blck - 1);
            const int i1 = (i0 + 1 + rng_int(rng, 0, blck - 2)) % blck;
            v[i0] = b % 2 ? 1.5f : -1.5f;
            v[i1] = -v[i0];
            break;
        }
        case QC_SPARSE:
            for (int e = 0; e < blck; e++)
                v[e] = b % 3 == 0 ? (e % 2 ? 0.0f : -0.0f) : 0.0f;
            if (b % 3 == 1)
                v[rng_int(rng, 0, blck - 1)] = b % 2 ? 3.0f : -3.0f;
            if (b % 3 == 2)
                v[rng_int(rng, 0, blck - 1)] = 1e-3f;
            break;
        case QC_MAGNITUDE:
            for (int e = 0; e < blck; e++)
                v[e] *= b % 2 ? 1e-30f : 1e30f;
            break;
        default:
            break;
        }
    }
}

struct quantizer {
    enum qtype id;
    const char *name;
    int blck, size;
    quant_fn ref;
};

static const struct quantizer quantizers[] = {
    { QTYPE_Q8_0, "q8_0", QK, 34, quantize_q8_0_act_ref },
    { QTYPE_Q8_1, "q8_1", QK, 36, quantize_q8_1_ref },
    { QTYPE_Q8_K, "q8_K", QK_K, 292, quantize_q8_k_ref },
};

static void test_quantizers(int level, const struct quant_traits *tab, struct buffers *bf)
{
    for (int qi = 0; qi < 3; qi++) {
        const struct quantizer *q = &quantizers[qi];
        const quant_fn simd = tab[q->id].from_f32;
        if (!simd) {
            skip("no quantizer installed");
            continue;
        }
        for (int qc = 0; qc < NQCASES; qc++) {
            uint64_t rng = 0xD1B54A32D192ED03ULL ^ (uint64_t)(qi * 17 + qc * 5 + level);
            int pass = 1;
            char why[160] = "";
            for (int nb = 1; nb <= 64 && pass; nb = nb * 4 + 1) {
                const int n = nb * q->blck;
                const size_t bytes = (size_t)nb * q->size;
                gen_floats(bf->tmp, n, q->blck, (enum qcase)qc, &rng);
                /* different fill bytes: a field left unwritten by either side shows up */
                memset(bf->w, 0xA5, bytes);
                memset(bf->a, 0x5A, bytes);
                q->ref(bf->tmp, bf->w, n);
                /* exact-size input and output, for the sanitizers */
                float *in = malloc((size_t)n * sizeof(float));
                uint8_t *out = malloc(bytes);
                if (!in || !out) {
                    free(in);
                    free(out);
                    pass = 0;
                    snprintf(why, sizeof(why), "out of memory");
                    break;
                }
                memcpy(in, bf->tmp, (size_t)n * sizeof(float));
                memset(out, 0x5A, bytes);
                simd(in, out, n);
                memcpy(bf->a, out, bytes);
                free(in);
                free(out);
                for (size_t i = 0; i < bytes && pass; i++) {
                    if (bf->w[i] != bf->a[i]) {
                        pass = 0;
                        snprintf(why, sizeof(why), "n=%d: block %zu byte %zu: got %02x, ref %02x",
                                 n, i / q->size, i % q->size, bf->a[i], bf->w[i]);
                    }
                }
            }
            if (!ok(pass, "%s quantize %s: %s", level_names[level], q->name, qcase_names[qc]))
                diag("%s", why);
        }
    }
}

// ---- dequantizer checks ----------------------------------------------------------------------

/*
 * The SIMD to_f32 kernels must equal dequant_*_ref bit for bit (same float operations in the same
 * order, no FMA).  Blocks are random bytes with random finite fp16 scales (and mins): any sign,
 * normal, subnormal, zero and the largest finite ones.  Output goes to an exact-size buffer, one
 * float off 64-byte alignment on odd runs, followed by a canary that must survive.
 */
struct deq {
    enum qtype id;
    const char *name;
    int blck, size;
    conv_fn ref;
    int doff, moff; /* byte offsets of the fp16 scale and min, -1: none */
};

static const struct deq deqs[] = {
    { QTYPE_Q4_0, "q4_0", QK, 18, dequant_q4_0_ref, 0, -1 },
    { QTYPE_Q4_1, "q4_1", QK, 20, dequant_q4_1_ref, 0, 2 },
    { QTYPE_Q5_0, "q5_0", QK, 22, dequant_q5_0_ref, 0, -1 },
    { QTYPE_Q5_1, "q5_1", QK, 24, dequant_q5_1_ref, 0, 2 },
    { QTYPE_Q8_0, "q8_0", QK, 34, dequant_q8_0_ref, 0, -1 },
    { QTYPE_Q2_K, "q2_K", QK_K, 84, dequant_q2_k_ref, 80, 82 },
    { QTYPE_Q3_K, "q3_K", QK_K, 110, dequant_q3_k_ref, 108, -1 },
    { QTYPE_Q4_K, "q4_K", QK_K, 144, dequant_q4_k_ref, 0, 2 },
    { QTYPE_Q5_K, "q5_K", QK_K, 176, dequant_q5_k_ref, 0, 2 },
    { QTYPE_Q6_K, "q6_K", QK_K, 210, dequant_q6_k_ref, 208, -1 },
};
#define NDEQS ((int)(sizeof(deqs) / sizeof(deqs[0])))

/* A random finite fp16: either sign; mostly normal, often subnormal, sometimes 0 or extreme. */
static uint16_t rand_half(uint64_t *rng)
{
    const uint64_t r = rng_next(rng);
    const uint16_t sign = (uint16_t)(r >> 63 << 15);
    uint16_t h = (uint16_t)r;
    switch ((r >> 16) % 8) {
    case 0:
    case 1: return (uint16_t)(sign | (h & 0x3ff));      /* subnormal (or zero) */
    case 2: return (uint16_t)(sign | (r >> 20) % 3);    /* 0, 2^-24, 2^-23 */
    case 3: return (uint16_t)(sign | 0x7bff);           /* ±65504 */
    default:
        if ((h & 0x7c00) == 0x7c00) /* inf / NaN -> a finite exponent */
            h ^= 0x4000;
        return h;
    }
}

static void test_dequant(int level, const struct quant_traits *tab, struct buffers *bf)
{
    static const int nblocks[] = { 1, 2, 3, 7, 16, 67 };
    for (int di = 0; di < NDEQS; di++) {
        const struct deq *q = &deqs[di];
        const conv_fn simd = tab[q->id].to_f32;
        if (!simd || simd == q->ref) {
            ok(0, "%s dequant %s: no SIMD kernel installed", level_names[level], q->name);
            continue;
        }
        uint64_t rng = 0xA0761D6478BD642FULL ^ (uint64_t)(di * 29 + level);
        int pass = 1, runs = 0;
        char why[200] = "";
        for (int t = 0; t < (int)(sizeof(nblocks) / sizeof(nblocks[0])) && pass; t++) {
            for (int rep = 0; rep < 20 && pass; rep++, runs++) {
                const int nb = nblocks[t], n = nb * q->blck, pad = 16, shift = runs % 2;
                const size_t bytes = (size_t)nb * q->size;
                uint8_t *src = malloc(bytes);
                float *out = malloc((size_t)(n + shift + pad) * sizeof(float));
                if (!src || !out) {
                    free(src);
                    free(out);
                    snprintf(why, sizeof(why), "out of memory");
                    pass = 0;
                    break;
                }
                for (size_t i = 0; i < bytes; i++)
                    src[i] = (uint8_t)rng_next(&rng);
                for (int b = 0; b < nb; b++) {
                    put16(src + (size_t)b * q->size + q->doff, rand_half(&rng));
                    if (q->moff >= 0)
                        put16(src + (size_t)b * q->size + q->moff, rand_half(&rng));
                }
                memset(out, 0xC5, (size_t)(n + shift + pad) * sizeof(float));
                q->ref(src, bf->wf, n);
                simd(src, out + shift, n);
                for (int i = 0; i < n && pass; i++) {
                    if (memcmp(&out[shift + i], &bf->wf[i], 4) != 0) {
                        const int blk = i / q->blck;
                        uint16_t d, m = 0;
                        memcpy(&d, src + (size_t)blk * q->size + q->doff, 2);
                        if (q->moff >= 0)
                            memcpy(&m, src + (size_t)blk * q->size + q->moff, 2);
                        snprintf(why, sizeof(why),
                                 "n=%d element %d (d %04x, m %04x): got %a, ref %a", n, i, d, m,
                                 (double)out[shift + i], (double)bf->wf[i]);
                        pass = 0;
                    }
                }
                for (int i = 0; i < pad && pass; i++) {
                    uint32_t u;
                    memcpy(&u, &out[shift + n + i], 4);
                    if (u != 0xC5C5C5C5u) {
                        snprintf(why, sizeof(why), "n=%d: wrote past the end (float %d)", n, i);
                        pass = 0;
                    }
                }
                if (shift) {
                    uint32_t u;
                    memcpy(&u, &out[0], 4);
                    if (u != 0xC5C5C5C5u) {
                        snprintf(why, sizeof(why), "n=%d: wrote before the start", n);
                        pass = 0;
                    }
                }
                free(src);
                free(out);
            }
        }
        if (!ok(pass, "%s dequant %s bit-identical to the reference (%d rows)", level_names[level],
                q->name, runs))
            diag("%s", why);
    }
}

// ---- installation ----------------------------------------------------------------------------

/* Installing touches only vec_dot, from_f32 and to_f32, and only entries below n. */
static void test_install_fields(int level)
{
    struct quant_traits before[QTYPE_COUNT], after[QTYPE_COUNT];
    for (uint32_t id = 0; id < QTYPE_COUNT; id++) {
        const struct quant_traits *t = quant_traits_get(id);
        if (t)
            before[id] = *t;
        else
            memset(&before[id], 0, sizeof(before[id]));
    }
    memcpy(after, before, sizeof(after));
    const int n = QTYPE_Q8_0 + 1; /* Q8_1, Q8_K and the K-quants lie beyond: must stay put */
    quant_x86_install_level(level, after, n);
    int pass = 1;
    for (int id = 0; id < QTYPE_COUNT; id++) {
        struct quant_traits x = after[id];
        if (id < n) {
            x.vec_dot = before[id].vec_dot;
            x.from_f32 = before[id].from_f32;
            x.to_f32 = before[id].to_f32;
        }
        if (memcmp(&x, &before[id], sizeof(x)) != 0) {
            diag("entry %d changed", id);
            pass = 0;
        }
    }
    ok(pass, "%s install changes only vec_dot/from_f32/to_f32 of ids below n", level_names[level]);
}

static void test_quant_init(int best, const struct quant_traits *tab)
{
    quant_init();
    ok(strcmp(quant_simd_name(), level_names[best]) == 0, "quant_simd_name() is %s (got %s)",
       level_names[best], quant_simd_name());
    int pass = 1;
    for (int ki = 0; ki < NKERNELS; ki++) {
        const struct quant_traits *t = quant_traits_get(kernels[ki].id);
        if (tab[kernels[ki].id].vec_dot && (!t || t->vec_dot != tab[kernels[ki].id].vec_dot)) {
            diag("%s: quant_init did not install the %s kernel", kernels[ki].name,
                 level_names[best]);
            pass = 0;
        }
    }
    for (int di = 0; di < NDEQS; di++) {
        const struct quant_traits *t = quant_traits_get(deqs[di].id);
        const conv_fn want = tab[deqs[di].id].to_f32;
        if (want && (!t || t->to_f32 != want)) {
            diag("%s: quant_init did not install the dequantizer", deqs[di].name);
            pass = 0;
        }
    }
    for (int qi = 0; qi < 3; qi++) {
        const struct quant_traits *t = quant_traits_get(quantizers[qi].id);
        const quant_fn want = tab[quantizers[qi].id].from_f32;
        if (want && (!t || t->from_f32 != want)) {
            diag("%s: quant_init did not install the quantizer", quantizers[qi].name);
            pass = 0;
        }
    }
    ok(pass, "quant_init installs the %s kernels in the traits table", level_names[best]);
}

static int buffers_alloc(struct buffers *bf)
{
    const size_t bytes = (size_t)MAXN / QK_K * 292 + (size_t)MAXN * 4;
    bf->w = malloc(bytes);
    bf->a = malloc(bytes);
    bf->wtmp = malloc(bytes);
    bf->wf = malloc((size_t)MAXN * sizeof(float));
    bf->af = malloc((size_t)MAXN * sizeof(float));
    bf->tmp = malloc((size_t)MAXN * sizeof(float));
    return bf->w && bf->a && bf->wtmp && bf->wf && bf->af && bf->tmp;
}

static void buffers_free(struct buffers *bf)
{
    free(bf->w);
    free(bf->a);
    free(bf->wtmp);
    free(bf->wf);
    free(bf->af);
    free(bf->tmp);
}

#ifdef QUANT_SIMD_BENCH
static int bench(void);
#endif

int main(void)
{
#ifdef QUANT_SIMD_BENCH
    return bench();
#endif
    struct buffers bf;
    if (!buffers_alloc(&bf)) {
        printf("Bail out! out of memory\n");
        return 1;
    }
    static struct quant_traits tabs[NLEVELS][QTYPE_COUNT];
    int best = 0;
    for (int level = 1; level < NLEVELS; level++) {
        const char *name = quant_x86_install_level(level, tabs[level], QTYPE_COUNT);
        if (!name) {
            char why[80];
            snprintf(why, sizeof(why), "this CPU does not run %s", level_names[level]);
            /* as many as the level would have run: name, dots, quantizers, dequantizers,
             * install */
            for (int i = 0; i < 1 + NKERNELS * NMODES + 3 * NQCASES + NDEQS + 1; i++)
                skip(why);
            continue;
        }
        best = level;
        ok(strcmp(name, level_names[level]) == 0, "level %d is named %s", level, name);
        test_dots(level, tabs[level], &bf);
        test_quantizers(level, tabs[level], &bf);
        test_dequant(level, tabs[level], &bf);
        test_install_fields(level);
    }
    test_quant_init(best, tabs[best]);
    buffers_free(&bf);
    return done_testing();
}

// ---- throughput (not a test) -----------------------------------------------------------------

#ifdef QUANT_SIMD_BENCH
#include <immintrin.h>
#include <time.h>

/* Thread CPU time: on a shared machine, wall time counts other processes' slices too. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * A matrix-vector product as the decoder does it: rows of 4096 elements over a 64 MiB weight
 * buffer, one activation row.  GB/s counts weight bytes only, the best of several passes.
 */
static double bench_one(const struct kernel *k, dot_fn fn, const uint8_t *w, size_t wbytes,
                        const uint8_t *a, int n, int passes)
{
    const size_t row = (size_t)(n / k->blck) * k->wsize;
    const size_t rows = wbytes / row;
    double best = 1e30;
    volatile float sink = 0.0f;
    for (int p = 0; p < passes; p++) {
        const double t0 = now_s();
        float acc = 0.0f;
        for (size_t r = 0; r < rows; r++) {
            float s;
            fn(n, &s, w + r * row, a);
            acc += s;
        }
        const double t = now_s() - t0;
        sink += acc;
        if (t < best)
            best = t;
    }
    (void)sink;
    return (double)(rows * row) / best / 1e9;
}

/* The ceiling: a plain read of the same buffer, no arithmetic, prefetching as the kernels do. */
__attribute__((target("avx2"), noinline)) static double bench_read(const uint8_t *w, size_t bytes)
{
    double best = 1e30;
    volatile long long sink = 0;
    for (int p = 0; p < 5; p++) {
        const double t0 = now_s();
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t i = 0; i + 128 <= bytes; i += 128) {
            _mm_prefetch((const char *)((uintptr_t)(w + i) + 4096), _MM_HINT_T0);
            _mm_prefetch((const char *)((uintptr_t)(w + i) + 4096 + 64), _MM_HINT_T0);
            a0 = _mm256_add_epi8(a0, _mm256_loadu_si256((const __m256i *)(w + i)));
            a1 = _mm256_add_epi8(a1, _mm256_loadu_si256((const __m256i *)(w + i + 32)));
            a2 = _mm256_add_epi8(a2, _mm256_loadu_si256((const __m256i *)(w + i + 64)));
            a3 = _mm256_add_epi8(a3, _mm256_loadu_si256((const __m256i *)(w + i + 96)));
        }
        const __m256i t = _mm256_add_epi8(_mm256_add_epi8(a0, a1), _mm256_add_epi8(a2, a3));
        const double dt = now_s() - t0;
        sink += _mm256_extract_epi64(t, 0);
        if (dt < best)
            best = dt;
    }
    (void)sink;
    return (double)bytes / best / 1e9;
}

static int bench(void)
{
    static const enum qtype ids[] = { QTYPE_Q4_K, QTYPE_Q4_0, QTYPE_Q4_1, QTYPE_Q6_K, QTYPE_Q8_0,
                                      QTYPE_Q5_0, QTYPE_Q5_K, QTYPE_Q2_K, QTYPE_Q3_K, QTYPE_Q5_1,
                                      QTYPE_F16, QTYPE_BF16, QTYPE_F32 };
    const size_t wbytes = (size_t)64 << 20;
    const int n = 4096;
    static struct quant_traits tabs[NLEVELS][QTYPE_COUNT];
    int have[NLEVELS] = { 1, 0, 0 };
    for (int level = 1; level < NLEVELS; level++)
        have[level] = quant_x86_install_level(level, tabs[level], QTYPE_COUNT) != NULL;
    uint8_t *w = malloc(wbytes + 4096);
    uint8_t *a = malloc((size_t)n * 4 + 4096);
    float *tmp = malloc((size_t)n * sizeof(float));
    if (!w || !a || !tmp)
        return 1;
    printf("# weight streaming, one thread, 64 MiB of weights, rows of %d (GB/s of weights)\n", n);
    memset(w, 1, wbytes);
    printf("# plain read of the buffer (ceiling): %.2f GB/s\n", bench_read(w, wbytes));
    printf("%-6s %10s %10s %12s\n", "type", "ref", "avx2", "avx512vnni");
    for (size_t t = 0; t < sizeof(ids) / sizeof(ids[0]); t++) {
        const struct kernel *k = NULL;
        for (int ki = 0; ki < NKERNELS; ki++)
            if (kernels[ki].id == ids[t])
                k = &kernels[ki];
        uint64_t rng = 42;
        const size_t nblk = wbytes / k->wsize;
        /* generate by rows of 4096 so the float types get sane values too */
        for (size_t b = 0; b + (size_t)(n / k->blck) <= nblk; b += (size_t)(n / k->blck))
            gen_weights(k, w + b * k->wsize, n / k->blck, MODE_RANDOM, &rng);
        gen_acts(k, a, n, MODE_RANDOM, &rng, tmp);
        printf("%-6s %10.2f", k->name, bench_one(k, k->dot_ref, w, wbytes, a, n, 1));
        for (int level = 1; level < NLEVELS; level++) {
            if (have[level] && tabs[level][k->id].vec_dot)
                printf(" %*.2f", level == 1 ? 10 : 12,
                       bench_one(k, tabs[level][k->id].vec_dot, w, wbytes, a, n, 5));
            else
                printf(" %*s", level == 1 ? 10 : 12, "-");
        }
        printf("\n");
        fflush(stdout);
    }
    free(w);
    free(a);
    free(tmp);
    return 0;
}
#endif
