/*
 * ops_avx2.h — ops.c's attention kernels for AVX2 + FMA (ops_avx2.c); ops.c dispatches to
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
/* and the elementwise steps around attention's softmax */
void ops_avx2_softmax(float *x, int64_t n);
void ops_avx2_mask_scale(float *att, const int32_t *pos, int64_t n, int32_t qpos, int32_t win,
                         float scale);
void ops_avx2_add_scale(const float *x, float *y, int64_t n, float s);
void ops_avx2_noisy_softmax_add(const float *x, float *y, int64_t n, float s, float *acc);
/* activations (kind 0 SiLU, 1 tanh GELU; times up where given), RMSNorm and LayerNorm */
void ops_avx2_act(int kind, const float *x, const float *up, int64_t n, float *out);
void ops_avx2_rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out);
void ops_avx2_layernorm(const float *x, const float *w, const float *b, int64_t n, float eps,
                        float *out);

#endif
