/*
 * model.c — the CPU forward pass for llama / qwen2 / gemma3, one batch of tokens at a time
 * (gptj / gpt2 / mpt layers are in model_gpt.c; the attention over the cache is shared).
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

#include "kv_sync.h"
#include "model_gpu.h"
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

/*
 * KV bytes as stored: the CPU cache's f32 entries (kv_cache.h's accounting), and for the layers
 * on the GPU their device rows (f16 or q8_0), which is what the status line and the bench
 * should show for them.
 */
static size_t gpu_entry_bytes(const struct model *m)
{
    return 2 * kv_type_row_bytes(kv_cache_params(m->kv)->type, m->hp.head_dim);
}

static size_t cpu_entry_bytes(const struct model *m)
{
    return (size_t)(m->hp.head_dim + m->hp.head_dim_v) * sizeof(float);
}

size_t model_kv_token_bytes(const struct model *m)
{
    size_t G = (size_t)m->hp.n_head_kv, ng = (size_t)model_gpu_layers(m); /* 0 on the CPU */
    return G * (((size_t)m->hp.n_layer - ng) * cpu_entry_bytes(m) + ng * gpu_entry_bytes(m));
}

size_t model_kv_bytes(const struct model *m)
{
    if (!m->gpu)
        return kv_cache_bytes_alloc(m->kv);
    size_t b = 0;
    for (int l = 0; l < m->hp.n_layer; l++)
        b += (size_t)kv_cache_layer_cap(m->kv, l) * m->hp.n_head_kv *
             (l >= m->gpu_layer0 ? gpu_entry_bytes(m) : cpu_entry_bytes(m));
    return b;
}

size_t model_kv_bytes_used(const struct model *m)
{
    if (!m->gpu)
        return kv_cache_bytes_used(m->kv);
    size_t b = 0;
    for (int l = 0; l < m->hp.n_layer; l++)
        b += (size_t)kv_cache_layer_used(m->kv, l) *
             (l >= m->gpu_layer0 ? gpu_entry_bytes(m) : cpu_entry_bytes(m));
    return b;
}

size_t model_kv_bytes_full(const struct model *m)
{
    if (!m->gpu)
        return kv_cache_bytes_full(m->kv);
    return (size_t)kv_cache_n_past(m->kv) * model_kv_token_bytes(m);
}

const struct kv_cache *model_kv(const struct model *m)
{
    return m->kv;
}

struct kv_cache *model_kv_mut(struct model *m)
{
    return m->kv;
}

void model_set_logits(struct model *m, const float *logits)
{
    memcpy(m->logits, logits, (size_t)m->hp.n_vocab * sizeof(float));
}

const float *model_logits(const struct model *m)
{
    return m->logits;
}

int model_n_past(const struct model *m)
{
    return kv_cache_n_past(m->kv);
}

void model_truncate(struct model *m, int n_past)
{
    kv_cache_truncate(m->kv, n_past);
    model_gpu_truncate(m, n_past);
}

/* ---- attention over the cache, parallel over query heads ----------------------------------- */

struct attn_job {
    struct model *m;
    int il, n, scoring;
};

/*
 * A thread takes a contiguous range of query heads, so that heads of one KV head are mostly
 * together and attend in one call (kv_cache_attend_heads reads that KV head's keys and values
 * once for all of them).  Each head's score accumulator has a single writer, and a head's results
 * do not depend on which heads it is grouped with, so they do not depend on the thread count.
 */
static void attn_worker(void *arg, int ith, int nth)
{
    struct attn_job *J = arg;
    struct model *m = J->m;
    const struct model_hparams *hp = &m->hp;
    int cap = kv_cache_cap(m->kv), H = hp->n_head, group = H / hp->n_head_kv;
    float *scratch =
        m->scores + (size_t)ith * kv_cache_attend_scratch(m->kv, group < 64 ? group : 64);
    int h1 = (int)((int64_t)H * (ith + 1) / nth);
    for (int h = (int)((int64_t)H * ith / nth); h < h1;) {
        int he = (h / group + 1) * group < h1 ? (h / group + 1) * group : h1;
        if (he - h > 64) /* MQA with many heads: in calls of 64 */
            he = h + 64;
        int nh = he - h;
        float *acc[64];
        for (int j = 0; j < nh; j++) {
            acc[j] = J->scoring ? m->acc + (size_t)(h + j) * cap : NULL;
            if (acc[j]) /* only the entries held are read back (kv_cache_commit_layer) */
                memset(acc[j], 0,
                       (size_t)kv_cache_n_used(m->kv, J->il, h / group) * sizeof(float));
        }
        for (int t = 0; t < J->n; t++)
            kv_cache_attend_heads(m->kv, J->il, h, nh,
                                  m->q + ((size_t)t * H + h) * hp->head_dim, hp->head_dim,
                                  m->pos[t], m->attn + ((size_t)t * H + h) * hp->head_dim_v,
                                  hp->head_dim_v, scratch, J->scoring ? acc : NULL);
        h = he;
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

void model_attend(struct model *m, int il, int n)
{
    const struct model_hparams *hp = &m->hp;
    int hd = hp->head_dim, nk = hp->n_head_kv * hd, nv = hp->n_head_kv * hp->head_dim_v;
    /* append k, v to the cache at their true positions (post-RoPE keys: never re-rotated) */
    for (int t = 0; t < n; t++)
        for (int g = 0; g < hp->n_head_kv; g++)
            kv_cache_store(m->kv, il, g, m->pos[t], m->k + (size_t)t * nk + (size_t)g * hd,
                           m->v + (size_t)t * nv + (size_t)g * hp->head_dim_v);
    struct attn_job job = { .m = m, .il = il, .n = n, .scoring = kv_cache_scoring(m->kv, il) };
    threadpool_run(m->pool, attn_worker, &job);
    float *accs[1024];
    for (int h = 0; h < hp->n_head && job.scoring; h++)
        accs[h] = m->acc + (size_t)h * kv_cache_cap(m->kv);
    kv_cache_commit_layer(m->kv, il, job.scoring ? accs : NULL);
}

static int layer_forward(struct model *m, int il, int n)
{
    const struct model_hparams *hp = &m->hp;
    if (hp->arch == ARCH_GPTJ || hp->arch == ARCH_GPT2 || hp->arch == ARCH_MPT)
        return model_gpt_layer_forward(m, il, n); /* LayerNorm / ALiBi / learned positions */
    const struct layer_weights *w = &m->layers[il];
    int E = hp->n_embd, hd = hp->head_dim, nq = hp->n_head * hd, nk = hp->n_head_kv * hd;
    int nv = hp->n_head_kv * hp->head_dim_v, no = hp->n_head * hp->head_dim_v;
    int st;

    /* attention block: xn = norm(x); q, k, v = W·xn (+ b) */
    rmsnorm_rows(m->x, w->attn_norm, n, E, hp->eps, m->xn);
    const struct mm_weight *qkv_w[3] = { &w->wq, &w->wk, &w->wv };
    float *const qkv_y[3] = { m->q, m->k, m->v };
    if ((st = matmul_multi(m->pool, m->mm, 3, qkv_w, m->xn, n, qkv_y)))
        return st; /* one dispatch and one activation quantization for Q, K and V */
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
    model_attend(m, il, n);
    if ((st = matmul(m->pool, m->mm, &w->wo, m->attn, n, m->tmp)))
        return st;
    add_bias_rows(m->tmp, w->bo, n, E);
    (void)no;
    if (w->post_attn_norm)
        rmsnorm_rows(m->tmp, w->post_attn_norm, n, E, hp->eps, m->tmp);
    ops_add(m->x, m->tmp, (int64_t)n * E, m->x);

    /* feed-forward block: x += down(act(gate·xn) ⊙ up·xn) */
    rmsnorm_rows(m->x, w->ffn_norm, n, E, hp->eps, m->xn);
    const struct mm_weight *gu_w[2] = { &w->w_gate, &w->w_up };
    float *const gu_y[2] = { m->ff_a, m->ff_b };
    if ((st = matmul_multi(m->pool, m->mm, 2, gu_w, m->xn, n, gu_y)))
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
    model_norm_rows(m, m->x + (size_t)r0 * E, m->output_norm, m->output_norm_b, rows, m->xn);
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
    int n_past = kv_cache_n_past(m->kv);
    int st = kv_cache_begin(m->kv, n_past, n);
    if (st)
        return st;
    for (int t = 0; t < n; t++)
        m->pos[t] = n_past + t;
    if ((st = matmul_get_rows(&m->tok_embd, tokens, n, m->x)))
        return st;
    if (hp->embd_scale != 1.0f)
        ops_scale(m->x, hp->embd_scale, (int64_t)n * hp->n_embd, m->x);
    int gpu0 = m->gpu ? m->gpu_layer0 : hp->n_layer; /* layers from gpu0 on run on the GPU */
    if (gpu0 == 0 && m->pos_embd.data && (st = model_add_positions(m, n)))
        return st; /* gpt2's learned positions: layer 0 on the CPU adds them itself */
    for (int il = 0; il < gpu0; il++)
        if ((st = layer_forward(m, il, n)))
            return st;
    if (m->gpu) {
        float *lg = gpu0 == 0 ? (all_out ? all_out : m->logits) : NULL;
        if ((st = model_gpu_forward(m, n, n_past, lg, all_out != NULL)))
            return st;
        if (lg) {
            kv_cache_end(m->kv);
            return STATUS_OK;
        }
    }
    kv_cache_end(m->kv);
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
    if (n > m->n_ctx - kv_cache_n_past(m->kv))
        return STATUS_CONTEXT_FULL;
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= m->hp.n_vocab)
            return STATUS_INVALID;
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
