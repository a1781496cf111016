/*
 * cuda_backend.h — the C face of the CUDA backend.  Built from the .cu files beside it with nvcc when
 * configure finds the toolkit, otherwise from cuda_stub.c, which reports that kfchat was built
 * without CUDA.  Only C types cross this boundary: the CPU side (engine/model_gpu.c) describes
 * the model with plain pointers into the mapped GGUF, and the backend copies what it needs.
 *
 * What runs on the GPU: the last n_gpu layers of the model (all of them by default) with their
 * part of the KV cache, and, when every layer is there, the final norm and the output head.
 * Weights are uploaded once, quantized as stored; activations and the KV cache stay resident.
 * The KV cache on the GPU follows engine/kv_cache.h exactly (same slots, same eviction rules,
 * same counter-based Gumbel noise) with keys and values stored as f16.
 */
#ifndef KF_CUDA_BACKEND_H
#define KF_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Probe the GPUs: returns the number of usable CUDA devices (0 if none or no driver) and writes
 * a one-line description of device 0 (name, compute capability, memory) or the reason there is
 * none into buf.
 */
int cuda_probe(char *buf, size_t n);
/* Free and total memory of device 0 in bytes (0, 0 without a device). */
void cuda_mem_info(size_t *free_b, size_t *total_b);

struct cuda_weight {
    uint32_t type;    /* enum qtype */
    const void *data; /* host: n rows of k elements as stored */
    int64_t k, n;
};

struct cuda_layer_desc {
    const float *attn_norm, *ffn_norm;            /* [n_embd] (ffn_norm unused when parallel) */
    const float *attn_norm_b, *ffn_norm_b;        /* LayerNorm biases or NULL */
    const float *post_attn_norm, *post_ffn_norm;  /* gemma3, or NULL */
    const float *q_norm, *k_norm;                 /* [head_dim] gemma3, or NULL */
    const float *bq, *bk, *bv, *bo;               /* biases or NULL */
    const float *b_up, *b_down;                   /* plain-FFN biases or NULL */
    struct cuda_weight wq, wk, wv, wo, w_gate, w_up, w_down; /* w_gate.data NULL: plain FFN */
    int swa;                                      /* sliding window, 0 = global */
    int cap;                                      /* KV slots per head (kv_cache's) */
    float rope_base, rope_scale;
};

struct cuda_model_desc {
    int n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_layer;
    int n_rot, rope_neox;
    float eps, attn_scale, final_softcap;
    int act;                   /* FFN activation: 0 SiLU (llama, qwen2), 1 GELU-tanh (gemma3,
                                * gpt2, gptj), 2 GELU-erf */
    int norm_layer;            /* LayerNorm (gpt2, gptj) instead of RMSNorm */
    int parallel;              /* gptj: x += attn(LN(x)) + ffn(LN(x)), one norm */
    int gated;                 /* FFN act(W_gate·x)·(W_up·x); 0: act(W_up·x + b) (gpt2, gptj) */
    const float *alibi;        /* mpt: [n_head] ALiBi slopes (the CPU cache's), or NULL */
    float clamp_kqv;           /* mpt: q, k, v clamped to ±c after their biases, 0 = none */
    const float *rope_freqs;   /* [n_rot/2] or NULL */
    int layer0;                /* GPU layers are layer0 .. n_layer-1 */
    const struct cuda_layer_desc *layers; /* [n_layer - layer0] */
    int with_output;           /* final norm + output head on the GPU */
    const float *output_norm, *output_norm_b, *output_bias;
    struct cuda_weight output;
    int n_ctx, n_batch;
    /* KV cache (engine/kv_cache.h) */
    int policy;                /* enum kv_policy */
    int budget;                /* entries per (layer, KV head); 0: unbounded */
    int recent;                /* w */
    int n_sink;
    uint64_t seed;
    float tau_init, tau_end;   /* Keyformer's temperature schedule (kv_cache_tau) */
    int tau_steps;
    int kv_q8;                 /* keys and values stored as q8_0 (--kv-type), else f16 */
};

struct cuda_model;

/*
 * Bytes of device memory the GPU part of this model needs (weights, KV cache, scratch), and how
 * many of its layers fit into `avail` bytes (from the end).
 */
size_t cuda_model_bytes_needed(const struct cuda_model_desc *d);
/* Upload.  On failure *out is NULL and err holds one line. */
int cuda_model_new(struct cuda_model **out, const struct cuda_model_desc *d, char *err,
                   size_t errlen);
void cuda_model_free(struct cuda_model *cm);
size_t cuda_model_device_bytes(const struct cuda_model *cm);

/*
 * Run the GPU layers over n tokens at positions pos0 .. pos0+n-1.  x: n × n_embd floats (host)
 * entering layer0.  With the output head on the GPU, logits receives the last token's logits
 * (n_vocab floats) or all n rows (all_logits); otherwise x_out receives the residual stream
 * after the last layer (n × n_embd).  scoring: whether the policy accumulates scores in this
 * call (kv_cache_scoring of a global layer); stat_op: keyformer-static's step before the call
 * (kv_cache_static_op).  Returns 0 or -1 with err.
 */
int cuda_model_forward(struct cuda_model *cm, const float *x, int n, int pos0, int scoring,
                       int stat_op, float *logits, int all_logits, float *x_out, char *err,
                       size_t errlen);

/* KV cache access for traces and snapshots (layer is a model layer >= layer0); key:
 * keyformer-static's key-token flags (zeros for other policies), any pointer may be NULL but
 * set's pos and score. */
int cuda_model_kv_get(struct cuda_model *cm, int layer, int g, int *n_used, int32_t *pos,
                      float *score, uint8_t *key, float *k, float *v);
int cuda_model_kv_set(struct cuda_model *cm, int layer, int g, int n_used, const int32_t *pos,
                      const float *score, const uint8_t *key, const float *k, const float *v);
/* Entries held per (GPU layer, KV head), layer-major: (n_layer − layer0) × n_head_kv ints. */
int cuda_model_kv_counts(struct cuda_model *cm, int *counts);
/* Forget positions >= n_past (all GPU layers); n_past 0 empties the cache. */
void cuda_model_kv_truncate(struct cuda_model *cm, int n_past);

#ifdef __cplusplus
}
#endif

#endif
