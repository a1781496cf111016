/*
 * cuda_attn_dec.cu — attention of one new token (decode) over the compacted KV cache, with the
 * policy's score contributions (cuda_attn.cu's header gives the semantics).
 *
 * Contexts of up to DEC_VS slots (every step of a short chat): one kernel, k_dec_short, does the
 * whole layer's attention — QK-norm, RoPE and the cache write of the new token, the logits
 * (plain and, for Keyformer, noisy) into shared memory, both softmax normalisers, the scores,
 * Σ p·v, and the rounding of the output for W_o — with one block per KV head, or under GQA per
 * share of a KV head's query heads, 32 blocks in all.  Each kernel boundary of a decode step
 * costs a few microseconds, which at this size is most of the work.
 * Longer contexts take the split kernels of cuda_attn_split.cu.
 */
#include <cstdio>
#include <cstring>

#include "cuda_attn.cuh"
#include "cuda_round.cuh"
#include "cuda_launch.cuh"

/*
 * The whole decode attention of nh = group/nsplit query heads of KV head g (blocks nsplit·g ..
 * nsplit·g + nsplit − 1 share its heads) for contexts of at most DEC_VS slots.  Every block of
 * a KV head rotates its new key; the first writes it and the value to the cache; with scores to
 * keep, the blocks' contributions meet in a.logits and the last block adds them up.
 * Dynamic shared memory: qs [nh + 2][hd] (the new token's queries, key and value),
 * lt [nh][DEC_VS] (logits, then probabilities), yt [nh][DEC_VS] (Keyformer's noisy
 * logits).  A block has few slots to read and is bound by latency, so: the older slots' keys and
 * values are asked into L2 before the grid waits for the Q/K/V products (written by earlier
 * steps: cuda_launch.cuh), the new token's heads are normed and rotated in shared memory and its
 * key and value read from there (no round trip through global memory between phases), each
 * thread issues all its key (value) loads of a round before using them (DEC_U rows in flight),
 * and the heads' norms and rotations run side by side, not in turn.
 * The output rounding needs whole blocks of 256 elements (ACT_Q8_256): when the block's
 * nh·hd elements are fewer, the last of the blocks sharing a 256-element block rounds it
 * (a.cnt counts arrivals, and is reset by that block).
 * Q8: a q8_0 cache (kvr<1> rows); the new key and value are rounded here as k_qk_store rounds.
 */
template <int Q8>
__global__ void __launch_bounds__(256) k_dec_short(struct attn_args a, const struct rope_args r,
                                                   int nsplit, int mode, void *xq)
{
    extern __shared__ float dsm[];
    __shared__ float red[256 * 8];
    __shared__ float sts[MAX_GROUP][4];
    /* the new key and value as the cache holds them: one row each (f16, or q8_0's rowb bytes) */
    __shared__ __align__(16) uint8_t knew[512], vnew[512];
    __shared__ int last;
    int group = a.n_head / a.G, hd = a.hd, L = hd / 8, kp = WARP / L;
    /* KV head g, query heads h0 .. h0 + nh - 1 of its group */
    int g = blockIdx.x / nsplit, js = blockIdx.x % nsplit, nh = group / nsplit;
    int h0 = g * group + js * nh;
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, li = lane % L, sub = lane / L;
    /* Before the wait: what earlier steps wrote (the cache, its count, the step's position,
     * copied in before the graph ran) — the slots' keys and values are asked into L2 and this
     * thread's score read, so that none of it waits on DRAM once the products have finished. */
    int qpos = a.st->pos0, used = a.kv.n_used[g], count = used + 1;
    float *qs = dsm, *lt = qs + (nh + 2) * hd, *yt = lt + nh * DEC_VS;
    /* Keyformer's noise depends on positions only: into yt by all threads, here (the new
     * token's slot holds qpos) rather than by the one lane per key that has its dot; first,
     * so that its registers are free again before those below are live (no spill) */
    if (a.st->scoring && a.kv.swa <= 0 && a.conf.policy == KV_P_KEYFORMER)
        for (int idx = threadIdx.x; idx < nh * count; idx += blockDim.x) {
            int j = idx / count, s = idx % count;
            yt[j * DEC_VS + s] =
                kn_gumbel(kn_row_key(a.kv.layer, h0 + j, qpos), a.seed_key,
                          s < used ? a.kv.pos[(size_t)g * a.kv.cap + s] : qpos);
        }
    const int rowb = Q8 ? a.kv.rowb : 2 * hd;
    const uint8_t *Kb = (const uint8_t *)a.kv.k + (size_t)g * a.kv.cap * rowb;
    const uint8_t *Vb = (const uint8_t *)a.kv.v + (size_t)g * a.kv.cap * rowb;
    dec_prefetch(Kb, (size_t)used * rowb);
    dec_prefetch(Vb, (size_t)used * rowb);
    dec_prefetch(a.kv.pos + (size_t)g * a.kv.cap, (size_t)used * 4);
    float score0 = (int)threadIdx.x < used ? a.kv.score[(size_t)g * a.kv.cap + threadIdx.x] : 0.0f;
    /* this thread's rotation (pair threadIdx.x % half of every head it turns) */
    int half = r.n_rot / 2, pi = half ? threadIdx.x % half : 0;
    float rc = 1.0f, rs = 0.0f;
    if (half)
        rope_cs(r, pi, (float)qpos, &rc, &rs);
    kgrid_begin();
    /* the new token's heads into shared memory: the block's queries, its key, its value */
    {
        const float *qr = a.qkv + (size_t)h0 * hd;
        const float *kr = a.qkv + (size_t)(a.n_head + g) * hd;
        const float *vr = a.qkv + (size_t)(a.n_head + a.G + g) * hd;
        for (int i = threadIdx.x; i < (nh + 2) * hd; i += blockDim.x)
            qs[i] = i < nh * hd ? qr[i] : i < (nh + 1) * hd ? kr[i - nh * hd]
                                                            : vr[i - (nh + 1) * hd];
    }
    __syncthreads();
    int nrot = nh + 1; /* the block's query heads, then the key head */
    if (r.q_norm || r.k_norm) { /* QK-norm: a warp per head */
        for (int j = warp; j < nrot; j += 8) {
            const float *nw = j < nh ? r.q_norm : r.k_norm;
            if (!nw)
                continue;
            float *v = qs + j * hd, ss = 0.0f;
            for (int i = lane; i < hd; i += WARP)
                ss += v[i] * v[i];
            ss = warp_sum(ss);
            float sc = 1.0f / sqrtf(ss / (float)hd + r.eps);
            for (int i = lane; i < hd; i += WARP)
                v[i] = v[i] * sc * nw[i];
        }
        __syncthreads();
    }
    for (int it = threadIdx.x; it < nrot * half; it += blockDim.x) {
        if (it % half == pi)
            rope_rot(r, qs + (it / half) * hd, pi, rc, rs);
        else
            rope_pair(r, qs + (it / half) * hd, it % half, (float)qpos);
    }
    __syncthreads();
    {
        /* the new key and value as the cache holds them, read from here below; the KV head's
         * first block writes them to the cache */
        size_t slot = (size_t)g * a.kv.cap + used;
        if (!Q8) {
            for (int d = threadIdx.x; d < 2 * hd; d += blockDim.x) {
                __half h = __float2half(qs[nh * hd + d]);
                if (d < hd) {
                    if (js == 0)
                        a.kv.k[slot * hd + d] = h;
                    ((__half *)knew)[d] = h;
                } else {
                    if (js == 0)
                        a.kv.v[slot * hd + d - hd] = h;
                    ((__half *)vnew)[d - hd] = h;
                }
            }
        } else { /* a warp per 32-block (hd is a multiple of 32), as qk_head rounds */
            for (int d0 = 0; d0 < 2 * hd; d0 += blockDim.x) {
                int d = d0 + threadIdx.x, isv = d >= hd, e = isv ? d - hd : d;
                float x = d < 2 * hd ? qs[nh * hd + d] : 0.0f;
                float dd = __fdiv_rn(warp_max(fabsf(x)), 127.0f);
                float id = dd != 0.0f ? __fdiv_rn(1.0f, dd) : 0.0f;
                uint8_t qv = (uint8_t)(int8_t)roundf(__fmul_rn(x, id));
                if (d < 2 * hd) {
                    uint8_t *rs = isv ? vnew : knew;
                    uint8_t *rg = (uint8_t *)(isv ? a.kv.v : a.kv.k) + slot * rowb;
                    rs[e] = qv;
                    if (js == 0)
                        rg[e] = qv;
                    if (e % 32 == 0) {
                        __half hs = __float2half_rn(dd);
                        ((__half *)(rs + hd))[e / 32] = hs;
                        if (js == 0)
                            ((__half *)(rg + hd))[e / 32] = hs;
                    }
                }
            }
        }
        if (threadIdx.x == 0 && js == 0)
            a.kv.pos[slot] = qpos;
    }
    __syncthreads();

    int scoring = a.st->scoring && a.kv.swa <= 0;
    int keyformer = scoring && a.conf.policy == KV_P_KEYFORMER;
    const int32_t *P = a.kv.pos + (size_t)g * a.kv.cap;
    float inv_tau = keyformer ? 1.0f / kv_tau(a.conf, qpos) : 1.0f;
    /* base is the same for the whole warp: its lanes shuffle together below */
    for (int base = warp * kp; base < count; base += 8 * kp * DEC_U) {
        kvr<Q8> u[DEC_U];
        int kpos[DEC_U];
#pragma unroll
        for (int k = 0; k < DEC_U; k++) {
            int s = base + sub + k * 8 * kp;
            u[k] = s < used    ? kvr<Q8>::load(Kb, (size_t)s, rowb, li, hd)
                   : s == used ? kvr<Q8>::load(knew, 0, rowb, li, hd)
                               : kvr<Q8>::zero();
            kpos[k] = s < used ? P[s] : qpos;
        }
        float kf[DEC_U][8], ks[DEC_U];
        dec_rows_raw(u, kf, ks);
        for (int j = 0; j < nh; j++) {
            float d[DEC_U];
            dec_dots(kf, ks, qs + j * hd + li * 8, L, d);
            if (li != 0)
                continue;
            int h = h0 + j;
#pragma unroll
            for (int k = 0; k < DEC_U; k++) {
                int s = base + sub + k * 8 * kp;
                if (s >= count)
                    break;
                int vis = visible(kpos[k], qpos, a.kv.swa);
                float lg = vis ? att_logit(a, d[k], h, kpos[k], qpos) : -INFINITY;
                lt[j * DEC_VS + s] = lg;
                if (keyformer) /* yt held the noise */
                    yt[j * DEC_VS + s] = vis ? (lg + yt[j * DEC_VS + s]) * inv_tau : -INFINITY;
            }
        }
    }
    __syncthreads();
    /* normalisers {m, 1/l, m2, 1/l2}: warp w for heads w, w + 8, ... */
    for (int j = warp; j < nh; j += 8) {
        for (int which = 0; which < 2; which++) {
            float m = 0.0f, l = 1.0f;
            if (which == 0 || keyformer) {
                const float *v = (which ? yt : lt) + j * DEC_VS;
                m = -INFINITY;
                for (int i = lane; i < count; i += WARP)
                    m = fmaxf(m, v[i]);
                m = warp_max(m);
                l = 0.0f;
                for (int i = lane; i < count; i += WARP)
                    l += expf(v[i] - m);
                l = warp_sum(l);
            }
            if (lane == 0) {
                sts[j][2 * which] = m;
                sts[j][2 * which + 1] = 1.0f / l;
            }
        }
    }
    __syncthreads();
    float *srow = a.kv.score + (size_t)g * a.kv.cap;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        float sc = 0.0f;
        for (int j = 0; j < nh; j++) {
            float p = expf(lt[j * DEC_VS + i] - sts[j][0]) * sts[j][1];
            lt[j * DEC_VS + i] = p;
            if (scoring)
                sc += keyformer ? expf(yt[j * DEC_VS + i] - sts[j][2]) * sts[j][3] : p;
        }
        /* the new slot starts from 0; older ones from the value read before the wait.  A KV
         * head split over blocks adds up their contributions below. */
        if (nsplit > 1 && scoring)
            a.logits[(size_t)h0 * a.kv.cap + i] = sc;
        else if ((scoring || i == used) && (js == 0))
            srow[i] = (i == used ? 0.0f : i == (int)threadIdx.x ? score0 : srow[i]) + sc;
    }
    __syncthreads();
    if (nsplit > 1 && scoring) {
        /* the last of the KV head's blocks sums their contributions in head order (a.cnt
         * after the output's counters counts arrivals, reset by that block) */
        if (block_arrive(a.cnt + a.n_head * hd / 256 + 1 + g, nsplit, &last)) {
            for (int i = threadIdx.x; i < count; i += blockDim.x) {
                float sc = 0.0f;
                for (int b = 0; b < nsplit; b++)
                    sc += __ldcg(a.logits + (size_t)(g * group + b * nh) * a.kv.cap + i);
                srow[i] = (i == used ? 0.0f : i == (int)threadIdx.x ? score0 : srow[i]) + sc;
            }
        }
        __syncthreads(); /* last is reused by the rounding */
    }
    int kg = threadIdx.x / L, nkg = blockDim.x / L;
    float *out = a.out + (size_t)h0 * hd;
    for (int j0 = 0; j0 < nh; j0 += 4) { /* up to 4 heads per pass over the values */
        float acc[4][8];
#pragma unroll
        for (int jj = 0; jj < 4; jj++)
#pragma unroll
            for (int e = 0; e < 8; e++)
                acc[jj][e] = 0.0f;
        for (int i0 = kg; i0 < count; i0 += nkg * DEC_U) {
            kvr<Q8> u[DEC_U];
#pragma unroll
            for (int k = 0; k < DEC_U; k++) {
                int i = i0 + k * nkg;
                u[k] = i < used    ? kvr<Q8>::load(Vb, (size_t)i, rowb, li, hd)
                       : i == used ? kvr<Q8>::load(vnew, 0, rowb, li, hd)
                                   : kvr<Q8>::zero();
            }
#pragma unroll
            for (int k = 0; k < DEC_U; k++) {
                int i = i0 + k * nkg;
                if (i >= count)
                    break;
                float vf[8], vs = u[k].scale();
                u[k].raw(vf);
#pragma unroll
                for (int jj = 0; jj < 4; jj++) {
                    if (j0 + jj >= nh)
                        break;
                    float p = lt[(j0 + jj) * DEC_VS + i] * vs;
#pragma unroll
                    for (int e = 0; e < 8; e++)
                        acc[jj][e] += p * vf[e];
                }
            }
        }
        /* the warp's key groups meet by shuffles, the 8 warps in shared memory; the sums
         * also stay in qs (free after the logits) for the rounding below */
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
                out[(j0 + jj) * hd + d] = sum;
                qs[(j0 + jj) * hd + d] = sum;
            }
            __syncthreads();
        }
    }
    if (mode == ACT_NONE)
        return;
    int seg = nh * hd, e0 = h0 * hd;
    if (mode == ACT_Q8_32 || seg % 256 == 0) {
        for (int c = 0; c < seg; c += 256) {
            int valid = c + (int)threadIdx.x < seg, e = e0 + c + threadIdx.x;
            round_chunk(valid ? qs[c + threadIdx.x] : 0.0f, valid, 0, e, mode, xq, NULL);
        }
        return;
    }
    if (!block_arrive(&a.cnt[e0 / 256], 256 / seg, &last))
        return;
    int e = e0 / 256 * 256 + threadIdx.x;
    round_chunk(__ldcg(a.out + e), 1, 0, e, mode, xq, NULL);
}

/*
 * Blocks per KV head for k_dec_short: enough for 32 blocks in all (one per KV head leaves most
 * of the GPU idle under GQA: Llama-3-8B's 8 KV heads), each taking an equal share of the
 * group's query heads.  KF_CUDA_DEC_SPLIT=n asks for n where it divides the group (tests).
 */
static int dec_short_split(const struct attn_args *a)
{
    int group = a->n_head / a->G, n = 1;
    const char *e = getenv("KF_CUDA_DEC_SPLIT");
    if (e && atoi(e) > 0 && group % atoi(e) == 0)
        return atoi(e);
    while (a->G * n < 32 && n < group && group % (2 * n) == 0)
        n *= 2;
    return n;
}

/* Shared memory of k_dec_short, or 0 where it does not apply (then the split kernels run). */
static size_t dec_short_smem(const struct attn_args *a, int nsplit, int mode)
{
    int nh = a->n_head / a->G / nsplit, hd = a->hd, seg = nh * hd;
    if (a->span > DEC_VS || nh > MAX_GROUP || (hd != 64 && hd != 128 && hd != 256))
        return 0;
    if (mode == ACT_Q8_256 && seg % 256 && (seg > 256 || 256 % seg || !a->cnt))
        return 0;
    size_t sm = ((size_t)(nh + 2) * hd + 2 * (size_t)nh * DEC_VS) * 4;
    return sm + 10 * 1024 <= 48 * 1024 ? sm : 0; /* with ~10 KiB of static shared memory */
}

void attn_decode_launch(const struct attn_args *a, const struct rope_args *r, cudaStream_t s)
{
    int tot = a->n_head * a->hd, mode = a->out_mode;
    if (mode == ACT_Q8_256 && tot % 256)
        mode = ACT_NONE; /* blocks of 256 would straddle: the product rounds it itself */
    /* KF_CUDA_DEC=split takes the split kernels where k_dec_short applies (tests).  Under MHA
     * without scores k_dec_mma takes every context where it serves (dec_mma_serves), unless
     * KF_CUDA_WFLASH asks attn_split_launch for other kernels (tests).  With H2O's or
     * Keyformer's scores k_dec_short keeps the short contexts: Llama-2 shape, Keyformer 25% of
     * 2048, tg64 at depth 0 443 (k_dec_short) against 422, at depth 128 413 against 422. */
    const char *force = getenv("KF_CUDA_DEC");
    const int mma = a->n_head == a->G && !attn_dec_scores(a) && dec_mma_serves(a) &&
                    !getenv("KF_CUDA_WFLASH");
    int nsplit = dec_short_split(a);
    size_t sm = (force && !strcmp(force, "split")) || mma ? 0 : dec_short_smem(a, nsplit, mode);
    if (sm) {
        klaunch(a->kv.q8 ? k_dec_short<1> : k_dec_short<0>, a->G * nsplit, 256, sm, s, *a, *r,
                nsplit, mode, a->out_q);
        return;
    }
    attn_split_launch(a, r, mode, s);
}
