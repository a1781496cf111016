/*
 * cuda_attn.cu — attention over the compacted KV cache on the GPU, Keyformer/H2O score
 * accumulation fused with it, and eviction with compaction on the device.
 *
 * Semantics are engine/kv_cache.h's, step for step: a call stores its tokens' keys and values
 * in the first free slots, every query attends over the slots whose position is visible to it
 * (masking by position, never by slot), the policy's per-slot scores accumulate over the call's
 * queries and the KV head's query heads, and afterwards each (layer, KV head) is cut back to the
 * budget: victims are the lowest (score, position) among the candidates, holes below the new
 * count are refilled from the survivors above it in slot order, exactly as kv_evict.c does, so
 * a CPU and a GPU run keep the same positions (up to near-ties in the scores).
 *
 * Decode (one token): logits of every slot go to a small scratch row per query head with
 * per-tile softmax partials (plain, and noisy for Keyformer); a second kernel combines the
 * partials, sums the values over slices of slots and adds the score contributions; a third
 * reduces the slices.
 * Prefill (a tile of queries): one warp per query streams key/value tiles from shared memory
 * with an online softmax (plain and noisy normalisers in the same pass); the scores need the
 * final normalisers, so a second pass per key tile recomputes q·k — no n×n matrix is stored.
 */
#include <cfloat>
#include <cstdio>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "cuda_internal.h"
#include "cuda_round.cuh"

#define WARP 32
#define DEC_KB 128    /* keys per block, decode logits */
#define DEC_VS 256    /* keys per slice, decode values */
#define PF_Q 16       /* queries (warps) per block, prefill */
#define PF_T 32       /* keys per tile, prefill */
#define MAX_PAIRS 4   /* head_dim <= 256: half2 pairs per lane */
#define MAX_GROUP 16  /* query heads per KV head */

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

struct FMax {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

/* ---- QK-norm, RoPE and the cache write ---------------------------------------------------- */

/*
 * Per head of token t (blockIdx.y: query heads, then key heads, then value heads): optional
 * RMSNorm over the head (q_norm / k_norm), RoPE at position pos0 + t for queries and keys; keys
 * and values then go to the first free slot of their KV head (f16), with the position and a
 * zero score.  Rows of the qkv buffer hold q | k | v.
 */
__global__ void __launch_bounds__(128) k_qk_store(struct attn_args a, const struct rope_args r)
{
    __shared__ float red[128];
    int t = blockIdx.x, hh = blockIdx.y, hd = a.hd, nq = a.n_head, G = a.G;
    float *v = a.qkv + (size_t)t * a.row + (size_t)hh * hd;
    int pos = a.st->pos0 + t;
    if (hh < nq + G) {
        const float *nw = hh < nq ? r.q_norm : r.k_norm;
        if (nw) {
            float ss = 0.0f;
            for (int i = threadIdx.x; i < hd; i += blockDim.x)
                ss += v[i] * v[i];
            red[threadIdx.x] = ss;
            __syncthreads();
            for (int o = blockDim.x / 2; o > 0; o >>= 1) {
                if ((int)threadIdx.x < o)
                    red[threadIdx.x] += red[threadIdx.x + o];
                __syncthreads();
            }
            float sc = 1.0f / sqrtf(red[0] / (float)hd + r.eps);
            __syncthreads();
            for (int i = threadIdx.x; i < hd; i += blockDim.x)
                v[i] = v[i] * sc * nw[i];
            __syncthreads();
        }
        float p = (float)pos;
        int half = r.n_rot / 2;
        for (int i = threadIdx.x; i < half; i += blockDim.x) {
            float theta = p * powf(r.base, -2.0f * (float)i / (float)r.n_rot);
            float ff = r.freq_factors ? r.freq_factors[i] : 1.0f;
            float ang = r.freq_scale * (theta / ff), c, sn;
            sincosf(ang, &sn, &c);
            int i0 = r.neox ? i : 2 * i, i1 = r.neox ? i + half : 2 * i + 1;
            float x0 = v[i0], x1 = v[i1];
            v[i0] = x0 * c - x1 * sn;
            v[i1] = x0 * sn + x1 * c;
        }
        if (hh < nq)
            return;
        __syncthreads(); /* the rotated head is read back below by other threads */
    }
    int is_k = hh < nq + G, g = is_k ? hh - nq : hh - nq - G;
    size_t slot = (size_t)g * a.kv.cap + a.kv.n_used[g] + t;
    __half *dst = (is_k ? a.kv.k : a.kv.v) + slot * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x)
        dst[d] = __float2half(v[d]);
    if (is_k && threadIdx.x == 0) {
        a.kv.pos[slot] = pos;
        a.kv.score[slot] = 0.0f;
    }
}

void qk_store_launch(const struct attn_args *a, const struct rope_args *r, cudaStream_t s)
{
    k_qk_store<<<dim3(a->n, a->n_head + 2 * a->G), 128, 0, s>>>(*a, *r);
}

/* ---- decode ---------------------------------------------------------------------------------- */

/*
 * Logits of one tile of DEC_KB slots for every query head of KV head g.  hd/8 lanes share a key
 * (one 16-byte load each), so a warp reads 32/(hd/8) keys per pass.  The tile's softmax partials
 * (max and Σexp, plain and noisy) go to pstats[h][tile] for k_dec_values to combine.
 */
__global__ void __launch_bounds__(256) k_dec_logits(struct attn_args a)
{
    __shared__ float qs[MAX_GROUP * 256]; /* [group][hd] */
    __shared__ float lt[MAX_GROUP][DEC_KB], yt[MAX_GROUP][DEC_KB];
    int g = blockIdx.x, group = a.n_head / a.G, hd = a.hd, L = hd / 8, kp = WARP / L;
    int count = a.kv.n_used[g] + 1, qpos = a.st->pos0;
    int s0 = blockIdx.y * DEC_KB;
    if (s0 >= count)
        return;
    int nt = min(DEC_KB, count - s0);
    int keyformer = a.st->scoring && a.kv.swa <= 0 && a.conf.policy == KV_P_KEYFORMER;
    for (int i = threadIdx.x; i < group * hd; i += blockDim.x)
        qs[i] = a.qkv[(size_t)g * group * hd + i];
    __syncthreads();
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, li = lane % L, sub = lane / L;
    const int32_t *P = a.kv.pos + (size_t)g * a.kv.cap;
    const uint4 *K = (const uint4 *)(a.kv.k + (size_t)g * a.kv.cap * hd);
    float inv_tau = keyformer ? 1.0f / kv_tau(a.conf, qpos) : 1.0f;
    uint64_t sk = a.seed_key;
    for (int base = warp * kp; base < nt; base += 8 * kp) {
        int i = base + sub, s = s0 + i, in = i < nt;
        float kf[8];
        if (in) {
            uint4 u = K[(size_t)s * L + li];
            const __half2 *h2 = (const __half2 *)&u;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float2 f = __half22float2(h2[e]);
                kf[2 * e] = f.x;
                kf[2 * e + 1] = f.y;
            }
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++)
                kf[e] = 0.0f;
        }
        int kpos = in ? P[s] : 0, vis = in && visible(kpos, qpos, a.kv.swa);
        for (int j = 0; j < group; j++) {
            const float *q = qs + j * hd + li * 8;
            float d = 0.0f;
#pragma unroll
            for (int e = 0; e < 8; e++)
                d += kf[e] * q[e];
            for (int o = L / 2; o > 0; o >>= 1)
                d += __shfl_xor_sync(0xffffffffu, d, o);
            if (in && li == 0) {
                int h = g * group + j;
                float lg = vis ? a.scale * d : -INFINITY;
                a.logits[(size_t)h * a.kv.cap + s] = lg;
                lt[j][i] = lg;
                if (keyformer) {
                    float y = vis ? (lg + kn_gumbel(kn_row_key(a.kv.layer, h, qpos), sk, kpos)) *
                                        inv_tau
                                  : -INFINITY;
                    a.noisy[(size_t)h * a.kv.cap + s] = y;
                    yt[j][i] = y;
                }
            }
        }
    }
    __syncthreads();
    /* partials: warp w reduces head w (and w + 8, ...) over the tile */
    int nb = gridDim.y;
    for (int j = warp; j < group; j += 8) {
        for (int which = 0; which < 1 + keyformer; which++) {
            const float *v = which ? yt[j] : lt[j];
            float m = -INFINITY;
            for (int i = lane; i < nt; i += WARP)
                m = fmaxf(m, v[i]);
            m = warp_max(m);
            float l = 0.0f;
            if (m != -INFINITY)
                for (int i = lane; i < nt; i += WARP)
                    l += expf(v[i] - m);
            l = warp_sum(l);
            if (lane == 0) {
                float *ps = a.pstats + ((size_t)(g * group + j) * nb + blockIdx.y) * 4;
                ps[2 * which] = m;
                ps[2 * which + 1] = l;
            }
        }
    }
}

/*
 * Combine the tiles' partials of head h into its normalisers st = {m, 1/l, m2, 1/l2}: one warp,
 * called by every block of k_dec_values for its heads (a few hundred tiles at most: cheaper
 * than a kernel of its own).
 */
__device__ void dec_stats(const struct attn_args &a, int h, int nb, int nt, int keyformer,
                          float *st)
{
    int lane = threadIdx.x % WARP;
    for (int which = 0; which < 1 + keyformer; which++) {
        float m = -INFINITY;
        for (int b = lane; b < nt; b += WARP)
            m = fmaxf(m, a.pstats[((size_t)h * nb + b) * 4 + 2 * which]);
        m = warp_max(m);
        float l = 0.0f;
        for (int b = lane; b < nt; b += WARP) {
            const float *ps = a.pstats + ((size_t)h * nb + b) * 4 + 2 * which;
            if (ps[0] != -INFINITY)
                l += ps[1] * expf(ps[0] - m);
        }
        l = warp_sum(l);
        st[2 * which] = m;
        st[2 * which + 1] = 1.0f / l;
    }
    if (!keyformer) {
        st[2] = 0.0f;
        st[3] = 1.0f;
    }
}

/*
 * Σ p·v over one slice of DEC_VS slots for every query head of KV head g, plus the slice's score
 * contributions.  hd/8 threads cover a value row (16-byte loads); the block's 256/(hd/8) key
 * groups sum their rows and meet in shared memory.
 */
__global__ void __launch_bounds__(256) k_dec_values(struct attn_args a, int nb)
{
    __shared__ float ps[MAX_GROUP][DEC_VS];
    __shared__ float red[256 * 8];
    __shared__ float sts[MAX_GROUP][4];
    int g = blockIdx.x, sl = blockIdx.y, group = a.n_head / a.G, hd = a.hd, L = hd / 8;
    int count = a.kv.n_used[g] + 1;
    int s0 = sl * DEC_VS;
    if (s0 >= count)
        return;
    int ns = min(DEC_VS, count - s0);
    int scoring = a.st->scoring && a.kv.swa <= 0;
    {
        int keyformer = scoring && a.conf.policy == KV_P_KEYFORMER;
        int nt = (count + DEC_KB - 1) / DEC_KB;
        for (int j = threadIdx.x / WARP; j < group; j += blockDim.x / WARP)
            dec_stats(a, g * group + j, nb, nt, keyformer, sts[j]);
        __syncthreads();
    }
    for (int i = threadIdx.x; i < ns; i += blockDim.x) {
        int s = s0 + i;
        float sc = 0.0f;
        for (int j = 0; j < group; j++) {
            int h = g * group + j;
            const float *st = sts[j];
            float p = expf(a.logits[(size_t)h * a.kv.cap + s] - st[0]) * st[1];
            ps[j][i] = p;
            if (scoring)
                sc += a.conf.policy == KV_P_KEYFORMER
                          ? expf(a.noisy[(size_t)h * a.kv.cap + s] - st[2]) * st[3]
                          : p;
        }
        if (scoring)
            a.kv.score[(size_t)g * a.kv.cap + s] += sc;
    }
    __syncthreads();
    int li = threadIdx.x % L, kg = threadIdx.x / L, nkg = blockDim.x / L;
    const uint4 *V = (const uint4 *)(a.kv.v + ((size_t)g * a.kv.cap + s0) * hd);
    for (int j = 0; j < group; j++) { /* the slice of V (<= 64 KiB) is re-read from L1 */
        float acc[8];
#pragma unroll
        for (int e = 0; e < 8; e++)
            acc[e] = 0.0f;
        for (int i = kg; i < ns; i += nkg) {
            uint4 u = V[(size_t)i * L + li];
            const __half2 *h2 = (const __half2 *)&u;
            float p = ps[j][i];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float2 f = __half22float2(h2[e]);
                acc[2 * e] += p * f.x;
                acc[2 * e + 1] += p * f.y;
            }
        }
#pragma unroll
        for (int e = 0; e < 8; e++)
            red[kg * hd + li * 8 + e] = acc[e];
        __syncthreads();
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            float sum = 0.0f;
            for (int k2 = 0; k2 < nkg; k2++)
                sum += red[k2 * hd + d];
            a.partial[((size_t)sl * a.n_head + g * group + j) * hd + d] = sum;
        }
        __syncthreads();
    }
}

/*
 * The slices' sums into the attention output, 256 elements of the n_head·hd row per block, then
 * rounded for the output projection (mode: its ACT_*; xq/xh as in round_chunk).
 */
__global__ void __launch_bounds__(256) k_dec_reduce(struct attn_args a, int mode, void *xq)
{
    int e = blockIdx.x * 256 + threadIdx.x, total = a.n_head * a.hd, valid = e < total;
    float s = 0.0f;
    if (valid) {
        int h = e / a.hd, d = e % a.hd, group = a.n_head / a.G, g = h / group;
        int count = a.kv.n_used[g] + 1, nsl = (count + DEC_VS - 1) / DEC_VS;
        for (int sl = 0; sl < nsl; sl++)
            s += a.partial[((size_t)sl * a.n_head + h) * a.hd + d];
        a.out[e] = s;
    }
    if (mode != ACT_NONE)
        round_chunk(s, valid, 0, e, mode, xq, NULL);
}

int attn_decode_splits(int cap)
{
    return (cap + DEC_VS - 1) / DEC_VS;
}

int attn_decode_tiles(int cap)
{
    return (cap + DEC_KB - 1) / DEC_KB;
}

/* ---- prefill ------------------------------------------------------------------------------- */

/* One warp per query: online softmax over key tiles; plain and noisy normalisers. */
__global__ void __launch_bounds__(PF_Q * WARP) k_pf_attn(struct attn_args a)
{
    extern __shared__ unsigned char smem[];
    int hd = a.hd, half = hd / 2, kstride = half + 1; /* +1 word: conflict-free rows */
    __half2 *Kt = (__half2 *)smem;                    /* [PF_T][kstride] */
    __half2 *Vt = Kt + PF_T * kstride;                /* [PF_T][half] */
    float *Qs = (float *)(Vt + PF_T * half);          /* [PF_Q][hd] */
    int32_t *Pt = (int32_t *)(Qs + PF_Q * hd);        /* [PF_T] */
    int h = blockIdx.x, group = a.n_head / a.G, g = h / group;
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int t = blockIdx.y * PF_Q + warp, valid = t < a.n;
    int count = a.kv.n_used[g] + a.n, qpos = a.st->pos0 + t;
    int keyformer = a.st->scoring && a.kv.swa <= 0 && a.conf.policy == KV_P_KEYFORMER;
    float inv_tau = 1.0f / kv_tau(a.conf, qpos);
    uint64_t rk = kn_row_key(a.kv.layer, h, qpos);
    if (valid)
        for (int d = lane; d < hd; d += WARP)
            Qs[warp * hd + d] = a.qkv[(size_t)t * a.row + (size_t)h * hd + d];
    float m = -INFINITY, l = 0.0f, m2 = -INFINITY, l2 = 0.0f;
    float2 acc[MAX_PAIRS];
#pragma unroll
    for (int p = 0; p < MAX_PAIRS; p++)
        acc[p] = make_float2(0.0f, 0.0f);
    const __half2 *Kg = (const __half2 *)(a.kv.k + (size_t)g * a.kv.cap * hd);
    const __half2 *Vg = (const __half2 *)(a.kv.v + (size_t)g * a.kv.cap * hd);
    const int32_t *Pg = a.kv.pos + (size_t)g * a.kv.cap;
    for (int s0 = 0; s0 < count; s0 += PF_T) {
        int nt = min(PF_T, count - s0);
        __syncthreads();
        for (int i = threadIdx.x; i < nt * half; i += blockDim.x) {
            int r = i / half, c = i % half;
            Kt[r * kstride + c] = Kg[(size_t)(s0 + r) * half + c];
            Vt[r * half + c] = Vg[(size_t)(s0 + r) * half + c];
        }
        if (threadIdx.x < nt)
            Pt[threadIdx.x] = Pg[s0 + threadIdx.x];
        __syncthreads();
        if (!valid)
            continue;
        float logit = -INFINITY;
        if (lane < nt && visible(Pt[lane], qpos, a.kv.swa)) {
            const float2 *q2 = (const float2 *)(Qs + warp * hd);
            const __half2 *kr = Kt + lane * kstride;
            float d = 0.0f;
            for (int p = 0; p < half; p++) {
                float2 kk = __half22float2(kr[p]), qq = q2[p];
                d += kk.x * qq.x + kk.y * qq.y;
            }
            logit = a.scale * d;
        }
        float tmax = warp_max(logit);
        if (tmax == -INFINITY)
            continue;
        float nm = fmaxf(m, tmax), corr = expf(m - nm);
        float p = logit == -INFINITY ? 0.0f : expf(logit - nm);
        l = l * corr + warp_sum(p);
        m = nm;
#pragma unroll
        for (int pp = 0; pp < MAX_PAIRS; pp++) {
            acc[pp].x *= corr;
            acc[pp].y *= corr;
        }
        for (int j = 0; j < nt; j++) {
            float pj = __shfl_sync(0xffffffffu, p, j);
            if (pj == 0.0f)
                continue;
#pragma unroll
            for (int pp = 0; pp < MAX_PAIRS; pp++) {
                int idx = lane + pp * WARP;
                if (idx < half) {
                    float2 v = __half22float2(Vt[j * half + idx]);
                    acc[pp].x += pj * v.x;
                    acc[pp].y += pj * v.y;
                }
            }
        }
        if (keyformer) {
            float y = logit == -INFINITY ? -INFINITY
                                         : (logit + kn_gumbel(rk, a.seed_key, Pt[lane])) * inv_tau;
            float ym = warp_max(y), nm2 = fmaxf(m2, ym);
            float e = y == -INFINITY ? 0.0f : expf(y - nm2);
            l2 = l2 * expf(m2 - nm2) + warp_sum(e);
            m2 = nm2;
        }
    }
    if (!valid)
        return;
    float il = 1.0f / l;
#pragma unroll
    for (int pp = 0; pp < MAX_PAIRS; pp++) {
        int idx = lane + pp * WARP;
        if (idx < half) {
            float *o = a.out + (size_t)t * a.n_head * hd + (size_t)h * hd + 2 * idx;
            o[0] = acc[pp].x * il;
            o[1] = acc[pp].y * il;
        }
    }
    if (lane == 0) {
        float *st = a.stats + ((size_t)t * a.n_head + h) * 4;
        st[0] = m;
        st[1] = il;
        st[2] = m2;
        st[3] = keyformer ? 1.0f / l2 : 1.0f;
    }
}

/* Scores of one tile of slots: Σ over the call's queries and the KV head's query heads. */
__global__ void __launch_bounds__(256) k_pf_score(struct attn_args a)
{
    extern __shared__ unsigned char smem[];
    int hd = a.hd, half = hd / 2, kstride = half + 1;
    __half2 *Kt = (__half2 *)smem;              /* [PF_T][kstride] */
    float *Qs = (float *)(Kt + PF_T * kstride); /* [8][hd] */
    float *red = Qs + 8 * hd;                   /* [8][PF_T] */
    int g = blockIdx.x, group = a.n_head / a.G;
    int count = a.kv.n_used[g] + a.n, s0 = blockIdx.y * PF_T;
    if (s0 >= count || !a.st->scoring || a.kv.swa > 0)
        return;
    int nt = min(PF_T, count - s0);
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, nw = blockDim.x / WARP;
    int keyformer = a.conf.policy == KV_P_KEYFORMER;
    const __half2 *Kg = (const __half2 *)(a.kv.k + (size_t)g * a.kv.cap * hd);
    for (int i = threadIdx.x; i < nt * half; i += blockDim.x) {
        int r = i / half, c = i % half;
        Kt[r * kstride + c] = Kg[(size_t)(s0 + r) * half + c];
    }
    __syncthreads();
    int kpos = lane < nt ? a.kv.pos[(size_t)g * a.kv.cap + s0 + lane] : 0;
    float acc = 0.0f;
    for (int idx = warp; idx < a.n * group; idx += nw) {
        int t = idx / group, h = g * group + idx % group, qpos = a.st->pos0 + t;
        __syncwarp();
        for (int d = lane; d < hd; d += WARP)
            Qs[warp * hd + d] = a.qkv[(size_t)t * a.row + (size_t)h * hd + d];
        __syncwarp();
        if (lane < nt && visible(kpos, qpos, a.kv.swa)) {
            const float2 *q2 = (const float2 *)(Qs + warp * hd);
            const __half2 *kr = Kt + lane * kstride;
            float d = 0.0f;
            for (int p = 0; p < half; p++) {
                float2 kk = __half22float2(kr[p]), qq = q2[p];
                d += kk.x * qq.x + kk.y * qq.y;
            }
            float logit = a.scale * d;
            const float *st = a.stats + ((size_t)t * a.n_head + h) * 4;
            if (keyformer) {
                uint64_t rk = kn_row_key(a.kv.layer, h, qpos);
                float inv_tau = 1.0f / kv_tau(a.conf, qpos);
                float y = (logit + kn_gumbel(rk, a.seed_key, kpos)) * inv_tau;
                acc += expf(y - st[2]) * st[3];
            } else {
                acc += expf(logit - st[0]) * st[1];
            }
        }
    }
    red[warp * PF_T + lane] = acc;
    __syncthreads();
    if (threadIdx.x < nt) {
        float s = 0.0f;
        for (int w = 0; w < nw; w++)
            s += red[w * PF_T + threadIdx.x];
        a.kv.score[(size_t)g * a.kv.cap + s0 + threadIdx.x] += s;
    }
}

void attn_launch(const struct attn_args *a, cudaStream_t s)
{
    int span = a->span; /* slots any query may see in this call (<= cap) */
    if (a->n == 1) {
        int nb = attn_decode_tiles(span);
        k_dec_logits<<<dim3(a->G, nb), 256, 0, s>>>(*a);
        k_dec_values<<<dim3(a->G, attn_decode_splits(span)), 256, 0, s>>>(*a, nb);
        int tot = a->n_head * a->hd, mode = a->out_mode;
        if (mode == ACT_Q8_256 && tot % 256)
            mode = ACT_NONE; /* blocks of 256 would straddle: the product rounds it itself */
        k_dec_reduce<<<(tot + 255) / 256, 256, 0, s>>>(*a, mode, a->out_q);
        return;
    }
    int half = a->hd / 2;
    size_t sm = PF_T * (half + 1) * 4 + PF_T * half * 4 + PF_Q * a->hd * 4 + PF_T * 4;
    k_pf_attn<<<dim3(a->n_head, (a->n + PF_Q - 1) / PF_Q), PF_Q * WARP, sm, s>>>(*a);
    if (a->conf.policy == KV_P_H2O || a->conf.policy == KV_P_KEYFORMER) {
        /* the host decides per call whether scores are needed; st->scoring mirrors it */
        size_t sm2 = PF_T * (half + 1) * 4 + 8 * a->hd * 4 + 8 * PF_T * 4;
        int tiles = (span + PF_T - 1) / PF_T;
        k_pf_score<<<dim3(a->G, tiles), 256, sm2, s>>>(*a);
    }
}

/* ---- eviction --------------------------------------------------------------------------------- */

__device__ __forceinline__ uint64_t order_key(float sc, int pos)
{
    uint32_t u = __float_as_uint(sc);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t)u << 32) | (uint32_t)pos;
}

#define CB 256

/*
 * Remove the flagged slots of one (layer, KV head): the holes below the new count are refilled
 * from the survivors at or above it, both taken in slot order (kv_evict.c's compact()).
 */
__device__ void compact_block(const struct kv_layer &L, int g, int hd, int count, int nv,
                              const uint8_t *victim, int *holes, int *movers)
{
    typedef cub::BlockScan<int, CB> BS;
    __shared__ typename BS::TempStorage ts;
    __shared__ int nmov;
    int keep = count - nv, bh = 0, bm = 0;
    for (int c0 = 0; c0 < count; c0 += CB) {
        int s = c0 + threadIdx.x;
        int fh = s < keep && victim[s];
        int fm = s >= keep && s < count && !victim[s];
        int rh, rm, th, tm;
        BS(ts).ExclusiveSum(fh, rh, th);
        __syncthreads();
        BS(ts).ExclusiveSum(fm, rm, tm);
        __syncthreads();
        if (fh)
            holes[bh + rh] = s;
        if (fm)
            movers[bm + rm] = s;
        bh += th;
        bm += tm;
    }
    if (threadIdx.x == 0)
        nmov = bh;
    __syncthreads();
    size_t base = (size_t)g * L.cap;
    for (int e = threadIdx.x; e < nmov * hd; e += CB) {
        int i = e / hd, d = e % hd;
        size_t dst = (base + holes[i]) * hd + d, src = (base + movers[i]) * hd + d;
        L.k[dst] = L.k[src];
        L.v[dst] = L.v[src];
    }
    for (int i = threadIdx.x; i < nmov; i += CB) {
        L.pos[base + holes[i]] = L.pos[base + movers[i]];
        L.score[base + holes[i]] = L.score[base + movers[i]];
    }
}

/* Move slot src into dst (one victim: the last slot fills its hole). */
__device__ void move_one(const struct kv_layer &L, int g, int hd, int dst, int src)
{
    if (dst == src)
        return;
    size_t base = (size_t)g * L.cap;
    for (int d = threadIdx.x; d < hd; d += CB) {
        L.k[(base + dst) * hd + d] = L.k[(base + src) * hd + d];
        L.v[(base + dst) * hd + d] = L.v[(base + src) * hd + d];
    }
    if (threadIdx.x == 0) {
        L.pos[base + dst] = L.pos[base + src];
        L.score[base + dst] = L.score[base + src];
    }
}

struct KeyIdx {
    uint64_t key;
    int idx;
};

struct KeyIdxMin {
    __device__ KeyIdx operator()(const KeyIdx &a, const KeyIdx &b) const
    {
        return b.key < a.key ? b : a;
    }
};

/* Candidate key of slot s under the policy, or UINT64_MAX for slots that are not candidates. */
__device__ __forceinline__ uint64_t cand_key(const struct kv_conf &c, int pos, float score,
                                             int p_last)
{
    switch (c.policy) {
    case KV_P_WINDOW:
        return (uint32_t)pos;
    case KV_P_SINK:
        return pos >= c.n_sink ? (uint64_t)(uint32_t)pos : UINT64_MAX;
    default: /* h2o, keyformer: the recent window is protected */
        return pos <= p_last - c.recent ? order_key(score, pos) : UINT64_MAX;
    }
}

__global__ void __launch_bounds__(CB) k_commit(const struct kv_layer *layers, struct kv_conf c,
                                               int G, int hd, const struct kstep *st,
                                               uint8_t *victim_all, int *lists_all, size_t vstride)
{
    typedef cub::BlockReduce<int, CB> BRI;
    typedef cub::BlockReduce<KeyIdx, CB> BRK;
    __shared__ union {
        typename BRI::TempStorage i;
        typename BRK::TempStorage k;
    } tmp;
    __shared__ int sh_count, sh_int;
    __shared__ unsigned hist[16];
    __shared__ uint64_t prefix;
    __shared__ int remaining;
    const struct kv_layer L = layers[blockIdx.y];
    int g = blockIdx.x, n = st->n, p_last = st->pos0 + n - 1;
    size_t vb = ((size_t)blockIdx.y * G + g) * vstride;
    uint8_t *victim = victim_all + vb;
    int *holes = lists_all + 2 * vb, *movers = holes + vstride;
    if (threadIdx.x == 0)
        sh_count = L.n_used[g] + n;
    __syncthreads();
    int count = sh_count;
    const int32_t *P = L.pos + (size_t)g * L.cap;
    const float *S = L.score + (size_t)g * L.cap;
    int nv = 0;
    if (L.swa > 0) { /* sliding-window layer: drop what the next query cannot see */
        int lim = p_last + 1 - L.swa;
        for (int s = threadIdx.x; s < count; s += CB) {
            int v = P[s] <= lim;
            victim[s] = (uint8_t)v;
            nv += v;
        }
    } else if (!c.unbounded && c.policy != KV_P_FULL && count > c.budget) {
        int need = count - c.budget, nc = 0;
        KeyIdx best = { UINT64_MAX, -1 };
        for (int s = threadIdx.x; s < count; s += CB) {
            uint64_t k = cand_key(c, P[s], S[s], p_last);
            nc += k != UINT64_MAX;
            if (k < best.key)
                best = { k, s };
        }
        nc = BRI(tmp.i).Sum(nc);
        if (threadIdx.x == 0)
            sh_int = nc;
        __syncthreads();
        nc = sh_int;
        if (need == 1 && nc > 0) { /* a decode step: one victim, no flags needed */
            best = BRK(tmp.k).Reduce(best, KeyIdxMin());
            __shared__ int vic;
            if (threadIdx.x == 0)
                vic = best.idx;
            __syncthreads();
            move_one(L, g, hd, vic, count - 1);
            if (threadIdx.x == 0)
                L.n_used[g] = count - 1;
            return;
        }
        uint64_t T = UINT64_MAX - 1; /* every candidate when need >= nc */
        if (need < nc) {             /* the need-th smallest key, 4 bits at a time */
            if (threadIdx.x == 0) {
                prefix = 0;
                remaining = need;
            }
            for (int shift = 60; shift >= 0; shift -= 4) {
                if (threadIdx.x < 16)
                    hist[threadIdx.x] = 0;
                __syncthreads();
                uint64_t hi = shift == 60 ? 0 : ~0ULL << (shift + 4), pf = prefix;
                for (int s = threadIdx.x; s < count; s += CB) {
                    uint64_t k = cand_key(c, P[s], S[s], p_last);
                    if (k != UINT64_MAX && (k & hi) == (pf & hi))
                        atomicAdd(&hist[(k >> shift) & 15], 1u);
                }
                __syncthreads();
                if (threadIdx.x == 0) {
                    unsigned cum = 0;
                    for (int d = 0; d < 16; d++) {
                        if (cum + hist[d] >= (unsigned)remaining) {
                            prefix |= (uint64_t)d << shift;
                            remaining -= (int)cum;
                            break;
                        }
                        cum += hist[d];
                    }
                }
                __syncthreads();
            }
            T = prefix;
        }
        for (int s = threadIdx.x; s < count; s += CB) {
            uint64_t k = cand_key(c, P[s], S[s], p_last);
            int v = k != UINT64_MAX && k <= T;
            victim[s] = (uint8_t)v;
            nv += v;
        }
    } else {
        if (threadIdx.x == 0)
            L.n_used[g] = count;
        return;
    }
    __syncthreads();
    nv = BRI(tmp.i).Sum(nv);
    if (threadIdx.x == 0)
        sh_int = nv;
    __syncthreads();
    nv = sh_int;
    if (nv > 0)
        compact_block(L, g, hd, count, nv, victim, holes, movers);
    if (threadIdx.x == 0)
        L.n_used[g] = count - nv;
}

void kv_commit_launch(const struct kv_layer *layers_dev, int n_layers, const struct kv_conf *conf,
                      int G, int hd, const struct kstep *st, uint8_t *victim, int *lists,
                      size_t vstride, cudaStream_t s)
{
    k_commit<<<dim3(G, n_layers), CB, 0, s>>>(layers_dev, *conf, G, hd, st, victim, lists,
                                              vstride);
}

__global__ void __launch_bounds__(CB) k_truncate(const struct kv_layer *layers, int G, int hd,
                                                 int n_past, uint8_t *victim_all, int *lists_all,
                                                 size_t vstride)
{
    typedef cub::BlockReduce<int, CB> BRI;
    __shared__ typename BRI::TempStorage tmp;
    __shared__ int sh_nv, sh_count;
    const struct kv_layer L = layers[blockIdx.y];
    int g = blockIdx.x;
    size_t vb = ((size_t)blockIdx.y * G + g) * vstride;
    uint8_t *victim = victim_all + vb;
    int *holes = lists_all + 2 * vb, *movers = holes + vstride;
    if (threadIdx.x == 0)
        sh_count = L.n_used[g];
    __syncthreads();
    int count = sh_count, nv = 0;
    for (int s = threadIdx.x; s < count; s += CB) {
        int v = L.pos[(size_t)g * L.cap + s] >= n_past;
        victim[s] = (uint8_t)v;
        nv += v;
    }
    nv = BRI(tmp).Sum(nv);
    if (threadIdx.x == 0)
        sh_nv = nv;
    __syncthreads();
    nv = sh_nv;
    if (nv > 0)
        compact_block(L, g, hd, count, nv, victim, holes, movers);
    if (threadIdx.x == 0)
        L.n_used[g] = count - nv;
}

void kv_truncate_launch(const struct kv_layer *layers_dev, int n_layers, int G, int hd,
                        int n_past, uint8_t *victim, int *lists, size_t vstride, cudaStream_t s)
{
    k_truncate<<<dim3(G, n_layers), CB, 0, s>>>(layers_dev, G, hd, n_past, victim, lists,
                                                vstride);
}
