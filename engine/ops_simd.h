/*
 * ops_simd.h — constants shared by ops.c's AVX-512 kernels and ops_avx2.c's AVX2 ones, so that
 * the two widths compute e^x, SiLU and GELU from the same numbers (the tests compare them with
 * the scalar references; on the same inputs the two widths give the same bits).
 */
#ifndef KF_OPS_SIMD_H
#define KF_OPS_SIMD_H

#define GELU_COEF_A 0.044715f
#define SQRT_2_OVER_PI 0.7978845608f

/* e^x: x clamped to [EXP_LO, EXP_HI], x = n·ln2 + r with n = round(x·log2 e) and ln2 in two
 * parts (r exact to f32), e^r by its degree-7 Taylor polynomial, highest coefficient first. */
#define EXP_LO (-104.0f)
#define EXP_HI 89.0f
#define EXP_LOG2E 1.44269504089f
#define EXP_LN2_HI 0.693145751953125f
#define EXP_LN2_LO 1.428606765330187e-06f
/* (unused in builds without the SIMD kernels) */
static const float exp_poly[8] __attribute__((unused)) = {
    1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f,
};

#endif
