/*
 * cuda_model.cu — the GPU part of a model: uploads the weights of the GPU layers once (quantized
 * as stored; Q/K/V and gate/up rows concatenated when their types agree, so each is one
 * product), owns the activations, the f16 KV cache and the scratch, and runs the forward pass.
 *
 * Decode (one token) uses the quantized matrix-vector kernels (cuda_mmv.cu) and is captured
 * once into a CUDA graph: everything that changes between steps (position, temperature, cache
 * counts) lives in device memory, so the same graph is replayed for every token.  Prompt
 * batches dequantize each weight to f16 and multiply with cuBLAS (f32 accumulation); fewer than
 * GEMM_MIN rows go through the matrix-vector kernels row by row.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <cublas_v2.h>

#include "cuda_backend.h"
#include "cuda_internal.h"
#include "cuda_mmv.h"
#include "cuda_ops.h"
#include "quant.h"

#define GEMM_MIN 8
#define GRAPHS 20

struct dw {
    uint32_t type;
    void *d;
    int64_t k, n;
    size_t row_bytes;
    int act; /* ACT_*: how the CPU rounds this type's activations */
};

static int act_mode(uint32_t type)
{
    const struct quant_traits *t = quant_traits_get(type);
    if (!t || t->vec_dot_type == QTYPE_F32 || t->vec_dot_type == QTYPE_F16 ||
        t->vec_dot_type == QTYPE_BF16)
        return ACT_NONE;
    return t->vec_dot_type == QTYPE_Q8_K ? ACT_Q8_256 : ACT_Q8_32;
}

struct glayer {
    float *attn_norm, *ffn_norm, *post_attn_norm, *post_ffn_norm, *q_norm, *k_norm;
    float *b_qkv, *bo; /* concatenated q|k|v biases (zeros where absent), or NULL */
    struct dw wqkv[3]; /* [0] holds all three rows when fused (nq = 1) */
    int nq;
    struct dw wo, w_gu, w_down;
    struct rope_args rope;
};

struct cuda_model {
    struct cuda_model_desc d; /* scalars; pointers in it are the caller's */
    int nl;                   /* GPU layers */
    struct glayer *L;
    struct kv_layer *kvl, *kvl_dev;
    struct kv_conf conf;
    uint64_t seed_key;
    cudaStream_t s;
    cublasHandle_t cb;
    struct kstep *st, *st_host;
    int row, nq_all, max_k, maxcap;
    float *x, *xn, *qkv, *attn, *gu, *ffa, *tmp, *logits;
    void *xq;
    __half *xh, *wh;
    size_t wh_elems;
    float *a_logits, *a_noisy, *a_stats, *a_partial, *a_pstats;
    int *a_cnt; /* k_dec_short's arrival counters, zeroed */
    uint8_t *victim;
    int *lists;
    size_t vstride;
    int *n_used_all; /* [layer][G]: every count in one array, read back in one copy */
    float *out_norm, *out_bias;
    struct dw out;
    /* activations already rounded for the next product by the kernel that made them */
    const float *prep_x;
    int prep_mode, prep_n, prep_q, prep_h;
    float *h_io; /* pinned: x in, logits / x out */
    size_t h_io_floats;
    cudaGraphExec_t graph[GRAPHS]; /* decode step, by span bucket (256 << i slots) */
    int graph_state;               /* 0 in use, -1 disabled */
    size_t bytes;
};

/* ---- memory -------------------------------------------------------------------------------- */

static int dev_alloc(struct cuda_model *cm, void **p, size_t n, char *err, size_t errlen)
{
    if (n == 0)
        n = 16;
    cudaError_t e = cudaMalloc(p, n);
    if (e != cudaSuccess) {
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        snprintf(err, errlen, "GPU out of memory: %zu bytes more needed, %zu free of %zu", n, fr,
                 tot);
        cudaGetLastError();
        return -1;
    }
    cm->bytes += n;
    return 0;
}

static int upload(struct cuda_model *cm, void **dst, const void *src, size_t n, char *err,
                  size_t errlen)
{
    *dst = NULL;
    if (!src)
        return 0;
    if (dev_alloc(cm, dst, n, err, errlen))
        return -1;
    if (cudaMemcpy(*dst, src, n, cudaMemcpyHostToDevice) != cudaSuccess) {
        snprintf(err, errlen, "CUDA: upload failed: %s", cudaGetErrorString(cudaGetLastError()));
        return -1;
    }
    return 0;
}

static int upload_f(struct cuda_model *cm, float **dst, const float *src, size_t n, char *err,
                    size_t errlen)
{
    return upload(cm, (void **)dst, src, n * sizeof(float), err, errlen);
}

static size_t wbytes(const struct cuda_weight *w)
{
    return quant_row_size(w->type, w->k) * (size_t)w->n;
}

/* Upload nw weights of equal type and k as one row-concatenated weight. */
static int upload_cat(struct cuda_model *cm, struct dw *out, const struct cuda_weight *const *w,
                      int nw, char *err, size_t errlen)
{
    size_t total = 0;
    for (int i = 0; i < nw; i++)
        total += wbytes(w[i]);
    out->type = w[0]->type;
    out->k = w[0]->k;
    out->n = 0;
    out->row_bytes = quant_row_size(w[0]->type, w[0]->k);
    out->act = act_mode(w[0]->type);
    if (dev_alloc(cm, &out->d, total, err, errlen))
        return -1;
    size_t off = 0;
    for (int i = 0; i < nw; i++) {
        if (cudaMemcpy((char *)out->d + off, w[i]->data, wbytes(w[i]), cudaMemcpyHostToDevice) !=
            cudaSuccess) {
            snprintf(err, errlen, "CUDA: weight upload failed");
            return -1;
        }
        off += wbytes(w[i]);
        out->n += w[i]->n;
    }
    return 0;
}

static int bias_cat(struct cuda_model *cm, float **out, const float *const *b, const int *n,
                    int nb, char *err, size_t errlen)
{
    int any = 0, total = 0;
    for (int i = 0; i < nb; i++) {
        any |= b[i] != NULL;
        total += n[i];
    }
    *out = NULL;
    if (!any)
        return 0;
    float *h = (float *)calloc((size_t)total, sizeof(float));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0, off = 0; i < nb; off += n[i], i++)
        if (b[i])
            memcpy(h + off, b[i], (size_t)n[i] * sizeof(float));
    int st = upload_f(cm, out, h, (size_t)total, err, errlen);
    free(h);
    return st;
}

/* ---- sizes --------------------------------------------------------------------------------- */

static int max_cap(const struct cuda_model_desc *d)
{
    int c = 0;
    for (int i = 0; i < d->n_layer - d->layer0; i++)
        c = d->layers[i].cap > c ? d->layers[i].cap : c;
    return c;
}

static size_t dequant_scratch_elems(const struct cuda_model_desc *d)
{
    size_t E = (size_t)d->n_embd, q = (size_t)d->n_head * d->head_dim,
           kv = (size_t)d->n_head_kv * d->head_dim, ff = (size_t)d->n_ff;
    size_t m = (q + 2 * kv) * E;
    if (2 * ff * E > m)
        m = 2 * ff * E;
    if (q * E > m)
        m = q * E;
    return m; /* the output head is done in slices of this size */
}

extern "C" size_t cuda_model_bytes_needed(const struct cuda_model_desc *d)
{
    size_t b = 0, E = (size_t)d->n_embd;
    int nl = d->n_layer - d->layer0, G = d->n_head_kv, hd = d->head_dim;
    for (int i = 0; i < nl; i++) {
        const struct cuda_layer_desc *l = &d->layers[i];
        b += wbytes(&l->wq) + wbytes(&l->wk) + wbytes(&l->wv) + wbytes(&l->wo) +
             wbytes(&l->w_gate) + wbytes(&l->w_up) + wbytes(&l->w_down);
        b += (size_t)G * l->cap * ((size_t)4 * hd + 8 + 9); /* k, v f16; pos, score; lists */
        b += 8 * E * 4;
    }
    if (d->with_output)
        b += wbytes(&d->output) + (size_t)d->n_vocab * 4 * ((size_t)d->n_batch + 1);
    size_t nb = (size_t)d->n_batch, row = (size_t)(d->n_head + 2 * G) * hd;
    b += nb * (4 * E + row + (size_t)d->n_head * hd + 3 * (size_t)d->n_ff) * 4;
    b += dequant_scratch_elems(d) * 2 + nb * ((size_t)d->n_ff > E ? d->n_ff : E) * 4;
    b += (size_t)d->n_head * max_cap(d) * 8 + nb * d->n_head * 16 +
         (size_t)attn_decode_splits(max_cap(d)) * d->n_head * hd * 4;
    return b + ((size_t)64 << 20); /* cuBLAS workspace and the context's own */
}

extern "C" size_t cuda_model_device_bytes(const struct cuda_model *cm)
{
    return cm ? cm->bytes : 0;
}

extern "C" void cuda_mem_info(size_t *free_b, size_t *total_b)
{
    *free_b = *total_b = 0;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        return;
    }
    if (cudaMemGetInfo(free_b, total_b) != cudaSuccess)
        cudaGetLastError();
    const char *lim = getenv("KF_GPU_MEM_LIMIT"); /* tests: pretend a smaller card */
    if (lim && strtoull(lim, NULL, 10) < *free_b)
        *free_b = strtoull(lim, NULL, 10);
}

/* ---- build --------------------------------------------------------------------------------- */

extern "C" void cuda_model_free(struct cuda_model *cm)
{
    if (!cm)
        return;
    cudaStreamSynchronize(cm->s);
    for (int i = 0; i < GRAPHS; i++)
        if (cm->graph[i])
            cudaGraphExecDestroy(cm->graph[i]);
    /* every device allocation is released with the context's primary allocations below */
    for (int i = 0; cm->L && i < cm->nl; i++) {
        struct glayer *l = &cm->L[i];
        void *ps[] = { l->attn_norm, l->ffn_norm, l->post_attn_norm, l->post_ffn_norm, l->q_norm,
                       l->k_norm, l->b_qkv, l->bo, l->wqkv[0].d, l->wqkv[1].d, l->wqkv[2].d,
                       l->wo.d, l->w_gu.d, l->w_down.d, (void *)l->rope.freq_factors };
        for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++)
            cudaFree(ps[j]);
    }
    for (int i = 0; cm->kvl && i < cm->nl; i++) {
        cudaFree(cm->kvl[i].k);
        cudaFree(cm->kvl[i].v);
        cudaFree(cm->kvl[i].pos);
        cudaFree(cm->kvl[i].score);
    }
    void *ps[] = { cm->kvl_dev, cm->st, cm->x, cm->xn, cm->qkv, cm->attn, cm->gu, cm->ffa,
                   cm->tmp, cm->logits, cm->xq, cm->xh, cm->wh, cm->a_logits, cm->a_noisy,
                   cm->a_stats, cm->a_partial, cm->a_pstats, cm->a_cnt, cm->victim, cm->lists,
                   cm->out_norm, cm->out_bias, cm->out.d, cm->n_used_all };
    for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++)
        cudaFree(ps[j]);
    if (cm->st_host)
        cudaFreeHost(cm->st_host);
    if (cm->h_io)
        cudaFreeHost(cm->h_io);
    if (cm->cb)
        cublasDestroy(cm->cb);
    if (cm->s)
        cudaStreamDestroy(cm->s);
    free(cm->L);
    free(cm->kvl);
    free(cm);
}


static int build_layer(struct cuda_model *cm, int i, char *err, size_t errlen)
{
    const struct cuda_model_desc *d = &cm->d;
    const struct cuda_layer_desc *s = &d->layers[i];
    struct glayer *l = &cm->L[i];
    int E = d->n_embd, hd = d->head_dim;
    if (upload_f(cm, &l->attn_norm, s->attn_norm, E, err, errlen) ||
        upload_f(cm, &l->ffn_norm, s->ffn_norm, E, err, errlen) ||
        upload_f(cm, &l->post_attn_norm, s->post_attn_norm, E, err, errlen) ||
        upload_f(cm, &l->post_ffn_norm, s->post_ffn_norm, E, err, errlen) ||
        upload_f(cm, &l->q_norm, s->q_norm, hd, err, errlen) ||
        upload_f(cm, &l->k_norm, s->k_norm, hd, err, errlen) ||
        upload_f(cm, &l->bo, s->bo, E, err, errlen))
        return -1;
    const float *bs[3] = { s->bq, s->bk, s->bv };
    int bn[3] = { d->n_head * hd, d->n_head_kv * hd, d->n_head_kv * hd };
    if (bias_cat(cm, &l->b_qkv, bs, bn, 3, err, errlen))
        return -1;
    const struct cuda_weight *qkv[3] = { &s->wq, &s->wk, &s->wv };
    if (s->wq.type == s->wk.type && s->wq.type == s->wv.type) {
        l->nq = 1;
        if (upload_cat(cm, &l->wqkv[0], qkv, 3, err, errlen))
            return -1;
    } else {
        l->nq = 3;
        for (int j = 0; j < 3; j++)
            if (upload_cat(cm, &l->wqkv[j], &qkv[j], 1, err, errlen))
                return -1;
    }
    const struct cuda_weight *wo[1] = { &s->wo }, *gu[2] = { &s->w_gate, &s->w_up },
                             *dn[1] = { &s->w_down };
    if (s->w_gate.type != s->w_up.type) {
        snprintf(err, errlen, "GPU: layer %d: gate and up weights of different types",
                 d->layer0 + i);
        return -1;
    }
    if (upload_cat(cm, &l->wo, wo, 1, err, errlen) || upload_cat(cm, &l->w_gu, gu, 2, err, errlen) ||
        upload_cat(cm, &l->w_down, dn, 1, err, errlen))
        return -1;
    l->rope = (struct rope_args){ d->n_head, d->n_head_kv, hd, d->n_rot, d->rope_neox,
                                  s->rope_base, s->rope_scale, d->eps, NULL, l->q_norm,
                                  l->k_norm };
    if (d->rope_freqs &&
        upload_f(cm, (float **)&l->rope.freq_factors, d->rope_freqs, d->n_rot / 2, err, errlen))
        return -1;
    /* the cache */
    struct kv_layer *kv = &cm->kvl[i];
    size_t slots = (size_t)d->n_head_kv * s->cap;
    kv->cap = s->cap;
    kv->swa = s->swa;
    kv->layer = d->layer0 + i;
    if (dev_alloc(cm, (void **)&kv->k, slots * hd * 2, err, errlen) ||
        dev_alloc(cm, (void **)&kv->v, slots * hd * 2, err, errlen) ||
        dev_alloc(cm, (void **)&kv->pos, slots * 4, err, errlen) ||
        dev_alloc(cm, (void **)&kv->score, slots * 4, err, errlen))
        return -1;
    kv->n_used = cm->n_used_all + (size_t)i * d->n_head_kv;
    return 0;
}

extern "C" int cuda_model_new(struct cuda_model **out, const struct cuda_model_desc *d, char *err,
                              size_t errlen)
{
    *out = NULL;
    int hd8 = d->head_dim / 8; /* decode attention: hd/8 lanes per key must divide a warp */
    if (d->n_head % d->n_head_kv || d->n_head / d->n_head_kv > 16 || d->head_dim % 8 ||
        32 % hd8 || d->n_embd % 32 || d->n_ff % 32) {
        snprintf(err, errlen, "GPU: unsupported shape (head_dim %d, %d/%d heads)", d->head_dim,
                 d->n_head, d->n_head_kv);
        return -1;
    }
    for (int i = 0; i < d->n_layer - d->layer0; i++) {
        const struct cuda_layer_desc *l = &d->layers[i];
        const struct cuda_weight *ws[] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up,
                                           &l->w_down };
        for (size_t j = 0; j < sizeof ws / sizeof ws[0]; j++)
            if (!cuda_mmv_supported(ws[j]->type)) {
                snprintf(err, errlen, "GPU: no kernels for tensor type %u (layer %d)",
                         ws[j]->type, d->layer0 + i);
                return -1;
            }
    }
    if (d->with_output && !cuda_mmv_supported(d->output.type)) {
        snprintf(err, errlen, "GPU: no kernels for the output head's type %u", d->output.type);
        return -1;
    }
    struct cuda_model *cm = (struct cuda_model *)calloc(1, sizeof *cm);
    if (!cm) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cm->d = *d;
    cm->nl = d->n_layer - d->layer0;
    cm->L = (struct glayer *)calloc((size_t)cm->nl, sizeof *cm->L);
    cm->kvl = (struct kv_layer *)calloc((size_t)cm->nl, sizeof *cm->kvl);
    int E = d->n_embd, hd = d->head_dim, nb = d->n_batch, G = d->n_head_kv;
    size_t nbz = (size_t)nb;
    if (!cm->L || !cm->kvl) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    CU_TRY(cudaStreamCreateWithFlags(&cm->s, cudaStreamNonBlocking));
    if (cublasCreate(&cm->cb) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cuBLAS: cannot create a handle");
        cm->cb = NULL;
        goto fail;
    }
    cublasSetStream(cm->cb, cm->s);
    cublasSetMathMode(cm->cb, CUBLAS_DEFAULT_MATH);
    if (dev_alloc(cm, (void **)&cm->n_used_all, (size_t)cm->nl * G * 4, err, errlen))
        goto fail;
    CU_TRY(cudaMemset(cm->n_used_all, 0, (size_t)cm->nl * G * 4));
    for (int i = 0; i < cm->nl; i++)
        if (build_layer(cm, i, err, errlen))
            goto fail;
    cm->conf = (struct kv_conf){ d->policy, d->budget, d->recent, d->n_sink, d->budget <= 0,
                                 d->seed, d->tau_init, d->tau_end, d->tau_steps };
    cm->seed_key = kn_mix64(d->seed + 0x9e3779b97f4a7c15ULL); /* kv_noise.c's seed_key */
    cm->row = (d->n_head + 2 * G) * hd;
    cm->maxcap = max_cap(d);
    cm->max_k = E > d->n_ff ? E : d->n_ff;
    if (d->n_head * hd > cm->max_k)
        cm->max_k = d->n_head * hd;
    cm->wh_elems = dequant_scratch_elems(d);
    cm->vstride = (size_t)cm->maxcap;
    if (dev_alloc(cm, (void **)&cm->kvl_dev, sizeof(struct kv_layer) * cm->nl, err, errlen) ||
        dev_alloc(cm, (void **)&cm->st, sizeof(struct kstep), err, errlen) ||
        dev_alloc(cm, (void **)&cm->x, nbz * E * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->xn, nbz * E * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->qkv, nbz * cm->row * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->attn, nbz * d->n_head * hd * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->gu, nbz * 2 * d->n_ff * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->ffa, nbz * d->n_ff * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->tmp, nbz * E * 4, err, errlen) ||
        dev_alloc(cm, &cm->xq, nbz * (cm->max_k / 32) * 36, err, errlen) ||
        dev_alloc(cm, (void **)&cm->xh, nbz * cm->max_k * 2, err, errlen) ||
        dev_alloc(cm, (void **)&cm->wh, cm->wh_elems * 2, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_logits, (size_t)d->n_head * cm->maxcap * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_noisy, (size_t)d->n_head * cm->maxcap * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_stats, nbz * d->n_head * 16, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_partial,
                  (size_t)attn_decode_splits(cm->maxcap) * d->n_head * hd * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_pstats,
                  (size_t)attn_decode_tiles(cm->maxcap) * d->n_head * 16, err, errlen) ||
        dev_alloc(cm, (void **)&cm->victim, (size_t)cm->nl * G * cm->vstride, err, errlen) ||
        dev_alloc(cm, (void **)&cm->lists, (size_t)cm->nl * G * cm->vstride * 8, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_cnt, ((size_t)d->n_head * hd / 256 + 1) * 4, err, errlen))
        goto fail;
    CU_TRY(cudaMemset(cm->a_cnt, 0, ((size_t)d->n_head * hd / 256 + 1) * 4));
    CU_TRY(cudaMemcpy(cm->kvl_dev, cm->kvl, sizeof(struct kv_layer) * cm->nl,
                      cudaMemcpyHostToDevice));
    CU_TRY(cudaMallocHost((void **)&cm->st_host, sizeof(struct kstep)));
    cm->h_io_floats = nbz * (E > d->n_vocab ? E : d->n_vocab);
    CU_TRY(cudaMallocHost((void **)&cm->h_io, cm->h_io_floats * 4));
    if (d->with_output) {
        const struct cuda_weight *o[1] = { &d->output };
        if (upload_f(cm, &cm->out_norm, d->output_norm, E, err, errlen) ||
            upload_f(cm, &cm->out_bias, d->output_bias, d->n_vocab, err, errlen) ||
            upload_cat(cm, &cm->out, o, 1, err, errlen) ||
            dev_alloc(cm, (void **)&cm->logits, nbz * d->n_vocab * 4, err, errlen))
            goto fail;
    }
    cm->graph_state = getenv("KF_CUDA_GRAPH") && !strcmp(getenv("KF_CUDA_GRAPH"), "0") ? -1 : 0;
    CU_TRY(cudaStreamSynchronize(cm->s));
    *out = cm;
    return 0;
fail:
    cuda_model_free(cm);
    return -1;
}

/* ---- products ------------------------------------------------------------------------------- */

/* Was x (n rows) already rounded for w, as q8_1 (decode) or f16 (cuBLAS)? */
static int prepared(const struct cuda_model *cm, const struct dw *w, const float *x, int n)
{
    if (cm->prep_x != x || cm->prep_mode != w->act || cm->prep_n != n)
        return 0;
    return n < GEMM_MIN ? cm->prep_q : cm->prep_h;
}

/* out = rmsnorm(x)·nw, rounded on the way for w when that saves a pass (w may be NULL). */
static void norm_for(struct cuda_model *cm, const float *x, const float *nw, int n, float *out,
                     const struct dw *w)
{
    const struct cuda_model_desc *d = &cm->d;
    cm->prep_x = NULL;
    int mode = w ? w->act : ACT_NONE;
    if (mode == ACT_NONE || (mode == ACT_Q8_256 && d->n_embd % 256)) {
        ops_rmsnorm(x, nw, n, d->n_embd, d->eps, out, cm->s);
        return;
    }
    int q = n < GEMM_MIN && cuda_mmv_wants_q8_1(w->type);
    ops_rmsnorm_round(x, nw, n, d->n_embd, d->eps, out, mode, q ? cm->xq : NULL,
                      n < GEMM_MIN ? NULL : cm->xh, cm->s);
    cm->prep_x = out;
    cm->prep_mode = mode;
    cm->prep_n = n;
    cm->prep_q = q;
    cm->prep_h = n >= GEMM_MIN;
}


/*
 * y (n × w.n, row stride ldy) = x (n × w.k) · wᵀ, then + bias, + acc (acc may alias y; acc rows
 * have stride ldy too).  xq: x's q8_1 rows when the caller already made them (decode), or NULL.
 */
static int linear(struct cuda_model *cm, const struct dw *w, const float *x, int n, float *y,
                  const float *bias, const float *acc)
{
    cudaStream_t s = cm->s;
    if (n < GEMM_MIN) {
        size_t qrow = (size_t)(w->k / 32) * 36;
        int q = cuda_mmv_wants_q8_1(w->type);
        if (q && !prepared(cm, w, x, n))
            ops_round_act(x, n, w->k, w->act, cm->xq, NULL, s);
        for (int t = 0; t < n; t++) {
            struct mmv_epilogue ep = { bias, acc ? acc + (size_t)t * w->n : NULL };
            if (cuda_mmv(w->type, w->d, w->k, w->n, x + (size_t)t * w->k,
                         q ? (const char *)cm->xq + t * qrow : NULL, y + (size_t)t * w->n, &ep,
                         s))
                return -1;
        }
        return 0;
    }
    if (!prepared(cm, w, x, n))
        ops_round_act(x, n, w->k, w->act, NULL, cm->xh, s);
    const float one = 1.0f, zero = 0.0f;
    /* with a residual the product goes through tmp (callers pass acc only for n_embd rows) */
    float *dst = acc ? cm->tmp : y;
    int f16 = w->type == QTYPE_F16; /* already what cuBLAS takes: no copy */
    int64_t rows_per = f16 ? w->n : (int64_t)(cm->wh_elems / (size_t)w->k);
    for (int64_t r0 = 0; r0 < w->n; r0 += rows_per) {
        int64_t rn = w->n - r0 < rows_per ? w->n - r0 : rows_per;
        const void *A = f16 ? (const void *)w->d : (const void *)cm->wh;
        if (!f16 && cuda_dequant_f16(w->type, (const char *)w->d + (size_t)r0 * w->row_bytes,
                                     w->k, rn, cm->wh, s))
            return -1;
        /* column-major view: C (w.n × n) = W (w.n × k, stored as k × w.n) ᵀ · X (k × n) */
        if (cublasGemmEx(cm->cb, CUBLAS_OP_T, CUBLAS_OP_N, (int)rn, n, (int)w->k, &one, A,
                         CUDA_R_16F, (int)w->k, cm->xh, CUDA_R_16F, (int)w->k, &zero, dst + r0,
                         CUDA_R_32F, (int)w->n, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
            return -1;
    }
    if (acc || bias)
        ops_epilogue(y, dst, bias, acc, n, (int)w->n, s);
    return 0;
}

/* gu layout for the prompt path: rows of 2·n_ff (gate | up) → ffa = act(gate)·up. */
static int ffn_glu(struct cuda_model *cm, const struct glayer *l, int n)
{
    int64_t nff = cm->d.n_ff, k = l->w_gu.k;
    if (n < GEMM_MIN) {
        size_t qrow = (size_t)(k / 32) * 36;
        int q = cuda_mmv_wants_q8_1(l->w_gu.type);
        if (q && !prepared(cm, &l->w_gu, cm->xn, n))
            ops_round_act(cm->xn, n, k, l->w_gu.act, cm->xq, NULL, cm->s);
        for (int t = 0; t < n; t++)
            if (cuda_mmv_glu(l->w_gu.type, l->w_gu.d,
                             (const char *)l->w_gu.d + (size_t)nff * l->w_gu.row_bytes, k, nff,
                             cm->xn + (size_t)t * k, q ? (const char *)cm->xq + t * qrow : NULL,
                             cm->d.gelu ? MMV_ACT_GELU : MMV_ACT_SILU, cm->ffa + (size_t)t * nff,
                             cm->s))
                return -1;
        return 0;
    }
    if (!prepared(cm, &l->w_gu, cm->xn, n))
        ops_round_act(cm->xn, n, k, l->w_gu.act, NULL, cm->xh, cm->s);
    const float one = 1.0f, zero = 0.0f;
    int f16 = l->w_gu.type == QTYPE_F16;
    int64_t rows_per = f16 ? 2 * nff : (int64_t)(cm->wh_elems / (size_t)k);
    for (int64_t r0 = 0; r0 < 2 * nff; r0 += rows_per) {
        int64_t rn = 2 * nff - r0 < rows_per ? 2 * nff - r0 : rows_per;
        const void *A = f16 ? (const void *)l->w_gu.d : (const void *)cm->wh;
        if ((!f16 && cuda_dequant_f16(l->w_gu.type,
                                      (const char *)l->w_gu.d + (size_t)r0 * l->w_gu.row_bytes, k,
                                      rn, cm->wh, cm->s)) ||
            cublasGemmEx(cm->cb, CUBLAS_OP_T, CUBLAS_OP_N, (int)rn, n, (int)k, &one, A,
                         CUDA_R_16F, (int)k, cm->xh, CUDA_R_16F, (int)k, &zero, cm->gu + r0,
                         CUDA_R_32F, (int)(2 * nff), CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
            return -1;
    }
    ops_glu(cm->gu, n, (int)nff, cm->d.gelu, cm->ffa, NULL, cm->s);
    return 0;
}

/* ---- forward -------------------------------------------------------------------------------- */


/* span: no (layer, head) holds more than span slots during this call (grids cover it). */
static int run_layers(struct cuda_model *cm, int n, int span)
{
    const struct cuda_model_desc *d = &cm->d;
    int E = d->n_embd, hd = d->head_dim, G = d->n_head_kv;
    for (int i = 0; i < cm->nl; i++) {
        struct glayer *l = &cm->L[i];
        /* attention block */
        /* separate Q/K/V weights (Q4_K_M's q6_K values) share the rounding when their
         * activation formats agree */
        int same = l->nq == 1 || (l->wqkv[1].act == l->wqkv[0].act &&
                                  l->wqkv[2].act == l->wqkv[0].act &&
                                  cuda_mmv_wants_q8_1(l->wqkv[1].type) ==
                                      cuda_mmv_wants_q8_1(l->wqkv[0].type) &&
                                  cuda_mmv_wants_q8_1(l->wqkv[2].type) ==
                                      cuda_mmv_wants_q8_1(l->wqkv[0].type));
        norm_for(cm, cm->x, l->attn_norm, n, cm->xn, same ? &l->wqkv[0] : NULL);
        if (l->nq == 1) {
            if (linear(cm, &l->wqkv[0], cm->xn, n, cm->qkv, l->b_qkv, NULL))
                return -1;
        } else {
            /* separate products write strided pieces of each row through a bounce buffer;
             * one row (decode) is written in place */
            int off = 0;
            for (int j = 0; j < 3; j++) {
                const struct dw *w = &l->wqkv[j];
                float *dst = n == 1 ? cm->qkv + off : cm->attn;
                if (linear(cm, w, cm->xn, n, dst, l->b_qkv ? l->b_qkv + off : NULL, NULL))
                    return -1;
                if (n > 1 && cudaMemcpy2DAsync(cm->qkv + off, (size_t)cm->row * 4, cm->attn,
                                      (size_t)w->n * 4, (size_t)w->n * 4, (size_t)n,
                                      cudaMemcpyDeviceToDevice, cm->s) != cudaSuccess)
                    return -1;
                off += (int)w->n;
            }
        }
        struct attn_args a;
        memset(&a, 0, sizeof a);
        a.qkv = cm->qkv;
        a.row = cm->row;
        a.out = cm->attn;
        a.n_head = d->n_head;
        a.G = G;
        a.hd = hd;
        a.scale = d->attn_scale;
        a.st = cm->st;
        a.kv = cm->kvl[i];
        a.conf = cm->conf;
        a.seed_key = cm->seed_key;
        a.logits = cm->a_logits;
        a.noisy = cm->a_noisy;
        a.stats = cm->a_stats;
        a.partial = cm->a_partial;
        a.pstats = cm->a_pstats;
        a.n = n;
        a.span = span < cm->kvl[i].cap ? span : cm->kvl[i].cap;
        /* decode: the reduction rounds the output for W_o on the way */
        a.out_mode = n == 1 && cuda_mmv_wants_q8_1(l->wo.type) ? l->wo.act : ACT_NONE;
        a.out_q = cm->xq;
        a.cnt = cm->a_cnt;
        attn_launch(&a, &l->rope, cm->s);
        cm->prep_x = NULL;
        if (a.out_mode != ACT_NONE && (a.out_mode != ACT_Q8_256 || (d->n_head * hd) % 256 == 0)) {
            cm->prep_x = cm->attn;
            cm->prep_mode = a.out_mode;
            cm->prep_n = 1;
            cm->prep_q = 1;
            cm->prep_h = 0;
        }
        if (l->post_attn_norm) {
            if (linear(cm, &l->wo, cm->attn, n, cm->tmp, l->bo, NULL))
                return -1;
            ops_rmsnorm_add(cm->tmp, l->post_attn_norm, n, E, d->eps, cm->x, cm->s);
        } else if (linear(cm, &l->wo, cm->attn, n, cm->x, l->bo, cm->x))
            return -1;
        /* feed-forward block */
        norm_for(cm, cm->x, l->ffn_norm, n, cm->xn, &l->w_gu);
        if (ffn_glu(cm, l, n))
            return -1;
        if (l->post_ffn_norm) {
            if (linear(cm, &l->w_down, cm->ffa, n, cm->tmp, NULL, NULL))
                return -1;
            ops_rmsnorm_add(cm->tmp, l->post_ffn_norm, n, E, d->eps, cm->x, cm->s);
        } else if (linear(cm, &l->w_down, cm->ffa, n, cm->x, NULL, cm->x))
            return -1;
    }
    kv_commit_launch(cm->kvl_dev, cm->nl, &cm->conf, G, hd, cm->st, cm->victim, cm->lists,
                     cm->vstride, cm->s);
    return 0;
}

/* Final norm and head over rows r0 .. r0+rows-1 of x into cm->logits. */
static int run_output(struct cuda_model *cm, int r0, int rows)
{
    const struct cuda_model_desc *d = &cm->d;
    int E = d->n_embd;
    norm_for(cm, cm->x + (size_t)r0 * E, cm->out_norm, rows, cm->xn, &cm->out);
    (void)E;
    if (linear(cm, &cm->out, cm->xn, rows, cm->logits, cm->out_bias, NULL))
        return -1;
    if (d->final_softcap > 0.0f)
        ops_softcap(cm->logits, (int64_t)rows * d->n_vocab, d->final_softcap, cm->s);
    return 0;
}

/*
 * The decode step (layers + head) of one span bucket, captured into a graph on first use and
 * replayed afterwards: the grids cover 256 << i slots, so a short context does not launch the
 * idle blocks of a long one.
 */
static int decode_graph(struct cuda_model *cm, int i, int span)
{
    cudaGraph_t g;
    if (cudaStreamBeginCapture(cm->s, cudaStreamCaptureModeThreadLocal) != cudaSuccess)
        return -1;
    int st = run_layers(cm, 1, span);
    if (!st && cm->d.with_output)
        st = run_output(cm, 0, 1);
    cudaError_t e = cudaStreamEndCapture(cm->s, &g);
    if (st || e != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    e = cudaGraphInstantiate(&cm->graph[i], g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cm->graph[i] = NULL;
        cudaGetLastError();
        return -1;
    }
    return 0;
}

extern "C" int cuda_model_forward(struct cuda_model *cm, const float *x, int n, int pos0,
                                  int scoring, float *logits, int all_logits,
                                  float *x_out, char *err, size_t errlen)
{
    const struct cuda_model_desc *d = &cm->d;
    size_t E = (size_t)d->n_embd;
    int bound, bi = 0, span = 256;
    if (n < 1 || n > d->n_batch) {
        snprintf(err, errlen, "GPU: batch of %d tokens (max %d)", n, d->n_batch);
        return -1;
    }
    cm->st_host->pos0 = pos0;
    cm->st_host->n = n;
    cm->st_host->scoring = scoring;
    memcpy(cm->h_io, x, (size_t)n * E * 4);
    CU_TRY(cudaMemcpyAsync(cm->st, cm->st_host, sizeof(struct kstep), cudaMemcpyHostToDevice,
                           cm->s));
    CU_TRY(cudaMemcpyAsync(cm->x, cm->h_io, (size_t)n * E * 4, cudaMemcpyHostToDevice, cm->s));
    /* the counts can reach pos0 + n at most: grids sized for that, rounded up to a bucket */
    bound = pos0 + n < cm->maxcap ? pos0 + n : cm->maxcap;
    while (span < bound && bi < GRAPHS - 1) {
        span <<= 1;
        bi++;
    }
    if (n == 1 && cm->graph_state == 0 && !cm->graph[bi] && decode_graph(cm, bi, span))
        cm->graph_state = -1; /* capture failed: run eagerly from now on */
    if (n == 1 && cm->graph_state == 0 && cm->graph[bi]) {
        CU_TRY(cudaGraphLaunch(cm->graph[bi], cm->s));
    } else {
        if (run_layers(cm, n, n == 1 ? span : bound)) {
            snprintf(err, errlen, "GPU: forward pass failed: %s",
                     cudaGetErrorString(cudaGetLastError()));
            return -1;
        }
        if (d->with_output) {
            int all = all_logits && n > 1;
            if (run_output(cm, all ? 0 : n - 1, all ? n : 1)) {
                snprintf(err, errlen, "GPU: output head failed");
                return -1;
            }
        }
    }
    if (d->with_output) {
        size_t rows = all_logits ? (size_t)n : 1;
        CU_TRY(cudaMemcpyAsync(cm->h_io, cm->logits, rows * d->n_vocab * 4,
                               cudaMemcpyDeviceToHost, cm->s));
        CU_TRY(cudaStreamSynchronize(cm->s));
        CU_TRY(cudaGetLastError());
        if (logits)
            memcpy(logits, cm->h_io, rows * d->n_vocab * 4);
    } else {
        CU_TRY(cudaMemcpyAsync(cm->h_io, cm->x, (size_t)n * E * 4, cudaMemcpyDeviceToHost, cm->s));
        CU_TRY(cudaStreamSynchronize(cm->s));
        CU_TRY(cudaGetLastError());
        memcpy(x_out, cm->h_io, (size_t)n * E * 4);
    }
    return 0;
fail:
    return -1;
}

/* ---- cache access ----------------------------------------------------------------------------- */

extern "C" int cuda_model_kv_get(struct cuda_model *cm, int layer, int g, int *n_used,
                                 int32_t *pos, float *score, float *k, float *v)
{
    int i = layer - cm->d.layer0, hd = cm->d.head_dim;
    if (i < 0 || i >= cm->nl || g < 0 || g >= cm->d.n_head_kv)
        return -1;
    const struct kv_layer *L = &cm->kvl[i];
    size_t base = (size_t)g * L->cap;
    int n = 0;
    if (cudaMemcpy(&n, L->n_used + g, 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        return -1;
    *n_used = n;
    if (pos && cudaMemcpy(pos, L->pos + base, (size_t)n * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        return -1;
    if (score &&
        cudaMemcpy(score, L->score + base, (size_t)n * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        return -1;
    if (k || v) {
        __half *h = (__half *)malloc((size_t)n * hd * 2 + 2);
        if (!h)
            return -1;
        for (int w = 0; w < 2; w++) {
            float *dst = w ? v : k;
            if (!dst)
                continue;
            if (cudaMemcpy(h, (w ? L->v : L->k) + base * hd, (size_t)n * hd * 2,
                           cudaMemcpyDeviceToHost) != cudaSuccess) {
                free(h);
                return -1;
            }
            for (size_t j = 0; j < (size_t)n * hd; j++)
                dst[j] = __half2float(h[j]);
        }
        free(h);
    }
    return 0;
}

extern "C" int cuda_model_kv_set(struct cuda_model *cm, int layer, int g, int n_used,
                                 const int32_t *pos, const float *score, const float *k,
                                 const float *v)
{
    int i = layer - cm->d.layer0, hd = cm->d.head_dim;
    if (i < 0 || i >= cm->nl || g < 0 || g >= cm->d.n_head_kv || n_used < 0 ||
        n_used > cm->kvl[i].cap)
        return -1;
    const struct kv_layer *L = &cm->kvl[i];
    size_t base = (size_t)g * L->cap;
    __half *h = (__half *)malloc((size_t)n_used * hd * 2 + 2);
    if (!h)
        return -1;
    int st = 0;
    for (int w = 0; w < 2 && !st; w++) {
        const float *src = w ? v : k;
        for (size_t j = 0; j < (size_t)n_used * hd; j++)
            h[j] = __float2half(src[j]);
        st = cudaMemcpy((w ? L->v : L->k) + base * hd, h, (size_t)n_used * hd * 2,
                        cudaMemcpyHostToDevice) != cudaSuccess;
    }
    free(h);
    if (st || cudaMemcpy(L->pos + base, pos, (size_t)n_used * 4, cudaMemcpyHostToDevice) ||
        cudaMemcpy(L->score + base, score, (size_t)n_used * 4, cudaMemcpyHostToDevice) ||
        cudaMemcpy(L->n_used + g, &n_used, 4, cudaMemcpyHostToDevice))
        return -1;
    return 0;
}

extern "C" void cuda_model_kv_truncate(struct cuda_model *cm, int n_past)
{
    if (n_past <= 0) {
        cudaMemsetAsync(cm->n_used_all, 0, (size_t)cm->nl * cm->d.n_head_kv * 4, cm->s);
    } else {
        kv_truncate_launch(cm->kvl_dev, cm->nl, cm->d.n_head_kv, cm->d.head_dim, n_past,
                           cm->victim, cm->lists, cm->vstride, cm->s);
    }
    cudaStreamSynchronize(cm->s);
}

extern "C" int cuda_model_kv_counts(struct cuda_model *cm, int *counts)
{
    return cudaMemcpy(counts, cm->n_used_all, (size_t)cm->nl * cm->d.n_head_kv * 4,
                      cudaMemcpyDeviceToHost) == cudaSuccess ? 0 : -1;
}
