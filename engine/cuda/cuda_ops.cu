/*
 * cuda_ops.cu — the small fused kernels of the GPU forward pass: RMSNorm (optionally straight
 * into q8_1 for the decode products), per-head QK-norm with RoPE, the gated activations, bias and
 * residual epilogues of the cuBLAS path, f32→f16 conversion, and the final soft-cap.
 * Each mirrors an engine/ops.c function; tests compare whole-model logits with the CPU.
 */
#include <cstdint>

#include <cub/block/block_reduce.cuh>

#include "cuda_ops.h"
#include "cuda_round.cuh"
#include "cuda_launch.cuh"

#define NB 256


__device__ __forceinline__ float block_sum(float v)
{
    typedef cub::BlockReduce<float, NB> BR;
    __shared__ typename BR::TempStorage tmp;
    __shared__ float r;
    v = BR(tmp).Sum(v);
    if (threadIdx.x == 0)
        r = v;
    __syncthreads();
    float out = r;
    __syncthreads();
    return out;
}

/*
 * out = x / rms(x) · w per row, or (layer) (x − mean) / σ · w + b as ops_layernorm; with mode !=
 * ACT_NONE or xh also its rounded activations (xq/xh).  Grid (chunks, rows): a block reduces the
 * whole row and writes the 256-element chunks blockIdx.x, blockIdx.x + gridDim.x, ...  One row
 * (decode) spreads its chunks over many SMs, each block re-reading the row from L2; a batch gives
 * each row one block, which reads it once (16 blocks per row re-read a 512-token prompt's 8 MiB
 * 16 times).
 */
__global__ void __launch_bounds__(NB) k_norm(const float *x, const float *w, const float *b,
                                             int layer, int E, float eps, float *out, int mode,
                                             void *xq, __half *xh)
{
    /* the weights of this block's first chunk before the wait: constant, and otherwise a DRAM
     * round trip on the decode step's critical path */
    int c0 = blockIdx.x * NB + threadIdx.x;
    float w0 = c0 < E ? w[c0] : 0.0f, b0 = b && c0 < E ? b[c0] : 0.0f;
    kgrid_begin();
    int row = blockIdx.y;
    const float *xr = x + (size_t)row * E;
    float *o = out + (size_t)row * E;
    float mean = 0.0f;
    if (layer) {
        float s1 = 0.0f;
        for (int i = threadIdx.x; i < E; i += NB)
            s1 += xr[i];
        mean = block_sum(s1) / (float)E;
    }
    float ss = 0.0f;
    for (int i = threadIdx.x; i < E; i += NB)
        ss += (xr[i] - mean) * (xr[i] - mean);
    ss = block_sum(ss);
    float sc = 1.0f / sqrtf(ss / (float)E + eps);
    for (int c = blockIdx.x * NB; c < E; c += gridDim.x * NB) { /* uniform trip count */
        int i = c + threadIdx.x, valid = i < E;
        float wi = c == blockIdx.x * NB ? w0 : valid ? w[i] : 0.0f;
        float bi = c == blockIdx.x * NB ? b0 : b && valid ? b[i] : 0.0f;
        float v = valid ? (xr[i] - mean) * sc * wi + bi : 0.0f;
        if (valid)
            o[i] = v;
        if (mode != ACT_NONE || xh)
            round_chunk(v, valid, (int64_t)row * E, i, mode, xq, xh);
    }
}

void ops_norm(const float *x, const float *w, const float *b, int layer, int rows, int E,
              float eps, float *out, int mode, void *xq, __half *xh, cudaStream_t s)
{
    dim3 grid(rows >= 8 ? 1 : (E + NB - 1) / NB, rows);
    klaunch(k_norm, grid, NB, 0, s, x, w, b, layer, E, eps, out, mode, xq, xh);
}

__global__ void __launch_bounds__(NB) k_round_act(const float *x, int64_t k, int mode, void *xq,
                                                  __half *xh)
{
    kgrid_begin();
    int64_t row_off = (int64_t)blockIdx.y * k, i = (int64_t)blockIdx.x * NB + threadIdx.x;
    int valid = i < k;
    round_chunk(valid ? x[row_off + i] : 0.0f, valid, row_off, i, mode, xq, xh);
}

void ops_round_act(const float *x, int rows, int64_t k, int mode, void *xq, __half *xh,
                   cudaStream_t s)
{
    if (mode == ACT_NONE || !xq) { /* the f16 operand alone is never rounded to 8 bits */
        if (xh)
            ops_to_half(x, (int64_t)rows * k, xh, s);
        return;
    }
    klaunch(k_round_act, dim3((unsigned)((k + NB - 1) / NB), rows), NB, 0, s, x, k, mode, xq, xh);
}

/* acc += rmsnorm(y)·w per row (Gemma 3's post-norms before the residual add). */
__global__ void __launch_bounds__(NB) k_rmsnorm_add(const float *y, const float *w, int E, float eps,
                                                    float *acc)
{
    kgrid_begin();
    const float *yr = y + (size_t)blockIdx.x * E;
    float *a = acc + (size_t)blockIdx.x * E;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < E; i += NB)
        ss += yr[i] * yr[i];
    ss = block_sum(ss);
    float sc = 1.0f / sqrtf(ss / (float)E + eps);
    for (int i = threadIdx.x; i < E; i += NB)
        a[i] += yr[i] * sc * w[i];
}

void ops_rmsnorm_add(const float *y, const float *w, int rows, int E, float eps, float *acc,
                     cudaStream_t s)
{
    klaunch(k_rmsnorm_add, rows, NB, 0, s, y, w, E, eps, acc);
}

__device__ __forceinline__ float gelu_tanh(float x)
{
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

/* out[t][i] = act(gu[t][i]) · gu[t][nff + i] (rows of 2·nff: gate | up). */
__global__ void k_glu(const float *gu, int nff, int64_t total, int gelu, float *out, __half *outh)
{
    kgrid_begin();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / nff, c = i % nff;
        float g = gu[t * 2 * nff + c], u = gu[t * 2 * nff + nff + c];
        float a = gelu ? gelu_tanh(g) : g / (1.0f + expf(-g));
        float y = a * u;
        if (out)
            out[i] = y;
        if (outh)
            outh[i] = __float2half(y);
    }
}

static int grid_for(int64_t n)
{
    int64_t b = (n + 255) / 256;
    return (int)(b < 8192 ? b : 8192);
}

void ops_glu(const float *gu, int n, int nff, int gelu, float *out, __half *outh, cudaStream_t s)
{
    int64_t total = (int64_t)n * nff;
    klaunch(k_glu, grid_for(total), 256, 0, s, gu, nff, total, gelu, out, outh);
}

/* y[t][c] = (acc ? acc[t][c] : 0) + in[t][c] + (bias ? bias[c] : 0); y may alias acc or in. */
__global__ void k_epilogue(float *y, const float *in, const float *bias, const float *acc, int n,
                           int cols)
{
    kgrid_begin();
    int64_t total = (int64_t)n * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = in[i];
        if (bias)
            v += bias[i % cols];
        if (acc)
            v += acc[i];
        y[i] = v;
    }
}

void ops_epilogue(float *y, const float *in, const float *bias, const float *acc, int n, int cols,
                  cudaStream_t s)
{
    klaunch(k_epilogue, grid_for((int64_t)n * cols), 256, 0, s, y, in, bias, acc, n, cols);
}

/* Four elements per thread and step when the pointers allow 16-byte loads (n % 4 == 0). */
__global__ void k_to_half(const float *x, int64_t n, __half *y)
{
    kgrid_begin();
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (n % 4 == 0 && (uintptr_t)x % 16 == 0 && (uintptr_t)y % 8 == 0) {
        for (; i < n / 4; i += stride) {
            const float4 v = ((const float4 *)x)[i];
            __half2 h[2] = { __floats2half2_rn(v.x, v.y), __floats2half2_rn(v.z, v.w) };
            ((uint2 *)y)[i] = *(const uint2 *)h;
        }
        return;
    }
    for (; i < n; i += stride)
        y[i] = __float2half(x[i]);
}

void ops_to_half(const float *x, int64_t n, __half *y, cudaStream_t s)
{
    klaunch(k_to_half, grid_for(n % 4 ? n : n / 4), 256, 0, s, x, n, y);
}

__device__ __forceinline__ float gelu_erf(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

__global__ void k_act(float *x, int64_t n, int act)
{
    kgrid_begin();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = act == 2 ? gelu_erf(x[i]) : gelu_tanh(x[i]);
}

void ops_act(float *x, int64_t n, int act, cudaStream_t s)
{
    klaunch(k_act, grid_for(n), 256, 0, s, x, n, act);
}

__global__ void k_softcap(float *x, int64_t n, float c)
{
    kgrid_begin();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = c * tanhf(x[i] / c);
}

void ops_softcap(float *x, int64_t n, float c, cudaStream_t s)
{
    klaunch(k_softcap, grid_for(n), 256, 0, s, x, n, c);
}

__global__ void k_clamp(float *x, int64_t n, float c)
{
    kgrid_begin();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = fminf(fmaxf(x[i], -c), c);
}

void ops_clamp(float *x, int64_t n, float c, cudaStream_t s)
{
    klaunch(k_clamp, grid_for(n), 256, 0, s, x, n, c);
}
