/*
 * cuda_mmf.cu — short prompt batches of the integer weight types on the f16 tensor cores, with
 * the weights dequantized in shared memory: the products cuBLAS computes on cuda_dequant_f16's
 * output (f16 operands, f32 sums), without the dequantized weights ever reaching memory.
 *
 * Why.  Before cuBLAS can multiply, the whole weight is dequantized to f16 in memory: for a
 * 7B Q4_K_M model 3.9 GB read, 13 GB written and 13 GB read again on every prompt chunk,
 * whatever its length.  A chat turn of a few dozen tokens pays mostly for that.  Here each
 * weight byte is read once per 64 tokens.
 *
 * Layout.  The tile of cuda_mmq.cu: a block owns 128 weight rows × 64 tokens, 8 warps of 32 ×
 * 32, and walks k in chunks of 128: its threads unpack the chunk's blocks (cuda_mmq_types.cuh),
 * turn them into f16 as k_dequant_f16 does (w = ds·q − dm in f32, then rounded), and copy the
 * tokens' f16 activations; the warps multiply with ldmatrix and mma.sync.m16n8k16.  With few
 * tokens the grid has too few blocks to keep the loads of all SMs in flight (a 4096-row product:
 * 32), so k is split over blockIdx.z (up to three blocks per SM): each split writes its partial
 * products, and
 * k_mf_reduce sums them in split order (the same result on every run) and applies bias and
 * residual.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define _Static_assert static_assert /* quant.h is C11 */
#include "quant.h"
#undef _Static_assert
#include "cuda/cuda_mmv.h"

#include "cuda_mma.cuh"
#include "cuda_mmq_types.cuh"

#define MF_KC 128         /* k elements a chunk */
#define MF_LD (MF_KC + 8) /* halves a shared row: 272 bytes, an odd number of 16-byte units, so
                           * the 8 rows an ldmatrix reads fall in different banks */

struct mf_smem {
    __half a[MQ_BM][MF_LD]; /* weights dequantized */
    __half b[MQ_BN][MF_LD]; /* activations */
};

struct mf_args {
    const uint8_t *w;
    size_t rb;        /* bytes of a weight row */
    const __half *x;  /* nt rows of k halves */
    float *y;         /* nt rows of n floats, or with splits the partials: splits × nt × n */
    const float *bias, *res;
    int k, n, nt, nb32;
    int cps;          /* chunks per split */
    int pf;           /* ask L2 for the next chunk's weights while this one is multiplied */
};

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const __half *p)
{
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* Byte i of a word of signed bytes, as a float, exactly: with u = word ^ 0x80808080 the byte
 * plus 128 becomes the low mantissa bits of 2^23 (a byte permute and an add, no conversion). */
__device__ __forceinline__ float s8_to_f32(unsigned u, int i)
{
    return __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7540u + (unsigned)i)) - 8388736.0f;
}

/* Chunk c (elements 128c..) of the block's weight rows, dequantized, and of its tokens. */
template <class U>
__device__ __forceinline__ void mf_load(mf_smem &sm, const mf_args &a, int row0, int tok0, int c)
{
#pragma unroll
    for (int i = 0; i < MQ_BM * 4 / MQ_THREADS; i++) {
        const int it = threadIdx.x + i * MQ_THREADS, r = it >> 2, j = it & 3, kb = 4 * c + j;
        int q[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
        float ds[2] = { 0.0f, 0.0f }, dm[2] = { 0.0f, 0.0f };
        if (kb < a.nb32)
            U::unpack(a.w + (size_t)min(row0 + r, a.n - 1) * a.rb, kb, q, ds, dm);
        uint32_t h[16];
#pragma unroll
        for (int v = 0; v < 8; v++) {
            const unsigned u = (unsigned)q[v] ^ 0x80808080u;
            const float sc = ds[v >> 2], mn = -dm[v >> 2];
            __half2 lo = __floats2half2_rn(fmaf(sc, s8_to_f32(u, 0), mn),
                                           fmaf(sc, s8_to_f32(u, 1), mn));
            __half2 hi = __floats2half2_rn(fmaf(sc, s8_to_f32(u, 2), mn),
                                           fmaf(sc, s8_to_f32(u, 3), mn));
            h[2 * v] = *reinterpret_cast<uint32_t *>(&lo);
            h[2 * v + 1] = *reinterpret_cast<uint32_t *>(&hi);
        }
        uint4 *dst = (uint4 *)&sm.a[r][32 * j];
#pragma unroll
        for (int v = 0; v < 4; v++)
            dst[v] = make_uint4(h[4 * v], h[4 * v + 1], h[4 * v + 2], h[4 * v + 3]);
    }
#pragma unroll
    for (int i = 0; i < MQ_BN * 16 / MQ_THREADS; i++) {
        const int it = threadIdx.x + i * MQ_THREADS, t = it >> 4, p = it & 15;
        const int e = MF_KC * c + 8 * p;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (e < a.k)
            v = __ldg((const uint4 *)(a.x + (size_t)min(tok0 + t, a.nt - 1) * a.k + e));
        *(uint4 *)&sm.b[t][8 * p] = v;
    }
}

/* Three blocks per SM (80 registers, 12-32 bytes of spills): 5-9% faster than two (H100, Llama-2
 * Q4_K_M pp24 2,428 -> 2,553, pp64 5,702 -> 6,088; Q4_0 pp64 5,945 -> 6,462). */
template <class U>
__global__ void __launch_bounds__(MQ_THREADS, 3) k_mmf(const mf_args a)
{
    extern __shared__ __align__(16) unsigned char mf_raw[];
    mf_smem &sm = *reinterpret_cast<mf_smem *>(mf_raw);
    const int tok0 = blockIdx.x * MQ_BN, row0 = blockIdx.y * MQ_BM;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wr = 32 * (warp & 3), wt = 32 * (warp >> 2);
    kgrid_begin();
    float acc[2][4][4];
    mq_zero(acc);
    const int chunks = (a.k + MF_KC - 1) / MF_KC, c0 = blockIdx.z * a.cps;
    const int c1 = min(chunks, c0 + a.cps);
    for (int c = c0; c < c1; c++) {
        __syncthreads(); /* the previous chunk's reads are done */
        mf_load<U>(sm, a, row0, tok0, c);
        __syncthreads();
        if (a.pf && c + 1 < c1) /* the next chunk's blocks of this thread's rows, into L2 */
#pragma unroll
            for (int i = 0; i < MQ_BM * 4 / MQ_THREADS; i++) {
                const int it = threadIdx.x + i * MQ_THREADS, kb = 4 * (c + 1) + (it & 3);
                const uint8_t *p = a.w + (size_t)min(row0 + (it >> 2), a.n - 1) * a.rb +
                                   (size_t)(kb * 32 / U::ELEMS) * U::BYTES;
                if (kb < a.nb32)
                    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
            }
#pragma unroll
        for (int ks = 0; ks < MF_KC / 16; ks++) {
            uint32_t af[2][4], bf[2][4];
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
                ldsm_x4(af[mi], &sm.a[wr + 16 * mi + (lane & 15)][16 * ks + 8 * (lane >> 4)]);
            /* matrices: tokens 0-7 and 8-15 of the pair np, each at k 0-7 and 8-15 */
#pragma unroll
            for (int np = 0; np < 2; np++)
                ldsm_x4(bf[np], &sm.b[wt + 16 * np + (lane & 7) + 8 * (lane >> 4)]
                                     [16 * ks + 8 * ((lane >> 3) & 1)]);
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    mma16816(acc[mi][ni], af[mi], bf[ni >> 1][2 * (ni & 1)],
                             bf[ni >> 1][2 * (ni & 1) + 1]);
        }
    }
    const bool split = gridDim.z > 1; /* partials: no epilogue, split z's own slice */
    mq_store(acc, a.y + (split ? (size_t)blockIdx.z * a.nt * a.n : 0), split ? nullptr : a.bias,
             split ? nullptr : a.res, a.n, a.nt, row0 + wr, tok0 + wt, lane >> 2, lane & 3);
}

/* y = Σ_z part[z] (in z order) + bias + res, over nt × n. */
__global__ void __launch_bounds__(256) k_mf_reduce(const float *part, int splits, int nt, int n,
                                                   float *y, const float *bias, const float *res)
{
    kgrid_begin();
    const size_t total = (size_t)nt * n;
    for (size_t i = (size_t)blockIdx.x * 256 + threadIdx.x; i < total; i += (size_t)gridDim.x * 256) {
        float v = 0.0f;
        for (int z = 0; z < splits; z++)
            v += part[(size_t)z * total + i];
        if (bias)
            v += bias[i % n];
        if (res)
            v += res[i];
        y[i] = v;
    }
}

template <class U> static int mf_launch(const mf_args &a, int splits, cudaStream_t s)
{
    static bool attr;
    if (mq_smem_attr(k_mmf<U>, sizeof(mf_smem), attr))
        return -1;
    return klaunch(k_mmf<U>, mq_grid(a.nt, a.n, splits), MQ_THREADS, sizeof(mf_smem), s, a) ==
                   cudaSuccess
               ? 0
               : -1;
}

struct mf_go {
    mf_args a;
    int splits;
    cudaStream_t s;
    template <class U, bool MIN> int go(size_t rb)
    {
        a.rb = rb;
        return mf_launch<U>(a, splits, s);
    }
};

int cuda_mmf(uint32_t type, const void *w, int64_t k, int64_t n, int rows, const __half *xh,
             float *y, const struct mmv_epilogue *ep, float *part, size_t part_floats,
             cudaStream_t s)
{
    static const int pf = !(getenv("KF_CUDA_MMF_PF") && !strcmp(getenv("KF_CUDA_MMF_PF"), "0"));
    const int nsm = kdevice_sms();
    if (k % 32 || rows < 1 || n < 1 || (cuda_mmv_is_kquant(type) && k % 256))
        return -1;
    /* splits: enough blocks for three per SM, at least 4 chunks each, within the scratch */
    const int chunks = (int)((k + MF_KC - 1) / MF_KC);
    const dim3 g = mq_grid(rows, (int)n, 1);
    int splits = 1;
    const int tgt = 3 * nsm; /* as many as fit at once (2 or 4 a SM: 4-7% slower at 64 tokens) */
    if (part && (int)(g.x * g.y) < tgt) {
        splits = (tgt + (int)(g.x * g.y) - 1) / (int)(g.x * g.y);
        splits = min(splits, max(1, chunks / 4));
        splits = (int)min((size_t)splits, part_floats / ((size_t)rows * (size_t)n));
        splits = max(splits, 1);
    }
    const int cps = (chunks + splits - 1) / splits;
    splits = (chunks + cps - 1) / cps; /* none empty */
    mf_go f = { { (const uint8_t *)w, 0, xh, splits > 1 ? part : y, ep ? ep->bias : nullptr,
                  ep ? ep->residual : nullptr, (int)k, (int)n, rows, (int)(k / 32), cps, pf },
                splits, s };
    if (mq_with_type(type, k, f))
        return -1;
    if (splits > 1) {
        const size_t total = (size_t)rows * (size_t)n;
        const unsigned blocks = (unsigned)min((total + 255) / 256, (size_t)4 * nsm);
        if (klaunch(k_mf_reduce, blocks, 256, 0, s, (const float *)part, splits, rows, (int)n, y,
                    f.a.bias, f.a.res) != cudaSuccess)
            return -1;
    }
    return 0;
}
