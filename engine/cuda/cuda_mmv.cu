/*
 * cuda_mmv.cu — the GPU weight kernels: decode matrix-vector products over GGUF-layout weights
 * (every type of engine/quant.h that models ship, Q2_K..Q6_K, Q4_0..Q8_0, F32/F16/BF16), the
 * q8_1 activation quantizer the integer types read, dequantization to f16 for cuBLAS, and the
 * in-place reordering of Q4_0/Q8_0/Q6_K weights.  The host entry points of tests/test_cuda_mmv.c
 * are in cuda_mmv_test.cu.
 *
 * Decode is memory bound: every weight byte is read once, so the kernels are built around the
 * loads.  A CUDA block of MMV_THREADS threads owns R consecutive rows; its threads stride over
 * the row in "units" (the piece of a block one thread handles: a whole 32-element block for the
 * legacy types, 1/8 or 1/4 of a K super-block, 8 floats) so that adjacent threads read adjacent
 * bytes.  A unit's activation piece is loaded once and used for all R rows, whose weight loads
 * are independent and issued together.  Weights are dequantized in registers into int8 lanes and
 * multiplied with the 8-bit activations by __dp4a, as the CPU engine multiplies them: the
 * offsets and mins are applied through exact integer sums of the activations (Σa per 16 or 32
 * elements, computed once per unit for all rows), except Q4_1/Q5_1, whose min term takes the
 * block's fp16 s as ggml does; the k-quants read activations rounded like the CPU's Q8_K, with
 * an f32 scale (cuda_round.cuh).  Partial sums meet by warp shuffles, then across warps in
 * shared memory, and one thread per row applies the epilogue.
 *
 * Alignment: K-quant Q4_K/Q5_K and float weights are read with 16-byte loads, Q4_1/Q5_1/Q2_K
 * with 4-byte loads: their tensors must start 16-byte aligned (GGUF's 32-byte alignment and
 * cudaMalloc give that; cuda_mmv returns -1 otherwise).  Blocks of 18/22/34/110/210 bytes are
 * only 2-byte aligned: their fields are read as aligned 32-bit words joined by funnel shifts,
 * which may touch the last partial word after the tensor's end (never a new page).  Q4_0, Q8_0
 * and Q6_K are reordered on the GPU where their rows allow (cuda_mmv_pack: runs of 8 blocks,
 * each field of the 8 together) so that a block's quants are 16-byte loads (chained launches on
 * an H100: Q4_0 4096 x 4096 4.86 -> 4.62 us, 4096 x 11008 10.7 -> 10.2; Q6_K 4096 x 4096
 * 6.87 -> 6.25, 4096 x 14336 20.2 -> 18.5).
 */
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>
#include <algorithm>
#include <type_traits>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define _Static_assert static_assert /* quant.h is C11 */
#include "quant.h"
#undef _Static_assert
#include "cuda/cuda_mmv.h"
#include "cuda/cuda_ops.h"

#define MMV_THREADS 128
#define MMV_WARPS (MMV_THREADS / 32)

#include "cuda_mmv_types.cuh"
#include "cuda_launch.cuh"

// ---- the matrix-vector kernel ---------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* As engine/ops.c: gelu_tanh1 and silu. */
__device__ __forceinline__ float mmv_activate(float g, int act)
{
    if (act == MMV_ACT_SILU)
        return g / (1.0f + expf(-g));
    if (act == MMV_ACT_GELU)
        return 0.5f * g * (1.0f + tanhf(0.7978845608f * g * (1.0f + 0.044715f * g * g)));
    return g;
}

/*
 * An empty asm that reads every word of v keeps NVVM from sinking v's loads below it.  ptxas
 * would still sink each row's loads next to their use to save registers (one row in flight per
 * thread); the kernel's __launch_bounds__(.., 4) register budget is what lets it keep all R
 * rows' loads ahead of the arithmetic (checked in the SASS: Q4_K R=4 issues 8 LDG.128 first).
 */
template <class T> __device__ __forceinline__ void mmv_pin(const T &v)
{
    static_assert(sizeof(T) % 4 == 0, "raw weights are whole words");
    const int *w = reinterpret_cast<const int *>(&v);
#pragma unroll
    for (int i = 0; i < (int)(sizeof(T) / 4); i++)
        asm volatile("" ::"r"(w[i]));
}

int cuda_mmv_is_kquant(uint32_t type)
{
    return type == QTYPE_Q2_K || type == QTYPE_Q3_K || type == QTYPE_Q4_K || type == QTYPE_Q5_K ||
           type == QTYPE_Q6_K;
}

struct mmv_args {
    const uint8_t *w, *w2; /* w2: GLU up weight */
    const void *x;         /* q8_1 blocks (ints) or f32 */
    float *y;
    const float *bias, *res;
    int nb, n, act;
    int nt;                /* tokens (T > 1: x rows xs bytes apart, y and res rows ys floats) */
    size_t xs, ys;
};

/*
 * Rows blockIdx.x*R .. +R-1 (rows past n recompute row n-1 and are not stored).  GLU: acc from
 * w (gate), acc2 from w2 (up); y = act(acc) * acc2.  T > 1: the same for nt <= T tokens, each
 * unit's weights read once for all of them (short prompts: exact integer dots as in decoding,
 * instead of f16 operands in cuBLAS).
 */
template <class Q, int R, bool GLU, int T>
__device__ __forceinline__ void mmv_rows(const mmv_args &args, const int row0)
{
    const size_t rb = (size_t)args.nb * Q::BYTES;
    const uint8_t *wr[R], *ur[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const size_t row = (size_t)min(row0 + r, args.n - 1);
        wr[r] = args.w + row * rb;
        ur[r] = GLU ? args.w2 + row * rb : nullptr;
    }
    kgrid_begin();
    float acc[T][R], acc2[T][R];
#pragma unroll
    for (int t = 0; t < T; t++)
#pragma unroll
        for (int r = 0; r < R; r++)
            acc[t][r] = acc2[t][r] = 0.0f;

    const int units = args.nb * Q::UPB;
    for (int u = threadIdx.x; u < units; u += MMV_THREADS) {
        const int b = u / Q::UPB, j = u % Q::UPB;
        /* all rows' weight loads first, so that they are in flight together */
        typename Q::raw rw[R], ru[GLU ? R : 1];
#pragma unroll
        for (int r = 0; r < R; r++) {
            q_fetch<Q>(rw[r], wr[r], b, j);
            if (GLU)
                q_fetch<Q>(ru[GLU ? r : 0], ur[r], b, j);
        }
#pragma unroll
        for (int r = 0; r < R; r++) {
            mmv_pin(rw[r]);
            if (GLU)
                mmv_pin(ru[GLU ? r : 0]);
        }
#pragma unroll
        for (int t = 0; t < T; t++) {
            if (T > 1 && t >= args.nt)
                break;
            typename Q::act x;
            Q::load(x, T == 1 ? args.x : (const uint8_t *)args.x + t * args.xs, b, j);
#pragma unroll
            for (int r = 0; r < R; r++) {
                acc[t][r] += Q::calc(rw[r], j, x);
                if (GLU)
                    acc2[t][r] += Q::calc(ru[GLU ? r : 0], j, x);
            }
        }
    }

    __shared__ float red[2][MMV_WARPS][T][R];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
    for (int t = 0; t < T; t++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            acc[t][r] = warp_sum(acc[t][r]);
            if (GLU)
                acc2[t][r] = warp_sum(acc2[t][r]);
            if (lane == 0) {
                red[0][warp][t][r] = acc[t][r];
                red[1][warp][t][r] = acc2[t][r];
            }
        }
    __syncthreads();
    /* (T == 1: the decode kernel's epilogue as it always was) */
    const int r = T == 1 ? (int)threadIdx.x : threadIdx.x % R, t = T == 1 ? 0 : threadIdx.x / R;
    const int row = row0 + r;
    const size_t yo = T == 1 ? (size_t)row : t * args.ys + row;
    if (threadIdx.x < T * R && row < args.n && (T == 1 || t < args.nt)) {
        float v = 0.0f, v2 = 0.0f;
#pragma unroll
        for (int w = 0; w < MMV_WARPS; w++) {
            v += red[0][w][t][r];
            v2 += red[1][w][t][r];
        }
        if (GLU) {
            v = mmv_activate(v, args.act) * v2;
        } else {
            if (args.bias)
                v += args.bias[row];
            if (args.res)
                v += args.res[yo];
        }
        args.y[yo] = v;
    }
}

template <class Q, int R, bool GLU, int T = 1>
__global__ void __launch_bounds__(MMV_THREADS, 4) k_mmv(const mmv_args args)
{
    mmv_rows<Q, R, GLU, T>(args, blockIdx.x * R);
}

/*
 * Two products of different types over one activation in one launch: blocks below g1 take a1's
 * rows, the others a2's (Q4_K_M's q|k in Q4_K and v in Q6_K: a launch fewer in the layers that
 * mix them).  Each row's sum is the one k_mmv computes, bit for bit.
 */
template <class Q1, class Q2, int R>
__global__ void __launch_bounds__(MMV_THREADS, 4) k_mmv_pair(const mmv_args a1, const mmv_args a2,
                                                             const int g1)
{
    if ((int)blockIdx.x < g1)
        mmv_rows<Q1, R, false, 1>(a1, blockIdx.x * R);
    else
        mmv_rows<Q2, R, false, 1>(a2, (blockIdx.x - g1) * R);
}

/* Tokens per launch of the several-token kernel (cuda_mmv_rows). */
#define MMV_T 8
/* Rows from which a decode product takes 4 rows a block (fewer: 1, tiny tests) */
#define MMV_R4_MIN 512

/* Rows per CUDA block: 4 once there are enough rows to fill the GPU, else 1 (tiny tests). */
template <class Q> static int mmv_launch(const mmv_args &a, bool glu, cudaStream_t s)
{
    const unsigned n = (unsigned)a.n;
    if (a.nt > 1) {
        /* several tokens: fewer rows a block keep the accumulators in registers (Q2_K and
         * Q3_K, whose units dequantize in more registers, with half as many: no spills) */
        constexpr int RT = std::is_same<Q, t_q2_k>::value || std::is_same<Q, t_q3_k>::value ? 2 : 4;
        if (glu)
            klaunch(k_mmv<Q, RT / 2, true, MMV_T>, (n + RT / 2 - 1) / (RT / 2), MMV_THREADS, 0,
                    s, a);
        else
            klaunch(k_mmv<Q, RT, false, MMV_T>, (n + RT - 1) / RT, MMV_THREADS, 0, s, a);
        return 0;
    }
    if (n >= MMV_R4_MIN) {
        if (glu)
            klaunch(k_mmv<Q, 4, true>, (n + 3) / 4, MMV_THREADS, 0, s, a);
        else
            klaunch(k_mmv<Q, 4, false>, (n + 3) / 4, MMV_THREADS, 0, s, a);
    } else {
        if (glu)
            klaunch(k_mmv<Q, 1, true>, n, MMV_THREADS, 0, s, a);
        else
            klaunch(k_mmv<Q, 1, false>, n, MMV_THREADS, 0, s, a);
    }
    return 0;
}

// ---- dequantization to f16 ------------------------------------------------------------------

/* One thread per 8 output elements; out row-major n × k. */
template <class Q> __global__ void k_dequant_f16(const uint8_t *w, int64_t total8, __half *out)
{
    kgrid_begin();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total8)
        return;
    const int per_blk = Q::BLK / 8;
    const int64_t blk = i / per_blk; /* rows are whole blocks, so block index = row * nb + b */
    const int o = (int)(i % per_blk) * 8;
    float v[8];
    q_deq8<Q>(w, blk, o, v);
    __align__(16) __half h[8];
#pragma unroll
    for (int t = 0; t < 8; t++)
        h[t] = __float2half_rn(v[t]);
    *(uint4 *)(out + i * 8) = *(const uint4 *)h;
}

// ---- the GPU's layout of Q4_0, Q8_0 and Q6_K -----------------------------------------------

int cuda_mmv_grouped(uint32_t type, int64_t k)
{
    if (type == QTYPE_Q4_0 || type == QTYPE_Q8_0)
        return k > 0 && k % (8 * 32) == 0;
    return type == QTYPE_Q6_K && k > 0 && k % (8 * 256) == 0;
}

/* Where a GGUF block's fields go in a run of 8: field s (len[s] bytes at src[s] of the block)
 * of block i lands at dst[s] + len[s]·i. */
struct run_map {
    int nseg, src[4], len[4], dst[4];
};

/* One thread per run of 8 blocks of BYTES bytes, in place. */
template <int BYTES> __global__ void k_pack_runs(uint8_t *w, int64_t runs, run_map m)
{
    constexpr int GB = 8 * BYTES; /* 144, 272 or 1,680: whole uint4s */
    kgrid_begin();
    const int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= runs)
        return;
    uint8_t *p = w + g * GB;
    __align__(16) uint8_t in[GB];
    for (int i = 0; i < GB / 16; i++)
        ((uint4 *)in)[i] = ((const uint4 *)p)[i];
    for (int b = 0; b < 8; b++)
        for (int f = 0; f < m.nseg; f++)
            for (int c = 0; c < m.len[f]; c++)
                p[m.dst[f] + m.len[f] * b + c] = in[BYTES * b + m.src[f] + c];
}

int cuda_mmv_pack(uint32_t type, void *w, int64_t k, int64_t n, cudaStream_t s)
{
    if (!cuda_mmv_grouped(type, k) || n <= 0)
        return 0;
    if ((uintptr_t)w % 16 != 0)
        return -1;
    const int64_t runs = (type == QTYPE_Q6_K ? k / 256 : k / 32) / 8 * n;
    const unsigned grid = (unsigned)((runs + 255) / 256);
    uint8_t *p = (uint8_t *)w;
    /* the fields as GGUF's blocks hold them (quant_ref.c) and where q_run / q6_runs read them */
    if (type == QTYPE_Q4_0)
        klaunch(k_pack_runs<18>, grid, 256, 0, s, p, runs,
                run_map{ 2, { 0, 2 }, { 2, 16 }, { 0, q_run<16>::QS } });
    else if (type == QTYPE_Q8_0)
        klaunch(k_pack_runs<34>, grid, 256, 0, s, p, runs,
                run_map{ 2, { 0, 2 }, { 2, 32 }, { 0, q_run<32>::QS } });
    else /* Q6_K: d, scales, ql, qh */
        klaunch(k_pack_runs<210>, grid, 256, 0, s, p, runs,
                run_map{ 4, { 208, 192, 0, 128 }, { 2, 16, 128, 64 },
                         { 0, q6_runs::SC, q6_runs::QL, q6_runs::QH } });
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}

// ---- q8_1 activation quantizer --------------------------------------------------------------

/* One warp per q8_1 block, one element per lane: d = amax/127, q = rint(x·127/amax), as
 * quantize_q8_1_ref (engine/quant_ref.c), s = Σq·d; d and s rounded to half. */
__global__ void k_quantize_q8_1(const float *__restrict__ x, uint8_t *__restrict__ xq, int64_t nblk)
{
    kgrid_begin();
    const int64_t blk = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (blk >= nblk)
        return;
    const int lane = threadIdx.x % 32;
    const float v = x[blk * 32 + lane];
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const int q = __float2int_rn(__fmul_rn(v, id));
    int sum = q;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, o);
    uint8_t *b = xq + blk * 36;
    b[4 + lane] = (uint8_t)(int8_t)q;
    if (lane == 0)
        *(__half2 *)b = __halves2half2(__float2half_rn(d), __float2half_rn(__fmul_rn((float)sum, d)));
}

// ---- dispatch -------------------------------------------------------------------------------

/* Calls F.template operator()<traits>() for a supported type, as the GPU stores it with rows of
 * k elements (cuda_mmv_pack; k = 0: as GGUF stores it); returns -1 otherwise. */
template <class F> static int mmv_with_type(uint32_t type, F &&f, int64_t k = 0)
{
    const bool g = cuda_mmv_grouped(type, k);
    switch (type) {
    case QTYPE_F32: return f.template operator()<t_f32>();
    case QTYPE_F16: return f.template operator()<t_f16>();
    case QTYPE_BF16: return f.template operator()<t_bf16>();
    case QTYPE_Q4_0:
        return g ? f.template operator()<t_q4_0g>() : f.template operator()<t_q4_0>();
    case QTYPE_Q4_1: return f.template operator()<t_q4_1>();
    case QTYPE_Q5_0: return f.template operator()<t_q5_0>();
    case QTYPE_Q5_1: return f.template operator()<t_q5_1>();
    case QTYPE_Q8_0:
        return g ? f.template operator()<t_q8_0g>() : f.template operator()<t_q8_0>();
    case QTYPE_Q2_K: return f.template operator()<t_q2_k>();
    case QTYPE_Q3_K: return f.template operator()<t_q3_k>();
    case QTYPE_Q4_K: return f.template operator()<t_q4_k>();
    case QTYPE_Q5_K: return f.template operator()<t_q5_k>();
    case QTYPE_Q6_K:
        return g ? f.template operator()<t_q6_kg>() : f.template operator()<t_q6_k>();
    default: return -1;
    }
}

struct shape_of {
    int qk, bytes, align;
    template <class Q> int operator()()
    {
        qk = Q::BLK, bytes = Q::BYTES, align = Q::ALIGN;
        return 0;
    }
};

struct mmv_launcher {
    const mmv_args &a;
    bool glu;
    cudaStream_t s;
    template <class Q> int operator()() { return mmv_launch<Q>(a, glu, s); }
};

struct dequant_launcher {
    const void *w;
    int64_t total8;
    __half *out;
    cudaStream_t s;
    template <class Q> int operator()()
    {
        const unsigned blocks = (unsigned)((total8 + 255) / 256);
        klaunch(k_dequant_f16<Q>, blocks, 256, 0, s, (const uint8_t *)w, total8, out);
        return 0;
    }
};

int cuda_mmv_supported(uint32_t type)
{
    shape_of sh;
    return mmv_with_type(type, sh) == 0;
}

int cuda_mmv_wants_q8_1(uint32_t type)
{
    return cuda_mmv_supported(type) && type != QTYPE_F32 && type != QTYPE_F16 &&
           type != QTYPE_BF16;
}

void cuda_quantize_q8_1(const float *x, void *xq, int64_t k, int rows, cudaStream_t s)
{
    const int64_t nblk = k / 32 * rows;
    const int per = 256 / 32;
    if (nblk > 0)
        klaunch(k_quantize_q8_1, (unsigned)((nblk + per - 1) / per), 256, 0, s,
                x, (uint8_t *)xq, nblk);
}

/* Can the kernels take n rows of k elements of type at w (as the GPU stores them)?  sh gets
 * the type's shape. */
static bool mmv_shape_ok(uint32_t type, const void *w, int64_t k, int64_t n, shape_of &sh)
{
    return mmv_with_type(type, sh, k) == 0 && k > 0 && n > 0 && k % sh.qk == 0 &&
           n <= INT32_MAX && k / sh.qk * sh.bytes <= INT32_MAX && (uintptr_t)w % sh.align == 0;
}

/* rows > 1: several tokens (q8_1 types only), xq rows xs bytes apart, y (and the residual)
 * rows ys floats apart, MMV_T a launch. */
static int mmv_any(uint32_t type, const void *w, const void *w2, int64_t k, int64_t n,
                   const float *x, const void *xq, float *y, const struct mmv_epilogue *ep,
                   int act, bool glu, cudaStream_t s, int rows = 1, size_t xs = 0, size_t ys = 0)
{
    shape_of sh;
    if (!mmv_shape_ok(type, w, k, n, sh) || (uintptr_t)(glu ? w2 : w) % sh.align != 0)
        return -1;
    const int q8 = cuda_mmv_wants_q8_1(type);
    const void *xa = q8 ? xq : (const void *)x;
    if (!xa || (uintptr_t)xa % (q8 ? 4 : 16) != 0)
        return -1;
    mmv_args a;
    a.w = (const uint8_t *)w;
    a.w2 = (const uint8_t *)w2;
    a.x = xa;
    a.y = y;
    a.bias = ep ? ep->bias : nullptr;
    a.res = ep ? ep->residual : nullptr;
    a.nb = (int)(k / sh.qk);
    a.n = (int)n;
    a.act = act;
    a.nt = 1;
    a.xs = xs;
    a.ys = ys;
    if (rows > 1 && !q8)
        return -1;
    for (int t0 = 0; t0 < rows; t0 += MMV_T) {
        a.nt = min(MMV_T, rows - t0); /* (a lone last token takes the decode kernel) */
        a.x = (const uint8_t *)xa + t0 * xs;
        a.y = y + t0 * ys;
        a.res = ep && ep->residual ? ep->residual + t0 * ys : nullptr;
        mmv_launcher l{ a, glu, s };
        int rc = mmv_with_type(type, l, k);
        if (rc)
            return rc;
    }
    return 0;
}

int cuda_mmv(uint32_t type, const void *w, int64_t k, int64_t n, const float *x, const void *xq,
             float *y, const struct mmv_epilogue *ep, cudaStream_t s)
{
    return mmv_any(type, w, nullptr, k, n, x, xq, y, ep, MMV_ACT_NONE, false, s);
}

int cuda_mmv_glu(uint32_t type, const void *wg, const void *wu, int64_t k, int64_t n,
                 const float *x, const void *xq, enum mmv_act act, float *y, cudaStream_t s)
{
    return mmv_any(type, wg, wu, k, n, x, xq, y, nullptr, (int)act, true, s);
}

template <class Q1, class Q2>
static void mmv_pair_launch(const mmv_args &a1, const mmv_args &a2, cudaStream_t s)
{
    if (a1.n >= MMV_R4_MIN && a2.n >= MMV_R4_MIN) { /* as mmv_launch */
        const int g1 = (a1.n + 3) / 4;
        klaunch(k_mmv_pair<Q1, Q2, 4>, g1 + (a2.n + 3) / 4, MMV_THREADS, 0, s, a1, a2, g1);
    } else {
        klaunch(k_mmv_pair<Q1, Q2, 1>, a1.n + a2.n, MMV_THREADS, 0, s, a1, a2, a1.n);
    }
}

int cuda_mmv_pair(uint32_t t1, const void *w1, int64_t n1, uint32_t t2, const void *w2,
                  int64_t n2, int64_t k, const void *xq, float *y, cudaStream_t s)
{
    if (t2 != QTYPE_Q6_K || (t1 != QTYPE_Q4_K && t1 != QTYPE_Q5_K))
        return 1;
    shape_of sh;
    if (!mmv_shape_ok(t1, w1, k, n1, sh) || !mmv_shape_ok(t2, w2, k, n2, sh) || !xq ||
        (uintptr_t)xq % 4 != 0)
        return -1;
    const bool g = cuda_mmv_grouped(t2, k);
    mmv_args a1;
    memset(&a1, 0, sizeof a1);
    a1.x = xq;
    a1.nb = (int)(k / 256);
    a1.nt = 1;
    mmv_args a2 = a1;
    a1.w = (const uint8_t *)w1, a1.y = y, a1.n = (int)n1;
    a2.w = (const uint8_t *)w2, a2.y = y + n1, a2.n = (int)n2;
    /* the pairs that models ship, spelled out: every pair of types would be 13 × 13 kernels */
    if (t1 == QTYPE_Q4_K)
        g ? mmv_pair_launch<t_q4_k, t_q6_kg>(a1, a2, s)
          : mmv_pair_launch<t_q4_k, t_q6_k>(a1, a2, s);
    else
        g ? mmv_pair_launch<t_q5_k, t_q6_kg>(a1, a2, s)
          : mmv_pair_launch<t_q5_k, t_q6_k>(a1, a2, s);
    return 0;
}

int cuda_mmv_rows(uint32_t type, const void *w, int64_t k, int64_t n, int rows, const void *xq,
                  float *y, const struct mmv_epilogue *ep, cudaStream_t s)
{
    return mmv_any(type, w, nullptr, k, n, nullptr, xq, y, ep, MMV_ACT_NONE, false, s, rows,
                   (size_t)(k / 32) * 36, (size_t)n);
}

int cuda_mmv_glu_rows(uint32_t type, const void *wg, const void *wu, int64_t k, int64_t n,
                      int rows, const void *xq, enum mmv_act act, float *y, cudaStream_t s)
{
    return mmv_any(type, wg, wu, k, n, nullptr, xq, y, nullptr, (int)act, true, s, rows,
                   (size_t)(k / 32) * 36, (size_t)n);
}

int cuda_dequant_f16(uint32_t type, const void *w, int64_t k, int64_t n, __half *out,
                     cudaStream_t s)
{
    shape_of sh;
    if (!mmv_shape_ok(type, w, k, n, sh) || (uintptr_t)out % 16 != 0)
        return -1;
    dequant_launcher l{ w, k * n / 8, out, s };
    return mmv_with_type(type, l, k);
}
