/*
 * cuda_attn_split.cu — decode attention over contexts longer than k_dec_short's (cuda_attn_dec.cu
 * picks): after QK-norm/RoPE/cache write (cuda_attn.cu's k_qk_store), logits per tile of DEC_KB
 * slots with per-tile softmax partials, values per slice of DEC_VS slots with the policy's score
 * contributions, and a reduction of the slices, rounded for W_o.
 *
 * Without scores to keep, MHA contexts of up to 32 slices take one kernel per slice instead
 * (k_dec_flash: logits, softmax and values of the slice; k_dec_flash_reduce combines them).
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

/* Rows r0 + k·step (k < DEC_U; those < n) of the tile at slot s0: this lane's 16 bytes li of
 * each key, and the keys' positions (zeros past n). */
static __device__ __forceinline__ void dec_tile_rows(const uint4 *K, const int32_t *P, int s0,
                                                     int n, int r0, int step, int L, int li,
                                                     uint4 (&u)[DEC_U], int (&kpos)[DEC_U])
{
#pragma unroll
    for (int k = 0; k < DEC_U; k++) {
        int i = r0 + k * step, in = i < n;
        u[k] = in ? K[(size_t)(s0 + i) * L + li] : make_uint4(0, 0, 0, 0);
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
__global__ void __launch_bounds__(256, 2) k_dec_logits(struct attn_args a)
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
        dec_prefetch(a.kv.k + ((size_t)g * a.kv.cap + s0) * hd,
                     (size_t)min(DEC_KB, count - s0) * hd * 2);
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
    const uint4 *K = (const uint4 *)(a.kv.k + (size_t)g * a.kv.cap * hd);
    float inv_tau = keyformer ? 1.0f / kv_tau(a.conf, qpos) : 1.0f;
    /* base is the same for the whole warp: its lanes shuffle together */
    for (int base = warp * kp; base < nt; base += 8 * kp * DEC_U) {
        uint4 u[DEC_U];
        int kpos[DEC_U];
        dec_tile_rows(K, P, s0, nt, base + sub, 8 * kp, L, li, u, kpos);
        float kf[DEC_U][8];
        dec_rows_f32(u, kf);
        for (int j = 0; j < group; j++) {
            float d[DEC_U];
            dec_dots(kf, qs + j * hd + li * 8, L, d);
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
__global__ void __launch_bounds__(256) k_dec_values(struct attn_args a, int nb)
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
        dec_prefetch(a.kv.v + ((size_t)g * a.kv.cap + s0) * hd,
                     (size_t)min(DEC_VS, count - s0) * hd * 2);
    kgrid_begin();
    if (s0 >= count)
        return;
    int ns = min(DEC_VS, count - s0);
    dec_slice_probs(a, g, s0, ns, count, nb, ps, sts);
    const uint4 *V = (const uint4 *)(a.kv.v + ((size_t)g * a.kv.cap + s0) * hd);
    for (int j0 = 0; j0 < group; j0 += 4) /* up to 4 heads per pass over the slice */
        dec_pv(V, ns, &ps[0][0], DEC_VS, j0, group, hd, red,
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
 * Without scores to keep (full, window, sink, an unbounded cache, sliding-window layers) one
 * kernel per slice of DEC_VS slots does what k_dec_logits and k_dec_values do: the slice's
 * logits into shared memory, its own softmax (max m and Σexp l per head, into pstats), Σ p·v
 * into partial; k_dec_flash_reduce rescales the slices by exp(m_s − M) and divides by the
 * combined Σ.  No logits go through memory, and a slice waits for no other.
 */
__global__ void __launch_bounds__(256) k_dec_flash(struct attn_args a)
{
    __shared__ __align__(16) float qs[MAX_GROUP * 256]; /* [group][hd]; float4 reads */
    __shared__ float ps[MAX_GROUP][DEC_VS];              /* logits, then probabilities */
    __shared__ float red[256 * 8];
    int g = blockIdx.x, sl = blockIdx.y, group = a.n_head / a.G, hd = a.hd, L = hd / 8;
    int kp = WARP / L, s0 = sl * DEC_VS;
    /* the slice's keys and values into L2 before the wait (see k_dec_logits) */
    int count = a.kv.n_used[g] + 1;
    if (s0 < count) {
        size_t off = ((size_t)g * a.kv.cap + s0) * hd, bytes = (size_t)min(DEC_VS, count - s0) * hd * 2;
        dec_prefetch(a.kv.k + off, bytes);
        dec_prefetch(a.kv.v + off, bytes);
    }
    kgrid_begin();
    if (s0 >= count)
        return;
    int ns = min(DEC_VS, count - s0), qpos = a.st->pos0;
    for (int i = threadIdx.x; i < group * hd; i += blockDim.x)
        qs[i] = a.qkv[(size_t)g * group * hd + i];
    __syncthreads();
    int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP, li = lane % L, sub = lane / L;
    const int32_t *P = a.kv.pos + (size_t)g * a.kv.cap;
    const uint4 *K = (const uint4 *)(a.kv.k + (size_t)g * a.kv.cap * hd);
    for (int base = warp * kp; base < ns; base += 8 * kp * DEC_U) {
        uint4 u[DEC_U];
        int kpos[DEC_U];
        dec_tile_rows(K, P, s0, ns, base + sub, 8 * kp, L, li, u, kpos);
        float kf[DEC_U][8];
        dec_rows_f32(u, kf);
        for (int j = 0; j < group; j++) {
            float d[DEC_U];
            dec_dots(kf, qs + j * hd + li * 8, L, d);
            if (li != 0)
                continue;
#pragma unroll
            for (int k = 0; k < DEC_U; k++) {
                int i = base + sub + k * 8 * kp;
                if (i >= ns)
                    break;
                ps[j][i] = visible(kpos[k], qpos, a.kv.swa)
                               ? att_logit(a, d[k], g * group + j, kpos[k], qpos)
                               : -INFINITY;
            }
        }
    }
    __syncthreads();
    /* the slice's softmax: warp w for heads w, w + 8, ... */
    for (int j = warp; j < group; j += 8) {
        float m = -INFINITY;
        for (int i = lane; i < ns; i += WARP)
            m = fmaxf(m, ps[j][i]);
        m = warp_max(m);
        float l = 0.0f;
        for (int i = lane; i < ns; i += WARP) {
            float p = m == -INFINITY ? 0.0f : expf(ps[j][i] - m);
            ps[j][i] = p;
            l += p;
        }
        l = warp_sum(l);
        if (lane == 0) {
            float *st = a.pstats + ((size_t)(g * group + j) * gridDim.y + sl) * 4;
            st[0] = m;
            st[1] = l;
        }
    }
    __syncthreads();
    const uint4 *V = (const uint4 *)(a.kv.v + ((size_t)g * a.kv.cap + s0) * hd);
    for (int j0 = 0; j0 < group; j0 += 4) /* up to 4 heads per pass over the slice */
        dec_pv(V, ns, &ps[0][0], DEC_VS, j0, group, hd, red,
               a.partial + ((size_t)sl * a.n_head + g * group + j0) * hd);
}

/* k_dec_flash's slices met: out = Σ_s o_s·exp(m_s − M) / Σ_s l_s·exp(m_s − M), rounded for the
 * output projection as k_dec_reduce. */
__global__ void __launch_bounds__(256) k_dec_flash_reduce(struct attn_args a, int nb, int mode,
                                                          void *xq)
{
    kgrid_begin();
    int e = blockIdx.x * 256 + threadIdx.x, total = a.n_head * a.hd, valid = e < total;
    float o = 0.0f;
    if (valid) {
        int h = e / a.hd, d = e % a.hd, group = a.n_head / a.G, g = h / group;
        int count = a.kv.n_used[g] + 1, nsl = (count + DEC_VS - 1) / DEC_VS;
        const float *st = a.pstats + (size_t)h * nb * 4;
        float M = -INFINITY, l = 0.0f;
        for (int s = 0; s < nsl; s++)
            M = fmaxf(M, st[s * 4]);
        for (int s = 0; s < nsl; s++) {
            if (st[s * 4] == -INFINITY)
                continue;
            float w = expf(st[s * 4] - M);
            l += st[s * 4 + 1] * w;
            o += a.partial[((size_t)s * a.n_head + h) * a.hd + d] * w;
        }
        o = l > 0.0f ? o / l : 0.0f;
        a.out[e] = o;
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


void attn_split_launch(const struct attn_args *a, int mode, cudaStream_t s)
{
    int nb = attn_decode_tiles(a->span), tot = a->n_head * a->hd;
    dim3 gl(a->G, nb), gv(a->G, attn_decode_splits(a->span));
    /* a bounded Keyformer cache under MHA takes the one-row kernels (see the file's head);
     * KF_CUDA_KF_SPLIT=row or =batched forces either (tests) */
    /* No scores to keep: one kernel per slice where that measured faster — MHA up to 32
     * slices (H100, Llama-2-7B shape Q4_K_M tg64: @ d4096 289 -> 303, a window of 8192 at
     * d16384 219 -> 222; but @ d16384 150.6 -> 148.1, and the Llama-3 shape (GQA 8) @ d4096
     * 341 -> 328, @ d16384 235.8 -> 232.2).  KF_CUDA_FLASH=1 or =0 forces it on or off. */
    const char *fl = getenv("KF_CUDA_FLASH");
    int scores = !a->conf.unbounded && a->kv.swa <= 0 &&
                 (a->conf.policy == KV_P_KEYFORMER || a->conf.policy == KV_P_H2O);
    int flash = a->n_head == a->G && gv.y <= 32;
    if (fl && (!strcmp(fl, "0") || !strcmp(fl, "1")))
        flash = fl[0] == '1';
    if (!scores && flash) {
        klaunch(k_dec_flash, gv, 256, 0, s, *a);
        klaunch(k_dec_flash_reduce, (tot + 255) / 256, 256, 0, s, *a, gv.y, mode, a->out_q);
        return;
    }
    const char *e = getenv("KF_CUDA_KF_SPLIT");
    int row = a->conf.policy == KV_P_KEYFORMER && !a->conf.unbounded && a->n_head == a->G;
    if (e && (!strcmp(e, "row") || !strcmp(e, "batched")))
        row = a->conf.policy == KV_P_KEYFORMER && !strcmp(e, "row");
    if (row) {
        klaunch(k_dec_logits_row, gl, 256, 0, s, *a);
        klaunch(k_dec_values_row, gv, 256, 0, s, *a, nb);
    } else {
        klaunch(k_dec_logits, gl, 256, 0, s, *a);
        klaunch(k_dec_values, gv, 256, 0, s, *a, nb);
    }
    klaunch(k_dec_reduce, (tot + 255) / 256, 256, 0, s, *a, mode, a->out_q);
}
