/*
 * model_gpt.c — the layer of the GPT-family architectures the Keyformer paper evaluates, one
 * batch of tokens at a time (engine-reference §3.4-3.6):
 *
 *   gptj  a = LN(x);  x += Wo·Attn(rot(Wq·a), rot(Wk·a), Wv·a) + (Wd·gelu(Wu·a + bu) + bd)
 *         (parallel attention and MLP under one LayerNorm; rotary on the first n_rot dims of
 *         each head, adjacent pairs — GPT-J's rotate-every-two, OPS_ROPE_NORM)
 *   gpt2  x = tok_embd[t] + pos_embd[p];  h = x + Wo·Attn(LN1(x)) + bo;
 *         x = h + Wd·gelu(Wu·LN2(h) + bu) + bd   (fused QKV, learned absolute positions)
 *   mpt   as gpt2 without position embeddings: ALiBi in the attention logits (kv_cache_attend),
 *         q, k, v clamped to ±clamp_kqv, LayerNorm usually without bias, exact-erf GELU
 *
 * Attention itself — the cache write at true positions, the per-head attention and the policy's
 * scoring and eviction — is shared with model.c (model_attend).  A fused attn_qkv is bound by the
 * loader as three row ranges, so the Q/K/V projection is the same three-way matmul as llama's.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "model_impl.h"
#include "ops.h"
#include "status.h"

void model_norm_rows(const struct model *m, const float *x, const float *w, const float *b,
                     int rows, float *out)
{
    const struct model_hparams *hp = &m->hp;
    int E = hp->n_embd;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * E;
        float *yr = out + (size_t)r * E;
        if (hp->norm_layer) {
            ops_layernorm(xr, w, b, E, hp->eps, yr);
        } else {
            ops_rmsnorm(xr, w, E, hp->eps, yr);
            if (b)
                ops_add(yr, b, E, yr);
        }
    }
}

static void add_bias(float *y, const float *b, int rows, int n)
{
    if (!b)
        return;
    for (int r = 0; r < rows; r++)
        ops_add(y + (size_t)r * n, b, n, y + (size_t)r * n);
}

static void clamp(float *x, int64_t n, float c)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = fminf(fmaxf(x[i], -c), c);
}

/*
 * Learned absolute positions (gpt2): x += pos_embd[pos].  This belongs to the input embedding; it
 * is done at the start of layer 0 so that the chunk driver stays architecture-neutral.  Each
 * token gets its true absolute position, so entries kept by any KV policy carry theirs.  (When
 * layer 0 runs on the GPU, model.c adds them before handing x over.)
 */
int model_add_positions(struct model *m, int n)
{
    int E = m->hp.n_embd;
    int st = matmul_get_rows(&m->pos_embd, (const int32_t *)m->pos, n, m->tmp);
    if (st)
        return st;
    ops_add(m->x, m->tmp, (int64_t)n * E, m->x);
    return STATUS_OK;
}

int model_gpt_layer_forward(struct model *m, int il, int n)
{
    const struct model_hparams *hp = &m->hp;
    const struct layer_weights *w = &m->layers[il];
    int E = hp->n_embd, hd = hp->head_dim, nq = hp->n_head * hd, nk = hp->n_head_kv * hd;
    int nv = hp->n_head_kv * hp->head_dim_v;
    int st;

    if (il == 0 && m->pos_embd.data && (st = model_add_positions(m, n)))
        return st;

    /* attention block: xn = LN(x); q, k, v = W·xn + b, clamped (mpt) */
    model_norm_rows(m, m->x, w->attn_norm, w->attn_norm_b, n, m->xn);
    const struct mm_weight *qkv_w[3] = { &w->wq, &w->wk, &w->wv };
    float *const qkv_y[3] = { m->q, m->k, m->v };
    if ((st = matmul_multi(m->pool, m->mm, 3, qkv_w, m->xn, n, qkv_y)))
        return st;
    add_bias(m->q, w->bq, n, nq);
    add_bias(m->k, w->bk, n, nk);
    add_bias(m->v, w->bv, n, nv);
    if (hp->clamp_kqv > 0.0f) {
        clamp(m->q, (int64_t)n * nq, hp->clamp_kqv);
        clamp(m->k, (int64_t)n * nk, hp->clamp_kqv);
        clamp(m->v, (int64_t)n * nv, hp->clamp_kqv);
    }
    if (!hp->no_rope) { /* gptj: partial rotary, adjacent pairs; keys cached post-rotary */
        struct ops_rope_params rp = {
            .mode = hp->rope_neox ? OPS_ROPE_NEOX : OPS_ROPE_NORM,
            .n_rot = hp->n_rot,
            .base = w->rope_base,
            .freq_scale = w->rope_scale,
            .freq_factors = NULL,
        };
        if ((st = ops_rope(m->q, m->q, n, hp->n_head, hd, nq, m->pos, &rp)) ||
            (st = ops_rope(m->k, m->k, n, hp->n_head_kv, hd, nk, m->pos, &rp)))
            return st;
    }
    model_attend(m, il, n); /* mpt's ALiBi bias is added there, from the keys' positions */
    if ((st = matmul(m->pool, m->mm, &w->wo, m->attn, n, m->tmp)))
        return st;
    add_bias(m->tmp, w->bo, n, E);
    ops_add(m->x, m->tmp, (int64_t)n * E, m->x);

    /* MLP: parallel (gptj) reads the same LN(x) as attention, sequential re-normalizes */
    if (!hp->parallel)
        model_norm_rows(m, m->x, w->ffn_norm, w->ffn_norm_b, n, m->xn);
    if ((st = matmul(m->pool, m->mm, &w->w_up, m->xn, n, m->ff_a)))
        return st;
    add_bias(m->ff_a, w->b_up, n, hp->n_ff);
    int64_t nff = (int64_t)n * hp->n_ff;
    if (hp->gelu_erf)
        ops_gelu_erf(m->ff_a, nff, m->ff_a);
    else
        ops_gelu_tanh(m->ff_a, nff, m->ff_a);
    if ((st = matmul(m->pool, m->mm, &w->w_down, m->ff_a, n, m->tmp)))
        return st;
    add_bias(m->tmp, w->b_down, n, E);
    ops_add(m->x, m->tmp, (int64_t)n * E, m->x);
    return STATUS_OK;
}
