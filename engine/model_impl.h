/*
 * model_impl.h — the model's private structures, shared by model_load.c (which fills them from
 * GGUF) and model.c (the forward pass).  Nothing outside engine/model*.c includes this.
 *
 * Shapes in comments are [rows × cols] in the math sense: a weight of n rows × k columns maps a
 * k-vector to an n-vector (GGUF ne = [k, n]).
 */
#ifndef KF_MODEL_IMPL_H
#define KF_MODEL_IMPL_H

#include "kv_cache.h"
#include "matmul.h"
#include "model.h"

struct threadpool;
struct cuda_model;

struct layer_weights {
    float *attn_norm;                  /* [n_embd] */
    float *attn_norm_b;                /* [n_embd] or NULL (LayerNorm archs) */
    /* a fused attn_qkv (gpt2, mpt) is bound as three row ranges of the one tensor */
    struct mm_weight wq;               /* [n_head*hd × n_embd] */
    struct mm_weight wk;               /* [n_head_kv*hd × n_embd] */
    struct mm_weight wv;               /* [n_head_kv*hdv × n_embd] */
    struct mm_weight wo;               /* [n_embd × n_head*hdv] */
    float *bq, *bk, *bv, *bo;          /* biases or NULL */
    float *q_norm, *k_norm;            /* [hd] per-head RMSNorm (gemma3) or NULL */
    float *post_attn_norm;             /* [n_embd] (gemma3) or NULL */
    float *ffn_norm;                   /* [n_embd] (unused by parallel gptj) */
    float *ffn_norm_b;                 /* [n_embd] or NULL (LayerNorm archs) */
    struct mm_weight w_gate;           /* [n_ff × n_embd]; absent (data NULL) for plain FFNs */
    struct mm_weight w_up;             /* [n_ff × n_embd] */
    struct mm_weight w_down;           /* [n_embd × n_ff] */
    float *b_up, *b_down;              /* plain-FFN biases or NULL */
    float *post_ffn_norm;              /* [n_embd] (gemma3) or NULL */
    int is_swa;                        /* sliding-window layer */
    float rope_base, rope_scale;       /* per layer (gemma3 local vs global) */
};

struct model {
    struct gguf *g;
    struct model_hparams hp;
    int n_ctx, n_batch, n_threads;
    struct threadpool *pool;
    struct mm_ctx *mm;

    struct mm_weight tok_embd;         /* [n_vocab × n_embd] */
    struct mm_weight output;           /* [n_vocab × n_embd] (tok_embd when tied) */
    float *output_norm;                /* [n_embd] */
    float *output_bias;                /* [n_vocab] or NULL */
    float *rope_freqs;                 /* [n_rot/2] or NULL: θ_i divisors (Llama 3.1) */
    float *output_norm_b;              /* [n_embd] or NULL (LayerNorm archs) */
    struct mm_weight pos_embd;         /* [n_pos × n_embd] learned positions (gpt2), or data NULL */
    struct layer_weights *layers;      /* [n_layer] */
    float *f32_pool;                   /* owns every float* above (dequantized 1-D tensors) */

    struct kv_cache *kv;               /* keys/values, positions, scores; eviction policy */
    int *swa;                          /* [n_layer] sliding window per layer (0 = global) */
    float *acc;                        /* [n_head][kv cap] per-query-head score accumulators */

    /* activations for a batch of up to n_batch tokens */
    float *x;                          /* [n_batch × n_embd] residual stream */
    float *xn;                         /* [n_batch × n_embd] normed input */
    float *q;                          /* [n_batch × n_head*hd] */
    float *k;                          /* [n_batch × n_head_kv*hd] */
    float *v;                          /* [n_batch × n_head_kv*hdv] */
    float *attn;                       /* [n_batch × n_head*hdv] */
    float *tmp;                        /* [n_batch × n_embd] */
    float *ff_a;                       /* [n_batch × n_ff] */
    float *ff_b;                       /* [n_batch × n_ff] */
    float *scores;                     /* [n_threads × 2·kv cap] attention scratch */
    float *logits;                     /* [n_vocab] last token's logits */
    int *pos;                          /* [n_batch] */
    size_t weight_bytes;
    uint64_t n_params;

    /* the GPU part (model_gpu.c): layers gpu_layer0 .. n_layer-1 run there when gpu is set */
    struct cuda_model *gpu;
    int gpu_layer0;
    char gpu_note[400];        /* one line: where the layers run, or why not on the GPU */
};

/*
 * Shared by the two forward-pass files: store the chunk's k/v (m->k, m->v) in the cache, run
 * attention for every query head into m->attn, and let the policy score and evict (model.c).
 */
void model_attend(struct model *m, int il, int n);
/* The layer of the GPT-family archs: gptj, gpt2, mpt (model_gpt.c). */
int model_gpt_layer_forward(struct model *m, int il, int n);
/* x += pos_embd[pos] for the n tokens of the call (gpt2; model_gpt.c). */
int model_add_positions(struct model *m, int n);
/* Rows r of x: LayerNorm (gptj, gpt2, mpt) or RMSNorm, with optional bias (model_gpt.c). */
void model_norm_rows(const struct model *m, const float *x, const float *w, const float *b,
                     int rows, float *out);

#endif
