/*
 * model.c — the CPU forward pass for llama / qwen2 / gemma3, one batch of tokens at a time.
 *
 * It reads top to bottom like the math in engine-reference §3: embed, then per layer
 * {norm, Q/K/V projections, QK-norm, RoPE, KV-cache write, causal attention, output projection,
 * residual, FFN, residual}, then the final norm and the logits.  Matrix products go through
 * matmul() (quantized weights used as stored); everything else is in ops.c.  Attention is spread
 * over the thread pool by (token, head) pairs.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "model_impl.h"
#include "ops.h"
#include "status.h"
#include "threadpool.h"

const struct model_hparams *model_hparams(const struct model *m)
{
    return &m->hp;
}

const struct gguf *model_gguf(const struct model *m)
{
    return m->g;
}

int model_n_ctx(const struct model *m)
{
    return m->n_ctx;
}

int model_n_batch(const struct model *m)
{
    return m->n_batch;
}

int model_n_threads(const struct model *m)
{
    return m->n_threads;
}

uint64_t model_n_params(const struct model *m)
{
    return m->n_params;
}

size_t model_weight_bytes(const struct model *m)
{
    return m->weight_bytes;
}

static size_t kv_bytes_per_pos(const struct model *m)
{
    const struct model_hparams *hp = &m->hp;
    return (size_t)hp->n_layer * hp->n_head_kv * (hp->head_dim + hp->head_dim_v) * sizeof(float);
}

size_t model_kv_bytes(const struct model *m)
{
    return kv_bytes_per_pos(m) * (size_t)m->n_ctx;
}

size_t model_kv_bytes_used(const struct model *m)
{
    return kv_bytes_per_pos(m) * (size_t)m->n_past;
}

const float *model_logits(const struct model *m)
{
    return m->logits;
}

int model_n_past(const struct model *m)
{
    return m->n_past;
}

void model_truncate(struct model *m, int n_past)
{
    if (n_past >= 0 && n_past < m->n_past)
        m->n_past = n_past;
}

/* Row p of KV head h of layer il in the key / value cache. */
static float *k_row(const struct model *m, int il, int h, int p)
{
    const struct model_hparams *hp = &m->hp;
    size_t idx = (((size_t)il * hp->n_head_kv + (size_t)h) * (size_t)m->n_ctx + (size_t)p);
    return m->k_cache + idx * (size_t)hp->head_dim;
}

static float *v_row(const struct model *m, int il, int h, int p)
{
    const struct model_hparams *hp = &m->hp;
    size_t idx = (((size_t)il * hp->n_head_kv + (size_t)h) * (size_t)m->n_ctx + (size_t)p);
    return m->v_cache + idx * (size_t)hp->head_dim_v;
}

/* ---- attention over the cache, parallel over (token, head) -------------------------------- */

struct attn_job {
    struct model *m;
    int il, n;
    const struct layer_weights *w;
};

static void attn_worker(void *arg, int ith, int nth)
{
    struct attn_job *J = arg;
    struct model *m = J->m;
    const struct model_hparams *hp = &m->hp;
    int group = hp->n_head / hp->n_head_kv;
    int total = J->n * hp->n_head;
    float *att = m->scores + (size_t)ith * (size_t)m->n_ctx;
    for (int job = ith; job < total; job += nth) {
        int t = job / hp->n_head, h = job % hp->n_head, g = h / group;
        int p = m->pos[t];
        int lo = 0;
        if (J->w->is_swa && p - hp->n_swa + 1 > 0)
            lo = p - hp->n_swa + 1;
        const float *q = m->q + ((size_t)t * hp->n_head + h) * hp->head_dim;
        float *out = m->attn + ((size_t)t * hp->n_head + h) * hp->head_dim_v;
        /* rows of one KV head are contiguous: stride = head_dim */
        ops_attention(q, k_row(m, J->il, g, lo), v_row(m, J->il, g, lo), p - lo + 1,
                      hp->head_dim, hp->head_dim, hp->attn_scale, 0.0f, p, lo, att, out);
    }
}

/* ---- per-row helpers ------------------------------------------------------------------------ */

static void rmsnorm_rows(const float *x, const float *w, int rows, int n, float eps, float *out)
{
    for (int r = 0; r < rows; r++)
        ops_rmsnorm(x + (size_t)r * n, w, n, eps, out + (size_t)r * n);
}

static void add_bias_rows(float *y, const float *b, int rows, int n)
{
    if (!b)
        return;
    for (int r = 0; r < rows; r++)
        ops_add(y + (size_t)r * n, b, n, y + (size_t)r * n);
}

/* ---- one layer --------------------------------------------------------------------------- */

static int layer_forward(struct model *m, int il, int n)
{
    const struct model_hparams *hp = &m->hp;
    const struct layer_weights *w = &m->layers[il];
    int E = hp->n_embd, hd = hp->head_dim, nq = hp->n_head * hd, nk = hp->n_head_kv * hd;
    int nv = hp->n_head_kv * hp->head_dim_v, no = hp->n_head * hp->head_dim_v;
    int st;

    /* attention block: xn = norm(x); q, k, v = W·xn (+ b) */
    rmsnorm_rows(m->x, w->attn_norm, n, E, hp->eps, m->xn);
    if ((st = matmul(m->pool, m->mm, &w->wq, m->xn, n, m->q)) ||
        (st = matmul(m->pool, m->mm, &w->wk, m->xn, n, m->k)) ||
        (st = matmul(m->pool, m->mm, &w->wv, m->xn, n, m->v)))
        return st;
    add_bias_rows(m->q, w->bq, n, nq);
    add_bias_rows(m->k, w->bk, n, nk);
    add_bias_rows(m->v, w->bv, n, nv);
    if (w->q_norm) { /* gemma3: per-head RMSNorm of q and k before RoPE */
        rmsnorm_rows(m->q, w->q_norm, n * hp->n_head, hd, hp->eps, m->q);
        rmsnorm_rows(m->k, w->k_norm, n * hp->n_head_kv, hd, hp->eps, m->k);
    }
    struct ops_rope_params rp = {
        .mode = hp->rope_neox ? OPS_ROPE_NEOX : OPS_ROPE_NORM,
        .n_rot = hp->n_rot,
        .base = w->rope_base,
        .freq_scale = w->rope_scale,
        .freq_factors = m->rope_freqs,
    };
    if ((st = ops_rope(m->q, m->q, n, hp->n_head, hd, nq, m->pos, &rp)) ||
        (st = ops_rope(m->k, m->k, n, hp->n_head_kv, hd, nk, m->pos, &rp)))
        return st;
    /* append k, v to the cache (post-RoPE keys: never re-rotated) */
    for (int t = 0; t < n; t++)
        for (int g = 0; g < hp->n_head_kv; g++) {
            memcpy(k_row(m, il, g, m->pos[t]), m->k + (size_t)t * nk + (size_t)g * hd,
                   (size_t)hd * sizeof(float));
            memcpy(v_row(m, il, g, m->pos[t]),
                   m->v + (size_t)t * nv + (size_t)g * hp->head_dim_v,
                   (size_t)hp->head_dim_v * sizeof(float));
        }
    struct attn_job job = { .m = m, .il = il, .n = n, .w = w };
    threadpool_run(m->pool, attn_worker, &job);
    if ((st = matmul(m->pool, m->mm, &w->wo, m->attn, n, m->tmp)))
        return st;
    add_bias_rows(m->tmp, w->bo, n, E);
    (void)no;
    if (w->post_attn_norm)
        rmsnorm_rows(m->tmp, w->post_attn_norm, n, E, hp->eps, m->tmp);
    ops_add(m->x, m->tmp, (int64_t)n * E, m->x);

    /* feed-forward block: x += down(act(gate·xn) ⊙ up·xn) */
    rmsnorm_rows(m->x, w->ffn_norm, n, E, hp->eps, m->xn);
    if ((st = matmul(m->pool, m->mm, &w->w_gate, m->xn, n, m->ff_a)) ||
        (st = matmul(m->pool, m->mm, &w->w_up, m->xn, n, m->ff_b)))
        return st;
    int64_t nff = (int64_t)n * hp->n_ff;
    if (hp->arch == ARCH_GEMMA3)
        ops_geglu(m->ff_a, m->ff_b, nff, m->ff_a);
    else
        ops_swiglu(m->ff_a, m->ff_b, nff, m->ff_a);
    if ((st = matmul(m->pool, m->mm, &w->w_down, m->ff_a, n, m->tmp)))
        return st;
    if (w->post_ffn_norm)
        rmsnorm_rows(m->tmp, w->post_ffn_norm, n, E, hp->eps, m->tmp);
    ops_add(m->x, m->tmp, (int64_t)n * E, m->x);
    return STATUS_OK;
}

/* Final norm and output projection of `rows` rows of x starting at row r0 into out. */
static int output_forward(struct model *m, int r0, int rows, float *out)
{
    const struct model_hparams *hp = &m->hp;
    int E = hp->n_embd;
    rmsnorm_rows(m->x + (size_t)r0 * E, m->output_norm, rows, E, hp->eps, m->xn);
    int st = matmul(m->pool, m->mm, &m->output, m->xn, rows, out);
    if (st)
        return st;
    add_bias_rows(out, m->output_bias, rows, hp->n_vocab);
    if (hp->final_softcap > 0.0f) {
        float c = hp->final_softcap;
        for (size_t i = 0; i < (size_t)rows * hp->n_vocab; i++)
            out[i] = c * tanhf(out[i] / c);
    }
    return STATUS_OK;
}

/* One chunk of n <= n_batch tokens at positions n_past... */
static int forward_chunk(struct model *m, const int32_t *tokens, int n, float *all_out)
{
    const struct model_hparams *hp = &m->hp;
    int st;
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
            return STATUS_INVALID;
        m->pos[t] = m->n_past + t;
    }
    if ((st = matmul_get_rows(&m->tok_embd, tokens, n, m->x)))
        return st;
    if (hp->embd_scale != 1.0f)
        ops_scale(m->x, hp->embd_scale, (int64_t)n * hp->n_embd, m->x);
    for (int il = 0; il < hp->n_layer; il++)
        if ((st = layer_forward(m, il, n)))
            return st;
    m->n_past += n;
    if (all_out)
        return output_forward(m, 0, n, all_out);
    return output_forward(m, n - 1, 1, m->logits);
}

int model_forward(struct model *m, const int32_t *tokens, int n, float *logits, int all_logits,
                  const volatile int *cancel, void (*progress)(void *ud, int done, int total),
                  void *ud)
{
    if (n <= 0)
        return STATUS_OK;
    if (n > m->n_ctx - m->n_past)
        return STATUS_CONTEXT_FULL;
    for (int done = 0; done < n;) {
        if (cancel && *cancel)
            return STATUS_STOPPED;
        int c = n - done < m->n_batch ? n - done : m->n_batch;
        float *all = all_logits && logits ? logits + (size_t)done * m->hp.n_vocab : NULL;
        int st = forward_chunk(m, tokens + done, c, all);
        if (st)
            return st;
        done += c;
        if (progress)
            progress(ud, done, n);
    }
    if (logits && !all_logits)
        memcpy(logits, m->logits, (size_t)m->hp.n_vocab * sizeof(float));
    return STATUS_OK;
}
