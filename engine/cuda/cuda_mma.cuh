/*
 * cuda_mma.cuh — the tensor-core pieces shared by the attention kernels that use mma.sync
 * (cuda_attn_pf.cu: prefill; cuda_attn_dmma.cu: decode under GQA): f16 packing, the
 * m16n8k16 product, ldmatrix, and the quad reductions and online softmax of the accumulator
 * layout (lane / 4 picks the row, lane % 4 the column pair).
 */
#ifndef KF_CUDA_MMA_CUH
#define KF_CUDA_MMA_CUH

#include <cuda_fp16.h>
#include <stdint.h>

/* Two floats as one register of two halves (lower index in the low half). */
__device__ __forceinline__ uint32_t pack_h2(float lo, float hi)
{
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}

/* d (4 floats) += a (16×16, 4 regs) · b (16×8, 2 regs) */
__device__ __forceinline__ void mma16816(float *d, const uint32_t *a, uint32_t b0, uint32_t b1)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 /* older targets never launch these kernels */
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

/* Four 8×8 f16 matrices, transposed: row addresses from lanes 0-7, 8-15, 16-23, 24-31. */
__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, const __half *p)
{
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* Max and sum over the four threads that share a row. */
__device__ __forceinline__ float quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

/* The online softmax of one row: fold in this tile's values x[0..n) (-inf = masked); returns
 * the factor by which earlier sums must be scaled, and turns x into exp(x - m). */
template <int N> __device__ __forceinline__ float online_row(float *x, float &m, float &l)
{
    float tmax = -INFINITY;
#pragma unroll
    for (int i = 0; i < N; i++)
        tmax = fmaxf(tmax, x[i]);
    tmax = quad_max(tmax);
    const float nm = fmaxf(m, tmax);
    if (nm == -INFINITY) { /* nothing visible to this row yet */
#pragma unroll
        for (int i = 0; i < N; i++)
            x[i] = 0.0f;
        return 1.0f;
    }
    const float corr = expf(m - nm);
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < N; i++) {
        x[i] = x[i] == -INFINITY ? 0.0f : expf(x[i] - nm);
        s += x[i];
    }
    l = l * corr + s; /* this thread's share of the row sum; the quad adds them at the end */
    m = nm;
    return corr;
}

#endif
