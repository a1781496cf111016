/*
 * cuda_ops.h — launchers of the fused element-wise and per-row kernels (cuda_ops.cu) used by the
 * GPU forward pass.  Device pointers throughout; every launcher is stream-ordered and
 * capture-safe (no allocation, no synchronisation).
 */
#ifndef KF_CUDA_OPS_H
#define KF_CUDA_OPS_H

#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

struct rope_args {
    int n_head, n_head_kv, hd, n_rot, neox;
    float base, freq_scale, eps;
    const float *freq_factors; /* device, or NULL */
    const float *q_norm, *k_norm; /* device, or NULL */
};

/* How the CPU rounds a weight type's activations (cuda_ops.cu, k_round_act). */
#define ACT_NONE 0
#define ACT_Q8_32 1
#define ACT_Q8_256 2
/*
 * out = RMSNorm(x)·w, or with layer LayerNorm(x)·w + b (b may be NULL), per row of E; with mode
 * != ACT_NONE or xh also rounded for the next product (E % 256 == 0 for ACT_Q8_256).
 */
void ops_norm(const float *x, const float *w, const float *b, int layer, int rows, int E,
              float eps, float *out, int mode, void *xq, __half *xh, cudaStream_t s);
/* x = act(x) in place: 1 GELU (tanh form), 2 GELU (erf), as engine/ops.c. */
void ops_act(float *x, int64_t n, int act, cudaStream_t s);
void ops_round_act(const float *x, int rows, int64_t k, int mode, void *xq, __half *xh,
                   cudaStream_t s);
void ops_rmsnorm_add(const float *y, const float *w, int rows, int E, float eps, float *acc,
                     cudaStream_t s);
void ops_glu(const float *gu, int n, int nff, int gelu, float *out, __half *outh, cudaStream_t s);
void ops_epilogue(float *y, const float *in, const float *bias, const float *acc, int n, int cols,
                  cudaStream_t s);
void ops_to_half(const float *x, int64_t n, __half *y, cudaStream_t s);
void ops_softcap(float *x, int64_t n, float c, cudaStream_t s);
/* x = min(max(x, −c), c) in place. */
void ops_clamp(float *x, int64_t n, float c, cudaStream_t s);

#endif
