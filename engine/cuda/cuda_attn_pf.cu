/*
 * cuda_attn_pf.cu — prefill attention on the tensor cores: a tile of 64 queries of one head
 * against the compacted KV cache, as a flash-attention loop of mma.sync.m16n8k16 products (f16
 * operands, f32 accumulation) with an online softmax.
 *
 * It computes what k_pf_attn (cuda_attn.cu) computes, one warp per query on the CUDA cores: the
 * attention output, the row maximum and normaliser of the softmax, and for Keyformer the same
 * two statistics of the noisy softmax (logits plus Gumbel noise, over τ), which k_pf_score needs
 * for the scores.  Keys are masked by their stored position (visible()), never by slot, since
 * after an eviction slots are not in position order.  A key tile whose lowest position is past
 * the block's last query is skipped whole: most of a fresh prompt's upper triangle.
 *
 * Precision: queries and softmax probabilities are rounded to f16 for the products, as the
 * cuBLAS path already rounds every prompt activation; keys and values are f16 in the cache.
 *
 * Layout of one warp's 16 query rows in the m16n8k16 fragments (g = lane / 4, c = lane % 4):
 * the thread holds rows g and g + 8, and in each 8-wide column tile the columns 2c and 2c + 1.
 */
#include <cfloat>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "cuda_attn.cuh"
#include "cuda_launch.cuh"
#include "cuda_mma.cuh"

#define PFM_Q 64          /* queries per block: 16 per warp */
#define PFM_K 64          /* keys per tile */
#define PFM_THREADS 128

template <int HD, bool KF>
__global__ void __launch_bounds__(PFM_THREADS) k_pf_mma(struct attn_args a)
{
    constexpr int KS = HD + 8; /* smem row stride in halves: 16-byte rows, no bank conflicts */
    constexpr int NT = PFM_K / 8, DT = HD / 8, KK = HD / 16;
    __shared__ __align__(16) __half Ks[PFM_K * KS], Vs[PFM_K * KS];
    __shared__ int Ps[PFM_K];
    kgrid_begin();
    const int h = blockIdx.x, group = a.n_head / a.G, g = h / group;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, qc = lane % 4;
    const int q0 = blockIdx.y * PFM_Q, t0 = q0 + warp * 16 + gr, t1 = t0 + 8;
    const int pos0 = a.st->pos0, count = a.kv.n_used[g] + a.n;
    const int qpos0 = pos0 + t0, qpos1 = pos0 + t1;
    const int qlast = pos0 + min(q0 + PFM_Q, a.n) - 1; /* the block's last query */

    /* this warp's 16 query rows as A fragments, rows past the call zero */
    uint32_t qa[KK][4];
    {
        const float *r0 = a.qkv + (size_t)t0 * a.row + (size_t)h * HD;
        const float *r1 = a.qkv + (size_t)t1 * a.row + (size_t)h * HD;
        const bool v0 = t0 < a.n, v1 = t1 < a.n;
#pragma unroll
        for (int kk = 0; kk < KK; kk++) {
            const int d = kk * 16 + 2 * qc;
            float2 x00 = v0 ? *(const float2 *)(r0 + d) : make_float2(0.f, 0.f);
            float2 x10 = v1 ? *(const float2 *)(r1 + d) : make_float2(0.f, 0.f);
            float2 x01 = v0 ? *(const float2 *)(r0 + d + 8) : make_float2(0.f, 0.f);
            float2 x11 = v1 ? *(const float2 *)(r1 + d + 8) : make_float2(0.f, 0.f);
            qa[kk][0] = pack_h2(x00.x, x00.y);
            qa[kk][1] = pack_h2(x10.x, x10.y);
            qa[kk][2] = pack_h2(x01.x, x01.y);
            qa[kk][3] = pack_h2(x11.x, x11.y);
        }
    }
    float o[DT][4];
#pragma unroll
    for (int j = 0; j < DT; j++)
        o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    float n0 = -INFINITY, n1 = -INFINITY, e0 = 0.0f, e1 = 0.0f; /* noisy softmax */
    float it0 = 1.0f, it1 = 1.0f;
    uint64_t rk0 = 0, rk1 = 0;
    /* the noisy statistics only where the policy scores this call (st->scoring, set per call) */
    const bool kfon = KF && a.st->scoring && a.kv.swa <= 0;
    if (kfon) {
        it0 = 1.0f / kv_tau(a.conf, qpos0);
        it1 = 1.0f / kv_tau(a.conf, qpos1);
        rk0 = kn_row_key(a.kv.layer, h, qpos0);
        rk1 = kn_row_key(a.kv.layer, h, qpos1);
    }
    const __half *Kg = a.kv.k + (size_t)g * a.kv.cap * HD;
    const __half *Vg = a.kv.v + (size_t)g * a.kv.cap * HD;
    const int32_t *Pg = a.kv.pos + (size_t)g * a.kv.cap;

    for (int s0 = 0; s0 < count; s0 += PFM_K) {
        const int nt = min(PFM_K, count - s0);
        __syncthreads(); /* the previous tile is no longer read */
        constexpr int CH = HD / 8; /* 16-byte chunks per row */
        for (int i = threadIdx.x; i < PFM_K * CH; i += PFM_THREADS) {
            const int r = i / CH, c = (i % CH) * 8;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = kv; /* empty slots: zeros, never NaN */
            if (r < nt) {
                kv = *(const uint4 *)(Kg + (size_t)(s0 + r) * HD + c);
                vv = *(const uint4 *)(Vg + (size_t)(s0 + r) * HD + c);
            }
            *(uint4 *)(Ks + r * KS + c) = kv;
            *(uint4 *)(Vs + r * KS + c) = vv;
        }
        if (threadIdx.x < PFM_K)
            Ps[threadIdx.x] = threadIdx.x < nt ? Pg[s0 + threadIdx.x] : INT_MAX;
        __syncthreads();
        /* a tile no query of the block can see is skipped (the same answer in every warp) */
        int pmin = min(Ps[lane], Ps[lane + 32]);
#pragma unroll
        for (int o2 = 16; o2 > 0; o2 >>= 1)
            pmin = min(pmin, __shfl_xor_sync(0xffffffffu, pmin, o2));
        if (pmin > qlast)
            continue;

        /* S = Q · Kᵀ for 16 rows × 64 keys */
        float s[NT][4];
#pragma unroll
        for (int j = 0; j < NT; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
            const __half *kr = Ks + (j * 8 + gr) * KS + 2 * qc;
#pragma unroll
            for (int kk = 0; kk < KK; kk++) {
                const uint32_t b0 = *(const uint32_t *)(kr + kk * 16);
                const uint32_t b1 = *(const uint32_t *)(kr + kk * 16 + 8);
                mma16816(s[j], qa[kk], b0, b1);
            }
        }
        /* scale and mask: row 0 holds s[j][0..1], row 1 s[j][2..3] */
        float x0[2 * NT], x1[2 * NT];
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int kp = Ps[j * 8 + 2 * qc + e];
                x0[2 * j + e] = visible(kp, qpos0, a.kv.swa) ? att_logit(a, s[j][e], h, kp, qpos0)
                                                             : -INFINITY;
                x1[2 * j + e] = visible(kp, qpos1, a.kv.swa)
                                    ? att_logit(a, s[j][2 + e], h, kp, qpos1)
                                    : -INFINITY;
            }
        if (kfon) { /* the noisy softmax's statistics: (logit + G) / τ */
            float y0[2 * NT], y1[2 * NT];
#pragma unroll
            for (int j = 0; j < NT; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int kp = Ps[j * 8 + 2 * qc + e], i = 2 * j + e;
                    y0[i] = x0[i] == -INFINITY ? -INFINITY
                                               : (x0[i] + kn_gumbel(rk0, a.seed_key, kp)) * it0;
                    y1[i] = x1[i] == -INFINITY ? -INFINITY
                                               : (x1[i] + kn_gumbel(rk1, a.seed_key, kp)) * it1;
                }
            online_row<2 * NT>(y0, n0, e0);
            online_row<2 * NT>(y1, n1, e1);
        }
        const float c0 = online_row<2 * NT>(x0, m0, l0);
        const float c1 = online_row<2 * NT>(x1, m1, l1);
#pragma unroll
        for (int j = 0; j < DT; j++) {
            o[j][0] *= c0;
            o[j][1] *= c0;
            o[j][2] *= c1;
            o[j][3] *= c1;
        }
        /* O += P · V: P's accumulator layout is already the A layout of 16 keys at a time */
#pragma unroll
        for (int kk = 0; kk < PFM_K / 16; kk++) {
            uint32_t pa[4];
            pa[0] = pack_h2(x0[4 * kk], x0[4 * kk + 1]);
            pa[1] = pack_h2(x1[4 * kk], x1[4 * kk + 1]);
            pa[2] = pack_h2(x0[4 * kk + 2], x0[4 * kk + 3]);
            pa[3] = pack_h2(x1[4 * kk + 2], x1[4 * kk + 3]);
            /* lanes 0-7 / 8-15 give keys 16kk+0..7 / +8..15 at dims jd*8, lanes 16-31 the same
             * keys at dims jd*8+8: two column tiles per ldmatrix */
            const __half *vr = Vs + (kk * 16 + (lane & 15)) * KS + (lane >> 4) * 8;
#pragma unroll
            for (int jd = 0; jd < DT; jd += 2) {
                uint32_t b[4];
                ldsm_x4_t(b, vr + jd * 8);
                mma16816(o[jd], pa, b[0], b[1]);
                mma16816(o[jd + 1], pa, b[2], b[3]);
            }
        }
    }
    l0 = quad_sum(l0);
    l1 = quad_sum(l1);
    const float il0 = 1.0f / l0, il1 = 1.0f / l1;
#pragma unroll
    for (int j = 0; j < DT; j++) {
        const int d = j * 8 + 2 * qc;
        if (t0 < a.n)
            *(float2 *)(a.out + (size_t)t0 * a.n_head * HD + (size_t)h * HD + d) =
                make_float2(o[j][0] * il0, o[j][1] * il0);
        if (t1 < a.n)
            *(float2 *)(a.out + (size_t)t1 * a.n_head * HD + (size_t)h * HD + d) =
                make_float2(o[j][2] * il1, o[j][3] * il1);
    }
    if (kfon) {
        e0 = quad_sum(e0);
        e1 = quad_sum(e1);
    }
    if (qc == 0) {
        if (t0 < a.n) {
            float *st = a.stats + ((size_t)t0 * a.n_head + h) * 4;
            st[0] = m0, st[1] = il0, st[2] = n0, st[3] = kfon ? 1.0f / e0 : 1.0f;
        }
        if (t1 < a.n) {
            float *st = a.stats + ((size_t)t1 * a.n_head + h) * 4;
            st[0] = m1, st[1] = il1, st[2] = n1, st[3] = kfon ? 1.0f / e1 : 1.0f;
        }
    }
}

template <int HD> static void pf_mma_launch(const struct attn_args *a, bool kf, cudaStream_t s)
{
    const dim3 grid(a->n_head, (a->n + PFM_Q - 1) / PFM_Q);
    if (kf)
        klaunch(k_pf_mma<HD, true>, grid, PFM_THREADS, 0, s, *a);
    else
        klaunch(k_pf_mma<HD, false>, grid, PFM_THREADS, 0, s, *a);
}

int pf_attn_mma_launch(const struct attn_args *a, int keyformer, cudaStream_t s)
{
    const char *e = getenv("KF_CUDA_PF");
    if ((e && !strcmp(e, "warp")) || kdevice_major() < 8) /* mma.sync.m16n8k16 on f16: sm_80 */
        return -1;
    switch (a->hd) {
    case 16: pf_mma_launch<16>(a, keyformer, s); return 0;
    case 32: pf_mma_launch<32>(a, keyformer, s); return 0;
    case 64: pf_mma_launch<64>(a, keyformer, s); return 0;
    case 128: pf_mma_launch<128>(a, keyformer, s); return 0;
    default: return -1; /* 8 and 256: k_pf_attn */
    }
}
