/*
 * cuda_mmv_types.cuh — device code of the weight kernels (cuda_mmv.cu), one traits struct per
 * GGUF block type: how a thread loads its piece of a block ("unit"), the matching piece of the
 * 8-bit activations, and the integer dot of the two with the block's scales and mins.  The bit
 * layouts are engine/quant_ref.c's and quant_ref_k.c's (their scalar code is the oracle of
 * tests/test_cuda_mmv.c).  Included by cuda_mmv.cu, and by cuda_mmq.cu for the loads and unpacking
 * helpers.
 */
#ifndef KF_CUDA_MMV_TYPES_CUH
#define KF_CUDA_MMV_TYPES_CUH

#include <type_traits>

// ---- loads ----------------------------------------------------------------------------------

/* Weight loads: volatile asm on the device, so that NVVM keeps them where they are written
 * (see mmv_pin); plain loads on the host, where tests emulate the unpacking. */
__device__ __forceinline__ int ld_i32(const uint8_t *p) /* p 4-byte aligned */
{
#ifdef __CUDA_ARCH__
    int v;
    asm volatile("ld.global.nc.b32 %0, [%1];" : "=r"(v) : "l"(p));
    return v;
#else
    return __ldg((const int *)p);
#endif
}

__device__ __forceinline__ uint4 ld_u128(const uint8_t *p) /* p 16-byte aligned */
{
#ifdef __CUDA_ARCH__
    uint4 v;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
#else
    return __ldg((const uint4 *)p);
#endif
}

__device__ __forceinline__ unsigned short ld_u16(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
    unsigned short v;
    asm volatile("ld.global.nc.u16 %0, [%1];" : "=h"(v) : "l"(p));
    return v;
#else
    return __ldg((const unsigned short *)p);
#endif
}

__device__ __forceinline__ int ld_s8(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
    int v;
    asm volatile("ld.global.nc.s8 %0, [%1];" : "=r"(v) : "l"(p));
    return v;
#else
    return (int8_t)__ldg(p);
#endif
}

__device__ __forceinline__ float ld_half(const uint8_t *p)
{
    return __half2float(__ushort_as_half(ld_u16(p)));
}

/*
 * N ints from a 2-byte aligned p: N+1 aligned words joined by funnel shifts (fewer load
 * instructions than 2N half-word loads).  When p is 4-aligned the extra word is not read.
 */
template <int N> __device__ __forceinline__ void ld_a2(const uint8_t *p, int (&v)[N])
{
    const uintptr_t a = (uintptr_t)p;
    const int *q = (const int *)(a & ~(uintptr_t)3);
    const unsigned sh = (unsigned)(a & 2) * 8;
    int w[N + 1];
#pragma unroll
    for (int i = 0; i < N; i++)
        w[i] = ld_i32((const uint8_t *)(q + i));
    w[N] = sh ? ld_i32((const uint8_t *)(q + N)) : 0;
#pragma unroll
    for (int i = 0; i < N; i++)
        v[i] = (int)__funnelshift_r((unsigned)w[i], (unsigned)w[i + 1], sh);
}

__device__ __forceinline__ float2 half2_bits(int v)
{
    return __half22float2(*reinterpret_cast<const __half2 *>(&v));
}

// ---- activations: NG groups of 16 q8_1 values (4 ints) with their scale and exact Σ ----------

template <int NG> struct act_q {
    int a[NG][4];
    float d[NG];
    int s[NG];
    float sh[NG]; /* the block's s = d·Σq as stored (f16), what the CPU's Q4_1/Q5_1 dot uses */
};

/*
 * Group g := ints i0..i0+3 of q8_1 block blk (xq: 9 ints per block: half2 (d, s), 8 ints).
 * FD: the first word is the scale as an f32 (activations rounded like the CPU's Q8_K for the
 * k-quants: one f32 scale per 256 values, kept exact rather than rounded to f16).
 */
template <int NG, bool FD = false>
__device__ __forceinline__ void act_load(act_q<NG> &x, int g, const int *xq, int blk, int i0)
{
    const int *b = xq + 9 * blk;
    const int w0 = __ldg(b);
    x.d[g] = FD ? __int_as_float(w0) : half2_bits(w0).x;
    x.sh[g] = FD ? 0.0f : half2_bits(w0).y;
    int s = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        x.a[g][i] = __ldg(b + 1 + i0 + i);
        s = __dp4a(x.a[g][i], 0x01010101, s);
    }
    x.s[g] = s;
}

/* Σ dp4a(v[i], a[i]) over 4 ints. */
__device__ __forceinline__ int dot4(const int (&v)[4], const int (&a)[4])
{
    int s = 0;
#pragma unroll
    for (int i = 0; i < 4; i++)
        s = __dp4a(v[i], a[i], s);
    return s;
}

/* Spread bits 0..3 of x to bit 4 of bytes 0..3 (the fifth bit of Q5_0/Q5_1). */
__device__ __forceinline__ int spread4(unsigned x)
{
    return (int)(((x & 0xFu) * 0x02040810u) & 0x10101010u);
}

// ---- per-type traits: QK elements and BYTES bytes per block, UPB units per block ------------
// load(x, act, b, j): activation piece of unit j of block b; fetch(raw, p, j): that unit's
// weight words of the block at p; calc(raw, j, x): their dot with x.  deq8(p, o, out):
// elements o..o+7 of the block (o % 8 == 0), for dequantization.

struct t_q4_0 {
    static constexpr int BLK = 32, BYTES = 18, UPB = 1, ALIGN = 2;
    using act = act_q<2>;
    static __device__ void load(act &x, const void *xa, int b, int)
    {
        act_load(x, 0, (const int *)xa, b, 0);
        act_load(x, 1, (const int *)xa, b, 4);
    }
    /* byte m of qs: element m (low nibble), element m + 16 (high nibble) */
    struct raw {
        int q[4];
        float d;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int)
    {
        ld_a2<4>(p + 2, w.q);
        w.d = ld_half(p);
    }
    static __device__ float calc(const raw &w, int, const act &x)
    {
        int lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo[i] = w.q[i] & 0x0F0F0F0F;
            hi[i] = (int)((unsigned)w.q[i] >> 4) & 0x0F0F0F0F;
        }
        const int s = dot4(lo, x.a[0]) + dot4(hi, x.a[1]) - 8 * (x.s[0] + x.s[1]);
        return w.d * x.d[0] * (float)s;
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out) { deq8_at(p + 2, ld_half(p), o, out); }
    /* elements o..o+7 of the block whose 16 quant bytes are at qs, with scale d */
    static __device__ void deq8_at(const uint8_t *qs, float d, int o, float *out)
    {
        for (int t = 0; t < 8; t++) {
            const int e = o + t;
            const int q = e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
            out[t] = (q - 8) * d;
        }
    }
};

struct t_q4_1 {
    static constexpr int BLK = 32, BYTES = 20, UPB = 1, ALIGN = 4;
    using act = act_q<2>;
    static __device__ void load(act &x, const void *xa, int b, int j) { t_q4_0::load(x, xa, b, j); }
    struct raw {
        int dm, q[4];
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int)
    {
        w.dm = ld_i32(p);
#pragma unroll
        for (int i = 0; i < 4; i++)
            w.q[i] = ld_i32(p + 4 + 4 * i);
    }
    static __device__ float calc(const raw &w, int, const act &x)
    {
        const float2 dm = half2_bits(w.dm);
        int lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo[i] = w.q[i] & 0x0F0F0F0F;
            hi[i] = (int)((unsigned)w.q[i] >> 4) & 0x0F0F0F0F;
        }
        const int s = dot4(lo, x.a[0]) + dot4(hi, x.a[1]);
        return x.d[0] * dm.x * (float)s + dm.y * x.sh[0]; /* the min term as ggml: m·s */
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out)
    {
        const float d = ld_half(p), m = ld_half(p + 2);
        for (int t = 0; t < 8; t++) {
            const int e = o + t;
            const int q = e < 16 ? p[4 + e] & 15 : p[4 + e - 16] >> 4;
            out[t] = q * d + m;
        }
    }
};

/* Q5 values of one block from qh (bit e = fifth bit of element e) and 16 qs bytes. */
__device__ __forceinline__ void q5_unpack(unsigned qh, const int (&q)[4], int (&lo)[4],
                                          int (&hi)[4])
{
#pragma unroll
    for (int i = 0; i < 4; i++) {
        lo[i] = (q[i] & 0x0F0F0F0F) | spread4(qh >> (4 * i));
        hi[i] = ((int)((unsigned)q[i] >> 4) & 0x0F0F0F0F) | spread4(qh >> (16 + 4 * i));
    }
}

__device__ __forceinline__ int q5_value(const uint8_t *qh, const uint8_t *qs, int e)
{
    const int nib = e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
    return nib | ((qh[e >> 3] >> (e & 7)) & 1) << 4;
}

struct t_q5_0 {
    static constexpr int BLK = 32, BYTES = 22, UPB = 1, ALIGN = 2;
    using act = act_q<2>;
    static __device__ void load(act &x, const void *xa, int b, int j) { t_q4_0::load(x, xa, b, j); }
    struct raw {
        int v[5]; /* qh, qs */
        float d;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int)
    {
        ld_a2<5>(p + 2, w.v);
        w.d = ld_half(p);
    }
    static __device__ float calc(const raw &w, int, const act &x)
    {
        int q[4], lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++)
            q[i] = w.v[1 + i];
        q5_unpack((unsigned)w.v[0], q, lo, hi);
        const int s = dot4(lo, x.a[0]) + dot4(hi, x.a[1]) - 16 * (x.s[0] + x.s[1]);
        return w.d * x.d[0] * (float)s;
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out)
    {
        const float d = ld_half(p);
        for (int t = 0; t < 8; t++)
            out[t] = (q5_value(p + 2, p + 6, o + t) - 16) * d;
    }
};

struct t_q5_1 {
    static constexpr int BLK = 32, BYTES = 24, UPB = 1, ALIGN = 4;
    using act = act_q<2>;
    static __device__ void load(act &x, const void *xa, int b, int j) { t_q4_0::load(x, xa, b, j); }
    struct raw {
        int dm, qh, q[4];
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int)
    {
        w.dm = ld_i32(p);
        w.qh = ld_i32(p + 4);
#pragma unroll
        for (int i = 0; i < 4; i++)
            w.q[i] = ld_i32(p + 8 + 4 * i);
    }
    static __device__ float calc(const raw &w, int, const act &x)
    {
        const float2 dm = half2_bits(w.dm);
        int lo[4], hi[4];
        q5_unpack((unsigned)w.qh, w.q, lo, hi);
        const int s = dot4(lo, x.a[0]) + dot4(hi, x.a[1]);
        return x.d[0] * dm.x * (float)s + dm.y * x.sh[0]; /* the min term as ggml: m·s */
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out)
    {
        const float d = ld_half(p), m = ld_half(p + 2);
        for (int t = 0; t < 8; t++)
            out[t] = q5_value(p + 4, p + 8, o + t) * d + m;
    }
};

struct t_q8_0 {
    static constexpr int BLK = 32, BYTES = 34, UPB = 1, ALIGN = 2;
    using act = act_q<2>;
    static __device__ void load(act &x, const void *xa, int b, int j) { t_q4_0::load(x, xa, b, j); }
    struct raw {
        int q[8];
        float d;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int)
    {
        ld_a2<8>(p + 2, w.q);
        w.d = ld_half(p);
    }
    static __device__ float calc(const raw &w, int, const act &x)
    {
        int lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo[i] = w.q[i];
            hi[i] = w.q[4 + i];
        }
        return w.d * x.d[0] * (float)(dot4(lo, x.a[0]) + dot4(hi, x.a[1]));
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out) { deq8_at(p + 2, ld_half(p), o, out); }
    static __device__ void deq8_at(const uint8_t *qs, float d, int o, float *out)
    {
        for (int t = 0; t < 8; t++)
            out[t] = (int8_t)qs[o + t] * d;
    }
};

/*
 * Q4_0 and Q8_0 as the GPU stores them when a row has a multiple of 8 blocks (cuda_mmv_pack):
 * each run of 8 blocks (the same bytes as 8 GGUF blocks) holds their 8 f16 scales first, then
 * their 8 quant arrays of QB bytes, so that a block's quants are aligned 16-byte loads instead of
 * words joined by funnel shifts.  Rows are whole runs, so block b's run starts at its row (or at
 * the tensor) plus GBYTES · (b / 8).
 */
template <int QB> struct q_run {
    static constexpr int GBYTES = 8 * (2 + QB), QS = 8 * 2; /* the quants after the 8 scales */
    static __device__ const uint8_t *quants(const uint8_t *row, int64_t b)
    {
        return row + (b >> 3) * GBYTES + QS + QB * (b & 7);
    }
    static __device__ float scale(const uint8_t *row, int64_t b)
    {
        return ld_half(row + (b >> 3) * GBYTES + 2 * (b & 7));
    }
};

/* fetch_g and deq8_g take the row (or tensor) and the block index; raw and calc are GGUF's. */
struct t_q4_0g : t_q4_0, q_run<16> {
    static constexpr int ALIGN = 16;
    static __device__ void fetch_g(raw &w, const uint8_t *row, int64_t b, int)
    {
        const uint4 v = ld_u128(quants(row, b));
        w.q[0] = (int)v.x, w.q[1] = (int)v.y, w.q[2] = (int)v.z, w.q[3] = (int)v.w;
        w.d = scale(row, b);
    }
    static __device__ void deq8_g(const uint8_t *row, int64_t b, int o, float *out)
    {
        deq8_at(quants(row, b), scale(row, b), o, out);
    }
};

struct t_q8_0g : t_q8_0, q_run<32> {
    static constexpr int ALIGN = 16;
    static __device__ void fetch_g(raw &w, const uint8_t *row, int64_t b, int)
    {
        const uint8_t *qs = quants(row, b);
        const uint4 v0 = ld_u128(qs), v1 = ld_u128(qs + 16);
        w.q[0] = (int)v0.x, w.q[1] = (int)v0.y, w.q[2] = (int)v0.z, w.q[3] = (int)v0.w;
        w.q[4] = (int)v1.x, w.q[5] = (int)v1.y, w.q[6] = (int)v1.z, w.q[7] = (int)v1.w;
        w.d = scale(row, b);
    }
    static __device__ void deq8_g(const uint8_t *row, int64_t b, int o, float *out)
    {
        deq8_at(quants(row, b), scale(row, b), o, out);
    }
};

/* Types stored in runs of blocks (fetch_g/deq8_g, addressed by row and block) or block by block. */
template <class Q, class = void> struct q_grouped : std::false_type {};
template <class Q> struct q_grouped<Q, decltype((void)&Q::fetch_g)> : std::true_type {};

template <class Q>
__device__ __forceinline__ void q_fetch(typename Q::raw &w, const uint8_t *row, int64_t b, int j)
{
    if constexpr (q_grouped<Q>::value)
        Q::fetch_g(w, row, b, j);
    else
        Q::fetch(w, row + b * Q::BYTES, j);
}

template <class Q>
__device__ __forceinline__ void q_deq8(const uint8_t *w, int64_t blk, int o, float *out)
{
    if constexpr (q_grouped<Q>::value)
        Q::deq8_g(w, blk, o, out);
    else
        Q::deq8(w + blk * Q::BYTES, o, out);
}

/*
 * Q4_K/Q5_K scales and mins of the sub-block pair (2c, 2c+1), packed as in the 12 bytes
 * s1|s2|s3 (ints): sub-block i < 4 has sc = byte i & 63, m = byte i+4 & 63; i >= 4 takes its low
 * 4 bits from byte i+4 (sc: low nibble, m: high nibble) and its top 2 bits from the top of
 * byte i-4 (sc) or byte i (m).  Returns (sc, m) pairs as bytes 0/1 of *sc and *m.
 */
__device__ __forceinline__ void k4_scales(int c, unsigned s1, unsigned s2, unsigned s3,
                                          unsigned *sc, unsigned *m)
{
    if (c < 2) {
        *sc = (s1 >> (16 * c)) & 0x3F3F;
        *m = (s2 >> (16 * c)) & 0x3F3F;
    } else {
        const int sh = 16 * (c - 2);
        *sc = ((s3 >> sh) & 0x0F0F) | ((s1 >> (sh + 2)) & 0x3030);
        *m = ((s3 >> (sh + 4)) & 0x0F0F) | ((s2 >> (sh + 2)) & 0x3030);
    }
}

/* Unit j of a Q4_K/Q5_K super-block: c = j/2, h = j%2: qs bytes 32c + 16h .. +15, i.e. elements
 * 64c + 16h + (0..15) (low nibbles, sub-block 2c) and 64c + 32 + 16h + (0..15) (sub-block 2c+1). */
struct k4_act {
    using act = act_q<2>;
    static __device__ void load(act &x, const void *xa, int b, int j)
    {
        const int c = j >> 1, h = j & 1;
        act_load<2, true>(x, 0, (const int *)xa, 8 * b + 2 * c, 4 * h);
        act_load<2, true>(x, 1, (const int *)xa, 8 * b + 2 * c + 1, 4 * h);
    }
};

__device__ __forceinline__ float k4_combine(uint4 hd, int c, const int (&lo)[4],
                                            const int (&hi)[4], const act_q<2> &x)
{
    unsigned sc, m;
    k4_scales(c, hd.y, hd.z, hd.w, &sc, &m);
    const float2 dm = half2_bits((int)hd.x);
    const int dl = dot4(lo, x.a[0]), dh = dot4(hi, x.a[1]);
    return x.d[0] * (dm.x * (float)((int)(sc & 0xFF) * dl) - dm.y * (float)((int)(m & 0xFF) * x.s[0])) +
           x.d[1] * (dm.x * (float)((int)(sc >> 8) * dh) - dm.y * (float)((int)(m >> 8) * x.s[1]));
}

__device__ __forceinline__ void k4_scale_min(const uint8_t *s, int i, int *sc, int *m)
{
    if (i < 4) {
        *sc = s[i] & 63;
        *m = s[i + 4] & 63;
    } else {
        *sc = (s[i + 4] & 0x0F) | (s[i - 4] >> 6) << 4;
        *m = (s[i + 4] >> 4) | (s[i] >> 6) << 4;
    }
}

struct t_q4_k : k4_act {
    static constexpr int BLK = 256, BYTES = 144, UPB = 8, ALIGN = 16;
    struct raw {
        uint4 hd, q;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int j)
    {
        w.hd = ld_u128(p);
        w.q = ld_u128(p + 16 + 16 * j);
    }
    static __device__ float calc(const raw &w, int j, const act &x)
    {
        const unsigned qq[4] = { w.q.x, w.q.y, w.q.z, w.q.w };
        int lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo[i] = (int)(qq[i] & 0x0F0F0F0Fu);
            hi[i] = (int)((qq[i] >> 4) & 0x0F0F0F0Fu);
        }
        return k4_combine(w.hd, j >> 1, lo, hi, x);
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out)
    {
        const float d = ld_half(p), dmin = ld_half(p + 2);
        const int c = o / 64, hi = (o % 64) / 32, l0 = o % 32;
        int sc, m;
        k4_scale_min(p + 4, 2 * c + hi, &sc, &m);
        const float ds = d * sc, dm = dmin * m;
        for (int t = 0; t < 8; t++)
            out[t] = ds * ((p[16 + 32 * c + l0 + t] >> (4 * hi)) & 15) - dm;
    }
};

struct t_q5_k : k4_act {
    static constexpr int BLK = 256, BYTES = 176, UPB = 8, ALIGN = 16;
    /* plus qh[l] (l = 16h + byte) bit 2c for the low element, bit 2c+1 for the high one */
    struct raw {
        uint4 hd, qh, q;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int j)
    {
        w.hd = ld_u128(p);
        w.qh = ld_u128(p + 16 + 16 * (j & 1));
        w.q = ld_u128(p + 48 + 16 * j);
    }
    static __device__ float calc(const raw &w, int j, const act &x)
    {
        const int c = j >> 1;
        const uint4 hd = w.hd, qh = w.qh, q = w.q;
        const unsigned qq[4] = { q.x, q.y, q.z, q.w }, hh[4] = { qh.x, qh.y, qh.z, qh.w };
        int lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo[i] = (int)((qq[i] & 0x0F0F0F0Fu) | ((hh[i] >> (2 * c)) & 0x01010101u) << 4);
            hi[i] = (int)(((qq[i] >> 4) & 0x0F0F0F0Fu) | ((hh[i] >> (2 * c + 1)) & 0x01010101u) << 4);
        }
        return k4_combine(hd, c, lo, hi, x);
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out)
    {
        const float d = ld_half(p), dmin = ld_half(p + 2);
        const int c = o / 64, hi = (o % 64) / 32, l0 = o % 32;
        int sc, m;
        k4_scale_min(p + 4, 2 * c + hi, &sc, &m);
        const float ds = d * sc, dm = dmin * m;
        for (int t = 0; t < 8; t++) {
            const int l = l0 + t;
            const int q = ((p[48 + 32 * c + l] >> (4 * hi)) & 15) | ((p[16 + l] >> (2 * c + hi)) & 1) << 4;
            out[t] = ds * q - dm;
        }
    }
};

/*
 * Q6_K unit j = 4h + 2t + g: ql bytes 16j..16j+15 hold elements 128h + 32t + 16g + (0..15) (low
 * nibbles, scale j + 4h) and 128h + 32(t+2) + 16g + (0..15) (high nibbles, scale j + 4h + 4);
 * their top 2 bits are bits 2t and 2t+4 of qh[32h + 16g + (0..15)].
 */
struct t_q6_k {
    static constexpr int BLK = 256, BYTES = 210, UPB = 8, ALIGN = 2;
    using act = act_q<2>;
    static __device__ void load(act &x, const void *xa, int b, int j)
    {
        const int h = j >> 2, t = (j >> 1) & 1, g = j & 1;
        act_load<2, true>(x, 0, (const int *)xa, 8 * b + 4 * h + t, 4 * g);
        act_load<2, true>(x, 1, (const int *)xa, 8 * b + 4 * h + t + 2, 4 * g);
    }
    struct raw {
        int ql[4], qh[4], sc0, sc1;
        float d;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int j)
    {
        const int h = j >> 2, g = j & 1;
        ld_a2<4>(p + 16 * j, w.ql);
        ld_a2<4>(p + 128 + 32 * h + 16 * g, w.qh);
        w.sc0 = ld_s8(p + 192 + j + 4 * h);
        w.sc1 = ld_s8(p + 196 + j + 4 * h);
        w.d = ld_half(p + 208);
    }
    static __device__ float calc(const raw &w, int j, const act &x)
    {
        const int t = (j >> 1) & 1;
        int lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const unsigned l = (unsigned)w.ql[i], u = (unsigned)w.qh[i];
            lo[i] = (int)((l & 0x0F0F0F0Fu) | ((u >> (2 * t)) & 0x03030303u) << 4);
            hi[i] = (int)(((l >> 4) & 0x0F0F0F0Fu) | ((u >> (2 * t + 4)) & 0x03030303u) << 4);
        }
        const int s0 = w.sc0 * (dot4(lo, x.a[0]) - 32 * x.s[0]);
        const int s1 = w.sc1 * (dot4(hi, x.a[1]) - 32 * x.s[1]);
        return w.d * (x.d[0] * (float)s0 + x.d[1] * (float)s1);
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out)
    {
        deq8_at(p, p + 128, p + 192, p + 208, o, out);
    }
    /* elements o..o+7 of the super-block whose ql, qh, scales and d are at these addresses */
    static __device__ void deq8_at(const uint8_t *ql, const uint8_t *qh, const uint8_t *sc,
                                   const uint8_t *dp, int o, float *out)
    {
        const float d = ld_half(dp);
        for (int k = 0; k < 8; k++) {
            const int e = o + k, h = e / 128, t = (e % 128) / 32, l = e % 32;
            const int qlb = ql[64 * h + 32 * (t & 1) + l];
            const int q = ((t < 2 ? qlb & 15 : qlb >> 4) | ((qh[32 * h + l] >> (2 * t)) & 3) << 4) - 32;
            out[k] = d * (float)(int8_t)sc[e / 16] * q;
        }
    }
};

/*
 * Q6_K as the GPU stores it when a row has a multiple of 8 super-blocks (cuda_mmv_pack): each
 * run of 8 (1,680 bytes) holds their 8 d, then their 8 × 16 scales, 8 × 128 ql and 8 × 64 qh, so
 * that a unit's ql and qh are aligned 16-byte loads (GGUF's 210-byte blocks are 2-byte aligned).
 */
struct q6_runs {
    /* where each field of the 8 starts in a run */
    static constexpr int GBYTES = 8 * 210, SC = 8 * 2, QL = SC + 8 * 16, QH = QL + 8 * 128;
    static __device__ const uint8_t *run(const uint8_t *row, int64_t b)
    {
        return row + (b >> 3) * GBYTES;
    }
    static __device__ const uint8_t *ql(const uint8_t *row, int64_t b) { return run(row, b) + QL + 128 * (b & 7); }
    static __device__ const uint8_t *qh(const uint8_t *row, int64_t b) { return run(row, b) + QH + 64 * (b & 7); }
    static __device__ const uint8_t *sc(const uint8_t *row, int64_t b) { return run(row, b) + SC + 16 * (b & 7); }
    static __device__ const uint8_t *d(const uint8_t *row, int64_t b) { return run(row, b) + 2 * (b & 7); }
};

struct t_q6_kg : t_q6_k, q6_runs {
    static constexpr int ALIGN = 16;
    static __device__ void fetch_g(raw &w, const uint8_t *row, int64_t b, int j)
    {
        const int h = j >> 2, g = j & 1;
        const uint4 l = ld_u128(ql(row, b) + 16 * j), u = ld_u128(qh(row, b) + 32 * h + 16 * g);
        w.ql[0] = (int)l.x, w.ql[1] = (int)l.y, w.ql[2] = (int)l.z, w.ql[3] = (int)l.w;
        w.qh[0] = (int)u.x, w.qh[1] = (int)u.y, w.qh[2] = (int)u.z, w.qh[3] = (int)u.w;
        w.sc0 = ld_s8(sc(row, b) + j + 4 * h);
        w.sc1 = ld_s8(sc(row, b) + j + 4 * h + 4);
        w.d = ld_half(d(row, b));
    }
    static __device__ void deq8_g(const uint8_t *row, int64_t b, int o, float *out)
    {
        deq8_at(ql(row, b), qh(row, b), sc(row, b), d(row, b), o, out);
    }
};

/* Q2_K/Q3_K unit j = 2h + g: qs bytes 32h + 16g + (0..15); bits 2i hold elements
 * 128h + 32i + 16g + (0..15) for i = 0..3 (scale index 8h + 2i + g). */
struct k23_act {
    using act = act_q<4>;
    static __device__ void load(act &x, const void *xa, int b, int j)
    {
        const int h = j >> 1, g = j & 1;
#pragma unroll
        for (int i = 0; i < 4; i++)
            act_load<4, true>(x, i, (const int *)xa, 8 * b + 4 * h + i, 4 * g);
    }
};

struct t_q2_k : k23_act {
    static constexpr int BLK = 256, BYTES = 84, UPB = 4, ALIGN = 4;
    struct raw {
        unsigned q[4], S0, S1;
        int dm;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int j)
    {
        const int h = j >> 1;
#pragma unroll
        for (int i = 0; i < 4; i++)
            w.q[i] = (unsigned)ld_i32(p + 16 + 16 * j + 4 * i);
        w.S0 = (unsigned)ld_i32(p + 8 * h);
        w.S1 = (unsigned)ld_i32(p + 8 * h + 4);
        w.dm = ld_i32(p + 80);
    }
    static __device__ float calc(const raw &w, int j, const act &x)
    {
        const int g = j & 1;
        const unsigned *q = w.q, S0 = w.S0, S1 = w.S1;
        const float2 dm = half2_bits(w.dm);
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int v[4];
#pragma unroll
            for (int w = 0; w < 4; w++)
                v[w] = (int)((q[w] >> (2 * i)) & 0x03030303u);
            const unsigned byte = ((i < 2 ? S0 : S1) >> (8 * (g + 2 * (i & 1)))) & 0xFF;
            sum += x.d[i] * (dm.x * (float)((int)(byte & 15) * dot4(v, x.a[i])) -
                             dm.y * (float)((int)(byte >> 4) * x.s[i]));
        }
        return sum;
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out)
    {
        const float d = ld_half(p + 80), dmin = ld_half(p + 82);
        const int sb = p[o / 16];
        const float dl = d * (sb & 15), ml = dmin * (sb >> 4);
        for (int k = 0; k < 8; k++) {
            const int e = o + k, h = e / 128, i = (e % 128) / 32, l = e % 32;
            out[k] = dl * ((p[16 + 32 * h + l] >> (2 * i)) & 3) - ml;
        }
    }
};

struct t_q3_k : k23_act {
    static constexpr int BLK = 256, BYTES = 110, UPB = 4, ALIGN = 2;
    /* value = low2 | hbit << 2, minus 4; hbit = hmask[16g + byte] bit 4h + i */
    struct raw {
        int hm[4], q[4], S[3];
        float d;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int j)
    {
        ld_a2<4>(p + 16 * (j & 1), w.hm);
        ld_a2<4>(p + 32 + 16 * j, w.q);
        ld_a2<3>(p + 96, w.S);
        w.d = ld_half(p + 108);
    }
    static __device__ float calc(const raw &w, int j, const act &x)
    {
        const int h = j >> 1, g = j & 1;
        const int *hm = w.hm, *q = w.q, *S = w.S;
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int v[4];
#pragma unroll
            for (int w = 0; w < 4; w++)
                v[w] = (int)((((unsigned)q[w] >> (2 * i)) & 0x03030303u) |
                             (((unsigned)hm[w] >> (4 * h + i)) & 0x01010101u) << 2);
            /* scale 8h + 2i + g: low 4 bits in byte 2i + g (nibble h), top 2 in byte
             * 8 + 2(i&1) + g at bit 2(2h + i/2) */
            const unsigned blo = ((unsigned)S[i >> 1] >> (8 * (2 * (i & 1) + g))) & 0xFF;
            const unsigned bhi = ((unsigned)S[2] >> (8 * (2 * (i & 1) + g))) & 0xFF;
            const int sc = (int)(((blo >> (4 * h)) & 15) | ((bhi >> (2 * (2 * h + (i >> 1)))) & 3) << 4) - 32;
            sum += x.d[i] * (float)(sc * (dot4(v, x.a[i]) - 4 * x.s[i]));
        }
        return w.d * sum;
    }
    static __device__ void deq8(const uint8_t *p, int o, float *out)
    {
        const float d = ld_half(p + 108);
        const int si = o / 16;
        const int low4 = si < 8 ? p[96 + si] & 15 : p[96 + si - 8] >> 4;
        const int high2 = (p[96 + 8 + si % 4] >> (2 * (si / 4))) & 3;
        const float dl = d * ((low4 | high2 << 4) - 32);
        for (int k = 0; k < 8; k++) {
            const int e = o + k, h = e / 128, i = (e % 128) / 32, l = e % 32;
            const int low = (p[32 + 32 * h + l] >> (2 * i)) & 3;
            const int hb = (p[l] >> (4 * h + i)) & 1;
            out[k] = dl * (low - (hb ? 0 : 4));
        }
    }
};

/* Float weights: a "block" is 8 elements, multiplied with 8 f32 activations. */
struct f_act {
    struct act {
        float4 a, b;
    };
    static __device__ void load(act &x, const void *xa, int b, int)
    {
        const float4 *p = (const float4 *)xa + 2 * b;
        x.a = __ldg(p);
        x.b = __ldg(p + 1);
    }
};

__device__ __forceinline__ float f_dot8(const float (&w)[8], const f_act::act &x)
{
    float s = w[0] * x.a.x;
    s = fmaf(w[1], x.a.y, s);
    s = fmaf(w[2], x.a.z, s);
    s = fmaf(w[3], x.a.w, s);
    s = fmaf(w[4], x.b.x, s);
    s = fmaf(w[5], x.b.y, s);
    s = fmaf(w[6], x.b.z, s);
    return fmaf(w[7], x.b.w, s);
}

struct t_f32 : f_act {
    static constexpr int BLK = 8, BYTES = 32, UPB = 1, ALIGN = 16;
    static __device__ void deq8(const uint8_t *p, int, float *out)
    {
        const float4 a = __ldg((const float4 *)p), b = __ldg((const float4 *)p + 1);
        out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
        out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
    }
    struct raw {
        uint4 a, b;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int)
    {
        w.a = ld_u128(p);
        w.b = ld_u128(p + 16);
    }
    static __device__ float calc(const raw &r, int, const act &x)
    {
        const float w[8] = { __uint_as_float(r.a.x), __uint_as_float(r.a.y),
                             __uint_as_float(r.a.z), __uint_as_float(r.a.w),
                             __uint_as_float(r.b.x), __uint_as_float(r.b.y),
                             __uint_as_float(r.b.z), __uint_as_float(r.b.w) };
        return f_dot8(w, x);
    }
};

struct t_f16 : f_act {
    static constexpr int BLK = 8, BYTES = 16, UPB = 1, ALIGN = 16;
    static __device__ void cvt(const uint4 v, float *out)
    {
        const unsigned u[4] = { v.x, v.y, v.z, v.w };
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 f = half2_bits((int)u[i]);
            out[2 * i] = f.x;
            out[2 * i + 1] = f.y;
        }
    }
    static __device__ void deq8(const uint8_t *p, int, float *out) { cvt(ld_u128(p), out); }
    struct raw {
        uint4 v;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int) { w.v = ld_u128(p); }
    static __device__ float calc(const raw &r, int, const act &x)
    {
        float w[8];
        cvt(r.v, w);
        return f_dot8(w, x);
    }
};

struct t_bf16 : f_act {
    static constexpr int BLK = 8, BYTES = 16, UPB = 1, ALIGN = 16;
    static __device__ void cvt(const uint4 v, float *out)
    {
        const unsigned u[4] = { v.x, v.y, v.z, v.w };
#pragma unroll
        for (int i = 0; i < 4; i++) {
            out[2 * i] = __uint_as_float(u[i] << 16);
            out[2 * i + 1] = __uint_as_float(u[i] & 0xFFFF0000u);
        }
    }
    static __device__ void deq8(const uint8_t *p, int, float *out) { cvt(ld_u128(p), out); }
    struct raw {
        uint4 v;
    };
    static __device__ void fetch(raw &w, const uint8_t *p, int) { w.v = ld_u128(p); }
    static __device__ float calc(const raw &r, int, const act &x)
    {
        float w[8];
        cvt(r.v, w);
        return f_dot8(w, x);
    }
};

#endif
