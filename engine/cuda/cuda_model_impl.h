/*
 * cuda_model_impl.h — the GPU model's state, shared by cuda_model.cu (upload, buffers, cache
 * access) and cuda_forward.cu (the forward pass).  CUDA sources only.
 */
#ifndef KF_CUDA_MODEL_IMPL_H
#define KF_CUDA_MODEL_IMPL_H

#include "cuda_backend.h"
#include "cuda_blas.h"
#include "cuda_internal.h"
#include "cuda_ops.h"

#define GEMM_MIN 8 /* rows from which a product may go through cuBLAS (mmv_path) */
#define MMF_PART_FLOATS ((size_t)4 << 20) /* cuda_mmf's split-k scratch: 16 MiB */
#define GRAPHS 20

struct dw {
    uint32_t type;
    void *d;
    int64_t k, n;
    size_t row_bytes;
    int act; /* ACT_*: how the CPU rounds this type's activations */
};

struct glayer {
    float *attn_norm, *ffn_norm, *post_attn_norm, *post_ffn_norm, *q_norm, *k_norm;
    float *attn_norm_b, *ffn_norm_b, *b_up, *b_down; /* LayerNorm and plain-FFN biases */
    float *b_qkv, *bo; /* concatenated q|k|v biases (zeros where absent), or NULL */
    struct dw wqkv[3]; /* nq products: runs of one type among q, k, v, concatenated */
    int nq;
    struct dw wo, w_gu, w_down; /* w_gu: gate | up rows, or up alone (plain FFN) */
    struct rope_args rope;
};

struct cuda_model {
    struct cuda_model_desc d; /* scalars; pointers in it are the caller's */
    int nl;                   /* GPU layers */
    struct glayer *L;
    struct kv_layer *kvl, *kvl_dev;
    struct kv_conf conf;
    uint64_t seed_key;
    cudaStream_t s;
    struct attn_side side; /* the scores' stream (side.s NULL: none, KF_CUDA_SIDE=0) */
    struct cuda_blas blas; /* cuBLAS, opened with the model */
    cublasHandle_t cb;
    struct kstep *st, *st_host;
    int row, nq_all, max_k, maxcap;
    float *x, *xn, *qkv, *attn, *gu, *ffa, *tmp, *logits;
    void *xq;
    __half *xh, *wh;
    __half *kh, *vh; /* q8_0 cache: one layer's rows dequantized for prefill ([G][maxcap][hd]) */
    size_t wh_elems;
    float *a_logits, *a_noisy, *a_stats, *a_partial, *a_pstats;
    int *a_cnt; /* k_dec_short's arrival counters, zeroed */
    uint8_t *victim;
    int *lists;
    size_t vstride;
    int *n_used_all; /* [layer][G]: every count in one array, read back in one copy */
    float *out_norm, *out_norm_b, *out_bias;
    float *alibi; /* [n_head] ALiBi slopes (mpt) or NULL */
    struct dw out;
    /* activations already rounded for the next product by the kernel that made them */
    const float *prep_x;
    int prep_mode, prep_n, prep_q, prep_h;
    float *h_io; /* pinned: x in, logits / x out */
    size_t h_io_floats;
    cudaGraphExec_t graph[GRAPHS]; /* decode step, by span bucket (256 << i slots) */
    int graph_state;               /* 0 in use, -1 disabled */
    int mmv_rows;                  /* products of up to this many rows stay on the mmv kernels */
    int mmv_rows_k;                /* ... for the k-quants */
    int mmq;                       /* longer ones of the integer types take cuda_mmq (else cuBLAS) */
    int mmv_pair;                  /* decode's q|k and v of different k-quants in one launch */
    int mmf_max;                   /* ... or cuda_mmf up to this many rows (0: never) */
    float *part;                   /* cuda_mmf's split-k partials (MMF_PART_FLOATS) */
    int prof_step;                 /* KF_CUDA_PROFILE_STEP: decode steps left before the one profiled */
    size_t bytes;
};

#endif
