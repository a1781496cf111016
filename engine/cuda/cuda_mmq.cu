/*
 * cuda_mmq.cu — prompt batches of the integer weight types on the int8 tensor cores: Y (tokens ×
 * n) = X · Wᵀ with X the q8_1 activations the decode kernels read (the CPU's own rounding) and W
 * the GGUF blocks, multiplied exactly as the CPU engine multiplies them.
 *
 * Why, and why it is not the default (KF_CUDA_MMQ=1 turns it on).  The cuBLAS path multiplies
 * f16 operands: dequantized weights and rounded activations lose bits on the way (a Q4_K weight
 * d·sc·q needs 21).  Here every 32 (or 16) products are an exact integer sum from mma.sync (s8 ×
 * s8 → s32), scaled in f32 by the weight's sub-block scale and the activation's block scale, the
 * mins applied through exact sums of the activations: the function the CPU's batch path computes
 * (dequantized weights times rounded activations in f32), to f32 summation order (~2e-7,
 * tests/test_cuda_mmv.c).  Measured on an H100 (session 10), it did not bring a model's prompt
 * logits closer to the CPU's: on random-weight models any reordering of a sum flips a few 8-bit
 * roundings and the flips compound to a few 1e-2 (docs/cuda.md, "Prompt path"), and it ran at
 * 0.43-0.67× of the cuBLAS path from 24 to 512 tokens (Llama-2-7B Q4_K_M pp512 8,128 against
 * 18,925 t/s).  Kept as the exact reference path for such studies.
 *
 * Layout.  A CUDA block owns MQ_BM weight rows × MQ_BN tokens and walks k in chunks of 256.  Per
 * chunk its threads unpack the weights into int8 rows in shared memory (one thread per row and
 * 32-element block: the values with their offsets removed, so all fit s8, and a scale and min per
 * SUB elements) and copy the activations' int8 rows with their scales and the sums the mins need;
 * then each warp multiplies its 32 rows × 32 tokens sub-block by sub-block.  The integer sums
 * become floats by the exponent trick (the accumulator starts at the bits of 1.5·2^23, so the
 * float of the bits minus 1.5·2^23 is the sum; |sum| < 2^22 always holds here), a full-rate add
 * instead of a conversion.
 */
#include <cstdint>
#include <cstdio>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define _Static_assert static_assert /* quant.h is C11 */
#include "quant.h"
#undef _Static_assert
#include "cuda/cuda_mmv.h"

#include "cuda_mmv_types.cuh"
#include "cuda_launch.cuh"
#include "cuda_mmq_types.cuh"

#define MQ_KC 256             /* k elements a chunk */
#define MQ_LD (MQ_KC + 16)    /* bytes of a shared int8 row: 68 words, so fragment loads of 8 rows
                               * × 4 words hit 32 different banks */
#define MQ_MAGIC 0x4B400000   /* bits of 1.5·2^23 */
#define MQ_MAGICF 12582912.0f

/*
 * Shared memory of a block: the unpacked chunk and its scales.  The scale rows are padded to an
 * odd number of words, so that the 8 rows (or 4 tokens 2 apart) a warp reads at once fall in
 * different banks.
 */
struct mq_smem {
    int8_t a[MQ_BM][MQ_LD];    /* weights, offsets removed */
    int8_t b[MQ_BN][MQ_LD];    /* activations */
    float ds[MQ_BM][17];       /* weight scale per 16 elements (SUB 32: entries 2j, 2j+1 equal) */
    float dm[MQ_BM][17];       /* weight min per 16: w = ds·q − dm */
    float da[MQ_BN][9];        /* activation scale per 32 */
    float sa[MQ_BN][17];       /* da · Σq per 16 (what a SUB-16 min multiplies) */
    float sa32[MQ_BN][9];      /* da · Σq per 32 */
};

// ---- the kernel --------------------------------------------------------------------------------

struct mq_args {
    const uint8_t *w;
    size_t rb;          /* bytes of a weight row */
    const uint8_t *x;   /* q8_1 rows of nt tokens, xs bytes apart */
    size_t xs;
    float *y;           /* nt rows of n floats */
    const float *bias, *res;
    int n, nt, nb32;    /* rows, tokens, 32-blocks in k */
    int fd;             /* activation scales as f32 (the k-quants' Q8_K rounding) */
};

/* d (4 ints) = a · b + d: 16×32 s8 (4 regs) by 32×8 (2 regs), or 16×16 (2) by 16×8 (1). */
__device__ __forceinline__ void mma_s8_k32(int *d, const int *a, const int *b)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 /* older targets never launch this kernel */
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ void mma_s8_k16(int *d, const int *a, const int *b)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 "
                 "{%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b[0]));
#endif
}

/* Unpack chunk c (elements 256c..) of the block's rows and tokens into shared memory. */
template <class U>
__device__ __forceinline__ void mq_load(mq_smem &sm, const mq_args &a, int row0, int tok0, int c)
{
    for (int it = threadIdx.x; it < MQ_BM * 8; it += MQ_THREADS) {
        const int r = it >> 3, j = it & 7, kb = 8 * c + j;
        int q[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
        float ds[2] = { 0.0f, 0.0f }, dm[2] = { 0.0f, 0.0f };
        if (kb < a.nb32)
            U::unpack(a.w + (size_t)min(row0 + r, a.n - 1) * a.rb, kb, q, ds, dm);
        int4 *dst = (int4 *)&sm.a[r][32 * j];
        dst[0] = make_int4(q[0], q[1], q[2], q[3]);
        dst[1] = make_int4(q[4], q[5], q[6], q[7]);
        sm.ds[r][2 * j] = ds[0];
        sm.ds[r][2 * j + 1] = ds[U::SUB == 16 ? 1 : 0];
        sm.dm[r][2 * j] = dm[0];
        sm.dm[r][2 * j + 1] = dm[U::SUB == 16 ? 1 : 0];
    }
    for (int it = threadIdx.x; it < MQ_BN * 8; it += MQ_THREADS) {
        const int t = it >> 3, j = it & 7, kb = 8 * c + j;
        int v[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
        float d = 0.0f;
        if (kb < a.nb32) {
            const int *p = (const int *)(a.x + (size_t)min(tok0 + t, a.nt - 1) * a.xs) + 9 * kb;
            const int w0 = __ldg(p);
            d = a.fd ? __int_as_float(w0) : half2_bits(w0).x;
#pragma unroll
            for (int i = 0; i < 8; i++)
                v[i] = __ldg(p + 1 + i);
        }
        int4 *dst = (int4 *)&sm.b[t][32 * j];
        dst[0] = make_int4(v[0], v[1], v[2], v[3]);
        dst[1] = make_int4(v[4], v[5], v[6], v[7]);
        int s0 = 0, s1 = 0;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            s0 = __dp4a(v[i], 0x01010101, s0);
            s1 = __dp4a(v[4 + i], 0x01010101, s1);
        }
        sm.da[t][j] = d;
        sm.sa[t][2 * j] = d * (float)s0;
        sm.sa[t][2 * j + 1] = d * (float)s1;
        sm.sa32[t][j] = d * (float)(s0 + s1);
    }
}

/*
 * Grid (token tiles, row tiles): the blocks of one weight tile run together, so the tile is read
 * from DRAM about once and the activations stay in L2.  Warp w: rows 32(w % 4).., tokens
 * 32(w / 4)..; per 16 rows × 8 tokens the mma layout (lane / 4: row g and g + 8; lane % 4: token
 * pair).
 */
template <class U, bool MIN>
__global__ void __launch_bounds__(MQ_THREADS, 2) k_mmq(const mq_args a)
{
    extern __shared__ __align__(16) unsigned char mq_raw[];
    mq_smem &sm = *reinterpret_cast<mq_smem *>(mq_raw);
    const int tok0 = blockIdx.x * MQ_BN, row0 = blockIdx.y * MQ_BM;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, tq = lane & 3;
    const int wr = 32 * (warp & 3), wt = 32 * (warp >> 2);
    kgrid_begin();
    float acc[2][4][4];
    mq_zero(acc);

    const int chunks = (a.nb32 + 7) / 8;
    for (int c = 0; c < chunks; c++) {
        __syncthreads(); /* the previous chunk's reads are done */
        mq_load<U>(sm, a, row0, tok0, c);
        __syncthreads();
        constexpr int SUB = U::SUB, NSUB = MQ_KC / SUB;
#pragma unroll 2
        for (int s = 0; s < NSUB; s++) {
            const int k0 = s * SUB, h16 = s * SUB / 16; /* first 16-element group */
            int af[2][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const int8_t *r0 = &sm.a[wr + 16 * mi + g][k0 + 4 * tq];
                const int8_t *r1 = &sm.a[wr + 16 * mi + g + 8][k0 + 4 * tq];
                af[mi][0] = *(const int *)r0;
                af[mi][1] = *(const int *)r1;
                if (SUB == 32) {
                    af[mi][2] = *(const int *)(r0 + 16);
                    af[mi][3] = *(const int *)(r1 + 16);
                }
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                const int8_t *b0 = &sm.b[wt + 8 * ni + g][k0 + 4 * tq];
                bf[ni][0] = *(const int *)b0;
                if (SUB == 32)
                    bf[ni][1] = *(const int *)(b0 + 16);
            }
            float rds[2][2], rdm[2][2], tda[4][2], tsa[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    rds[mi][hh] = sm.ds[wr + 16 * mi + g + 8 * hh][h16];
                    if (MIN)
                        rdm[mi][hh] = sm.dm[wr + 16 * mi + g + 8 * hh][h16];
                }
#pragma unroll
            for (int ni = 0; ni < 4; ni++)
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    const int t = wt + 8 * ni + 2 * tq + j;
                    tda[ni][j] = sm.da[t][k0 / 32];
                    if (MIN)
                        tsa[ni][j] = SUB == 32 ? sm.sa32[t][k0 / 32] : sm.sa[t][h16];
                }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) {
                    int d[4] = { MQ_MAGIC, MQ_MAGIC, MQ_MAGIC, MQ_MAGIC };
                    if (SUB == 32)
                        mma_s8_k32(d, af[mi], bf[ni]);
                    else
                        mma_s8_k16(d, af[mi], bf[ni]);
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int hh = e >> 1, j = e & 1;
                        const float f = __int_as_float(d[e]) - MQ_MAGICF;
                        float v = fmaf(rds[mi][hh] * tda[ni][j], f, acc[mi][ni][e]);
                        if (MIN)
                            v = fmaf(-rdm[mi][hh], tsa[ni][j], v);
                        acc[mi][ni][e] = v;
                    }
                }
        }
    }

    mq_store(acc, a.y, a.bias, a.res, a.n, a.nt, row0 + wr, tok0 + wt, g, tq);
}

// ---- dispatch -----------------------------------------------------------------------------------

template <class U, bool MIN> static int mq_launch(const mq_args &a, cudaStream_t s)
{
    static bool attr;
    if (mq_smem_attr(k_mmq<U, MIN>, sizeof(mq_smem), attr))
        return -1;
    return klaunch(k_mmq<U, MIN>, mq_grid(a.nt, a.n, 1), MQ_THREADS, sizeof(mq_smem), s, a) ==
                   cudaSuccess
               ? 0
               : -1;
}

struct mq_probe {
    template <class U, bool MIN> int go(size_t) { return 0; }
};

struct mq_go {
    mq_args a;
    cudaStream_t s;
    template <class U, bool MIN> int go(size_t rb)
    {
        a.rb = rb;
        return mq_launch<U, MIN>(a, s);
    }
};

int cuda_mmq_supported(uint32_t type)
{
    return mq_with_type(type, 256, mq_probe{}) == 0 && kdevice_major() >= 8;
}

int cuda_mmq(uint32_t type, const void *w, int64_t k, int64_t n, int rows, const void *xq,
             float *y, const struct mmv_epilogue *ep, cudaStream_t s)
{
    if (k % 32 || rows < 1 || n < 1 || (cuda_mmv_is_kquant(type) && k % 256))
        return -1;
    mq_go f = { { (const uint8_t *)w, 0, (const uint8_t *)xq, (size_t)(k / 32) * 36, y,
                  ep ? ep->bias : nullptr, ep ? ep->residual : nullptr, (int)n, rows,
                  (int)(k / 32), cuda_mmv_is_kquant(type) },
                s };
    return mq_with_type(type, k, f);
}
