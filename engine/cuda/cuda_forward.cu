/*
 * cuda_forward.cu — the GPU model's forward pass: the products (matrix-vector kernels for a few
 * rows, cuda_mmf for short batches of quantized weights, cuBLAS on f16 for longer ones), the
 * layers with their attention (cuda_attn.cu, cuda_attn_dec.cu), the output head, and the decode
 * step captured into CUDA graphs per context bucket.  The state is cuda_model_impl.h's, built by
 * cuda_model.cu.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_profiler_api.h>

#include "cuda_mmv.h"
#include "cuda_model_impl.h"
#include "quant.h"

/* ---- products ------------------------------------------------------------------------------- */

/*
 * Does a product of n rows with w take the matrix-vector kernels?  Every type below GEMM_MIN
 * rows; the q8_1 types up to cm->mmv_rows (KF_CUDA_MMV_ROWS, default 16; the k-quants 11 where
 * cuda_mmf runs, which is faster for them from 12 rows on), 8 tokens a launch
 * (cuda_mmv_rows): a short chat turn then reads the quantized weights twice instead of
 * dequantizing all of them to f16 for cuBLAS (2.1× faster at 8 tokens, 1.2× at 16), and
 * multiplies exactly as a decode step does (integer dots on the CPU's rounding).
 */
static int mmv_path(const struct cuda_model *cm, const struct dw *w, int n)
{
    return n < GEMM_MIN ||
           (n <= (cuda_mmv_is_kquant(w->type) ? cm->mmv_rows_k : cm->mmv_rows) &&
            cuda_mmv_wants_q8_1(w->type));
}

/* With KF_CUDA_MMQ=1 (cm->mmq), longer batches of the integer types go to the int8 tensor cores
 * (cuda_mmq.cu: the CPU's arithmetic instead of f16 operands); the rest to cuBLAS. */
static int mmq_path(const struct cuda_model *cm, const struct dw *w, int n)
{
    return cm->mmq && !mmv_path(cm, w, n) && cuda_mmv_wants_q8_1(w->type);
}

/* Batches of up to cm->mmf_max rows (KF_CUDA_MMF_MAX) of the integer types take cuda_mmf:
 * cuBLAS's f16 operands, the weights dequantized in shared memory instead of in memory. */
static int mmf_path(const struct cuda_model *cm, const struct dw *w, int n)
{
    return n <= cm->mmf_max && !mmv_path(cm, w, n) && !mmq_path(cm, w, n) &&
           cuda_mmv_wants_q8_1(w->type);
}

/* The operand a product of n rows with w reads: q8_1 rows (cm->xq) or f16 (cm->xh, cuBLAS). */
static int wants_q(const struct cuda_model *cm, const struct dw *w, int n)
{
    return mmq_path(cm, w, n) || (mmv_path(cm, w, n) && cuda_mmv_wants_q8_1(w->type));
}

static int wants_h(const struct cuda_model *cm, const struct dw *w, int n)
{
    return !mmv_path(cm, w, n) && !mmq_path(cm, w, n);
}

/* Was x (n rows) already rounded for w, as q8_1 (integer kernels) or f16 (cuBLAS)? */
static int prepared(const struct cuda_model *cm, const struct dw *w, const float *x, int n)
{
    if (cm->prep_x != x || cm->prep_mode != w->act || cm->prep_n != n)
        return 0;
    return wants_q(cm, w, n) ? cm->prep_q : wants_h(cm, w, n) ? cm->prep_h : 1;
}

/* x (n rows) is now rounded for weights of activation format mode: as q8_1 (q), as f16 (h). */
static void mark_prepared(struct cuda_model *cm, const float *x, int mode, int n, int q, int h)
{
    cm->prep_x = x;
    cm->prep_mode = mode;
    cm->prep_n = n;
    cm->prep_q = q;
    cm->prep_h = h;
}

/* out = norm(x)·nw (+ nb: LayerNorm), rounded on the way for w when that saves a pass (w may be
 * NULL). */
static void norm_for(struct cuda_model *cm, const float *x, const float *nw, const float *nb,
                     int n, float *out, const struct dw *w)
{
    const struct cuda_model_desc *d = &cm->d;
    cm->prep_x = NULL;
    int mode = w ? w->act : ACT_NONE;
    /* float weights take f16 operands in cuBLAS (prompt batches): written here too */
    if (!w || (mode == ACT_NONE && n < GEMM_MIN) || (mode == ACT_Q8_256 && d->n_embd % 256)) {
        ops_norm(x, nw, nb, d->norm_layer, n, d->n_embd, d->eps, out, ACT_NONE, NULL, NULL,
                 cm->s);
        return;
    }
    int q = wants_q(cm, w, n), h = wants_h(cm, w, n);
    ops_norm(x, nw, nb, d->norm_layer, n, d->n_embd, d->eps, out, mode, q ? cm->xq : NULL,
             h ? cm->xh : NULL, cm->s);
    mark_prepared(cm, out, mode, n, q, h);
}


/*
 * dst (n × rows, row stride rows) = xh · w[0..rows)ᵀ (+ dst when beta1) through cuBLAS on f16:
 * quantized weights dequantized into cm->wh a slab of rows at a time.
 */
static int gemm_rows(struct cuda_model *cm, const struct dw *w, int64_t rows, int n, float *dst,
                     int beta1)
{
    const float one = 1.0f, zero = 0.0f;
    int f16 = w->type == QTYPE_F16; /* already what cuBLAS takes: no copy */
    int64_t rows_per = f16 ? rows : (int64_t)(cm->wh_elems / (size_t)w->k);
    for (int64_t r0 = 0; r0 < rows; r0 += rows_per) {
        int64_t rn = rows - r0 < rows_per ? rows - r0 : rows_per;
        const void *A = f16 ? (const void *)((const char *)w->d + (size_t)r0 * w->row_bytes)
                            : (const void *)cm->wh;
        if (!f16 && cuda_dequant_f16(w->type, (const char *)w->d + (size_t)r0 * w->row_bytes,
                                     w->k, rn, cm->wh, cm->s))
            return -1;
        /* column-major view: C (rows × n) = W (rows × k, stored as k × rows) ᵀ · X (k × n) */
        if (cm->blas.gemm_ex(cm->cb, CUBLAS_OP_T, CUBLAS_OP_N, (int)rn, n, (int)w->k, &one, A,
                         CUDA_R_16F, (int)w->k, cm->xh, CUDA_R_16F, (int)w->k,
                         beta1 ? &one : &zero, dst + r0, CUDA_R_32F, (int)rows,
                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
            return -1;
    }
    return 0;
}

/*
 * y (n × w.n, row stride ldy) = x (n × w.k) · wᵀ, then + bias, + acc (acc may alias y; acc rows
 * have stride ldy too).  xq: x's q8_1 rows when the caller already made them (decode), or NULL.
 */
static int linear(struct cuda_model *cm, const struct dw *w, const float *x, int n, float *y,
                  const float *bias, const float *acc)
{
    cudaStream_t s = cm->s;
    if (mmv_path(cm, w, n)) {
        size_t qrow = (size_t)(w->k / 32) * 36;
        int q = cuda_mmv_wants_q8_1(w->type);
        if (q && !prepared(cm, w, x, n))
            ops_round_act(x, n, w->k, w->act, cm->xq, NULL, s);
        if (q && n > 1) {
            struct mmv_epilogue ep = { bias, acc };
            return cuda_mmv_rows(w->type, w->d, w->k, w->n, n, cm->xq, y, &ep, s) ? -1 : 0;
        }
        for (int t = 0; t < n; t++) {
            struct mmv_epilogue ep = { bias, acc ? acc + (size_t)t * w->n : NULL };
            if (cuda_mmv(w->type, w->d, w->k, w->n, x + (size_t)t * w->k,
                         q ? (const char *)cm->xq + t * qrow : NULL, y + (size_t)t * w->n, &ep,
                         s))
                return -1;
        }
        return 0;
    }
    if (mmq_path(cm, w, n)) {
        struct mmv_epilogue ep = { bias, acc };
        if (!prepared(cm, w, x, n))
            ops_round_act(x, n, w->k, w->act, cm->xq, NULL, s);
        return cuda_mmq(w->type, w->d, w->k, w->n, n, cm->xq, y, &ep, s) ? -1 : 0;
    }
    if (!prepared(cm, w, x, n))
        ops_round_act(x, n, w->k, w->act, NULL, cm->xh, s);
    if (mmf_path(cm, w, n)) {
        struct mmv_epilogue ep = { bias, acc };
        return cuda_mmf(w->type, w->d, w->k, w->n, n, cm->xh, y, &ep, cm->part, MMF_PART_FLOATS,
                        s)
                   ? -1
                   : 0;
    }
    /* a residual in place (acc == y) is cuBLAS's beta = 1; a bias, or a residual from elsewhere,
     * goes through tmp (callers pass acc only for n_embd rows) */
    int inplace = acc && acc == y && !bias;
    float *dst = acc && !inplace ? cm->tmp : y;
    if (gemm_rows(cm, w, w->n, n, dst, inplace))
        return -1;
    if ((acc && !inplace) || bias)
        ops_epilogue(y, dst, bias, acc, n, (int)w->n, s);
    return 0;
}

/* gu layout for the prompt path: rows of 2·n_ff (gate | up) → ffa = act(gate)·up. */
static int ffn_glu(struct cuda_model *cm, const struct glayer *l, int n)
{
    int64_t nff = cm->d.n_ff, k = l->w_gu.k;
    if (mmv_path(cm, &l->w_gu, n)) {
        size_t qrow = (size_t)(k / 32) * 36;
        int q = cuda_mmv_wants_q8_1(l->w_gu.type);
        if (q && !prepared(cm, &l->w_gu, cm->xn, n))
            ops_round_act(cm->xn, n, k, l->w_gu.act, cm->xq, NULL, cm->s);
        if (q && n > 1)
            return cuda_mmv_glu_rows(l->w_gu.type, l->w_gu.d,
                                     (const char *)l->w_gu.d + (size_t)nff * l->w_gu.row_bytes, k,
                                     nff, n, cm->xq, cm->d.act ? MMV_ACT_GELU : MMV_ACT_SILU,
                                     cm->ffa, cm->s)
                       ? -1
                       : 0;
        for (int t = 0; t < n; t++)
            if (cuda_mmv_glu(l->w_gu.type, l->w_gu.d,
                             (const char *)l->w_gu.d + (size_t)nff * l->w_gu.row_bytes, k, nff,
                             cm->xn + (size_t)t * k, q ? (const char *)cm->xq + t * qrow : NULL,
                             cm->d.act ? MMV_ACT_GELU : MMV_ACT_SILU, cm->ffa + (size_t)t * nff,
                             cm->s))
                return -1;
        return 0;
    }
    /* longer batches: the gate | up rows (w_gu.n = 2·n_ff) as one product into gu */
    if (linear(cm, &l->w_gu, cm->xn, n, cm->gu, NULL, NULL))
        return -1;
    if (!wants_h(cm, &l->w_down, n)) { /* the integer kernels round ffa themselves */
        ops_glu(cm->gu, n, (int)nff, cm->d.act, cm->ffa, NULL, cm->s);
        return 0;
    }
    /* the down product's f16 operand (cuBLAS, cuda_mmf) is all it needs: no f32 copy */
    ops_glu(cm->gu, n, (int)nff, cm->d.act, NULL, cm->xh, cm->s);
    mark_prepared(cm, cm->ffa, l->w_down.act, n, 0, 1);
    return 0;
}

/* ---- forward -------------------------------------------------------------------------------- */


/* The main stream waits for the scores forked onto the side stream, if any are owed. */
static void side_join(struct cuda_model *cm)
{
    if (cm->side.pending) {
        cudaStreamWaitEvent(cm->s, cm->side.join, 0);
        cm->side.pending = 0;
    }
}

/* A decode step's q|k and v of two k-quant types (Q4_K_M's Q6_K v) in one launch
 * (cuda_mmv_pair): 0; 1 where they take two launches (a prompt, biases, KF_CUDA_PAIR=0, types
 * without a combined kernel); -1 on failure. */
static int qkv_pair(struct cuda_model *cm, const struct glayer *l, int n)
{
    const struct dw *a = &l->wqkv[0], *b = &l->wqkv[1];
    if (n != 1 || !cm->mmv_pair || l->nq != 2 || l->b_qkv || a->act != b->act || a->k != b->k ||
        !mmv_path(cm, a, 1) || !mmv_path(cm, b, 1) || !cuda_mmv_wants_q8_1(a->type) ||
        !cuda_mmv_wants_q8_1(b->type))
        return 1;
    if (!prepared(cm, a, cm->xn, 1)) { /* (marked: a refused pair's two launches reuse it) */
        ops_round_act(cm->xn, 1, a->k, a->act, cm->xq, NULL, cm->s);
        mark_prepared(cm, cm->xn, a->act, 1, 1, 0);
    }
    return cuda_mmv_pair(a->type, a->d, a->n, b->type, b->d, b->n, a->k, cm->xq, cm->qkv, cm->s);
}

/* span: no (layer, head) holds more than span slots during this call (grids cover it). */
static int run_layers(struct cuda_model *cm, int n, int span)
{
    const struct cuda_model_desc *d = &cm->d;
    int E = d->n_embd, hd = d->head_dim, G = d->n_head_kv;
    /* keyformer-static's freeze or slide, if due: only ever before a decode step (inside its
     * graph, so every step replays it and reads its op from the step record) */
    if (n == 1 && cm->conf.stat && !cm->conf.unbounded)
        kv_static_launch(cm->kvl_dev, cm->nl, &cm->conf, G, hd, cm->st, cm->victim, cm->lists,
                         cm->vstride, cm->s);
    for (int i = 0; i < cm->nl; i++) {
        struct glayer *l = &cm->L[i];
        int rc;
        /* attention block */
        /* Q/K/V products of different types (Q4_K_M's q6_K values) share the rounding when
         * their activation formats agree */
        int same = 1;
        for (int j = 1; j < l->nq; j++)
            same &= l->wqkv[j].act == l->wqkv[0].act &&
                    cuda_mmv_wants_q8_1(l->wqkv[j].type) == cuda_mmv_wants_q8_1(l->wqkv[0].type);
        norm_for(cm, cm->x, l->attn_norm, l->attn_norm_b, n, cm->xn, same ? &l->wqkv[0] : NULL);
        if (l->nq == 1) {
            if (linear(cm, &l->wqkv[0], cm->xn, n, cm->qkv, l->b_qkv, NULL))
                return -1;
        } else if ((rc = qkv_pair(cm, l, n)) < 0) {
            return -1;
        } else if (rc > 0) {
            /* separate products write strided pieces of each row through a bounce buffer;
             * one row (decode) is written in place */
            int off = 0;
            for (int j = 0; j < l->nq; j++) {
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
        if (d->clamp_kqv > 0.0f) /* mpt: q, k, v clamped after their biases, before RoPE */
            ops_clamp(cm->qkv, (int64_t)n * cm->row, d->clamp_kqv, cm->s);
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
        a.alibi = cm->alibi;
        a.kh = cm->kh;
        a.vh = cm->vh;
        a.side = cm->side.s ? &cm->side : NULL;
        side_join(cm); /* the previous layer's scores read the scratch this layer rewrites */
        attn_launch(&a, &l->rope, cm->s);
        cm->prep_x = NULL;
        if (a.out_mode != ACT_NONE && (a.out_mode != ACT_Q8_256 || (d->n_head * hd) % 256 == 0)) {
            mark_prepared(cm, cm->attn, a.out_mode, 1, 1, 0);
        }
        if (l->post_attn_norm) {
            if (linear(cm, &l->wo, cm->attn, n, cm->tmp, l->bo, NULL))
                return -1;
            ops_rmsnorm_add(cm->tmp, l->post_attn_norm, n, E, d->eps, cm->x, cm->s);
        } else if (linear(cm, &l->wo, cm->attn, n, cm->x, l->bo, cm->x))
            return -1;
        /* feed-forward block; parallel (gptj): on the attention's LN(x), still in xn */
        if (!d->parallel)
            norm_for(cm, cm->x, l->ffn_norm, l->ffn_norm_b, n, cm->xn, &l->w_gu);
        if (!d->gated) { /* gpt2, gptj: x += W_down·act(W_up·xn + b_up) + b_down */
            if (linear(cm, &l->w_gu, cm->xn, n, cm->ffa, l->b_up, NULL))
                return -1;
            ops_act(cm->ffa, (int64_t)n * d->n_ff, d->act, cm->s);
            if (linear(cm, &l->w_down, cm->ffa, n, cm->x, l->b_down, cm->x))
                return -1;
            continue;
        }
        if (ffn_glu(cm, l, n))
            return -1;
        if (l->post_ffn_norm) {
            if (linear(cm, &l->w_down, cm->ffa, n, cm->tmp, NULL, NULL))
                return -1;
            ops_rmsnorm_add(cm->tmp, l->post_ffn_norm, n, E, d->eps, cm->x, cm->s);
        } else if (linear(cm, &l->w_down, cm->ffa, n, cm->x, NULL, cm->x))
            return -1;
    }
    side_join(cm);
    kv_commit_launch(cm->kvl_dev, cm->nl, &cm->conf, G, hd, cm->st, cm->victim, cm->lists,
                     cm->vstride, cm->s);
    return 0;
}

/* Final norm and head over rows r0 .. r0+rows-1 of x into cm->logits. */
static int run_output(struct cuda_model *cm, int r0, int rows)
{
    const struct cuda_model_desc *d = &cm->d;
    int E = d->n_embd;
    norm_for(cm, cm->x + (size_t)r0 * E, cm->out_norm, cm->out_norm_b, rows, cm->xn, &cm->out);
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
    cm->side.pending = 0; /* a join owed inside the capture cannot be waited for outside it */
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
                                  int scoring, int stat_op, float *logits, int all_logits,
                                  float *x_out, char *err, size_t errlen)
{
    const struct cuda_model_desc *d = &cm->d;
    size_t E = (size_t)d->n_embd;
    int bound, bi = 0, span = 256, prof = 0;
    if (n < 1 || n > d->n_batch) {
        snprintf(err, errlen, "GPU: batch of %d tokens (max %d)", n, d->n_batch);
        return -1;
    }
    cm->st_host->pos0 = pos0;
    cm->st_host->n = n;
    cm->st_host->scoring = scoring;
    cm->st_host->stat_op = cm->conf.stat && !cm->conf.unbounded ? stat_op : 0;
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
    prof = n == 1 && cm->prof_step > 0 && --cm->prof_step == 0;
    if (prof)
        cudaProfilerStart();
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
        if (prof)
            cudaProfilerStop();
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
