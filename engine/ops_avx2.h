/*
 * ops_avx2.h — ops.c's attention row kernels for AVX2 + FMA (ops_avx2.c); ops.c dispatches to
 * them on CPUs without AVX-512.  Only defined in x86-64 SIMD builds.
 */
#ifndef KF_OPS_AVX2_H
#define KF_OPS_AVX2_H

#include <stdint.h>

void ops_avx2_dot_rows(const float *q, const float *k, int64_t n_rows, int64_t stride, int64_t n,
                       float *out);
void ops_avx2_wsum_step(const float *a, const float *v, int64_t n_rows, int64_t stride,
                        int64_t n, float *st);
void ops_avx2_wsum_end(const float *st, int64_t n, float *out);
void ops_avx2_wsum_rows(const float *a, const float *v, int64_t n_rows, int64_t stride,
                        int64_t n, float *out);

#endif
