/*
 * mkmodel_arch.h — kfchat-mkmodel's architecture table: per architecture, which hyperparameter
 * keys its llama.cpp converter writes and which tensors it has (name, shape, how the random
 * values are drawn, what llama-quant's Q4_K_M rules key on).  Adding an architecture to
 * kfchat-mkmodel means adding a row here (mkmodel_arch.c), not code.
 */
#ifndef KF_MKMODEL_ARCH_H
#define KF_MKMODEL_ARCH_H

#include <stddef.h>

/* Symbolic tensor dimensions, resolved against the hyperparameters. */
enum dim {
    DIM_NONE,  /* 1-D tensor: no second dimension */
    DIM_EMBD,  /* n_embd */
    DIM_VOCAB, /* n_vocab (token count of the vocab file) */
    DIM_FF,    /* n_ff */
    DIM_Q,     /* n_head * head_dim */
    DIM_KV,    /* n_head_kv * head_dim */
    DIM_HEAD,  /* head_dim (per-head norms) */
    DIM_QKV,   /* n_head * head_dim + 2 * n_head_kv * head_dim (fused attn_qkv) */
    DIM_CTX,   /* n_ctx (learned position embeddings) */
};

/* How a tensor's values are drawn (see init_params). */
enum init {
    INIT_EMBD,     /* token / position embeddings */
    INIT_OUTPUT,   /* untied output projection */
    INIT_IN,       /* matrices reading a normalized vector: N(0, 1/sqrt(fan_in)) */
    INIT_RESID,    /* matrices writing into the residual stream: half that */
    INIT_NORM,     /* norm weights: 1 + N(0, 0.1) */
    INIT_OUT_NORM, /* final norm: its gain sets the logit scale */
    INIT_BIAS,     /* biases: N(0, 0.02) */
};

/* What llama-quant's Q4_K_M rules key on. */
enum role {
    ROLE_PLAIN,
    ROLE_TOKEN_EMBD, /* base type, or like output when the output is tied to it */
    ROLE_OUTPUT,     /* Q6_K */
    ROLE_ATTN_V,     /* Q6_K on use_more_bits layers */
    ROLE_FFN_DOWN,   /* Q6_K on use_more_bits layers */
    ROLE_ATTN_QKV,   /* Q5_K */
    ROLE_KEEP_F32,   /* never quantized (position_embd) */
};

enum where { AT_START, AT_LAYER, AT_END };

#define SPEC_UNTIED 1u /* only present when the output is not tied to token_embd */

struct tensor_spec {
    const char *name; /* full name, or the part after "blk.N." for AT_LAYER */
    enum where where;
    enum dim ne0, ne1;
    enum init init;
    enum role role;
    unsigned flags;
};

/* Optional keys an architecture's converter writes (besides the common ones). */
#define KEY_FF 0x01u           /* A.feed_forward_length */
#define KEY_HEAD_KV 0x02u      /* A.attention.head_count_kv */
#define KEY_ROPE 0x04u         /* A.rope.freq_base */
#define KEY_ROPE_DIM 0x08u     /* A.rope.dimension_count (--rope-dim, default head_dim) */
#define KEY_HEAD_DIM 0x10u     /* A.attention.key_length/value_length, always */
#define KEY_RMS_EPS 0x20u      /* A.attention.layer_norm_rms_epsilon (else layer_norm_epsilon) */
#define KEY_VOCAB_SIZE 0x40u   /* A.vocab_size */
#define KEY_SWA 0x80u          /* A.attention.sliding_window (+ _pattern if asked) */
#define KEY_ALIBI 0x100u       /* A.attention.max_alibi_bias, + clamp_kqv when asked (mpt) */

#define ARCH_Q_IS_EMBD 0x1u    /* the loader sizes attn_q as [n_embd, n_embd] */
#define ARCH_EMBD_SCALED 0x2u  /* the forward pass multiplies embeddings by sqrt(n_embd) */

enum tie { TIE_NO, TIE_YES, TIE_ALWAYS };

struct arch_desc {
    const char *name;
    unsigned keys;
    unsigned flags;
    enum tie tie;      /* default for --tied/--untied; TIE_ALWAYS: no output tensor at all */
    float rope_base;   /* converter defaults */
    float eps;
    const struct tensor_spec *specs;
    int n_specs;
};

extern const struct arch_desc mkmodel_archs[];
extern const size_t mkmodel_n_archs;

#endif
