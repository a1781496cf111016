/*
 * cuda_mmq_types.cuh — what the two prompt-batch kernels of the integer weight types share
 * (cuda_mmq.cu: int8 tensor cores; cuda_mmf.cu: f16 tensor cores on weights dequantized in
 * shared memory): unpacking a 32-element block of any type into int8 values with a scale and a
 * min per 16 elements, the per-type dispatch, the block tile (MQ_BM weight rows × MQ_BN tokens,
 * 8 warps of 32 × 32) and its store.  The bit layouts are engine/quant_ref.c's and
 * quant_ref_k.c's, as in cuda_mmv_types.cuh, whose loads these use.
 */
#ifndef KF_CUDA_MMQ_TYPES_CUH
#define KF_CUDA_MMQ_TYPES_CUH

#include "cuda_launch.cuh"
#include "cuda_mmv_types.cuh"

#define MQ_BM 128      /* weight rows a block */
#define MQ_BN 64       /* tokens a block */
#define MQ_THREADS 256

// ---- unpacking: one 32-element block of a row into int8 values and scales --------------------
// unpack(row, kb, q, ds, dm): elements 32kb..32kb+31 of the row at `row` (bytes), as 8 ints of 4
// signed bytes in element order, with w = ds[e/16]·q − dm[e/16].  BYTES bytes hold ELEMS elements.

__device__ __forceinline__ int nib_lo(int w) { return w & 0x0F0F0F0F; }
__device__ __forceinline__ int nib_hi(int w) { return (int)((unsigned)w >> 4) & 0x0F0F0F0F; }

/* Q4_0 and Q8_0, as GGUF stores them (t_q4_0, t_q8_0) or in the GPU's runs of 8 blocks
 * (t_q4_0g, t_q8_0g): the decode kernels' raw words (q_fetch), unpacked. */
template <class T> struct u_legacy {
    static constexpr int BYTES = T::BYTES, SUB = 32, ELEMS = 32;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        typename T::raw w;
        q_fetch<T>(w, row, kb, 0);
        if constexpr (std::is_base_of<t_q4_0, T>::value) { /* nibbles, offset 8 */
#pragma unroll
            for (int i = 0; i < 4; i++) {
                q[i] = (int)__vsub4(nib_lo(w.q[i]), 0x08080808);
                q[4 + i] = (int)__vsub4(nib_hi(w.q[i]), 0x08080808);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++)
                q[i] = w.q[i];
        }
        ds[0] = ds[1] = w.d;
        dm[0] = dm[1] = 0.0f;
    }
};

struct u_q4_1 {
    static constexpr int BYTES = 20, SUB = 32, ELEMS = 32;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        const uint8_t *p = row + kb * BYTES;
        const float2 d = half2_bits(ld_i32(p));
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int w = ld_i32(p + 4 + 4 * i);
            q[i] = nib_lo(w);
            q[4 + i] = nib_hi(w);
        }
        ds[0] = ds[1] = d.x;
        dm[0] = dm[1] = -d.y; /* w = d·q + m */
    }
};

struct u_q5_0 {
    static constexpr int BYTES = 22, SUB = 32, ELEMS = 32;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        const uint8_t *p = row + kb * BYTES;
        int v[5], lo[4], hi[4];
        ld_a2<5>(p + 2, v);
        const int qs[4] = { v[1], v[2], v[3], v[4] };
        q5_unpack((unsigned)v[0], qs, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            q[i] = (int)__vsub4(lo[i], 0x10101010);
            q[4 + i] = (int)__vsub4(hi[i], 0x10101010);
        }
        ds[0] = ds[1] = ld_half(p);
        dm[0] = dm[1] = 0.0f;
    }
};

struct u_q5_1 {
    static constexpr int BYTES = 24, SUB = 32, ELEMS = 32;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        const uint8_t *p = row + kb * BYTES;
        const float2 d = half2_bits(ld_i32(p));
        int qs[4], lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++)
            qs[i] = ld_i32(p + 8 + 4 * i);
        q5_unpack((unsigned)ld_i32(p + 4), qs, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            q[i] = lo[i];
            q[4 + i] = hi[i];
        }
        ds[0] = ds[1] = d.x;
        dm[0] = dm[1] = -d.y;
    }
};

/* Q4_K/Q5_K: scale and min of sub-block 2c + h from the super-block's first 16 bytes. */
__device__ __forceinline__ void k4_sub_scales(uint4 hd, int c, int h, float (&ds)[2],
                                              float (&dm)[2])
{
    unsigned sc, m;
    k4_scales(c, hd.y, hd.z, hd.w, &sc, &m);
    const float2 d = half2_bits((int)hd.x);
    ds[0] = ds[1] = d.x * (float)((sc >> (8 * h)) & 0xFF);
    dm[0] = dm[1] = d.y * (float)((m >> (8 * h)) & 0xFF);
}

/* Q4_K/Q5_K: sub-block s = 2c + h of a super-block takes qs bytes 32c..32c+31, nibble h. */
struct u_q4_k {
    static constexpr int BYTES = 144, SUB = 32, ELEMS = 256;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        const uint8_t *p = row + (kb >> 3) * BYTES;
        const int s = kb & 7, c = s >> 1, h = s & 1;
        const uint4 hd = ld_u128(p), q0 = ld_u128(p + 16 + 32 * c), q1 = ld_u128(p + 32 + 32 * c);
        const unsigned w[8] = { q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w };
#pragma unroll
        for (int i = 0; i < 8; i++)
            q[i] = (int)((w[i] >> (4 * h)) & 0x0F0F0F0Fu);
        k4_sub_scales(hd, c, h, ds, dm);
    }
};

struct u_q5_k {
    static constexpr int BYTES = 176, SUB = 32, ELEMS = 256;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        const uint8_t *p = row + (kb >> 3) * BYTES;
        const int s = kb & 7, c = s >> 1, h = s & 1;
        const uint4 hd = ld_u128(p), h0 = ld_u128(p + 16), h1 = ld_u128(p + 32);
        const uint4 q0 = ld_u128(p + 48 + 32 * c), q1 = ld_u128(p + 64 + 32 * c);
        const unsigned w[8] = { q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w };
        const unsigned hb[8] = { h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w };
#pragma unroll
        for (int i = 0; i < 8; i++)
            q[i] = (int)(((w[i] >> (4 * h)) & 0x0F0F0F0Fu) | ((hb[i] >> s) & 0x01010101u) << 4);
        k4_sub_scales(hd, c, h, ds, dm);
    }
};

/* Q6_K: elements 128h + 32t + l: ql byte 64h + 32(t&1) + l (nibble t>>1), qh byte 32h + l (bits
 * 2t, 2t+1), scale 8h + 2t + l/16. */
__device__ __forceinline__ void q6_unpack(const uint8_t *pl, const uint8_t *ph, const uint8_t *sc,
                                          const uint8_t *dp, int s, int (&q)[8], float (&ds)[2],
                                          float (&dm)[2])
{
    const int h = s >> 2, t = s & 3;
    int ql[8], qh[8];
    ld_a2<8>(pl + 64 * h + 32 * (t & 1), ql);
    ld_a2<8>(ph + 32 * h, qh);
#pragma unroll
    for (int i = 0; i < 8; i++)
        q[i] = (int)__vsub4((((unsigned)ql[i] >> (4 * (t >> 1))) & 0x0F0F0F0Fu) |
                                (((unsigned)qh[i] >> (2 * t)) & 0x03030303u) << 4,
                            0x20202020);
    const float d = ld_half(dp);
    ds[0] = d * (float)ld_s8(sc + 8 * h + 2 * t);
    ds[1] = d * (float)ld_s8(sc + 1 + 8 * h + 2 * t);
    dm[0] = dm[1] = 0.0f;
}

struct u_q6_k {
    static constexpr int BYTES = 210, SUB = 16, ELEMS = 256;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        const uint8_t *p = row + (kb >> 3) * BYTES;
        q6_unpack(p, p + 128, p + 192, p + 208, kb & 7, q, ds, dm);
    }
};

/* Q6_K in the GPU's runs of 8 super-blocks (t_q6_kg). */
struct u_q6_kg {
    static constexpr int BYTES = 210, SUB = 16, ELEMS = 256;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        const int64_t b = kb >> 3;
        q6_unpack(q6_runs::ql(row, b), q6_runs::qh(row, b), q6_runs::sc(row, b),
                  q6_runs::d(row, b), kb & 7, q, ds, dm);
    }
};

/* Q2_K: elements 128h + 32i + l: qs byte 32h + l, bits 2i; scale byte 8h + 2i + l/16. */
struct u_q2_k {
    static constexpr int BYTES = 84, SUB = 16, ELEMS = 256;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        const uint8_t *p = row + (kb >> 3) * BYTES;
        const int s = kb & 7, h = s >> 2, i = s & 3;
#pragma unroll
        for (int j = 0; j < 8; j++)
            q[j] = (int)(((unsigned)ld_i32(p + 16 + 32 * h + 4 * j) >> (2 * i)) & 0x03030303u);
        const float2 d = half2_bits(ld_i32(p + 80));
#pragma unroll
        for (int x = 0; x < 2; x++) {
            const int sb = __ldg(p + 8 * h + 2 * i + x);
            ds[x] = d.x * (float)(sb & 15);
            dm[x] = d.y * (float)(sb >> 4);
        }
    }
};

/* Q3_K: elements 128h + 32i + l: 2 bits of qs byte 32h + l (bits 2i), the third from hmask byte
 * l (bit 4h + i, set: +0, clear: −4); 6-bit scale 8h + 2i + l/16, minus 32. */
struct u_q3_k {
    static constexpr int BYTES = 110, SUB = 16, ELEMS = 256;
    static __device__ void unpack(const uint8_t *row, int kb, int (&q)[8], float (&ds)[2],
                                  float (&dm)[2])
    {
        const uint8_t *p = row + (kb >> 3) * BYTES;
        const int s = kb & 7, h = s >> 2, i = s & 3;
        int qs[8], hm[8];
        ld_a2<8>(p + 32 + 32 * h, qs);
        ld_a2<8>(p, hm);
#pragma unroll
        for (int j = 0; j < 8; j++)
            q[j] = (int)__vsub4((((unsigned)qs[j] >> (2 * i)) & 0x03030303u) |
                                    (((unsigned)hm[j] >> (4 * h + i)) & 0x01010101u) << 2,
                                0x04040404);
        const float d = ld_half(p + 108);
#pragma unroll
        for (int x = 0; x < 2; x++) {
            const int si = 8 * h + 2 * i + x;
            const int lo4 = si < 8 ? __ldg(p + 96 + si) & 15 : __ldg(p + 88 + si) >> 4;
            const int hi2 = (__ldg(p + 104 + (si & 3)) >> (2 * (si >> 2))) & 3;
            ds[x] = d * (float)((lo4 | hi2 << 4) - 32);
        }
        dm[0] = dm[1] = 0.0f;
    }
};

// ---- dispatch and the block's store ---------------------------------------------------------

/* Calls f.template go<U, MIN>(row bytes) with type's unpacker (MIN: it has mins); -1 for other
 * types. */
template <class F> static int mq_with_type(uint32_t type, int64_t k, F &&f)
{
    const size_t b32 = (size_t)(k / 32), b256 = (size_t)(k / 256);
    const bool g = cuda_mmv_grouped(type, k); /* the GPU's layout (cuda_mmv_pack) */
    switch (type) {
    case QTYPE_Q4_0:
        return g ? f.template go<u_legacy<t_q4_0g>, false>(b32 * t_q4_0::BYTES)
                 : f.template go<u_legacy<t_q4_0>, false>(b32 * t_q4_0::BYTES);
    case QTYPE_Q4_1: return f.template go<u_q4_1, true>(b32 * u_q4_1::BYTES);
    case QTYPE_Q5_0: return f.template go<u_q5_0, false>(b32 * u_q5_0::BYTES);
    case QTYPE_Q5_1: return f.template go<u_q5_1, true>(b32 * u_q5_1::BYTES);
    case QTYPE_Q8_0:
        return g ? f.template go<u_legacy<t_q8_0g>, false>(b32 * t_q8_0::BYTES)
                 : f.template go<u_legacy<t_q8_0>, false>(b32 * t_q8_0::BYTES);
    case QTYPE_Q2_K: return f.template go<u_q2_k, true>(b256 * u_q2_k::BYTES);
    case QTYPE_Q3_K: return f.template go<u_q3_k, false>(b256 * u_q3_k::BYTES);
    case QTYPE_Q4_K: return f.template go<u_q4_k, true>(b256 * u_q4_k::BYTES);
    case QTYPE_Q5_K: return f.template go<u_q5_k, true>(b256 * u_q5_k::BYTES);
    case QTYPE_Q6_K:
        return g ? f.template go<u_q6_kg, false>(b256 * u_q6_k::BYTES)
                 : f.template go<u_q6_k, false>(b256 * u_q6_k::BYTES);
    default: return -1;
    }
}

/* Once per kernel: more than 48 KiB of shared memory. */
template <class K> static int mq_smem_attr(K kernel, size_t bytes, bool &done)
{
    if (!done) {
        if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) !=
            cudaSuccess)
            return -1;
        done = true;
    }
    return 0;
}

/* (token tiles, row tiles, k splits): a weight tile's blocks run together, so it is read from
 * DRAM about once and the activations stay in L2. */
static inline dim3 mq_grid(int nt, int n, int splits)
{
    return dim3((unsigned)((nt + MQ_BN - 1) / MQ_BN), (unsigned)((n + MQ_BM - 1) / MQ_BM),
                (unsigned)splits);
}

/* A warp's accumulators: 32 rows × 32 tokens in the mma layout. */
__device__ __forceinline__ void mq_zero(float (&acc)[2][4][4])
{
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[i][j][e] = 0.0f;
}

/*
 * y[tok][row] = a warp's accumulators (+ bias[row], + res[tok][row]); its rows r0.., tokens t0..
 * in the mma layout (g = lane / 4: rows g and g + 8 of each 16; tq = lane % 4: the token pair).
 */
__device__ __forceinline__ void mq_store(const float (&acc)[2][4][4], float *y, const float *bias,
                                         const float *res, int n, int nt, int r0, int t0, int g,
                                         int tq)
{
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int row = r0 + 16 * mi + g + 8 * (e >> 1);
                const int tok = t0 + 8 * ni + 2 * tq + (e & 1);
                if (row >= n || tok >= nt)
                    continue;
                const size_t o = (size_t)tok * n + row;
                float v = acc[mi][ni][e];
                if (bias)
                    v += bias[row];
                if (res)
                    v += res[o];
                y[o] = v;
            }
}

#endif
