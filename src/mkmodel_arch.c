/*
 * mkmodel_arch.c — the rows of kfchat-mkmodel's architecture table (see mkmodel_arch.h).  Names,
 * shapes and keys follow llama.cpp's converter (convert_hf_to_gguf.py) and, for GPT-J, which
 * llama.cpp cannot convert, the tensor list its gguf-py writer defines (engine-reference §3).
 */
#include "config.h"

#include "mkmodel_arch.h"

#define SPECS(a) a, (int)(sizeof(a) / sizeof(a[0]))

static const struct tensor_spec llama_specs[] = {
    { "token_embd.weight", AT_START, DIM_EMBD, DIM_VOCAB, INIT_EMBD, ROLE_TOKEN_EMBD, 0 },
    { "attn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "attn_q.weight", AT_LAYER, DIM_EMBD, DIM_Q, INIT_IN, ROLE_PLAIN, 0 },
    { "attn_k.weight", AT_LAYER, DIM_EMBD, DIM_KV, INIT_IN, ROLE_PLAIN, 0 },
    { "attn_v.weight", AT_LAYER, DIM_EMBD, DIM_KV, INIT_IN, ROLE_ATTN_V, 0 },
    { "attn_output.weight", AT_LAYER, DIM_Q, DIM_EMBD, INIT_RESID, ROLE_PLAIN, 0 },
    { "ffn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "ffn_gate.weight", AT_LAYER, DIM_EMBD, DIM_FF, INIT_IN, ROLE_PLAIN, 0 },
    { "ffn_up.weight", AT_LAYER, DIM_EMBD, DIM_FF, INIT_IN, ROLE_PLAIN, 0 },
    { "ffn_down.weight", AT_LAYER, DIM_FF, DIM_EMBD, INIT_RESID, ROLE_FFN_DOWN, 0 },
    { "output_norm.weight", AT_END, DIM_EMBD, DIM_NONE, INIT_OUT_NORM, ROLE_PLAIN, 0 },
    { "output.weight", AT_END, DIM_EMBD, DIM_VOCAB, INIT_OUTPUT, ROLE_OUTPUT, SPEC_UNTIED },
};

/* qwen2 = llama + biases on Q, K and V. */
static const struct tensor_spec qwen2_specs[] = {
    { "token_embd.weight", AT_START, DIM_EMBD, DIM_VOCAB, INIT_EMBD, ROLE_TOKEN_EMBD, 0 },
    { "attn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "attn_q.weight", AT_LAYER, DIM_EMBD, DIM_Q, INIT_IN, ROLE_PLAIN, 0 },
    { "attn_q.bias", AT_LAYER, DIM_Q, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "attn_k.weight", AT_LAYER, DIM_EMBD, DIM_KV, INIT_IN, ROLE_PLAIN, 0 },
    { "attn_k.bias", AT_LAYER, DIM_KV, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "attn_v.weight", AT_LAYER, DIM_EMBD, DIM_KV, INIT_IN, ROLE_ATTN_V, 0 },
    { "attn_v.bias", AT_LAYER, DIM_KV, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "attn_output.weight", AT_LAYER, DIM_Q, DIM_EMBD, INIT_RESID, ROLE_PLAIN, 0 },
    { "ffn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "ffn_gate.weight", AT_LAYER, DIM_EMBD, DIM_FF, INIT_IN, ROLE_PLAIN, 0 },
    { "ffn_up.weight", AT_LAYER, DIM_EMBD, DIM_FF, INIT_IN, ROLE_PLAIN, 0 },
    { "ffn_down.weight", AT_LAYER, DIM_FF, DIM_EMBD, INIT_RESID, ROLE_FFN_DOWN, 0 },
    { "output_norm.weight", AT_END, DIM_EMBD, DIM_NONE, INIT_OUT_NORM, ROLE_PLAIN, 0 },
    { "output.weight", AT_END, DIM_EMBD, DIM_VOCAB, INIT_OUTPUT, ROLE_OUTPUT, SPEC_UNTIED },
};

/* gemma3: per-head Q/K norms and post-norms; norm weights already include Gemma's +1. */
static const struct tensor_spec gemma3_specs[] = {
    { "token_embd.weight", AT_START, DIM_EMBD, DIM_VOCAB, INIT_EMBD, ROLE_TOKEN_EMBD, 0 },
    { "attn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "attn_q.weight", AT_LAYER, DIM_EMBD, DIM_Q, INIT_IN, ROLE_PLAIN, 0 },
    { "attn_k.weight", AT_LAYER, DIM_EMBD, DIM_KV, INIT_IN, ROLE_PLAIN, 0 },
    { "attn_v.weight", AT_LAYER, DIM_EMBD, DIM_KV, INIT_IN, ROLE_ATTN_V, 0 },
    { "attn_q_norm.weight", AT_LAYER, DIM_HEAD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "attn_k_norm.weight", AT_LAYER, DIM_HEAD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "attn_output.weight", AT_LAYER, DIM_Q, DIM_EMBD, INIT_RESID, ROLE_PLAIN, 0 },
    { "post_attention_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "ffn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "ffn_gate.weight", AT_LAYER, DIM_EMBD, DIM_FF, INIT_IN, ROLE_PLAIN, 0 },
    { "ffn_up.weight", AT_LAYER, DIM_EMBD, DIM_FF, INIT_IN, ROLE_PLAIN, 0 },
    { "ffn_down.weight", AT_LAYER, DIM_FF, DIM_EMBD, INIT_RESID, ROLE_FFN_DOWN, 0 },
    { "post_ffw_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "output_norm.weight", AT_END, DIM_EMBD, DIM_NONE, INIT_OUT_NORM, ROLE_PLAIN, 0 },
};

/* gptj: separate Q/K/V without biases, one LayerNorm per block, biased MLP, untied biased output */
static const struct tensor_spec gptj_specs[] = {
    { "token_embd.weight", AT_START, DIM_EMBD, DIM_VOCAB, INIT_EMBD, ROLE_TOKEN_EMBD, 0 },
    { "attn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "attn_norm.bias", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "attn_q.weight", AT_LAYER, DIM_EMBD, DIM_Q, INIT_IN, ROLE_PLAIN, 0 },
    { "attn_k.weight", AT_LAYER, DIM_EMBD, DIM_KV, INIT_IN, ROLE_PLAIN, 0 },
    { "attn_v.weight", AT_LAYER, DIM_EMBD, DIM_KV, INIT_IN, ROLE_ATTN_V, 0 },
    { "attn_output.weight", AT_LAYER, DIM_Q, DIM_EMBD, INIT_RESID, ROLE_PLAIN, 0 },
    { "ffn_up.weight", AT_LAYER, DIM_EMBD, DIM_FF, INIT_IN, ROLE_PLAIN, 0 },
    { "ffn_up.bias", AT_LAYER, DIM_FF, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "ffn_down.weight", AT_LAYER, DIM_FF, DIM_EMBD, INIT_RESID, ROLE_FFN_DOWN, 0 },
    { "ffn_down.bias", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "output_norm.weight", AT_END, DIM_EMBD, DIM_NONE, INIT_OUT_NORM, ROLE_PLAIN, 0 },
    { "output_norm.bias", AT_END, DIM_EMBD, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "output.weight", AT_END, DIM_EMBD, DIM_VOCAB, INIT_OUTPUT, ROLE_OUTPUT, SPEC_UNTIED },
    { "output.bias", AT_END, DIM_VOCAB, DIM_NONE, INIT_BIAS, ROLE_PLAIN, SPEC_UNTIED },
};

/* gpt2 (and Cerebras-GPT): learned positions (kept f32, as llama-quant does), fused QKV, biases
 * everywhere.  llama.cpp's converter writes the tied output as a copy of token_embd; we leave it
 * out (tied) unless --untied asks for an independent one. */
static const struct tensor_spec gpt2_specs[] = {
    { "token_embd.weight", AT_START, DIM_EMBD, DIM_VOCAB, INIT_EMBD, ROLE_TOKEN_EMBD, 0 },
    { "position_embd.weight", AT_START, DIM_EMBD, DIM_CTX, INIT_EMBD, ROLE_KEEP_F32, 0 },
    { "attn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "attn_norm.bias", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "attn_qkv.weight", AT_LAYER, DIM_EMBD, DIM_QKV, INIT_IN, ROLE_ATTN_QKV, 0 },
    { "attn_qkv.bias", AT_LAYER, DIM_QKV, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "attn_output.weight", AT_LAYER, DIM_Q, DIM_EMBD, INIT_RESID, ROLE_PLAIN, 0 },
    { "attn_output.bias", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "ffn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "ffn_norm.bias", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "ffn_up.weight", AT_LAYER, DIM_EMBD, DIM_FF, INIT_IN, ROLE_PLAIN, 0 },
    { "ffn_up.bias", AT_LAYER, DIM_FF, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "ffn_down.weight", AT_LAYER, DIM_FF, DIM_EMBD, INIT_RESID, ROLE_FFN_DOWN, 0 },
    { "ffn_down.bias", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "output_norm.weight", AT_END, DIM_EMBD, DIM_NONE, INIT_OUT_NORM, ROLE_PLAIN, 0 },
    { "output_norm.bias", AT_END, DIM_EMBD, DIM_NONE, INIT_BIAS, ROLE_PLAIN, 0 },
    { "output.weight", AT_END, DIM_EMBD, DIM_VOCAB, INIT_OUTPUT, ROLE_OUTPUT, SPEC_UNTIED },
};

/* mpt: ALiBi (no position tensor), fused QKV, no biases (HF MPT's no_bias), tied output */
static const struct tensor_spec mpt_specs[] = {
    { "token_embd.weight", AT_START, DIM_EMBD, DIM_VOCAB, INIT_EMBD, ROLE_TOKEN_EMBD, 0 },
    { "attn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "attn_qkv.weight", AT_LAYER, DIM_EMBD, DIM_QKV, INIT_IN, ROLE_ATTN_QKV, 0 },
    { "attn_output.weight", AT_LAYER, DIM_Q, DIM_EMBD, INIT_RESID, ROLE_PLAIN, 0 },
    { "ffn_norm.weight", AT_LAYER, DIM_EMBD, DIM_NONE, INIT_NORM, ROLE_PLAIN, 0 },
    { "ffn_up.weight", AT_LAYER, DIM_EMBD, DIM_FF, INIT_IN, ROLE_PLAIN, 0 },
    { "ffn_down.weight", AT_LAYER, DIM_FF, DIM_EMBD, INIT_RESID, ROLE_FFN_DOWN, 0 },
    { "output_norm.weight", AT_END, DIM_EMBD, DIM_NONE, INIT_OUT_NORM, ROLE_PLAIN, 0 },
    { "output.weight", AT_END, DIM_EMBD, DIM_VOCAB, INIT_OUTPUT, ROLE_OUTPUT, SPEC_UNTIED },
};

const struct arch_desc mkmodel_archs[] = {
    { "llama", KEY_FF | KEY_HEAD_KV | KEY_ROPE | KEY_ROPE_DIM | KEY_RMS_EPS | KEY_VOCAB_SIZE, 0,
      TIE_NO, 10000.0f, 1e-5f, SPECS(llama_specs) },
    { "qwen2", KEY_FF | KEY_HEAD_KV | KEY_ROPE | KEY_RMS_EPS, ARCH_Q_IS_EMBD,
      TIE_YES, 1000000.0f, 1e-6f, SPECS(qwen2_specs) },
    { "gemma3", KEY_FF | KEY_HEAD_KV | KEY_ROPE | KEY_HEAD_DIM | KEY_RMS_EPS | KEY_SWA,
      ARCH_EMBD_SCALED,
      TIE_ALWAYS, 1000000.0f, 1e-6f, SPECS(gemma3_specs) },
    /* GPT-J's rotary base is fixed at 10000 (no key); feed_forward_length is written for the
     * loader's benefit (it defaults to 4·embd without it) */
    { "gptj", KEY_FF | KEY_ROPE_DIM, 0, TIE_NO, 10000.0f, 1e-5f, SPECS(gptj_specs) },
    { "gpt2", KEY_FF, 0, TIE_YES, 10000.0f, 1e-5f, SPECS(gpt2_specs) },
    { "mpt", KEY_FF | KEY_ALIBI, 0, TIE_YES, 10000.0f, 1e-5f, SPECS(mpt_specs) },
};

const size_t mkmodel_n_archs = sizeof(mkmodel_archs) / sizeof(mkmodel_archs[0]);
