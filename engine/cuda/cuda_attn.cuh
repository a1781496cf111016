/*
 * cuda_attn.cuh — device code shared by the attention files: cuda_attn.cu (the cache write,
 * prefill, eviction), cuda_attn_dec.cu and cuda_attn_split.cu (decode): tile sizes, warp
 * reductions, the visibility rule, the per-head QK-norm + RoPE + cache write, and the decode
 * kernels' L2 prefetch, batched row loads, dot products and Σ p·v.
 */
#ifndef KF_CUDA_ATTN_CUH
#define KF_CUDA_ATTN_CUH

#include "cuda_internal.h"
#include "cuda_ops.h"

#define WARP 32
#define DEC_KB 128    /* keys per block, decode logits */
#define DEC_VS 256    /* keys per slice, decode values */
#define PF_Q 16       /* queries (warps) per block, prefill */
#define PF_T 32       /* keys per tile, prefill */
#define MAX_PAIRS 4   /* head_dim <= 256: half2 pairs per lane */
#define MAX_GROUP 16  /* query heads per KV head */
#define DEC_U 8       /* rows in flight per thread, decode kernels (cuda_attn_dec/split.cu) */

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ int visible(int kpos, int qpos, int swa)
{
    return kpos <= qpos && (swa <= 0 || qpos - kpos < swa);
}

/*
 * The last-block handshake of the kernels whose blocks meet in one (the output rounding of
 * k_dec_short, the combine of k_dec_mma): every block calls it with all its threads after
 * writing its share to global memory; it returns 1 in the block that arrives n-th, which may
 * then read every block's share (through L2: __ldcg), and resets the counter for the next
 * launch.  The barrier orders the block's writes before thread 0's atomic, whose release (at
 * GPU scope, cumulative over what the barrier ordered) publishes them and whose acquire, with
 * the second barrier, lets the last block see the others'.  One fence by one thread instead of
 * the classic __threadfence() in every thread before and after, each a sequentially consistent
 * fence: that pair was 15% of k_dec_short's warp samples (ncu, Llama-2 shape, 40 slots).
 */
__device__ __forceinline__ int block_arrive(int *cnt, int n, int *last)
{
    __syncthreads();
    if (threadIdx.x == 0) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
        int old;
        asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], 1;"
                     : "=r"(old)
                     : "l"(cnt)
                     : "memory");
#else
        __threadfence();
        int old = atomicAdd(cnt, 1);
        __threadfence();
#endif
        *last = old == n - 1;
        if (*last)
            *cnt = 0;
    }
    __syncthreads();
    return *last;
}

/* Slots per block of the chunked decode kernels (k_dec_wflash, k_dec_mma) and their reduction:
 * the context spread evenly over a head's nby blocks, in whole rounds of 16 rows, from the count
 * on the device (the graph's grid is fixed); the blocks with slots are the first
 * ⌈count / wf_block⌉.  (A chunk per warp rounded up to 16 instead left up to a third of the
 * blocks idle: 4,160 slots over 16 blocks took 11 of them.) */
__device__ __forceinline__ int wf_block(int count, int nby)
{
    return ((count + nby - 1) / nby + 15) & ~15;
}

/* Blocks of KV head g in a grid of nb rows of blocks whose first `extra` heads take all nb
 * (attn_args.wf_extra; 0: every head). */
__device__ __forceinline__ int wf_nby(int nb, int extra, int g)
{
    return extra && g >= extra ? nb - 1 : nb;
}

/* Warp w's slots of block by (s0 .. s0 + n − 1): the block's rounds of 16 shared out as evenly
 * as whole rounds go, so that no warp has more than one round more than another. */
__device__ __forceinline__ void wf_warp(int count, int nby, int by, int w, int &s0, int &n)
{
    const int cb = wf_block(count, nby), b0 = by * cb, bn = max(0, min(cb, count - b0));
    const int nr = (bn + 15) / 16, r0 = w * nr / 8, r1 = (w + 1) * nr / 8;
    s0 = b0 + 16 * r0;
    n = max(0, min(16 * r1, bn) - 16 * r0);
}

/* The 8 warps' online-softmax states of one query head met, as the chunked decode kernels
 * (k_dec_wflash, k_dec_mma) end a block: M = max_w m_w, Ls = Σ_w l_w·e^(m_w − M); returns
 * O = Σ_w o_w·e^(m_w − M) for one output.  m, l and o point at warp 0's entries, warp w's lie
 * w·ms (m, l) and w·os (o) floats further. */
__device__ __forceinline__ float warps_merge(const float *m, const float *l, int ms, const float *o,
                                             int os, float &M, float &Ls)
{
    float O = 0.0f;
    M = -INFINITY;
    Ls = 0.0f;
#pragma unroll
    for (int w = 0; w < 8; w++)
        M = fmaxf(M, m[w * ms]);
    if (M != -INFINITY)
#pragma unroll
        for (int w = 0; w < 8; w++) {
            const float sw = m[w * ms] == -INFINITY ? 0.0f : expf(m[w * ms] - M);
            Ls += l[w * ms] * sw;
            O += o[w * os] * sw;
        }
    return O;
}

/* warps_merge's (M, Ls) alone: Keyformer's noisy softmax, which has no output to merge (the
 * unused sum of l·e^(m − M) is dropped by the compiler). */
__device__ __forceinline__ void warps_ml(const float *m, const float *l, int ms, float &M, float &Ls)
{
    (void)warps_merge(m, l, ms, l, ms, M, Ls);
}

/*
 * The end of a k_dec_wflash or k_dec_mma block for query head hq and output dimension d (of hd):
 * its 8 warps' partial into a.partial and, once per head (d 0), their softmax's (M, Ls) into
 * a.pstats, with Keyformer's noisy (m2, l2) beside them (SC 2).  m and l point at warp 0's
 * [plain, noisy] pair of this head, warp w's lie w·ms floats further; o likewise, w·os.
 */
template <int SC>
__device__ __forceinline__ void block_partial(const struct attn_args &a, const float *m,
                                              const float *l, int ms, const float *o, int os,
                                              int hq, int d, int hd)
{
    float M, Ls, O = warps_merge(m, l, ms, o, os, M, Ls);
    a.partial[((size_t)blockIdx.y * a.n_head + hq) * hd + d] = O;
    if (d == 0) {
        float *st = a.pstats + ((size_t)hq * gridDim.y + blockIdx.y) * 4;
        st[0] = M;
        st[1] = Ls;
        if (SC == 2) /* the noisy logits' (m2, l2) the same way */
            warps_ml(m + 1, l + 1, ms, st[2], st[3]);
    }
}

/* The logit of query head h at qpos for a visible key at kpos: scale·(q·k), plus ALiBi's
 * slope_h·(kpos − qpos) (kv_cache.c's alibi_add; mpt). */
__device__ __forceinline__ float att_logit(const struct attn_args &a, float dot, int h, int kpos,
                                           int qpos)
{
    float lg = a.scale * dot;
    if (!a.alibi)
        return lg;
    if (kpos < a.conf.n_sink && a.conf.policy == KV_P_SINK && !a.conf.unbounded) {
        /* StreamingLLM under ALiBi measures a sink's distance inside the cache, as the CPU
         * (kv_cache.c's alibi_add): the sinks sit just before the oldest other entry kept.
         * The cache holds the sinks and the newest entries before pos0, contiguous (the sink
         * policy drops the oldest first), so that entry is pos0 − (entries − sinks). */
        const int prev = a.kv.n_used[h / (a.n_head / a.G)], ns = min(a.conf.n_sink, a.st->pos0);
        kpos += max(0, a.st->pos0 - (prev - ns) - a.conf.n_sink);
    }
    return lg + a.alibi[h] * (float)(kpos - qpos);
}

/* RoPE's cosine and sine for pair i at position p (as the CPU: theta = p·base^(−2i/n_rot)). */
static __device__ __forceinline__ void rope_cs(const struct rope_args &r, int i, float p, float *c,
                                               float *sn)
{
    float theta = p * powf(r.base, -2.0f * (float)i / (float)r.n_rot);
    float ff = r.freq_factors ? r.freq_factors[i] : 1.0f;
    sincosf(r.freq_scale * (theta / ff), sn, c);
}

/* Pair i of one head v rotated by (c, sn). */
static __device__ __forceinline__ void rope_rot(const struct rope_args &r, float *v, int i,
                                                float c, float sn)
{
    int half = r.n_rot / 2, i0 = r.neox ? i : 2 * i, i1 = r.neox ? i + half : 2 * i + 1;
    float x0 = v[i0], x1 = v[i1];
    v[i0] = x0 * c - x1 * sn;
    v[i1] = x0 * sn + x1 * c;
}

/* RoPE of pair i of one head v at position p. */
static __device__ __forceinline__ void rope_pair(const struct rope_args &r, float *v, int i,
                                                 float p)
{
    float c, sn;
    rope_cs(r, i, p, &c, &sn);
    rope_rot(r, v, i, c, sn);
}

/*
 * q · k for one key held 8 floats per lane by L lanes (hd = 8L): this lane's 8 products, summed
 * over the L lanes by shuffles (every lane of the warp must call it).
 */
static __device__ __forceinline__ float key_dot(const float *kf, const float *q, int L)
{
    float d = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; e++)
        d += kf[e] * q[e];
    for (int o = L / 2; o > 0; o >>= 1)
        d += __shfl_xor_sync(0xffffffffu, d, o);
    return d;
}

/* One head v (hd floats, in place) RMS-normed with weights nw by one warp, the CPU's QK-norm;
 * __syncwarp() then orders the lanes' writes before the rotation reads them. */
static __device__ __forceinline__ void head_rmsnorm(float *v, const float *nw, int hd, float eps)
{
    const int lane = threadIdx.x % WARP;
    float ss = 0.0f;
    for (int i = lane; i < hd; i += WARP)
        ss += v[i] * v[i];
    const float sc = 1.0f / sqrtf(warp_sum(ss) / (float)hd + eps);
    for (int i = lane; i < hd; i += WARP)
        v[i] = v[i] * sc * nw[i];
    __syncwarp();
}

/*
 * Head hh of token t (query heads, then key heads, then value heads of the qkv row), by one
 * warp: optional RMSNorm over the head (q_norm / k_norm), RoPE at position pos0 + t for queries
 * and keys; keys and values then go to the first free slot of their KV head (f16), with the
 * position and a zero score.  The head is rewritten in place; lanes hand it to each other through
 * memory, so __syncwarp() orders the phases.
 */
static __device__ __forceinline__ void qk_head(const struct attn_args &a,
                                               const struct rope_args &r, int t, int hh)
{
    const int lane = threadIdx.x % WARP, hd = a.hd, nq = a.n_head, G = a.G;
    float *v = a.qkv + (size_t)t * a.row + (size_t)hh * hd;
    int pos = a.st->pos0 + t;
    if (hh < nq + G) {
        const float *nw = hh < nq ? r.q_norm : r.k_norm;
        if (nw)
            head_rmsnorm(v, nw, hd, r.eps);
        for (int i = lane; i < r.n_rot / 2; i += WARP)
            rope_pair(r, v, i, (float)pos);
        if (hh < nq)
            return;
        __syncwarp(); /* the rotated head is read back below by other lanes */
    }
    int is_k = hh < nq + G, g = is_k ? hh - nq : hh - nq - G;
    size_t slot = (size_t)g * a.kv.cap + a.kv.n_used[g] + t;
    if (a.kv.q8) { /* quantize_q8_0_ref's rounding, one 32-block per pass of the warp */
        uint8_t *row = (uint8_t *)(is_k ? a.kv.k : a.kv.v) + slot * a.kv.rowb;
        for (int b = 0; b < hd / 32; b++) {
            float x = v[b * 32 + lane], d = __fdiv_rn(warp_max(fabsf(x)), 127.0f);
            float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
            row[b * 32 + lane] = (uint8_t)(int8_t)roundf(__fmul_rn(x, id));
            if (lane == 0)
                ((__half *)(row + hd))[b] = __float2half_rn(d);
        }
    } else {
        __half *dst = (is_k ? a.kv.k : a.kv.v) + slot * hd;
        for (int d = lane; d < hd; d += WARP)
            dst[d] = __float2half(v[d]);
    }
    if (is_k && lane == 0) {
        a.kv.pos[slot] = pos;
        a.kv.score[slot] = 0.0f;
    }
}

/* Ask L2 for bytes at p, one 128-byte line per thread and round (prefetch.global.L2). */
static __device__ __forceinline__ void dec_prefetch(const void *p, size_t bytes)
{
    for (size_t o = (size_t)threadIdx.x * 128; o < bytes; o += (size_t)blockDim.x * 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"((const char *)p + o));
}

/*
 * Shared by the decode kernels (cuda_attn_dec.cu, cuda_attn_split.cu).  A warp's lanes read
 * DEC_U rows each (hd/8 lanes per row, one 16-byte load per lane and row) before using any of
 * them: these kernels have few rows per block and are bound by the latency of those loads, so
 * all of a round's loads are in flight together.
 */

/*
 * One cache row's 8 elements for lane li of the hd/8 lanes that share the row (struct
 * kv_layer's layouts; base: the KV head's first row): f16, one 16-byte load; q8_0 (kvr<1>), one
 * 8-byte load and the 32-block's scale (4 lanes share it).  The split decode kernels take
 * either: load all of a round's rows, then f32() them.
 */
template <int Q8> struct kvr;
template <> struct kvr<0> {
    uint4 u;
    static __device__ __forceinline__ kvr load(const uint8_t *base, size_t row, int rowb, int li,
                                               int hd)
    {
        kvr r;
        r.u = ((const uint4 *)base)[row * (hd / 8) + li];
        return r;
    }
    static __device__ __forceinline__ kvr zero()
    {
        kvr r;
        r.u = make_uint4(0, 0, 0, 0);
        return r;
    }
    __device__ __forceinline__ void f32(float (&f)[8]) const
    {
        const __half2 *h2 = (const __half2 *)&u;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float2 x = __half22float2(h2[e]);
            f[2 * e] = x.x;
            f[2 * e + 1] = x.y;
        }
    }
    /* the elements are f32() = raw() · scale() (scale 1 here) */
    __device__ __forceinline__ void raw(float (&f)[8]) const { f32(f); }
    __device__ __forceinline__ float scale() const { return 1.0f; }
};
template <> struct kvr<1> {
    uint2 u;
    __half d;
    static __device__ __forceinline__ kvr load(const uint8_t *base, size_t row, int rowb, int li,
                                               int hd)
    {
        kvr r;
        const uint8_t *p = base + row * (size_t)rowb;
        r.u = *(const uint2 *)(p + li * 8);
        r.d = ((const __half *)(p + hd))[li >> 2];
        return r;
    }
    static __device__ __forceinline__ kvr zero()
    {
        kvr r;
        r.u = make_uint2(0, 0);
        r.d = __float2half(0.0f);
        return r;
    }
    /*
     * The 8 integers as floats without I2F (a slow pipe): each biased byte (q + 128) goes into
     * the mantissa of 2^23 by one byte permute, and 2^23 + 128 comes off exactly.
     */
    __device__ __forceinline__ void raw(float (&f)[8]) const
    {
        uint32_t x = u.x ^ 0x80808080u, y = u.y ^ 0x80808080u;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            f[e] = __uint_as_float(__byte_perm(x, 0x4b000000u, 0x7440 + e)) - 8388736.0f;
            f[4 + e] = __uint_as_float(__byte_perm(y, 0x4b000000u, 0x7440 + e)) - 8388736.0f;
        }
    }
    __device__ __forceinline__ float scale() const { return __half2float(d); }
    __device__ __forceinline__ void f32(float (&f)[8]) const
    {
        float s = scale();
        raw(f);
#pragma unroll
        for (int e = 0; e < 8; e++)
            f[e] *= s;
    }
};

/* The rows' elements as raw() values and their scales (a q8_0 lane's 8 elements share one),
 * so that the scale multiplies a lane's dot once instead of each element (f16: scale 1, which
 * the compiler drops). */
template <int Q8>
static __device__ __forceinline__ void dec_rows_raw(const kvr<Q8> (&u)[DEC_U],
                                                    float (&kf)[DEC_U][8], float (&ks)[DEC_U])
{
#pragma unroll
    for (int k = 0; k < DEC_U; k++) {
        u[k].raw(kf[k]);
        ks[k] = u[k].scale();
    }
}

/*
 * d[k] = q · key k for the DEC_U keys of kf (raw elements, times the scale ks[k] once per
 * lane), q being this lane's 8 elements at q8 (shared memory); the L lanes of a key are summed
 * by shuffles, all keys' dots first and then one round of shuffles over them, so that the
 * shuffles' latencies overlap (every lane must call it).
 */
static __device__ __forceinline__ void dec_dots(const float (&kf)[DEC_U][8],
                                                const float (&ks)[DEC_U], const float *q8, int L,
                                                float (&d)[DEC_U])
{
    const float4 *q4 = (const float4 *)q8;
    float4 qa = q4[0], qb = q4[1];
    float q[8] = { qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w };
#pragma unroll
    for (int k = 0; k < DEC_U; k++) {
        d[k] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++)
            d[k] += kf[k][e] * q[e];
        d[k] *= ks[k];
    }
    for (int o = L / 2; o > 0; o >>= 1)
#pragma unroll
        for (int k = 0; k < DEC_U; k++)
            d[k] += __shfl_xor_sync(0xffffffffu, d[k], o);
}

/*
 * Σ p·v over rows 0 .. n−1 of V for heads j0 .. j0+3 (those < nh), p = ps[j·pstride + row]
 * (the split kernels; k_dec_short has its own loop, which also reads the new token's value
 * from shared memory: this function with an optional last row from there served it too, and
 * decoding ran 0.3-0.8% slower, docs/cuda.md session 14).  This thread covers rows kg,
 * kg + nkg, ... (key group kg of nkg; lane li of the L per row).  Then the sums meet — the
 * warp's key groups by shuffles, the 8 warps in red — and thread d < hd writes the total for
 * head j0 + jj to out[jj * hd + d].  Every thread of the block must call it.
 */
template <int Q8>
static __device__ __forceinline__ void dec_pv(const uint8_t *V, int rowb, int n, const float *ps,
                                              int pstride, int j0, int nh, int hd, float *red,
                                              float *out)
{
    int L = hd / 8, li = threadIdx.x % L, kg = threadIdx.x / L, nkg = blockDim.x / L;
    int warp = threadIdx.x / WARP, sub = (threadIdx.x % WARP) / L;
    float acc[4][8];
#pragma unroll
    for (int jj = 0; jj < 4; jj++)
#pragma unroll
        for (int e = 0; e < 8; e++)
            acc[jj][e] = 0.0f;
    for (int i0 = kg; i0 < n; i0 += nkg * DEC_U) {
        kvr<Q8> u[DEC_U];
#pragma unroll
        for (int k = 0; k < DEC_U; k++) {
            int i = i0 + k * nkg;
            u[k] = i >= n ? kvr<Q8>::zero() : kvr<Q8>::load(V, (size_t)i, rowb, li, hd);
        }
#pragma unroll
        for (int k = 0; k < DEC_U; k++) {
            int i = i0 + k * nkg;
            if (i >= n)
                break;
            float vf[8], vs = u[k].scale();
            u[k].raw(vf);
#pragma unroll
            for (int jj = 0; jj < 4; jj++) {
                if (j0 + jj >= nh)
                    break;
                float p = ps[(j0 + jj) * pstride + i] * vs;
#pragma unroll
                for (int e = 0; e < 8; e++)
                    acc[jj][e] += p * vf[e];
            }
        }
    }
#pragma unroll
    for (int jj = 0; jj < 4; jj++) {
        if (j0 + jj >= nh)
            break;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            float v = acc[jj][e];
            for (int o = L; o < WARP; o <<= 1)
                v += __shfl_xor_sync(0xffffffffu, v, o);
            if (sub == 0)
                red[warp * hd + li * 8 + e] = v;
        }
        __syncthreads();
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < 8; w++)
                sum += red[w * hd + d];
            out[jj * hd + d] = sum;
        }
        __syncthreads();
    }
}

#endif
