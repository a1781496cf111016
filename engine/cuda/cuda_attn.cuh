/*
 * cuda_attn.cuh — device code shared by the attention files: cuda_attn.cu (the cache write,
 * prefill, eviction) and cuda_attn_dec.cu (decode): tile sizes, warp reductions, the visibility
 * rule and the per-head QK-norm + RoPE + cache write.
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

/* The logit of query head h at qpos for a visible key at kpos: scale·(q·k), plus ALiBi's
 * slope_h·(kpos − qpos) (kv_cache.c's alibi_add; mpt). */
__device__ __forceinline__ float att_logit(const struct attn_args &a, float dot, int h, int kpos,
                                           int qpos)
{
    float lg = a.scale * dot;
    return a.alibi ? lg + a.alibi[h] * (float)(kpos - qpos) : lg;
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
        if (nw) {
            float ss = 0.0f;
            for (int i = lane; i < hd; i += WARP)
                ss += v[i] * v[i];
            float sc = 1.0f / sqrtf(warp_sum(ss) / (float)hd + r.eps);
            for (int i = lane; i < hd; i += WARP)
                v[i] = v[i] * sc * nw[i];
            __syncwarp();
        }
        for (int i = lane; i < r.n_rot / 2; i += WARP)
            rope_pair(r, v, i, (float)pos);
        if (hh < nq)
            return;
        __syncwarp(); /* the rotated head is read back below by other lanes */
    }
    int is_k = hh < nq + G, g = is_k ? hh - nq : hh - nq - G;
    size_t slot = (size_t)g * a.kv.cap + a.kv.n_used[g] + t;
    __half *dst = (is_k ? a.kv.k : a.kv.v) + slot * hd;
    for (int d = lane; d < hd; d += WARP)
        dst[d] = __float2half(v[d]);
    if (is_k && lane == 0) {
        a.kv.pos[slot] = pos;
        a.kv.score[slot] = 0.0f;
    }
}

#endif
