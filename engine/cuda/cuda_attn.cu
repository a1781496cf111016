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
 * Decode (one token) is cuda_attn_dec.cu's.
 * Prefill (a tile of queries): on the tensor cores for head sizes 16..128 (cuda_attn_pf.cu),
 * else here, one warp per query streaming key/value tiles from shared memory; either way an
 * online softmax gives the plain and noisy normalisers in the same pass.  The scores need the
 * final normalisers, so a second pass per key tile recomputes q·k — no n×n matrix is stored.
 */
#include <cfloat>
#include <cstdio>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "cuda_attn.cuh"
#include "cuda_round.cuh"
#include "cuda_launch.cuh"

struct FMax {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

/* ---- QK-norm, RoPE and the cache write ---------------------------------------------------- */

/* One warp per (token, head), 8 heads per block: qk_head (cuda_attn.cuh).  (A block per head
 * left a 512-token prompt's 49k tiny blocks waiting on their loads one after another.) */
#define QK_WARPS 8
__global__ void __launch_bounds__(QK_WARPS * WARP) k_qk_store(struct attn_args a,
                                                              const struct rope_args r)
{
    kgrid_begin();
    int hh = blockIdx.y * QK_WARPS + threadIdx.x / WARP;
    if (hh < a.n_head + 2 * a.G)
        qk_head(a, r, blockIdx.x, hh);
}

void qk_store_launch(const struct attn_args *a, const struct rope_args *r, cudaStream_t s)
{
    int heads = a->n_head + 2 * a->G;
    klaunch(k_qk_store, dim3(a->n, (heads + QK_WARPS - 1) / QK_WARPS), QK_WARPS * WARP, 0, s,
            *a, *r);
}

/* ---- prefill ------------------------------------------------------------------------------- */

/* One warp per query: online softmax over key tiles; plain and noisy normalisers. */
__global__ void __launch_bounds__(PF_Q * WARP) k_pf_attn(struct attn_args a)
{
    kgrid_begin();
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
            logit = att_logit(a, d, h, Pt[lane], qpos);
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
    kgrid_begin();
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
            float logit = att_logit(a, d, h, kpos, qpos);
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

/*
 * A q8_0 cache's rows 0 .. n_used + n of every KV head as f16 into kh/vh ([G][cap][hd]), for the
 * prefill kernels, which read f16 tiles: one thread per 8 elements of a key and a value.
 */
__global__ void __launch_bounds__(256) k_kv_dequant(struct attn_args a)
{
    kgrid_begin();
    int g = blockIdx.y, L = a.hd / 8, count = a.kv.n_used[g] + a.n;
    size_t i = (size_t)blockIdx.x * 256 + threadIdx.x, r = i / L;
    if (r >= (size_t)count)
        return;
    int li = (int)(i % L), hd = a.hd;
    size_t slot = (size_t)g * a.kv.cap + r;
    for (int w = 0; w < 2; w++) {
        /* the decode kernels' reader, so prefill sees the same values (d·q rounded to f16) */
        float f[8];
        kvr<1>::load((const uint8_t *)(w ? a.kv.v : a.kv.k), slot, a.kv.rowb, li, hd).f32(f);
        __align__(16) __half o[8];
#pragma unroll
        for (int e = 0; e < 8; e++)
            o[e] = __float2half_rn(f[e]);
        *(uint4 *)((w ? a.vh : a.kh) + slot * hd + li * 8) = *(const uint4 *)o;
    }
}

void attn_launch(const struct attn_args *a0, const struct rope_args *r, cudaStream_t s)
{
    int span = a0->span; /* slots any query may see in this call (<= cap) */
    if (a0->n == 1) {
        attn_decode_launch(a0, r, s);
        return;
    }
    qk_store_launch(a0, r, s);
    struct attn_args b = *a0;
    const struct attn_args *a = a0;
    if (a0->kv.q8) { /* the prefill kernels read the layer's rows in f16 */
        klaunch(k_kv_dequant, dim3((span * (a0->hd / 8) + 255) / 256, a0->G), 256, 0, s, *a0);
        b.kv.k = a0->kh;
        b.kv.v = a0->vh;
        b.kv.rowb = 2 * a0->hd;
        b.kv.q8 = 0;
        a = &b;
    }
    int half = a->hd / 2;
    size_t sm = PF_T * (half + 1) * 4 + PF_T * half * 4 + PF_Q * a->hd * 4 + PF_T * 4;
    if (pf_attn_mma_launch(a, a->conf.policy == KV_P_KEYFORMER, s)) /* tensor cores first */
        klaunch(k_pf_attn, dim3(a->n_head, (a->n + PF_Q - 1) / PF_Q), PF_Q * WARP, sm, s, *a);
    if (a->conf.policy == KV_P_H2O || a->conf.policy == KV_P_KEYFORMER) {
        /* the host decides per call whether scores are needed; st->scoring mirrors it */
        size_t sm2 = PF_T * (half + 1) * 4 + 8 * a->hd * 4 + 8 * PF_T * 4;
        int tiles = (span + PF_T - 1) / PF_T;
        klaunch(k_pf_score, dim3(a->G, tiles), 256, sm2, s, *a);
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
    int nw = L.rowb / 4; /* rows move as 4-byte words (f16 or q8_0) */
    uint32_t *K = (uint32_t *)L.k, *V = (uint32_t *)L.v;
    for (int e = threadIdx.x; e < nmov * nw; e += CB) {
        int i = e / nw, w = e % nw;
        size_t dst = (base + holes[i]) * nw + w, src = (base + movers[i]) * nw + w;
        K[dst] = K[src];
        V[dst] = V[src];
    }
    for (int i = threadIdx.x; i < nmov; i += CB) {
        L.pos[base + holes[i]] = L.pos[base + movers[i]];
        L.score[base + holes[i]] = L.score[base + movers[i]];
        if (L.key)
            L.key[base + holes[i]] = L.key[base + movers[i]];
    }
    if (L.key) { /* the freed slots hold no key token (a new entry starts as none) */
        __syncthreads();
        for (int s = keep + threadIdx.x; s < count; s += CB)
            L.key[base + s] = 0;
    }
}

/* keyformer-static after the freeze: flag what is not a key token at or before position lim
 * (kv_evict.c's slide); returns this thread's count of flags. */
__device__ __forceinline__ int flag_unkeyed(const struct kv_layer &L, int g, int count, int lim, uint8_t *victim)
{
    const int32_t *P = L.pos + (size_t)g * L.cap;
    const uint8_t *Kf = L.key + (size_t)g * L.cap;
    int nv = 0;
    for (int s = threadIdx.x; s < count; s += CB) {
        int v = !Kf[s] && P[s] <= lim;
        victim[s] = (uint8_t)v;
        nv += v;
    }
    return nv;
}

/* Move slot src into dst (one victim: the last slot fills its hole). */
__device__ void move_one(const struct kv_layer &L, int g, int hd, int dst, int src)
{
    size_t base = (size_t)g * L.cap;
    if (L.key && threadIdx.x == 0) {
        L.key[base + dst] = L.key[base + src];
        L.key[base + src] = 0;
    }
    if (dst == src)
        return;
    int nw = L.rowb / 4;
    uint32_t *K = (uint32_t *)L.k, *V = (uint32_t *)L.v;
    for (int w = threadIdx.x; w < nw; w += CB) {
        K[(base + dst) * nw + w] = K[(base + src) * nw + w];
        V[(base + dst) * nw + w] = V[(base + src) * nw + w];
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

typedef cub::BlockReduce<int, CB> BlockSumInt;

/* One eviction block's scratch (grid: KV heads × layers): the victim flags of its slots and the
 * hole and mover lists of the compaction. */
struct evict_scratch {
    uint8_t *victim;
    int *holes, *movers;
};

__device__ __forceinline__ struct evict_scratch scratch_of(uint8_t *victim_all, int *lists_all,
                                                           size_t vstride, int G)
{
    size_t vb = ((size_t)blockIdx.y * G + blockIdx.x) * vstride;
    return { victim_all + vb, lists_all + 2 * vb, lists_all + 2 * vb + vstride };
}

/* KV head g's count (plus add), read once and shared with the whole block. */
__device__ __forceinline__ int block_count(const struct kv_layer &L, int g, int add)
{
    __shared__ int c;
    if (threadIdx.x == 0)
        c = L.n_used[g] + add;
    __syncthreads();
    return c;
}

/*
 * The need-th smallest of the keys keyf(s) != UINT64_MAX over slots [0, count), 4 bits at a
 * time (every thread calling; 1 <= need <= the number of such keys, all distinct).
 */
template <class F> __device__ uint64_t kth_key(int count, int need, const F &keyf)
{
    __shared__ unsigned hist[16];
    __shared__ uint64_t prefix;
    __shared__ int remaining;
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
            uint64_t k = keyf(s);
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
    return prefix;
}

/*
 * The end of an eviction of one (layer, KV head), every thread calling: nv is this thread's
 * count of flagged slots; the block's total goes through sh (shared), then the survivors are
 * compacted and the new count stored.
 */
__device__ void drop_victims(const struct kv_layer &L, int g, int hd, int count, int nv,
                             uint8_t *victim, int *holes, int *movers,
                             typename BlockSumInt::TempStorage &tmp, int *sh)
{
    nv = BlockSumInt(tmp).Sum(nv);
    if (threadIdx.x == 0)
        *sh = nv;
    __syncthreads();
    nv = *sh;
    if (nv > 0)
        compact_block(L, g, hd, count, nv, victim, holes, movers);
    if (threadIdx.x == 0)
        L.n_used[g] = count - nv;
}

__global__ void __launch_bounds__(CB) k_commit(const struct kv_layer *layers, struct kv_conf c,
                                               int G, int hd, const struct kstep *st,
                                               uint8_t *victim_all, int *lists_all, size_t vstride)
{
    kgrid_begin();
    typedef BlockSumInt BRI;
    typedef cub::BlockReduce<KeyIdx, CB> BRK;
    __shared__ union {
        typename BRI::TempStorage i;
        typename BRK::TempStorage k;
    } tmp;
    __shared__ int sh_int;
    const struct kv_layer L = layers[blockIdx.y];
    int g = blockIdx.x, n = st->n, p_last = st->pos0 + n - 1;
    const struct evict_scratch x = scratch_of(victim_all, lists_all, vstride, G);
    uint8_t *victim = x.victim;
    int count = block_count(L, g, n);
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
    } else if (c.stat && !c.unbounded && !st->scoring) {
        /* keyformer-static after the freeze: what is not a key token leaves with the window
         * (a decode step's leaving token already went in k_static; a prompt chunk's go here) */
        nv = flag_unkeyed(L, g, count, p_last - c.recent, victim);
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
        if (need < nc)
            T = kth_key(count, need, [&](int s) { return cand_key(c, P[s], S[s], p_last); });
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
    drop_victims(L, g, hd, count, nv, victim, x.holes, x.movers, tmp.i, &sh_int);
}

void kv_commit_launch(const struct kv_layer *layers_dev, int n_layers, const struct kv_conf *conf,
                      int G, int hd, const struct kstep *st, uint8_t *victim, int *lists,
                      size_t vstride, cudaStream_t s)
{
    klaunch(k_commit, dim3(G, n_layers), CB, 0, s,
            layers_dev, *conf, G, hd, st, victim, lists, vstride);
}

/*
 * keyformer-static before a call (st->stat_op), per (global layer, KV head), n = st->pos0 tokens
 * so far, window w, budget B — kv_static_freeze / kv_static_slide of engine/kv_evict.c:
 * 1: key tokens = the top B − w by (score, position) among positions < n − w, the rest of those
 *    dropped, and position n − w too (the authors' off-by-one: keyformer.md §1.6);
 * 2: drop what is not a key token at or before position n − w.
 */
__global__ void __launch_bounds__(CB) k_static(const struct kv_layer *layers, struct kv_conf c,
                                               int G, int hd, const struct kstep *st,
                                               uint8_t *victim_all, int *lists_all, size_t vstride)
{
    kgrid_begin();
    __shared__ typename BlockSumInt::TempStorage tmp;
    __shared__ int sh_int;
    const struct kv_layer L = layers[blockIdx.y];
    const int op = st->stat_op, g = blockIdx.x, n = st->pos0, w = c.recent;
    if (!op || L.swa > 0) /* (uniform in the block) */
        return;
    const struct evict_scratch x = scratch_of(victim_all, lists_all, vstride, G);
    uint8_t *victim = x.victim;
    const int count = block_count(L, g, 0);
    const int32_t *P = L.pos + (size_t)g * L.cap;
    const float *S = L.score + (size_t)g * L.cap;
    uint8_t *Kf = L.key + (size_t)g * L.cap;
    int nv = 0;
    if (op == 2) {
        nv = flag_unkeyed(L, g, count, n - w, victim);
    } else {
        int nc = 0;
        for (int s = threadIdx.x; s < count; s += CB)
            nc += P[s] < n - w;
        nc = BlockSumInt(tmp).Sum(nc);
        if (threadIdx.x == 0)
            sh_int = nc;
        __syncthreads();
        const int need = sh_int - (c.budget - w); /* candidates that do not stay as key tokens */
        auto key = [&](int s) { return P[s] < n - w ? order_key(S[s], P[s]) : UINT64_MAX; };
        const uint64_t T = need > 0 ? kth_key(count, need, key) : 0;
        for (int s = threadIdx.x; s < count; s += CB) {
            int cd = P[s] < n - w, v = (cd && need > 0 && key(s) <= T) || P[s] == n - w;
            Kf[s] = (uint8_t)(cd && !v);
            victim[s] = (uint8_t)v;
            nv += v;
        }
    }
    __syncthreads();
    drop_victims(L, g, hd, count, nv, victim, x.holes, x.movers, tmp, &sh_int);
}

void kv_static_launch(const struct kv_layer *layers_dev, int n_layers, const struct kv_conf *conf,
                      int G, int hd, const struct kstep *st, uint8_t *victim, int *lists,
                      size_t vstride, cudaStream_t s)
{
    klaunch(k_static, dim3(G, n_layers), CB, 0, s, layers_dev, *conf, G, hd, st, victim, lists,
            vstride);
}

__global__ void __launch_bounds__(CB) k_truncate(const struct kv_layer *layers, int G, int hd,
                                                 int n_past, uint8_t *victim_all, int *lists_all,
                                                 size_t vstride)
{
    kgrid_begin();
    __shared__ typename BlockSumInt::TempStorage tmp;
    __shared__ int sh_nv;
    const struct kv_layer L = layers[blockIdx.y];
    int g = blockIdx.x;
    const struct evict_scratch x = scratch_of(victim_all, lists_all, vstride, G);
    uint8_t *victim = x.victim;
    int count = block_count(L, g, 0), nv = 0;
    for (int s = threadIdx.x; s < count; s += CB) {
        int v = L.pos[(size_t)g * L.cap + s] >= n_past;
        victim[s] = (uint8_t)v;
        nv += v;
    }
    drop_victims(L, g, hd, count, nv, victim, x.holes, x.movers, tmp, &sh_nv);
}

void kv_truncate_launch(const struct kv_layer *layers_dev, int n_layers, int G, int hd,
                        int n_past, uint8_t *victim, int *lists, size_t vstride, cudaStream_t s)
{
    klaunch(k_truncate, dim3(G, n_layers), CB, 0, s,
            layers_dev, G, hd, n_past, victim, lists, vstride);
}
