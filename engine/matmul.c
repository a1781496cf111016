/*
 * matmul.c — y = x · Wᵀ over quantized weights: the decode path (vec_dot per output), the batch
 * path (dequantized weight tiles × f32 activations in an AVX-512 register-blocked kernel), the
 * OpenBLAS hand-off, and embedding lookup.  See matmul.h for the contract.
 *
 * Determinism.  Every output element is produced by one thread with an operation order that
 * depends only on (k, b, type) and on which path was chosen, never on the thread count or on
 * which thread took which rows.
 */
#include "config.h"
#include "matmul.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "half.h"
#include "quant.h"
#include "status.h"
#include "threadpool.h"

/* building with -DKF_NO_SIMD exercises the portable fallbacks on x86 too */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(KF_NO_SIMD)
#define MM_X86 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))
#else
#define MM_X86 0
#endif

/*
 * Batch kernel geometry.  A micro-tile is MR activation rows × NR weight rows; its 2·MR zmm
 * accumulators (24 of 32 registers) hold NR outputs of a row each, so results are stored as whole
 * vectors into y's rows.  KC is one k-block: an activation micro-panel (MR × KC f32, 24 KiB)
 * stays in L1 while transposed weight tiles (KC × NR, 64 KiB each) stream past it from L2.
 * KC is a multiple of every block size, so tiles dequantize in whole blocks.  Measured on the
 * F32 path against OpenBLAS's SkylakeX sgemm, one thread, b = 512: KC = 256 ran at 0.90× of it,
 * KC = 512 and 768 at 0.95-1.0×; MR = 14 (28 accumulators) was slower than 12.
 */
#define MR 12
#define NR 32
#define KC 512
#define BC (43 * MR) /* activation rows per chunk: BC × KC f32 = 1 MiB, in L2 */
#define JB 256       /* weight rows dequantized per block: JB × KC f32 = 512 KiB, in L2 */

#define DEC_XQ_ROWS 64 /* activation rows quantized per decode pass (per weight type) */
/*
 * Decode prefetch distance in bytes (into L2).  The hardware prefetchers alone left memory
 * fetch and vec_dot almost serialized: Q4_K b=1 on 2 pinned cores of a Xeon (model 207)
 * streamed 16 GB/s without, 24.5 GB/s with 4 KiB (1, 2 and 8 KiB: 18-22 GB/s).
 */
#define DEC_PREFETCH 4096

struct mm_scratch {
    float *xpack; /* BC × KC: activation chunk, MR rows interleaved per k index */
    float *wtmp;  /* NR × KC: dequantized weight rows of one tile */
    float *wpack; /* JB/NR tiles of KC × NR: transposed (NR consecutive weights per k) */
    void *xqrow;  /* one activation row quantized to a vec_dot_type (batch rounding) */
};

struct mm_ctx {
    int64_t max_k;
    int n_threads;
    int batch_ok;                  /* the CPU runs the AVX-512 batch kernel */
    int blas_ok;                   /* OpenBLAS runs an AVX-512 sgemm (see blas_is_fast) */
    int64_t xq_rows;               /* activation rows per quantization slot */
    size_t xq_row_bytes;           /* bytes of one quantized row of max_k (any activation type) */
    void *xq[MATMUL_MULTI_MAX];    /* one slot per distinct vec_dot_type in a matmul_multi call */
    struct mm_scratch *thr;        /* n_threads entries */
    int64_t max_b;
    float *xr;                     /* max_b × max_k: activations rounded through the vec_dot_type */
};

static int cpu_has_avx512(void)
{
#if MM_X86
    static atomic_int level = -1;  /* once-initialized CPU feature flag */
    int l = atomic_load_explicit(&level, memory_order_relaxed);
    if (l < 0) {
        __builtin_cpu_init();
        l = __builtin_cpu_supports("avx512f") ? 1 : 0;
        atomic_store_explicit(&level, l, memory_order_relaxed);
    }
    return l;
#else
    return 0;
#endif
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

#ifdef HAVE_OPENBLAS
/*
 * OpenBLAS takes one case only: F32 weights with b >= BLAS_MIN_B, and only when it runs an
 * AVX-512 kernel.  Measured at k = 2048, n = 5632, 2 threads: F32 b = 512 OpenBLAS (SkylakeX)
 * 252 GFLOP/s vs ours 205, b = 32-64 about 7 % faster.  For F16 and quantized weights,
 * dequantizing row blocks for sgemm lost to our kernel, 1.3-1.5× at b = 512 (Q4_K 116 vs 148,
 * Q6_K 133 vs 198, F16 186 vs 244) and more at b <= 64, as llama.cpp found.  OpenBLAS 0.3.21
 * (Debian 12) does not recognise the family 6 model 207 Xeon and falls back to its Prescott (SSE3)
 * kernels, 4-5× slower than ours, so we check the core it chose (OPENBLAS_CORETYPE=SkylakeX in
 * the environment fixes the detection).
 */
#define BLAS_MIN_B 32

char *openblas_get_corename(void);

static int blas_is_fast(void)
{
    static const char *const fast[] = { "skylakex", "cooperlake", "sapphirerapids" };
    const char *name = openblas_get_corename();
    for (size_t i = 0; name && i < sizeof(fast) / sizeof(fast[0]); i++)
        if (strcasecmp(name, fast[i]) == 0)
            return 1;
    return 0;
}

/* Called from the pool's caller thread only; OpenBLAS uses as many threads as our pool. */
static void blas_sgemm(struct threadpool *p, const struct mm_weight *w, const float *x, int64_t b,
                       float *y)
{
    openblas_set_num_threads(threadpool_n_threads(p));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)b, (blasint)w->n, (blasint)w->k,
                1.0f, x, (blasint)w->k, (const float *)w->data, (blasint)w->k, 0.0f, y,
                (blasint)w->n);
}
#endif

/* ---- context ---------------------------------------------------------------------------- */

/*
 * Largest bytes per row of max_k elements over every type some weight type dots with (F32
 * activations are read from x directly and need no slot).
 */
static size_t act_row_bytes(int64_t max_k)
{
    const int64_t kk = (max_k + QK_K - 1) / QK_K * QK_K; /* a multiple of every block size */
    size_t best = 64;
    for (uint32_t t = 0; t < QTYPE_COUNT; t++) {
        const struct quant_traits *tr = quant_traits_get(t);
        if (!tr || !tr->supported || tr->vec_dot_type == QTYPE_F32)
            continue;
        const size_t s = quant_row_size(tr->vec_dot_type, kk);
        if (s > best)
            best = s;
    }
    return best;
}

void mm_ctx_free(struct mm_ctx *ctx)
{
    if (!ctx)
        return;
    for (int i = 0; i < MATMUL_MULTI_MAX; i++)
        free(ctx->xq[i]);
    free(ctx->xr);
    if (ctx->thr) {
        for (int t = 0; t < ctx->n_threads; t++) {
            free(ctx->thr[t].xpack);
            free(ctx->thr[t].wtmp);
            free(ctx->thr[t].wpack);
            free(ctx->thr[t].xqrow);
        }
        free(ctx->thr);
    }
    free(ctx);
}

struct mm_ctx *mm_ctx_new(int64_t max_k, int64_t max_b, int n_threads)
{
    struct mm_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    quant_init();
    ctx->max_k = max_k < 1 ? 1 : max_k;
    ctx->n_threads = n_threads < 1 ? 1 : n_threads;
    ctx->batch_ok = cpu_has_avx512();
#ifdef HAVE_OPENBLAS
    ctx->blas_ok = blas_is_fast();
#endif
    /* larger b is quantized and multiplied in passes of xq_rows rows */
    ctx->xq_rows = min64(max_b < 1 ? 1 : max_b, DEC_XQ_ROWS);
    ctx->xq_row_bytes = act_row_bytes(ctx->max_k);
    for (int i = 0; i < MATMUL_MULTI_MAX; i++) {
        ctx->xq[i] = aligned_alloc(64, (ctx->xq_rows * ctx->xq_row_bytes + 63) / 64 * 64);
        if (!ctx->xq[i])
            goto fail;
    }
    ctx->thr = calloc((size_t)ctx->n_threads, sizeof(*ctx->thr));
    if (!ctx->thr)
        goto fail;
    if (ctx->batch_ok) {
        for (int t = 0; t < ctx->n_threads; t++) {
            struct mm_scratch *s = &ctx->thr[t];
            s->xpack = aligned_alloc(64, (size_t)BC * KC * sizeof(float));
            s->wtmp = aligned_alloc(64, (size_t)NR * KC * sizeof(float));
            s->wpack = aligned_alloc(64, (size_t)KC * JB * sizeof(float));
            s->xqrow = aligned_alloc(64, (ctx->xq_row_bytes + 63) / 64 * 64);
            if (!s->xpack || !s->wtmp || !s->wpack || !s->xqrow)
                goto fail;
        }
        ctx->max_b = max_b < 1 ? 1 : max_b;
        ctx->xr = aligned_alloc(64, ((size_t)(ctx->max_b * ctx->max_k) * sizeof(float) + 63) / 64 * 64);
        if (!ctx->xr)
            goto fail;
    }
    return ctx;
fail:
    mm_ctx_free(ctx);
    return NULL;
}

/* ---- decode path: quantize activations, one vec_dot per output ---------------------------- */

struct dec_job {
    int nw;
    const struct mm_weight *w[MATMUL_MULTI_MAX];
    const struct quant_traits *tr[MATMUL_MULTI_MAX];
    float *y[MATMUL_MULTI_MAX];
    const char *xa[MATMUL_MULTI_MAX];   /* activation rows for weight i (quantized or x) */
    size_t xa_stride[MATMUL_MULTI_MAX]; /* bytes between activation rows */
    size_t w_stride[MATMUL_MULTI_MAX];  /* bytes between weight rows */
    int64_t chunk_start[MATMUL_MULTI_MAX + 1]; /* first chunk index of each weight */
    int64_t chunk_rows;
    int64_t b;                          /* activation rows in this pass */
    int64_t i0;                         /* index of this pass's first row in y */
    /* quantization sub-job */
    const float *x;
    int n_slots;
    int slot_of[MATMUL_MULTI_MAX];      /* weight i reads slot slot_of[i] */
    const struct quant_traits *slot_tr[MATMUL_MULTI_MAX];
    char *slot_buf[MATMUL_MULTI_MAX];
    size_t slot_stride[MATMUL_MULTI_MAX];
    atomic_llong next;                  /* next chunk to take */
};

static void dec_quantize_thread(void *arg, int ith, int nth)
{
    struct dec_job *j = arg;
    const int64_t k = j->w[0]->k;
    /* rows interleaved across threads; every row is quantized by exactly one thread */
    for (int s = 0; s < j->n_slots; s++)
        for (int64_t i = ith; i < j->b; i += nth)
            j->slot_tr[s]->from_f32(j->x + i * k, j->slot_buf[s] + i * j->slot_stride[s], k);
}

static void dec_thread(void *arg, int ith, int nth)
{
    struct dec_job *j = arg;
    (void)ith;
    (void)nth;
    for (;;) {
        const int64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->chunk_start[j->nw])
            break;
        int wi = 0;
        while (c >= j->chunk_start[wi + 1])
            wi++;
        const struct mm_weight *w = j->w[wi];
        const quant_vec_dot_fn dot = j->tr[wi]->vec_dot;
        const int64_t r0 = (c - j->chunk_start[wi]) * j->chunk_rows;
        const int64_t r1 = min64(r0 + j->chunk_rows, w->n);
        float *y = j->y[wi] + j->i0 * w->n;
        const char *end = (const char *)w->data + w->n * j->w_stride[wi];
        /* rows outer: a weight row is read from memory once and reused for all b activations */
        for (int64_t r = r0; r < r1; r++) {
            const char *wr = (const char *)w->data + r * j->w_stride[wi];
            if (wr + DEC_PREFETCH + j->w_stride[wi] <= end)
                for (size_t o = 0; o < j->w_stride[wi]; o += 64)
                    __builtin_prefetch(wr + DEC_PREFETCH + o, 0, 2);
            for (int64_t i = 0; i < j->b; i++)
                dot((int)w->k, &y[i * w->n + r], wr, j->xa[wi] + i * j->xa_stride[wi]);
        }
    }
}

/* Rows per work chunk: enough chunks for dynamic balance, few enough to keep the atomic cheap. */
static int64_t dec_chunk_rows(int64_t total_rows, int nth)
{
    int64_t c = total_rows / ((int64_t)nth * 8);
    c = (c + 15) / 16 * 16;
    return c < 16 ? 16 : c > 256 ? 256 : c;
}

static void matmul_decode(struct threadpool *p, struct mm_ctx *ctx, int nw,
                          const struct mm_weight *const *w, const float *x, int64_t b,
                          float *const *y)
{
    const int nth = threadpool_n_threads(p);
    const int64_t k = w[0]->k;
    struct dec_job j = { .nw = nw, .x = x };
    int64_t total_rows = 0;

    for (int i = 0; i < nw; i++) {
        j.w[i] = w[i];
        j.tr[i] = quant_traits_get(w[i]->type);
        j.y[i] = y[i];
        j.w_stride[i] = quant_row_size(w[i]->type, k);
        total_rows += w[i]->n;
        /* weights sharing an activation type share its quantized copy */
        const enum qtype vt = j.tr[i]->vec_dot_type;
        j.slot_of[i] = -1;
        if (vt == QTYPE_F32)
            continue;
        for (int s = 0; s < j.n_slots; s++)
            if (j.slot_tr[s] == quant_traits_get(vt))
                j.slot_of[i] = s;
        if (j.slot_of[i] < 0) {
            const int s = j.n_slots++;
            j.slot_of[i] = s;
            j.slot_tr[s] = quant_traits_get(vt);
            j.slot_buf[s] = ctx->xq[s];
            j.slot_stride[s] = quant_row_size(vt, k);
        }
    }
    j.chunk_rows = dec_chunk_rows(total_rows, nth);
    j.chunk_start[0] = 0;
    for (int i = 0; i < nw; i++)
        j.chunk_start[i + 1] = j.chunk_start[i] + (w[i]->n + j.chunk_rows - 1) / j.chunk_rows;

    for (int64_t i0 = 0; i0 < b; i0 += ctx->xq_rows) {
        j.i0 = i0;
        j.b = min64(ctx->xq_rows, b - i0);
        j.x = x + i0 * k;
        /* One row of a few thousand elements quantizes in about a microsecond, less than a
         * dispatch; only bigger batches are worth spreading over the pool. */
        if (j.n_slots > 0) {
            if (j.b * k * j.n_slots >= 32768)
                threadpool_run(p, dec_quantize_thread, &j);
            else
                dec_quantize_thread(&j, 0, 1);
        }
        for (int i = 0; i < nw; i++) {
            if (j.slot_of[i] >= 0) {
                j.xa[i] = j.slot_buf[j.slot_of[i]];
                j.xa_stride[i] = j.slot_stride[j.slot_of[i]];
            } else {
                j.xa[i] = (const char *)j.x;
                j.xa_stride[i] = (size_t)k * sizeof(float);
            }
        }
        atomic_init(&j.next, 0);
        threadpool_run(p, dec_thread, &j);
    }
}

/* ---- batch path: dequantized weight tiles × f32 activations (AVX-512) --------------------- */

struct batch_job {
    const struct mm_weight *w;
    const struct quant_traits *tr;
    size_t row_bytes;
    const float *x;
    int64_t b;
    float *y;
    struct mm_ctx *ctx;
};

#if MM_X86
/*
 * One micro-tile: y[0..mr) × [0..NR) (+)= xp · wp over kc.  The per-lane FMA chain runs over l
 * in order, then the k-block's partial sum is added to y: the same sequence for every tile
 * position and thread split.  mr is a compile-time constant at each call site; rows r >= mr
 * vanish as dead code.  Accumulators are named variables, not arrays, so that every compiler
 * keeps them in registers (clang left an array version on the stack).
 */
#define KT_FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define KT_DECL(r) __m512 a##r = _mm512_setzero_ps(), b##r = _mm512_setzero_ps();
#define KT_FMA(r)                                                                                \
    if (r < mr) {                                                                                \
        const __m512 xb = _mm512_set1_ps(xp[l * MR + r]);                                        \
        a##r = _mm512_fmadd_ps(xb, w0, a##r);                                                    \
        b##r = _mm512_fmadd_ps(xb, w1, b##r);                                                    \
    }
#define KT_STORE(r)                                                                              \
    if (r < mr) {                                                                                \
        float *yr = y + r * ldy;                                                                 \
        if (accumulate) {                                                                        \
            a##r = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, yr), a##r);                           \
            b##r = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, yr + 16), b##r);                      \
        }                                                                                        \
        _mm512_mask_storeu_ps(yr, m0, a##r);                                                     \
        _mm512_mask_storeu_ps(yr + 16, m1, b##r);                                                \
    }

static inline __attribute__((always_inline)) AVX512 void
kern_tile(const int mr, const float *xp, const float *wp, int64_t kc, float *y, int64_t ldy,
          __mmask16 m0, __mmask16 m1, int accumulate)
{
    KT_FOR_ROWS(KT_DECL)
    for (int64_t l = 0; l < kc; l++) {
        const __m512 w0 = _mm512_load_ps(wp + l * NR);
        const __m512 w1 = _mm512_load_ps(wp + l * NR + 16);
        KT_FOR_ROWS(KT_FMA)
    }
    KT_FOR_ROWS(KT_STORE)
}

static AVX512 void kern_dispatch(int mr, const float *xp, const float *wp, int64_t kc, float *y,
                                 int64_t ldy, __mmask16 m0, __mmask16 m1, int acc)
{
    switch (mr) {
#define KCASE(m) case m: kern_tile(m, xp, wp, kc, y, ldy, m0, m1, acc); break;
    KCASE(1) KCASE(2) KCASE(3) KCASE(4) KCASE(5) KCASE(6)
    KCASE(7) KCASE(8) KCASE(9) KCASE(10) KCASE(11) KCASE(12)
#undef KCASE
    default: break;
    }
}

static inline __mmask16 lane_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/*
 * 16×16 transpose of rows src[r·ld_src] into dst[c·ld_dst] (both 16 floats wide): unpack pairs,
 * then 64-bit and 128-bit lane shuffles.  Fully unrolled so the 32 vectors stay in registers.
 */
static inline AVX512 void transpose16(const float *src, int64_t ld_src, float *dst, int64_t ld_dst)
{
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + i * ld_src);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        _mm512_storeu_ps(dst + i * ld_dst, r[i]);
}

/* wpack[l][r] = src[r·ld + l] for r < NR, l < kc. */
static AVX512 void transpose_tile(const float *src, int64_t ld, int64_t kc, float *wpack)
{
    int64_t l = 0;
    for (; l + 16 <= kc; l += 16) {
        transpose16(src + l, ld, wpack + l * NR, NR);
        transpose16(src + 16 * ld + l, ld, wpack + l * NR + 16, NR);
    }
    for (; l < kc; l++)
        for (int r = 0; r < NR; r++)
            wpack[l * NR + r] = src[r * ld + l];
}

/*
 * Dequantize weight rows j0..j0+nr over [l0, l0+kc) and lay them out as wpack[l][NR] (rows past
 * nr as zeros).  F32 is transposed straight from the weight and F16 converted with vcvtph2ps;
 * other types go through the traits' to_f32, whose speed then bounds this path for mid-size b.
 */
static AVX512 void load_w_tile(const struct batch_job *j, int64_t j0, int nr, int64_t l0,
                               int64_t kc, float *wtmp, float *wpack)
{
    const struct quant_traits *tr = j->tr;
    const char *base = (const char *)j->w->data + j0 * j->row_bytes +
                       (size_t)(l0 / tr->blck) * (size_t)tr->size;

    if (j->w->type == QTYPE_F32 && nr == NR) {
        transpose_tile((const float *)base, j->w->k, kc, wpack);
        return;
    }
    for (int r = 0; r < nr; r++) {
        const char *row = base + r * j->row_bytes;
        if (j->w->type == QTYPE_F16) {
            const uint16_t *h = (const uint16_t *)row;
            int64_t l = 0;
            for (; l + 16 <= kc; l += 16)
                _mm512_storeu_ps(wtmp + r * KC + l,
                                 _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + l))));
            for (; l < kc; l++)
                wtmp[r * KC + l] = fp16_to_fp32(h[l]);
        } else {
            tr->to_f32(row, wtmp + r * KC, kc);
        }
    }
    for (int r = nr; r < NR; r++)
        memset(wtmp + r * KC, 0, (size_t)kc * sizeof(float));
    transpose_tile(wtmp, KC, kc, wpack);
}

/* Copy rows [0, rows) × [0, kc) of x (row stride k) into MR-interleaved micro-panels. */
static void pack_x(const float *x, int64_t k, int64_t rows, int64_t kc, float *xp)
{
    for (int64_t i0 = 0; i0 < rows; i0 += MR) {
        const int mr = (int)min64(MR, rows - i0);
        float *dst = xp + i0 * kc;
        for (int r = 0; r < mr; r++) {
            const float *src = x + (i0 + r) * k;
            for (int64_t l = 0; l < kc; l++)
                dst[l * MR + r] = src[l];
        }
    }
}

/*
 * Thread ith owns a contiguous range of NR-row weight tiles (a static split: each thread packs
 * the activations once per k-block, which a dynamic split would repeat per chunk).  Loop order,
 * as in BLIS: activation chunk → k-block (pack x: BC×KC, in L2) → block of JB weight rows
 * (dequantize + transpose: JB×KC, in L2) → activation micro-panel (MR×KC, stays in L1) → weight
 * tiles of the block, streamed from L2 as the vector operand.
 */
static AVX512 void batch_thread_avx512(struct batch_job *j, int ith, int nth)
{
    const int64_t k = j->w->k, n = j->w->n;
    const int64_t tiles = (n + NR - 1) / NR;
    const int64_t t0 = tiles * ith / nth, t1 = tiles * (ith + 1) / nth;
    struct mm_scratch *s = &j->ctx->thr[ith];

    if (t0 == t1)
        return;
    for (int64_t b0 = 0; b0 < j->b; b0 += BC) {
        const int64_t bc = min64(BC, j->b - b0);
        for (int64_t l0 = 0; l0 < k; l0 += KC) {
            const int64_t kc = min64(KC, k - l0);
            pack_x(j->x + b0 * k + l0, k, bc, kc, s->xpack);
            for (int64_t tb = t0; tb < t1; tb += JB / NR) {
                const int64_t te = min64(t1, tb + JB / NR);
                for (int64_t t = tb; t < te; t++)
                    load_w_tile(j, t * NR, (int)min64(NR, n - t * NR), l0, kc, s->wtmp,
                                s->wpack + (t - tb) * KC * NR);
                for (int64_t i = 0; i < bc; i += MR) {
                    const int mr = (int)min64(MR, bc - i);
                    for (int64_t t = tb; t < te; t++) {
                        const int64_t left = n - t * NR;
                        kern_dispatch(mr, s->xpack + i * kc, s->wpack + (t - tb) * KC * NR, kc,
                                      j->y + (b0 + i) * n + t * NR, n, lane_mask(left),
                                      lane_mask(left - 16), l0 > 0);
                    }
                }
            }
        }
    }
}
#endif /* MM_X86 */

/*
 * The batch path multiplies in f32, but decoding (and llama.cpp, prompts included) quantizes the
 * activations to the weight type's vec_dot_type first.  Rounding the activations through that
 * format (quantize, dequantize) before the f32 product gives the same numbers up to summation
 * order, so a prompt and the same tokens decoded one by one agree, and so do we and llama.cpp.
 */
struct round_job {
    const struct quant_traits *vt;
    const float *x;
    float *xr;
    int64_t k, b;
    struct mm_ctx *ctx;
};

static void round_thread(void *arg, int ith, int nth)
{
    struct round_job *r = arg;
    void *q = r->ctx->thr[ith].xqrow;
    for (int64_t i = ith; i < r->b; i += nth) {
        r->vt->from_f32(r->x + i * r->k, q, r->k);
        r->vt->to_f32(q, r->xr + i * r->k, r->k);
    }
}

static void batch_thread(void *arg, int ith, int nth)
{
#if MM_X86
    batch_thread_avx512(arg, ith, nth);
#else
    (void)arg;
    (void)ith;
    (void)nth;
#endif
}

/* ---- entry points ----------------------------------------------------------------------- */

/*
 * Smallest b for which the batch path beats the decode path.  Measured per type at k = 2048,
 * n = 5632, one thread (thread CPU time, best of 3; decode ms / batch ms), with the SIMD to_f32
 * kernels of quant_x86*.c (0.12-0.2 ns per element with AVX-512, 7-20x the scalar references):
 *   Q4_0  b=8: 6.7/7.7   b=12: 9.7/8.6     Q8_0  b=12: 10.5/11.0  b=16: 14.0/11.9
 *   Q4_1  b=12: 9.2/10.3 b=16: 12.2/11.4   Q5_0  b=12: 7.1/7.5    b=16: 9.4/8.5
 *   Q5_1  b=12: 7.6/8.6  b=16: 10.1/9.5    Q3_K  b=12: 7.0/7.3    b=16: 9.4/8.6
 *   Q2_K  b=16: 6.7/8.1  b=24: 10.1/8.3    Q4_K  b=16: 6.4/8.6    b=24: 9.2/9.3  b=32: 12.5/11.4
 *   Q5_K  b=16: 7.7/9.4  b=24: 11.4/11.0   Q6_K  b=24: 11.2/12.8  b=48: 25.3/20.9
 * (linear fits over b = 8..128 cross at 11-15 for the legacy types and Q3_K, 18 Q2_K, 23-26
 * Q4_K/Q5_K, 34 Q6_K; 2 threads on a loaded machine gave similar crossings).  The batch path's
 * remaining fixed cost is the transpose of the dequantized tiles and the short micro-tiles, not
 * to_f32.  F32 and F16 (vcvtph2ps, no to_f32): b=8 6.2/7.3, b=16 10.5/7.7 on 2 cores.  Types
 * without a SIMD to_f32 keep the old default.
 */
static int64_t batch_min(uint32_t type)
{
#ifdef MM_BATCH_MIN
    (void)type;
    return MM_BATCH_MIN; /* benchmarks force a path with -DMM_BATCH_MIN */
#else
    switch (type) {
    case QTYPE_F32:
    case QTYPE_F16:
    case QTYPE_Q4_0: return 12;
    case QTYPE_Q8_0:
    case QTYPE_Q4_1:
    case QTYPE_Q5_0:
    case QTYPE_Q5_1:
    case QTYPE_Q3_K: return 14;
    case QTYPE_Q2_K: return 20;
    case QTYPE_Q4_K:
    case QTYPE_Q5_K: return 24;
    case QTYPE_Q6_K: return 32;
    default: return 64;
    }
#endif
}

static int check_weight(const struct mm_ctx *ctx, const struct mm_weight *w, int64_t k)
{
    const struct quant_traits *tr = quant_traits_get(w->type);
    if (!tr || !tr->supported || !tr->vec_dot || !tr->to_f32)
        return STATUS_UNSUPPORTED;
    if (w->k != k || k < 1 || k > ctx->max_k || k % tr->blck != 0 || w->n < 0)
        return STATUS_INVALID;
    const struct quant_traits *vt = quant_traits_get(tr->vec_dot_type);
    if (!vt || (tr->vec_dot_type != QTYPE_F32 && !vt->from_f32))
        return STATUS_UNSUPPORTED;
    return STATUS_OK;
}

int matmul_multi(struct threadpool *p, struct mm_ctx *ctx, int nw, const struct mm_weight *const *w,
                 const float *x, int64_t b, float *const *y)
{
    const struct mm_weight *dw[MATMUL_MULTI_MAX];
    float *dy[MATMUL_MULTI_MAX];
    int nd = 0;

    if (nw < 1 || nw > MATMUL_MULTI_MAX || b < 0 || threadpool_n_threads(p) > ctx->n_threads)
        return STATUS_INVALID;
    for (int i = 0; i < nw; i++) {
        const int rc = check_weight(ctx, w[i], w[0]->k);
        if (rc != STATUS_OK)
            return rc;
    }
    if (b == 0)
        return STATUS_OK;
    /* big products one by one through the batch path; the rest share one decode dispatch */
    for (int i = 0; i < nw; i++) {
        if (!ctx->batch_ok || b < batch_min(w[i]->type)) {
            dw[nd] = w[i];
            dy[nd++] = y[i];
            continue;
        }
#ifdef HAVE_OPENBLAS
        if (w[i]->type == QTYPE_F32 && b >= BLAS_MIN_B && ctx->blas_ok) {
            blas_sgemm(p, w[i], x, b, y[i]);
            continue;
        }
#endif
        struct batch_job j = { .w = w[i], .tr = quant_traits_get(w[i]->type), .x = x, .b = b,
                               .y = y[i], .ctx = ctx };
        const enum qtype vdt = j.tr->vec_dot_type;
        if (vdt != QTYPE_F32 && b <= ctx->max_b) {
            /* w[0..i) with the same activation format already left xr rounded */
            int done = 0;
            for (int e = 0; e < i && !done; e++)
                done = quant_traits_get(w[e]->type)->vec_dot_type == vdt &&
                       b >= batch_min(w[e]->type) && w[e]->type != QTYPE_F32;
            if (!done) {
                struct round_job r = { quant_traits_get(vdt), x, ctx->xr, w[i]->k, b, ctx };
                threadpool_run(p, round_thread, &r);
            }
            j.x = ctx->xr;
        }
        j.row_bytes = quant_row_size(w[i]->type, w[i]->k);
        threadpool_run(p, batch_thread, &j);
    }
    if (nd > 0)
        matmul_decode(p, ctx, nd, dw, x, b, dy);
    return STATUS_OK;
}

int matmul(struct threadpool *p, struct mm_ctx *ctx, const struct mm_weight *w, const float *x,
           int64_t b, float *y)
{
    return matmul_multi(p, ctx, 1, &w, x, b, &y);
}

void matmul_f32_ref(const float *w, const float *x, int64_t k, int64_t n, int64_t b, float *y)
{
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t l = 0; l < k; l++)
                s += (double)x[i * k + l] * (double)w[j * k + l];
            y[i * n + j] = (float)s;
        }
}

int matmul_uses_blas(const struct mm_ctx *ctx, uint32_t type, int64_t b)
{
#ifdef HAVE_OPENBLAS
    return ctx->batch_ok && b >= batch_min(type) && type == QTYPE_F32 && b >= BLAS_MIN_B &&
           ctx->blas_ok;
#else
    (void)ctx;
    (void)type;
    (void)b;
    return 0;
#endif
}

int matmul_get_rows(const struct mm_weight *w, const int32_t *ids, int n_ids, float *out)
{
    const struct quant_traits *tr = quant_traits_get(w->type);
    if (!tr || !tr->to_f32)
        return STATUS_UNSUPPORTED;
    if (w->k % tr->blck != 0)
        return STATUS_INVALID;
    const size_t row_bytes = quant_row_size(w->type, w->k);
    for (int i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= w->n)
            return STATUS_INVALID;
        tr->to_f32((const char *)w->data + (size_t)ids[i] * row_bytes, out + (int64_t)i * w->k,
                   w->k);
    }
    return STATUS_OK;
}
