/*
 * model_load.c — turns a validated GGUF into a runnable model: reads and sanity-checks the
 * hyperparameters of each architecture, binds every weight tensor (checking name, shape and
 * type), converts the small 1-D tensors to f32, and allocates the KV cache and activation
 * buffers once.  Every failure is one line naming the file and the key or tensor at fault.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "model_gpu.h"
#include "model_impl.h"
#include "quant.h"
#include "status.h"
#include "threadpool.h"

static const char *const arch_names[ARCH_COUNT] = {
    [ARCH_LLAMA] = "llama",
    [ARCH_QWEN2] = "qwen2",
    [ARCH_GEMMA3] = "gemma3",
    [ARCH_GPTJ] = "gptj",
    [ARCH_GPT2] = "gpt2",
    [ARCH_MPT] = "mpt",
};

static int is_gpt_family(enum model_arch a)
{
    return a == ARCH_GPTJ || a == ARCH_GPT2 || a == ARCH_MPT;
}

const char *model_arch_name(enum model_arch a)
{
    return (unsigned)a < ARCH_COUNT ? arch_names[a] : "?";
}

struct loader {
    struct model *m;
    const char *arch;
    char *err;
    size_t errlen;
    size_t pool_used, pool_cap; /* floats in m->f32_pool */
};

/* Read <arch>.<suffix> as u32; def < 0 means required. */
static int hp_u32(struct loader *L, const char *suffix, long def, int *out)
{
    char key[128];
    uint32_t v;
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    int st = gguf_get_u32(L->m->g, key, &v);
    if (st == STATUS_NOT_FOUND && def >= 0) {
        *out = (int)def;
        return STATUS_OK;
    }
    if (st != STATUS_OK)
        return status_set(L->err, L->errlen, STATUS_FORMAT, "%s: %s key %s",
                          gguf_path(L->m->g), st == STATUS_NOT_FOUND ? "missing" : "bad", key);
    if (v > (1u << 30))
        return status_set(L->err, L->errlen, STATUS_FORMAT, "%s: absurd value %u for %s",
                          gguf_path(L->m->g), v, key);
    *out = (int)v;
    return STATUS_OK;
}

static int hp_f32(struct loader *L, const char *suffix, float def, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    int st = gguf_get_f32(L->m->g, key, out);
    if (st == STATUS_NOT_FOUND) {
        *out = def;
        return STATUS_OK;
    }
    if (st != STATUS_OK || !isfinite(*out))
        return status_set(L->err, L->errlen, STATUS_FORMAT, "%s: bad key %s",
                          gguf_path(L->m->g), key);
    return STATUS_OK;
}

static int bad_hp(struct loader *L, const char *what)
{
    return status_set(L->err, L->errlen, STATUS_FORMAT, "%s: %s", gguf_path(L->m->g), what);
}

/*
 * The GPT-family keys (engine-reference §3.4-3.6): LayerNorm epsilon, GPT-J's rotary_dim, MPT's
 * ALiBi maximum (required: 0 means no ALiBi, but a file without the key is not one llama.cpp's
 * converter wrote) and clamp_kqv.
 */
static int read_hparams_gpt(struct loader *L)
{
    struct model_hparams *hp = &L->m->hp;
    const char *path = gguf_path(L->m->g);
    int st;
    hp->norm_layer = 1;
    hp->ffn_plain = 1;
    hp->no_rope = hp->arch != ARCH_GPTJ;
    hp->parallel = hp->arch == ARCH_GPTJ;
    hp->gelu_erf = hp->arch == ARCH_MPT; /* HF MPT: nn.GELU(approximate="none") */
    hp->rope_neox = 0;                   /* GPT-J rotates adjacent pairs (rotate_every_two) */
    if ((st = hp_f32(L, "attention.layer_norm_epsilon", 1e-5f, &hp->eps)))
        return st;
    if (hp->eps <= 0.0f || hp->eps > 1.0f)
        return bad_hp(L, "bad attention.layer_norm_epsilon");
    if (hp->arch == ARCH_GPTJ && hp->n_rot > hp->head_dim)
        return status_set(L->err, L->errlen, STATUS_FORMAT,
                          "%s: gptj.rope.dimension_count (rotary_dim) is %d, more than the head "
                          "size %d", path, hp->n_rot, hp->head_dim);
    if (hp->no_rope)
        hp->n_rot = 0;
    if (hp->arch == ARCH_MPT) {
        int gs = gguf_get_f32(L->m->g, "mpt.attention.max_alibi_bias", &hp->alibi_max_bias);
        if (gs == STATUS_NOT_FOUND)
            return status_set(L->err, L->errlen, STATUS_FORMAT,
                              "%s: missing key mpt.attention.max_alibi_bias (the ALiBi bias "
                              "maximum; 0 for an MPT without ALiBi)", path);
        if (gs != STATUS_OK || !isfinite(hp->alibi_max_bias) || hp->alibi_max_bias < 0.0f ||
            hp->alibi_max_bias > 1024.0f)
            return status_set(L->err, L->errlen, STATUS_FORMAT,
                              "%s: bad key mpt.attention.max_alibi_bias (want a float in 0..1024)",
                              path);
        if ((st = hp_f32(L, "attention.clamp_kqv", 0.0f, &hp->clamp_kqv)))
            return st;
        if (hp->clamp_kqv < 0.0f)
            return bad_hp(L, "mpt.attention.clamp_kqv must not be negative");
    }
    return STATUS_OK;
}

static int read_hparams(struct loader *L)
{
    struct model_hparams *hp = &L->m->hp;
    int st;
    if ((st = hp_u32(L, "embedding_length", -1, &hp->n_embd)) ||
        (st = hp_u32(L, "block_count", -1, &hp->n_layer)) ||
        (st = hp_u32(L, "attention.head_count", -1, &hp->n_head)) ||
        (st = hp_u32(L, "attention.head_count_kv", hp->n_head, &hp->n_head_kv)) ||
        (st = hp_u32(L, "feed_forward_length", hp->arch == ARCH_GPTJ ? 4L * hp->n_embd : -1,
                     &hp->n_ff)) ||
        (st = hp_u32(L, "context_length", 2048, &hp->n_ctx_train)))
        return st;
    if (hp->n_embd < 1 || hp->n_embd > 65536 || hp->n_layer < 1 || hp->n_layer > 1024 ||
        hp->n_head < 1 || hp->n_head > 1024 || hp->n_ff < 1 || hp->n_ff > (1 << 20))
        return bad_hp(L, "absurd model dimensions (embedding, layers, heads or feed-forward)");
    if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv)
        return bad_hp(L, "head_count_kv must divide head_count");
    int hd_def = hp->n_embd % hp->n_head ? -1 : hp->n_embd / hp->n_head;
    if ((st = hp_u32(L, "attention.key_length", hd_def, &hp->head_dim)) ||
        (st = hp_u32(L, "attention.value_length", hp->head_dim, &hp->head_dim_v)))
        return st;
    if (hp->head_dim < 2 || hp->head_dim > 1024 || (hp->head_dim & 1) || hp->head_dim_v < 1 ||
        hp->head_dim_v > 1024)
        return bad_hp(L, "absurd attention head size");
    if (hp->head_dim_v != hp->head_dim)
        return bad_hp(L, "different key and value head sizes are not supported");
    if ((st = hp_u32(L, "rope.dimension_count", hp->head_dim, &hp->n_rot)))
        return st;
    if (hp->arch != ARCH_GPTJ && (hp->n_rot > hp->head_dim || (hp->n_rot & 1)))
        return bad_hp(L, "rope.dimension_count exceeds the head size or is odd");
    if (hp->arch == ARCH_GPTJ && (hp->n_rot & 1))
        return bad_hp(L, "gptj.rope.dimension_count (rotary_dim) must be even");
    if (hp->arch == ARCH_LLAMA && hp->n_rot != hp->head_dim)
        return bad_hp(L, "llama: rope.dimension_count must equal the head size");
    float factor;
    if ((st = hp_f32(L, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->eps)) ||
        (st = hp_f32(L, "rope.freq_base", 10000.0f, &hp->rope_base)) ||
        (st = hp_f32(L, "rope.freq_base_swa", 10000.0f, &hp->rope_base_swa)) ||
        (st = hp_f32(L, "rope.scaling.factor", 0.0f, &factor)) ||
        (st = hp_f32(L, "final_logit_softcapping", 0.0f, &hp->final_softcap)))
        return st;
    if (factor == 0.0f)
        hp_f32(L, "rope.scale_linear", 0.0f, &factor);
    hp->rope_freq_scale = factor > 0.0f ? 1.0f / factor : 1.0f;
    if (hp->eps <= 0.0f || hp->eps > 1.0f || hp->rope_base <= 0.0f)
        return bad_hp(L, "bad norm epsilon or rope base");
    hp->rope_neox = hp->arch != ARCH_LLAMA;
    if (is_gpt_family(hp->arch) && (st = read_hparams_gpt(L)))
        return st;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = 1.0f;
    if (hp->arch == ARCH_GEMMA3) {
        hp->embd_scale = sqrtf((float)hp->n_embd);
        if ((st = hp_u32(L, "attention.sliding_window", 512, &hp->n_swa)) ||
            (st = hp_u32(L, "attention.sliding_window_pattern", 6, &hp->swa_pattern)))
            return st;
        if (hp->swa_pattern < 1)
            return bad_hp(L, "gemma3: sliding_window_pattern must be >= 1");
    }
    return STATUS_OK;
}

/* Find a tensor, check its shape ([ne0, ne1], ne1 = 0 for 1-D) and type support. */
static const struct gguf_tensor *need(struct loader *L, const char *name, int64_t ne0,
                                      int64_t ne1, int optional, int *st)
{
    const struct gguf_tensor *t = gguf_find_tensor(L->m->g, name);
    *st = STATUS_OK;
    if (!t) {
        if (!optional)
            *st = status_set(L->err, L->errlen, STATUS_FORMAT, "%s: missing tensor %s",
                             gguf_path(L->m->g), name);
        return NULL;
    }
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1) {
        *st = status_set(L->err, L->errlen, STATUS_FORMAT,
                         "%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld]",
                         gguf_path(L->m->g), name, (long long)t->ne[0], (long long)t->ne[1],
                         (long long)ne0, (long long)want1);
        return NULL;
    }
    const struct quant_traits *tr = quant_traits_get(t->type);
    if (!tr || !tr->supported) {
        *st = status_set(L->err, L->errlen, STATUS_UNSUPPORTED,
                         "%s: tensor %s has type %s, which kfchat does not support",
                         gguf_path(L->m->g), name, tr && tr->name ? tr->name : "unknown");
        return NULL;
    }
    L->m->n_params += (uint64_t)t->ne[0] * (uint64_t)want1;
    L->m->weight_bytes += t->nbytes;
    return t;
}

static int bind_matrix(struct loader *L, struct mm_weight *w, const char *name, int64_t k,
                       int64_t n, int optional)
{
    int st;
    const struct gguf_tensor *t = need(L, name, k, n, optional, &st);
    memset(w, 0, sizeof(*w));
    if (t) {
        w->type = t->type;
        w->data = t->data;
        w->k = k;
        w->n = n;
    }
    return st;
}

/* A 1-D tensor dequantized into the f32 pool; *out = NULL if optional and absent. */
static int bind_vector(struct loader *L, float **out, const char *name, int64_t n, int optional)
{
    int st;
    const struct gguf_tensor *t = need(L, name, n, 0, optional, &st);
    *out = NULL;
    if (!t)
        return st;
    if (L->pool_used + (size_t)n > L->pool_cap)
        return status_set(L->err, L->errlen, STATUS_FORMAT, "%s: too many 1-D tensors",
                          gguf_path(L->m->g));
    float *dst = L->m->f32_pool + L->pool_used;
    quant_traits_get(t->type)->to_f32(t->data, dst, n);
    L->pool_used += (size_t)n;
    *out = dst;
    return STATUS_OK;
}

static int bind_layer(struct loader *L, int il)
{
    const struct model_hparams *hp = &L->m->hp;
    struct layer_weights *w = &L->m->layers[il];
    int64_t e = hp->n_embd, nq = (int64_t)hp->n_head * hp->head_dim;
    int64_t nk = (int64_t)hp->n_head_kv * hp->head_dim;
    int64_t nv = (int64_t)hp->n_head_kv * hp->head_dim_v, no = (int64_t)hp->n_head * hp->head_dim_v;
    int gem = hp->arch == ARCH_GEMMA3, qw = hp->arch == ARCH_QWEN2;
    char nm[96];
    int st = STATUS_OK;
#define T(s) (snprintf(nm, sizeof nm, "blk.%d.%s", il, s), nm)
    if ((st = bind_vector(L, &w->attn_norm, T("attn_norm.weight"), e, 0)) ||
        (st = bind_matrix(L, &w->wq, T("attn_q.weight"), e, nq, 0)) ||
        (st = bind_matrix(L, &w->wk, T("attn_k.weight"), e, nk, 0)) ||
        (st = bind_matrix(L, &w->wv, T("attn_v.weight"), e, nv, 0)) ||
        (st = bind_matrix(L, &w->wo, T("attn_output.weight"), no, e, 0)) ||
        (st = bind_vector(L, &w->bq, T("attn_q.bias"), nq, !qw)) ||
        (st = bind_vector(L, &w->bk, T("attn_k.bias"), nk, !qw)) ||
        (st = bind_vector(L, &w->bv, T("attn_v.bias"), nv, !qw)) ||
        (st = bind_vector(L, &w->bo, T("attn_output.bias"), e, 1)) ||
        (st = bind_vector(L, &w->q_norm, T("attn_q_norm.weight"), hp->head_dim, !gem)) ||
        (st = bind_vector(L, &w->k_norm, T("attn_k_norm.weight"), hp->head_dim, !gem)) ||
        (st = bind_vector(L, &w->post_attn_norm, T("post_attention_norm.weight"), e, !gem)) ||
        (st = bind_vector(L, &w->ffn_norm, T("ffn_norm.weight"), e, 0)) ||
        (st = bind_matrix(L, &w->w_gate, T("ffn_gate.weight"), e, hp->n_ff, 0)) ||
        (st = bind_matrix(L, &w->w_up, T("ffn_up.weight"), e, hp->n_ff, 0)) ||
        (st = bind_matrix(L, &w->w_down, T("ffn_down.weight"), hp->n_ff, e, 0)) ||
        (st = bind_vector(L, &w->post_ffn_norm, T("post_ffw_norm.weight"), e, !gem)))
        return st;
#undef T
    w->is_swa = gem && hp->n_swa > 0 && (il % hp->swa_pattern) < hp->swa_pattern - 1;
    w->rope_base = w->is_swa ? hp->rope_base_swa : hp->rope_base;
    w->rope_scale = w->is_swa ? 1.0f : hp->rope_freq_scale;
    return STATUS_OK;
}

/*
 * A fused attn_qkv [n_embd × (nq + 2·nk)] (gpt2, mpt) bound as three row ranges: GGUF rows are
 * contiguous whole rows of any type, so Q, K and V are plain pointer offsets into the tensor.
 * Its bias is split the same way.
 */
static int bind_qkv(struct loader *L, struct layer_weights *w, int il)
{
    const struct model_hparams *hp = &L->m->hp;
    int64_t e = hp->n_embd, nq = (int64_t)hp->n_head * hp->head_dim;
    int64_t nk = (int64_t)hp->n_head_kv * hp->head_dim, nv = (int64_t)hp->n_head_kv * hp->head_dim_v;
    char nm[96];
    struct mm_weight all;
    float *b;
    int st;
    snprintf(nm, sizeof nm, "blk.%d.attn_qkv.weight", il);
    if ((st = bind_matrix(L, &all, nm, e, nq + nk + nv, 0)))
        return st;
    size_t rb = quant_row_size(all.type, e);
    const uint8_t *d = all.data;
    w->wq = (struct mm_weight){ all.type, d, e, nq };
    w->wk = (struct mm_weight){ all.type, d + (size_t)nq * rb, e, nk };
    w->wv = (struct mm_weight){ all.type, d + (size_t)(nq + nk) * rb, e, nv };
    snprintf(nm, sizeof nm, "blk.%d.attn_qkv.bias", il);
    if ((st = bind_vector(L, &b, nm, nq + nk + nv, 1)))
        return st;
    if (b) {
        w->bq = b;
        w->bk = b + nq;
        w->bv = b + nq + nk;
    }
    return STATUS_OK;
}

/*
 * gptj / gpt2 / mpt: LayerNorms (bias required for gptj and gpt2, optional for mpt), separate
 * (gptj) or fused (gpt2, mpt) Q/K/V, a plain FFN; every bias "where present".  GPT-J has no
 * ffn_norm: its MLP reads the attention's LayerNorm (parallel block).
 */
static int bind_layer_gpt(struct loader *L, int il)
{
    const struct model_hparams *hp = &L->m->hp;
    struct layer_weights *w = &L->m->layers[il];
    int64_t e = hp->n_embd, nq = (int64_t)hp->n_head * hp->head_dim;
    int64_t nk = (int64_t)hp->n_head_kv * hp->head_dim;
    int64_t nv = (int64_t)hp->n_head_kv * hp->head_dim_v, no = (int64_t)hp->n_head * hp->head_dim_v;
    int gptj = hp->arch == ARCH_GPTJ, nb_opt = hp->arch == ARCH_MPT;
    char nm[96];
    int st = STATUS_OK;
#define T(s) (snprintf(nm, sizeof nm, "blk.%d.%s", il, s), nm)
    if ((st = bind_vector(L, &w->attn_norm, T("attn_norm.weight"), e, 0)) ||
        (st = bind_vector(L, &w->attn_norm_b, T("attn_norm.bias"), e, nb_opt)))
        return st;
    if (gptj) {
        if ((st = bind_matrix(L, &w->wq, T("attn_q.weight"), e, nq, 0)) ||
            (st = bind_matrix(L, &w->wk, T("attn_k.weight"), e, nk, 0)) ||
            (st = bind_matrix(L, &w->wv, T("attn_v.weight"), e, nv, 0)) ||
            (st = bind_vector(L, &w->bq, T("attn_q.bias"), nq, 1)) ||
            (st = bind_vector(L, &w->bk, T("attn_k.bias"), nk, 1)) ||
            (st = bind_vector(L, &w->bv, T("attn_v.bias"), nv, 1)))
            return st;
    } else if ((st = bind_qkv(L, w, il))) {
        return st;
    }
    if ((st = bind_matrix(L, &w->wo, T("attn_output.weight"), no, e, 0)) ||
        (st = bind_vector(L, &w->bo, T("attn_output.bias"), e, 1)))
        return st;
    if (!gptj && ((st = bind_vector(L, &w->ffn_norm, T("ffn_norm.weight"), e, 0)) ||
                  (st = bind_vector(L, &w->ffn_norm_b, T("ffn_norm.bias"), e, nb_opt))))
        return st;
    if ((st = bind_matrix(L, &w->w_up, T("ffn_up.weight"), e, hp->n_ff, 0)) ||
        (st = bind_vector(L, &w->b_up, T("ffn_up.bias"), hp->n_ff, 1)) ||
        (st = bind_matrix(L, &w->w_down, T("ffn_down.weight"), hp->n_ff, e, 0)) ||
        (st = bind_vector(L, &w->b_down, T("ffn_down.bias"), e, 1)))
        return st;
    if (hp->arch == ARCH_MPT && (gguf_find_tensor(L->m->g, T("attn_q_norm.weight")) ||
                                 gguf_find_tensor(L->m->g, T("ffn.act.scales"))))
        return status_set(L->err, L->errlen, STATUS_UNSUPPORTED,
                          "%s: MPT variants with QK LayerNorm or AWQ activation scales (%s) are "
                          "not supported", gguf_path(L->m->g), nm);
#undef T
    w->rope_base = hp->rope_base;
    w->rope_scale = hp->rope_freq_scale;
    return STATUS_OK;
}

/* malloc with a byte-count error message; 64-byte aligned for SIMD. */
static int alloc_f32(struct loader *L, float **out, size_t n)
{
    void *p = NULL;
    size_t bytes = n * sizeof(float);
    if (n > SIZE_MAX / 8 || posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return status_set(L->err, L->errlen, STATUS_NOMEM,
                          "%s: cannot allocate %zu bytes for buffers", gguf_path(L->m->g), bytes);
    memset(p, 0, bytes);
    *out = p;
    return STATUS_OK;
}

static int alloc_buffers(struct loader *L)
{
    struct model *m = L->m;
    const struct model_hparams *hp = &m->hp;
    size_t B = (size_t)m->n_batch, C = (size_t)m->n_ctx, nl = (size_t)hp->n_layer;
    size_t kvh = (size_t)hp->n_head_kv;
    int st;
    size_t cap = (size_t)kv_cache_cap(m->kv);
    int grp = hp->n_head / hp->n_head_kv < 64 ? hp->n_head / hp->n_head_kv : 64; /* model.c */
    (void)C;
    (void)nl;
    (void)kvh;
    if ((st = alloc_f32(L, &m->x, B * (size_t)hp->n_embd)) ||
        (st = alloc_f32(L, &m->xn, B * (size_t)hp->n_embd)) ||
        (st = alloc_f32(L, &m->q, B * (size_t)hp->n_head * (size_t)hp->head_dim)) ||
        (st = alloc_f32(L, &m->k, B * kvh * (size_t)hp->head_dim)) ||
        (st = alloc_f32(L, &m->v, B * kvh * (size_t)hp->head_dim_v)) ||
        (st = alloc_f32(L, &m->attn, B * (size_t)hp->n_head * (size_t)hp->head_dim_v)) ||
        (st = alloc_f32(L, &m->tmp, B * (size_t)hp->n_embd)) ||
        (st = alloc_f32(L, &m->ff_a, B * (size_t)hp->n_ff)) ||
        (st = alloc_f32(L, &m->ff_b, B * (size_t)hp->n_ff)) ||
        (st = alloc_f32(L, &m->scores,
                        (size_t)m->n_threads * kv_cache_attend_scratch(m->kv, grp))) ||
        (st = alloc_f32(L, &m->acc, (size_t)hp->n_head * cap)) ||
        (st = alloc_f32(L, &m->logits, (size_t)hp->n_vocab)))
        return st;
    m->pos = calloc(B, sizeof(int));
    if (!m->pos)
        return status_set(L->err, L->errlen, STATUS_NOMEM, "out of memory");
    int64_t max_k = hp->n_embd;
    if (hp->n_ff > max_k)
        max_k = hp->n_ff;
    if ((int64_t)hp->n_head * hp->head_dim_v > max_k)
        max_k = (int64_t)hp->n_head * hp->head_dim_v;
    m->mm = mm_ctx_new(max_k, m->n_batch, m->n_threads);
    if (!m->mm)
        return status_set(L->err, L->errlen, STATUS_NOMEM, "out of memory (matmul scratch)");
    return STATUS_OK;
}

/* The KV cache: policy and budget from p (default: full), sliding windows from the layers. */
static int make_kv(struct loader *L, const struct model_params *p)
{
    struct model *m = L->m;
    const struct model_hparams *hp = &m->hp;
    struct kv_params kp = p ? p->kv : kv_params_default();
    if (!p)
        kp.policy = KV_POLICY_FULL;
    m->swa = calloc((size_t)hp->n_layer, sizeof(int));
    if (!m->swa)
        return status_set(L->err, L->errlen, STATUS_NOMEM, "out of memory");
    for (int il = 0; il < hp->n_layer; il++)
        m->swa[il] = m->layers[il].is_swa ? hp->n_swa : 0;
    /* a memory budget counts bytes as the cache will store them (model.c's accounting) */
    size_t per_tok = 2 * (size_t)hp->n_layer * hp->n_head_kv *
                     (p && p->kv_on_gpu ? kv_type_row_bytes(p->kv.type, hp->head_dim)
                                        : hp->head_dim * sizeof(float));
    int st;
    if (p && p->kv_budget &&
        (st = kv_budget_parse(p->kv_budget, m->n_ctx, per_tok, &kp.budget, L->err, L->errlen)))
        return st;
    struct kv_shape sh = {
        .n_layer = hp->n_layer, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
        .head_dim = hp->head_dim, .n_ctx = m->n_ctx, .n_batch = m->n_batch, .swa = m->swa,
        .scale = hp->attn_scale,
        .alibi_max_bias = hp->alibi_max_bias,
    };
    return kv_cache_new(&m->kv, &sh, &kp, L->err, L->errlen);
}

int model_default_ctx(const struct model_hparams *hp, int fixed_budget)
{
    int cap = fixed_budget ? 1 << 22 : 4096;
    int n = hp->n_ctx_train < cap ? hp->n_ctx_train : cap;
    return hp->n_pos > 0 && n > hp->n_pos ? hp->n_pos : n;
}

static int bind_all(struct loader *L)
{
    struct model *m = L->m;
    const struct model_hparams *hp = &m->hp;
    const struct gguf_tensor *emb = gguf_find_tensor(m->g, "token_embd.weight");
    int st;
    if (!emb)
        return status_set(L->err, L->errlen, STATUS_FORMAT, "%s: missing tensor token_embd.weight",
                          gguf_path(m->g));
    m->hp.n_vocab = (int)emb->ne[1];
    if (emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
        return bad_hp(L, "absurd vocabulary size");
    if ((st = bind_matrix(L, &m->tok_embd, "token_embd.weight", hp->n_embd, hp->n_vocab, 0)) ||
        (st = bind_matrix(L, &m->output, "output.weight", hp->n_embd, hp->n_vocab, 1)))
        return st;
    if (!m->output.data)
        m->output = m->tok_embd; /* tied embeddings */
    /* every 1-D tensor is at most max(n_embd, n_vocab, n_ff, qkv) floats: size the pool */
    size_t per_layer = 16 * (size_t)(hp->n_embd + hp->n_head * hp->head_dim + hp->n_ff);
    L->pool_cap = (size_t)hp->n_layer * per_layer + 4 * (size_t)hp->n_embd +
                  (size_t)hp->n_vocab + (size_t)hp->head_dim;
    if ((st = alloc_f32(L, &m->f32_pool, L->pool_cap)))
        return st;
    int gpt = is_gpt_family(hp->arch);
    if ((st = bind_vector(L, &m->output_norm, "output_norm.weight", hp->n_embd, 0)) ||
        (st = bind_vector(L, &m->output_norm_b, "output_norm.bias", hp->n_embd,
                          !gpt || hp->arch == ARCH_MPT)) ||
        (st = bind_vector(L, &m->output_bias, "output.bias", hp->n_vocab, 1)) ||
        (gpt ? 0 : (st = bind_vector(L, &m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, 1))))
        return st;
    /* learned absolute positions: required for gpt2, optional for mpt (no-ALiBi variants) */
    const struct gguf_tensor *pe = gguf_find_tensor(m->g, "position_embd.weight");
    if (hp->arch == ARCH_GPT2 || (hp->arch == ARCH_MPT && pe)) {
        int64_t n_pos = pe ? pe->ne[1] : hp->n_ctx_train;
        if (n_pos < 1 || n_pos > (1 << 24))
            return bad_hp(L, "absurd number of learned positions in position_embd.weight");
        if ((st = bind_matrix(L, &m->pos_embd, "position_embd.weight", hp->n_embd, n_pos, 0)))
            return st;
        m->hp.n_pos = (int)n_pos;
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof(*m->layers));
    if (!m->layers)
        return status_set(L->err, L->errlen, STATUS_NOMEM, "out of memory");
    for (int il = 0; il < hp->n_layer; il++)
        if ((st = gpt ? bind_layer_gpt(L, il) : bind_layer(L, il)))
            return st;
    return STATUS_OK;
}

int model_load(struct model **out, struct gguf *g, const struct model_params *p, char *err,
               size_t errlen)
{
    *out = NULL;
    struct model *m = calloc(1, sizeof(*m));
    if (!m) {
        gguf_close(g);
        return status_set(err, errlen, STATUS_NOMEM, "out of memory");
    }
    m->g = g;
    quant_init();
    struct loader L = { .m = m, .err = err, .errlen = errlen };
    const char *a;
    size_t alen;
    int st = gguf_get_str(g, "general.architecture", &a, &alen);
    if (st) {
        st = status_set(err, errlen, STATUS_FORMAT, "%s: no general.architecture key "
                        "(a vocabulary-only file?)", gguf_path(g));
        goto fail;
    }
    m->hp.arch = ARCH_COUNT;
    for (int i = 0; i < ARCH_COUNT; i++)
        if (strlen(arch_names[i]) == alen && memcmp(arch_names[i], a, alen) == 0)
            m->hp.arch = (enum model_arch)i;
    if (m->hp.arch == ARCH_COUNT) {
        st = status_set(err, errlen, STATUS_UNSUPPORTED,
                        "%s: unknown architecture '%.*s' (supported: llama, qwen2, gemma3, "
                        "gptj, gpt2, mpt)",
                        gguf_path(g), (int)(alen < 64 ? alen : 64), a);
        goto fail;
    }
    L.arch = arch_names[m->hp.arch];
    if (gguf_n_tensors(g) == 0) {
        st = status_set(err, errlen, STATUS_FORMAT,
                        "%s: has no tensors (a vocabulary-only file, not a model)", gguf_path(g));
        goto fail;
    }
    if ((st = read_hparams(&L)) || (st = bind_all(&L)))
        goto fail;
    int fixed = p && kv_budget_fixed(p->kv_budget) && p->kv.policy != KV_POLICY_FULL;
    int n_ctx = p && p->n_ctx > 0 ? p->n_ctx : model_default_ctx(&m->hp, fixed);
    if (m->hp.n_pos > 0 && n_ctx > m->hp.n_pos) {
        /* learned positions cannot be extrapolated (and the KV policies never renumber them) */
        st = status_set(err, errlen, STATUS_INVALID,
                        "%s: context size %d exceeds the model's %d learned positions "
                        "(%s.context_length, position_embd.weight); use -c %d or less",
                        gguf_path(g), n_ctx, m->hp.n_pos, L.arch, m->hp.n_pos);
        goto fail;
    }
    if (n_ctx < 1 || n_ctx > (1 << 22)) {
        st = status_set(err, errlen, STATUS_INVALID, "context size %d out of range (1..%d)",
                        n_ctx, 1 << 22);
        goto fail;
    }
    m->n_ctx = n_ctx;
    m->n_batch = p && p->n_batch > 0 ? p->n_batch : 512;
    if (m->n_batch > n_ctx)
        m->n_batch = n_ctx;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    m->n_threads = p && p->n_threads > 0 ? p->n_threads : (ncpu > 0 ? (int)ncpu : 1);
    if (m->n_threads > 256)
        m->n_threads = 256;
    if ((st = make_kv(&L, p)))
        goto fail;
    m->pool = threadpool_new(m->n_threads);
    if (!m->pool) {
        st = status_set(err, errlen, STATUS_NOMEM, "cannot start %d threads", m->n_threads);
        goto fail;
    }
    if ((st = alloc_buffers(&L)))
        goto fail;
    *out = m;
    return STATUS_OK;
fail:
    model_free(m);
    return st;
}

void model_free(struct model *m)
{
    if (!m)
        return;
    model_gpu_detach(m);
    if (m->pool)
        threadpool_free(m->pool);
    if (m->mm)
        mm_ctx_free(m->mm);
    free(m->layers);
    free(m->f32_pool);
    kv_cache_free(m->kv);
    free(m->swa);
    free(m->acc);
    free(m->x);
    free(m->xn);
    free(m->q);
    free(m->k);
    free(m->v);
    free(m->attn);
    free(m->tmp);
    free(m->ff_a);
    free(m->ff_b);
    free(m->scores);
    free(m->logits);
    free(m->pos);
    gguf_close(m->g);
    free(m);
}
