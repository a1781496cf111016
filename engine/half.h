/*
 * half.h — IEEE binary16 and bfloat16 conversions (exact, subnormals/inf/NaN included).
 * Inline because every dequantizer calls them per block.
 */
#ifndef KF_HALF_H
#define KF_HALF_H

#include <stdint.h>
#include <string.h>

static inline float fp32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t fp32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* binary16 -> binary32, exact for every input. */
static inline float fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f)                       /* inf / NaN */
        return fp32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return fp32_from_bits(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return fp32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

/* binary32 -> binary16, round to nearest even, overflow to inf. */
static inline uint16_t fp32_to_fp16(float f)
{
    uint32_t x = fp32_to_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)                  /* inf or NaN */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u)                  /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) {                 /* below the smallest normal half: subnormal/zero */
        /* add 0.5 (as float) so the FPU does the round-to-nearest-even of the low bits */
        float v = fp32_from_bits(ax) + 0.5f;
        return (uint16_t)(sign | (fp32_to_bits(v) - 0x3f000000u));
    }
    uint32_t mant_odd = (ax >> 13) & 1;
    ax += 0xc8000fffu + mant_odd;           /* rebias exponent (-112<<23) and round */
    return (uint16_t)(sign | (ax >> 13));
}

static inline float bf16_to_fp32(uint16_t h)
{
    return fp32_from_bits((uint32_t)h << 16);
}

static inline uint16_t fp32_to_bf16(float f)
{
    uint32_t x = fp32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)    /* NaN: keep it quiet */
        return (uint16_t)((x >> 16) | 64);
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif
