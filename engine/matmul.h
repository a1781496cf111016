/*
 * matmul.h — y = x · Wᵀ for weights of any supported tensor type, multi-threaded, plus the
 * embedding row lookup.
 *
 * A weight is n rows of k elements, row-major, exactly as GGUF stores a tensor [ne0 = k, ne1 = n].
 * Activations x are b rows of k floats; the result y is b rows of n floats (y[i·n + j] =
 * x_i · W_j).  Two strategies are used, chosen per call:
 *   - decode (small b): x is quantized once to the weight type's vec_dot_type and each output is
 *     one vec_dot call of quant.h, exactly as ggml computes it;
 *   - batch (prompt-sized b on AVX-512 CPUs; the threshold per type is in matmul.c): weight
 *     tiles are dequantized to f32 and multiplied by a register-blocked kernel (OpenBLAS for F32
 *     weights where it measured faster, see matmul.c) with the activations rounded through the
 *     weight type's vec_dot_type, as the decode path rounds them (held as f32): prompt and
 *     decode compute the same function up to summation order, as llama.cpp's CPU backend does.
 * Either way each output element is computed by exactly one thread in a fixed order, so the
 * result is bit-identical for any thread count.
 *
 * All scratch memory lives in a struct mm_ctx made once at model load; no call allocates.
 * Thread affinity: a ctx belongs to the thread that calls matmul (the threadpool's caller).
 */
#ifndef KF_MATMUL_H
#define KF_MATMUL_H

#include <stdint.h>

struct threadpool;

struct mm_weight {
    uint32_t type;    /* enum qtype */
    const void *data; /* n rows of quant_row_size(type, k) bytes */
    int64_t k;        /* elements per row (inner dimension), a multiple of the type's block */
    int64_t n;        /* rows (outputs) */
};

#define MATMUL_MULTI_MAX 4  /* weights one matmul_multi call may take */

struct mm_ctx;

/*
 * Scratch for products with k <= max_k, run by pools of at most n_threads threads.  max_b bounds
 * the rows quantized at once (larger b is processed in pieces, so it is a size hint, not a limit).
 * Returns NULL when out of memory.
 */
struct mm_ctx *mm_ctx_new(int64_t max_k, int64_t max_b, int n_threads);
void mm_ctx_free(struct mm_ctx *ctx);

/*
 * y[b×n] = x[b×k] · Wᵀ.  p may be NULL (single thread).  y must not overlap x.
 * Returns STATUS_OK; STATUS_UNSUPPORTED for a type without kernels; STATUS_INVALID for
 * k > max_k, k not a multiple of the block size, or a pool larger than the ctx was made for.
 */
int matmul(struct threadpool *p, struct mm_ctx *ctx, const struct mm_weight *w, const float *x,
           int64_t b, float *y);

/*
 * The same for nw <= MATMUL_MULTI_MAX weights sharing one input (Q/K/V, gate/up): all k equal,
 * y[i] receives x · w[i]ᵀ.  In the decode path this quantizes x once per activation type and
 * runs all rows in one dispatch, which matters when per-layer matrices are small.
 */
int matmul_multi(struct threadpool *p, struct mm_ctx *ctx, int nw, const struct mm_weight *const *w,
                 const float *x, int64_t b, float *const *y);

/* Naive single-threaded reference with double accumulation: y[b×n] = x[b×k] · Wᵀ (f32 W). */
void matmul_f32_ref(const float *w, const float *x, int64_t k, int64_t n, int64_t b, float *y);

/*
 * Embedding lookup: out[i·k .. i·k + k) = row ids[i] of w dequantized, for i < n_ids.
 * Returns STATUS_OK, STATUS_INVALID for an id outside [0, w->n), STATUS_UNSUPPORTED for a type
 * that cannot be dequantized.
 */
/*
 * Would matmul hand this product to OpenBLAS?  Its sgemm splits the work by its own thread count,
 * so such products are reproducible for a given thread count but may differ in the last bits
 * across thread counts; every other path gives the same bits whatever the thread count.
 */
int matmul_uses_blas(const struct mm_ctx *ctx, uint32_t type, int64_t b);
int matmul_get_rows(const struct mm_weight *w, const int32_t *ids, int n_ids, float *out);

#endif
