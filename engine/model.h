/*
 * model.h — a transformer loaded from GGUF and its forward pass on the CPU.
 *
 * A model owns its GGUF mapping (weights are used in place, quantized as stored), its KV cache
 * and all activation buffers, sized at load time for n_ctx positions and batches of up to
 * n_batch tokens: no allocation happens per token.  Architectures: llama (Llama 2/3, TinyLlama,
 * SmolLM, Mistral), qwen2, gemma3, and the Keyformer paper's three position schemes: gptj
 * (partial rotary), gpt2 (learned absolute positions; Cerebras-GPT) and mpt (ALiBi).
 *
 * Not thread-safe: one caller at a time (the engine worker).  The model uses its own thread
 * pool internally.
 */
#ifndef KF_MODEL_H
#define KF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kv_cache.h"

struct gguf;
struct model;

enum model_arch {
    ARCH_LLAMA,
    ARCH_QWEN2,
    ARCH_GEMMA3,
    ARCH_GPTJ,   /* parallel attention + MLP, rotary on the first n_rot dims, LayerNorm */
    ARCH_GPT2,   /* learned positions, fused QKV, LayerNorm, GELU MLP (also Cerebras-GPT) */
    ARCH_MPT,    /* ALiBi, fused QKV, clamp_kqv, LayerNorm without bias, GELU MLP */
    ARCH_COUNT
};

struct model_params {
    int n_ctx;     /* positions a sequence may reach; 0 = min(training context, 4096), or the
                    * training context with a budget in tokens or memory (model_load.c) */
    int n_batch;   /* max tokens per forward call; 0 = 512 */
    int n_threads; /* 0 = number of online CPUs */
    struct kv_params kv; /* cache policy and budget (kv_params_default(): budget 0 = full) */
    const char *kv_budget; /* if set, parsed into kv.budget once n_ctx is known ("50%", ...) */
    int kv_on_gpu; /* every layer is meant for the GPU: a memory budget counts its rows' bytes */
};

/* Hyperparameters, read from the file and validated at load. */
struct model_hparams {
    enum model_arch arch;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv;
    int head_dim;             /* of Q and K */
    int head_dim_v;           /* of V */
    int n_ff;
    int n_ctx_train;
    int n_rot;                /* rotated dims per head */
    int rope_neox;            /* 1: pairs (i, i+n_rot/2); 0: adjacent pairs */
    float rope_base, rope_base_swa, rope_freq_scale;
    float eps;
    float attn_scale;         /* applied to q·k */
    float embd_scale;         /* token embedding multiplier (gemma: sqrt(n_embd)) */
    float final_softcap;      /* 0 = none */
    int n_swa;                /* sliding window (gemma3), 0 = none */
    int swa_pattern;          /* every swa_pattern-th layer is global */
    /* the GPT-family archs (engine-reference §3.4-3.6) */
    int norm_layer;           /* 1: LayerNorm (gptj, gpt2, mpt); 0: RMSNorm */
    int no_rope;              /* 1: no rotary positions (gpt2, mpt) */
    int parallel;             /* 1: x += attn(LN(x)) + ffn(LN(x)) with one norm (gptj) */
    int ffn_plain;            /* 1: down(gelu(up·x + b) ) + b, not gated */
    int gelu_erf;             /* 1: exact erf GELU (HF MPT); 0: tanh form */
    int n_pos;                /* learned position embeddings (gpt2; 0 = none) */
    float alibi_max_bias;     /* mpt: ALiBi bias maximum, 0 = no ALiBi */
    float clamp_kqv;          /* mpt: clamp q, k, v to [-c, c]; 0 = no clamp */
};

/*
 * Load the model in g (ownership of g passes to the model on success AND on failure).
 * Errors: STATUS_UNSUPPORTED (architecture or tensor type), STATUS_FORMAT (missing tensor,
 * wrong shape, absurd hyperparameters), STATUS_NOMEM (with the byte count in err).
 */
int model_load(struct model **out, struct gguf *g, const struct model_params *p, char *err,
               size_t errlen);
void model_free(struct model *m);

const struct model_hparams *model_hparams(const struct model *m);
/*
 * The context when none is asked for: min(training context, 4096) for a cache that grows with
 * it; with a budget fixed in tokens or memory (fixed_budget), which holds the cache at that size
 * whatever the context, the training context, so that a conversation may run to the positions
 * the model was trained for (a share, "50%", stays a share of the usual default, not of a 128k
 * training context).  Learned positions cap both.
 */
int model_default_ctx(const struct model_hparams *hp, int fixed_budget);
const char *model_arch_name(enum model_arch a);
const struct gguf *model_gguf(const struct model *m);
int model_n_ctx(const struct model *m);
int model_n_batch(const struct model *m);
int model_n_threads(const struct model *m);
uint64_t model_n_params(const struct model *m);
size_t model_weight_bytes(const struct model *m);
size_t model_kv_bytes(const struct model *m);       /* bytes of KV cache allocated */
size_t model_kv_bytes_used(const struct model *m);  /* bytes holding live entries */
size_t model_kv_bytes_full(const struct model *m);  /* what an unbounded cache would hold */
size_t model_kv_token_bytes(const struct model *m); /* one token's K+V, every layer and head */
const struct kv_cache *model_kv(const struct model *m);
struct kv_cache *model_kv_mut(struct model *m);
/* Replace the last logits (restoring a snapshot). */
void model_set_logits(struct model *m, const float *logits);

/* Logits of the last token evaluated by model_forward (n_vocab floats), borrowed. */
const float *model_logits(const struct model *m);
/* Positions currently in the KV cache (the next token gets this position). */
int model_n_past(const struct model *m);
/* Forget positions >= n_past (n_past <= current). */
void model_truncate(struct model *m, int n_past);

/*
 * Run tokens[0..n) at positions n_past.. and append them to the KV cache, in chunks of n_batch.
 * logits: if non-NULL, receives the logits of the last token (n_vocab floats); with all_logits,
 * logits of every token (n × n_vocab).  Returns STATUS_CONTEXT_FULL (nothing changed) if the
 * tokens do not fit, STATUS_STOPPED if *cancel became nonzero between chunks (the chunks
 * already done stay in the cache).  progress (may be NULL) is called after each chunk.
 */
int model_forward(struct model *m, const int32_t *tokens, int n, float *logits, int all_logits,
                  const volatile int *cancel, void (*progress)(void *ud, int done, int total),
                  void *ud);

#endif
