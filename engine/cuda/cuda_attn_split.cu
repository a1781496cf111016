/*
 * cuda_attn_split.cu — decode attention over contexts longer than k_dec_short's (cuda_attn_dec.cu
 * picks): after QK-norm/RoPE/cache write (cuda_attn.cu's k_qk_store), logits per tile of DEC_KB
 * slots with per-tile softmax partials, values per slice of DEC_VS slots with the policy's score
 * contributions, and a reduction of the slices, rounded for W_o.
 *
 * Without scores to keep, contexts over 1024 slots go to the tensor cores (cuda_attn_dmma.cu,
 * head sizes 64 and 128); with them, MHA takes one warp per chunk of slots (k_dec_wflash:
 * logits, online softmax and values of the chunk in registers; k_dec_flash_reduce combines
 * them), as do MHA models of other head sizes.
 * Every kernel reads f16 or q8_0 rows (kvr<Q8>), but for the one-row variants (f16 only).
 * Two variants of the logits and value kernels: batched (DEC_U rows in flight per thread, the
 * values of 4 heads per pass) and one row at a time (fewer registers, more resident blocks),
 * which a bounded Keyformer cache takes under MHA.  Keyformer's Gumbel noise is computed before
 * the grid wait by all threads (dec_tile_noise), not by the one lane per key that holds its dot
 * (H100, Q4_K_M at depth 16384, keyformer 50%, tg64: Llama-2-7B shape 204.4 before, 207.1 one
 * row at a time, 200.7 batched; Llama-3-8B shape (GQA 8) 208.8 before, 218.8 one row, 280.8
 * batched; unbounded cache, Llama-3 shape at depth 4096: 261 one row at a time, 337 batched).
 */
#include <cfloat>
#include <cstdio>
#include <cstring>

#include "cuda_attn.cuh"
#include "cuda_round.cuh"
#include "cuda_launch.cuh"

/* Rows r0 + k·step (k < DEC_U; those < n) of the tile at slot s0: this lane's share li of
 * each key (kvr), and the keys' positions (zeros past n). */
template <int Q8>
static __device__ __forceinline__ void dec_tile_rows(const uint8_t *K, int rowb, int hd,
                                                     const int32_t *P, int s0, int n, int r0,
                                                     int step, int li, kvr<Q8> (&u)[DEC_U],
                                                     int (&kpos)[DEC_U])
{
#pragma unroll
    for (int k = 0; k < DEC_U; k++) {
        int i = r0 + k * step, in = i < n;
        u[k] = in ? kvr<Q8>::load(K, (size_t)(s0 + i), rowb, li, hd) : kvr<Q8>::zero();
        kpos[k] = in ? P[s0 + i] : 0;
    }
}

/*
 * Keyformer's Gumbel noise of the tile's slots for every query head of KV head g into
 * nz[j][i], computed before the grid wait: it depends on positions only (the step's, from the
 * step record, and the slots', written by earlier calls; the newest slot, which this call's
 * k_qk_store fills, holds the new token: pos0).  Off the step's path, and spread over all
 * threads rather than the one lane per key that has the key's dot.
 */
static __device__ __forceinline__ void dec_tile_noise(const struct attn_args &a, int g, int s0,
                                                      int count, float (*nz)[DEC_KB])
{
    int group = a.n_head / a.G, nt = min(DEC_KB, count - s0), qpos = a.st->pos0;
    const int32_t *P = a.kv.pos + (size_t)g * a.kv.cap;
    for (int idx = threadIdx.x; idx < group * nt; idx += blockDim.x) {
        int j = idx / nt, i = idx % nt, s = s0 + i;
        int kpos = s == count - 1 ? qpos : P[s];
        nz[j][i] = kn_gumbel(kn_row_key(a.kv.layer, g * group + j, qpos), a.seed_key, kpos);
    }
}

/*
 * The logit lg of slot s for query head h (vis: the query sees the key) into the cache's row and
 * the tile's shared lt[j][i]; with Keyformer also the noisy logit, (lg + noise)/τ, from the
 * noise yt[j][i] held (dec_tile_noise) into the noisy row and yt[j][i].
 */
static __device__ __forceinline__ void dec_keep_logit(const struct attn_args &a, int h, int s,
                                                      float lg, int vis, int keyformer,
                                                      float inv_tau, float (*lt)[DEC_KB],
                                                      float (*yt)[DEC_KB], int j, int i)
{
    a.logits[(size_t)h * a.kv.cap + s] = lg;
    lt[j][i] = lg;
    if (keyformer) {
        float y = vis ? (lg + yt[j][i]) * inv_tau : -INFINITY;
        a.noisy[(size_t)h * a.kv.cap + s] = y;
        yt[j][i] = y;
    }
}

/*
 * The tile's softmax partials (max and Σexp of its nt logits, and of the noisy ones with
 * Keyformer) for each query head of KV head g into pstats[h][tile], for k_dec_values to combine:
 * warp w reduces head w (and w + 8, ...).  After a barrier over lt/yt.
 */
static __device__ __forceinline__ void dec_tile_partials(const struct attn_args &a, int g,
                                                         int group, int nt, int keyformer,
                                                         const float (*lt)[DEC_KB],
                                                         const float (*yt)[DEC_KB])
{
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, nb = gridDim.y;
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
 * Logits of one tile of DEC_KB slots for every query head of KV head g.  hd/8 lanes share a key
 * (one 16-byte load each), so a warp reads 32/(hd/8) keys per pass.  The tile's softmax partials
 * (max and Σexp, plain and noisy) go to pstats[h][tile] for k_dec_values to combine.
 */
template <int Q8> __global__ void __launch_bounds__(256, 2) k_dec_logits(struct attn_args a)
{
    __shared__ __align__(16) float qs[MAX_GROUP * 256]; /* [group][hd]; float4 reads */
    __shared__ float lt[MAX_GROUP][DEC_KB], yt[MAX_GROUP][DEC_KB];
    int g = blockIdx.x, group = a.n_head / a.G, hd = a.hd, L = hd / 8, kp = WARP / L;
    int s0 = blockIdx.y * DEC_KB;
    /* the tile's keys into L2 before the wait: all but the newest were written by earlier steps
     * (a prefetch only asks: the loads below, after the wait, see the newest too) */
    int count = a.kv.n_used[g] + 1; /* written by the previous call's eviction */
    int keyformer = a.st->scoring && a.kv.swa <= 0 && a.conf.policy == KV_P_KEYFORMER;
    if (s0 < count) {
        dec_prefetch((const uint8_t *)a.kv.k + ((size_t)g * a.kv.cap + s0) * a.kv.rowb,
                     (size_t)min(DEC_KB, count - s0) * a.kv.rowb);
        if (keyformer)
            dec_tile_noise(a, g, s0, count, yt);
    }
    kgrid_begin();
    int qpos = a.st->pos0;
    if (s0 >= count)
        return;
    int nt = min(DEC_KB, count - s0);
    for (int i = threadIdx.x; i < group * hd; i += blockDim.x)
        qs[i] = a.qkv[(size_t)g * group * hd + i];
    __syncthreads();
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, li = lane % L, sub = lane / L;
    const int32_t *P = a.kv.pos + (size_t)g * a.kv.cap;
    const uint8_t *K = (const uint8_t *)a.kv.k + (size_t)g * a.kv.cap * a.kv.rowb;
    float inv_tau = keyformer ? 1.0f / kv_tau(a.conf, qpos) : 1.0f;
    /* base is the same for the whole warp: its lanes shuffle together */
    for (int base = warp * kp; base < nt; base += 8 * kp * DEC_U) {
        kvr<Q8> u[DEC_U];
        int kpos[DEC_U];
        dec_tile_rows<Q8>(K, a.kv.rowb, hd, P, s0, nt, base + sub, 8 * kp, li, u, kpos);
        float kf[DEC_U][8], ks[DEC_U];
        dec_rows_raw(u, kf, ks);
        for (int j = 0; j < group; j++) {
            float d[DEC_U];
            dec_dots(kf, ks, qs + j * hd + li * 8, L, d);
            if (li != 0)
                continue;
            int h = g * group + j;
#pragma unroll
            for (int k = 0; k < DEC_U; k++) {
                int i = base + sub + k * 8 * kp, s = s0 + i;
                if (i >= nt)
                    break;
                int vis = visible(kpos[k], qpos, a.kv.swa);
                float lg = vis ? att_logit(a, d[k], h, kpos[k], qpos) : -INFINITY;
                dec_keep_logit(a, h, s, lg, vis, keyformer, inv_tau, lt, yt, j, i);
            }
        }
    }
    __syncthreads();
    dec_tile_partials(a, g, group, nt, keyformer, lt, yt);
}

/*
 * Combine the tiles' partials of head h into its normalisers st = {m, 1/l, m2, 1/l2}: one warp,
 * called by every block of k_dec_values for its heads (a few hundred tiles at most: cheaper
 * than a kernel of its own).  keyformer: 0 the plain ones, 1 both, 2 the noisy ones only.
 */
__device__ void dec_stats(const struct attn_args &a, int h, int nb, int nt, int keyformer,
                          float *st)
{
    int lane = threadIdx.x % WARP;
    for (int which = keyformer == 2; which < 1 + (keyformer != 0); which++) {
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
 * The probabilities of slice s0 .. s0+ns−1 of KV head g for each of its query heads into ps
 * (normalisers combined from the tiles' partials into sts), and the slice's score
 * contributions added to the cache; ends with the block synchronised.
 */
static __device__ __forceinline__ void dec_slice_probs(const struct attn_args &a, int g, int s0,
                                                       int ns, int count, int nb,
                                                       float (*ps)[DEC_VS], float (*sts)[4])
{
    int group = a.n_head / a.G;
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
}

/*
 * Σ p·v over one slice of DEC_VS slots for every query head of KV head g, plus the slice's score
 * contributions.  hd/8 threads cover a value row (16-byte loads); the block's 256/(hd/8) key
 * groups sum their rows and meet in shared memory.
 */
template <int Q8> __global__ void __launch_bounds__(256) k_dec_values(struct attn_args a, int nb)
{
    __shared__ float ps[MAX_GROUP][DEC_VS];
    __shared__ float red[256 * 8];
    __shared__ float sts[MAX_GROUP][4];
    int g = blockIdx.x, sl = blockIdx.y, group = a.n_head / a.G, hd = a.hd;
    int s0 = sl * DEC_VS;
    /* the slice's values into L2 before the wait (written before this kernel's predecessor
     * started; see k_dec_logits) */
    int count = a.kv.n_used[g] + 1; /* written by the previous call's eviction */
    if (s0 < count)
        dec_prefetch((const uint8_t *)a.kv.v + ((size_t)g * a.kv.cap + s0) * a.kv.rowb,
                     (size_t)min(DEC_VS, count - s0) * a.kv.rowb);
    kgrid_begin();
    if (s0 >= count)
        return;
    int ns = min(DEC_VS, count - s0);
    dec_slice_probs(a, g, s0, ns, count, nb, ps, sts);
    const uint8_t *V = (const uint8_t *)a.kv.v + ((size_t)g * a.kv.cap + s0) * a.kv.rowb;
    for (int j0 = 0; j0 < group; j0 += 4) /* up to 4 heads per pass over the slice */
        dec_pv<Q8>(V, a.kv.rowb, ns, &ps[0][0], DEC_VS, j0, group, hd, red,
               a.partial + ((size_t)sl * a.n_head + g * group + j0) * hd);
}

/*
 * k_dec_logits_row and k_dec_values_row: the split kernels reading one row per thread at a time
 * (Keyformer's: see attn_decode_launch).
 * Logits of one tile of DEC_KB slots for every query head of KV head g.  hd/8 lanes share a key
 * (one 16-byte load each), so a warp reads 32/(hd/8) keys per pass.  The tile's softmax partials
 * (max and Σexp, plain and noisy) go to pstats[h][tile] for k_dec_values to combine.
 */
__global__ void __launch_bounds__(256) k_dec_logits_row(struct attn_args a)
{
    __shared__ float qs[MAX_GROUP * 256]; /* [group][hd] */
    __shared__ float lt[MAX_GROUP][DEC_KB], yt[MAX_GROUP][DEC_KB];
    int g = blockIdx.x, group = a.n_head / a.G, hd = a.hd, L = hd / 8, kp = WARP / L;
    int count = a.kv.n_used[g] + 1, qpos = a.st->pos0; /* see k_dec_logits */
    int s0 = blockIdx.y * DEC_KB;
    int keyformer = a.st->scoring && a.kv.swa <= 0 && a.conf.policy == KV_P_KEYFORMER;
    if (keyformer && s0 < count)
        dec_tile_noise(a, g, s0, count, yt);
    kgrid_begin();
    if (s0 >= count)
        return;
    int nt = min(DEC_KB, count - s0);
    for (int i = threadIdx.x; i < group * hd; i += blockDim.x)
        qs[i] = a.qkv[(size_t)g * group * hd + i];
    __syncthreads();
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, li = lane % L, sub = lane / L;
    const int32_t *P = a.kv.pos + (size_t)g * a.kv.cap;
    const uint4 *K = (const uint4 *)(a.kv.k + (size_t)g * a.kv.cap * hd);
    float inv_tau = keyformer ? 1.0f / kv_tau(a.conf, qpos) : 1.0f;
    for (int base = warp * kp; base < nt; base += 8 * kp) {
        int i = base + sub, s = s0 + i, in = i < nt;
        float kf[8];
        if (in) {
            kvr<0> r;
            r.u = K[(size_t)s * L + li];
            r.f32(kf);
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++)
                kf[e] = 0.0f;
        }
        int kpos = in ? P[s] : 0, vis = in && visible(kpos, qpos, a.kv.swa);
        for (int j = 0; j < group; j++) {
            float d = key_dot(kf, qs + j * hd + li * 8, L);
            if (in && li == 0) {
                int h = g * group + j;
                float lg = vis ? att_logit(a, d, h, kpos, qpos) : -INFINITY;
                dec_keep_logit(a, h, s, lg, vis, keyformer, inv_tau, lt, yt, j, i);
            }
        }
    }
    __syncthreads();
    dec_tile_partials(a, g, group, nt, keyformer, lt, yt);
}

/*
 * Σ p·v over one slice of DEC_VS slots for every query head of KV head g, plus the slice's score
 * contributions.  hd/8 threads cover a value row (16-byte loads); the block's 256/(hd/8) key
 * groups sum their rows and meet in shared memory.
 */
__global__ void __launch_bounds__(256) k_dec_values_row(struct attn_args a, int nb)
{
    kgrid_begin();
    __shared__ float ps[MAX_GROUP][DEC_VS];
    __shared__ float red[256 * 8];
    __shared__ float sts[MAX_GROUP][4];
    int g = blockIdx.x, sl = blockIdx.y, group = a.n_head / a.G, hd = a.hd, L = hd / 8;
    int count = a.kv.n_used[g] + 1;
    int s0 = sl * DEC_VS;
    if (s0 >= count)
        return;
    int ns = min(DEC_VS, count - s0);
    dec_slice_probs(a, g, s0, ns, count, nb, ps, sts);
    int li = threadIdx.x % L, kg = threadIdx.x / L, nkg = blockDim.x / L;
    const uint4 *V = (const uint4 *)(a.kv.v + ((size_t)g * a.kv.cap + s0) * hd);
    for (int j = 0; j < group; j++) { /* the slice of V (<= 64 KiB) is re-read from L1 */
        float acc[8];
#pragma unroll
        for (int e = 0; e < 8; e++)
            acc[e] = 0.0f;
        for (int i = kg; i < ns; i += nkg) {
            kvr<0> r;
            r.u = V[(size_t)i * L + li];
            float p = ps[j][i], vf[8];
            r.f32(vf);
#pragma unroll
            for (int e = 0; e < 8; e++)
                acc[e] += p * vf[e];
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
    kgrid_begin();
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

/*
 * MHA contexts over 1024 slots: one warp per share of wf_block() slots (k_dec_wflash), with or
 * without scores to keep.  The warp streams its chunk's keys and values, U rows per lane in
 * flight, with an online softmax in registers and no barrier until the block's 8 warps combine
 * their chunks (one partial per block), so the SM's warps hide each other's load latency (the
 * split kernels' blocks spend their time in one round of loads between barriers: 20-25%
 * occupancy and issue-bound, the same time whether the rows are f16 or q8_0).  hd/8 lanes share
 * a row (8 elements each), 32/(hd/8) rows per step; a q8_0 row's scale multiplies its dot
 * product and its probability, not each element.  The block's (m, l) go to pstats[h][block],
 * its unnormalised Σ p·v to partial[block][h]; k_dec_flash_reduce combines the blocks and, with
 * scores, k_dec_wscore adds each slot's probability to its score.
 */

/* One query head's running state in k_dec_wflash: its query share, the online softmax of the
 * plain logits (m, l, acc) and, for Keyformer, of the noisy ones (m2, l2). */
struct wf_head {
    float q[8], m, l, acc[8], m2, l2;
};

/*
 * One round of WF_U rows per lane (ku, vu, kpos: rows base + k·kp, those < n) for query head hq:
 * logits, the scores' logits (SC), the online softmax and Σ p·v.  Every lane of the warp calls.
 */
template <int Q8, int SC, int U>
static __device__ __forceinline__ void wf_round(const struct attn_args &a, struct wf_head &w,
                                                const kvr<Q8> (&ku)[U], const kvr<Q8> (&vu)[U],
                                                const int (&kpos)[U], const int32_t *P, int hq,
                                                int b0, int base, int n, int s0, int qpos,
                                                int L, int kp, int lane, int li, int sub,
                                                int scoring, float inv_tau)
{
    float lg[U], mr = -INFINITY;
#pragma unroll
    for (int k = 0; k < U; k++) {
        float kf[8], d = 0.0f;
        ku[k].raw(kf);
#pragma unroll
        for (int e = 0; e < 8; e++)
            d += kf[e] * w.q[e];
        lg[k] = d * ku[k].scale();
    }
    for (int o = L / 2; o > 0; o >>= 1)
#pragma unroll
        for (int k = 0; k < U; k++)
            lg[k] += __shfl_xor_sync(0xffffffffu, lg[k], o);
#pragma unroll
    for (int k = 0; k < U; k++) {
        lg[k] = base + k * kp < n && visible(kpos[k], qpos, a.kv.swa)
                    ? att_logit(a, lg[k], hq, kpos[k], qpos)
                    : -INFINITY;
        mr = fmaxf(mr, lg[k]);
    }
    for (int o = L; o < WARP; o <<= 1)
        mr = fmaxf(mr, __shfl_xor_sync(0xffffffffu, mr, o));
    if (SC && scoring) {
        /* the round's noise: lane j draws it for slot b0 + j (j < kp·U <= 64), then each
         * key's lanes fetch theirs */
        float nz0 = 0.0f, nz1 = 0.0f, y[U], yr = -INFINITY;
        if (SC == 2) {
            uint64_t rk = kn_row_key(a.kv.layer, hq, qpos);
            if (b0 + lane < n)
                nz0 = kn_gumbel(rk, a.seed_key, P[b0 + lane]);
            if (kp * U > 32 && b0 + 32 + lane < n)
                nz1 = kn_gumbel(rk, a.seed_key, P[b0 + 32 + lane]);
        }
#pragma unroll
        for (int k = 0; k < U; k++) {
            int j = sub + k * kp, i = base + k * kp;
            float z0 = __shfl_sync(0xffffffffu, nz0, j & 31);
            float z1 = __shfl_sync(0xffffffffu, nz1, j & 31);
            y[k] = lg[k] == -INFINITY ? -INFINITY : (lg[k] + (j < 32 ? z0 : z1)) * inv_tau;
            yr = fmaxf(yr, y[k]);
            if (li == 0 && i < n) {
                a.logits[(size_t)hq * a.kv.cap + s0 + i] = lg[k];
                if (SC == 2)
                    a.noisy[(size_t)hq * a.kv.cap + s0 + i] = y[k];
            }
        }
        if (SC == 2) {
            for (int o = L; o < WARP; o <<= 1)
                yr = fmaxf(yr, __shfl_xor_sync(0xffffffffu, yr, o));
            float mn2 = fmaxf(w.m2, yr);
            if (mn2 != -INFINITY) {
                w.l2 *= expf(w.m2 - mn2);
#pragma unroll
                for (int k = 0; k < U; k++)
                    w.l2 += expf(y[k] - mn2);
                w.m2 = mn2;
            }
        }
    }
    float mn = fmaxf(w.m, mr);
    if (mn == -INFINITY) /* nothing visible yet (the whole warp agrees) */
        return;
    float sc = expf(w.m - mn);
    w.l *= sc;
#pragma unroll
    for (int e = 0; e < 8; e++)
        w.acc[e] *= sc;
#pragma unroll
    for (int k = 0; k < U; k++) {
        float p = expf(lg[k] - mn), vf[8];
        w.l += p;
        p *= vu[k].scale();
        vu[k].raw(vf);
#pragma unroll
        for (int e = 0; e < 8; e++)
            w.acc[e] += p * vf[e];
    }
    w.m = mn;
}

/* NG query heads per warp: 1 (a block per query head; MHA), or a KV head's group (GQA: each key
 * and value row read once for the group; measured slower than the batched kernels, see
 * attn_split_launch, so not instantiated); U rows per lane in flight. */
template <int Q8, int SC, int NG, int U>
__global__ void __launch_bounds__(256, 2) k_dec_wflash(struct attn_args a)
{
    __shared__ float sm_o[8][NG][256], sm_m[8][NG][2], sm_l[8][NG][2];
    kgrid_begin();
    int hq0 = blockIdx.x * NG, g = hq0 / (a.n_head / a.G);
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    int hd = a.hd, L = hd / 8, kp = WARP / L;
    int li = lane % L, sub = lane / L, count = a.kv.n_used[g] + 1;
    int s0, n;
    wf_warp(count, gridDim.y, blockIdx.y, warp, s0, n);
    if (blockIdx.y * wf_block(count, gridDim.y) >= count) /* the whole block (its warps meet below) */
        return;
    int qpos = a.st->pos0;
    /* SC (1 h2o, 2 Keyformer): the logits (and noisy logits) of the slots for k_dec_wscore,
     * and for Keyformer the online max and sum of the noisy ones too */
    int scoring = SC && a.st->scoring;
    float inv_tau = SC == 2 ? 1.0f / kv_tau(a.conf, qpos) : 1.0f;
    struct wf_head w[NG];
#pragma unroll
    for (int h = 0; h < NG; h++) {
        const float4 *q4 = (const float4 *)(a.qkv + (size_t)(hq0 + h) * hd + li * 8);
        float4 x = q4[0], y = q4[1];
        w[h].q[0] = x.x, w[h].q[1] = x.y, w[h].q[2] = x.z, w[h].q[3] = x.w;
        w[h].q[4] = y.x, w[h].q[5] = y.y, w[h].q[6] = y.z, w[h].q[7] = y.w;
        w[h].m = w[h].m2 = -INFINITY;
        w[h].l = w[h].l2 = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++)
            w[h].acc[e] = 0.0f;
    }
    size_t row0 = (size_t)g * a.kv.cap + s0;
    const uint8_t *K = (const uint8_t *)a.kv.k + row0 * a.kv.rowb;
    const uint8_t *V = (const uint8_t *)a.kv.v + row0 * a.kv.rowb;
    const int32_t *P = a.kv.pos + row0;
    for (int b0 = 0; b0 < n; b0 += kp * U) { /* warp-uniform: the lanes shuffle together */
        int base = b0 + sub;
        kvr<Q8> ku[U], vu[U];
        int kpos[U];
#pragma unroll
        for (int k = 0; k < U; k++) {
            int i = base + k * kp, in = i < n;
            ku[k] = in ? kvr<Q8>::load(K, (size_t)i, a.kv.rowb, li, hd) : kvr<Q8>::zero();
            vu[k] = in ? kvr<Q8>::load(V, (size_t)i, a.kv.rowb, li, hd) : kvr<Q8>::zero();
            kpos[k] = in ? P[i] : 0;
        }
#pragma unroll
        for (int h = 0; h < NG; h++)
            wf_round<Q8, SC, U>(a, w[h], ku, vu, kpos, P, hq0 + h, b0, base, n, s0, qpos, L, kp,
                                lane, li, sub, scoring, inv_tau);
    }
#pragma unroll
    for (int h = 0; h < NG; h++) {
        for (int o = L; o < WARP; o <<= 1) { /* the rows' subsets met (m is the warp's) */
            w[h].l += __shfl_xor_sync(0xffffffffu, w[h].l, o);
            if (SC == 2)
                w[h].l2 += __shfl_xor_sync(0xffffffffu, w[h].l2, o);
#pragma unroll
            for (int e = 0; e < 8; e++)
                w[h].acc[e] += __shfl_xor_sync(0xffffffffu, w[h].acc[e], o);
        }
        if (sub == 0)
#pragma unroll
            for (int e = 0; e < 8; e++)
                sm_o[warp][h][li * 8 + e] = w[h].acc[e];
        if (lane == 0) {
            sm_m[warp][h][0] = w[h].m;
            sm_l[warp][h][0] = w[h].l;
            sm_m[warp][h][1] = w[h].m2;
            sm_l[warp][h][1] = w[h].l2;
        }
    }
    __syncthreads();
    /* the block's 8 chunks met: one partial per block and head (fewer for the reduction) */
    for (int idx = threadIdx.x; idx < NG * hd; idx += blockDim.x) {
        int h = idx / hd, d = idx % hd;
        block_partial<SC>(a, &sm_m[0][h][0], &sm_l[0][h][0], NG * 2, &sm_o[0][h][d], NG * 256,
                          hq0 + h, d, hd);
    }
}

/*
 * The scores of k_dec_wflash's call (SC: 1 h2o, 2 Keyformer): per slot, the probability under
 * the final normalisers (combined from the blocks' partials: dec_stats) summed over the KV
 * head's query heads, added to the cache's score — as k_dec_values does for the split kernels.
 */
__global__ void __launch_bounds__(256) k_dec_wscore(struct attn_args a, int nbw, int tile)
{
    __shared__ float sts[MAX_GROUP][4];
    kgrid_begin();
    int g = blockIdx.x, group = a.n_head / a.G, count = a.kv.n_used[g] + 1;
    int s = blockIdx.y * 256 + threadIdx.x, keyformer = a.conf.policy == KV_P_KEYFORMER;
    if (!a.st->scoring || blockIdx.y * 256 >= count)
        return;
    /* the records to combine: k_dm_noisy's per tile (only the noisy ones, the only ones read),
     * else the attention blocks', nbw a head of wf_block slots each */
    const int cs = tile ? tile : wf_block(count, wf_nby(nbw, a.wf_extra, g));
    const int nb = tile ? (a.span + tile - 1) / tile : nbw, kind = tile ? 2 : keyformer;
    for (int j = threadIdx.x / WARP; j < group; j += blockDim.x / WARP)
        dec_stats(a, g * group + j, nb, (count + cs - 1) / cs, kind, sts[j]);
    __syncthreads();
    if (s >= count)
        return;
    float sc = 0.0f;
    for (int j = 0; j < group; j++) {
        size_t h = (size_t)g * group + j;
        sc += keyformer ? expf(a.noisy[h * a.kv.cap + s] - sts[j][2]) * sts[j][3]
                        : expf(a.logits[h * a.kv.cap + s] - sts[j][0]) * sts[j][1];
    }
    a.kv.score[(size_t)g * a.kv.cap + s] += sc;
}

/* k_dec_wscore for nb blocks a head, on the side stream where there is one (cuda_internal.h):
 * nothing else in the layer waits for the scores.  H100, Llama-3 shape, keyformer 50% at
 * 16384: 301.7 t/s with it in line, 320.6 without it at all. */
static void wscore_launch(const struct attn_args *a, int nb, int noisy, cudaStream_t s)
{
    struct attn_side *sd = a->side;
    dim3 grid(a->G, (a->span + 255) / 256);
    const int tile = noisy ? dm_noisy_tile() : 0; /* 0: the attention blocks' statistics */
    if (sd && cudaEventRecord(sd->fork, s) == cudaSuccess &&
        cudaStreamWaitEvent(sd->s, sd->fork, 0) == cudaSuccess) {
        if (tile)
            dm_noisy_launch(a, tile, sd->s);
        klaunch(k_dec_wscore, grid, 256, 0, sd->s, *a, nb, tile);
        cudaEventRecord(sd->join, sd->s);
        sd->pending = 1;
        return;
    }
    if (tile)
        dm_noisy_launch(a, tile, s);
    klaunch(k_dec_wscore, grid, 256, 0, s, *a, nb, tile);
}

/*
 * The blocks (nb per head, wf_block slots each) of k_dec_wflash met:
 * out = Σ_s o_s·exp(m_s − M) / Σ_s l_s·exp(m_s − M), rounded for the output projection as
 * k_dec_reduce.  A block's 256 outputs belong to 256/hd heads (hd <= 256): their weights
 * exp(m_s − M) go through shared memory once, so that each thread's loop over the slices is
 * one independent load and FMA per slice (up to WR_MAX slices; a longer context loops).
 */
#define WR_MAX 512
__global__ void __launch_bounds__(256) k_dec_flash_reduce(struct attn_args a, int nb, int mode,
                                                          void *xq)
{
    __shared__ float w[2][WR_MAX], mx[2][4], ls[2][4];
    kgrid_begin();
    int e = blockIdx.x * 256 + threadIdx.x, total = a.n_head * a.hd, valid = e < total;
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, group = a.n_head / a.G;
    int hpb = 256 / a.hd, h0 = blockIdx.x * hpb; /* heads of this block (hd divides 256) */
    float o = 0.0f;
    for (int hh0 = 0; hh0 < hpb; hh0 += 2) {
        /* warps 0..3 prepare head h0 + hh0, warps 4..7 head h0 + hh0 + 1 */
        int side = warp / 4, h = h0 + hh0 + side, wl = threadIdx.x % 128;
        if (hh0 + side < hpb && h < a.n_head) {
            int g = h / group, count = a.kv.n_used[g] + 1, cs = wf_block(count, wf_nby(nb, a.wf_extra, g));
            int nsl = (count + cs - 1) / cs;
            const float *st = a.pstats + (size_t)h * nb * 4;
            float M = -INFINITY;
            for (int s = wl; s < nsl; s += 128)
                M = fmaxf(M, st[s * 4]);
            M = warp_max(M);
            if (lane == 0)
                mx[side][warp % 4] = M;
        }
        __syncthreads();
        if (hh0 + side < hpb && h < a.n_head) {
            int g = h / group, count = a.kv.n_used[g] + 1, cs = wf_block(count, wf_nby(nb, a.wf_extra, g));
            int nsl = (count + cs - 1) / cs;
            const float *st = a.pstats + (size_t)h * nb * 4;
            float M = fmaxf(fmaxf(mx[side][0], mx[side][1]), fmaxf(mx[side][2], mx[side][3]));
            float l = 0.0f;
            for (int s = wl; s < nsl; s += 128) {
                float ws = st[s * 4] == -INFINITY ? 0.0f : expf(st[s * 4] - M);
                l += st[s * 4 + 1] * ws;
                if (s < WR_MAX)
                    w[side][s] = ws;
            }
            l = warp_sum(l);
            if (lane == 0)
                ls[side][warp % 4] = l;
        }
        __syncthreads();
        int hme = e / a.hd - h0 - hh0; /* this thread's head, if it is one of the two */
        if (valid && (hme == 0 || hme == 1)) {
            int h = e / a.hd, d = e % a.hd, g = h / group, count = a.kv.n_used[g] + 1;
            int cs = wf_block(count, wf_nby(nb, a.wf_extra, g)), nsl = (count + cs - 1) / cs;
            const float *st = a.pstats + (size_t)h * nb * 4;
            const float *pp = a.partial + (size_t)h * a.hd + d;
            size_t stride = (size_t)a.n_head * a.hd;
            float M = fmaxf(fmaxf(mx[hme][0], mx[hme][1]), fmaxf(mx[hme][2], mx[hme][3]));
            float L = ls[hme][0] + ls[hme][1] + ls[hme][2] + ls[hme][3], acc = 0.0f;
#pragma unroll 8
            for (int s = 0; s < nsl; s++) {
                float ws = s < WR_MAX ? w[hme][s]
                                      : (st[s * 4] == -INFINITY ? 0.0f : expf(st[s * 4] - M));
                acc += pp[s * stride] * ws;
            }
            o = L > 0.0f ? acc / L : 0.0f;
            a.out[e] = o;
        }
        __syncthreads();
    }
    if (mode != ACT_NONE)
        round_chunk(o, valid, 0, e, mode, xq, NULL);
}

int attn_decode_splits(int cap)
{
    return (cap + DEC_VS - 1) / DEC_VS;
}

int attn_decode_tiles(int cap)
{
    return (cap + DEC_KB - 1) / DEC_KB;
}


void attn_split_launch(const struct attn_args *a, const struct rope_args *r, int mode,
                       cudaStream_t s)
{
    int nb = attn_decode_tiles(a->span), tot = a->n_head * a->hd;
    dim3 gl(a->G, nb), gv(a->G, attn_decode_splits(a->span));
    int scores = attn_dec_scores(a);
    /* MHA contexts over 1024 slots: a warp per chunk (k_dec_wflash; below, its few blocks
     * were slower: a q8_0 cache at depth 0, tg128 400 against 430); KF_CUDA_WFLASH=0 or =1
     * turns it off or on (any MHA context: tests).  H100, Llama-2-7B shape Q4_K_M, tg64, against the two
     * kernels: f16 cache @ d4096 303 -> 310, @ d16384 153 -> 181; q8_0 312 -> 320, 161 -> 203.
     * Under GQA the batched kernels, which read a key once for its group, stay faster (Llama-3
     * shape, tg64 @ d4096 / d16384, against k_dec_wflash with NG = 4 query heads per warp and 2
     * rows per lane (128 registers): f16 339 / 241 against 312 / 237, q8_0 340 / 245 against
     * 311 / 232, Keyformer 50% @ d16384 283 against 211; one query head per warp, the group's
     * rows read from L2: f16 344 / 254, q8_0 326 / 227, Keyformer 259; two: 339 / 262,
     * 326 / 240, 246).  16 values per lane instead of 8 (two 16-byte f16 loads per row, fewer
     * shuffles and exps): f16 @ d4096 / d16384 312 / 187 against 311 / 186, not kept; q8_0 rows
     * would need 16-byte alignment (rowb 144 instead of 136 for hd 128). */
    const char *wf = getenv("KF_CUDA_WFLASH"), *e = getenv("KF_CUDA_KF_SPLIT");
    int sc = !scores ? 0 : a->conf.policy == KV_P_KEYFORMER ? 2 : 1;
    int mha = a->n_head == a->G && a->hd >= 32; /* (hd/8 >= 4 lanes a row: the round's noise
                                                  * covers kp·8 <= 64 slots) */
    int wfl = mha && a->span > 1024;
    if (wf && (!strcmp(wf, "0") || !strcmp(wf, "1")))
        wfl = mha && wf[0] == '1';
    const int nsm = kdevice_sms();
    /* the tensor cores (cuda_attn_dmma.cu), the same partials, with the policy's logits for
     * k_dec_wscore; KF_CUDA_WFLASH=1 asks for k_dec_wflash instead, and KF_CUDA_KF_SPLIT for
     * the split kernels where there are scores (tests) */
    struct attn_args b = *a; /* (with the grid's wf_extra) */
    /* Keyformer: k_dec_mma writes the plain logits as for H2O and k_dm_noisy adds the noise on
     * the side stream */
    int fused = 0, bm = (wf && !strcmp(wf, "1")) || (sc && e) ? 0
                        : dec_mma_launch(&b, r, nsm, mode, sc, &fused, s);
    if (bm > 0) {
        if (!fused)
            klaunch(k_dec_flash_reduce, (tot + 255) / 256, 256, 0, s, b, bm, mode, a->out_q);
        if (sc)
            wscore_launch(&b, bm, sc == 2, s);
        return;
    }
    qk_store_launch(a, r, s); /* (k_dec_mma does this itself) */
    if (wfl && !(sc && e)) {
        /* one wave: two blocks per SM (128 registers) over the heads, at least 16 rows per
         * warp; KF_CUDA_WF_BLOCKS=n asks for n blocks per head (tests) */
        const char *be = getenv("KF_CUDA_WF_BLOCKS");
        int bph = be && atoi(be) > 0 ? atoi(be) : max(1, 2 * nsm / a->n_head);
        bph = min(bph, (a->span + 8 * 16 - 1) / (8 * 16));
        dim3 gw(a->n_head, bph);
        void (*k)(struct attn_args) =
            sc == 0   ? (a->kv.q8 ? k_dec_wflash<1, 0, 1, 8> : k_dec_wflash<0, 0, 1, 8>)
            : sc == 1 ? (a->kv.q8 ? k_dec_wflash<1, 1, 1, 8> : k_dec_wflash<0, 1, 1, 8>)
                      : (a->kv.q8 ? k_dec_wflash<1, 2, 1, 8> : k_dec_wflash<0, 2, 1, 8>);
        klaunch(k, gw, 256, 0, s, *a);
        klaunch(k_dec_flash_reduce, (tot + 255) / 256, 256, 0, s, *a, bph, mode, a->out_q);
        if (sc)
            wscore_launch(a, bph, 0, s);
        return;
    }
    /* a bounded Keyformer cache under MHA takes the one-row kernels (see the file's head);
     * KF_CUDA_KF_SPLIT=row or =batched forces either (tests) */
    int row = a->conf.policy == KV_P_KEYFORMER && !a->conf.unbounded && a->n_head == a->G;
    if (e && (!strcmp(e, "row") || !strcmp(e, "batched")))
        row = a->conf.policy == KV_P_KEYFORMER && !strcmp(e, "row");
    if (row && !a->kv.q8) { /* (the one-row kernels read f16 rows only) */
        klaunch(k_dec_logits_row, gl, 256, 0, s, *a);
        klaunch(k_dec_values_row, gv, 256, 0, s, *a, nb);
    } else {
        klaunch(a->kv.q8 ? k_dec_logits<1> : k_dec_logits<0>, gl, 256, 0, s, *a);
        klaunch(a->kv.q8 ? k_dec_values<1> : k_dec_values<0>, gv, 256, 0, s, *a, nb);
    }
    klaunch(k_dec_reduce, (tot + 255) / 256, 256, 0, s, *a, mode, a->out_q);
}
