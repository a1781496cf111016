/*
 * model_gpu.c — puts the last layers of a loaded model on the GPU (engine/cuda/cuda_backend.h):
 * decides how many fit, describes them to the backend, runs them from the CPU forward pass,
 * and keeps the CPU-side KV cache in step for traces and snapshots.
 *
 * Rules.  n_gpu_layers < 0 asks for every layer, N > 0 for the last N, 0 for none.  When there
 * is no usable device, the architecture or the cache policy has no GPU path, or memory is
 * short, the model says why in one line (model_gpu_note) and runs those layers on the CPU; out of
 * memory it first tries fewer layers.  The output head goes to the GPU with the first layer.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_backend.h"
#include "gguf.h"
#include "kv_sync.h"
#include "model_gpu.h"
#include "model_impl.h"
#include "status.h"

static struct cuda_weight cw(const struct mm_weight *w)
{
    struct cuda_weight c = { w->type, w->data, w->k, w->n };
    return c;
}

static void fill_desc(struct model *m, int layer0, struct cuda_model_desc *d,
                      struct cuda_layer_desc *ls)
{
    const struct model_hparams *hp = &m->hp;
    const struct kv_params *kp = kv_cache_params(m->kv);
    memset(d, 0, sizeof *d);
    d->n_embd = hp->n_embd;
    d->n_head = hp->n_head;
    d->n_head_kv = hp->n_head_kv;
    d->head_dim = hp->head_dim;
    d->n_ff = hp->n_ff;
    d->n_vocab = hp->n_vocab;
    d->n_layer = hp->n_layer;
    d->n_rot = hp->n_rot;
    d->rope_neox = hp->rope_neox;
    d->eps = hp->eps;
    d->attn_scale = hp->attn_scale;
    d->final_softcap = hp->final_softcap;
    d->act = hp->arch == ARCH_GEMMA3 || (hp->norm_layer && !hp->gelu_erf) ? 1
             : hp->gelu_erf                                               ? 2
                                                                          : 0;
    d->norm_layer = hp->norm_layer;
    d->parallel = hp->parallel;
    d->gated = m->layers[0].w_gate.data != NULL;
    d->alibi = kv_cache_alibi_slopes(m->kv);
    d->clamp_kqv = hp->clamp_kqv;
    d->rope_freqs = m->rope_freqs;
    d->layer0 = layer0;
    d->layers = ls;
    d->with_output = layer0 == 0;
    d->output_norm = m->output_norm;
    d->output_norm_b = m->output_norm_b;
    d->output_bias = m->output_bias;
    d->output = cw(&m->output);
    d->n_ctx = m->n_ctx;
    d->n_batch = m->n_batch;
    d->policy = (int)kp->policy;
    d->budget = kv_cache_unbounded(m->kv) ? 0 : kp->budget;
    d->recent = kv_cache_recent_window(m->kv);
    d->n_sink = kp->n_sink;
    d->seed = kp->seed;
    d->tau_init = kp->tau_init;
    d->tau_end = kp->tau_end;
    d->tau_steps = kp->tau_steps;
    d->kv_q8 = kp->type == KV_TYPE_Q8_0;
    for (int l = layer0; l < hp->n_layer; l++) {
        const struct layer_weights *w = &m->layers[l];
        struct cuda_layer_desc *c = &ls[l - layer0];
        memset(c, 0, sizeof *c);
        c->attn_norm = w->attn_norm;
        c->ffn_norm = w->ffn_norm;
        c->attn_norm_b = w->attn_norm_b;
        c->ffn_norm_b = w->ffn_norm_b;
        c->b_up = w->b_up;
        c->b_down = w->b_down;
        c->post_attn_norm = w->post_attn_norm;
        c->post_ffn_norm = w->post_ffn_norm;
        c->q_norm = w->q_norm;
        c->k_norm = w->k_norm;
        c->bq = w->bq;
        c->bk = w->bk;
        c->bv = w->bv;
        c->bo = w->bo;
        c->wq = cw(&w->wq);
        c->wk = cw(&w->wk);
        c->wv = cw(&w->wv);
        c->wo = cw(&w->wo);
        c->w_gate = cw(&w->w_gate);
        c->w_up = cw(&w->w_up);
        c->w_down = cw(&w->w_down);
        c->swa = m->swa ? m->swa[l] : 0;
        c->cap = kv_cache_layer_cap(m->kv, l);
        c->rope_base = w->rope_base;
        c->rope_scale = w->rope_scale;
    }
}

/* Why this model cannot use the GPU at all, or NULL. */
static const char *unsupported(const struct model *m)
{
    const struct model_hparams *hp = &m->hp;
    if (hp->head_dim_v != hp->head_dim)
        return "different key and value head sizes run on the CPU only";
    for (int l = 0; l < hp->n_layer; l++)
        if (!hp->norm_layer && (m->layers[l].attn_norm_b || m->layers[l].ffn_norm_b))
            return "RMSNorm with a bias runs on the CPU only";
    return NULL;
}

int model_gpu_attach(struct model *m, int n_gpu_layers)
{
    char probe[256], err[512];
    const struct model_hparams *hp = &m->hp;
    m->gpu = NULL;
    m->gpu_layer0 = hp->n_layer;
    m->gpu_note[0] = 0;
    if (n_gpu_layers == 0)
        return STATUS_OK;
    if (cuda_probe(probe, sizeof probe) == 0) {
        snprintf(m->gpu_note, sizeof m->gpu_note, "%.300s: running on the CPU", probe);
        return STATUS_OK;
    }
    const char *why = unsupported(m);
    if (why) {
        snprintf(m->gpu_note, sizeof m->gpu_note, "GPU: %.300s", why);
        return STATUS_OK;
    }
    int want = n_gpu_layers < 0 || n_gpu_layers > hp->n_layer ? hp->n_layer : n_gpu_layers;
    struct cuda_layer_desc *ls = calloc((size_t)hp->n_layer, sizeof *ls);
    if (!ls)
        return STATUS_NOMEM;
    struct cuda_model_desc d;
    size_t fr, tot, need0 = 0;
    cuda_mem_info(&fr, &tot);
    int n = want;
    for (; n > 0; n--) { /* the most layers that fit, from the end */
        fill_desc(m, hp->n_layer - n, &d, ls);
        size_t need = cuda_model_bytes_needed(&d);
        if (n == want)
            need0 = need;
        if (need <= fr)
            break;
    }
    char shortnote[200] = "";
    if (n < want)
        snprintf(shortnote, sizeof shortnote,
                 "; %d layers need %.0f MiB of GPU memory, %.0f MiB available", want,
                 need0 / 1048576.0, fr / 1048576.0);
    while (n > 0) {
        fill_desc(m, hp->n_layer - n, &d, ls);
        if (cuda_model_new(&m->gpu, &d, err, sizeof err) == 0)
            break;
        if (!strstr(err, "out of memory"))
            break;
        snprintf(shortnote, sizeof shortnote, "; %.190s", err);
        n = n * 3 / 4; /* the estimate was short: try fewer layers */
    }
    free(ls);
    if (!m->gpu) {
        snprintf(m->gpu_note, sizeof m->gpu_note, "GPU unusable (%.150s%.190s): running on the CPU",
                 n > 0 ? err : "nothing fits", shortnote);
        return STATUS_OK;
    }
    m->gpu_layer0 = hp->n_layer - n;
    /* every weight is on the GPU now: the host copies would only sit in the resident set (4 GB
     * for a 7B Q4_K_M); the CPU still reads the token embedding's rows, which come back a page
     * at a time */
    if (n == hp->n_layer)
        gguf_release_pages(m->g);
    snprintf(m->gpu_note, sizeof m->gpu_note, "GPU %.120s: %d/%d layers%s, %.0f MiB%.190s", probe, n,
             hp->n_layer, n == hp->n_layer ? " + output" : "",
             cuda_model_device_bytes(m->gpu) / 1048576.0, shortnote);
    return STATUS_OK;
}

void model_gpu_detach(struct model *m)
{
    cuda_model_free(m->gpu);
    m->gpu = NULL;
}

const char *model_gpu_note(const struct model *m)
{
    return m->gpu_note;
}

int model_gpu_layers(const struct model *m)
{
    return m->gpu ? m->hp.n_layer - m->gpu_layer0 : 0;
}

size_t model_gpu_bytes(const struct model *m)
{
    return cuda_model_device_bytes(m->gpu);
}

int model_gpu_forward(struct model *m, int n, int pos0, float *logits, int all_logits)
{
    char err[512];
    int st = cuda_model_forward(m->gpu, m->x, n, pos0, kv_cache_scores_now(m->kv),
                                kv_cache_static_op(m->kv), logits, all_logits, m->x, err,
                                sizeof err);
    if (st) {
        fprintf(stderr, "kfchat: %s\n", err); /* the forward pass has no error channel of its own */
        return STATUS_CUDA;
    }
    return STATUS_OK;
}

void model_gpu_pull_counts(struct model *m)
{
    int G = m->hp.n_head_kv, nl = m->hp.n_layer - m->gpu_layer0;
    int *c = m->gpu ? malloc((size_t)nl * G * sizeof(int)) : NULL;
    if (c && cuda_model_kv_counts(m->gpu, c) == 0)
        for (int l = 0; l < nl; l++)
            for (int g = 0; g < G; g++) {
                struct kv_slots s;
                kv_cache_slots(m->kv, m->gpu_layer0 + l, g, &s);
                *s.n_used = c[l * G + g];
            }
    free(c);
}

void model_gpu_pull(struct model *m, int with_data)
{
    if (!m->gpu)
        return;
    for (int l = m->gpu_layer0; l < m->hp.n_layer; l++)
        for (int g = 0; g < m->hp.n_head_kv; g++) {
            struct kv_slots s;
            kv_cache_slots(m->kv, l, g, &s);
            if (cuda_model_kv_get(m->gpu, l, g, s.n_used, s.pos, s.score, s.key,
                                  with_data ? s.k : NULL, with_data ? s.v : NULL))
                *s.n_used = 0;
        }
}

int model_gpu_push(struct model *m)
{
    if (!m->gpu)
        return STATUS_OK;
    for (int l = m->gpu_layer0; l < m->hp.n_layer; l++)
        for (int g = 0; g < m->hp.n_head_kv; g++) {
            struct kv_slots s;
            kv_cache_slots(m->kv, l, g, &s);
            if (cuda_model_kv_set(m->gpu, l, g, *s.n_used, s.pos, s.score, s.key, s.k, s.v))
                return STATUS_CUDA;
        }
    return STATUS_OK;
}

void model_gpu_truncate(struct model *m, int n_past)
{
    if (m->gpu)
        cuda_model_kv_truncate(m->gpu, n_past);
}
