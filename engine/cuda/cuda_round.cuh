/*
 * cuda_round.cuh — device code shared by cuda_ops.cu and cuda_attn.cu: rounding activations the
 * way the CPU engine rounds them for a weight type, so that both backends compute the same
 * function, written as q8_1 blocks (integer kernels) and/or f16 values (cuBLAS).
 */
#ifndef KF_CUDA_ROUND_CUH
#define KF_CUDA_ROUND_CUH

#include <cstdint>

#include <cuda_fp16.h>

#include "cuda_ops.h"

struct q8_1_blk {
    __half d, s;
    int8_t qs[32];
};

/*
 * Activations prepared for the next product of a weight type.  xq (integer kernels: decode,
 * short batches, cuda_mmq) receives them rounded as the CPU engine rounds them, to the type's
 * vec_dot_type, so that both backends compute the same integer dots; as q8_1 blocks (d, s as
 * halves; for ACT_Q8_256 the first word is d as an f32, which the k-quant kernels read:
 * cuda_mmv.cu):
 *   ACT_Q8_32  (Q8_0 / Q8_1: legacy types) per 32: id = 127/amax, q = rint(x·id), d = f16(amax/127)
 *   ACT_Q8_256 (Q8_K: k-quants) per 256: iscale = −127/max (max: the value of largest magnitude,
 *              first one on ties), q = min(rint(iscale·x), 127), d = 1/iscale (f32)
 * xh (the f16 operand of cuBLAS and cuda_mmf: prompt batches) receives f16(x), not rounded to 8
 * bits, as llama.cpp's cuBLAS path takes it: the quantized model's function without 8-bit
 * activations (the CPU rounds them in its batch path too, matmul.h; test_cuda_model checks the
 * GPU's prompts against the CPU over the weights dequantized to f32).  Either may be NULL; mode
 * ACT_NONE (float weights) writes xh only.  Called by all 256 threads of a block for 256
 * consecutive elements (i: index in the row, row_off: the row's first element).
 */
static __device__ __forceinline__ void round_chunk(float v, int valid, int64_t row_off, int64_t i,
                                                   int mode, void *xq, __half *xh)
{
    if (mode == ACT_NONE || !xq) { /* f16 only: the operand of cuBLAS and cuda_mmf */
        if (xh && valid)
            xh[row_off + i] = __float2half(v);
        return;
    }
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float d;
    int q;
    if (mode == ACT_Q8_32) {
        float a = fabsf(v);
        for (int o = 16; o > 0; o >>= 1)
            a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
        float id = a != 0.0f ? 127.0f / a : 0.0f;
        q = __float2int_rn(v * id);
        d = __half2float(__float2half(a / 127.0f));
        int sum = q;
        for (int o = 16; o > 0; o >>= 1)
            sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (xq && valid) {
            q8_1_blk *b = (q8_1_blk *)xq + (row_off + i) / 32;
            b->qs[lane] = (int8_t)q;
            if (lane == 0) {
                b->d = __float2half(a / 127.0f);
                b->s = __float2half(a / 127.0f * (float)sum);
            }
        }
    } else { /* ACT_Q8_256: the whole block of 256 threads is one Q8_K block */
        __shared__ float am[8], mx;
        __shared__ int ai[8];
        float a = fabsf(v);
        int idx = threadIdx.x;
        for (int o = 16; o > 0; o >>= 1) {
            float a2 = __shfl_xor_sync(0xffffffffu, a, o);
            int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
            if (a2 > a || (a2 == a && i2 < idx)) {
                a = a2;
                idx = i2;
            }
        }
        if (lane == 0) {
            am[warp] = a;
            ai[warp] = idx;
        }
        __syncthreads();
        a = am[0];
        idx = ai[0];
        for (int w = 1; w < 8; w++)
            if (am[w] > a) { /* later warps hold later indices: ties keep the first */
                a = am[w];
                idx = ai[w];
            }
        if (threadIdx.x == idx)
            mx = v;
        __syncthreads();
        if (a == 0.0f) {
            q = 0;
            d = 0.0f;
        } else {
            float iscale = -127.0f / mx;
            q = min(__float2int_rn(iscale * v), 127);
            d = 1.0f / iscale;
        }
        __syncthreads(); /* am, ai, mx are reused by the next chunk */
        int sum = q;
        for (int o = 16; o > 0; o >>= 1)
            sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (xq && valid) { /* the scale stays f32 (in the d, s words): the CPU's is f32 */
            q8_1_blk *b = (q8_1_blk *)xq + (row_off + i) / 32;
            b->qs[lane] = (int8_t)q;
            if (lane == 0)
                *(float *)b = d;
            (void)sum;
        }
    }
    if (xh && valid)
        xh[row_off + i] = __float2half(v);
}


#endif
