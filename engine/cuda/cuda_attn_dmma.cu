/*
 * cuda_attn_dmma.cu — decode attention on the tensor cores (k_dec_mma): the query heads of one
 * KV head against its cache (f16 or q8_0 rows), each warp a chunk of the slots, 16 slots per
 * round as two mma.sync.m16n8k16 products (S = Q·Kᵀ, then Oᵀ += Vᵀ·Pᵀ) with an online softmax
 * between them.  The grid and the partials are k_dec_wflash's (cuda_attn_split.cu); the last
 * block of a KV head combines them and rounds for W_o, or k_dec_flash_reduce does where the
 * group's outputs do not fill the 256-element blocks of that rounding.  Serves contexts over
 * 256 slots (any under MHA), head sizes 64 and 128, up to 8 query heads per KV head, every
 * policy: with H2O and Keyformer it also writes the logits that k_dec_wscore turns into the
 * slots' scores; Keyformer's noise is added to them by k_dm_noisy on the side stream.
 * It also does k_qk_store's work for its KV head (the queries normed and rotated into shared
 * memory by every block, the newest key and value written by the block that reads them), so
 * that no kernel runs between the Q/K/V products and this one.  The grid fills the GPU: the
 * first nsm mod G KV heads take one block more (wf_nby), each head's context spread over its
 * blocks in whole rounds of 16 (wf_block) and a block's rounds evenly over its warps (wf_warp).
 *
 * Why: under GQA the batched split kernels read a key once for its group but do every
 * multiply-add on the CUDA cores, one round of loads per block between barriers; at depth they
 * moved 1.0-1.2 TB/s (Llama-3-8B shape).  Here the group's products cost a few tensor-core
 * instructions per 16 slots, and the warps have no barrier until the block's 8 meet at the end.
 * H100, tg64: Llama-3 shape d4096/d16384 338.8/240.7 -> 368.0/303.8 (f16), 342.3/246.9 ->
 * 367.3/320.0 (q8_0); under MHA it is a little faster than k_dec_wflash too (Llama-2 shape f16
 * 309/185 -> 314/189, q8_0 326/222 -> 335/226).  Tried and not kept: the rows through cp.async
 * into shared memory, three stages a warp (ldmatrix for both operands, 128 registers; 290 against
 * 300 at d16384), chunks not rounded to whole rounds of 16 (the last round's latency for a few
 * slots: 300 against 303).  Session 11, also not kept (H100, Llama-3 shape tg at d4096/d16384,
 * A/B in one run): the rows through the bulk copy engine (cp.async.bulk into a ring of 1-3
 * stages a warp, positions included, mbarrier waits): 3 stages 353/295 against 376/306-311, 2
 * stages 368/295, 1 stage 370/305; an L2 prefetch 1-4 rounds ahead in the loop: 372/299-290
 * against 372/308 (Llama-2 shape d16384 191 -> 147 at 4 rounds); the first round's registers
 * loaded before the grid wait: 369.1/306.8 against 371.5/307.7 (means of three).  More bytes in
 * flight per SM made it slower every time.
 *
 * Layout (lane = 4r + t).  S = Q·Kᵀ: M = 16 rows, the group's query heads as f16 hi parts in
 * rows 0..7 and their lo parts in rows 8..15 (one product gives both), N = 8 slots, K = 16
 * dimensions.  Oᵀ = Vᵀ·Pᵀ: M = 16 dimensions, N = 8 query heads, K = 16 slots, once for P's hi
 * and once for its lo part.  S's accumulator (head r, slots 2t, 2t+1 and 2t+8, 2t+9) is
 * already Pᵀ's B fragment.  Both products sum over K, so the order of the dimensions inside
 * S is free: a lane loads whole 16-byte pieces of its rows and the query's fragments take the
 * same dimensions; Vᵀ's fragment wants two slots' halves at one dimension per register, which
 * a byte permute of the two rows' words gives.
 * For f16 rows (q8_0's: dm_kv<HD, 1> below):
 *   keys:   lane (r, t) loads rows r and 8 + r, pieces p·64 + 16t bytes (dims p·32 + 8t ..+8);
 *           k-step 2p + σ takes words 2σ (pair t) and 2σ+1 (pair t + 4) of piece p.
 *   values: lane (r, t) loads rows 2t, 2t+1, 2t+8, 2t+9, pieces p·128 + 16r bytes; row r of
 *           dim tile 4p + w is dimension 64p + 8r + 2w, row r + 8 the next one.
 * The next round's keys are asked for once S is taken, its values once P·V is: a warp always
 * has a round of loads in flight, with no extra registers.
 * Precision: the query and the probabilities are each the sum of two f16 values (hi + lo, to
 * ~2^-22); keys and values are f16 in the cache, or q8_0 integers (exact in f16) whose scales
 * are applied in f32; sums in f32.  So the result matches the CUDA-core kernels to float
 * rounding, not to f16's.
 */
#include <cfloat>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "cuda_attn.cuh"
#include "cuda_launch.cuh"
#include "cuda_mma.cuh"
#include "cuda_round.cuh"

#define DM_GROUP 8 /* query heads per KV head served: rows 0..7 of the fragments */
#define DM_BLOCKS 128 /* blocks per KV head at most (the fused combine's weights) */

/* (x, y) as hi + lo, two registers of two halves each */
__device__ __forceinline__ void split_h2(float x, float y, uint32_t &hi, uint32_t &lo)
{
    __half2 h = __floats2half2_rn(x, y);
    float2 f = __half22float2(h);
    hi = *reinterpret_cast<uint32_t *>(&h);
    lo = pack_h2(x - f.x, y - f.y);
}

__device__ __forceinline__ uint32_t u4w(const uint4 &v, int i)
{
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

/*
 * A warp's round of 16 slots in registers, per cache type: the keys (rows r and 8 + r), the
 * values (rows 2t, 2t+1, 2t+8, 2t+9), their products with the query (dots: this lane's slots
 * 2t, 2t+1, 2t+8, 2t+9 for head r) and Σ p·v into Oᵀ (pv), and which dimension row rr of dim
 * tile mt is (dim).  Rows past n load as zeros (never NaN).
 */
template <int HD, int Q8> struct dm_kv;

/* f16: keys in 16-byte pieces p·64 + 16t (dims 32p + 8t ..+8), values in pieces p·128 + 16r;
 * dim tile 4p + w, row r: dimension 64p + 8r + 2w, row r + 8 the next one. */
template <int HD> struct dm_kv<HD, 0> {
    uint4 kk[2][HD / 32], vv[4][HD / 64];
    __device__ __forceinline__ void keys(const uint8_t *K, int rowb, int n, int b0, int r, int t)
    {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const int i = b0 + j * 8 + r;
            const uint4 *row = (const uint4 *)(K + (size_t)i * rowb);
#pragma unroll
            for (int p = 0; p < HD / 32; p++)
                kk[j][p] = i < n ? row[p * 4 + t] : make_uint4(0, 0, 0, 0);
        }
    }
    __device__ __forceinline__ void values(const uint8_t *V, int rowb, int n, int b0, int r, int t)
    {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int i = b0 + 2 * t + (j & 1) + (j >> 1) * 8;
            const uint4 *row = (const uint4 *)(V + (size_t)i * rowb);
#pragma unroll
            for (int p = 0; p < HD / 64; p++)
                vv[j][p] = i < n ? row[p * 8 + r] : make_uint4(0, 0, 0, 0);
        }
    }
    /* even and odd k-steps in separate sums (shorter chains of dependent products) */
    __device__ __forceinline__ void dots(const uint32_t (&qa)[HD / 16][4], float (&d)[4]) const
    {
        float s[2][2][4] = {};
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++)
#pragma unroll
            for (int j = 0; j < 2; j++)
                mma16816(s[j][ks & 1], qa[ks], u4w(kk[j][ks / 2], 2 * (ks & 1)),
                         u4w(kk[j][ks / 2], 2 * (ks & 1) + 1));
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float *sj = s[e >> 1][0], *sk = s[e >> 1][1];
            d[e] = (sj[e & 1] + sj[2 + (e & 1)]) + (sk[e & 1] + sk[2 + (e & 1)]);
        }
    }
    __device__ __forceinline__ void pv(const float (&x)[4], float (&o)[HD / 16][4]) const
    {
        uint32_t ph0, pl0, ph1, pl1; /* Pᵀ's B fragments: S's accumulator layout */
        split_h2(x[0], x[1], ph0, pl0);
        split_h2(x[2], x[3], ph1, pl1);
#pragma unroll
        for (int p = 0; p < HD / 64; p++)
#pragma unroll
            for (int w = 0; w < 4; w++) {
                const uint32_t v0 = u4w(vv[0][p], w), v1 = u4w(vv[1][p], w);
                const uint32_t v2 = u4w(vv[2][p], w), v3 = u4w(vv[3][p], w);
                const uint32_t va[4] = { __byte_perm(v0, v1, 0x5410u), __byte_perm(v0, v1, 0x7632u),
                                         __byte_perm(v2, v3, 0x5410u), __byte_perm(v2, v3, 0x7632u) };
                mma16816(o[p * 4 + w], va, ph0, ph1);
                mma16816(o[p * 4 + w], va, pl0, pl1);
            }
    }
    static __device__ __forceinline__ int dim(int mt, int rr)
    {
        return (mt / 4) * 64 + 8 * (rr % 8) + 2 * (mt % 4) + rr / 8;
    }
};

/* Four int8 (bytes of x) as two f16 pairs, exactly: each byte biased by 128 into the mantissa
 * of 1024 by a byte permute, then 1152 off. */
__device__ __forceinline__ uint32_t i8_h2(uint32_t biased_pair)
{
    const __half2 k = __halves2half2(__ushort_as_half(0x6480), __ushort_as_half(0x6480));
    __half2 h = __hsub2(*reinterpret_cast<const __half2 *>(&biased_pair), k);
    return *reinterpret_cast<uint32_t *>(&h);
}

/* q8_0 (kv_cache.c's rows: HD int8, then HD/32 f16 scales): keys in 8-byte pieces 32p + 8t
 * (the f16 dims), a 32-block's products scaled by the slot's key scale; values in 4-byte pieces
 * 32b + 4r, the probabilities scaled by the slot's value scale of block b; dim tile 2b + hh,
 * row r: dimension 32b + 4r + 2hh, row r + 8 the next one. */
template <int HD> struct dm_kv<HD, 1> {
    static constexpr int NB = HD / 32, SW = (NB + 1) / 2; /* blocks; scale words a row */
    uint2 kq[2][NB];
    uint32_t vq[4][NB], ksc[4][SW], vsc[4][SW];
    static __device__ __forceinline__ void scales(const uint8_t *row, int in, uint32_t (&w)[SW])
    {
        if (SW == 2) {
            const uint2 u = in ? *(const uint2 *)(row + HD) : make_uint2(0, 0);
            w[0] = u.x;
            w[SW - 1] = u.y;
        } else {
            w[0] = in ? *(const uint32_t *)(row + HD) : 0u;
        }
    }
    static __device__ __forceinline__ float scale(const uint32_t (&w)[SW], int b)
    {
        return __half2float(__ushort_as_half((unsigned short)(w[b / 2] >> (16 * (b & 1)))));
    }
    __device__ __forceinline__ void keys(const uint8_t *K, int rowb, int n, int b0, int r, int t)
    {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const int i = b0 + j * 8 + r;
            const uint8_t *row = K + (size_t)i * rowb;
#pragma unroll
            for (int p = 0; p < NB; p++)
                kq[j][p] = i < n ? *(const uint2 *)(row + p * 32 + t * 8) : make_uint2(0, 0);
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int i = b0 + 2 * t + (j & 1) + (j >> 1) * 8;
            scales(K + (size_t)i * rowb, i < n, ksc[j]);
        }
    }
    __device__ __forceinline__ void values(const uint8_t *V, int rowb, int n, int b0, int r, int t)
    {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int i = b0 + 2 * t + (j & 1) + (j >> 1) * 8;
            const uint8_t *row = V + (size_t)i * rowb;
#pragma unroll
            for (int b = 0; b < NB; b++)
                vq[j][b] = i < n ? *(const uint32_t *)(row + b * 32 + r * 4) : 0u;
            scales(row, i < n, vsc[j]);
        }
    }
    __device__ __forceinline__ void dots(const uint32_t (&qa)[HD / 16][4], float (&d)[4]) const
    {
        d[0] = d[1] = d[2] = d[3] = 0.0f;
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int p = 0; p < NB; p++) {
                const uint32_t x = kq[j][p].x ^ 0x80808080u, y = kq[j][p].y ^ 0x80808080u;
                float c[4] = {};
                mma16816(c, qa[2 * p], i8_h2(__byte_perm(x, 0x64646464u, 0x4140)),
                         i8_h2(__byte_perm(x, 0x64646464u, 0x4342)));
                mma16816(c, qa[2 * p + 1], i8_h2(__byte_perm(y, 0x64646464u, 0x4140)),
                         i8_h2(__byte_perm(y, 0x64646464u, 0x4342)));
                d[2 * j] += scale(ksc[2 * j], p) * (c[0] + c[2]);
                d[2 * j + 1] += scale(ksc[2 * j + 1], p) * (c[1] + c[3]);
            }
    }
    __device__ __forceinline__ void pv(const float (&x)[4], float (&o)[HD / 16][4]) const
    {
#pragma unroll
        for (int b = 0; b < NB; b++) {
            uint32_t ph0, pl0, ph1, pl1;
            split_h2(x[0] * scale(vsc[0], b), x[1] * scale(vsc[1], b), ph0, pl0);
            split_h2(x[2] * scale(vsc[2], b), x[3] * scale(vsc[3], b), ph1, pl1);
            const uint32_t v0 = vq[0][b] ^ 0x80808080u, v1 = vq[1][b] ^ 0x80808080u;
            const uint32_t v2 = vq[2][b] ^ 0x80808080u, v3 = vq[3][b] ^ 0x80808080u;
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const uint32_t sel = hh ? 0x7632u : 0x5410u;
                const uint32_t t01 = __byte_perm(v0, v1, sel), t23 = __byte_perm(v2, v3, sel);
                const uint32_t va[4] = { i8_h2(__byte_perm(t01, 0x64646464u, 0x4240)),
                                         i8_h2(__byte_perm(t01, 0x64646464u, 0x4341)),
                                         i8_h2(__byte_perm(t23, 0x64646464u, 0x4240)),
                                         i8_h2(__byte_perm(t23, 0x64646464u, 0x4341)) };
                mma16816(o[2 * b + hh], va, ph0, ph1);
                mma16816(o[2 * b + hh], va, pl0, pl1);
            }
        }
    }
    static __device__ __forceinline__ int dim(int mt, int rr)
    {
        return (mt / 2) * 32 + 4 * (rr % 8) + 2 * (mt % 2) + rr / 8;
    }
};

/* The positions of the round's slots 2t, 2t+1, 2t+8, 2t+9 (INT_MAX past n: never visible).
 * Without load, 0 for the slots before n: a decode step's cache holds only earlier positions,
 * so where no sliding window or ALiBi asks for a position, every slot is visible and the
 * positions need not be read. */
__device__ __forceinline__ void dm_pos(const int32_t *P, int n, int b0, int t, int (&kp)[4],
                                       int load)
{
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int i = b0 + 2 * t + (j & 1) + (j >> 1) * 8;
        kp[j] = i >= n ? INT_MAX : load ? P[i] : 0;
    }
}

/* H2O's and Keyformer's share of a round: head r's logits of this lane's slots (x, −inf where
 * invisible) into the cache's logit row, for k_dec_wscore (Keyformer's noise is added by
 * k_dm_noisy).  Until session 18 a Keyformer variant drew the noise here and kept the noisy
 * logits' online softmax (KF_CUDA_KF_SIDE=0): on the path between a round's keys and its P·V,
 * 3% slower at depth 16384 with an f16 cache and 10% with q8_0 (H100, tg64). */
__device__ __forceinline__ void dm_score(const struct attn_args &a, const float (&x)[4], int h,
                                         int hv, int s0, int b0, int n, int t)
{
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const int i = b0 + 2 * t + (e & 1) + (e >> 1) * 8;
        if (hv && i < n)
            a.logits[(size_t)h * a.kv.cap + s0 + i] = x[e];
    }
}

template <int HD, int Q8, bool FUSE, bool SC>
__global__ void __launch_bounds__(256, 1) k_dec_mma(struct attn_args a, const struct rope_args ro,
                                                    int mode, void *xq, int pf)
{
    constexpr int KS = HD / 16; /* k-steps of S */
    constexpr int MT = HD / 16; /* dim tiles of Oᵀ */
    __shared__ float sm_o[8][DM_GROUP][HD + 4], sm_m[8][DM_GROUP], sm_l[8][DM_GROUP];
    __shared__ __align__(16) float sm_q[DM_GROUP][HD]; /* the group's queries, normed, rotated */
    const int g = blockIdx.x, group = a.n_head / a.G, hq0 = g * group;
    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, r = lane / 4, t = lane % 4;
    const int qpos = a.st->pos0; /* the step record: written before the call (cuda_launch.cuh) */
    /* the count is the earlier steps' (safe before the wait: cuda_launch.cuh) */
    const int count = a.kv.n_used[g] + 1, nby = wf_nby(gridDim.y, a.wf_extra, g);
    const int cb = wf_block(count, nby);
    int s0, n; /* (none in a block past nby) */
    wf_warp(count, nby, blockIdx.y, warp, s0, n);
    const size_t row0 = (size_t)g * a.kv.cap + s0;
    const int rowb = a.kv.rowb;
    const uint8_t *K = (const uint8_t *)a.kv.k + row0 * rowb, *V = (const uint8_t *)a.kv.v + row0 * rowb;
    /* pf & 2: this kernel does k_qk_store's work for its KV head (no kernel of its own between
     * the Q/K/V products and this one): each block norms and rotates its group's queries into
     * shared memory, and the block whose chunks hold the newest slot writes that slot's key and
     * value first.  The rotations' cosines and sines of this lane's pairs (lane, lane + 32) are
     * computed before the wait. */
    const int store = pf & 2, half = ro.n_rot / 2;
    float rc[2] = { 1.0f, 1.0f }, rs[2] = { 0.0f, 0.0f };
    if (store)
#pragma unroll
        for (int j = 0; j < 2; j++)
            if (lane + WARP * j < half)
                rope_cs(ro, lane + WARP * j, (float)qpos, &rc[j], &rs[j]);
    if (pf & 1) { /* the first two rounds' rows asked into L2 while the Q/K/V products end
                       * (the newest slot is written after the wait: L2 holds the new row then) */
        const size_t bytes = (size_t)min(n, 32) * rowb;
        for (size_t o = (size_t)lane * 128; o < bytes; o += WARP * 128) {
            asm volatile("prefetch.global.L2 [%0];" ::"l"(K + o));
            asm volatile("prefetch.global.L2 [%0];" ::"l"(V + o));
        }
    }
    kgrid_begin();
    if (blockIdx.y * cb >= count) /* the whole block (its warps meet below) */
        return;
    if (store) {
        if (warp < group) { /* qk_head's arithmetic, into shared memory */
            const float *q = a.qkv + (size_t)(hq0 + warp) * HD;
            float *dq = sm_q[warp];
            for (int i = lane; i < HD; i += WARP)
                dq[i] = q[i];
            if (ro.q_norm)
                head_rmsnorm(dq, ro.q_norm, HD, ro.eps);
            __syncwarp();
#pragma unroll
            for (int j = 0; j < 2; j++)
                if (lane + WARP * j < half)
                    rope_rot(ro, dq, lane + WARP * j, rc[j], rs[j]);
        }
        if (blockIdx.y == (count - 1) / cb && warp >= 6) /* read by this block's last warp */
            qk_head(a, ro, 0, a.n_head + (warp == 6 ? 0 : a.G) + g);
        __syncthreads();
    }
    const int hv = r < group, h = hq0 + (hv ? r : 0);
    /* the slots' positions: for a window's or ALiBi's logits, or pf & 4 */
    const int ldpos = a.alibi || a.kv.swa > 0 || (pf & 4);
    /* SC (H2O, Keyformer): the logits of the slots for k_dec_wscore (and k_dm_noisy) */
    const int scoring = SC && a.st->scoring;

    /* A fragments of S: rows r (head r, hi) and r + 8 (head r, lo) */
    uint32_t qa[KS][4];
    {
        const float *q = store ? sm_q[h - hq0] : a.qkv + (size_t)h * HD;
#pragma unroll
        for (int p = 0; p < HD / 32; p++) {
            const float4 *q4 = (const float4 *)(q + p * 32 + t * 8);
            const float4 z = make_float4(0.f, 0.f, 0.f, 0.f), x = hv ? q4[0] : z, y = hv ? q4[1] : z;
            split_h2(x.x, x.y, qa[2 * p][0], qa[2 * p][1]);
            split_h2(x.z, x.w, qa[2 * p][2], qa[2 * p][3]);
            split_h2(y.x, y.y, qa[2 * p + 1][0], qa[2 * p + 1][1]);
            split_h2(y.z, y.w, qa[2 * p + 1][2], qa[2 * p + 1][3]);
        }
    }
    const int32_t *P = a.kv.pos + row0;
    /* Oᵀ: o[mt][0..1] = dim(mt, r), heads 2t, 2t+1; o[mt][2..3] = dim(mt, r + 8) */
    float o[MT][4], m = -INFINITY, l = 0.0f;
#pragma unroll
    for (int j = 0; j < MT; j++)
        o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    dm_kv<HD, Q8> kv;
    int kp[4];
    kv.keys(K, rowb, n, 0, r, t);
    kv.values(V, rowb, n, 0, r, t);
    dm_pos(P, n, 0, t, kp, ldpos);
    for (int b0 = 0; b0 < n; b0 += 16) { /* warp-uniform */
        float x[4]; /* head r, slots 2t, 2t+1, 2t+8, 2t+9 of the round */
        kv.dots(qa, x);
        if (b0 + 16 < n) /* the next round's keys, in flight during this round's softmax and P·V */
            kv.keys(K, rowb, n, b0 + 16, r, t);
#pragma unroll
        for (int e = 0; e < 4; e++)
            x[e] = hv && visible(kp[e], qpos, a.kv.swa) ? att_logit(a, x[e], h, kp[e], qpos)
                                                        : -INFINITY;
        if (SC && scoring)
            dm_score(a, x, h, hv, s0, b0, n, t);
        const float c = online_row<4>(x, m, l);
        /* the factors of heads 2t and 2t + 1 (lanes 8t and 8t + 4 hold them) */
        const float ca = __shfl_sync(0xffffffffu, c, 8 * t), cb = __shfl_sync(0xffffffffu, c, 8 * t + 4);
#pragma unroll
        for (int j = 0; j < MT; j++) {
            o[j][0] *= ca;
            o[j][1] *= cb;
            o[j][2] *= ca;
            o[j][3] *= cb;
        }
        kv.pv(x, o);
        if (b0 + 16 < n) {
            kv.values(V, rowb, n, b0 + 16, r, t);
            dm_pos(P, n, b0 + 16, t, kp, ldpos);
        }
    }
    l = quad_sum(l);
    /* lanes hold heads 2t and 2t + 1 of Oᵀ; the softmax state of head r */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const int d0 = dm_kv<HD, Q8>::dim(mt, r), d1 = dm_kv<HD, Q8>::dim(mt, r + 8);
        if (2 * t < group) {
            sm_o[warp][2 * t][d0] = o[mt][0];
            sm_o[warp][2 * t][d1] = o[mt][2];
        }
        if (2 * t + 1 < group) {
            sm_o[warp][2 * t + 1][d0] = o[mt][1];
            sm_o[warp][2 * t + 1][d1] = o[mt][3];
        }
    }
    if (hv && t == 0) {
        sm_m[warp][r] = m;
        sm_l[warp][r] = l;
    }
    __syncthreads();
    /* the block's 8 chunks met: one partial per block and query head, as k_dec_wflash's */
    for (int idx = threadIdx.x; idx < group * HD; idx += blockDim.x) {
        const int j = idx / HD, d = idx % HD;
        block_partial<0>(a, &sm_m[0][j], &sm_l[0][j], DM_GROUP, &sm_o[0][j][d],
                          DM_GROUP * (HD + 4), hq0 + j, d, HD);
    }
    if (!FUSE)
        return;
    /* The last of the KV head's blocks to finish combines them all (k_dec_flash_reduce's sums,
     * without a kernel of its own): out = Σ_s o_s·w_s / Σ_s l_s·w_s, w_s = exp(m_s − M), and
     * rounds it for W_o.  The counter is the one k_dec_short uses; its last block resets it. */
    __shared__ float sw[DM_GROUP][DM_BLOCKS], sl[DM_GROUP];
    __shared__ int last;
    const int nsl = (count + cb - 1) / cb; /* blocks with slots */
    if (!block_arrive(a.cnt + a.n_head * HD / 256 + 1 + g, nsl, &last))
        return;
    if (warp < group) {
        const float *st = a.pstats + (size_t)(hq0 + warp) * gridDim.y * 4;
        float M = -INFINITY, Ls = 0.0f;
        for (int b = lane; b < nsl; b += WARP)
            M = fmaxf(M, __ldcg(st + b * 4));
        M = warp_max(M);
        for (int b = lane; b < nsl; b += WARP) {
            const float mb = __ldcg(st + b * 4), w = mb == -INFINITY ? 0.0f : expf(mb - M);
            sw[warp][b] = w;
            Ls += __ldcg(st + b * 4 + 1) * w;
        }
        Ls = warp_sum(Ls);
        if (lane == 0)
            sl[warp] = Ls;
    }
    __syncthreads();
    for (int c0 = 0; c0 < group * HD; c0 += 256) { /* whole blocks of 256 for the rounding */
        const int idx = c0 + threadIdx.x, valid = idx < group * HD;
        float o = 0.0f;
        if (valid) {
            const int j = idx / HD, d = idx % HD;
            const float *pp = a.partial + (size_t)(hq0 + j) * HD + d;
            const size_t stride = (size_t)a.n_head * HD;
#pragma unroll 8
            for (int b = 0; b < nsl; b++)
                o += __ldcg(pp + b * stride) * sw[j][b];
            o = sl[j] > 0.0f ? o / sl[j] : 0.0f;
            a.out[(size_t)hq0 * HD + idx] = o;
        }
        if (mode != ACT_NONE)
            round_chunk(o, valid, 0, (int64_t)hq0 * HD + idx, mode, xq, NULL);
    }
}

/*
 * Keyformer's share of a k_dec_mma call, off the attention's path: k_dec_mma ran as for H2O (the
 * plain logits into the logit rows) and this kernel, on the side stream before k_dec_wscore,
 * turns them into the noisy logits (x + G)/τ and their softmax statistics per tile of 256 slots
 * (pstats[h][tile][2..3]: k_dec_mma's records of the same call hold only [0..1]), which
 * k_dec_wscore combines.  Same noise and formula as k_dec_wflash's (and the CPU's); the
 * statistics differ from an online softmax by the order of the sums.  A thread a slot, so that the
 * blocks are short (chunks of k_dec_mma's size, a thread looping over 8 slots, took the blocks'
 * places from the layer's products for longer; KF_CUDA_KF_TILE=512 or 1024, 2 or 4 slots a
 * thread, measured within noise of 256).  Why: drawn inside k_dec_mma, the noise and the
 * noisy online softmax sat between each round's keys and its P·V (Llama-2 shape, 50% of 16384:
 * 67.1 µs a layer against 56.8 for a window of the same size, ncu).
 */
__global__ void __launch_bounds__(256) k_dm_noisy(struct attn_args a, int tile)
{
    __shared__ float sm[8][2];
    kgrid_begin();
    const int g = blockIdx.x, group = a.n_head / a.G, count = a.kv.n_used[g] + 1;
    const int s0 = blockIdx.y * tile, warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    if (!a.st->scoring || s0 >= count)
        return;
    const int qpos = a.st->pos0, n = min(tile, count - s0);
    const float inv_tau = 1.0f / kv_tau(a.conf, qpos);
    const int32_t *P = a.kv.pos + (size_t)g * a.kv.cap + s0;
    for (int j = 0; j < group; j++) {
        const int h = g * group + j;
        const uint64_t rk = kn_row_key(a.kv.layer, h, qpos);
        const float *x = a.logits + (size_t)h * a.kv.cap + s0;
        float *y = a.noisy + (size_t)h * a.kv.cap + s0;
        float m = -INFINITY, l = 0.0f; /* this thread's max and sum */
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float v = x[i] != -INFINITY
                                ? (x[i] + kn_gumbel(rk, a.seed_key, P[i])) * inv_tau
                                : -INFINITY;
            y[i] = v;
            if (v != -INFINITY) {
                const float nm = fmaxf(m, v);
                l = l * expf(m - nm) + expf(v - nm);
                m = nm;
            }
        }
        const float M = warp_max(m); /* the warp's, then the block's (8 warps) */
        l = warp_sum(m == -INFINITY ? 0.0f : l * expf(m - M));
        if (lane == 0) {
            sm[warp][0] = M;
            sm[warp][1] = l;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            float *st = a.pstats + ((size_t)h * gridDim.y + blockIdx.y) * 4;
            warps_ml(&sm[0][0], &sm[0][1], 2, st[2], st[3]);
        }
        __syncthreads();
    }
}

/* Slots per k_dm_noisy block: 256 unless KF_CUDA_KF_TILE asks for another multiple of 256 */
int dm_noisy_tile(void)
{
    const char *e = getenv("KF_CUDA_KF_TILE");
    const int t = e ? atoi(e) : 0;
    return t >= 256 && t % 256 == 0 ? t : 256;
}

void dm_noisy_launch(const struct attn_args *a, int tile, cudaStream_t s)
{
    klaunch(k_dm_noisy, dim3(a->G, (a->span + tile - 1) / tile), 256, 0, s, *a, tile);
}

/* The kernel for (head size, cache type, fused, logits for the scores). */
template <int HD, int Q8>
static void (*dm_kernel(int fused, int sc))(struct attn_args, const struct rope_args, int, void *,
                                            int)
{
    if (fused)
        return sc ? k_dec_mma<HD, Q8, true, true> : k_dec_mma<HD, Q8, true, false>;
    return sc ? k_dec_mma<HD, Q8, false, true> : k_dec_mma<HD, Q8, false, false>;
}

int dec_mma_serves(const struct attn_args *a)
{
    const char *e = getenv("KF_CUDA_DMMA");
    const int group = a->n_head / a->G, force = e && !strcmp(e, "1");
    if ((e && !strcmp(e, "0")) || group > DM_GROUP || (a->hd != 64 && a->hd != 128) ||
        kdevice_major() < 8)
        return 0;
    /* Under GQA wherever k_dec_short does not serve, over DEC_VS slots (until session 16 over
     * 1024: from 257 to 1024 the split kernels were 2-4% slower on the Llama-2 shape and 8-11% on
     * the Llama-3 shape, tg64, H100); under MHA from the first slot on (against k_dec_short,
     * Llama-2 shape, tg64 at depth 0 / 64 / 128 / 192: 444-448 either way, then 440 -> 454,
     * 425 -> 453, 416 -> 451; the Llama-3 shape's k_dec_short is 4% faster at depth 0) */
    return force || a->span > DEC_VS || group == 1;
}

int dec_mma_launch(struct attn_args *a, const struct rope_args *r, int nsm, int mode, int sc,
                   int *fused, cudaStream_t s)
{
    const char *fe = getenv("KF_CUDA_DMMA_FUSE");
    const int group = a->n_head / a->G;
    if (!dec_mma_serves(a))
        return 0;
    /* one wave: a block of 8 warps per SM (~190 registers a thread) over the KV heads, the
     * first nsm mod G heads a block more (wf_extra: Llama-3's 8 KV heads 17 and 16 blocks on
     * 132 SMs, the blocks past a head's count leaving at once); KF_CUDA_WF_BLOCKS=n asks for n
     * blocks per KV head (tests) */
    const char *be = getenv("KF_CUDA_WF_BLOCKS");
    const int lim = min(DM_BLOCKS, (a->span + 8 * 16 - 1) / (8 * 16));
    const int asked = be ? max(0, atoi(be)) : 0;
    int bph = asked ? asked : max(1, nsm / a->G);
    a->wf_extra = !asked && nsm > a->G && bph < lim ? nsm % a->G : 0;
    bph = min(bph + (a->wf_extra > 0), lim);
    const dim3 grid(a->G, bph);
    /* the blocks combine themselves unless the rounding for W_o needs 256-element blocks that
     * a KV head's outputs do not fill (then k_dec_flash_reduce; KF_CUDA_DMMA_FUSE=0 forces it) */
    *fused = a->cnt && (mode != ACT_Q8_256 || group * a->hd % 256 == 0) &&
             !(fe && !strcmp(fe, "0"));
    void (*k)(struct attn_args, const struct rope_args, int, void *, int) =
        a->hd == 64 ? (a->kv.q8 ? dm_kernel<64, 1>(*fused, sc) : dm_kernel<64, 0>(*fused, sc))
                    : (a->kv.q8 ? dm_kernel<128, 1>(*fused, sc) : dm_kernel<128, 0>(*fused, sc));
    const char *pe = getenv("KF_CUDA_DMMA_PF"); /* 0: no L2 prefetch before the wait (A/B) */
    /* the cache write and the queries' rotation in this kernel unless KF_CUDA_DMMA_QK=0 (A/B):
     * then k_qk_store runs before it */
    const char *qe = getenv("KF_CUDA_DMMA_QK");
    const int store = !(qe && !strcmp(qe, "0"));
    if (!store)
        qk_store_launch(a, r, s);
    /* KF_CUDA_DMMA_POS=1: the positions read even where they cannot matter (A/B, tests) */
    const char *ps = getenv("KF_CUDA_DMMA_POS");
    const int allpos = ps && !strcmp(ps, "1");
    klaunch(k, grid, 256, 0, s, *a, *r, mode, a->out_q,
            !(pe && !strcmp(pe, "0")) | store << 1 | allpos << 2);
    return bph;
}
