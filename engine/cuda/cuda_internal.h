/*
 * cuda_internal.h — what the backend's .cu files share: the per-call step record that kernels
 * read from device memory (so that one captured decode graph serves every step), the KV layout,
 * the Gumbel noise on the device, and the attention/cache kernels' launchers (cuda_attn.cu).
 */
#ifndef KF_CUDA_INTERNAL_H
#define KF_CUDA_INTERNAL_H

#include <cstdint>
#include <cstring>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

/* Values that change from call to call, kept on the device. */
struct kstep {
    int pos0;   /* position of the call's first token */
    int n;      /* tokens in the call */
    int scoring;
    int stat_op; /* keyformer-static before the call: 0 nothing, 1 choose the key tokens, 2 slide
                  * (kv_cache_static_op; read by k_static, so a decode graph serves every step) */
};

/*
 * One GPU layer's share of the KV cache: G heads of cap slots each.  A slot's key (and value) is
 * a row of rowb bytes: f16, hd halves (rowb = 2·hd); or q8_0 (--kv-type q8_0): hd int8 then the
 * hd/32 blocks' f16 scales, padded to 8 bytes (kv_cache.h's kv_type_row_bytes), so that a
 * lane's 8 elements are one aligned 8-byte load.
 */
struct kv_layer {
    __half *k, *v;   /* [G][cap] rows of rowb bytes (__half only for f16) */
    int rowb, q8;
    int32_t *pos;    /* [G][cap] */
    float *score;    /* [G][cap] */
    uint8_t *key;    /* [G][cap] keyformer-static's key tokens (0 at and past n_used), or NULL */
    int *n_used;     /* [G] (device) */
    int cap, swa, layer; /* layer: the model's layer index (noise key) */
};

/* Policy constants shared by the kernels (enum kv_policy values). */
struct kv_conf {
    int policy, budget, recent, n_sink, unbounded;
    int stat; /* keyformer-static: policy is KV_P_KEYFORMER (its scores, τ constant) until the
               * key tokens are frozen, then only the window slides (k_static, k_commit) */
    uint64_t seed;
    float tau_init, tau_end;
    int tau_steps;
};

/* Keyformer's temperature of the query at qpos: kv_cache_tau() of engine/kv_cache.c. */
__device__ __forceinline__ float kv_tau(const struct kv_conf &c, int qpos)
{
    if (c.unbounded || c.policy != 4 /* KV_P_KEYFORMER */)
        return c.tau_init;
    int t = qpos - c.budget + 1;
    if (t <= 0)
        return c.tau_init;
    if (t > c.tau_steps)
        t = c.tau_steps;
    return __fadd_rn(c.tau_init, __fdiv_rn(__fmul_rn((float)t, __fsub_rn(c.tau_end, c.tau_init)),
                                           (float)c.tau_steps));
}

#define KV_P_FULL 0
#define KV_P_WINDOW 1
#define KV_P_SINK 2
#define KV_P_H2O 3
#define KV_P_KEYFORMER 4
#define KV_P_KEYFORMER_STATIC 5 /* the host's value; the device runs it as KEYFORMER + stat */

/* ---- the Gumbel noise, bit for bit as engine/kv_noise.c ----------------------------------- */
__host__ __device__ __forceinline__ uint64_t kn_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

__host__ __device__ __forceinline__ uint64_t kn_row_key(int layer, int qhead, int qpos)
{
    return ((uint64_t)(layer & 0xff) << 56) | ((uint64_t)(qhead & 0xff) << 48) |
           ((uint64_t)(qpos & 0xffffff) << 24);
}

__device__ __forceinline__ float kn_log_pos(float x)
{
    uint32_t b = __float_as_uint(x);
    float e = (float)((int)(b >> 23) - 127);
    b = (b & 0x007fffffu) | 0x3f800000u;
    float m = __uint_as_float(b);
    if (m > 1.41421356f) {
        m *= 0.5f;
        e += 1.0f;
    }
    float f = m - 1.0f, z = f * f, p = 7.0376836292e-2f;
    p = fmaf(p, f, -1.1514610310e-1f);
    p = fmaf(p, f, 1.1676998740e-1f);
    p = fmaf(p, f, -1.2420140846e-1f);
    p = fmaf(p, f, 1.4249322787e-1f);
    p = fmaf(p, f, -1.6668057665e-1f);
    p = fmaf(p, f, 2.0000714765e-1f);
    p = fmaf(p, f, -2.4999993993e-1f);
    p = fmaf(p, f, 3.3333331174e-1f);
    float y = fmaf(e, -2.12194440e-4f, __fmul_rn(__fmul_rn(f, z), p));
    y = fmaf(-0.5f, z, y);
    return fmaf(e, 0.693359375f, __fadd_rn(f, y));
}

/* G for a row key (kn_row_key ^ nothing) and a key position; sk = mix64(seed + golden). */
__device__ __forceinline__ float kn_gumbel(uint64_t rk, uint64_t sk, int kpos)
{
    uint64_t h = kn_mix64((rk | (uint64_t)(kpos & 0xffffff)) ^ sk);
    float u = __fmul_rn(__fadd_rn((float)(h >> 41), 0.5f), 1.0f / 8388608.0f);
    return -kn_log_pos(-kn_log_pos(u));
}

/* ---- launchers (cuda_attn.cu) -------------------------------------------------------------- */
/*
 * A second stream for what the decode step's later kernels do not wait for: the slots' scores
 * (k_dec_wscore) fork onto it after a layer's attention and join the main stream again before
 * the next layer's attention (which rewrites the logits they read) or the commit (which reads
 * the scores).  A graph captures the fork and the join as edges.
 */
struct attn_side {
    cudaStream_t s;
    cudaEvent_t fork, join;
    int pending; /* a join is owed */
};

struct attn_args {
    float *qkv;             /* [n][row] rows holding q | k | v (RoPE applied in place, except
                             * by k_dec_short, which rotates its copy in shared memory) */
    int row;                /* floats per qkv row */
    float *out;             /* [n][n_head*hd] */
    int n_head, G, hd;
    float scale;
    const struct kstep *st;
    struct kv_layer kv;
    struct kv_conf conf;
    uint64_t seed_key;      /* mix64(seed + golden) */
    /* scratch */
    float *logits, *noisy;  /* decode: [n_head][cap] */
    float *stats;           /* decode: [n_head][4]; prefill: [n_max][n_head][4] */
    float *partial;         /* decode: [tiles][n_head][hd] (k_dec_values: [splits]...) */
    float *pstats;          /* decode: [n_head][tiles][4] softmax partials */
    int n;                  /* tokens in this call (host copy, picks the path) */
    int span;               /* grids cover this many slots: >= every count of the call */
    int wf_extra;           /* chunked decode kernels: KV heads below this have gridDim.y blocks,
                             * the others one fewer (wf_nby), so that the grid fills the GPU */
    int out_mode;           /* decode: round the output for the next product (ACT_*) */
    void *out_q;            /* ... into these q8_1 blocks */
    int *cnt;               /* decode: [n_head*hd/256] zeroed arrival counters (k_dec_short) */
    const float *alibi;     /* [n_head] ALiBi slopes (mpt) or NULL */
    __half *kh, *vh;        /* q8_0 cache, prefill: the layer's rows dequantized ([G][cap][hd]) */
    struct attn_side *side; /* host: the side stream for the scores, or NULL (all on one) */
};

/* Whether a decode step's attention also yields the slots' scores: H2O's or Keyformer's, for a
 * bounded cache, in a layer without a sliding window. */
static inline int attn_dec_scores(const struct attn_args *a)
{
    return !a->conf.unbounded && a->kv.swa <= 0 &&
           (a->conf.policy == KV_P_KEYFORMER || a->conf.policy == KV_P_H2O);
}

/* QK-norm and RoPE of the call's queries and keys, and the keys/values into free slots. */
struct rope_args;
void qk_store_launch(const struct attn_args *a, const struct rope_args *r, cudaStream_t s);
/* The cache write, attention and the scores of the policy for the call's tokens
 * (decode: attn_decode_launch, cuda_attn_dec.cu). */
void attn_launch(const struct attn_args *a, const struct rope_args *r, cudaStream_t s);
void attn_decode_launch(const struct attn_args *a, const struct rope_args *r, cudaStream_t s);
/* Decode attention where k_dec_short does not serve (cuda_attn_split.cu): longer contexts, and
 * MHA wherever k_dec_mma does; mode: the output's rounding for W_o (ACT_*). */
void attn_split_launch(const struct attn_args *a, const struct rope_args *r, int mode,
                       cudaStream_t s);
/* Whether decode attention on the tensor cores serves this call (head size 64 or 128, at most 8
 * query heads a KV head, compute capability 8.0+; contexts over 256 slots, any under MHA;
 * KF_CUDA_DMMA=0/1 turns it off or on for any context). */
int dec_mma_serves(const struct attn_args *a);
/* That kernel (cuda_attn_dmma.cu), where it serves (sc: the policy's scores, 0 none, 1 h2o,
 * 2 Keyformer, for k_dec_wscore): returns its blocks per KV head, or 0 where it does not serve;
 * *fused says whether the blocks combined themselves (else k_dec_flash_reduce must, with mode's
 * rounding). */
int dec_mma_launch(struct attn_args *a, const struct rope_args *r, int nsm, int mode, int sc,
                   int *fused, cudaStream_t s);
/* Keyformer's noisy logits and their statistics per tile of slots (dm_noisy_tile(); ⌈span /
 * tile⌉ tiles a KV head, the stride of the statistics) for a k_dec_mma call, which wrote the
 * plain logits, on the side stream before k_dec_wscore. */
void dm_noisy_launch(const struct attn_args *a, int tile, cudaStream_t s);
int dm_noisy_tile(void);
/* Prefill attention on the tensor cores (cuda_attn_pf.cu) for head sizes 16..128 on compute
 * capability 8.0+; -1 where it does not apply (older GPUs, other head sizes, KF_CUDA_PF=warp):
 * then k_pf_attn runs. */
int pf_attn_mma_launch(const struct attn_args *a, int keyformer, cudaStream_t s);
/* Eviction down to the budget, every layer and KV head (victim: vstride bytes, lists: 2·vstride
 * ints per (layer, head)). */
void kv_commit_launch(const struct kv_layer *layers_dev, int n_layers, const struct kv_conf *conf,
                      int G, int hd, const struct kstep *st, uint8_t *victim, int *lists,
                      size_t vstride, cudaStream_t s);
/* keyformer-static's step before a call (st->stat_op): choose the key tokens or slide the
 * window, in every global layer (kv_static_freeze / kv_static_slide of engine/kv_evict.c). */
void kv_static_launch(const struct kv_layer *layers_dev, int n_layers, const struct kv_conf *conf,
                      int G, int hd, const struct kstep *st, uint8_t *victim, int *lists,
                      size_t vstride, cudaStream_t s);
/* Remove positions >= n_past from every layer. */
void kv_truncate_launch(const struct kv_layer *layers_dev, int n_layers, int G, int hd,
                        int n_past, uint8_t *victim, int *lists, size_t vstride, cudaStream_t s);
int attn_decode_splits(int cap);
int attn_decode_tiles(int cap);

#define CU_TRY(call)                                                                              \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            snprintf(err, errlen, "CUDA: %s: %s", #call, cudaGetErrorString(e_));                 \
            goto fail;                                                                            \
        }                                                                                         \
    } while (0)

#endif
