/*
 * cuda_model.cu — the GPU part of a model: uploads the weights of the GPU layers once (quantized
 * as stored; Q/K/V and gate/up rows concatenated when their types agree, so each is one
 * product), owns the activations, the f16 KV cache and the scratch, and gives access to the
 * cache; cuda_forward.cu runs the forward pass.
 *
 * Decode (one token) uses the quantized matrix-vector kernels (cuda_mmv.cu) and is captured
 * once into a CUDA graph: everything that changes between steps (position, temperature, cache
 * counts) lives in device memory, so the same graph is replayed for every token.  Prompt
 * batches dequantize each weight to f16 and multiply with cuBLAS (f32 accumulation); fewer than
 * GEMM_MIN rows go through the matrix-vector kernels row by row, quantized weights up to
 * KF_CUDA_MMV_ROWS (16) rows through them 8 tokens a launch (cuda_forward.cu's mmv_path), and
 * up to KF_CUDA_MMF_MAX (64) rows through cuda_mmf, which dequantizes in shared memory.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_backend.h"
#include "cuda_internal.h"
#include "cuda_model_impl.h"
#include "cuda_mmv.h"
#include "cuda_ops.h"
#include "quant.h"
extern "C" {
#include "kv_cache.h"
#include "quant_ref.h"
}

/* Bytes of one cache row (key or value) of hd elements, as struct kv_layer lays it out. */
static int row_bytes(int hd, int q8)
{
    return (int)kv_type_row_bytes(q8 ? KV_TYPE_Q8_0 : KV_TYPE_F16, hd);
}

static int act_mode(uint32_t type)
{
    const struct quant_traits *t = quant_traits_get(type);
    if (!t || t->vec_dot_type == QTYPE_F32 || t->vec_dot_type == QTYPE_F16 ||
        t->vec_dot_type == QTYPE_BF16)
        return ACT_NONE;
    return t->vec_dot_type == QTYPE_Q8_K ? ACT_Q8_256 : ACT_Q8_32;
}

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
    if (cuda_mmv_pack(out->type, out->d, out->k, out->n, 0) != 0 ||
        cudaDeviceSynchronize() != cudaSuccess) {
        snprintf(err, errlen, "CUDA: weight layout failed: %s",
                 cudaGetErrorString(cudaGetLastError()));
        return -1;
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
        /* k and v rows; pos, score; lists */
        b += (size_t)G * l->cap * (2 * (size_t)row_bytes(hd, d->kv_q8) + 8 + 9);
        b += 8 * E * 4;
    }
    if (d->with_output)
        b += wbytes(&d->output) + (size_t)d->n_vocab * 4 * ((size_t)d->n_batch + 1);
    size_t nb = (size_t)d->n_batch, row = (size_t)(d->n_head + 2 * G) * hd;
    b += nb * (4 * E + 2 * row + 3 * (size_t)d->n_ff) * 4; /* attn: up to a qkv row */
    b += dequant_scratch_elems(d) * 2 + nb * ((size_t)d->n_ff > E ? d->n_ff : E) * 4;
    b += MMF_PART_FLOATS * 4; /* cuda_mmf's split-k partials */
    if (d->kv_q8) /* prefill's dequantized copy of one layer */
        b += (size_t)G * max_cap(d) * hd * 4;
    b += (size_t)d->n_head * max_cap(d) * 8 + nb * d->n_head * 16 +
         (size_t)attn_decode_tiles(max_cap(d)) * d->n_head * hd * 4;
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
                       l->k_norm, l->attn_norm_b, l->ffn_norm_b, l->b_up, l->b_down,
                       l->b_qkv, l->bo, l->wqkv[0].d, l->wqkv[1].d, l->wqkv[2].d,
                       l->wo.d, l->w_gu.d, l->w_down.d, (void *)l->rope.freq_factors };
        for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++)
            cudaFree(ps[j]);
    }
    for (int i = 0; cm->kvl && i < cm->nl; i++) {
        cudaFree(cm->kvl[i].k);
        cudaFree(cm->kvl[i].v);
        cudaFree(cm->kvl[i].pos);
        cudaFree(cm->kvl[i].score);
        cudaFree(cm->kvl[i].key);
    }
    void *ps[] = { cm->kvl_dev, cm->st, cm->x, cm->xn, cm->qkv, cm->attn, cm->gu, cm->ffa,
                   cm->tmp, cm->logits, cm->xq, cm->xh, cm->wh, cm->kh, cm->vh, cm->a_logits,
                   cm->a_noisy,
                   cm->a_stats, cm->a_partial, cm->a_pstats, cm->a_cnt, cm->victim, cm->lists,
                   cm->out_norm, cm->out_norm_b, cm->out_bias, cm->out.d,
                   cm->n_used_all, cm->alibi, cm->part };
    for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++)
        cudaFree(ps[j]);
    if (cm->st_host)
        cudaFreeHost(cm->st_host);
    if (cm->h_io)
        cudaFreeHost(cm->h_io);
    if (cm->cb)
        cm->blas.destroy(cm->cb);
    cuda_blas_close(&cm->blas);
    if (cm->s)
        cudaStreamDestroy(cm->s);
    if (cm->side.s)
        cudaStreamDestroy(cm->side.s);
    if (cm->side.fork)
        cudaEventDestroy(cm->side.fork);
    if (cm->side.join)
        cudaEventDestroy(cm->side.join);
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
        upload_f(cm, &l->bo, s->bo, E, err, errlen) ||
        upload_f(cm, &l->attn_norm_b, s->attn_norm_b, E, err, errlen) ||
        upload_f(cm, &l->ffn_norm_b, s->ffn_norm_b, E, err, errlen) ||
        upload_f(cm, &l->b_up, s->b_up, d->n_ff, err, errlen) ||
        upload_f(cm, &l->b_down, s->b_down, E, err, errlen))
        return -1;
    const float *bs[3] = { s->bq, s->bk, s->bv };
    int bn[3] = { d->n_head * hd, d->n_head_kv * hd, d->n_head_kv * hd };
    if (bias_cat(cm, &l->b_qkv, bs, bn, 3, err, errlen))
        return -1;
    const struct cuda_weight *qkv[3] = { &s->wq, &s->wk, &s->wv };
    /* runs of one type become one product: q|k|v, or q|k and v (Q4_K_M's q6_K values), ... */
    l->nq = 0;
    for (int j = 0, run; j < 3; j += run) {
        for (run = 1; j + run < 3 && qkv[j + run]->type == qkv[j]->type; run++)
            ;
        if (upload_cat(cm, &l->wqkv[l->nq++], &qkv[j], run, err, errlen))
            return -1;
    }
    const struct cuda_weight *wo[1] = { &s->wo }, *gu[2] = { &s->w_gate, &s->w_up },
                             *dn[1] = { &s->w_down };
    if (!s->w_gate.data)
        gu[0] = &s->w_up; /* plain FFN: the up rows alone */
    if (s->w_gate.data && s->w_gate.type != s->w_up.type) {
        snprintf(err, errlen, "GPU: layer %d: gate and up weights of different types",
                 d->layer0 + i);
        return -1;
    }
    if (upload_cat(cm, &l->wo, wo, 1, err, errlen) ||
        upload_cat(cm, &l->w_gu, gu, s->w_gate.data ? 2 : 1, err, errlen) ||
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
    kv->q8 = d->kv_q8;
    kv->rowb = row_bytes(hd, d->kv_q8);
    if (dev_alloc(cm, (void **)&kv->k, slots * kv->rowb, err, errlen) ||
        dev_alloc(cm, (void **)&kv->v, slots * kv->rowb, err, errlen) ||
        dev_alloc(cm, (void **)&kv->pos, slots * 4, err, errlen) ||
        dev_alloc(cm, (void **)&kv->score, slots * 4, err, errlen))
        return -1;
    if (d->policy == KV_P_KEYFORMER_STATIC) {
        if (dev_alloc(cm, (void **)&kv->key, slots, err, errlen) ||
            cudaMemset(kv->key, 0, slots) != cudaSuccess)
            return -1;
    }
    kv->n_used = cm->n_used_all + (size_t)i * d->n_head_kv;
    return 0;
}

extern "C" int cuda_model_new(struct cuda_model **out, const struct cuda_model_desc *d, char *err,
                              size_t errlen)
{
    *out = NULL;
    int stat, hd8 = d->head_dim / 8; /* decode attention: hd/8 lanes per key must divide a warp */
    if (d->n_head % d->n_head_kv || d->n_head / d->n_head_kv > 16 || d->head_dim % 8 ||
        (d->kv_q8 && d->head_dim % 32) ||
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
    if (!getenv("KF_CUDA_SIDE") || strcmp(getenv("KF_CUDA_SIDE"), "0")) {
        CU_TRY(cudaStreamCreateWithFlags(&cm->side.s, cudaStreamNonBlocking));
        CU_TRY(cudaEventCreateWithFlags(&cm->side.fork, cudaEventDisableTiming));
        CU_TRY(cudaEventCreateWithFlags(&cm->side.join, cudaEventDisableTiming));
    }
    if (cuda_blas_open(&cm->blas, err, errlen))
        goto fail;
    if (cm->blas.create(&cm->cb) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cuBLAS: cannot create a handle");
        cm->cb = NULL;
        goto fail;
    }
    cm->blas.set_stream(cm->cb, cm->s);
    cm->blas.set_math_mode(cm->cb, CUBLAS_DEFAULT_MATH);
    if (dev_alloc(cm, (void **)&cm->n_used_all, (size_t)cm->nl * G * 4, err, errlen))
        goto fail;
    CU_TRY(cudaMemset(cm->n_used_all, 0, (size_t)cm->nl * G * 4));
    for (int i = 0; i < cm->nl; i++)
        if (build_layer(cm, i, err, errlen))
            goto fail;
    /* keyformer-static scores as Keyformer with τ constant (kv_cache_tau) until the freeze */
    stat = d->policy == KV_P_KEYFORMER_STATIC;
    cm->conf = (struct kv_conf){ stat ? KV_P_KEYFORMER : d->policy, d->budget, d->recent,
                                 d->n_sink, d->budget <= 0, stat, d->seed, d->tau_init,
                                 stat ? d->tau_init : d->tau_end, d->tau_steps };
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
        /* attn is also the bounce buffer of separate Q/K/V products (a piece up to a row) */
        dev_alloc(cm, (void **)&cm->attn, nbz * cm->row * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->gu, nbz * 2 * d->n_ff * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->ffa, nbz * d->n_ff * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->tmp, nbz * E * 4, err, errlen) ||
        dev_alloc(cm, &cm->xq, nbz * (cm->max_k / 32) * 36, err, errlen) ||
        dev_alloc(cm, (void **)&cm->xh, nbz * cm->max_k * 2, err, errlen) ||
        dev_alloc(cm, (void **)&cm->wh, cm->wh_elems * 2, err, errlen) ||
        (d->kv_q8 && (dev_alloc(cm, (void **)&cm->kh, (size_t)G * cm->maxcap * hd * 2, err,
                                errlen) ||
                      dev_alloc(cm, (void **)&cm->vh, (size_t)G * cm->maxcap * hd * 2, err,
                                errlen))) ||
        dev_alloc(cm, (void **)&cm->a_logits, (size_t)d->n_head * cm->maxcap * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_noisy, (size_t)d->n_head * cm->maxcap * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_stats, nbz * d->n_head * 16, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_partial,
                  (size_t)attn_decode_tiles(cm->maxcap) * d->n_head * hd * 4, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_pstats,
                  (size_t)attn_decode_tiles(cm->maxcap) * d->n_head * 16, err, errlen) ||
        dev_alloc(cm, (void **)&cm->victim, (size_t)cm->nl * G * cm->vstride, err, errlen) ||
        dev_alloc(cm, (void **)&cm->lists, (size_t)cm->nl * G * cm->vstride * 8, err, errlen) ||
        dev_alloc(cm, (void **)&cm->a_cnt, ((size_t)d->n_head * hd / 256 + 1 + d->n_head_kv) * 4,
                  err, errlen) ||
        dev_alloc(cm, (void **)&cm->part, MMF_PART_FLOATS * 4, err, errlen))
        goto fail;
    CU_TRY(cudaMemset(cm->a_cnt, 0, ((size_t)d->n_head * hd / 256 + 1 + d->n_head_kv) * 4));
    if (upload_f(cm, &cm->alibi, d->alibi, (size_t)d->n_head, err, errlen))
        goto fail;
    CU_TRY(cudaMemcpy(cm->kvl_dev, cm->kvl, sizeof(struct kv_layer) * cm->nl,
                      cudaMemcpyHostToDevice));
    CU_TRY(cudaMallocHost((void **)&cm->st_host, sizeof(struct kstep)));
    cm->h_io_floats = nbz * (E > d->n_vocab ? E : d->n_vocab);
    CU_TRY(cudaMallocHost((void **)&cm->h_io, cm->h_io_floats * 4));
    if (d->with_output) {
        const struct cuda_weight *o[1] = { &d->output };
        if (upload_f(cm, &cm->out_norm, d->output_norm, E, err, errlen) ||
            upload_f(cm, &cm->out_norm_b, d->output_norm_b, E, err, errlen) ||
            upload_f(cm, &cm->out_bias, d->output_bias, d->n_vocab, err, errlen) ||
            upload_cat(cm, &cm->out, o, 1, err, errlen) ||
            dev_alloc(cm, (void **)&cm->logits, nbz * d->n_vocab * 4, err, errlen))
            goto fail;
    }
    cm->graph_state = getenv("KF_CUDA_GRAPH") && !strcmp(getenv("KF_CUDA_GRAPH"), "0") ? -1 : 0;
    /* H100, Llama-2-7B Q4_K_M, prompt t/s, cuBLAS against these kernels: 8 tokens 540 / 1125,
     * 16: 1078 / 1313, 32: 2128 / 1437 (they are compute-bound at ~1,450 t/s) */
    cm->mmv_rows = getenv("KF_CUDA_MMV_ROWS") ? atoi(getenv("KF_CUDA_MMV_ROWS")) : 16;
    /* KF_CUDA_MMQ=1: prompt batches of quantized weights on the int8 tensor cores, with the
     * CPU's arithmetic, instead of cuBLAS on f16.  Not the default: at 24 to 512 tokens it ran
     * at 0.5-0.6× of cuBLAS (H100, Llama-2-7B Q4_K_M pp512 8,128 against 18,925 t/s), and the
     * logits moved no closer to the CPU's (docs/cuda.md, "Prompt path"). */
    cm->mmq = getenv("KF_CUDA_MMQ") && !strcmp(getenv("KF_CUDA_MMQ"), "1") &&
              cuda_mmq_supported(QTYPE_Q4_0);
    /* KF_CUDA_MMF_MAX=N: batches of up to N rows through cuda_mmf (0: cuBLAS from the
     * matrix-vector kernels' limit on) */
    cm->mmf_max = !cuda_mmq_supported(QTYPE_Q4_0) ? 0
                  : getenv("KF_CUDA_MMF_MAX")      ? atoi(getenv("KF_CUDA_MMF_MAX"))
                                                   : 64;
    /* H100, Llama-2-7B, prompt t/s, the decode kernels against cuda_mmf: Q4_K_M 9 tokens 1041 /
     * 941, 10: 1041 / 1037, 12: 1153 / 1252, 16: 1282 / 1649; Q4_0 16: 1965 / 1664 */
    cm->mmv_rows_k = getenv("KF_CUDA_MMV_ROWS") ? cm->mmv_rows : cm->mmf_max >= 16 ? 11 : 16;
    /* KF_CUDA_PAIR=0: decode's q|k and v of different types (Q4_K_M's Q6_K v) as two launches */
    cm->mmv_pair = !(getenv("KF_CUDA_PAIR") && !strcmp(getenv("KF_CUDA_PAIR"), "0"));
    /* `ncu --profile-from-start off` then sees the kernels of that one decode step only */
    cm->prof_step = getenv("KF_CUDA_PROFILE_STEP") ? atoi(getenv("KF_CUDA_PROFILE_STEP")) : 0;
    CU_TRY(cudaStreamSynchronize(cm->s));
    *out = cm;
    return 0;
fail:
    cuda_model_free(cm);
    return -1;
}

/* ---- cache access ----------------------------------------------------------------------------- */

/*
 * n cache rows (struct kv_layer's layout) to floats and back.  q8_0 goes through the engine's
 * reference quantizer, which k_qk_store's rounding matches bit for bit; rounding values that
 * came out of a q8_0 row gives the same row again (amax = 127·d exactly), so a snapshot
 * survives any number of round trips.
 */
static void rows_to_f32(const uint8_t *src, size_t n, int hd, int q8, float *dst)
{
    int rowb = row_bytes(hd, q8);
    struct blk_q8_0 b;
    for (size_t r = 0; r < n; r++) {
        const uint8_t *row = src + r * rowb;
        for (int j = 0; !q8 && j < hd; j++)
            dst[r * hd + j] = __half2float(((const __half *)row)[j]);
        for (int j = 0; q8 && j < hd / 32; j++) {
            memcpy(&b.d, row + hd + 2 * j, 2);
            memcpy(b.qs, row + 32 * j, 32);
            dequant_q8_0_ref(&b, dst + r * hd + 32 * j, 32);
        }
    }
}

static void rows_from_f32(const float *src, size_t n, int hd, int q8, uint8_t *dst)
{
    int rowb = row_bytes(hd, q8);
    struct blk_q8_0 b;
    memset(dst, 0, n * rowb);
    for (size_t r = 0; r < n; r++) {
        uint8_t *row = dst + r * rowb;
        for (int j = 0; !q8 && j < hd; j++)
            ((__half *)row)[j] = __float2half(src[r * hd + j]);
        for (int j = 0; q8 && j < hd / 32; j++) {
            quantize_q8_0_ref(src + r * hd + 32 * j, &b, 32);
            memcpy(row + hd + 2 * j, &b.d, 2);
            memcpy(row + 32 * j, b.qs, 32);
        }
    }
}

extern "C" int cuda_model_kv_get(struct cuda_model *cm, int layer, int g, int *n_used,
                                 int32_t *pos, float *score, uint8_t *key, float *k, float *v)
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
    if (key && !L->key)
        memset(key, 0, (size_t)n);
    else if (key && cudaMemcpy(key, L->key + base, (size_t)n, cudaMemcpyDeviceToHost) != cudaSuccess)
        return -1;
    if (k || v) {
        uint8_t *h = (uint8_t *)malloc((size_t)n * L->rowb + 8);
        if (!h)
            return -1;
        for (int w = 0; w < 2; w++) {
            float *dst = w ? v : k;
            if (!dst)
                continue;
            if (cudaMemcpy(h, (uint8_t *)(w ? L->v : L->k) + base * L->rowb, (size_t)n * L->rowb,
                           cudaMemcpyDeviceToHost) != cudaSuccess) {
                free(h);
                return -1;
            }
            rows_to_f32(h, (size_t)n, hd, L->q8, dst);
        }
        free(h);
    }
    return 0;
}

extern "C" int cuda_model_kv_set(struct cuda_model *cm, int layer, int g, int n_used,
                                 const int32_t *pos, const float *score, const uint8_t *key,
                                 const float *k, const float *v)
{
    int i = layer - cm->d.layer0, hd = cm->d.head_dim;
    if (i < 0 || i >= cm->nl || g < 0 || g >= cm->d.n_head_kv || n_used < 0 ||
        n_used > cm->kvl[i].cap)
        return -1;
    const struct kv_layer *L = &cm->kvl[i];
    size_t base = (size_t)g * L->cap;
    uint8_t *h = (uint8_t *)malloc((size_t)n_used * L->rowb + 8);
    if (!h)
        return -1;
    int st = 0;
    for (int w = 0; w < 2 && !st; w++) {
        rows_from_f32(w ? v : k, (size_t)n_used, hd, L->q8, h);
        st = cudaMemcpy((uint8_t *)(w ? L->v : L->k) + base * L->rowb, h,
                        (size_t)n_used * L->rowb, cudaMemcpyHostToDevice) != cudaSuccess;
    }
    free(h);
    if (st || cudaMemcpy(L->pos + base, pos, (size_t)n_used * 4, cudaMemcpyHostToDevice) ||
        cudaMemcpy(L->score + base, score, (size_t)n_used * 4, cudaMemcpyHostToDevice) ||
        cudaMemcpy(L->n_used + g, &n_used, 4, cudaMemcpyHostToDevice))
        return -1;
    if (L->key && /* no key token at or past n_used (cuda_internal.h) */
        (cudaMemset(L->key + base, 0, (size_t)L->cap) != cudaSuccess ||
         (key && cudaMemcpy(L->key + base, key, (size_t)n_used, cudaMemcpyHostToDevice))))
        return -1;
    return 0;
}

extern "C" void cuda_model_kv_truncate(struct cuda_model *cm, int n_past)
{
    if (n_past <= 0) {
        cudaMemsetAsync(cm->n_used_all, 0, (size_t)cm->nl * cm->d.n_head_kv * 4, cm->s);
        for (int i = 0; i < cm->nl; i++)
            if (cm->kvl[i].key)
                cudaMemsetAsync(cm->kvl[i].key, 0, (size_t)cm->d.n_head_kv * cm->kvl[i].cap,
                                cm->s);
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
